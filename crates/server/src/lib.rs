//! The finmesh gateway: configuration, the HTTP app around the GraphQL schema,
//! and the `serve`, `demo`, `schema` and `sandbox` commands. `main.rs` only
//! parses the command line.

pub mod auth;
pub mod commands;
pub mod config;
mod connect;
mod graphiql;
mod hardening;
mod http;
pub mod ops;
mod shed;
mod status;
pub mod telemetry;
mod tokens;
mod webhooks;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use finmesh_core::aggregate::{Aggregator, AggregatorSettings, HealthBook};
use finmesh_core::cache::ResponseCache;
use finmesh_core::registry::ProviderFactory;
use finmesh_graphql::{SchemaOptions, Services, build_schema};
use finmesh_identity::{Connections, StoreTokens};
use finmesh_payments::{PaymentSettings, Payments};
use finmesh_store::Store;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http::AppState;

/// The adapters this binary ships: the one place that names them.
pub fn factories() -> Vec<Arc<dyn ProviderFactory>> {
    vec![
        Arc::new(finmesh_zonky::ZonkyFactory),
        Arc::new(finmesh_bondora::BondoraFactory),
        Arc::new(finmesh_bongloy::BongloyFactory),
    ]
}

/// The query `finmesh demo` suggests, and the one the acceptance test runs.
pub const EXAMPLE_QUERY: &str = "{ loans(first: 20, orderBy: [{field: INTEREST_RATE, direction: DESC}], filter: {termMonths: {lte: 48}}) { totalCount edges { node { id name interestRate termMonths amount { amount currency } } } pageInfo { hasNextPage endCursor } } }";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot open the store: {0}")]
    Store(finmesh_core::Error),
}

impl StartError {
    /// Whether another program holds the port.
    pub fn is_addr_in_use(&self) -> bool {
        match self {
            StartError::Bind { source, .. } => source.kind() == io::ErrorKind::AddrInUse,
            StartError::Store(_) => false,
        }
    }
}

/// A gateway serving in a background task. Dropping it stops the server
/// without waiting; [`RunningGateway::shutdown`] waits for requests in flight.
pub struct RunningGateway {
    /// The address bound (the real port when configured with port 0).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
    shutdown_grace: Duration,
    shutdown_delay: Duration,
    /// Set first on shutdown: `/readyz` answers 503 from then on.
    shutting_down: Arc<AtomicBool>,
    /// The response cache, for tests and tools that inspect it.
    pub cache: ResponseCache,
}

/// Opens and migrates the configured store.
pub async fn open_store(config: &config::StoreConfig) -> Result<Store, finmesh_core::Error> {
    let store = Store::connect(&config.url, config.cipher.clone()).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the store, binds the configured address and serves the gateway.
pub async fn start(config: Config) -> Result<RunningGateway, StartError> {
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    start_on(listener, config).await
}

/// Like [`start`], on a listener bound beforehand: for callers that must know
/// the address before the configuration is made (the callback URL of OAuth).
pub async fn start_on(listener: TcpListener, config: Config) -> Result<RunningGateway, StartError> {
    // Before anything records a metric: until then the facade drops them.
    telemetry::prometheus();
    let registry = Arc::new(config.providers);
    let aggregator = Aggregator::new(
        registry.clone(),
        AggregatorSettings {
            default_page_size: config.gateway.default_page_size,
            max_page_size: config.gateway.max_page_size,
            max_local_sort: config.gateway.max_local_sort,
        },
    )
    .with_changes(config.changes.clone())
    .with_cache(ResponseCache::new(config.cache.clone()))
    .with_health(HealthBook::watching(
        config.resilience.clone(),
        config.throttle.clone(),
    ));
    let mut probes: Vec<Arc<dyn ops::ReadinessProbe>> = Vec::new();
    let mut webhook_store = None;
    let (connections, payments) = match &config.store {
        Some(store_config) => {
            let store = open_store(store_config).await.map_err(StartError::Store)?;
            webhook_store = Some(store.clone());
            probes.push(Arc::new(ops::StoreProbe(store.clone())));
            config.tokens.set(Arc::new(StoreTokens::new(store.clone())));
            let payments = Payments::new(
                store.clone(),
                aggregator.clone(),
                PaymentSettings::default(),
            );
            // What a crash left ambiguous is settled before anyone asks again.
            let reconciling = payments.clone();
            tokio::spawn(async move {
                match reconciling.reconcile_unfinished().await {
                    Ok(0) => {}
                    Ok(settled) => tracing::info!(settled, "reconciled unfinished transfers"),
                    Err(error) => {
                        tracing::warn!(%error, "could not reconcile unfinished transfers")
                    }
                }
            });
            (
                Some(Connections::new(
                    store,
                    registry.clone(),
                    config.allowed_redirects.clone(),
                )),
                Some(payments),
            )
        }
        None => (None, None),
    };
    let webhooks = webhooks::Webhooks::new(aggregator.clone(), webhook_store);
    let webhook_worker = webhooks.spawn_worker();
    let ops = ops::Ops::new(
        aggregator.clone(),
        config.throttle.clone(),
        config.resilience.clone(),
        probes,
    );
    let shutting_down = ops.shutdown_flag();
    let cache = aggregator.cache().clone();
    let schema = build_schema(
        Services {
            aggregator,
            connections: connections.clone(),
            payments,
        },
        SchemaOptions {
            request_timeout: config.server.request_timeout,
            limits: config.graphql.limits.clone(),
            persisted: config.graphql.persisted.clone(),
        },
    );
    let state = AppState {
        schema,
        request_timeout: config.server.request_timeout,
        auth: config.auth.clone(),
        connections,
        ops,
        max_batch_size: config.graphql.max_batch_size,
        webhooks,
        shed: shed::Shedder::new(config.server.rate_limit),
    };
    let app = http::router(state, config.server.graphiql, &config.http);

    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let header_read_timeout = config.http.header_read_timeout;
    let task = tokio::spawn(async move {
        let served = hardening::serve(listener, app, header_read_timeout, async {
            // A dropped sender means stop, too.
            let _ = stopped.await;
        })
        .await;
        // After the last request: the worker finishes its event and stops.
        if let Some(worker) = webhook_worker {
            worker.stop().await;
        }
        served
    });
    tracing::info!(%addr, "finmesh gateway listening");
    Ok(RunningGateway {
        addr,
        stop: Some(stop),
        task,
        shutdown_grace: config.server.shutdown_grace,
        shutdown_delay: config.server.shutdown_delay,
        shutting_down,
        cache,
    })
}

impl RunningGateway {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> io::Result<()> {
        tokio::select! {
            finished = &mut self.task => return finished.map_err(io::Error::other)?,
            () = signal => {}
        }
        self.shutdown().await
    }

    /// Fails `/readyz`, keeps serving for the configured shutdown delay (so
    /// load balancers stop routing here), then stops accepting connections
    /// and waits, at most the configured grace period, for requests in
    /// flight to finish.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.shutting_down.store(true, Ordering::Release);
        if !self.shutdown_delay.is_zero() {
            tracing::info!(delay = ?self.shutdown_delay, "readiness withdrawn; serving until the shutdown delay ends");
            tokio::select! {
                finished = &mut self.task => return finished.map_err(io::Error::other)?,
                () = tokio::time::sleep(self.shutdown_delay) => {}
            }
        }
        if let Some(stop) = self.stop.take() {
            // The server may have stopped already; then there is nobody to tell.
            let _ = stop.send(());
        }
        match tokio::time::timeout(self.shutdown_grace, &mut self.task).await {
            Ok(finished) => finished.map_err(io::Error::other)?,
            Err(_) => {
                tracing::warn!(
                    grace = ?self.shutdown_grace,
                    "requests still in flight after the shutdown grace period; aborting them"
                );
                self.task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handling here: only the other signal can stop us.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
