//! Fault injection for every simulator: what a real platform and the network
//! between do wrong, on purpose and on demand.
//!
//! Faults apply as a middleware in front of the simulated endpoints (never the
//! `/__sandbox/` control endpoints). For each request, in this order:
//!
//! 1. `latency_ms` delays it, whatever else happens;
//! 2. the first fault queued in `next`, if any, applies to it and leaves the queue;
//! 3. else, while a `rate_limit_burst` lasts, it is answered 429 with `Retry-After`;
//! 4. else one random draw picks at most one of drop, server error, malformed
//!    body, truncated body, with their `*_rate` probabilities.
//!
//! A faulted request never reaches the simulator, so it costs the client no
//! throttling token, except a truncated one (its body is the real answer's) and
//! the `commit_then_*` ones: the simulator performs those requests, keeps what
//! they changed (a transfer created or confirmed), and only then is its answer
//! replaced by an error or a dropped connection. They are the ambiguous
//! outcomes that exactly-once writes must survive.

use std::{fmt, io, sync::Arc, sync::Mutex, time::Duration};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{lock, stats::Outcome};

/// What the simulator does wrong. The default is a well-behaved platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Delay added to every request.
    pub latency_ms: u64,
    /// Probability (0 to 1) of answering `error_status`.
    pub error_rate: f64,
    /// The status answered when `error_rate` strikes (4xx or 5xx).
    pub error_status: u16,
    /// The next `count` requests answer 429 with a `Retry-After` header.
    pub rate_limit_burst: Option<RateLimitBurst>,
    /// Probability of answering 200 with a body that is not JSON.
    pub malformed_rate: f64,
    /// Probability of answering the real response with its body cut in half.
    pub truncated_rate: f64,
    /// Probability of closing the connection without any answer.
    pub drop_rate: f64,
    /// One-shot faults for the next requests, in order, one per request.
    pub next: Vec<FaultKind>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            error_status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
            rate_limit_burst: None,
            malformed_rate: 0.0,
            truncated_rate: 0.0,
            drop_rate: 0.0,
            next: Vec::new(),
        }
    }
}

/// A run of 429 answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBurst {
    /// How many requests are still to be refused.
    pub count: u32,
    /// The `Retry-After` header sent with each refusal.
    pub retry_after_secs: u64,
}

/// A fault for one request. As JSON: `{"kind": "server_error", "status": 502}`,
/// `{"kind": "rate_limited", "retry_after_secs": 2}`, `{"kind": "malformed"}`,
/// `{"kind": "truncated"}`, `{"kind": "drop"}`, `{"kind": "latency", "ms": 250}`,
/// `{"kind": "commit_then_drop"}`, `{"kind": "commit_then_error", "status": 500}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// Answer this status (4xx or 5xx) with a small JSON error body.
    ServerError { status: u16 },
    /// Answer 429 with this `Retry-After`.
    RateLimited { retry_after_secs: u64 },
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Answer the real response with its body cut in half.
    Truncated,
    /// Close the connection without an answer.
    Drop,
    /// Delay this request, then answer it normally.
    Latency { ms: u64 },
    /// Perform the request (its changes stay), then close the connection
    /// without an answer.
    CommitThenDrop,
    /// Perform the request (its changes stay), then answer this status (4xx
    /// or 5xx) with the small JSON error body of `server_error` instead.
    CommitThenError { status: u16 },
}

/// Why a [`Faults`] was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidFaults(String);

impl fmt::Display for InvalidFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidFaults {}

impl Faults {
    /// Checks that rates are probabilities and statuses are error statuses.
    /// (Without the check nothing breaks: a rate outside 0 to 1 acts as the
    /// nearest bound and an invalid status as 500.)
    pub fn validate(&self) -> Result<(), InvalidFaults> {
        let rates = [
            ("error_rate", self.error_rate),
            ("malformed_rate", self.malformed_rate),
            ("truncated_rate", self.truncated_rate),
            ("drop_rate", self.drop_rate),
        ];
        for (name, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err(InvalidFaults(format!(
                    "{name} must be between 0 and 1, got {rate}"
                )));
            }
        }
        let statuses = std::iter::once(("error_status", self.error_status)).chain(
            self.next.iter().filter_map(|fault| match fault {
                FaultKind::ServerError { status } | FaultKind::CommitThenError { status } => {
                    Some(("next[].status", *status))
                }
                _ => None,
            }),
        );
        for (name, status) in statuses {
            if !(400..=599).contains(&status) {
                return Err(InvalidFaults(format!(
                    "{name} must be an error status (400 to 599), got {status}"
                )));
            }
        }
        Ok(())
    }
}

/// The live faults of one simulator, with the generator for the random ones.
pub(crate) struct FaultInjector {
    seed: u64,
    state: Mutex<InjectorState>,
}

struct InjectorState {
    faults: Faults,
    rng: ChaCha8Rng,
}

/// What to do to one request.
struct Plan {
    latency: Duration,
    fault: Option<Injected>,
}

/// A fault that replaces the answer.
#[derive(Clone, Copy, Debug)]
enum Injected {
    ServerError(StatusCode),
    RateLimited { retry_after_secs: u64 },
    Malformed,
    Truncated,
    Drop,
    CommitThenDrop,
    CommitThenError(StatusCode),
}

impl FaultInjector {
    pub(crate) fn new(faults: Faults, seed: u64) -> Self {
        Self {
            seed,
            state: Mutex::new(InjectorState {
                faults,
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
        }
    }

    /// The faults as they stand: bursts and queued faults already used are gone.
    pub(crate) fn faults(&self) -> Faults {
        lock(&self.state).faults.clone()
    }

    /// Replaces the faults and restarts the random draws, so the same faults and
    /// seed always strike the same requests.
    pub(crate) fn set(&self, faults: Faults) {
        *lock(&self.state) = InjectorState {
            faults,
            rng: ChaCha8Rng::seed_from_u64(self.seed),
        };
    }

    fn plan(&self) -> Plan {
        let mut state = lock(&self.state);
        let mut latency = Duration::from_millis(state.faults.latency_ms);
        let fault = if state.faults.next.is_empty() {
            state.take_burst().or_else(|| state.draw())
        } else {
            match state.faults.next.remove(0) {
                FaultKind::Latency { ms } => {
                    latency += Duration::from_millis(ms);
                    None
                }
                FaultKind::ServerError { status } => {
                    Some(Injected::ServerError(error_status(status)))
                }
                FaultKind::RateLimited { retry_after_secs } => {
                    Some(Injected::RateLimited { retry_after_secs })
                }
                FaultKind::Malformed => Some(Injected::Malformed),
                FaultKind::Truncated => Some(Injected::Truncated),
                FaultKind::Drop => Some(Injected::Drop),
                FaultKind::CommitThenDrop => Some(Injected::CommitThenDrop),
                FaultKind::CommitThenError { status } => {
                    Some(Injected::CommitThenError(error_status(status)))
                }
            }
        };
        Plan { latency, fault }
    }
}

impl InjectorState {
    fn take_burst(&mut self) -> Option<Injected> {
        let burst = self.faults.rate_limit_burst?;
        let remaining = burst.count.saturating_sub(1);
        self.faults.rate_limit_burst = (remaining > 0).then_some(RateLimitBurst {
            count: remaining,
            ..burst
        });
        (burst.count > 0).then_some(Injected::RateLimited {
            retry_after_secs: burst.retry_after_secs,
        })
    }

    /// One uniform draw split into disjoint ranges, so each rate is exactly the
    /// share of requests that get that fault (while the rates add up to at most
    /// 1; past that, the later ones in this order get only what is left).
    fn draw(&mut self) -> Option<Injected> {
        let faults = &self.faults;
        let candidates = [
            (faults.drop_rate, Injected::Drop),
            (
                faults.error_rate,
                Injected::ServerError(error_status(faults.error_status)),
            ),
            (faults.malformed_rate, Injected::Malformed),
            (faults.truncated_rate, Injected::Truncated),
        ];
        if !candidates.iter().any(|(rate, _)| *rate > 0.0) {
            return None;
        }
        let roll: f64 = self.rng.random();
        let mut threshold = 0.0;
        for (rate, fault) in candidates {
            if rate > 0.0 {
                threshold += rate.min(1.0);
                if roll < threshold {
                    return Some(fault);
                }
            }
        }
        None
    }
}

fn error_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Middleware that applies the injector's faults to each request.
pub(crate) async fn inject_faults(
    State(injector): State<Arc<FaultInjector>>,
    request: Request,
    next: Next,
) -> Response {
    let plan = injector.plan();
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let Some(fault) = plan.fault else {
        return next.run(request).await;
    };
    tracing::debug!(?fault, path = request.uri().path(), "injecting a fault");
    let (mut response, outcome) = match fault {
        Injected::ServerError(status) => (server_error(status), Outcome::Faulted),
        Injected::RateLimited { retry_after_secs } => (
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, HeaderValue::from(retry_after_secs))],
                Json(json!({"error": "too_many_requests"})),
            )
                .into_response(),
            Outcome::Faulted,
        ),
        Injected::Malformed => (malformed(), Outcome::Faulted),
        Injected::Truncated => (truncate(next.run(request).await).await, Outcome::Faulted),
        Injected::Drop => (dropped_connection(), Outcome::Dropped),
        Injected::CommitThenDrop => {
            commit(next.run(request).await).await;
            (dropped_connection(), Outcome::Dropped)
        }
        Injected::CommitThenError(status) => {
            commit(next.run(request).await).await;
            (server_error(status), Outcome::Faulted)
        }
    };
    response.extensions_mut().insert(outcome);
    response
}

fn server_error(status: StatusCode) -> Response {
    (
        status,
        Json(json!({"error": "injected_fault", "status": status.as_u16()})),
    )
        .into_response()
}

/// Drives the real answer's body to its end, so that a simulator doing work
/// while streaming has done it too, then throws the answer away.
async fn commit(response: Response) {
    let status = response.status();
    if axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .is_err()
    {
        tracing::debug!(%status, "the committed answer's body failed");
    }
}

/// What a misbehaving proxy in front of an API sends: an HTML page labelled JSON.
fn malformed() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>",
    )
        .into_response()
}

/// The real response with only the first half of its body.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => {
            // The length is recomputed from the shortened body.
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(bytes.slice(..bytes.len() / 2)))
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A response whose body fails before its first byte: hyper then closes the
/// connection without writing anything, so the client sees a connection error
/// rather than an answer.
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "injected connection drop",
        ))
    });
    Response::new(Body::from_stream(failing))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_counts_down_then_disappears() {
        let injector = FaultInjector::new(
            Faults {
                rate_limit_burst: Some(RateLimitBurst {
                    count: 2,
                    retry_after_secs: 3,
                }),
                ..Faults::default()
            },
            1,
        );
        for _ in 0..2 {
            assert!(matches!(
                injector.plan().fault,
                Some(Injected::RateLimited {
                    retry_after_secs: 3
                })
            ));
        }
        assert!(injector.plan().fault.is_none());
        assert_eq!(injector.faults().rate_limit_burst, None);
    }

    #[test]
    fn queued_latency_delays_without_faulting() {
        let injector = FaultInjector::new(
            Faults {
                latency_ms: 5,
                next: vec![FaultKind::Latency { ms: 20 }, FaultKind::Drop],
                ..Faults::default()
            },
            1,
        );
        let first = injector.plan();
        assert_eq!(first.latency, Duration::from_millis(25));
        assert!(first.fault.is_none());
        assert!(matches!(injector.plan().fault, Some(Injected::Drop)));
        assert!(injector.faults().next.is_empty());
    }

    #[test]
    fn rates_strike_about_their_share_and_repeat_per_seed() {
        let faults = Faults {
            error_rate: 0.25,
            ..Faults::default()
        };
        let injector = FaultInjector::new(faults.clone(), 7);
        let pattern = |injector: &FaultInjector| {
            (0..4000)
                .map(|_| injector.plan().fault.is_some())
                .collect::<Vec<_>>()
        };
        let first = pattern(&injector);
        let struck = first.iter().filter(|hit| **hit).count();
        assert!((900..1100).contains(&struck), "{struck} of 4000");
        injector.set(faults);
        assert_eq!(pattern(&injector), first);
    }

    #[test]
    fn validation_names_the_bad_setting() {
        let too_likely = Faults {
            drop_rate: 1.5,
            ..Faults::default()
        };
        assert!(
            too_likely
                .validate()
                .unwrap_err()
                .to_string()
                .contains("drop_rate")
        );
        let not_an_error = Faults {
            next: vec![FaultKind::ServerError { status: 200 }],
            ..Faults::default()
        };
        assert!(not_an_error.validate().is_err());
        assert!(Faults::default().validate().is_ok());
    }

    #[test]
    fn fault_kinds_read_as_tagged_json() {
        let kinds: Vec<FaultKind> = serde_json::from_str(
            r#"[{"kind":"server_error","status":502},{"kind":"rate_limited","retry_after_secs":2},
                {"kind":"malformed"},{"kind":"truncated"},{"kind":"drop"},{"kind":"latency","ms":9}]"#,
        )
        .unwrap();
        assert_eq!(kinds[0], FaultKind::ServerError { status: 502 });
        assert_eq!(kinds[5], FaultKind::Latency { ms: 9 });
    }

    #[test]
    fn commit_faults_read_as_tagged_json_and_check_their_status() {
        let kinds: Vec<FaultKind> = serde_json::from_str(
            r#"[{"kind":"commit_then_drop"},{"kind":"commit_then_error","status":500}]"#,
        )
        .unwrap();
        assert_eq!(
            kinds,
            [
                FaultKind::CommitThenDrop,
                FaultKind::CommitThenError { status: 500 }
            ]
        );
        let not_an_error = Faults {
            next: vec![FaultKind::CommitThenError { status: 201 }],
            ..Faults::default()
        };
        assert!(not_an_error.validate().is_err());
    }
}
