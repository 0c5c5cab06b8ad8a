//! The protections over a small app, and the accept loop over real TCP.

use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use axum::response::Html;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::*;

fn config(cors: CorsConfig) -> HttpConfig {
    HttpConfig {
        max_body_bytes: 1_024,
        http_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_millis(300),
        cors,
    }
}

fn app(cors: CorsConfig) -> Router {
    let routes = Router::new()
        .route("/page", get(|| async { Html("<p>hello</p>") }))
        .route(
            "/data",
            get(|| async { axum::Json(serde_json::json!({"ok": true})) }),
        )
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/connect/zonky", get(|| async { "redirecting" }));
    protect(routes, &config(cors))
}

async fn call(app: Router, request: Request<Body>) -> (Response, Value) {
    let response = app.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (Response::from_parts(parts, Body::empty()), json)
}

fn header<'r>(response: &'r Response, name: &str) -> Option<&'r str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_with_a_json_error() {
    let (response, body) = call(
        app(CorsConfig::default()),
        Request::post("/echo")
            .body(Body::from("x".repeat(2_000)))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
    // Without a length up front (a stream), the limit holds while reading.
    let chunks = futures::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(bytes_of(600))));
    let (response, _) = call(
        app(CorsConfig::default()),
        Request::post("/echo")
            .body(Body::from_stream(chunks))
            .unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // Within the limit, the route answers.
    let (response, _) = call(
        app(CorsConfig::default()),
        Request::post("/echo").body(Body::from("small")).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

fn bytes_of(n: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b'x'; n])
}

#[tokio::test]
async fn a_request_past_the_timeout_is_408_with_a_json_error() {
    let started = std::time::Instant::now();
    let (response, body) = call(
        app(CorsConfig::default()),
        Request::get("/slow").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["errors"][0]["extensions"]["code"], "REQUEST_TIMEOUT");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn every_answer_carries_security_headers_and_html_a_page_policy() {
    let (page, _) = call(
        app(CorsConfig::default()),
        Request::get("/page").body(Body::empty()).unwrap(),
    )
    .await;
    let policy = header(&page, "content-security-policy").unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-eval"), "{policy}");
    assert_eq!(header(&page, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&page, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&page, "x-frame-options"), Some("DENY"));
    // Public answers may be cached as usual.
    assert_eq!(header(&page, "cache-control"), None);

    let (data, _) = call(
        app(CorsConfig::default()),
        Request::get("/data").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        header(&data, "content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert_eq!(header(&data, "x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn private_answers_are_never_stored() {
    let (signed_in, _) = call(
        app(CorsConfig::default()),
        Request::get("/data")
            .header(header::AUTHORIZATION, "Bearer x")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(header(&signed_in, "cache-control"), Some("no-store"));
    let (connect, _) = call(
        app(CorsConfig::default()),
        Request::get("/connect/zonky").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(header(&connect, "cache-control"), Some("no-store"));
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let cors = CorsConfig {
        allowed_origins: vec!["https://app.example.com".into()],
        allow_credentials: true,
    };
    let preflight = |origin: &str| {
        Request::options("/data")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let (allowed, _) = call(app(cors.clone()), preflight("https://app.example.com")).await;
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials"),
        Some("true")
    );
    let (foreign, _) = call(app(cors.clone()), preflight("https://evil.example")).await;
    assert_eq!(header(&foreign, "access-control-allow-origin"), None);

    // Without configured origins, no CORS at all.
    let (none, _) = call(
        app(CorsConfig::default()),
        preflight("https://app.example.com"),
    )
    .await;
    assert_eq!(header(&none, "access-control-allow-origin"), None);

    let any = CorsConfig {
        allowed_origins: vec!["*".into()],
        allow_credentials: false,
    };
    let (wildcard, _) = call(app(any), preflight("https://elsewhere.example")).await;
    assert_eq!(header(&wildcard, "access-control-allow-origin"), Some("*"));
}

type Running = (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<io::Result<()>>,
);

async fn running(app: Router) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, Duration::from_millis(300), async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

#[tokio::test]
async fn the_accept_loop_drops_clients_that_never_finish_their_headers() {
    let app = Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    );
    let (addr, stop, task) = running(app).await;

    // A whole request is answered, and the handler knows the peer.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("127.0.0.1"), "{answer}");

    // Half a request line, then silence: the server hangs up.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buffer))
        .await
        .expect("the server closes the connection");
    assert!(read.is_err() || buffer.is_empty() || !buffer.starts_with(b"HTTP/1.1 200"));

    // Shutting down frees the port.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    TcpListener::bind(addr).await.unwrap();
}
