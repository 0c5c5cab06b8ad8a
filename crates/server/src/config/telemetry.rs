//! `[log]` and `[otlp]`: how the gateway logs and where it sends traces.

use std::time::Duration;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;
use url::Url;

use super::Reader;

pub(super) const LOG_KEYS: &[&str] = &["format", "level"];
pub(super) const OTLP_KEYS: &[&str] = &[
    "enabled",
    "endpoint",
    "service_name",
    "timeout_ms",
    "sample_ratio",
];

/// `[log]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter (`info`, `finmesh_core=debug,info`); `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, with the fields of its spans (request id included).
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_string(),
        }
    }
}

/// `[otlp]`: OpenTelemetry trace export over OTLP/HTTP (protobuf).
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    pub enabled: bool,
    /// The collector's traces URL, e.g. `http://otel-collector:4318/v1/traces`.
    pub endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Timeout of one export request.
    pub timeout: Duration,
    /// The share of traces exported, 0.0 to 1.0 (parent-based).
    pub sample_ratio: f64,
}

mod defaults {
    pub const OTLP_ENDPOINT: &str = "http://127.0.0.1:4318/v1/traces";
    pub const SERVICE_NAME: &str = "finmesh";
    pub const TIMEOUT_MS: u64 = 10_000;
    pub const SAMPLE_RATIO: f64 = 1.0;
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            enabled: false,
            endpoint: defaults::OTLP_ENDPOINT.to_string(),
            service_name: defaults::SERVICE_NAME.to_string(),
            timeout: Duration::from_millis(defaults::TIMEOUT_MS),
            sample_ratio: defaults::SAMPLE_RATIO,
        }
    }
}

impl Reader<'_> {
    pub(super) fn log(&mut self) -> LogConfig {
        let default = LogConfig::default();
        LogConfig {
            format: self.read("log.format", default.format),
            level: self.read_checked("log.level", default.level, |level| {
                EnvFilter::try_new(level)
                    .map(drop)
                    .map_err(|e| format!("not a log filter: {e}"))
            }),
        }
    }

    pub(super) fn otlp(&mut self) -> OtlpConfig {
        let default = OtlpConfig::default();
        let enabled = self.read("otlp.enabled", default.enabled);
        if enabled && !cfg!(feature = "otlp") {
            self.problem(
                "otlp.enabled",
                "this finmesh was built without trace export (cargo feature `otlp`)",
            );
        }
        OtlpConfig {
            enabled,
            endpoint: self.read_checked("otlp.endpoint", default.endpoint, |s| {
                match Url::parse(s) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
                    Ok(_) => Err("must be an http or https URL".into()),
                    Err(error) => Err(error.to_string()),
                }
            }),
            service_name: self.read_checked("otlp.service_name", default.service_name, |name| {
                if name.trim().is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(())
                }
            }),
            timeout: self.millis("otlp.timeout_ms", defaults::TIMEOUT_MS, (1, 300_000)),
            sample_ratio: self.read_checked("otlp.sample_ratio", default.sample_ratio, |ratio| {
                if (0.0..=1.0).contains(ratio) {
                    Ok(())
                } else {
                    Err(format!("{ratio} is out of range; expected 0.0 to 1.0"))
                }
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use crate::config::Config;

    #[test]
    fn bad_log_and_otlp_values_name_their_keys() {
        let figment = Figment::from(Toml::string(
            r#"
            [log]
            format = "xml"
            level = "info,=["
            colour = true

            [otlp]
            endpoint = "ftp://collector"
            service_name = " "
            timeout_ms = 0
            sample_ratio = 1.5
            "#,
        ));
        let error = Config::from_figment(&figment, &crate::factories())
            .map(drop)
            .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "log.format",
            "log.level",
            "log.colour",
            "otlp.endpoint",
            "otlp.service_name",
            "otlp.timeout_ms",
            "otlp.sample_ratio",
        ] {
            assert!(keys.contains(&key), "{key} missing from:\n{error}");
        }
    }

    #[test]
    fn json_logs_and_trace_export_are_read() {
        let figment = Figment::from(Toml::string(
            r#"
            [log]
            format = "json"
            level = "finmesh_core=debug,info"
            [otlp]
            enabled = true
            endpoint = "http://collector:4318/v1/traces"
            sample_ratio = 0.25
            "#,
        ));
        let config = Config::from_figment(&figment, &crate::factories()).unwrap();
        assert_eq!(config.log.format, super::LogFormat::Json);
        assert_eq!(config.log.level, "finmesh_core=debug,info");
        assert!(config.otlp.enabled);
        assert_eq!(config.otlp.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(config.otlp.sample_ratio, 0.25);
    }
}
