//! Shared test harness: runs the real `honey` runtime binary on the repo's `spin.toml` against
//! real PostgreSQL and Redis. `./dev test` prepares one migrated and seeded database per run;
//! every runtime a test starts gets its own copy of it (and its own Redis key prefix), so tests
//! run in parallel without seeing each other's votes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
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

/// The run's migrated and seeded database. Tests never connect to it: it is the template their
/// own databases are copied from, and PostgreSQL copies only databases nobody is connected to.
pub fn template_database() -> String {
    env("HONEY_TEST_TEMPLATE_DB")
}

/// A maintenance connection string on the test server (database `postgres`).
pub fn admin_url() -> String {
    env("HONEY_TEST_PG_ADMIN_URL")
}

fn psql(sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .arg(admin_url())
        .args(["-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A database of this test's own, copied from the run's seeded template and
/// dropped again when this value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn create() -> Self {
        let template = template_database();
        // Named after the run's template, so `./dev test` can drop leftovers of its
        // own run (a killed test) without touching a concurrent run's.
        let name = format!("{template}_c{}", unique().replace('-', "_"));
        // Concurrent copies of one template can trip over each other; a few
        // retries spread them out.
        let mut last = String::new();
        for attempt in 0..20 {
            match psql(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY"
            )) {
                Ok(_) => {
                    last.clear();
                    break;
                }
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(100 + 50 * attempt));
                }
            }
        }
        assert!(last.is_empty(), "cannot copy the test database: {last}");
        // Per-database settings are not part of the copy: carry the
        // template's (its statement_timeout) over.
        let settings = psql(&format!(
            "SELECT array_to_string(setconfig, E'\\n') FROM pg_db_role_setting s \
             JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '{template}' AND s.setrole = 0"
        ))
        .expect("read the template's settings");
        for setting in settings.lines().filter(|l| !l.is_empty()) {
            let (key, value) = setting.split_once('=').expect("key=value");
            psql(&format!("ALTER DATABASE \"{name}\" SET {key} = '{value}'"))
                .expect("copy a database setting");
        }
        let url = admin_url().rsplit_once('/').map_or_else(
            || panic!("HONEY_TEST_PG_ADMIN_URL has no database part"),
            |(base, _)| format!("{base}/{name}"),
        );
        TestDb { name, url }
    }

    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Err(e) = psql(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        )) {
            eprintln!("cannot drop test database {}: {e}", self.name);
        }
    }
}

pub fn redis_url() -> String {
    env("HONEY_TEST_REDIS_URL")
}

/// A port for a server a test starts with its port given up front (a private PostgreSQL, a
/// metrics listener); see the `free-port` crate for why not port 0.
pub fn free_port() -> u16 {
    free_port::free_port().expect("a free port")
}

/// A running `honey up`, killed on drop. Its stderr is collected for assertions on logs.
pub struct Runtime {
    child: Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    prefix: String,
    // Dropped after the child is killed (field order), so nothing is connected.
    db: Option<TestDb>,
}

pub struct RuntimeBuilder {
    manifest: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    prefix: String,
    db: Option<TestDb>,
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
            db: None,
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

    /// The standard wiring: a fresh copy of the seeded database, this run's Redis and a key
    /// prefix of this runtime's own.
    pub fn with_stores(mut self) -> Self {
        let db = TestDb::create();
        let url = db.url.clone();
        self.db = Some(db);
        let p = self.prefix.clone();
        self.var("db_url", url)
            .var("db_host", env("HONEY_TEST_DB_HOST"))
            .var("redis_url", redis_url())
            .var("redis_host", env("HONEY_TEST_REDIS_HOST"))
            .var("redis_prefix", p)
    }

    /// The repo's runtime config: five PostgreSQL connection slots.
    pub fn with_five_slots(self) -> Self {
        self.arg("--runtime-config-file")
            .arg(repo().join("runtime-config.toml").display().to_string())
    }

    pub fn spawn(self) -> Runtime {
        self.try_spawn().unwrap_or_else(|(msg, _)| panic!("{msg}"))
    }

    /// Starts the runtime and waits until it serves; on failure returns its stderr.
    pub fn try_spawn(self) -> Result<Runtime, (String, Vec<String>)> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_honey"));
        cmd.current_dir(repo())
            .arg("up")
            .arg("-f")
            .arg(&self.manifest)
            // Port 0: the kernel picks a free port and the runtime prints it, as `spin up` does.
            .arg("--listen")
            .arg("127.0.0.1:0")
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
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                let l = logs.lock().unwrap().clone();
                return Err((format!("honey exited with {status}: {}", l.join("\n")), l));
            }
            let serving = logs.lock().unwrap().iter().find_map(|l| {
                l.strip_prefix("Serving ")
                    .map(|url| url.trim().trim_end_matches('/').to_owned())
            });
            if let Some(base) = serving {
                break base;
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
        };
        Ok(Runtime {
            child,
            base,
            logs,
            prefix: self.prefix,
            db: self.db,
        })
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

    /// Stops the runtime as Ctrl-C in a terminal or a Kubernetes rollout does (SIGTERM) and
    /// waits up to 10 s for it to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for honey") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "honey did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log once a line contains `needle`, waiting up to 5 s: the runtime writes a line before
    /// it answers, but the thread that collects its output may read it a moment later. Returns
    /// the log either way (the caller's assertion says what was missing).
    pub async fn logs_when(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs().join("\n");
            if logs.contains(needle) || Instant::now() > deadline {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This runtime's own database.
    pub fn db(&self) -> &TestDb {
        self.db.as_ref().expect("started with with_stores()")
    }

    pub async fn pg(&self) -> tokio_postgres::Client {
        self.db().connect().await
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let prefix = self.prefix.clone();
        // Redis keys go with the runtime, whether or not the test got to its end.
        std::thread::spawn(move || {
            if let Ok(client) = redis::Client::open(redis_url())
                && let Ok(mut conn) = client.get_connection()
            {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{prefix}*"))
                    .query(&mut conn)
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
                }
            }
        })
        .join()
        .ok();
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

/// The runtime's own metrics (`--metrics-listen`).
pub struct HostMetrics {
    url: String,
}

impl HostMetrics {
    pub fn new(port: u16) -> Self {
        Self {
            url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    pub async fn text(&self) -> String {
        client()
            .get(&self.url)
            .send()
            .await
            .expect("runtime metrics answer")
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample, `name{labels}` exactly as rendered; 0 when absent.
    pub async fn value(&self, series: &str) -> f64 {
        sample(&self.text().await, series)
    }

    /// Polls until `series` has `want`, for up to `within`; returns the last value seen.
    pub async fn wait_for(&self, series: &str, want: f64, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let v = self.value(series).await;
            if v == want || Instant::now() > deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The value of `series` in Prometheus text; 0 when absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// A copy of the repo's manifest in a temp dir, with paths made absolute and `edit` applied.
pub fn manifest_variant(
    name: &str,
    edit: impl FnOnce(String) -> String,
) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(name);
    let root = repo();
    let text = std::fs::read_to_string(root.join("spin.toml")).unwrap();
    let text = text
        .replace(
            "source = \"target/",
            &format!("source = \"{}/target/", root.display()),
        )
        .replace(
            "source = \"static\"",
            &format!("source = \"{}/static\"", root.display()),
        );
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, edit(text)).unwrap();
    (dir, path)
}

pub mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("honey-{name}-{}", super::unique()));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The repo's app with the talk's fix applied to the referral component (built by `./dev build`
/// from components/referral/fix/).
pub fn fixed_manifest() -> (tempdir::Dir, PathBuf) {
    manifest_variant("fixed", |t| {
        t.replace("release/referral.wasm", "release/referral_fixed.wasm")
    })
}

/// The app's own `/metrics` (what Prometheus scrapes).
pub async fn app_metrics(rt: &Runtime) -> String {
    client()
        .get(rt.url("/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .unwrap()
}

/// The app's `/metrics` once `series` reads `want`, polling for up to 3 s: components write
/// their observations just after answering, so the last few land a moment later. Returns the
/// last text read either way (the caller's assertions say what was wrong).
pub async fn metrics_when(rt: &Runtime, series: &str, want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = app_metrics(rt).await;
        if sample(&text, series) == want || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs a vote; returns status, body and how long the answer took.
pub async fn vote(
    rt: &Runtime,
    choice: &str,
    referral: Option<&str>,
) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let mut body = serde_json::json!({ "choice": choice });
    if let Some(code) = referral {
        body["referral"] = code.into();
    }
    let r = client()
        .post(rt.url("/vote"))
        .json(&body)
        .send()
        .await
        .expect("an answer");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, started.elapsed())
}
