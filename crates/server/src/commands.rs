//! What each `finmesh` subcommand does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_sandbox::bongloy::test_keys as bongloy_keys;
use finmesh_sandbox::{
    BondoraConfig, BondoraSandbox, BongloyConfig, BongloySandbox, RunningSandbox, ZonkyConfig,
    ZonkySandbox,
};
use finmesh_store::{SecretCipher, Store};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use crate::config::{self, Config};
use crate::{EXAMPLE_QUERY, RunningGateway, shutdown_signal, start, start_on};

/// `finmesh serve --config <file>`: serves until Ctrl-C or SIGTERM.
pub async fn serve(config_path: &Path) -> anyhow::Result<()> {
    let figment = config::figment(config_path)?;
    let config = Config::from_figment(&figment, &crate::factories())?;
    let _telemetry = crate::telemetry::init(&config.log, &config.otlp)?;
    let gateway = start(config).await?;
    gateway.run_until(shutdown_signal()).await?;
    Ok(())
}

/// `finmesh check-config --config <file>`: every problem on stdout, one per
/// line as `key: message`; an error (so a non-zero exit) when there is any.
pub fn check_config(config_path: &Path) -> anyhow::Result<()> {
    let checked = config::figment(config_path)
        .and_then(|figment| Config::from_figment(&figment, &crate::factories()));
    match checked {
        Ok(_) => {
            println!("{}: configuration is valid", config_path.display());
            Ok(())
        }
        Err(error) => {
            for problem in &error.problems {
                println!("{}: {}", problem.key, problem.message);
            }
            bail!(
                "{} has {} configuration problem(s)",
                config_path.display(),
                error.problems.len()
            )
        }
    }
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

/// `finmesh sandbox --port <port> [--host <ip>]`: the Zonky simulator alone,
/// on loopback unless told otherwise (containers need `0.0.0.0`).
pub async fn sandbox(host: IpAddr, port: u16) -> anyhow::Result<()> {
    let sandbox = spawn_sandbox(SocketAddr::new(host, port)).await?;
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
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {port} is already in use on 127.0.0.1; choose another with `finmesh demo --port <port>` (or `cargo run --release -- demo --port <port>`)"
        ),
        Err(error) => return Err(error).with_context(|| format!("cannot listen on {addr}")),
    };
    let demo = Demo::start(listener).await?;
    println!("{}", demo.banner()?);
    let Demo {
        gateway, sandboxes, ..
    } = demo;
    gateway.run_until(shutdown_signal()).await?;
    sandboxes.shutdown().await?;
    Ok(())
}

async fn spawn_sandbox(addr: SocketAddr) -> anyhow::Result<RunningSandbox> {
    ZonkySandbox::new(ZonkyConfig::default())
        .spawn(addr)
        .await
        .with_context(|| format!("cannot start the Zonky simulator on {addr}"))
}

/// The simulated platforms of the demo.
pub struct DemoSandboxes {
    pub zonky: ZonkySandbox,
    pub bondora: BondoraSandbox,
    pub bongloy: BongloySandbox,
    running: Vec<RunningSandbox>,
}

impl DemoSandboxes {
    /// `port`: the gateway's, where the Bondora simulator posts its webhooks.
    async fn spawn(port: u16) -> anyhow::Result<Self> {
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let zonky = ZonkySandbox::new(ZonkyConfig::default());
        let bondora = BondoraSandbox::new(BondoraConfig {
            webhook_url: Some(format!("http://127.0.0.1:{port}/webhooks/bondora")),
            ..BondoraConfig::default()
        });
        let bongloy = BongloySandbox::new(BongloyConfig::default());
        let running = vec![
            zonky
                .clone()
                .spawn(loopback)
                .await
                .context("cannot start the Zonky simulator")?,
            bondora
                .clone()
                .spawn(loopback)
                .await
                .context("cannot start the Bondora simulator")?,
            bongloy
                .clone()
                .spawn(loopback)
                .await
                .context("cannot start the Bongloy simulator")?,
        ];
        Ok(DemoSandboxes {
            zonky,
            bondora,
            bongloy,
            running,
        })
    }

    fn url(&self, index: usize) -> String {
        self.running
            .get(index)
            .map(RunningSandbox::base_url)
            .unwrap_or_default()
    }

    pub async fn shutdown(self) -> std::io::Result<()> {
        for running in self.running {
            running.shutdown().await?;
        }
        Ok(())
    }
}

/// Everything `finmesh demo` runs, startable on any listener (tests use port 0).
pub struct Demo {
    pub gateway: RunningGateway,
    pub sandboxes: DemoSandboxes,
    setup: DemoSetup,
    figment: Figment,
}

impl Demo {
    pub async fn start(listener: TcpListener) -> anyhow::Result<Demo> {
        Demo::start_with(listener, "").await
    }

    /// Like [`Demo::start`], with `overrides` (TOML) over the demo's configuration.
    pub async fn start_with(listener: TcpListener, overrides: &str) -> anyhow::Result<Demo> {
        let port = listener.local_addr()?.port();
        let sandboxes = DemoSandboxes::spawn(port).await?;
        let setup = DemoSetup::new()?;
        let figment = setup
            .figment(&sandboxes, port)
            .merge(Toml::string(overrides));
        let config = Config::from_figment(&figment, &crate::factories())?;
        let gateway = start_on(listener, config).await?;
        Ok(Demo {
            gateway,
            sandboxes,
            setup,
            figment,
        })
    }

    /// Stops the gateway and starts a new one on the same address, store and
    /// simulators: what a crash and a restart look like from outside.
    pub async fn restart_gateway(self) -> anyhow::Result<Demo> {
        let addr = self.gateway.addr;
        self.gateway.shutdown().await?;
        let listener = TcpListener::bind(addr).await?;
        let config = Config::from_figment(&self.figment, &crate::factories())?;
        let gateway = start_on(listener, config).await?;
        Ok(Demo { gateway, ..self })
    }

    /// A frontend token for `principal`, valid for a day.
    pub fn token(&self, principal: &str) -> anyhow::Result<String> {
        self.setup.token(principal)
    }

    /// The configuration the gateway runs with, secrets included (for tests
    /// that look for them where they must not be).
    pub fn figment(&self) -> &Figment {
        &self.figment
    }

    /// Stops the gateway (waiting for requests in flight), then the simulators.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.gateway.shutdown().await?;
        self.sandboxes.shutdown().await?;
        Ok(())
    }

    fn banner(&self) -> anyhow::Result<String> {
        Ok(banner(
            &self.gateway,
            &self.sandboxes,
            &self.token("demo-user")?,
        ))
    }
}

/// What `demo` makes up on the spot: a store folder, an encryption key and
/// the secret that signs frontend tokens. All of it dies with the process.
struct DemoSetup {
    dir: tempfile::TempDir,
    encryption_key: SecretString,
    signing_secret: SecretString,
}

impl DemoSetup {
    fn new() -> anyhow::Result<Self> {
        Ok(DemoSetup {
            dir: tempfile::tempdir()
                .context("cannot create a temporary folder for the demo store")?,
            encryption_key: SecretCipher::generate_key_base64(),
            signing_secret: random_secret(),
        })
    }

    /// The demo's configuration: Zonky with OAuth through the simulator's
    /// authorize and token endpoints, and Bongloy with the simulator's test
    /// partner key, used by every demo user.
    fn figment(&self, sandboxes: &DemoSandboxes, port: u16) -> Figment {
        let store = Store::sqlite_url(&self.dir.path().join("finmesh.db"));
        let (zonky_url, bondora_url, bongloy_url) =
            (sandboxes.url(0), sandboxes.url(1), sandboxes.url(2));
        let bondora_oauth = BondoraConfig::default_oauth();
        let bondora_webhooks = BondoraConfig::default();
        Figment::from(Toml::string(&format!(
            r#"
            [server]
            listen = "127.0.0.1:{port}"
            graphiql = true

            [graphql]
            introspection = true

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

            [providers.bondora]
            kind = "bondora"
            base_url = "{bondora_url}"

            [providers.bondora.oauth]
            client_id = "{bondora_client}"
            client_secret = "{bondora_secret}"
            redirect_uri = "http://127.0.0.1:{port}/connect/bondora/callback"
            authorize_url = "{bondora_url}/oauth/authorize"
            token_url = "{bondora_url}/oauth/access_token"

            # The simulator signs its webhook calls with its default key.
            [providers.bondora.webhooks.keys]
            "{webhook_key_id}" = "{webhook_secret}"

            [providers.bongloy]
            kind = "bongloy"
            base_url = "{bongloy_url}"
            default_tenant = "demo"
            "#,
            bondora_client = bondora_oauth.client_id,
            bondora_secret = bondora_oauth.client_secret,
            webhook_key_id = bondora_webhooks.webhook_key_id,
            webhook_secret = bondora_webhooks.webhook_secret,
        )))
        .merge(("secrets.keys.demo", self.encryption_key.expose_secret()))
        .merge(("auth.hs256_secret", self.signing_secret.expose_secret()))
        .merge((
            "providers.bongloy.credentials.demo.api_token",
            bongloy_keys::PARTNER_API_TOKEN,
        ))
        .merge((
            "providers.bongloy.credentials.demo.private_key",
            bongloy_keys::PARTNER_PRIVATE_KEY_PEM,
        ))
    }

    fn token(&self, principal: &str) -> anyhow::Result<String> {
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

fn banner(gateway: &RunningGateway, sandboxes: &DemoSandboxes, token: &str) -> String {
    let url = gateway.url();
    let body = serde_json::json!({ "query": EXAMPLE_QUERY });
    format!(
        "\
finmesh demo is running, with simulated Zonky, Bondora and Bongloy platforms.

  GraphiQL           {url}/
  GraphQL            {url}/graphql
  Zonky simulator    {zonky}
  Bondora simulator  {bondora}
  Bongloy simulator  {bongloy}

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

Have the Bondora simulator post signed webhook events (new auctions) to the gateway:
  curl -s {bondora}/__sandbox/webhooks/send -H 'content-type: application/json' -d '{{\"count\": 5}}'

Press Ctrl-C to stop.",
        zonky = sandboxes.url(0),
        bondora = sandboxes.url(1),
        bongloy = sandboxes.url(2),
    )
}
