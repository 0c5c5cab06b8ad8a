//! `[throttle]` (where platform budgets are kept), `[resilience]` (retries,
//! circuit breakers, the deadline margin) and the inbound rate limit of
//! `[server]`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use finmesh_core::resilience::{BreakerSettings, Resilience, ResilienceSettings, RetrySettings};
use finmesh_core::upstream::{LocalThrottle, Throttle};
use finmesh_throttle_redis::{RedisThrottle, RedisThrottleSettings};

use super::{Reader, in_range};

pub(super) const THROTTLE_KEYS: &[&str] = &[
    "backend",
    "redis_url",
    "replicas",
    "redis_timeout_ms",
    "redis_key_prefix",
];
pub(super) const RESILIENCE_KEYS: &[&str] = &[
    "retry_max_attempts",
    "retry_base_delay_ms",
    "retry_max_delay_ms",
    "breaker_failure_threshold",
    "breaker_window_ms",
    "breaker_open_ms",
    "min_request_time_ms",
];

/// `[server] rate_limit_per_second` and `rate_limit_burst`: what each caller
/// may send to `/graphql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

const REDIS_TIMEOUT_MS: u64 = 250;
const REDIS_KEY_PREFIX: &str = "finmesh";

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Reader<'_> {
    /// The throttle every provider spends from: in this process, or shared
    /// through Redis by every replica (`max_wait`: the request timeout).
    pub(super) fn throttle(&mut self, max_wait: Duration) -> Arc<dyn Throttle> {
        let local = || -> Arc<dyn Throttle> { Arc::new(LocalThrottle::new()) };
        let backend = self.read_checked("throttle.backend", "local".to_string(), |b| {
            match b.as_str() {
                "local" | "redis" => Ok(()),
                _ => Err(format!(
                    "`{b}` is not a backend; expected \"local\" or \"redis\""
                )),
            }
        });
        let url: Option<String> = self.read("throttle.redis_url", None);
        let replicas = self.read_checked("throttle.replicas", 1u32, |n| in_range(*n, (1, 1000)));
        let timeout = self.millis("throttle.redis_timeout_ms", REDIS_TIMEOUT_MS, (1, 60_000));
        let key_prefix = self.read_checked(
            "throttle.redis_key_prefix",
            REDIS_KEY_PREFIX.to_string(),
            |p| {
                let fine = !p.is_empty()
                    && p.len() <= 64
                    && p.chars().all(|c| c.is_ascii_graphic() && !"{}".contains(c));
                if fine {
                    Ok(())
                } else {
                    Err("1-64 visible ASCII characters, no braces".into())
                }
            },
        );
        if backend != "redis" {
            return local();
        }
        let Some(url) = url else {
            self.problem(
                "throttle.redis_url",
                "required with throttle.backend = \"redis\" (e.g. redis://127.0.0.1:6379)",
            );
            return local();
        };
        let settings = RedisThrottleSettings {
            replicas,
            timeout,
            max_wait,
            key_prefix,
        };
        match RedisThrottle::new(&url, settings) {
            Ok(throttle) => Arc::new(throttle),
            Err(error) => {
                let field = error.field.as_deref().unwrap_or("redis_url");
                self.problem(format!("throttle.{field}"), error.message);
                local()
            }
        }
    }

    /// `[resilience]`; the defaults are core's.
    pub(super) fn resilience(&mut self) -> Resilience {
        let defaults = ResilienceSettings::default();
        let retry_base_delay = self.millis(
            "resilience.retry_base_delay_ms",
            millis(defaults.retry.base_delay),
            (1, 60_000),
        );
        let retry = RetrySettings {
            max_attempts: self.read_checked(
                "resilience.retry_max_attempts",
                defaults.retry.max_attempts,
                |n| in_range(*n, (1, 10)),
            ),
            base_delay: retry_base_delay,
            max_delay: self.millis(
                "resilience.retry_max_delay_ms",
                millis(defaults.retry.max_delay.max(retry_base_delay)),
                (millis(retry_base_delay), 60_000),
            ),
        };
        let breaker = BreakerSettings {
            failure_threshold: self.read_checked(
                "resilience.breaker_failure_threshold",
                defaults.breaker.failure_threshold,
                |n| in_range(*n, (1, 10_000)),
            ),
            window: self.millis(
                "resilience.breaker_window_ms",
                millis(defaults.breaker.window),
                (1, 3_600_000),
            ),
            open_for: self.millis(
                "resilience.breaker_open_ms",
                millis(defaults.breaker.open_for),
                (1, 3_600_000),
            ),
        };
        Resilience::new(ResilienceSettings {
            retry,
            breaker,
            min_request_time: self.millis(
                "resilience.min_request_time_ms",
                millis(defaults.min_request_time),
                (0, 60_000),
            ),
        })
    }

    /// `server.rate_limit_per_second` (0, the default: no limit) and
    /// `server.rate_limit_burst` (default: the rate).
    pub(super) fn rate_limit(&mut self) -> Option<RateLimit> {
        let per_second = self.read_checked("server.rate_limit_per_second", 0u32, |n| {
            in_range(*n, (0, 1_000_000))
        });
        let burst: Option<u32> = self.read("server.rate_limit_burst", None);
        let per_second = NonZeroU32::new(per_second);
        let burst = match (burst, per_second) {
            (Some(burst), _) => match NonZeroU32::new(burst).filter(|b| b.get() <= 1_000_000) {
                Some(burst) => Some(burst),
                None => {
                    self.problem(
                        "server.rate_limit_burst",
                        format!("{burst} is out of range; expected 1 to 1000000"),
                    );
                    None
                }
            },
            (None, rate) => rate,
        };
        Some(RateLimit {
            per_second: per_second?,
            burst: burst?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use figment::Figment;
    use figment::providers::{Format, Toml};
    use finmesh_core::resilience::ResilienceSettings;
    use finmesh_core::upstream::ThrottleBackend;

    use crate::config::{Config, ConfigError};

    fn load(toml: &str) -> Result<Config, ConfigError> {
        Config::from_figment(&Figment::from(Toml::string(toml)), &crate::factories())
    }

    #[test]
    fn by_default_the_throttle_is_local_and_nobody_is_shed_as_the_example_says() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../finmesh.example.toml");
        let example = Figment::from(Toml::file_exact(path));
        for config in [
            load("").unwrap(),
            Config::from_figment(&example, &crate::factories()).unwrap(),
        ] {
            assert_eq!(config.throttle.backend(), ThrottleBackend::Local);
            assert_eq!(config.resilience.settings(), &ResilienceSettings::default());
            assert_eq!(config.server.rate_limit, None);
        }
    }

    #[test]
    fn redis_resilience_and_rate_limit_settings_are_read() {
        let config = load(
            r#"
            [server]
            rate_limit_per_second = 5

            [throttle]
            backend = "redis"
            redis_url = "redis://:pa55word@127.0.0.1:6379/2"
            replicas = 3

            [resilience]
            retry_max_attempts = 1
            breaker_failure_threshold = 10
            breaker_open_ms = 2000
            min_request_time_ms = 0
            "#,
        )
        .unwrap();
        assert_eq!(config.throttle.backend(), ThrottleBackend::Redis);
        assert!(!format!("{:?}", config.throttle.snapshot()).contains("pa55word"));
        let settings = config.resilience.settings();
        assert_eq!(settings.retry.max_attempts, 1);
        assert_eq!(settings.breaker.failure_threshold, 10);
        assert_eq!(settings.breaker.open_for, Duration::from_secs(2));
        assert_eq!(settings.breaker.window, Duration::from_secs(30));
        assert_eq!(settings.min_request_time, Duration::ZERO);
        let limit = config.server.rate_limit.unwrap();
        assert_eq!((limit.per_second.get(), limit.burst.get()), (5, 5));
    }

    #[test]
    fn bad_values_name_their_keys_and_never_echo_a_password() {
        let error = load(
            r#"
            [server]
            rate_limit_per_second = 2
            rate_limit_burst = 0

            [throttle]
            backend = "redis"
            redis_url = "http://:pa55word@example.com"
            replicas = 0
            redis_timeout_ms = 0
            redis_key_prefix = "a{b}"
            shards = 2

            [resilience]
            retry_max_attempts = 0
            retry_base_delay_ms = 500
            retry_max_delay_ms = 100
            breaker_failure_threshold = 0
            "#,
        )
        .map(drop)
        .unwrap_err();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "server.rate_limit_burst",
            "throttle.redis_url",
            "throttle.replicas",
            "throttle.redis_timeout_ms",
            "throttle.redis_key_prefix",
            "throttle.shards",
            "resilience.retry_max_attempts",
            "resilience.retry_max_delay_ms",
            "resilience.breaker_failure_threshold",
        ] {
            assert!(keys.contains(&key), "{key} missing from:\n{error}");
        }
        assert!(!error.to_string().contains("pa55word"), "{error}");

        let error = load("[throttle]\nbackend = \"memcached\"\n")
            .map(drop)
            .unwrap_err();
        assert_eq!(error.problems[0].key, "throttle.backend");
        let error = load("[throttle]\nbackend = \"redis\"\n")
            .map(drop)
            .unwrap_err();
        assert_eq!(error.problems[0].key, "throttle.redis_url");
    }
}
