//! The GraphQL queries the scenarios send, and how an answer is judged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::{Value, json};

/// The fields of the hot query's loans: what a marketplace list shows.
pub const LOAN_FIELDS: &str = "totalCount edges { cursor node { id name interestRate termMonths amount { amount currency } } } pageInfo { hasNextPage endCursor }";

/// The hot query: the first page of the marketplace, newest first.
pub fn hot() -> String {
    format!("{{ loans(first: 20) {{ {LOAN_FIELDS} }} }}")
}

/// A query with the hot query's answer (every loan runs at most 84 months)
/// that no cache can have seen: its filter, pushed down to the platform, is
/// new. Each call of [`fresh_term`] gives a new `max_term`.
pub fn cold(max_term: u64, first: u32) -> String {
    format!(
        "{{ loans(first: {first}, filter: {{termMonths: {{lte: {max_term}}}}}) {{ {LOAN_FIELDS} }} }}"
    )
}

/// [`cold`] asking Zonky alone (`providers: ["zonky"]`): the throttle
/// scenario measures Zonky's budget.
pub fn cold_zonky(max_term: u64, first: u32) -> String {
    format!(
        "{{ loans(first: {first}, providers: [\"zonky\"], filter: {{termMonths: {{lte: {max_term}}}}}) {{ {LOAN_FIELDS} }} }}"
    )
}

/// A `termMonths` bound never used before in this run (and above any loan's term).
pub fn fresh_term() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One page of the deep-paging walk, of Zonky's marketplace (the platform
/// with `X-Page`/`X-Size` paging to compare with).
pub const PAGE: &str = "query Page($first: Int, $after: String) { loans(first: $first, after: $after, providers: [\"zonky\"]) { edges { node { id } } pageInfo { hasNextPage endCursor } } }";

/// A POST body `{"query": ..., "variables": ...}`.
pub fn body(query: &str, variables: Value) -> Bytes {
    Bytes::from(json!({ "query": query, "variables": variables }).to_string())
}

/// What an answer was.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The expected loans, without errors.
    Ok,
    /// Every error is `RATE_LIMITED` (the gateway refusing to exceed the budget).
    RateLimited,
    /// A provider's part ran out of the request's time (`UPSTREAM_UNAVAILABLE`
    /// at the deadline): slow, not wrong.
    Late(String),
    /// Data without errors, but not the expected loans.
    Wrong(String),
    /// HTTP error, unreadable body or any other GraphQL error.
    Error(String),
}

/// Judges a loans answer; `expected` are the global ids it must list, in order.
pub fn judge(status: u16, body: &[u8], expected: Option<&[String]>) -> Verdict {
    if status == 429 || status == 503 {
        // The gateway shedding load: overloaded, not wrong.
        return Verdict::Late(format!("HTTP {status}: {}", snippet(body)));
    }
    if status != 200 {
        return Verdict::Error(format!("HTTP {status}: {}", snippet(body)));
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => return Verdict::Error(format!("not JSON ({error}): {}", snippet(body))),
    };
    if let Some(errors) = value["errors"].as_array().filter(|e| !e.is_empty()) {
        let codes: Vec<&str> = errors
            .iter()
            .map(|e| e["extensions"]["code"].as_str().unwrap_or("?"))
            .collect();
        if codes.iter().all(|code| *code == "RATE_LIMITED") {
            return Verdict::RateLimited;
        }
        // Timed out: at the request's deadline, or the upstream timeout.
        let late = |e: &Value| {
            e["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("timed out"))
        };
        if errors
            .iter()
            .all(|e| late(e) || e["extensions"]["code"] == "RATE_LIMITED")
        {
            return Verdict::Late(
                errors[0]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        return Verdict::Error(format!(
            "GraphQL errors {codes:?}: {}",
            errors[0]["message"].as_str().unwrap_or_default()
        ));
    }
    let Some(ids) = loan_ids(&value) else {
        return Verdict::Error(format!("no data.loans.edges: {}", snippet(body)));
    };
    match expected {
        Some(expected) if ids != expected => Verdict::Wrong(format!(
            "{} loans starting {:?}, expected {} starting {:?}",
            ids.len(),
            ids.first(),
            expected.len(),
            expected.first()
        )),
        _ => Verdict::Ok,
    }
}

/// `data.loans.edges[].node.id`.
pub fn loan_ids(value: &Value) -> Option<Vec<String>> {
    value["data"]["loans"]["edges"]
        .as_array()?
        .iter()
        .map(|edge| edge["node"]["id"].as_str().map(str::to_string))
        .collect()
}

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// Counts verdicts by kind, keeping the first example of each problem.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub ok: u64,
    pub rate_limited: u64,
    pub late: u64,
    pub wrong: u64,
    pub errors: u64,
    pub examples: BTreeMap<&'static str, String>,
}

impl Tally {
    pub fn add(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Ok => self.ok += 1,
            Verdict::RateLimited => self.rate_limited += 1,
            Verdict::Late(why) => {
                self.late += 1;
                self.examples.entry("late").or_insert(why);
            }
            Verdict::Wrong(why) => {
                self.wrong += 1;
                self.examples.entry("wrong answer").or_insert(why);
            }
            Verdict::Error(why) => {
                self.errors += 1;
                self.examples.entry("error").or_insert(why);
            }
        }
    }

    pub fn transport_error(&mut self, why: String) {
        self.errors += 1;
        self.examples.entry("error").or_insert(why);
    }

    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.rate_limited += other.rate_limited;
        self.late += other.late;
        self.wrong += other.wrong;
        self.errors += other.errors;
        for (kind, example) in other.examples {
            self.examples.entry(kind).or_insert(example);
        }
    }

    /// Answers that ran out of time, as a note (slowness is a figure, not a
    /// broken scenario), or `None`.
    pub fn late_note(&self, what: &str) -> Option<String> {
        (self.late > 0).then(|| {
            format!(
                "{what}: {} answers had a provider time out or were shed, e.g. {}",
                self.late,
                self.examples.get("late").map_or("?", String::as_str)
            )
        })
    }

    /// The problems that make a scenario broken, as sentences.
    pub fn problems(&self, what: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.errors > 0 {
            problems.push(format!(
                "{what}: {} errors, e.g. {}",
                self.errors,
                self.examples.get("error").map_or("?", String::as_str)
            ));
        }
        if self.wrong > 0 {
            problems.push(format!(
                "{what}: {} wrong answers, e.g. {}",
                self.wrong,
                self.examples
                    .get("wrong answer")
                    .map_or("?", String::as_str)
            ));
        }
        problems
    }
}
