//! The Bongloy simulator seen by an HTTP client: requests signed with the
//! `jsonwebtoken` crate (as the gateway signs them), verified by the
//! simulator's own RS256 implementation; transfers, their errors and faults.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use finmesh_sandbox::{
    BongloyConfig, BongloySandbox, FaultKind, Faults, Outcome,
    bongloy::{
        AccountConfig, AccountStatus, JwtProblem, MEDIA_TYPE, PartnerConfig, PublicKey,
        defaults::*, test_keys, verify_jwt,
    },
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A JWT as the document asks for: header exactly `{"alg":"RS256"}`.
fn sign(api_token: &str, private_key_pem: &str, timestamp: Value) -> String {
    let header = Header {
        typ: None,
        ..Header::new(Algorithm::RS256)
    };
    sign_with(
        &header,
        private_key_pem,
        &json!({"api_token": api_token, "timestamp": timestamp}),
    )
}

fn sign_with(header: &Header, private_key_pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(header, claims, &key).unwrap()
}

/// A fresh token of the default configuration's first partner.
fn partner_token() -> String {
    sign(
        test_keys::PARTNER_API_TOKEN,
        test_keys::PARTNER_PRIVATE_KEY_PEM,
        json!(now_secs().to_string()),
    )
}

fn other_token() -> String {
    sign(
        test_keys::OTHER_API_TOKEN,
        test_keys::OTHER_PRIVATE_KEY_PEM,
        json!(now_secs().to_string()),
    )
}

type Sim = common::Sim<BongloySandbox>;

impl Sim {
    async fn start(config: BongloyConfig) -> Self {
        Self::launch(BongloySandbox::new(config)).await
    }

    async fn default() -> Self {
        Self::start(BongloyConfig::default()).await
    }

    /// A request signed as the first partner.
    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(method, path, &partner_token())
    }

    fn request_as(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, MEDIA_TYPE)
                .body(body.to_string());
        }
        read(request.send().await.unwrap()).await
    }

    async fn create(&self, amount: i64, destination: &str, metadata: Value) -> (StatusCode, Value) {
        self.send(
            Method::POST,
            "/v1/transfers",
            Some(json!({"data": {"type": "transfer", "attributes": {
                "amount": amount,
                "currency": "USD",
                "destination_account_number": destination,
                "metadata": metadata,
            }}})),
        )
        .await
    }

    /// Creates a transfer that must succeed; its id.
    async fn created(&self, amount: i64, destination: &str) -> String {
        let (status, body) = self.create(amount, destination, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["data"]["id"].as_str().unwrap().to_owned()
    }

    async fn confirm(&self, id: &str) -> (StatusCode, Value) {
        self.send(
            Method::PATCH,
            &format!("/v1/transfers/{id}/confirm"),
            Some(json!({"data": {"type": "transfer", "id": id}})),
        )
        .await
    }

    /// A confirmation signed with `token`, its answer unread.
    async fn confirm_as(&self, id: &str, token: &str) -> Response {
        self.request_as(Method::PATCH, &format!("/v1/transfers/{id}/confirm"), token)
            .json(&json!({"data": {"type": "transfer", "id": id}}))
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    async fn list(&self, query: &[(&str, &str)]) -> Value {
        let response = self
            .request(Method::GET, "/v1/transfers")
            .query(query)
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
        body
    }
}

async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

/// The single error's code (or none), asserting the status and the shape.
fn error_code(status: StatusCode, body: &Value, expected_status: StatusCode) -> Option<String> {
    assert_eq!(status, expected_status, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{body}");
    for error in errors {
        assert_eq!(
            error["status"],
            json!(expected_status.as_u16().to_string()),
            "{body}"
        );
        assert!(
            error["title"].is_string() && error["detail"].is_string(),
            "{body}"
        );
    }
    errors[0]["code"].as_str().map(str::to_owned)
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tokens_from_jsonwebtoken_are_accepted() {
    let sim = Sim::default().await;
    let token = partner_token();
    // The gateway's header is exactly what the document shows.
    let header = token.split('.').next().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(header).unwrap(),
        br#"{"alg":"RS256"}"#
    );

    let response = sim
        .request_as(Method::GET, "/v1/organizations", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], MEDIA_TYPE);
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let organizations = body["data"].as_array().unwrap();
    assert_eq!(organizations.len(), 2);
    assert_eq!(body["meta"]["total"], json!(2));
    let own = organizations
        .iter()
        .find(|org| org["id"] == PARTNER_ORGANIZATION)
        .unwrap();
    assert_eq!(own["type"], "organization");
    assert_eq!(own["attributes"]["currency"], "USD");
    assert_eq!(own["attributes"]["account_number"], PARTNER_ACCOUNT);
    assert_eq!(own["attributes"]["balance"], json!(PARTNER_BALANCE));
    let other = organizations
        .iter()
        .find(|org| org["id"] == OTHER_ORGANIZATION)
        .unwrap();
    assert!(other["attributes"].get("balance").is_none(), "{other}");

    // The same verifier, used directly, as the gateway's tests may.
    let keys = [PublicKey::from_pem(test_keys::PARTNER_PUBLIC_KEY_PEM).unwrap()];
    let claims = verify_jwt(&token, &keys, now_secs()).unwrap();
    assert_eq!(claims.api_token, test_keys::PARTNER_API_TOKEN);
    let others = [PublicKey::from_pem(test_keys::OTHER_PUBLIC_KEY_PKCS1_PEM).unwrap()];
    assert_eq!(
        verify_jwt(&token, &others, now_secs()),
        Err(JwtProblem::Signature)
    );

    // Answers are plain JSON for a client that accepts only that.
    let response = sim
        .request(Method::GET, "/v1/organizations")
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn a_pkcs1_public_key_and_a_rotated_key_are_accepted() {
    let mut config = BongloyConfig::default();
    config.partners[0].public_key_pem = test_keys::PARTNER_PUBLIC_KEY_PKCS1_PEM.to_owned();
    config.partners.push(PartnerConfig {
        api_token: test_keys::PARTNER_API_TOKEN.to_owned(),
        public_key_pem: test_keys::OTHER_PUBLIC_KEY_PKCS1_PEM.to_owned(),
        organization: PARTNER_ORGANIZATION.to_owned(),
    });
    let sim = Sim::start(config).await;
    for private_key in [
        test_keys::PARTNER_PRIVATE_KEY_PEM,
        test_keys::OTHER_PRIVATE_KEY_PEM,
    ] {
        let token = sign(
            test_keys::PARTNER_API_TOKEN,
            private_key,
            json!(now_secs().to_string()),
        );
        let response = sim
            .request_as(Method::GET, "/v1/organizations", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let bad = BongloyConfig {
        partners: vec![PartnerConfig {
            public_key_pem: "not a key".to_owned(),
            ..BongloyConfig::default().partners[0].clone()
        }],
        ..BongloyConfig::default()
    };
    let error = BongloySandbox::try_new(bad).err().unwrap();
    assert!(
        error.to_string().contains("partners[0].public_key_pem"),
        "{error}"
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let sim = Sim::default().await;
    let now = now_secs();
    let token = test_keys::PARTNER_API_TOKEN;
    let rs256 = Header {
        typ: None,
        ..Header::new(Algorithm::RS256)
    };
    let claims = json!({"api_token": token, "timestamp": now.to_string()});
    let unsigned = |header: &[u8], claims: &Value| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    };
    let hs256 = jsonwebtoken::encode(
        &Header {
            typ: None,
            ..Header::new(Algorithm::HS256)
        },
        &claims,
        &EncodingKey::from_secret(test_keys::PARTNER_PUBLIC_KEY_PEM.as_bytes()),
    )
    .unwrap();
    // A valid signature over a header other than exactly {"alg":"RS256"}.
    let with_typ = sign_with(
        &Header::new(Algorithm::RS256),
        test_keys::PARTNER_PRIVATE_KEY_PEM,
        &claims,
    );
    let valid = sign(
        token,
        test_keys::PARTNER_PRIVATE_KEY_PEM,
        json!(now.to_string()),
    );
    let mut tampered = valid.clone();
    tampered.truncate(valid.len() - 4);
    tampered.push_str("AAAA");

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("garbage", Some("not-a-jwt".to_owned())),
        (
            "signed by another key",
            Some(sign(
                token,
                test_keys::OTHER_PRIVATE_KEY_PEM,
                json!(now.to_string()),
            )),
        ),
        ("tampered signature", Some(tampered)),
        ("alg none", Some(unsigned(br#"{"alg":"none"}"#, &claims))),
        ("alg HS256", Some(hs256)),
        ("typ beside alg", Some(with_typ)),
        (
            "ten minutes old",
            Some(sign(
                token,
                test_keys::PARTNER_PRIVATE_KEY_PEM,
                json!((now - 600).to_string()),
            )),
        ),
        (
            "ten minutes ahead",
            Some(sign(
                token,
                test_keys::PARTNER_PRIVATE_KEY_PEM,
                json!((now + 600).to_string()),
            )),
        ),
        (
            "timestamp as a number",
            Some(sign(token, test_keys::PARTNER_PRIVATE_KEY_PEM, json!(now))),
        ),
        (
            "no timestamp",
            Some(sign_with(
                &rs256,
                test_keys::PARTNER_PRIVATE_KEY_PEM,
                &json!({"api_token": token}),
            )),
        ),
        (
            "unknown api token",
            Some(sign(
                "nobody",
                test_keys::PARTNER_PRIVATE_KEY_PEM,
                json!(now.to_string()),
            )),
        ),
    ];
    for (case, token) in cases {
        let mut request = sim.client.get(sim.url("/v1/transfers"));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.headers().contains_key(header::WWW_AUTHENTICATE),
            "{case}"
        );
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
        assert_eq!(error_code(status, &body, StatusCode::UNAUTHORIZED), None);
        // Each is refused for its own reason.
        let reason = match case {
            "no header" => "send Authorization",
            "garbage" => "three parts",
            "signed by another key" | "tampered signature" => "signature does not verify",
            "alg none" => "not \"none\"",
            "alg HS256" => "not \"HS256\"",
            "typ beside alg" => "it also has typ",
            "ten minutes old" => "too old",
            "ten minutes ahead" => "in the future",
            "timestamp as a number" => "must be a string, got the number",
            "no timestamp" => "timestamp is missing",
            _ => "unknown api_token",
        };
        let detail = body["errors"][0]["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{case}: {detail}");
    }

    // Within the skew is fine, either way.
    for timestamp in [now - 50, now + 50] {
        let token = sign(
            token,
            test_keys::PARTNER_PRIVATE_KEY_PEM,
            json!(timestamp.to_string()),
        );
        let response = sim
            .request_as(Method::GET, "/v1/transfers", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Refused requests were counted, never served.
    assert!(sim.sandbox.transfers().is_empty());
}

#[tokio::test]
async fn create_confirm_read_update_moves_exactly_the_amount() {
    let sim = Sim::default().await;
    let (status, body) = sim
        .create(
            12_345,
            ACTIVE_DESTINATION,
            json!({"reference": "abc", "note": "rent"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let transfer = &body["data"];
    assert_eq!(transfer["type"], "transfer");
    let id = transfer["id"].as_str().unwrap().to_owned();
    assert!(uuid_like(&id), "{id}");
    let attributes = &transfer["attributes"];
    assert_eq!(attributes["amount"], json!(12_345));
    assert_eq!(attributes["currency"], "USD");
    assert_eq!(attributes["destination_account_number"], ACTIVE_DESTINATION);
    assert_eq!(
        attributes["metadata"],
        json!({"reference": "abc", "note": "rent"})
    );
    assert_eq!(attributes["status"], "pending");
    assert_eq!(attributes["confirmed_at"], Value::Null);
    let created_at = attributes["created_at"].as_str().unwrap();
    let expires_at = attributes["expires_at"].as_str().unwrap();
    let created = chrono::DateTime::parse_from_rfc3339(created_at).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap();
    assert_eq!(expires - created, chrono::Duration::seconds(900));
    // Nothing moves before confirmation.
    assert_eq!(sim.sandbox.balance(PARTNER_ACCOUNT), PARTNER_BALANCE);
    assert_eq!(sim.sandbox.balance(ACTIVE_DESTINATION), 0);

    let (status, body) = sim.confirm(&id).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["attributes"]["status"], "confirmed");
    assert!(body["data"]["attributes"]["confirmed_at"].is_string());
    assert_eq!(
        sim.sandbox.balance(PARTNER_ACCOUNT),
        PARTNER_BALANCE - 12_345
    );
    assert_eq!(sim.sandbox.balance(ACTIVE_DESTINATION), 12_345);

    let (status, body) = sim.get(&format!("/v1/transfers/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["attributes"]["status"], "successful");
    assert_eq!(body["data"]["attributes"]["created_at"], created_at);

    // Metadata is replaced, not merged.
    let (status, body) = sim
        .send(
            Method::PATCH,
            &format!("/v1/transfers/{id}"),
            Some(
                json!({"data": {"id": id, "type": "transfer", "attributes": {
                    "metadata": {"reference_number": "cde456", "other_field": "foobar"}
                }}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({"reference_number": "cde456", "other_field": "foobar"});
    assert_eq!(body["data"]["attributes"]["metadata"], expected);
    let (_, body) = sim.get(&format!("/v1/transfers/{id}")).await;
    assert_eq!(body["data"]["attributes"]["metadata"], expected);
    assert_eq!(body["data"]["attributes"]["amount"], json!(12_345));

    // The organization's own balance is visible to it.
    let (_, orgs) = sim.get("/v1/organizations").await;
    let own = orgs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|org| org["id"] == PARTNER_ORGANIZATION)
        .unwrap()
        .clone();
    assert_eq!(
        own["attributes"]["balance"],
        json!(PARTNER_BALANCE - 12_345)
    );

    // Another organization sees none of it.
    let (status, body) = read(
        sim.request_as(Method::GET, &format!("/v1/transfers/{id}"), &other_token())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(error_code(status, &body, StatusCode::NOT_FOUND), None);
    let (status, body) = read(
        sim.request_as(Method::GET, "/v1/transfers", &other_token())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"], json!([]));
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn list_filters_and_pages() {
    let sim = Sim::default().await;
    let mut created = Vec::new();
    for amount in [100, 200, 300, 400, 500] {
        created.push(sim.created(amount, ACTIVE_DESTINATION).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for id in &created[..2] {
        assert_eq!(sim.confirm(id).await.0, StatusCode::OK);
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let all = sim.list(&[]).await;
    assert_eq!(ids(&all), newest_first);
    assert_eq!(all["meta"]["total"], json!(5));
    assert!(all["links"]["self"].is_string());
    assert!(all["links"].get("next").is_none());

    let successful = sim.list(&[("filter[status]", "successful")]).await;
    assert_eq!(ids(&successful), [created[1].clone(), created[0].clone()]);
    let pending = sim.list(&[("filter[status]", "pending")]).await;
    assert_eq!(ids(&pending), newest_first[..3]);
    assert_eq!(
        sim.list(&[("filter[status]", "expired")]).await["data"],
        json!([])
    );

    // Inclusive on both ends, with the times exactly as answered.
    let times: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["attributes"]["created_at"].as_str().unwrap().to_owned())
        .collect();
    // times[0] is the newest (created[4]), times[4] the oldest.
    let between = sim
        .list(&[
            ("filter[from_date]", &times[3]),
            ("filter[to_date]", &times[1]),
        ])
        .await;
    assert_eq!(
        ids(&between),
        [created[3].clone(), created[2].clone(), created[1].clone()]
    );
    let from = sim.list(&[("filter[from_date]", &times[1])]).await;
    assert_eq!(ids(&from), [created[4].clone(), created[3].clone()]);
    let to = sim.list(&[("filter[to_date]", &times[4])]).await;
    assert_eq!(ids(&to), [created[0].clone()]);
    // A date alone covers its whole (UTC) day; an offset is honoured.
    let today = &times[0][..10];
    assert_eq!(
        ids(&sim
            .list(&[("filter[from_date]", today), ("filter[to_date]", today)])
            .await)
        .len(),
        5
    );
    assert_eq!(
        sim.list(&[("filter[from_date]", "2999-01-01T00:00:00+07:00")])
            .await["data"],
        json!([])
    );
    let combined = sim
        .list(&[
            ("filter[status]", "pending"),
            ("filter[to_date]", &times[1]),
        ])
        .await;
    assert_eq!(ids(&combined), [created[3].clone(), created[2].clone()]);

    // Pages of two, followed through links.next.
    let mut seen = Vec::new();
    let mut page = sim.list(&[("page[size]", "2")]).await;
    assert_eq!(page["meta"]["total"], json!(5));
    assert_eq!(page["meta"]["page"]["total_pages"], json!(3));
    assert_eq!(page["links"]["prev"], Value::Null);
    loop {
        seen.extend(ids(&page));
        let Some(next) = page["links"]["next"].as_str() else {
            break;
        };
        let response = sim
            .client
            .get(next)
            .bearer_auth(partner_token())
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        page = body;
    }
    assert_eq!(seen, newest_first);
    assert_eq!(page["meta"]["page"]["number"], json!(3));
    // Filters are kept in the links.
    let filtered = sim
        .list(&[
            ("filter[status]", "pending"),
            ("page[number]", "1"),
            ("page[size]", "1"),
        ])
        .await;
    let next = filtered["links"]["next"].as_str().unwrap();
    assert!(
        next.contains("filter%5Bstatus%5D=pending") && next.contains("page%5Bnumber%5D=2"),
        "{next}"
    );
    assert_eq!(ids(&filtered), [newest_first[0].clone()]);
    let past_the_end = sim
        .list(&[("page[number]", "9"), ("page[size]", "2")])
        .await;
    assert_eq!(past_the_end["data"], json!([]));

    for (name, value) in [
        ("filter[status]", "done"),
        ("filter[from_date]", "yesterday"),
        ("filter[to_date]", "2020-13-01"),
        ("filter[amount]", "100"),
        ("page[number]", "0"),
        ("page[size]", "x"),
    ] {
        let response = sim
            .request(Method::GET, "/v1/transfers")
            .query(&[(name, value)])
            .send()
            .await
            .unwrap();
        let (status, body) = read(response).await;
        let code = error_code(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(code.as_deref(), Some("validation_error"));
        assert_eq!(body["errors"][0]["source"]["parameter"], name, "{body}");
    }
}

#[tokio::test]
async fn creation_errors_carry_the_documented_codes() {
    let sim = Sim::default().await;
    let attributes = |amount: Value, currency: Value, destination: Value| {
        json!({"data": {"type": "transfer", "attributes": {
            "amount": amount, "currency": currency, "destination_account_number": destination,
        }}})
    };
    let cases = [
        (
            attributes(json!(0), json!("USD"), json!(ACTIVE_DESTINATION)),
            "invalid_amount",
            "/data/attributes/amount",
        ),
        (
            attributes(json!(-500), json!("USD"), json!(ACTIVE_DESTINATION)),
            "invalid_amount",
            "/data/attributes/amount",
        ),
        (
            attributes(json!(99), json!("USD"), json!(ACTIVE_DESTINATION)),
            "invalid_amount",
            "/data/attributes/amount",
        ),
        (
            serde_json::from_str(
                r#"{"data": {"type": "transfer", "attributes": {"amount": 100000000000000000000,
                    "currency": "USD", "destination_account_number": "002002965"}}}"#,
            )
            .unwrap(),
            "invalid_amount",
            "/data/attributes/amount",
        ),
        (
            attributes(json!(100.5), json!("USD"), json!(ACTIVE_DESTINATION)),
            "validation_error",
            "/data/attributes/amount",
        ),
        (
            attributes(json!("10000"), json!("USD"), json!(ACTIVE_DESTINATION)),
            "validation_error",
            "/data/attributes/amount",
        ),
        (
            attributes(json!(1000), json!("KHR"), json!(ACTIVE_DESTINATION)),
            "validation_error",
            "/data/attributes/currency",
        ),
        (
            attributes(json!(1000), json!(null), json!(ACTIVE_DESTINATION)),
            "validation_error",
            "/data/attributes/currency",
        ),
        (
            attributes(json!(1000), json!("USD"), json!(2_002_965)),
            "validation_error",
            "/data/attributes/destination_account_number",
        ),
        (
            attributes(json!(1000), json!("USD"), json!("999999999")),
            "destination_account_not_found",
            "/data/attributes/destination_account_number",
        ),
        (
            attributes(json!(1000), json!("USD"), json!(INACTIVE_DESTINATION)),
            "destination_account_is_not_active",
            "/data/attributes/destination_account_number",
        ),
        (
            attributes(json!(1000), json!("USD"), json!(PARTNER_ACCOUNT)),
            "validation_error",
            "/data/attributes/destination_account_number",
        ),
        (
            json!({"data": {"type": "transfer", "attributes": {"amount": 1000, "currency": "USD",
            "destination_account_number": ACTIVE_DESTINATION, "metadata": {"n": 1}}}}),
            "validation_error",
            "/data/attributes/metadata/n",
        ),
        (
            json!({"data": {"type": "transfer", "attributes": {"amount": 1000, "currency": "USD",
            "destination_account_number": ACTIVE_DESTINATION, "meta_data": {}}}}),
            "validation_error",
            "/data/attributes/meta_data",
        ),
        (
            json!({"data": {"type": "transfers", "attributes": {}}}),
            "validation_error",
            "/data/type",
        ),
        (
            json!({"data": {"type": "transfer", "id": "mine", "attributes": {}}}),
            "validation_error",
            "/data/id",
        ),
        (json!({"amount": 1000}), "validation_error", "/data"),
        (json!([1, 2]), "validation_error", ""),
    ];
    for (body, code, pointer) in cases {
        let (status, answer) = sim
            .send(Method::POST, "/v1/transfers", Some(body.clone()))
            .await;
        let got = error_code(status, &answer, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(got.as_deref(), Some(code), "{body} → {answer}");
        assert_eq!(
            answer["errors"][0]["source"]["pointer"], pointer,
            "{body} → {answer}"
        );
    }

    // Every problem of one document at once.
    let (status, answer) = sim
        .send(
            Method::POST,
            "/v1/transfers",
            Some(json!({"data": {"type": "transfer", "attributes": {"amount": 50}}})),
        )
        .await;
    error_code(status, &answer, StatusCode::UNPROCESSABLE_ENTITY);
    let codes: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["invalid_amount", "validation_error", "validation_error"]
    );

    // Not JSON; not JSON:API's media type.
    let response = sim
        .request(Method::POST, "/v1/transfers")
        .header(header::CONTENT_TYPE, MEDIA_TYPE)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, answer) = read(response).await;
    assert_eq!(
        error_code(status, &answer, StatusCode::UNPROCESSABLE_ENTITY).as_deref(),
        Some("validation_error")
    );
    let response = sim
        .request(Method::POST, "/v1/transfers")
        .header(header::CONTENT_TYPE, "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, answer) = read(response).await;
    assert_eq!(
        error_code(status, &answer, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        None
    );
    // A body labelled application/json is fine, and so is the minimum amount.
    let response = sim
        .request(Method::POST, "/v1/transfers")
        .json(&json!({"data": {"type": "transfer", "attributes": {
            "amount": 100, "currency": "USD", "destination_account_number": ACTIVE_DESTINATION
        }}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(sim.sandbox.transfers().len(), 1);
}

#[tokio::test]
async fn confirmation_errors_carry_the_documented_codes() {
    let mut config = BongloyConfig::default();
    config.accounts.push(AccountConfig {
        account_number: "003000001".to_owned(),
        name: "Limited".to_owned(),
        status: AccountStatus::Active,
        balance: 0,
        daily_transfer_limit: Some(50_000),
        fails_settlement: false,
    });
    let sim = Sim::start(config).await;
    let code = |(status, body): (StatusCode, Value)| {
        error_code(status, &body, StatusCode::UNPROCESSABLE_ENTITY).unwrap()
    };

    // invalid_transfer: confirming twice.
    let id = sim.created(1_000, ACTIVE_DESTINATION).await;
    assert_eq!(sim.confirm(&id).await.0, StatusCode::OK);
    assert_eq!(code(sim.confirm(&id).await), "invalid_transfer");
    assert_eq!(sim.sandbox.balance(ACTIVE_DESTINATION), 1_000);

    // destination_account_daily_transfer_limit_exceeded: 30,000 + 30,000 > 50,000.
    let first = sim.created(30_000, "003000001").await;
    let second = sim.created(30_000, "003000001").await;
    let third = sim.created(20_000, "003000001").await;
    assert_eq!(sim.confirm(&first).await.0, StatusCode::OK);
    assert_eq!(
        code(sim.confirm(&second).await),
        "destination_account_daily_transfer_limit_exceeded"
    );
    let (_, body) = sim.get(&format!("/v1/transfers/{second}")).await;
    assert_eq!(body["data"]["attributes"]["status"], "pending");
    // Exactly up to the limit is fine.
    assert_eq!(sim.confirm(&third).await.0, StatusCode::OK);
    assert_eq!(sim.sandbox.balance("003000001"), 50_000);

    // insufficient_balance: the other organization holds $1,000.
    let response = sim
        .request_as(Method::POST, "/v1/transfers", &other_token())
        .json(&json!({"data": {"type": "transfer", "attributes": {
            "amount": OTHER_BALANCE + 1, "currency": "USD", "destination_account_number": ACTIVE_DESTINATION
        }}}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let poor = body["data"]["id"].as_str().unwrap().to_owned();
    let confirm = sim.confirm_as(&poor, &other_token()).await;
    assert_eq!(code(read(confirm).await), "insufficient_balance");
    assert_eq!(sim.sandbox.balance(OTHER_ACCOUNT), OTHER_BALANCE);

    // destination_account_is_not_active: deactivated between create and confirm.
    let id = sim.created(1_000, SECOND_DESTINATION).await;
    assert!(
        sim.sandbox
            .set_account_status(SECOND_DESTINATION, AccountStatus::Inactive)
    );
    assert_eq!(
        code(sim.confirm(&id).await),
        "destination_account_is_not_active"
    );
    assert!(
        sim.sandbox
            .set_account_status(SECOND_DESTINATION, AccountStatus::Active)
    );
    assert_eq!(sim.confirm(&id).await.0, StatusCode::OK);

    // A body whose id is not the path's; 404 for unknown, malformed and others' ids.
    let id = sim.created(1_000, ACTIVE_DESTINATION).await;
    let (status, body) = sim
        .send(
            Method::PATCH,
            &format!("/v1/transfers/{id}/confirm"),
            Some(
                json!({"data": {"type": "transfer", "id": "3b668cc8-9fea-4673-ac6a-d7f548ec064b"}}),
            ),
        )
        .await;
    assert_eq!(code((status, body)), "validation_error");
    for path in [
        "/v1/transfers/3b668cc8-9fea-4673-ac6a-d7f548ec064b/confirm".to_owned(),
        "/v1/transfers/not-a-uuid/confirm".to_owned(),
    ] {
        let (status, body) = sim
            .send(
                Method::PATCH,
                &path,
                Some(json!({"data": {"type": "transfer", "id": "x"}})),
            )
            .await;
        assert_eq!(error_code(status, &body, StatusCode::NOT_FOUND), None);
    }
    let confirm = sim.confirm_as(&id, &other_token()).await;
    assert_eq!(confirm.status(), StatusCode::NOT_FOUND);
    // Updating anything but metadata is refused.
    let (status, body) = sim
        .send(
            Method::PATCH,
            &format!("/v1/transfers/{id}"),
            Some(json!({"data": {"type": "transfer", "id": id, "attributes": {"amount": 1}}})),
        )
        .await;
    assert_eq!(code((status, body)), "validation_error");
}

#[tokio::test]
async fn pending_transfers_expire_and_failing_settlements_return_the_money() {
    let config = BongloyConfig {
        pending_ttl_secs: 1,
        settle_delay_ms: 300,
        ..BongloyConfig::default()
    };
    let sim = Sim::start(config).await;
    let stale = sim.created(1_000, ACTIVE_DESTINATION).await;
    let failing = sim.created(2_000, FAILING_DESTINATION).await;
    let (status, body) = sim.confirm(&failing).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        sim.sandbox.balance(PARTNER_ACCOUNT),
        PARTNER_BALANCE - 2_000
    );
    let (_, body) = sim.get(&format!("/v1/transfers/{failing}")).await;
    assert_eq!(body["data"]["attributes"]["status"], "confirmed");

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (_, body) = sim.get(&format!("/v1/transfers/{stale}")).await;
    assert_eq!(body["data"]["attributes"]["status"], "expired");
    assert_eq!(
        body["data"]["attributes"]["updated_at"],
        body["data"]["attributes"]["expires_at"]
    );
    let (status, body) = sim.confirm(&stale).await;
    assert_eq!(
        error_code(status, &body, StatusCode::UNPROCESSABLE_ENTITY).as_deref(),
        Some("expired_transfer")
    );
    let expired = sim.list(&[("filter[status]", "expired")]).await;
    assert_eq!(ids(&expired), [stale.as_str()]);

    let (_, body) = sim.get(&format!("/v1/transfers/{failing}")).await;
    assert_eq!(body["data"]["attributes"]["status"], "failed");
    assert_eq!(sim.sandbox.balance(PARTNER_ACCOUNT), PARTNER_BALANCE);
    assert_eq!(sim.sandbox.balance(FAILING_DESTINATION), 0);
    let (status, body) = sim.confirm(&failing).await;
    assert_eq!(
        error_code(status, &body, StatusCode::UNPROCESSABLE_ENTITY).as_deref(),
        Some("invalid_transfer")
    );
}

#[tokio::test]
async fn commit_then_drop_and_commit_then_error_commit() {
    let sim = Sim::default().await;
    sim.sandbox.set_faults(Faults {
        next: vec![FaultKind::CommitThenDrop],
        ..Faults::default()
    });
    let sent = sim
        .request(Method::POST, "/v1/transfers")
        .json(&json!({"data": {"type": "transfer", "attributes": {
            "amount": 5_000, "currency": "USD", "destination_account_number": ACTIVE_DESTINATION,
            "metadata": {"finmesh_idempotency_key": "k-1"}
        }}}))
        .send()
        .await;
    assert!(sent.is_err(), "the client must see no answer: {sent:?}");
    // ... yet the transfer exists, and listing finds it by its metadata.
    let transfers = sim.sandbox.transfers();
    assert_eq!(transfers.len(), 1);
    let id = transfers[0]["id"].as_str().unwrap().to_owned();
    let listed = sim.list(&[("filter[status]", "pending")]).await;
    assert_eq!(ids(&listed), [id.as_str()]);
    assert_eq!(
        listed["data"][0]["attributes"]["metadata"]["finmesh_idempotency_key"],
        "k-1"
    );
    let dropped = sim.sandbox.requests();
    assert_eq!(dropped[0].outcome, Outcome::Dropped);
    assert_eq!(dropped[0].status, None);

    // Commit, then answer 500: the money has moved all the same.
    let queued: Faults = serde_json::from_value(json!({
        "next": [{"kind": "commit_then_error", "status": 500}]
    }))
    .unwrap();
    let response = sim.put_faults(&queued).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = sim.confirm(&id).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        sim.sandbox.balance(PARTNER_ACCOUNT),
        PARTNER_BALANCE - 5_000
    );
    assert_eq!(sim.sandbox.balance(ACTIVE_DESTINATION), 5_000);
    let (status, body) = sim.confirm(&id).await;
    assert_eq!(
        error_code(status, &body, StatusCode::UNPROCESSABLE_ENTITY).as_deref(),
        Some("invalid_transfer")
    );
    assert_eq!(sim.sandbox.balance(ACTIVE_DESTINATION), 5_000);
    let stats = sim.sandbox.stats();
    assert_eq!(stats.faulted, 2);
    assert_eq!(stats.by_endpoint["/v1/transfers/{id}/confirm"], 2);
}

#[tokio::test]
async fn control_endpoints_show_accounts_and_reset_the_ledger() {
    let sim = Sim::default().await;
    let id = sim.created(7_500, ACTIVE_DESTINATION).await;
    assert_eq!(sim.confirm(&id).await.0, StatusCode::OK);

    let accounts: Value = sim.control("/__sandbox/bongloy/accounts").await;
    let balance = |number: &str| {
        accounts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account_number"] == number)
            .unwrap()["balance"]
            .clone()
    };
    assert_eq!(balance(PARTNER_ACCOUNT), json!(PARTNER_BALANCE - 7_500));
    assert_eq!(balance(ACTIVE_DESTINATION), json!(7_500));
    let inactive = sim.sandbox.account(INACTIVE_DESTINATION).unwrap();
    assert_eq!(inactive.status, AccountStatus::Inactive);
    assert_eq!(inactive.daily_transfer_limit, DAILY_TRANSFER_LIMIT);
    let transfers: Value = sim.control("/__sandbox/bongloy/transfers").await;
    assert_eq!(transfers[0]["id"], id.as_str());

    let stats: Value = sim.control("/__sandbox/stats").await;
    assert_eq!(stats["served"], json!(2));
    // The log never keeps the token.
    assert!(sim.sandbox.requests().iter().all(|r| r.authorization));

    let response = sim
        .client
        .post(sim.url("/__sandbox/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(sim.sandbox.transfers().is_empty());
    assert_eq!(sim.sandbox.balance(PARTNER_ACCOUNT), PARTNER_BALANCE);
    assert_eq!(sim.sandbox.stats().served, 0);

    let (status, body) = sim.get("/v2/nothing").await;
    assert_eq!(error_code(status, &body, StatusCode::NOT_FOUND), None);
}
