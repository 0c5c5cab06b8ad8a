//! The response cache through GraphQL: one upstream call for a thousand
//! identical cold queries, no private answer crossing principals, the last
//! good page served stale while a platform fails, writes invalidating what
//! they change, the size bound, and batched loan lookups.

use std::collections::HashSet;
use std::time::Duration;

use finmesh_e2e::{Stack, error_extensions, token};
use finmesh_sandbox::bongloy::defaults::ACTIVE_DESTINATION;
use finmesh_sandbox::{BucketConfig, Faults, ZonkyConfig};
use finmesh_server::commands::Demo;
use finmesh_store::testing::test_databases;
use futures::future::join_all;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const LOANS: &str = "{ loans(first: 20) { edges { node { id } } } }";

fn zonky(loans: usize) -> ZonkyConfig {
    ZonkyConfig {
        loans,
        ..ZonkyConfig::default()
    }
}

/// How many requests the simulator got on `endpoint` (a route template).
fn calls(stats: &finmesh_sandbox::Stats, endpoint: &str) -> u64 {
    stats.by_endpoint.get(endpoint).copied().unwrap_or(0)
}

fn ids(response: &Value, field: &str) -> Vec<String> {
    response["data"][field]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {response}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_identical_cold_queries_make_one_upstream_call() {
    let stack = Stack::zonky(zonky(500), "").await;
    let sandbox = stack.sandbox("zonky");
    sandbox.reset();
    // Two differently written queries that need the same provider page.
    let other = "query Other { loans(first: 20) { totalCount edges { node { id name } } } }";
    let answers = join_all((0..1000).map(|n| {
        let query = if n % 2 == 0 { LOANS } else { other };
        stack.graphql(query, Value::Null)
    }))
    .await;

    let stats = sandbox.stats();
    assert_eq!(calls(&stats, "/loans/marketplace"), 1, "{stats:?}");
    assert_eq!(stats.served, 1, "nothing else was asked: {stats:?}");
    let first = ids(&answers[0], "loans");
    assert_eq!(first.len(), 20);
    for answer in &answers {
        assert!(answer["errors"].is_null(), "{answer}");
        assert_eq!(ids(answer, "loans"), first);
        assert_eq!(answer["extensions"]["cache"]["zonky"]["stale"], false);
    }

    // The next one is answered from the cache, and says so.
    let cached = stack.graphql(LOANS, Value::Null).await;
    let status = &cached["extensions"]["cache"]["zonky"];
    assert_eq!(status["hit"], true, "{cached}");
    assert!(status["ageMs"].as_u64().is_some(), "{cached}");
    assert_eq!(calls(&sandbox.stats(), "/loans/marketplace"), 1);
    stack.shutdown().await;
}

const INVESTMENTS: &str =
    "{ investments(first: 50) { totalCount edges { node { id principalTotal { amount } } } } }";

#[tokio::test]
async fn one_principals_private_answer_never_reaches_another() {
    let databases = test_databases().await;
    let database = &databases[0];
    // A long time to live: only invalidation can drop an answer here.
    let stack = Stack::with_identity(
        zonky(400),
        &database.url,
        "[cache]\nttl_private_ms = 600000\n",
    )
    .await;
    let sandbox = stack.sandbox("zonky");
    let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));
    assert_eq!(stack.connect(&alice, "zonky", "alice").await.status(), 200);
    assert_eq!(stack.connect(&bob, "zonky", "bob").await.status(), 200);
    let own = |user: &str| -> HashSet<String> {
        sandbox
            .investments(user)
            .iter()
            .map(|i| format!("zonky:investment:{}", i["id"]))
            .collect()
    };
    let (alices, bobs) = (own("alice"), own("bob"));
    assert!(alices.is_disjoint(&bobs));

    // Each principal asks twice; the second answer comes from the cache.
    for round in 0..2 {
        for (token, expected) in [(&alice, &alices), (&bob, &bobs)] {
            let answer = stack.graphql_as(Some(token), INVESTMENTS, json!({})).await;
            assert!(answer["errors"].is_null(), "{answer}");
            let seen: HashSet<String> = ids(&answer, "investments").into_iter().collect();
            assert_eq!(seen.len(), 50);
            assert!(seen.is_subset(expected), "round {round}: {answer}");
            let hit = &answer["extensions"]["cache"]["zonky"]["hit"];
            assert_eq!(hit, &json!(round == 1), "round {round}: {answer}");
        }
    }

    // Alice's cached investment is not Bob's to read.
    let alices_id = alices.iter().next().unwrap().clone();
    let query = "query($id: ID!) { investment(id: $id) { id } }";
    let own_read = stack
        .graphql_as(Some(&alice), query, json!({"id": alices_id}))
        .await;
    assert_eq!(own_read["data"]["investment"]["id"], alices_id.as_str());
    let peek = stack
        .graphql_as(Some(&bob), query, json!({"id": alices_id}))
        .await;
    assert!(peek["data"]["investment"].is_null(), "{peek}");
    assert_eq!(error_extensions(&peek)[0]["code"], "NOT_FOUND");

    // Carol never connected, and anonymous callers are nobody: neither gets
    // what the cache holds for others.
    let carols = stack.graphql_as(Some(&carol), INVESTMENTS, json!({})).await;
    assert_eq!(
        error_extensions(&carols)[0]["code"],
        "NOT_CONNECTED",
        "{carols}"
    );
    let anonymous = stack.graphql(INVESTMENTS, json!({})).await;
    assert_eq!(error_extensions(&anonymous)[0]["code"], "UNAUTHENTICATED");

    // The keys: every private answer under its own principal, public ones under none.
    let cache = &stack.gateway().cache;
    cache.run_pending_tasks().await;
    let keys = cache.keys();
    let owners: HashSet<&str> = keys
        .iter()
        .filter_map(|key| key.principal().map(|p| p.id()))
        .collect();
    assert_eq!(owners, HashSet::from(["alice", "bob"]), "{keys:?}");
    for key in &keys {
        let public = format!("{:?}", key.operation().class()) == "Public";
        assert_eq!(key.principal().is_none(), public, "{key:?}");
    }

    // Disconnected, Alice's cached answers go with the link; Bob's stay.
    let disconnect = "mutation { disconnectProvider(provider: \"zonky\") }";
    let gone = stack.graphql_as(Some(&alice), disconnect, json!({})).await;
    assert_eq!(gone["data"]["disconnectProvider"], true, "{gone}");
    let after = stack.graphql_as(Some(&alice), INVESTMENTS, json!({})).await;
    assert_eq!(
        error_extensions(&after)[0]["code"],
        "NOT_CONNECTED",
        "{after}"
    );
    let bobs_again = stack.graphql_as(Some(&bob), INVESTMENTS, json!({})).await;
    assert_eq!(bobs_again["extensions"]["cache"]["zonky"]["hit"], true);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_failing_platform_is_answered_with_its_last_good_page_marked_stale() {
    // `strict` turns stale-if-error off for itself.
    let stack = Stack::start(
        vec![("zonky", zonky(100)), ("strict", zonky(100))],
        r#"
        [gateway]
        upstream_timeout_ms = 500
        [cache]
        ttl_public_ms = 300
        stale_if_error_ms = 60000
        [providers.strict.cache]
        stale_if_error_ms = 0
        "#,
    )
    .await;
    let query = "{ loans(first: 10, providers: [\"zonky\"]) { edges { node { id } } } }";
    let strict = "{ loans(first: 10, providers: [\"strict\"]) { edges { node { id } } } }";
    let good = stack.graphql(query, Value::Null).await;
    assert_eq!(good["extensions"]["cache"]["zonky"]["hit"], false, "{good}");
    stack.graphql(strict, Value::Null).await;

    for id in ["zonky", "strict"] {
        stack.sandbox(id).set_faults(Faults {
            error_rate: 1.0,
            error_status: 503,
            ..Faults::default()
        });
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    let stale = stack.graphql(query, Value::Null).await;
    assert!(stale["errors"].is_null(), "{stale}");
    assert_eq!(ids(&stale, "loans"), ids(&good, "loans"));
    let status = &stale["extensions"]["cache"]["zonky"];
    assert_eq!(status["stale"], true, "{stale}");
    assert_eq!(status["hit"], true, "{stale}");
    assert!(status["ageMs"].as_u64().unwrap() >= 300, "{stale}");

    let failed = stack.graphql(strict, Value::Null).await;
    let errors = error_extensions(&failed);
    assert_eq!(errors.len(), 1, "{failed}");
    assert_eq!(errors[0]["code"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(errors[0]["provider"], "strict");
    assert!(
        failed["extensions"]["cache"]["strict"].is_null(),
        "{failed}"
    );

    // Back up: a fresh page replaces the stale one.
    stack.sandbox("zonky").set_faults(Faults::default());
    let fresh = stack.graphql(query, Value::Null).await;
    assert_eq!(
        fresh["extensions"]["cache"]["zonky"]["stale"], false,
        "{fresh}"
    );
    stack.shutdown().await;
}

const TRANSFERS: &str = "{ transfers(first: 100) { edges { node { id status } } } }";
const TRANSFER: &str = "query($id: ID!) { transfer(id: $id) { id status metadata } }";
const CREATE: &str = "mutation($input: CreateTransferInput!, $key: String!) {
    createTransfer(input: $input, idempotencyKey: $key) { id status } }";
const CONFIRM: &str = "mutation($id: ID!, $key: String!) { confirmTransfer(id: $id, idempotencyKey: $key) { id status } }";

async fn graphql(demo: &Demo, token: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{}/graphql", demo.gateway.url()))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn bongloy_hit(response: &Value) -> bool {
    response["extensions"]["cache"]["bongloy"]["hit"]
        .as_bool()
        .unwrap_or_else(|| panic!("no cache status for bongloy: {response}"))
}

#[tokio::test]
async fn a_transfer_mutation_invalidates_that_principals_transfers() {
    // A long time to live: only invalidation can refresh an answer here.
    let demo = Demo::start_with(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        "[cache]\nttl_private_ms = 600000\n",
    )
    .await
    .unwrap();
    let alice = demo.token("alice").unwrap();

    let before = graphql(&demo, &alice, TRANSFERS, json!({})).await;
    assert!(before["errors"].is_null(), "{before}");
    assert!(!bongloy_hit(&before));
    let again = graphql(&demo, &alice, TRANSFERS, json!({})).await;
    assert!(bongloy_hit(&again), "{again}");
    assert_eq!(ids(&again, "transfers"), ids(&before, "transfers"));

    let input = json!({"provider": "bongloy", "amount": {"amount": "12.34", "currency": "USD"},
                       "destinationAccount": ACTIVE_DESTINATION, "metadata": {"order": "C-1"}});
    let created = graphql(
        &demo,
        &alice,
        CREATE,
        json!({"input": input, "key": "cache-1"}),
    )
    .await;
    let id = created["data"]["createTransfer"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();

    let after = graphql(&demo, &alice, TRANSFERS, json!({})).await;
    assert!(
        !bongloy_hit(&after),
        "the write dropped the cached list: {after}"
    );
    assert!(ids(&after, "transfers").contains(&id), "{after}");

    let pending = graphql(&demo, &alice, TRANSFER, json!({"id": id})).await;
    assert_eq!(
        pending["data"]["transfer"]["status"], "PENDING",
        "{pending}"
    );
    let cached = graphql(&demo, &alice, TRANSFER, json!({"id": id})).await;
    assert!(bongloy_hit(&cached));

    let confirmed = graphql(&demo, &alice, CONFIRM, json!({"id": id, "key": "cache-1c"})).await;
    assert_eq!(
        confirmed["data"]["confirmTransfer"]["status"], "CONFIRMED",
        "{confirmed}"
    );
    // The simulator settles a confirmed transfer at once.
    let settled = [json!("CONFIRMED"), json!("SUCCESSFUL")];
    let read = graphql(&demo, &alice, TRANSFER, json!({"id": id})).await;
    assert!(
        settled.contains(&read["data"]["transfer"]["status"]),
        "{read}"
    );
    assert!(!bongloy_hit(&read));

    let update =
        "mutation($id: ID!) { updateTransferMetadata(id: $id, metadata: {order: \"C-2\"}) { id } }";
    let updated = graphql(&demo, &alice, update, json!({"id": id})).await;
    assert!(updated["errors"].is_null(), "{updated}");
    let read = graphql(&demo, &alice, TRANSFER, json!({"id": id})).await;
    assert_eq!(
        read["data"]["transfer"]["metadata"],
        json!({"order": "C-2"}),
        "{read}"
    );
    let listed = graphql(&demo, &alice, TRANSFERS, json!({})).await;
    let status = listed["data"]["transfers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["id"] == id.as_str())
        .map(|e| e["node"]["status"].clone())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(settled.contains(&status), "{listed}");
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The cache's bound in the memory test.
const BOUND: u64 = 8 * 1024 * 1024;
/// What answering a stream of page queries holds besides the cache (request
/// and response buffers, allocator arenas). Measured on x86-64 Linux (debug
/// build, 400 pages): at rest the gateway and the simulator take 44 MiB;
/// filling a cache of 0, 16 and 64 MiB then adds 11, 27 and 73 MiB.
const WORKING_SET: u64 = 24 * 1024 * 1024;

#[test]
fn resident_memory_stays_within_the_bound_plus_a_baseline() {
    // Alone in a fresh process: resident memory is the process's, and the
    // other tests of this binary would blur it.
    let probe = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "e2e::cache::memory_probe",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let line = stdout.lines().find(|l| l.starts_with("memory:")).unwrap();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.split_once('=').and_then(|(_, n)| n.parse().ok()))
        .collect();
    let [pages, weight, at_rest, filled] = numbers[..] else {
        panic!("{line}")
    };
    assert!(
        pages * 100 * 6_000 > 10 * BOUND,
        "filled far past the bound: {line}"
    );
    assert!(weight <= BOUND, "{line}");
    assert!(weight >= BOUND / 2, "the cache is used: {line}");
    assert!(
        filled.saturating_sub(at_rest) <= BOUND + WORKING_SET,
        "{line}"
    );
}

/// Fills a cache of [`BOUND`] bytes far past its bound and prints what it
/// holds and the process's resident memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run alone in its own process by resident_memory_stays_within_the_bound_plus_a_baseline"]
async fn memory_probe() {
    let unthrottled = BucketConfig {
        capacity: 1_000_000,
        refill_per_second: Decimal::from(1_000_000),
    };
    let sandbox = ZonkyConfig {
        bucket: unthrottled,
        ..zonky(5_000)
    };
    let gateway = format!(
        r#"
        [cache]
        max_bytes = {BOUND}
        ttl_public_ms = 600000
        [[providers.zonky.throttle.rules]]
        name = "default"
        capacity = 1000000
        refill_per_second = 1000000.0
        "#
    );
    let stack = Stack::zonky(sandbox, &gateway).await;
    let cache = &stack.gateway().cache;
    stack.graphql(LOANS, Value::Null).await;
    let at_rest = resident_bytes();

    // Every page of the marketplace in four orders the platform sorts by
    // itself: 200 pages of 100 loans (6 KB each), one upstream call each.
    let mut pages = 0;
    for field in [
        "INTEREST_RATE",
        "TERM_MONTHS",
        "REMAINING_AMOUNT",
        "PUBLISHED_AT",
    ] {
        let order = format!("{{field: {field}}}");
        let query = format!(
            "query($after: String) {{ loans(first: 100, after: $after, orderBy: [{order}]) {{
                edges {{ node {{ id }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        );
        let mut after = Value::Null;
        loop {
            let page = stack.graphql(&query, json!({"after": after})).await;
            assert!(page["errors"].is_null(), "{page}");
            pages += 1;
            let info = &page["data"]["loans"]["pageInfo"];
            if info["hasNextPage"] != true {
                break;
            }
            after = info["endCursor"].clone();
        }
    }
    cache.run_pending_tasks().await;
    println!(
        "memory: pages={pages} weight={} at_rest={at_rest} filled={}",
        cache.weighted_size(),
        resident_bytes()
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn fifty_loans_by_id_ask_each_distinct_loan_once() {
    let stack = Stack::zonky(
        zonky(300),
        "[graphql]\nmax_aliases = 100\nmax_root_fields = 100\n",
    )
    .await;
    let sandbox = stack.sandbox("zonky");
    let listed = stack
        .graphql(
            "{ loans(first: 30) { edges { node { id } } } }",
            Value::Null,
        )
        .await;
    let distinct = ids(&listed, "loans");
    assert_eq!(distinct.len(), 30);
    let fields: Vec<String> = (0..50)
        .map(|n| format!("l{n}: loan(id: \"{}\") {{ id name }}", distinct[n % 30]))
        .collect();
    let query = format!("{{ {} }}", fields.join(" "));

    sandbox.reset();
    let answer = stack.graphql(&query, Value::Null).await;
    assert!(answer["errors"].is_null(), "{answer}");
    for n in 0..50 {
        assert_eq!(
            answer["data"][format!("l{n}")]["id"],
            distinct[n % 30].as_str()
        );
    }
    assert_eq!(
        calls(&sandbox.stats(), "/loans/{id}"),
        30,
        "one call per distinct id"
    );
    assert_eq!(answer["extensions"]["cache"]["zonky"]["hit"], false);

    // Asked again: all from the cache.
    let again = stack.graphql(&query, Value::Null).await;
    assert_eq!(
        again["extensions"]["cache"]["zonky"]["hit"], true,
        "{again}"
    );
    assert_eq!(calls(&sandbox.stats(), "/loans/{id}"), 30);

    // Nested loans of a list are batched the same way.
    sandbox.reset();
    let offers = stack
        .graphql(
            "{ secondaryMarket(first: 50) { edges { node { loanId loan { id } } } } }",
            Value::Null,
        )
        .await;
    assert!(offers["errors"].is_null(), "{offers}");
    let edges = offers["data"]["secondaryMarket"]["edges"]
        .as_array()
        .unwrap();
    let loan_ids: HashSet<&str> = edges
        .iter()
        .map(|e| {
            assert_eq!(e["node"]["loan"]["id"], e["node"]["loanId"]);
            e["node"]["loanId"].as_str().unwrap()
        })
        .collect();
    let already: HashSet<&str> = distinct.iter().map(String::as_str).collect();
    let needed = loan_ids.difference(&already).count() as u64;
    assert_eq!(calls(&sandbox.stats(), "/loans/{id}"), needed, "{offers}");
    stack.shutdown().await;
}
