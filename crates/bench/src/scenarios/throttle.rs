//! Throttle fidelity: ten times Zonky's budget offered for a while, with a
//! small bucket configured alike in the simulator and the gateway; the
//! platform's 429s (ideal 0) and the share of the budget used (ideal 100%).

use std::sync::Arc;
use std::time::Duration;

use finmesh_sandbox::Outcome as UpstreamOutcome;
use serde_json::Value;

use super::{Bench, Caller, now_unix_ms};
use crate::load::paced;
use crate::platforms::Budget;
use crate::queries::{self, Tally, judge};
use crate::report::{Figure, Section, Stat, Target as Goal};

pub(super) async fn run(bench: &Bench) -> anyhow::Result<Section> {
    let options = &bench.options;
    let budget = Budget {
        capacity: options.throttle_capacity,
        refill_per_second: options.throttle_refill_per_second,
    };
    let window = Duration::from_secs_f64(options.throttle_secs);
    let allowed =
        f64::from(budget.capacity) + f64::from(budget.refill_per_second) * window.as_secs_f64();
    let total = (f64::from(options.throttle_factor) * allowed).round() as u64;
    let mut section = Section::new(
        "throttle",
        &format!(
            "{total} distinct cold queries of Zonky alone evenly over {:.0} s ({}x the budget of {allowed:.0} upstream requests: a bucket of {} refilled {}/s, configured in the simulator and the gateway)",
            window.as_secs_f64(),
            options.throttle_factor,
            budget.capacity,
            budget.refill_per_second
        ),
        "the ideal: no 429 from the platform and every token of the budget used",
    );
    let spacing = window.div_f64(total.max(1) as f64);
    let drain = Duration::from_millis(options.throttle_request_timeout_ms) + Duration::from_secs(5);
    let (mut refused, mut used, mut answered, mut limited, mut late) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut tally = Tally::default();
    let mut skipped_total = 0;
    for round in 0..options.rounds {
        let stack = bench
            .stack(
                &format!("throttle-{}", round + 1),
                5_000,
                budget,
                options.throttle_request_timeout_ms,
            )
            .await?;
        // Zonky alone, anonymously.
        let providers = ["zonky"];
        let expected = Arc::new(stack.platforms.newest(&providers, 20, u64::MAX)?);
        let target = bench.target(
            &stack,
            Caller::Anonymous,
            Arc::new(|_| {
                queries::body(&queries::cold_zonky(queries::fresh_term(), 20), Value::Null)
            }),
            Arc::new(move |status, answer: &[u8]| judge(status, answer, Some(&expected))),
        );
        let start_ms = now_unix_ms();
        let (outcome, skipped) = paced(&target, total, spacing, 4_096, drain).await;
        let end_ms = start_ms + i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let stats = stack.platforms.zonky.stats();
        let served: Vec<i64> = stack
            .platforms
            .zonky
            .requests()
            .iter()
            .filter(|r| r.outcome == UpstreamOutcome::Served)
            .map(|r| r.timestamp_ms)
            .collect();
        let served_in_window = served
            .iter()
            .filter(|t| (start_ms..=end_ms).contains(t))
            .count();
        if round == 0 {
            // How the platform saw the pace: requests served per tenth of the window.
            let tenth = (end_ms - start_ms).max(10) / 10;
            let mut per_tenth = [0u32; 11];
            for t in &served {
                let slot = usize::try_from((t - start_ms).max(0) / tenth)
                    .unwrap_or(10)
                    .min(10);
                per_tenth[slot] += 1;
            }
            section.notes.push(format!(
                "round 1, upstream requests served per {:.0} s (the last slot is after the window): {per_tenth:?}",
                tenth as f64 / 1000.0
            ));
        }
        refused.push(stats.throttled as f64);
        used.push(100.0 * served_in_window as f64 / allowed);
        answered.push(outcome.tally.ok as f64);
        limited.push(outcome.tally.rate_limited as f64);
        late.push(outcome.tally.late as f64);
        skipped_total += skipped;
        if outcome.tally.ok == 0 {
            section
                .problems
                .push(format!("round {}: no query got its loans", round + 1));
        }
        tally.merge(outcome.tally);
        stack.stop().await;
    }
    let refused = Stat::of(refused);
    let used = Stat::of(used);
    let refused_goal = Goal::at_most("no 429", refused.median, 0.0, "429s");
    let used_goal = Goal::at_least(
        "at least 95% of the budget used",
        used.median,
        95.0,
        "points of %",
    );
    section
        .figures
        .push(Figure::new("upstream 429s", "429s", refused).target(refused_goal));
    section.figures.push(
        Figure::new("share of the budget used", "%", used)
            .against(Stat::single(100.0))
            .target(used_goal),
    );
    section.figures.push(Figure::new(
        "queries answered with loans",
        "queries",
        Stat::of(answered),
    ));
    section.figures.push(Figure::new(
        "queries answered RATE_LIMITED",
        "queries",
        Stat::of(limited),
    ));
    section.figures.push(Figure::new(
        "queries that timed out (UPSTREAM_UNAVAILABLE)",
        "queries",
        Stat::of(late),
    ));
    section.notes.push(format!(
        "the gateway holds back `headroom = 1` token of the bucket, so its best is {:.1}% of the budget; it may answer RATE_LIMITED when a query would wait past request_timeout_ms ({} ms), which is expected at {}x the budget",
        100.0 * (allowed - 1.0) / allowed,
        options.throttle_request_timeout_ms,
        options.throttle_factor
    ));
    if skipped_total > 0 {
        section.notes.push(format!(
            "{skipped_total} queries were not sent: too many in flight"
        ));
    }
    section.notes.extend(tally.late_note("gateway"));
    section.problems.extend(tally.problems("gateway"));
    Ok(section)
}
