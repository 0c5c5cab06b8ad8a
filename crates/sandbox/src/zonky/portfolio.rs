//! Each user's investments, shaped like the document's `Investmentv2` (the
//! list) and `InvestmentDetail` (one investment), the same for the same seed
//! and user name.
//!
//! Every investment is in a loan of the marketplace (`loan.id` answers on
//! `/loans/{id}`, and name, purpose, rating, rates, amount, term, income
//! type, region and insurance are that loan's), one investment per loan. The
//! marketplace only holds loans published in the last days, so the
//! repayment history of an investment (its times, paid instalments, days
//! past due) is its own: it cannot agree with the loan's `datePublished`.
//!
//! Money follows an annuity schedule of the invested principal at the loan's
//! interest rate, rounded to hellers per instalment, so that at any point
//! `principal.unpaid = principal.total - paid principal` exactly and
//! `interest.total` is the sum of the instalments' interest.

use chrono::{DateTime, Months, NaiveDate, TimeDelta, Utc};
use chrono_tz::{Europe::Prague, Tz};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::{Decimal, MathematicalOps};
use serde::Serialize;

use super::data::{
    IncomeType, Loan, Purpose, Rating, WireEnum, one_of, serialize_instant, wire_enum,
};

wire_enum! {
    /// `sellStatus`.
    SellStatus {
        SellableWithFee = "SELLABLE_WITH_FEE" @ 1,
        SellableWithoutFee = "SELLABLE_WITHOUT_FEE" @ 1,
        NotSellable = "NOT_SELLABLE" @ 1,
        Offered = "OFFERED" @ 1,
        Sold = "SOLD" @ 1,
    }
}

wire_enum! {
    /// `loanHealth`, the table's filter options. An investment holds one of
    /// the specific members; `HEALTHY_AND_ACTIVE` and `CURRENTLY_IN_DUE` are
    /// groups of them (see [`LoanHealth::group`]).
    LoanHealth {
        NeverInDue = "NEVER_IN_DUE" @ 1,
        HealthyAndActive = "HEALTHY_AND_ACTIVE" @ 0,
        HistoricallyInDue = "HISTORICALLY_IN_DUE" @ 1,
        CurrentlyInDue = "CURRENTLY_IN_DUE" @ 0,
        OneToFifteenDpd = "ONE_TO_FIFTEEN_DPD" @ 1,
        SixteenToThirtyDpd = "SIXTEEN_TO_THIRTY_DPD" @ 1,
        ThirtyOneToSixtyDpd = "THIRTY_ONE_TO_SIXTY_DPD" @ 1,
        SixtyOneToNinetyDpd = "SIXTY_ONE_TO_NINETY_DPD" @ 1,
        MoreThanNinetyDpd = "MORE_THAN_NINETY_DPD" @ 1,
        PaidOff = "PAID_OFF" @ 1,
        Paid = "PAID" @ 1,
    }
}

impl LoanHealth {
    /// What a filter operand stands for: `HEALTHY_AND_ACTIVE` is an active
    /// loan paid on time (`NEVER_IN_DUE`, `HISTORICALLY_IN_DUE`);
    /// `CURRENTLY_IN_DUE` is any of the days-past-due ranges; any other
    /// member is itself.
    pub(crate) fn group(member: &'static str) -> Vec<&'static str> {
        let members: &[Self] = match member {
            "HEALTHY_AND_ACTIVE" => &[Self::NeverInDue, Self::HistoricallyInDue],
            "CURRENTLY_IN_DUE" => &[
                Self::OneToFifteenDpd,
                Self::SixteenToThirtyDpd,
                Self::ThirtyOneToSixtyDpd,
                Self::SixtyOneToNinetyDpd,
                Self::MoreThanNinetyDpd,
            ],
            _ => return vec![member],
        };
        members.iter().map(|health| health.as_str()).collect()
    }

    fn of_dpd(dpd: u32) -> Self {
        match dpd {
            0..=15 => Self::OneToFifteenDpd,
            16..=30 => Self::SixteenToThirtyDpd,
            31..=60 => Self::ThirtyOneToSixtyDpd,
            61..=90 => Self::SixtyOneToNinetyDpd,
            _ => Self::MoreThanNinetyDpd,
        }
    }
}

wire_enum! {
    /// `loan.healthStats.loanHealthInfo`.
    LoanHealthInfo {
        Healthy = "HEALTHY" @ 70,
        HistoricallyInDue = "HISTORICALLY_IN_DUE" @ 15,
        CurrentlyInDue = "CURRENTLY_IN_DUE" @ 15,
    }
}

wire_enum! {
    /// `investmentStatus`.
    InvestmentStatus {
        Active = "ACTIVE" @ 1,
        Paid = "PAID" @ 1,
        AwaitingInvestment = "AWAITING_INVESTMENT" @ 1,
    }
}

wire_enum! {
    /// `insuranceStatus`.
    InsuranceStatus {
        Current = "CURRENTLY_INSURED" @ 1,
        Historical = "HISTORICALLY_INSURED" @ 1,
        Never = "NOT_INSURED" @ 1,
    }
}

wire_enum! {
    /// `covidLabel`.
    CovidLabel {
        RequestWaiting = "COVID_19_REQUEST_WAITING" @ 1,
        PostponementProcessed = "COVID_19_POSTPONEMENT_PROCESSED" @ 2,
    }
}

wire_enum! {
    /// `loan.borrower.region`: the marketplace's region codes 1 to 14 in
    /// this order, and Slovakia.
    Region {
        HlavniMestoPraha = "HLAVNI_MESTO_PRAHA" @ 1,
        Stredocesky = "STREDOCESKY" @ 1,
        Jihocesky = "JIHOCESKY" @ 1,
        Plzensky = "PLZENSKY" @ 1,
        Karlovarsky = "KARLOVARSKY" @ 1,
        Ustecky = "USTECKY" @ 1,
        Liberecky = "LIBERECKY" @ 1,
        Kralovehradecky = "KRALOVEHRADECKY" @ 1,
        Pardubicky = "PARDUBICKY" @ 1,
        Vysocina = "VYSOCINA" @ 1,
        Jihomoravsky = "JIHOMORAVSKY" @ 1,
        Olomoucky = "OLOMOUCKY" @ 1,
        Moravskoslezsky = "MORAVSKOSLEZSKY" @ 1,
        Zlinsky = "ZLINSKY" @ 1,
        Slovensko = "SLOVENSKO" @ 1,
    }
}

impl Region {
    /// The region of a marketplace loan's `region` code.
    pub(crate) fn of_code(code: &str) -> Self {
        code.parse::<usize>()
            .ok()
            .and_then(|code| code.checked_sub(1))
            .and_then(|index| Self::ALL.get(index))
            .copied()
            .unwrap_or(Self::Slovensko)
    }
}

wire_enum! {
    /// `loan.label`.
    LoanLabel {
        Pending = "PENDING" @ 1,
        InWithdrawal = "IN_WITHDRAWAL" @ 1,
        PastDueCurrently = "PAST_DUE_CURRENTLY" @ 1,
        PastDuePreviously = "PAST_DUE_PREVIOUSLY" @ 1,
        Terminated = "TERMINATED" @ 1,
    }
}

wire_enum! {
    /// `loan.detailLabels` of the detail.
    DetailLabel {
        VerifiedBorrower = "VERIFIED_BORROWER" @ 1,
        VerifiedIncome = "VERIFIED_INCOME" @ 1,
        CurrentlyInsured = "CURRENTLY_INSURED" @ 1,
        AdditionallyInsured = "ADDITIONALLY_INSURED" @ 1,
        BlackFriday = "BLACK_FRIDAY" @ 1,
        Covid19RequestWaiting = "COVID_19_REQUEST_WAITING" @ 1,
        Covid19PostponementProcessed = "COVID_19_POSTPONEMENT_PROCESSED" @ 1,
    }
}

/// An investment as `/me/investments` lists it: the document's
/// `Investmentv2`, plus the table's filter properties `loanHealth`,
/// `investmentStatus`, `insuranceStatus` and `covidLabel`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Investment {
    pub(crate) id: u64,
    #[serde(serialize_with = "serialize_instant")]
    pub(crate) time_modified: DateTime<Tz>,
    #[serde(serialize_with = "serialize_instant")]
    pub(crate) time_created: DateTime<Tz>,
    pub(crate) principal: Amounts,
    pub(crate) interest: Amounts,
    pub(crate) sell_status: SellStatus,
    #[serde(rename = "isBlockedByAB4")]
    pub(crate) is_blocked_by_ab4: bool,
    pub(crate) loan: InvestedLoan,
    pub(crate) smp_sell_info: SmpSellInfo,
    pub(crate) loan_health: LoanHealth,
    pub(crate) investment_status: InvestmentStatus,
    pub(crate) insurance_status: InsuranceStatus,
    pub(crate) covid_label: Option<CovidLabel>,
}

/// `principal` and `interest`: the whole, and what is still to be repaid.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Amounts {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) total: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) unpaid: Decimal,
}

impl Amounts {
    pub(crate) fn paid(&self) -> Decimal {
        self.total - self.unpaid
    }
}

/// The invested loan as the list shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvestedLoan {
    pub(crate) id: u64,
    pub(crate) purpose: Purpose,
    pub(crate) name: String,
    rating: Rating,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) interest_rate: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) revenue_rate: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) amount: Decimal,
    currency: &'static str,
    country_of_origin: &'static str,
    /// The loan's monthly instalment.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    annuity: Decimal,
    pub(crate) payments: Payments,
    dpd: u32,
    next_payment_date: Option<NaiveDate>,
    health_stats: HealthStats,
    label: Option<LoanLabel>,
    pub(crate) borrower: Borrower,
    has_collection_history: bool,
    /// What only the detail shows.
    #[serde(skip)]
    detail: LoanDetail,
}

/// Instalments of the loan: all of them, and those not paid yet.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Payments {
    pub(crate) total: u32,
    pub(crate) unpaid: u32,
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthStats {
    paid_instalments: u32,
    longest_days_due: u32,
    days_since_last_in_due: u32,
    instalments_currently_in_due: u32,
    loan_health_info: LoanHealthInfo,
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Borrower {
    pub(crate) primary_income_type: IncomeType,
    pub(crate) region: Region,
}

/// The fields of the detail's `loan` that the list does not show.
#[derive(Clone, Debug)]
struct LoanDetail {
    active_loan_ordinal: u32,
    public_identifier: String,
    contract_no: String,
    user_no: String,
    story: String,
    detail_labels: Vec<DetailLabel>,
    borrower_id: u64,
    borrower_no: String,
}

/// `smpSellInfo`: what selling the investment on the secondary marketplace
/// would bring. Present for every investment (the document marks it
/// required); zeros when nothing is left to sell.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SmpSellInfo {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    bought_for: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    remaining_principal: Decimal,
    /// A fraction of 1.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    discount: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    sell_price: Decimal,
    fee: Fee,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Fee {
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    value: Decimal,
    /// When the investment can be sold without a fee.
    #[serde(serialize_with = "serialize_instant")]
    expires_at: DateTime<Tz>,
}

/// One investment as `/me/investments/{id}` answers it: the document's
/// `InvestmentDetail`, plus the same four filter properties as the list.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvestmentDetail<'a> {
    id: u64,
    #[serde(serialize_with = "serialize_instant")]
    time_modified: DateTime<Tz>,
    #[serde(serialize_with = "serialize_instant")]
    time_created: DateTime<Tz>,
    principal: Amounts,
    interest: Amounts,
    sell_status: SellStatus,
    #[serde(rename = "isBlockedByAB4")]
    is_blocked_by_ab4: bool,
    loan: DetailLoan<'a>,
    smp_sell_info: &'a SmpSellInfo,
    loan_health: LoanHealth,
    investment_status: InvestmentStatus,
    insurance_status: InsuranceStatus,
    covid_label: Option<CovidLabel>,
}

/// The detail's `loan`, in the document's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DetailLoan<'a> {
    id: u64,
    active_loan_ordinal: u32,
    public_identifier: &'a str,
    contract_no: &'a str,
    user_no: &'a str,
    title: &'a str,
    story: &'a str,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    annuity: Decimal,
    detail_labels: &'a [DetailLabel],
    borrower: DetailBorrower<'a>,
    health_stats: HealthStats,
    purpose: Purpose,
    country_of_origin: &'static str,
    currency: &'static str,
    payments: Payments,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    revenue_rate: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    interest_rate: Decimal,
    has_collection_history: bool,
    dpd: u32,
    next_payment_date: Option<NaiveDate>,
    label: Option<LoanLabel>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DetailBorrower<'a> {
    id: u64,
    borrower_no: &'a str,
    primary_income_type: IncomeType,
    region: Region,
}

impl Investment {
    pub(crate) fn detail(&self) -> InvestmentDetail<'_> {
        let loan = &self.loan;
        let detail = &loan.detail;
        InvestmentDetail {
            id: self.id,
            time_modified: self.time_modified,
            time_created: self.time_created,
            principal: self.principal,
            interest: self.interest,
            sell_status: self.sell_status,
            is_blocked_by_ab4: self.is_blocked_by_ab4,
            loan: DetailLoan {
                id: loan.id,
                active_loan_ordinal: detail.active_loan_ordinal,
                public_identifier: &detail.public_identifier,
                contract_no: &detail.contract_no,
                user_no: &detail.user_no,
                title: &loan.name,
                story: &detail.story,
                annuity: loan.annuity,
                detail_labels: &detail.detail_labels,
                borrower: DetailBorrower {
                    id: detail.borrower_id,
                    borrower_no: &detail.borrower_no,
                    primary_income_type: loan.borrower.primary_income_type,
                    region: loan.borrower.region,
                },
                health_stats: loan.health_stats,
                purpose: loan.purpose,
                country_of_origin: loan.country_of_origin,
                currency: loan.currency,
                payments: loan.payments,
                revenue_rate: loan.revenue_rate,
                interest_rate: loan.interest_rate,
                has_collection_history: loan.has_collection_history,
                dpd: loan.dpd,
                next_payment_date: loan.next_payment_date,
                label: loan.label,
            },
            smp_sell_info: &self.smp_sell_info,
            loan_health: self.loan_health,
            investment_status: self.investment_status,
            insurance_status: self.insurance_status,
            covid_label: self.covid_label,
        }
    }
}

/// The document's `InvestmentSummary` over some investments.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvestmentSummary {
    investments_count: usize,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    principal_remaining: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    principal_paid: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    interest_remaining: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    interest_paid: Decimal,
}

impl InvestmentSummary {
    pub(crate) fn of<'a>(investments: impl IntoIterator<Item = &'a Investment>) -> Self {
        let mut summary = Self {
            investments_count: 0,
            principal_remaining: money(Decimal::ZERO),
            principal_paid: money(Decimal::ZERO),
            interest_remaining: money(Decimal::ZERO),
            interest_paid: money(Decimal::ZERO),
        };
        for investment in investments {
            summary.investments_count += 1;
            summary.principal_remaining += investment.principal.unpaid;
            summary.principal_paid += investment.principal.paid();
            summary.interest_remaining += investment.interest.unpaid;
            summary.interest_paid += investment.interest.paid();
        }
        summary
    }
}

/// Money as the API writes it: rounded to, and always with, two decimals.
pub(crate) fn money(amount: Decimal) -> Decimal {
    let mut amount = amount.round_dp(2);
    amount.rescale(2);
    amount
}

/// A generator for one purpose and one user (or none): the same seed, name
/// and purpose always give the same draws, whatever else is configured.
pub(crate) fn rng_for(seed: u64, name: &str, purpose: &[u8; 16]) -> ChaCha8Rng {
    let mut key = [0; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&fnv1a(name.as_bytes()).to_le_bytes());
    key[16..].copy_from_slice(purpose);
    ChaCha8Rng::from_seed(key)
}

/// FNV-1a: a stable hash (unlike the standard library's, which may change).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The first investment id of a user: ids are `base + 1..`, in steps of 1 to
/// 3, within a block of 100,000 chosen from the name.
pub(crate) fn id_base(user: &str, block_offset: u64) -> u64 {
    1_000_000_000 + ((fnv1a(user.as_bytes()) + block_offset) % 9_000) * 100_000
}

/// Generates `count` investments of `user` (at most one per loan, so at most
/// `loans.len()`), with ids from `id_base` up, growing with `timeCreated`.
pub(crate) fn generate(
    seed: u64,
    user: &str,
    count: usize,
    id_base: u64,
    loans: &[Loan],
    now: DateTime<Utc>,
) -> Vec<Investment> {
    // Whole milliseconds, as serialized.
    let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let mut rng = rng_for(seed, user, b"zonky-portfolio!");
    let count = count.min(loans.len());
    let mut investments: Vec<Investment> = rand::seq::index::sample(&mut rng, loans.len(), count)
        .into_iter()
        .filter_map(|index| loans.get(index))
        .map(|loan| investment(&mut rng, seed, loan, now))
        .collect();
    investments.sort_by_key(|investment| investment.time_created);
    let mut id = id_base;
    for investment in &mut investments {
        id += rng.random_range(1..=3);
        investment.id = id;
    }
    investments
}

/// Where a generated investment stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Invested in a loan still being funded.
    Awaiting,
    /// Being repaid.
    Active,
    /// Repaid to the last instalment.
    Paid,
    /// Repaid early.
    PaidOff,
    /// Sold on the secondary marketplace.
    Sold,
}

/// How the loan has been paid so far.
struct History {
    /// Instalments paid.
    paid: u32,
    /// Instalments due and unpaid.
    in_due: u32,
    dpd: u32,
    longest_days_due: u32,
    days_since_last_in_due: u32,
    next_payment_date: Option<NaiveDate>,
    info: LoanHealthInfo,
}

fn investment(rng: &mut ChaCha8Rng, seed: u64, loan: &Loan, now: DateTime<Utc>) -> Investment {
    let now = now.with_timezone(&Prague);
    let today = now.date_naive();
    let term = loan.term_in_months.max(1);
    let principal = Decimal::from(*one_of(
        rng,
        &[
            200, 200, 200, 400, 400, 600, 800, 1000, 1000, 2000, 3000, 5000,
        ],
    ));
    let schedule = Schedule::annuity(principal, loan.interest_rate, term);

    let stage = match rng.random_range(0..100) {
        0..5 => Stage::Awaiting,
        5..80 => Stage::Active,
        80..92 => Stage::Paid,
        92..97 => Stage::PaidOff,
        _ => Stage::Sold,
    };
    let months_ago = |months: u32| now.checked_sub_months(Months::new(months)).unwrap_or(now);
    let due_date = |created: DateTime<Tz>, instalment: u32| {
        created
            .date_naive()
            .checked_add_months(Months::new(instalment))
            .unwrap_or(today)
    };
    let some_time = |rng: &mut ChaCha8Rng| TimeDelta::milliseconds(rng.random_range(0..86_400_000));

    // When the investment was made, how its loan has been paid, when it last
    // changed, and its principal and interest.
    let (created, history, modified, principal_amounts, interest_amounts) = match stage {
        Stage::Awaiting => {
            let published = loan.date_published.min(now);
            let span = (now - published).num_milliseconds().max(1);
            let created = published + TimeDelta::milliseconds(rng.random_range(0..span));
            let history = History {
                paid: 0,
                in_due: 0,
                dpd: 0,
                longest_days_due: 0,
                days_since_last_in_due: 0,
                next_payment_date: None,
                info: LoanHealthInfo::Healthy,
            };
            let amounts = (
                Amounts {
                    total: money(principal),
                    unpaid: money(principal),
                },
                Amounts {
                    total: schedule.interest_total(),
                    unpaid: schedule.interest_total(),
                },
            );
            (created, history, created, amounts.0, amounts.1)
        }
        Stage::Active | Stage::Sold => {
            // `elapsed` instalments have fallen due: the next is within a month.
            let elapsed = rng.random_range(0..term);
            let created =
                months_ago(elapsed) - TimeDelta::days(rng.random_range(1..28)) - some_time(rng);
            let roll = rng.random_range(0..100);
            let history = if elapsed > 0 && roll >= 85 {
                let in_due = match rng.random_range(0..100) {
                    0..50 => 1,
                    50..70 => 2,
                    70..80 => 3,
                    _ => rng.random_range(4..=14),
                }
                .min(elapsed);
                let paid = elapsed - in_due;
                let oldest_unpaid = due_date(created, paid + 1);
                let dpd = u32::try_from((today - oldest_unpaid).num_days().max(1)).unwrap_or(1);
                let earlier = if rng.random_bool(0.3) {
                    rng.random_range(1..=60)
                } else {
                    0
                };
                History {
                    paid,
                    in_due,
                    dpd,
                    longest_days_due: dpd.max(earlier),
                    days_since_last_in_due: 0,
                    next_payment_date: Some(oldest_unpaid),
                    info: LoanHealthInfo::CurrentlyInDue,
                }
            } else if elapsed > 0 && roll >= 70 {
                let days = u32::try_from((now - created).num_days().max(2)).unwrap_or(2);
                History {
                    paid: elapsed,
                    in_due: 0,
                    dpd: 0,
                    longest_days_due: rng.random_range(1..=90),
                    days_since_last_in_due: rng.random_range(1..days),
                    next_payment_date: Some(due_date(created, elapsed + 1)),
                    info: LoanHealthInfo::HistoricallyInDue,
                }
            } else {
                History {
                    paid: elapsed,
                    in_due: 0,
                    dpd: 0,
                    longest_days_due: 0,
                    days_since_last_in_due: 0,
                    next_payment_date: Some(due_date(created, elapsed + 1)),
                    info: LoanHealthInfo::Healthy,
                }
            };
            let last_paid = if history.paid > 0 {
                created
                    .checked_add_months(Months::new(history.paid))
                    .unwrap_or(created)
                    + some_time(rng)
            } else {
                created
            };
            let principal_paid = schedule.principal_paid(history.paid);
            let interest_paid = schedule.interest_paid(history.paid);
            if stage == Stage::Sold {
                // Sold after the last payment it received.
                let span = (now - last_paid).num_milliseconds().max(1);
                let sold = last_paid + TimeDelta::milliseconds(rng.random_range(0..span));
                let principal = Amounts {
                    total: money(principal),
                    unpaid: money(Decimal::ZERO),
                };
                let interest = Amounts {
                    total: interest_paid,
                    unpaid: money(Decimal::ZERO),
                };
                (created, history, sold.min(now), principal, interest)
            } else {
                let principal = Amounts {
                    total: money(principal),
                    unpaid: money(principal - principal_paid),
                };
                let interest = Amounts {
                    total: schedule.interest_total(),
                    unpaid: money(schedule.interest_total() - interest_paid),
                };
                (created, history, last_paid.min(now), principal, interest)
            }
        }
        Stage::Paid => {
            let created = months_ago(term + rng.random_range(0..=24))
                - TimeDelta::days(rng.random_range(1..28))
                - some_time(rng);
            let late = rng.random_bool(0.2);
            let finished = created
                .checked_add_months(Months::new(term))
                .unwrap_or(created)
                + some_time(rng);
            let history = History {
                paid: term,
                in_due: 0,
                dpd: 0,
                longest_days_due: if late { rng.random_range(1..=60) } else { 0 },
                days_since_last_in_due: if late {
                    u32::try_from((now - finished).num_days().max(1)).unwrap_or(1)
                        + rng.random_range(0..300)
                } else {
                    0
                },
                next_payment_date: None,
                info: if late {
                    LoanHealthInfo::HistoricallyInDue
                } else {
                    LoanHealthInfo::Healthy
                },
            };
            let principal = Amounts {
                total: money(principal),
                unpaid: money(Decimal::ZERO),
            };
            let interest = Amounts {
                total: schedule.interest_total(),
                unpaid: money(Decimal::ZERO),
            };
            (created, history, finished.min(now), principal, interest)
        }
        Stage::PaidOff => {
            let paid = rng.random_range(0..term);
            let created = months_ago(paid + 1 + rng.random_range(0..=12))
                - TimeDelta::days(rng.random_range(1..28))
                - some_time(rng);
            let prepaid = created
                .checked_add_months(Months::new(paid))
                .unwrap_or(created)
                + TimeDelta::days(rng.random_range(1..28));
            let history = History {
                paid,
                in_due: 0,
                dpd: 0,
                longest_days_due: 0,
                days_since_last_in_due: 0,
                next_payment_date: None,
                info: LoanHealthInfo::Healthy,
            };
            let principal = Amounts {
                total: money(principal),
                unpaid: money(Decimal::ZERO),
            };
            let interest = Amounts {
                total: schedule.interest_paid(paid),
                unpaid: money(Decimal::ZERO),
            };
            (created, history, prepaid.min(now), principal, interest)
        }
    };

    let loan_health = match stage {
        Stage::Awaiting => LoanHealth::NeverInDue,
        Stage::Paid => LoanHealth::Paid,
        Stage::PaidOff => LoanHealth::PaidOff,
        Stage::Active | Stage::Sold => match history.info {
            LoanHealthInfo::Healthy => LoanHealth::NeverInDue,
            LoanHealthInfo::HistoricallyInDue => LoanHealth::HistoricallyInDue,
            LoanHealthInfo::CurrentlyInDue => LoanHealth::of_dpd(history.dpd),
        },
    };
    let investment_status = match stage {
        Stage::Awaiting => InvestmentStatus::AwaitingInvestment,
        Stage::Active => InvestmentStatus::Active,
        Stage::Paid | Stage::PaidOff | Stage::Sold => InvestmentStatus::Paid,
    };
    let label = match (stage, history.info) {
        (Stage::Awaiting, _) => Some(LoanLabel::Pending),
        (Stage::Active | Stage::Sold, LoanHealthInfo::CurrentlyInDue) => {
            if history.dpd > 90 && rng.random_bool(0.4) {
                Some(LoanLabel::Terminated)
            } else {
                Some(LoanLabel::PastDueCurrently)
            }
        }
        (_, LoanHealthInfo::HistoricallyInDue) => Some(LoanLabel::PastDuePreviously),
        _ => None,
    };
    let covid_label = match (stage, rng.random_range(0..100)) {
        (Stage::Active | Stage::Sold, 0) => Some(CovidLabel::RequestWaiting),
        (Stage::Active | Stage::Sold, 1..3) => Some(CovidLabel::PostponementProcessed),
        _ => None,
    };
    let insurance_status = if loan.insurance_active {
        InsuranceStatus::Current
    } else if rng.random_bool(0.1) {
        InsuranceStatus::Historical
    } else {
        InsuranceStatus::Never
    };

    // Selling: a fee in the first year, never for a blocked or terminated one.
    let fee_expires_at = created
        .checked_add_months(Months::new(12))
        .unwrap_or(created);
    let blocked = stage == Stage::Active && rng.random_bool(0.03);
    let sell_status = match stage {
        Stage::Awaiting | Stage::Paid | Stage::PaidOff => SellStatus::NotSellable,
        Stage::Sold => SellStatus::Sold,
        Stage::Active if blocked || label == Some(LoanLabel::Terminated) => SellStatus::NotSellable,
        Stage::Active if rng.random_bool(0.06) => SellStatus::Offered,
        Stage::Active if now < fee_expires_at => SellStatus::SellableWithFee,
        Stage::Active => SellStatus::SellableWithoutFee,
    };
    let bought_for = if stage != Stage::Awaiting && rng.random_bool(0.1) {
        // Bought on the secondary marketplace, at a discount.
        let discount = Decimal::new(*one_of(rng, &[0, 2, 5, 10]), 2);
        money(principal_amounts.total * (Decimal::ONE - discount))
    } else {
        principal_amounts.total
    };
    let discount = match (sell_status, history.info) {
        (SellStatus::NotSellable | SellStatus::Sold, _) => Decimal::ZERO,
        (_, LoanHealthInfo::CurrentlyInDue) => Decimal::new(*one_of(rng, &[10, 20, 30, 50]), 2),
        (SellStatus::Offered, _) => Decimal::new(*one_of(rng, &[0, 0, 1, 3, 5]), 2),
        _ => Decimal::ZERO,
    };
    let discount = money(discount);
    let sell_price = money(principal_amounts.unpaid * (Decimal::ONE - discount));
    let fee = if matches!(
        sell_status,
        SellStatus::SellableWithFee | SellStatus::Offered
    ) && now < fee_expires_at
    {
        money(sell_price * Decimal::new(15, 3))
    } else {
        money(Decimal::ZERO)
    };

    let mut detail_labels = Vec::new();
    let traits = mix(seed, loan.id);
    if traits % 10 < 8 {
        detail_labels.push(DetailLabel::VerifiedBorrower);
    }
    if (traits / 10) % 10 < 5 {
        detail_labels.push(DetailLabel::VerifiedIncome);
    }
    if loan.insurance_active {
        detail_labels.push(DetailLabel::CurrentlyInsured);
    }
    match covid_label {
        Some(CovidLabel::RequestWaiting) => detail_labels.push(DetailLabel::Covid19RequestWaiting),
        Some(CovidLabel::PostponementProcessed) => {
            detail_labels.push(DetailLabel::Covid19PostponementProcessed);
        }
        None => {}
    }
    let borrower_id = 100_000 + mix(seed ^ 1, loan.id) % 900_000;

    let unpaid_instalments = match stage {
        Stage::Paid | Stage::PaidOff => 0,
        _ => term - history.paid,
    };
    Investment {
        id: 0,
        time_modified: modified.max(created),
        time_created: created,
        principal: principal_amounts,
        interest: interest_amounts,
        sell_status,
        is_blocked_by_ab4: blocked,
        loan: InvestedLoan {
            id: loan.id,
            purpose: loan.purpose,
            name: loan.name.clone(),
            rating: loan.rating,
            interest_rate: loan.interest_rate,
            revenue_rate: loan.revenue_rate,
            amount: loan.amount,
            currency: loan.currency,
            country_of_origin: loan.country_of_origin,
            annuity: loan.annuity_with_insurance,
            payments: Payments {
                total: term,
                unpaid: unpaid_instalments,
            },
            dpd: history.dpd,
            next_payment_date: history.next_payment_date,
            health_stats: HealthStats {
                paid_instalments: history.paid,
                longest_days_due: history.longest_days_due,
                days_since_last_in_due: history.days_since_last_in_due,
                instalments_currently_in_due: history.in_due,
                loan_health_info: history.info,
            },
            label,
            borrower: Borrower {
                primary_income_type: loan.main_income_type,
                region: Region::of_code(&loan.region),
            },
            has_collection_history: history.longest_days_due > 60,
            detail: LoanDetail {
                active_loan_ordinal: u32::try_from(mix(seed ^ 2, loan.id) % 3).unwrap_or(0),
                public_identifier: (100_000_000 + mix(seed ^ 3, loan.id) % 900_000_000).to_string(),
                contract_no: format!("10{:08}", mix(seed ^ 4, loan.id) % 100_000_000),
                user_no: format!("12{:08}", borrower_id),
                story: loan.story.clone(),
                detail_labels,
                borrower_id,
                borrower_no: (100_000_000 + mix(seed ^ 5, borrower_id) % 900_000_000).to_string(),
            },
        },
        smp_sell_info: SmpSellInfo {
            bought_for,
            remaining_principal: principal_amounts.unpaid,
            discount,
            sell_price,
            fee: Fee {
                value: fee,
                expires_at: fee_expires_at,
            },
        },
        loan_health,
        investment_status,
        insurance_status,
        covid_label,
    }
}

/// A loan's fixed traits, the same whoever invested in it.
fn mix(seed: u64, id: u64) -> u64 {
    fnv1a(&[seed.to_le_bytes(), id.to_le_bytes()].concat())
}

/// An annuity repayment schedule: each instalment's principal and interest,
/// in hellers, the last instalment taking what rounding left.
pub(crate) struct Schedule {
    principal: Vec<Decimal>,
    interest: Vec<Decimal>,
}

impl Schedule {
    pub(crate) fn annuity(amount: Decimal, yearly_rate: Decimal, months: u32) -> Self {
        let months = months.max(1);
        let rate = yearly_rate / Decimal::from(12);
        let instalment = if rate.is_zero() {
            amount / Decimal::from(months)
        } else {
            let growth = (Decimal::ONE + rate).powi(i64::from(months));
            amount * rate * growth / (growth - Decimal::ONE)
        }
        .round_dp(2);
        let mut balance = amount;
        let mut schedule = Self {
            principal: Vec::new(),
            interest: Vec::new(),
        };
        for month in 1..=months {
            let interest = money(balance * rate);
            let part = if month == months {
                balance
            } else {
                (instalment - interest).clamp(Decimal::ZERO, balance)
            };
            balance -= part;
            schedule.principal.push(money(part));
            schedule.interest.push(interest);
        }
        schedule
    }

    pub(crate) fn principal_paid(&self, instalments: u32) -> Decimal {
        money(self.principal.iter().take(instalments as usize).sum())
    }

    pub(crate) fn interest_paid(&self, instalments: u32) -> Decimal {
        money(self.interest.iter().take(instalments as usize).sum())
    }

    pub(crate) fn interest_total(&self) -> Decimal {
        money(self.interest.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zonky::data;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-30T12:34:56.789+01:00")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn schedules_add_up() {
        let schedule = Schedule::annuity(Decimal::from(1000), Decimal::new(1499, 4), 37);
        assert_eq!(schedule.principal_paid(37), Decimal::from(1000));
        assert!(schedule.interest_total() > Decimal::ZERO);
        assert_eq!(schedule.interest_paid(37), schedule.interest_total());
        assert!(schedule.principal.iter().all(|part| *part >= Decimal::ZERO));
    }

    #[test]
    fn portfolios_are_consistent_and_repeat() {
        let loans = data::generate(7, 500, now());
        let alice = generate(7, "alice", 300, id_base("alice", 0), &loans, now());
        assert_eq!(alice.len(), 300);
        let again = generate(7, "alice", 300, id_base("alice", 0), &loans, now());
        assert_eq!(
            serde_json::to_string(&alice).unwrap(),
            serde_json::to_string(&again).unwrap()
        );
        let mut loan_ids: Vec<u64> = alice.iter().map(|i| i.loan.id).collect();
        loan_ids.sort_unstable();
        loan_ids.dedup();
        assert_eq!(loan_ids.len(), 300, "one investment per loan");
        for pair in alice.windows(2) {
            assert!(pair[0].id < pair[1].id);
            assert!(pair[0].time_created <= pair[1].time_created);
        }
        let now = now();
        for investment in &alice {
            for amounts in [investment.principal, investment.interest] {
                assert!(amounts.unpaid >= Decimal::ZERO && amounts.unpaid <= amounts.total);
                assert_eq!(amounts.total.scale(), 2);
                assert_eq!(amounts.unpaid.scale(), 2);
            }
            assert!(investment.time_created.to_utc() <= now);
            assert!(investment.time_modified >= investment.time_created);
            assert!(investment.time_modified.to_utc() <= now);
            let loan = &investment.loan;
            assert!(loan.payments.unpaid <= loan.payments.total);
            if matches!(
                investment.loan_health,
                LoanHealth::Paid | LoanHealth::PaidOff
            ) {
                assert_eq!(loan.payments.unpaid, 0);
            } else {
                assert_eq!(
                    loan.payments.total,
                    loan.health_stats.paid_instalments + loan.payments.unpaid
                );
            }
            assert_eq!(
                loan.dpd > 0,
                loan.health_stats.instalments_currently_in_due > 0
            );
            let info = investment.smp_sell_info.clone();
            assert_eq!(info.remaining_principal, investment.principal.unpaid);
            assert!(info.sell_price <= info.remaining_principal);
        }
        let statuses = |pick: fn(&Investment) -> &'static str| {
            let mut seen: Vec<&str> = alice.iter().map(pick).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        };
        assert!(statuses(|i| i.loan_health.as_str()) >= 7);
        assert_eq!(statuses(|i| i.investment_status.as_str()), 3);
        assert_eq!(statuses(|i| i.sell_status.as_str()), 5);
        assert!(statuses(|i| i.insurance_status.as_str()) >= 2);

        let bob = generate(7, "bob", 120, id_base("bob", 0), &loans, now);
        assert!(bob.iter().all(|b| alice.iter().all(|a| a.id != b.id)));
    }

    #[test]
    fn groups_stand_for_their_members() {
        assert_eq!(
            LoanHealth::group("HEALTHY_AND_ACTIVE"),
            ["NEVER_IN_DUE", "HISTORICALLY_IN_DUE"]
        );
        assert_eq!(LoanHealth::group("CURRENTLY_IN_DUE").len(), 5);
        assert_eq!(LoanHealth::group("PAID"), ["PAID"]);
        assert_eq!(Region::of_code("1"), Region::HlavniMestoPraha);
        assert_eq!(Region::of_code("14"), Region::Zlinsky);
    }
}
