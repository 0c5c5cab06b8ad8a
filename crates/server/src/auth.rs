//! Frontend authentication: `Authorization: Bearer <JWT>` issued by the team's
//! own identity provider, verified against keys from the configuration. The
//! accepted algorithms are exactly those of the configured keys, so a token
//! cannot pick its own (`none`, or HS256 signed with a public key).

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use finmesh_core::Principal;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[auth]` in the configuration.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Refuse anonymous callers everywhere, public marketplace included.
    #[serde(default)]
    pub required: bool,
    /// Expected `iss`, when set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Expected `aud`, when set.
    #[serde(default)]
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Shared secret for HS256 tokens.
    #[serde(default)]
    pub hs256_secret: Option<SecretString>,
    /// PEM files of RS256 public keys.
    #[serde(default)]
    pub rs256_public_keys: Vec<PathBuf>,
    /// PEM files of ES256 public keys.
    #[serde(default)]
    pub es256_public_keys: Vec<PathBuf>,
    /// A JWKS document (as an identity provider publishes it), saved to a file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// The claim naming the principal's tenant, for providers whose platform
    /// credentials belong to tenants (Bongloy).
    #[serde(default)]
    pub tenant_claim: Option<String>,
}

fn default_leeway() -> u64 {
    30
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("required", &self.required)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// One key a token may be signed with.
struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Verifies frontend tokens.
pub struct FrontendAuth {
    keys: Vec<VerifyingKey>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    required: bool,
    tenant_claim: Option<String>,
}

/// Why a token was refused; shown to the caller (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the Authorization header must be `Bearer <token>`")]
    NotBearer,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm {0} is not accepted by this gateway")]
    AlgorithmNotAllowed(String),
    #[error("no configured key matches the token")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by someone else")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token has no subject (`sub`)")]
    NoSubject,
}

/// The claims the gateway reads; the tenant claim's name is configurable.
type Claims = serde_json::Map<String, serde_json::Value>;

impl FrontendAuth {
    /// Reads every configured key; each problem names its key.
    pub fn from_config(config: &AuthConfig) -> Result<Self, Vec<(String, String)>> {
        let mut keys = Vec::new();
        let mut problems = Vec::new();
        if let Some(secret) = &config.hs256_secret {
            if secret.expose_secret().len() < 32 {
                problems.push((
                    "auth.hs256_secret".to_string(),
                    "must be at least 32 characters".to_string(),
                ));
            }
            keys.push(VerifyingKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            });
        }
        let pem_files = [
            (
                "auth.rs256_public_keys",
                Algorithm::RS256,
                &config.rs256_public_keys,
            ),
            (
                "auth.es256_public_keys",
                Algorithm::ES256,
                &config.es256_public_keys,
            ),
        ];
        for (name, algorithm, paths) in pem_files {
            for (index, path) in paths.iter().enumerate() {
                let key_name = format!("{name}[{index}]");
                let pem = match std::fs::read(path) {
                    Ok(pem) => pem,
                    Err(e) => {
                        problems.push((key_name, format!("cannot read {}: {e}", path.display())));
                        continue;
                    }
                };
                let key = match algorithm {
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                    _ => DecodingKey::from_ec_pem(&pem),
                };
                match key {
                    Ok(key) => keys.push(VerifyingKey {
                        kid: None,
                        algorithm,
                        key,
                    }),
                    Err(e) => problems.push((key_name, format!("{}: {e}", path.display()))),
                }
            }
        }
        if let Some(path) = &config.jwks_file {
            match read_jwks(path) {
                Ok(found) => keys.extend(found),
                Err(problem) => problems.push(("auth.jwks_file".to_string(), problem)),
            }
        }
        if config.required && keys.is_empty() {
            problems.push((
                "auth.required".to_string(),
                "auth is required but no key is configured".to_string(),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(FrontendAuth {
            keys,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.leeway_secs,
            required: config.required,
            tenant_claim: config.tenant_claim.clone(),
        })
    }

    /// A verifier for one HS256 secret, as `demo` uses.
    pub fn hs256(secret: &SecretString) -> Self {
        FrontendAuth {
            keys: vec![VerifyingKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            }],
            issuer: None,
            audience: None,
            leeway: default_leeway(),
            required: false,
            tenant_claim: None,
        }
    }

    /// Whether anonymous callers are refused everywhere.
    pub fn required(&self) -> bool {
        self.required
    }

    /// The principal behind an `Authorization` header value, if any.
    pub fn principal(&self, authorization: Option<&str>) -> Result<Option<Principal>, AuthError> {
        let Some(header) = authorization else {
            return if self.required {
                Err(AuthError::Missing)
            } else {
                Ok(None)
            };
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::NotBearer)?
            .trim();
        self.verify(token).map(Some)
    }

    /// Verifies a token and returns its subject.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let candidates: Vec<&VerifyingKey> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.kid.is_none() || header.kid.is_none() || k.kid == header.kid)
            .collect();
        if !self.keys.iter().any(|k| k.algorithm == header.alg) {
            return Err(AuthError::AlgorithmNotAllowed(format!("{:?}", header.alg)));
        }
        if candidates.is_empty() {
            return Err(AuthError::UnknownKey);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let mut last = AuthError::BadSignature;
        for candidate in candidates {
            match decode::<Claims>(token, &candidate.key, &validation) {
                Ok(data) => return self.principal_from(&data.claims),
                Err(e) => last = classify(e.kind()),
            }
        }
        Err(last)
    }
}

impl FrontendAuth {
    fn principal_from(&self, claims: &Claims) -> Result<Principal, AuthError> {
        let principal = match claims.get("sub").and_then(|s| s.as_str()) {
            Some(sub) if !sub.is_empty() && sub.len() <= 256 => Principal::new(sub),
            _ => return Err(AuthError::NoSubject),
        };
        let tenant = self
            .tenant_claim
            .as_deref()
            .and_then(|name| claims.get(name))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty() && t.len() <= 128);
        Ok(match tenant {
            Some(tenant) => principal.with_tenant(tenant),
            None => principal,
        })
    }
}

fn classify(kind: &jsonwebtoken::errors::ErrorKind) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidIssuer => AuthError::WrongIssuer,
        K::InvalidAudience => AuthError::WrongAudience,
        K::MissingRequiredClaim(claim) if claim == "sub" => AuthError::NoSubject,
        K::InvalidAlgorithm => AuthError::AlgorithmNotAllowed("mismatch".into()),
        K::InvalidSignature => AuthError::BadSignature,
        _ => AuthError::Malformed,
    }
}

fn read_jwks(path: &PathBuf) -> Result<Vec<VerifyingKey>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut seen = HashSet::new();
    set.keys
        .iter()
        .map(|jwk| {
            let algorithm = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
                .ok_or_else(|| {
                    "every JWKS key needs an `alg` (the gateway pins algorithms)".to_string()
                })?;
            let kid = jwk.common.key_id.clone();
            if !seen.insert(kid.clone()) {
                return Err(format!("duplicate key id {kid:?}"));
            }
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
            Ok(VerifyingKey {
                kid,
                algorithm,
                key,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn token(header: Header, claims: serde_json::Value, secret: &str) -> String {
        encode(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn auth() -> FrontendAuth {
        let config = AuthConfig {
            hs256_secret: Some(SecretString::from(SECRET)),
            issuer: Some("https://id.example".into()),
            audience: Some("finmesh".into()),
            leeway_secs: 0,
            ..Default::default()
        };
        FrontendAuth::from_config(&config).unwrap()
    }

    fn claims(exp_in: i64) -> serde_json::Value {
        json!({"sub": "alice", "exp": now() + exp_in, "iss": "https://id.example", "aud": "finmesh"})
    }

    #[test]
    fn a_valid_token_names_its_principal() {
        let t = token(Header::new(Algorithm::HS256), claims(60), SECRET);
        let principal = auth()
            .principal(Some(&format!("Bearer {t}")))
            .unwrap()
            .unwrap();
        assert_eq!(principal.id(), "alice");
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let auth = auth();
        let expired = token(Header::new(Algorithm::HS256), claims(-120), SECRET);
        assert_eq!(auth.verify(&expired).unwrap_err(), AuthError::Expired);
        let forged = token(
            Header::new(Algorithm::HS256),
            claims(60),
            "another-secret-that-is-long-enough-xx",
        );
        assert_eq!(auth.verify(&forged).unwrap_err(), AuthError::BadSignature);
        let wrong_alg = token(Header::new(Algorithm::HS512), claims(60), SECRET);
        assert!(matches!(
            auth.verify(&wrong_alg).unwrap_err(),
            AuthError::AlgorithmNotAllowed(_)
        ));
        let mut foreign = claims(60);
        foreign["aud"] = json!("someone-else");
        let foreign = token(Header::new(Algorithm::HS256), foreign, SECRET);
        assert_eq!(auth.verify(&foreign).unwrap_err(), AuthError::WrongAudience);
        // `alg: none`, hand-made since no library signs it.
        let none = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            base64_url(&serde_json::to_vec(&claims(60)).unwrap())
        );
        assert!(auth.verify(&none).is_err());
        assert_eq!(auth.verify("not-a-jwt").unwrap_err(), AuthError::Malformed);
        assert_eq!(
            auth.principal(Some("Basic abc")).unwrap_err(),
            AuthError::NotBearer
        );
        assert_eq!(auth.principal(None).unwrap(), None);
    }

    #[test]
    fn the_configured_tenant_claim_names_the_principals_tenant() {
        let config = AuthConfig {
            hs256_secret: Some(SecretString::from(SECRET)),
            tenant_claim: Some("org".into()),
            ..Default::default()
        };
        let auth = FrontendAuth::from_config(&config).unwrap();
        let mut claims = claims(60);
        claims["org"] = json!("acme");
        let t = token(Header::new(Algorithm::HS256), claims, SECRET);
        assert_eq!(auth.verify(&t).unwrap().tenant(), Some("acme"));
        let plain = token(
            Header::new(Algorithm::HS256),
            json!({"sub": "bob", "exp": now() + 60}),
            SECRET,
        );
        assert_eq!(auth.verify(&plain).unwrap().tenant(), None);
    }

    #[test]
    fn required_auth_refuses_anonymous_callers_and_needs_a_key() {
        let config = AuthConfig {
            required: true,
            ..Default::default()
        };
        let problems = FrontendAuth::from_config(&config).err().unwrap();
        assert_eq!(problems[0].0, "auth.required");
        let config = AuthConfig {
            required: true,
            hs256_secret: Some(SecretString::from(SECRET)),
            ..Default::default()
        };
        let auth = FrontendAuth::from_config(&config).unwrap();
        assert_eq!(auth.principal(None).unwrap_err(), AuthError::Missing);
    }

    fn base64_url(bytes: &[u8]) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}
