//! Runtime behaviour that the poll relies on and real Spin has: runtime-config strictness,
//! variables, allow-lists, service chaining and the runtime's own metrics.

mod common;

use std::path::Path;

use common::{RuntimeBuilder, client, manifest_variant, redis_cleanup, repo, tempdir};
use serde_json::{Value, json};

fn runtime_config(dir: &Path, text: &str) -> String {
    let p = dir.join("runtime-config.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn unknown_runtime_config_keys_stop_start_up() {
    let dir = tempdir::Dir::new("rc");
    let bad_key = runtime_config(
        dir.path(),
        "[outbound_pg]\nmax_connections = 5\nbogus = 1\n",
    );
    let err = RuntimeBuilder::new()
        .with_stores()
        .arg("--runtime-config-file")
        .arg(bad_key)
        .try_spawn()
        .err()
        .expect("must refuse to start");
    assert!(
        err.0
            .contains("unknown field `bogus`, expected `max_connections`"),
        "{}",
        err.0
    );

    let bad_section = runtime_config(dir.path(), "[not_a_thing]\nx = 1\n");
    let err = RuntimeBuilder::new()
        .with_stores()
        .arg("--runtime-config-file")
        .arg(bad_section)
        .try_spawn()
        .err()
        .expect("must refuse to start");
    assert!(
        err.0.contains("unused runtime config key(s): not_a_thing"),
        "{}",
        err.0
    );
}

#[test]
fn a_required_variable_without_a_value_stops_start_up() {
    let (_dir, manifest) = manifest_variant("required", |t| {
        t.replace(
            "[variables]\n",
            "[variables]\nmust_have = { required = true }\n",
        )
    });
    let err = RuntimeBuilder::new()
        .manifest(&manifest)
        .with_stores()
        .try_spawn()
        .err()
        .expect("must refuse to start");
    assert!(err.0.contains("SPIN_VARIABLE_MUST_HAVE"), "{}", err.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outside_the_allow_list_is_refused() {
    // The URL points at the real database, but the allow-list names another port: Spin refuses
    // the connection before any network I/O.
    let b = RuntimeBuilder::new()
        .with_stores()
        .var("db_host", "127.0.0.1:1");
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let pg = rt.pg().await;
    let before: i64 = pg
        .query_one("SELECT count(*) FROM votes", &[])
        .await
        .unwrap()
        .get(0);
    let r = client()
        .post(rt.url("/vote"))
        .json(&json!({"choice": "print"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let after: i64 = pg
        .query_one("SELECT count(*) FROM votes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, after);
    let logs = rt
        .logs_when("postgres address not in allowed_outbound_hosts")
        .await;
    assert!(
        logs.contains("postgres address not in allowed_outbound_hosts"),
        "{logs}"
    );
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outside_the_allow_list_is_refused() {
    let rt = RuntimeBuilder::new()
        .with_stores()
        .var("redis_host", "127.0.0.1:1")
        .spawn();
    let r = client().get(rt.url("/votes")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let logs = rt
        .logs_when("redis address not in allowed_outbound_hosts")
        .await;
    assert!(
        logs.contains("redis address not in allowed_outbound_hosts"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_chaining_needs_the_internal_host_in_the_allow_list() {
    let (_dir, manifest) = manifest_variant("chain", |t| {
        t.replace("    \"http://referral.spin.internal\",\n", "")
    });
    let b = RuntimeBuilder::new().manifest(&manifest).with_stores();
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let r = client()
        .post(rt.url("/vote"))
        .json(&json!({"choice": "ai", "referral": "conf-partner-2026"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        503,
        "referral check cannot reach the referral component"
    );
    let logs = rt.logs_when("service chaining not allowed").await;
    assert!(logs.contains("service chaining not allowed"), "{logs}");
    // Without a referral the vote does not need chaining and works.
    let r = client()
        .post(rt.url("/vote"))
        .json(&json!({"choice": "ai"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_metrics_show_permits_instances_and_requests() {
    let metrics_port = common::free_port();
    let b = RuntimeBuilder::new()
        .with_stores()
        .arg("--runtime-config-file")
        .arg(repo().join("runtime-config.toml").display().to_string())
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{metrics_port}"));
    let prefix = b.prefix().to_owned();
    let rt = b.spawn();
    let c = client();
    let r = c
        .post(rt.url("/vote"))
        .json(&json!({"choice": "restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = c
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("honey_runtime_pg_permits_limit 5"), "{text}");
    assert!(
        text.contains("honey_runtime_pg_permits_in_use 0"),
        "a dropped connection returns its permit: {text}"
    );
    assert!(
        text.contains("honey_runtime_requests_total{component=\"vote\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("honey_runtime_instances_created_total{component=\"vote\"} 1"),
        "{text}"
    );
    let logs = rt.logs_when("postgres permit: returned").await;
    assert!(
        logs.contains("postgres permit: taken") && logs.contains("postgres permit: returned"),
        "{logs}"
    );
    assert!(
        logs.contains("component=vote"),
        "permit logs name the component: {logs}"
    );
    redis_cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_follow_spin_precedence() {
    let rt = RuntimeBuilder::new().with_stores().spawn();
    let c = client();
    // `/votes` is an exact route of `results`; `/votes/x` falls to the `pages` catch-all.
    let r = c.get(rt.url("/votes")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["print"].is_object());
    let r = c.get(rt.url("/votes/x")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    // The referral check is private (`route = { private = true }`): no public path reaches it,
    // so `/referrals/...` falls to the pages catch-all.
    let r = c
        .get(rt.url("/referrals/conf-partner-2026"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // An exact route beats a wildcard: `/admin` is the page, `/admin/...` the admin API.
    let r = c.get(rt.url("/admin")).send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = c.get(rt.url("/admin/status")).send().await.unwrap();
    assert!(r.status() == 401 || r.status() == 403, "{}", r.status());
}

#[test]
fn the_reported_pool_size_matches_the_runtime_config() {
    // The app cannot read the host's runtime config, so spin.toml's db_pool_size default must
    // say what runtime-config.toml enforces, or the projector's gauge would lie.
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("spin.toml")).unwrap()).unwrap();
    let reported = manifest["variables"]["db_pool_size"]["default"]
        .as_str()
        .unwrap()
        .parse::<i64>()
        .unwrap();
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("runtime-config.toml")).unwrap())
            .unwrap();
    assert_eq!(
        config["outbound_pg"]["max_connections"].as_integer(),
        Some(reported)
    );
}
