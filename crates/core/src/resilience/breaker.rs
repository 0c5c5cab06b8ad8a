//! A circuit breaker per provider: after `failure_threshold` failed attempts
//! within `window` (with no success in between) it opens and refuses every call
//! at once for `open_for`; then one call may probe (half-open), and its outcome
//! closes the circuit or opens it again.
//!
//! As a reqwest-middleware layer inside the retry layer, it sees every attempt:
//! a refused connection, a timeout or a 5xx is a failure; any other answer
//! (4xx and 429 included: the platform is up) a success. A request the throttle
//! refused never reached the platform and counts for nothing.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::time::Instant;

use super::BreakerSettings;
use crate::error::Error;
use crate::id::ProviderId;
use crate::telemetry;
use crate::upstream::middleware::RequestContext;

/// Where a provider's circuit stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are refused at once with `UPSTREAM_UNAVAILABLE` ("circuit open").
    Open,
    /// The open period is over: the next call probes the platform.
    HalfOpen,
}

impl CircuitState {
    /// The metric label (see [`telemetry::CIRCUIT_STATES`]).
    pub fn label(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// One provider's breaker. Shared by every request to that provider.
pub struct CircuitBreaker {
    provider: ProviderId,
    settings: BreakerSettings,
    state: Mutex<State>,
}

struct State {
    phase: Phase,
    /// Bumped on every transition, so that outcomes of calls admitted in an
    /// earlier phase (still in flight when the circuit opened) change nothing.
    generation: u64,
    /// What the last failure was, for the "circuit open" message.
    last_failure: String,
}

enum Phase {
    /// Failure times since the last success, oldest first, within the window.
    Closed(VecDeque<Instant>),
    Open {
        until: Instant,
    },
    HalfOpen {
        probing: bool,
    },
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CircuitBreaker {
    pub(crate) fn new(provider: ProviderId, settings: BreakerSettings) -> Self {
        CircuitBreaker {
            provider,
            settings,
            state: Mutex::new(State {
                phase: Phase::Closed(VecDeque::new()),
                generation: 0,
                last_failure: String::new(),
            }),
        }
    }

    /// The state now (an open circuit whose time is up reads as half-open).
    pub fn state(&self) -> CircuitState {
        match lock(&self.state).phase {
            Phase::Closed(_) => CircuitState::Closed,
            Phase::Open { until } if until > Instant::now() => CircuitState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Lets a call through (closed, or as the half-open probe), or refuses it
    /// with `UPSTREAM_UNAVAILABLE` and `retry_after` set to when to come back.
    pub fn admit(self: &Arc<Self>, deadline: Instant) -> Result<Permit, Error> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let probe = match state.phase {
            Phase::Closed(_) => false,
            Phase::Open { until } if until > now => {
                return Err(self.refusal(&state, until - now));
            }
            // One probe at a time; the others are refused until it reports.
            Phase::HalfOpen { probing: true } => {
                return Err(self.refusal(&state, self.settings.open_for.min(PROBE_WAIT)));
            }
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                state.phase = Phase::HalfOpen { probing: true };
                state.generation += 1;
                tracing::info!(provider = %self.provider, "circuit half-open: probing the platform");
                telemetry::record_circuit_state(self.provider.as_str(), "half_open");
                true
            }
        };
        Ok(Permit {
            breaker: self.clone(),
            generation: state.generation,
            probe,
            deadline,
            settled: false,
        })
    }

    fn refusal(&self, state: &State, retry_after: Duration) -> Error {
        Error::upstream_unavailable(format!(
            "{}: circuit open after repeated failures (the last: {}); not calling it for {} ms",
            self.provider,
            state.last_failure,
            retry_after.as_millis().max(1)
        ))
        .with_provider(&self.provider)
        .with_retry_after(retry_after)
    }

    fn succeeded(&self, generation: u64) {
        let mut state = lock(&self.state);
        if state.generation != generation {
            return;
        }
        match &mut state.phase {
            Phase::Closed(failures) => failures.clear(),
            Phase::HalfOpen { .. } => {
                state.phase = Phase::Closed(VecDeque::new());
                state.generation += 1;
                tracing::info!(provider = %self.provider, "circuit closed: the platform answers again");
                telemetry::record_circuit_state(self.provider.as_str(), "closed");
            }
            Phase::Open { .. } => {}
        }
    }

    fn failed(&self, generation: u64, reason: String) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if state.generation != generation {
            return;
        }
        state.last_failure = reason;
        let open = match &mut state.phase {
            Phase::Closed(failures) => {
                let window_start = now.checked_sub(self.settings.window);
                while failures
                    .front()
                    .is_some_and(|at| window_start.is_some_and(|start| *at < start))
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                failures.len() >= self.settings.failure_threshold as usize
            }
            Phase::HalfOpen { .. } => true,
            Phase::Open { .. } => false,
        };
        if open {
            state.phase = Phase::Open {
                until: now + self.settings.open_for,
            };
            state.generation += 1;
            tracing::warn!(
                provider = %self.provider,
                last_failure = %state.last_failure,
                open_for_ms = self.settings.open_for.as_millis() as u64,
                "circuit open: calls to this provider are refused at once until a probe succeeds"
            );
            telemetry::record_circuit_state(self.provider.as_str(), "open");
        }
    }

    /// A probe that ended without an outcome (cancelled, refused by the
    /// throttle): the next call may probe instead.
    fn released(&self, generation: u64) {
        let mut state = lock(&self.state);
        if state.generation == generation && matches!(state.phase, Phase::HalfOpen { .. }) {
            state.phase = Phase::HalfOpen { probing: false };
        }
    }
}

/// How long others are told to wait while a half-open probe is in flight.
const PROBE_WAIT: Duration = Duration::from_secs(1);

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("provider", &self.provider)
            .field("state", &self.state())
            .finish()
    }
}

/// A call let through; report how it went with [`Permit::success`] or
/// [`Permit::failure`]. Dropped without either, it counts as a failure when
/// the caller's deadline has passed (the platform was too slow), else as
/// nothing.
pub struct Permit {
    breaker: Arc<CircuitBreaker>,
    generation: u64,
    probe: bool,
    deadline: Instant,
    settled: bool,
}

impl Permit {
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.succeeded(self.generation);
    }

    pub fn failure(mut self, reason: impl Into<String>) {
        self.settled = true;
        self.breaker.failed(self.generation, reason.into());
    }

    /// The call ended without telling anything about the platform.
    pub fn release(mut self) {
        self.settled = true;
        if self.probe {
            self.breaker.released(self.generation);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if Instant::now() >= self.deadline {
            self.breaker.failed(
                self.generation,
                "no answer before the caller's deadline".to_string(),
            );
        } else if self.probe {
            self.breaker.released(self.generation);
        }
    }
}

/// The breaker as a layer: refuses attempts while open, reports each outcome.
pub(crate) struct BreakerMiddleware {
    pub(crate) breaker: Arc<CircuitBreaker>,
}

#[async_trait]
impl Middleware for BreakerMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(deadline) = extensions.get::<RequestContext>().map(|ctx| ctx.deadline) else {
            return next.run(req, extensions).await;
        };
        let permit = self
            .breaker
            .admit(deadline)
            .map_err(reqwest_middleware::Error::middleware)?;
        let (method, path) = (req.method().clone(), req.url().path().to_owned());
        let result = next.run(req, extensions).await;
        match &result {
            Ok(response) if is_failure_status(response.status().as_u16()) => {
                permit.failure(format!("{method} {path} answered {}", response.status()));
            }
            Ok(_) => permit.success(),
            Err(reqwest_middleware::Error::Reqwest(error)) if !error.is_builder() => {
                let what = if error.is_timeout() {
                    "timed out"
                } else if error.is_connect() {
                    "could not connect"
                } else {
                    "failed without an answer"
                };
                permit.failure(format!("{method} {path} {what}"));
            }
            // Refused by the throttle, or never sent: says nothing about the platform.
            Err(_) => permit.release(),
        }
        result
    }
}

/// Statuses that say the platform (not the request) is in trouble.
pub(crate) fn is_failure_status(status: u16) -> bool {
    status == 408 || (500..=599).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Arc<CircuitBreaker> {
        Arc::new(CircuitBreaker::new(
            ProviderId::new("zonky").unwrap(),
            BreakerSettings {
                failure_threshold: threshold,
                window: Duration::from_secs(10),
                open_for: Duration::from_secs(5),
            },
        ))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_and_refuses_at_once() {
        let breaker = breaker(3);
        for _ in 0..2 {
            breaker.admit(far()).unwrap().failure("503");
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.admit(far()).unwrap().failure("could not connect");
        assert_eq!(breaker.state(), CircuitState::Open);

        let err = breaker.admit(far()).err().unwrap();
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE");
        assert!(err.message.contains("circuit open"), "{}", err.message);
        assert!(err.message.contains("could not connect"), "{}", err.message);
        assert_eq!(err.retry_after, Some(Duration::from_secs(5)));
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_or_an_old_failure_resets_the_count() {
        let breaker = breaker(3);
        breaker.admit(far()).unwrap().failure("503");
        breaker.admit(far()).unwrap().failure("503");
        breaker.admit(far()).unwrap().success();
        breaker.admit(far()).unwrap().failure("503");
        breaker.admit(far()).unwrap().failure("503");
        assert_eq!(breaker.state(), CircuitState::Closed);
        // The first two of these three are outside the window by the third.
        tokio::time::advance(Duration::from_secs(11)).await;
        breaker.admit(far()).unwrap().failure("503");
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_and_closes_on_success() {
        let breaker = breaker(1);
        breaker.admit(far()).unwrap().failure("503");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(breaker.state(), CircuitState::HalfOpen);

        let probe = breaker.admit(far()).unwrap();
        let err = breaker.admit(far()).err().unwrap();
        assert!(err.message.contains("circuit open"), "{}", err.message);
        probe.success();
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.admit(far()).unwrap().success();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_again_and_an_abandoned_one_frees_the_turn() {
        let breaker = breaker(1);
        breaker.admit(far()).unwrap().failure("503");
        tokio::time::advance(Duration::from_secs(5)).await;
        breaker.admit(far()).unwrap().failure("503 again");
        assert_eq!(breaker.state(), CircuitState::Open);

        tokio::time::advance(Duration::from_secs(5)).await;
        drop(breaker.admit(far()).unwrap());
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        breaker.admit(far()).unwrap().success();
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_of_an_older_phase_change_nothing() {
        let breaker = breaker(1);
        let slow = breaker.admit(far()).unwrap();
        breaker.admit(far()).unwrap().failure("503");
        assert_eq!(breaker.state(), CircuitState::Open);
        slow.success();
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_cut_off_by_its_deadline_is_a_failure() {
        let breaker = breaker(1);
        let permit = breaker
            .admit(Instant::now() + Duration::from_secs(1))
            .unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(permit);
        assert_eq!(breaker.state(), CircuitState::Open);
        let err = breaker.admit(far()).err().unwrap();
        assert!(err.message.contains("deadline"), "{}", err.message);
    }
}
