//! The scenarios and what they share: the servers' runtime, the HTTP clients,
//! one stack (simulators + gateway + a signed-in principal) per scenario, and
//! the memory readings the memory scenario reports.

mod coalescing;
mod cold;
mod hot;
mod memory;
mod paging;
mod throttle;

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, anyhow, ensure};
use bytes::Bytes;
use finmesh_sandbox::RequestRecord;
use tokio::time::Instant;

use crate::gateway::{self, ConfigParts, Gateway, GatewayMode};
use crate::load::{Judge, MakeBody, Target};
use crate::platforms::{self, BONDORA_USER, Budget, PlatformSettings, Platforms};
use crate::report::Section;
use crate::runtime::ServerRuntime;
use crate::{Options, Scenario};

pub(crate) const MIB: f64 = 1024.0 * 1024.0;

/// The principal the bench signs in as (connected to Bondora when it is there).
const PRINCIPAL: &str = "bench-user";

/// What every scenario uses.
pub(crate) struct Bench {
    pub options: Options,
    pub mode: GatewayMode,
    servers: ServerRuntime,
    /// To the gateway and the baseline: HTTP/1.1, no compression asked.
    gateway_client: reqwest::Client,
    /// To the simulators directly, asking for gzip as the gateway's upstream client does.
    direct_client: reqwest::Client,
    /// The gateways' stores (SQLite files), thrown away at the end.
    stores: tempfile::TempDir,
    memory: Mutex<MemoryReadings>,
}

/// Resident memory readings (MiB) gathered by the scenarios.
#[derive(Default)]
struct MemoryReadings {
    /// Each gateway, once healthy and before any query.
    idle: Vec<f64>,
    /// Peak under the hot scenario's largest client count, per round.
    hot: Vec<f64>,
}

/// The simulators and the gateway of one scenario.
pub(crate) struct Stack {
    pub platforms: Platforms,
    pub gateway: Gateway,
    /// The bench principal's frontend token; `None` when there is nothing to
    /// sign in for (no Bondora adapter).
    pub token: Option<String>,
}

impl Stack {
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.gateway.url)
    }

    /// The providers a loans query of the bench principal fans out to.
    pub fn loan_providers(&self) -> Vec<&'static str> {
        self.platforms.loan_providers(self.token.is_some())
    }

    pub async fn stop(self) {
        self.gateway.stop().await;
        drop(self.platforms);
    }
}

/// Who sends a query: the bench principal (connected to Bondora) or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    SignedIn,
    Anonymous,
}

impl Bench {
    pub fn new(options: Options, mode: GatewayMode) -> anyhow::Result<Bench> {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        let gateway_client = reqwest::Client::builder()
            .no_proxy()
            .no_gzip()
            .http1_only()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the load generator's HTTP client")?;
        let direct_client = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot build the direct HTTP client")?;
        Ok(Bench {
            options,
            mode,
            servers: ServerRuntime::start(workers)?,
            gateway_client,
            direct_client,
            stores: tempfile::tempdir().context("cannot create a folder for the stores")?,
            memory: Mutex::default(),
        })
    }

    pub fn providers(&self) -> Vec<String> {
        platforms::provider_notes()
    }

    pub async fn run(&self, scenario: Scenario) -> anyhow::Result<Section> {
        match scenario {
            Scenario::Hot => hot::run(self).await,
            Scenario::Cold => cold::run(self).await,
            Scenario::Coalescing => coalescing::run(self).await,
            Scenario::Throttle => throttle::run(self).await,
            Scenario::Paging => paging::run(self).await,
            Scenario::Memory => memory::run(self).await,
        }
    }

    pub fn in_process(&self) -> bool {
        matches!(self.mode, GatewayMode::InProcess)
    }

    /// Fresh simulators (empty logs, full buckets) and a fresh gateway (empty
    /// caches) in front of them, with the bench principal connected to
    /// Bondora. Notes the gateway's idle memory.
    async fn stack(
        &self,
        name: &str,
        zonky_loans: usize,
        zonky_budget: Budget,
        request_timeout_ms: u64,
    ) -> anyhow::Result<Stack> {
        let platforms = Platforms::start(
            &self.servers,
            PlatformSettings {
                latency_ms: self.options.latency_ms,
                zonky_loans,
                zonky_budget,
                bondora_auctions: self.options.bondora_auctions,
            },
        )
        .await?;
        let store = self.stores.path().join(format!("{name}.db"));
        let _ = std::fs::remove_file(&store);
        let gateway = Gateway::start(
            &self.mode,
            &self.servers,
            name,
            |port| {
                gateway::config(ConfigParts {
                    platforms: &platforms,
                    port,
                    zonky_budget,
                    request_timeout_ms,
                    store: &store,
                    extra: self.options.gateway_toml.as_deref(),
                })
            },
            &self.gateway_client,
        )
        .await
        .with_context(|| format!("cannot start the gateway of `{name}`"))?;
        if !self.in_process() {
            // Let the start's allocations settle.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Some(rss) = gateway.rss_bytes() {
            self.memory_readings(|m| m.idle.push(rss as f64 / MIB));
        }
        let token = match platforms.bondora {
            Some(_) => {
                let token = gateway::token(PRINCIPAL)?;
                self.connect_bondora(&gateway.url, &token)
                    .await
                    .context("cannot connect the bench principal to Bondora")?;
                Some(token)
            }
            None => None,
        };
        // The connection's requests are not the scenario's.
        platforms.reset();
        Ok(Stack {
            platforms,
            gateway,
            token,
        })
    }

    /// The OAuth connect flow as a browser runs it: the gateway's redirect to
    /// the platform, the platform's approval as [`BONDORA_USER`], the callback.
    async fn connect_bondora(&self, gateway: &str, token: &str) -> anyhow::Result<()> {
        let browser = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        let location = |response: &reqwest::Response| -> anyhow::Result<String> {
            Ok(response
                .headers()
                .get(reqwest::header::LOCATION)
                .ok_or_else(|| anyhow!("HTTP {} without a Location", response.status()))?
                .to_str()?
                .to_string())
        };
        let start = browser
            .get(format!("{gateway}/connect/bondora"))
            .bearer_auth(token)
            .send()
            .await?;
        ensure!(
            start.status().is_redirection(),
            "GET /connect/bondora answered {}",
            start.status()
        );
        let authorize = location(&start)?;
        let approve = browser
            .get(format!("{authorize}&sandbox_user={BONDORA_USER}"))
            .send()
            .await?;
        ensure!(
            approve.status().is_redirection(),
            "the platform's authorize answered {}",
            approve.status()
        );
        let callback = location(&approve)?;
        let done = browser.get(callback).send().await?;
        ensure!(
            done.status().is_success() || done.status().is_redirection(),
            "the callback answered {}: {}",
            done.status(),
            done.text().await.unwrap_or_default()
        );
        Ok(())
    }

    fn memory_readings(&self, f: impl FnOnce(&mut MemoryReadings)) {
        let mut readings = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut readings);
    }

    /// POSTs a body to the gateway (or the baseline); status and body.
    async fn post(
        &self,
        url: &str,
        body: Bytes,
        bearer: Option<&str>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut request = self
            .gateway_client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?))
    }

    /// A load-generator target at the stack's gateway.
    fn target(&self, stack: &Stack, caller: Caller, body: MakeBody, judge: Judge) -> Target {
        Target {
            client: self.gateway_client.clone(),
            url: stack.graphql_url(),
            bearer: match caller {
                Caller::SignedIn => stack.token.clone(),
                Caller::Anonymous => None,
            },
            body,
            judge,
        }
    }

    /// Sends each provider's recorded listing requests again, straight to
    /// the platform, as the adapter sent them: requests that arrived together
    /// together, later ones after (an arrival more than half the injected
    /// latency after the previous wave's first waited for an answer). The
    /// slowest provider's time, and which provider that was.
    async fn replay_slowest(
        &self,
        stack: &Stack,
    ) -> anyhow::Result<Option<(Duration, &'static str)>> {
        let bondora_token = stack.platforms.bondora_token();
        let gap = i64::try_from(self.options.latency_ms / 2)
            .unwrap_or(i64::MAX)
            .max(1);
        let mut slowest: Option<(Duration, &'static str)> = None;
        for (provider, base, records) in stack.platforms.listings() {
            if records.is_empty() {
                continue;
            }
            let mut sorted = records;
            sorted.sort_by_key(|r| r.timestamp_ms);
            let mut waves: Vec<Vec<RequestRecord>> = Vec::new();
            let mut wave_start = i64::MIN;
            for record in sorted {
                match waves.last_mut() {
                    Some(wave) if record.timestamp_ms - wave_start < gap => wave.push(record),
                    _ => {
                        wave_start = record.timestamp_ms;
                        waves.push(vec![record]);
                    }
                }
            }
            let token = (provider == "bondora")
                .then_some(bondora_token.as_deref())
                .flatten();
            let started = Instant::now();
            for wave in &waves {
                self.replay_wave(base, wave, token).await?;
            }
            let took = started.elapsed();
            if slowest.is_none_or(|(t, _)| took > t) {
                slowest = Some((took, provider));
            }
        }
        Ok(slowest)
    }

    async fn replay_wave(
        &self,
        base: &str,
        records: &[RequestRecord],
        bearer: Option<&str>,
    ) -> anyhow::Result<()> {
        let requests = records.iter().map(|record| {
            let mut url = format!("{base}{}", record.path);
            if let Some(query) = &record.query {
                url.push('?');
                url.push_str(query);
            }
            let mut request = self.direct_client.get(url);
            for (name, value) in &record.headers {
                // The client asks for gzip itself (and then decompresses, as the gateway does).
                if name != "accept-encoding" {
                    request = request.header(name, value);
                }
            }
            if record.authorization
                && let Some(token) = bearer
            {
                request = request.bearer_auth(token);
            }
            async move {
                let response = request.send().await?.error_for_status()?;
                response.bytes().await?;
                Ok::<_, reqwest::Error>(())
            }
        });
        futures::future::try_join_all(requests)
            .await
            .context("replaying the upstream requests")?;
        Ok(())
    }
}

/// Milliseconds, fractional.
pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Median of some values (NaN for none).
pub(crate) fn median(values: &[f64]) -> f64 {
    crate::report::Stat::of(values.to_vec()).median
}

/// Milliseconds since the Unix epoch, the simulators' request-log clock.
pub(crate) fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
