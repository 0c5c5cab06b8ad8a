//! Identifiers: provider instance ids and global entity ids (`zonky:loan:123`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The name of a configured provider instance, e.g. `zonky` or `bondora-eu`.
///
/// Lowercase ASCII letters, digits, `-` and `_`, so it can stand in a global id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ProviderId(Arc<str>);

impl ProviderId {
    pub fn new(id: &str) -> Result<Self, Error> {
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(ProviderId(Arc::from(id)))
        } else {
            Err(Error::invalid_input(
                "provider",
                format!(
                    "invalid provider id {id:?}: use 1-64 lowercase letters, digits, `-` or `_`"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl<'de> Deserialize<'de> for ProviderId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        ProviderId::new(&raw).map_err(serde::de::Error::custom)
    }
}

/// What kind of record a global id points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    Loan,
    Investment,
    Offer,
    Transfer,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Loan => "loan",
            EntityKind::Investment => "investment",
            EntityKind::Offer => "offer",
            EntityKind::Transfer => "transfer",
        }
    }
}

impl FromStr for EntityKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "loan" => Ok(EntityKind::Loan),
            "investment" => Ok(EntityKind::Investment),
            "offer" => Ok(EntityKind::Offer),
            "transfer" => Ok(EntityKind::Transfer),
            other => Err(Error::invalid_input(
                "id",
                format!("unknown entity kind {other:?} in id"),
            )),
        }
    }
}

/// A provider-neutral id: `{provider}:{kind}:{native id}`.
///
/// The native part is kept verbatim (it may be a number or a UUID); it decodes
/// back to the provider and the id that platform understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GlobalId {
    provider: ProviderId,
    kind: EntityKind,
    native: Arc<str>,
}

impl GlobalId {
    pub fn new(provider: ProviderId, kind: EntityKind, native: impl Into<Arc<str>>) -> Self {
        GlobalId {
            provider,
            kind,
            native: native.into(),
        }
    }

    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    pub fn native(&self) -> &str {
        &self.native
    }

    /// Parses an id and checks it names the expected kind of record.
    pub fn parse_as(raw: &str, expected: EntityKind) -> Result<Self, Error> {
        let id: GlobalId = raw.parse()?;
        if id.kind != expected {
            return Err(Error::invalid_input(
                "id",
                format!(
                    "id {raw:?} is a {} id, expected a {} id",
                    id.kind.as_str(),
                    expected.as_str()
                ),
            ));
        }
        Ok(id)
    }
}

impl fmt::Display for GlobalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.provider,
            self.kind.as_str(),
            self.native
        )
    }
}

impl FromStr for GlobalId {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self, Error> {
        let malformed = || {
            Error::invalid_input(
                "id",
                format!("malformed id {raw:?}: expected `provider:kind:native-id`"),
            )
        };
        let mut parts = raw.splitn(3, ':');
        let (Some(provider), Some(kind), Some(native)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let native_ok = !native.is_empty()
            && native.len() <= 128
            && native
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !native_ok {
            return Err(malformed());
        }
        Ok(GlobalId {
            provider: ProviderId::new(provider).map_err(|_| malformed())?,
            kind: kind.parse()?,
            native: Arc::from(native),
        })
    }
}

impl Serialize for GlobalId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GlobalId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip() {
        let id: GlobalId = "zonky:loan:123".parse().unwrap();
        assert_eq!(id.provider().as_str(), "zonky");
        assert_eq!(id.kind(), EntityKind::Loan);
        assert_eq!(id.native(), "123");
        assert_eq!(id.to_string(), "zonky:loan:123");

        let uuid = "bondora:loan:6832dee6-92a3-4d9b-af03-5c53fed0c41d";
        assert_eq!(uuid.parse::<GlobalId>().unwrap().to_string(), uuid);
    }

    #[test]
    fn malformed_ids_are_invalid_input() {
        for raw in [
            "",
            "zonky",
            "zonky:loan",
            "zonky:loan:",
            "Zonky:loan:1",
            "zonky:cat:1",
            "zonky:loan:1:2",
            "zonky:loan:1 OR 1=1",
            "zonky:loan:../../etc",
        ] {
            let err = raw.parse::<GlobalId>().unwrap_err();
            assert_eq!(err.code(), "INVALID_INPUT", "{raw}");
            assert_eq!(err.field.as_deref(), Some("id"));
        }
    }

    #[test]
    fn parse_as_checks_the_kind() {
        let err = GlobalId::parse_as("zonky:transfer:1", EntityKind::Loan).unwrap_err();
        assert!(err.message.contains("expected a loan id"));
    }
}
