//! The platform simulators behind one gateway, on loopback ports of the
//! servers' runtime, each with the configured latency on every request:
//! Zonky (public loans), Bondora (loans for a connected user, when its adapter
//! is in `finmesh_server::factories()`) and Bongloy (payments, no loans).

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context;
use chrono::{DateTime, Utc};
use finmesh_sandbox::bongloy::test_keys;
use finmesh_sandbox::{
    BondoraConfig, BondoraSandbox, BongloyConfig, BongloySandbox, BucketConfig, Faults,
    RequestRecord, RunningSandbox, Stats, ZonkyConfig, ZonkySandbox,
};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use crate::runtime::ServerRuntime;

/// A leaky bucket, applied alike by a simulator and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub capacity: u32,
    pub refill_per_second: u32,
}

impl Budget {
    /// So large that it never binds: for scenarios that measure something
    /// else than throttling (the throttle code still runs on every request).
    pub const UNBOUNDED: Budget = Budget {
        capacity: 1_000_000,
        refill_per_second: 1_000_000,
    };

    fn bucket(self) -> BucketConfig {
        BucketConfig {
            capacity: self.capacity,
            refill_per_second: Decimal::from(self.refill_per_second),
        }
    }
}

/// How the simulators of one stack behave.
#[derive(Debug, Clone, Copy)]
pub struct PlatformSettings {
    pub latency_ms: u64,
    pub zonky_loans: usize,
    /// Zonky's bucket (Bondora's quota is always [`Budget::UNBOUNDED`]).
    pub zonky_budget: Budget,
    pub bondora_auctions: usize,
}

/// The API token and key the gateway signs Bongloy requests with (the
/// simulator's public test pair: it signs requests to the simulator only).
pub const BONGLOY_API_TOKEN: &str = test_keys::PARTNER_API_TOKEN;
pub const BONGLOY_PRIVATE_KEY_PEM: &str = test_keys::PARTNER_PRIVATE_KEY_PEM;

/// The simulator user whose Bondora account the bench principal connects.
pub const BONDORA_USER: &str = "alice";

/// Zonky's marketplace listing and Bondora's auction listing.
pub const ZONKY_LOANS: &str = "/loans/marketplace";
pub const BONDORA_LOANS: &str = "/api/v1/auctions";

/// Whether this gateway binary has a Bondora adapter (and so whether the
/// stacks start a Bondora simulator and connect a user to it).
pub fn bondora_available() -> bool {
    finmesh_server::factories()
        .iter()
        .any(|f| f.kind() == "bondora")
}

/// Running simulators. Dropping them stops them.
pub struct Platforms {
    pub zonky: ZonkySandbox,
    pub zonky_url: String,
    /// With its URL, when the gateway has a Bondora adapter.
    pub bondora: Option<(BondoraSandbox, String)>,
    pub bongloy: BongloySandbox,
    pub bongloy_url: String,
    _running: Vec<RunningSandbox>,
}

impl Platforms {
    pub async fn start(
        servers: &ServerRuntime,
        settings: PlatformSettings,
    ) -> anyhow::Result<Platforms> {
        let faults = Faults {
            latency_ms: settings.latency_ms,
            ..Faults::default()
        };
        let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let mut running = Vec::new();
        let zonky = ZonkySandbox::new(ZonkyConfig {
            loans: settings.zonky_loans,
            bucket: settings.zonky_budget.bucket(),
            faults: faults.clone(),
            ..ZonkyConfig::default()
        });
        let served = servers
            .run(zonky.clone().spawn(loopback))
            .await?
            .context("cannot start the Zonky simulator")?;
        let zonky_url = served.base_url();
        running.push(served);
        let bondora = if bondora_available() {
            let bondora = BondoraSandbox::new(BondoraConfig {
                auctions: settings.bondora_auctions,
                default_limit: Budget::UNBOUNDED.bucket(),
                faults: faults.clone(),
                ..BondoraConfig::default()
            });
            let served = servers
                .run(bondora.clone().spawn(loopback))
                .await?
                .context("cannot start the Bondora simulator")?;
            let url = served.base_url();
            running.push(served);
            Some((bondora, url))
        } else {
            None
        };
        let bongloy = BongloySandbox::try_new(BongloyConfig {
            faults,
            ..BongloyConfig::default()
        })
        .map_err(|error| anyhow::anyhow!("cannot configure the Bongloy simulator: {error}"))?;
        let served = servers
            .run(bongloy.clone().spawn(loopback))
            .await?
            .context("cannot start the Bongloy simulator")?;
        let bongloy_url = served.base_url();
        running.push(served);
        Ok(Platforms {
            zonky,
            zonky_url,
            bondora,
            bongloy,
            bongloy_url,
            _running: running,
        })
    }

    /// The providers a loans query without `providers` fans out to: both
    /// loan platforms for the bench principal (connected to Bondora), Zonky
    /// alone without it.
    pub fn loan_providers(&self, signed_in: bool) -> Vec<&'static str> {
        if signed_in && self.bondora.is_some() {
            vec!["bondora", "zonky"]
        } else {
            vec!["zonky"]
        }
    }

    /// Clears counters and logs and refills buckets of every simulator.
    pub fn reset(&self) {
        self.zonky.reset();
        if let Some((bondora, _)) = &self.bondora {
            bondora.reset();
        }
        self.bongloy.reset();
    }

    /// The loan listing requests each provider received since the last
    /// reset, oldest first, with the provider's base URL.
    pub fn listings(&self) -> Vec<(&'static str, &str, Vec<RequestRecord>)> {
        let of = |records: Vec<RequestRecord>, path: &str| -> Vec<RequestRecord> {
            records
                .into_iter()
                .filter(|r| r.method == "GET" && r.path == path)
                .collect()
        };
        let mut listings = Vec::new();
        if let Some((bondora, url)) = &self.bondora {
            listings.push((
                "bondora",
                url.as_str(),
                of(bondora.requests(), BONDORA_LOANS),
            ));
        }
        listings.push((
            "zonky",
            self.zonky_url.as_str(),
            of(self.zonky.requests(), ZONKY_LOANS),
        ));
        listings
    }

    /// Loan listing requests of every provider since the last reset, by the
    /// simulators' counters (not bounded by their logs' capacity).
    pub fn listing_count(&self) -> u64 {
        let count = |stats: Stats, path: &str| stats.by_endpoint.get(path).copied().unwrap_or(0);
        count(self.zonky.stats(), ZONKY_LOANS)
            + self
                .bondora
                .as_ref()
                .map_or(0, |(b, _)| count(b.stats(), BONDORA_LOANS))
    }

    /// The first `count` loans a loans query of the given providers must
    /// answer, newest first, as global ids, computed from the simulators' own
    /// data: each platform's open loans with at most `max_term` months, by
    /// publication time (newest first), ties as the gateway breaks them
    /// (provider id, then the platform's order).
    pub fn newest(
        &self,
        providers: &[&str],
        count: usize,
        max_term: u64,
    ) -> anyhow::Result<Vec<String>> {
        let now = Utc::now();
        // (published, provider rank, native key, global id)
        let mut loans: Vec<(DateTime<Utc>, u8, String, String)> = Vec::new();
        if providers.contains(&"bondora")
            && let Some((bondora, _)) = &self.bondora
        {
            for auction in bondora.auctions() {
                let open = auction["ActualCloseDate"].is_null()
                    && time(&auction["PlannedCloseDate"]).is_some_and(|close| close > now);
                let term = auction["LoanDuration"].as_u64().unwrap_or(u64::MAX);
                if !open || term > max_term {
                    continue;
                }
                let id = auction["AuctionId"]
                    .as_str()
                    .context("a Bondora auction without AuctionId")?
                    .trim()
                    .to_string();
                let published = time(&auction["ListedOnUTC"])
                    .context("a Bondora auction without ListedOnUTC")?;
                loans.push((published, 0, id.clone(), format!("bondora:loan:{id}")));
            }
        }
        if providers.contains(&"zonky") {
            for loan in self.zonky.loans() {
                let term = loan["termInMonths"].as_u64().unwrap_or(u64::MAX);
                if term > max_term {
                    continue;
                }
                let id = loan["id"]
                    .as_u64()
                    .context("a Zonky loan without a numeric id")?;
                let published =
                    time(&loan["datePublished"]).context("a Zonky loan without datePublished")?;
                // Zonky breaks ties by ascending id: zero-padded, the text sorts alike.
                loans.push((
                    published,
                    1,
                    format!("{id:020}"),
                    format!("zonky:loan:{id}"),
                ));
            }
        }
        loans.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        Ok(loans.into_iter().take(count).map(|l| l.3).collect())
    }

    /// An access token of [`BONDORA_USER`] at the Bondora simulator, to send
    /// recorded requests again.
    pub fn bondora_token(&self) -> Option<String> {
        let (bondora, _) = self.bondora.as_ref()?;
        let scopes: Vec<&str> = finmesh_sandbox::bondora::SCOPES.to_vec();
        Some(
            bondora
                .oauth()
                .issue_tokens(BONDORA_USER, &scopes)
                .access_token,
        )
    }
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    let text = value.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What the gateway binary offers, and what of it this harness benchmarks.
pub fn provider_notes() -> Vec<String> {
    let kinds: Vec<&'static str> = finmesh_server::factories()
        .iter()
        .map(|f| f.kind())
        .collect();
    let mut notes = vec![format!(
        "adapters in finmesh_server::factories(): {}",
        kinds.join(", ")
    )];
    if kinds.contains(&"bondora") {
        notes.push(
            "loans queries of the bench principal (connected to the Bondora simulator as `alice` through the OAuth flow) fan out to Bondora and Zonky; the throttle and paging scenarios ask Zonky alone (`providers: [\"zonky\"]`)"
                .to_string(),
        );
        notes.push(
            "Bondora's per-endpoint quota (1/s) is lifted on both sides in every scenario; the throttle scenario measures Zonky's budget"
                .to_string(),
        );
    } else {
        notes.push(
            "Bondora's adapter is not in factories() at this revision: loans come from Zonky alone"
                .to_string(),
        );
    }
    notes.push(
        "Bongloy is configured too (a payments platform: it serves no loans, so loans queries must not call it)"
            .to_string(),
    );
    notes
}
