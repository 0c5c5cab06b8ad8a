//! Throttle policy: which requests share which bucket, and how big the buckets are.
//!
//! A policy is a list of rules; the first rule whose [`EndpointMatch`] matches a
//! request's endpoint template decides its bucket. A request that matches no rule
//! is not throttled. The bucket is keyed by provider, rule, (for
//! [`EndpointMatch::EachEndpoint`]) endpoint, and credential, so two users of one
//! platform never share a budget but one user's concurrent requests always do.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ProviderId;

/// How requests map to token buckets. The default has no rules: nothing is throttled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPolicy")]
pub struct ThrottlePolicy {
    /// Checked in order; the first match wins.
    pub rules: Vec<BucketRule>,
}

/// One token bucket definition (one bucket per credential, or per endpoint and
/// credential with [`EndpointMatch::EachEndpoint`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRule {
    /// Stable name, part of the bucket key (and of the Redis key later).
    pub name: String,
    /// Which endpoint templates this rule covers (default: all).
    #[serde(default)]
    pub endpoints: EndpointMatch,
    /// The platform's burst size in requests.
    pub capacity: u32,
    /// Tokens the platform gives back per second (a rate, not money); must be > 0.
    pub refill_per_second: f64,
    /// Tokens held back from `capacity` (default 1); see [`BucketLimit::burst`].
    #[serde(default = "default_headroom")]
    pub headroom: u32,
}

/// Which endpoint templates (e.g. `/loans/{id}`) a rule covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointMatch {
    /// Every endpoint shares one bucket (Zonky's global leaky bucket).
    #[default]
    All,
    /// Endpoints whose template starts with one of these prefixes share one bucket.
    Prefixes(Vec<String>),
    /// Every distinct endpoint template gets its own bucket (Bondora's per-endpoint limits).
    EachEndpoint,
}

/// The size and speed of one bucket, carried in every [`BucketKey`] so that any
/// [`Throttle`](super::Throttle) implementation (local or shared through Redis)
/// can enforce it without knowing the policy it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketLimit {
    /// The platform's burst size.
    pub capacity: u32,
    /// Tokens held back from `capacity`.
    pub headroom: u32,
    /// Time for one token to come back (1 / refill rate).
    pub replenish_interval: Duration,
}

/// Identifies one token bucket: whose budget a request spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub provider: ProviderId,
    /// The [`BucketRule::name`].
    pub rule: Arc<str>,
    /// The endpoint template; only set for [`EndpointMatch::EachEndpoint`] rules.
    pub endpoint: Option<&'static str>,
    /// A stable id of the credential (a connection id, or `anonymous`), never the secret itself.
    pub credential: Arc<str>,
    pub limit: BucketLimit,
}

/// The credential id used when a request does not name one.
pub const ANONYMOUS: &str = "anonymous";

fn default_headroom() -> u32 {
    1
}

impl BucketLimit {
    /// The burst we allow ourselves: `capacity - headroom`, at least 1.
    ///
    /// Our bucket and the platform's run on different clocks, and a platform that
    /// refills in whole-second ticks can be up to one token behind a continuous
    /// GCRA (ours); network jitter can also bunch requests up on arrival. Holding
    /// `headroom` tokens back from the burst absorbs that without lowering the
    /// steady rate, which stays exactly the platform's.
    pub fn burst(&self) -> u32 {
        self.capacity.saturating_sub(self.headroom).max(1)
    }

    /// The steady rate in requests per second.
    pub fn refill_per_second(&self) -> f64 {
        1.0 / self.replenish_interval.as_secs_f64()
    }
}

impl BucketRule {
    /// The limit this rule puts on each of its buckets.
    ///
    /// Only meaningful for a validated rule (see [`ThrottlePolicy::validate`]).
    pub fn limit(&self) -> BucketLimit {
        let interval = if self.refill_per_second.is_finite() && self.refill_per_second > 0.0 {
            Duration::from_secs_f64(1.0 / self.refill_per_second)
        } else {
            Duration::MAX
        };
        BucketLimit {
            capacity: self.capacity,
            headroom: self.headroom,
            replenish_interval: interval.max(Duration::from_nanos(1)),
        }
    }

    /// Whether this rule covers the endpoint template.
    pub fn matches(&self, endpoint: &str) -> bool {
        match &self.endpoints {
            EndpointMatch::All | EndpointMatch::EachEndpoint => true,
            EndpointMatch::Prefixes(prefixes) => prefixes.iter().any(|p| endpoint.starts_with(p)),
        }
    }

    fn validate(&self, index: usize) -> Result<()> {
        let field = |name: &str| format!("throttle.rules[{index}].{name}");
        if self.name.trim().is_empty() {
            return Err(Error::invalid_input(
                field("name"),
                "a throttle rule needs a name",
            ));
        }
        if self.capacity == 0 {
            return Err(Error::invalid_input(
                field("capacity"),
                format!("throttle rule `{}`: capacity must be at least 1", self.name),
            ));
        }
        // Slower than one token a day is a configuration mistake, not a policy.
        let slowest = 1.0 / 86_400.0;
        if !self.refill_per_second.is_finite() || self.refill_per_second < slowest {
            return Err(Error::invalid_input(
                field("refill_per_second"),
                format!(
                    "throttle rule `{}`: refill_per_second must be a positive number (at least one token a day), got {}",
                    self.name, self.refill_per_second
                ),
            ));
        }
        if let EndpointMatch::Prefixes(prefixes) = &self.endpoints
            && (prefixes.is_empty() || prefixes.iter().any(|p| !p.starts_with('/')))
        {
            return Err(Error::invalid_input(
                field("endpoints"),
                format!(
                    "throttle rule `{}`: prefixes must be a non-empty list of paths starting with `/`",
                    self.name
                ),
            ));
        }
        Ok(())
    }
}

impl ThrottlePolicy {
    /// No rules: nothing is throttled.
    pub fn unlimited() -> Self {
        ThrottlePolicy::default()
    }

    /// Checks every rule; errors name the offending config key.
    pub fn validate(&self) -> Result<()> {
        for (index, rule) in self.rules.iter().enumerate() {
            rule.validate(index)?;
            if self.rules[..index].iter().any(|r| r.name == rule.name) {
                return Err(Error::invalid_input(
                    format!("throttle.rules[{index}].name"),
                    format!("throttle rule name `{}` is used twice", rule.name),
                ));
            }
        }
        Ok(())
    }

    /// The first rule covering the endpoint template, if any.
    pub fn rule_for(&self, endpoint: &str) -> Option<&BucketRule> {
        self.rules.iter().find(|r| r.matches(endpoint))
    }
}

/// A validated policy with rule names pre-shared, so resolving a bucket per
/// request does not allocate for the rule.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedPolicy {
    rules: Vec<(Arc<str>, BucketRule, BucketLimit)>,
}

impl ResolvedPolicy {
    pub(crate) fn new(policy: &ThrottlePolicy) -> Result<Self> {
        policy.validate()?;
        Ok(ResolvedPolicy {
            rules: policy
                .rules
                .iter()
                .map(|r| (Arc::from(r.name.as_str()), r.clone(), r.limit()))
                .collect(),
        })
    }

    pub(crate) fn bucket_for(
        &self,
        provider: &ProviderId,
        endpoint: &'static str,
        credential: &Arc<str>,
    ) -> Option<BucketKey> {
        let (name, rule, limit) = self.rules.iter().find(|(_, r, _)| r.matches(endpoint))?;
        Some(BucketKey {
            provider: provider.clone(),
            rule: name.clone(),
            endpoint: matches!(rule.endpoints, EndpointMatch::EachEndpoint).then_some(endpoint),
            credential: credential.clone(),
            limit: *limit,
        })
    }
}

impl fmt::Display for BucketKey {
    /// `provider/rule[/endpoint]/credential`, for logs and status pages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.rule)?;
        if let Some(endpoint) = self.endpoint {
            write!(f, "{endpoint}")?;
        }
        write!(f, "/{}", self.credential)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    rules: Vec<BucketRule>,
}

impl TryFrom<RawPolicy> for ThrottlePolicy {
    type Error = Error;

    fn try_from(raw: RawPolicy) -> Result<Self> {
        let policy = ThrottlePolicy { rules: raw.rules };
        policy.validate()?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prefix rule ahead of a catch-all, as Zonky's `last-published` budget.
    fn two_budgets() -> ThrottlePolicy {
        serde_json::from_value(serde_json::json!({"rules": [
            {"name": "last-published", "endpoints": {"prefixes": ["/loans/last-published"]},
             "capacity": 1, "refill_per_second": 1.0},
            {"name": "default", "capacity": 500, "refill_per_second": 1.0}
        ]}))
        .unwrap()
    }

    fn zonky() -> ProviderId {
        ProviderId::new("zonky").unwrap()
    }

    #[test]
    fn zonky_policy_puts_last_published_first() {
        let policy = two_budgets();
        policy.validate().unwrap();
        assert_eq!(
            policy.rule_for("/loans/last-published").unwrap().name,
            "last-published"
        );
        assert_eq!(policy.rule_for("/loans/{id}").unwrap().name, "default");
        let default = policy.rule_for("/loans/marketplace").unwrap().limit();
        assert_eq!(default.burst(), 499);
        assert_eq!(default.replenish_interval, Duration::from_secs(1));
        let last = policy.rule_for("/loans/last-published").unwrap().limit();
        assert_eq!(last.burst(), 1, "headroom never takes the burst below 1");
    }

    #[test]
    fn no_rule_means_no_bucket() {
        let resolved = ResolvedPolicy::new(&ThrottlePolicy::default()).unwrap();
        assert!(
            resolved
                .bucket_for(&zonky(), "/loans", &Arc::from(ANONYMOUS))
                .is_none()
        );
    }

    #[test]
    fn each_endpoint_keys_include_the_endpoint() {
        let policy = ThrottlePolicy {
            rules: vec![BucketRule {
                name: "per-endpoint".into(),
                endpoints: EndpointMatch::EachEndpoint,
                capacity: 1,
                refill_per_second: 1.0,
                headroom: 0,
            }],
        };
        let resolved = ResolvedPolicy::new(&policy).unwrap();
        let cred: Arc<str> = Arc::from("conn-1");
        let a = resolved.bucket_for(&zonky(), "/auctions", &cred).unwrap();
        let b = resolved.bucket_for(&zonky(), "/bids", &cred).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.endpoint, Some("/auctions"));
        assert_eq!(a.to_string(), "zonky/per-endpoint/auctions/conn-1");

        let all = ResolvedPolicy::new(&two_budgets()).unwrap();
        let a = all.bucket_for(&zonky(), "/loans/{id}", &cred).unwrap();
        let b = all
            .bucket_for(&zonky(), "/users/me/investments", &cred)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.endpoint, None);
    }

    #[test]
    fn deserializes_and_validates() {
        let policy: ThrottlePolicy = serde_json::from_value(serde_json::json!({
            "rules": [
                {"name": "lp", "endpoints": {"prefixes": ["/loans/last-published"]}, "capacity": 1, "refill_per_second": 1},
                {"name": "each", "endpoints": "each_endpoint", "capacity": 2, "refill_per_second": 0.5, "headroom": 0},
                {"name": "default", "capacity": 500, "refill_per_second": 1}
            ]
        }))
        .unwrap();
        assert_eq!(policy.rules.len(), 3);
        assert_eq!(policy.rules[0].headroom, 1);
        assert_eq!(policy.rules[1].endpoints, EndpointMatch::EachEndpoint);
        assert_eq!(policy.rules[2].endpoints, EndpointMatch::All);
        assert_eq!(
            policy.rules[1].limit().replenish_interval,
            Duration::from_secs(2)
        );

        for (bad, key) in [
            (
                serde_json::json!({"rules": [{"name": "x", "capacity": 1, "refill_per_second": 0}]}),
                "refill_per_second",
            ),
            (
                serde_json::json!({"rules": [{"name": "x", "capacity": 1, "refill_per_second": -1}]}),
                "refill_per_second",
            ),
            (
                serde_json::json!({"rules": [{"name": "x", "capacity": 0, "refill_per_second": 1}]}),
                "capacity",
            ),
            (
                serde_json::json!({"rules": [
                    {"name": "x", "capacity": 1, "refill_per_second": 1},
                    {"name": "x", "capacity": 1, "refill_per_second": 1}
                ]}),
                "name",
            ),
        ] {
            let err = serde_json::from_value::<ThrottlePolicy>(bad).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        let err = ThrottlePolicy {
            rules: vec![BucketRule {
                name: "x".into(),
                endpoints: EndpointMatch::All,
                capacity: 1,
                refill_per_second: f64::NAN,
                headroom: 1,
            }],
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("throttle.rules[0].refill_per_second")
        );
    }
}
