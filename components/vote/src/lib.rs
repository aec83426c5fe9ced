//! `POST /vote`: hold the client to the vote rate limit, validate the vote,
//! check its referral code with the referral component, store it in
//! PostgreSQL, then bump its Redis counter.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod rate_limit;

use guest_kit::telemetry::RequestMetrics;
use guest_kit::{
    BodyError, GuestError, HttpResponse, Method, StatusCode, counts, error, header, json,
    method_not_allowed,
};
use poll_core::{
    ErrorBody, INVALID_REFERRAL_DETAIL, MAX_BODY_BYTES, ReferralCode, Vote, VoteReceipt,
    is_json_content_type, parse_vote, referral_path,
};
use poll_metrics::DB_WAIT_TIMEOUTS;
use spin_sdk::http::Request;
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http_service;
use spin_sdk::pg::ParameterValue;

/// The referral component, reached through Spin's local service chaining
/// (allowed by `http://referral.spin.internal` in spin.toml).
const REFERRAL_SERVICE: &str = "http://referral.spin.internal";

#[http_service]
async fn handle(request: Request) -> HttpResponse {
    let mut metrics = RequestMetrics::start(request.method(), "/vote").in_recent_window();
    let response = if request.method() != Method::POST {
        method_not_allowed("POST")
    } else {
        match cast_vote(request, &mut metrics).await {
            Ok(receipt) => json(StatusCode::OK, &receipt),
            Err(response) => response,
        }
    };
    metrics.finish(response.status());
    response
}

async fn cast_vote(
    request: Request,
    metrics: &mut RequestMetrics,
) -> Result<VoteReceipt, HttpResponse> {
    // Every attempt counts, valid or not: a script sending junk is as much
    // a flood as one sending votes, and a phone never sends junk.
    rate_limit::check(&request).await?;

    // A body without a content-type is parsed as JSON, as the original
    // (FastAPI) app did; one declared as anything else is refused.
    if let Some(value) = request.headers().get(header::CONTENT_TYPE)
        && !value.to_str().is_ok_and(is_json_content_type)
    {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }

    let body = guest_kit::read_body_limited(request, MAX_BODY_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { .. } => {
                error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
            }
            BodyError::Read(_) => error(StatusCode::BAD_REQUEST, "Cannot read request body"),
        })?;

    let vote = parse_vote(&body).map_err(|e| error(StatusCode::BAD_REQUEST, e.detail()))?;

    if let Some(code) = &vote.referral {
        check_referral(code).await?;
    }

    record(&vote).await.map_err(|e| {
        if matches!(e, GuestError::NoConnection { .. }) {
            metrics.count(DB_WAIT_TIMEOUTS, "component", "vote");
        }
        e.into_response()
    })?;
    Ok(VoteReceipt::new(vote.choice))
}

/// What the referral component said about a code.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Valid,
    Unknown,
    Unavailable,
}

/// Asks the referral component whether a partner owns `code`, giving up after
/// `referral_timeout_ms` so a stuck check still gets the voter an answer.
async fn check_referral(code: &ReferralCode) -> Result<(), HttpResponse> {
    let limit = guest_kit::duration_ms_variable("referral_timeout_ms")
        .await
        .map_err(GuestError::into_response)?;
    let url = format!("{REFERRAL_SERVICE}{}", referral_path(code));
    let ask = async {
        let response = spin_sdk::http::get(&url).await?;
        let status = response.status();
        // Only a 404's body matters (see `verdict`); it is one short line.
        let body = if status == StatusCode::NOT_FOUND {
            response.into_body().bytes().await.unwrap_or_default()
        } else {
            Default::default()
        };
        Ok::<_, spin_sdk::http::Error>(verdict(status, &body))
    };
    let verdict = match guest_kit::within(limit, ask).await {
        Some(Ok(verdict)) => verdict,
        Some(Err(e)) => {
            eprintln!(
                "vote: referral service unreachable: {}",
                guest_kit::redact_secrets(&e.to_string())
            );
            Verdict::Unavailable
        }
        None => {
            eprintln!(
                "vote: referral service gave no answer within {} ms",
                limit.as_millis()
            );
            Verdict::Unavailable
        }
    };
    match verdict {
        Verdict::Valid => Ok(()),
        Verdict::Unknown => Err(error(StatusCode::BAD_REQUEST, INVALID_REFERRAL_DETAIL)),
        Verdict::Unavailable => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Referral service unavailable",
        )),
    }
}

/// 200 is a known code. A 404 counts as "unknown code" only when it is the
/// referral component's own verdict: a 404 from anywhere else (a routing
/// mistake, say) must not silently turn every referral vote away.
fn verdict(status: StatusCode, body: &[u8]) -> Verdict {
    match status {
        StatusCode::OK => Verdict::Valid,
        StatusCode::NOT_FOUND
            if serde_json::from_slice::<ErrorBody>(body)
                .is_ok_and(|e| e.detail == INVALID_REFERRAL_DETAIL) =>
        {
            Verdict::Unknown
        }
        other => {
            eprintln!("vote: referral service answered {other}");
            Verdict::Unavailable
        }
    }
}

/// PostgreSQL first, Redis second, in one PostgreSQL transaction: the vote
/// is inserted, counted in Redis, then committed. If Redis cannot count it
/// the insert is rolled back, so an answer other than 200 means the vote is in
/// neither store. Why counting inside the transaction cannot double count
/// after Redis loses its counts: `guest_kit::counts`.
async fn record(vote: &Vote) -> Result<(), GuestError> {
    let db_url = guest_kit::variable("db_url").await?;
    let db_wait = guest_kit::duration_ms_variable("db_wait_timeout_ms").await?;
    let redis_url = guest_kit::variable("redis_url").await?;
    let redis_prefix = guest_kit::variable("redis_prefix").await?;

    // Redis first: the PostgreSQL connection holds one of the app's few slots, so it is taken
    // last and given back as soon as the transaction ends.
    let redis = guest_kit::open_redis(&redis_url).await?;
    let db = guest_kit::open_postgres(&db_url, db_wait).await?;
    db.execute("BEGIN", Vec::new())
        .await
        .map_err(guest_kit::postgres_error)?;
    let counted = match insert_and_count(&db, &redis, &redis_prefix, vote).await {
        Ok(counted) => counted,
        Err(e) => {
            if let Err(rollback) = db.execute("ROLLBACK", Vec::new()).await {
                eprintln!(
                    "vote: rollback failed: {}",
                    guest_kit::redact_secrets(&rollback.to_string())
                );
            }
            return Err(e);
        }
    };
    if let Err(e) = db.execute("COMMIT", Vec::new()).await {
        // Not stored, so it must not stay counted either.
        if counted && let Err(undo) = counts::add(&redis, &redis_prefix, vote.choice, -1).await {
            eprintln!("vote: cannot take back the count of an uncommitted vote: {undo}");
        }
        return Err(guest_kit::postgres_error(e));
    }
    if !counted {
        // Redis has no valid copy of the counts (restarted or flushed):
        // rebuild it now, this vote included, rather than wait for a reader.
        if let Err(e) = counts::rebuild(&db, &redis, &redis_prefix).await {
            eprintln!("vote: cannot rebuild the counts: {e}");
        }
    }
    Ok(())
}

async fn insert_and_count(
    db: &spin_sdk::pg::Connection,
    redis: &spin_sdk::redis::Connection,
    redis_prefix: &str,
    vote: &Vote,
) -> Result<bool, GuestError> {
    db.execute(
        "INSERT INTO votes (choice, referral_code) VALUES ($1, $2)",
        vec![
            ParameterValue::Str(vote.choice.id().to_owned()),
            vote.referral
                .as_ref()
                .map(|code| code.as_str().to_owned())
                .into(),
        ],
    )
    .await
    .map_err(guest_kit::postgres_error)?;
    counts::add(redis, redis_prefix, vote.choice, 1).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referral_verdicts() {
        assert_eq!(verdict(StatusCode::OK, b""), Verdict::Valid);
        assert_eq!(
            verdict(
                StatusCode::NOT_FOUND,
                br#"{"detail":"Invalid referral code"}"#
            ),
            Verdict::Unknown
        );
        for (status, body) in [
            (StatusCode::NOT_FOUND, &br#"{"detail":"Not found"}"#[..]),
            (StatusCode::NOT_FOUND, b"not json"),
            (StatusCode::NOT_FOUND, b""),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"detail":"Database unavailable"}"#,
            ),
            (StatusCode::INTERNAL_SERVER_ERROR, b""),
            (
                StatusCode::BAD_REQUEST,
                br#"{"detail":"Invalid referral code"}"#,
            ),
        ] {
            assert_eq!(verdict(status, body), Verdict::Unavailable, "{status}");
        }
    }
}
