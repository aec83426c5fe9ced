use std::pin::pin;
use std::time::Duration;

use futures::future::{Either, select};
use spin_sdk::{pg, redis};

use crate::GuestError;

const DB_UNAVAILABLE: &str = "Database unavailable";
const REDIS_UNAVAILABLE: &str = "Redis unavailable";

/// Opens a PostgreSQL connection, giving up after `wait`
/// (`Duration::ZERO` = wait as long as the host makes us).
///
/// The host may hold an open back until a connection slot is free
/// (`[outbound_pg] max_connections`); bounding that wait turns exhaustion into
/// a prompt 503 instead of a request that hangs with no answer. Dropping the
/// pending open on timeout cancels it on the host side.
pub async fn open_postgres(url: &str, wait: Duration) -> Result<pg::Connection, GuestError> {
    let open = pg::Connection::open(url);
    if wait.is_zero() {
        return open.await.map_err(postgres_error);
    }
    match within(wait, open).await {
        Some(opened) => opened.map_err(postgres_error),
        None => Err(GuestError::NoConnection {
            waited_ms: wait.as_millis(),
        }),
    }
}

/// Runs `work` for at most `limit`; `None` if time ran out. The unfinished
/// work is dropped, which cancels any host call it was waiting on.
pub async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    match select(pin!(work), pin!(spin_sdk::time::sleep(limit))).await {
        Either::Left((done, _)) => Some(done),
        Either::Right(((), _)) => None,
    }
}

/// Opens a Redis connection.
pub async fn open_redis(url: &str) -> Result<redis::Connection, GuestError> {
    redis::Connection::open(url).await.map_err(redis_error)
}

/// Any PostgreSQL failure, as the 503 the contract asks for.
pub fn postgres_error(e: impl std::fmt::Display) -> GuestError {
    GuestError::unavailable(DB_UNAVAILABLE, format!("postgres: {e}"))
}

/// Any Redis failure, as a 503.
pub fn redis_error(e: impl std::fmt::Debug) -> GuestError {
    // The SDK's Redis error has no Display, only Debug.
    GuestError::unavailable(REDIS_UNAVAILABLE, format!("redis: {e:?}"))
}
