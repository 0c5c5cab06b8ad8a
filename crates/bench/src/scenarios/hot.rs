//! Hot: the same `loans(first: 20)` again and again (cached, once the gateway
//! caches) at 1, 32 and 128 clients, against a plain axum endpoint serving
//! the very bytes of the gateway's answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use bytes::Bytes;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::{Bench, Caller, MIB, median};
use crate::load::{ClosedLoop, Judge, Outcome, RssSampler, Target, closed_loop, same_body};
use crate::platforms::Budget;
use crate::queries::{self, Tally, Verdict, judge};
use crate::report::{Figure, Section, Stat, Target as Goal};

/// The client count the targets are set at.
const TARGET_CLIENTS: usize = 32;

pub(super) async fn run(bench: &Bench) -> anyhow::Result<Section> {
    let options = &bench.options;
    let mut section = Section::new(
        "hot",
        "the same `loans(first: 20)` over and over (a cache hit once the gateway caches), closed loop: answers per second and latency",
        "a plain axum endpoint serving the captured bytes of the gateway's answer; it runs in the bench process, not in the gateway binary (see BENCHMARKS.md)",
    );
    let stack = bench
        .stack("hot", 5_000, Budget::UNBOUNDED, options.request_timeout_ms)
        .await?;
    let url = stack.graphql_url();
    let providers = stack.loan_providers();
    let expected = stack.platforms.newest(&providers, 20, u64::MAX)?;
    let body = queries::body(&queries::hot(), Value::Null);
    let token = stack.token.clone();

    // The first answer (cold), then the one to serve from now on (hot).
    let mut reference = Bytes::new();
    for attempt in ["first (cold)", "second (hot)"] {
        let (status, answer) = bench.post(&url, body.clone(), token.as_deref()).await?;
        match judge(status, &answer, Some(&expected)) {
            Verdict::Ok => reference = answer,
            verdict => {
                section
                    .problems
                    .push(format!("the {attempt} answer: {verdict:?}"));
                stack.stop().await;
                return Ok(section);
            }
        }
    }
    let (baseline_url, stop_baseline) = bench.servers.run(serve(reference.clone())).await??;

    let answer_judge: Judge = {
        let reference = reference.clone();
        let expected = Arc::new(expected);
        Arc::new(move |status, answer: &[u8]| {
            if status == 200 && answer == &reference[..] {
                Verdict::Ok
            } else {
                judge(status, answer, Some(&expected))
            }
        })
    };
    let gateway = bench.target(
        &stack,
        Caller::SignedIn,
        same_body(body.clone()),
        answer_judge.clone(),
    );
    let baseline = Target {
        url: baseline_url,
        bearer: None,
        ..gateway.clone()
    };
    let largest = options.hot_clients.iter().copied().max().unwrap_or(1);
    let mut gateway_tally = Tally::default();
    let mut baseline_tally = Tally::default();
    for &clients in &options.hot_clients {
        let level = if clients == 1 {
            "1 client".to_string()
        } else {
            format!("{clients} clients")
        };
        let measured = ClosedLoop {
            clients,
            warmup: Duration::ZERO,
            duration: options.hot_duration(),
            max_requests: options.max_requests,
        };
        let warmup = ClosedLoop {
            duration: options.warmup(),
            ..measured
        };
        let mut sides: [Vec<Outcome>; 2] = Default::default();
        let mut upstream_per_answer = Vec::new();
        for _ in 0..options.rounds {
            // Gateway and baseline alternate, so drift hits both alike.
            closed_loop(&gateway, warmup).await;
            stack.platforms.reset();
            let sampler = (clients == largest).then(|| {
                RssSampler::start(
                    stack.gateway.pid(),
                    options.hot_duration() + Duration::from_secs(10),
                )
            });
            let outcome = closed_loop(&gateway, measured).await;
            if let Some(sampler) = sampler {
                let peak = sampler.finish().await;
                bench.memory_readings(|m| m.hot.push(peak as f64 / MIB));
            }
            let upstream = stack.platforms.listing_count();
            upstream_per_answer.push(upstream as f64 / outcome.answered().max(1) as f64);
            sides[0].push(outcome);
            closed_loop(&baseline, warmup).await;
            sides[1].push(closed_loop(&baseline, measured).await);
        }
        let [gateway_runs, baseline_runs] = sides;
        let stat =
            |runs: &[Outcome], f: &dyn Fn(&Outcome) -> f64| Stat::of(runs.iter().map(f).collect());
        let throughput = stat(&gateway_runs, &|o| o.throughput());
        let baseline_throughput = stat(&baseline_runs, &|o| o.throughput());
        let mut rps = Figure::new(format!("{level}: answers/s"), "req/s", throughput)
            .against(baseline_throughput);
        let p50 = Figure::new(
            format!("{level}: p50 latency"),
            "ms",
            stat(&gateway_runs, &|o| o.percentile_ms(50.0)),
        )
        .against(stat(&baseline_runs, &|o| o.percentile_ms(50.0)));
        let mut p99 = Figure::new(
            format!("{level}: p99 latency"),
            "ms",
            stat(&gateway_runs, &|o| o.percentile_ms(99.0)),
        )
        .against(stat(&baseline_runs, &|o| o.percentile_ms(99.0)));
        if clients == TARGET_CLIENTS {
            let share = rps.ratio.map_or(f64::NAN, |r| 100.0 * r);
            rps = rps.target(Goal::at_least(
                "at least 35% of the baseline's req/s",
                share,
                35.0,
                "points of %",
            ));
            let median = p99.value.median;
            p99 = p99.target(Goal::at_most("p99 under 2 ms", median, 2.0, "ms"));
        }
        section.figures.push(rps);
        section.figures.push(p50);
        section.figures.push(p99);
        section.figures.push(Figure::new(
            format!("{level}: upstream listings per answer"),
            "req",
            Stat::of(upstream_per_answer),
        ));
        for (runs, tally, what) in [
            (&gateway_runs, &mut gateway_tally, "gateway"),
            (&baseline_runs, &mut baseline_tally, "baseline"),
        ] {
            if runs.iter().any(|o| o.tally.ok == 0) {
                section.problems.push(format!(
                    "{what} at {clients} clients: no good answer in a round"
                ));
            }
            for outcome in runs {
                tally.merge(outcome.tally.clone());
            }
        }
    }
    section.notes.extend(gateway_tally.late_note("gateway"));
    section.problems.extend(gateway_tally.problems("gateway"));
    section.problems.extend(baseline_tally.problems("baseline"));
    section.notes.push(format!(
        "the query fans out to {}; answer size {} bytes; the gateway's answers are compared byte for byte with the captured one (and, when they differ, by loan ids with the platform's own first page)",
        providers.join(" and "),
        reference.len()
    ));
    let per_answer: Vec<f64> = section
        .figures
        .iter()
        .filter(|f| f.name.ends_with("upstream listings per answer"))
        .map(|f| f.value.median)
        .collect();
    if median(&per_answer) >= 0.5 {
        section.notes.push(
            "the gateway called the platform for most answers: nothing is cached yet, so every \"hot\" answer waits for the platform's latency"
                .to_string(),
        );
    }
    let _ = stop_baseline.send(());
    stack.stop().await;
    Ok(section)
}

/// The baseline: `POST /graphql` answers `answer` as `application/json`,
/// reading (not parsing) the request body as the gateway must.
async fn serve(answer: Bytes) -> anyhow::Result<(String, oneshot::Sender<()>)> {
    let app = Router::new().route(
        "/graphql",
        post(move |_request: Bytes| {
            let answer = answer.clone();
            async move { ([(CONTENT_TYPE, "application/json")], answer) }
        }),
    );
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok((format!("http://{addr}/graphql"), stop))
}
