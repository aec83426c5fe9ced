//! The bench's results: a table for people, the same numbers as JSON for machines.

use std::fmt::Write;

use serde::Serialize;

use crate::load::Measured;

#[derive(Debug, Default, Serialize)]
pub struct Startup {
    pub seed_seconds: f64,
    pub cold_start_empty_cache_seconds: f64,
    pub cold_start_warm_cache_seconds: f64,
    pub first_request_ms: f64,
    pub health_mean_ms_with_reuse: f64,
    pub health_mean_ms_without_reuse: f64,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub load: String,
    pub server: &'static str,
    #[serde(flatten)]
    pub measured: Measured,
    /// Successful answers per second as a fraction of the native baseline's in the same step.
    pub ratio_to_native: f64,
}

impl Row {
    pub fn new(load: &str, server: &'static str, measured: Measured, native: &Measured) -> Self {
        let ratio_to_native = ratio(&measured, native);
        Self {
            load: load.to_owned(),
            server,
            measured,
            ratio_to_native,
        }
    }
}

/// One saturation round: native and poll flat out, one right after the other.
#[derive(Clone, Debug, Serialize)]
pub struct SaturationRound {
    pub native: Measured,
    pub poll: Measured,
    /// The poll's successful answers per second as a fraction of native's in this round.
    pub ratio_to_native: f64,
}

impl SaturationRound {
    pub fn new(native: Measured, poll: Measured) -> Self {
        let ratio_to_native = ratio(&poll, &native);
        Self {
            native,
            poll,
            ratio_to_native,
        }
    }

    /// The round whose ratio is the median (the lower middle one for an even count).
    pub fn median(rounds: &[SaturationRound]) -> Option<&SaturationRound> {
        let mut by_ratio: Vec<&SaturationRound> = rounds.iter().collect();
        by_ratio.sort_by(|a, b| a.ratio_to_native.total_cmp(&b.ratio_to_native));
        by_ratio.get(by_ratio.len().checked_sub(1)? / 2).copied()
    }
}

fn ratio(measured: &Measured, native: &Measured) -> f64 {
    if native.ok_per_second > 0.0 {
        measured.ok_per_second / native.ok_per_second
    } else {
        0.0
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub machine: String,
    pub quick: bool,
    pub seconds_per_step: u64,
    pub max_connections: usize,
    pub startup: Startup,
    pub rows: Vec<Row>,
    /// Every saturation round; `rows` shows the one with the median ratio.
    pub saturation_rounds: Vec<SaturationRound>,
}

/// "N cores, <CPU model>".
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}")
}

impl Report {
    pub fn table(&self) -> String {
        let s = &self.startup;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "honey bench: {}; {} s per step{}; both servers use {} PostgreSQL connections",
            self.machine,
            self.seconds_per_step,
            if self.quick {
                " (--quick: indicative only)"
            } else {
                ""
            },
            self.max_connections
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "start-up                                         value   target"
        );
        let line = |t: &mut String, what: &str, value: String, target: &str| {
            let _ = writeln!(t, "  {what:<42} {value:>9}   {target}");
        };
        line(
            &mut t,
            "seed 500,000 partners",
            format!("{:.2} s", s.seed_seconds),
            "< 3 s",
        );
        line(
            &mut t,
            "start to first answer, empty compile cache",
            format!("{:.2} s", s.cold_start_empty_cache_seconds),
            "",
        );
        line(
            &mut t,
            "start to first answer, warm compile cache",
            format!("{:.2} s", s.cold_start_warm_cache_seconds),
            "< 1 s",
        );
        line(
            &mut t,
            "first request once listening",
            format!("{:.1} ms", s.first_request_ms),
            "< 50 ms",
        );
        line(
            &mut t,
            "GET /health mean, instance reused",
            format!("{:.3} ms", s.health_mean_ms_with_reuse),
            "",
        );
        line(
            &mut t,
            "GET /health mean, new instance each request",
            format!("{:.3} ms", s.health_mean_ms_without_reuse),
            "",
        );
        line(
            &mut t,
            "instantiate cost per request (difference)",
            format!(
                "{:.3} ms",
                s.health_mean_ms_without_reuse - s.health_mean_ms_with_reuse
            ),
            "",
        );
        let _ = writeln!(t);
        let _ = writeln!(
            t,
            "{:<36} {:<6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9}",
            "load", "server", "req/s", "ok/s", "p50 ms", "p99 ms", "max ms", "errors", "vs native"
        );
        let mut last = "";
        for r in &self.rows {
            let m = &r.measured;
            let label = if r.load == last { "" } else { r.load.as_str() };
            last = &r.load;
            let _ = writeln!(
                t,
                "{:<36} {:<6} {:>8.0} {:>8.0} {:>8.2} {:>8.2} {:>8.1} {:>7} {:>8.0}%",
                label,
                r.server,
                m.requests_per_second,
                m.ok_per_second,
                m.p50_ms,
                m.p99_ms,
                m.max_ms,
                m.errors,
                r.ratio_to_native * 100.0
            );
        }
        let _ = writeln!(t);
        let per_round: Vec<String> = self
            .saturation_rounds
            .iter()
            .map(|r| format!("{:.0}%", r.ratio_to_native * 100.0))
            .collect();
        let _ = writeln!(
            t,
            "POST /vote saturation, poll vs native in {} alternating round(s): {}; the table shows the median round",
            self.saturation_rounds.len(),
            per_round.join(" "),
        );
        let _ = write!(
            t,
            "targets: poll >= 50% of native at saturation; poll p99 < 10 ms at 500/s; no errors below saturation"
        );
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(native: f64, poll: f64) -> SaturationRound {
        let m = |ok_per_second| Measured {
            ok_per_second,
            ..Measured::default()
        };
        SaturationRound::new(m(native), m(poll))
    }

    #[test]
    fn the_median_round_is_picked_by_ratio_not_by_order() {
        let rounds = [
            round(5000.0, 2500.0),
            round(6000.0, 2400.0),
            round(4000.0, 2400.0),
        ];
        let median = SaturationRound::median(&rounds).unwrap();
        assert!((median.ratio_to_native - 0.5).abs() < 1e-9);
        assert!((median.native.ok_per_second - 5000.0).abs() < 1e-9);
    }

    #[test]
    fn an_even_count_takes_the_lower_middle_round() {
        let rounds = [round(100.0, 60.0), round(100.0, 40.0)];
        assert!((SaturationRound::median(&rounds).unwrap().ratio_to_native - 0.4).abs() < 1e-9);
    }

    #[test]
    fn no_rounds_have_no_median() {
        assert!(SaturationRound::median(&[]).is_none());
    }

    #[test]
    fn a_native_that_answered_nothing_gives_ratio_zero() {
        assert_eq!(round(0.0, 10.0).ratio_to_native, 0.0);
    }
}
