//! The app's own `/metrics`: valid Prometheus text (checked by `promtool check metrics`), counts
//! equal to the requests actually made, bounded labels, and a pool gauge that agrees with the
//! runtime's semaphore.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    HostMetrics, RuntimeBuilder, app_metrics, client, free_port, metrics_when, sample, vote,
};

/// `promtool check metrics` reads the exposition on stdin and fails on malformed text.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // Lint findings (exit 3) are style advice; only a parse error fails (exit 1).
    assert_ne!(
        out.status.code(),
        Some(1),
        "promtool rejects /metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_count_exactly_the_requests_made() {
    let rt = RuntimeBuilder::new().with_stores().spawn();
    let c = client();
    for i in 0..7 {
        let (status, _, _) = vote(&rt, ["print", "ai"][i % 2], None).await;
        assert_eq!(status, 200);
    }
    for _ in 0..3 {
        let (status, _, _) = vote(&rt, "nope", None).await;
        assert_eq!(status, 400);
    }
    for _ in 0..4 {
        assert_eq!(c.get(rt.url("/votes")).send().await.unwrap().status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(c.get(rt.url("/health")).send().await.unwrap().status(), 200);
    }
    // Attacker-chosen paths must not become label values.
    for path in ["/wp-admin/x\"y", "/%0aevil", "/static/nope.js"] {
        let r = c.get(rt.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    // Each component writes its observations just after answering: wait until every
    // instance's have landed, then everything must match exactly.
    let mut text = String::new();
    for (series, want) in [
        (
            "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"200\"}",
            7.0,
        ),
        (
            "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"400\"}",
            3.0,
        ),
        (
            "http_requests_total{method=\"GET\",endpoint=\"/votes\",status=\"200\"}",
            4.0,
        ),
        (
            "http_requests_total{method=\"GET\",endpoint=\"/health\",status=\"200\"}",
            2.0,
        ),
    ] {
        text = metrics_when(&rt, series, want).await;
    }
    promtool_accepts(&text);
    let vote_ok = "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"200\"}";
    assert_eq!(sample(&text, vote_ok), 7.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"400\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "http_requests_total{method=\"GET\",endpoint=\"/votes\",status=\"200\"}"
        ),
        4.0
    );
    assert_eq!(
        sample(
            &text,
            "http_requests_total{method=\"GET\",endpoint=\"/health\",status=\"200\"}"
        ),
        2.0
    );
    // The histogram agrees with the counters.
    assert_eq!(
        sample(
            &text,
            "http_request_duration_seconds_count{method=\"POST\",endpoint=\"/vote\"}"
        ),
        10.0
    );
    assert_eq!(
        sample(
            &text,
            "http_request_duration_seconds_bucket{method=\"POST\",endpoint=\"/vote\",le=\"+Inf\"}"
        ),
        10.0
    );
    for bad in ["wp-admin", "evil", "nope.js"] {
        assert!(!text.contains(bad), "{bad} leaked into a label: {text}");
    }
    assert_eq!(sample(&text, "db_pool_size"), 5.0);
    assert_eq!(sample(&text, "db_pool_checked_out"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_gauge_follows_the_runtime_and_forgets_an_instance_that_is_gone() {
    // A referral vote keeps its connections in the referral component's pool for a moment
    // (and, with the bug, one of them for good). The app's gauge must see exactly what the
    // runtime's semaphore sees.
    let port = free_port();
    // A prefix of the test's own, so that stopping the first runtime (whose clean-up removes
    // its own prefix's keys) leaves the gauge entry to expire by itself.
    let shared = format!("{}shared:", RuntimeBuilder::new().prefix());
    let rt = RuntimeBuilder::new()
        .with_stores()
        .var("redis_prefix", shared.clone())
        .with_five_slots()
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .spawn();
    let host = HostMetrics::new(port);
    let (status, _, _) = vote(&rt, "ai", Some("conf-partner-2026")).await;
    assert_eq!(status, 200);
    // One leaked lease stays; the idle one is closed by the reaper within a second.
    assert_eq!(
        host.wait_for(
            "honey_runtime_pg_permits_in_use",
            1.0,
            Duration::from_secs(3)
        )
        .await,
        1.0
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    loop {
        let text = app_metrics(&rt).await;
        if sample(&text, "db_pool_checked_out") == 1.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pool: serde_json::Value = client()
        .get(rt.url("/pool"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pool["checked_out"], 1);
    assert_eq!(pool["size"], 5);
    assert_eq!(pool["failing"], false);

    // The process holding the leak dies (a pod is replaced): its entry expires on its own.
    drop(rt);
    let rt2 = RuntimeBuilder::new()
        .with_stores()
        .var("redis_prefix", shared.clone())
        .spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sample(&app_metrics(&rt2).await, "db_pool_checked_out") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a gone instance stops counting"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    common::redis_cleanup(&shared).await;
}
