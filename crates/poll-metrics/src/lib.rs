//! The poll's own metrics: how components record them and how `GET /metrics` renders them.
//!
//! On real Spin a component cannot see the host's connection semaphore or request counters, and
//! every instance of every component has its own memory. So the app keeps its metrics where all
//! instances can reach them: Redis hashes under the app's key prefix. Each request adds one
//! observation (see `guest-kit`'s telemetry module); the `metrics` component reads the hashes and
//! renders Prometheus text. This crate holds the pure half of that: key names, field encodings,
//! histogram buckets, and the text format, so both sides agree and it is tested natively.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod record;
mod render;

pub use record::{Increments, Observation, RECENT_TTL_SECS, RECORD_SCRIPT};
pub use render::{Exposition, render_counters, render_latency, render_requests};

/// Upper bounds (seconds) of the latency histogram. 2 s is one of them because
/// `VoteAPIHighLatency` asks whether p95 exceeds 2 s.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0,
];

/// Separates the parts of a hash field. Label values are ours (static
/// endpoint names, status codes), never raw client input, so a tab cannot
/// occur in them.
pub const SEP: char = '\t';

/// Redis keys, relative to the app's `redis_prefix`.
pub mod keys {
    /// Hash: `method SEP endpoint SEP status` → request count.
    pub const REQUESTS: &str = "metrics:requests";
    /// Hash: `method SEP endpoint SEP b<index>` → observations in that bucket
    /// (not cumulative), plus `… SEP sum` and `… SEP count`.
    pub const LATENCY: &str = "metrics:latency";
    /// Hash: `name SEP label=value,…` → counter value.
    pub const COUNTERS: &str = "metrics:counters";
    /// Hash per second (`metrics:recent:<unix second>`): `ok` / `error`
    /// answers of vote requests in that second, expiring after a minute. The
    /// projector reads the last few seconds to say "the app is failing".
    pub const RECENT: &str = "metrics:recent:";
    /// Set of instance ids that reported Postgres handles they hold.
    pub const POOL_INSTANCES: &str = "pool:instances";
    /// String per instance (`pool:held:<id>`): handles that instance holds,
    /// with a short expiry the holder keeps refreshing.
    pub const POOL_HELD: &str = "pool:held:";
}

/// Index into [`BUCKETS`] of the first bucket an observation falls in;
/// `BUCKETS.len()` is the `+Inf` bucket.
pub fn bucket_index(seconds: f64) -> usize {
    BUCKETS
        .iter()
        .position(|&le| seconds <= le)
        .unwrap_or(BUCKETS.len())
}

/// The `REQUESTS` hash field of one answer.
pub fn request_field(method: &str, endpoint: &str, status: u16) -> String {
    format!("{method}{SEP}{endpoint}{SEP}{status}")
}

/// The prefix of a `LATENCY` hash field; append `b<index>`, `sum` or `count`.
pub fn latency_field_prefix(method: &str, endpoint: &str) -> String {
    format!("{method}{SEP}{endpoint}{SEP}")
}

/// A counter the app keeps beside the HTTP ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub name: &'static str,
    pub help: &'static str,
}

/// Referral lookups by outcome: `matched` (found by key), `unknown` (no
/// partner has that code), `timed_out` (the key lookup hit the database's
/// statement_timeout), `exact_matched` / `exact_unknown` (the fallback after a
/// timeout), `failed` (anything else, e.g. no connection).
pub const REFERRAL_LOOKUPS: Counter = Counter {
    name: "referral_lookups_total",
    help: "Referral code lookups by outcome.",
};

/// Requests that gave up waiting for a PostgreSQL connection slot.
pub const DB_WAIT_TIMEOUTS: Counter = Counter {
    name: "db_connection_wait_timeouts_total",
    help: "Requests that gave up waiting for a free PostgreSQL connection slot, by component.",
};

/// Every counter `/metrics` knows how to describe.
pub const COUNTERS: [Counter; 2] = [REFERRAL_LOOKUPS, DB_WAIT_TIMEOUTS];

/// The `COUNTERS` hash field of `counter` with one label.
pub fn counter_field(counter: Counter, label: &str, value: &str) -> String {
    format!("{}{SEP}{label}={value}", counter.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        assert_eq!(bucket_index(0.0), 0);
        assert_eq!(bucket_index(0.005), 0);
        assert_eq!(bucket_index(0.0051), 1);
        assert_eq!(bucket_index(2.0), 8);
        assert_eq!(bucket_index(2.1), 9);
        assert_eq!(bucket_index(10.0), 11);
        assert_eq!(bucket_index(60.0), BUCKETS.len());
    }

    #[test]
    fn buckets_ascend() {
        assert!(BUCKETS.windows(2).all(|w| w[0] < w[1]));
        assert!(BUCKETS.contains(&2.0));
    }

    #[test]
    fn fields() {
        assert_eq!(request_field("POST", "/vote", 503), "POST\t/vote\t503");
        assert_eq!(latency_field_prefix("GET", "/votes"), "GET\t/votes\t");
        assert_eq!(
            counter_field(REFERRAL_LOOKUPS, "outcome", "timed_out"),
            "referral_lookups_total\toutcome=timed_out"
        );
    }
}
