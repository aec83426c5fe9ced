//! Prometheus text exposition (format 0.0.4) of what the components recorded.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::{BUCKETS, COUNTERS, SEP};

/// Builds the body of `GET /metrics`.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        header(&mut self.out, name, help, "gauge");
        let _ = writeln!(self.out, "{name} {}", number(value));
        self
    }

    /// `http_requests_total{method,endpoint,status}` from the requests hash.
    pub fn requests(&mut self, entries: &[(String, String)]) -> &mut Self {
        self.out.push_str(&render_requests(entries));
        self
    }

    /// `http_request_duration_seconds{method,endpoint}` from the latency hash.
    pub fn latency(&mut self, entries: &[(String, String)]) -> &mut Self {
        self.out.push_str(&render_latency(entries));
        self
    }

    /// The app's other counters from the counters hash.
    pub fn counters(&mut self, entries: &[(String, String)]) -> &mut Self {
        self.out.push_str(&render_counters(entries));
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escaped as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Entries whose value is not a number (a stray write, say) are skipped
/// rather than breaking the whole scrape.
fn parse_u64(v: &str) -> Option<u64> {
    v.trim().parse::<u64>().ok()
}

pub fn render_requests(entries: &[(String, String)]) -> String {
    let mut rows: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for (field, value) in entries {
        let mut parts = field.split(SEP);
        let (Some(method), Some(endpoint), Some(status), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if let Some(n) = parse_u64(value) {
            *rows.entry((method, endpoint, status)).or_default() += n;
        }
    }
    let mut out = String::new();
    header(
        &mut out,
        "http_requests_total",
        "HTTP requests answered by the app, by method, endpoint and status.",
        "counter",
    );
    for ((method, endpoint, status), n) in rows {
        let _ = writeln!(
            out,
            "http_requests_total{{method=\"{}\",endpoint=\"{}\",status=\"{}\"}} {n}",
            escape(method),
            escape(endpoint),
            escape(status)
        );
    }
    out
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

pub fn render_latency(entries: &[(String, String)]) -> String {
    let mut series: BTreeMap<(&str, &str), Histogram> = BTreeMap::new();
    for (field, value) in entries {
        let mut parts = field.split(SEP);
        let (Some(method), Some(endpoint), Some(part), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let h = series.entry((method, endpoint)).or_default();
        match part {
            "sum" => {
                if let Ok(v) = value.trim().parse::<f64>() {
                    h.sum = v;
                }
            }
            "count" => h.count = parse_u64(value).unwrap_or(0),
            bucket => {
                let index = bucket
                    .strip_prefix('b')
                    .and_then(|i| i.parse::<usize>().ok())
                    .filter(|&i| i <= BUCKETS.len());
                if let (Some(i), Some(n)) = (index, parse_u64(value)) {
                    h.buckets[i] += n;
                }
            }
        }
    }
    let name = "http_request_duration_seconds";
    let mut out = String::new();
    header(
        &mut out,
        name,
        "Time from a request reaching the component to its answer, in seconds.",
        "histogram",
    );
    for ((method, endpoint), h) in series {
        let labels = format!(
            "method=\"{}\",endpoint=\"{}\"",
            escape(method),
            escape(endpoint)
        );
        let mut cumulative = 0;
        for (i, n) in h.buckets.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS.get(i).map_or("+Inf".to_owned(), |b| number(*b));
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        // Buckets and count come from separate increments of one script, so
        // they agree; use the larger in case a scrape raced a write.
        let count = h.count.max(cumulative);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", number(h.sum));
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
    out
}

pub fn render_counters(entries: &[(String, String)]) -> String {
    let mut by_name: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (field, value) in entries {
        let Some((name, labels)) = field.split_once(SEP) else {
            continue;
        };
        // Only counters this build describes: the label set stays bounded.
        if !COUNTERS.iter().any(|c| c.name == name) {
            continue;
        }
        if let Some(n) = parse_u64(value) {
            *by_name.entry(name).or_default().entry(labels).or_default() += n;
        }
    }
    let mut out = String::new();
    for counter in COUNTERS {
        header(&mut out, counter.name, counter.help, "counter");
        for (labels, n) in by_name.get(counter.name).into_iter().flatten() {
            let rendered: Vec<String> = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {n}", counter.name, rendered.join(","));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        REFERRAL_LOOKUPS, bucket_index, counter_field, latency_field_prefix, request_field,
    };

    fn e(field: String, value: &str) -> (String, String) {
        (field, value.to_owned())
    }

    #[test]
    fn requests_render_with_labels() {
        let text = render_requests(&[
            e(request_field("POST", "/vote", 200), "7"),
            e(request_field("POST", "/vote", 503), "2"),
            e("garbage".into(), "1"),
            e(request_field("GET", "/votes", 200), "not a number"),
        ]);
        assert!(text.contains("# TYPE http_requests_total counter"));
        assert!(text.contains(
            "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"200\"} 7\n"
        ));
        assert!(text.contains(
            "http_requests_total{method=\"POST\",endpoint=\"/vote\",status=\"503\"} 2\n"
        ));
        assert!(!text.contains("garbage"));
        assert!(!text.contains("/votes"));
    }

    #[test]
    fn histogram_is_cumulative_and_ends_in_inf() {
        let p = latency_field_prefix("POST", "/vote");
        let fast = bucket_index(0.003);
        let slow = bucket_index(2.2);
        let text = render_latency(&[
            e(format!("{p}b{fast}"), "3"),
            e(format!("{p}b{slow}"), "1"),
            e(format!("{p}sum"), "2.209"),
            e(format!("{p}count"), "4"),
        ]);
        let labels = "method=\"POST\",endpoint=\"/vote\"";
        assert!(text.contains(&format!(
            "http_request_duration_seconds_bucket{{{labels},le=\"0.005\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "http_request_duration_seconds_bucket{{{labels},le=\"2\"}} 3\n"
        )));
        assert!(text.contains(&format!(
            "http_request_duration_seconds_bucket{{{labels},le=\"2.5\"}} 4\n"
        )));
        assert!(text.contains(&format!(
            "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 4\n"
        )));
        assert!(text.contains(&format!(
            "http_request_duration_seconds_sum{{{labels}}} 2.209\n"
        )));
        assert!(text.contains(&format!(
            "http_request_duration_seconds_count{{{labels}}} 4\n"
        )));
    }

    #[test]
    fn only_known_counters_are_rendered_and_values_escaped() {
        let text = render_counters(&[
            e(counter_field(REFERRAL_LOOKUPS, "outcome", "timed_out"), "5"),
            e("made_up_total\tx=y".into(), "1"),
            e(format!("referral_lookups_total{SEP}outcome=a\"b"), "1"),
        ]);
        assert!(text.contains("referral_lookups_total{outcome=\"timed_out\"} 5\n"));
        assert!(text.contains("referral_lookups_total{outcome=\"a\\\"b\"} 1\n"));
        assert!(!text.contains("made_up_total"));
        assert!(text.contains("# TYPE db_connection_wait_timeouts_total counter"));
    }

    #[test]
    fn gauges() {
        let mut x = Exposition::new();
        x.gauge("db_pool_size", "Slots.", 5.0)
            .gauge("db_pool_checked_out", "Held.", 3.0);
        let text = x.finish();
        assert!(text.contains("# TYPE db_pool_size gauge\ndb_pool_size 5\n"));
        assert!(text.contains("db_pool_checked_out 3\n"));
    }
}
