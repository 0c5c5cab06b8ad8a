//! A generic OAuth 2.0 authorization server (RFC 6749) for the simulators:
//! the authorization code grant and refresh tokens, with the variations the
//! platforms' documents show (HTTP Basic or body client credentials, form or
//! JSON token requests, rotating refresh tokens or not, refresh answers
//! without a refresh token, tokens that never expire).
//!
//! A simulator mounts [`OAuthServer::router`] at its own paths and asks
//! [`OAuthServer::authenticate`] (or [`OAuthServer::access`], which also tells
//! the scopes) who is behind a request's bearer token.
//!
//! # Authorize: `GET {authorize_path}`
//!
//! `response_type=code&client_id=…&redirect_uri=…&scope=…&state=…`. There is
//! no login page: the request is approved at once for the first configured
//! user, or for the user named by `sandbox_user=<name>`;
//! `sandbox_decision=deny` refuses it as a user would.
//!
//! - A missing or unknown `client_id`, a missing, malformed or unregistered
//!   `redirect_uri` (and no registered one to fall back to), a repeated
//!   parameter, or an unknown `sandbox_user` answer 400 with a JSON error and
//!   no redirect (RFC 6749 §4.1.2.1: never redirect to an unverified URI).
//! - Every other error redirects (302) to `redirect_uri` with `error`,
//!   `error_description` and `state`: `unsupported_response_type` (a
//!   `response_type` other than `code`), `invalid_request` (none at all),
//!   `invalid_scope` (a scope outside [`OAuthConfig::scopes`]),
//!   `access_denied` (`sandbox_decision=deny`).
//! - Success redirects (302) to `redirect_uri?code=…&state=…`, keeping the
//!   URI's own query parameters; `state` comes back exactly as sent and is
//!   left out when none was sent. Without `scope` every configured scope is
//!   granted.
//!
//! Codes are random, single use (any exchange attempt uses one up) and expire
//! after [`OAuthConfig::code_ttl_secs`]; they are bound to the client, the
//! user, the scopes and the redirect URI.
//!
//! # Token: `POST {token_path}`
//!
//! The fields come form encoded (`application/x-www-form-urlencoded`, also
//! when no content type is sent) or as a JSON object (`application/json`);
//! any other content type answers 400 `invalid_request`. The client
//! authenticates as [`ClientAuth`] says; a missing or wrong credential
//! answers 401 `invalid_client` (with `WWW-Authenticate: Basic` when the
//! Basic scheme is expected).
//!
//! - `grant_type=authorization_code&code=…&redirect_uri=…`: the code must be
//!   known, unused, unexpired and issued to this client; `redirect_uri` must
//!   be sent and equal when the authorize request had one, and equal the
//!   registered one when sent although the authorize request had none.
//!   Otherwise 400 `invalid_grant`.
//! - `grant_type=refresh_token&refresh_token=…`: the refresh token must be
//!   known, unexpired and issued to this client, else 400 `invalid_grant`.
//!   With [`OAuthConfig::rotate_refresh_tokens`] the answer carries a new one
//!   and the old one is dead; without, the same one comes back. With
//!   [`OAuthConfig::refresh_returns_refresh_token`] off the answer has no
//!   `refresh_token` and the old one stays valid (the client keeps it). The
//!   access token the refresh replaces stays valid until it expires.
//! - Both take an optional `scope` (space separated) to narrow the grant: it
//!   must lie within the granted scopes, else 400 `invalid_scope`. A refresh
//!   token keeps its original scopes.
//! - No `grant_type` or a missing parameter: 400 `invalid_request`; another
//!   grant type: 400 `unsupported_grant_type`.
//!
//! Success answers `{"access_token", "token_type": "bearer", "expires_in",
//! "refresh_token", "scope"}` with `Cache-Control: no-store`; `expires_in` is
//! 0 for tokens that never expire. Errors are RFC 6749 §5.2 JSON:
//! `{"error": "invalid_grant", "error_description": "…"}`.
//!
//! Tokens and codes are random opaque strings and are never logged. Time
//! comes from the server's own clock, which tests move forward with
//! [`OAuthServer::advance_time`] instead of sleeping.

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::Engine;
use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use tokio::time::Instant;

use crate::lock;

/// The authorization server's settings. Every field has a default, also when
/// read with serde.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// The one registered client.
    pub client_id: String,
    pub client_secret: String,
    /// The client's registered redirect URIs. A redirect URI sent to
    /// authorize must match one of them, query parameters aside (as Zonky
    /// checks); without one, the first is used (as Bondora does). Empty:
    /// any absolute URI is accepted and one must be sent.
    pub redirect_uris: Vec<String>,
    /// Simulated users; authorize approves the first unless
    /// `sandbox_user=<name>` names another.
    pub users: Vec<String>,
    /// Lifetime of access tokens; 0 = never expires (answered as `expires_in: 0`).
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens, from their issue; 0 = never expires.
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of authorization codes.
    pub code_ttl_secs: u64,
    /// Each refresh returns a new refresh token and invalidates the old one.
    pub rotate_refresh_tokens: bool,
    /// Whether a refresh answer carries a refresh token at all; off
    /// simulates Bondora answering a refresh without one.
    pub refresh_returns_refresh_token: bool,
    /// The scopes the client may ask for; requested scopes outside them
    /// answer `invalid_scope`. Empty: any scope is granted as asked.
    pub scopes: Vec<String>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            client_id: "sandbox-client".to_owned(),
            client_secret: "sandbox-secret".to_owned(),
            redirect_uris: Vec::new(),
            users: vec!["alice".to_owned()],
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 0,
            // Zonky: "Authorization code can be used only once and expires after 5 min."
            code_ttl_secs: 300,
            rotate_refresh_tokens: true,
            refresh_returns_refresh_token: true,
            scopes: Vec::new(),
        }
    }
}

impl OAuthConfig {
    /// Reads a config whose missing fields take `defaults`' values rather than
    /// [`OAuthConfig::default`]'s: for a simulator whose own defaults differ,
    /// in a `#[serde(deserialize_with = …)]` function.
    pub fn deserialize_over<'de, D: Deserializer<'de>>(
        defaults: Self,
        deserializer: D,
    ) -> Result<Self, D::Error> {
        use serde::de::Error;
        let given = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let mut merged = match serde_json::to_value(defaults) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(D::Error::custom(
                    "the default OAuth config is not an object",
                ));
            }
        };
        merged.extend(given);
        serde_json::from_value(serde_json::Value::Object(merged)).map_err(D::Error::custom)
    }
}

/// How the token endpoint expects the client to authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic base64(client_id:client_secret)` (Zonky).
    BasicHeader,
    /// `client_id` and `client_secret` among the request's fields (Bondora).
    BodyFields,
    /// The header when sent, else the fields.
    Either,
}

/// Why a request's bearer token was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// Not a token this server issued, or revoked.
    Invalid,
    /// A token this server issued, expired.
    Expired,
}

impl fmt::Display for TokenProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "Full authentication is required to access this resource",
            Self::Invalid => "Invalid access token",
            Self::Expired => "Access token expired",
        })
    }
}

impl std::error::Error for TokenProblem {}

/// Counters of the token endpoint, since the start or the last
/// [`OAuthServer::reset_stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStats {
    /// Codes exchanged for tokens.
    pub authorization_code: u64,
    /// Successful refreshes.
    pub refresh_token: u64,
    /// Token requests answered with an error.
    pub refused: u64,
}

/// Who is behind a valid access token, and what they granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub user: String,
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl Access {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }
}

/// A token endpoint answer (also what [`OAuthServer::issue_tokens`] returns).
/// Its `Debug` output hides the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires; 0 = never.
    pub expires_in: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes, space separated.
    pub scope: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

/// The authorization server. Cheap to clone: clones share codes, tokens,
/// counters and clock.
#[derive(Clone)]
pub struct OAuthServer {
    inner: Arc<ServerState>,
}

impl fmt::Debug for OAuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthServer")
            .field("client_id", &self.inner.config.client_id)
            .field("client_auth", &self.inner.client_auth)
            .finish_non_exhaustive()
    }
}

struct ServerState {
    config: OAuthConfig,
    client_auth: ClientAuth,
    /// How far the clock has been moved forward.
    skew: Mutex<Duration>,
    store: Mutex<Store>,
    stats: Mutex<TokenStats>,
}

#[derive(Default)]
struct Store {
    codes: HashMap<String, Code>,
    access_tokens: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, Grant>,
}

#[derive(Clone)]
struct Grant {
    user: String,
    client_id: String,
    scopes: Vec<String>,
    /// `None`: never expires.
    expires_at: Option<Instant>,
}

impl Grant {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

struct Code {
    grant: Grant,
    /// The redirect URI the code was sent to.
    redirect_uri: String,
    /// Whether the authorize request named it (else it was the registered one).
    explicit_redirect: bool,
}

/// Expired tokens are remembered this long (to tell "expired" from
/// "invalid"), then forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 60 * 60);
/// Length of generated tokens and codes.
const TOKEN_LENGTH: usize = 40;
const CODE_LENGTH: usize = 32;

impl OAuthServer {
    pub fn new(config: OAuthConfig, client_auth: ClientAuth) -> Self {
        Self {
            inner: Arc::new(ServerState {
                config,
                client_auth,
                skew: Mutex::new(Duration::ZERO),
                store: Mutex::default(),
                stats: Mutex::default(),
            }),
        }
    }

    pub fn config(&self) -> &OAuthConfig {
        &self.inner.config
    }

    /// Routes: `GET authorize_path` and `POST token_path` (e.g.
    /// `/oauth/authorize` and `/oauth/token` for Zonky, `/oauth/access_token`
    /// for Bondora).
    pub fn router(&self, authorize_path: &str, token_path: &str) -> Router {
        Router::new()
            .route(authorize_path, get(authorize))
            .route(token_path, post(token))
            .with_state(self.inner.clone())
    }

    /// Control endpoints, never throttled or faulted:
    /// `GET /__sandbox/oauth` answers the [`TokenStats`];
    /// `POST /__sandbox/oauth/advance` with `{"seconds": 90}` moves the clock
    /// forward ([`OAuthServer::advance_time`]);
    /// `POST /__sandbox/oauth/revoke` with `{"user": "alice"}` revokes the
    /// user's approval ([`OAuthServer::revoke_user`]). Both answer 204.
    pub fn control_router(&self) -> Router {
        Router::new()
            .route("/__sandbox/oauth", get(control_stats))
            .route("/__sandbox/oauth/advance", post(control_advance))
            .route("/__sandbox/oauth/revoke", post(control_revoke))
            .with_state(self.clone())
    }

    /// The user behind `Authorization: Bearer <token>`, for the simulator's
    /// private endpoints.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<String, TokenProblem> {
        self.access(headers).map(|access| access.user)
    }

    /// The user, client and scopes behind `Authorization: Bearer <token>`.
    pub fn access(&self, headers: &HeaderMap) -> Result<Access, TokenProblem> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(TokenProblem::Missing)?;
        let value = value.to_str().map_err(|_| TokenProblem::Invalid)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(TokenProblem::Missing)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenProblem::Missing);
        }
        let now = self.inner.now();
        let store = lock(&self.inner.store);
        let grant = store
            .access_tokens
            .get(token.trim())
            .ok_or(TokenProblem::Invalid)?;
        if grant.expired(now) {
            return Err(TokenProblem::Expired);
        }
        Ok(Access {
            user: grant.user.clone(),
            client_id: grant.client_id.clone(),
            scopes: grant.scopes.clone(),
        })
    }

    pub fn token_stats(&self) -> TokenStats {
        *lock(&self.inner.stats)
    }

    /// Zeroes the counters; codes and tokens stay valid.
    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = TokenStats::default();
    }

    /// "User can revoke application approval anytime": every code, access
    /// token and refresh token of the user dies at once.
    pub fn revoke_user(&self, user: &str) {
        let mut store = lock(&self.inner.store);
        store.codes.retain(|_, code| code.grant.user != user);
        store.access_tokens.retain(|_, grant| grant.user != user);
        store.refresh_tokens.retain(|_, grant| grant.user != user);
    }

    /// Every access and refresh token issued and still known, for tests that
    /// check a gateway never writes one anywhere in clear.
    pub fn issued_tokens(&self) -> Vec<String> {
        let store = lock(&self.inner.store);
        store
            .access_tokens
            .keys()
            .chain(store.refresh_tokens.keys())
            .cloned()
            .collect()
    }

    /// Moves the server's clock forward: codes and tokens expire as if this
    /// much time had passed.
    pub fn advance_time(&self, by: Duration) {
        let mut skew = lock(&self.inner.skew);
        *skew = skew.saturating_add(by);
    }

    /// Issues tokens to `user` for the configured client without the
    /// authorize step, for tests that need a token and not the flow. Not
    /// counted in [`TokenStats`]. No `scopes`: every configured scope.
    pub fn issue_tokens(&self, user: &str, scopes: &[&str]) -> TokenResponse {
        let scopes = if scopes.is_empty() {
            self.inner.config.scopes.clone()
        } else {
            scopes.iter().map(|scope| (*scope).to_owned()).collect()
        };
        let grant = Grant {
            user: user.to_owned(),
            client_id: self.inner.config.client_id.clone(),
            scopes,
            expires_at: None,
        };
        let mut store = lock(&self.inner.store);
        self.inner.issue(&mut store, &grant, RefreshIssue::New)
    }
}

impl ServerState {
    fn now(&self) -> Instant {
        Instant::now() + *lock(&self.skew)
    }

    fn expiry(&self, now: Instant, ttl_secs: u64) -> Option<Instant> {
        (ttl_secs > 0).then(|| now + Duration::from_secs(ttl_secs))
    }

    /// Issues an access token for `grant`'s user, client and scopes, and a
    /// refresh token as `refresh` says.
    fn issue(&self, store: &mut Store, grant: &Grant, refresh: RefreshIssue) -> TokenResponse {
        let now = self.now();
        store.forget_expired(now);
        let access_token = random_string(TOKEN_LENGTH);
        store.access_tokens.insert(
            access_token.clone(),
            Grant {
                expires_at: self.expiry(now, self.config.access_token_ttl_secs),
                ..grant.clone()
            },
        );
        let refresh_token = match refresh {
            RefreshIssue::New => {
                let token = random_string(TOKEN_LENGTH);
                store.refresh_tokens.insert(
                    token.clone(),
                    Grant {
                        expires_at: self.expiry(now, self.config.refresh_token_ttl_secs),
                        ..grant.clone()
                    },
                );
                Some(token)
            }
            RefreshIssue::Same(token) => Some(token),
            RefreshIssue::None => None,
        };
        TokenResponse {
            access_token,
            token_type: "bearer".to_owned(),
            expires_in: self.config.access_token_ttl_secs,
            refresh_token,
            scope: grant.scopes.join(" "),
        }
    }

    fn count(&self, outcome: Result<GrantType, ()>) {
        let mut stats = lock(&self.stats);
        match outcome {
            Ok(GrantType::AuthorizationCode) => stats.authorization_code += 1,
            Ok(GrantType::RefreshToken) => stats.refresh_token += 1,
            Err(()) => stats.refused += 1,
        }
    }
}

impl Store {
    /// Forgets codes past their expiry and tokens expired long ago.
    fn forget_expired(&mut self, now: Instant) {
        self.codes.retain(|_, code| !code.grant.expired(now));
        let keep = |grant: &Grant| {
            grant
                .expires_at
                .is_none_or(|at| now.saturating_duration_since(at) < FORGET_AFTER)
        };
        self.access_tokens.retain(|_, grant| keep(grant));
        self.refresh_tokens.retain(|_, grant| keep(grant));
    }
}

enum RefreshIssue {
    New,
    Same(String),
    None,
}

#[derive(Clone, Copy)]
enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

fn random_string(length: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

/// Space-separated scopes, in order, without repeats.
fn split_scopes(raw: &str) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split_whitespace() {
        if !scopes.iter().any(|known| known == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

/// Reads `name=value` pairs; a repeated name is refused (RFC 6749 §3.1).
fn unique_params(
    pairs: impl Iterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, String> {
    let mut params = BTreeMap::new();
    for (name, value) in pairs {
        if params.contains_key(&name) {
            return Err(format!("Parameter {name} is repeated"));
        }
        params.insert(name, value);
    }
    Ok(params)
}

// ---------------------------------------------------------------- authorize

/// An authorize error answered directly, without a redirect.
fn authorize_refusal(error: &str, description: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// A 302 to `uri` with `params` added to its query.
fn redirect(mut uri: url::Url, params: &[(&str, &str)]) -> Response {
    uri.query_pairs_mut().extend_pairs(params);
    match HeaderValue::from_str(uri.as_str()) {
        Ok(location) => (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The URI without its query and fragment, for matching registered URIs.
fn without_query(uri: &url::Url) -> String {
    let mut bare = uri.clone();
    bare.set_query(None);
    bare.set_fragment(None);
    bare.to_string()
}

async fn authorize(
    State(server): State<Arc<ServerState>>,
    RawQuery(raw_query): RawQuery,
) -> Response {
    let params = match unique_params(
        form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes()).into_owned(),
    ) {
        Ok(params) => params,
        Err(description) => return authorize_refusal("invalid_request", description),
    };
    let config = &server.config;
    let param = |name: &str| params.get(name).map(String::as_str);

    match param("client_id") {
        None | Some("") => {
            return authorize_refusal("invalid_request", "client_id is required".to_owned());
        }
        Some(id) if id != config.client_id => {
            return authorize_refusal("invalid_client", format!("Unknown client: {id}"));
        }
        Some(_) => {}
    }

    let explicit_redirect = param("redirect_uri").filter(|uri| !uri.is_empty());
    let Some(redirect_text) =
        explicit_redirect.or(config.redirect_uris.first().map(String::as_str))
    else {
        return authorize_refusal(
            "invalid_request",
            "redirect_uri is required: the client has no registered one".to_owned(),
        );
    };
    let redirect_uri = match url::Url::parse(redirect_text) {
        Ok(uri) if uri.fragment().is_none() => uri,
        _ => {
            return authorize_refusal(
                "invalid_request",
                format!("redirect_uri must be an absolute URI without a fragment: {redirect_text}"),
            );
        }
    };
    if !config.redirect_uris.is_empty() {
        let bare = without_query(&redirect_uri);
        let registered = config.redirect_uris.iter().any(|registered| {
            url::Url::parse(registered).is_ok_and(|registered| without_query(&registered) == bare)
        });
        if !registered {
            return authorize_refusal(
                "invalid_request",
                format!("redirect_uri does not match the registered one: {redirect_text}"),
            );
        }
    }

    let user = match param("sandbox_user") {
        Some(name) => config.users.iter().find(|user| *user == name),
        None => config.users.first(),
    };
    let Some(user) = user.cloned() else {
        return authorize_refusal(
            "invalid_request",
            format!(
                "No simulated user {}; configured: {}",
                param("sandbox_user").unwrap_or_default(),
                config.users.join(", ")
            ),
        );
    };

    let state = param("state");
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            pairs.push(("state", state));
        }
        redirect(redirect_uri.clone(), &pairs)
    };
    match param("response_type") {
        None | Some("") => return fail("invalid_request", "response_type is required"),
        Some("code") => {}
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "Only the authorization code grant (response_type=code) is supported",
            );
        }
    }
    let requested = split_scopes(param("scope").unwrap_or_default());
    if !config.scopes.is_empty()
        && let Some(unknown) = requested
            .iter()
            .find(|scope| !config.scopes.contains(scope))
    {
        return fail("invalid_scope", &format!("Invalid scope: {unknown}"));
    }
    match param("sandbox_decision") {
        None | Some("approve") => {}
        Some("deny") => return fail("access_denied", "User denied access"),
        Some(other) => {
            return fail(
                "invalid_request",
                &format!("sandbox_decision must be approve or deny, got {other}"),
            );
        }
    }

    let scopes = if requested.is_empty() {
        config.scopes.clone()
    } else {
        requested
    };
    let code = random_string(CODE_LENGTH);
    let now = server.now();
    {
        let mut store = lock(&server.store);
        store.forget_expired(now);
        store.codes.insert(
            code.clone(),
            Code {
                grant: Grant {
                    user,
                    client_id: config.client_id.clone(),
                    scopes,
                    expires_at: Some(now + Duration::from_secs(config.code_ttl_secs)),
                },
                redirect_uri: redirect_text.to_owned(),
                explicit_redirect: explicit_redirect.is_some(),
            },
        );
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    redirect(redirect_uri, &pairs)
}

// -------------------------------------------------------------------- token

/// A token endpoint error (RFC 6749 §5.2).
struct TokenError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// `WWW-Authenticate: Basic` on a 401 for a client expected to use Basic.
    basic_challenge: bool,
}

impl TokenError {
    fn bad_request(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    fn invalid_client(description: &str, basic_challenge: bool) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.to_owned(),
            basic_challenge,
        }
    }
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        if self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth\""),
            );
        }
        response
    }
}

async fn token(
    State(server): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = exchange(&server, &headers, &body);
    server.count(
        outcome
            .as_ref()
            .map(|(grant_type, _)| *grant_type)
            .map_err(|_| ()),
    );
    match outcome {
        Ok((_, tokens)) => (
            StatusCode::OK,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(tokens),
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

/// Reads the request's fields: a JSON object or a form.
fn token_fields(headers: &HeaderMap, body: &[u8]) -> Result<BTreeMap<String, String>, TokenError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase());
    let media_type = content_type
        .as_deref()
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or("application/x-www-form-urlencoded");
    match media_type {
        "application/x-www-form-urlencoded" => {
            unique_params(form_urlencoded::parse(body).into_owned())
                .map_err(|description| TokenError::bad_request("invalid_request", description))
        }
        "application/json" => {
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
                .map_err(|_| {
                TokenError::bad_request("invalid_request", "The body must be a JSON object")
            })?;
            object
                .into_iter()
                .map(|(name, value)| match value {
                    serde_json::Value::String(text) => Ok((name, text)),
                    serde_json::Value::Number(number) => Ok((name, number.to_string())),
                    _ => Err(TokenError::bad_request(
                        "invalid_request",
                        format!("Field {name} must be a string"),
                    )),
                })
                .collect()
        }
        other => Err(TokenError::bad_request(
            "invalid_request",
            format!(
                "Unsupported content type {other}: send application/x-www-form-urlencoded or application/json"
            ),
        )),
    }
}

/// The client credentials of a Basic header, when it has one.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let value = String::from_utf8_lossy(value.as_bytes());
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ())?;
        let text = String::from_utf8(bytes).map_err(|_| ())?;
        let (id, secret) = text.split_once(':').ok_or(())?;
        // RFC 6749 §2.3.1: both are form-encoded before joining.
        let unescape = |part: &str| {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        Ok((unescape(id), unescape(secret)))
    };
    Some(decode())
}

/// Checks the client's credentials as the server's [`ClientAuth`] says.
fn authenticate_client(
    server: &ServerState,
    headers: &HeaderMap,
    fields: &BTreeMap<String, String>,
) -> Result<(), TokenError> {
    let expects_basic = server.client_auth == ClientAuth::BasicHeader;
    let from_header = basic_credentials(headers);
    let credentials = match (server.client_auth, from_header) {
        (ClientAuth::BasicHeader | ClientAuth::Either, Some(Ok(credentials))) => credentials,
        (ClientAuth::BasicHeader | ClientAuth::Either, Some(Err(()))) => {
            return Err(TokenError::invalid_client(
                "Malformed Basic client credentials",
                true,
            ));
        }
        (ClientAuth::BasicHeader, None) => {
            return Err(TokenError::invalid_client(
                "Client authentication with HTTP Basic is required",
                true,
            ));
        }
        (ClientAuth::BodyFields, _) | (ClientAuth::Either, None) => {
            match (fields.get("client_id"), fields.get("client_secret")) {
                (Some(id), Some(secret)) => (id.clone(), secret.clone()),
                _ => {
                    return Err(TokenError::invalid_client(
                        "client_id and client_secret are required",
                        false,
                    ));
                }
            }
        }
    };
    let (id, secret) = credentials;
    if id != server.config.client_id || secret != server.config.client_secret {
        return Err(TokenError::invalid_client(
            "Bad client credentials",
            expects_basic,
        ));
    }
    // A client_id field beside Basic credentials must name the same client.
    if let Some(field) = fields.get("client_id")
        && *field != id
    {
        return Err(TokenError::invalid_client(
            "client_id does not match the client credentials",
            expects_basic,
        ));
    }
    Ok(())
}

/// Narrows `granted` to the `scope` field when sent.
fn narrowed(
    granted: &[String],
    fields: &BTreeMap<String, String>,
) -> Result<Vec<String>, TokenError> {
    let requested = split_scopes(fields.get("scope").map_or("", String::as_str));
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    match requested.iter().find(|scope| !granted.contains(scope)) {
        Some(scope) => Err(TokenError::bad_request(
            "invalid_scope",
            format!("Scope not granted: {scope}"),
        )),
        None => Ok(requested),
    }
}

fn required<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, TokenError> {
    fields
        .get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| TokenError::bad_request("invalid_request", format!("{name} is required")))
}

fn exchange(
    server: &ServerState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(GrantType, TokenResponse), TokenError> {
    let fields = token_fields(headers, body)?;
    authenticate_client(server, headers, &fields)?;
    let client_id = &server.config.client_id;
    let now = server.now();
    match required(&fields, "grant_type")? {
        "authorization_code" => {
            let code = required(&fields, "code")?;
            let mut store = lock(&server.store);
            // Any attempt uses the code up.
            let code = store
                .codes
                .remove(code)
                .ok_or_else(|| TokenError::invalid_grant("Invalid authorization code"))?;
            if code.grant.expired(now) {
                return Err(TokenError::invalid_grant("Authorization code expired"));
            }
            if code.grant.client_id != *client_id {
                return Err(TokenError::invalid_grant(
                    "Authorization code issued to another client",
                ));
            }
            match fields.get("redirect_uri").filter(|uri| !uri.is_empty()) {
                Some(uri) if *uri != code.redirect_uri => {
                    return Err(TokenError::invalid_grant("Redirect URI mismatch"));
                }
                None if code.explicit_redirect => {
                    return Err(TokenError::invalid_grant(
                        "redirect_uri is required: the authorization request had one",
                    ));
                }
                _ => {}
            }
            let grant = Grant {
                scopes: narrowed(&code.grant.scopes, &fields)?,
                ..code.grant
            };
            Ok((
                GrantType::AuthorizationCode,
                server.issue(&mut store, &grant, RefreshIssue::New),
            ))
        }
        "refresh_token" => {
            let token = required(&fields, "refresh_token")?;
            let mut store = lock(&server.store);
            let refresh = store
                .refresh_tokens
                .get(token)
                .cloned()
                .ok_or_else(|| TokenError::invalid_grant("Invalid refresh token"))?;
            if refresh.expired(now) {
                store.refresh_tokens.remove(token);
                return Err(TokenError::invalid_grant("Refresh token expired"));
            }
            if refresh.client_id != *client_id {
                return Err(TokenError::invalid_grant(
                    "Refresh token issued to another client",
                ));
            }
            let grant = Grant {
                scopes: narrowed(&refresh.scopes, &fields)?,
                ..refresh.clone()
            };
            let config = &server.config;
            let issue = if !config.refresh_returns_refresh_token {
                RefreshIssue::None
            } else if config.rotate_refresh_tokens {
                store.refresh_tokens.remove(token);
                RefreshIssue::New
            } else {
                RefreshIssue::Same(token.to_owned())
            };
            let tokens = server.issue(&mut store, &grant, issue);
            if let (Some(new), true) = (&tokens.refresh_token, config.rotate_refresh_tokens) {
                // The new refresh token keeps the original grant's scopes.
                if let Some(entry) = store.refresh_tokens.get_mut(new) {
                    entry.scopes = refresh.scopes;
                }
            }
            Ok((GrantType::RefreshToken, tokens))
        }
        other => Err(TokenError::bad_request(
            "unsupported_grant_type",
            format!("Unsupported grant type: {other}"),
        )),
    }
}

// ------------------------------------------------------------------ control

async fn control_stats(State(server): State<OAuthServer>) -> Json<TokenStats> {
    Json(server.token_stats())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: u64,
}

async fn control_advance(
    State(server): State<OAuthServer>,
    Json(advance): Json<Advance>,
) -> StatusCode {
    server.advance_time(Duration::from_secs(advance.seconds));
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Revoke {
    user: String,
}

async fn control_revoke(
    State(server): State<OAuthServer>,
    Json(revoke): Json<Revoke>,
) -> StatusCode {
    server.revoke_user(&revoke.user);
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(config: OAuthConfig, client_auth: ClientAuth) -> OAuthServer {
        OAuthServer::new(config, client_auth)
    }

    /// The authorize answer's `Location` parameters.
    async fn authorize_params(server: &OAuthServer, query: &str) -> BTreeMap<String, String> {
        let response = authorize(
            State(server.inner.clone()),
            RawQuery(Some(query.to_owned())),
        )
        .await;
        assert_eq!(response.status(), StatusCode::FOUND);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        url::Url::parse(location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    fn error_of(
        outcome: Result<(GrantType, TokenResponse), TokenError>,
    ) -> (StatusCode, &'static str) {
        match outcome {
            Ok(_) => panic!("expected an error"),
            Err(error) => (error.status, error.error),
        }
    }

    #[tokio::test]
    async fn body_credentials_registered_redirects_and_tokens_that_never_expire() {
        let server = server(
            OAuthConfig {
                redirect_uris: vec!["https://client.example/cb".to_owned()],
                access_token_ttl_secs: 0,
                scopes: vec!["Investments".to_owned(), "BidsRead".to_owned()],
                ..OAuthConfig::default()
            },
            ClientAuth::BodyFields,
        );
        // No redirect_uri: the registered one; no state: none back.
        let params = authorize_params(
            &server,
            "response_type=code&client_id=sandbox-client&scope=Investments",
        )
        .await;
        assert!(!params.contains_key("state"));
        let code = &params["code"];

        // Basic credentials are not what this server takes.
        let mut basic = json_headers();
        basic.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic c2FuZGJveC1jbGllbnQ6c2FuZGJveC1zZWNyZXQ="),
        );
        let body = json!({"grant_type": "authorization_code", "code": code}).to_string();
        assert_eq!(
            error_of(exchange(&server.inner, &basic, body.as_bytes())),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        // The code survives a client that failed to authenticate.
        let body = json!({
            "grant_type": "authorization_code", "code": code,
            "client_id": "sandbox-client", "client_secret": "sandbox-secret",
            "redirect_uri": "https://client.example/cb",
        })
        .to_string();
        let (_, tokens) = exchange(&server.inner, &json_headers(), body.as_bytes())
            .unwrap_or_else(|error| panic!("{}", error.description));
        assert_eq!(tokens.expires_in, 0);
        assert_eq!(tokens.scope, "Investments");
        assert!(!format!("{tokens:?}").contains(&tokens.access_token));

        server.advance_time(Duration::from_secs(10 * 365 * 24 * 3600));
        let access = server.access(&bearer(&tokens.access_token)).unwrap();
        assert_eq!(access.user, "alice");
        assert!(access.has_scope("Investments") && !access.has_scope("BidsRead"));
    }

    #[tokio::test]
    async fn either_takes_the_header_or_the_fields() {
        let server = server(OAuthConfig::default(), ClientAuth::Either);
        for basic in [true, false] {
            let params = authorize_params(
                &server,
                "response_type=code&client_id=sandbox-client&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&state=a%2Bb",
            )
            .await;
            assert_eq!(params["state"], "a+b");
            let mut headers = HeaderMap::new();
            let mut body = format!(
                "grant_type=authorization_code&code={}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb",
                params["code"]
            );
            if basic {
                headers.insert(
                    header::AUTHORIZATION,
                    HeaderValue::from_static("Basic c2FuZGJveC1jbGllbnQ6c2FuZGJveC1zZWNyZXQ="),
                );
            } else {
                body.push_str("&client_id=sandbox-client&client_secret=sandbox-secret");
            }
            assert!(exchange(&server.inner, &headers, body.as_bytes()).is_ok());
        }
        let mut multipart = HeaderMap::new();
        multipart.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        );
        assert_eq!(
            error_of(exchange(&server.inner, &multipart, b"--x--")),
            (StatusCode::BAD_REQUEST, "invalid_request")
        );
    }

    #[tokio::test]
    async fn refresh_tokens_expire_and_users_can_be_revoked() {
        let server = server(
            OAuthConfig {
                access_token_ttl_secs: 10,
                refresh_token_ttl_secs: 100,
                ..OAuthConfig::default()
            },
            ClientAuth::BodyFields,
        );
        let tokens = server.issue_tokens("alice", &[]);
        let refresh = |token: &str| {
            let body = format!(
                "grant_type=refresh_token&refresh_token={token}&client_id=sandbox-client&client_secret=sandbox-secret"
            );
            exchange(&server.inner, &HeaderMap::new(), body.as_bytes())
        };
        assert_eq!(
            server.authenticate(&bearer(&tokens.access_token)).unwrap(),
            "alice"
        );
        server.advance_time(Duration::from_secs(11));
        assert_eq!(
            server.authenticate(&bearer(&tokens.access_token)),
            Err(TokenProblem::Expired)
        );
        assert_eq!(
            server.authenticate(&bearer("nope")),
            Err(TokenProblem::Invalid)
        );
        assert_eq!(
            server.authenticate(&HeaderMap::new()),
            Err(TokenProblem::Missing)
        );

        let refresh_token = tokens.refresh_token.unwrap();
        let (_, renewed) = refresh(&refresh_token).unwrap_or_else(|e| panic!("{}", e.description));
        server.advance_time(Duration::from_secs(101));
        let old = renewed.refresh_token.unwrap();
        assert_eq!(
            error_of(refresh(&old)),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );

        let tokens = server.issue_tokens("bob", &[]);
        server.revoke_user("bob");
        assert_eq!(
            server.authenticate(&bearer(&tokens.access_token)),
            Err(TokenProblem::Invalid)
        );
        assert_eq!(
            error_of(refresh(&tokens.refresh_token.unwrap())),
            (StatusCode::BAD_REQUEST, "invalid_grant")
        );
    }

    #[test]
    fn config_reads_over_given_defaults() {
        let defaults = OAuthConfig {
            client_id: "mujrobot".to_owned(),
            ..OAuthConfig::default()
        };
        let config =
            OAuthConfig::deserialize_over(defaults.clone(), json!({"access_token_ttl_secs": 5}))
                .unwrap();
        assert_eq!(config.client_id, "mujrobot");
        assert_eq!(config.access_token_ttl_secs, 5);
        assert!(OAuthConfig::deserialize_over(defaults, json!({"nope": 1})).is_err());
    }
}
