//! Coalescing: many identical cold queries at the same instant; how many
//! upstream requests they cost, against the ideal of one per provider page.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{Bench, Caller, ms};
use crate::load::{burst, same_body};
use crate::platforms::Budget;
use crate::queries::{self, Tally, judge};
use crate::report::{Figure, Section, Stat, Target as Goal};

pub(super) async fn run(bench: &Bench) -> anyhow::Result<Section> {
    let options = &bench.options;
    let clients = options.coalesce_clients;
    let stack = bench
        .stack(
            "coalescing",
            5_000,
            Budget::UNBOUNDED,
            options.request_timeout_ms,
        )
        .await?;
    let providers = stack.loan_providers();
    let mut section = Section::new(
        "coalescing",
        &format!(
            "{clients} identical `loans(first: 20)` sent at the same instant, with every cache empty (a new query each round), fanned out to {}: upstream listing requests made, per the simulators' counters",
            providers.join(" and ")
        ),
        "the ideal: one upstream request per provider page (the distinct upstream requests among those made)",
    );
    let expected = Arc::new(stack.platforms.newest(&providers, 20, u64::MAX)?);
    let mut tally = Tally::default();
    let (mut made, mut ideal, mut wall, mut p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        stack.platforms.reset();
        let body = queries::body(&queries::cold(queries::fresh_term(), 20), Value::Null);
        let expected = expected.clone();
        let target = bench.target(
            &stack,
            Caller::SignedIn,
            same_body(body),
            Arc::new(move |status, answer: &[u8]| judge(status, answer, Some(&expected))),
        );
        let outcome = burst(&target, clients, Duration::from_secs(120)).await;
        let requests = stack.platforms.listing_count();
        let distinct: BTreeSet<_> = stack
            .platforms
            .listings()
            .into_iter()
            .flat_map(|(provider, _, records)| {
                records
                    .into_iter()
                    .map(move |r| (provider, r.path, r.query, r.headers))
            })
            .collect();
        made.push(requests as f64);
        ideal.push(distinct.len() as f64);
        wall.push(ms(outcome.elapsed));
        p99.push(outcome.percentile_ms(99.0));
        if outcome.tally.ok == 0 {
            section
                .problems
                .push("no good answer in a round".to_string());
        }
        tally.merge(outcome.tally);
    }
    let made = Stat::of(made);
    let ideal = Stat::of(ideal);
    let goal = Goal::at_most(
        "exactly one upstream request per provider page",
        made.median,
        ideal.median,
        "requests",
    );
    section.figures.push(
        Figure::new(
            format!("upstream requests for {clients} identical queries"),
            "req",
            made,
        )
        .against(ideal)
        .target(goal),
    );
    section.figures.push(Figure::new(
        format!("time until all {clients} answered"),
        "ms",
        Stat::of(wall),
    ));
    section
        .figures
        .push(Figure::new("p99 latency of the burst", "ms", Stat::of(p99)));
    section.notes.extend(tally.late_note("gateway"));
    section.problems.extend(tally.problems("gateway"));
    stack.stop().await;
    Ok(section)
}
