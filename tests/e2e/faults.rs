//! Upstream faults: the failing provider is listed with its error, the other
//! provider's loans stay, and the gateway keeps serving.

use finmesh_e2e::{Stack, error_extensions};
use finmesh_sandbox::{Faults, ZonkyConfig};
use serde_json::Value;

const QUERY: &str = "{ loans(first: 10) { totalCount edges { node { id provider } } } }";

fn small(seed: u64) -> ZonkyConfig {
    ZonkyConfig {
        seed,
        loans: 60,
        ..ZonkyConfig::default()
    }
}

#[tokio::test]
async fn a_failing_platform_is_listed_and_the_others_answer() {
    // Two Zonky accounts: `flaky` gets the faults, `steady` keeps answering.
    let stack = Stack::start(
        vec![("flaky", small(1)), ("steady", small(2))],
        // Every query must reach the platforms: no answer from the cache.
        "[gateway]\nupstream_timeout_ms = 400\n[cache]\nttl_public_ms = 0\nstale_if_error_ms = 0\n",
    )
    .await;
    let faults = [
        (
            "5xx",
            Faults {
                error_rate: 1.0,
                error_status: 503,
                ..Faults::default()
            },
        ),
        (
            "malformed JSON",
            Faults {
                malformed_rate: 1.0,
                ..Faults::default()
            },
        ),
        (
            "truncated body",
            Faults {
                truncated_rate: 1.0,
                ..Faults::default()
            },
        ),
        (
            "dropped connection",
            Faults {
                drop_rate: 1.0,
                ..Faults::default()
            },
        ),
        (
            "latency beyond the timeout",
            Faults {
                latency_ms: 1_500,
                ..Faults::default()
            },
        ),
    ];
    for (name, fault) in faults {
        stack.sandbox("flaky").set_faults(fault);
        let response = stack.graphql(QUERY, Value::Null).await;
        let edges = response["data"]["loans"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 10, "{name}: {response:#}");
        assert!(
            edges.iter().all(|e| e["node"]["provider"] == "steady"),
            "{name}: {response:#}"
        );
        assert_eq!(
            response["data"]["loans"]["totalCount"],
            Value::Null,
            "{name}"
        );
        let errors = error_extensions(&response);
        assert_eq!(errors.len(), 1, "{name}: {response:#}");
        assert_eq!(errors[0]["provider"], "flaky", "{name}: {response:#}");
        let code = errors[0]["code"].as_str().unwrap();
        assert!(
            ["UPSTREAM_UNAVAILABLE", "UPSTREAM_PROTOCOL_ERROR"].contains(&code),
            "{name}: {code}"
        );
        assert_eq!(response["errors"][0]["path"][0], "loans");

        // Healed, the next request gets both platforms again.
        stack.sandbox("flaky").set_faults(Faults::default());
        let response = stack.graphql(QUERY, Value::Null).await;
        assert!(
            response.get("errors").is_none(),
            "after {name}: {response:#}"
        );
        assert_eq!(response["data"]["loans"]["totalCount"], 120, "after {name}");
    }

    // One loan from a failing platform: null, and the error names the provider.
    stack.sandbox("flaky").set_faults(Faults {
        error_rate: 1.0,
        error_status: 502,
        ..Faults::default()
    });
    let id = format!("flaky:loan:{}", stack.sandbox("flaky").loans()[0]["id"]);
    let response = stack
        .graphql(
            "query($id: ID!) { loan(id: $id) { id } }",
            serde_json::json!({ "id": id }),
        )
        .await;
    assert_eq!(response["data"]["loan"], Value::Null);
    assert_eq!(error_extensions(&response)[0]["provider"], "flaky");

    let health = stack
        .graphql(
            "{ providers { id health { status lastError { code } } } }",
            Value::Null,
        )
        .await;
    assert_eq!(health["data"]["providers"][0]["id"], "flaky");
    assert_eq!(health["data"]["providers"][0]["health"]["status"], "DOWN");
    assert_eq!(health["data"]["providers"][1]["health"]["status"], "UP");
    stack.shutdown().await;
}
