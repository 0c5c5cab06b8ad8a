//! Retries, the circuit breaker and the deadline margin, through the upstream
//! client as adapters build it (`Upstream::from_context`), against small local
//! servers: 503s, refused connections, a platform that comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Named so that `cargo test -p finmesh-core resilience` selects these too.
mod resilience {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::any;
    use finmesh_core::ProviderId;
    use finmesh_core::registry::FactoryContext;
    use finmesh_core::resilience::{
        BreakerSettings, CircuitState, Resilience, ResilienceSettings, RetrySettings,
    };
    use finmesh_core::upstream::{
        BucketRule, EndpointMatch, LocalThrottle, ThrottlePolicy, Upstream, UpstreamConfig,
    };
    use http::Method;
    use tokio::time::Instant;

    /// Answers 503 while `down`, else 200; counts every request.
    fn platform(hits: Arc<AtomicU32>, down: Arc<AtomicBool>) -> Router {
        Router::new().route(
            "/{*rest}",
            any(move || {
                let (hits, down) = (hits.clone(), down.clone());
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    if down.load(Ordering::SeqCst) {
                        (StatusCode::SERVICE_UNAVAILABLE, "{}")
                    } else {
                        (StatusCode::OK, r#"{"ok":true}"#)
                    }
                }
            }),
        )
    }

    /// The first `failures` requests answer 503, the rest 200.
    fn flaky(hits: Arc<AtomicU32>, failures: u32) -> Router {
        Router::new().route(
            "/{*rest}",
            any(move || {
                let hits = hits.clone();
                async move {
                    if hits.fetch_add(1, Ordering::SeqCst) < failures {
                        (StatusCode::SERVICE_UNAVAILABLE, "{}")
                    } else {
                        (StatusCode::OK, r#"{"ok":true}"#)
                    }
                }
            }),
        )
    }

    async fn serve(router: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    fn settings(threshold: u32, open_for: Duration) -> ResilienceSettings {
        ResilienceSettings {
            retry: RetrySettings {
                max_attempts: 3,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
            },
            breaker: BreakerSettings {
                failure_threshold: threshold,
                window: Duration::from_secs(10),
                open_for,
            },
            min_request_time: Duration::from_millis(250),
        }
    }

    fn client(addr: SocketAddr, resilience: &Resilience, throttle: ThrottlePolicy) -> Upstream {
        let context = FactoryContext {
            user_agent: "finmesh-test/0.0 (https://example.test)".into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            throttle: Arc::new(LocalThrottle::new()),
            resilience: resilience.clone(),
            tokens: Arc::new(finmesh_core::auth::NoTokens),
        };
        let mut config = UpstreamConfig::new(
            format!("http://{addr}/").parse().unwrap(),
            context.user_agent.clone(),
        );
        config.throttle = throttle;
        Upstream::from_context(zonky(), config, &context).unwrap()
    }

    fn zonky() -> ProviderId {
        ProviderId::new("zonky").unwrap()
    }

    async fn get(upstream: &Upstream) -> finmesh_core::Result<StatusCode> {
        upstream
            .request(Method::GET, "/loans", "/loans")
            .send()
            .await
            .map(|r| r.status)
    }

    #[tokio::test]
    async fn a_get_answered_503_then_200_is_retried_and_answered() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(flaky(hits.clone(), 1)).await;
        let resilience = Resilience::new(settings(5, Duration::from_secs(5)));
        let upstream = client(addr, &resilience, ThrottlePolicy::default());
        assert_eq!(get(&upstream).await.unwrap(), StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(resilience.circuit(&zonky()), CircuitState::Closed);
    }

    #[tokio::test]
    async fn gets_stop_after_the_attempts_or_before_the_deadline() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(flaky(hits.clone(), u32::MAX)).await;
        let upstream = client(
            addr,
            &Resilience::new(settings(100, Duration::from_secs(5))),
            ThrottlePolicy::default(),
        );
        assert_eq!(
            get(&upstream).await.unwrap(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(hits.load(Ordering::SeqCst), 3, "max_attempts");

        // 255 ms left: after any backoff (at least 10 ms), less than
        // min_request_time (250 ms) would remain: no retry.
        hits.store(0, Ordering::SeqCst);
        let started = Instant::now();
        let status = upstream
            .request(Method::GET, "/loans", "/loans")
            .deadline(started + Duration::from_millis(255))
            .send()
            .await
            .unwrap()
            .status;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[tokio::test]
    async fn posts_are_never_retried() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(flaky(hits.clone(), 1)).await;
        let upstream = client(
            addr,
            &Resilience::new(settings(5, Duration::from_secs(5))),
            ThrottlePolicy::default(),
        );
        let response = upstream
            .request(Method::POST, "/transfers", "/transfers")
            .json(&serde_json::json!({"amount": 100}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refused_connections_open_the_circuit_which_then_answers_at_once() {
        let closed = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let resilience = Resilience::new(settings(3, Duration::from_secs(5)));
        let upstream = client(closed, &resilience, ThrottlePolicy::default());
        // One request, three refused attempts: three failures.
        let err = get(&upstream).await.unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE");
        assert!(err.message.contains("could not connect"), "{}", err.message);
        assert_eq!(resilience.circuit(&zonky()), CircuitState::Open);

        let started = Instant::now();
        let err = get(&upstream).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(20));
        assert_eq!(err.code(), "UPSTREAM_UNAVAILABLE");
        assert!(err.message.contains("circuit open"), "{}", err.message);
        assert!(err.message.contains("could not connect"), "{}", err.message);
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
        assert!(err.retry_after.unwrap() > Duration::from_secs(4));
    }

    #[tokio::test]
    async fn the_circuit_probes_and_closes_when_the_platform_is_back() {
        let (hits, down) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicBool::new(true)));
        let addr = serve(platform(hits.clone(), down.clone())).await;
        let resilience = Resilience::new(settings(2, Duration::from_millis(300)));
        let upstream = client(addr, &resilience, ThrottlePolicy::default());
        // Two 503s open the circuit; the third attempt is refused by it, not sent.
        let err = get(&upstream).await.unwrap_err();
        assert!(err.message.contains("circuit open"), "{}", err.message);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(resilience.circuit(&zonky()), CircuitState::Open);
        let before = hits.load(Ordering::SeqCst);
        assert!(get(&upstream).await.is_err());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            before,
            "nothing sent while open"
        );

        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(resilience.circuit(&zonky()), CircuitState::HalfOpen);
        // Still down: the probe fails and the circuit opens again.
        assert!(get(&upstream).await.is_err());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            before + 1,
            "one probe, not retried"
        );
        assert_eq!(resilience.circuit(&zonky()), CircuitState::Open);

        down.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(get(&upstream).await.unwrap(), StatusCode::OK);
        assert_eq!(resilience.circuit(&zonky()), CircuitState::Closed);
    }

    #[tokio::test]
    async fn client_errors_say_the_platform_is_up() {
        let addr =
            serve(Router::new().route("/{*rest}", any(|| async { StatusCode::NOT_FOUND }))).await;
        let resilience = Resilience::new(settings(2, Duration::from_secs(5)));
        let upstream = client(addr, &resilience, ThrottlePolicy::default());
        for _ in 0..5 {
            assert_eq!(get(&upstream).await.unwrap(), StatusCode::NOT_FOUND);
        }
        assert_eq!(resilience.circuit(&zonky()), CircuitState::Closed);
    }

    #[tokio::test]
    async fn a_token_too_close_to_the_deadline_is_refused_rather_than_sent_to_time_out() {
        let hits = Arc::new(AtomicU32::new(0));
        let addr = serve(flaky(hits.clone(), 0)).await;
        let one_a_second = ThrottlePolicy {
            rules: vec![BucketRule {
                name: "default".into(),
                endpoints: EndpointMatch::All,
                capacity: 2,
                refill_per_second: 1.0,
                headroom: 1,
            }],
        };
        let upstream = client(
            addr,
            &Resilience::new(settings(5, Duration::from_secs(5))),
            one_a_second,
        );
        get(&upstream).await.unwrap();
        // The next token comes in ~1 s, leaving 100 ms of this caller's 1.1 s.
        let started = Instant::now();
        let err = upstream
            .request(Method::GET, "/loans", "/loans")
            .deadline(started + Duration::from_millis(1100))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RATE_LIMITED");
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "refused at once"
        );
        assert!(err.retry_after.unwrap() > Duration::from_millis(900));
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        // With room for an answer after the token, it waits and goes.
        let started = Instant::now();
        upstream
            .request(Method::GET, "/loans", "/loans")
            .deadline(started + Duration::from_millis(1500))
            .send()
            .await
            .unwrap();
        assert!(started.elapsed() > Duration::from_millis(800));
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
