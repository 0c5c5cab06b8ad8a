//! `[cache]` and `[providers.<id>.cache]`: the response cache's bound and how
//! long answers stay fresh (and may stand in, stale, for a failing provider).

use std::collections::HashMap;
use std::time::Duration;

use finmesh_core::ProviderId;
use finmesh_core::cache::{CachePolicy, CacheSettings};
use finmesh_core::registry::Registry;

use super::{Reader, in_range};

/// The keys a provider may override.
pub(super) const POLICY_KEYS: &[&str] = &["ttl_public_ms", "ttl_private_ms", "stale_if_error_ms"];
pub(super) const CACHE_KEYS: &[&str] = &[
    "max_bytes",
    "ttl_public_ms",
    "ttl_private_ms",
    "stale_if_error_ms",
];

/// The longest time to live or stale window: a day.
const MAX_MS: u64 = 86_400_000;
/// The largest bound: 64 GiB.
const MAX_BYTES: u64 = 64 << 30;

impl Reader<'_> {
    /// `[cache]`, with the overrides of every configured provider.
    pub(super) fn cache(&mut self, providers: &Registry) -> CacheSettings {
        let max_bytes =
            self.read_checked("cache.max_bytes", CacheSettings::DEFAULT_MAX_BYTES, |n| {
                in_range(*n, (0, MAX_BYTES))
            });
        let policy = self.policy("cache", &CachePolicy::DEFAULT);
        let mut overrides = HashMap::new();
        for provider in providers.all() {
            let section = format!("providers.{}.cache", provider.id());
            if self.figment.find_value(&section).is_ok() {
                self.unknown_keys(&section, POLICY_KEYS);
                let own = self.policy(&section, &policy);
                overrides.insert(ProviderId::clone(provider.id()), own);
            }
        }
        CacheSettings {
            max_bytes,
            policy,
            providers: overrides,
        }
    }

    /// The policy keys under `section`, each defaulting to `base`'s.
    fn policy(&mut self, section: &str, base: &CachePolicy) -> CachePolicy {
        let mut millis = |key: &str, default: Duration| {
            let default = u64::try_from(default.as_millis()).unwrap_or(MAX_MS);
            self.millis(&format!("{section}.{key}"), default, (0, MAX_MS))
        };
        CachePolicy {
            ttl_public: millis("ttl_public_ms", base.ttl_public),
            ttl_private: millis("ttl_private_ms", base.ttl_private),
            stale_if_error: millis("stale_if_error_ms", base.stale_if_error),
        }
    }
}

#[cfg(test)]
mod tests {
    use figment::Figment;
    use figment::providers::{Format, Toml};

    use super::*;
    use crate::config::{Config, ConfigError};

    fn load(toml: &str) -> Result<Config, ConfigError> {
        Config::from_figment(&Figment::from(Toml::string(toml)), &crate::factories())
    }

    const ZONKY: &str =
        "[providers.zonky]\nkind = \"zonky\"\n[providers.other]\nkind = \"zonky\"\n";

    #[test]
    fn without_a_cache_table_the_defaults_apply() {
        let config = load(ZONKY).unwrap();
        assert_eq!(config.cache, CacheSettings::default());
        assert_eq!(config.cache.max_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn a_provider_overrides_only_the_keys_it_sets() {
        let config = load(&format!(
            "{ZONKY}
            [cache]
            max_bytes = 1048576
            ttl_public_ms = 1000
            stale_if_error_ms = 0
            [providers.zonky.cache]
            ttl_private_ms = 9000
            "
        ))
        .unwrap();
        let cache = &config.cache;
        assert_eq!(cache.max_bytes, 1_048_576);
        let base = CachePolicy {
            ttl_public: Duration::from_secs(1),
            ttl_private: CachePolicy::DEFAULT.ttl_private,
            stale_if_error: Duration::ZERO,
        };
        assert_eq!(cache.policy, base);
        let zonky = ProviderId::new("zonky").unwrap();
        let other = ProviderId::new("other").unwrap();
        assert_eq!(
            cache.policy(&zonky),
            &CachePolicy {
                ttl_private: Duration::from_secs(9),
                ..base
            }
        );
        assert_eq!(cache.policy(&other), &base);
        // The adapter never sees the gateway's own table.
        assert_eq!(config.providers.all().len(), 2);
    }

    #[test]
    fn bad_cache_values_are_reported_with_their_keys() {
        let error = load(&format!(
            "{ZONKY}
            [cache]
            max_bytes = -1
            ttl_public_ms = \"soon\"
            color = 1
            [providers.zonky.cache]
            ttl_private_ms = 100000000
            max_bytes = 5
            "
        ))
        .err()
        .unwrap();
        let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "cache.max_bytes",
            "cache.ttl_public_ms",
            "cache.color",
            "providers.zonky.cache.ttl_private_ms",
            "providers.zonky.cache.max_bytes",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
    }
}
