//! What a rehearsal showed: the timeline, per-phase error rates, the leak, exhaustion, how long
//! the projector froze, recovery after the fix, the alerts — and whether each promise of the
//! talk held.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::alerts::{AlertSeen, SlackMessage};
use crate::audience::{Log, VoteEvent};

/// When each phase started and the fix was applied, in seconds since the start.
pub struct Phases {
    pub break_s: f64,
    pub fix_s: f64,
    pub serving_again_s: f64,
    pub end_s: f64,
    pub slots: usize,
}

#[derive(Debug, Serialize)]
pub struct PhaseStats {
    pub phase: u8,
    pub votes: usize,
    pub ok: usize,
    pub errors: usize,
    /// Failed votes per second of the phase, by the second they were sent.
    pub errors_per_second: Vec<usize>,
    pub mean_errors_per_second: f64,
    pub peak_errors_per_second: usize,
}

#[derive(Debug, Serialize)]
pub struct Moment {
    pub at_s: f64,
    pub what: String,
}

#[derive(Debug, Serialize)]
pub struct Stale {
    /// The projector's total last changed here before the fix…
    pub last_change_s: f64,
    /// …and next changed here, after it.
    pub next_change_s: Option<f64>,
    pub frozen_s: Option<f64>,
    /// Seconds within the freeze during which `/votes` itself could not be read.
    pub unreadable_s: f64,
}

#[derive(Debug, Serialize)]
pub struct AlertReport {
    /// Per alert: when Prometheus had it pending and firing, and when Slack got it.
    pub alerts: BTreeMap<String, AlertTimes>,
    pub slack: Vec<SlackMessage>,
}

#[derive(Debug, Serialize)]
pub struct AlertTimes {
    pub pending_s: Option<f64>,
    pub firing_s: Option<f64>,
    pub slack_s: Option<f64>,
    /// Slack arrival relative to pool exhaustion.
    pub slack_after_exhaustion_s: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub promise: String,
    pub held: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub run: usize,
    pub phases: Vec<PhaseStats>,
    pub timeline: Vec<Moment>,
    pub leaks_s: Vec<f64>,
    pub exhausted_s: Option<f64>,
    pub app_gauge_full_s: Option<f64>,
    pub failing_share_after_10s: Option<f64>,
    pub fix_s: f64,
    pub serving_again_s: f64,
    pub first_vote_counted_after_fix_s: Option<f64>,
    pub recovery_s: Option<f64>,
    pub errors_after_recovery: usize,
    pub stale: Option<Stale>,
    pub alerts: Option<AlertReport>,
    pub checks: Vec<Check>,
}

fn phase_stats(votes: &[VoteEvent], phase: u8, from: f64, to: f64) -> PhaseStats {
    let mine: Vec<&VoteEvent> = votes.iter().filter(|v| v.phase == phase).collect();
    let seconds = ((to - from).ceil() as usize).max(1);
    let mut per_second = vec![0; seconds];
    for v in mine.iter().filter(|v| v.status != 200) {
        let i = ((v.sent_s - from).max(0.0) as usize).min(seconds - 1);
        per_second[i] += 1;
    }
    let errors = mine.iter().filter(|v| v.status != 200).count();
    PhaseStats {
        phase,
        votes: mine.len(),
        ok: mine.len() - errors,
        errors,
        mean_errors_per_second: errors as f64 / (to - from).max(1e-9),
        peak_errors_per_second: per_second.iter().copied().max().unwrap_or(0),
        errors_per_second: per_second,
    }
}

pub fn analyse(
    run: usize,
    log: &Log,
    p: &Phases,
    alerts: Option<(BTreeMap<String, AlertSeen>, Vec<SlackMessage>)>,
) -> Report {
    let votes = &log.votes;
    let phases = vec![
        phase_stats(votes, 1, 0.0, p.break_s),
        phase_stats(votes, 2, p.break_s, p.fix_s),
        phase_stats(votes, 3, p.fix_s, p.end_s),
    ];

    // Each timed-out key lookup of the buggy build is one leaked handle.
    let mut leaks_s = Vec::new();
    let mut last = 0.0;
    for m in log.metrics.iter().filter(|m| m.at_s < p.fix_s) {
        if let Some(v) = m.lookups_timed_out {
            while last < v {
                leaks_s.push(m.at_s);
                last += 1.0;
            }
        }
    }
    let full = |value: Option<f64>| value.is_some_and(|v| v >= p.slots as f64);
    // Exhausted for good: from the first sample after which every slot stays taken until the
    // fix. (Slow referral lookups in flight can fill the slots for a moment before that.)
    let broken: Vec<_> = log
        .metrics
        .iter()
        .filter(|m| m.at_s >= p.break_s && m.at_s < p.fix_s)
        .collect();
    let for_good = |get: fn(&crate::audience::MetricsSample) -> Option<f64>| {
        let mut start = None;
        for m in &broken {
            match (full(get(m)), start) {
                (true, None) => start = Some(m.at_s),
                (false, Some(_)) => start = None,
                _ => {}
            }
        }
        start
    };
    let exhausted_s = for_good(|m| m.host_in_use);
    let app_gauge_full_s = for_good(|m| m.app_checked_out);
    let first_full_s = broken.iter().find(|m| full(m.host_in_use)).map(|m| m.at_s);
    let failing_share_after_10s = exhausted_s.and_then(|e| {
        let window: Vec<_> = votes
            .iter()
            .filter(|v| v.sent_s >= e + 10.0 && v.sent_s < p.fix_s)
            .collect();
        (!window.is_empty())
            .then(|| window.iter().filter(|v| v.status != 200).count() as f64 / window.len() as f64)
    });
    let first_ok = votes
        .iter()
        .filter(|v| v.sent_s >= p.fix_s && v.status == 200)
        .map(|v| v.sent_s + v.took_s)
        .fold(None, |a: Option<f64>, t| Some(a.map_or(t, |a| a.min(t))));
    let recovery_s = first_ok.map(|t| t - p.fix_s);
    let errors_after_recovery = first_ok.map_or(0, |t| {
        votes
            .iter()
            .filter(|v| v.sent_s > t && v.status != 200)
            .count()
    });

    // The projector: when its numbers stopped moving, and when they moved again.
    let stale = {
        let mut last_change = None;
        let mut next_change = None;
        let mut prev: Option<i64> = None;
        for s in &log.projector {
            if let Some(total) = s.total {
                if prev.is_some_and(|p| p != total) {
                    if s.at_s < p.fix_s {
                        last_change = Some(s.at_s);
                    } else if next_change.is_none() {
                        next_change = Some(s.at_s);
                    }
                }
                prev = Some(total);
            }
        }
        last_change.map(|last| {
            let until = next_change.unwrap_or(p.end_s);
            Stale {
                last_change_s: last,
                next_change_s: next_change,
                frozen_s: next_change.map(|n| n - last),
                unreadable_s: log
                    .projector
                    .iter()
                    .filter(|s| s.at_s > last && s.at_s < until && s.total.is_none())
                    .count() as f64
                    * 0.5,
            }
        })
    };

    let alert_report = alerts.map(|(states, slack)| {
        let mut alerts = BTreeMap::new();
        for (name, seen) in states {
            let slack_s = slack
                .iter()
                .find(|m| !m.resolved && m.alerts.contains(&name))
                .map(|m| m.at_s);
            alerts.insert(
                name,
                AlertTimes {
                    pending_s: seen.pending_s,
                    firing_s: seen.firing_s,
                    slack_s,
                    slack_after_exhaustion_s: slack_s.zip(exhausted_s).map(|(s, e)| s - e),
                },
            );
        }
        AlertReport { alerts, slack }
    });

    let mut timeline = vec![
        Moment {
            at_s: 0.0,
            what: "phase 1: the audience votes (left QR code)".into(),
        },
        Moment {
            at_s: p.break_s,
            what: "phase 2: referral votes begin (right QR code)".into(),
        },
    ];
    for (i, t) in leaks_s.iter().enumerate() {
        timeline.push(Moment {
            at_s: *t,
            what: format!(
                // Its slot was taken when the lookup began (maybe before exhaustion shows up
                // above); the leak is that the timed-out lookup never gives it back.
                "handle leaked #{} (a referral key lookup timed out and kept its slot; {} of {} slots leaked)",
                i + 1,
                i + 1,
                p.slots
            ),
        });
    }
    if let Some(f) = first_full_s.filter(|f| Some(*f) != exhausted_s) {
        timeline.push(Moment {
            at_s: f,
            what: format!(
                "all {} slots busy for the first time (slow lookups in flight)",
                p.slots
            ),
        });
    }
    if let Some(e) = exhausted_s {
        timeline.push(Moment {
            at_s: e,
            what: format!(
                "pool exhausted for good: all {} PostgreSQL slots taken, none returned before the fix",
                p.slots
            ),
        });
    }
    if let Some(t) = app_gauge_full_s {
        timeline.push(Moment {
            at_s: t,
            what: format!(
                "the app's db_pool_checked_out reads {}/{} (and stays there)",
                p.slots, p.slots
            ),
        });
    }
    if let (Some(e), Some(share)) = (exhausted_s, failing_share_after_10s) {
        timeline.push(Moment {
            at_s: e + 10.0,
            what: format!(
                "{:.1}% of votes sent from here until the fix fail",
                share * 100.0
            ),
        });
    }
    if let Some(s) = &stale {
        timeline.push(Moment {
            at_s: s.last_change_s,
            what: "the projector's numbers stop moving".into(),
        });
    }
    timeline.push(Moment {
        at_s: p.fix_s,
        what: "phase 3: the fix is deployed (fixed referral component, app restarted)".into(),
    });
    timeline.push(Moment {
        at_s: p.serving_again_s,
        what: "the fixed app answers again".into(),
    });
    if let Some(t) = first_ok {
        timeline.push(Moment {
            at_s: t,
            what: format!(
                "first vote counted after the fix: recovered {:.1} s after deploying it",
                t - p.fix_s
            ),
        });
    }
    if let Some(n) = stale.as_ref().and_then(|s| s.next_change_s) {
        timeline.push(Moment {
            at_s: n,
            what: "the projector moves again".into(),
        });
    }
    if let Some(a) = &alert_report {
        for (name, t) in &a.alerts {
            if let Some(f) = t.firing_s {
                timeline.push(Moment {
                    at_s: f,
                    what: format!("Prometheus: {name} firing"),
                });
            }
        }
        for m in &a.slack {
            timeline.push(Moment {
                at_s: m.at_s,
                what: format!(
                    "Slack: {}",
                    m.title.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            });
        }
    }
    timeline.push(Moment {
        at_s: p.end_s,
        what: "end".into(),
    });
    timeline.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));

    let mut checks = vec![
        Check {
            promise: "no errors in phase 1".into(),
            held: phases[0].votes > 0 && phases[0].errors == 0,
            detail: format!("{} votes, {} errors", phases[0].votes, phases[0].errors),
        },
        Check {
            promise: format!("the pool is exhausted at the {}th leaked handle", p.slots),
            // Every slot went to a leaked handle, and none was ever returned.
            held: exhausted_s.is_some()
                && leaks_s.len() == p.slots
                && leaks_s
                    .last()
                    .zip(exhausted_s)
                    .is_some_and(|(l, e)| e <= l + 0.5),
            detail: format!(
                "{} handles leaked; exhausted {}",
                leaks_s.len(),
                exhausted_s.map_or("never".into(), |e| format!("at {e:.1} s"))
            ),
        },
        Check {
            promise: "≥ 95% of votes fail from 10 s after exhaustion".into(),
            held: failing_share_after_10s.is_some_and(|s| s >= 0.95),
            detail: failing_share_after_10s.map_or("no votes in that window".into(), |s| {
                format!("{:.1}%", s * 100.0)
            }),
        },
        Check {
            promise: "recovery within 10 s of the fix".into(),
            held: recovery_s.is_some_and(|r| r <= 10.0),
            detail: recovery_s.map_or("never recovered".into(), |r| format!("{r:.1} s")),
        },
    ];
    if let Some(a) = &alert_report {
        let early: Vec<&String> = a
            .alerts
            .iter()
            .filter(|(_, t)| t.firing_s.is_some_and(|f| f < p.break_s))
            .map(|(n, _)| n)
            .collect();
        let early_slack = a.slack.iter().filter(|m| m.at_s < p.break_s).count();
        checks.push(Check {
            promise: "nothing fires during phase 1".into(),
            held: early.is_empty() && early_slack == 0,
            detail: format!("{early:?} firing, {early_slack} Slack messages"),
        });
        for name in ["DatabasePoolExhausted", "VoteAPIErrorRateHigh"] {
            let after = a.alerts.get(name).and_then(|t| t.slack_after_exhaustion_s);
            checks.push(Check {
                promise: format!("Slack gets {name} within 60 s of exhaustion"),
                held: after.is_some_and(|s| s <= 60.0),
                detail: after.map_or("no Slack message".into(), |s| format!("{s:.1} s after")),
            });
        }
    }

    Report {
        run,
        phases,
        timeline,
        leaks_s,
        exhausted_s,
        app_gauge_full_s,
        failing_share_after_10s,
        fix_s: p.fix_s,
        serving_again_s: p.serving_again_s,
        first_vote_counted_after_fix_s: first_ok,
        recovery_s,
        errors_after_recovery,
        stale,
        alerts: alert_report,
        checks,
    }
}

pub fn print(r: &Report) {
    println!("── rehearsal run {} ──", r.run);
    for m in &r.timeline {
        println!("  t+{:6.1}s  {}", m.at_s, m.what);
    }
    println!();
    println!("  phase   votes     ok  errors  errors/s mean  peak");
    for s in &r.phases {
        println!(
            "  {:>5}  {:>6} {:>6}  {:>6}  {:>13.2}  {:>4}",
            s.phase, s.votes, s.ok, s.errors, s.mean_errors_per_second, s.peak_errors_per_second
        );
    }
    for s in &r.phases {
        let series: Vec<String> = s.errors_per_second.iter().map(|n| n.to_string()).collect();
        println!(
            "  errors per second, phase {}: {}",
            s.phase,
            series.join(" ")
        );
    }
    if let Some(s) = &r.stale {
        println!(
            "  projector: results frozen for {} (last change t+{:.1}s{}), /votes unreadable for {:.1} s of it",
            s.frozen_s
                .map_or("the rest of the run".into(), |f| format!("{f:.1} s")),
            s.last_change_s,
            s.next_change_s
                .map_or(String::new(), |n| format!(", moving again t+{n:.1}s")),
            s.unreadable_s
        );
    }
    if r.errors_after_recovery > 0 {
        println!(
            "  after recovery: {} votes still failed",
            r.errors_after_recovery
        );
    }
    if let Some(a) = &r.alerts {
        println!("  alert                   pending   firing    Slack   Slack after exhaustion");
        let f = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("t+{v:.1}s"));
        for (name, t) in &a.alerts {
            println!(
                "  {:<22} {:>8} {:>8} {:>8}   {}",
                name,
                f(t.pending_s),
                f(t.firing_s),
                f(t.slack_s),
                t.slack_after_exhaustion_s
                    .map_or("—".to_owned(), |s| format!("{s:+.1} s"))
            );
        }
    }
    println!();
    for c in &r.checks {
        println!(
            "  {} {} ({})",
            if c.held { "✓" } else { "✗" },
            c.promise,
            c.detail
        );
    }
    println!();
}
