//! Cold fan-out: one query no cache has seen, across every provider that
//! serves loans, against the slowest platform's own latency for the very
//! requests the gateway made (replayed straight to the platform).

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::time::Instant;

use super::{Bench, median, ms};
use crate::platforms::Budget;
use crate::queries::{self, Tally, judge};
use crate::report::{Figure, Section, Stat, Target as Goal};

pub(super) async fn run(bench: &Bench) -> anyhow::Result<Section> {
    let options = &bench.options;
    let stack = bench
        .stack("cold", 5_000, Budget::UNBOUNDED, options.request_timeout_ms)
        .await?;
    let providers = stack.loan_providers();
    let mut section = Section::new(
        "cold",
        &format!(
            "latency of a `loans(first: 20)` no cache has seen (a new pushed-down filter each time), fanned out to every loan provider ({}); median of {} queries per round",
            providers.join(", "),
            options.cold_samples
        ),
        "the slowest platform's own latency: the same upstream requests, read from the simulators' logs and replayed straight to each platform (concurrent ones together, dependent ones after)",
    );
    let url = stack.graphql_url();
    let expected = stack.platforms.newest(&providers, 20, u64::MAX)?;
    let mut tally = Tally::default();
    let (mut gateway, mut platform, mut overhead, mut upstream) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut slowest_count: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut bongloy_calls = 0;
    let mut served_without_upstream = 0;
    for _ in 0..options.rounds {
        let (mut g, mut p, mut o) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..options.cold_samples {
            stack.platforms.reset();
            let body = queries::body(&queries::cold(queries::fresh_term(), 20), Value::Null);
            let started = Instant::now();
            let (status, answer) = bench.post(&url, body, stack.token.as_deref()).await?;
            let through_gateway = ms(started.elapsed());
            tally.add(judge(status, &answer, Some(&expected)));
            bongloy_calls += stack.platforms.bongloy.stats().served;
            upstream.push(stack.platforms.listing_count() as f64);
            let Some((direct, slowest)) = bench.replay_slowest(&stack).await? else {
                // Nothing to compare with (a cache that answers new filters?).
                served_without_upstream += 1;
                continue;
            };
            *slowest_count.entry(slowest).or_default() += 1;
            let direct = ms(direct);
            g.push(through_gateway);
            p.push(direct);
            o.push(through_gateway - direct);
        }
        gateway.push(median(&g));
        platform.push(median(&p));
        overhead.push(median(&o));
    }
    let gateway = Stat::of(gateway);
    let platform = Stat::of(platform);
    let allowed = (0.10 * platform.median).min(5.0);
    section.figures.push(
        Figure::new("cold query latency", "ms", gateway.clone())
            .against(platform.clone())
            .target(Goal::at_most(
                "within 10% and 5 ms of the slowest platform",
                gateway.median,
                platform.median + allowed,
                "ms",
            )),
    );
    section.figures.push(Figure::new(
        "overhead over the slowest platform",
        "ms",
        Stat::of(overhead),
    ));
    section.figures.push(Figure::new(
        "upstream listing requests per cold query",
        "req",
        Stat::of(upstream),
    ));
    let slowest: Vec<String> = slowest_count
        .iter()
        .map(|(provider, n)| format!("{provider} {n}x"))
        .collect();
    section.notes.push(format!(
        "slowest platform per query: {}",
        slowest.join(", ")
    ));
    if served_without_upstream > 0 {
        section.notes.push(format!(
            "{served_without_upstream} cold queries made no upstream request and are left out of the latency figures"
        ));
    }
    section.notes.push(format!(
        "Bongloy (no loans) was called {bongloy_calls} times by loans queries (expected 0)"
    ));
    if bongloy_calls > 0 {
        section.problems.push(format!(
            "loans queries called Bongloy {bongloy_calls} times"
        ));
    }
    section.notes.extend(tally.late_note("gateway"));
    section.problems.extend(tally.problems("gateway"));
    stack.stop().await;
    Ok(section)
}
