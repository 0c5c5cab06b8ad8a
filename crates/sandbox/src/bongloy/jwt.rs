//! Bongloy's request signing, verified independently of the `jsonwebtoken`
//! crate the gateway signs with: the compact JWS is split and decoded here, and
//! the RSASSA-PKCS1-v1_5 / SHA-256 signature is checked with the RustCrypto
//! `rsa` crate. (`rsa` 0.9's timing advisory, RUSTSEC-2023-0071, concerns
//! private-key operations; verifying uses only the public key.)
//!
//! The document: the header is `{"alg":"RS256"}`, the payload
//! `{"api_token": "...", "timestamp": "1581510124"}`, the timestamp being "the
//! current unix timestamp (as a string)".

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rsa::{
    Pkcs1v15Sign, RsaPublicKey, pkcs1::DecodeRsaPublicKey, pkcs8::DecodePublicKey,
    traits::PublicKeyParts,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// How far a token's timestamp may be from the verifier's clock, either way,
/// unless configured otherwise.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 60;

/// Shorter RSA keys are refused when read.
pub const MIN_KEY_BITS: usize = 2048;

/// A partner's RSA public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(RsaPublicKey);

/// Why a PEM is not a usable public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl PublicKey {
    /// Reads an RSA public key from PEM: SPKI (`-----BEGIN PUBLIC KEY-----`,
    /// what `openssl rsa -pubout` writes) or PKCS#1 (`-----BEGIN RSA PUBLIC
    /// KEY-----`). Keys under [`MIN_KEY_BITS`] are refused; `rsa` itself refuses
    /// keys over 4096 bits.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = pem.trim();
        let key = if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
            RsaPublicKey::from_pkcs1_pem(pem).map_err(|error| error.to_string())
        } else {
            RsaPublicKey::from_public_key_pem(pem).map_err(|error| error.to_string())
        }
        .map_err(|error| {
            KeyError(format!(
                "not an RSA public key in PEM (SPKI \"PUBLIC KEY\" or PKCS#1 \"RSA PUBLIC KEY\"): {error}"
            ))
        })?;
        let bits = key.size() * 8;
        if bits < MIN_KEY_BITS {
            return Err(KeyError(format!(
                "the RSA key has {bits} bits; at least {MIN_KEY_BITS} are required"
            )));
        }
        Ok(Self(key))
    }

    fn verifies(&self, digest: &[u8], signature: &[u8]) -> bool {
        self.0
            .verify(Pkcs1v15Sign::new::<Sha256>(), digest, signature)
            .is_ok()
    }
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub api_token: String,
    /// Unix seconds, read from the payload's string.
    pub timestamp: i64,
}

/// Why a token is refused. The simulator answers each with 401 and the
/// problem's text as `detail`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtProblem {
    /// No `Authorization: Bearer <token>` header.
    Missing,
    /// Not three base64url parts, a part that does not decode, or a header or
    /// payload that is not a JSON object.
    Malformed(String),
    /// The header's `alg` is not `RS256` (`none`, `HS256`, ...); holds the alg.
    Algorithm(String),
    /// The header is not exactly `{"alg":"RS256"}` (holds why).
    Header(String),
    /// No configured key verifies the signature.
    Signature,
    /// The payload lacks a string `api_token` or a string `timestamp` of digits.
    Claims(String),
    /// No partner has this `api_token`.
    UnknownApiToken,
    /// The timestamp is more than the allowed skew in the past.
    Stale { age_secs: i64 },
    /// The timestamp is more than the allowed skew in the future.
    FromTheFuture { ahead_secs: i64 },
}

impl fmt::Display for JwtProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("send Authorization: Bearer <JWT signed RS256>"),
            Self::Malformed(why) => write!(f, "malformed JWT: {why}"),
            Self::Algorithm(alg) => write!(f, "the JWT must be signed RS256, not {alg:?}"),
            Self::Header(why) => write!(f, "the JWT header must be {{\"alg\":\"RS256\"}}: {why}"),
            Self::Signature => {
                f.write_str("the JWT signature does not verify with the partner's public key")
            }
            Self::Claims(why) => write!(f, "the JWT payload is not as required: {why}"),
            Self::UnknownApiToken => f.write_str("unknown api_token"),
            Self::Stale { age_secs } => write!(f, "the JWT timestamp is {age_secs} s old, too old"),
            Self::FromTheFuture { ahead_secs } => {
                write!(f, "the JWT timestamp is {ahead_secs} s in the future")
            }
        }
    }
}

impl std::error::Error for JwtProblem {}

/// How strictly to verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JwtRules {
    /// The largest distance, either way, between the token's timestamp and now.
    pub max_skew_secs: u64,
    /// Refuse any header member beside `alg` (`typ`, `kid`, ...), as the
    /// document shows the header "exactly". When off, other members are
    /// allowed, except `crit` (no extension is understood).
    pub exact_header: bool,
}

impl Default for JwtRules {
    fn default() -> Self {
        Self {
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
            exact_header: true,
        }
    }
}

/// Verifies a compact JWS the way the Bongloy simulator does, with the default
/// [`JwtRules`]: the header exactly `{"alg":"RS256"}` (key order and spacing
/// free), an RSASSA-PKCS1-v1_5 SHA-256 signature that one of `keys` verifies,
/// and a payload with a string `api_token` and a string `timestamp` within
/// [`DEFAULT_MAX_SKEW_SECS`] of `now` (Unix seconds). Other payload members are
/// allowed (the document says the payload "must include" the two).
pub fn verify_jwt(token: &str, keys: &[PublicKey], now: i64) -> Result<Claims, JwtProblem> {
    verify_jwt_with(token, keys, now, JwtRules::default())
}

/// [`verify_jwt`] with other rules.
pub fn verify_jwt_with(
    token: &str,
    keys: &[PublicKey],
    now: i64,
    rules: JwtRules,
) -> Result<Claims, JwtProblem> {
    let (header, payload, signature) = split(token)?;

    let header_json = decode_object(header, "header")?;
    match header_json.get("alg") {
        Some(Value::String(alg)) if alg == "RS256" => {}
        Some(Value::String(alg)) => return Err(JwtProblem::Algorithm(alg.clone())),
        Some(other) => return Err(JwtProblem::Algorithm(other.to_string())),
        None => return Err(JwtProblem::Header("it has no alg".to_owned())),
    }
    let others: Vec<&str> = header_json
        .keys()
        .map(String::as_str)
        .filter(|name| *name != "alg")
        .collect();
    if rules.exact_header && !others.is_empty() {
        return Err(JwtProblem::Header(format!(
            "it also has {}",
            others.join(", ")
        )));
    }
    if others.contains(&"crit") {
        return Err(JwtProblem::Header(
            "crit extensions are not understood".to_owned(),
        ));
    }

    // The signature covers the two first parts exactly as sent.
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|error| JwtProblem::Malformed(format!("signature: {error}")))?;
    let digest = Sha256::new()
        .chain_update(header.as_bytes())
        .chain_update(b".")
        .chain_update(payload.as_bytes())
        .finalize();
    if !keys.iter().any(|key| key.verifies(&digest, &signature)) {
        return Err(JwtProblem::Signature);
    }

    let claims = read_claims(&decode_object(payload, "payload")?)?;
    let age = now.saturating_sub(claims.timestamp);
    let max_skew = i64::try_from(rules.max_skew_secs).unwrap_or(i64::MAX);
    if age > max_skew {
        return Err(JwtProblem::Stale { age_secs: age });
    }
    if age < max_skew.saturating_neg() {
        return Err(JwtProblem::FromTheFuture {
            ahead_secs: age.saturating_neg(),
        });
    }
    Ok(claims)
}

/// The payload's `api_token`, before any verification: which partner's keys
/// to verify against.
pub(crate) fn unverified_api_token(token: &str) -> Option<String> {
    let (_, payload, _) = split(token).ok()?;
    match decode_object(payload, "payload")
        .ok()?
        .remove("api_token")?
    {
        Value::String(api_token) => Some(api_token),
        _ => None,
    }
}

fn split(token: &str) -> Result<(&str, &str, &str), JwtProblem> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(JwtProblem::Malformed(
            "a compact JWS has three parts separated by dots".to_owned(),
        )),
    }
}

/// Base64url without padding, then a JSON object.
fn decode_object(part: &str, name: &str) -> Result<Map<String, Value>, JwtProblem> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|error| JwtProblem::Malformed(format!("{name}: {error}")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(object)) => Ok(object),
        _ => Err(JwtProblem::Malformed(format!(
            "the {name} is not a JSON object"
        ))),
    }
}

fn read_claims(payload: &Map<String, Value>) -> Result<Claims, JwtProblem> {
    let api_token = match payload.get("api_token") {
        Some(Value::String(token)) if !token.is_empty() => token.clone(),
        Some(_) => {
            return Err(JwtProblem::Claims(
                "api_token must be a non-empty string".to_owned(),
            ));
        }
        None => return Err(JwtProblem::Claims("api_token is missing".to_owned())),
    };
    // The document: "The current unix timestamp (as a string)". A JSON number is
    // refused (401) rather than accepted, so a client sending one finds out here
    // and not against the real platform.
    let timestamp = match payload.get("timestamp") {
        Some(Value::String(text))
            if !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit()) =>
        {
            text.parse::<i64>()
                .map_err(|error| JwtProblem::Claims(format!("timestamp: {error}")))?
        }
        Some(Value::String(text)) => {
            return Err(JwtProblem::Claims(format!(
                "timestamp must be Unix seconds in decimal digits, got {text:?}"
            )));
        }
        Some(Value::Number(number)) => {
            return Err(JwtProblem::Claims(format!(
                "timestamp must be a string, got the number {number}"
            )));
        }
        Some(other) => {
            return Err(JwtProblem::Claims(format!(
                "timestamp must be a string, got {other}"
            )));
        }
        None => return Err(JwtProblem::Claims("timestamp is missing".to_owned())),
    };
    Ok(Claims {
        api_token,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bongloy::test_keys;

    #[test]
    fn reads_both_pem_forms_and_refuses_garbage() {
        let spki = PublicKey::from_pem(test_keys::PARTNER_PUBLIC_KEY_PEM).unwrap();
        let pkcs1 = PublicKey::from_pem(test_keys::PARTNER_PUBLIC_KEY_PKCS1_PEM).unwrap();
        assert_eq!(spki, pkcs1);
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
        assert!(PublicKey::from_pem(test_keys::PARTNER_PRIVATE_KEY_PEM).is_err());
    }

    #[test]
    fn structure_is_checked_before_the_signature() {
        let keys = [PublicKey::from_pem(test_keys::PARTNER_PUBLIC_KEY_PEM).unwrap()];
        assert!(matches!(
            verify_jwt("a.b", &keys, 0),
            Err(JwtProblem::Malformed(_))
        ));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"api_token":"t","timestamp":"0"}"#)
        );
        assert_eq!(
            verify_jwt(&none, &keys, 0),
            Err(JwtProblem::Algorithm("none".to_owned()))
        );
        let typ = format!(
            "{}.{}.AAAA",
            URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"api_token":"t","timestamp":"0"}"#)
        );
        assert!(matches!(
            verify_jwt(&typ, &keys, 0),
            Err(JwtProblem::Header(_))
        ));
        let loose = JwtRules {
            exact_header: false,
            ..JwtRules::default()
        };
        assert_eq!(
            verify_jwt_with(&typ, &keys, 0, loose),
            Err(JwtProblem::Signature)
        );
    }
}
