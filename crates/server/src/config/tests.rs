use figment::Jail;
use figment::providers::{Format, Toml};

use super::*;

fn load(toml: &str) -> Result<Config, ConfigError> {
    Config::from_figment(&Figment::from(Toml::string(toml)), &crate::factories())
}

fn problem_keys(error: &ConfigError) -> Vec<&str> {
    error.problems.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn an_empty_file_means_the_defaults() {
    let config = load("").unwrap();
    assert_eq!(config.server.listen, defaults::LISTEN);
    assert_eq!(config.server.request_timeout, Duration::from_secs(10));
    assert_eq!(config.gateway.max_page_size, 100);
    assert_eq!(config.gateway.default_page_size, 20);
    assert_eq!(
        user_agent(&config.gateway.project_url),
        format!(
            "finmesh/{} (https://github.com/finmesh/finmesh)",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(config.providers.all().is_empty());
}

#[test]
fn the_example_file_documents_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../finmesh.example.toml");
    let example = Figment::from(Toml::file_exact(path));
    let config = Config::from_figment(&example, &crate::factories()).unwrap();
    let defaults = load("").unwrap();
    assert_eq!(config.server, defaults.server);
    assert_eq!(config.gateway, defaults.gateway);
    assert_eq!(config.log, defaults.log);
    assert_eq!(config.otlp, defaults.otlp);
    assert_eq!(config.cache, defaults.cache);
    let ids: Vec<_> = config
        .providers
        .all()
        .iter()
        .map(|p| p.id().to_string())
        .collect();
    assert_eq!(ids, ["zonky"]);
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let error = load(
        r#"
        color = "blue"

        [server]
        listen = "nowhere"
        lisen = "127.0.0.1:1"
        request_timeout_ms = 0

        [gateway]
        max_page_size = "many"
        default_page_size = 500
        project_url = "finmesh"

        [providers.nokind]
        base_url = "http://127.0.0.1:1"

        [providers.strange]
        kind = "bondora-ish"

        [providers.Upper]
        kind = "zonky"

        [providers.zonky]
        kind = "zonky"
        base_url = "not a url"
        "#,
    )
    .map(drop)
    .unwrap_err();
    let keys = problem_keys(&error);
    for key in [
        "color",
        "server.listen",
        "server.lisen",
        "server.request_timeout_ms",
        "gateway.max_page_size",
        "gateway.default_page_size",
        "gateway.project_url",
        "providers.nokind.kind",
        "providers.strange.kind",
        "providers.Upper",
        "providers.zonky.base_url",
    ] {
        assert!(keys.contains(&key), "{key} missing from:\n{error}");
    }
    assert!(error.to_string().starts_with("invalid configuration:\n  "));
}

#[test]
// figment's `Jail` fixes the closure's (large) error type.
#[allow(clippy::result_large_err)]
fn environment_variables_override_the_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "finmesh.toml",
            r#"
            [server]
            listen = "127.0.0.1:9000"

            [providers.zonky]
            kind = "zonky"
            base_url = "http://127.0.0.1:1"
            "#,
        )?;
        jail.set_env("FINMESH_SERVER__LISTEN", "0.0.0.0:8088");
        jail.set_env("FINMESH_GATEWAY__MAX_PAGE_SIZE", "50");
        // Not configuration: no `__`, so it is left alone.
        jail.set_env("FINMESH_TEST_POSTGRES_URL", "postgres://x");
        let config = Config::from_figment(
            &figment(Path::new("finmesh.toml")).unwrap(),
            &crate::factories(),
        )
        .unwrap();
        assert_eq!(config.server.listen, "0.0.0.0:8088".parse().unwrap());
        assert_eq!(config.gateway.max_page_size, 50);

        jail.set_env("FINMESH_PROVIDERS__ZONKY__BASE_URL", "/relative");
        let error = Config::from_figment(
            &figment(Path::new("finmesh.toml")).unwrap(),
            &crate::factories(),
        )
        .map(drop)
        .unwrap_err();
        assert_eq!(
            problem_keys(&error),
            ["providers.zonky.base_url"],
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn a_missing_file_is_an_error() {
    let error = figment(Path::new("/nonexistent/finmesh.toml")).unwrap_err();
    assert!(error.to_string().contains("no such configuration file"));
}
