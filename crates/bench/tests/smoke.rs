//! The benchmark's smoke mode, in CI: every scenario runs briefly against a
//! gateway in this process (no release build needed). It fails on a broken
//! scenario (errors, wrong answers, no throughput), never on a slow machine:
//! targets missed are printed, not asserted.

use finmesh_bench::{GatewayMode, Options, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_and_answers_right() {
    let report = finmesh_bench::run(Options::smoke(), GatewayMode::InProcess)
        .await
        .expect("the harness runs");
    println!("{}", report.table());

    let ran: Vec<&str> = report.scenarios.iter().map(|s| s.scenario).collect();
    let all: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(ran, all, "every scenario ran");
    for section in &report.scenarios {
        assert!(
            !section.figures.is_empty(),
            "{} produced no figure",
            section.scenario
        );
    }
    let problems = report.problems();
    assert!(
        problems.is_empty(),
        "broken scenarios:\n{}",
        problems.join("\n")
    );

    // The figures that only a broken harness or gateway would leave empty.
    let figure = |scenario: &str, name: &str| {
        report
            .scenarios
            .iter()
            .find(|s| s.scenario == scenario)
            .and_then(|s| s.figures.iter().find(|f| f.name.contains(name)))
            .unwrap_or_else(|| panic!("no figure `{name}` in `{scenario}`"))
            .value
            .median
    };
    assert!(figure("hot", "1 client: answers/s") > 0.0);
    assert!(figure("cold", "cold query latency") > 0.0);
    assert!(figure("coalescing", "upstream requests") >= 1.0);
    assert!(figure("throttle", "share of the budget used") > 0.0);
    assert!(figure("paging", "walk of") > 0.0);
    assert!(figure("memory", "idle") > 0.0);

    // The JSON report serializes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    report.write_json(&path).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["mode"], "smoke");
}
