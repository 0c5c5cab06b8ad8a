//! What each `finmesh` subcommand does.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_sandbox::{RunningSandbox, ZonkyConfig, ZonkySandbox};

use crate::config::{self, Config};
use crate::{EXAMPLE_QUERY, RunningGateway, shutdown_signal, start};

/// `finmesh serve --config <file>`: serves until Ctrl-C or SIGTERM.
pub async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let figment = config::figment(config_path)?;
    let config = Config::from_figment(&figment, &crate::factories())?;
    let gateway = start(config).await?;
    gateway.run_until(shutdown_signal()).await?;
    Ok(())
}

/// `finmesh schema`: the SDL, as committed in `schema.graphql`.
pub fn schema() -> String {
    finmesh_graphql::sdl()
}

/// `finmesh sandbox --port <port>`: the Zonky simulator alone, on loopback.
pub async fn sandbox(port: u16) -> anyhow::Result<()> {
    let sandbox = spawn_sandbox(port).await?;
    println!("Zonky simulator listening at {}", sandbox.base_url());
    println!(
        "Point a gateway at it with `base_url = \"{}\"`.",
        sandbox.base_url()
    );
    shutdown_signal().await;
    sandbox.shutdown().await?;
    Ok(())
}

/// `finmesh demo --port <port>`: the Zonky simulator on a free loopback port
/// and the gateway in front of it on `port`.
pub async fn demo(port: u16) -> anyhow::Result<()> {
    let sandbox = spawn_sandbox(0).await?;
    let figment = demo_figment(&sandbox.base_url(), port);
    let config = Config::from_figment(&figment, &crate::factories())?;
    let gateway = match start(config).await {
        Ok(gateway) => gateway,
        Err(error) if error.is_addr_in_use() => bail!(
            "port {port} is already in use on 127.0.0.1; choose another with `finmesh demo --port <port>` (or `cargo run --release -- demo --port <port>`)"
        ),
        Err(error) => return Err(error.into()),
    };
    println!("{}", banner(&gateway, &sandbox));
    gateway.run_until(shutdown_signal()).await?;
    sandbox.shutdown().await?;
    Ok(())
}

async fn spawn_sandbox(port: u16) -> anyhow::Result<RunningSandbox> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    ZonkySandbox::new(ZonkyConfig::default())
        .spawn(addr)
        .await
        .with_context(|| format!("cannot start the Zonky simulator on {addr}"))
}

/// The demo's configuration: defaults, one Zonky provider at the simulator.
pub fn demo_figment(sandbox_url: &str, port: u16) -> Figment {
    Figment::from(Toml::string(&format!(
        r#"
        [server]
        listen = "127.0.0.1:{port}"

        [providers.zonky]
        kind = "zonky"
        base_url = "{sandbox_url}"
        "#
    )))
}

fn banner(gateway: &RunningGateway, sandbox: &RunningSandbox) -> String {
    let url = gateway.url();
    let body = serde_json::json!({ "query": EXAMPLE_QUERY });
    format!(
        "\
finmesh demo is running, with a simulated Zonky marketplace.

  GraphiQL         {url}/
  GraphQL          {url}/graphql
  Zonky simulator  {sandbox}

Open GraphiQL and try:

  {EXAMPLE_QUERY}

or from a shell:

  curl -s {url}/graphql -H 'content-type: application/json' -d '{body}'

Press Ctrl-C to stop.",
        sandbox = sandbox.base_url(),
    )
}
