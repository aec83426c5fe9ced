//! Records the app's metrics in Redis, where every instance of every component adds to the same
//! numbers and the `metrics` component reads them (key layout and rendering: `poll-metrics`).
//!
//! Recording is off the answer's path and batched: a finished request adds its observation to
//! its instance's batch and is answered at once; a writer task, started by the first request
//! that finds nobody writing, waits a moment, sums whatever the instance's requests observed
//! meanwhile and adds it to Redis in one script call, and repeats until the batch stays empty,
//! then ends (so an idle instance can still be retired). Under load that is one Redis call for
//! many requests; an observation lands at most a few tens of milliseconds after its answer.
//!
//! Recording is best effort: metrics that cannot be written (Redis down) are dropped and the
//! failure is logged; the requests they describe were answered regardless.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use http::{Method, StatusCode};
use poll_metrics::{Counter, Increments, Observation, RECORD_SCRIPT, counter_field, keys};
use spin_sdk::redis::{Connection, RedisParameter, RedisResult};

/// The longest one batch may take to write (Redis slow or down) before it is dropped, so a
/// writer never keeps its instance alive for long.
const WRITE_LIMIT: Duration = Duration::from_millis(500);

/// How long a writer gathers observations before each write: the most an observation waits
/// to reach Redis, and about one write per this long per busy instance.
const GATHER_FOR: Duration = Duration::from_millis(100);

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

    /// Queues the observation for this instance's writer. Never fails, never waits.
    pub fn finish(self, status: StatusCode) {
        let observation = Observation {
            method: self.method,
            endpoint: self.endpoint,
            status: status.as_u16(),
            seconds: self.started.elapsed().as_secs_f64(),
            recent: self
                .in_window
                .then(|| (unix_seconds(), status.is_server_error())),
            counters: self.counters,
        };
        record(|batch| batch.add(&observation));
    }
}

/// Adds one to `counter{label=value}` outside any HTTP observation (for work
/// whose requests are internal, like the referral check the vote component
/// chains to, which must not count as an answered request twice).
pub fn count(counter: Counter, label: &str, value: &str) {
    record(|batch| batch.count(counter_field(counter, label, value), 1));
}

#[derive(Default)]
struct Batch {
    pending: Increments,
    writing: bool,
}

thread_local! {
    // Lives as long as the component instance, shared by all its requests.
    static BATCH: RefCell<Batch> = RefCell::new(Batch::default());
}

fn record(add: impl FnOnce(&mut Increments)) {
    let start_writer = BATCH.with_borrow_mut(|batch| {
        add(&mut batch.pending);
        !std::mem::replace(&mut batch.writing, true)
    });
    if start_writer {
        // Runs after the current request's answer, as work of the request that started it.
        spin_sdk::wasip3::spawn(write_batches());
    }
}

async fn write_batches() {
    loop {
        // Gather for a moment first: under load, the instance's other requests finish
        // meanwhile and share the write.
        spin_sdk::time::sleep(GATHER_FOR).await;
        let increments = BATCH.with_borrow_mut(|batch| {
            if batch.pending.is_empty() {
                batch.writing = false;
                None
            } else {
                Some(std::mem::take(&mut batch.pending))
            }
        });
        let Some(increments) = increments else {
            return;
        };
        let written = crate::within(WRITE_LIMIT, write(&increments))
            .await
            .unwrap_or_else(|| {
                Err(format!(
                    "Redis did not answer within {} ms",
                    WRITE_LIMIT.as_millis()
                ))
            });
        if let Err(e) = written {
            eprintln!(
                "telemetry: dropped the metrics of {} requests: {}",
                increments.observations(),
                crate::redact_secrets(&e)
            );
        }
    }
}

/// The app's Redis and its key prefix, where the metrics live.
async fn metrics_store() -> Result<(Connection, String), String> {
    let url = crate::variable("redis_url")
        .await
        .map_err(|e| e.to_string())?;
    let prefix = crate::variable("redis_prefix")
        .await
        .map_err(|e| e.to_string())?;
    let redis = Connection::open(&url).await.map_err(|e| format!("{e:?}"))?;
    Ok((redis, prefix))
}

async fn write(increments: &Increments) -> Result<(), String> {
    let (redis, prefix) = metrics_store().await?;
    let (keys, argv) = increments.script_args(&prefix);
    let mut args = Vec::with_capacity(2 + keys.len() + argv.len());
    args.push(text(RECORD_SCRIPT));
    args.push(text(keys.len().to_string()));
    args.extend(keys.into_iter().map(text));
    args.extend(argv.into_iter().map(text));
    redis
        .execute("EVAL", args)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
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
    let (redis, prefix) = metrics_store().await?;
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
