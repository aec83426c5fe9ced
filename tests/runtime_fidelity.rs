//! The runtime treats PostgreSQL connections and instances the way Spin (main, ≥ 4.1) does, so
//! what the talk rehearses locally happens on stage: one `[outbound_pg] max_connections` pool per
//! app, permits held by connection resources and returned when the resource or its instance is
//! dropped, unbounded waits, a clean session for every guest that gets a pooled backend, and
//! WASIp3 instance reuse (128 requests, 16 at once, 1 s idle).
//!
//! These use the probe component (tests/guests/probe), which keeps connections in a static.

mod common;

use std::time::Duration;

use common::{HostMetrics, RuntimeBuilder, client, free_port, repo};

const IN_USE: &str = "honey_runtime_pg_permits_in_use";
const WAITERS: &str = "honey_runtime_pg_permit_waiters";

struct Probe {
    rt: common::Runtime,
    host: HostMetrics,
    // Holds the probe's runtime config; removed when the probe is dropped.
    _dir: common::tempdir::Dir,
}

/// The probe app with a runtime config of `slots` connections and extra runtime flags.
fn probe(slots: Option<usize>, flags: &[&str]) -> Probe {
    let metrics_port = free_port();
    let dir = common::tempdir::Dir::new("probe");
    let mut b = RuntimeBuilder::new()
        .manifest(repo().join("tests/guests/probe/spin.toml"))
        .with_stores()
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"));
    if let Some(n) = slots {
        let rc = dir.path().join("runtime-config.toml");
        std::fs::write(&rc, format!("[outbound_pg]\nmax_connections = {n}\n")).unwrap();
        b = b.arg("--runtime-config-file").arg(rc.display().to_string());
    }
    for f in flags {
        b = b.arg(*f);
    }
    Probe {
        rt: b.spawn(),
        host: HostMetrics::new(metrics_port),
        _dir: dir,
    }
}

/// What the probe answered: (instance id, requests it served, connections it holds).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    instance: String,
    served: u64,
    held: usize,
}

impl Probe {
    async fn get(&self, path: &str) -> (u16, String) {
        let r = client().get(self.rt.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn seen(&self, path: &str) -> Seen {
        let (status, text) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {text}");
        let mut parts = text.split(' ');
        Seen {
            instance: parts.next().unwrap().to_owned(),
            served: parts.next().unwrap().parse().unwrap(),
            held: parts.next().unwrap().parse().unwrap(),
        }
    }

    fn logs(&self) -> String {
        self.rt.logs().join("\n")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn five_held_connections_make_the_sixth_open_wait_until_one_is_dropped() {
    let p = probe(Some(5), &[]);
    let mut first = None;
    for n in 1..=5 {
        let seen = p.seen("/a/hold").await;
        assert_eq!(seen.held, n, "one instance keeps them all");
        first.get_or_insert(seen.instance);
    }
    assert_eq!(p.host.value(IN_USE).await, 5.0);

    // The sixth open waits: no deadline by default, as in Spin.
    let sixth = tokio::spawn({
        let url = p.rt.url("/a/hold");
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    assert_eq!(
        p.host.wait_for(WAITERS, 1.0, Duration::from_secs(5)).await,
        1.0
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!sixth.is_finished(), "the sixth open must still be waiting");
    assert!(
        p.logs()
            .contains("waiting for a free connection slot component=probe-a")
    );

    // Dropping one connection resource returns its permit, and the waiter gets it.
    let released = p.seen("/a/release").await;
    assert_eq!(released.instance, *first.as_ref().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(5), sixth)
        .await
        .expect("the waiting open proceeds once a permit is back")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(p.host.value(WAITERS).await, 0.0);
    assert_eq!(p.host.value(IN_USE).await, 5.0);
    let logs =
        p.rt.logs_when("postgres permit: slot came free component=probe-a")
            .await;
    assert!(
        logs.contains("postgres permit: returned component=probe-a"),
        "{logs}"
    );
    assert!(
        logs.contains("postgres permit: slot came free component=probe-a"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn permits_are_one_pool_for_all_components_of_the_app() {
    let p = probe(Some(5), &[]);
    for _ in 0..3 {
        p.seen("/a/hold").await;
    }
    for _ in 0..2 {
        p.seen("/b/hold").await;
    }
    assert_eq!(p.host.value(IN_USE).await, 5.0);
    let waiting = tokio::spawn({
        let url = p.rt.url("/b/hold");
        async move { client().get(url).send().await.map(|r| r.status().as_u16()) }
    });
    assert_eq!(
        p.host.wait_for(WAITERS, 1.0, Duration::from_secs(5)).await,
        1.0
    );
    // A release in the *other* component frees the slot the waiter needs.
    p.seen("/a/release").await;
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("a permit from component a serves component b")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_an_instance_returns_every_permit_it_held() {
    let p = probe(Some(5), &[]);
    for _ in 0..3 {
        p.seen("/a/hold").await;
    }
    assert_eq!(p.host.value(IN_USE).await, 3.0);
    assert_eq!(
        p.host
            .value("honey_runtime_instances{component=\"probe-a\"}")
            .await,
        1.0
    );
    // Idle for the default 1 s: the instance, its statics and their permits go.
    assert_eq!(
        p.host.wait_for(IN_USE, 0.0, Duration::from_secs(5)).await,
        0.0
    );
    assert_eq!(
        p.host
            .value("honey_runtime_instances{component=\"probe-a\"}")
            .await,
        0.0
    );
    let next = p.seen("/a/id").await;
    assert_eq!((next.served, next.held), (1, 0), "a fresh instance");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_reaches_the_next_guest_with_its_session_reset() {
    // As Spin's host pool (deadpool's `RecyclingMethod::Clean`): whatever one guest leaves in
    // its session — a setting, an advisory lock, a temp table — is gone before another guest
    // gets the backend.
    let p = probe(None, &[]);
    let mut backends = std::collections::HashMap::<String, usize>::new();
    for i in 0..12 {
        let (status, text) = p.get("/a/session").await;
        assert_eq!(status, 200, "{text}");
        let (backend, rest) = text.split_once(' ').unwrap();
        assert_eq!(rest, "app= locks=0 temp=false", "request {i} on {backend}");
        *backends.entry(backend.to_owned()).or_default() += 1;
        // Gives the background reset of the backend just given back time to finish, so the
        // pool hands that backend out again instead of opening another.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Otherwise every guest got a new backend and nothing was proven.
    assert!(
        backends.values().any(|&n| n > 1),
        "no backend was handed out twice: {backends:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_runtime_drops_live_instances_without_a_warning() {
    // The speaker stops `./dev up` with Ctrl-C while instances are alive (one holding a
    // connection, as a leaked handle does): that is no failure, and the terminal must not show a
    // warning with a backtrace as if it were.
    let mut p = probe(Some(5), &[]);
    p.seen("/a/hold").await;
    p.seen("/b/id").await;
    let status = p.rt.terminate();
    assert!(status.success(), "honey exited with {status}");
    let logs = p.rt.logs_when("shutting down").await;
    assert!(logs.contains("shutting down"), "{logs}");
    for alarming in ["WARN", "ERROR", "panicked", "backtrace"] {
        assert!(!logs.contains(alarming), "{alarming} in the log:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_connection_lives_exactly_as_long_as_its_instance_under_the_idle_timeout() {
    // Non-default idle timeout: 3 s.
    let p = probe(None, &["--idle-instance-timeout", "3s"]);
    let held = p.seen("/a/hold").await;
    // Requests every 500 ms keep the instance (and the connection) alive past 3 s.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let seen = p.seen("/a/id").await;
        assert_eq!(seen.instance, held.instance);
        assert_eq!(seen.held, 1);
        assert_eq!(p.host.value(IN_USE).await, 1.0);
    }
    // 2 s idle is not enough to retire it…
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(p.host.value(IN_USE).await, 1.0);
    // …3 s is.
    assert_eq!(
        p.host.wait_for(IN_USE, 0.0, Duration::from_secs(3)).await,
        0.0
    );
    let after = p.seen("/a/id").await;
    assert_ne!(after.instance, held.instance);
    assert_eq!(after.held, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_static_connection_is_returned_when_the_reuse_count_retires_its_instance() {
    let p = probe(None, &["--max-instance-reuse-count", "3"]);
    let first = p.seen("/a/hold").await;
    assert_eq!(p.seen("/a/id").await.instance, first.instance);
    let third = p.seen("/a/id").await;
    assert_eq!(
        (third.instance.as_str(), third.served),
        (first.instance.as_str(), 3)
    );
    // Its third request was its last: the instance is retired with its connection, long before
    // the idle timeout would have done it.
    assert_eq!(
        p.host
            .wait_for(IN_USE, 0.0, Duration::from_millis(900))
            .await,
        0.0
    );
    let fourth = p.seen("/a/id").await;
    assert_ne!(fourth.instance, first.instance);
    assert_eq!(fourth.served, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn default_reuse_count_is_128_requests() {
    let p = probe(None, &[]);
    let first = p.seen("/a/hold").await;
    for n in 2..=128 {
        let seen = p.seen("/a/id").await;
        assert_eq!(
            (seen.instance.as_str(), seen.served),
            (first.instance.as_str(), n)
        );
    }
    let after = p.seen("/a/id").await;
    assert_ne!(
        after.instance, first.instance,
        "the 129th request gets a new instance"
    );
    assert_eq!(
        p.host.wait_for(IN_USE, 0.0, Duration::from_secs(1)).await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sixteen_concurrent_requests_share_an_instance_and_the_seventeenth_gets_another() {
    let p = probe(None, &[]);
    let mut tasks = Vec::new();
    for _ in 0..17 {
        let url = p.rt.url("/a/sleep?ms=3000");
        tasks.push(tokio::spawn(async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }));
        // One at a time, each already asleep in the guest when the next arrives, so the
        // placement is decided by the concurrency limit alone.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let mut by_instance = std::collections::BTreeMap::<String, usize>::new();
    let mut order = Vec::new();
    for t in tasks {
        let id = t.await.unwrap().split(' ').next().unwrap().to_owned();
        *by_instance.entry(id.clone()).or_default() += 1;
        order.push(id);
    }
    assert_eq!(by_instance.len(), 2, "{by_instance:?}");
    assert_eq!(by_instance[&order[0]], 16, "{by_instance:?}");
    assert_ne!(order[16], order[0], "the 17th went to a second instance");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrency_limit_follows_its_flag() {
    let p = probe(None, &["--max-instance-concurrent-reuse-count", "2"]);
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let url = p.rt.url("/a/sleep?ms=1500");
        tasks.push(tokio::spawn(async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }));
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let ids: Vec<String> = futures_ids(tasks).await;
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[2], ids[0]);
}

async fn futures_ids(tasks: Vec<tokio::task::JoinHandle<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().split(' ').next().unwrap().to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_timeout_is_off_by_default_and_applies_when_given() {
    let p = probe(None, &[]);
    let (status, _) = p.get("/a/sleep?ms=2500").await;
    assert_eq!(status, 200, "no deadline by default");

    let p = probe(None, &["--request-timeout", "1s"]);
    let (status, _) = p.get("/a/sleep?ms=2500").await;
    assert_eq!(
        status, 500,
        "a guest past its deadline gets no answer of its own"
    );
    let (status, _) = p.get("/a/sleep?ms=10").await;
    assert_eq!(status, 200, "the next request gets a fresh instance");
}

#[tokio::test(flavor = "multi_thread")]
async fn compiled_components_are_cached_across_restarts() {
    let cache = std::env::temp_dir().join(format!("honey-cache-{}", common::unique()));
    let start = || {
        RuntimeBuilder::new()
            .manifest(repo().join("tests/guests/probe/spin.toml"))
            .with_stores()
            .arg("--cache-dir")
            .arg(cache.display().to_string())
            .spawn()
    };
    let first = start();
    let logs = first.logs().join("\n");
    // The first component compiles; the second is the same wasm and finds it cached.
    assert_eq!(logs.matches("compile cache: miss").count(), 1, "{logs}");
    assert_eq!(logs.matches("compile cache: hit").count(), 1, "{logs}");
    drop(first);
    let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(
        cached.len(),
        1,
        "one entry: both components are the same wasm"
    );

    let second = start();
    let r = client().get(second.url("/a/id")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let logs = second.logs().join("\n");
    assert_eq!(logs.matches("compile cache: miss").count(), 0, "{logs}");
    assert_eq!(logs.matches("compile cache: hit").count(), 2, "{logs}");
    let _ = std::fs::remove_dir_all(&cache);
}
