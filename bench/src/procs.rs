//! The servers under test: the poll (`honey up`) and the native baseline, each killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

#[derive(Clone)]
pub struct PollOptions {
    pub honey: PathBuf,
    pub db_url: String,
    pub db_host: String,
    pub redis_url: String,
    pub redis_host: String,
    pub redis_prefix: String,
    pub extra_args: Vec<String>,
    pub cache_dir: Option<PathBuf>,
}

/// A running server.
pub struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The poll on our runtime.
pub struct Poll {
    server: Server,
    /// From spawning the process to its first answered `GET /health`.
    pub ready_after: Duration,
    /// How long that first request took once the listener was up.
    pub first_request: Duration,
}

impl Poll {
    pub fn start(o: &PollOptions) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut cmd = Command::new(&o.honey);
        cmd.args(["up", "-f", "spin.toml"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            // The app as deployed: the repo's runtime config (five PostgreSQL slots).
            .args(["--runtime-config-file", "runtime-config.toml"])
            .args(&o.extra_args)
            .env("SPIN_VARIABLE_DB_URL", &o.db_url)
            .env("SPIN_VARIABLE_DB_HOST", &o.db_host)
            .env("SPIN_VARIABLE_REDIS_URL", &o.redis_url)
            .env("SPIN_VARIABLE_REDIS_HOST", &o.redis_host)
            .env("SPIN_VARIABLE_REDIS_PREFIX", &o.redis_prefix)
            // One load generator on loopback is one client: the limit would refuse it.
            .env("SPIN_VARIABLE_VOTE_RATE_LIMIT", "off")
            // Measure the serving path, not the log: at saturation the runtime would log every
            // wait for a PostgreSQL slot.
            .env("HONEY_LOG", "error");
        match &o.cache_dir {
            Some(dir) => cmd.arg("--cache-dir").arg(dir),
            None => cmd.arg("--no-cache"),
        };
        let started = Instant::now();
        let server = spawn(cmd, "honey", port)?;
        let (ready_after, first_request) = wait_until_healthy(&server, started)?;
        Ok(Self {
            server,
            ready_after,
            first_request,
        })
    }

    pub fn base(&self) -> String {
        self.server.base()
    }
}

/// The native baseline.
pub struct Native {
    server: Server,
}

impl Native {
    pub fn start(
        bin: &Path,
        db_url: &str,
        redis_url: &str,
        prefix: &str,
        pool_size: usize,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--db-url", db_url, "--redis-url", redis_url])
            .args(["--redis-prefix", prefix])
            .args(["--pool-size", &pool_size.to_string()]);
        let server = spawn(cmd, "native-vote", port)?;
        wait_until_healthy(&server, Instant::now())?;
        Ok(Self { server })
    }

    pub fn base(&self) -> String {
        self.server.base()
    }
}

fn spawn(mut cmd: Command, name: &str, port: u16) -> anyhow::Result<Server> {
    // A backtrace captured for every internal error (wasmtime makes one per finished guest
    // task) is a debugging aid no deployment runs with.
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    let log = std::env::temp_dir().join(format!("honey-bench-{name}-{port}.log"));
    let file = std::fs::File::create(&log).context("creating a log file")?;
    cmd.stdout(Stdio::null()).stderr(file);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {} (run ./dev build first)", name))?;
    Ok(Server { child, port, log })
}

/// Polls `GET /health` until it answers 200; returns the time since `started` and how long the
/// first request sent to an open listener took.
fn wait_until_healthy(server: &Server, started: Instant) -> anyhow::Result<(Duration, Duration)> {
    let deadline = started + Duration::from_secs(120);
    let mut first: Option<Duration> = None;
    loop {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            bail!("{} did not become healthy: {log}", server.base());
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", server.port)) {
            let sent = Instant::now();
            let ok = health_ok(&mut stream);
            let took = sent.elapsed();
            first.get_or_insert(took);
            if ok {
                return Ok((started.elapsed(), first.unwrap_or(took)));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn health_ok(stream: &mut TcpStream) -> bool {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(free_port::free_port()?)
}
