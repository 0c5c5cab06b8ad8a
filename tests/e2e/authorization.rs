//! Authorization, field by field: every root field of `schema.graphql` that
//! is not in [`PUBLIC`] refuses an anonymous caller with `UNAUTHENTICATED`,
//! and given Alice's ids, Bob gets `NOT_FOUND` or `FORBIDDEN`, never Alice's
//! data. The fields come from the schema itself, so a new field is checked
//! (and fails until it is classified) without anyone remembering to.
//!
//! Alice and Bob each link their own Zonky account, and use Bongloy through
//! different tenants (Bob is mapped to the simulator's second partner), as a
//! production gateway maps principals to credentials.

use std::collections::BTreeMap;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{
    BaseType, FieldDefinition, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};
use finmesh_e2e::operations::{CREATE_TRANSFER, INVESTMENTS, transfer_input};
use finmesh_e2e::{connect, graphql_at};
use finmesh_sandbox::bongloy::defaults::ACTIVE_DESTINATION;
use finmesh_sandbox::bongloy::test_keys::{OTHER_API_TOKEN, OTHER_PRIVATE_KEY_PEM};
use finmesh_server::commands::Demo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Root fields anyone may call: the marketplace and the providers' status.
const PUBLIC: [&str; 4] = ["loans", "loan", "providers", "secondaryMarket"];

/// The SDL's object types: name → fields.
fn object_types(sdl: &ServiceDocument) -> BTreeMap<String, Vec<FieldDefinition>> {
    sdl.definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) => match &ty.node.kind {
                TypeKind::Object(object) => Some((
                    ty.node.name.node.to_string(),
                    object.fields.iter().map(|f| f.node.clone()).collect(),
                )),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(name) => name.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// What to select of `ty`: its leaf fields, and (two levels down) its
/// objects', so that whatever data the answer holds shows.
fn selection(types: &BTreeMap<String, Vec<FieldDefinition>>, ty: &str, levels: usize) -> String {
    let Some(fields) = types.get(ty) else {
        return String::new();
    };
    let mut selected = vec!["__typename".to_string()];
    for field in fields {
        let needs_arguments = field.arguments.iter().any(|a| !a.node.ty.node.nullable);
        if needs_arguments {
            continue;
        }
        let name = field.name.node.as_str();
        match types.contains_key(named(&field.ty.node)) {
            false => selected.push(name.to_string()),
            true if levels > 0 => selected.push(format!(
                "{name} {{ {} }}",
                selection(types, named(&field.ty.node), levels - 1)
            )),
            true => {}
        }
    }
    selected.join(" ")
}

/// Alice's records, by the type a field answers with.
struct Owned {
    investment: String,
    transfer: String,
}

/// The value of a required argument; panics for one nobody classified yet.
fn argument(field: &FieldDefinition, name: &str, ty: &str, owned: &Owned, n: usize) -> Value {
    match (name, ty) {
        ("id", "ID") => match named(&field.ty.node) {
            "Investment" => json!(owned.investment),
            "Transfer" => json!(owned.transfer),
            other => panic!(
                "`{}(id:)` answers {other}: say which of Alice's ids it takes",
                field.name.node
            ),
        },
        ("provider", "String") => json!("zonky"),
        ("idempotencyKey", "String") => json!(format!("authorization-{n}")),
        ("input", "CreateTransferInput") => transfer_input("5.00", ACTIVE_DESTINATION),
        ("metadata", "JSON") => json!({"note": "changed by someone else"}),
        _ => panic!(
            "`{}({name}: {ty})` is not classified: add a value for it here",
            field.name.node
        ),
    }
}

/// The operation calling `field` with its required arguments as variables.
fn operation(
    kind: &str,
    field: &FieldDefinition,
    types: &BTreeMap<String, Vec<FieldDefinition>>,
    owned: &Owned,
    n: usize,
) -> (String, Value) {
    let mut definitions = Vec::new();
    let mut arguments = Vec::new();
    let mut variables = serde_json::Map::new();
    for argument_definition in &field.arguments {
        let argument_definition = &argument_definition.node;
        if argument_definition.ty.node.nullable {
            continue;
        }
        let name = argument_definition.name.node.as_str();
        definitions.push(format!("${name}: {}", argument_definition.ty.node));
        arguments.push(format!("{name}: ${name}"));
        let ty = named(&argument_definition.ty.node);
        variables.insert(name.to_string(), argument(field, name, ty, owned, n));
    }
    let wrap = |list: &[String]| {
        if list.is_empty() {
            String::new()
        } else {
            format!("({})", list.join(", "))
        }
    };
    let returned = named(&field.ty.node);
    let selected = if types.contains_key(returned) {
        format!("{{ {} }}", selection(types, returned, 2))
    } else {
        String::new()
    };
    (
        format!(
            "{kind}{} {{ {}{} {selected} }}",
            wrap(&definitions),
            field.name.node,
            wrap(&arguments)
        ),
        Value::Object(variables),
    )
}

fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            e["extensions"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_private_field_refuses_strangers_and_other_principals() {
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let sdl = parse_schema(&sdl).unwrap();
    let types = object_types(&sdl);
    for public in PUBLIC {
        assert!(
            types["Query"].iter().any(|f| f.name.node == public),
            "`{public}` is listed as public but is not in the schema"
        );
    }

    // Bob's Bongloy transfers go through another partner's credential.
    let overrides = format!(
        "[providers.bongloy.principals]\nbob = \"other\"\n\
         [providers.bongloy.credentials.other]\napi_token = {OTHER_API_TOKEN:?}\nprivate_key = \"\"\"\n{OTHER_PRIVATE_KEY_PEM}\"\"\"\n"
    );
    let demo = Demo::start_with(TcpListener::bind("127.0.0.1:0").await.unwrap(), &overrides)
        .await
        .unwrap();
    let url = demo.gateway.url();
    let (alice, bob) = (demo.token("alice").unwrap(), demo.token("bob").unwrap());
    for (token, user) in [(&alice, "alice"), (&bob, "bob")] {
        assert_eq!(connect(&url, token, "zonky", user).await.status(), 200);
    }
    let investments = graphql_at(&url, Some(&alice), INVESTMENTS, json!({})).await;
    let alice_ids: Vec<String> = investments["data"]["investments"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{investments}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect();
    let created = graphql_at(
        &url,
        Some(&alice),
        CREATE_TRANSFER,
        json!({"input": transfer_input("7.00", ACTIVE_DESTINATION), "key": "alice-1"}),
    )
    .await;
    let owned = Owned {
        investment: alice_ids[0].clone(),
        transfer: created["data"]["createTransfer"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{created}"))
            .to_string(),
    };

    let mut checked = 0;
    for (kind, root) in [("query", "Query"), ("mutation", "Mutation")] {
        for (n, field) in types[root].iter().enumerate() {
            let name = field.name.node.as_str();
            if root == "Query" && PUBLIC.contains(&name) {
                continue;
            }
            let (query, variables) = operation(kind, field, &types, &owned, n);

            let anonymous = graphql_at(&url, None, &query, variables.clone()).await;
            assert!(
                anonymous["data"].is_null() || anonymous["data"][name].is_null(),
                "{name} answered an anonymous caller: {anonymous}"
            );
            assert_eq!(
                codes(&anonymous),
                ["UNAUTHENTICATED"],
                "{name} must refuse anonymous callers: {query} {anonymous}"
            );

            let as_bob = graphql_at(&url, Some(&bob), &query, variables.clone()).await;
            let text = as_bob.to_string();
            for alices in alice_ids.iter().chain([&owned.transfer]) {
                // Bob's own answers never name Alice's records, except to
                // refuse an id he sent.
                if !variables.to_string().contains(alices.as_str()) {
                    assert!(
                        !text.contains(alices.as_str()),
                        "{name} showed Bob {alices}: {text}"
                    );
                }
            }
            let takes_alices_id = field.arguments.iter().any(|a| a.node.name.node == "id");
            if takes_alices_id {
                let codes = codes(&as_bob);
                assert!(
                    matches!(codes.as_slice(), [code] if code == "NOT_FOUND" || code == "FORBIDDEN"),
                    "{name} with Alice's id must be NOT_FOUND or FORBIDDEN for Bob: {as_bob}"
                );
                assert!(
                    as_bob["data"].is_null() || as_bob["data"][name].is_null(),
                    "{name} gave Bob Alice's record: {as_bob}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} private fields found");

    // Alice's transfer is untouched and hers to read; her link still works.
    let read = graphql_at(
        &url,
        Some(&alice),
        "query($id: ID!) { transfer(id: $id) { status metadata } }",
        json!({"id": owned.transfer}),
    )
    .await;
    assert_eq!(read["data"]["transfer"]["status"], "PENDING", "{read}");
    assert_eq!(
        read["data"]["transfer"]["metadata"],
        json!({"order": "A-17"})
    );
    // A query not asked before, so that Zonky answers it rather than a cache.
    let still = graphql_at(
        &url,
        Some(&alice),
        "{ investments(first: 3, providers: [\"zonky\"]) { edges { node { id } } } }",
        Value::Null,
    )
    .await;
    assert!(still["errors"].is_null(), "{still}");
    assert_eq!(
        still["data"]["investments"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    demo.shutdown().await.unwrap();
}
