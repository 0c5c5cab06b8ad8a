//! Counters and a log of the last requests, for tests and benchmarks to assert on
//! what a client actually sent. Generic: each simulator names the request headers
//! worth keeping.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::Response,
};
use serde::{Deserialize, Serialize};

use crate::lock;

/// How many requests the log keeps; older ones are forgotten first.
pub const LOG_CAPACITY: usize = 10_000;

/// Request counters since the start or the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests the simulator answered itself (errors such as 400 and 404 included).
    pub served: u64,
    /// Requests refused with 429 because the client's bucket was empty.
    pub throttled: u64,
    /// Requests whose answer was replaced by an injected fault (drops included).
    pub faulted: u64,
    /// Every request by route, e.g. `/loans/marketplace` or `/loans/{id}`.
    pub by_endpoint: BTreeMap<String, u64>,
}

/// What happened to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Answered by the simulator itself.
    Served,
    /// Refused with 429 by the throttle.
    Throttled,
    /// Answered with an injected fault.
    Faulted,
    /// The connection was closed without an answer (an injected fault).
    Dropped,
}

/// One logged request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    /// The raw query string, as sent.
    pub query: Option<String>,
    /// The headers the simulator records (lower-case names), when present.
    pub headers: BTreeMap<String, String>,
    /// Whether an `Authorization` header was sent; its value is never kept.
    pub authorization: bool,
    /// The status answered, `None` when the connection was dropped.
    pub status: Option<u16>,
    pub outcome: Outcome,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// The shared log behind [`record`].
pub(crate) struct RequestLog {
    recorded_headers: &'static [&'static str],
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    stats: Stats,
    records: VecDeque<RequestRecord>,
}

impl RequestLog {
    /// A log that keeps the named request headers (lower-case) of each request.
    pub(crate) fn new(recorded_headers: &'static [&'static str]) -> Self {
        Self {
            recorded_headers,
            state: Mutex::default(),
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        lock(&self.state).stats.clone()
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state).records.iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        *lock(&self.state) = LogState::default();
    }

    fn push(&self, endpoint: String, record: RequestRecord) {
        let mut state = lock(&self.state);
        let stats = &mut state.stats;
        match record.outcome {
            Outcome::Served => stats.served += 1,
            Outcome::Throttled => stats.throttled += 1,
            Outcome::Faulted | Outcome::Dropped => stats.faulted += 1,
        }
        *stats.by_endpoint.entry(endpoint).or_default() += 1;
        if state.records.len() == LOG_CAPACITY {
            state.records.pop_front();
        }
        state.records.push_back(record);
    }
}

/// Middleware that counts and logs every request. Layers inside it tell what
/// happened by putting an [`Outcome`] in the response's extensions; without one
/// the request was served.
pub(crate) async fn record(
    State(log): State<Arc<RequestLog>>,
    request: Request,
    next: Next,
) -> Response {
    let timestamp_ms = chrono::Utc::now().timestamp_millis();
    // Routes, not raw paths, so `/loans/1` and `/loans/2` count together.
    let endpoint = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |matched| matched.as_str().to_owned(),
    );
    let headers = log
        .recorded_headers
        .iter()
        .filter_map(|&name| {
            let value = request.headers().get(name)?;
            Some((
                name.to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ))
        })
        .collect();
    let mut record = RequestRecord {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: request.uri().query().map(str::to_owned),
        headers,
        authorization: request.headers().contains_key(header::AUTHORIZATION),
        status: None,
        outcome: Outcome::Served,
        timestamp_ms,
    };

    let response = next.run(request).await;

    record.outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or(Outcome::Served);
    if record.outcome != Outcome::Dropped {
        record.status = Some(response.status().as_u16());
    }
    log.push(endpoint, record);
    response
}
