//! The upstream client and its throttle against small local servers: a strict
//! token bucket, 429s with `Retry-After`, slow and dropped connections, odd bodies.

// Helpers outside `#[test]` fns (servers, clients) may panic too: this is test code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Named so that `cargo test -p finmesh-core upstream` selects these too.
mod upstream {
    use std::io::Write as _;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{any, get};
    use finmesh_core::ProviderId;
    use finmesh_core::upstream::{
        BucketRule, EndpointMatch, LocalThrottle, ThrottlePolicy, Upstream, UpstreamConfig,
    };
    use http::Method;
    use tokio::time::Instant;

    const USER_AGENT: &str = "finmesh/0.1.0 (https://github.com/finmesh/finmesh)";

    async fn serve(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    fn client(addr: SocketAddr, throttle: ThrottlePolicy) -> Upstream {
        client_with(addr, throttle, Duration::from_secs(5))
    }

    fn client_with(
        addr: SocketAddr,
        throttle: ThrottlePolicy,
        request_timeout: Duration,
    ) -> Upstream {
        let mut config =
            UpstreamConfig::new(format!("http://{addr}/api/v1").parse().unwrap(), USER_AGENT);
        config.request_timeout = request_timeout;
        config.connect_timeout = Duration::from_secs(2);
        config.throttle = throttle;
        Upstream::new(
            ProviderId::new("zonky").unwrap(),
            config,
            Arc::new(LocalThrottle::new()),
        )
        .unwrap()
    }

    fn rule(endpoints: EndpointMatch, capacity: u32, refill_per_second: f64) -> ThrottlePolicy {
        ThrottlePolicy {
            rules: vec![BucketRule {
                name: "test".into(),
                endpoints,
                capacity,
                refill_per_second,
                headroom: 1,
            }],
        }
    }

    /// Counts requests and answers 200 with a small JSON body.
    fn counting_ok(hits: Arc<AtomicU32>) -> Router {
        Router::new().route(
            "/api/v1/{*rest}",
            any(move || {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"ok":true}"#,
                    )
                }
            }),
        )
    }

    /// A platform-faithful token bucket: capacity tokens, refilled continuously,
    /// 429 when empty.
    struct StrictBucket {
        capacity: f64,
        per_second: f64,
        state: Mutex<(f64, std::time::Instant)>,
        accepted: AtomicU32,
        rejected: AtomicU32,
    }

    async fn strict(State(bucket): State<Arc<StrictBucket>>) -> Response {
        let admitted = {
            let mut state = bucket.state.lock().unwrap();
            let now = std::time::Instant::now();
            let refill = now.duration_since(state.1).as_secs_f64() * bucket.per_second;
            state.0 = (state.0 + refill).min(bucket.capacity);
            state.1 = now;
            if state.0 >= 1.0 {
                state.0 -= 1.0;
                true
            } else {
                false
            }
        };
        if admitted {
            bucket.accepted.fetch_add(1, Ordering::SeqCst);
            (StatusCode::OK, r#"{"ok":true}"#).into_response()
        } else {
            bucket.rejected.fetch_add(1, Ordering::SeqCst);
            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")]).into_response()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_times_the_budget_gets_no_429_and_uses_the_budget() {
        let (capacity, per_second) = (5u32, 10.0);
        let bucket = Arc::new(StrictBucket {
            capacity: f64::from(capacity),
            per_second,
            state: Mutex::new((f64::from(capacity), std::time::Instant::now())),
            accepted: AtomicU32::new(0),
            rejected: AtomicU32::new(0),
        });
        let addr = serve(
            Router::new()
                .route("/api/v1/loans/marketplace", get(strict))
                .with_state(bucket.clone()),
        )
        .await;
        let upstream = client(addr, rule(EndpointMatch::All, capacity, per_second));

        let window = Duration::from_millis(1500);
        let budget = capacity as usize + (per_second * window.as_secs_f64()) as usize;
        let start = Instant::now();
        let deadline = start + window;
        let tasks: Vec<_> = (0..3 * budget)
            .map(|_| {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let result = upstream
                        .request(Method::GET, "/loans/marketplace", "/loans/marketplace")
                        .deadline(deadline)
                        .send()
                        .await;
                    (result, Instant::now())
                })
            })
            .collect();
        let mut ok = 0u32;
        let mut limited = 0u32;
        let mut last_ok = start;
        for task in tasks {
            let (result, finished) = task.await.unwrap();
            match result {
                Ok(response) => {
                    assert_eq!(response.status, 200);
                    ok += 1;
                    last_ok = last_ok.max(finished);
                }
                Err(e) => {
                    assert_eq!(e.code(), "RATE_LIMITED", "{e}");
                    assert!(e.retry_after.is_some());
                    assert!(finished <= deadline + Duration::from_millis(50));
                    limited += 1;
                }
            }
        }
        let elapsed = last_ok - start;
        let allowed = f64::from(capacity) + per_second * elapsed.as_secs_f64();
        eprintln!("{ok} succeeded, {limited} refused, {allowed:.1} allowed in {elapsed:?}");
        assert_eq!(
            bucket.rejected.load(Ordering::SeqCst),
            0,
            "the platform never said 429"
        );
        assert_eq!(bucket.accepted.load(Ordering::SeqCst), ok);
        assert_eq!(ok + limited, 3 * budget as u32);
        assert!(
            elapsed >= Duration::from_millis(1200),
            "demand was sustained for the whole window: {elapsed:?}"
        );
        assert!(
            f64::from(ok) >= 0.9 * allowed,
            "used {ok} of {allowed:.1} requests the platform allowed in {elapsed:?}"
        );
    }

    /// Answers 429 with `Retry-After: <retry_after>` the first `times` requests, then 200.
    fn too_many_then_ok(hits: Arc<AtomicU32>, times: u32, retry_after: &'static str) -> Router {
        Router::new().route(
            "/api/v1/{*rest}",
            any(move || {
                let hits = hits.clone();
                async move {
                    if hits.fetch_add(1, Ordering::SeqCst) < times {
                        (
                            StatusCode::TOO_MANY_REQUESTS,
                            [(header::RETRY_AFTER, retry_after)],
                            "{}",
                        )
                            .into_response()
                    } else {
                        (StatusCode::OK, r#"{"ok":true}"#).into_response()
                    }
                }
            }),
        )
    }

    #[tokio::test]
    async fn retry_after_is_obeyed_then_the_get_succeeds() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(too_many_then_ok(hits.clone(), 1, "1")).await;
        let upstream = client(addr, rule(EndpointMatch::All, 10, 10.0));

        let start = Instant::now();
        let response = upstream
            .request(Method::GET, "/loans/{id}", "/loans/1")
            .deadline(start + Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        assert!(response.is_success());
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn retry_after_past_the_deadline_is_rate_limited_at_once_and_pauses_the_bucket() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(too_many_then_ok(hits.clone(), 1, "5")).await;
        let upstream = client(addr, rule(EndpointMatch::All, 10, 10.0));

        let start = Instant::now();
        let err = upstream
            .request(Method::GET, "/loans/{id}", "/loans/1")
            .deadline(start + Duration::from_secs(1))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(err.retry_after, Some(Duration::from_secs(5)));
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );

        // Everyone on that bucket now waits for the pause, without asking the platform.
        let again = Instant::now();
        let err = upstream
            .request(Method::GET, "/loans/{id}", "/loans/2")
            .deadline(again + Duration::from_secs(1))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RATE_LIMITED");
        assert!(err.retry_after.unwrap() > Duration::from_secs(4));
        assert!(again.elapsed() < Duration::from_millis(50));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let paused = upstream.throttle().snapshot();
        assert!(paused[0].paused_until.is_some());
    }

    #[tokio::test]
    async fn deadline_shorter_than_the_wait_is_rate_limited_quickly() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(counting_ok(hits.clone())).await;
        let upstream = client(addr, rule(EndpointMatch::All, 1, 1.0));

        upstream
            .request(Method::GET, "/loans", "/loans")
            .send()
            .await
            .unwrap();
        let start = Instant::now();
        let err = upstream
            .request(Method::GET, "/loans", "/loans")
            .deadline(start + Duration::from_millis(200))
            .send()
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(50),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(err.code(), "RATE_LIMITED");
        let retry_after = err.retry_after.unwrap();
        assert!(
            retry_after > Duration::from_millis(500) && retry_after <= Duration::from_secs(1),
            "{retry_after:?}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        // A deadline already gone: nothing is sent and no token is spent.
        let err = upstream
            .request(Method::GET, "/other", "/other")
            .deadline(Instant::now())
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE");
        assert!(err.message.contains("deadline"), "{}", err.message);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn post_is_never_retried_on_429() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(too_many_then_ok(hits.clone(), 1, "1")).await;
        let upstream = client(addr, ThrottlePolicy::default());

        let start = Instant::now();
        let err = upstream
            .request(Method::POST, "/investments", "/investments")
            .json(&serde_json::json!({"amount": 200}))
            .deadline(start + Duration::from_secs(5))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
        assert!(start.elapsed() < Duration::from_millis(500));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gets_are_tried_at_most_three_times() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(too_many_then_ok(hits.clone(), u32::MAX, "0")).await;
        let upstream = client(addr, ThrottlePolicy::default());

        let err = upstream
            .request(Method::GET, "/loans", "/loans")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn slow_answers_time_out_as_upstream_unavailable() {
        let addr = serve(Router::new().route(
            "/api/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        ))
        .await;

        // The client's request timeout.
        let upstream = client_with(addr, ThrottlePolicy::default(), Duration::from_millis(300));
        let start = Instant::now();
        let err = upstream
            .request(Method::GET, "/slow", "/slow")
            .query(&[("access_token", "s3cr3t")])
            .send()
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE");
        assert!(err.message.contains("timed out after"), "{}", err.message);
        assert!(err.message.contains("/slow"), "{}", err.message);
        assert!(!err.message.contains("s3cr3t"), "{}", err.message);
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));

        // The caller's deadline, shorter than the request timeout.
        let upstream = client(addr, ThrottlePolicy::default());
        let start = Instant::now();
        let err = upstream
            .request(Method::GET, "/slow", "/slow")
            .deadline(start + Duration::from_millis(200))
            .send()
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE");
        assert!(err.message.contains("timed out after"), "{}", err.message);
    }

    #[tokio::test]
    async fn dropped_and_refused_connections_are_upstream_unavailable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                drop(socket);
            }
        });
        let upstream = client(addr, ThrottlePolicy::default());
        let err = upstream
            .request(Method::GET, "/loans", "/loans")
            .bearer("s3cr3t-token")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE", "{err}");
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
        assert!(!err.message.contains("s3cr3t"));

        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let err = client(closed, ThrottlePolicy::default())
            .request(Method::GET, "/loans", "/loans")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE", "{err}");
        assert!(err.message.contains("could not connect"), "{}", err.message);
    }

    #[tokio::test]
    async fn malformed_json_is_an_upstream_protocol_error() {
        let addr = serve(Router::new().route(
            "/api/v1/loans/{id}",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], "{\"id\": 1, ") }),
        ))
        .await;
        let response = client(addr, ThrottlePolicy::default())
            .request(Method::GET, "/loans/{id}", "/loans/1")
            .send()
            .await
            .unwrap();
        assert!(response.is_success());
        let err = response.json::<serde_json::Value>().unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_PROTOCOL_ERROR");
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
        assert!(err.message.contains("/loans/1"), "{}", err.message);
        assert!(err.message.contains("column"), "{}", err.message);
    }

    fn compressed(headers: &HeaderMap, coding: &str) -> Response {
        let accepted = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !accepted.contains(coding) {
            return (StatusCode::NOT_ACCEPTABLE, "no compression offered").into_response();
        }
        let body = br#"{"loans":[{"id":1},{"id":2}],"note":"compressed"}"#;
        let bytes = if coding == "gzip" {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        } else {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body).unwrap();
            encoder.finish().unwrap()
        };
        (
            [
                (header::CONTENT_ENCODING, coding.to_owned()),
                (header::CONTENT_TYPE, "application/json".to_owned()),
            ],
            bytes,
        )
            .into_response()
    }

    #[tokio::test]
    async fn gzip_and_deflate_bodies_are_decoded() {
        let addr = serve(
            Router::new()
                .route(
                    "/api/v1/gzip",
                    get(|headers: HeaderMap| async move { compressed(&headers, "gzip") }),
                )
                .route(
                    "/api/v1/deflate",
                    get(|headers: HeaderMap| async move { compressed(&headers, "deflate") }),
                ),
        )
        .await;
        let upstream = client(addr, ThrottlePolicy::default());
        for path in ["/gzip", "/deflate"] {
            let response = upstream
                .request(Method::GET, "/compressed", path)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status, 200, "{path}");
            let body: serde_json::Value = response.json().unwrap();
            assert_eq!(body["note"], "compressed", "{path}");
        }
    }

    #[tokio::test]
    async fn user_agent_bearer_query_and_body_are_sent() {
        let addr = serve(Router::new().route(
            "/api/v1/echo/{id}",
            any(
                |method: axum::http::Method,
                 uri: axum::http::Uri,
                 headers: HeaderMap,
                 body: String| async move {
                    let header = |name: header::HeaderName| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    axum::Json(serde_json::json!({
                        "method": method.as_str(),
                        "path": uri.path(),
                        "query": uri.query(),
                        "user_agent": header(header::USER_AGENT),
                        "authorization": header(header::AUTHORIZATION),
                        "x_page": header(header::HeaderName::from_static("x-page")),
                        "content_type": header(header::CONTENT_TYPE),
                        "body": body,
                    }))
                },
            ),
        ))
        .await;
        let upstream = client(addr, ThrottlePolicy::default());
        let request = upstream
            .request(Method::POST, "/echo/{id}", "/echo/a b")
            .query(&[("fields", "id,amount"), ("page", "2")])
            .header("X-Page", "3")
            .bearer("tok-123")
            .form(&[("grant_type", "refresh_token")]);
        assert!(!format!("{request:?}").contains("tok-123"));
        let echo: serde_json::Value = request.send().await.unwrap().json().unwrap();
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["path"], "/api/v1/echo/a%20b");
        assert_eq!(echo["query"], "fields=id%2Camount&page=2");
        assert_eq!(echo["user_agent"], USER_AGENT);
        assert_eq!(echo["authorization"], "Bearer tok-123");
        assert_eq!(echo["x_page"], "3");
        assert_eq!(echo["content_type"], "application/x-www-form-urlencoded");
        assert_eq!(echo["body"], "grant_type=refresh_token");

        let response = upstream
            .request(Method::PUT, "/echo/{id}", "/echo/1")
            .json(&serde_json::json!({"amount": "200.00"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.header_str("content-type"),
            Some("application/json")
        );
        let echo: serde_json::Value = response.json().unwrap();
        assert_eq!(echo["content_type"], "application/json");
        assert_eq!(echo["body"], r#"{"amount":"200.00"}"#);
    }

    #[tokio::test]
    async fn unhandled_statuses_map_generically_without_the_query() {
        let addr = serve(Router::new().route(
            "/api/v1/{*rest}",
            any(|uri: axum::http::Uri| async move {
                match uri.path() {
                    "/api/v1/missing" => StatusCode::NOT_FOUND,
                    "/api/v1/down" => StatusCode::SERVICE_UNAVAILABLE,
                    "/api/v1/denied" => StatusCode::FORBIDDEN,
                    _ => StatusCode::BAD_REQUEST,
                }
            }),
        ))
        .await;
        let upstream = client(addr, ThrottlePolicy::default());
        for (path, code) in [
            ("/missing", "NOT_FOUND"),
            ("/down", "UPSTREAM_UNAVAILABLE"),
            ("/denied", "FORBIDDEN"),
            ("/bad", "UPSTREAM_PROTOCOL_ERROR"),
        ] {
            let response = upstream
                .request(Method::GET, "/any", path)
                .query(&[("token", "s3cr3t")])
                .send()
                .await
                .unwrap();
            assert!(!response.is_success());
            let err = response.into_default_error();
            assert_eq!(err.code(), code, "{path}");
            assert!(err.message.contains(path), "{}", err.message);
            assert!(!err.message.contains("s3cr3t"), "{}", err.message);
        }
    }

    #[tokio::test]
    async fn credentials_have_independent_buckets() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(counting_ok(hits.clone())).await;
        let upstream = client(addr, rule(EndpointMatch::All, 1, 1.0));
        let send = |credential: &'static str| {
            upstream
                .request(
                    Method::GET,
                    "/users/me/investments",
                    "/users/me/investments",
                )
                .credential(credential)
                .deadline(Instant::now() + Duration::from_millis(100))
                .send()
        };

        send("conn-a").await.unwrap();
        assert_eq!(send("conn-a").await.unwrap_err().code(), "RATE_LIMITED");
        send("conn-b").await.unwrap();
        assert_eq!(send("conn-b").await.unwrap_err().code(), "RATE_LIMITED");
        assert_eq!(hits.load(Ordering::SeqCst), 2);

        let snapshot = upstream.throttle().snapshot();
        let credentials: Vec<&str> = snapshot.iter().map(|s| &*s.key.credential).collect();
        assert_eq!(credentials, ["conn-a", "conn-b"]);
        assert!(snapshot.iter().all(|s| s.remaining == 0 && s.capacity == 1));
    }

    #[tokio::test]
    async fn each_endpoint_rule_gives_every_endpoint_its_own_bucket() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(counting_ok(hits.clone())).await;
        let upstream = client(addr, rule(EndpointMatch::EachEndpoint, 1, 1.0));
        let send = |endpoint: &'static str, path: &'static str| {
            upstream
                .request(Method::GET, endpoint, path)
                .deadline(Instant::now() + Duration::from_millis(100))
                .send()
        };

        send("/auctions", "/auctions").await.unwrap();
        assert_eq!(
            send("/auctions", "/auctions").await.unwrap_err().code(),
            "RATE_LIMITED"
        );
        send("/auctions/{id}", "/auctions/1").await.unwrap();
        assert_eq!(
            send("/auctions/{id}", "/auctions/2")
                .await
                .unwrap_err()
                .code(),
            "RATE_LIMITED",
            "one bucket per endpoint template, not per concrete path"
        );
        send("/bids", "/bids").await.unwrap();
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_prefix_rule_has_its_own_budget() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(counting_ok(hits.clone())).await;
        let upstream = client(
            addr,
            serde_json::from_value(serde_json::json!({"rules": [
                {"name": "last-published", "endpoints": {"prefixes": ["/loans/last-published"]},
                 "capacity": 1, "refill_per_second": 1.0},
                {"name": "default", "capacity": 500, "refill_per_second": 1.0}
            ]}))
            .unwrap(),
        );
        let deadline = || Instant::now() + Duration::from_millis(100);

        upstream
            .request(
                Method::GET,
                "/loans/last-published",
                "/loans/last-published",
            )
            .deadline(deadline())
            .send()
            .await
            .unwrap();
        let err = upstream
            .request(
                Method::GET,
                "/loans/last-published",
                "/loans/last-published",
            )
            .deadline(deadline())
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RATE_LIMITED");
        for id in 0..20 {
            upstream
                .request(Method::GET, "/loans/{id}", &format!("/loans/{id}"))
                .deadline(deadline())
                .send()
                .await
                .unwrap();
        }
        let snapshot = upstream.throttle().snapshot();
        let default = snapshot.iter().find(|s| &*s.key.rule == "default").unwrap();
        assert_eq!((default.capacity, default.burst), (500, 499));
        assert!(
            default.remaining >= 479 && default.remaining < 499,
            "{}",
            default.remaining
        );
    }

    /// A per-attempt bearer is made after the throttle's wait, and again for
    /// the retry after a 429: each attempt carries its own token.
    #[tokio::test]
    async fn per_attempt_bearers_are_made_after_the_wait() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let router = Router::new().route(
            "/api/v1/{*rest}",
            get({
                let seen = seen.clone();
                move |headers: HeaderMap| {
                    let seen = seen.clone();
                    async move {
                        let auth = headers
                            .get(header::AUTHORIZATION)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let first = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(auth);
                            seen.len() == 1
                        };
                        if first {
                            (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "0")])
                                .into_response()
                        } else {
                            (StatusCode::OK, r#"{"ok":true}"#).into_response()
                        }
                    }
                }
            }),
        );
        let addr = serve(router).await;
        let upstream = client(addr, rule(EndpointMatch::All, 1, 5.0));
        let made = Arc::new(AtomicU32::new(0));
        let started = Instant::now();
        let response = upstream
            .request(Method::GET, "/x", "/x")
            .bearer_per_attempt({
                let made = made.clone();
                move || {
                    let n = made.fetch_add(1, Ordering::SeqCst);
                    Ok(format!("token-{n}-{}", started.elapsed().as_millis() / 100))
                }
            })
            .send()
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        let seen_now = seen.lock().unwrap().clone();
        assert_eq!(seen_now.len(), 2);
        assert!(seen_now[0].starts_with("Bearer token-0-"), "{seen_now:?}");
        // The retry waited for a token of the 5/s bucket (200 ms) before it was signed.
        assert!(seen_now[1].starts_with("Bearer token-1-"), "{seen_now:?}");
        assert_ne!(
            seen_now[1], "Bearer token-1-0",
            "signed before the wait: {seen_now:?}"
        );

        // A failing signer fails the request unsent, with its own error.
        let err = upstream
            .request(Method::GET, "/x", "/x")
            .bearer_per_attempt(|| Err(finmesh_core::Error::internal("no key")))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
        assert_eq!(err.message, "no key");
        assert_eq!(seen.lock().unwrap().len(), 2, "a request went out unsigned");
        assert_eq!(made.load(Ordering::SeqCst), 2);
    }
}
