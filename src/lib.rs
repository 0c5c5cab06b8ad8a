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

    /// One Zonky simulator with OAuth, a store at `database_url` (SQLite or
    /// PostgreSQL), frontend tokens signed with [`SIGNING_SECRET`], and
    /// `gateway_toml` on top.
    pub async fn with_identity(
        sandbox: ZonkyConfig,
        database_url: &str,
        gateway_toml: &str,
    ) -> Stack {
        // The callback URL is configured before the gateway starts: bind first.
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let identity = format!(
            r#"
            [server]
            listen = "127.0.0.1:{port}"
            [store]
            url = "{database_url}"
            [secrets.keys]
            test = "{ENCRYPTION_KEY}"
            [auth]
            hs256_secret = "{SIGNING_SECRET}"
            [providers.zonky.oauth]
            client_id = "mujrobot"
            client_secret = "mujrobot"
            redirect_uri = "http://127.0.0.1:{port}/connect/zonky/callback"
            authorize_url = "{{zonky}}/oauth/authorize"
            token_url = "{{zonky}}/oauth/token"
            "#
        );
        Stack::start_with(
            vec![("zonky", sandbox)],
            &identity,
            gateway_toml,
            Some(listener),
        )
        .await
    }

    /// One simulator per `(provider id, config)`.
    pub async fn start(sandboxes: Vec<(&str, ZonkyConfig)>, gateway_toml: &str) -> Stack {
        Stack::start_with(sandboxes, "", gateway_toml, None).await
    }

    /// `base_toml` may name a simulator's URL as `{<provider id>}`.
    async fn start_with(
        sandboxes: Vec<(&str, ZonkyConfig)>,
        base_toml: &str,
        gateway_toml: &str,
        listener: Option<tokio::net::TcpListener>,
    ) -> Stack {
        let mut base_toml = base_toml.to_string();
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
            base_toml = base_toml.replace(&format!("{{{id}}}"), &served.base_url());
            running.push((id.to_string(), sandbox, served));
        }
        let figment = Figment::from(Toml::string(&toml))
            .merge(Toml::string(&base_toml))
            .merge(Toml::string(gateway_toml));
        let config = Config::from_figment(&figment, &finmesh_server::factories())
            .unwrap_or_else(|e| panic!("{e}"));
        let gateway = match listener {
            Some(listener) => finmesh_server::start_on(listener, config).await.unwrap(),
            None => finmesh_server::start(config).await.unwrap(),
        };
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

    /// The running gateway, e.g. to inspect its response cache.
    pub fn gateway(&self) -> &RunningGateway {
        &self.gateway
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
        self.graphql_as(None, query, variables).await
    }

    /// POSTs a GraphQL request with `Authorization: Bearer <token>` when given.
    pub async fn graphql_as(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.url()))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "HTTP {}", response.status());
        response.json().await.unwrap()
    }

    /// Runs the OAuth connect flow over HTTP as a browser would; see [`connect`].
    pub async fn connect(
        &self,
        token: &str,
        provider: &str,
        sandbox_user: &str,
    ) -> reqwest::Response {
        connect(&self.url(), token, provider, sandbox_user).await
    }

    /// Stops the gateway (waiting for requests in flight) and the simulators.
    pub async fn shutdown(self) {
        self.gateway.shutdown().await.unwrap();
        for (_, _, running) in self.sandboxes {
            running.shutdown().await.unwrap();
        }
    }
}

/// Signs the frontend tokens of stacks built with [`Stack::with_identity`].
pub const SIGNING_SECRET: &str = "e2e-signing-secret-0123456789abcdef0123456789";
/// The store's encryption key in those stacks (32 bytes, base64).
pub const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A frontend token for `principal`, signed with [`SIGNING_SECRET`].
pub fn token(principal: &str) -> String {
    let claims = json!({"sub": principal, "exp": chrono::Utc::now().timestamp() + 3600});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .unwrap()
}

/// Runs the OAuth connect flow of the gateway at `gateway_url` over HTTP as a
/// browser would: the gateway's redirect to the platform, the platform's
/// approval as `sandbox_user`, and the callback. Returns the callback's response.
pub async fn connect(
    gateway_url: &str,
    token: &str,
    provider: &str,
    sandbox_user: &str,
) -> reqwest::Response {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = browser
        .get(format!("{gateway_url}/connect/{provider}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        start.status(),
        303,
        "{}",
        start.text().await.unwrap_or_default()
    );
    let authorize = location(&start);
    let approve = browser
        .get(format!("{authorize}&sandbox_user={sandbox_user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 302, "the platform did not redirect back");
    let callback = location(&approve);
    assert!(callback.starts_with(gateway_url), "{callback}");
    browser.get(callback).send().await.unwrap()
}

/// POSTs a GraphQL request to the gateway at `gateway_url`, with
/// `Authorization: Bearer <token>` when given; the whole response body.
pub async fn graphql_at(
    gateway_url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = reqwest::Client::new()
        .post(format!("{gateway_url}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "HTTP {}", response.status());
    response.json().await.unwrap()
}

/// GraphQL operations the end-to-end flows share.
pub mod operations {
    use serde_json::{Value, json};

    /// The principal's investments, a page after `$after`.
    pub const INVESTMENTS: &str = "query($after: String) { investments(first: 100, after: $after) {
    totalCount edges { node { id principalTotal { amount currency } principalUnpaid { amount } } }
    pageInfo { hasNextPage endCursor } } }";

    /// The principal's portfolio, per provider and currency.
    pub const PORTFOLIO: &str = "{ portfolio { provider currency investments principalOutstanding
    principalRepaid interestRepaid interestOutstanding } }";

    /// Creates a transfer: `$input` ([`transfer_input`]) under idempotency key `$key`.
    pub const CREATE_TRANSFER: &str = "mutation($input: CreateTransferInput!, $key: String!) {
    createTransfer(input: $input, idempotencyKey: $key) { id status amount { amount currency } metadata } }";

    /// Confirms transfer `$id` under idempotency key `$key`.
    pub const CONFIRM_TRANSFER: &str = "mutation($id: ID!, $key: String!) { confirmTransfer(id: $id, idempotencyKey: $key) { id status confirmedAt } }";

    /// A Bongloy transfer of `amount` USD to `destination`, with metadata.
    pub fn transfer_input(amount: &str, destination: &str) -> Value {
        json!({"provider": "bongloy", "amount": {"amount": amount, "currency": "USD"},
               "destinationAccount": destination, "metadata": {"order": "A-17"}})
    }
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a redirect has a Location")
        .to_str()
        .unwrap()
        .to_string()
}

/// The `extensions` of every error in a GraphQL response.
pub fn error_extensions(response: &Value) -> Vec<Value> {
    response["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["extensions"].clone()).collect())
        .unwrap_or_default()
}
