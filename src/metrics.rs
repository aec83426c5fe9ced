//! The runtime's own Prometheus metrics (`--metrics-listen`): what the host can see and the app
//! cannot — Postgres permits, live instances, requests per component, handler latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::instances::InstanceObserver;
use crate::pg_permits::PgPermits;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    live: BTreeMap<String, i64>,
    instantiated: BTreeMap<String, u64>,
}

pub struct RuntimeMetrics {
    permits: Arc<PgPermits>,
    inner: Mutex<Inner>,
    shutting_down: AtomicBool,
}

impl RuntimeMetrics {
    pub fn new(permits: Arc<PgPermits>) -> Arc<Self> {
        Arc::new(Self {
            permits,
            inner: Mutex::default(),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// From here on the runtime is stopping: the instances still alive are dropped with it, and
    /// wasmtime reports each as a failed worker. Expected, so not worth a warning.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn request(&self, component: &str, status: u16, elapsed: Duration) {
        let mut m = self.lock();
        *m.requests
            .entry((component.to_owned(), status))
            .or_default() += 1;
        let h = m.latency.entry(component.to_owned()).or_default();
        let secs = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn instance_created(&self, component: &str) {
        let mut m = self.lock();
        *m.live.entry(component.to_owned()).or_default() += 1;
        *m.instantiated.entry(component.to_owned()).or_default() += 1;
    }

    pub fn live_instances(&self, component: &str) -> i64 {
        self.lock().live.get(component).copied().unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let m = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP honey_runtime_pg_permits_in_use Postgres connection permits held by guests."
        );
        let _ = writeln!(out, "# TYPE honey_runtime_pg_permits_in_use gauge");
        let _ = writeln!(
            out,
            "honey_runtime_pg_permits_in_use {}",
            self.permits.in_use()
        );
        let _ = writeln!(
            out,
            "# HELP honey_runtime_pg_permits_limit outbound_pg.max_connections (absent when unlimited)."
        );
        let _ = writeln!(out, "# TYPE honey_runtime_pg_permits_limit gauge");
        if let Some(limit) = self.permits.limit() {
            let _ = writeln!(out, "honey_runtime_pg_permits_limit {limit}");
        }
        let _ = writeln!(
            out,
            "# HELP honey_runtime_pg_permit_waiters Guest opens waiting for a free permit."
        );
        let _ = writeln!(out, "# TYPE honey_runtime_pg_permit_waiters gauge");
        let _ = writeln!(
            out,
            "honey_runtime_pg_permit_waiters {}",
            self.permits.waiting()
        );
        let _ = writeln!(
            out,
            "# HELP honey_runtime_instances Live component instances."
        );
        let _ = writeln!(out, "# TYPE honey_runtime_instances gauge");
        for (c, n) in &m.live {
            let _ = writeln!(out, "honey_runtime_instances{{component=\"{c}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP honey_runtime_instances_created_total Component instances created."
        );
        let _ = writeln!(out, "# TYPE honey_runtime_instances_created_total counter");
        for (c, n) in &m.instantiated {
            let _ = writeln!(
                out,
                "honey_runtime_instances_created_total{{component=\"{c}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP honey_runtime_requests_total Requests handled, per component and status."
        );
        let _ = writeln!(out, "# TYPE honey_runtime_requests_total counter");
        for ((c, s), n) in &m.requests {
            let _ = writeln!(
                out,
                "honey_runtime_requests_total{{component=\"{c}\",status=\"{s}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP honey_runtime_handler_seconds Time until the component produced a response."
        );
        let _ = writeln!(out, "# TYPE honey_runtime_handler_seconds histogram");
        for (c, h) in &m.latency {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "honey_runtime_handler_seconds_bucket{{component=\"{c}\",le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "honey_runtime_handler_seconds_bucket{{component=\"{c}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "honey_runtime_handler_seconds_sum{{component=\"{c}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "honey_runtime_handler_seconds_count{{component=\"{c}\"}} {}",
                h.count
            );
        }
        out
    }
}

impl InstanceObserver for RuntimeMetrics {
    fn instance_created(&self, component: &str) {
        RuntimeMetrics::instance_created(self, component);
        tracing::info!(%component, live = self.live_instances(component), "instance created");
    }

    fn instance_dropped(&self, component: &str, result: &wasmtime::Result<()>) {
        let live = {
            let mut m = self.lock();
            let n = m.live.entry(component.to_owned()).or_default();
            *n -= 1;
            *n
        };
        match result {
            Ok(()) => tracing::info!(%component, live, "instance dropped"),
            Err(_) if self.shutting_down.load(Ordering::Relaxed) => {
                tracing::debug!(%component, live, "instance stopped with the runtime")
            }
            Err(e) => {
                tracing::warn!(%component, live, error = %format!("{e:?}"), "instance failed")
            }
        }
    }
}

/// Serves `GET /metrics` on its own listener, apart from the app's traffic.
pub async fn serve(
    metrics: Arc<RuntimeMetrics>,
    listener: tokio::net::TcpListener,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "runtime metrics listening");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let mut resp = if req.uri().path() == "/metrics" {
                        hyper::Response::new(Full::new(Bytes::from(metrics.render())))
                    } else {
                        let mut r =
                            hyper::Response::new(Full::new(Bytes::from_static(b"Not Found")));
                        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                        r
                    };
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
