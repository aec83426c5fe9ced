//! `rehearse`: the talk, run locally against the seeded database with an audience simulator.
//!
//! 1. normal — phones vote with the left QR code; nothing may fail;
//! 2. break — people scan the right QR code (referral votes) while others keep voting; each
//!    referral vote leaks a PostgreSQL handle until the five slots are gone and votes fail;
//! 3. fix — the app is restarted with the fixed referral component; votes must count again.
//!
//! It prints the timeline (leaks, exhaustion, how long the projector froze, recovery) and which of
//! the talk's promises held; `--alerts` adds Prometheus, Alertmanager and a Slack stand-in and
//! times the alerts; `--check` makes a broken promise a failing exit status (for CI).
//!
//! `./dev rehearse` builds everything, prepares a fresh seeded database and runs this.

mod alerts;
mod app;
mod audience;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::sync::watch;

use crate::app::{App, AppSpec, Stores, free_port};
use crate::audience::{Kind, Recorder};
use crate::report::Phases;

#[derive(Parser)]
#[command(
    name = "rehearse",
    about = "Rehearse the talk: break the app, fix it, time it"
)]
struct Args {
    /// The runtime binary.
    #[arg(long, default_value = "target/release/honey")]
    honey: PathBuf,
    /// The app as deployed (with the bug).
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// The referral component with the fix applied.
    #[arg(
        long,
        default_value = "target/wasm32-wasip2/release/referral_fixed.wasm"
    )]
    fixed_referral: PathBuf,
    #[arg(long, default_value = "runtime-config.toml")]
    runtime_config: PathBuf,
    #[arg(long)]
    db_url: String,
    /// host:port of the database, for the app's allowed_outbound_hosts.
    #[arg(long)]
    db_host: String,
    #[arg(long)]
    redis_url: String,
    #[arg(long)]
    redis_host: String,
    /// Redis key prefix; each run adds its own part.
    #[arg(long, default_value = "honey-rehearsal:")]
    redis_prefix: String,
    /// PostgreSQL slots in the runtime config (what "exhausted" means).
    #[arg(long, default_value_t = 5)]
    slots: usize,
    /// How many times to run the whole talk.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Also run Prometheus, Alertmanager and a Slack stand-in, and time the alerts.
    #[arg(long)]
    alerts: bool,
    #[arg(long, default_value = "monitoring/prometheus/alerts.yml")]
    rules: PathBuf,
    #[arg(long, default_value = "monitoring/alertmanager/alertmanager.yml")]
    alertmanager_config: PathBuf,
    /// Seconds of phase 1 (default 12; 30 with --alerts, so "nothing fires" means something).
    #[arg(long)]
    normal_secs: Option<f64>,
    /// Seconds phase 2 goes on after the pool is exhausted (default 20; with --alerts, until
    /// both critical alerts reached Slack, at most 90).
    #[arg(long)]
    broken_secs: Option<f64>,
    /// Seconds of phase 3, after the fix.
    #[arg(long, default_value_t = 15.0)]
    fixed_secs: f64,
    /// People scanning the referral code in phase 2.
    #[arg(long, default_value_t = 30)]
    referral_voters: usize,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 unless every promise held in every run.
    #[arg(long)]
    check: bool,
    /// Where logs go (default: target/rehearsal/<time>).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A stream of voters that can be told to stop.
struct Stream {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn voters(rec: &Recorder, base: &str, kind: Kind, rate: f64, count: Option<usize>) -> Stream {
    let (stop, rx) = watch::channel(false);
    Stream {
        task: audience::arrivals(rec, base, kind, rate, count, rx),
        stop,
    }
}

impl Stream {
    fn halt(&self) {
        let _ = self.stop.send(true);
    }
}

async fn rehearse(
    args: &Args,
    run: usize,
    out: &std::path::Path,
) -> anyhow::Result<report::Report> {
    let dir = out.join(format!("run-{run}"));
    std::fs::create_dir_all(&dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let redis_prefix = format!("{}{stamp}:{run}:", args.redis_prefix);
    // The run's counts and metrics go when the run ends (after the app, dropped first).
    let _keys = redis_scratch::RedisPrefix::new(&args.redis_url, &redis_prefix)
        .context("connecting to Redis (--redis-url)")?;
    let spec = AppSpec {
        honey: args.honey.clone(),
        runtime_config: args.runtime_config.clone(),
        stores: Stores {
            db_url: args.db_url.clone(),
            db_host: args.db_host.clone(),
            redis_url: args.redis_url.clone(),
            redis_host: args.redis_host.clone(),
            redis_prefix,
        },
        port: free_port()?,
        metrics_port: free_port()?,
        log_dir: dir.clone(),
    };
    let fixed = app::fixed_manifest(&args.manifest, &args.fixed_referral, &dir)?;
    let base = format!("http://127.0.0.1:{}", spec.port);
    let host_metrics = format!("http://127.0.0.1:{}/metrics", spec.metrics_port);

    eprintln!("rehearse: run {run}: starting the app (with the bug) on {base}");
    let mut app = App::start(&spec, &args.manifest, "buggy").await?;
    let rec = Recorder::new();
    let stack = if args.alerts {
        eprintln!("rehearse: starting Prometheus, Alertmanager and the Slack stand-in");
        Some(
            alerts::AlertStack::start(
                &rec,
                spec.port,
                &args.rules,
                &args.alertmanager_config,
                &dir,
            )
            .await?,
        )
    } else {
        None
    };
    let (stop_all, stop_rx) = watch::channel(false);
    let projector = audience::projector(&rec, &base, stop_rx.clone());
    let observer = audience::observer(&rec, &base, &host_metrics, stop_rx.clone());
    let watcher = stack.as_ref().map(|s| s.watch(&rec, stop_rx.clone()));

    // Phase 1: the left QR code.
    let normal = args
        .normal_secs
        .unwrap_or(if args.alerts { 30.0 } else { 12.0 });
    eprintln!("rehearse: phase 1 ({normal} s): plain votes");
    let plain1 = voters(&rec, &base, Kind::Plain, 4.0, None);
    tokio::time::sleep(Duration::from_secs_f64(normal)).await;
    plain1.halt();

    // Phase 2: the right QR code, while the left one keeps being used.
    let break_s = rec.now();
    rec.set_phase(2);
    eprintln!("rehearse: phase 2: referral votes");
    let referral = voters(&rec, &base, Kind::Referral, 1.5, Some(args.referral_voters));
    let plain2 = voters(&rec, &base, Kind::Plain, 2.0, None);
    let hold = args
        .broken_secs
        .unwrap_or(if args.alerts { 90.0 } else { 20.0 });
    let mut exhausted_at = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = rec.now();
        // Exhausted for good once every slot is taken by a leaked handle.
        if exhausted_at.is_none()
            && rec.last_metrics().is_some_and(|m| {
                m.host_in_use.is_some_and(|v| v >= args.slots as f64)
                    && m.lookups_timed_out.is_some_and(|v| v >= args.slots as f64)
            })
        {
            exhausted_at = Some(now);
            eprintln!("rehearse: pool exhausted at t+{now:.1}s");
        }
        match exhausted_at {
            Some(e) => {
                let alerts_done = stack.as_ref().is_some_and(|s| {
                    s.slack_at("DatabasePoolExhausted").is_some()
                        && s.slack_at("VoteAPIErrorRateHigh").is_some()
                });
                // With alerts: until both reached Slack (plus a little, to see 95% failing).
                if now >= e + hold || (alerts_done && now >= e + 20.0) {
                    break;
                }
            }
            // Never exhausted: give up after a while; the report says so.
            None if now - break_s > 120.0 => break,
            None => {}
        }
    }
    referral.halt();
    plain2.halt();

    // Phase 3: the fix ships (on a cluster: a new image, a new pod).
    let fix_s = rec.now();
    rec.set_phase(3);
    eprintln!("rehearse: phase 3: deploying the fix");
    let plain3 = voters(&rec, &base, Kind::Plain, 3.0, None);
    let referral3 = voters(&rec, &base, Kind::Referral, 0.3, None);
    app.stop();
    app = App::start(&spec, &fixed, "fixed")
        .await
        .context("starting the fixed app")?;
    let serving_again_s = rec.now();
    tokio::time::sleep(Duration::from_secs_f64(args.fixed_secs)).await;
    plain3.halt();
    referral3.halt();
    let end_s = rec.now();

    for s in [plain1, referral, plain2, plain3, referral3] {
        let _ = s.task.await;
    }
    let _ = stop_all.send(true);
    let _ = projector.await;
    let _ = observer.await;
    if let Some(w) = watcher {
        let _ = w.await;
    }
    drop(app);

    let alerts = stack.as_ref().map(|s| (s.states(), s.slack()));
    let log = rec.log.lock().unwrap_or_else(|p| p.into_inner());
    Ok(report::analyse(
        run,
        &log,
        &Phases {
            break_s,
            fix_s,
            serving_again_s,
            end_s,
            slots: args.slots,
        },
        alerts,
    ))
}

async fn main_() -> anyhow::Result<bool> {
    let args = Args::parse();
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            PathBuf::from("target/rehearsal").join(stamp.to_string())
        }
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    eprintln!("rehearse: logs in {}", out.display());
    let mut reports = Vec::new();
    for run in 1..=args.runs {
        let r = rehearse(&args, run, &out).await?;
        if !args.json {
            report::print(&r);
        }
        reports.push(r);
    }
    let all_held = reports.iter().all(|r| r.checks.iter().all(|c| c.held));
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else if args.runs > 1 {
        let held = reports
            .iter()
            .filter(|r| r.checks.iter().all(|c| c.held))
            .count();
        println!("every promise held in {held} of {} runs", args.runs);
    }
    Ok(!args.check || all_held)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match main_().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("rehearse: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
