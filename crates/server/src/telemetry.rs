//! Logs, traces and the Prometheus recorder of the running process.
//!
//! - Logs go to stderr, as text lines or JSON objects (`[log]`); every line
//!   carries the fields of its spans, so the request id shows on each.
//! - With `[otlp] enabled = true` (and the `otlp` feature, on by default),
//!   spans are exported over OTLP/HTTP with protobuf bodies.
//! - Metrics go through the `metrics` facade into one process-wide Prometheus
//!   recorder, rendered by `/metrics`.

use std::io::IsTerminal;
use std::sync::OnceLock;

use finmesh_core::telemetry::{FAMILIES, LATENCY_BUCKETS};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogConfig, LogFormat, OtlpConfig};

/// Flushes exported spans when dropped; keep it until the process ends.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.tracer_provider.take() {
            // The exporter blocks on its HTTP client: keep that off the async workers.
            let flush = std::thread::spawn(move || provider.shutdown());
            if let Ok(Err(error)) = flush.join() {
                eprintln!("warning: could not flush traces: {error}");
            }
        }
    }
}

/// Installs the global `tracing` subscriber as configured. `RUST_LOG`, when
/// set, wins over `[log] level`.
pub fn init(log: &LogConfig, otlp: &OtlpConfig) -> anyhow::Result<TelemetryGuard> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::try_new(&log.level)?,
    };
    // Logs go to stderr, so `finmesh schema > schema.graphql` stays clean.
    let logs = match log.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(logs);
    #[cfg(feature = "otlp")]
    {
        let (layer, tracer_provider) = match otlp.enabled {
            true => {
                let (layer, provider) = otlp_layer(otlp)?;
                (Some(layer), Some(provider))
            }
            false => (None, None),
        };
        registry.with(layer).try_init()?;
        Ok(TelemetryGuard { tracer_provider })
    }
    #[cfg(not(feature = "otlp"))]
    {
        // The configuration reader refuses `otlp.enabled` in such a build.
        let _ = otlp;
        registry.try_init()?;
        Ok(TelemetryGuard {})
    }
}

#[cfg(feature = "otlp")]
fn otlp_layer<S>(
    config: &OtlpConfig,
) -> anyhow::Result<(
    impl Layer<S> + use<S>,
    opentelemetry_sdk::trace::SdkTracerProvider,
)>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

    // The exporter's blocking HTTP client runs on the batch processor's own
    // thread (the SDK gives it no async runtime).
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.endpoint.as_str())
        .with_timeout(config.timeout)
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("finmesh");
    Ok((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}

/// The process's Prometheus recorder, installed on first use. Every gateway
/// in the process shares it, as they share the `metrics` facade.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            // Only refused for an empty list; without buckets histograms become summaries.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics stays empty");
        }
        for &(name, help) in FAMILIES {
            if name.ends_with("_total") {
                metrics::describe_counter!(name, help);
            } else if name.ends_with("_seconds") {
                metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
            } else {
                metrics::describe_gauge!(name, help);
            }
        }
        handle
    })
}
