//! GraphiQL and the status page in a real browser: `demo` runs, headless
//! Chromium (Debian's `chromium`, installed by `.ci/run`) opens GraphiQL,
//! runs a query there by typing it into the editor and pressing the run
//! button, and reads the rendered result; then it opens `/status` and finds
//! all three providers. Screenshots land in `target/screenshots/`.

mod cdp;

use std::path::{Path, PathBuf};

use finmesh_server::commands::Demo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use self::cdp::{Browser, CHROMIUM};

/// `target/`, next to the tests' scratch folder.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Chromium, or `None` (after saying why) where it may be missing: outside CI.
fn chromium() -> Option<PathBuf> {
    let binary = PathBuf::from(std::env::var("FINMESH_CHROMIUM").unwrap_or(CHROMIUM.into()));
    if binary.is_file() {
        return Some(binary);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is missing; `.ci/run` installs Debian's chromium package",
        binary.display()
    );
    eprintln!(
        "note: skipping the browser test: no {} (apt-get install chromium)",
        binary.display()
    );
    None
}

const QUERY: &str = "{ loans(first: 3, orderBy: [{field: INTEREST_RATE, direction: DESC}]) { edges { node { id name interestRate } } } }";

#[tokio::test]
async fn graphiql_runs_a_query_and_the_status_page_shows_every_provider() {
    let Some(binary) = chromium() else { return };
    let demo = Demo::start(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let url = demo.gateway.url();
    // Some traffic for each provider, so the status page has something to draw.
    let token = demo.token("browser-user").unwrap();
    for query in [
        "{ loans(first: 5) { edges { node { id } } } }",
        "{ transfers(first: 5) { edges { node { id } } } }",
    ] {
        reqwest::Client::new()
            .post(format!("{url}/graphql"))
            .bearer_auth(&token)
            .json(&json!({"query": query}))
            .send()
            .await
            .unwrap();
    }

    let screenshots = target_dir().join("screenshots");
    let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "chromium-profile-{}-{}",
        std::process::id(),
        demo.gateway.addr.port()
    ));
    let browser = Browser::launch(&binary, profile).await;
    let mut page = browser.page().await;

    // GraphiQL: every asset from the gateway (no network here), the editor up.
    page.navigate(&format!("{url}/")).await;
    page.wait_for("document.querySelector('.graphiql-query-editor .CodeMirror')")
        .await;
    page.eval(&format!(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue({})",
        serde_json::to_string(QUERY).unwrap()
    ))
    .await;
    page.eval("document.querySelector('.graphiql-execute-button').click()")
        .await;
    let result = "document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()";
    page.wait_for(&format!("{result}.includes('\"edges\"')"))
        .await;
    let shown: Value = serde_json::from_str(page.eval(result).await.as_str().unwrap()).unwrap();
    let edges = shown["data"]["loans"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3, "{shown}");
    for edge in edges {
        let id = edge["node"]["id"].as_str().unwrap();
        assert!(id.starts_with("zonky:loan:"), "{id}");
        assert!(edge["node"]["interestRate"].is_string(), "exact decimals");
    }
    // What a person sees in the result pane, not only the editor's model.
    let visible = page
        .eval("document.querySelector('.graphiql-response').innerText")
        .await;
    let first_id = edges[0]["node"]["id"].as_str().unwrap();
    assert!(
        visible.as_str().unwrap().contains(first_id),
        "{first_id} not rendered: {visible}"
    );
    page.screenshot(&screenshots.join("graphiql.png")).await;

    // The status page: one card per provider.
    page.navigate(&format!("{url}/status")).await;
    let providers = page
        .eval(
            "Array.from(document.querySelectorAll('[data-provider]')).map(e => e.dataset.provider)",
        )
        .await;
    assert_eq!(providers, json!(["bondora", "bongloy", "zonky"]));
    let text = page.eval("document.body.innerText").await;
    let text = text.as_str().unwrap();
    for name in ["Zonky", "Bondora", "Bongloy", "Throttle budget"] {
        assert!(
            text.contains(name),
            "{name} missing from the status page:\n{text}"
        );
    }
    page.screenshot(&screenshots.join("status.png")).await;

    browser.close().await;
    demo.shutdown().await.unwrap();
}
