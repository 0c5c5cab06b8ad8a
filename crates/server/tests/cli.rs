//! `finmesh check-config`, run as the binary it is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `finmesh check-config --config <path>` without the caller's
/// `FINMESH_` variables, which would override the file.
fn check_config(path: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_finmesh"));
    command.args(["check-config", "--config"]).arg(path);
    for (name, _) in std::env::vars() {
        if name.starts_with("FINMESH_") {
            command.env_remove(name);
        }
    }
    command.output().unwrap()
}

#[test]
fn a_broken_file_gets_every_problem_one_per_line_with_its_key() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        r#"
        [server]
        listen = "everywhere"
        request_timeout_ms = 0

        [log]
        format = "xml"

        [otlp]
        sample_ratio = 2.0

        [store]
        url = "mysql://db"

        [auth]
        rs256_public_keys = ["/no/such/key.pem"]

        [providers.zonky]
        kind = "zonky"
        base_url = "not a url"

        [providers.bongloy]
        kind = "bongloy"
        [providers.bongloy.credentials.main]
        api_token_env = "FINMESH_CHECK_CONFIG_TEST_UNSET"
        private_key_file = "/no/such/bongloy.pem"
        "#
    )
    .unwrap();
    let output = check_config(file.path());
    assert!(!output.status.success(), "problems must fail the command");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let keys: Vec<&str> = lines
        .iter()
        .map(|line| line.split_once(": ").expect("`key: message`").0)
        .collect();
    for key in [
        "server.listen",
        "server.request_timeout_ms",
        "log.format",
        "otlp.sample_ratio",
        "store.url",
        "auth.rs256_public_keys[0]",
        "providers.zonky.base_url",
    ] {
        assert!(keys.contains(&key), "{key} missing from:\n{stdout}");
    }
    assert!(
        keys.iter().any(|k| k.starts_with("providers.bongloy.")),
        "the Bongloy credential problem is listed:\n{stdout}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(&format!("{} configuration problem(s)", lines.len())),
        "{stderr}"
    );
}

#[test]
fn the_example_file_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../finmesh.example.toml");
    let output = check_config(&example);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("configuration is valid"), "{stdout}");
}

#[test]
fn a_missing_file_is_a_problem_too() {
    let output = check_config(Path::new("/no/such/finmesh.toml"));
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("no such configuration file"), "{stdout}");
}
