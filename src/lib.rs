//! Helpers for the end-to-end tests in `tests/`: Zonky simulators and a gateway
//! in front of them, all in this process on free loopback ports, driven over
//! real HTTP.

// Test support: a setup that fails should fail the test, loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};

use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_sandbox::{RunningSandbox, ZonkyConfig, ZonkySandbox};
use finmesh_server::RunningGateway;
use finmesh_server::config::Config;
use serde_json::{Value, json};

pub use finmesh_server::EXAMPLE_QUERY;

/// Simulators and the gateway configured with one Zonky provider per simulator.
pub struct Stack {
    sandboxes: Vec<(String, ZonkySandbox, RunningSandbox)>,
    gateway: RunningGateway,
    client: reqwest::Client,
}

impl Stack {
    /// One simulator as provider `zonky`; `gateway_toml` adds to or overrides
    /// the gateway's configuration.
    pub async fn zonky(sandbox: ZonkyConfig, gateway_toml: &str) -> Stack {
        Stack::start(vec![("zonky", sandbox)], gateway_toml).await
    }

    /// One simulator per `(provider id, config)`.
    pub async fn start(sandboxes: Vec<(&str, ZonkyConfig)>, gateway_toml: &str) -> Stack {
        let mut toml = String::from("[server]\nlisten = \"127.0.0.1:0\"\n");
        let mut running = Vec::new();
        for (id, config) in sandboxes {
            let sandbox = ZonkySandbox::new(config);
            let served = sandbox
                .clone()
                .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
                .await
                .unwrap();
            toml.push_str(&format!(
                "[providers.{id}]\nkind = \"zonky\"\nbase_url = \"{}\"\n",
                served.base_url()
            ));
            running.push((id.to_string(), sandbox, served));
        }
        let figment = Figment::from(Toml::string(&toml)).merge(Toml::string(gateway_toml));
        let config = Config::from_figment(&figment, &finmesh_server::factories())
            .unwrap_or_else(|e| panic!("{e}"));
        let gateway = finmesh_server::start(config).await.unwrap();
        Stack {
            sandboxes: running,
            gateway,
            client: reqwest::Client::new(),
        }
    }

    /// The simulator behind provider `id`.
    pub fn sandbox(&self, id: &str) -> &ZonkySandbox {
        self.sandboxes
            .iter()
            .find(|(name, ..)| name == id)
            .map(|(_, sandbox, _)| sandbox)
            .unwrap_or_else(|| panic!("no simulator for provider {id}"))
    }

    /// `http://<gateway address>`.
    pub fn url(&self) -> String {
        self.gateway.url()
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// POSTs a GraphQL request and returns the whole response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/graphql", self.url()))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.unwrap()
    }

    /// Stops the gateway (waiting for requests in flight) and the simulators.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await.unwrap();
        for (_, _, running) in self.sandboxes {
            running.shutdown().await.unwrap();
        }
    }
}

/// The `extensions` of every error in a GraphQL response.
pub fn error_extensions(response: &Value) -> Vec<Value> {
    response["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["extensions"].clone()).collect())
        .unwrap_or_default()
}
