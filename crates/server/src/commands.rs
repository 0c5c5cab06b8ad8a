//! What each `finmesh` subcommand does.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_sandbox::{RunningSandbox, ZonkyConfig, ZonkySandbox};
use finmesh_store::{SecretCipher, Store};
use secrecy::{ExposeSecret, SecretString};

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

/// `finmesh migrate --config <file>`: applies the store's migrations.
pub async fn migrate(config_path: &Path) -> anyhow::Result<()> {
    let store = configured_store(config_path).await?;
    println!("migrations applied ({})", store.backend().as_str());
    Ok(())
}

/// `finmesh rotate-key --config <file>`: re-encrypts every stored secret under
/// the active key of `[secrets]`; the old keys may then be removed.
pub async fn rotate_key(config_path: &Path) -> anyhow::Result<()> {
    let store = configured_store(config_path).await?;
    let rotated = store.rotate_key().await?;
    println!(
        "{rotated} secrets re-encrypted under key `{}`",
        store.cipher().active_key_id()
    );
    Ok(())
}

async fn configured_store(config_path: &Path) -> anyhow::Result<Store> {
    let figment = config::figment(config_path)?;
    let config = Config::from_figment(&figment, &crate::factories())?;
    let Some(store) = &config.store else {
        bail!("{} has no [store] section", config_path.display());
    };
    Ok(crate::open_store(store).await?)
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

/// `finmesh demo --port <port>`: the simulators on free loopback ports, an
/// embedded SQLite store in a temporary folder, and the gateway on `port`.
pub async fn demo(port: u16) -> anyhow::Result<()> {
    let sandbox = spawn_sandbox(0).await?;
    let setup = DemoSetup::new()?;
    let figment = setup.figment(&sandbox.base_url(), port);
    let config = Config::from_figment(&figment, &crate::factories())?;
    let gateway = match start(config).await {
        Ok(gateway) => gateway,
        Err(error) if error.is_addr_in_use() => bail!(
            "port {port} is already in use on 127.0.0.1; choose another with `finmesh demo --port <port>` (or `cargo run --release -- demo --port <port>`)"
        ),
        Err(error) => return Err(error.into()),
    };
    println!("{}", banner(&gateway, &sandbox, &setup.token("demo-user")?));
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

/// What `demo` makes up on the spot: a store folder, an encryption key and
/// the secret that signs frontend tokens. All of it dies with the process.
pub struct DemoSetup {
    dir: tempfile::TempDir,
    encryption_key: SecretString,
    signing_secret: SecretString,
}

impl DemoSetup {
    pub fn new() -> anyhow::Result<Self> {
        Ok(DemoSetup {
            dir: tempfile::tempdir()
                .context("cannot create a temporary folder for the demo store")?,
            encryption_key: SecretCipher::generate_key_base64(),
            signing_secret: random_secret(),
        })
    }

    /// The demo's configuration: a Zonky provider at the simulator, with OAuth
    /// through the simulator's authorize and token endpoints.
    pub fn figment(&self, zonky_url: &str, port: u16) -> Figment {
        let store = Store::sqlite_url(&self.dir.path().join("finmesh.db"));
        Figment::from(Toml::string(&format!(
            r#"
            [server]
            listen = "127.0.0.1:{port}"

            [store]
            url = "{store}"

            [providers.zonky]
            kind = "zonky"
            base_url = "{zonky_url}"

            [providers.zonky.oauth]
            client_id = "mujrobot"
            client_secret = "mujrobot"
            redirect_uri = "http://127.0.0.1:{port}/connect/zonky/callback"
            authorize_url = "{zonky_url}/oauth/authorize"
            token_url = "{zonky_url}/oauth/token"
            "#
        )))
        .merge(("secrets.keys.demo", self.encryption_key.expose_secret()))
        .merge(("auth.hs256_secret", self.signing_secret.expose_secret()))
    }

    /// A frontend token for `principal`, valid for a day.
    pub fn token(&self, principal: &str) -> anyhow::Result<String> {
        let claims = serde_json::json!({
            "sub": principal,
            "exp": chrono::Utc::now().timestamp() + 86_400,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.signing_secret.expose_secret().as_bytes()),
        )
        .context("cannot sign the demo token")
    }
}

/// 48 random bytes as URL-safe base64: well past HS256's 256-bit key size.
fn random_secret() -> SecretString {
    use base64::Engine;
    let bytes: [u8; 48] = rand::random();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn banner(gateway: &RunningGateway, sandbox: &RunningSandbox, token: &str) -> String {
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

Signed in as `demo-user` (a token valid for a day; put it in GraphiQL's headers):

  {{\"Authorization\": \"Bearer {token}\"}}

then link the simulated Zonky account with
  mutation {{ startConnection(provider: \"zonky\") {{ authorizeUrl }} }}
open the authorizeUrl in a browser, and ask for
  {{ me {{ connections {{ provider status }} }} portfolio {{ provider currency investments principalOutstanding }} }}

Press Ctrl-C to stop.",
        sandbox = sandbox.base_url(),
    )
}
