//! What a batch of observations adds to the metrics hashes, and the one Redis script that adds
//! it. Components sum the observations of the requests they finish at about the same time and
//! write the sum in a single round trip (`guest-kit`'s telemetry), so under load the metrics
//! cost one Redis call per batch instead of one per request.

use std::collections::BTreeMap;

use crate::{bucket_index, keys, latency_field_prefix, request_field};

/// Adds the increments. KEYS: the requests, latency and counters hashes, then the per-second
/// "recent answers" hashes. ARGV: the recent hashes' ttl in seconds, then groups of four: key
/// index (1-based), field, amount, and `f` for a float amount or `i` for an integer.
pub const RECORD_SCRIPT: &str = r"
for i = 2, #ARGV, 4 do
  local key = KEYS[tonumber(ARGV[i])]
  if ARGV[i + 3] == 'f' then
    redis.call('HINCRBYFLOAT', key, ARGV[i + 1], ARGV[i + 2])
  else
    redis.call('HINCRBY', key, ARGV[i + 1], ARGV[i + 2])
  end
end
for k = 4, #KEYS do
  redis.call('EXPIRE', KEYS[k], ARGV[1])
end
return 1
";

/// How long the per-second "recent answers" hashes live.
pub const RECENT_TTL_SECS: u64 = 60;

/// One answered request, as the metrics see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub method: &'static str,
    pub endpoint: &'static str,
    pub status: u16,
    pub seconds: f64,
    /// `(unix second, failed)` for requests counted in the projector's recent window.
    pub recent: Option<(u64, bool)>,
    /// `(counter field, increment)` pairs.
    pub counters: Vec<(String, i64)>,
}

/// The sum of any number of observations.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Increments {
    requests: BTreeMap<String, i64>,
    latency_counts: BTreeMap<String, i64>,
    latency_sums: BTreeMap<String, f64>,
    counters: BTreeMap<String, i64>,
    recent: BTreeMap<u64, BTreeMap<&'static str, i64>>,
    observations: usize,
}

impl Increments {
    pub fn add(&mut self, o: &Observation) {
        self.observations += 1;
        *self
            .requests
            .entry(request_field(o.method, o.endpoint, o.status))
            .or_default() += 1;
        let prefix = latency_field_prefix(o.method, o.endpoint);
        *self
            .latency_counts
            .entry(format!("{prefix}b{}", bucket_index(o.seconds)))
            .or_default() += 1;
        *self
            .latency_counts
            .entry(format!("{prefix}count"))
            .or_default() += 1;
        *self.latency_sums.entry(format!("{prefix}sum")).or_default() += o.seconds;
        if let Some((second, failed)) = o.recent {
            let field = if failed { "error" } else { "ok" };
            *self
                .recent
                .entry(second)
                .or_default()
                .entry(field)
                .or_default() += 1;
        }
        for (field, by) in &o.counters {
            *self.counters.entry(field.clone()).or_default() += by;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.observations == 0 && self.counters.is_empty()
    }

    /// How many observations this sums.
    pub fn observations(&self) -> usize {
        self.observations
    }

    /// Adds to a counter outside any observation.
    pub fn count(&mut self, field: String, by: i64) {
        *self.counters.entry(field).or_default() += by;
    }

    /// KEYS and ARGV for [`RECORD_SCRIPT`] under the app's key `prefix`.
    pub fn script_args(&self, prefix: &str) -> (Vec<String>, Vec<String>) {
        let mut keys = vec![
            format!("{prefix}{}", keys::REQUESTS),
            format!("{prefix}{}", keys::LATENCY),
            format!("{prefix}{}", keys::COUNTERS),
        ];
        let mut argv = vec![RECENT_TTL_SECS.to_string()];
        let mut push = |key: usize, field: &str, amount: String, kind: &str| {
            argv.extend([key.to_string(), field.to_owned(), amount, kind.to_owned()]);
        };
        for (field, n) in &self.requests {
            push(1, field, n.to_string(), "i");
        }
        for (field, n) in &self.latency_counts {
            push(2, field, n.to_string(), "i");
        }
        for (field, sum) in &self.latency_sums {
            push(2, field, format!("{sum:.6}"), "f");
        }
        for (field, n) in &self.counters {
            push(3, field, n.to_string(), "i");
        }
        for (second, fields) in &self.recent {
            keys.push(format!("{prefix}{}{second}", keys::RECENT));
            let index = keys.len();
            for (field, n) in fields {
                push(index, field, n.to_string(), "i");
            }
        }
        (keys, argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(status: u16, seconds: f64, second: u64) -> Observation {
        Observation {
            method: "POST",
            endpoint: "/vote",
            status,
            seconds,
            recent: Some((second, status >= 500)),
            counters: Vec::new(),
        }
    }

    #[test]
    fn a_batch_sums_its_observations() {
        let mut inc = Increments::default();
        inc.add(&vote(200, 0.002, 100));
        inc.add(&vote(200, 0.003, 100));
        inc.add(&vote(503, 2.0, 101));
        let mut with_counter = vote(503, 2.0, 101);
        with_counter.counters = vec![("c\tcomponent=vote".into(), 1)];
        inc.add(&with_counter);
        assert_eq!(inc.observations(), 4);

        let (keys, argv) = inc.script_args("p:");
        assert_eq!(
            keys,
            [
                "p:metrics:requests",
                "p:metrics:latency",
                "p:metrics:counters",
                "p:metrics:recent:100",
                "p:metrics:recent:101"
            ]
        );
        assert_eq!(argv[0], "60");
        let groups: Vec<_> = argv[1..].chunks(4).map(|g| g.join(" ")).collect();
        assert_eq!(
            groups,
            [
                "1 POST\t/vote\t200 2 i",
                "1 POST\t/vote\t503 2 i",
                "2 POST\t/vote\tb0 2 i",
                "2 POST\t/vote\tb8 2 i",
                "2 POST\t/vote\tcount 4 i",
                "2 POST\t/vote\tsum 4.005000 f",
                "3 c\tcomponent=vote 1 i",
                "4 ok 2 i",
                "5 error 2 i",
            ]
        );
    }

    #[test]
    fn requests_outside_the_window_touch_no_recent_hash() {
        let mut inc = Increments::default();
        assert!(inc.is_empty());
        inc.add(&Observation {
            method: "GET",
            endpoint: "/votes",
            status: 200,
            seconds: 0.001,
            recent: None,
            counters: Vec::new(),
        });
        assert!(!inc.is_empty());
        let (keys, _) = inc.script_args("");
        assert_eq!(keys.len(), 3);
    }
}
