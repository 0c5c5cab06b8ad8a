//! JSON:API on the wire: the documents the adapter sends, and the reading of
//! Bongloy's answers into the unified model.
//!
//! The document shows request bodies but no answer (every response is
//! "[binary data]"), so answers are read leniently along JSON:API's own rules
//! and the request's names: a resource object `{"type", "id", "attributes"}`
//! with `amount` (integer cents; a string of digits is accepted too),
//! `currency` (USD when absent: the only one the document allows),
//! `destination_account_number`, `metadata`, `status`, `created_at`,
//! `updated_at`, `confirmed_at` and `expires_at` (RFC 3339, UTC when without
//! an offset, or Unix seconds). Kebab-case member names (`created-at`, a
//! common JSON:API style) are read too, and `type` may be `transfer` or
//! `transfers`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use finmesh_core::model::{Transfer, TransferStatus};
use finmesh_core::{Currency, EntityKind, Error, GlobalId, Money, ProviderId, Result};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The JSON:API media type, sent as `Content-Type` and `Accept`.
pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// `{"data": ...}`
#[derive(Serialize)]
pub(crate) struct Document<T> {
    pub data: T,
}

/// A resource object as sent: `type`, `id` when the resource exists, and
/// `attributes` when there are any.
#[derive(Serialize)]
pub(crate) struct Resource<'a, A> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<A>,
}

/// `POST /v1/transfers`: the document's four attributes. `metadata` is left
/// out when there is none (it is optional).
#[derive(Serialize)]
pub(crate) struct NewTransferAttributes<'a> {
    pub amount: i64,
    pub currency: &'a str,
    pub destination_account_number: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: &'a BTreeMap<String, String>,
}

/// `PATCH /v1/transfers/{id}`: metadata only.
#[derive(Serialize)]
pub(crate) struct MetadataAttributes<'a> {
    pub metadata: &'a BTreeMap<String, String>,
}

pub(crate) const TRANSFER_TYPE: &str = "transfer";

/// `{"data": <resource object>}`, the resource kept raw.
#[derive(Deserialize)]
pub(crate) struct SingleDocument {
    pub data: Value,
}

/// `{"data": [...], "links": {...}, "meta": {...}}`.
#[derive(Deserialize)]
pub(crate) struct ListDocument {
    pub data: Vec<Value>,
    #[serde(default)]
    pub links: Option<Value>,
    #[serde(default)]
    pub meta: Option<Value>,
}

impl ListDocument {
    /// `links.next` as a URL string (a link may be a string or `{"href": ...}`).
    pub fn next_link(&self) -> Option<&str> {
        let next = self.links.as_ref()?.get("next")?;
        match next {
            Value::String(url) if !url.is_empty() => Some(url),
            Value::Object(link) => link.get("href")?.as_str().filter(|u| !u.is_empty()),
            _ => None,
        }
    }

    /// The number of matching records, when `meta` says: `total`,
    /// `total_count`, `record_count` or `record-count` (names JSON:API servers
    /// use; the document names none), or `meta.page.total`.
    pub fn total(&self) -> Option<u64> {
        let meta = self.meta.as_ref()?;
        [
            "total",
            "total_count",
            "totalCount",
            "record_count",
            "record-count",
        ]
        .iter()
        .find_map(|name| meta.get(name).and_then(as_u64))
        .or_else(|| meta.get("page")?.get("total").and_then(as_u64))
    }

    /// `meta.page.{number, size}` when the server reports its paging.
    pub fn page(&self) -> Option<(u64, u64)> {
        let page = self.meta.as_ref()?.get("page")?;
        let number = page.get("number").and_then(as_u64)?;
        let size = page.get("size").and_then(as_u64)?;
        (number >= 1 && size >= 1).then_some((number, size))
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[derive(Deserialize)]
struct TransferResource {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    attributes: TransferAttributes,
}

#[derive(Deserialize)]
struct TransferAttributes {
    amount: Cents,
    #[serde(default)]
    currency: Option<String>,
    #[serde(alias = "destination-account-number")]
    destination_account_number: String,
    #[serde(default)]
    metadata: Option<Value>,
    status: String,
    #[serde(alias = "created-at")]
    created_at: Time,
    #[serde(default, alias = "updated-at")]
    updated_at: Option<Time>,
    #[serde(default, alias = "confirmed-at")]
    confirmed_at: Option<Time>,
    #[serde(default, alias = "expires-at")]
    expires_at: Option<Time>,
}

/// An integer count of minor units: a JSON integer or a string of digits.
struct Cents(i64);

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(n) => n
                .as_i64()
                .map(Cents)
                .ok_or_else(|| de::Error::custom("the amount is not an integer number of cents")),
            Value::String(s) => s
                .trim()
                .parse()
                .map(Cents)
                .map_err(|_| de::Error::custom("the amount is not an integer number of cents")),
            _ => Err(de::Error::custom(
                "the amount is not an integer number of cents",
            )),
        }
    }
}

/// A point in time: RFC 3339 (UTC when written without an offset) or Unix seconds.
struct Time(DateTime<Utc>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => finmesh_core::time::parse_timestamp(s.trim(), chrono_tz::UTC)
                .map(Time)
                .map_err(|_| de::Error::custom("not an ISO 8601 timestamp")),
            Value::Number(n) => n
                .as_i64()
                .and_then(|secs| DateTime::from_timestamp(secs, 0))
                .map(Time)
                .ok_or_else(|| de::Error::custom("not a Unix timestamp")),
            _ => Err(de::Error::custom("not a timestamp")),
        }
    }
}

/// Reads `resource` (a `data` member) as a typed value, with an error that
/// says where and what, never the value itself.
fn decode<T: for<'de> Deserialize<'de>>(
    provider: &ProviderId,
    what: &str,
    resource: &Value,
) -> Result<T> {
    serde_path_to_error::deserialize(resource).map_err(|e| {
        let path = e.path().to_string();
        Error::upstream_protocol(format!(
            "{provider} answered {what} that could not be read: {} at `{path}`",
            redact(&e.inner().to_string())
        ))
        .with_provider(provider)
    })
}

/// Whether `id` is a UUID, the form of every transfer id in the document.
pub(crate) fn is_uuid(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

/// Reads a transfer resource object into the unified [`Transfer`].
pub(crate) fn transfer(provider: &ProviderId, resource: Value) -> Result<Transfer> {
    let parsed: TransferResource = decode(provider, "a transfer", &resource)?;
    if !matches!(parsed.kind.as_str(), "transfer" | "transfers") {
        return Err(Error::upstream_protocol(format!(
            "{provider} answered a resource of type {:?} where a transfer was expected",
            parsed.kind
        ))
        .with_provider(provider));
    }
    if !is_uuid(&parsed.id) {
        return Err(Error::upstream_protocol(format!(
            "{provider} answered a transfer whose id is not a UUID"
        ))
        .with_provider(provider));
    }
    let a = parsed.attributes;
    let currency: Currency = match a.currency.as_deref() {
        None | Some("") => Currency::USD,
        Some(code) => code.trim().to_ascii_uppercase().parse().map_err(|_| {
            Error::upstream_protocol(format!(
                "{provider} answered a transfer with an unreadable currency"
            ))
            .with_provider(provider)
        })?,
    };
    Ok(Transfer {
        id: GlobalId::new(provider.clone(), EntityKind::Transfer, parsed.id.as_str()),
        amount: Money::from_minor(a.amount.0, currency),
        destination_account: a.destination_account_number,
        status: status(&a.status),
        metadata: metadata(a.metadata),
        created_at: a.created_at.0,
        updated_at: a.updated_at.map(|t| t.0),
        confirmed_at: a.confirmed_at.map(|t| t.0),
        expires_at: a.expires_at.map(|t| t.0),
        raw: Arc::new(resource),
    })
}

/// The document's statuses; anything else is kept verbatim.
pub(crate) fn status(raw: &str) -> TransferStatus {
    match raw.trim().to_ascii_lowercase().as_str() {
        "pending" => TransferStatus::Pending,
        "confirmed" => TransferStatus::Confirmed,
        "successful" => TransferStatus::Successful,
        "failed" => TransferStatus::Failed,
        "expired" => TransferStatus::Expired,
        _ => TransferStatus::Other(raw.to_string()),
    }
}

/// The status as `filter[status]` spells it; `None` for one we do not know.
pub(crate) fn status_name(status: &TransferStatus) -> Option<&'static str> {
    match status {
        TransferStatus::Pending => Some("pending"),
        TransferStatus::Confirmed => Some("confirmed"),
        TransferStatus::Successful => Some("successful"),
        TransferStatus::Failed => Some("failed"),
        TransferStatus::Expired => Some("expired"),
        TransferStatus::Other(_) => None,
    }
}

/// Metadata as a flat map of strings. The document calls it "key-value
/// pairs"; a value that is not a string (a number, a nested object) is kept
/// as its JSON text rather than failing the page, and a `null` value is left
/// out (it means no value).
fn metadata(value: Option<Value>) -> BTreeMap<String, String> {
    let Some(Value::Object(pairs)) = value else {
        return BTreeMap::new();
    };
    pairs
        .into_iter()
        .filter_map(|(key, value)| match value {
            Value::String(text) => Some((key, text)),
            Value::Null => None,
            other => Some((key, other.to_string())),
        })
        .collect()
}

/// An organization of the network (`GET /v1/organizations`). The document
/// shows no answer: `name`, `country`, `currency`, `account_number` and
/// `balance` (integer cents) are read when present.
#[derive(Debug, Clone, PartialEq)]
pub struct Organization {
    pub id: String,
    pub name: Option<String>,
    pub country: Option<String>,
    pub currency: Option<Currency>,
    pub account_number: Option<String>,
    /// In the organization's currency (USD when it says none).
    pub balance: Option<Money>,
    pub raw: Arc<Value>,
}

pub(crate) fn organization(provider: &ProviderId, resource: Value) -> Result<Organization> {
    #[derive(Deserialize)]
    struct Raw {
        id: Value,
        #[serde(default)]
        attributes: Map<String, Value>,
    }
    let raw: Raw = decode(provider, "an organization", &resource)?;
    let text = |name: &str| {
        raw.attributes
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let currency = text("currency").and_then(|c| c.trim().to_ascii_uppercase().parse().ok());
    let balance = raw
        .attributes
        .get("balance")
        .and_then(|b| Cents::deserialize(b).ok())
        .map(|cents| Money::from_minor(cents.0, currency.unwrap_or(Currency::USD)));
    let id = match &raw.id {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    };
    Ok(Organization {
        id,
        name: text("name"),
        country: text("country"),
        currency,
        account_number: text("account_number").or_else(|| text("account-number")),
        balance,
        raw: Arc::new(resource),
    })
}

/// One member of a JSON:API `errors` array, read leniently.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub code: Option<String>,
    pub title: Option<String>,
    pub detail: Option<String>,
    pub pointer: Option<String>,
    pub parameter: Option<String>,
}

/// The `errors` of an error answer; empty when the body is not a JSON:API
/// error document.
pub(crate) fn api_errors(body: &[u8]) -> Vec<ApiError> {
    let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let Some(Value::Array(errors)) = document.get("errors") else {
        return Vec::new();
    };
    let text =
        |error: &Value, name: &str| error.get(name).and_then(Value::as_str).map(str::to_string);
    errors
        .iter()
        .filter(|e| e.is_object())
        .map(|error| {
            let source = error.get("source");
            let in_source = |name: &str| {
                source
                    .and_then(|s| s.get(name))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            ApiError {
                code: text(error, "code"),
                title: text(error, "title"),
                detail: text(error, "detail"),
                pointer: in_source("pointer"),
                parameter: in_source("parameter"),
            }
        })
        .collect()
}

/// Blanks out values serde quotes from the input, keeping names.
fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside: Option<char> = None;
    let quoting = message.starts_with("invalid type") || message.starts_with("invalid value");
    for c in message.chars() {
        match inside {
            Some(close) if c == close => {
                out.push('…');
                out.push(c);
                inside = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if quoting && (c == '"' || c == '`') {
                    inside = Some(c);
                }
            }
        }
    }
    out
}

impl fmt::Display for Organization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name} ({})", self.id),
            None => f.write_str(&self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn provider() -> ProviderId {
        ProviderId::new("bongloy").unwrap()
    }

    fn resource(attributes: Value) -> Value {
        json!({"type": "transfer", "id": "3b668cc8-9fea-4673-ac6a-d7f548ec064b", "attributes": attributes})
    }

    #[test]
    fn reads_a_transfer() {
        let t = transfer(
            &provider(),
            resource(json!({
                "amount": 10000, "currency": "USD", "destination_account_number": "002002965",
                "metadata": {"foobar": "foobar", "n": 5, "gone": null, "nested": {"a": 1}},
                "status": "pending", "created_at": "2020-01-01T00:00:00.000Z",
                "updated_at": "2020-01-01T00:00:00.000Z", "confirmed_at": null,
                "expires_at": "2020-01-01T00:15:00Z"
            })),
        )
        .unwrap();
        assert_eq!(
            t.id.to_string(),
            "bongloy:transfer:3b668cc8-9fea-4673-ac6a-d7f548ec064b"
        );
        assert_eq!(
            t.amount,
            Money::new("100.00".parse().unwrap(), Currency::USD)
        );
        assert_eq!(t.status, TransferStatus::Pending);
        assert_eq!(t.metadata.get("foobar").map(String::as_str), Some("foobar"));
        assert_eq!(t.metadata.get("n").map(String::as_str), Some("5"));
        assert_eq!(
            t.metadata.get("nested").map(String::as_str),
            Some("{\"a\":1}")
        );
        assert!(!t.metadata.contains_key("gone"));
        assert_eq!(t.confirmed_at, None);
        assert_eq!(
            t.expires_at.unwrap().to_rfc3339(),
            "2020-01-01T00:15:00+00:00"
        );
        assert_eq!(t.raw["attributes"]["amount"], json!(10000));
    }

    #[test]
    fn reads_the_other_reasonable_forms() {
        let t = transfer(
            &provider(),
            json!({"type": "transfers", "id": "3B668CC8-9FEA-4673-AC6A-D7F548EC064B", "attributes": {
                "amount": "250", "destination-account-number": "002002965",
                "status": "Settling", "created-at": 1_581_510_124, "updated-at": "2020-02-12T12:22:04"
            }}),
        )
        .unwrap();
        assert_eq!(t.amount, Money::from_minor(250, Currency::USD));
        assert_eq!(t.status, TransferStatus::Other("Settling".into()));
        assert_eq!(t.created_at.timestamp(), 1_581_510_124);
        assert_eq!(t.updated_at.unwrap().timestamp(), 1_581_510_124);
        assert!(t.metadata.is_empty());
    }

    #[test]
    fn unreadable_transfers_say_where_without_values() {
        let err = transfer(
            &provider(),
            resource(
                json!({"amount": 1.5, "destination_account_number": "1", "status": "pending",
                            "created_at": "2020-01-01T00:00:00Z"}),
            ),
        )
        .unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_PROTOCOL_ERROR");
        assert!(err.message.contains("attributes.amount"), "{}", err.message);

        let err = transfer(
            &provider(),
            resource(
                json!({"amount": 1, "destination_account_number": "secret-ish", "status": "pending",
                            "created_at": "yesterday"}),
            ),
        )
        .unwrap_err();
        assert!(err.message.contains("created_at"), "{}", err.message);
        assert!(!err.message.contains("yesterday"), "{}", err.message);

        let mut not_uuid = resource(json!({}));
        not_uuid["id"] = json!("../../admin");
        assert_eq!(
            transfer(&provider(), not_uuid).unwrap_err().code(),
            "UPSTREAM_PROTOCOL_ERROR"
        );
        let mut organization = resource(json!({"amount": 1, "destination_account_number": "1",
                                               "status": "pending", "created_at": "2020-01-01T00:00:00Z"}));
        organization["type"] = json!("organization");
        assert!(
            transfer(&provider(), organization)
                .unwrap_err()
                .message
                .contains("organization")
        );
    }

    #[test]
    fn list_documents_give_links_totals_and_pages() {
        let doc: ListDocument = serde_json::from_value(json!({
            "data": [], "links": {"next": {"href": "/v1/transfers?page[number]=2"}},
            "meta": {"total": 12, "page": {"number": 1, "size": 5, "total_pages": 3}}
        }))
        .unwrap();
        assert_eq!(doc.next_link(), Some("/v1/transfers?page[number]=2"));
        assert_eq!(doc.total(), Some(12));
        assert_eq!(doc.page(), Some((1, 5)));
        let bare: ListDocument =
            serde_json::from_value(json!({"data": [], "links": {"next": null}})).unwrap();
        assert_eq!(
            (bare.next_link(), bare.total(), bare.page()),
            (None, None, None)
        );
        let counted: ListDocument =
            serde_json::from_value(json!({"data": [], "meta": {"record_count": "7"}})).unwrap();
        assert_eq!(counted.total(), Some(7));
    }

    #[test]
    fn error_documents_are_read_leniently() {
        let errors = api_errors(
            br#"{"errors":[{"status":"422","code":"invalid_amount","title":"Invalid amount","detail":"d",
                 "source":{"pointer":"/data/attributes/amount"}},{"status":422,"source":{"parameter":"filter[status]"}}]}"#,
        );
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].code.as_deref(), Some("invalid_amount"));
        assert_eq!(
            errors[0].pointer.as_deref(),
            Some("/data/attributes/amount")
        );
        assert_eq!(errors[1].parameter.as_deref(), Some("filter[status]"));
        assert!(api_errors(b"<html>").is_empty());
        assert!(api_errors(br#"{"error":"injected_fault"}"#).is_empty());
    }

    #[test]
    fn requests_are_the_documents_shapes() {
        let metadata = BTreeMap::from([("foobar".to_string(), "foobar".to_string())]);
        let body = Document {
            data: Resource {
                kind: TRANSFER_TYPE,
                id: None,
                attributes: Some(NewTransferAttributes {
                    amount: 10000,
                    currency: "USD",
                    destination_account_number: "002002965",
                    metadata: &metadata,
                }),
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"data": {"type": "transfer", "attributes": {"amount": 10000, "currency": "USD",
                   "destination_account_number": "002002965", "metadata": {"foobar": "foobar"}}}})
        );
        let confirm = Document {
            data: Resource::<()> {
                kind: TRANSFER_TYPE,
                id: Some("3b668cc8-9fea-4673-ac6a-d7f548ec064b"),
                attributes: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&confirm).unwrap(),
            json!({"data": {"type": "transfer", "id": "3b668cc8-9fea-4673-ac6a-d7f548ec064b"}})
        );
    }

    #[test]
    fn organizations_keep_what_they_say() {
        let org = organization(
            &provider(),
            json!({"type": "organization", "id": "8a3f", "attributes": {
                "name": "Demo", "country": "KH", "currency": "USD", "account_number": "001000001", "balance": 10000000}}),
        )
        .unwrap();
        assert_eq!(
            org.balance,
            Some(Money::from_minor(10_000_000, Currency::USD))
        );
        assert_eq!(org.account_number.as_deref(), Some("001000001"));
        assert_eq!(org.to_string(), "Demo (8a3f)");
    }
}
