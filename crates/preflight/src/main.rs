//! `preflight`: run before the talk against the database the app will use. It measures what the
//! planted failure depends on and says whether the failure will fire there:
//!
//! - the seed is complete (500,000 partners, the talk's referral code present);
//! - the referral key lookup takes longer than the database's `statement_timeout` (so every
//!   referral vote hits the error path), alone and with several lookups at once;
//! - the exact-code fallback stays far below it (so referral votes still succeed once fixed);
//! - the runtime config caps the app's PostgreSQL connections (`[outbound_pg] max_connections`);
//! - optionally, that the Slack webhook the alerts use accepts a message.
//!
//! Exit status 0 when the failure will fire, 1 when it will not (with what to change), 2 when
//! the checks themselves could not run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use poll_core::referral::{BY_KEY_SQL, EXACT_SQL, KNOWN_CODE};
use serde::Serialize;
use tokio_postgres::{Client, NoTls};

const SEED_ROWS: i64 = 500_000;
/// The key lookup must beat the timeout by this factor to count as certain, so a slightly
/// faster stage machine than the one measured on still fires.
const MARGIN: f64 = 1.3;

#[derive(Parser)]
#[command(
    name = "preflight",
    about = "Will the planted failure fire on this database?"
)]
struct Args {
    /// The database the app uses (as the app connects: its sessions get the same settings).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The Spin runtime config the app runs with.
    #[arg(long, default_value = "runtime-config.toml")]
    runtime_config: PathBuf,
    /// How many referral lookups to run at once for the concurrent measurement
    /// (default: the runtime config's max_connections, else 5).
    #[arg(long)]
    concurrency: Option<usize>,
    /// A file holding the Slack webhook URL the alerts go to: posts a test message.
    #[arg(long)]
    slack_webhook_file: Option<PathBuf>,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Findings {
    partners: i64,
    known_code_present: bool,
    known_code_key_unique: bool,
    statement_timeout_ms: u64,
    max_connections: Option<usize>,
    key_lookup_ms: f64,
    concurrency: usize,
    key_lookup_concurrent_ms: Vec<f64>,
    exact_lookup_ms: f64,
    slack: Option<String>,
    will_fire: bool,
    verdict: String,
    changes: Vec<String>,
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .context("cannot connect to the database")?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("preflight: connection error: {e}");
        }
    });
    Ok(client)
}

/// `SHOW statement_timeout` as milliseconds (PostgreSQL prints `3s`, `500ms`, `1min`, `0`).
fn parse_pg_duration(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (n, unit) = raw.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit.trim() {
        "" | "ms" => n,
        "s" => n * 1000,
        "min" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => return None,
    })
}

fn max_connections(path: &PathBuf) -> anyhow::Result<Option<usize>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the runtime config {}", path.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
    Ok(value
        .get("outbound_pg")
        .and_then(|pg| pg.get("max_connections"))
        .and_then(toml::Value::as_integer)
        .map(|n| n as usize))
}

/// Runs the key lookup on its own connection with no statement timeout (bounded by `cap` so a
/// pathological database cannot hang the preflight), and returns how long it took.
async fn time_key_lookup(url: &str, cap: Duration) -> anyhow::Result<f64> {
    let db = connect(url).await?;
    db.batch_execute(&format!("SET statement_timeout = {}", cap.as_millis()))
        .await?;
    let started = Instant::now();
    match db.query(BY_KEY_SQL, &[&KNOWN_CODE]).await {
        Ok(_) => Ok(started.elapsed().as_secs_f64() * 1e3),
        // Still running at the cap: report the cap, which is already far past any timeout.
        Err(e) if e.code().is_some_and(|c| c.code() == "57014") => {
            Ok(started.elapsed().as_secs_f64() * 1e3)
        }
        Err(e) => Err(e).context("the referral key lookup failed"),
    }
}

async fn check_slack(file: &PathBuf) -> anyhow::Result<String> {
    let url =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let url = url.trim();
    if url.is_empty() {
        bail!("{} is empty", file.display());
    }
    let r = reqwest::Client::new()
        .post(url)
        .timeout(Duration::from_secs(10))
        .json(&serde_json::json!({
            "text": "honey preflight: alerts will reach this channel during the talk."
        }))
        .send()
        .await
        .context("cannot reach the Slack webhook")?;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("the Slack webhook answered {status}: {body}");
    }
    Ok(format!("{status} {body}").trim().to_owned())
}

async fn run(args: &Args) -> anyhow::Result<Findings> {
    let db = connect(&args.database_url).await?;
    let partners: i64 = db
        .query_one("SELECT count(*) FROM referral_partners", &[])
        .await
        .context("cannot count referral_partners (is the database migrated and seeded?)")?
        .get(0);
    let known: i64 = db
        .query_one(
            "SELECT count(*) FROM referral_partners WHERE code = $1",
            &[&KNOWN_CODE],
        )
        .await?
        .get(0);
    let raw_timeout: String = db.query_one("SHOW statement_timeout", &[]).await?.get(0);
    let timeout_ms = parse_pg_duration(&raw_timeout)
        .with_context(|| format!("cannot read statement_timeout {raw_timeout:?}"))?;
    let slots = max_connections(&args.runtime_config)?;
    let concurrency = args.concurrency.or(slots).unwrap_or(5).max(1);

    // Cap each measurement well past the timeout: enough to prove the point, bounded in time.
    let cap = Duration::from_millis((timeout_ms.max(1000) * 4).min(60_000));
    eprintln!("preflight: timing the referral key lookup alone…");
    let alone = time_key_lookup(&args.database_url, cap).await?;
    eprintln!("preflight: timing {concurrency} referral key lookups at once…");
    let together = futures::future::try_join_all(
        (0..concurrency).map(|_| time_key_lookup(&args.database_url, cap)),
    )
    .await?;
    let exact_started = Instant::now();
    let exact_rows = db.query(EXACT_SQL, &[&KNOWN_CODE]).await?;
    let exact_ms = exact_started.elapsed().as_secs_f64() * 1e3;
    // Unique key: two partners sharing the known code's key would make the lookup refuse it.
    let key_unique = {
        db.batch_execute("SET statement_timeout = 0").await?;
        db.query(BY_KEY_SQL, &[&KNOWN_CODE]).await?.len() == 1
    };
    let slack = match &args.slack_webhook_file {
        Some(f) => Some(check_slack(f).await.map_err(|e| e.context("Slack check"))?),
        None => None,
    };

    let mut changes = Vec::new();
    if partners < SEED_ROWS {
        changes.push(format!(
            "seed the database: {partners} partners, the talk needs {SEED_ROWS} (psql -f seed/001_referral_partners.sql)"
        ));
    }
    if known == 0 || exact_rows.is_empty() {
        changes.push(format!(
            "the referral code {KNOWN_CODE} is missing: run the seed"
        ));
    }
    if !key_unique && known > 0 {
        changes.push(format!(
            "another partner shares the key of {KNOWN_CODE}: referral votes would be refused; reseed"
        ));
    }
    let timeout = timeout_ms as f64;
    if timeout_ms == 0 {
        changes.push(
            "statement_timeout is off: the lookup never times out; migrate with -v statement_timeout=3s".into(),
        );
    } else if alone < timeout * MARGIN {
        let suggested = ((alone / MARGIN / 1000.0).floor() as u64).max(1);
        changes.push(format!(
            "the key lookup takes {:.0} ms, not clearly over statement_timeout {timeout_ms} ms: \
             lower statement_timeout to {suggested}s (psql -v statement_timeout={suggested}s -f migrations/001_schema.sql, \
             or the chart's postgresql.statementTimeout)",
            alone
        ));
    }
    if exact_ms * 3.0 > timeout && timeout_ms > 0 {
        changes.push(format!(
            "the exact-code fallback takes {exact_ms:.0} ms, too close to the timeout: referral votes would fail even with the fix"
        ));
    }
    match slots {
        None => changes.push(format!(
            "{} sets no [outbound_pg] max_connections: leaked handles would never run out",
            args.runtime_config.display()
        )),
        Some(0) => changes.push("max_connections = 0 stops every request".into()),
        Some(_) => {}
    }
    let will_fire = changes.is_empty();
    let verdict = if will_fire {
        format!(
            "the failure will fire: every referral lookup outlasts statement_timeout ({alone:.0} ms alone, \
             {:.0} ms with {concurrency} at once, against {timeout_ms} ms), so each referral vote \
             leaks a handle and the {} slots run out after {} referral votes",
            together.iter().copied().fold(0.0, f64::max),
            slots.unwrap_or(0),
            slots.unwrap_or(0)
        )
    } else {
        format!(
            "it will not fire as planned, because: {}",
            changes.join("; ")
        )
    };
    Ok(Findings {
        partners,
        known_code_present: known > 0,
        known_code_key_unique: key_unique,
        statement_timeout_ms: timeout_ms,
        max_connections: slots,
        key_lookup_ms: alone,
        concurrency,
        key_lookup_concurrent_ms: together,
        exact_lookup_ms: exact_ms,
        slack,
        will_fire,
        verdict,
        changes,
    })
}

fn print(f: &Findings) {
    let ok = |b: bool| if b { "ok  " } else { "FAIL" };
    println!("honey preflight");
    println!(
        "  {} referral partners: {} (need {SEED_ROWS})",
        ok(f.partners >= SEED_ROWS),
        f.partners
    );
    println!(
        "  {} talk's referral code {KNOWN_CODE}: {}",
        ok(f.known_code_present && f.known_code_key_unique),
        if f.known_code_present {
            "present"
        } else {
            "missing"
        }
    );
    println!(
        "  {} statement_timeout: {} ms",
        ok(f.statement_timeout_ms > 0),
        f.statement_timeout_ms
    );
    println!(
        "  {} key lookup alone: {:.0} ms ({:.1}x the timeout)",
        ok(f.statement_timeout_ms > 0 && f.key_lookup_ms >= f.statement_timeout_ms as f64 * MARGIN),
        f.key_lookup_ms,
        f.key_lookup_ms / (f.statement_timeout_ms.max(1) as f64)
    );
    let worst = f
        .key_lookup_concurrent_ms
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let best = f
        .key_lookup_concurrent_ms
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    println!(
        "       key lookups {} at once: {best:.0}–{worst:.0} ms each",
        f.concurrency
    );
    println!(
        "  {} exact-code fallback: {:.1} ms",
        ok(f.exact_lookup_ms * 3.0 <= f.statement_timeout_ms as f64),
        f.exact_lookup_ms
    );
    println!(
        "  {} PostgreSQL slots (max_connections): {}",
        ok(f.max_connections.is_some_and(|n| n > 0)),
        f.max_connections
            .map_or("not set".to_owned(), |n| n.to_string())
    );
    if let Some(s) = &f.slack {
        println!("  ok   Slack webhook: {s}");
    }
    println!();
    println!("verdict: {}", f.verdict);
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(f) => {
            if args.json {
                match serde_json::to_string_pretty(&f) {
                    Ok(j) => println!("{j}"),
                    Err(e) => eprintln!("preflight: {e}"),
                }
            } else {
                print(&f);
            }
            if f.will_fire {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("preflight: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_durations() {
        assert_eq!(parse_pg_duration("3s"), Some(3000));
        assert_eq!(parse_pg_duration("500ms"), Some(500));
        assert_eq!(parse_pg_duration("1min"), Some(60_000));
        assert_eq!(parse_pg_duration("0"), Some(0));
        assert_eq!(parse_pg_duration("soon"), None);
    }
}
