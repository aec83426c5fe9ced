//! `honey`: a Spin-compatible runtime for the honey poll, built on wasmtime.
//!
//! `honey up` runs a Spin app from `spin.toml` the way `spin up` does (same manifest, runtime
//! config, variables and instance-reuse flags), so what we rehearse locally holds on real Spin.

mod allowed_hosts;
mod app;
mod compile;
mod host;
mod instances;
mod manifest;
mod metrics;
mod pg_permits;
mod routes;
mod runtime_config;
mod server;
mod variables;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::instances::{Pick, ReuseConfig, parse_count, parse_duration};

#[derive(Parser)]
#[command(
    name = "honey",
    version,
    about = "A Spin-compatible runtime for the honey conference poll"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Spin application (like `spin up`).
    Up(UpArgs),
}

#[derive(Parser)]
struct UpArgs {
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Spin runtime config file (TOML).
    #[arg(long)]
    runtime_config_file: Option<PathBuf>,
    /// Requests one instance serves before it is retired: `N` or a range `A..B`.
    #[arg(long, value_parser = parse_count, default_value = "128")]
    max_instance_reuse_count: Pick<u64>,
    /// Requests one instance serves at once: `N` or `A..B`.
    #[arg(long, value_parser = parse_count, default_value = "16")]
    max_instance_concurrent_reuse_count: Pick<u64>,
    /// How long an idle instance is kept, e.g. `1s`, `500ms`, or a range `1s..2s`.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    idle_instance_timeout: Pick<std::time::Duration>,
    /// Deadline for a guest to produce a response (none by default, as in Spin).
    #[arg(long, value_parser = parse_duration)]
    request_timeout: Option<Pick<std::time::Duration>>,
    /// Where compiled components are cached (default: ~/.cache/honey/components).
    #[arg(long, env = "HONEY_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile components in memory only.
    #[arg(long)]
    no_cache: bool,
    /// Serve the runtime's own Prometheus metrics on this address (off by default).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

fn engine() -> anyhow::Result<wasmtime::Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model_async(true);
    config.concurrency_support(true);
    wasmtime::Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    compile::set_cache_dir(if args.no_cache {
        None
    } else {
        args.cache_dir.or_else(compile::default_cache_dir)
    });
    let runtime_config = match &args.runtime_config_file {
        Some(path) => runtime_config::RuntimeConfig::load(path)
            .with_context(|| format!("runtime config {}", path.display()))?,
        None => Default::default(),
    };
    let engine = engine()?;
    let pg_permits = pg_permits::PgPermits::new(runtime_config.outbound_pg.max_connections);
    let metrics = metrics::RuntimeMetrics::new(pg_permits.clone());
    if let Some(addr) = args.metrics_listen {
        let metrics = metrics.clone();
        // Bound here, before the app loads, so a taken port stops start-up with a clear message.
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(metrics, listener).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }
    let started = std::time::Instant::now();
    let env = |k: &str| std::env::var(k).ok();
    let app = app::App::load(
        &engine,
        app::LoadOptions {
            manifest_path: &args.manifest,
            pg_permits,
            reuse: ReuseConfig {
                max_reuse: args.max_instance_reuse_count,
                max_concurrent: args.max_instance_concurrent_reuse_count,
                idle_timeout: args.idle_instance_timeout,
                request_timeout: args.request_timeout,
            },
            metrics: metrics.clone(),
            env: &env,
        },
    )
    .await
    .with_context(|| format!("cannot start the app in {}", args.manifest.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(app = %app.name, elapsed_ms = started.elapsed().as_millis() as u64, "app loaded");
    println!("Serving http://{addr}");
    let mut routes: Vec<_> = app.router.describe();
    routes.sort();
    println!("Available Routes:");
    for (route, component) in routes {
        println!("  {component}: http://{addr}{route}");
    }
    tokio::select! {
        r = server::serve(app, listener) => r,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            metrics.begin_shutdown();
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("HONEY_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs piped to a file or a test must stay greppable.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
