//! The speaker's controls, behind the `admin_token` variable:
//!
//! - `GET /admin/status`: votes in PostgreSQL and in Redis per choice, the pool gauge, referral
//!   lookups by outcome — what the speaker checks before the talk and while it breaks;
//! - `POST /admin/reset`: deletes every vote and resets the live counts, for a fresh session.
//!
//! The token travels as `Authorization: Bearer <token>`. With no token configured the endpoints
//! refuse everyone, so a deployment that forgot to set one is not open to the room.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::collections::BTreeMap;

use guest_kit::telemetry::{PoolReport, RequestMetrics, pool_report};
use guest_kit::{
    GuestError, HttpResponse, Method, StatusCode, counts, error, header, json, method_not_allowed,
    not_found,
};
use poll_core::{Choice, Tally};
use poll_metrics::{REFERRAL_LOOKUPS, SEP, keys};
use serde::Serialize;
use spin_sdk::http::Request;
use spin_sdk::http_service;
use spin_sdk::pg::DbValue;
use spin_sdk::redis::{RedisParameter, RedisResult};

#[http_service]
async fn handle(request: Request) -> HttpResponse {
    let endpoint = match request.uri().path() {
        "/admin/status" => "/admin/status",
        "/admin/reset" => "/admin/reset",
        _ => "/admin/other",
    };
    let metrics = RequestMetrics::start(request.method(), endpoint);
    let response = respond(&request, endpoint).await;
    metrics.finish(response.status());
    response
}

async fn respond(request: &Request, endpoint: &str) -> HttpResponse {
    if let Err(refusal) = authorize(request).await {
        return refusal;
    }
    match (endpoint, request.method()) {
        ("/admin/status", &Method::GET) => match status().await {
            Ok(s) => json(StatusCode::OK, &s),
            Err(e) => e.into_response(),
        },
        ("/admin/status", _) => method_not_allowed("GET"),
        ("/admin/reset", &Method::POST) => match reset().await {
            Ok(()) => json(StatusCode::OK, &Reset { status: "reset" }),
            Err(e) => e.into_response(),
        },
        ("/admin/reset", _) => method_not_allowed("POST"),
        _ => not_found(),
    }
}

/// Checks the bearer token; the refusal is the response to send.
async fn authorize(request: &Request) -> Result<(), HttpResponse> {
    let expected = guest_kit::variable("admin_token")
        .await
        .map_err(GuestError::into_response)?;
    if expected.trim().is_empty() {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Admin is disabled: no admin_token is configured",
        ));
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(token) if same_secret(token.as_bytes(), expected.trim().as_bytes()) => Ok(()),
        Some(_) => Err(error(StatusCode::FORBIDDEN, "Wrong admin token")),
        None => {
            let mut r = error(StatusCode::UNAUTHORIZED, "Admin token required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                guest_kit::HeaderValue::from_static("Bearer"),
            );
            Err(r)
        }
    }
}

/// Compares in time that depends only on the lengths, so response timing
/// does not reveal how much of a guessed token was right.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for i in 0..given.len().max(expected.len()) {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= usize::from(a ^ b);
    }
    diff == 0
}

#[derive(Serialize)]
struct Reset {
    status: &'static str,
}

#[derive(Serialize)]
struct Status {
    /// Rows per choice, or null when PostgreSQL did not answer.
    votes_db: Option<BTreeMap<&'static str, i64>>,
    /// Live counts per choice, or null when Redis has no valid copy.
    votes_redis: Option<BTreeMap<&'static str, i64>>,
    pool: PoolStatus,
    referral_lookups: BTreeMap<String, i64>,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct PoolStatus {
    checked_out: i64,
    size: i64,
}

fn per_choice(tally: &Tally) -> BTreeMap<&'static str, i64> {
    Choice::ALL
        .iter()
        .map(|c| (c.id(), tally.get(*c)))
        .collect()
}

async fn status() -> Result<Status, GuestError> {
    let redis_url = guest_kit::variable("redis_url").await?;
    let prefix = guest_kit::variable("redis_prefix").await?;
    let size = guest_kit::variable("db_pool_size")
        .await?
        .trim()
        .parse()
        .unwrap_or(0);
    let redis = guest_kit::open_redis(&redis_url).await?;
    let mut problems = Vec::new();

    let votes_db = match votes_in_db().await {
        Ok(t) => Some(per_choice(&t)),
        Err(e) => {
            problems.push(format!("postgres: {}", e.detail()));
            None
        }
    };
    let votes_redis = counts::read(&redis, &prefix).await?.map(|t| per_choice(&t));
    if votes_redis.is_none() {
        problems.push("redis: no valid copy of the counts (rebuilt on the next read)".into());
    }
    let PoolReport { held, .. } = pool_report(&redis, &prefix, 10).await?;
    let reply = redis
        .execute(
            "HGETALL",
            [RedisParameter::Binary(
                format!("{prefix}{}", keys::COUNTERS).into_bytes(),
            )],
        )
        .await
        .map_err(guest_kit::redis_error)?;
    Ok(Status {
        votes_db,
        votes_redis,
        pool: PoolStatus {
            checked_out: held,
            size,
        },
        referral_lookups: referral_outcomes(&reply),
        problems,
    })
}

/// `outcome → count` out of the counters hash's HGETALL reply.
fn referral_outcomes(reply: &[RedisResult]) -> BTreeMap<String, i64> {
    let prefix = format!("{}{SEP}outcome=", REFERRAL_LOOKUPS.name);
    reply
        .chunks_exact(2)
        .filter_map(|kv| match (&kv[0], &kv[1]) {
            (RedisResult::Binary(k), RedisResult::Binary(v)) => {
                let field = String::from_utf8_lossy(k);
                let outcome = field.strip_prefix(&prefix)?.to_owned();
                let n = String::from_utf8_lossy(v).parse().ok()?;
                Some((outcome, n))
            }
            _ => None,
        })
        .collect()
}

async fn db() -> Result<spin_sdk::pg::Connection, GuestError> {
    let url = guest_kit::variable("db_url").await?;
    let wait = guest_kit::duration_ms_variable("db_wait_timeout_ms").await?;
    guest_kit::open_postgres(&url, wait).await
}

async fn votes_in_db() -> Result<Tally, GuestError> {
    let db = db().await?;
    let rows = db
        .query(
            "SELECT choice, count(*) FROM votes GROUP BY choice",
            Vec::new(),
        )
        .await
        .map_err(guest_kit::postgres_error)?
        .collect()
        .await
        .map_err(guest_kit::postgres_error)?;
    let mut tally = Tally::default();
    for row in &rows {
        if let (DbValue::Str(id), DbValue::Int64(n)) = (&row[0], &row[1])
            && let Some(choice) = Choice::from_id(id)
        {
            tally.set(choice, *n);
        }
    }
    Ok(tally)
}

/// Deletes the votes, then has the live counts rebuilt from the now empty
/// table (`guest_kit::counts`): PostgreSQL and Redis end up agreeing even if
/// votes arrive while this runs.
async fn reset() -> Result<(), GuestError> {
    let redis_url = guest_kit::variable("redis_url").await?;
    let prefix = guest_kit::variable("redis_prefix").await?;
    let redis = guest_kit::open_redis(&redis_url).await?;
    let db = db().await?;
    db.execute("BEGIN", Vec::new())
        .await
        .map_err(guest_kit::postgres_error)?;
    let deleted = async {
        db.execute("LOCK TABLE votes IN EXCLUSIVE MODE", Vec::new())
            .await?;
        db.execute("DELETE FROM votes", Vec::new()).await
    }
    .await;
    match deleted {
        Ok(n) => {
            db.execute("COMMIT", Vec::new())
                .await
                .map_err(guest_kit::postgres_error)?;
            eprintln!("admin: reset deleted {n} votes");
        }
        Err(e) => {
            let _ = db.execute("ROLLBACK", Vec::new()).await;
            return Err(guest_kit::postgres_error(e));
        }
    }
    counts::invalidate(&redis, &prefix).await?;
    counts::rebuild(&db, &redis, &prefix).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        assert!(!same_secret(b"s3cret", b"s3creT"));
        assert!(!same_secret(b"s3cre", b"s3cret"));
        assert!(!same_secret(b"", b"s3cret"));
        assert!(!same_secret(b"s3cret\0", b"s3cret"));
    }

    #[test]
    fn referral_outcomes_from_counters() {
        let b = |s: &str| RedisResult::Binary(s.as_bytes().to_vec());
        let reply = vec![
            b("referral_lookups_total\toutcome=timed_out"),
            b("5"),
            b("db_connection_wait_timeouts_total\tcomponent=vote"),
            b("9"),
        ];
        let outcomes = referral_outcomes(&reply);
        assert_eq!(outcomes.len(), 1);
        assert_eq!(outcomes["timed_out"], 5);
    }
}
