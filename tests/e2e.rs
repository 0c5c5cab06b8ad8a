//! End-to-end tests: the `finmesh` gateway in front of Zonky simulators, over
//! real HTTP on loopback. One test binary (short link times), one module per
//! concern in `tests/e2e/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod e2e {
    mod acceptance;
    mod bad_input;
    mod faults;
    mod identity;
    mod shutdown;
    mod throttle;
    mod transfers;
}
