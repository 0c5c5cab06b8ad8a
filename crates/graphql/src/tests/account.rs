//! An in-memory provider with private data per principal (investments,
//! transfers), a secondary market and, optionally, OAuth; and schemas over it
//! with and without a store.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Request;
use async_trait::async_trait;
use chrono::{NaiveDate, TimeZone, Utc};
use finmesh_core::aggregate::{Aggregator, AggregatorSettings};
use finmesh_core::auth::not_connected;
use finmesh_core::model::{
    Investment, InvestmentStatus, Loan, LoanHealth, LoanPurpose, LoanStatus, NewTransfer, Offer,
    SellStatus, Transfer, TransferStatus,
};
use finmesh_core::oauth::{ClientAuth, OAuthClient, OAuthEndpoints, OAuthSettings};
use finmesh_core::provider::{
    InvestmentRequest, OfferRequest, TransferCapabilities, TransferRequest,
};
use finmesh_core::query::{
    InvestmentFilterField, InvestmentOrderField, OfferFilterField, OfferOrderField,
    TransferFilterField, TransferOrderField, compare_investments, compare_offers,
    compare_transfers,
};
use finmesh_core::registry::Registry;
use finmesh_core::upstream::LocalThrottle;
use finmesh_core::{
    CallContext, Capabilities, Currency, EntityKind, Error, ErrorKind, GlobalId, ListCapabilities,
    Money, Principal, Provider, ProviderId, Slice,
};
use finmesh_identity::Connections;
use finmesh_payments::{PaymentSettings, Payments};
use finmesh_store::SecretCipher;
use finmesh_store::testing::{TestStore, sqlite_store};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::{FinmeshSchema, SchemaOptions, Services, build_schema, variables};

/// The principal with data at the test provider.
pub(super) const ALICE: &str = "alice";
/// A principal who never connected the test provider.
pub(super) const BOB: &str = "bob";

pub(super) fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn money(amount: &str, currency: Currency) -> Money {
    Money::new(dec(amount), currency)
}

/// A platform with a user's private data.
pub(super) struct Account {
    id: ProviderId,
    caps: Capabilities,
    /// Investments per principal; a principal not listed has not connected.
    investments: HashMap<String, Vec<Investment>>,
    offers: Vec<Offer>,
    transfers: Mutex<Vec<Transfer>>,
    /// How many transfers were created upstream.
    pub(super) created: AtomicUsize,
    oauth: Option<OAuthClient>,
    fail: Option<Error>,
}

impl Account {
    pub(super) fn new(id: &str) -> Self {
        let id = ProviderId::new(id).unwrap();
        Account {
            investments: HashMap::from([(ALICE.to_string(), investments(&id))]),
            offers: offers(&id),
            transfers: Mutex::new(Vec::new()),
            created: AtomicUsize::new(0),
            caps: Capabilities {
                investments: Some(ListCapabilities {
                    filters: vec![
                        InvestmentFilterField::Status,
                        InvestmentFilterField::Currency,
                    ],
                    orders: vec![InvestmentOrderField::PurchasedAt],
                    default_order: Vec::new(),
                    max_page_size: 20,
                }),
                offers: Some(ListCapabilities {
                    filters: vec![OfferFilterField::Currency],
                    orders: vec![OfferOrderField::ListedAt],
                    default_order: Vec::new(),
                    max_page_size: 10,
                }),
                transfers: Some(TransferCapabilities {
                    list: ListCapabilities {
                        filters: vec![TransferFilterField::Status, TransferFilterField::CreatedAt],
                        orders: vec![TransferOrderField::CreatedAt],
                        default_order: Vec::new(),
                        max_page_size: 50,
                    },
                    currencies: vec![Currency::USD],
                    min_amount: Some(money("1.00", Currency::USD)),
                }),
                ..Capabilities::default()
            },
            oauth: None,
            fail: None,
            id,
        }
    }

    /// Fails every call with `error`.
    pub(super) fn failing(id: &str, error: Error) -> Self {
        Account {
            fail: Some(error),
            ..Account::new(id)
        }
    }

    /// Users link their account through OAuth.
    pub(super) fn with_oauth(mut self) -> Self {
        let oauth = OAuthClient::new(
            self.id.clone(),
            &OAuthEndpoints {
                authorize_url: "https://platform.example/oauth/authorize",
                token_url: "https://platform.example/oauth/token",
                scopes: &["investments"],
                client_auth: ClientAuth::BasicHeader,
            },
            OAuthSettings {
                client_id: "finmesh-test".into(),
                client_secret: "client-secret".into(),
                redirect_uri: format!("https://gateway.example/connect/{}/callback", self.id),
                authorize_url: None,
                token_url: None,
                scopes: None,
            },
            "finmesh-test/0",
            Duration::from_secs(5),
            Arc::new(LocalThrottle::default()),
        )
        .unwrap();
        self.oauth = Some(oauth);
        self
    }

    fn check(&self, ctx: &CallContext) -> finmesh_core::Result<Principal> {
        if let Some(error) = &self.fail {
            return Err(error.clone());
        }
        ctx.principal
            .clone()
            .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "no principal"))
    }

    fn mine(&self, ctx: &CallContext) -> finmesh_core::Result<&Vec<Investment>> {
        let principal = self.check(ctx)?;
        self.investments
            .get(principal.id())
            .ok_or_else(|| not_connected(&self.id))
    }

    fn transfer_id(&self, n: usize) -> GlobalId {
        GlobalId::new(self.id.clone(), EntityKind::Transfer, format!("t{n}"))
    }

    fn update(
        &self,
        native_id: &str,
        change: impl FnOnce(&mut Transfer),
    ) -> finmesh_core::Result<Transfer> {
        let mut transfers = self.transfers.lock().unwrap();
        let transfer = transfers
            .iter_mut()
            .find(|t| t.id.native() == native_id)
            .ok_or_else(|| Error::not_found(format!("transfer {native_id}")))?;
        change(transfer);
        transfer.updated_at = Some(Utc::now());
        Ok(transfer.clone())
    }
}

fn window<T>(mut items: Vec<T>, offset: u64, limit: u32) -> Slice<T> {
    let total = items.len() as u64;
    items = items
        .into_iter()
        .skip(offset as usize)
        .take(limit as usize)
        .collect();
    Slice {
        items,
        total: Some(total),
    }
}

fn at(y: i32, m: u32, d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

/// Alice's investments: two in CZK (one with a loan the platform cannot
/// find and values finmesh does not model), one repaid in EUR.
fn investments(provider: &ProviderId) -> Vec<Investment> {
    let id = |kind, native: &str| GlobalId::new(provider.clone(), kind, native.to_string());
    vec![
        Investment {
            id: id(EntityKind::Investment, "i1"),
            loan_id: Some(id(EntityKind::Loan, "1")),
            loan_name: Some("New car".into()),
            principal_total: money("1000.00", Currency::CZK),
            principal_unpaid: money("600.00", Currency::CZK),
            interest_total: Some(money("120.00", Currency::CZK)),
            interest_unpaid: Some(money("50.00", Currency::CZK)),
            interest_paid: Some(money("70.00", Currency::CZK)),
            interest_rate: Some(dec("0.0899")),
            status: InvestmentStatus::Active,
            sell_status: Some(SellStatus::Sellable),
            loan_health: Some(LoanHealth::Healthy),
            next_payment_date: NaiveDate::from_ymd_opt(2025, 3, 15),
            purchase_price: None,
            purchased_at: Some(at(2024, 1, 1)),
            raw: Arc::new(serde_json::from_str(r#"{"id": "i1", "amount": 1000.00}"#).unwrap()),
        },
        Investment {
            id: id(EntityKind::Investment, "i2"),
            loan_id: Some(id(EntityKind::Loan, "404")),
            loan_name: None,
            principal_total: money("500.00", Currency::CZK),
            principal_unpaid: money("500.00", Currency::CZK),
            interest_total: None,
            interest_unpaid: None,
            interest_paid: None,
            interest_rate: None,
            status: InvestmentStatus::Other("IN_COLLECTION".into()),
            sell_status: None,
            loan_health: Some(LoanHealth::Other("LATE_60".into())),
            next_payment_date: None,
            purchase_price: Some(money("480.00", Currency::CZK)),
            purchased_at: Some(at(2024, 2, 1)),
            raw: Arc::new(Value::Null),
        },
        Investment {
            id: id(EntityKind::Investment, "i3"),
            loan_id: None,
            loan_name: Some("Kitchen".into()),
            principal_total: money("200.00", Currency::EUR),
            principal_unpaid: money("0.00", Currency::EUR),
            interest_total: Some(money("10.00", Currency::EUR)),
            interest_unpaid: Some(money("0.00", Currency::EUR)),
            interest_paid: Some(money("10.00", Currency::EUR)),
            interest_rate: Some(dec("0.05")),
            status: InvestmentStatus::PaidOff,
            sell_status: Some(SellStatus::NotSellable),
            loan_health: Some(LoanHealth::Healthy),
            next_payment_date: None,
            purchase_price: None,
            purchased_at: Some(at(2023, 6, 1)),
            raw: Arc::new(Value::Null),
        },
    ]
}

fn offers(provider: &ProviderId) -> Vec<Offer> {
    (1..=4)
        .map(|n: i64| Offer {
            id: GlobalId::new(provider.clone(), EntityKind::Offer, format!("o{n}")),
            loan_id: Some(GlobalId::new(
                provider.clone(),
                EntityKind::Loan,
                n.to_string(),
            )),
            loan_name: Some(format!("loan {n}")),
            principal_remaining: money("100.00", Currency::EUR),
            price: Money::new(Decimal::new(9000 + n * 500, 2), Currency::EUR),
            // 0.10, 0.05, 0.00, -0.05
            discount: Decimal::new(15 - n * 5, 2),
            interest_rate: Some(dec("0.12")),
            rating: Some("B".into()),
            listed_at: Some(at(2024, 3, n as u32)),
            raw: Arc::new(Value::Null),
        })
        .collect()
}

#[async_trait]
impl Provider for Account {
    fn id(&self) -> &ProviderId {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "account"
    }
    fn name(&self) -> &str {
        "Account"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    fn oauth(&self) -> Option<&OAuthClient> {
        self.oauth.as_ref()
    }

    async fn loan(&self, _ctx: &CallContext, native_id: &str) -> finmesh_core::Result<Loan> {
        if native_id == "404" {
            return Err(Error::not_found(format!("loan {native_id}")));
        }
        Ok(Loan {
            id: GlobalId::new(self.id.clone(), EntityKind::Loan, native_id.to_string()),
            name: format!("loan {native_id}"),
            story: None,
            purpose: LoanPurpose::Vehicle,
            purpose_raw: None,
            rating: Some("A".into()),
            interest_rate: dec("0.0899"),
            revenue_rate: None,
            term_months: 36,
            amount: money("50000.00", Currency::CZK),
            remaining_amount: None,
            country: Some("CZ".into()),
            published_at: None,
            deadline: None,
            status: LoanStatus::Funded,
            url: None,
            borrower_region: None,
            borrower_income_type: None,
            insured: None,
            investments_count: None,
            raw: Arc::new(Value::Null),
        })
    }

    async fn investments(
        &self,
        ctx: &CallContext,
        request: &InvestmentRequest,
    ) -> finmesh_core::Result<Slice<Investment>> {
        let mut matching: Vec<Investment> = self
            .mine(ctx)?
            .iter()
            .filter(|i| request.filter.matches(i))
            .cloned()
            .collect();
        matching.sort_by(|a, b| compare_investments(a, b, &request.order));
        Ok(window(matching, request.offset, request.limit))
    }

    async fn investment(
        &self,
        ctx: &CallContext,
        native_id: &str,
    ) -> finmesh_core::Result<Investment> {
        self.mine(ctx)?
            .iter()
            .find(|i| i.id.native() == native_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("investment {native_id}")))
    }

    async fn offers(
        &self,
        _ctx: &CallContext,
        request: &OfferRequest,
    ) -> finmesh_core::Result<Slice<Offer>> {
        if let Some(error) = &self.fail {
            return Err(error.clone());
        }
        let mut matching: Vec<Offer> = self
            .offers
            .iter()
            .filter(|o| request.filter.matches(o))
            .cloned()
            .collect();
        matching.sort_by(|a, b| compare_offers(a, b, &request.order));
        Ok(window(matching, request.offset, request.limit))
    }

    async fn transfers(
        &self,
        ctx: &CallContext,
        request: &TransferRequest,
    ) -> finmesh_core::Result<Slice<Transfer>> {
        self.check(ctx)?;
        let mut matching: Vec<Transfer> = self
            .transfers
            .lock()
            .unwrap()
            .iter()
            .filter(|t| request.filter.matches(t))
            .cloned()
            .collect();
        matching.sort_by(|a, b| compare_transfers(a, b, &request.order));
        Ok(window(matching, request.offset, request.limit))
    }

    async fn transfer(&self, ctx: &CallContext, native_id: &str) -> finmesh_core::Result<Transfer> {
        self.check(ctx)?;
        self.update(native_id, |_| {})
    }

    async fn create_transfer(
        &self,
        ctx: &CallContext,
        transfer: &NewTransfer,
    ) -> finmesh_core::Result<Transfer> {
        self.check(ctx)?;
        let n = self.created.fetch_add(1, Ordering::SeqCst) + 1;
        let created = Transfer {
            id: self.transfer_id(n),
            amount: transfer.amount,
            destination_account: transfer.destination_account.clone(),
            status: TransferStatus::Pending,
            metadata: transfer.metadata.clone(),
            created_at: Utc::now(),
            updated_at: None,
            confirmed_at: None,
            expires_at: None,
            raw: Arc::new(serde_json::json!({"id": format!("t{n}")})),
        };
        self.transfers.lock().unwrap().push(created.clone());
        Ok(created)
    }

    async fn confirm_transfer(
        &self,
        ctx: &CallContext,
        native_id: &str,
    ) -> finmesh_core::Result<Transfer> {
        self.check(ctx)?;
        self.update(native_id, |t| {
            t.status = TransferStatus::Confirmed;
            t.confirmed_at = Some(Utc::now());
        })
    }

    async fn update_transfer_metadata(
        &self,
        ctx: &CallContext,
        native_id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> finmesh_core::Result<Transfer> {
        self.check(ctx)?;
        self.update(native_id, |t| t.metadata = metadata.clone())
    }
}

fn registry(providers: Vec<Arc<Account>>) -> Arc<Registry> {
    let providers = providers
        .into_iter()
        .map(|p| p as Arc<dyn Provider>)
        .collect();
    Arc::new(Registry::new(providers).unwrap())
}

/// A gateway without a store.
pub(super) fn schema_without_store(providers: Vec<Arc<Account>>) -> FinmeshSchema {
    let aggregator = Aggregator::new(registry(providers), AggregatorSettings::default());
    build_schema(
        Services::without_store(aggregator),
        SchemaOptions::default(),
    )
}

/// A gateway with a store on a fresh SQLite file (kept while the `TestStore` lives).
pub(super) async fn schema_with_store(providers: Vec<Arc<Account>>) -> (FinmeshSchema, TestStore) {
    let store = sqlite_store(SecretCipher::generate_for_demo()).await;
    let registry = registry(providers);
    let aggregator = Aggregator::new(registry.clone(), AggregatorSettings::default());
    let services = Services {
        aggregator: aggregator.clone(),
        connections: Some(Connections::new(
            store.store.clone(),
            registry,
            vec!["https://app.example/".into()],
        )),
        payments: Some(Payments::new(
            store.store.clone(),
            aggregator,
            PaymentSettings::default(),
        )),
    };
    (build_schema(services, SchemaOptions::default()), store)
}

/// Runs `query` as `principal` (anonymously when `None`).
pub(super) async fn run_as(
    schema: &FinmeshSchema,
    principal: Option<&str>,
    query: &str,
    vars: Value,
) -> Value {
    let timeout = Duration::from_secs(5);
    let call = match principal {
        Some(id) => CallContext::for_principal(Principal::new(id), timeout),
        None => CallContext::anonymous(timeout),
    };
    let request = Request::new(query).variables(variables(&vars)).data(call);
    serde_json::to_value(schema.execute(request).await).unwrap()
}
