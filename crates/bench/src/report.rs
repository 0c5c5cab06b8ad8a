//! The report: figures (median, min, max of the rounds) beside their baseline
//! and target, as a table for people and JSON for tools.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::Options;

/// Median, min and max of one figure over the rounds, with every round's value.
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub rounds: Vec<f64>,
}

impl Stat {
    pub fn of(rounds: Vec<f64>) -> Stat {
        let mut sorted: Vec<f64> = rounds.iter().copied().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Stat {
            median,
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            rounds,
        }
    }

    pub fn single(value: f64) -> Stat {
        Stat::of(vec![value])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pass,
    Miss,
    /// The figure could not be measured in this run (said why in `detail`).
    NotMeasured,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Miss => "MISS",
            Status::NotMeasured => "N/A",
        }
    }
}

/// A target from the performance issue and how the median did against it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub goal: String,
    pub status: Status,
    /// For a miss, by how much; for N/A, why.
    pub detail: String,
}

impl Target {
    /// `value <= limit`.
    pub fn at_most(goal: impl Into<String>, value: f64, limit: f64, unit: &str) -> Target {
        let (status, detail) = if value.is_nan() {
            (Status::NotMeasured, "no value".to_string())
        } else if value <= limit {
            (Status::Pass, String::new())
        } else {
            let over = value - limit;
            let relative = if limit > 0.0 {
                format!(" ({:.0}% over)", 100.0 * over / limit)
            } else {
                String::new()
            };
            (
                Status::Miss,
                format!("by {} {unit}{relative}", fmt_num(over)),
            )
        };
        Target {
            goal: goal.into(),
            status,
            detail,
        }
    }

    /// `value >= limit`.
    pub fn at_least(goal: impl Into<String>, value: f64, limit: f64, unit: &str) -> Target {
        let (status, detail) = if value.is_nan() {
            (Status::NotMeasured, "no value".to_string())
        } else if value >= limit {
            (Status::Pass, String::new())
        } else {
            (
                Status::Miss,
                format!(
                    "by {} {unit} (short of {})",
                    fmt_num(limit - value),
                    fmt_num(limit)
                ),
            )
        };
        Target {
            goal: goal.into(),
            status,
            detail,
        }
    }

    pub fn not_measured(goal: impl Into<String>, why: impl Into<String>) -> Target {
        Target {
            goal: goal.into(),
            status: Status::NotMeasured,
            detail: why.into(),
        }
    }
}

/// One figure of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub unit: String,
    /// The gateway's value.
    pub value: Stat,
    pub baseline: Option<Stat>,
    /// `value.median / baseline.median`.
    pub ratio: Option<f64>,
    pub target: Option<Target>,
}

impl Figure {
    pub fn new(name: impl Into<String>, unit: &str, value: Stat) -> Figure {
        Figure {
            name: name.into(),
            unit: unit.to_string(),
            value,
            baseline: None,
            ratio: None,
            target: None,
        }
    }

    pub fn against(mut self, baseline: Stat) -> Figure {
        if baseline.median != 0.0 && !baseline.median.is_nan() {
            self.ratio = Some(self.value.median / baseline.median);
        }
        self.baseline = Some(baseline);
        self
    }

    pub fn target(mut self, target: Target) -> Figure {
        self.target = Some(target);
        self
    }
}

/// One scenario's section.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub scenario: &'static str,
    /// What is measured.
    pub what: String,
    /// What the baseline is.
    pub baseline: String,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
    /// How long the scenario took.
    pub elapsed_secs: f64,
    /// What makes the scenario broken (errors, wrong answers, no throughput):
    /// the smoke test fails on these, never on a miss.
    pub problems: Vec<String>,
}

impl Section {
    pub fn new(scenario: &'static str, what: &str, baseline: &str) -> Section {
        Section {
            scenario,
            what: what.to_string(),
            baseline: baseline.to_string(),
            figures: Vec::new(),
            notes: Vec::new(),
            elapsed_secs: 0.0,
            problems: Vec::new(),
        }
    }
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_mib: Option<u64>,
    pub kernel: Option<String>,
    /// `/proc/loadavg` when the run started and when it ended: other work
    /// on the machine shares its CPUs with the run.
    pub load_at_start: Option<String>,
    pub load_at_end: Option<String>,
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string()),
            memory_mib: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
                .map(|kib| kib / 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|k| k.trim().to_string()),
            load_at_start: load_average(),
            load_at_end: None,
        }
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub gateway: String,
    pub machine: Machine,
    pub options: Options,
    pub providers: Vec<String>,
    pub started_unix_secs: u64,
    pub elapsed_secs: f64,
    pub scenarios: Vec<Section>,
}

impl Report {
    pub fn new(options: &Options, gateway: String, providers: Vec<String>) -> Report {
        Report {
            mode: options.mode.to_string(),
            gateway,
            machine: Machine::detect(),
            options: options.clone(),
            providers,
            started_unix_secs: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            elapsed_secs: 0.0,
            scenarios: Vec::new(),
        }
    }

    /// Notes the end of the run.
    pub fn finish(&mut self, elapsed_secs: f64) {
        self.elapsed_secs = elapsed_secs;
        self.machine.load_at_end = load_average();
    }

    /// Every broken scenario's problems, prefixed with the scenario.
    pub fn problems(&self) -> Vec<String> {
        self.scenarios
            .iter()
            .flat_map(|s| {
                s.problems
                    .iter()
                    .map(move |p| format!("{}: {p}", s.scenario))
            })
            .collect()
    }

    /// Every target missed, as `scenario / figure: goal, detail`.
    pub fn misses(&self) -> Vec<String> {
        self.scenarios
            .iter()
            .flat_map(|s| {
                s.figures.iter().filter_map(move |f| {
                    let target = f.target.as_ref()?;
                    (target.status == Status::Miss).then(|| {
                        format!(
                            "{} / {}: {} — missed {}",
                            s.scenario, f.name, target.goal, target.detail
                        )
                    })
                })
            })
            .collect()
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "finmesh-bench ({} mode, {} round(s) per figure, {} ms upstream latency) on {} CPUs, {} MiB; gateway: {}",
            self.mode,
            self.options.rounds,
            self.options.latency_ms,
            self.machine.cpus,
            self.machine
                .memory_mib
                .map_or_else(|| "?".to_string(), |m| m.to_string()),
            self.gateway
        );
        let _ = writeln!(
            out,
            "  - load average (1, 5, 15 min) at start: {}, at end: {}",
            self.machine.load_at_start.as_deref().unwrap_or("?"),
            self.machine.load_at_end.as_deref().unwrap_or("?")
        );
        for note in &self.providers {
            let _ = writeln!(out, "  - {note}");
        }
        let header = [
            "figure",
            "unit",
            "gateway median [min-max]",
            "baseline median [min-max]",
            "ratio",
            "target",
            "status",
        ];
        for section in &self.scenarios {
            let _ = writeln!(
                out,
                "\n== {} ({:.0} s): {}",
                section.scenario, section.elapsed_secs, section.what
            );
            let _ = writeln!(out, "   baseline: {}", section.baseline);
            let mut rows: Vec<[String; 7]> = vec![header.map(str::to_string)];
            for figure in &section.figures {
                let (goal, status) = match &figure.target {
                    Some(t) => (
                        t.goal.clone(),
                        if t.detail.is_empty() {
                            t.status.label().to_string()
                        } else {
                            format!("{} ({})", t.status.label(), t.detail)
                        },
                    ),
                    None => (String::new(), String::new()),
                };
                rows.push([
                    figure.name.clone(),
                    figure.unit.clone(),
                    fmt_stat(&figure.value),
                    figure.baseline.as_ref().map(fmt_stat).unwrap_or_default(),
                    figure.ratio.map(fmt_ratio).unwrap_or_default(),
                    goal,
                    status,
                ]);
            }
            let widths: Vec<usize> = (0..7)
                .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
                .collect();
            for row in &rows {
                let mut line = String::from("   ");
                for (i, cell) in row.iter().enumerate() {
                    let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
                }
                let _ = writeln!(out, "{}", line.trim_end());
            }
            for note in &section.notes {
                let _ = writeln!(out, "   note: {note}");
            }
            for problem in &section.problems {
                let _ = writeln!(out, "   BROKEN: {problem}");
            }
        }
        let misses = self.misses();
        let problems = self.problems();
        let _ = writeln!(
            out,
            "\n{} target(s) missed, {} broken scenario problem(s); {:.0} s in all",
            misses.len(),
            problems.len(),
            self.elapsed_secs
        );
        out
    }
}

fn fmt_stat(stat: &Stat) -> String {
    if stat.rounds.len() <= 1 {
        fmt_num(stat.median)
    } else {
        format!(
            "{} [{}-{}]",
            fmt_num(stat.median),
            fmt_num(stat.min),
            fmt_num(stat.max)
        )
    }
}

/// A ratio with enough digits to tell a small one from zero.
fn fmt_ratio(ratio: f64) -> String {
    if ratio.abs() >= 0.1 || ratio == 0.0 {
        format!("{ratio:.2}x")
    } else if ratio.abs() >= 0.001 {
        format!("{ratio:.4}x")
    } else {
        format!("{ratio:.6}x")
    }
}

/// Three significant digits or so, without exponent.
pub fn fmt_num(value: f64) -> String {
    if value.is_nan() {
        return "-".to_string();
    }
    let magnitude = value.abs();
    if magnitude >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}
