//! The throttle acceptance: three times the platform's budget driven through
//! GraphQL, and the platform never has to refuse a request, while the gateway
//! still uses at least 90% of what it allows.

use std::time::{Duration, Instant};

use finmesh_e2e::Stack;
use finmesh_sandbox::{BucketConfig, ZonkyConfig};
use futures::future::join_all;
use rust_decimal::Decimal;
use serde_json::Value;

const CAPACITY: u32 = 5;
const RATE: u32 = 5;
const DRIVE: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_times_the_budget_gets_no_429_and_uses_the_budget() {
    let sandbox = ZonkyConfig {
        loans: 300,
        bucket: BucketConfig {
            capacity: CAPACITY,
            refill_per_second: Decimal::from(RATE),
        },
        ..ZonkyConfig::default()
    };
    // The gateway knows the platform's policy; a short request timeout keeps
    // the queue of waiting callers (and the test) short.
    let gateway = format!(
        r#"
        [server]
        request_timeout_ms = 2000

        [[providers.zonky.throttle.rules]]
        name = "default"
        capacity = {CAPACITY}
        refill_per_second = {RATE}.0
        "#
    );
    let stack = Stack::zonky(sandbox, &gateway).await;
    stack.sandbox("zonky").reset();

    // Three times what the platform allows over DRIVE, in an even stream plus
    // a first burst the size of the bucket.
    let budget = CAPACITY + RATE * DRIVE.as_secs() as u32;
    let requests = 3 * budget;
    let spacing = DRIVE / (requests - 3 * CAPACITY);
    let started = Instant::now();
    let calls = (0..requests).map(|n| {
        let stack = &stack;
        // Distinct filters, so no answer could be reused for another.
        let query = format!(
            "{{ loans(first: 5, filter: {{termMonths: {{lte: {}}}}}) {{ edges {{ node {{ id }} }} }} }}",
            12 + n
        );
        let start_at = spacing * n.saturating_sub(3 * CAPACITY);
        async move {
            tokio::time::sleep(start_at).await;
            stack.graphql(&query, Value::Null).await
        }
    });
    let responses = join_all(calls).await;
    let elapsed = started.elapsed();

    let stats = stack.sandbox("zonky").stats();
    assert_eq!(
        stats.throttled, 0,
        "the platform had to refuse requests: {stats:?}"
    );
    let allowed = f64::from(CAPACITY) + f64::from(RATE) * elapsed.as_secs_f64();
    let used = stats.served as f64 / allowed;
    eprintln!(
        "throttle: {requests} GraphQL requests, {} served upstream in {elapsed:?} ({:.0}% of the {allowed:.1} allowed), {} refused",
        stats.served,
        used * 100.0,
        stats.throttled
    );
    assert!(
        used >= 0.9,
        "upstream used {:.0}% of the allowed rate ({} served in {elapsed:?}, {allowed:.1} allowed)",
        used * 100.0,
        stats.served
    );
    // Callers beyond the budget got an error naming the provider, within
    // their deadline, rather than hanging.
    let answered = responses
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    assert!(answered as u64 <= stats.served);
    let codes: Vec<&str> = responses
        .iter()
        .filter_map(|r| r["errors"][0]["extensions"]["code"].as_str())
        .collect();
    eprintln!("throttle: {answered} answered; errors: {codes:?}");
    for response in responses.iter().filter(|r| r.get("errors").is_some()) {
        let extensions = &response["errors"][0]["extensions"];
        assert_eq!(extensions["provider"], "zonky", "{response:#}");
        assert!(
            ["RATE_LIMITED", "UPSTREAM_UNAVAILABLE"]
                .contains(&extensions["code"].as_str().unwrap_or("")),
            "{response:#}"
        );
    }
    stack.shutdown().await;
}
