//! The gateway under test: its generated configuration, and the gateway
//! itself as a separate release process (the benchmark) or in this process
//! (the CI smoke test, which has no release build).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde_json::json;

use crate::platforms::{BONGLOY_API_TOKEN, BONGLOY_PRIVATE_KEY_PEM, Budget, Platforms};
use crate::runtime::ServerRuntime;

/// How the gateway runs.
#[derive(Debug, Clone)]
pub enum GatewayMode {
    /// `finmesh serve --config <generated file>` as a child process; its
    /// configuration and log go to `work_dir`.
    Process { binary: PathBuf, work_dir: PathBuf },
    /// `finmesh_server::start_on` on the servers' runtime of this process.
    InProcess,
}

impl GatewayMode {
    pub fn describe(&self) -> String {
        match self {
            GatewayMode::Process { binary, .. } => {
                format!("separate process: {}", binary.display())
            }
            GatewayMode::InProcess => {
                "in process (finmesh_server::start_on; memory figures are the whole bench process)"
                    .to_string()
            }
        }
    }
}

/// The bench principal's frontend tokens are signed with this (HS256).
pub const SIGNING_SECRET: &str = "finmesh-bench-signing-secret-0123456789abcdef";
/// The store's encryption key (32 bytes, base64); the store is thrown away.
const ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// What one gateway's configuration is made of.
pub struct ConfigParts<'a> {
    pub platforms: &'a Platforms,
    pub port: u16,
    /// Zonky's bucket (Bondora's quota is lifted: [`Budget::UNBOUNDED`]).
    pub zonky_budget: Budget,
    pub request_timeout_ms: u64,
    /// The SQLite file of the store (needed for Bondora's OAuth connection).
    pub store: &'a Path,
    /// A TOML file merged on top.
    pub extra: Option<&'a Path>,
}

/// The generated configuration of one gateway: the simulators as providers,
/// the throttles set to the budgets, then `extra` (a TOML file) on top.
pub fn config(parts: ConfigParts<'_>) -> Figment {
    let ConfigParts {
        platforms,
        port,
        zonky_budget,
        request_timeout_ms,
        store,
        extra,
    } = parts;
    let mut generated = json!({
        "server": {
            "listen": format!("127.0.0.1:{port}"),
            "graphiql": false,
            "request_timeout_ms": request_timeout_ms,
        },
        "providers": {
            "zonky": {
                "kind": "zonky",
                "base_url": platforms.zonky_url,
                "throttle": {
                    "rules": [
                        {
                            "name": "last-published",
                            "endpoints": {"prefixes": ["/loans/last-published"]},
                            "capacity": 1,
                            "refill_per_second": 1.0,
                        },
                        {
                            "name": "default",
                            "endpoints": "all",
                            "capacity": zonky_budget.capacity,
                            "refill_per_second": f64::from(zonky_budget.refill_per_second),
                            "headroom": 1,
                        },
                    ],
                },
            },
            "bongloy": {
                "kind": "bongloy",
                "base_url": platforms.bongloy_url,
                "default_tenant": "bench",
                "credentials": {
                    "bench": {
                        "api_token": BONGLOY_API_TOKEN,
                        "private_key": BONGLOY_PRIVATE_KEY_PEM,
                    },
                },
            },
        },
    });
    if let Some((bondora, url)) = &platforms.bondora {
        let oauth = bondora.oauth().config();
        let unbounded = Budget::UNBOUNDED;
        generated["providers"]["bondora"] = json!({
            "kind": "bondora",
            "base_url": url,
            "throttle": {
                "rules": [{
                    "name": "per-endpoint",
                    "endpoints": "each_endpoint",
                    "capacity": unbounded.capacity,
                    "refill_per_second": f64::from(unbounded.refill_per_second),
                    "headroom": 1,
                }],
            },
            "oauth": {
                "client_id": oauth.client_id,
                "client_secret": oauth.client_secret,
                "redirect_uri": format!("http://127.0.0.1:{port}/connect/bondora/callback"),
                "authorize_url": format!("{url}/oauth/authorize"),
                "token_url": format!("{url}/oauth/access_token"),
            },
        });
        generated["store"] = json!({ "url": format!("sqlite://{}", store.display()) });
        generated["secrets"] = json!({ "keys": { "bench": ENCRYPTION_KEY } });
        generated["auth"] = json!({ "hs256_secret": SIGNING_SECRET });
    }
    let figment = Figment::from(Serialized::defaults(to_toml(&generated)));
    match extra {
        Some(path) => figment.merge(Toml::file_exact(path)),
        None => figment,
    }
}

/// JSON as TOML: serde_json's exact numbers (`arbitrary_precision`) would
/// reach figment as maps, so numbers become TOML integers or floats here.
fn to_toml(value: &serde_json::Value) -> toml::Value {
    use serde_json::Value as Json;
    match value {
        Json::Null => toml::Value::String(String::new()),
        Json::Bool(b) => toml::Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => toml::Value::String(s.clone()),
        Json::Array(items) => toml::Value::Array(items.iter().map(to_toml).collect()),
        Json::Object(map) => toml::Value::Table(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), to_toml(v)))
                .collect(),
        ),
    }
}

/// A frontend token for `principal`, signed with [`SIGNING_SECRET`], valid for a day.
pub fn token(principal: &str) -> anyhow::Result<String> {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 86_400;
    let claims = json!({ "sub": principal, "exp": expires });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SIGNING_SECRET.as_bytes()),
    )
    .context("cannot sign the bench principal's token")
}

/// A running gateway.
pub struct Gateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    kind: Kind,
}

enum Kind {
    Process {
        child: tokio::process::Child,
        pid: u32,
        log: PathBuf,
    },
    InProcess {
        _running: finmesh_server::RunningGateway,
    },
}

impl Gateway {
    /// Starts the gateway and waits until `/healthz` answers.
    pub async fn start(
        mode: &GatewayMode,
        servers: &ServerRuntime,
        name: &str,
        make_config: impl FnOnce(u16) -> Figment,
        client: &reqwest::Client,
    ) -> anyhow::Result<Gateway> {
        let gateway = match mode {
            GatewayMode::InProcess => {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                    .await
                    .context("cannot bind a loopback port for the gateway")?;
                let port = listener.local_addr()?.port();
                let figment = make_config(port);
                let config = finmesh_server::config::Config::from_figment(
                    &figment,
                    &finmesh_server::factories(),
                )
                .map_err(|error| anyhow!("the generated gateway configuration: {error}"))?;
                // Rebuilt on the servers' runtime, where the gateway's tasks live.
                let std_listener = listener.into_std()?;
                let running = servers
                    .run(async move {
                        let listener = tokio::net::TcpListener::from_std(std_listener)?;
                        finmesh_server::start_on(listener, config)
                            .await
                            .map_err(anyhow::Error::from)
                    })
                    .await??;
                Gateway {
                    url: running.url(),
                    kind: Kind::InProcess { _running: running },
                }
            }
            GatewayMode::Process { binary, work_dir } => {
                std::fs::create_dir_all(work_dir)
                    .with_context(|| format!("cannot create {}", work_dir.display()))?;
                let port = free_port()?;
                let figment = make_config(port);
                // Checked here first, so a problem is reported by key, not as a dead child.
                finmesh_server::config::Config::from_figment(
                    &figment,
                    &finmesh_server::factories(),
                )
                .map_err(|error| anyhow!("the generated gateway configuration: {error}"))?;
                let value: toml::Value = figment
                    .extract()
                    .context("cannot read the generated gateway configuration")?;
                let config_path = work_dir.join(format!("gateway-{name}.toml"));
                std::fs::write(&config_path, toml::to_string(&value)?)
                    .with_context(|| format!("cannot write {}", config_path.display()))?;
                let log = work_dir.join(format!("gateway-{name}.log"));
                let log_file = std::fs::File::create(&log)
                    .with_context(|| format!("cannot create {}", log.display()))?;
                let mut command = tokio::process::Command::new(binary);
                command
                    .arg("serve")
                    .arg("--config")
                    .arg(&config_path)
                    .env("RUST_LOG", "warn")
                    .stdin(Stdio::null())
                    .stdout(log_file.try_clone()?)
                    .stderr(log_file)
                    .kill_on_drop(true);
                // The generated file is the whole configuration: no overrides
                // from this shell's environment.
                for (key, _) in std::env::vars_os() {
                    if key.to_string_lossy().starts_with("FINMESH_") {
                        command.env_remove(key);
                    }
                }
                let child = command
                    .spawn()
                    .with_context(|| format!("cannot start {}", binary.display()))?;
                let pid = child
                    .id()
                    .ok_or_else(|| anyhow!("the gateway exited at once; see {}", log.display()))?;
                Gateway {
                    url: format!("http://127.0.0.1:{port}"),
                    kind: Kind::Process { child, pid, log },
                }
            }
        };
        let mut gateway = gateway;
        gateway.wait_healthy(client).await?;
        Ok(gateway)
    }

    async fn wait_healthy(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("{}/healthz", self.url);
        // At most 30 s: 300 tries 100 ms apart.
        for _ in 0..300 {
            if let Kind::Process { child, log, .. } = &mut self.kind
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "the gateway exited ({status}) before answering; its log: {}\n{}",
                    log.display(),
                    tail(log)
                );
            }
            match client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(response) if response.status().is_success() => return Ok(()),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        match &self.kind {
            Kind::Process { log, .. } => bail!(
                "the gateway did not answer /healthz within 30 s; its log: {}\n{}",
                log.display(),
                tail(log)
            ),
            Kind::InProcess { .. } => bail!("the in-process gateway did not answer /healthz"),
        }
    }

    /// Resident memory (VmRSS) of the gateway's process; in process, of this one.
    pub fn rss_bytes(&self) -> Option<u64> {
        match &self.kind {
            Kind::Process { pid, .. } => rss_bytes(Some(*pid)),
            Kind::InProcess { .. } => rss_bytes(None),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Process { pid, .. } => Some(*pid),
            Kind::InProcess { .. } => None,
        }
    }

    /// Stops the gateway: kills the child (and reaps it), or stops serving.
    pub async fn stop(self) {
        match self.kind {
            Kind::Process { mut child, .. } => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            }
            Kind::InProcess { _running } => drop(_running),
        }
    }
}

/// A free loopback port, found by binding port 0 and letting it go.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("cannot bind a loopback port for the gateway")?;
    Ok(listener.local_addr()?.port())
}

/// `VmRSS` of `/proc/<pid>/status` (or this process's), in bytes.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
