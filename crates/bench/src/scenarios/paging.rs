//! Deep paging: every page of a large marketplace through the gateway's
//! cursors, against walking the platform's own pages (`X-Page`, `X-Size`)
//! directly, one page at a time, with the same page size and order.

use std::collections::HashSet;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Bench;
use crate::platforms::{Budget, ZONKY_LOANS};
use crate::queries::{self, Verdict, judge};
use crate::report::{Figure, Section, Stat};

/// The gateway's default `max_page_size`: the largest page a client may ask for.
const PAGE_SIZE: u32 = 100;

pub(super) async fn run(bench: &Bench) -> anyhow::Result<Section> {
    let options = &bench.options;
    let loans = options.paging_loans;
    let mut section = Section::new(
        "paging",
        &format!(
            "every page of {loans} loans through cursors, `loans(first: {PAGE_SIZE}, after: ...)` one page after the other, of Zonky alone (`providers: [\"zonky\"]`)"
        ),
        &format!(
            "the same loans straight from the simulator, `X-Page` 0, 1, ... with `X-Size: {PAGE_SIZE}` and the gateway's `X-Order`, one page after the other"
        ),
    );
    let stack = bench
        .stack(
            "paging",
            loans,
            Budget::UNBOUNDED,
            options.request_timeout_ms,
        )
        .await?;
    let url = stack.graphql_url();
    let max_pages = loans / PAGE_SIZE as usize + 10;
    let (mut through_gateway, mut direct, mut pages, mut upstream) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        stack.platforms.reset();
        let started = Instant::now();
        let mut served: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        let mut walked = 0;
        let mut finished = false;
        for _ in 0..max_pages {
            let body = queries::body(queries::PAGE, json!({"first": PAGE_SIZE, "after": after}));
            let (status, answer) = bench.post(&url, body, None).await?;
            walked += 1;
            if let verdict @ (Verdict::Error(_) | Verdict::RateLimited | Verdict::Late(_)) =
                judge(status, &answer, None)
            {
                section.problems.push(format!("page {walked}: {verdict:?}"));
                break;
            }
            let value: Value = serde_json::from_slice(&answer)?;
            served.extend(queries::loan_ids(&value).unwrap_or_default());
            let info = &value["data"]["loans"]["pageInfo"];
            if info["hasNextPage"] != Value::Bool(true) {
                finished = true;
                break;
            }
            after = info["endCursor"].as_str().map(str::to_string);
        }
        through_gateway.push(started.elapsed().as_secs_f64());
        pages.push(f64::from(walked));
        let records: Vec<_> = stack
            .platforms
            .listings()
            .into_iter()
            .filter(|(provider, ..)| *provider == "zonky")
            .flat_map(|(_, _, records)| records)
            .collect();
        upstream.push(records.len() as f64);
        if !finished {
            section.problems.push(format!(
                "the walk did not reach the last page in {max_pages} pages"
            ));
        }
        let order = records
            .first()
            .and_then(|r| r.headers.get("x-order").cloned());

        stack.platforms.reset();
        let started = Instant::now();
        let straight = walk_directly(
            bench,
            &stack.platforms.zonky_url,
            order.as_deref(),
            max_pages,
        )
        .await?;
        direct.push(started.elapsed().as_secs_f64());

        let unique: HashSet<&String> = served.iter().collect();
        let expected: HashSet<&String> = straight.iter().collect();
        if served.len() != loans || unique.len() != served.len() || unique != expected {
            section.problems.push(format!(
                "the gateway served {} loans ({} distinct) for {} on the platform; {} of the platform's are missing",
                served.len(),
                unique.len(),
                straight.len(),
                expected.difference(&unique).count()
            ));
        } else if served != straight {
            section
                .notes
                .push("every loan was served once, but not in the platform's order".to_string());
        }
    }
    let gateway = Stat::of(through_gateway);
    section.figures.push(
        Figure::new(format!("walk of {loans} loans"), "s", gateway).against(Stat::of(direct)),
    );
    section
        .figures
        .push(Figure::new("gateway pages", "pages", Stat::of(pages)));
    section.figures.push(Figure::new(
        "upstream requests of the walk",
        "req",
        Stat::of(upstream),
    ));
    stack.stop().await;
    Ok(section)
}

/// Every loan of the marketplace, page by page, as global ids.
async fn walk_directly(
    bench: &Bench,
    base: &str,
    order: Option<&str>,
    max_pages: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for page in 0..max_pages {
        let mut request = bench
            .direct_client
            .get(format!("{base}{ZONKY_LOANS}"))
            .header("X-Page", page.to_string())
            .header("X-Size", PAGE_SIZE.to_string());
        if let Some(order) = order {
            request = request.header("X-Order", order);
        }
        let response = request.send().await?.error_for_status()?;
        let total: Option<usize> = response
            .headers()
            .get("x-total")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let loans: Vec<Value> = response.json().await?;
        for loan in &loans {
            let id = loan["id"].as_u64().context("a loan without a numeric id")?;
            ids.push(format!("zonky:loan:{id}"));
        }
        if loans.len() < PAGE_SIZE as usize || total.is_some_and(|t| ids.len() >= t) {
            return Ok(ids);
        }
    }
    bail!("the platform's pages did not end within {max_pages} pages")
}
