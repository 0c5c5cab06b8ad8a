//! The finmesh benchmark harness: one command measures the gateway's hot-path
//! overhead, cold fan-out latency, request coalescing, throttle fidelity, deep
//! paging and memory, each against a baseline taken in the same run, and
//! reports every figure as the median of several rounds with min and max,
//! next to the targets of the performance issue (PASS or MISS, never relaxed).
//!
//! Everything runs on loopback (127.0.0.1): the platform simulators of
//! `finmesh-sandbox` in this process (on their own runtime), the gateway as a
//! separate release process ([`GatewayMode::Process`]) or, for the CI smoke
//! test, in this process ([`GatewayMode::InProcess`]), and a built-in
//! closed-loop load generator ([`load`]) whose every loop is bounded in
//! count and time. See `BENCHMARKS.md` at the repository root for the method
//! and the latest figures.

pub mod gateway;
pub mod load;
pub mod platforms;
pub mod queries;
pub mod report;
pub mod runtime;
mod scenarios;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use gateway::GatewayMode;
pub use report::{Report, Status};

/// The scenarios, in the order they run (memory last: it gathers what the
/// others measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    Hot,
    Cold,
    Coalescing,
    Throttle,
    Paging,
    Memory,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Hot,
        Scenario::Cold,
        Scenario::Coalescing,
        Scenario::Throttle,
        Scenario::Paging,
        Scenario::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Hot => "hot",
            Scenario::Cold => "cold",
            Scenario::Coalescing => "coalescing",
            Scenario::Throttle => "throttle",
            Scenario::Paging => "paging",
            Scenario::Memory => "memory",
        }
    }

    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// What to run and how hard. [`Options::full`] is the documented run;
/// [`Options::smoke`] takes a few seconds and only checks that nothing is broken.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// `full` or `smoke`.
    pub mode: &'static str,
    /// Rounds per figure (each figure is the median of the rounds).
    pub rounds: usize,
    /// Latency the simulators add to every upstream request.
    pub latency_ms: u64,
    /// Concurrent clients of the hot scenario.
    pub hot_clients: Vec<usize>,
    /// Length of one measured hot run (each level, each round, each side).
    pub hot_secs: f64,
    /// Unmeasured load before each hot run.
    pub warmup_secs: f64,
    /// Upper bound of requests in one load run, whatever its duration.
    pub max_requests: u64,
    /// Cold queries per round of the cold fan-out scenario.
    pub cold_samples: usize,
    /// Identical cold queries sent at once in the coalescing scenario.
    pub coalesce_clients: usize,
    /// Zonky's bucket in the throttle scenario, on both sides (simulator and gateway).
    pub throttle_capacity: u32,
    pub throttle_refill_per_second: u32,
    /// How long one throttle round offers load.
    pub throttle_secs: f64,
    /// The offered load, as a multiple of the budget over `throttle_secs`.
    pub throttle_factor: u32,
    /// Loans of the marketplace walked page by page.
    pub paging_loans: usize,
    /// Open auctions of the Bondora simulator (when the gateway has Bondora).
    pub bondora_auctions: usize,
    /// Distinct queries sent to fill the cache (and how long at most).
    pub fill_queries: u64,
    pub fill_secs: f64,
    /// The cache's configured bound, when the gateway has one (MiB); without
    /// it the bound cannot be checked.
    pub cache_bound_mib: Option<f64>,
    /// The gateway's `[server] request_timeout_ms`.
    pub request_timeout_ms: u64,
    /// The same in the throttle scenario, where it bounds how long queries
    /// wait for a token (and so how long the round drains).
    pub throttle_request_timeout_ms: u64,
    /// A TOML file merged over the generated gateway configuration.
    pub gateway_toml: Option<PathBuf>,
    /// Run only these scenarios.
    pub only: Vec<Scenario>,
}

impl Options {
    pub fn full() -> Options {
        Options {
            mode: "full",
            rounds: 3,
            latency_ms: 50,
            hot_clients: vec![1, 32, 128],
            hot_secs: 4.0,
            warmup_secs: 1.0,
            max_requests: 2_000_000,
            cold_samples: 20,
            coalesce_clients: 1_000,
            throttle_capacity: 20,
            throttle_refill_per_second: 5,
            throttle_secs: 60.0,
            throttle_factor: 10,
            paging_loans: 10_000,
            bondora_auctions: 200,
            fill_queries: 4_000,
            fill_secs: 30.0,
            cache_bound_mib: None,
            request_timeout_ms: 10_000,
            throttle_request_timeout_ms: 10_000,
            gateway_toml: None,
            only: Scenario::ALL.to_vec(),
        }
    }

    /// A few seconds in all: one short round of everything, small sizes.
    pub fn smoke() -> Options {
        Options {
            mode: "smoke",
            rounds: 1,
            latency_ms: 20,
            hot_secs: 0.3,
            warmup_secs: 0.1,
            cold_samples: 3,
            coalesce_clients: 100,
            throttle_capacity: 5,
            throttle_refill_per_second: 5,
            throttle_secs: 2.0,
            paging_loans: 1_000,
            fill_queries: 200,
            fill_secs: 1.0,
            bondora_auctions: 50,
            throttle_request_timeout_ms: 2_000,
            ..Options::full()
        }
    }

    pub fn runs(&self, scenario: Scenario) -> bool {
        self.only.contains(&scenario)
    }

    pub(crate) fn hot_duration(&self) -> Duration {
        Duration::from_secs_f64(self.hot_secs)
    }

    pub(crate) fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup_secs)
    }
}

/// Runs the selected scenarios and returns the report (not yet written).
/// Target misses are figures, not errors; a broken scenario (errors, wrong
/// answers, no throughput) is listed in [`Report::problems`]. `Err` means the
/// harness itself could not run (a simulator or the gateway did not start).
pub async fn run(options: Options, mode: GatewayMode) -> anyhow::Result<Report> {
    let started = Instant::now();
    let bench = scenarios::Bench::new(options, mode)?;
    let mut report = Report::new(&bench.options, bench.mode.describe(), bench.providers());
    for scenario in Scenario::ALL {
        if !bench.options.runs(scenario) {
            continue;
        }
        eprintln!("finmesh-bench: running `{}`", scenario.name());
        let began = Instant::now();
        let mut section = bench.run(scenario).await?;
        section.elapsed_secs = began.elapsed().as_secs_f64();
        report.scenarios.push(section);
    }
    report.finish(started.elapsed().as_secs_f64());
    Ok(report)
}
