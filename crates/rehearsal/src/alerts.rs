//! The alert path of the talk, run locally: Prometheus (scraping the app, with the repo's alert
//! rules), Alertmanager (with the repo's config, its Slack webhook pointed at a stand-in), and the
//! stand-in itself, which records every webhook POST the way Slack would receive it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;

use crate::app::free_port;
use crate::audience::Recorder;

/// The alerts the talk relies on.
pub const ALERTS: [&str; 4] = [
    "DatabasePoolExhausted",
    "VoteAPIErrorRateHigh",
    "VoteAPIHighLatency",
    "VoteAPIDown",
];

/// One message the Slack stand-in received.
#[derive(Debug, Clone, Serialize)]
pub struct SlackMessage {
    pub at_s: f64,
    /// Alert names the message is about (from its text).
    pub alerts: Vec<String>,
    pub resolved: bool,
    pub title: String,
}

/// When Prometheus first reported an alert in a state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertSeen {
    pub pending_s: Option<f64>,
    pub firing_s: Option<f64>,
}

#[derive(Default)]
struct Seen {
    slack: Vec<SlackMessage>,
    states: BTreeMap<String, AlertSeen>,
}

/// Prometheus, Alertmanager and the Slack stand-in; the processes stop when this is dropped.
pub struct AlertStack {
    processes: Vec<Child>,
    seen: Arc<Mutex<Seen>>,
    prometheus_url: String,
}

fn which(names: &[&str]) -> anyhow::Result<PathBuf> {
    for name in names {
        for dir in std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
        {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "{} not found: install Debian's prometheus and prometheus-alertmanager packages",
        names.join(" or ")
    )
}

/// Reads a Slack webhook body: Alertmanager sends `{"attachments":[{"title":…,"text":…}]}`.
fn parse_slack(at_s: f64, body: &[u8]) -> SlackMessage {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let title = v["attachments"][0]["title"]
        .as_str()
        .or(v["text"].as_str())
        .unwrap_or("")
        .to_owned();
    let all = String::from_utf8_lossy(body);
    SlackMessage {
        at_s,
        alerts: ALERTS
            .iter()
            .filter(|a| all.contains(*a))
            .map(|a| a.to_string())
            .collect(),
        resolved: title.contains("RESOLVED"),
        title,
    }
}

async fn slack_stand_in(rec: Recorder, seen: Arc<Mutex<Seen>>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let rec = rec.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let rec = rec.clone();
                    let seen = seen.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes());
                        if let Ok(body) = body {
                            let msg = parse_slack(rec.now(), &body);
                            seen.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .slack
                                .push(msg);
                        }
                        // What Slack answers an incoming webhook.
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> anyhow::Result<Child> {
    let file = std::fs::File::create(log)?;
    Command::new(bin)
        .args(args)
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
}

async fn wait_ready(url: &str, what: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("{what} did not become ready; see {}", log.display())
}

impl AlertStack {
    /// Starts everything pointed at the app on `app_port`.
    pub async fn start(
        rec: &Recorder,
        app_port: u16,
        rules: &Path,
        alertmanager_config: &Path,
        dir: &Path,
    ) -> anyhow::Result<AlertStack> {
        let prometheus = which(&["prometheus"])?;
        let alertmanager = which(&["prometheus-alertmanager", "alertmanager"])?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let slack = slack_stand_in(rec.clone(), seen.clone()).await?;

        // The repo's Alertmanager config, with its webhook file pointing at the stand-in.
        let webhook_file = dir.join("slack-webhook-url");
        std::fs::write(
            &webhook_file,
            format!("http://{slack}/services/rehearsal\n"),
        )?;
        let am_text = std::fs::read_to_string(alertmanager_config)
            .with_context(|| format!("cannot read {}", alertmanager_config.display()))?;
        let am_config = dir.join("alertmanager.yml");
        std::fs::write(
            &am_config,
            am_text.replace(
                "/etc/alertmanager/secrets/slack-webhook-url",
                &webhook_file.display().to_string(),
            ),
        )?;
        let am_port = free_port()?;
        let am_log = dir.join("alertmanager.log");
        let mut processes = vec![spawn(
            &alertmanager,
            &[
                format!("--config.file={}", am_config.display()),
                format!("--storage.path={}", dir.join("alertmanager-data").display()),
                format!("--web.listen-address=127.0.0.1:{am_port}"),
                // A single local instance: no gossip port to collide with anything.
                "--cluster.listen-address=".into(),
            ],
            &am_log,
        )?];

        // Prometheus scraping the app every 2 s, with the rules the chart ships.
        let prom_port = free_port()?;
        let prom_config = dir.join("prometheus.yml");
        std::fs::write(
            &prom_config,
            format!(
                "global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n\
                 rule_files:\n  - {rules}\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
                 scrape_configs:\n  - job_name: honey\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: ['127.0.0.1:{app_port}']\n",
                rules = rules.canonicalize()?.display()
            ),
        )?;
        let prom_log = dir.join("prometheus.log");
        processes.push(spawn(
            &prometheus,
            &[
                format!("--config.file={}", prom_config.display()),
                format!(
                    "--storage.tsdb.path={}",
                    dir.join("prometheus-data").display()
                ),
                format!("--web.listen-address=127.0.0.1:{prom_port}"),
            ],
            &prom_log,
        )?);
        let stack = AlertStack {
            processes,
            seen,
            prometheus_url: format!("http://127.0.0.1:{prom_port}"),
        };
        wait_ready(
            &format!("http://127.0.0.1:{am_port}/-/ready"),
            "Alertmanager",
            &am_log,
        )
        .await?;
        wait_ready(
            &format!("{}/-/ready", stack.prometheus_url),
            "Prometheus",
            &prom_log,
        )
        .await?;
        Ok(stack)
    }

    /// Polls Prometheus's alert states once a second.
    pub fn watch(
        &self,
        rec: &Recorder,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let url = format!("{}/api/v1/alerts", self.prometheus_url);
        let seen = self.seen.clone();
        let rec = rec.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while !*stop.borrow() {
                if let Ok(r) = http.get(&url).send().await
                    && let Ok(v) = r.json::<serde_json::Value>().await
                {
                    let now = rec.now();
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    for a in v["data"]["alerts"].as_array().into_iter().flatten() {
                        let name = a["labels"]["alertname"].as_str().unwrap_or("").to_owned();
                        let entry = seen.states.entry(name).or_default();
                        match a["state"].as_str() {
                            Some("pending") => {
                                entry.pending_s.get_or_insert(now);
                            }
                            Some("firing") => {
                                entry.pending_s.get_or_insert(now);
                                entry.firing_s.get_or_insert(now);
                            }
                            _ => {}
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }

    pub fn slack(&self) -> Vec<SlackMessage> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .slack
            .clone()
    }

    pub fn states(&self) -> BTreeMap<String, AlertSeen> {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .states
            .clone()
    }

    /// When the first firing Slack message about `alert` arrived.
    pub fn slack_at(&self, alert: &str) -> Option<f64> {
        self.slack()
            .iter()
            .find(|m| !m.resolved && m.alerts.iter().any(|a| a == alert))
            .map(|m| m.at_s)
    }
}

impl Drop for AlertStack {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_bodies_name_their_alerts() {
        let body = br#"{"username":"honey alerts","attachments":[{"title":":fire: CRITICAL: DatabasePoolExhausted","text":"*All 5 Postgres slots*"}]}"#;
        let m = parse_slack(1.5, body);
        assert_eq!(m.alerts, vec!["DatabasePoolExhausted"]);
        assert!(!m.resolved);
        let body =
            br#"{"attachments":[{"title":":white_check_mark: RESOLVED: VoteAPIErrorRateHigh"}]}"#;
        assert!(parse_slack(2.0, body).resolved);
    }
}
