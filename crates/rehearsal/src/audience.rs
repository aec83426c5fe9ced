//! The audience: phones voting (plain or with the referral code), the projector polling the
//! results, and an observer reading the app's and the runtime's metrics. Everything they see is
//! recorded with its time since the rehearsal started.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;

const CHOICES: [&str; 5] = ["print", "stare", "ai", "revert", "restart"];
pub const REFERRAL_CODE: &str = "conf-partner-2026";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Plain,
    Referral,
}

/// One vote: when it was sent, how it ended (0 = no HTTP answer) and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct VoteEvent {
    pub sent_s: f64,
    pub kind: Kind,
    pub phase: u8,
    pub status: u16,
    pub took_s: f64,
}

/// What the projector showed: the total count, or nothing (it could not refresh).
#[derive(Debug, Clone, Serialize)]
pub struct ProjectorSample {
    pub at_s: f64,
    pub total: Option<i64>,
}

/// Metrics at one moment: slots held as the app reports them (`db_pool_checked_out`), as the
/// runtime's semaphore says, and how many referral lookups have timed out so far.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsSample {
    pub at_s: f64,
    pub app_checked_out: Option<f64>,
    pub host_in_use: Option<f64>,
    pub lookups_timed_out: Option<f64>,
}

#[derive(Default)]
pub struct Log {
    pub votes: Vec<VoteEvent>,
    pub projector: Vec<ProjectorSample>,
    pub metrics: Vec<MetricsSample>,
}

/// The shared clock and record of a rehearsal.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    pub log: Arc<Mutex<Log>>,
    phase: Arc<Mutex<u8>>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            log: Arc::default(),
            phase: Arc::new(Mutex::new(1)),
        }
    }

    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn set_phase(&self, phase: u8) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    fn phase(&self) -> u8 {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<R>(&self, f: impl FnOnce(&mut Log) -> R) -> R {
        f(&mut self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn last_metrics(&self) -> Option<MetricsSample> {
        self.with(|l| l.metrics.last().cloned())
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // Longer than any answer the app gives on purpose (a referral vote takes ~3 s, a vote
        // waiting for a slot 2 s): a timeout here means the app hung.
        .timeout(Duration::from_secs(15))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_default()
}

/// Sends one vote and records it.
async fn vote(rec: Recorder, http: reqwest::Client, base: String, kind: Kind) {
    let phase = rec.phase();
    let sent = rec.now();
    let choice = CHOICES[fastrand::usize(..CHOICES.len())];
    let mut body = serde_json::json!({ "choice": choice });
    if kind == Kind::Referral {
        body["referral"] = REFERRAL_CODE.into();
    }
    let status = match http.post(format!("{base}/vote")).json(&body).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    };
    let took = rec.now() - sent;
    rec.with(|l| {
        l.votes.push(VoteEvent {
            sent_s: sent,
            kind,
            phase,
            status,
            took_s: took,
        })
    });
}

/// People arriving at random (a Poisson process of `per_second`), each voting once, until
/// `stop` says so or `count` people have voted.
pub fn arrivals(
    rec: &Recorder,
    base: &str,
    kind: Kind,
    per_second: f64,
    count: Option<usize>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let rec = rec.clone();
    let base = base.to_owned();
    tokio::spawn(async move {
        let http = client();
        let mut sent = 0;
        let mut voters = Vec::new();
        while !*stop.borrow() && count.is_none_or(|c| sent < c) {
            let gap = -(1.0 - fastrand::f64()).ln() / per_second;
            tokio::time::sleep(Duration::from_secs_f64(gap)).await;
            if *stop.borrow() {
                break;
            }
            voters.push(tokio::spawn(vote(
                rec.clone(),
                http.clone(),
                base.clone(),
                kind,
            )));
            sent += 1;
        }
        for v in voters {
            let _ = v.await;
        }
    })
}

/// The projector: reads `/votes` twice a second, as the results page does.
pub fn projector(
    rec: &Recorder,
    base: &str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let rec = rec.clone();
    let base = base.to_owned();
    tokio::spawn(async move {
        let http = client();
        while !*stop.borrow() {
            let at = rec.now();
            let total = async {
                let r = http
                    .get(format!("{base}/votes"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?;
                if !r.status().is_success() {
                    return None;
                }
                let v: serde_json::Value = r.json().await.ok()?;
                Some(
                    v.as_object()?
                        .values()
                        .filter_map(|c| c["count"].as_i64())
                        .sum::<i64>(),
                )
            }
            .await;
            rec.with(|l| l.projector.push(ProjectorSample { at_s: at, total }));
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// The value of one sample in Prometheus text.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Reads the app's `/metrics` and the runtime's metrics four times a second.
pub fn observer(
    rec: &Recorder,
    base: &str,
    host_metrics: &str,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    let rec = rec.clone();
    let base = base.to_owned();
    let host_metrics = host_metrics.to_owned();
    tokio::spawn(async move {
        let http = client();
        let text = |url: String| {
            let http = http.clone();
            async move {
                let r = http
                    .get(url)
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .ok()?;
                r.text().await.ok()
            }
        };
        while !*stop.borrow() {
            let at = rec.now();
            let (app, host) =
                tokio::join!(text(format!("{base}/metrics")), text(host_metrics.clone()));
            let app_checked_out = app
                .as_deref()
                .and_then(|t| sample(t, "db_pool_checked_out"));
            let lookups_timed_out = app
                .as_deref()
                .map(|t| sample(t, "referral_lookups_total{outcome=\"timed_out\"}").unwrap_or(0.0));
            let host_in_use = host
                .as_deref()
                .and_then(|t| sample(t, "honey_runtime_pg_permits_in_use"));
            rec.with(|l| {
                l.metrics.push(MetricsSample {
                    at_s: at,
                    app_checked_out,
                    host_in_use,
                    lookups_timed_out,
                })
            });
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}
