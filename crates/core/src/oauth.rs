//! The client side of OAuth 2.0's authorization code grant (RFC 6749), as the
//! platforms speak it. Each adapter says how its platform authenticates the
//! client and where its endpoints are; the protocol lives here once.

use std::fmt;
use std::time::Duration;

use http::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::id::ProviderId;
use crate::upstream::{Throttle, ThrottlePolicy, Upstream, UpstreamConfig};

/// How the client proves itself at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(id:secret)` (Zonky).
    BasicHeader,
    /// `client_id` and `client_secret` in the form body (Bondora).
    BodyFields,
}

/// `[providers.<id>.oauth]` in the configuration.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Where the platform sends the user back: the gateway's
    /// `/connect/<provider>/callback`, registered with the platform.
    pub redirect_uri: String,
    /// Overrides the adapter's default (e.g. Bondora's moved authorize page).
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    /// Overrides the adapter's default scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// What a platform's OAuth looks like, as its adapter knows it.
#[derive(Debug, Clone)]
pub struct OAuthEndpoints {
    pub authorize_url: &'static str,
    pub token_url: &'static str,
    pub scopes: &'static [&'static str],
    pub client_auth: ClientAuth,
}

/// Tokens granted by a token endpoint.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: SecretString,
    /// `None` when the answer had none: keep the one you have.
    pub refresh_token: Option<SecretString>,
    /// `None` when the token does not expire (`expires_in` absent or 0).
    pub expires_in: Option<Duration>,
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthErrorAnswer {
    error: String,
}

/// One provider instance's OAuth client.
#[derive(Clone)]
pub struct OAuthClient {
    provider: ProviderId,
    client_id: String,
    client_secret: SecretString,
    redirect_uri: Url,
    authorize_url: Url,
    scopes: Vec<String>,
    client_auth: ClientAuth,
    token_endpoint: Upstream,
    /// The token URL's last segment, requested under `token_endpoint`.
    token_path: String,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("authorize_url", &self.authorize_url.as_str())
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// Builds the client from the platform's defaults and the operator's settings.
    pub fn new(
        provider: ProviderId,
        defaults: &OAuthEndpoints,
        settings: OAuthSettings,
        user_agent: &str,
        timeout: Duration,
        throttle: std::sync::Arc<dyn Throttle>,
    ) -> Result<Self> {
        let key = |name: &str| format!("providers.{provider}.oauth.{name}");
        let parse = |name: &str, raw: &str| {
            Url::parse(raw)
                .map_err(|e| Error::invalid_input(key(name), format!("{}: {e}", key(name))))
        };
        let authorize_url = parse(
            "authorize_url",
            settings
                .authorize_url
                .as_deref()
                .unwrap_or(defaults.authorize_url),
        )?;
        let token_url = parse(
            "token_url",
            settings.token_url.as_deref().unwrap_or(defaults.token_url),
        )?;
        let redirect_uri = parse("redirect_uri", &settings.redirect_uri)?;
        // The client joins paths onto a directory: split the URL into both.
        let token_path = token_url
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .unwrap_or_default()
            .to_string();
        let mut token_base = token_url.clone();
        token_base.set_path(&token_url.path()[..token_url.path().len() - token_path.len()]);
        let mut config = UpstreamConfig::new(token_base, user_agent);
        config.request_timeout = timeout;
        config.throttle = ThrottlePolicy::unlimited();
        Ok(OAuthClient {
            token_endpoint: Upstream::new(provider.clone(), config, throttle)?,
            token_path,
            provider,
            client_id: settings.client_id,
            client_secret: settings.client_secret,
            redirect_uri,
            authorize_url,
            scopes: settings
                .scopes
                .unwrap_or_else(|| defaults.scopes.iter().map(|s| s.to_string()).collect()),
            client_auth: defaults.client_auth,
        })
    }

    /// Where to send the user to approve access; `state` comes back on the callback.
    pub fn authorize_url(&self, state: &str) -> Url {
        let mut url = self.authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect_uri.as_str())
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", state);
        url
    }

    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Exchanges the code from the callback for tokens.
    pub async fn exchange_code(&self, code: &str, deadline: Instant) -> Result<TokenGrant> {
        let fields = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
        ];
        self.token_request(&fields, deadline).await.map_err(|e| {
            if e.kind == ErrorKind::ReauthorizationRequired {
                Error::invalid_input(
                    "code",
                    "the platform refused the authorization code (used, expired or foreign)",
                )
                .with_provider(&self.provider)
            } else {
                e
            }
        })
    }

    /// Trades a refresh token for a new access token.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        deadline: Instant,
    ) -> Result<TokenGrant> {
        let scope = self.scopes.join(" ");
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("scope", scope.as_str()),
        ];
        self.token_request(&fields, deadline).await
    }

    async fn token_request(
        &self,
        fields: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<TokenGrant> {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        let mut request = self
            .token_endpoint
            .request(Method::POST, "oauth/token", &self.token_path)
            .deadline(deadline);
        match self.client_auth {
            ClientAuth::BasicHeader => {
                request = request.basic_auth(&self.client_id, &self.client_secret);
            }
            ClientAuth::BodyFields => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose_secret()));
            }
        }
        let response = request.form(&form).send().await?;
        if response.is_success() {
            let answer: TokenAnswer = response.json()?;
            return Ok(TokenGrant {
                access_token: answer.access_token,
                refresh_token: answer.refresh_token,
                // Bondora documents `expires_in: 0` as "does not expire".
                expires_in: answer
                    .expires_in
                    .filter(|s| *s > 0)
                    .map(Duration::from_secs),
                scopes: answer
                    .scope
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_else(|| self.scopes.clone()),
            });
        }
        let code = response.json::<OAuthErrorAnswer>().ok().map(|a| a.error);
        Err(match (response.status, code.as_deref()) {
            (StatusCode::BAD_REQUEST, Some("invalid_grant")) => Error::new(
                ErrorKind::ReauthorizationRequired,
                "the platform no longer accepts this grant; connect the account again",
            )
            .with_provider_code("invalid_grant"),
            (_, Some("invalid_client")) | (StatusCode::UNAUTHORIZED, _) => Error::internal(
                "the platform refused the gateway's OAuth client credentials; check the configuration",
            )
            .with_provider_code("invalid_client"),
            _ => response.into_default_error(),
        }
        .with_provider(&self.provider))
    }
}
