//! No vote lost, none invented: a vote answered 200 is a row in PostgreSQL and counted in
//! Redis; any other answer leaves it in neither; counts Redis lost are rebuilt from PostgreSQL
//! without counting anything twice.
//!
//! The fault tests start throwaway PostgreSQL and Redis servers of their own (so stopping and
//! restarting them disturbs nothing else on the machine) and run with the rate limit off.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Runtime, RuntimeBuilder, client, free_port};
use serde_json::Value;

const CHOICES: [&str; 5] = ["print", "stare", "ai", "revert", "restart"];

// ---------------------------------------------------------------------------------------------
// Throwaway servers

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The PostgreSQL binaries: on PATH, else the newest /usr/lib/postgresql/*/bin (as `./dev`).
fn pg_bin() -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
        && out.status.success()
    {
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if let Some(dir) = path.parent()
            && dir.join("initdb").exists()
        {
            return dir.to_owned();
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.retain(|d| d.join("pg_ctl").exists() && d.join("initdb").exists());
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
        .expect("no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql")
}

/// A PostgreSQL cluster in a temp dir on a free port, fsync off; removed on drop.
struct PrivatePg {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    root: bool,
}

impl PrivatePg {
    fn start() -> Self {
        let root = is_root();
        let dir = std::env::temp_dir().join(format!("honey-fault-pg-{}", common::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        if root {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            run(
                Command::new("chown").arg("postgres").arg(&dir),
                "chown the PostgreSQL dir",
            );
        }
        let pg = PrivatePg {
            dir,
            bin: pg_bin(),
            port: free_port(),
            root,
        };
        run(
            pg.cmd("initdb")
                .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
                .arg(pg.data()),
            "initdb",
        );
        pg.pg_ctl("start");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates database `honey`, runs every migration and seed with psql (as `./dev` does).
    fn migrate_and_seed(&self) -> String {
        run(
            Command::new("psql")
                .arg(self.url("postgres"))
                .args(["-qc", "CREATE DATABASE honey"]),
            "create database",
        );
        let url = self.url("honey");
        for dir in ["migrations", "seed"] {
            let mut files: Vec<PathBuf> = std::fs::read_dir(common::repo().join(dir))
                .unwrap()
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sql"))
                .collect();
            files.sort();
            for f in files {
                run(
                    Command::new("psql")
                        .arg(&url)
                        .args(["-v", "ON_ERROR_STOP=1", "-q", "-f"])
                        .arg(&f)
                        .stdout(Stdio::null()),
                    &format!("psql -f {}", f.display()),
                );
            }
        }
        url
    }

    /// The server's options, given again at every start: unlike `restart`, a `pg_ctl start`
    /// does not remember them (it would try the default port and socket directory).
    fn options(&self) -> String {
        format!(
            "-h 127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.display()
        )
    }

    fn pg_ctl(&self, action: &str) {
        run(
            self.cmd("pg_ctl")
                .args(["-w", "-m", "fast", "-D"])
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-o", &self.options(), action]),
            &format!("pg_ctl {action}"),
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` on a free port, nothing persisted (a restart loses everything, as a
/// restarted Redis pod without a volume does).
struct PrivateRedis {
    child: Option<Child>,
    port: u16,
}

impl PrivateRedis {
    fn start() -> Self {
        let mut r = PrivateRedis {
            child: None,
            port: free_port(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL: no goodbye to its clients).
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

struct Private {
    pg: PrivatePg,
    redis: PrivateRedis,
    db_url: String,
}

impl Private {
    fn start() -> Self {
        let pg = PrivatePg::start();
        let db_url = pg.migrate_and_seed();
        Private {
            pg,
            redis: PrivateRedis::start(),
            db_url,
        }
    }

    /// The app on these servers, rate limit off.
    fn runtime(&self) -> Runtime {
        RuntimeBuilder::new()
            .var("db_url", &self.db_url)
            .var("db_host", self.pg.host())
            .var("redis_url", self.redis.url())
            .var("redis_host", self.redis.host())
            .var("redis_prefix", "honey:")
            .var("vote_rate_limit", "off")
            .spawn()
    }

    async fn pg(&self) -> tokio_postgres::Client {
        connect(&self.db_url).await
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client
}

// ---------------------------------------------------------------------------------------------
// What the stores say

async fn rows_per_choice(pg: &tokio_postgres::Client) -> [i64; 5] {
    let mut out = [0; 5];
    for row in pg
        .query("SELECT choice, count(*) FROM votes GROUP BY choice", &[])
        .await
        .unwrap()
    {
        let choice: String = row.get(0);
        let n: i64 = row.get(1);
        let i = CHOICES
            .iter()
            .position(|c| *c == choice)
            .expect("a known choice");
        out[i] = n;
    }
    out
}

/// `GET /votes` per choice, waiting out a rebuild in progress (503) for a while.
async fn counted(rt: &Runtime) -> [i64; 5] {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = client().get(rt.url("/votes")).send().await;
        if let Ok(r) = r
            && r.status() == 200
        {
            let body: Value = r.json().await.unwrap();
            return CHOICES.map(|c| body[c]["count"].as_i64().expect("a count"));
        }
        assert!(Instant::now() < deadline, "GET /votes never answered 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn post_vote(c: &reqwest::Client, rt: &Runtime, choice: &str) -> (u16, Value) {
    let r = c
        .post(rt.url("/vote"))
        .json(&serde_json::json!({ "choice": choice }))
        .send()
        .await
        .expect("an answer");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Redis down / PostgreSQL down, one vote at a time

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_refuses_votes_with_503_and_stores_nothing_then_counts_are_rebuilt() {
    let mut s = Private::start();
    let rt = s.runtime();
    let c = client();
    let pg = s.pg().await;
    for choice in ["print", "print", "ai"] {
        assert_eq!(post_vote(&c, &rt, choice).await.0, 200);
    }

    s.redis.kill();
    for choice in CHOICES {
        let (status, body) = post_vote(&c, &rt, choice).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body, serde_json::json!({"detail": "Redis unavailable"}));
    }
    assert_eq!(
        rows_per_choice(&pg).await,
        [2, 0, 1, 0, 0],
        "a vote refused because Redis is down is not in PostgreSQL either"
    );

    // Back, empty: the first reader rebuilds the counts from PostgreSQL.
    s.redis.spawn();
    assert_eq!(counted(&rt).await, [2, 0, 1, 0, 0]);
    assert_eq!(post_vote(&c, &rt, "ai").await.0, 200);
    assert_eq!(counted(&rt).await, [2, 0, 2, 0, 0]);
    assert_eq!(rows_per_choice(&pg).await, [2, 0, 2, 0, 0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_down_refuses_votes_with_503_and_counts_nothing() {
    let s = Private::start();
    let rt = s.runtime();
    let c = client();
    for choice in ["stare", "revert"] {
        assert_eq!(post_vote(&c, &rt, choice).await.0, 200);
    }
    assert_eq!(counted(&rt).await, [0, 1, 0, 1, 0]);

    s.pg.pg_ctl("stop");
    for choice in CHOICES {
        let (status, body) = post_vote(&c, &rt, choice).await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("Database unavailable")),
            "{body}"
        );
    }
    // Redis still has its valid copy: read it straight, nothing was added.
    assert_eq!(
        counted(&rt).await,
        [0, 1, 0, 1, 0],
        "nothing counted while PostgreSQL was down"
    );

    s.pg.pg_ctl("start");
    // The host's pooled connections died with the server; the first votes after the restart
    // may still meet one (503, nothing stored) before the pool has fresh ones.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = post_vote(&c, &rt, "restart").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "votes do not recover after PostgreSQL is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pg = s.pg().await;
    assert_eq!(rows_per_choice(&pg).await, [0, 1, 0, 1, 1]);
    assert_eq!(counted(&rt).await, [0, 1, 0, 1, 1]);
}

// ---------------------------------------------------------------------------------------------
// Counts lost while votes keep coming

#[tokio::test(flavor = "multi_thread")]
async fn counts_flushed_under_load_are_rebuilt_without_double_counting() {
    let b = RuntimeBuilder::new()
        .with_stores()
        .var("vote_rate_limit", "off");
    let prefix = b.prefix().to_owned();
    let rt = Arc::new(b.spawn());
    let pg = rt.pg().await;
    const VOTES: usize = 600;
    let next = Arc::new(AtomicUsize::new(0));
    let ok: Arc<[AtomicUsize; 5]> = Arc::new(Default::default());

    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (rt, next, ok, c) = (rt.clone(), next.clone(), ok.clone(), client());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= VOTES {
                    break;
                }
                if post_vote(&c, &rt, CHOICES[i % 5]).await.0 == 200 {
                    ok[i % 5].fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // The projector keeps reading (and so rebuilding) while votes land.
    let reader = {
        let (rt, next) = (rt.clone(), next.clone());
        tokio::spawn(async move {
            let c = client();
            while next.load(Ordering::Relaxed) < VOTES {
                let _ = c.get(rt.url("/votes")).send().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Twice, all of the prefix's counts vanish, as in a FLUSHALL.
    let mut redis = common::redis().await;
    for at in [VOTES / 4, VOTES * 3 / 5] {
        while next.load(Ordering::Relaxed) < at {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut keys: Vec<String> = CHOICES
            .iter()
            .map(|c| format!("{prefix}votes:{c}"))
            .collect();
        keys.push(format!("{prefix}counts:ready"));
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    for t in tasks {
        t.await.unwrap();
    }
    reader.await.unwrap();

    let ok = ok.each_ref().map(|n| n.load(Ordering::Relaxed) as i64);
    assert_eq!(
        ok.iter().sum::<i64>(),
        VOTES as i64,
        "every vote answered 200: {ok:?}"
    );
    assert_eq!(rows_per_choice(&pg).await, ok, "PostgreSQL rows");
    assert_eq!(counted(&rt).await, ok, "Redis counts after the rebuilds");
}

// ---------------------------------------------------------------------------------------------
// 20,000 votes, a Redis restart and a PostgreSQL restart

#[derive(Default)]
struct Tally {
    ok: [AtomicUsize; 5],
    unavailable: AtomicUsize,
    other: AtomicUsize,
    no_answer: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_thousand_votes_through_a_redis_and_a_postgres_restart() {
    const VOTES: usize = 20_000;
    const CONCURRENCY: usize = 64;
    let started = Instant::now();
    let mut s = Private::start();
    let rt = Arc::new(s.runtime());
    let setup = started.elapsed();

    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (rt, next, tally, c) = (rt.clone(), next.clone(), tally.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= VOTES {
                    break;
                }
                let sent = c
                    .post(rt.url("/vote"))
                    .json(&serde_json::json!({ "choice": CHOICES[i % 5] }))
                    .send()
                    .await;
                match sent.map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        tally.ok[i % 5].fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Ok(503) => tally.unavailable.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => tally.other.fetch_add(1, Ordering::Relaxed),
                    Err(_) => tally.no_answer.fetch_add(1, Ordering::Relaxed),
                };
                // A phone whose vote failed does not retry in a tight loop either; without
                // this an outage would burn through the whole run in a second.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }

    let wait_for = |n: usize| {
        let next = next.clone();
        async move {
            while next.load(Ordering::Relaxed) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    let failed = |t: &Tally| {
        t.unavailable.load(Ordering::Relaxed)
            + t.other.load(Ordering::Relaxed)
            + t.no_answer.load(Ordering::Relaxed)
    };

    wait_for(VOTES * 3 / 10).await;
    let before = failed(&tally);
    s.redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.redis.spawn();
    let redis_failed = failed(&tally) - before;
    eprintln!("Redis restarted at vote {}", next.load(Ordering::Relaxed));

    wait_for(VOTES * 6 / 10).await;
    let before = failed(&tally);
    // pg_ctl restart -m fast: every session is ended, open transactions are rolled back.
    let pg_dir = s.pg.data();
    let restart = tokio::task::spawn_blocking({
        let mut cmd = s.pg.cmd("pg_ctl");
        cmd.args(["-w", "-m", "fast", "-D"])
            .arg(&pg_dir)
            .arg("-l")
            .arg(Path::new(&pg_dir).with_file_name("log"))
            .arg("restart");
        move || run(&mut cmd, "pg_ctl restart")
    });
    restart.await.unwrap();
    let pg_failed_during = failed(&tally) - before;
    eprintln!(
        "PostgreSQL restarted at vote {}",
        next.load(Ordering::Relaxed)
    );

    for t in tasks {
        t.await.unwrap();
    }
    let load_time = started.elapsed() - setup;

    let ok = tally
        .ok
        .each_ref()
        .map(|n| n.load(Ordering::Relaxed) as i64);
    let pg = s.pg().await;
    let stored = rows_per_choice(&pg).await;
    let counts = counted(&rt).await;
    let unavailable = tally.unavailable.load(Ordering::Relaxed);
    let other = tally.other.load(Ordering::Relaxed);
    let no_answer = tally.no_answer.load(Ordering::Relaxed);
    eprintln!(
        "fault load: sent {VOTES}, answered 200 {} ({ok:?}), 503 {unavailable}, other {other}, \
         no answer {no_answer}; stored {} ({stored:?}); counted {} ({counts:?}); failures around \
         the Redis restart {redis_failed}, around the PostgreSQL restart {pg_failed_during}; \
         setup {setup:.1?}, votes {load_time:.1?}",
        ok.iter().sum::<i64>(),
        stored.iter().sum::<i64>(),
        counts.iter().sum::<i64>(),
    );
    assert_eq!(other, 0, "only 200 or 503 answers");
    assert_eq!(no_answer, 0, "every vote was answered");
    assert!(
        unavailable > 0,
        "the restarts were felt (else this test proves nothing)"
    );
    for (i, choice) in CHOICES.iter().enumerate() {
        assert_eq!(stored[i], ok[i], "{choice}: PostgreSQL rows == 200 answers");
        assert_eq!(counts[i], ok[i], "{choice}: Redis count == 200 answers");
    }
}
