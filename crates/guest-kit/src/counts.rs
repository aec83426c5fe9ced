//! The live vote counts in Redis, and how they stay equal to the rows in PostgreSQL.
//!
//! PostgreSQL is the record; Redis holds a copy of `SELECT choice, count(*)` that is cheap to
//! read twice a second. The copy is valid only while the marker key `counts:ready` exists. A
//! Redis restart or flush removes the marker with the counts, so nobody trusts a half-empty copy:
//!
//! - A vote is counted inside its own PostgreSQL transaction: `INSERT`, then the count script,
//!   then `COMMIT`. The script adds one only while the marker exists.
//! - A rebuild takes `LOCK TABLE votes IN SHARE MODE` (which waits for every open vote
//!   transaction and holds back new inserts), counts the rows, writes all five counts and the
//!   marker, then commits. Every vote therefore lands exactly once: either it committed before
//!   the rebuild's count (and any increment it made is overwritten by that count), or its insert
//!   waited for the rebuild and it increments the fresh counts.

use poll_core::counts::{COUNT_SCRIPT, READ_SCRIPT, READY_KEY, REBUILD_SCRIPT, REBUILDING_KEY};
use poll_core::{Choice, Tally, vote_key};
use spin_sdk::pg::{self, DbValue};
use spin_sdk::redis::{self, RedisParameter, RedisResult};

use crate::{GuestError, postgres_error, redis_error};

fn bin(s: impl Into<String>) -> RedisParameter {
    RedisParameter::Binary(s.into().into_bytes())
}

fn count_keys(prefix: &str) -> impl Iterator<Item = RedisParameter> + '_ {
    Choice::ALL
        .into_iter()
        .map(move |c| bin(vote_key(prefix, c)))
}

/// Adds `delta` to `choice`'s count if the copy is valid. `Ok(false)` means
/// there is no valid copy: the vote is in PostgreSQL and a rebuild will count it.
pub async fn add(
    redis: &redis::Connection,
    prefix: &str,
    choice: Choice,
    delta: i64,
) -> Result<bool, GuestError> {
    let reply = redis
        .execute(
            "EVAL",
            [
                bin(COUNT_SCRIPT),
                bin("2"),
                bin(format!("{prefix}{READY_KEY}")),
                bin(vote_key(prefix, choice)),
                bin(delta.to_string()),
            ],
        )
        .await
        .map_err(redis_error)?;
    Ok(!matches!(reply.first(), Some(RedisResult::Int64(-1))))
}

/// The counts, or `None` when the copy is not valid and must be rebuilt.
pub async fn read(redis: &redis::Connection, prefix: &str) -> Result<Option<Tally>, GuestError> {
    let mut args = vec![
        bin(READ_SCRIPT),
        bin("6"),
        bin(format!("{prefix}{READY_KEY}")),
    ];
    args.extend(count_keys(prefix));
    let reply = redis.execute("EVAL", args).await.map_err(redis_error)?;
    tally_from_reply(&reply)
}

fn tally_from_reply(reply: &[RedisResult]) -> Result<Option<Tally>, GuestError> {
    if matches!(reply, [RedisResult::Int64(-1)]) {
        return Ok(None);
    }
    if reply.len() != Choice::ALL.len() {
        return Err(redis_error(format!(
            "count script answered {} values",
            reply.len()
        )));
    }
    let mut tally = Tally::default();
    for (choice, value) in Choice::ALL.into_iter().zip(reply) {
        match value {
            RedisResult::Int64(n) => tally.set(choice, *n),
            other => return Err(redis_error(format!("count is not an integer: {other:?}"))),
        }
    }
    Ok(Some(tally))
}

/// Forgets the copy (after a reset): the next reader rebuilds it.
pub async fn invalidate(redis: &redis::Connection, prefix: &str) -> Result<(), GuestError> {
    redis
        .del(&[format!("{prefix}{READY_KEY}")])
        .await
        .map(|_| ())
        .map_err(redis_error)
}

/// Rebuilds the copy from PostgreSQL (see the module docs for why this
/// cannot double count). Returns `None` if another rebuild is under way.
pub async fn rebuild(
    db: &pg::Connection,
    redis: &redis::Connection,
    prefix: &str,
) -> Result<Option<Tally>, GuestError> {
    // One rebuilder at a time; the lock expires on its own if its holder dies.
    let lock = redis
        .execute(
            "SET",
            [
                bin(format!("{prefix}{REBUILDING_KEY}")),
                bin("1"),
                bin("NX"),
                bin("PX"),
                bin("5000"),
            ],
        )
        .await
        .map_err(redis_error)?;
    if !matches!(lock.first(), Some(RedisResult::Status(s)) if s == "OK") {
        return Ok(None);
    }
    db.execute("BEGIN", Vec::new())
        .await
        .map_err(postgres_error)?;
    let result = rebuild_in_transaction(db, redis, prefix).await;
    match &result {
        Ok(_) => db.execute("COMMIT", Vec::new()).await.map(|_| ()),
        Err(_) => db.execute("ROLLBACK", Vec::new()).await.map(|_| ()),
    }
    .map_err(postgres_error)?;
    result.map(Some)
}

async fn rebuild_in_transaction(
    db: &pg::Connection,
    redis: &redis::Connection,
    prefix: &str,
) -> Result<Tally, GuestError> {
    db.execute("LOCK TABLE votes IN SHARE MODE", Vec::new())
        .await
        .map_err(postgres_error)?;
    let rows = db
        .query(
            "SELECT choice, count(*) FROM votes GROUP BY choice",
            Vec::new(),
        )
        .await
        .map_err(postgres_error)?
        .collect()
        .await
        .map_err(postgres_error)?;
    let mut tally = Tally::default();
    for row in &rows {
        let (DbValue::Str(id), DbValue::Int64(n)) = (&row[0], &row[1]) else {
            return Err(postgres_error("unexpected column types counting votes"));
        };
        if let Some(choice) = Choice::from_id(id) {
            tally.set(choice, *n);
        }
    }
    let mut args = vec![
        bin(REBUILD_SCRIPT),
        bin("7"),
        bin(format!("{prefix}{READY_KEY}")),
        bin(format!("{prefix}{REBUILDING_KEY}")),
    ];
    args.extend(count_keys(prefix));
    args.extend(Choice::ALL.map(|c| bin(tally.get(c).to_string())));
    redis.execute("EVAL", args).await.map_err(redis_error)?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_choices_in_order() {
        let reply: Vec<_> = [3, 0, 5, 0, 12].map(RedisResult::Int64).into();
        let tally = tally_from_reply(&reply).unwrap().unwrap();
        assert_eq!(tally.get(Choice::Print), 3);
        assert_eq!(tally.get(Choice::Ai), 5);
        assert_eq!(tally.get(Choice::Restart), 12);
        assert_eq!(tally.total(), 20);
    }

    #[test]
    fn no_valid_copy_is_none_and_odd_replies_are_errors() {
        assert!(
            tally_from_reply(&[RedisResult::Int64(-1)])
                .unwrap()
                .is_none()
        );
        assert!(tally_from_reply(&[RedisResult::Int64(1)]).is_err());
        let mut reply: Vec<_> = [1, 2, 3, 4, 5].map(RedisResult::Int64).into();
        reply[2] = RedisResult::Binary(b"lots".to_vec());
        assert!(tally_from_reply(&reply).is_err());
    }
}
