//! `GET /metrics`: the app's Prometheus metrics, and `GET /pool`: the projector's view of the
//! PostgreSQL connection slots.
//!
//! Both are computed from what every instance of every component recorded in Redis
//! (`guest_kit::telemetry`), because on Spin the app cannot ask the host how many of its
//! `max_connections` slots are in use. `db_pool_size` is the `db_pool_size` variable, which the
//! deployment keeps equal to the runtime config's `max_connections` (the Helm chart renders both
//! from one value; locally a test checks spin.toml against runtime-config.toml).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use guest_kit::telemetry::{PoolReport, RequestMetrics, pool_report};
use guest_kit::{
    GuestError, HeaderValue, HttpResponse, Method, StatusCode, header, json, method_not_allowed,
    not_found, response_with_body,
};
use poll_metrics::{Exposition, keys};
use serde::Serialize;
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

/// The projector's "recent" window, in seconds.
const WINDOW_SECS: u64 = 10;
/// Fewer vote answers than this in the window say nothing about failing.
const MIN_RECENT: i64 = 3;

const PROMETHEUS_TEXT: HeaderValue =
    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");

#[http_service]
async fn handle(request: Request) -> HttpResponse {
    let endpoint = match request.uri().path() {
        "/metrics" => "/metrics",
        "/pool" => "/pool",
        _ => "other",
    };
    let metrics = RequestMetrics::start(request.method(), endpoint);
    let response = if request.method() != Method::GET && request.method() != Method::HEAD {
        method_not_allowed("GET, HEAD")
    } else {
        let result = match endpoint {
            "/metrics" => exposition().await.map(|text| {
                let mut r = response_with_body(StatusCode::OK, PROMETHEUS_TEXT, text);
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }),
            "/pool" => pool().await.map(|p| json(StatusCode::OK, &p)),
            _ => Ok(not_found()),
        };
        result.unwrap_or_else(GuestError::into_response)
    };
    metrics.finish(response.status());
    response
}

struct Stores {
    redis: Connection,
    prefix: String,
    pool_size: i64,
}

async fn stores() -> Result<Stores, GuestError> {
    let url = guest_kit::variable("redis_url").await?;
    let prefix = guest_kit::variable("redis_prefix").await?;
    let raw_size = guest_kit::variable("db_pool_size").await?;
    let pool_size = raw_size
        .trim()
        .parse::<i64>()
        .map_err(|_| GuestError::Variable {
            name: "db_pool_size".into(),
            reason: format!("expected a whole number, got {raw_size:?}"),
        })?;
    Ok(Stores {
        redis: guest_kit::open_redis(&url).await?,
        prefix,
        pool_size,
    })
}

async fn hash(redis: &Connection, key: String) -> Result<Vec<(String, String)>, GuestError> {
    let reply = redis
        .execute("HGETALL", [RedisParameter::Binary(key.into_bytes())])
        .await
        .map_err(guest_kit::redis_error)?;
    Ok(pairs(reply))
}

/// HGETALL's flat field, value, field, value… reply as pairs.
fn pairs(reply: Vec<RedisResult>) -> Vec<(String, String)> {
    let text = |r: &RedisResult| match r {
        RedisResult::Binary(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RedisResult::Status(s) => Some(s.clone()),
        RedisResult::Int64(n) => Some(n.to_string()),
        RedisResult::Nil => None,
    };
    reply
        .chunks_exact(2)
        .filter_map(|kv| Some((text(&kv[0])?, text(&kv[1])?)))
        .collect()
}

async fn exposition() -> Result<String, GuestError> {
    let s = stores().await?;
    let p = &s.prefix;
    let requests = hash(&s.redis, format!("{p}{}", keys::REQUESTS)).await?;
    let latency = hash(&s.redis, format!("{p}{}", keys::LATENCY)).await?;
    let counters = hash(&s.redis, format!("{p}{}", keys::COUNTERS)).await?;
    let pool = pool_report(&s.redis, p, WINDOW_SECS).await?;
    let mut x = Exposition::new();
    x.gauge(
        "db_pool_checked_out",
        "PostgreSQL connections held by the app's guest code right now, over all instances.",
        pool.held as f64,
    )
    .gauge(
        "db_pool_size",
        "PostgreSQL connection slots the host allows the app (runtime config max_connections).",
        s.pool_size as f64,
    )
    .requests(&requests)
    .latency(&latency)
    .counters(&counters);
    Ok(x.finish())
}

#[derive(Debug, Serialize, PartialEq, Eq)]
struct Pool {
    checked_out: i64,
    size: i64,
    /// All slots taken, or most recent votes failing.
    failing: bool,
    recent_errors: i64,
    recent_requests: i64,
}

impl Pool {
    fn from_report(report: PoolReport, size: i64) -> Self {
        let requests = report.recent_ok + report.recent_errors;
        let mostly_failing = requests >= MIN_RECENT && report.recent_errors * 2 > requests;
        Pool {
            checked_out: report.held,
            size,
            failing: (size > 0 && report.held >= size) || mostly_failing,
            recent_errors: report.recent_errors,
            recent_requests: requests,
        }
    }
}

async fn pool() -> Result<Pool, GuestError> {
    let s = stores().await?;
    let report = pool_report(&s.redis, &s.prefix, WINDOW_SECS).await?;
    Ok(Pool::from_report(report, s.pool_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(held: i64, ok: i64, errors: i64) -> PoolReport {
        PoolReport {
            held,
            recent_ok: ok,
            recent_errors: errors,
        }
    }

    #[test]
    fn failing_when_full_or_mostly_errors() {
        assert!(!Pool::from_report(report(0, 10, 0), 5).failing);
        assert!(!Pool::from_report(report(4, 10, 1), 5).failing);
        assert!(Pool::from_report(report(5, 10, 0), 5).failing);
        assert!(Pool::from_report(report(0, 2, 8), 5).failing);
        // Two errors out of two says little.
        assert!(!Pool::from_report(report(0, 0, 2), 5).failing);
        let p = Pool::from_report(report(1, 3, 2), 5);
        assert_eq!(p.recent_requests, 5);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"checked_out":1,"size":5,"failing":false,"recent_errors":2,"recent_requests":5}"#
        );
    }

    #[test]
    fn hgetall_pairs() {
        let reply = vec![
            RedisResult::Binary(b"a".to_vec()),
            RedisResult::Binary(b"1".to_vec()),
            RedisResult::Binary(b"b".to_vec()),
        ];
        assert_eq!(pairs(reply), vec![("a".to_owned(), "1".to_owned())]);
    }
}
