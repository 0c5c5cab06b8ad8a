//! Hostile input, property-based: cursors, global ids, filters, money
//! amounts, JSON metadata, webhook bodies, JWTs, and deeply nested or huge
//! queries. Every input gets a clear answer (data, or errors that each carry
//! an `extensions.code`, never `INTERNAL`; over HTTP never a 5xx), nothing
//! panics, and the gateway keeps serving. 11,400 cases in all.
//!
//! What only the schema decides runs in-process against a schema over a
//! real Zonky adapter and simulator (HTTP would add nothing but time); what
//! needs a principal, a store, signatures or the HTTP layer (JWTs, money,
//! metadata, webhooks) runs over HTTP against one `demo` gateway.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_core::CallContext;
use finmesh_core::aggregate::{Aggregator, AggregatorSettings};
use finmesh_e2e::graphql_at;
use finmesh_e2e::operations::{CREATE_TRANSFER, transfer_input};
use finmesh_graphql::{FinmeshSchema, SchemaOptions, Services, build_schema};
use finmesh_sandbox::bondora::Signing;
use finmesh_sandbox::bongloy::defaults::ACTIVE_DESTINATION;
use finmesh_sandbox::{BucketConfig, RunningSandbox, ZonkyConfig, ZonkySandbox};
use finmesh_server::commands::Demo;
use finmesh_server::config::Config;
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestCaseError, TestRunner};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::runtime::Runtime;

/// Codes a refusal of GraphQL input may carry.
const GRAPHQL_REFUSALS: [&str; 9] = [
    "INVALID_INPUT",
    "NOT_FOUND",
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "TOO_MANY_ALIASES",
    "TOO_MANY_ROOT_FIELDS",
    "INTROSPECTION_DISABLED",
];

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Cases {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Cases::default()
    })
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Data, or errors that each carry one of `allowed` codes.
fn clear(response: &Value, allowed: &[&str]) -> Result<(), TestCaseError> {
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    prop_assert!(
        !errors.is_empty() || response["data"].is_object(),
        "neither data nor errors: {response}"
    );
    for error in errors {
        let code = error["extensions"]["code"].as_str().unwrap_or("<none>");
        prop_assert!(allowed.contains(&code), "code {code}: {response}");
    }
    Ok(())
}

/// A schema over a real Zonky adapter and simulator, without HTTP in front;
/// throttles wide open, so thousands of cases never wait.
struct Local {
    schema: FinmeshSchema,
    _sandbox: RunningSandbox,
}

impl Local {
    async fn start() -> Local {
        let wide_open = BucketConfig {
            capacity: 10_000_000,
            refill_per_second: Decimal::from(10_000_000),
        };
        let sandbox = ZonkySandbox::new(ZonkyConfig {
            loans: 60,
            bucket: wide_open,
            last_published_bucket: wide_open,
            ..ZonkyConfig::default()
        })
        .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
        let toml = format!(
            "[providers.zonky]\nkind = \"zonky\"\nbase_url = \"{}\"\n\
             [[providers.zonky.throttle.rules]]\nname = \"all\"\ncapacity = 10000000\nrefill_per_second = 10000000.0\n",
            sandbox.base_url()
        );
        let config = Config::from_figment(
            &Figment::from(Toml::string(&toml)),
            &finmesh_server::factories(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let aggregator = Aggregator::new(Arc::new(config.providers), AggregatorSettings::default());
        Local {
            schema: build_schema(
                Services::without_store(aggregator),
                SchemaOptions::default(),
            ),
            _sandbox: sandbox,
        }
    }

    async fn run(&self, query: &str, variables: Value) -> Value {
        let request = async_graphql::Request::new(query)
            .variables(finmesh_graphql::variables(&variables))
            .data(CallContext::anonymous(Duration::from_secs(5)));
        serde_json::to_value(self.schema.execute(request).await).unwrap()
    }

    /// Still answering a plain query after the property.
    async fn still_serving(&self) {
        let page = self
            .run("{ loans(first: 2) { edges { node { id } } } }", Value::Null)
            .await;
        assert_eq!(
            page["data"]["loans"]["edges"].as_array().map(Vec::len),
            Some(2),
            "{page}"
        );
    }
}

/// Any JSON value: numbers with many digits, strings with anything in them.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?"
            .prop_map(|n| serde_json::from_str(&n).unwrap_or(Value::Null)),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text a number might be written as, and much that it might not.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{0,32}(\\.[0-9]{0,32})?",
        "-?[0-9]{1,3}[eE][+-]?[0-9]{1,4}",
        Just("NaN".to_string()),
        Just("Infinity".to_string()),
        "[0-9a-zA-Z.,_ -]{0,12}",
        any::<String>(),
    ]
}

#[test]
fn cursors_from_anywhere_are_refused_clearly() {
    let rt = runtime();
    let local = rt.block_on(Local::start());
    let query =
        "query($after: String) { loans(first: 3, after: $after) { edges { cursor node { id } } } }";
    let first = rt.block_on(local.run(query, Value::Null));
    let cursor = first["data"]["loans"]["edges"][2]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let mutated = (0..cursor.len(), any::<char>(), any::<bool>()).prop_map({
        let cursor = cursor.clone();
        move |(at, c, truncate)| {
            let mut chars: Vec<char> = cursor.chars().collect();
            if truncate {
                chars.truncate(at);
            } else {
                chars[at] = c;
            }
            chars.into_iter().collect::<String>()
        }
    });
    let strategy = prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..96).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        mutated,
    ];
    runner(2_000)
        .run(&strategy, |after| {
            let response = rt.block_on(local.run(query, json!({ "after": after })));
            clear(&response, &["INVALID_INPUT"])?;
            if response["errors"].is_array() {
                prop_assert_eq!(&response["errors"][0]["extensions"]["field"], "after");
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(local.still_serving());
}

#[test]
fn global_ids_of_any_shape_are_refused_or_looked_up() {
    let rt = runtime();
    let local = rt.block_on(Local::start());
    let part = prop_oneof![
        Just("zonky".to_string()),
        Just("loan".to_string()),
        "[0-9]{1,12}",
        "[a-z_-]{0,70}",
        Just("../../admin".to_string()),
        any::<String>(),
    ];
    let strategy = prop_oneof![
        any::<String>(),
        (part.clone(), part.clone(), part).prop_map(|(p, k, n)| format!("{p}:{k}:{n}")),
        "[0-9]{1,25}".prop_map(|n| format!("zonky:loan:{n}")),
    ];
    runner(2_000)
        .run(&strategy, |id| {
            let response = rt.block_on(local.run(
                "query($id: ID!) { loan(id: $id) { id } }",
                json!({ "id": id }),
            ));
            clear(&response, &["INVALID_INPUT", "NOT_FOUND"])?;
            if let Some(found) = response["data"]["loan"]["id"].as_str() {
                prop_assert_eq!(found, id.as_str());
            }
            Ok(())
        })
        .unwrap();
    rt.block_on(local.still_serving());
}

#[test]
fn filters_orders_and_page_sizes_of_any_value_are_refused_or_applied() {
    let rt = runtime();
    let local = rt.block_on(Local::start());
    // Mostly well-typed values, so that most filters reach the adapter and
    // the simulator; sometimes anything at all.
    let range = |bound: BoxedStrategy<Value>| {
        let op = prop_oneof![
            12 => prop_oneof![Just("gt"), Just("gte"), Just("lt"), Just("lte")].prop_map(str::to_string),
            1 => "[a-z]{1,4}",
        ];
        prop::collection::btree_map(op, bound, 0..4)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    };
    let or_anything =
        |typed: BoxedStrategy<Value>| prop_oneof![12 => typed, 1 => json_value()].boxed();
    let decimal = prop_oneof![
        8 => "-?[0-9]{1,7}(\\.[0-9]{1,8})?".prop_map(Value::from),
        1 => number_text().prop_map(Value::from),
    ]
    .boxed();
    let int = prop_oneof![4 => (-1_000i64..1_000).prop_map(Value::from), 1 => any::<i64>().prop_map(Value::from)].boxed();
    let date = prop_oneof![
        4 => "20[0-3][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](Z|[+-][01][0-9]:00)".prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
    ]
    .boxed();
    let words = |word: BoxedStrategy<String>| {
        prop::collection::vec(word.prop_map(Value::from), 0..4)
            .prop_map(Value::Array)
            .boxed()
    };
    let purpose = prop_oneof![
        8 => prop_oneof![Just("VEHICLE"), Just("TRAVEL"), Just("HEALTH"), Just("OTHER")].prop_map(str::to_string),
        1 => "[A-Z_]{1,12}",
    ]
    .boxed();
    let code = prop_oneof![3 => "[A-Z]{2,3}", 1 => any::<String>()].boxed();
    let filter = (
        prop::option::weighted(0.3, or_anything(range(decimal.clone()).boxed())),
        prop::option::weighted(0.3, or_anything(range(int).boxed())),
        prop::option::weighted(0.3, or_anything(range(decimal).boxed())),
        prop::option::weighted(0.3, or_anything(range(date).boxed())),
        prop::option::weighted(
            0.3,
            or_anything(words(prop_oneof!["[A-C]{1,3}", any::<String>()].boxed())),
        ),
        prop::option::weighted(0.3, or_anything(words(purpose))),
        prop::option::weighted(0.3, or_anything(code.clone().prop_map(Value::from).boxed())),
        prop::option::weighted(0.3, or_anything(code.prop_map(Value::from).boxed())),
        prop::option::weighted(
            0.3,
            or_anything(any::<bool>().prop_map(Value::from).boxed()),
        ),
        prop::option::weighted(0.1, json_value()),
    )
        .prop_map(|fields| {
            let (
                rate,
                term,
                amount,
                published,
                ratings,
                purposes,
                currency,
                country,
                insured,
                junk,
            ) = fields;
            let named = [
                ("interestRate", rate),
                ("termMonths", term),
                ("amount", amount),
                ("publishedAt", published),
                ("ratings", ratings),
                ("purposes", purposes),
                ("currency", currency),
                ("country", country),
                ("insured", insured),
                ("nope", junk),
            ];
            Value::Object(
                named
                    .into_iter()
                    .filter_map(|(name, value)| Some((name.to_string(), value?)))
                    .collect(),
            )
        });
    let order = prop::collection::vec(
        (
            prop_oneof![
                10 => prop_oneof![Just("INTEREST_RATE"), Just("TERM_MONTHS"), Just("PUBLISHED_AT"), Just("REMAINING_AMOUNT"), Just("DEADLINE")],
                1 => Just("SIDEWAYS"),
            ],
            prop_oneof![10 => prop_oneof![Just("ASC"), Just("DESC")], 1 => Just("UP")],
        )
            .prop_map(|(f, d)| json!({"field": f, "direction": d})),
        0..3,
    );
    let first = prop_oneof![
        3 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
        6 => (0i64..120).prop_map(Value::from),
    ];
    let query = "query($filter: LoanFilter, $orderBy: [LoanOrder!], $first: Int) {
        loans(filter: $filter, orderBy: $orderBy, first: $first) { totalCount edges { node { id interestRate termMonths } } } }";
    runner(2_000)
        .run(&(filter, order, first), |(filter, order, first)| {
            let variables = json!({"filter": filter, "orderBy": order, "first": first});
            let response = rt.block_on(local.run(query, variables));
            clear(
                &response,
                &[
                    "INVALID_INPUT",
                    "GRAPHQL_VALIDATION_FAILED",
                    "QUERY_TOO_COMPLEX",
                ],
            )
        })
        .unwrap();
    rt.block_on(local.still_serving());
}

/// Query text: deeply nested, huge, or a soup of GraphQL's tokens.
fn query_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{"),
        Just("}"),
        Just("("),
        Just(")"),
        Just("["),
        Just("]"),
        Just(":"),
        Just("$x"),
        Just("..."),
        Just("@include(if: true)"),
        Just("loans"),
        Just("first: 1"),
        Just("edges"),
        Just("node"),
        Just("id"),
        Just("query"),
        Just("mutation"),
        Just("fragment F on Query"),
        Just("on"),
        Just("\"s\""),
        Just("\"\"\"block\"\"\""),
        Just("1e9999"),
        Just("#c\n"),
        Just("a:"),
        Just("__schema"),
        Just("__typename"),
        Just(","),
        Just("!"),
        Just("="),
    ];
    prop_oneof![
        // Nested selections, on a field or through inline fragments.
        (
            1usize..3_000,
            prop_oneof![Just("a"), Just("... on Query"), Just("loans")]
        )
            .prop_map(|(depth, level)| format!(
                "{{ {}x{} }}",
                format!("{level} {{ ").repeat(depth),
                " }".repeat(depth)
            )),
        // Nested list values in an argument.
        (1usize..5_000).prop_map(|depth| format!(
            "{{ loans(providers: {}\"z\"{}) {{ totalCount }} }}",
            "[".repeat(depth),
            "]".repeat(depth)
        )),
        // Many aliases, many root fields.
        (1usize..600).prop_map(|n| format!(
            "{{ providers {{ {} }} }}",
            (0..n)
                .map(|i| format!("a{i}: id"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        (1usize..200).prop_map(|n| format!(
            "{{ {} }}",
            (0..n)
                .map(|i| format!("p{i}: providers {{ id }}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        // Huge strings and numbers in arguments.
        (0usize..200_000)
            .prop_map(|n| format!("{{ loans(after: \"{}\") {{ totalCount }} }}", "x".repeat(n))),
        (1usize..5_000)
            .prop_map(|n| format!("{{ loans(first: {}) {{ totalCount }} }}", "9".repeat(n))),
        prop::collection::vec(token, 0..400).prop_map(|tokens| tokens.join(" ")),
        any::<String>(),
    ]
}

#[test]
fn deep_huge_and_garbled_queries_are_refused_clearly() {
    let rt = runtime();
    let local = rt.block_on(Local::start());
    runner(1_000)
        .run(&query_text(), |query| {
            let started = Instant::now();
            let response = rt.block_on(local.run(&query, Value::Null));
            clear(&response, &GRAPHQL_REFUSALS)?;
            prop_assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
            Ok(())
        })
        .unwrap();
    rt.block_on(local.still_serving());
}

/// A JWT of `header` and `claims`, signed HS256 with `secret` (whatever
/// `alg` the header names: no JWT library would write such tokens), or not.
fn jwt(header: &Value, claims: &Value, secret: Option<&str>) -> String {
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let signing_input = format!("{}.{}", encode(header), encode(claims));
    let signature = match secret {
        Some(secret) => jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap(),
        None => URL_SAFE_NO_PAD.encode(b"not a signature"),
    };
    format!("{signing_input}.{signature}")
}

/// `Authorization` values, and the principal each must sign in (`None`:
/// refused). Signed tokens use the gateway's own `secret`.
fn authorization(secret: String) -> impl Strategy<Value = (String, Option<String>)> {
    let now = chrono::Utc::now().timestamp();
    // Each part mostly right, so that many tokens are valid and the others
    // are wrong in one or two ways.
    let alg = prop_oneof![
        6 => Just("HS256".to_string()),
        1 => Just("none".to_string()),
        1 => Just("HS512".to_string()),
        1 => Just("RS256".to_string()),
        1 => "[A-Za-z0-9]{0,8}",
    ];
    let sub = prop_oneof![
        6 => "[a-z]{1,12}".prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any::<i64>().prop_map(Value::from),
        1 => "[a-z]{300,320}".prop_map(Value::from),
        1 => any::<String>().prop_map(Value::from),
    ];
    let exp = prop_oneof![
        6 => Just(json!(now + 3_600)),
        1 => Just(json!(now - 3_600)),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!("tomorrow")),
        1 => Just(Value::Null),
    ];
    let claims = (sub, exp, prop::option::of(json_value())).prop_map(|(sub, exp, extra)| {
        let mut claims = json!({"sub": sub, "exp": exp});
        if let Some(extra) = extra {
            claims["extra"] = extra;
        }
        claims
    });
    let structured =
        (alg, claims, prop::bool::weighted(0.85)).prop_map(move |(alg, claims, signed)| {
            let header = json!({"alg": alg, "typ": "JWT"});
            let token = jwt(&header, &claims, signed.then_some(secret.as_str()));
            let live = claims["exp"].as_i64().is_some_and(|exp| exp > now + 60);
            let principal = claims["sub"]
                .as_str()
                .filter(|sub| {
                    signed && alg == "HS256" && live && !sub.is_empty() && sub.len() <= 256
                })
                .map(str::to_string);
            (format!("Bearer {token}"), principal)
        });
    prop_oneof![
        // Not even a bearer token, or garbage after `Bearer`.
        1 => "[ -~]{0,120}".prop_map(|v| (v, None)),
        1 => "[A-Za-z0-9_.-]{0,200}".prop_map(|v| (format!("Bearer {v}"), None)),
        // Well or badly signed, any algorithm and claims.
        2 => structured,
    ]
}

/// A decimal written as a JSON string or number, plain or scientific.
fn decimal_of(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => return None,
    };
    text.parse()
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

/// The HTTP properties, sharing one `demo` gateway.
#[test]
fn jwts_money_metadata_and_webhooks_over_http_never_fail_the_gateway() {
    let rt = runtime();
    let demo = rt.block_on(async {
        Demo::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
            .await
            .unwrap()
    });
    let url = demo.gateway.url();
    let client = reqwest::Client::new();
    let secret: String = demo.figment().extract_inner("auth.hs256_secret").unwrap();
    let alice = demo.token("alice").unwrap();

    // JWTs: 401 with a coded JSON error, or the principal the token names.
    runner(2_000)
        .run(&authorization(secret), |(authorization, principal)| {
            let response = rt.block_on(
                client
                    .post(format!("{url}/graphql"))
                    .header("authorization", &authorization)
                    .json(&json!({"query": "{ me { id } }"}))
                    .send(),
            );
            let Ok(response) = response else {
                // reqwest refused to send the header value: nothing reached the gateway.
                return Ok(());
            };
            let status = response.status().as_u16();
            let body: Value = rt.block_on(response.json()).unwrap();
            match principal {
                Some(principal) => {
                    prop_assert_eq!(status, 200);
                    prop_assert_eq!(&body["data"]["me"]["id"], principal.as_str());
                }
                None => {
                    prop_assert_eq!(status, 401, "{}: {}", authorization, body);
                    prop_assert_eq!(&body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
                }
            }
            Ok(())
        })
        .unwrap();

    // Money: refused as invalid, or a transfer of exactly the amount asked.
    let keys = AtomicU64::new(0);
    let amount = prop_oneof![
        number_text().prop_map(Value::from),
        json_value(),
        "[0-9]{1,4}(\\.[0-9]{1,2})?".prop_map(Value::from),
    ];
    let currency = prop_oneof![
        Just("USD".to_string()),
        Just("usd".to_string()),
        "[A-Z]{3}",
        any::<String>(),
    ];
    runner(600)
        .run(&(amount, currency), |(amount, currency)| {
            let mut input = transfer_input("1.00", ACTIVE_DESTINATION);
            input["amount"] = json!({"amount": amount, "currency": currency});
            let key = format!("hostile-{}", keys.fetch_add(1, Ordering::Relaxed));
            let response = rt.block_on(graphql_at(
                &url,
                Some(&alice),
                CREATE_TRANSFER,
                json!({"input": input, "key": key}),
            ));
            clear(&response, &["INVALID_INPUT", "GRAPHQL_VALIDATION_FAILED"])?;
            let created = &response["data"]["createTransfer"];
            if created.is_object() {
                let asked = decimal_of(&amount);
                let got = decimal_of(&created["amount"]["amount"]);
                prop_assert!(asked.is_some() && got == asked, "{}", response);
                prop_assert_eq!(&created["amount"]["currency"], "USD");
            }
            Ok(())
        })
        .unwrap();

    // Metadata: refused as invalid, or kept exactly.
    let created = rt.block_on(graphql_at(
        &url,
        Some(&alice),
        CREATE_TRANSFER,
        json!({"input": transfer_input("3.00", ACTIVE_DESTINATION), "key": "hostile-metadata"}),
    ));
    let id = created["data"]["createTransfer"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let update = "mutation($id: ID!, $metadata: JSON!) { updateTransferMetadata(id: $id, metadata: $metadata) { metadata } }";
    runner(800)
        .run(&json_value(), |metadata| {
            let response = rt.block_on(graphql_at(
                &url,
                Some(&alice),
                update,
                json!({"id": id, "metadata": metadata}),
            ));
            clear(&response, &["INVALID_INPUT", "GRAPHQL_VALIDATION_FAILED"])?;
            if let Some(kept) = response["data"]["updateTransferMetadata"]["metadata"].as_object() {
                prop_assert_eq!(&Value::Object(kept.clone()), &metadata);
            }
            Ok(())
        })
        .unwrap();

    // Webhook bodies: signed or not, 200 for an event, else a coded 4xx.
    let sender = demo
        .sandboxes
        .bondora
        .webhooks()
        .with_url(format!("{url}/webhooks/bondora"));
    // `None`: the simulator's next real event (its payload replaced when
    // `Some(payload)` rides along in the second slot).
    let body = prop_oneof![
        2 => Just((None, None)),
        1 => json_value().prop_map(|payload| (None, Some(payload))),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| (Some(b), None)),
        1 => json_value().prop_map(|v| (Some(v.to_string().into_bytes()), None)),
        1 => (any::<String>(), "[a-z.]{0,24}", json_value()).prop_map(|(id, kind, payload)| {
            let event = json!({"EventId": id, "EventType": kind, "Payload": payload});
            (Some(event.to_string().into_bytes()), None)
        }),
    ];
    let signing = prop_oneof![
        Just(Signing::Valid),
        Just(Signing::Valid),
        Just(Signing::WrongSecret),
        Just(Signing::StaleDate),
        Just(Signing::BadDigest),
        Just(Signing::Unsigned),
        Just(Signing::UnknownKeyId),
    ];
    runner(1_000)
        .run(&(body, signing), |((body, payload), signing)| {
            let body = body.unwrap_or_else(|| {
                let mut event = serde_json::to_value(sender.next_event()).unwrap();
                if let Some(payload) = payload {
                    event["Payload"] = payload;
                }
                event.to_string().into_bytes()
            });
            let headers = sender
                .signed_headers(&body, signing, chrono::Utc::now())
                .unwrap();
            let mut request = client.post(format!("{url}/webhooks/bondora")).body(body);
            for (name, value) in headers {
                if name != "Host" {
                    request = request.header(name, value);
                }
            }
            let response = rt.block_on(request.send()).unwrap();
            let status = response.status().as_u16();
            let answer: Value = rt.block_on(response.json()).unwrap_or(Value::Null);
            prop_assert!(matches!(status, 200 | 400 | 401), "{} {}", status, answer);
            if signing != Signing::Valid {
                prop_assert_eq!(status, 401, "{}", answer);
            }
            if status != 200 {
                prop_assert!(
                    answer["error"]["code"].is_string()
                        || answer["errors"][0]["extensions"]["code"].is_string(),
                    "{}",
                    answer
                );
            }
            Ok(())
        })
        .unwrap();

    // Still serving.
    let page = rt.block_on(graphql_at(
        &url,
        None,
        "{ loans(first: 2) { edges { node { id } } } }",
        Value::Null,
    ));
    assert_eq!(
        page["data"]["loans"]["edges"].as_array().map(Vec::len),
        Some(2),
        "{page}"
    );
    rt.block_on(demo.shutdown()).unwrap();
}
