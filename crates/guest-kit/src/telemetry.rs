//! Records the app's metrics in Redis, where every instance of every component adds to the same
//! numbers and the `metrics` component reads them (key layout and rendering: `poll-metrics`).
//!
//! Recording is best effort: a request whose metrics cannot be written (Redis down) is still
//! answered, and the failure is logged.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use http::{Method, StatusCode};
use poll_metrics::{
    Counter, bucket_index, counter_field, keys, latency_field_prefix, request_field,
};
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

/// The longest a request's answer waits for its metrics to be written (Redis
/// slow or down): metrics must never hold an answer up for long.
const WRITE_LIMIT: Duration = Duration::from_millis(500);

/// How long the per-second "recent answers" hashes live.
const RECENT_TTL_SECS: u64 = 60;

// One script per observation keeps it to a single Redis round trip.
// KEYS: requests, latency, counters, recent-window hash.
// ARGV: request field, latency prefix, bucket, seconds, window field ('' = none),
//       window ttl, then counter field/increment pairs.
const RECORD: &str = r"
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2] .. 'b' .. ARGV[3], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2] .. 'count', 1)
redis.call('HINCRBYFLOAT', KEYS[2], ARGV[2] .. 'sum', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  redis.call('EXPIRE', KEYS[4], ARGV[6])
end
for i = 7, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[3], ARGV[i], ARGV[i + 1])
end
return 1
";

/// The metrics of one request, written when it is answered.
pub struct RequestMetrics {
    method: &'static str,
    endpoint: &'static str,
    started: Instant,
    counters: Vec<(String, i64)>,
    in_window: bool,
}

/// Methods as bounded label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl RequestMetrics {
    /// Starts timing a request. `endpoint` is a fixed route name chosen by
    /// the component, never the raw path, so label values stay bounded.
    pub fn start(method: &Method, endpoint: &'static str) -> Self {
        Self {
            method: method_label(method),
            endpoint,
            started: Instant::now(),
            counters: Vec::new(),
            in_window: false,
        }
    }

    /// Counts this request's answer in the "recent answers" window the
    /// projector uses to tell that votes are failing.
    pub fn in_recent_window(mut self) -> Self {
        self.in_window = true;
        self
    }

    /// Adds one to `counter{label=value}` when the request is recorded.
    pub fn count(&mut self, counter: Counter, label: &str, value: &str) {
        self.counters
            .push((counter_field(counter, label, value), 1));
    }

    /// Writes the observation. Never fails the request.
    pub async fn finish(self, status: StatusCode) {
        let elapsed = self.started.elapsed();
        match crate::within(WRITE_LIMIT, self.write(status, elapsed)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                eprintln!(
                    "telemetry: cannot record {} {}: {}",
                    self.method,
                    self.endpoint,
                    crate::redact_secrets(&e)
                )
            }
            None => eprintln!(
                "telemetry: recording {} {} took over {} ms; dropped",
                self.method,
                self.endpoint,
                WRITE_LIMIT.as_millis()
            ),
        }
    }

    async fn write(&self, status: StatusCode, elapsed: Duration) -> Result<(), String> {
        let url = crate::variable("redis_url")
            .await
            .map_err(|e| e.to_string())?;
        let prefix = crate::variable("redis_prefix")
            .await
            .map_err(|e| e.to_string())?;
        let redis = Connection::open(&url).await.map_err(|e| format!("{e:?}"))?;
        let window_key = format!("{prefix}{}{}", keys::RECENT, unix_seconds());
        let window_field = match (self.in_window, status.is_server_error()) {
            (false, _) => "",
            (true, false) => "ok",
            (true, true) => "error",
        };
        let seconds = elapsed.as_secs_f64();
        let mut args = vec![
            text(RECORD),
            text("4"),
            text(format!("{prefix}{}", keys::REQUESTS)),
            text(format!("{prefix}{}", keys::LATENCY)),
            text(format!("{prefix}{}", keys::COUNTERS)),
            text(window_key),
            text(request_field(self.method, self.endpoint, status.as_u16())),
            text(latency_field_prefix(self.method, self.endpoint)),
            text(bucket_index(seconds).to_string()),
            text(format!("{seconds:.6}")),
            text(window_field),
            text(RECENT_TTL_SECS.to_string()),
        ];
        for (field, by) in &self.counters {
            args.push(text(field.clone()));
            args.push(text(by.to_string()));
        }
        redis
            .execute("EVAL", args)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }
}

/// Adds one to `counter{label=value}` outside any HTTP observation (for work
/// whose requests are internal, like the referral check the vote component
/// chains to, which must not count as an answered request twice).
pub async fn count(counter: Counter, label: &str, value: &str) {
    let result = crate::within(WRITE_LIMIT, async {
        let url = crate::variable("redis_url")
            .await
            .map_err(|e| e.to_string())?;
        let prefix = crate::variable("redis_prefix")
            .await
            .map_err(|e| e.to_string())?;
        let redis = Connection::open(&url).await.map_err(|e| format!("{e:?}"))?;
        redis
            .execute(
                "HINCRBY",
                [
                    text(format!("{prefix}{}", keys::COUNTERS)),
                    text(counter_field(counter, label, value)),
                    text("1"),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    })
    .await
    .unwrap_or_else(|| Err("Redis did not answer in time".into()));
    if let Err(e) = result {
        eprintln!(
            "telemetry: cannot count {}: {}",
            counter.name,
            crate::redact_secrets(&e)
        );
    }
}

fn text(s: impl Into<String>) -> RedisParameter {
    RedisParameter::Binary(s.into().into_bytes())
}

pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random id for this component instance, the same for all its requests.
/// Instances are what hold Postgres handles, so the pool gauge counts per
/// instance and lets an entry expire when its instance is gone.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        // RandomState is seeded from the host's random source.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        format!("{seed:016x}")
    })
}

// KEYS: this instance's held key, the instances set. ARGV: count, ttl ms, instance id.
const PUBLISH_HELD: &str = r"
if tonumber(ARGV[1]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('SADD', KEYS[2], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// Says how many Postgres handles this instance holds right now. The entry
/// expires after `ttl` unless published again, so an instance that is gone
/// stops counting within `ttl`: keep republishing while holding any.
pub async fn publish_held_handles(held: usize, ttl: Duration) -> Result<(), String> {
    let url = crate::variable("redis_url")
        .await
        .map_err(|e| e.to_string())?;
    let prefix = crate::variable("redis_prefix")
        .await
        .map_err(|e| e.to_string())?;
    let redis = Connection::open(&url).await.map_err(|e| format!("{e:?}"))?;
    let id = instance_id();
    redis
        .execute(
            "EVAL",
            [
                text(PUBLISH_HELD),
                text("2"),
                text(format!("{prefix}{}{id}", keys::POOL_HELD)),
                text(format!("{prefix}{}", keys::POOL_INSTANCES)),
                text(held.to_string()),
                text(ttl.as_millis().to_string()),
                text(id),
            ],
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

// KEYS: instances set. ARGV: held-key prefix, recent-key prefix, now (unix s), window (s).
const POOL_STATUS: &str = r"
local held = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then held = held + tonumber(v) else redis.call('SREM', KEYS[1], id) end
end
local ok, err = 0, 0
local now = tonumber(ARGV[3])
for s = now - tonumber(ARGV[4]) + 1, now do
  ok = ok + tonumber(redis.call('HGET', ARGV[2] .. s, 'ok') or '0')
  err = err + tonumber(redis.call('HGET', ARGV[2] .. s, 'error') or '0')
end
return {held, ok, err}
";

/// What the app's instances report about PostgreSQL handles and recent votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolReport {
    /// Handles held right now, summed over live instances.
    pub held: i64,
    /// Vote answers in the window: not 5xx, and 5xx.
    pub recent_ok: i64,
    pub recent_errors: i64,
}

/// Reads the pool gauge and the last `window_secs` seconds of vote answers.
pub async fn pool_report(
    redis: &Connection,
    prefix: &str,
    window_secs: u64,
) -> Result<PoolReport, crate::GuestError> {
    let reply = redis
        .execute(
            "EVAL",
            [
                text(POOL_STATUS),
                text("1"),
                text(format!("{prefix}{}", keys::POOL_INSTANCES)),
                text(format!("{prefix}{}", keys::POOL_HELD)),
                text(format!("{prefix}{}", keys::RECENT)),
                text(unix_seconds().to_string()),
                text(window_secs.to_string()),
            ],
        )
        .await
        .map_err(crate::redis_error)?;
    match reply.as_slice() {
        [
            RedisResult::Int64(held),
            RedisResult::Int64(ok),
            RedisResult::Int64(errors),
        ] => Ok(PoolReport {
            held: *held,
            recent_ok: *ok,
            recent_errors: *errors,
        }),
        other => Err(crate::redis_error(format!(
            "pool status script answered {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").unwrap_or(Method::GET)),
            "OTHER"
        );
    }

    #[test]
    fn instance_id_is_stable() {
        assert_eq!(instance_id(), instance_id());
        assert_eq!(instance_id().len(), 16);
    }
}
