//! The poll in a room full of engineers: every class of hostile input gets a 4xx JSON answer
//! and stores nothing; nothing a client sends is reflected unescaped; the admin endpoints need
//! the token; every answer carries the security headers; the vote rate limit stops a script
//! but not an audience; no password or token reaches the logs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Runtime, RuntimeBuilder, client, free_port, metrics_when};
use futures::future::join_all;
use serde_json::{Value, json};

const CHOICES: [&str; 5] = ["print", "stare", "ai", "revert", "restart"];
const INVALID_CHOICE: &str = "Invalid choice. Must be one of: print, stare, ai, revert, restart";
const INVALID_REFERRAL: &str = "Invalid referral code";

/// The app with the rate limit off (the limit has its own tests below).
fn app() -> Runtime {
    RuntimeBuilder::new()
        .with_stores()
        .var("vote_rate_limit", "off")
        .spawn()
}

async fn votes_in_db(rt: &Runtime) -> i64 {
    rt.pg()
        .await
        .query_one("SELECT count(*) FROM votes", &[])
        .await
        .unwrap()
        .get(0)
}

async fn counted(rt: &Runtime) -> Vec<i64> {
    let body: Value = client()
        .get(rt.url("/votes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    CHOICES
        .iter()
        .map(|c| body[c]["count"].as_i64().expect("a count"))
        .collect()
}

/// What a hostile request must get back.
#[derive(Clone, Copy)]
enum Want {
    /// This status and exactly this detail.
    Detail(u16, &'static str),
    /// This status and some detail (wording is the server's business).
    Status(u16),
}

struct Case {
    class: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    want: Want,
}

fn case(
    class: &'static str,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    want: Want,
) -> Case {
    Case {
        class,
        content_type,
        body: body.into(),
        want,
    }
}

fn json_case(class: &'static str, body: Value, want: Want) -> Case {
    case(
        class,
        Some("application/json"),
        serde_json::to_vec(&body).unwrap(),
        want,
    )
}

/// A real vote padded with an ignored field to `len` bytes: it would be stored if the size
/// limit were not enforced before parsing.
fn padded_vote(len: usize) -> Vec<u8> {
    let head = br#"{"choice":"ai","pad":""#;
    let mut body = head.to_vec();
    body.resize(len - 2, b'x');
    body.extend_from_slice(b"\"}");
    assert_eq!(body.len(), len);
    body
}

fn hostile_cases() -> Vec<Case> {
    use Want::{Detail, Status};
    let malformed = Detail(400, "Request body must be valid JSON");
    let not_object = Detail(400, "Request body must be a JSON object");
    let choice = Detail(400, INVALID_CHOICE);
    let referral = Detail(400, INVALID_REFERRAL);
    let json = Some("application/json");
    let mut cases = vec![
        // Malformed JSON.
        case("malformed JSON", json, "{not json", malformed),
        case("malformed JSON", json, "", malformed),
        case("malformed JSON", json, r#"{"choice":"ai""#, malformed),
        case(
            "malformed JSON",
            json,
            r#"{"choice":"ai"} trailing"#,
            malformed,
        ),
        case("malformed JSON", json, r#"{"choice":NaN}"#, malformed),
        case(
            "malformed JSON",
            json,
            b"{\"choice\":\"\xff\xfe\"}".to_vec(),
            malformed,
        ),
        case("malformed JSON", None, "{not json", malformed),
        // Wrong content type: refused before the body is looked at.
        case(
            "wrong content type",
            Some("text/plain"),
            r#"{"choice":"ai"}"#,
            Status(415),
        ),
        case(
            "wrong content type",
            Some("application/x-www-form-urlencoded"),
            "choice=ai",
            Status(415),
        ),
        case(
            "wrong content type",
            Some("multipart/form-data; boundary=x"),
            "--x\r\nContent-Disposition: form-data; name=\"choice\"\r\n\r\nai\r\n--x--\r\n",
            Status(415),
        ),
        case(
            "wrong content type",
            Some("text/html"),
            "<b>ai</b>",
            Status(415),
        ),
        case(
            "wrong content type",
            Some("application/jsonp"),
            r#"{"choice":"ai"}"#,
            Status(415),
        ),
        // Non-object bodies.
        case("non-object body", json, "[]", not_object),
        case("non-object body", json, r#"["ai"]"#, not_object),
        case("non-object body", json, r#""ai""#, not_object),
        case("non-object body", json, "42", not_object),
        case("non-object body", json, "null", not_object),
        case("non-object body", json, "true", not_object),
        // Wrong field types.
        json_case("wrong field type", json!({"choice": 1}), choice),
        json_case("wrong field type", json!({"choice": ["ai"]}), choice),
        json_case("wrong field type", json!({"choice": {"id": "ai"}}), choice),
        json_case("wrong field type", json!({"choice": null}), choice),
        json_case("wrong field type", json!({"choice": true}), choice),
        json_case("wrong field type", json!({}), choice),
        json_case(
            "wrong field type",
            json!({"choice": "ai", "referral": 7}),
            referral,
        ),
        json_case(
            "wrong field type",
            json!({"choice": "ai", "referral": ["x"]}),
            referral,
        ),
        json_case(
            "wrong field type",
            json!({"choice": "ai", "referral": {"code": "x"}}),
            referral,
        ),
        json_case(
            "wrong field type",
            json!({"choice": "ai", "referral": false}),
            referral,
        ),
        // Unknown choices.
        json_case("unknown choice", json!({"choice": "nope"}), choice),
        json_case("unknown choice", json!({"choice": "PRINT"}), choice),
        json_case("unknown choice", json!({"choice": " print"}), choice),
        json_case("unknown choice", json!({"choice": "print\u{0}"}), choice),
        json_case("unknown choice", json!({"choice": ""}), choice),
        json_case(
            "unknown choice",
            json!({"choice": "ai".repeat(4000)}),
            choice,
        ),
        // Oversized bodies, refused before parsing (they are otherwise valid votes).
        case(
            "oversized body",
            json,
            padded_vote(16 * 1024 + 1),
            Status(413),
        ),
        case(
            "oversized body",
            json,
            padded_vote(1024 * 1024),
            Status(413),
        ),
        // Over-long and control-character referral codes (refused before any lookup).
        json_case(
            "over-long referral",
            json!({"choice": "ai", "referral": "x".repeat(65)}),
            referral,
        ),
        json_case(
            "over-long referral",
            json!({"choice": "ai", "referral": "ü".repeat(65)}),
            referral,
        ),
        json_case(
            "control-character referral",
            json!({"choice": "ai", "referral": "conf\u{0}partner"}),
            referral,
        ),
        json_case(
            "control-character referral",
            json!({"choice": "ai", "referral": "conf-partner-2026\r\nX-Evil: 1"}),
            referral,
        ),
        json_case(
            "control-character referral",
            json!({"choice": "ai", "referral": "a\u{7}b"}),
            referral,
        ),
        json_case(
            "control-character referral",
            json!({"choice": "ai", "referral": "a\tb"}),
            referral,
        ),
        json_case(
            "control-character referral",
            json!({"choice": "ai", "referral": "a\u{85}b"}),
            referral,
        ),
        // SQL injection in the choice (never reaches SQL: not a choice id).
        json_case("SQL injection", json!({"choice": "ai' OR '1'='1"}), choice),
        json_case(
            "SQL injection",
            json!({"choice": "ai'); DELETE FROM votes; --"}),
            choice,
        ),
        // Script injection in the choice: the answer's detail is fixed text, never the input.
        json_case(
            "script injection",
            json!({"choice": "<script>alert(1)</script>"}),
            choice,
        ),
        json_case(
            "script injection",
            json!({"choice": "\"><img src=x onerror=alert(1)>"}),
            choice,
        ),
    ];
    // Injection strings that are well-formed codes go all the way to the referral lookup in
    // PostgreSQL, as bound parameters: no partner owns them.
    for code in [
        "' OR '1'='1",
        "x'; DROP TABLE votes; --",
        "conf-partner-2026' --",
        "<script>alert(1)</script>",
    ] {
        let class = if code.contains('<') {
            "script injection"
        } else {
            "SQL injection"
        };
        cases.push(json_case(
            class,
            json!({"choice": "ai", "referral": code}),
            referral,
        ));
    }
    cases
}

async fn send(c: &reqwest::Client, rt: &Runtime, case: &Case) -> (u16, Option<String>, Vec<u8>) {
    let mut req = c.post(rt.url("/vote")).body(case.body.clone());
    if let Some(ct) = case.content_type {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.expect("an answer");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_class_of_hostile_vote_gets_a_4xx_json_answer_and_stores_nothing() {
    let rt = app();
    let c = client();
    let pg = rt.pg().await;
    let partners: i64 = pg
        .query_one("SELECT count(*) FROM referral_partners", &[])
        .await
        .unwrap()
        .get(0);
    let cases = hostile_cases();
    // The referral lookups take seconds on 500,000 partners: run every case at once.
    let answers = join_all(cases.iter().map(|case| send(&c, &rt, case))).await;

    let mut failures = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for (case, (status, ct, body)) in cases.iter().zip(answers) {
        classes.insert(case.class);
        let shown = String::from_utf8_lossy(&case.body);
        let shown: String = shown.chars().take(60).collect();
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let detail = parsed
            .as_ref()
            .and_then(|v| v.as_object())
            .filter(|o| o.len() == 1)
            .and_then(|o| o.get("detail"))
            .and_then(Value::as_str);
        let ok = match case.want {
            Want::Detail(s, d) => status == s && detail == Some(d),
            Want::Status(s) => status == s && detail.is_some(),
        };
        if !ok || ct.as_deref() != Some("application/json") {
            failures.push(format!(
                "{} {shown:?}: got {status} {ct:?} {}",
                case.class,
                String::from_utf8_lossy(&body)
            ));
        }
        let text = String::from_utf8_lossy(&body).to_ascii_lowercase();
        if text.contains("<script") || text.contains("<img") || text.contains("drop table") {
            failures.push(format!("{} {shown:?}: reflected in {text}", case.class));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every class the issue names is in the table.
    assert_eq!(
        classes.into_iter().collect::<Vec<_>>(),
        [
            "SQL injection",
            "control-character referral",
            "malformed JSON",
            "non-object body",
            "over-long referral",
            "oversized body",
            "script injection",
            "unknown choice",
            "wrong content type",
            "wrong field type",
        ]
    );

    assert_eq!(votes_in_db(&rt).await, 0, "nothing stored");
    assert_eq!(counted(&rt).await, vec![0; 5], "nothing counted");
    let after: i64 = pg
        .query_one("SELECT count(*) FROM referral_partners", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(after, partners, "the partners table is untouched");

    // The same server still takes an honest vote.
    let r = c
        .post(rt.url("/vote"))
        .json(&json!({"choice": "stare"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(votes_in_db(&rt).await, 1);
}

/// Sends raw bytes and returns the status line and the body (the connection is closed by us).
fn raw_request(port: u16, request: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_refused_with_or_without_a_content_length() {
    let rt = app();
    let port: u16 = rt.base.rsplit(':').next().unwrap().parse().unwrap();
    let body = padded_vote(64 * 1024);

    // Chunked, no content-length: cut off as soon as it passes the limit.
    let mut req = b"POST /vote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for chunk in body.chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, answer) = raw_request(port, &req);
    assert!(status.contains(" 413 "), "{status} {answer}");
    assert!(answer.contains(r#""detail""#), "{answer}");

    // A content-length that promises too much is refused before a byte is read.
    let req = format!(
        "POST /vote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"choice\":\"ai\"",
        1 << 30
    );
    let (status, answer) = raw_request(port, req.as_bytes());
    assert!(status.contains(" 413 "), "{status} {answer}");

    // Just under the limit is an ordinary vote.
    let r = client()
        .post(rt.url("/vote"))
        .header("content-type", "application/json")
        .body(padded_vote(16 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        votes_in_db(&rt).await,
        1,
        "only the vote within the limit is stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_and_wrong_methods_get_json() {
    let rt = app();
    let c = client();
    for path in [
        "/nope",
        "/wp-login.php",
        "/votes/extra",
        "/%2e%2e/spin.toml",
        "/static/../../spin.toml",
        "/static/nope.js",
        "/<script>alert(1)</script>",
    ] {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let r = c
                .request(method.clone(), rt.url(path))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            let body = r.text().await.unwrap();
            // POST to a page route is "method not allowed", anything else unknown is 404.
            assert!(
                matches!(status, 404 | 405),
                "{method} {path}: {status} {body}"
            );
            assert_eq!(ct, "application/json", "{method} {path}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(v["detail"].is_string(), "{method} {path}: {body}");
            assert!(!body.contains("<script"), "{method} {path}: {body}");
        }
    }
    for (method, path, allow) in [
        (reqwest::Method::GET, "/vote", "POST"),
        (reqwest::Method::DELETE, "/vote", "POST"),
        (reqwest::Method::PUT, "/vote", "POST"),
    ] {
        let r = c
            .request(method.clone(), rt.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow);
        assert_eq!(r.headers()["content-type"], "application/json");
    }
    assert_eq!(votes_in_db(&rt).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_strings_are_never_reflected_unescaped_in_pages_or_metrics() {
    let rt = app();
    let c = client();
    let script = "<script>alert(1)</script>";
    let image = "\"><img src=x onerror=alert(1)>";
    let query = format!(
        "?referral={}&conf={}",
        poll_escape(script),
        poll_escape(image)
    );
    for page in ["/", "/results", "/qr", "/admin"] {
        let r = c
            .get(rt.url(&format!("{page}{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{page}");
        let html = r.text().await.unwrap();
        assert!(!html.contains(script), "{page} reflects the script tag");
        assert!(
            !html.contains("<img src=x"),
            "{page} reflects the image tag"
        );
    }
    // Hostile paths and methods must not become metric labels.
    let _ = c.get(rt.url("/x%22%7D%20evil%7B")).send().await.unwrap();
    let _ = c
        .get(rt.url(&format!("/{}", poll_escape(script))))
        .send()
        .await
        .unwrap();
    let _ = c
        .request(
            reqwest::Method::from_bytes(b"EVIL").unwrap(),
            rt.url("/vote"),
        )
        .send()
        .await
        .unwrap();
    // The EVIL request is counted, under a bounded label.
    let metrics = metrics_when(
        &rt,
        "http_requests_total{method=\"OTHER\",endpoint=\"/vote\",status=\"405\"}",
        1.0,
    )
    .await;
    assert_eq!(
        common::sample(
            &metrics,
            "http_requests_total{method=\"OTHER\",endpoint=\"/vote\",status=\"405\"}"
        ),
        1.0,
        "{metrics}"
    );
    for bad in ["<script", "evil", "EVIL", "onerror"] {
        assert!(
            !metrics.contains(bad),
            "/metrics carries {bad:?}:\n{metrics}"
        );
    }
}

/// Percent-encodes everything but unreserved characters.
fn poll_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_carries_the_security_headers() {
    let rt = app();
    let c = client();
    for page in ["/", "/results", "/qr", "/admin"] {
        let r = c.get(rt.url(page)).send().await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{page}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{page}: {csp}");
        assert!(!csp.contains("unsafe-eval"), "{page}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{page}");
        assert_eq!(h["referrer-policy"], "same-origin", "{page}");
        let html = r.text().await.unwrap();
        // No inline script: every <script> has a src.
        for tag in html.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap();
            assert!(
                open.contains("src="),
                "{page} has an inline script: <script{open}>"
            );
        }
        assert!(!html.contains(" onclick="), "{page} has an inline handler");
    }
    let bad_vote = c
        .post(rt.url("/vote"))
        .json(&json!({"choice": "nope"}))
        .send()
        .await
        .unwrap();
    for r in [
        c.get(rt.url("/votes")).send().await.unwrap(),
        c.get(rt.url("/health")).send().await.unwrap(),
        c.get(rt.url("/nope")).send().await.unwrap(),
        bad_vote,
    ] {
        let url = r.url().to_string();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(h["content-type"], "application/json", "{url}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{url}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Admin

async fn admin(
    c: &reqwest::Client,
    rt: &Runtime,
    method: reqwest::Method,
    path: &str,
    auth: Option<&str>,
) -> (u16, Value) {
    let mut req = c.request(method, rt.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_needs_its_token_and_reset_clears_both_stores() {
    let token = "correct-horse-battery-staple-0123456789";
    let rt = RuntimeBuilder::new()
        .with_stores()
        .var("vote_rate_limit", "off")
        .var("admin_token", token)
        .spawn();
    let c = client();
    for choice in ["print", "ai", "ai"] {
        let r = c
            .post(rt.url("/vote"))
            .json(&json!({"choice": choice}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let right = format!("Bearer {token}");
    let refusals: Vec<(Option<String>, u16)> = vec![
        (None, 401),
        (Some("Bearer".into()), 401),
        (Some(format!("Basic {token}")), 401),
        (Some(token.into()), 401),
        // A header's trailing space does not survive HTTP: this is "Bearer" without a token.
        (Some("Bearer ".into()), 401),
        (Some("Bearer  ".into()), 401),
        (Some("Bearer wrong".into()), 403),
        (Some(format!("Bearer {}", &token[..token.len() - 1])), 403),
        (Some(format!("Bearer {token}x")), 403),
        (Some(format!("Bearer {}", token.to_uppercase())), 403),
    ];
    for (auth, want) in &refusals {
        for (method, path) in [
            (reqwest::Method::GET, "/admin/status"),
            (reqwest::Method::POST, "/admin/reset"),
            (reqwest::Method::GET, "/admin/anything"),
        ] {
            let (status, body) = admin(&c, &rt, method.clone(), path, auth.as_deref()).await;
            assert_eq!(status, *want, "{method} {path} with {auth:?}: {body}");
            assert!(body["detail"].is_string(), "{body}");
        }
    }
    // Nothing was reset by any of those.
    assert_eq!(votes_in_db(&rt).await, 3);
    assert_eq!(counted(&rt).await, vec![1, 0, 2, 0, 0]);

    let (status, body) = admin(&c, &rt, reqwest::Method::GET, "/admin/status", Some(&right)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["votes_db"]["ai"], 2, "{body}");
    // The right token, the wrong method: still not a reset.
    let (status, _) = admin(&c, &rt, reqwest::Method::GET, "/admin/reset", Some(&right)).await;
    assert_eq!(status, 405);
    assert_eq!(votes_in_db(&rt).await, 3);

    let (status, body) = admin(&c, &rt, reqwest::Method::POST, "/admin/reset", Some(&right)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(votes_in_db(&rt).await, 0, "PostgreSQL votes cleared");
    assert_eq!(counted(&rt).await, vec![0; 5], "Redis counts cleared");
    // And the poll goes on from zero.
    let r = c
        .post(rt.url("/vote"))
        .json(&json!({"choice": "revert"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(counted(&rt).await, vec![0, 0, 0, 1, 0]);

    let logs = rt.logs().join("\n");
    assert!(!logs.contains(token), "the admin token reached the logs");
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_without_a_configured_token_refuses_everyone() {
    let rt = app();
    let c = client();
    for auth in [None, Some("Bearer "), Some("Bearer x")] {
        let (status, body) = admin(&c, &rt, reqwest::Method::POST, "/admin/reset", auth).await;
        assert_eq!(status, 403, "{auth:?}: {body}");
    }
}

// ---------------------------------------------------------------------------------------------
// No secrets in logs

#[tokio::test(flavor = "multi_thread")]
async fn passwords_in_store_urls_never_reach_the_logs() {
    let secret = "pa55-in-the-log-would-be-bad";
    // Nothing listens on these ports: every store error quotes the URL it failed on.
    let (pg_port, redis_port) = (free_port(), free_port());
    let rt = RuntimeBuilder::new()
        .var(
            "db_url",
            format!("postgres://honey:{secret}@127.0.0.1:{pg_port}/honey"),
        )
        .var("db_host", format!("127.0.0.1:{pg_port}"))
        .var(
            "redis_url",
            format!("redis://:{secret}@127.0.0.1:{redis_port}"),
        )
        .var("redis_host", format!("127.0.0.1:{redis_port}"))
        .var("vote_rate_limit", "10/10s")
        .spawn();
    let c = client();
    for body in [
        json!({"choice": "ai"}),
        json!({"choice": "ai", "referral": "abc"}),
    ] {
        let r = c.post(rt.url("/vote")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 503, "{body}");
        let text = r.text().await.unwrap();
        assert!(!text.contains(secret), "{text}");
    }
    for path in ["/votes", "/ready", "/metrics", "/pool"] {
        let text = c
            .get(rt.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!text.contains(secret), "{path}: {text}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = rt.logs();
    assert!(
        logs.iter().any(|l| l.contains("127.0.0.1")),
        "the failures were logged (else this test proves nothing): {logs:#?}"
    );
    let leaked: Vec<_> = logs.iter().filter(|l| l.contains(secret)).collect();
    assert!(leaked.is_empty(), "passwords in the logs: {leaked:#?}");
}

// ---------------------------------------------------------------------------------------------
// The vote rate limit

async fn vote_from(
    c: &reqwest::Client,
    rt: &Runtime,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut req = c.post(rt.url("/vote")).json(&json!({"choice": "print"}));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_hits_the_rate_limit_and_gets_429_with_retry_after() {
    let rt = RuntimeBuilder::new()
        .with_stores()
        .var("vote_rate_limit", "5/30s")
        .spawn();
    let c = client();
    for i in 0..5 {
        // Rotating X-Forwarded-For does not help: without a trusted proxy it is ignored.
        let r = vote_from(&c, &rt, Some(&format!("203.0.113.{i}"))).await;
        assert_eq!(r.status(), 200, "vote {i}");
    }
    for i in 0..3 {
        let r = vote_from(&c, &rt, Some(&format!("198.51.100.{i}"))).await;
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&retry), "Retry-After {retry}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().contains("Too many votes"),
            "{body}"
        );
    }
    // Junk counts against the limit too, and is refused with 429 before it is parsed.
    let r = c
        .post(rt.url("/vote"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(votes_in_db(&rt).await, 5, "refused votes are not stored");
    assert_eq!(counted(&rt).await, vec![5, 0, 0, 0, 0], "nor counted");
    // Reading is never limited.
    assert_eq!(c.get(rt.url("/votes")).send().await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let rt = RuntimeBuilder::new()
        .with_stores()
        .var("vote_rate_limit", "3/30s")
        .var("trust_forwarded_for", "true")
        .spawn();
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            vote_from(&c, &rt, Some("198.51.100.7, 10.0.0.1"))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        vote_from(&c, &rt, Some("198.51.100.7, 10.0.0.2"))
            .await
            .status(),
        429
    );
    assert_eq!(vote_from(&c, &rt, Some("198.51.100.8")).await.status(), 200);
    // Another address of the same IPv6 /64 is the same client.
    for _ in 0..3 {
        assert_eq!(
            vote_from(&c, &rt, Some("2001:db8:1:2::1")).await.status(),
            200
        );
    }
    assert_eq!(
        vote_from(&c, &rt, Some("2001:db8:1:2::ffff"))
            .await
            .status(),
        429
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limit_holds_across_instances_and_processes() {
    // Two separate runtimes (as two pods) sharing one Redis prefix share one count.
    let a = RuntimeBuilder::new()
        .with_stores()
        .var("vote_rate_limit", "4/30s");
    let shared = a.prefix().to_owned();
    let a = a.spawn();
    let b = RuntimeBuilder::new()
        .with_stores()
        .var("vote_rate_limit", "4/30s")
        .var("redis_prefix", &shared)
        .spawn();
    let c = client();
    assert_eq!(vote_from(&c, &a, None).await.status(), 200);
    assert_eq!(vote_from(&c, &b, None).await.status(), 200);
    assert_eq!(vote_from(&c, &a, None).await.status(), 200);
    assert_eq!(vote_from(&c, &b, None).await.status(), 200);
    assert_eq!(vote_from(&c, &a, None).await.status(), 429);
    assert_eq!(vote_from(&c, &b, None).await.status(), 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_default_limit_a_whole_room_votes_but_a_flood_is_cut() {
    // Default limit: a thousand phones behind one NAT all vote at once, then vote again on the
    // second QR code, and none is refused; a script that keeps going is.
    let rt = RuntimeBuilder::new().with_stores().spawn();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for round in 0..2 {
        for batch in 0..20 {
            let sent = (0..50).map(|i| {
                let c = c.clone();
                let url = rt.url("/vote");
                async move {
                    c.post(url)
                        .json(&json!({"choice": CHOICES[(round + batch + i) % 5]}))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                }
            });
            statuses.extend(join_all(sent).await);
        }
    }
    assert_eq!(statuses.len(), 2000);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "the room was refused: {:?}",
        {
            let mut bad: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
            bad.dedup();
            bad
        }
    );
    // The flood: 500 more at once. The default is 2,400 a minute.
    let flood = (0..500).map(|_| {
        let c = c.clone();
        let url = rt.url("/vote");
        async move {
            c.post(url)
                .json(&json!({"choice": "ai"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let flood: Vec<u16> = join_all(flood).await;
    let ok = flood.iter().filter(|s| **s == 200).count();
    let refused = flood.iter().filter(|s| **s == 429).count();
    assert_eq!((ok, refused), (400, 100), "2,400 votes a minute, then 429");
    assert_eq!(votes_in_db(&rt).await, 2400);
}
