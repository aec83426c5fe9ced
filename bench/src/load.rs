//! Load steps, driven by `oha` (its JSON summary is what we read).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What the bench sends: one request shape, at a rate or flat out.
#[derive(Clone)]
pub struct Load {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    connections: u32,
    rate: Option<u32>,
    duration: Duration,
}

/// Where it sends it.
pub struct Target {
    pub name: &'static str,
    pub base: String,
}

impl Target {
    pub fn new(name: &'static str, base: String) -> Self {
        Self { name, base }
    }
}

/// One step's numbers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    pub requests_per_second: f64,
    pub ok_per_second: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub ok: u64,
    /// Non-2xx answers plus requests that got no answer.
    pub errors: u64,
    pub statuses: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OhaReport {
    summary: OhaSummary,
    latency_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(default)]
    status_code_distribution: BTreeMap<String, u64>,
    #[serde(default)]
    error_distribution: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OhaSummary {
    total: f64,
    slowest: Option<f64>,
    average: Option<f64>,
}

pub fn check_oha() -> anyhow::Result<()> {
    let out = Command::new("oha").arg("--version").output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!("oha is not installed (cargo install oha --locked; ./dev bench installs it)"),
    }
}

impl Load {
    /// `POST /vote` with a valid vote.
    pub fn vote() -> Self {
        Self {
            method: "POST",
            path: "/vote",
            body: Some(r#"{"choice":"ai"}"#),
            connections: 50,
            rate: None,
            duration: Duration::from_secs(10),
        }
    }

    pub fn get(path: &'static str) -> Self {
        Self {
            method: "GET",
            path,
            body: None,
            connections: 50,
            rate: None,
            duration: Duration::from_secs(10),
        }
    }

    pub fn connections(mut self, n: u32) -> Self {
        self.connections = n;
        self
    }

    pub fn rate(mut self, per_second: u32) -> Self {
        self.rate = Some(per_second);
        self
    }

    pub fn seconds(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    pub fn run(&self, target: &Target) -> anyhow::Result<Measured> {
        let mut cmd = Command::new("oha");
        cmd.args(["--no-tui", "--output-format", "json"])
            .args(["-z", &format!("{}ms", self.duration.as_millis())])
            .args(["-c", &self.connections.to_string()])
            .args(["-m", self.method])
            // A request still waiting when the step ends is not counted either way.
            .arg("-w");
        if let Some(rate) = self.rate {
            cmd.args(["-q", &rate.to_string()]);
        }
        if let Some(body) = self.body {
            cmd.args(["-T", "application/json", "-d", body]);
        }
        cmd.arg(format!("{}{}", target.base, self.path));
        let rate = self
            .rate
            .map_or_else(|| "flat out".to_owned(), |r| format!("{r}/s"));
        eprintln!(
            "bench:   {} {} on {} ({rate}, {} conn., {:?})",
            self.method, self.path, target.name, self.connections, self.duration
        );
        let out = cmd.output().context("running oha")?;
        if !out.status.success() {
            bail!(
                "oha failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let report: OhaReport =
            serde_json::from_slice(&out.stdout).context("reading oha's JSON summary")?;
        Ok(measured(&report))
    }
}

fn measured(r: &OhaReport) -> Measured {
    let ms = |s: Option<f64>| s.unwrap_or(0.0) * 1e3;
    let percentile = |name: &str| ms(r.latency_percentiles.get(name).copied().flatten());
    let answered: u64 = r.status_code_distribution.values().sum();
    let ok: u64 = r
        .status_code_distribution
        .iter()
        .filter(|(code, _)| code.starts_with('2'))
        .map(|(_, n)| n)
        .sum();
    let unanswered: u64 = r
        .error_distribution
        .iter()
        // Requests cut off by the end of the step (-w) are not errors of the server.
        .filter(|(e, _)| !e.contains("deadline"))
        .map(|(_, n)| n)
        .sum();
    let seconds = r.summary.total.max(f64::EPSILON);
    Measured {
        requests_per_second: answered as f64 / seconds,
        ok_per_second: ok as f64 / seconds,
        mean_ms: ms(r.summary.average),
        p50_ms: percentile("p50"),
        p99_ms: percentile("p99"),
        max_ms: ms(r.summary.slowest),
        ok,
        errors: answered - ok + unanswered,
        statuses: r.status_code_distribution.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_oha_summary() {
        let json = r#"{
            "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.05, "fastest": 0.001,
                        "average": 0.004, "requestsPerSec": 501.0},
            "latencyPercentiles": {"p50": 0.003, "p99": 0.02, "p99.9": null},
            "statusCodeDistribution": {"200": 990, "503": 10},
            "errorDistribution": {"aborted due to deadline": 3, "connection closed": 2}
        }"#;
        let m = measured(&serde_json::from_str(json).unwrap());
        assert_eq!(m.ok, 990);
        assert_eq!(m.errors, 12);
        assert!((m.requests_per_second - 500.0).abs() < 1e-9);
        assert!((m.ok_per_second - 495.0).abs() < 1e-9);
        assert!((m.p50_ms - 3.0).abs() < 1e-9);
        assert!((m.p99_ms - 20.0).abs() < 1e-9);
        assert!((m.max_ms - 50.0).abs() < 1e-9);
    }
}
