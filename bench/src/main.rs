//! `bench`: the poll on our runtime, measured side by side with a native baseline in one run.
//!
//! `./dev bench` builds everything and runs this against the local PostgreSQL and Redis. It
//! creates a database of its own (timing the 500,000-partner seed), starts the poll (`honey up`
//! with the repo's spin.toml and runtime config) and `native-vote` (the same insert and count,
//! natively), drives both with `oha` at fixed offered loads and at saturation, and prints a
//! table (and, with `--json`, the same numbers for machines). Everything it starts or creates
//! is stopped and removed at the end.

mod load;
mod procs;
mod report;
mod stores;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::load::{Load, Target};
use crate::procs::{Poll, PollOptions};
use crate::report::{Report, Row, SaturationRound, Startup};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmark the poll on our runtime against a native baseline"
)]
struct Args {
    /// A maintenance URL of the PostgreSQL server to use (a database is created and dropped).
    #[arg(long)]
    pg_admin_url: String,
    /// Redis to use (keys under a prefix of this run's own, deleted at the end).
    #[arg(long)]
    redis_url: String,
    /// Seconds per load step.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Offered loads, votes per second (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100,500,2000")]
    rates: Vec<u32>,
    /// Connections for the saturation runs.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Saturation rounds, native and poll alternating; the round with the median ratio is
    /// reported (two runs of the same build differ by up to 15 %, so one round proves little).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// A short smoke run (2 s steps): checks the bench works, numbers are indicative only.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The `honey` runtime binary.
    #[arg(long, default_value = "target/release/honey")]
    honey: PathBuf,
    /// The baseline binary.
    #[arg(long, default_value = "target/release/native-vote")]
    native: PathBuf,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(mut args: Args) -> anyhow::Result<()> {
    if args.quick {
        args.seconds = 2;
        args.rounds = 1;
    }
    load::check_oha()?;
    let step = Duration::from_secs(args.seconds);
    let id = format!("{}_{}", std::process::id(), unix_seconds());

    eprintln!("bench: creating, migrating and seeding a database of its own");
    let db = stores::Database::create(&args.pg_admin_url, &format!("honey_bench_{id}"))?;
    let seed = db.migrate_and_seed()?;
    let redis = redis_scratch::RedisPrefix::new(&args.redis_url, &format!("honey-bench:{id}:"))
        .context("connecting to Redis (--redis-url)")?;
    let max_connections = stores::max_connections(std::path::Path::new("runtime-config.toml"))?;

    let poll_opts = PollOptions {
        honey: args.honey.clone(),
        db_url: db.url.clone(),
        db_host: db.host_port(),
        redis_url: args.redis_url.clone(),
        redis_host: stores::host_port(&args.redis_url, 6379),
        redis_prefix: redis.sub("poll:"),
        extra_args: Vec::new(),
        cache_dir: None,
    };

    eprintln!("bench: start-up (empty compile cache, then warm)");
    let cache = tempdir("honey-bench-cache")?;
    let cold = Poll::start(&PollOptions {
        cache_dir: Some(cache.clone()),
        ..poll_opts.clone()
    })?;
    let cold_start = cold.ready_after;
    drop(cold);
    let warm = Poll::start(&PollOptions {
        cache_dir: Some(cache.clone()),
        ..poll_opts.clone()
    })?;
    let startup = Startup {
        seed_seconds: seed.as_secs_f64(),
        cold_start_empty_cache_seconds: cold_start.as_secs_f64(),
        cold_start_warm_cache_seconds: warm.ready_after.as_secs_f64(),
        first_request_ms: warm.first_request.as_secs_f64() * 1e3,
        ..Startup::default()
    };
    drop(warm);

    eprintln!("bench: instantiate cost (GET /health, one connection, with and without reuse)");
    let health = Load::get("/health").connections(1).seconds(step);
    let reuse = Poll::start(&PollOptions {
        cache_dir: Some(cache.clone()),
        ..poll_opts.clone()
    })?;
    let with_reuse = health.run(&Target::new("poll", reuse.base()))?;
    drop(reuse);
    let fresh = Poll::start(&PollOptions {
        cache_dir: Some(cache.clone()),
        extra_args: vec!["--max-instance-reuse-count".into(), "1".into()],
        ..poll_opts.clone()
    })?;
    let without_reuse = health.run(&Target::new("poll", fresh.base()))?;
    drop(fresh);
    let startup = Startup {
        health_mean_ms_with_reuse: with_reuse.mean_ms,
        health_mean_ms_without_reuse: without_reuse.mean_ms,
        ..startup
    };

    eprintln!("bench: votes, the poll and the native baseline side by side");
    let poll = Poll::start(&PollOptions {
        cache_dir: Some(cache.clone()),
        ..poll_opts.clone()
    })?;
    let native = procs::Native::start(
        &args.native,
        &db.url,
        &args.redis_url,
        &redis.sub("native:"),
        max_connections,
    )?;
    let poll_target = Target::new("poll", poll.base());
    let native_target = Target::new("native", native.base());
    let mut rows = Vec::new();
    let vote = Load::vote().seconds(step);
    for rate in &args.rates {
        let load = vote.clone().rate(*rate).connections(50);
        let label = format!("POST /vote @ {rate}/s");
        let n = load.run(&native_target)?;
        let p = load.run(&poll_target)?;
        rows.push(Row::new(&label, "native", n.clone(), &n));
        rows.push(Row::new(&label, "poll", p, &n));
    }
    let saturate = vote.clone().connections(args.connections);
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        // Who goes first alternates, so a machine warming up or slowing down hits both sides.
        let (native_sat, poll_sat) = if round % 2 == 0 {
            let n = saturate.run(&native_target)?;
            (n, saturate.run(&poll_target)?)
        } else {
            let p = saturate.run(&poll_target)?;
            (saturate.run(&native_target)?, p)
        };
        rounds.push(SaturationRound::new(native_sat, poll_sat));
    }
    let median = SaturationRound::median(&rounds)
        .context("no saturation round ran")?
        .clone();
    let native_sat = median.native.clone();
    let label = format!("POST /vote, saturation ({} conn.)", args.connections);
    rows.push(Row::new(&label, "native", native_sat.clone(), &native_sat));
    rows.push(Row::new(&label, "poll", median.poll, &native_sat));
    for path in ["/votes", "/"] {
        let r = Load::get(path)
            .connections(args.connections)
            .seconds(step)
            .run(&poll_target)?;
        rows.push(Row::new(
            &format!("GET {path}, saturation ({} conn.)", args.connections),
            "poll",
            r,
            &native_sat,
        ));
    }
    drop(poll);
    drop(native);

    let report = Report {
        machine: report::machine(),
        quick: args.quick,
        seconds_per_step: args.seconds,
        max_connections,
        startup,
        rows,
        saturation_rounds: rounds,
    };
    println!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    drop(redis);
    drop(db);
    let _ = std::fs::remove_dir_all(&cache);
    Ok(())
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn tempdir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
