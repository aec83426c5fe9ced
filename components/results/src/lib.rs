//! `GET /votes`: the five running counts from Redis, in the shape
//! `{"print":{"count":n,"label":"..."}, ...}`. When Redis has lost them
//! (restart, flush) they are rebuilt from PostgreSQL first (`guest_kit::counts`).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::time::Duration;

use guest_kit::telemetry::RequestMetrics;
use guest_kit::{GuestError, HttpResponse, Method, StatusCode, counts, json, method_not_allowed};
use poll_core::Tally;
use spin_sdk::http::Request;
use spin_sdk::http_service;

/// How often to look again while another instance rebuilds the counts.
const REBUILD_POLL: Duration = Duration::from_millis(50);
const REBUILD_POLLS: u32 = 40;

#[http_service]
async fn handle(request: Request) -> HttpResponse {
    let metrics = RequestMetrics::start(request.method(), "/votes");
    let response = if request.method() != Method::GET && request.method() != Method::HEAD {
        method_not_allowed("GET, HEAD")
    } else {
        match tally().await {
            Ok(tally) => json(StatusCode::OK, &tally),
            Err(e) => e.into_response(),
        }
    };
    metrics.finish(response.status());
    response
}

async fn tally() -> Result<Tally, GuestError> {
    let redis_url = guest_kit::variable("redis_url").await?;
    let prefix = guest_kit::variable("redis_prefix").await?;
    let redis = guest_kit::open_redis(&redis_url).await?;
    // The projector asks twice a second: one round trip in the usual case.
    if let Some(tally) = counts::read(&redis, &prefix).await? {
        return Ok(tally);
    }

    let db_url = guest_kit::variable("db_url").await?;
    let db_wait = guest_kit::duration_ms_variable("db_wait_timeout_ms").await?;
    let db = guest_kit::open_postgres(&db_url, db_wait).await?;
    for _ in 0..REBUILD_POLLS {
        if let Some(tally) = counts::rebuild(&db, &redis, &prefix).await? {
            return Ok(tally);
        }
        // Someone else is rebuilding: their result will do.
        spin_sdk::time::sleep(REBUILD_POLL).await;
        if let Some(tally) = counts::read(&redis, &prefix).await? {
            return Ok(tally);
        }
    }
    Err(GuestError::unavailable(
        "Vote counts are being rebuilt",
        "rebuild did not finish in time",
    ))
}
