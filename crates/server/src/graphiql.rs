//! GraphiQL at `/`, with every asset served by the gateway itself: the IDE
//! works without network access, and a Content-Security-Policy can stay at
//! `'self'` (no inline script; fonts and icons are `data:` URLs in the CSS).
//! async-graphql's own page loads everything from a CDN, hence this module.
//! The files under `assets/graphiql/` are graphiql 4.1.2 and React 18.3.1
//! UMD builds from npm (licenses in `LICENSES.txt` there).

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// Part of every asset URL, so a new version never meets a cached old one.
const VERSION: &str = "4.1.2";

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>finmesh GraphiQL</title>
<link rel="stylesheet" href="/graphiql/4.1.2/graphiql.min.css">
<link rel="stylesheet" href="/graphiql/4.1.2/finmesh.css">
</head>
<body>
<div id="graphiql" data-endpoint="/graphql">Loading GraphiQL…</div>
<script src="/graphiql/4.1.2/react.production.min.js"></script>
<script src="/graphiql/4.1.2/react-dom.production.min.js"></script>
<script src="/graphiql/4.1.2/graphiql.min.js"></script>
<script src="/graphiql/4.1.2/init.js"></script>
</body>
</html>
"#;

/// Starts the IDE against the page's `data-endpoint`, with a first query.
const INIT: &str = r#""use strict";
(function () {
  var element = document.getElementById("graphiql");
  var fetcher = GraphiQL.createFetcher({ url: element.dataset.endpoint });
  var root = ReactDOM.createRoot(element);
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: "{\n  providers { id name health { status } }\n}\n",
  }));
})();
"#;

const CSS: &str = "html, body, #graphiql { height: 100%; margin: 0; }\n";

/// `/` and `/graphiql/<version>/<file>`.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/graphiql/{version}/{file}", get(asset))
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let found: Option<(&'static str, &'static [u8])> = match file.as_str() {
        "graphiql.min.js" => Some((
            "text/javascript",
            include_bytes!("../assets/graphiql/graphiql.min.js"),
        )),
        "graphiql.min.css" => Some((
            "text/css",
            include_bytes!("../assets/graphiql/graphiql.min.css"),
        )),
        "react.production.min.js" => Some((
            "text/javascript",
            include_bytes!("../assets/graphiql/react.production.min.js"),
        )),
        "react-dom.production.min.js" => Some((
            "text/javascript",
            include_bytes!("../assets/graphiql/react-dom.production.min.js"),
        )),
        "init.js" => Some(("text/javascript", INIT.as_bytes())),
        "finmesh.css" => Some(("text/css", CSS.as_bytes())),
        _ => None,
    };
    match found {
        Some((content_type, body)) if version == VERSION => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            body,
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such GraphiQL asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_assets_served_here() {
        for line in PAGE.lines() {
            if let Some(start) = line.find("/graphiql/") {
                let url = &line[start..];
                let url = &url[..url.find('"').unwrap()];
                assert!(url.starts_with(&format!("/graphiql/{VERSION}/")), "{url}");
            }
        }
        assert!(!PAGE.contains("http"), "no external URL");
        assert!(!PAGE.contains("<script>"), "no inline script");
    }
}
