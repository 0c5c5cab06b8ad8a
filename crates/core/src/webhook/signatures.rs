//! HTTP Signatures (draft-cavage-http-signatures) with HMAC-SHA256: the
//! `Signature` header names a `keyId`, the signed `headers` and the Base64
//! `signature`, an HMAC-SHA256 over the lines `name: value` of those headers
//! (`(request-target): post /path?query` for the pseudo-header) joined by
//! `\n`. A `Digest: SHA-256=<base64>` header ties the body to the signature.
//!
//! Checked here: the signature (constant-time, with the secret chosen by
//! `keyId`), that it covers the request target, host, date and digest (a
//! signature over less could be replayed on another path or with another
//! body), the `Date` within the allowed skew in both directions (Bondora's
//! own sample receiver only refuses dates in the future, which lets a
//! captured call be replayed forever), and the body against the `Digest`.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{WebhookRejection, WebhookRequest};
use crate::error::{Error, Result};

/// The `Date` skew allowed when none is configured.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;
/// The largest skew that may be configured.
const MAX_SKEW_LIMIT_SECS: u64 = 3600;
/// What a signature must cover, whatever else it covers.
pub const REQUIRED_HEADERS: &[&str] = &["(request-target)", "host", "date", "digest"];
/// Longest `keyId` echoed back in a rejection.
const ECHO_LIMIT: usize = 64;

/// The configuration of a receiver: `keys = { "<keyId>" = "<secret>" }`,
/// `max_skew_secs = 300`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSettings {
    pub keys: BTreeMap<String, SecretString>,
    #[serde(default = "default_max_skew_secs")]
    pub max_skew_secs: u64,
}

fn default_max_skew_secs() -> u64 {
    DEFAULT_MAX_SKEW_SECS
}

/// Verifies HMAC-SHA256 HTTP Signatures against configured secrets.
pub struct HttpSignatures {
    /// Per `keyId`, the HMAC keys a secret may stand for.
    keys: BTreeMap<String, Vec<SecretSlice<u8>>>,
    max_skew: Duration,
}

impl std::fmt::Debug for HttpSignatures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSignatures")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("max_skew", &self.max_skew)
            .finish()
    }
}

impl HttpSignatures {
    /// Checks the settings; errors name the key relative to the settings'
    /// table (`keys`, `keys.<keyId>`, `max_skew_secs`).
    pub fn new(settings: &SignatureSettings) -> Result<Self> {
        if settings.keys.is_empty() {
            return Err(Error::invalid_input(
                "keys",
                "at least one signing key is needed: keys = { \"<keyId>\" = \"<secret>\" }",
            ));
        }
        if settings.max_skew_secs == 0 || settings.max_skew_secs > MAX_SKEW_LIMIT_SECS {
            return Err(Error::invalid_input(
                "max_skew_secs",
                format!("must be between 1 and {MAX_SKEW_LIMIT_SECS} seconds"),
            ));
        }
        let mut keys = BTreeMap::new();
        for (key_id, secret) in &settings.keys {
            let secret = secret.expose_secret().trim();
            if key_id.is_empty() || secret.is_empty() {
                return Err(Error::invalid_input(
                    format!("keys.{key_id}"),
                    "a keyId and its secret must not be empty",
                ));
            }
            // Bondora shows webhook secrets in Base64 and its sample receivers
            // HMAC with the decoded bytes, but its document does not say so:
            // a secret that is valid Base64 is tried both decoded and as typed.
            let mut candidates = Vec::with_capacity(2);
            if let Ok(decoded) = STANDARD.decode(secret)
                && !decoded.is_empty()
            {
                candidates.push(SecretSlice::from(decoded));
            }
            candidates.push(SecretSlice::from(secret.as_bytes().to_vec()));
            keys.insert(key_id.clone(), candidates);
        }
        Ok(HttpSignatures {
            keys,
            max_skew: Duration::from_secs(settings.max_skew_secs),
        })
    }

    /// Authenticates `request` as of `now`; every refusal is a 401 with the reason.
    pub fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), WebhookRejection> {
        let params = Params::parse(signature_header(request)?)?;
        if let Some(algorithm) = params.algorithm
            && !algorithm.eq_ignore_ascii_case("hmac-sha256")
            // draft-cavage 10+: the algorithm comes from the key; ours are HMAC-SHA256.
            && !algorithm.eq_ignore_ascii_case("hs2019")
        {
            return Err(unauthorized(format!(
                "unsupported signature algorithm {:?}; expected hmac-sha256",
                echo(algorithm)
            )));
        }
        let Some(candidates) = self.keys.get(params.key_id) else {
            return Err(unauthorized(format!(
                "unknown keyId {:?}",
                echo(params.key_id)
            )));
        };
        // Without `headers`, the draft signs `date` alone.
        let covered: Vec<String> = params
            .headers
            .unwrap_or("date")
            .split_ascii_whitespace()
            .map(str::to_ascii_lowercase)
            .collect();
        if let Some(missing) = REQUIRED_HEADERS
            .iter()
            .find(|required| !covered.iter().any(|c| c == *required))
        {
            return Err(unauthorized(format!(
                "the signature must cover `{missing}` (it covers `{}`)",
                covered.join(" ")
            )));
        }
        let signing_string = signing_string(request, &covered)?;
        let signature = STANDARD
            .decode(params.signature)
            .map_err(|_| unauthorized("the signature is not Base64"))?;
        // `verify_slice` compares in constant time.
        let matches = candidates.iter().any(|key| {
            Hmac::<Sha256>::new_from_slice(key.expose_secret()).is_ok_and(|mut mac| {
                mac.update(signing_string.as_bytes());
                mac.verify_slice(&signature).is_ok()
            })
        });
        if !matches {
            return Err(unauthorized(format!(
                "the signature does not match (keyId {:?})",
                echo(params.key_id)
            )));
        }
        self.check_date(request, now)?;
        check_digest(request)
    }

    fn check_date(
        &self,
        request: &WebhookRequest<'_>,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), WebhookRejection> {
        let raw = header(request, "date")?;
        let date = DateTime::parse_from_rfc2822(raw)
            .map_err(|_| {
                unauthorized(format!(
                    "the Date header {:?} is not an HTTP date",
                    echo(raw)
                ))
            })?
            .to_utc();
        let skew = self.max_skew.as_secs();
        let age = now.signed_duration_since(date).num_seconds();
        if age > skew as i64 {
            return Err(unauthorized(format!(
                "the request is stale: its Date is {age} s old, more than the {skew} s allowed"
            )));
        }
        if -age > skew as i64 {
            return Err(unauthorized(format!(
                "the request is dated {} s in the future, more than the {skew} s allowed",
                -age
            )));
        }
        Ok(())
    }
}

/// `keyId`, `algorithm`, `headers` and `signature` of a `Signature` header.
struct Params<'a> {
    key_id: &'a str,
    algorithm: Option<&'a str>,
    headers: Option<&'a str>,
    signature: &'a str,
}

impl<'a> Params<'a> {
    /// `name="value"` pairs separated by commas; values hold no quotes.
    fn parse(raw: &'a str) -> std::result::Result<Self, WebhookRejection> {
        let malformed = || unauthorized("the Signature header is malformed");
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        let mut rest = raw.trim();
        while !rest.is_empty() {
            let (name, after) = rest.split_once('=').ok_or_else(malformed)?;
            let (value, after) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let (value, after) = quoted.split_once('"').ok_or_else(malformed)?;
                    (value, after)
                }
                None => after.split_once(',').map_or((after, ""), |(v, a)| (v, a)),
            };
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(next) => next.trim_start(),
                None if after.is_empty() => after,
                None => return Err(malformed()),
            };
            if fields.insert(name.trim(), value.trim()).is_some() {
                return Err(unauthorized(format!(
                    "the Signature header repeats `{}`",
                    echo(name.trim())
                )));
            }
        }
        let required = |name: &str| {
            fields
                .get(name)
                .copied()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| unauthorized(format!("the Signature header has no `{name}`")))
        };
        Ok(Params {
            key_id: required("keyId")?,
            algorithm: fields.get("algorithm").copied(),
            headers: fields.get("headers").copied(),
            signature: required("signature")?,
        })
    }
}

/// The `Signature` header, or `Authorization: Signature …` (the draft allows both).
fn signature_header<'a>(
    request: &WebhookRequest<'a>,
) -> std::result::Result<&'a str, WebhookRejection> {
    if let Some(value) = request.headers.get("signature") {
        return value
            .to_str()
            .map_err(|_| unauthorized("the Signature header is not readable text"));
    }
    request
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Signature "))
        .ok_or_else(|| unauthorized("the request is not signed: no Signature header"))
}

/// One header's value. The draft would join repeated headers with `, `;
/// nothing legitimate repeats these, so a repeat is refused instead.
fn header<'a>(
    request: &WebhookRequest<'a>,
    name: &str,
) -> std::result::Result<&'a str, WebhookRejection> {
    let mut values = request.headers.get_all(name).iter();
    let first = values
        .next()
        .ok_or_else(|| unauthorized(format!("the signed header `{name}` is missing")))?;
    if values.next().is_some() {
        return Err(unauthorized(format!(
            "the signed header `{name}` is sent more than once"
        )));
    }
    first
        .to_str()
        .map(str::trim)
        .map_err(|_| unauthorized(format!("the header `{name}` is not readable text")))
}

fn signing_string(
    request: &WebhookRequest<'_>,
    covered: &[String],
) -> std::result::Result<String, WebhookRejection> {
    let lines = covered
        .iter()
        .map(|name| {
            if name == "(request-target)" {
                Ok(format!(
                    "(request-target): {} {}",
                    request.method.as_str().to_ascii_lowercase(),
                    request.path_and_query
                ))
            } else {
                Ok(format!("{name}: {}", header(request, name)?))
            }
        })
        .collect::<std::result::Result<Vec<_>, WebhookRejection>>()?;
    Ok(lines.join("\n"))
}

/// `Digest: SHA-256=<base64>` (other algorithms may be listed beside it).
fn check_digest(request: &WebhookRequest<'_>) -> std::result::Result<(), WebhookRejection> {
    let raw = header(request, "digest")?;
    let sent = raw
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(algorithm, _)| algorithm.eq_ignore_ascii_case("sha-256"))
        .map(|(_, value)| value)
        .ok_or_else(|| unauthorized("the Digest header has no SHA-256 value"))?;
    let sent = STANDARD
        .decode(sent)
        .map_err(|_| unauthorized("the SHA-256 Digest is not Base64"))?;
    if sent.as_slice() != Sha256::digest(request.body).as_slice() {
        return Err(unauthorized("the Digest does not match the body"));
    }
    Ok(())
}

fn unauthorized(reason: impl Into<String>) -> WebhookRejection {
    WebhookRejection::unauthorized(reason)
}

/// A caller-chosen value, shortened for a rejection message.
fn echo(value: &str) -> String {
    value.chars().take(ECHO_LIMIT).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use http::{HeaderMap, HeaderValue, Method};

    const KEY_ID: &str = "key-1";
    /// Base64 of `top-secret-key`.
    const SECRET: &str = "dG9wLXNlY3JldC1rZXk=";
    const BODY: &[u8] = br#"{"EventId":"15848b4e-ff56-4de3-9b5f-a92e01171453"}"#;
    const TARGET: &str = "/webhooks/bondora?x=1";

    fn verifier() -> HttpSignatures {
        HttpSignatures::new(&SignatureSettings {
            keys: [(KEY_ID.to_string(), SecretString::from(SECRET))].into(),
            max_skew_secs: 300,
        })
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn http_date(at: DateTime<Utc>) -> String {
        at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
    }

    /// Headers as Bondora signs them, with the HMAC key `key`.
    fn signed(key: &[u8], date: DateTime<Utc>, body: &[u8], covered: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let digest = format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)));
        let date = http_date(date);
        for (name, value) in [
            ("host", "gateway.example:8080".to_string()),
            ("date", date),
            ("content-type", "application/json".to_string()),
            ("content-length", body.len().to_string()),
            ("digest", digest),
        ] {
            headers.insert(name, HeaderValue::from_str(&value).unwrap());
        }
        let request = WebhookRequest {
            method: &Method::POST,
            path_and_query: TARGET,
            headers: &headers,
            body,
        };
        let names: Vec<String> = covered.split(' ').map(str::to_string).collect();
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(signing_string(&request, &names).unwrap().as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        headers.insert(
            "signature",
            HeaderValue::from_str(&format!(
                "keyId=\"{KEY_ID}\",algorithm=\"hmac-sha256\",headers=\"{covered}\",signature=\"{signature}\""
            ))
            .unwrap(),
        );
        headers
    }

    const ALL: &str = "(request-target) host date content-type content-length digest";

    fn check(headers: &HeaderMap, body: &[u8]) -> std::result::Result<(), WebhookRejection> {
        verifier().verify(
            &WebhookRequest {
                method: &Method::POST,
                path_and_query: TARGET,
                headers,
                body,
            },
            now(),
        )
    }

    fn decoded() -> Vec<u8> {
        STANDARD.decode(SECRET).unwrap()
    }

    #[test]
    fn bondora_signatures_verify_with_either_reading_of_the_secret() {
        assert_eq!(check(&signed(&decoded(), now(), BODY, ALL), BODY), Ok(()));
        assert_eq!(
            check(&signed(SECRET.as_bytes(), now(), BODY, ALL), BODY),
            Ok(())
        );
        // Within the skew on both sides.
        for offset in [-299, 299] {
            let date = now() + TimeDelta::seconds(offset);
            assert_eq!(check(&signed(&decoded(), date, BODY, ALL), BODY), Ok(()));
        }
        // Through `Authorization: Signature …` too.
        let mut headers = signed(&decoded(), now(), BODY, ALL);
        let signature = headers.remove("signature").unwrap();
        let value = format!("Signature {}", signature.to_str().unwrap());
        headers.insert("authorization", HeaderValue::from_str(&value).unwrap());
        assert_eq!(check(&headers, BODY), Ok(()));
    }

    fn reason(result: std::result::Result<(), WebhookRejection>) -> String {
        let rejection = result.unwrap_err();
        assert_eq!(rejection.status, 401, "{rejection}");
        rejection.reason
    }

    #[test]
    fn forgeries_are_refused_with_the_reason() {
        let good = || signed(&decoded(), now(), BODY, ALL);
        assert!(
            reason(check(&signed(b"another key", now(), BODY, ALL), BODY))
                .contains("does not match")
        );
        assert!(reason(check(&good(), b"{\"EventId\":\"x\"}")).contains("Digest does not match"));
        let stale = now() - TimeDelta::seconds(301);
        assert!(reason(check(&signed(&decoded(), stale, BODY, ALL), BODY)).contains("stale"));
        let future = now() + TimeDelta::seconds(301);
        assert!(reason(check(&signed(&decoded(), future, BODY, ALL), BODY)).contains("future"));

        let mut unsigned = good();
        unsigned.remove("signature");
        assert!(reason(check(&unsigned, BODY)).contains("not signed"));

        let mut unknown = good();
        let value = unknown["signature"]
            .to_str()
            .unwrap()
            .replace(KEY_ID, "key-2");
        unknown.insert("signature", HeaderValue::from_str(&value).unwrap());
        assert!(reason(check(&unknown, BODY)).contains("unknown keyId \"key-2\""));

        // A signature over less than the target, host, date and digest.
        let partial = signed(&decoded(), now(), BODY, "date digest");
        assert!(reason(check(&partial, BODY)).contains("must cover `(request-target)`"));

        // A header changed after signing.
        let mut moved = good();
        moved.insert("host", HeaderValue::from_static("elsewhere.example"));
        assert!(reason(check(&moved, BODY)).contains("does not match"));

        let mut other_algorithm = good();
        let value = other_algorithm["signature"]
            .to_str()
            .unwrap()
            .replace("hmac-sha256", "rsa-sha256");
        other_algorithm.insert("signature", HeaderValue::from_str(&value).unwrap());
        assert!(reason(check(&other_algorithm, BODY)).contains("unsupported"));

        for malformed in [
            "keyId=\"key-1\",signature=\"abc",
            "keyId",
            "keyId=\"a\" signature=\"b\"",
            "keyId=\"a\",keyId=\"b\",signature=\"c\"",
            "signature=\"c\"",
        ] {
            let mut headers = good();
            headers.insert("signature", HeaderValue::from_static(malformed));
            let reason = reason(check(&headers, BODY));
            assert!(reason.contains("Signature header"), "{malformed}: {reason}");
        }
    }

    #[test]
    fn settings_are_checked() {
        let settings = |keys: &[(&str, &str)], skew| SignatureSettings {
            keys: keys
                .iter()
                .map(|(k, v)| (k.to_string(), SecretString::from(*v)))
                .collect(),
            max_skew_secs: skew,
        };
        let field = |s: SignatureSettings| HttpSignatures::new(&s).unwrap_err().field.unwrap();
        assert_eq!(field(settings(&[], 300)), "keys");
        assert_eq!(field(settings(&[("k", " ")], 300)), "keys.k");
        assert_eq!(field(settings(&[("k", "s")], 0)), "max_skew_secs");
        assert_eq!(field(settings(&[("k", "s")], 3601)), "max_skew_secs");
        let debug = format!(
            "{:?}",
            HttpSignatures::new(&settings(&[("k", "s3cr3t")], 5)).unwrap()
        );
        assert!(
            debug.contains("\"k\"") && !debug.contains("s3cr3t"),
            "{debug}"
        );
        let parsed: SignatureSettings =
            serde_json::from_value(serde_json::json!({"keys": {"k": "s"}})).unwrap();
        assert_eq!(parsed.max_skew_secs, DEFAULT_MAX_SKEW_SECS);
    }
}
