//! Shared test harness: runs the real `honey` runtime binary on the repo's `spin.toml` against the
//! test run's own PostgreSQL database and Redis key prefix (set up by `./dev test`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `./dev test`, which prepares the database")
    })
}

pub fn database_url() -> String {
    env("HONEY_TEST_DATABASE_URL")
}

pub fn redis_url() -> String {
    env("HONEY_TEST_REDIS_URL")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `honey up`, killed on drop. Its stderr is collected for assertions on logs.
pub struct Runtime {
    child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

pub struct RuntimeBuilder {
    manifest: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    prefix: String,
}

impl RuntimeBuilder {
    pub fn new() -> Self {
        let prefix = format!(
            "{}{}:",
            std::env::var("HONEY_TEST_REDIS_PREFIX").unwrap_or_else(|_| "honey-test:".into()),
            unique()
        );
        Self {
            manifest: repo().join("spin.toml"),
            args: Vec::new(),
            envs: Vec::new(),
            prefix,
        }
    }

    pub fn manifest(mut self, path: impl AsRef<Path>) -> Self {
        self.manifest = path.as_ref().to_owned();
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn var(mut self, name: &str, value: impl Into<String>) -> Self {
        self.envs.push((
            format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
            value.into(),
        ));
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The standard wiring to this run's database and Redis.
    pub fn with_stores(self) -> Self {
        let p = self.prefix.clone();
        self.var("db_url", database_url())
            .var("db_host", env("HONEY_TEST_DB_HOST"))
            .var("redis_url", redis_url())
            .var("redis_host", env("HONEY_TEST_REDIS_HOST"))
            .var("redis_prefix", p)
    }

    pub fn spawn(self) -> Runtime {
        self.try_spawn().unwrap_or_else(|(msg, _)| panic!("{msg}"))
    }

    /// Starts the runtime and waits until it serves; on failure returns its stderr.
    pub fn try_spawn(self) -> Result<Runtime, (String, Vec<String>)> {
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_honey"));
        cmd.current_dir(repo())
            .arg("up")
            .arg("-f")
            .arg(&self.manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "HONEY_LOG",
                std::env::var("HONEY_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn honey");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let l = logs.lock().unwrap().clone();
                return Err((format!("honey exited with {status}: {}", l.join("\n")), l));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let l = logs.lock().unwrap().clone();
                return Err((
                    format!("honey did not start listening: {}", l.join("\n")),
                    l,
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(Runtime { child, base, logs })
    }
}

impl Default for RuntimeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn pg() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
}

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis")
}

/// Deletes every Redis key under `prefix` (tests clean up after themselves).
pub async fn redis_cleanup(prefix: &str) {
    let mut r = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut r)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut r).await;
    }
}
