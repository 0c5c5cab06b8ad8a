//! Request signing, as the document asks: every request carries
//! `Authorization: Bearer <JWT>`, the JWT signed RS256 with the partner's
//! private key, its header exactly `{"alg":"RS256"}` and its payload
//! `{"api_token": "...", "timestamp": "<unix seconds as a string>"}`.
//!
//! Bongloy checks the timestamp against its own clock, so a token is made for
//! every attempt of every request, right before it goes out (see
//! `UpstreamRequest::bearer_per_attempt`): never cached, never reused.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use finmesh_core::{Error, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// Where the adapter reads the time it puts in its tokens. The system clock
/// unless replaced (tests; a host whose clock cannot be fixed).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// Unix seconds of `time` (0 before the epoch).
pub fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One partner credential: its API token and RSA private key. Neither ever
/// shows in `Debug` output, logs or errors.
pub struct RequestSigner {
    api_token: SecretString,
    key: EncodingKey,
}

impl fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestSigner")
            .field("api_token", &"[redacted]")
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// The payload: exactly the two members the document names, the timestamp a
/// string of decimal digits.
#[derive(Serialize)]
struct Claims<'a> {
    api_token: &'a str,
    timestamp: String,
}

/// Why a key cannot sign. Says what is wrong with the key, never what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl RequestSigner {
    /// A signer from the partner's API token and its RSA private key in PEM:
    /// PKCS#8 (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey` writes)
    /// or PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`). Encrypted PEM is not
    /// read. The key signs once here, so a key that cannot sign is refused when
    /// the gateway starts, not on a user's first transfer.
    pub fn new(api_token: SecretString, private_key_pem: &SecretString) -> Result<Self, KeyError> {
        if api_token.expose_secret().trim().is_empty() {
            return Err(KeyError("the api token is empty".to_string()));
        }
        let pem = private_key_pem.expose_secret().trim();
        if pem.contains("ENCRYPTED") {
            return Err(KeyError(
                "the private key is encrypted; give it unencrypted (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`)"
                    .to_string(),
            ));
        }
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
            KeyError(
                "not an RSA private key in PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`)"
                    .to_string(),
            )
        })?;
        let signer = RequestSigner { api_token, key };
        signer.sign_at(0).map_err(|_| {
            KeyError(
                "the RSA private key cannot sign RS256 (RSA keys of 2048 to 8192 bits are usable)"
                    .to_string(),
            )
        })?;
        Ok(signer)
    }

    /// A token stamped with `timestamp` (Unix seconds).
    pub fn sign_at(&self, timestamp: i64) -> Result<String> {
        // `typ` would be `JWT` by default: the document's header has `alg` only.
        let header = Header {
            typ: None,
            ..Header::new(Algorithm::RS256)
        };
        let claims = Claims {
            api_token: self.api_token.expose_secret(),
            timestamp: timestamp.to_string(),
        };
        // jsonwebtoken's errors say what failed, not what was signed; still,
        // only the kind is kept.
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            Error::internal(format!(
                "signing the Bongloy request token failed ({:?})",
                e.kind()
            ))
        })
    }

    /// A token stamped with the time `clock` says now.
    pub fn sign_now(&self, clock: &Clock) -> Result<String> {
        self.sign_at(unix_seconds(clock()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    const PKCS8: &str = finmesh_sandbox::bongloy::test_keys::PARTNER_PRIVATE_KEY_PEM;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    fn part(token: &str, index: usize) -> serde_json::Value {
        let raw = token.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap()
    }

    /// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 PEM, as PKCS#1 PEM.
    fn pkcs1_from_pkcs8(pem: &str) -> String {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).unwrap();
        // SEQUENCE { INTEGER 0, AlgorithmIdentifier (rsaEncryption, NULL), OCTET STRING {...} }:
        // for a 2048-bit key the octet string's content starts at byte 26.
        assert_eq!(&der[22..24], &[0x04, 0x82]);
        let inner = STANDARD.encode(&der[26..]);
        let lines: Vec<&str> = inner
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn pkcs1_and_pkcs8_sign_alike() {
        let pkcs8 = RequestSigner::new(secret("tok"), &secret(PKCS8)).unwrap();
        let pkcs1 = RequestSigner::new(secret("tok"), &secret(&pkcs1_from_pkcs8(PKCS8))).unwrap();
        // RSASSA-PKCS1-v1_5 is deterministic: one key, one payload, one signature.
        assert_eq!(pkcs8.sign_at(7).unwrap(), pkcs1.sign_at(7).unwrap());
    }

    #[test]
    fn tokens_have_the_documented_header_and_payload() {
        let signer = RequestSigner::new(secret("tok"), &secret(PKCS8)).unwrap();
        let token = signer.sign_at(1_581_510_124).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(part(&token, 0), serde_json::json!({"alg": "RS256"}));
        assert_eq!(
            part(&token, 1),
            serde_json::json!({"api_token": "tok", "timestamp": "1581510124"})
        );
        // The header is byte for byte the document's.
        assert_eq!(token.split('.').next().unwrap(), "eyJhbGciOiJSUzI1NiJ9");
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in [
            "",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            finmesh_sandbox::bongloy::test_keys::PARTNER_PUBLIC_KEY_PEM,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ] {
            let err = RequestSigner::new(secret("tok"), &secret(bad)).unwrap_err();
            assert!(!err.to_string().contains("AAAA"), "{err}");
            assert!(!err.to_string().contains("MII"), "{err}");
        }
        assert!(RequestSigner::new(secret(" "), &secret(PKCS8)).is_err());
    }

    #[test]
    fn debug_hides_the_secrets() {
        let signer = RequestSigner::new(secret("s3cr3t-token"), &secret(PKCS8)).unwrap();
        let debug = format!("{signer:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(!debug.contains("MII"), "{debug}");
    }
}
