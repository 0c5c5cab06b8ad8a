//! `[graphql]`, `[server.cors]` and the HTTP limits of `[server]`.

use std::io::Write;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_graphql::persisted::sha256;
use finmesh_graphql::{PersistedQueries, QueryLimits};

use crate::config::{Config, ConfigError};

fn load(toml: &str) -> Result<Config, ConfigError> {
    Config::from_figment(&Figment::from(Toml::string(toml)), &crate::factories())
}

fn problems(toml: &str) -> Vec<(String, String)> {
    match load(toml) {
        Ok(_) => Vec::new(),
        Err(error) => error
            .problems
            .into_iter()
            .map(|p| (p.key, p.message))
            .collect(),
    }
}

#[test]
fn the_defaults_are_safe() {
    let config = load("").unwrap();
    assert!(!config.server.graphiql, "no IDE unless asked");
    assert_eq!(config.graphql.limits, QueryLimits::default());
    assert!(!config.graphql.limits.introspection);
    assert_eq!(config.graphql.max_batch_size, 10);
    assert!(matches!(
        config.graphql.persisted,
        PersistedQueries::Automatic(_)
    ));
    assert_eq!(config.http.max_body_bytes, 1024 * 1024);
    // The GraphQL deadline (10 s) answers before the HTTP timeout.
    assert_eq!(config.http.http_timeout, Duration::from_secs(15));
    assert_eq!(config.http.header_read_timeout, Duration::from_secs(10));
    assert!(config.http.cors.allowed_origins.is_empty());
}

#[test]
fn the_example_file_documents_these_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../finmesh.example.toml");
    let example =
        Config::from_figment(&Figment::from(Toml::file_exact(path)), &crate::factories()).unwrap();
    let defaults = load("").unwrap();
    assert_eq!(example.http, defaults.http);
    assert_eq!(example.graphql.limits, defaults.graphql.limits);
    assert_eq!(
        example.graphql.max_batch_size,
        defaults.graphql.max_batch_size
    );
}

#[test]
fn every_limit_is_configurable() {
    let config = load(
        r#"
        [server]
        request_timeout_ms = 2000
        http_timeout_ms = 4000
        header_read_timeout_ms = 500
        max_body_bytes = 65536
        [server.cors]
        allowed_origins = ["https://app.example.com", "http://localhost:5173"]
        allow_credentials = true
        [graphql]
        max_depth = 8
        max_complexity = 900
        max_aliases = 3
        max_root_fields = 2
        max_batch_size = 4
        introspection = true
        persisted_queries = false
        "#,
    )
    .unwrap();
    assert_eq!(
        config.graphql.limits,
        QueryLimits {
            max_depth: 8,
            max_complexity: 900,
            max_aliases: 3,
            max_root_fields: 2,
            introspection: true,
        }
    );
    assert_eq!(config.graphql.max_batch_size, 4);
    assert!(matches!(config.graphql.persisted, PersistedQueries::Off));
    assert_eq!(config.http.http_timeout, Duration::from_secs(4));
    assert_eq!(config.http.header_read_timeout, Duration::from_millis(500));
    assert_eq!(config.http.max_body_bytes, 65536);
    assert!(config.http.cors.allow_credentials);
    assert_eq!(config.http.cors.allowed_origins.len(), 2);
}

#[test]
fn bad_values_are_reported_with_their_keys() {
    let found = problems(
        r#"
        [server]
        http_timeout_ms = 10000
        max_body_bytes = 10
        [server.cors]
        allowed_origins = ["*", "https://app.example.com/path", "ftp://files.example"]
        allow_credentials = true
        allow_everything = true
        [graphql]
        max_depth = 0
        max_aliases = "many"
        batch = 3
        "#,
    );
    let keys: Vec<&str> = found.iter().map(|(key, _)| key.as_str()).collect();
    for key in [
        "server.http_timeout_ms",
        "server.max_body_bytes",
        "server.cors.allowed_origins[0]",
        "server.cors.allowed_origins[1]",
        "server.cors.allowed_origins[2]",
        "server.cors.allow_everything",
        "graphql.max_depth",
        "graphql.max_aliases",
        "graphql.batch",
    ] {
        assert!(keys.contains(&key), "{key} missing from {found:?}");
    }
    let wildcard = &found
        .iter()
        .find(|(key, _)| key == "server.cors.allowed_origins[0]")
        .unwrap()
        .1;
    assert!(wildcard.contains("allow_credentials"), "{wildcard}");
}

#[test]
fn a_wildcard_origin_without_credentials_is_fine() {
    let config = load("[server.cors]\nallowed_origins = [\"*\"]\n").unwrap();
    assert_eq!(config.http.cors.allowed_origins, ["*"]);
}

#[test]
fn the_allow_list_file_is_read_and_checked() {
    let query = "query Loans { loans { totalCount } }";
    let mut good = tempfile::NamedTempFile::new().unwrap();
    write!(good, "{}", serde_json::json!({ sha256(query): query })).unwrap();
    let config = load(&format!(
        "[graphql]\nallowlist_file = {:?}\n",
        good.path().display().to_string()
    ))
    .unwrap();
    match &config.graphql.persisted {
        PersistedQueries::AllowList(list) => assert_eq!(list.len(), 1),
        other => panic!("{other:?}"),
    }

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    write!(bad, "{}", serde_json::json!({ sha256("other"): query })).unwrap();
    for path in [
        bad.path().display().to_string(),
        "/no/such/file.json".to_string(),
    ] {
        let found = problems(&format!("[graphql]\nallowlist_file = {path:?}\n"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "graphql.allowlist_file");
    }
}
