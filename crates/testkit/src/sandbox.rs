//! The suite's faults as the simulators of `finmesh-sandbox` inject them.

use finmesh_sandbox::{FaultKind, Faults};

use crate::Fault;

/// Fault settings that fail the next requests, one fault each, in order (an
/// empty list clears them): what a simulator's `inject` hands its sandbox's
/// `set_faults`.
pub fn sandbox_faults(faults: Vec<Fault>) -> Faults {
    let next = faults
        .into_iter()
        .map(|fault| match fault {
            Fault::ServerError => FaultKind::ServerError { status: 503 },
            Fault::Malformed => FaultKind::Malformed,
            Fault::Truncated => FaultKind::Truncated,
            Fault::Drop => FaultKind::Drop,
            Fault::RateLimited { retry_after } => FaultKind::RateLimited {
                retry_after_secs: retry_after.as_secs(),
            },
        })
        .collect();
    Faults {
        next,
        ..Faults::default()
    }
}
