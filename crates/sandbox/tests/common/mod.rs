//! What every simulator's HTTP tests share: the simulator served on a free
//! loopback port with a client, and its control endpoints.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use finmesh_sandbox::{BondoraSandbox, BongloySandbox, RunningSandbox, ZonkySandbox};
use reqwest::{Client, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const USER_AGENT: &str = "finmesh-sandbox-tests/0.1 (https://github.com/finmesh/finmesh)";

/// A simulator that serves itself on an address (each sandbox's own `spawn`).
pub trait Serve: Clone {
    fn serve(self, addr: SocketAddr) -> impl Future<Output = io::Result<RunningSandbox>>;
}

impl Serve for ZonkySandbox {
    fn serve(self, addr: SocketAddr) -> impl Future<Output = io::Result<RunningSandbox>> {
        self.spawn(addr)
    }
}

impl Serve for BondoraSandbox {
    fn serve(self, addr: SocketAddr) -> impl Future<Output = io::Result<RunningSandbox>> {
        self.spawn(addr)
    }
}

impl Serve for BongloySandbox {
    fn serve(self, addr: SocketAddr) -> impl Future<Output = io::Result<RunningSandbox>> {
        self.spawn(addr)
    }
}

/// A running simulator: its data accessors (`sandbox`), and a client that
/// names itself with [`USER_AGENT`].
pub struct Sim<S> {
    pub sandbox: S,
    pub running: RunningSandbox,
    pub client: Client,
}

impl<S: Serve> Sim<S> {
    /// Serves `sandbox` on a free loopback port.
    pub async fn launch(sandbox: S) -> Self {
        let running = sandbox
            .clone()
            .serve(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let client = Client::builder().user_agent(USER_AGENT).build().unwrap();
        Self {
            sandbox,
            running,
            client,
        }
    }
}

impl<S> Sim<S> {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    /// A control endpoint's answer (no token needed).
    pub async fn control<T: DeserializeOwned>(&self, path: &str) -> T {
        fetch_json(self.client.get(self.url(path))).await
    }

    /// Replaces the faults over HTTP (`PUT /__sandbox/faults`).
    pub async fn put_faults(&self, faults: &impl Serialize) -> Response {
        self.client
            .put(self.url("/__sandbox/faults"))
            .json(faults)
            .send()
            .await
            .unwrap()
    }
}

/// Sends `request` and reads its answer as JSON.
pub async fn fetch_json<T: DeserializeOwned>(request: RequestBuilder) -> T {
    request.send().await.unwrap().json().await.unwrap()
}
