//! The poll's HTTP contract (BRIEF §5), end to end: real runtime, real components, real
//! PostgreSQL (seeded) and Redis.

mod common;

use common::{RuntimeBuilder, client, redis, redis_cleanup};
use serde_json::{Value, json};

const CHOICES: [(&str, &str); 5] = [
    ("print", "Add more print statements"),
    ("stare", "Stare at the code until it confesses"),
    ("ai", "Ask an AI to explain it"),
    ("revert", "Revert and pretend it never happened"),
    ("restart", "Turn it off and on again"),
];

async fn votes_in_db(pg: &tokio_postgres::Client, marker: &str) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM votes WHERE referral_code = $1",
        &[&marker],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn health_ready_and_version() {
    let b = RuntimeBuilder::new()
        .with_stores()
        .var("app_version", "9.9.9-test")
        .var("conference_name", "TestConf");
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let c = client();

    let r = c.get(rt.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "healthy"})
    );

    let r = c.get(rt.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");

    let r = c.get(rt.url("/version")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["version"], "9.9.9-test",
        "variables reach the guest: {body}"
    );
    assert_eq!(body["conference"]["name"], "TestConf");
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_is_503_when_a_store_is_down() {
    // Nothing listens on this port; the allow-list is widened to it so the failure is the
    // connection, not the policy.
    let dead = format!("127.0.0.1:{}", common::free_port());
    let rt = RuntimeBuilder::new()
        .with_stores()
        .var("redis_url", format!("redis://{dead}"))
        .var("redis_host", dead)
        .spawn();
    let r = client().get(rt.url("/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(body.is_object(), "JSON body: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vote_is_stored_then_counted() {
    let b = RuntimeBuilder::new().with_stores();
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let c = client();
    let pg = rt.pg().await;

    let before: Value = c
        .get(rt.url("/votes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (id, label) in CHOICES {
        assert_eq!(before[id]["label"], label);
        assert_eq!(before[id]["count"], 0, "fresh prefix starts at zero");
    }

    let rows_before: i64 = pg
        .query_one("SELECT count(*) FROM votes WHERE choice = 'stare'", &[])
        .await
        .unwrap()
        .get(0);
    let r = c
        .post(rt.url("/vote"))
        .json(&json!({"choice": "stare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "ok", "choice": "stare"})
    );

    let rows_after: i64 = pg
        .query_one("SELECT count(*) FROM votes WHERE choice = 'stare'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows_after, rows_before + 1, "the vote is in PostgreSQL");
    let after: Value = c
        .get(rt.url("/votes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["stare"]["count"], 1);
    assert_eq!(after["print"]["count"], 0);
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_votes_get_400_and_store_nothing() {
    let b = RuntimeBuilder::new().with_stores();
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let c = client();
    let pg = rt.pg().await;
    let count_all = || async {
        pg.query_one("SELECT count(*) FROM votes", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let before = count_all().await;

    let r = c
        .post(rt.url("/vote"))
        .json(&json!({"choice": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid choice. Must be one of: print, stare, ai, revert, restart"})
    );

    let r = c
        .post(rt.url("/vote"))
        .json(&json!({"choice": "ai", "referral": "definitely-not-a-partner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "Invalid referral code"})
    );

    let r = c
        .post(rt.url("/vote"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());

    assert_eq!(count_all().await, before, "nothing stored");
    let counts: Value = c
        .get(rt.url("/votes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (id, _) in CHOICES {
        assert_eq!(counts[id]["count"], 0, "nothing counted for {id}");
    }
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_referral_code_is_accepted() {
    let b = RuntimeBuilder::new().with_stores();
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let pg = rt.pg().await;
    let before = votes_in_db(&pg, "conf-partner-2026").await;
    let r = client()
        .post(rt.url("/vote"))
        .json(&json!({"choice": "revert", "referral": "conf-partner-2026"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(votes_in_db(&pg, "conf-partner-2026").await, before + 1);
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn database_down_is_503_and_nothing_counted() {
    let dead = format!("127.0.0.1:{}", common::free_port());
    let b = RuntimeBuilder::new()
        .with_stores()
        .var("db_url", format!("postgres://postgres@{dead}/nope"))
        .var("db_host", dead);
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let r = client()
        .post(rt.url("/vote"))
        .json(&json!({"choice": "print"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
    let mut redis = redis().await;
    let n: Option<i64> = redis::cmd("GET")
        .arg(format!("{prefix}votes:print"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(n, None, "a failed vote is not counted");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_burst_counts_match_rows() {
    let b = RuntimeBuilder::new().with_stores();
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let c = client();
    let pg = rt.pg().await;
    let before: Vec<i64> = {
        let mut v = Vec::new();
        for (id, _) in CHOICES {
            v.push(
                pg.query_one("SELECT count(*) FROM votes WHERE choice = $1", &[&id])
                    .await
                    .unwrap()
                    .get(0),
            );
        }
        v
    };
    let mut tasks = Vec::new();
    for i in 0..300 {
        let c = c.clone();
        let url = rt.url("/vote");
        tasks.push(tokio::spawn(async move {
            let choice = CHOICES[i % 5].0;
            c.post(url)
                .json(&json!({ "choice": choice }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }));
    }
    let mut ok = [0i64; 5];
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap().unwrap() == 200 {
            ok[i % 5] += 1;
        }
    }
    let counts: Value = c
        .get(rt.url("/votes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (k, (id, _)) in CHOICES.iter().enumerate() {
        let rows: i64 = pg
            .query_one("SELECT count(*) FROM votes WHERE choice = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(ok[k], 60, "every vote answered 200 for {id}");
        assert_eq!(rows - before[k], ok[k], "PostgreSQL rows for {id}");
        assert_eq!(
            counts[id]["count"].as_i64().unwrap(),
            ok[k],
            "Redis count for {id}"
        );
    }
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_and_static_assets_are_served() {
    let rt = RuntimeBuilder::new().with_stores().spawn();
    let c = client();
    for page in ["/", "/results", "/admin"] {
        let r = c.get(rt.url(page)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{page}"
        );
    }
    // A static file comes back byte for byte from the component's `files` mount.
    let dir = common::repo().join("static");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "css" || e == "js"))
        .expect("a css or js file in static/");
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    let r = c
        .get(rt.url(&format!("/static/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let served = r.bytes().await.unwrap();
    let on_disk = std::fs::read(&file).unwrap();
    assert!(
        served.as_ref() == on_disk.as_slice(),
        "/static/{name} is not {} ({} bytes served, {} on disk): rebuild with ./dev build",
        file.display(),
        served.len(),
        on_disk.len()
    );

    let r = c.get(rt.url("/static/../spin.toml")).send().await.unwrap();
    assert!(r.status().is_client_error());
    let r = c.get(rt.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.json::<Value>().await.unwrap()["detail"].is_string());
}
