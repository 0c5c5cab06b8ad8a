//! What the gateway has seen of each provider lately, for `providers { health }`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::error::{Error, ErrorKind};
use crate::id::ProviderId;
use crate::resilience::{CircuitState, Resilience};
use crate::upstream::{Throttle, ThrottleBackend};

/// A provider's state as observed from its recent answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    /// No call made yet.
    Unknown,
    Up,
    /// Answering, but the last call was refused by its rate limit.
    Throttled,
    /// The last call failed because the platform was unreachable or broken.
    Down,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProviderHealth {
    pub status: HealthStatus,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    /// Code and message of the last failure.
    pub last_error: Option<(ErrorKind, String)>,
    /// The provider's circuit breaker.
    pub circuit: CircuitState,
    /// Where the throttle keeps its budget (Redis, or a local fallback share).
    pub throttle: ThrottleBackend,
}

impl Default for ProviderHealth {
    fn default() -> Self {
        ProviderHealth {
            status: HealthStatus::Unknown,
            last_success: None,
            last_failure: None,
            last_error: None,
            circuit: CircuitState::Closed,
            throttle: ThrottleBackend::Local,
        }
    }
}

/// Records the outcome of every provider call, and reads the circuit breakers
/// and throttle backend it watches.
#[derive(Clone, Default)]
pub struct HealthBook {
    entries: Arc<Mutex<HashMap<ProviderId, ProviderHealth>>>,
    guards: Option<(Resilience, Arc<dyn Throttle>)>,
}

impl HealthBook {
    /// A book that also reports the providers' circuits from `resilience` and
    /// the backend of `throttle`.
    pub fn watching(resilience: Resilience, throttle: Arc<dyn Throttle>) -> Self {
        HealthBook {
            entries: Arc::default(),
            guards: Some((resilience, throttle)),
        }
    }

    pub fn record<T>(&self, provider: &ProviderId, outcome: &Result<T, Error>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let entry = entries.entry(provider.clone()).or_default();
        let now = Utc::now();
        match outcome {
            Ok(_) => {
                entry.status = HealthStatus::Up;
                entry.last_success = Some(now);
            }
            Err(error) => {
                let status = match error.kind {
                    ErrorKind::RateLimited => HealthStatus::Throttled,
                    ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamProtocol => {
                        HealthStatus::Down
                    }
                    // The caller's own mistakes say nothing about the platform.
                    _ => return,
                };
                entry.status = status;
                entry.last_failure = Some(now);
                entry.last_error = Some((error.kind, error.message.clone()));
            }
        }
    }

    pub fn get(&self, provider: &ProviderId) -> ProviderHealth {
        let mut health: ProviderHealth = self
            .entries
            .lock()
            .ok()
            .and_then(|entries| entries.get(provider).cloned())
            .unwrap_or_default();
        if let Some((resilience, throttle)) = &self.guards {
            health.circuit = resilience.circuit(provider);
            health.throttle = throttle.backend();
        }
        health
    }
}
