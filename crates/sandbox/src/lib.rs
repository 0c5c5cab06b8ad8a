//! Simulators of the platforms finmesh aggregates, for tests, benchmarks and demos.
//!
//! No machine here reaches the real platforms, so every adapter is built against a
//! simulator that follows the platform's published document to the letter: its
//! paging, ordering, filtering, errors and throttling. Each simulator is an axum
//! [`Router`](axum::Router) that can be embedded or served on its own port, and
//! every simulated endpoint goes through the same generic layers:
//!
//! * [`faults`]: injected latency, server errors, rate limiting, broken bodies and
//!   dropped connections, changeable at run time;
//! * [`stats`]: counters and a log of the last requests, for assertions.
//!
//! Control endpoints expose both over HTTP and are never throttled or faulted:
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /__sandbox/stats` | [`Stats`]: `{"served": 5, "throttled": 1, "faulted": 1, "by_endpoint": {"/loans/marketplace": 4, ...}}` |
//! | `GET /__sandbox/requests` | the last [`stats::LOG_CAPACITY`] [`RequestRecord`]s, oldest first |
//! | `POST /__sandbox/reset` | 204; clears counters and log, refills every bucket (faults stay) |
//! | `GET /__sandbox/faults` | the current [`Faults`] |
//! | `PUT /__sandbox/faults` | replaces them (missing fields take their defaults); 400 `invalid_faults` when [`Faults::validate`] refuses |
//!
//! ```no_run
//! use finmesh_sandbox::{ZonkyConfig, ZonkySandbox};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = ZonkySandbox::new(ZonkyConfig::default());
//! let running = sandbox.clone().spawn(([127, 0, 0, 1], 0).into()).await?;
//! println!("Zonky simulator at {}", running.base_url());
//! running.shutdown().await
//! # }
//! ```

pub mod bondora;
pub mod bongloy;
pub mod bucket;
mod control;
pub mod faults;
mod link;
pub mod oauth;
mod server;
pub mod stats;
pub mod zonky;

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use bondora::{BondoraConfig, BondoraSandbox};
pub use bongloy::{BongloyConfig, BongloySandbox};
pub use faults::{FaultKind, Faults, InvalidFaults, RateLimitBurst};
pub use link::TcpLink;
pub use oauth::{
    Access, ClientAuth, OAuthConfig, OAuthServer, TokenProblem, TokenResponse, TokenStats,
};
pub use server::RunningSandbox;
pub use stats::{Outcome, RequestRecord, Stats};
pub use zonky::{BucketConfig, ZonkyConfig, ZonkySandbox};

/// Locks shared simulator state. A panic while the lock was held cannot leave the
/// simulator's plain counters and queues inconsistent, so a poisoned lock is used
/// as is rather than taking every later request down with it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
