//! The Bondora simulator seen by an HTTP client, checked against brute force
//! over `BondoraSandbox`'s data accessors.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::{BTreeMap, HashSet},
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode as AxumStatus, Uri},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, Timelike, Utc};
use common::USER_AGENT;
use finmesh_sandbox::{
    BondoraConfig, BondoraSandbox, BucketConfig, FaultKind, Faults,
    bondora::{Attempt, Signing},
};
use hmac::{Hmac, Mac};
use reqwest::{Client, Response, StatusCode, header};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

type Sim = common::Sim<BondoraSandbox>;

/// Small data and no quota worth mentioning, unless a test says otherwise.
fn small_config() -> BondoraConfig {
    BondoraConfig {
        auctions: 300,
        investments_per_user: 80,
        bids_per_user: 30,
        secondary_market: 150,
        default_limit: BucketConfig {
            capacity: 10_000,
            refill_per_second: Decimal::from(10_000),
        },
        webhook_retry_backoff_ms: 10,
        ..BondoraConfig::default()
    }
}

impl Sim {
    async fn start(config: BondoraConfig) -> Self {
        Self::launch(BondoraSandbox::new(config)).await
    }

    async fn small() -> Self {
        Self::start(small_config()).await
    }

    /// A token of `user` with every scope.
    fn token(&self, user: &str) -> String {
        self.sandbox.oauth().issue_tokens(user, &[]).access_token
    }

    async fn get(&self, user: &str, path: &str) -> Response {
        self.get_with(path, &self.token(user)).await
    }

    async fn get_with(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, user: &str, path: &str) -> (StatusCode, Value) {
        let response = self.get(user, path).await;
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// Every item of a list, page after page.
    async fn all_pages(&self, user: &str, path_and_query: &str, page_size: u64) -> Vec<Value> {
        let separator = if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        };
        let mut items = Vec::new();
        for page in 1.. {
            let (status, body) = self
                .get_json(
                    user,
                    &format!("{path_and_query}{separator}request.pageSize={page_size}&request.pageNr={page}"),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["PageSize"], page_size);
            assert_eq!(body["PageNr"], page);
            let payload = body["Payload"].as_array().unwrap();
            assert_eq!(body["Count"], payload.len());
            let total = body["TotalCount"].as_u64().unwrap();
            items.extend(payload.iter().cloned());
            if payload.is_empty() || items.len() as u64 >= total {
                assert_eq!(items.len() as u64, total);
                break;
            }
        }
        items
    }
}

fn decimal(value: &Value) -> Decimal {
    Decimal::from_str(value.as_number().unwrap().as_str()).unwrap()
}

fn ids(items: &[Value], field: &str) -> Vec<String> {
    items
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .to_utc()
}

/// The active auctions as `user` sees them, newest first, then by loan number.
fn active_auctions(sim: &Sim, user: &str) -> Vec<Value> {
    let now = Utc::now();
    let mut auctions: Vec<Value> = sim
        .sandbox
        .auctions_for(user)
        .into_iter()
        .filter(|auction| auction["ActualCloseDate"].is_null())
        .filter(|auction| instant(&auction["PlannedCloseDate"]) > now)
        .collect();
    auctions.sort_by(|a, b| {
        instant(&b["ListedOnUTC"])
            .cmp(&instant(&a["ListedOnUTC"]))
            .then(b["LoanNumber"].as_i64().cmp(&a["LoanNumber"].as_i64()))
    });
    auctions
}

/// An error answer: the status, and the envelope with the status as `Code`.
async fn assert_error(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Success"], false, "{body}");
    assert!(body.get("Payload").is_none(), "{body}");
    let errors = body["Errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["Code"], status.as_u16(), "{body}");
    assert!(!errors[0]["Message"].as_str().unwrap().is_empty());
    body
}

#[tokio::test]
async fn every_answer_is_an_envelope() {
    let sim = Sim::small().await;

    // Success, list and item.
    let (status, page) = sim.get_json("alice", "/api/v1/auctions?PageSize=2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["Success"], true);
    assert!(page["Errors"].is_null() && page.get("Errors").is_some());
    for field in ["PageSize", "PageNr", "TotalCount", "Count", "Payload"] {
        assert!(page.get(field).is_some(), "{field}");
    }
    assert_eq!(page["PageNr"], 1);
    let first = &page["Payload"][0];
    let id = first["AuctionId"].as_str().unwrap();
    // The document's 7-digit UTC timestamps.
    let listed = first["ListedOnUTC"].as_str().unwrap();
    assert_eq!(listed.len(), 28, "{listed}");
    assert!(listed.ends_with('Z') && listed.as_bytes()[19] == b'.');
    let (status, detail) = sim
        .get_json("alice", &format!("/api/v1/auction/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["Success"], true);
    assert!(detail["Errors"].is_null());
    assert_eq!(detail["Payload"]["AuctionId"], id);
    for field in [
        "Liabilities",
        "Debts",
        "BorrowerHistory",
        "Interest",
        "Rating",
    ] {
        assert!(detail["Payload"].get(field).is_some(), "{field}");
    }

    // 401: no token, a token nobody issued.
    let anonymous = sim
        .client
        .get(sim.url("/api/v1/auctions"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, StatusCode::UNAUTHORIZED).await;
    let forged = sim.get_with("/api/v1/auctions", "not-a-token").await;
    assert_error(forged, StatusCode::UNAUTHORIZED).await;

    // 403: a token without the endpoint's scope.
    let bids_only = sim
        .sandbox
        .oauth()
        .issue_tokens("alice", &["BidsRead"])
        .access_token;
    for path in [
        "/api/v1/account/investments",
        "/api/v1/secondarymarket",
        "/api/v1/loanpart/6832dee6-92a3-4d9b-af03-5c53fed0c41d",
    ] {
        let refused = sim.get_with(path, &bids_only).await;
        assert_error(refused, StatusCode::FORBIDDEN).await;
    }
    let bids = sim.get_with("/api/v1/bids", &bids_only).await;
    assert_eq!(bids.status(), StatusCode::OK);
    let sm_sell = sim
        .sandbox
        .oauth()
        .issue_tokens("alice", &["SmSell"])
        .access_token;
    let offers = sim
        .get_with("/api/v1/secondarymarket?PageSize=1", &sm_sell)
        .await;
    assert_eq!(offers.status(), StatusCode::OK, "SmSell lists offers too");

    // 404: an unknown auction, an unknown path.
    let unknown = sim
        .get(
            "alice",
            "/api/v1/auction/6832dee6-92a3-4d9b-af03-5c53fed0c41d",
        )
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND).await;
    let nowhere = sim.get("alice", "/api/v1/nowhere").await;
    assert_error(nowhere, StatusCode::NOT_FOUND).await;

    // 400: an unknown rating, a page size out of range, a malformed id, a
    // number that is not one.
    for path in [
        "/api/v1/auctions?request.ratings=AAA",
        "/api/v1/auctions?request.pageSize=0",
        "/api/v1/auctions?PageSize=20001",
        "/api/v1/auctions?PageNr=0",
        "/api/v1/auctions?request.interestMin=high",
        "/api/v1/secondarymarket?request.loanStatusCode=7",
        "/api/v1/bids?request.bidStatusCode=9",
        "/api/v1/account/investments?SalesStatus=4",
        "/api/v1/auction/not-a-guid",
    ] {
        let body = assert_error(sim.get("alice", path).await, StatusCode::BAD_REQUEST).await;
        assert!(body["Errors"][0]["Details"].is_string(), "{path}: {body}");
    }

    // 405: a wrong method.
    let posted = sim
        .client
        .post(sim.url("/api/v1/auctions"))
        .bearer_auth(sim.token("alice"))
        .send()
        .await
        .unwrap();
    assert_error(posted, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn oauth_code_flow_then_authorized_calls() {
    let sim = Sim::small().await;
    let oauth = BondoraConfig::default_oauth();
    let no_redirects = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect_uri = "https://client.example.com/cb";
    let authorized = no_redirects
        .get(sim.url("/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", oauth.client_id.as_str()),
            ("state", "xyz"),
            ("scope", "BidsRead Investments"),
            ("redirect_uri", redirect_uri),
            ("sandbox_user", "bob"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(authorized.status(), StatusCode::FOUND);
    let location = authorized.headers()[header::LOCATION].to_str().unwrap();
    let location = url::Url::parse(location).unwrap();
    let query: BTreeMap<String, String> = location.query_pairs().into_owned().collect();
    assert_eq!(query["state"], "xyz");

    // Form fields, as the document's curl sends them.
    let token: Value = sim
        .client
        .post(sim.url("/oauth/access_token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", oauth.client_id.as_str()),
            ("client_secret", oauth.client_secret.as_str()),
            ("code", query["code"].as_str()),
            ("redirect_uri", redirect_uri),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["expires_in"], 3600);
    let access = token["access_token"].as_str().unwrap();
    let refresh = token["refresh_token"].as_str().unwrap();

    let investments = sim
        .get_with("/api/v1/account/investments?PageSize=5", access)
        .await;
    assert_eq!(investments.status(), StatusCode::OK);
    let investments: Value = investments.json().await.unwrap();
    let bobs: HashSet<String> = ids(&sim.sandbox.investments("bob"), "LoanPartId")
        .into_iter()
        .collect();
    for item in investments["Payload"].as_array().unwrap() {
        assert!(bobs.contains(item["LoanPartId"].as_str().unwrap()));
    }
    // Not granted: SmBuy.
    let offers = sim.get_with("/api/v1/secondarymarket", access).await;
    assert_error(offers, StatusCode::FORBIDDEN).await;

    // A refresh as JSON: a new access token and, as the document shows, no
    // new refresh token.
    let refreshed: Value = sim
        .client
        .post(sim.url("/oauth/access_token"))
        .json(&json!({
            "grant_type": "refresh_token",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
            "refresh_token": refresh,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(refreshed.get("refresh_token").is_none(), "{refreshed}");
    let renewed = refreshed["access_token"].as_str().unwrap().to_owned();

    // An hour later both access tokens have expired.
    sim.sandbox.oauth().advance_time(Duration::from_secs(3601));
    for token in [access, renewed.as_str()] {
        let expired = sim.get_with("/api/v1/auctions", token).await;
        let body = assert_error(expired, StatusCode::UNAUTHORIZED).await;
        assert!(
            body["Errors"][0]["Details"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
    }
}

#[tokio::test]
async fn auction_pages_match_brute_force() {
    let sim = Sim::small().await;
    let expected = active_auctions(&sim, "alice");
    assert_eq!(expected.len(), 300, "closed auctions are not listed");
    assert!(sim.sandbox.auctions().len() > expected.len());
    let pages = sim.all_pages("alice", "/api/v1/auctions", 37).await;
    assert_eq!(pages, expected);
    // Some of alice's open bids show on the auctions she sees, and only there.
    assert!(
        pages
            .iter()
            .any(|auction| auction["UserBids"].as_u64() > Some(0))
    );
    let (_, bobs_view) = sim.get_json("bob", "/api/v1/auctions?PageSize=20000").await;
    assert_eq!(
        bobs_view["Payload"].as_array().unwrap(),
        &active_auctions(&sim, "bob")
    );

    // Past the last page: empty, with the total.
    let (_, beyond) = sim
        .get_json("alice", "/api/v1/auctions?PageSize=100&PageNr=4")
        .await;
    assert_eq!(beyond["Payload"], json!([]));
    assert_eq!(beyond["Count"], 0);
    assert_eq!(beyond["TotalCount"], 300);
    // Without paging: the default page size of 10,000.
    let (_, everything) = sim.get_json("alice", "/api/v1/auctions").await;
    assert_eq!(everything["PageSize"], 10_000);
    assert_eq!(everything["Count"], 300);
}

#[tokio::test]
async fn auction_filters_match_brute_force() {
    let sim = Sim::small().await;
    let all = active_auctions(&sim, "alice");
    let keep = |auction: &&Value| {
        let rating = auction["Rating"].as_str().unwrap();
        let country = auction["Country"].as_str().unwrap();
        let interest = decimal(&auction["Interest"]);
        (rating == "C" || rating == "D")
            && (country == "EE" || country == "FI")
            && interest >= Decimal::from(20)
            && interest <= Decimal::new(305, 1)
    };
    let expected: Vec<Value> = all.iter().filter(keep).cloned().collect();
    assert!(expected.len() > 5, "{} match", expected.len());
    for query in [
        "request.ratings=C&request.ratings=D&request.countries=EE&request.countries=FI&request.interestMin=20&request.interestMax=30.5",
        "Ratings=c,d&Countries=ee,fi&InterestMin=20&InterestMax=30.5",
        "RATINGS[0]=C&RATINGS[1]=D&countries=EE,FI&interestmin=20&interestmax=30.50",
    ] {
        let got = sim
            .all_pages("alice", &format!("/api/v1/auctions?{query}"), 10)
            .await;
        assert_eq!(
            ids(&got, "AuctionId"),
            ids(&expected, "AuctionId"),
            "{query}"
        );
    }

    // A date range and the loan terms.
    let middle = instant(&all[all.len() / 2]["ListedOnUTC"]);
    let from = middle.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let expected: Vec<Value> = all
        .iter()
        .filter(|auction| instant(&auction["ListedOnUTC"]) >= middle.with_nanosecond(0).unwrap())
        .filter(|auction| matches!(auction["LoanDuration"].as_u64(), Some(36 | 60)))
        .cloned()
        .collect();
    let got = sim
        .all_pages(
            "alice",
            &format!(
                "/api/v1/auctions?request.listedOnUTCFrom={}&request.terms=36&request.terms=60",
                urlencode(&from)
            ),
            50,
        )
        .await;
    assert_eq!(ids(&got, "AuctionId"), ids(&expected, "AuctionId"));
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn investments_offers_and_bids_filter_as_documented() {
    let sim = Sim::small().await;
    let mine = sim.sandbox.investments("alice");

    // Sold investments only with SalesStatus=1.
    let active = sim
        .all_pages("alice", "/api/v1/account/investments", 25)
        .await;
    let unsold: HashSet<String> = mine
        .iter()
        .filter(|item| item["SoldDate"].is_null())
        .map(|item| item["LoanPartId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(active.len(), unsold.len());
    assert!(
        active
            .iter()
            .all(|item| unsold.contains(item["LoanPartId"].as_str().unwrap()))
    );
    let purchase_dates: Vec<DateTime<Utc>> = active
        .iter()
        .map(|item| instant(&item["PurchaseDate"]))
        .collect();
    assert!(
        purchase_dates.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first"
    );
    let sold = sim
        .all_pages(
            "alice",
            "/api/v1/account/investments?request.salesStatus=1",
            25,
        )
        .await;
    assert_eq!(sold.len(), mine.len() - unsold.len());
    assert!(sold.iter().all(|item| !item["SoldDate"].is_null()));

    // Loan status codes (a list) and an interest range.
    let expected: Vec<String> = {
        let mut items: Vec<&Value> = mine
            .iter()
            .filter(|item| item["SoldDate"].is_null())
            .filter(|item| matches!(item["LoanStatusCode"].as_i64(), Some(2 | 100)))
            .filter(|item| decimal(&item["Interest"]) <= Decimal::from(25))
            .collect();
        items.sort_by(|a, b| {
            instant(&b["PurchaseDate"])
                .cmp(&instant(&a["PurchaseDate"]))
                .then(a["LoanPartId"].as_str().cmp(&b["LoanPartId"].as_str()))
        });
        items
            .iter()
            .map(|item| item["LoanPartId"].as_str().unwrap().to_owned())
            .collect()
    };
    let got = sim
        .all_pages(
            "alice",
            "/api/v1/account/investments?LoanStatusCode=2&LoanStatusCode=100&InterestMax=25",
            10,
        )
        .await;
    assert_eq!(ids(&got, "LoanPartId"), expected);

    // The secondary market: everyone's offers; ShowMyItems picks the caller's.
    let offers = sim.sandbox.secondary_market();
    let own: HashSet<&str> = mine
        .iter()
        .map(|item| item["LoanPartId"].as_str().unwrap())
        .collect();
    let all_offers = sim.all_pages("bob", "/api/v1/secondarymarket", 100).await;
    assert_eq!(all_offers.len(), offers.len());
    let alices_offers = sim
        .all_pages(
            "alice",
            "/api/v1/secondarymarket?request.showMyItems=true",
            100,
        )
        .await;
    assert!(!alices_offers.is_empty());
    assert!(
        alices_offers
            .iter()
            .all(|offer| own.contains(offer["LoanPartId"].as_str().unwrap()))
    );
    let cheap_overdue: HashSet<String> = offers
        .iter()
        .filter(|offer| offer["LoanStatusCode"] == 100)
        .filter(|offer| decimal(&offer["Price"]) <= Decimal::from(20))
        .filter(|offer| decimal(&offer["DesiredDiscountRate"]) < Decimal::ZERO)
        .map(|offer| offer["Id"].as_str().unwrap().to_owned())
        .collect();
    let got = sim
        .all_pages(
            "bob",
            "/api/v1/secondarymarket?request.loanStatusCode=100&request.priceMax=20&request.desiredDiscountRateMax=-0.01",
            100,
        )
        .await;
    assert_eq!(
        ids(&got, "Id").into_iter().collect::<HashSet<_>>(),
        cheap_overdue
    );
    for offer in &got {
        let remaining = decimal(&offer["PrincipalRemaining"]);
        let rate = decimal(&offer["DesiredDiscountRate"]);
        assert_eq!(
            decimal(&offer["Price"]),
            (remaining * (Decimal::from(100) + rate) / Decimal::from(100)).round_dp(2)
        );
    }

    // Bids: the document's `bidStatus` and the reference's `request.bidStatusCode`.
    let open: Vec<String> = sim
        .sandbox
        .bids("alice")
        .iter()
        .filter(|bid| bid["StatusCode"] == 1)
        .map(|bid| bid["Id"].as_str().unwrap().to_owned())
        .collect();
    for query in ["bidStatus=1", "request.bidStatusCode=1"] {
        let got = sim
            .all_pages("alice", &format!("/api/v1/bids?{query}"), 10)
            .await;
        let got: HashSet<String> = ids(&got, "Id").into_iter().collect();
        assert_eq!(got, open.iter().cloned().collect::<HashSet<_>>(), "{query}");
    }
}

#[tokio::test]
async fn loan_parts_never_cross_users() {
    let sim = Sim::small().await;
    let alices = ids(&sim.sandbox.investments("alice"), "LoanPartId");
    let bobs = ids(&sim.sandbox.investments("bob"), "LoanPartId");
    assert!(alices.iter().all(|id| !bobs.contains(id)));
    assert_ne!(sim.sandbox.bids("alice"), sim.sandbox.bids("bob"));

    for id in alices.iter().take(5) {
        let (status, own) = sim
            .get_json("alice", &format!("/api/v1/loanpart/{id}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(own["Success"], true);
        assert_eq!(own["Payload"]["LoanPartId"], id.as_str());
        assert_eq!(own["Payload"], sim.sandbox.loan_part("alice", id).unwrap());
        for field in ["ScheduledPayments", "LoanTransfers", "DebtManagmentEvents"] {
            assert!(own["Payload"][field].is_array(), "{field}");
        }
        let other = sim.get("bob", &format!("/api/v1/loanpart/{id}")).await;
        assert_error(other, StatusCode::NOT_FOUND).await;
    }
    let bobs_list = sim
        .all_pages("bob", "/api/v1/account/investments?SalesStatus=3", 1000)
        .await;
    assert!(
        bobs_list
            .iter()
            .all(|item| bobs.contains(&item["LoanPartId"].as_str().unwrap().to_owned()))
    );
}

#[tokio::test]
async fn each_endpoint_has_its_own_quota_per_user() {
    let sim = Sim::start(BondoraConfig {
        auctions: 50,
        investments_per_user: 10,
        bids_per_user: 5,
        secondary_market: 10,
        limits: BTreeMap::from([(
            "/api/v1/secondarymarket".to_owned(),
            // Three a minute, all at once: slow enough that no token comes
            // back during the test.
            BucketConfig {
                capacity: 3,
                refill_per_second: Decimal::new(5, 2),
            },
        )]),
        ..BondoraConfig::default()
    })
    .await;
    let alice = sim.token("alice");
    assert_eq!(
        sim.get_with("/api/v1/auctions", &alice).await.status(),
        StatusCode::OK
    );
    let refused = sim.get_with("/api/v1/auctions", &alice).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // A second token of the same user shares the user's quota.
    assert_eq!(
        sim.get("alice", "/api/v1/auctions").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body,
        json!({"Success": false, "Errors": [{"Code": 429, "Message": "API calls quota exceeded! maximum admitted 1 per Second.", "Details": "Retry after 1"}]})
    );
    // Other endpoints, and other users, still answer.
    assert_eq!(
        sim.get_with("/api/v1/account/investments", &alice)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        sim.get_with("/api/v1/bids", &alice).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        sim.get("bob", "/api/v1/auctions").await.status(),
        StatusCode::OK
    );
    // A configured endpoint.
    for _ in 0..3 {
        assert_eq!(
            sim.get_with("/api/v1/secondarymarket", &alice)
                .await
                .status(),
            StatusCode::OK
        );
    }
    let refused = sim.get_with("/api/v1/secondarymarket", &alice).await;
    assert_eq!(refused.headers()[header::RETRY_AFTER], "20");
    let body = assert_error(refused, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        body["Errors"][0]["Message"],
        "API calls quota exceeded! maximum admitted 3 per Minute."
    );
    assert_eq!(body["Errors"][0]["Details"], "Retry after 20");
    // A refused request takes nothing: after a second, the quota is back.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(
        sim.get_with("/api/v1/auctions", &alice).await.status(),
        StatusCode::OK
    );
    assert_eq!(sim.sandbox.stats().throttled, 3);
    // Unauthenticated requests take nothing from anyone's quota.
    sim.sandbox.reset();
    let anonymous = sim
        .client
        .get(sim.url("/api/v1/bids"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        sim.get_with("/api/v1/bids", &alice).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn answers_are_gzipped_for_clients_that_accept_it() {
    let sim = Sim::small().await;
    let raw = Client::builder().no_gzip().build().unwrap();
    let url = sim.url("/api/v1/auctions?PageSize=200");
    let compressed = raw
        .get(&url)
        .bearer_auth(sim.token("alice"))
        .header(header::ACCEPT_ENCODING, "gzip, deflate")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");
    let bytes = compressed.bytes().await.unwrap();
    assert_eq!(bytes[..2], [0x1f, 0x8b]);
    let plain = raw
        .get(&url)
        .bearer_auth(sim.token("alice"))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let plain: Value = plain.json().await.unwrap();
    let (_, inflated) = sim.get_json("alice", "/api/v1/auctions?PageSize=200").await;
    assert_eq!(inflated, plain);
    assert!(bytes.len() < plain.to_string().len() / 3);
    // Errors too.
    let refused = raw
        .get(sim.url("/api/v1/nowhere"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn injected_faults_and_the_request_log() {
    let sim = Sim::small().await;
    sim.sandbox.set_faults(Faults {
        next: vec![
            FaultKind::ServerError { status: 503 },
            FaultKind::RateLimited {
                retry_after_secs: 7,
            },
            FaultKind::Malformed,
            FaultKind::Drop,
            FaultKind::Truncated,
        ],
        ..Faults::default()
    });
    let path = "/api/v1/auctions?PageSize=3";
    let unavailable = sim.get("alice", path).await;
    let body = assert_error(unavailable, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["Errors"][0]["Code"], 503);
    let limited = sim.get("alice", path).await;
    assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
    let body = assert_error(limited, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(body["Errors"][0]["Details"], "Retry after 7");
    let malformed = sim.get("alice", path).await;
    assert_eq!(malformed.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&malformed.bytes().await.unwrap()).is_err());
    let dropped = sim
        .client
        .get(sim.url(path))
        .bearer_auth(sim.token("alice"))
        .send()
        .await;
    assert!(dropped.is_err());
    let truncated = sim.get("alice", path).await;
    assert_eq!(truncated.status(), StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&truncated.bytes().await.unwrap()).is_err());
    let (status, _) = sim.get_json("alice", path).await;
    assert_eq!(status, StatusCode::OK);

    let stats = sim.sandbox.stats();
    assert_eq!(stats.faulted, 5);
    assert_eq!(stats.by_endpoint["/api/v1/auctions"], 6);
    let log = sim.sandbox.requests();
    let last = log.last().unwrap();
    assert_eq!(last.headers["user-agent"], USER_AGENT);
    assert!(last.headers["accept-encoding"].contains("gzip"));
    assert!(last.authorization);
    assert_eq!(last.query.as_deref(), Some("PageSize=3"));

    // Faults over HTTP, never applied to the control endpoints.
    let set = sim
        .put_faults(&json!({"error_rate": 1.0, "error_status": 500}))
        .await;
    assert_eq!(set.status(), StatusCode::OK);
    assert_error(
        sim.get("alice", path).await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    let stats: Value = sim.control("/__sandbox/stats").await;
    assert_eq!(stats["faulted"], 6);
    // The token endpoint is never faulted.
    let oauth = BondoraConfig::default_oauth();
    let token = sim
        .client
        .post(sim.url("/oauth/access_token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", oauth.client_id.as_str()),
            ("client_secret", oauth.client_secret.as_str()),
            ("refresh_token", "unknown"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        token.status(),
        StatusCode::BAD_REQUEST,
        "an OAuth error, not the fault"
    );
}

/// What the test receiver saw of one delivery.
#[derive(Clone, Debug)]
struct Received {
    verdict: Result<(), String>,
    event_id: Option<String>,
}

#[derive(Clone)]
struct Receiver {
    keys: BTreeMap<String, Vec<u8>>,
    seen: Arc<Mutex<Vec<Received>>>,
    /// Answer 503 to this many requests first.
    fail_first: Arc<Mutex<usize>>,
}

/// Verifies a delivery from what was received alone, as a receiver does:
/// the digest over the body, the date both ways, then the HMAC over the
/// signing string rebuilt from the received headers.
fn verify(
    keys: &BTreeMap<String, Vec<u8>>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} header"))
    };
    let signature = header("signature")?;
    let params: BTreeMap<&str, &str> = signature
        .split(',')
        .filter_map(|part| part.split_once('='))
        .map(|(name, value)| (name.trim(), value.trim().trim_matches('"')))
        .collect();
    if params.get("algorithm") != Some(&"hmac-sha256") {
        return Err("algorithm".into());
    }
    let key = keys
        .get(*params.get("keyId").ok_or("no keyId")?)
        .ok_or("unknown keyId")?;
    let digest = header("digest")?;
    let expected_digest = format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)));
    if digest != expected_digest {
        return Err("digest mismatch".into());
    }
    let date = DateTime::parse_from_rfc2822(&header("date")?).map_err(|e| e.to_string())?;
    if (Utc::now() - date.to_utc()).num_seconds().abs() > 300 {
        return Err("date out of range".into());
    }
    let lines: Vec<String> = params
        .get("headers")
        .ok_or("no headers")?
        .split(' ')
        .map(|name| match name {
            "(request-target)" => Ok(format!(
                "(request-target): post {}",
                uri.path_and_query().map_or("/", |pq| pq.as_str())
            )),
            other => header(other).map(|value| format!("{other}: {value}")),
        })
        .collect::<Result<_, _>>()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(lines.join("\n").as_bytes());
    let sent = STANDARD
        .decode(params.get("signature").ok_or("no signature")?)
        .map_err(|e| e.to_string())?;
    mac.verify_slice(&sent)
        .map_err(|_| "bad signature".to_owned())
}

async fn receive(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    let verdict = verify(&receiver.keys, &uri, &headers, &body);
    let event_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|event| event["EventId"].as_str().map(str::to_owned));
    receiver.seen.lock().unwrap().push(Received {
        verdict: verdict.clone(),
        event_id,
    });
    {
        let mut fail_first = receiver.fail_first.lock().unwrap();
        if *fail_first > 0 {
            *fail_first -= 1;
            return AxumStatus::SERVICE_UNAVAILABLE;
        }
    }
    if verdict.is_ok() {
        AxumStatus::OK
    } else {
        AxumStatus::UNAUTHORIZED
    }
}

async fn start_receiver(config: &BondoraConfig, fail_first: usize) -> (String, Receiver) {
    let receiver = Receiver {
        keys: BTreeMap::from([(
            config.webhook_key_id.clone(),
            STANDARD.decode(&config.webhook_secret).unwrap(),
        )]),
        seen: Arc::default(),
        fail_first: Arc::new(Mutex::new(fail_first)),
    };
    let app = Router::new()
        .route("/hooks/bondora", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hooks/bondora?source=test"), receiver)
}

#[tokio::test]
async fn webhooks_are_signed_repeated_and_retried() {
    let config = small_config();
    let (url, receiver) = start_receiver(&config, 1).await;
    let sim = Sim::start(BondoraConfig {
        webhook_url: Some(url.clone()),
        ..config
    })
    .await;
    let before = sim.sandbox.auctions().len();

    let report = sim.sandbox.webhooks().send_events(20, 0.25).await.unwrap();
    assert_eq!(report.events, 20);
    assert_eq!(report.duplicates_sent, 5);
    assert_eq!(report.delivered, 25);
    assert_eq!(report.failed, 0);
    assert_eq!(report.retried, 1, "the first delivery met a 503");
    assert_eq!(report.attempts, 26);

    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 26);
    for delivery in &seen {
        assert_eq!(delivery.verdict, Ok(()));
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for delivery in &seen[1..] {
        *counts
            .entry(delivery.event_id.clone().unwrap())
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 20);
    assert_eq!(counts.values().filter(|&&n| n == 2).count(), 5);
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        report.event_ids.iter().cloned().collect::<HashSet<_>>()
    );
    // Each event's auction is now on the market, newest first.
    assert_eq!(sim.sandbox.auctions().len(), before + 20);
    let (_, newest) = sim.get_json("alice", "/api/v1/auctions?PageSize=1").await;
    let event = sim.sandbox.webhooks().next_event();
    assert_eq!(event.event_type, "auction.published");
    assert!(event.payload["BorrowerHistory"].is_object());
    assert!(newest["Payload"][0]["LoanNumber"].as_i64() < event.payload["LoanNumber"].as_i64());

    // Deliberately bad deliveries fail the receiver's checks.
    let sender = sim.sandbox.webhooks();
    for (signing, expected) in [
        (Signing::Valid, 200),
        (Signing::WrongSecret, 401),
        (Signing::StaleDate, 401),
        (Signing::FutureDate, 401),
        (Signing::BadDigest, 401),
        (Signing::Unsigned, 401),
        (Signing::UnknownKeyId, 401),
    ] {
        let outcome = sender.send_signed(&event, signing).await.unwrap();
        assert_eq!(outcome, Attempt::Answered(expected), "{signing:?}");
    }
    let seen = receiver.seen.lock().unwrap().clone();
    let verdicts: Vec<String> = seen[26..]
        .iter()
        .map(|delivery| delivery.verdict.clone().err().unwrap_or_default())
        .collect();
    assert_eq!(
        verdicts,
        [
            "",
            "bad signature",
            "date out of range",
            "date out of range",
            "digest mismatch",
            "no signature header",
            "unknown keyId"
        ]
    );
    // A raw delivery: exactly the headers given.
    let raw = sender
        .send_raw(
            b"{}".to_vec(),
            vec![("Content-Type".into(), "application/json".into())],
        )
        .await
        .unwrap();
    assert_eq!(raw, Attempt::Answered(401));

    // Over HTTP, to another URL; a receiver that is gone fails after retries.
    let report: Value = sim
        .client
        .post(sim.url("/__sandbox/webhooks/send"))
        .json(&json!({"count": 3, "duplicate_ratio": 0.0, "url": url}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["delivered"], 3);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let report = sim
        .sandbox
        .webhooks()
        .with_url(gone)
        .send_events(2, 0.5)
        .await
        .unwrap();
    assert_eq!(report.failed, 3);
    assert_eq!(report.delivered, 0);
    assert_eq!(report.attempts, 15, "five attempts each");
    let refused = sim
        .client
        .post(sim.url("/__sandbox/webhooks/send"))
        .json(&json!({"count": 1, "duplicate_ratio": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn same_seed_same_data() {
    let config = BondoraConfig {
        auctions: 50,
        investments_per_user: 20,
        bids_per_user: 10,
        secondary_market: 20,
        ..BondoraConfig::default()
    };
    let first = BondoraSandbox::new(config.clone());
    let second = BondoraSandbox::new(config.clone());
    let strip = |auctions: Vec<Value>| -> Vec<Value> {
        // Times are relative to now; everything else is the seed's.
        auctions
            .into_iter()
            .map(|mut auction| {
                for field in [
                    "ListedOnUTC",
                    "PlannedCloseDate",
                    "ActualCloseDate",
                    "LoanApplicationStartedDate",
                    "ScoringDate",
                    "ApplicationSignedHour",
                    "ApplicationSignedWeekday",
                ] {
                    auction[field] = Value::Null;
                }
                auction
            })
            .collect()
    };
    assert_eq!(strip(first.auctions()), strip(second.auctions()));
    assert_eq!(
        ids(&first.investments("alice"), "LoanPartId"),
        ids(&second.investments("alice"), "LoanPartId")
    );
    let other = BondoraSandbox::new(BondoraConfig { seed: 7, ..config });
    assert_ne!(
        ids(&first.investments("alice"), "LoanPartId"),
        ids(&other.investments("alice"), "LoanPartId")
    );
}

#[test]
fn config_reads_with_defaults() {
    let config: BondoraConfig = serde_json::from_value(json!({
        "auctions": 10,
        "oauth": {"users": ["carol"]},
        "limits": {"/api/v1/auctions": {"capacity": 2, "refill_per_second": 0.5}},
        "webhook_url": "http://localhost:9/hook",
    }))
    .unwrap();
    assert_eq!(config.oauth.users, ["carol"]);
    assert_eq!(
        config.oauth.scopes.len(),
        7,
        "Bondora's scopes, not the generic default"
    );
    assert_eq!(
        config.oauth.client_id,
        BondoraConfig::default_oauth().client_id
    );
    assert_eq!(
        config.limits["/api/v1/auctions"].refill_per_second,
        Decimal::new(5, 1)
    );
    assert_eq!(config.default_limit.capacity, 1);
    assert_eq!(config.seed, 42);
    assert!(serde_json::from_value::<BondoraConfig>(json!({"auction": 1})).is_err());
    // The default: about two thousand active auctions.
    let sandbox = BondoraSandbox::new(BondoraConfig::default());
    let active = sandbox
        .auctions()
        .iter()
        .filter(|auction| auction["ActualCloseDate"].is_null())
        .count();
    assert_eq!(active, 2_000);
}
