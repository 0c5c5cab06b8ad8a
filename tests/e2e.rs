//! End-to-end tests: the `finmesh` gateway in front of Zonky simulators, over
//! real HTTP on loopback. One test binary (short link times), one module per
//! concern in `tests/e2e/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e {
    mod acceptance;
    mod authorization;
    mod bad_input;
    mod browser;
    mod cache;
    mod deploy;
    mod faults;
    mod hardening;
    mod hostile;
    mod identity;
    mod ops;
    mod resilience;
    mod secrets;
    mod shared_throttle;
    mod shutdown;
    mod throttle;
    mod transfers;
    mod webhooks;
}
