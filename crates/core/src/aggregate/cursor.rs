//! Opaque cursors that remember each provider's position in one query's order.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::id::ProviderId;

/// Where the next page starts: per provider, how many records of its ordered,
/// filtered stream have been handed out. Bound to the query it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "v")]
    version: u8,
    /// Fingerprint of the query (filter, order, providers); a cursor is only
    /// valid for the query that produced it.
    #[serde(rename = "q")]
    query: String,
    #[serde(rename = "p")]
    positions: BTreeMap<ProviderId, u64>,
}

const VERSION: u8 = 1;

/// A short stable fingerprint of anything with a `Debug` form.
///
/// `Debug` of our query types is deterministic, and SHA-256 keeps it stable
/// across processes and replicas (unlike `std`'s randomly keyed hasher).
pub fn fingerprint(query: &impl std::fmt::Debug) -> String {
    let digest = Sha256::digest(format!("{query:?}").as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl Cursor {
    pub fn start(query: String) -> Self {
        Cursor {
            version: VERSION,
            query,
            positions: BTreeMap::new(),
        }
    }

    pub fn position(&self, provider: &ProviderId) -> u64 {
        self.positions.get(provider).copied().unwrap_or(0)
    }

    pub fn set_position(&mut self, provider: &ProviderId, position: u64) {
        self.positions.insert(provider.clone(), position);
    }

    pub fn encode(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a cursor a caller sent back and checks it belongs to `query`.
    pub fn decode(raw: &str, query: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::invalid_input("after", format!("invalid cursor: {why}"));
        if raw.len() > 4096 {
            return Err(invalid("too long"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| invalid("not a cursor this gateway issued"))?;
        let cursor: Cursor = serde_json::from_slice(&bytes)
            .map_err(|_| invalid("not a cursor this gateway issued"))?;
        if cursor.version != VERSION {
            return Err(invalid("issued by an incompatible gateway version"));
        }
        if cursor.query != query {
            return Err(invalid(
                "it belongs to a different query (filter, order or providers changed)",
            ));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_bound_to_their_query() {
        let zonky = ProviderId::new("zonky").unwrap();
        let mut cursor = Cursor::start(fingerprint(&("filter", 1)));
        cursor.set_position(&zonky, 120);
        let encoded = cursor.encode();
        let decoded = Cursor::decode(&encoded, &fingerprint(&("filter", 1))).unwrap();
        assert_eq!(decoded.position(&zonky), 120);

        let err = Cursor::decode(&encoded, &fingerprint(&("filter", 2))).unwrap_err();
        assert_eq!(err.code(), "INVALID_INPUT");
        assert_eq!(err.field.as_deref(), Some("after"));
    }

    #[test]
    fn garbage_is_refused() {
        for raw in ["", "!!!", "eyJ2Ijo5fQ", "bm90IGpzb24", &"A".repeat(5000)] {
            assert!(Cursor::decode(raw, "x").is_err(), "{raw}");
        }
    }
}
