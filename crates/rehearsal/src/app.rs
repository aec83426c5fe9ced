//! Starting and stopping the real app (`honey up`) for the rehearsal.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where the app finds its stores, as Spin variables.
#[derive(Clone)]
pub struct Stores {
    pub db_url: String,
    pub db_host: String,
    pub redis_url: String,
    pub redis_host: String,
    pub redis_prefix: String,
}

pub struct AppSpec {
    pub honey: PathBuf,
    pub runtime_config: PathBuf,
    pub stores: Stores,
    pub port: u16,
    pub metrics_port: u16,
    pub log_dir: PathBuf,
}

/// A running `honey up`; killed when dropped.
pub struct App {
    child: Child,
    pub log: PathBuf,
}

/// A port for a server started with its port given up front (see the `free-port` crate).
pub fn free_port() -> anyhow::Result<u16> {
    free_port::free_port().context("cannot find a free port")
}

impl App {
    /// Starts the app from `manifest` and waits until it answers `/health`.
    pub async fn start(spec: &AppSpec, manifest: &Path, label: &str) -> anyhow::Result<App> {
        let log = spec.log_dir.join(format!("honey-{label}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let s = &spec.stores;
        let child = Command::new(&spec.honey)
            .arg("up")
            .arg("-f")
            .arg(manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", spec.port))
            .arg("--runtime-config-file")
            .arg(&spec.runtime_config)
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", spec.metrics_port))
            .env("SPIN_VARIABLE_DB_URL", &s.db_url)
            .env("SPIN_VARIABLE_DB_HOST", &s.db_host)
            .env("SPIN_VARIABLE_REDIS_URL", &s.redis_url)
            .env("SPIN_VARIABLE_REDIS_HOST", &s.redis_host)
            .env("SPIN_VARIABLE_REDIS_PREFIX", &s.redis_prefix)
            .env(
                "SPIN_VARIABLE_PUBLIC_URL",
                format!("http://127.0.0.1:{}", spec.port),
            )
            // The audience simulator votes from one address, like a room behind one NAT.
            .env("SPIN_VARIABLE_VOTE_RATE_LIMIT", "off")
            .stdout(file.try_clone()?)
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", spec.honey.display()))?;
        let mut app = App { child, log };
        let health = format!("http://127.0.0.1:{}/health", spec.port);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = app.child.try_wait()? {
                bail!(
                    "the app exited ({status}) during start-up; see {}",
                    app.log.display()
                );
            }
            if let Ok(r) = client.get(&health).send().await
                && r.status().is_success()
            {
                return Ok(app);
            }
            if Instant::now() > deadline {
                app.stop();
                bail!(
                    "the app did not answer within 60 s; see {}",
                    app.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A copy of `manifest` whose referral component is the fixed build, with every component
/// path made absolute so the copy can live elsewhere.
pub fn fixed_manifest(manifest: &Path, fixed_wasm: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let base = manifest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .canonicalize()?;
    let wasm = fixed_wasm
        .canonicalize()
        .with_context(|| format!("{} not built (./dev build)", fixed_wasm.display()))?;
    let mut out = String::new();
    for line in text.lines() {
        if line
            .trim_start()
            .starts_with("source = \"target/wasm32-wasip2/release/referral.wasm\"")
        {
            out.push_str(&format!("source = {:?}\n", wasm.display().to_string()));
        } else if let Some(rest) = line.trim_start().strip_prefix("source = \"target/") {
            out.push_str(&format!("source = \"{}/target/{rest}\n", base.display()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = dir.join("spin-fixed.toml");
    std::fs::write(&path, out)?;
    Ok(path)
}
