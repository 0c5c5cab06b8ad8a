//! The status page as HTML: no script, no inline style (CSP-friendly), charts
//! as inline SVG, and a `<meta http-equiv="refresh">` that reloads it.

use std::fmt::Write;

use super::{BudgetView, CacheView, KEPT_SAMPLES, ProviderView, StatusView, Window};

/// Seconds between reloads.
const REFRESH_SECONDS: u32 = 10;
const CHART_WIDTH: f64 = 300.0;
const CHART_HEIGHT: f64 = 48.0;

pub(super) const CSS: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #f6f7f9; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
.meta { color: #5b6475; margin-bottom: 1rem; }
.banner { background: #fde2e1; border: 1px solid #e5534b; padding: .5rem .75rem; margin-bottom: 1rem; }
.providers { display: flex; flex-wrap: wrap; gap: 1rem; }
.card { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; padding: .75rem 1rem; width: 340px; }
.card h2 { font-size: 1.1rem; margin: 0 0 .25rem; }
.badge { display: inline-block; padding: 0 .5rem; border-radius: 9px; font-size: .8rem; font-weight: 600; }
.up { background: #d3f4dc; color: #14632c; }
.throttled { background: #fff1c2; color: #7a5200; }
.down { background: #fde2e1; color: #a0211b; }
.unknown { background: #e6e8ec; color: #454c5a; }
.label { color: #5b6475; font-size: .8rem; margin-top: .5rem; }
.numbers { display: flex; gap: 1rem; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; background: #fff; border: 1px solid #d8dce3; }
td, th { padding: .25rem .75rem; text-align: left; border-bottom: 1px solid #eceef2; }
svg { display: block; }
.bar-bg { fill: #eceef2; }
.bar-ok { fill: #3b82c4; }
.bar-low { fill: #e5534b; }
.req { fill: #9cc3e6; }
.err { fill: #e5534b; }
.lat { fill: none; stroke: #7b4fc9; stroke-width: 1.5; }
.dot { fill: #7b4fc9; }
.axis { stroke: #d8dce3; }
"#;

pub(super) fn render(status: &StatusView) -> String {
    let mut html = String::with_capacity(16 * 1024);
    let minutes = KEPT_SAMPLES as u64 * status.sample_seconds / 60;
    let _ = write!(
        html,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>finmesh status</title>
<link rel="stylesheet" href="/status.css">
</head>
<body>
<h1>finmesh status</h1>
<div class="meta">version {version} · {generated} · reloads every {REFRESH_SECONDS} s · charts: one bar per {sample} s over the last {minutes} min · <a href="/status.json">JSON</a></div>
"#,
        version = escape(status.version),
        generated = status.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
        sample = status.sample_seconds,
    );
    if status.shutting_down {
        html.push_str(r#"<div class="banner">Shutting down: not accepting new traffic.</div>"#);
    }
    let _ = write!(
        html,
        r#"<div class="meta">GraphQL: {} requests, {} with errors, {}</div>
<div class="providers">
"#,
        status.graphql.requests,
        percent(status.graphql.error_rate),
        latency(status.graphql.avg_latency_ms),
    );
    for provider in &status.providers {
        provider_card(&mut html, provider);
    }
    html.push_str("</div>\n");
    caches(&mut html, &status.caches);
    html.push_str("</body>\n</html>\n");
    html
}

fn provider_card(html: &mut String, provider: &ProviderView) {
    let _ = write!(
        html,
        r#"<section class="card" data-provider="{id}">
<h2>{name} <span class="badge {health}">{health}</span></h2>
<div class="meta">{id} · {kind}{circuit}{error}</div>
"#,
        id = escape(&provider.id),
        name = escape(&provider.name),
        health = provider.health,
        kind = escape(provider.kind),
        circuit = format_args!(" · circuit {}", provider.circuit),
        error = provider
            .last_error
            .map(|code| format!(" · last error {code}"))
            .unwrap_or_default(),
    );
    html.push_str(r#"<div class="label">Throttle budget</div>"#);
    if provider.budgets.is_empty() {
        html.push_str(r#"<div class="meta">no request made yet</div>"#);
    }
    for budget in &provider.budgets {
        budget_bar(html, budget);
    }
    let recent = &provider.recent;
    let _ = write!(
        html,
        r#"<div class="label">Upstream requests (red: errors and 429s)</div>
{}
<div class="label">Average latency</div>
{}
<div class="numbers"><span>{} requests</span><span>{} errors</span><span>{} 429s</span><span>{}</span></div>
</section>
"#,
        requests_chart(&provider.history),
        latency_chart(&provider.history),
        recent.requests,
        percent(recent.error_rate),
        recent.rate_limited,
        latency(recent.avg_latency_ms),
    );
}

fn budget_bar(html: &mut String, budget: &BudgetView) {
    let share = f64::from(budget.remaining) / f64::from(budget.burst.max(1));
    let class = if share < 0.2 { "bar-low" } else { "bar-ok" };
    let _ = write!(
        html,
        r#"<svg width="{CHART_WIDTH}" height="14" role="img" aria-label="{rule}: {remaining} of {burst} left"><rect class="bar-bg" width="{CHART_WIDTH}" height="14"/><rect class="{class}" width="{width:.1}" height="14"/></svg>
<div class="meta">{rule}: {remaining} of {burst} left</div>
"#,
        rule = escape(&budget.rule),
        remaining = budget.remaining,
        burst = budget.burst,
        width = share.clamp(0.0, 1.0) * CHART_WIDTH,
    );
}

/// Every chart has room for the whole ring (plus the open window), newest
/// at the right, so its width always means the same stretch of time.
const SLOT: f64 = CHART_WIDTH / (KEPT_SAMPLES + 1) as f64;

/// The left edge of window `index` of `count`.
fn slot_x(index: usize, count: usize) -> f64 {
    CHART_WIDTH - (count - index) as f64 * SLOT
}

fn requests_chart(history: &[Window]) -> String {
    let max = history.iter().map(|w| w.requests).max().unwrap_or(0).max(1) as f64;
    let width = (SLOT - 1.0).max(1.0);
    let mut svg = chart_start("requests per interval");
    for (index, window) in history.iter().enumerate() {
        let x = slot_x(index, history.len());
        let height = window.requests as f64 / max * CHART_HEIGHT;
        let failed = (window.errors + window.rate_limited) as f64 / max * CHART_HEIGHT;
        let _ = write!(
            svg,
            r#"<rect class="req" x="{x:.1}" y="{:.1}" width="{:.1}" height="{height:.1}"/>"#,
            CHART_HEIGHT - height,
            width,
        );
        if failed > 0.0 {
            let _ = write!(
                svg,
                r#"<rect class="err" x="{x:.1}" y="{:.1}" width="{:.1}" height="{failed:.1}"/>"#,
                CHART_HEIGHT - failed,
                width,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn latency_chart(history: &[Window]) -> String {
    let max = history
        .iter()
        .filter_map(|w| w.avg_latency_ms)
        .fold(1.0_f64, f64::max);
    let points: Vec<(f64, f64)> = history
        .iter()
        .enumerate()
        .filter_map(|(index, window)| {
            let ms = window.avg_latency_ms?;
            let x = slot_x(index, history.len()) + SLOT / 2.0;
            Some((x, CHART_HEIGHT - ms / max * (CHART_HEIGHT - 4.0)))
        })
        .collect();
    let mut svg = chart_start("average latency per interval");
    let line: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = write!(
        svg,
        r#"<polyline class="lat" points="{}"/>"#,
        line.join(" ")
    );
    for (x, y) in &points {
        let _ = write!(
            svg,
            r#"<circle class="dot" cx="{x:.1}" cy="{y:.1}" r="2"/>"#
        );
    }
    if !points.is_empty() {
        let _ = write!(
            svg,
            r##"<text x="2" y="10" font-size="9" fill="#5b6475">max {max:.0} ms</text>"##
        );
    }
    svg.push_str("</svg>");
    svg
}

fn chart_start(label: &str) -> String {
    format!(
        r#"<svg width="{CHART_WIDTH}" height="{CHART_HEIGHT}" role="img" aria-label="{label}"><line class="axis" x1="0" y1="{CHART_HEIGHT}" x2="{CHART_WIDTH}" y2="{CHART_HEIGHT}"/>"#
    )
}

fn caches(html: &mut String, caches: &[CacheView]) {
    html.push_str("<h2>Caches</h2>\n");
    if caches.is_empty() {
        html.push_str(r#"<div class="meta">no cache lookups yet</div>"#);
        return;
    }
    html.push_str("<table><tr><th>cache</th><th>hit ratio</th><th>hits</th><th>misses</th><th>stale served</th></tr>\n");
    for cache in caches {
        let ratio = cache.hit_ratio.unwrap_or(0.0);
        let _ = writeln!(
            html,
            r#"<tr><td>{name}</td><td><svg width="100" height="10" role="img" aria-label="hit ratio"><rect class="bar-bg" width="100" height="10"/><rect class="bar-ok" width="{width:.1}" height="10"/></svg>{ratio}</td><td>{hits}</td><td>{misses}</td><td>{stale}</td></tr>"#,
            name = escape(cache.name),
            width = ratio * 100.0,
            ratio = percent(cache.hit_ratio),
            hits = cache.hits,
            misses = cache.misses,
            stale = cache.stale,
        );
    }
    html.push_str("</table>\n");
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "–".to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn latency(ms: Option<f64>) -> String {
    ms.map_or_else(
        || "no latency yet".to_string(),
        |ms| format!("{ms:.0} ms avg"),
    )
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn view(name: &str) -> StatusView {
        let window = |requests, errors| Window {
            until: Some(Utc::now()),
            requests,
            errors,
            rate_limited: 0,
            error_rate: Some(errors as f64 / requests as f64),
            avg_latency_ms: Some(12.0),
        };
        StatusView {
            generated_at: Utc::now(),
            version: "0.1.0",
            shutting_down: true,
            sample_seconds: 10,
            graphql: Window::default(),
            providers: vec![ProviderView {
                id: "zonky".into(),
                name: name.into(),
                kind: "zonky",
                health: "up",
                last_success_at: None,
                last_failure_at: None,
                last_error: Some("RATE_LIMITED"),
                circuit: "closed",
                budgets: vec![BudgetView {
                    rule: "default".into(),
                    remaining: 10,
                    burst: 499,
                }],
                recent: window(4, 1),
                history: vec![window(3, 0), window(1, 1)],
            }],
            caches: vec![],
        }
    }

    #[test]
    fn the_page_shows_each_provider_and_escapes_names() {
        let html = render(&view("Zonky <script>"));
        assert!(html.contains(r#"data-provider="zonky""#));
        assert!(html.contains("Zonky &lt;script&gt;"));
        assert!(!html.contains("<script"), "no script at all");
        assert!(!html.contains("style="), "no inline style");
        assert!(html.contains("default: 10 of 499 left"));
        assert!(html.contains("Shutting down"));
        assert!(html.contains("25.0%"), "error rate of the recent window");
        assert!(
            html.contains(r#"class="err""#),
            "the failed request is drawn"
        );
    }
}
