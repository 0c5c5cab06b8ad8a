//! Memory: the gateway's resident size idle (every gateway this run started),
//! under the hot scenario, and after many distinct queries (the cache full,
//! once there is a cache), against the cache's configured bound.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Bench, Caller, MIB};
use crate::load::{ClosedLoop, RssSampler, closed_loop};
use crate::platforms::Budget;
use crate::queries::{self, judge};
use crate::report::{Figure, Section, Stat, Target as Goal};

pub(super) async fn run(bench: &Bench) -> anyhow::Result<Section> {
    let options = &bench.options;
    let mut section = Section::new(
        "memory",
        "resident memory (VmRSS of /proc/<pid>/status) of the gateway process",
        "none: absolute figures against the targets",
    );
    let stack = bench
        .stack(
            "memory",
            5_000,
            Budget::UNBOUNDED,
            options.request_timeout_ms,
        )
        .await?;
    let idle_here = stack
        .gateway
        .rss_bytes()
        .map_or(f64::NAN, |b| b as f64 / MIB);
    let providers = stack.loan_providers();
    let expected = Arc::new(stack.platforms.newest(&providers, 100, u64::MAX)?);
    let target = bench.target(
        &stack,
        Caller::SignedIn,
        Arc::new(|_| queries::body(&queries::cold(queries::fresh_term(), 100), Value::Null)),
        Arc::new(move |status, answer: &[u8]| judge(status, answer, Some(&expected))),
    );
    let fill_time = Duration::from_secs_f64(options.fill_secs);
    let sampler = RssSampler::start(stack.gateway.pid(), fill_time + Duration::from_secs(30));
    let fill = closed_loop(
        &target,
        ClosedLoop {
            clients: 32,
            warmup: Duration::ZERO,
            duration: fill_time,
            max_requests: options.fill_queries,
        },
    )
    .await;
    let peak = sampler.finish().await as f64 / MIB;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let full = stack
        .gateway
        .rss_bytes()
        .map_or(f64::NAN, |b| b as f64 / MIB);
    stack.stop().await;
    if fill.tally.ok == 0 {
        section
            .problems
            .push("no query of the fill got its loans".to_string());
    }
    section.notes.extend(fill.tally.late_note("fill"));
    section.problems.extend(fill.tally.problems("fill"));

    let (idle, hot) = {
        let readings = bench
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (readings.idle.clone(), readings.hot.clone())
    };
    let in_process = bench.in_process();
    let idle = Stat::of(idle);
    let idle_goal = if in_process {
        Goal::not_measured(
            "under 50 MiB idle",
            "the gateway runs in the bench process: its own size cannot be told apart",
        )
    } else {
        Goal::at_most("under 50 MiB idle", idle.median, 50.0, "MiB")
    };
    section
        .figures
        .push(Figure::new("idle (each gateway started this run)", "MiB", idle).target(idle_goal));
    let largest = options.hot_clients.iter().copied().max().unwrap_or(1);
    if hot.is_empty() {
        section
            .notes
            .push("the hot scenario did not run: no reading under load".to_string());
    } else {
        section.figures.push(Figure::new(
            format!("peak under the hot scenario ({largest} clients)"),
            "MiB",
            Stat::of(hot),
        ));
    }
    section.figures.push(Figure::new(
        format!("peak while sending {} distinct queries", fill.tally.ok),
        "MiB",
        Stat::single(peak),
    ));
    let growth = full - idle_here;
    let bound_goal = match options.cache_bound_mib {
        _ if in_process => Goal::not_measured(
            "growth within the cache's bound",
            "the gateway runs in the bench process",
        ),
        Some(bound) => Goal::at_most("growth within the cache's bound", growth, bound, "MiB"),
        None => Goal::not_measured(
            "growth within the cache's bound",
            "no cache bound configured (the gateway has no cache yet): give --cache-bound-mib with the --gateway-toml that sets it",
        ),
    };
    section.figures.push(Figure::new(
        "after the distinct queries (cache full)",
        "MiB",
        Stat::single(full),
    ));
    section.figures.push(
        Figure::new(
            "growth from idle to cache full",
            "MiB",
            Stat::single(growth),
        )
        .target(bound_goal),
    );
    section.notes.push(format!(
        "the fill: {} distinct `loans(first: 100)` answered in {:.1} s by 32 clients (at most {} queries or {:.0} s)",
        fill.tally.ok,
        fill.elapsed.as_secs_f64(),
        options.fill_queries,
        options.fill_secs
    ));
    Ok(section)
}
