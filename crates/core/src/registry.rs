//! Providers are built from configuration by factories keyed by `kind`, so a new
//! adapter crate plugs in by exporting a factory; neither the aggregator nor the
//! GraphQL layer names any platform.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::TokenSource;
use crate::error::{Error, Result};
use crate::id::ProviderId;
use crate::provider::Provider;
use crate::resilience::Resilience;
use crate::upstream::Throttle;

/// What every adapter gets from the gateway when it is built.
#[derive(Clone)]
pub struct FactoryContext {
    /// `finmesh/<version> (<project url>)`, sent as `User-Agent` upstream.
    pub user_agent: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// The throttle backend shared by every provider (local or Redis).
    pub throttle: Arc<dyn Throttle>,
    /// Retry settings and the providers' circuit breakers; adapters pass the
    /// context to [`Upstream::from_context`](crate::upstream::Upstream::from_context).
    pub resilience: Resilience,
    /// Where adapters get users' access tokens.
    pub tokens: Arc<dyn TokenSource>,
}

/// Builds provider instances of one kind from their configuration table.
pub trait ProviderFactory: Send + Sync {
    /// The `kind` value in configuration that selects this factory.
    fn kind(&self) -> &'static str;

    /// Builds one instance. `config` is the provider's table from the
    /// configuration file; errors should name the offending key.
    fn build(
        &self,
        id: ProviderId,
        config: &serde_json::Value,
        context: &FactoryContext,
    ) -> Result<Arc<dyn Provider>>;
}

/// The configured providers, in configuration order.
#[derive(Clone, Default)]
pub struct Registry {
    providers: Vec<Arc<dyn Provider>>,
    by_id: HashMap<ProviderId, Arc<dyn Provider>>,
}

impl Registry {
    pub fn new(providers: Vec<Arc<dyn Provider>>) -> Result<Self> {
        let mut by_id = HashMap::new();
        for provider in &providers {
            if by_id
                .insert(provider.id().clone(), provider.clone())
                .is_some()
            {
                return Err(Error::invalid_input(
                    "providers",
                    format!("provider id `{}` is configured twice", provider.id()),
                ));
            }
        }
        Ok(Registry { providers, by_id })
    }

    /// Builds every configured provider with the factory of its kind.
    pub fn build(
        factories: &[Arc<dyn ProviderFactory>],
        configured: &[(ProviderId, String, serde_json::Value)],
        context: &FactoryContext,
    ) -> Result<Self> {
        let providers = configured
            .iter()
            .map(|(id, kind, config)| {
                let factory = factories.iter().find(|f| f.kind() == kind).ok_or_else(|| {
                    let known: Vec<_> = factories.iter().map(|f| f.kind()).collect();
                    Error::invalid_input(
                        format!("providers.{id}.kind"),
                        format!("unknown provider kind `{kind}`; known kinds: {known:?}"),
                    )
                })?;
                factory.build(id.clone(), config, context)
            })
            .collect::<Result<Vec<_>>>()?;
        Registry::new(providers)
    }

    pub fn all(&self) -> &[Arc<dyn Provider>] {
        &self.providers
    }

    pub fn get(&self, id: &ProviderId) -> Result<&Arc<dyn Provider>> {
        self.by_id
            .get(id)
            .ok_or_else(|| Error::invalid_input("providers", format!("unknown provider `{id}`")))
    }

    /// The providers named by a caller, or all of them; unknown names are an error.
    pub fn select(&self, names: Option<&[String]>) -> Result<Vec<Arc<dyn Provider>>> {
        match names {
            None => Ok(self.providers.clone()),
            Some(names) => names
                .iter()
                .map(|name| {
                    let id = ProviderId::new(name).map_err(|_| {
                        Error::invalid_input("providers", format!("unknown provider `{name}`"))
                    })?;
                    self.get(&id).cloned()
                })
                .collect(),
        }
    }
}
