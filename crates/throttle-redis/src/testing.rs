//! For tests against a real Redis: the server at `FINMESH_TEST_REDIS_URL`,
//! required under `CI=true`, and a fresh key prefix per test so that parallel
//! tests (and replicas of other tests) never share a budget or a live set.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// The variable naming the test Redis, e.g. `redis://127.0.0.1:6379`.
pub const REDIS_URL_VAR: &str = "FINMESH_TEST_REDIS_URL";

/// The test Redis's URL, checked with a `PING`; `None` (with a note on
/// stderr) when the variable is not set and `CI` is not `true`.
///
/// # Panics
/// When the variable is missing under `CI=true`, or set but Redis does not answer.
pub async fn redis_url() -> Option<String> {
    let url = match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{REDIS_URL_VAR} is not set, but CI=true requires the shared-throttle tests \
                     (e.g. {REDIS_URL_VAR}=redis://127.0.0.1:6379)"
                );
            }
            static NOTED: AtomicBool = AtomicBool::new(false);
            if !NOTED.swap(true, Ordering::Relaxed) {
                // Straight to stderr: libtest captures `eprintln!` of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: {REDIS_URL_VAR} is not set: skipping the shared-throttle (Redis) tests"
                );
            }
            return None;
        }
    };
    if let Err(error) = ping(&url).await {
        panic!("the test Redis ({REDIS_URL_VAR}) does not answer: {error}");
    }
    Some(url)
}

async fn ping(url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING")
        .query_async::<String>(&mut connection)
        .await
        .map(drop)
}

/// The address behind a Redis URL, e.g. to put a `finmesh_sandbox::TcpLink`
/// in front of it.
///
/// # Panics
/// When the URL is not a TCP Redis URL or its host does not resolve.
pub async fn socket_addr(url: &str) -> std::net::SocketAddr {
    let addr = match redis::Client::open(url) {
        Ok(client) => client.get_connection_info().addr().to_string(),
        Err(error) => panic!("not a Redis URL: {error}"),
    };
    match tokio::net::lookup_host(&addr).await.map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => panic!("the Redis host {addr} does not resolve"),
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("finmesh-test-{:016x}", rand::random::<u64>())
}
