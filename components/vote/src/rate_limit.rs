//! The per-client vote rate limit, counted in Redis so every instance of the
//! app (and every pod) shares one count per client. The rules — the variable's
//! format, which client a request belongs to — are `poll_core::rate_limit`.
//!
//! It fails open: when Redis cannot be asked, the vote goes on (and will get
//! its own 503 if Redis is really down). A limiter must never be what takes
//! the poll down.

use std::time::Duration;

use guest_kit::{GuestError, HeaderValue, HttpResponse, StatusCode, error, header};
use poll_core::{RateLimit, client_key, parse_flag, parse_rate_limit, retry_after_secs};
use spin_sdk::http::Request;
use spin_sdk::redis::{RedisParameter, RedisResult};

/// Longest the limiter may delay a vote when Redis is slow.
const CHECK_LIMIT: Duration = Duration::from_millis(500);

// A fixed window per client: the first vote starts it (and its expiry), later
// ones only count. KEYS: the client's key. ARGV: window in ms.
// Returns {votes in this window, ms until the window ends}.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// The limit this deployment runs with, or `None` when it is off.
pub async fn configured() -> Result<Option<RateLimit>, GuestError> {
    let raw = guest_kit::variable("vote_rate_limit").await?;
    parse_rate_limit(&raw).map_err(|reason| GuestError::Variable {
        name: "vote_rate_limit".into(),
        reason,
    })
}

/// The client `request` counts against (see `poll_core::client_key`).
pub async fn client_of(request: &Request) -> Result<String, GuestError> {
    let raw = guest_kit::variable("trust_forwarded_for").await?;
    let trust = parse_flag(&raw).map_err(|reason| GuestError::Variable {
        name: "trust_forwarded_for".into(),
        reason,
    })?;
    let text = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Ok(client_key(
        text("spin-client-addr").as_deref(),
        text("x-forwarded-for").as_deref(),
        trust,
    ))
}

/// Counts this vote against its client; `Err` is the 429 to answer.
pub async fn check(request: &Request) -> Result<(), HttpResponse> {
    let limit = match configured().await {
        Ok(Some(limit)) => limit,
        Ok(None) => return Ok(()),
        Err(e) => return Err(e.into_response()),
    };
    let client = client_of(request)
        .await
        .map_err(GuestError::into_response)?;
    match guest_kit::within(CHECK_LIMIT, hit(&client, limit)).await {
        Some(Ok((count, _))) if count <= u64::from(limit.max) => Ok(()),
        Some(Ok((count, remaining))) => {
            // One line per refusal would let an attacker flood the log; the
            // first refusal of a window says enough.
            if count == u64::from(limit.max) + 1 {
                eprintln!(
                    "vote: client {client} passed the rate limit ({limit}); refusing until the window ends"
                );
            }
            Err(too_many(retry_after_secs(remaining)))
        }
        Some(Err(e)) => {
            eprintln!("vote: rate limit not checked, letting the vote through: {e}");
            Ok(())
        }
        None => {
            eprintln!(
                "vote: rate limit not checked within {} ms, letting the vote through",
                CHECK_LIMIT.as_millis()
            );
            Ok(())
        }
    }
}

async fn hit(client: &str, limit: RateLimit) -> Result<(u64, Duration), GuestError> {
    let url = guest_kit::variable("redis_url").await?;
    let prefix = guest_kit::variable("redis_prefix").await?;
    let redis = guest_kit::open_redis(&url).await?;
    let bin = |s: String| RedisParameter::Binary(s.into_bytes());
    let reply = redis
        .execute(
            "EVAL",
            [
                bin(HIT.to_owned()),
                bin("1".to_owned()),
                bin(format!("{prefix}ratelimit:vote:{client}")),
                bin(limit.window.as_millis().to_string()),
            ],
        )
        .await
        .map_err(guest_kit::redis_error)?;
    match reply.as_slice() {
        [RedisResult::Int64(n), RedisResult::Int64(ttl)] => Ok((
            u64::try_from(*n).unwrap_or(0),
            Duration::from_millis(u64::try_from(*ttl).unwrap_or(0)),
        )),
        other => Err(guest_kit::redis_error(format!(
            "rate limit script answered {other:?}"
        ))),
    }
}

/// 429 with `Retry-After`, in the API's `{"detail": …}` shape.
fn too_many(retry_after: u64) -> HttpResponse {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("Too many votes from your network: try again in {retry_after} s"),
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
