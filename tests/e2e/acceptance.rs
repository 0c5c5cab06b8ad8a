//! The acceptance query, checked against the simulator's data set.

use std::collections::{HashMap, HashSet};

use finmesh_e2e::{EXAMPLE_QUERY, Stack};
use finmesh_sandbox::ZonkyConfig;
use rust_decimal::Decimal;
use serde_json::Value;

fn decimal(value: &Value) -> Decimal {
    match value {
        Value::String(text) => text.parse().unwrap(),
        number => number.to_string().parse().unwrap(),
    }
}

/// The example query, continued after `cursor`.
fn after(cursor: &str) -> String {
    EXAMPLE_QUERY.replacen(
        "loans(first: 20,",
        &format!("loans(first: 20, after: \"{cursor}\","),
        1,
    )
}

#[tokio::test]
async fn the_example_query_is_right_and_its_cursors_visit_every_match_once() {
    let stack = Stack::zonky(ZonkyConfig::default(), "").await;
    let loans = stack.sandbox("zonky").loans();
    let matching: HashMap<String, &Value> = loans
        .iter()
        .filter(|loan| loan["termInMonths"].as_u64().unwrap() <= 48)
        .map(|loan| (format!("zonky:loan:{}", loan["id"]), loan))
        .collect();
    assert!(
        matching.len() > 100,
        "the data set should exercise many pages"
    );
    let mut expected_rates: Vec<Decimal> = matching
        .values()
        .map(|loan| decimal(&loan["interestRate"]))
        .collect();
    expected_rates.sort_by(|a, b| b.cmp(a));

    let mut page = stack.graphql(EXAMPLE_QUERY, Value::Null).await;
    assert_eq!(
        page["data"]["loans"]["totalCount"].as_u64(),
        Some(matching.len() as u64)
    );
    let mut served = Vec::new();
    loop {
        assert!(page.get("errors").is_none(), "{page:#}");
        let loans = &page["data"]["loans"];
        let edges = loans["edges"].as_array().unwrap();
        for node in edges.iter().map(|edge| &edge["node"]) {
            let id = node["id"].as_str().unwrap();
            let loan = matching
                .get(id)
                .unwrap_or_else(|| panic!("{id} does not match the filter"));
            assert_eq!(node["name"], loan["name"]);
            assert_eq!(node["termMonths"], loan["termInMonths"]);
            assert_eq!(
                decimal(&node["interestRate"]),
                decimal(&loan["interestRate"])
            );
            assert_eq!(decimal(&node["amount"]["amount"]), decimal(&loan["amount"]));
            assert_eq!(node["amount"]["currency"], loan["currency"]);
            served.push((id.to_string(), decimal(&node["interestRate"])));
        }
        if loans["pageInfo"]["hasNextPage"] != true {
            break;
        }
        assert_eq!(edges.len(), 20, "only the last page may be short");
        let cursor = loans["pageInfo"]["endCursor"].as_str().unwrap();
        page = stack.graphql(&after(cursor), Value::Null).await;
    }

    let unique: HashSet<&str> = served.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(unique.len(), served.len(), "a loan was served twice");
    assert_eq!(
        unique.len(),
        matching.len(),
        "a matching loan was never served"
    );
    let rates: Vec<Decimal> = served.into_iter().map(|(_, rate)| rate).collect();
    assert_eq!(
        rates, expected_rates,
        "not ordered by interest rate, highest first"
    );
    assert_eq!(stack.sandbox("zonky").stats().throttled, 0);
    stack.shutdown().await;
}
