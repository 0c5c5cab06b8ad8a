//! The HTTP client every adapter uses: one [`Upstream`] per provider instance.

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;
use url::Url;

use super::middleware::{BearerSigner, RequestContext, ThrottleMiddleware};
use super::observe::MetricsMiddleware;
use super::policy::{ANONYMOUS, BucketKey, ResolvedPolicy, ThrottlePolicy};
use super::throttle::Throttle;
use crate::error::{Error, ErrorKind, Result};
use crate::id::ProviderId;
use crate::registry::FactoryContext;
use crate::resilience::{BreakerMiddleware, Resilience, RetryMiddleware};

/// How to reach one platform.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// The API root; may carry a path prefix (`https://api.example.com/api/v1/`).
    pub base_url: Url,
    /// Sent on every request; platforms ask for `app/version (url)`.
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Per attempt, from connecting until the body is read; also the default deadline.
    pub request_timeout: Duration,
    pub throttle: ThrottlePolicy,
}

impl UpstreamConfig {
    /// A config with the usual timeouts (5 s connect, 30 s request) and no throttle.
    pub fn new(base_url: Url, user_agent: impl Into<String>) -> Self {
        UpstreamConfig {
            base_url,
            user_agent: user_agent.into(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            throttle: ThrottlePolicy::default(),
        }
    }
}

/// The HTTP client for one provider instance: base URL, timeouts, `User-Agent`,
/// gzip/deflate, and the throttle in front of every attempt. Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    provider: ProviderId,
    base_url: Url,
    request_timeout: Duration,
    client: reqwest_middleware::ClientWithMiddleware,
    policy: ResolvedPolicy,
    throttle: Arc<dyn Throttle>,
}

impl Upstream {
    /// Builds the client; fails with `INVALID_INPUT` naming the config key when
    /// the base URL, user agent or throttle policy is unusable.
    ///
    /// Retries and the circuit breaker use default settings and a breaker of
    /// this client's own; adapters use [`Upstream::from_context`], which shares
    /// the gateway's (configured, and shown in `providers { health }`).
    pub fn new(
        provider: ProviderId,
        config: UpstreamConfig,
        throttle: Arc<dyn Throttle>,
    ) -> Result<Self> {
        Upstream::with_resilience(provider, config, throttle, &Resilience::default())
    }

    /// The client of a provider built by a factory: the gateway's throttle,
    /// retry settings and circuit breaker for `provider`.
    pub fn from_context(
        provider: ProviderId,
        config: UpstreamConfig,
        context: &FactoryContext,
    ) -> Result<Self> {
        Upstream::with_resilience(
            provider,
            config,
            context.throttle.clone(),
            &context.resilience,
        )
    }

    fn with_resilience(
        provider: ProviderId,
        config: UpstreamConfig,
        throttle: Arc<dyn Throttle>,
        resilience: &Resilience,
    ) -> Result<Self> {
        let mut base_url = config.base_url;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(Error::invalid_input(
                "base_url",
                format!("{provider}: base_url must be an http or https URL"),
            ));
        }
        // A base without a trailing slash still names a directory: `/api/v1` + `loans`
        // must give `/api/v1/loans`, not `/api/loans`.
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        let policy = ResolvedPolicy::new(&config.throttle)?;
        let user_agent = HeaderValue::from_str(&config.user_agent).map_err(|_| {
            Error::invalid_input(
                "user_agent",
                format!("{provider}: user_agent must be visible ASCII"),
            )
        })?;
        let client = reqwest::Client::builder()
            .user_agent(user_agent)
            .gzip(true)
            .deflate(true)
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // APIs answer, they don't redirect; following a redirect could turn a
            // POST into a GET or carry a request somewhere unexpected.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                Error::internal(format!("{provider}: could not build the HTTP client: {e}"))
            })?;
        let settings = resilience.settings();
        // Outermost first: a retry goes through the breaker, then the throttle.
        let client = reqwest_middleware::ClientBuilder::new(client)
            .with(RetryMiddleware {
                settings: settings.retry.clone(),
                min_request_time: settings.min_request_time,
            })
            .with(BreakerMiddleware {
                breaker: resilience.breaker(&provider),
            })
            .with(ThrottleMiddleware {
                throttle: throttle.clone(),
                min_request_time: settings.min_request_time,
            })
            .with(MetricsMiddleware)
            .build();
        Ok(Upstream {
            inner: Arc::new(Inner {
                provider,
                base_url,
                request_timeout: config.request_timeout,
                client,
                policy,
                throttle,
            }),
        })
    }

    pub fn provider(&self) -> &ProviderId {
        &self.inner.provider
    }

    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// The throttle shared by this client (for status pages, or to pause a bucket
    /// on a platform-specific signal).
    pub fn throttle(&self) -> &Arc<dyn Throttle> {
        &self.inner.throttle
    }

    /// The bucket a request to `endpoint` with `credential` spends from, if throttled.
    pub fn bucket_for(&self, endpoint: &'static str, credential: &str) -> Option<BucketKey> {
        self.inner
            .policy
            .bucket_for(&self.inner.provider, endpoint, &Arc::from(credential))
    }

    /// Starts a request.
    ///
    /// `endpoint` is the path template (`/loans/{id}`): it picks the throttle
    /// bucket and names the request in traces. `path` is the concrete path
    /// (`/loans/123`), joined under the base URL; each `/`-separated segment is
    /// percent-encoded here, so pass raw values and put parameters in
    /// [`UpstreamRequest::query`], never in `path`.
    pub fn request(&self, method: Method, endpoint: &'static str, path: &str) -> UpstreamRequest {
        let builder = join(&self.inner.base_url, path)
            .map(|url| self.inner.client.request(method.clone(), url))
            .map_err(|e| e.with_provider(&self.inner.provider));
        UpstreamRequest {
            upstream: self.clone(),
            method,
            endpoint,
            path: path.to_owned(),
            builder,
            credential: None,
            deadline: None,
            signer: None,
        }
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.inner.base_url;
        f.debug_struct("Upstream")
            .field("provider", &self.inner.provider)
            .field(
                "base_url",
                &format_args!(
                    "{}://{}{}",
                    url.scheme(),
                    url.host_str().unwrap_or(""),
                    url.path()
                ),
            )
            .finish_non_exhaustive()
    }
}

/// Joins a concrete path under the base URL, keeping the base's path prefix.
fn join(base: &Url, path: &str) -> Result<Url> {
    if path.contains(['?', '#']) {
        return Err(Error::internal(
            "an upstream path must not carry a query or fragment; use UpstreamRequest::query",
        ));
    }
    let mut url = base.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| Error::internal("the base URL cannot take a path"))?;
        segments.pop_if_empty();
        for segment in path.trim_start_matches('/').split('/') {
            if segment == "." || segment == ".." {
                return Err(Error::internal(format!(
                    "an upstream path must not contain `{segment}` segments"
                )));
            }
            segments.push(segment);
        }
    }
    Ok(url)
}

/// One request being built. Nothing is sent until [`send`](Self::send).
///
/// Builder mistakes (an invalid header, a body that does not serialize) surface
/// as an `INTERNAL` error from `send`, so call chains stay fluent.
pub struct UpstreamRequest {
    upstream: Upstream,
    method: Method,
    endpoint: &'static str,
    path: String,
    builder: Result<reqwest_middleware::RequestBuilder>,
    credential: Option<Arc<str>>,
    deadline: Option<Instant>,
    signer: Option<BearerSigner>,
}

impl fmt::Debug for UpstreamRequest {
    /// Method, endpoint and path only: headers and query may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamRequest")
            .field("provider", &self.upstream.inner.provider)
            .field("method", &self.method)
            .field("endpoint", &self.endpoint)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl UpstreamRequest {
    fn map(
        mut self,
        f: impl FnOnce(reqwest_middleware::RequestBuilder) -> reqwest_middleware::RequestBuilder,
    ) -> Self {
        self.builder = self.builder.map(f);
        self
    }

    fn fail(mut self, error: Error) -> Self {
        if self.builder.is_ok() {
            self.builder = Err(error.with_provider(&self.upstream.inner.provider));
        }
        self
    }

    /// Appends query parameters (e.g. `&[("page", "2")]`).
    pub fn query<T: Serialize + ?Sized>(self, query: &T) -> Self {
        self.map(|b| b.query(query))
    }

    /// Adds a header (appended; a name may repeat).
    pub fn header<K, V>(self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<http::Error>,
    {
        self.map(|b| b.header(name, value))
    }

    /// `Authorization: Bearer <token>`, marked sensitive so it never shows in
    /// `Debug` output or logs.
    pub fn bearer(self, token: &str) -> Self {
        match HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.map(|b| b.header(AUTHORIZATION, value))
            }
            // The message must not echo the token.
            Err(_) => self.fail(Error::internal(
                "the bearer token contains characters not allowed in a header",
            )),
        }
    }

    /// `Authorization: Bearer <token>` with a token `sign` makes right before
    /// each attempt goes out: after the throttle's wait and again for a retry.
    /// For platforms whose tokens carry the time they were made (Bongloy's
    /// signed JWTs), which a wait in the throttle would otherwise let go stale.
    /// The header is marked sensitive; a failing `sign` fails the request
    /// with its error, unsent.
    pub fn bearer_per_attempt(
        mut self,
        sign: impl Fn() -> Result<String> + Send + Sync + 'static,
    ) -> Self {
        self.signer = Some(BearerSigner(Arc::new(sign)));
        self
    }

    /// `Authorization: Basic base64(user:password)`, marked sensitive.
    pub fn basic_auth(self, user: &str, password: &secrecy::SecretString) -> Self {
        use base64::Engine;
        use secrecy::ExposeSecret;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose_secret()));
        match HeaderValue::from_str(&format!("Basic {encoded}")) {
            Ok(mut value) => {
                value.set_sensitive(true);
                self.map(|b| b.header(AUTHORIZATION, value))
            }
            Err(_) => self.fail(Error::internal(
                "client credentials are not valid in a header",
            )),
        }
    }

    /// A JSON body (`Content-Type: application/json`).
    pub fn json<T: Serialize + ?Sized>(self, body: &T) -> Self {
        self.map(|b| b.json(body))
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form<T: Serialize + ?Sized>(self, body: &T) -> Self {
        self.map(|b| b.form(body))
    }

    /// Which throttle buckets this request spends from: a stable id of the
    /// credential (a connection id), never the secret. Default `anonymous`.
    pub fn credential(mut self, id: &str) -> Self {
        self.credential = Some(Arc::from(id));
        self
    }

    /// When an answer stops being useful: the throttle refuses waits past it and
    /// the request is abandoned at it. Default: now + `request_timeout`.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sends the request and reads the body: throttled, refused at once while
    /// the provider's circuit is open, and (reads only) retried on 429 and on
    /// transient failures within the deadline; see [`crate::resilience`].
    pub async fn send(self) -> Result<UpstreamResponse> {
        let started = Instant::now();
        let inner = self.upstream.inner.clone();
        let deadline = self
            .deadline
            .unwrap_or_else(|| started + inner.request_timeout);
        // At info level so trace exporters see it; its events stay at debug.
        let span = tracing::info_span!(
            "upstream_request",
            provider = %inner.provider,
            endpoint = self.endpoint,
            method = %self.method,
            status = Empty,
            elapsed_ms = Empty,
            attempt = Empty,
            error = Empty,
        );
        let credential = self.credential.unwrap_or_else(|| Arc::from(ANONYMOUS));
        let context = RequestContext {
            provider: inner.provider.clone(),
            endpoint: self.endpoint,
            bucket: inner
                .policy
                .bucket_for(&inner.provider, self.endpoint, &credential),
            deadline,
            signer: self.signer,
        };
        let method = self.method;
        let path = self.path;
        let builder = self.builder;
        let provider = inner.provider.clone();

        let result = async {
            let builder = builder?.with_extension(context);
            if deadline <= started {
                // Spending a token on an answer nobody waits for would starve live callers.
                return Err(Error::upstream_unavailable(format!(
                    "{provider} {method} {path} not sent: the caller's deadline had already passed"
                ))
                .with_provider(&provider));
            }
            let exchange = async {
                let response = builder.send().await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest_middleware::Error>((status, headers, body))
            };
            match tokio::time::timeout_at(deadline, exchange).await {
                Ok(Ok((status, headers, body))) => Ok(UpstreamResponse {
                    status,
                    headers,
                    body,
                    provider: provider.clone(),
                    method: method.clone(),
                    path: path.clone(),
                }),
                Ok(Err(e)) => Err(transport_error(e, &provider, &method, &path, started)),
                Err(_) => Err(Error::upstream_unavailable(format!(
                    "{provider} {method} {path} timed out after {} ms (deadline)",
                    started.elapsed().as_millis()
                ))
                .with_provider(&provider)),
            }
        }
        .instrument(span.clone())
        .await;

        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.record("elapsed_ms", elapsed_ms);
        let _entered = span.enter();
        match &result {
            Ok(response) => {
                span.record("status", response.status.as_u16());
                tracing::debug!("upstream request finished");
            }
            Err(error) => {
                span.record("error", error.code());
                tracing::debug!(reason = %error, "upstream request failed");
            }
        }
        result
    }
}

/// Maps a transport failure; never uses the reqwest error's own text, which
/// carries the URL with its query string.
fn transport_error(
    error: reqwest_middleware::Error,
    provider: &ProviderId,
    method: &Method,
    path: &str,
    started: Instant,
) -> Error {
    let error = match error {
        reqwest_middleware::Error::Middleware(error) => {
            return match error.downcast::<Error>() {
                Ok(error) => error.with_provider(provider),
                Err(_) => Error::internal(format!(
                    "{provider} {method} {path}: an HTTP middleware failed"
                ))
                .with_provider(provider),
            };
        }
        reqwest_middleware::Error::Reqwest(error) => error,
    };
    let cause = root_cause(&error);
    let message = if error.is_timeout() {
        format!(
            "{provider} {method} {path} timed out after {} ms",
            started.elapsed().as_millis()
        )
    } else if error.is_builder() {
        return Error::internal(format!(
            "{provider} {method} {path}: the request could not be built{cause}"
        ))
        .with_provider(provider);
    } else if error.is_connect() {
        format!("could not connect to {provider} for {method} {path}{cause}")
    } else if error.is_body() || error.is_decode() {
        format!("reading the response of {provider} {method} {path} failed{cause}")
    } else {
        format!("{provider} {method} {path} failed{cause}")
    };
    Error::upstream_unavailable(message).with_provider(provider)
}

/// `": <innermost cause>"`, skipping the reqwest error itself (its text has the URL).
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause = error.source();
    let mut innermost = None;
    while let Some(c) = cause {
        innermost = Some(c);
        cause = c.source();
    }
    innermost.map_or_else(String::new, |c| format!(": {c}"))
}

/// A platform's answer, body fully read.
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    provider: ProviderId,
    method: Method,
    path: String,
}

impl fmt::Debug for UpstreamResponse {
    /// Status and sizes only: bodies can hold tokens (OAuth answers) or personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamResponse")
            .field("provider", &self.provider)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl UpstreamResponse {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// A header's value, if present and visible ASCII.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// Decodes the body as JSON. A failure is `UPSTREAM_PROTOCOL_ERROR` saying
    /// what failed and where (JSON path, line, column), with values from the
    /// body redacted.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let mut deserializer = serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|e| {
                let path = e.path().to_string();
                self.decode_error(e.inner(), Some(path))
            })
            .and_then(|value: T| {
                deserializer
                    .end()
                    .map_err(|e| self.decode_error(&e, None))?;
                Ok(value)
            })?;
        Ok(value)
    }

    fn decode_error(&self, error: &serde_json::Error, path: Option<String>) -> Error {
        let message = error.to_string();
        let position = format!(" at line {} column {}", error.line(), error.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        let at = match path.as_deref() {
            Some(path) if path != "." => format!(" at `{path}`"),
            _ => String::new(),
        };
        Error::upstream_protocol(format!(
            "could not decode the JSON response of {} {} {} ({}): {}{at} (line {}, column {})",
            self.provider,
            self.method,
            self.path,
            self.status.as_u16(),
            redact(message),
            error.line(),
            error.column()
        ))
        .with_provider(&self.provider)
    }

    /// The generic mapping of a status the adapter does not handle specially:
    /// 401 → `UNAUTHENTICATED`, 403 → `FORBIDDEN`, 404 → `NOT_FOUND`,
    /// 429 → `RATE_LIMITED`, 408 and 5xx → `UPSTREAM_UNAVAILABLE`, anything else
    /// (other 4xx, 3xx, a success the caller did not expect) → `UPSTREAM_PROTOCOL_ERROR`.
    /// The body is not quoted: it may hold personal data.
    pub fn into_default_error(self) -> Error {
        let status = self.status;
        let what = format!(
            "{} answered {} to {} {}",
            self.provider,
            status_text(status),
            self.method,
            self.path
        );
        let error = match status.as_u16() {
            401 => Error::new(ErrorKind::Unauthenticated, what),
            403 => Error::new(ErrorKind::Forbidden, what),
            404 => Error::new(ErrorKind::NotFound, what),
            429 => {
                let wait =
                    super::middleware::retry_after(&self.headers, std::time::SystemTime::now())
                        .unwrap_or(Duration::from_secs(1));
                Error::rate_limited(wait, what)
            }
            408 | 500..=599 => Error::upstream_unavailable(what),
            _ => Error::upstream_protocol(format!("{what} (unexpected status)")),
        };
        error.with_provider(&self.provider)
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Blanks out values serde quotes from the input (`invalid type: string "…"`),
/// keeping field and variant names, which come from our types.
fn redact(message: &str) -> String {
    let quoted_value = message.starts_with("invalid type") || message.starts_with("invalid value");
    let mut out = String::with_capacity(message.len());
    let mut inside: Option<char> = None;
    for c in message.chars() {
        match inside {
            Some(close) if c == close => {
                out.push('…');
                out.push(c);
                inside = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || (c == '`' && quoted_value) {
                    inside = Some(c);
                }
            }
        }
    }
    if inside.is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_base_path_prefix() {
        let base = Url::parse("http://host:8080/api/v1/").unwrap();
        assert_eq!(
            join(&base, "/loans/123").unwrap().as_str(),
            "http://host:8080/api/v1/loans/123"
        );
        assert_eq!(
            join(&base, "loans").unwrap().as_str(),
            "http://host:8080/api/v1/loans"
        );
        assert_eq!(
            join(&base, "/").unwrap().as_str(),
            "http://host:8080/api/v1/"
        );
        assert_eq!(
            join(&base, "/loans/a b").unwrap().as_str(),
            "http://host:8080/api/v1/loans/a%20b"
        );
        let root = Url::parse("http://host/").unwrap();
        assert_eq!(join(&root, "/loans").unwrap().as_str(), "http://host/loans");
        for bad in ["/loans?x=1", "/loans#top", "/../admin", "/loans/./x"] {
            assert_eq!(
                join(&base, bad).unwrap_err().kind,
                ErrorKind::Internal,
                "{bad}"
            );
        }
    }

    #[test]
    fn base_without_trailing_slash_is_a_directory() {
        let upstream = Upstream::new(
            ProviderId::new("bondora").unwrap(),
            UpstreamConfig::new(Url::parse("https://api.example.com/api/v1").unwrap(), "ua"),
            Arc::new(super::super::LocalThrottle::new()),
        )
        .unwrap();
        assert_eq!(
            upstream.base_url().as_str(),
            "https://api.example.com/api/v1/"
        );
        assert!(format!("{upstream:?}").contains("bondora"));
    }

    #[test]
    fn clients_and_sends_can_cross_threads() {
        fn assert_send<T: Send + Sync>(_: &T) {}
        let upstream = Upstream::new(
            ProviderId::new("zonky").unwrap(),
            UpstreamConfig::new(Url::parse("http://127.0.0.1:9/").unwrap(), "ua"),
            Arc::new(super::super::LocalThrottle::new()),
        )
        .unwrap();
        assert_send(&upstream);
        let send = upstream.request(Method::GET, "/loans", "/loans").send();
        fn assert_send_future<T: Send>(_: &T) {}
        assert_send_future(&send);
    }

    #[test]
    fn builder_mistakes_surface_from_send_without_secrets() {
        let upstream = Upstream::new(
            ProviderId::new("zonky").unwrap(),
            UpstreamConfig::new(Url::parse("http://127.0.0.1:9/").unwrap(), "ua"),
            Arc::new(super::super::LocalThrottle::new()),
        )
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = runtime
            .block_on(
                upstream
                    .request(Method::GET, "/loans", "/loans")
                    .bearer("s3cr3t\nX-Evil: 1")
                    .send(),
            )
            .unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
        assert!(!err.message.contains("s3cr3t"));
        let err = runtime
            .block_on(upstream.request(Method::GET, "/loans", "/loans?x=1").send())
            .unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
    }

    #[test]
    fn invalid_configs_name_the_key() {
        let id = ProviderId::new("zonky").unwrap();
        let throttle: Arc<dyn Throttle> = Arc::new(super::super::LocalThrottle::new());
        let err = Upstream::new(
            id.clone(),
            UpstreamConfig::new(Url::parse("ftp://x/").unwrap(), "ua"),
            throttle.clone(),
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("base_url"));
        let err = Upstream::new(
            id,
            UpstreamConfig::new(Url::parse("http://x/").unwrap(), "bad\nua"),
            throttle,
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("user_agent"));
    }

    fn response(status: u16, body: &str) -> UpstreamResponse {
        UpstreamResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            provider: ProviderId::new("zonky").unwrap(),
            method: Method::GET,
            path: "/loans/1".into(),
        }
    }

    #[test]
    fn default_errors_by_status() {
        for (status, code) in [
            (401, "UNAUTHENTICATED"),
            (403, "FORBIDDEN"),
            (404, "NOT_FOUND"),
            (429, "RATE_LIMITED"),
            (408, "UPSTREAM_UNAVAILABLE"),
            (500, "UPSTREAM_UNAVAILABLE"),
            (503, "UPSTREAM_UNAVAILABLE"),
            (400, "UPSTREAM_PROTOCOL_ERROR"),
            (422, "UPSTREAM_PROTOCOL_ERROR"),
            (302, "UPSTREAM_PROTOCOL_ERROR"),
        ] {
            let err = response(status, "{\"secret\":\"s3cr3t\"}").into_default_error();
            assert_eq!(err.code(), code, "{status}");
            assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
            assert!(err.message.contains(&status.to_string()), "{}", err.message);
            assert!(err.message.contains("/loans/1"));
            assert!(!err.message.contains("s3cr3t"));
        }
        let err = response(429, "").into_default_error();
        assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Loan {
        id: u64,
        amount: u32,
    }

    #[test]
    fn json_errors_say_where_and_hide_values() {
        let ok: Vec<Loan> = response(200, r#"[{"id": 1, "amount": 5}]"#).json().unwrap();
        assert_eq!(ok.len(), 1);

        let err = response(200, "[{\"id\": 1,\n \"amount\": \"hunter2\"}]")
            .json::<Vec<Loan>>()
            .unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_PROTOCOL_ERROR");
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
        assert!(err.message.contains("`[0].amount`"), "{}", err.message);
        assert!(err.message.contains("line 2"), "{}", err.message);
        assert!(err.message.contains("GET /loans/1"), "{}", err.message);
        assert!(!err.message.contains("hunter2"), "{}", err.message);

        let err = response(200, "{\"id\": 1").json::<Loan>().unwrap_err();
        assert!(err.message.contains("EOF"), "{}", err.message);

        let err = response(200, r#"{"id": 1, "amount": 2} trailing"#)
            .json::<Loan>()
            .unwrap_err();
        assert!(err.message.contains("trailing"), "{}", err.message);

        let err = response(200, r#"{"id": 1, "amount": 99999999999}"#)
            .json::<Loan>()
            .unwrap_err();
        assert!(!err.message.contains("99999999999"), "{}", err.message);
    }

    #[test]
    fn debug_output_hides_bodies() {
        let debug = format!("{:?}", response(200, "{\"token\":\"s3cr3t\"}"));
        assert!(!debug.contains("s3cr3t"));
        assert!(debug.contains("200"));
    }
}
