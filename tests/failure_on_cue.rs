//! The planted failure, proven: on the seeded 500k-row table every referral check's key lookup
//! runs into the database's statement_timeout, the buggy referral component loses its
//! connection lease on that error path, and after five referral votes the app's five slots are
//! gone. Plain votes then get a prompt 503, and nothing heals it — not idling, not instance
//! retirement — until the fix (components/referral/fix/) is deployed.

mod common;

use std::time::Duration;

use common::{
    HostMetrics, Runtime, RuntimeBuilder, app_metrics, fixed_manifest, free_port, metrics_when,
    sample, vote,
};

const CODE: &str = "conf-partner-2026";
const IN_USE: &str = "honey_runtime_pg_permits_in_use";

fn start(builder: RuntimeBuilder) -> (Runtime, HostMetrics) {
    let port = free_port();
    let rt = builder
        .with_stores()
        .with_five_slots()
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .spawn();
    (rt, HostMetrics::new(port))
}

/// Five referral votes, one after another, as the first five people to scan the right QR code.
/// Returns their statuses.
async fn leak_five(rt: &Runtime) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body, took) = vote(rt, "ai", Some(CODE)).await;
        assert!(
            status == 200 || status == 503,
            "a referral vote is either counted or refused: {status} {body}"
        );
        // The key lookup always runs to the 3 s statement_timeout first.
        assert!(took >= Duration::from_millis(2900), "took {took:?}");
        statuses.push(status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn five_referral_votes_leak_five_handles_then_plain_votes_get_a_prompt_503() {
    let (rt, host) = start(RuntimeBuilder::new());
    for choice in ["print", "stare", "ai", "revert", "restart"] {
        let (status, body, _) = vote(&rt, choice, None).await;
        assert_eq!(status, 200, "plain votes before the leak succeed: {body}");
    }
    assert_eq!(host.value(IN_USE).await, 0.0);

    let statuses = leak_five(&rt).await;
    // The first four still get their partner credited by the exact-code fallback; the fifth
    // leaks the last slot and finds none left for its fallback.
    assert_eq!(statuses[..4], [200, 200, 200, 200], "{statuses:?}");
    assert_eq!(statuses[4], 503, "{statuses:?}");
    assert_eq!(
        host.value(IN_USE).await,
        5.0,
        "five leaked handles hold all five slots"
    );
    let metrics = metrics_when(&rt, "referral_lookups_total{outcome=\"timed_out\"}", 5.0).await;
    assert_eq!(sample(&metrics, "db_pool_checked_out"), 5.0, "{metrics}");
    assert_eq!(sample(&metrics, "db_pool_size"), 5.0);
    assert_eq!(
        sample(&metrics, "referral_lookups_total{outcome=\"timed_out\"}"),
        5.0,
        "{metrics}"
    );

    // Now a plain vote: an error the audience can see, within the 2 s default wait.
    let (status, body, took) = vote(&rt, "print", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Database unavailable")
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let metrics = metrics_when(
        &rt,
        "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"503\"}",
        2.0,
    )
    .await;
    assert!(
        sample(
            &metrics,
            "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"503\"}"
        ) >= 2.0,
        "the metrics see the 5xx: {metrics}"
    );
    // Nothing of the failed vote is stored.
    let pg = rt.pg().await;
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM votes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rows,
        5 + 4,
        "five plain votes and four credited referral votes"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wait_for_a_slot_is_configurable() {
    let (rt, host) = start(RuntimeBuilder::new().var("db_wait_timeout_ms", "800"));
    leak_five(&rt).await;
    assert_eq!(host.value(IN_USE).await, 5.0);
    let (status, _, took) = vote(&rt, "print", None).await;
    assert_eq!(status, 503);
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_millis(1800),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_failure_persists_across_300_requests_and_five_idle_minutes() {
    let (rt, host) = start(RuntimeBuilder::new());
    leak_five(&rt).await;
    assert_eq!(host.value(IN_USE).await, 5.0);

    // 300 more requests: 130 referral votes (more than one instance's 128 requests, so the
    // leaking instance is retired from new work), 70 plain votes, 100 projector reads.
    let mut tasks = Vec::new();
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(40));
    for i in 0..300 {
        let kind = if i < 130 {
            "referral"
        } else if i < 200 {
            "plain"
        } else {
            "projector"
        };
        let base = rt.url("");
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire().await.unwrap();
            let c = common::client();
            let r = match kind {
                "projector" => c.get(format!("{base}/votes")).send().await,
                "referral" => {
                    c.post(format!("{base}/vote"))
                        .json(&serde_json::json!({"choice": "ai", "referral": CODE}))
                        .send()
                        .await
                }
                _ => {
                    c.post(format!("{base}/vote"))
                        .json(&serde_json::json!({"choice": "print"}))
                        .send()
                        .await
                }
            };
            (kind, r.map(|r| r.status().as_u16()).unwrap_or(0))
        }));
    }
    for t in tasks {
        let (kind, status) = t.await.unwrap();
        match kind {
            "projector" => assert_eq!(status, 200, "the counts stay readable (Redis)"),
            _ => assert_eq!(status, 503, "{kind} vote during the outage"),
        }
    }
    assert_eq!(host.value(IN_USE).await, 5.0);

    // The speaker debugs; nobody votes for five minutes.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(
        host.value(IN_USE).await,
        5.0,
        "idling does not give the slots back"
    );
    let (status, _, _) = vote(&rt, "print", None).await;
    assert_eq!(status, 503, "still failing after five idle minutes");
    let metrics = app_metrics(&rt).await;
    assert_eq!(sample(&metrics, "db_pool_checked_out"), 5.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_fix_ten_times_the_traffic_leaks_nothing_and_fails_nothing() {
    let (_dir, manifest) = fixed_manifest();
    let (rt, host) = start(RuntimeBuilder::new().manifest(&manifest));

    // 50 referral votes, four at a time, while 50 plain votes arrive alongside.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let referral = i % 2 == 0;
        let base = rt.url("");
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = if referral {
                Some(gate.acquire_owned().await.unwrap())
            } else {
                tokio::time::sleep(Duration::from_millis(600 * i as u64 / 2)).await;
                None
            };
            let mut body = serde_json::json!({"choice": "revert"});
            if referral {
                body["referral"] = CODE.into();
            }
            let r = common::client()
                .post(format!("{base}/vote"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (referral, r.status().as_u16())
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        let (referral, status) = t.await.unwrap();
        if status != 200 {
            failed.push((referral, status));
        }
    }
    if !failed.is_empty() {
        let logs: Vec<_> = rt
            .logs()
            .into_iter()
            .filter(|l| !l.contains("permit: taken") && !l.contains("permit: returned"))
            .collect();
        panic!(
            "{} of 100 votes failed with the fix, (referral?, status): {failed:?}\nruntime log:\n{}",
            failed.len(),
            logs.join("\n")
        );
    }
    // Every lease went back; once the pool's idle connections are closed, no slot is held.
    assert_eq!(
        host.wait_for(IN_USE, 0.0, Duration::from_secs(5)).await,
        0.0
    );
    let metrics = metrics_when(
        &rt,
        "referral_lookups_total{outcome=\"exact_matched\"}",
        50.0,
    )
    .await;
    assert_eq!(
        sample(
            &metrics,
            "referral_lookups_total{outcome=\"exact_matched\"}"
        ),
        50.0,
        "{metrics}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sample(&app_metrics(&rt).await, "db_pool_checked_out") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the app's gauge returns to 0"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pg = rt.pg().await;
    let rows: i64 = pg
        .query_one("SELECT count(*) FROM votes WHERE choice = 'revert'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 100);
}
