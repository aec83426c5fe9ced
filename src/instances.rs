//! Instance lifetime, the way Spin runs WASIp3 HTTP components: each instance serves up to
//! `max_instance_reuse_count` requests, at most `max_instance_concurrent_reuse_count` at once, is
//! dropped after `idle_instance_timeout` without work, and requests have no deadline unless
//! `--request-timeout` is given. An instance (and everything its guest keeps in statics, including
//! open Postgres connections) is dropped only once all its in-flight work has finished.

use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus};

use crate::host::HostState;

/// A value or an inclusive range to pick from per instance (`5` or `5..10`), as Spin's flags take.
#[derive(Debug, Clone, PartialEq)]
pub struct Pick<T>(pub RangeInclusive<T>);

impl<T: Copy> Pick<T> {
    pub fn fixed(v: T) -> Self {
        Self(v..=v)
    }
}

impl Pick<u64> {
    pub fn pick(&self) -> u64 {
        let (a, b) = (*self.0.start(), *self.0.end());
        if a >= b { a } else { fastrand::u64(a..=b) }
    }
}

impl Pick<Duration> {
    pub fn pick(&self) -> Duration {
        let (a, b) = (*self.0.start(), *self.0.end());
        if a >= b {
            a
        } else {
            Duration::from_nanos(fastrand::u64(a.as_nanos() as u64..=b.as_nanos() as u64))
        }
    }
}

/// Parses `N` or `A..B` (Spin's range syntax for the reuse flags). As in Spin the range is
/// half-open — `A..B` picks from A up to but not including B — and each new instance draws anew.
pub fn parse_count(s: &str) -> Result<Pick<u64>, String> {
    let parse = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if a >= b {
                return Err(format!("range {s:?} is empty"));
            }
            Ok(Pick(a..=b - 1))
        }
        None => parse(s).map(Pick::fixed),
    }
}

/// Parses a duration like `1s`, `500ms`, `2m`, or a range of them `1s..3s`.
pub fn parse_duration(s: &str) -> Result<Pick<Duration>, String> {
    fn one(v: &str) -> Result<Duration, String> {
        let v = v.trim();
        let split = v
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(v.len());
        let (num, unit) = v.split_at(split);
        let n: f64 = num.parse().map_err(|_| format!("invalid duration {v:?}"))?;
        let secs = match unit {
            "ms" => n / 1000.0,
            "s" | "" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => {
                return Err(format!(
                    "invalid duration unit in {v:?} (use ms, s, m or h)"
                ));
            }
        };
        Ok(Duration::from_secs_f64(secs))
    }
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a >= b {
                return Err(format!("range {s:?} is empty"));
            }
            // Half-open, like the counts.
            Ok(Pick(a..=b - Duration::from_nanos(1)))
        }
        None => one(s).map(Pick::fixed),
    }
}

#[derive(Debug, Clone)]
pub struct ReuseConfig {
    pub max_reuse: Pick<u64>,
    pub max_concurrent: Pick<u64>,
    pub idle_timeout: Pick<Duration>,
    pub request_timeout: Option<Pick<Duration>>,
}

impl Default for ReuseConfig {
    /// Spin's WASIp3 defaults, which SpinKube cannot change.
    fn default() -> Self {
        Self {
            max_reuse: Pick::fixed(128),
            max_concurrent: Pick::fixed(16),
            idle_timeout: Pick::fixed(Duration::from_secs(1)),
            request_timeout: None,
        }
    }
}

/// Per-instance expiry: idle for too long, or (only with a request timeout) busy for too long.
pub struct Expiration {
    idle: Duration,
    request: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Expiration {
    pub fn new(reuse: &ReuseConfig) -> (Self, Duration) {
        let request = reuse
            .request_timeout
            .as_ref()
            .map_or(Duration::MAX, Pick::<Duration>::pick);
        let exp = Self {
            idle: reuse.idle_timeout.pick(),
            request,
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86400 * 365))),
        };
        (exp, request)
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let me = self.get_mut();
        let timeout = match status {
            WorkerStatus::Idle => me.idle,
            // Post-return work (tasks still running after the response) counts as busy, as in
            // Spin: without a request timeout it keeps the instance alive for as long as it runs.
            WorkerStatus::Requests | WorkerStatus::PostReturn => me.request,
        };
        match start.checked_add(timeout) {
            Some(deadline) => {
                let deadline = tokio::time::Instant::from_std(deadline);
                if me.sleep.deadline() != deadline {
                    me.sleep.as_mut().reset(deadline);
                }
                me.sleep.as_mut().poll(cx)
            }
            None => Poll::Pending,
        }
    }
}

/// Hooks the runtime uses to observe instances (metrics, logs); see `crate::metrics`.
pub trait InstanceObserver: Send + Sync + 'static {
    fn instance_created(&self, component: &str);
    fn instance_dropped(&self, component: &str, result: &wasmtime::Result<()>);
}

pub struct Worker {
    pub component: Arc<str>,
    pub max_reuse: usize,
    pub max_concurrent: usize,
    pub request_timeout: Duration,
    pub observer: Arc<dyn InstanceObserver>,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HostState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        let timeout = self.request_timeout;
        Box::pin(async move {
            if timeout == Duration::MAX {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(timeout).await
            }
        })
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        self.observer.instance_dropped(&self.component, &result);
        drop(store);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ranges() {
        assert_eq!(parse_count("128").unwrap(), Pick::fixed(128));
        // Half-open, as Spin's.
        assert_eq!(parse_count("1..5").unwrap(), Pick(1..=4));
        assert!(parse_count("5..1").is_err());
        assert!(parse_count("5..5").is_err());
        assert!(parse_count("x").is_err());
        assert_eq!(parse_count("3..4").unwrap().pick(), 3);
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("1s").unwrap(),
            Pick::fixed(Duration::from_secs(1))
        );
        assert_eq!(
            parse_duration("250ms").unwrap(),
            Pick::fixed(Duration::from_millis(250))
        );
        assert_eq!(
            parse_duration("2m").unwrap(),
            Pick::fixed(Duration::from_secs(120))
        );
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("2s..1s").is_err());
        let d = parse_duration("1s..2s").unwrap().pick();
        assert!(d >= Duration::from_secs(1) && d < Duration::from_secs(2));
    }

    #[test]
    fn defaults_are_spins() {
        let d = ReuseConfig::default();
        assert_eq!(d.max_reuse.pick(), 128);
        assert_eq!(d.max_concurrent.pick(), 16);
        assert_eq!(d.idle_timeout.pick(), Duration::from_secs(1));
        assert!(d.request_timeout.is_none());
    }
}
