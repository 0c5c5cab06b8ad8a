//! The transfers part of the conformance suite: every adapter of a payment
//! platform must pass it against its simulator.
//!
//! The adapter's test builds the adapter against a running simulator,
//! implements [`TransferSimulator`] over the simulator's control surface for
//! one tenant (the one the suite's principal uses), and calls
//! [`check_transfers`]. The suite moves money on the simulator: it seeds
//! transfers through the provider itself (create, confirm), so it needs a
//! simulator whose source account can pay for a few dozen small transfers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use finmesh_core::aggregate::{ListArgs, Transfers};
use finmesh_core::model::{NewTransfer, Transfer, TransferStatus};
use finmesh_core::query::{Bounds, OrderKey, TransferFilter, TransferOrderField};
use finmesh_core::{CallContext, ErrorKind, ListRequest, Money, Provider};

use crate::lists::{assert_in_order, ids, matching_ids, walk};
use crate::{FAULT_KINDS, Fault, aggregator, lists};

/// The control surface of a payment simulator, for one tenant.
pub trait TransferSimulator: Send + Sync {
    /// Native ids of every transfer the tenant has upstream, whatever its status.
    fn transfer_ids(&self) -> HashSet<String>;
    /// Destination accounts to seed transfers to, in the platform's form,
    /// able to take a few dozen small transfers a day. Where the simulator
    /// has one whose confirmed transfers fail, list it too: the suite wants
    /// transfers in several statuses.
    fn destinations(&self) -> Vec<String>;
    /// A well-formed native id no transfer has.
    fn missing_transfer_id(&self) -> String;
    /// Makes the next requests fail, one fault each, in order; an empty list clears.
    fn inject(&self, faults: Vec<Fault>);
}

/// How many transfers the suite seeds.
pub const SEEDED: usize = 23;

/// The metadata key the gateway reconciles ambiguous creations by; the
/// suite checks it comes back unchanged.
const IDEMPOTENCY_KEY: &str = "finmesh_idempotency_key";

/// Runs every transfer check against `provider`, which talks to `simulator`
/// as the principal of `ctx` (called for a fresh context, deadline included,
/// before every call).
pub async fn check_transfers<C>(
    provider: Arc<dyn Provider>,
    simulator: &dyn TransferSimulator,
    ctx: C,
) where
    C: Fn() -> CallContext,
{
    let seeded = seed(&provider, simulator, &ctx).await;
    let all = paging_visits_every_transfer_once(&provider, simulator, &ctx, &seeded).await;
    filters_match_brute_force(&provider, &ctx, &all).await;
    pushed_filters_are_evaluated_upstream(&provider, &ctx, &all).await;
    transfer_by_id(&provider, simulator, &ctx, &all).await;
    anonymous_callers_are_refused(&provider).await;
    faults_map_to_the_taxonomy(&provider, simulator, &ctx, &all).await;
    creations_are_never_retried(&provider, simulator, &ctx).await;
}

/// Creates [`SEEDED`] transfers a few milliseconds apart, confirming two in
/// three, round-robin over the simulator's destinations. Returns them as
/// created, with the metadata each was sent.
async fn seed<C: Fn() -> CallContext>(
    provider: &Arc<dyn Provider>,
    simulator: &dyn TransferSimulator,
    ctx: &C,
) -> Vec<(Transfer, BTreeMap<String, String>)> {
    let caps = provider
        .capabilities()
        .transfers
        .clone()
        .expect("a provider under the transfers suite declares transfer capabilities");
    let currency = *caps.currencies.first().expect("at least one currency");
    let min = caps
        .min_amount
        .filter(|m| m.currency == currency)
        .map(|m| m.to_minor().expect("a minimum in whole minor units"))
        .unwrap_or(1)
        .max(1);
    let destinations = simulator.destinations();
    assert!(
        !destinations.is_empty(),
        "the simulator names no destination"
    );
    let mut seeded = Vec::new();
    for index in 0..SEEDED {
        let metadata = BTreeMap::from([
            (IDEMPOTENCY_KEY.to_string(), format!("testkit-seed-{index}")),
            ("purpose".to_string(), "conformance".to_string()),
        ]);
        let new = NewTransfer {
            amount: Money::from_minor(min + 7 * index as i64, currency),
            destination_account: destinations[index % destinations.len()].clone(),
            metadata: metadata.clone(),
        };
        provider
            .validate_transfer(&new)
            .unwrap_or_else(|e| panic!("seed {index} refused by validate_transfer: {e:?}"));
        let created = provider
            .create_transfer(&ctx(), &new)
            .await
            .unwrap_or_else(|e| panic!("creating seed {index} failed: {e:?}"));
        assert_eq!(created.amount, new.amount, "seed {index}: amount changed");
        assert_eq!(created.destination_account, new.destination_account);
        assert_eq!(
            created.metadata, metadata,
            "seed {index}: metadata not passed through unchanged"
        );
        assert_eq!(created.provider(), provider.id());
        let created = if index % 3 == 0 {
            created
        } else {
            provider
                .confirm_transfer(&ctx(), created.id.native())
                .await
                .unwrap_or_else(|e| panic!("confirming seed {index} failed: {e:?}"))
        };
        seeded.push((created, metadata));
        // Distinct creation times make time-range filters meaningful.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    seeded
}

fn newest_first() -> Vec<OrderKey<TransferOrderField>> {
    vec![OrderKey::desc(TransferOrderField::CreatedAt)]
}

async fn paging_visits_every_transfer_once<C: Fn() -> CallContext>(
    provider: &Arc<dyn Provider>,
    simulator: &dyn TransferSimulator,
    ctx: &C,
    seeded: &[(Transfer, BTreeMap<String, String>)],
) -> Vec<Transfer> {
    let all = lists::paging_visits_every_record_once::<Transfers>(
        provider,
        ctx,
        simulator.transfer_ids(),
        7,
        5,
        vec![],
    )
    .await;
    assert_in_order::<Transfers>("the default order", &all, &newest_first());
    for (transfer, metadata) in seeded {
        let listed = all
            .iter()
            .find(|t| t.id == transfer.id)
            .unwrap_or_else(|| panic!("seeded {} is not listed", transfer.id));
        assert_eq!(
            &listed.metadata, metadata,
            "{}: metadata changed",
            transfer.id
        );
        assert_eq!(listed.amount, transfer.amount);
    }

    let statuses: HashSet<&TransferStatus> = all.iter().map(|t| &t.status).collect();
    assert!(
        statuses.len() >= 2,
        "the seeded transfers show a single status: {statuses:?}"
    );
    all
}

/// A filter, and whether every platform that declares its fields can say
/// it exactly (one status, inclusive creation bounds).
struct Sample {
    name: String,
    filter: TransferFilter,
    exact_form: bool,
}

fn sample_filters(all: &[Transfer]) -> Vec<Sample> {
    let mut statuses: Vec<TransferStatus> = Vec::new();
    for transfer in all {
        if !statuses.contains(&transfer.status) {
            statuses.push(transfer.status.clone());
        }
    }
    let mut times: Vec<DateTime<Utc>> = all.iter().map(|t| t.created_at).collect();
    times.sort();
    let (low, high) = (times[times.len() / 4], times[times.len() * 3 / 4]);
    let range = |bounds: Bounds<DateTime<Utc>>| Some(bounds);
    let mut samples: Vec<Sample> = statuses
        .iter()
        .map(|status| Sample {
            name: format!("status {status:?}"),
            filter: TransferFilter {
                statuses: Some(vec![status.clone()]),
                created_at: None,
            },
            exact_form: true,
        })
        .collect();
    samples.extend([
        Sample {
            name: "several statuses".into(),
            filter: TransferFilter {
                statuses: Some(statuses.iter().take(2).cloned().collect()),
                created_at: None,
            },
            exact_form: false,
        },
        Sample {
            name: "no status at all".into(),
            filter: TransferFilter {
                statuses: Some(vec![]),
                created_at: None,
            },
            exact_form: true,
        },
        Sample {
            name: "created on or after".into(),
            filter: TransferFilter {
                statuses: None,
                created_at: range(Bounds {
                    gte: Some(low),
                    ..Default::default()
                }),
            },
            exact_form: true,
        },
        Sample {
            name: "created in an inclusive range".into(),
            filter: TransferFilter {
                statuses: None,
                created_at: range(Bounds {
                    gte: Some(low),
                    lte: Some(high),
                    ..Default::default()
                }),
            },
            exact_form: true,
        },
        Sample {
            name: "created at one instant".into(),
            filter: TransferFilter {
                statuses: None,
                created_at: range(Bounds {
                    gte: Some(high),
                    lte: Some(high),
                    ..Default::default()
                }),
            },
            exact_form: true,
        },
        Sample {
            name: "created in an exclusive range".into(),
            filter: TransferFilter {
                statuses: None,
                created_at: range(Bounds {
                    gt: Some(low),
                    lt: Some(high),
                    ..Default::default()
                }),
            },
            exact_form: false,
        },
        Sample {
            name: "one status in a range".into(),
            filter: TransferFilter {
                statuses: Some(vec![statuses[0].clone()]),
                created_at: range(Bounds {
                    gte: Some(low),
                    lte: Some(high),
                    ..Default::default()
                }),
            },
            exact_form: true,
        },
        Sample {
            name: "several statuses before a time".into(),
            filter: TransferFilter {
                statuses: Some(statuses.clone()),
                created_at: range(Bounds {
                    lt: Some(high),
                    ..Default::default()
                }),
            },
            exact_form: false,
        },
    ]);
    samples
}

async fn filters_match_brute_force<C: Fn() -> CallContext>(
    provider: &Arc<dyn Provider>,
    ctx: &C,
    all: &[Transfer],
) {
    let aggregator = aggregator(provider);
    for sample in sample_filters(all) {
        let expected = matching_ids::<Transfers>(all, &sample.filter);
        if sample.exact_form
            && sample
                .filter
                .statuses
                .as_ref()
                .is_none_or(|s| !s.is_empty())
        {
            assert!(
                !expected.is_empty(),
                "{}: the sample filter matches nothing",
                sample.name
            );
        }
        for (order, page_size) in [
            (vec![], 5),
            (vec![OrderKey::asc(TransferOrderField::Amount)], 6),
        ] {
            let served = walk::<Transfers>(
                &aggregator,
                ctx,
                sample.filter.clone(),
                order.clone(),
                page_size,
            )
            .await;
            assert_eq!(
                ids::<Transfers>(&served),
                expected,
                "{} (order {order:?}): wrong set of transfers",
                sample.name
            );
            let effective = if order.is_empty() {
                newest_first()
            } else {
                order
            };
            assert_in_order::<Transfers>(&sample.name, &served, &effective);
        }
        // A total, when the aggregator can give one, counts only matches.
        let page = aggregator
            .transfers(
                &ctx(),
                ListArgs {
                    filter: sample.filter.clone(),
                    order: vec![],
                    first: Some(3),
                    after: None,
                    providers: None,
                },
            )
            .await
            .unwrap();
        if let Some(total) = page.total_count {
            assert_eq!(
                total as usize,
                expected.len(),
                "{}: wrong totalCount",
                sample.name
            );
        }
    }
}

/// What the platform answers itself, without the aggregator's re-check: for
/// the exact forms of declared filters, only matches (and a total counting
/// them); for the others at least every match, and a total only if exact.
async fn pushed_filters_are_evaluated_upstream<C: Fn() -> CallContext>(
    provider: &Arc<dyn Provider>,
    ctx: &C,
    all: &[Transfer],
) {
    let caps = provider
        .capabilities()
        .transfers
        .clone()
        .expect("transfers are supported");
    for sample in sample_filters(all) {
        if !sample
            .filter
            .fields()
            .iter()
            .all(|f| caps.list.filters.contains(f))
        {
            continue;
        }
        let expected = matching_ids::<Transfers>(all, &sample.filter);
        let request = ListRequest {
            filter: sample.filter.clone(),
            order: vec![],
            offset: 0,
            limit: u32::try_from(all.len() + 10).unwrap(),
        };
        let slice = provider.transfers(&ctx(), &request).await.unwrap();
        let answered = ids::<Transfers>(&slice.items);
        assert!(
            answered.is_superset(&expected),
            "{}: the platform's answer misses matching transfers",
            sample.name
        );
        if sample.exact_form {
            assert!(
                slice.items.iter().all(|t| sample.filter.matches(t)),
                "{}: declared pushed down, but the platform answered non-matching transfers",
                sample.name
            );
            assert_eq!(answered, expected, "{}: wrong transfers", sample.name);
        }
        if let Some(total) = slice.total {
            assert_eq!(
                total as usize,
                expected.len(),
                "{}: a total is reported, so the filter must have been evaluated exactly",
                sample.name
            );
        }
    }
}

async fn transfer_by_id<C: Fn() -> CallContext>(
    provider: &Arc<dyn Provider>,
    simulator: &dyn TransferSimulator,
    ctx: &C,
    all: &[Transfer],
) {
    for listed in [&all[0], &all[all.len() / 2], &all[all.len() - 1]] {
        let read = provider.transfer(&ctx(), listed.id.native()).await.unwrap();
        assert_eq!(read.id, listed.id);
        assert_eq!(read.amount, listed.amount);
        assert_eq!(read.status, listed.status);
        assert_eq!(read.metadata, listed.metadata);
        assert_eq!(read.created_at, listed.created_at);
        assert_eq!(read.destination_account, listed.destination_account);
    }
    let missing = provider
        .transfer(&ctx(), &simulator.missing_transfer_id())
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing:?}");
    assert_eq!(missing.provider.as_ref(), Some(provider.id()));
}

async fn anonymous_callers_are_refused(provider: &Arc<dyn Provider>) {
    let anonymous = CallContext::anonymous(std::time::Duration::from_secs(5));
    let request = ListRequest {
        filter: TransferFilter::default(),
        order: vec![],
        offset: 0,
        limit: 5,
    };
    let error = provider.transfers(&anonymous, &request).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Unauthenticated, "{error:?}");
}

async fn faults_map_to_the_taxonomy<C: Fn() -> CallContext>(
    provider: &Arc<dyn Provider>,
    simulator: &dyn TransferSimulator,
    ctx: &C,
    all: &[Transfer],
) {
    let first_page = || async {
        let request = ListRequest {
            filter: TransferFilter::default(),
            order: vec![],
            offset: 0,
            limit: 5,
        };
        provider
            .transfers(&ctx(), &request)
            .await
            .map(|s| s.items.len())
    };
    let one = all[0].id.native().to_string();
    for (fault, expected) in FAULT_KINDS {
        // Enough copies that a retrying adapter still sees the fault at the end.
        simulator.inject(vec![fault.clone(); 5]);
        let error = first_page().await.unwrap_err();
        assert_eq!(error.kind, expected, "list under {fault:?} gave {error:?}");
        assert_eq!(
            error.provider.as_ref(),
            Some(provider.id()),
            "{fault:?} lost its provider"
        );
        simulator.inject(vec![fault.clone(); 5]);
        let error = provider.transfer(&ctx(), &one).await.unwrap_err();
        assert_eq!(error.kind, expected, "read under {fault:?} gave {error:?}");
        simulator.inject(vec![]);
        assert!(first_page().await.is_ok(), "no recovery after {fault:?}");
    }
}

/// A creation that fails is never repeated behind the caller's back: one
/// injected fault, and the call must fail (a retry would have succeeded)
/// with nothing created.
async fn creations_are_never_retried<C: Fn() -> CallContext>(
    provider: &Arc<dyn Provider>,
    simulator: &dyn TransferSimulator,
    ctx: &C,
) {
    let caps = provider
        .capabilities()
        .transfers
        .clone()
        .expect("transfers are supported");
    let currency = caps.currencies[0];
    let amount = caps.min_amount.unwrap_or(Money::from_minor(1, currency));
    let destination = simulator.destinations()[0].clone();
    for fault in [Fault::ServerError, Fault::Drop] {
        let before = simulator.transfer_ids();
        simulator.inject(vec![fault.clone()]);
        let new = NewTransfer {
            amount,
            destination_account: destination.clone(),
            metadata: BTreeMap::from([(IDEMPOTENCY_KEY.to_string(), format!("testkit-{fault:?}"))]),
        };
        let error = provider.create_transfer(&ctx(), &new).await.unwrap_err();
        assert_eq!(
            error.kind,
            ErrorKind::UpstreamUnavailable,
            "create under {fault:?} gave {error:?}"
        );
        simulator.inject(vec![]);
        assert_eq!(
            simulator.transfer_ids(),
            before,
            "a transfer was created although the only attempt failed: the adapter retried a POST"
        );
    }
}
