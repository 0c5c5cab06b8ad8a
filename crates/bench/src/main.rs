//! `finmesh-bench`: builds the `finmesh` gateway in release mode (unless told
//! which binary to use), runs every scenario against it, prints the table and
//! writes the JSON report (`target/bench/report.json`).
//!
//! ```sh
//! cargo run --release -p finmesh-bench             # the full run (under 10 minutes)
//! cargo run --release -p finmesh-bench -- --smoke  # a few seconds
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use finmesh_bench::{GatewayMode, Options, Scenario};

/// Benchmarks the finmesh gateway against in-process platform simulators,
/// each figure beside its baseline and target.
#[derive(Parser)]
#[command(name = "finmesh-bench")]
struct Cli {
    /// A few seconds in all: one short round of every scenario, small sizes.
    #[arg(long)]
    smoke: bool,
    /// Only these scenarios (comma separated): hot, cold, coalescing, throttle, paging, memory.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Rounds per figure.
    #[arg(long)]
    rounds: Option<usize>,
    /// Latency the simulators add to every upstream request, in ms.
    #[arg(long)]
    latency_ms: Option<u64>,
    /// Client counts of the hot scenario (comma separated).
    #[arg(long, value_delimiter = ',')]
    clients: Vec<usize>,
    /// Seconds of one measured hot run.
    #[arg(long)]
    hot_secs: Option<f64>,
    /// Cold queries per round.
    #[arg(long)]
    cold_samples: Option<usize>,
    /// Identical queries sent at once in the coalescing scenario.
    #[arg(long)]
    coalesce: Option<usize>,
    /// Zonky's bucket capacity in the throttle scenario (simulator and gateway).
    #[arg(long)]
    throttle_capacity: Option<u32>,
    /// Zonky's refill per second in the throttle scenario (simulator and gateway).
    #[arg(long)]
    throttle_refill: Option<u32>,
    /// Seconds of offered load per throttle round.
    #[arg(long)]
    throttle_secs: Option<f64>,
    /// Loans walked in the deep-paging scenario.
    #[arg(long)]
    paging_loans: Option<usize>,
    /// The cache's configured bound in MiB, to check the memory growth against.
    #[arg(long)]
    cache_bound_mib: Option<f64>,
    /// A TOML file merged over the generated gateway configuration.
    #[arg(long)]
    gateway_toml: Option<PathBuf>,
    /// The gateway binary to run; by default `cargo build --release -p
    /// finmesh-server --bin finmesh` first, then the `finmesh` next to this binary.
    #[arg(long, conflicts_with = "in_process")]
    gateway_bin: Option<PathBuf>,
    /// Run the gateway in this process instead (no release gateway needed;
    /// memory figures then cover the whole bench process).
    #[arg(long)]
    in_process: bool,
    /// Where to write the JSON report (default `<target>/bench/report.json`).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("finmesh-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut options = if cli.smoke {
        Options::smoke()
    } else {
        Options::full()
    };
    if !cli.only.is_empty() {
        options.only = cli
            .only
            .iter()
            .map(|name| {
                Scenario::parse(name.trim()).with_context(|| format!("no scenario named `{name}`"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    set(&mut options.rounds, cli.rounds);
    set(&mut options.latency_ms, cli.latency_ms);
    if !cli.clients.is_empty() {
        options.hot_clients = cli.clients;
    }
    set(&mut options.hot_secs, cli.hot_secs);
    set(&mut options.cold_samples, cli.cold_samples);
    set(&mut options.coalesce_clients, cli.coalesce);
    set(&mut options.throttle_capacity, cli.throttle_capacity);
    set(&mut options.throttle_refill_per_second, cli.throttle_refill);
    set(&mut options.throttle_secs, cli.throttle_secs);
    set(&mut options.paging_loans, cli.paging_loans);
    options.cache_bound_mib = cli.cache_bound_mib;
    options.gateway_toml = cli.gateway_toml;
    if options.rounds == 0
        || options.hot_clients.contains(&0)
        || options.throttle_refill_per_second == 0
    {
        bail!("rounds, client counts and the refill rate must be at least 1");
    }

    let target_dir = target_dir()?;
    let work_dir = target_dir.join("bench");
    let mode = if cli.in_process {
        GatewayMode::InProcess
    } else {
        let binary = match cli.gateway_bin {
            Some(binary) => binary,
            None => build_gateway(&target_dir)?,
        };
        if !binary.is_file() {
            bail!("no gateway binary at {}", binary.display());
        }
        GatewayMode::Process {
            binary,
            work_dir: work_dir.clone(),
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "finmesh-bench: warning: this is a debug build of the load generator and simulators; run `cargo run --release -p finmesh-bench` for figures worth comparing"
        );
    }

    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("bench-load")
        .enable_all()
        .build()
        .context("cannot build the load generator's runtime")?;
    let report = runtime.block_on(finmesh_bench::run(options, mode))?;
    print!("{}", report.table());
    let out = cli.out.unwrap_or_else(|| work_dir.join("report.json"));
    report.write_json(&out)?;
    println!("report written to {}", out.display());
    let problems = report.problems();
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "finmesh-bench: {} broken scenario problem(s):",
            problems.len()
        );
        for problem in problems {
            eprintln!("  {problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// The Cargo target folder this binary was built into (`<target>/release/finmesh-bench`),
/// else the workspace's `target/`.
fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot tell where this binary is")?;
    let profile_dir = exe.parent();
    match profile_dir.and_then(|dir| Some((dir.file_name()?, dir.parent()?))) {
        Some((name, target)) if name == "release" || name == "debug" => Ok(target.to_path_buf()),
        _ => Ok(workspace_root().join("target")),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo build --release -p finmesh-server --bin finmesh` into `target_dir`
/// (quick when it is up to date); the binary's path.
fn build_gateway(target_dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "finmesh-bench: building the gateway: cargo build --release -p finmesh-server --bin finmesh"
    );
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "finmesh-server",
            "--bin",
            "finmesh",
        ])
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .context("cannot run cargo to build the gateway")?;
    if !status.success() {
        bail!("building the gateway failed ({status})");
    }
    Ok(target_dir
        .join("release")
        .join(format!("finmesh{}", std::env::consts::EXE_SUFFIX)))
}
