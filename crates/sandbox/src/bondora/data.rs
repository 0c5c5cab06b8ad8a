//! The generated Bondora world, the same for the same seed: active (and a few
//! closed) auctions, the issued loans behind every investment, each user's
//! investments and bids, and the secondary market.
//!
//! Models are typed here with the reference's field names and serialized once
//! to JSON values, which the endpoints filter, order and page.
//!
//! Units: money is EUR in major units with two decimals; `Interest`,
//! `DesiredDiscountRate`, `Fullfilled` and `Xirr` are percentages (18.5 is
//! 18.5 %); `ExpectedLoss`, `ProbabilityOfDefault`, `LossGivenDefault`,
//! `ExpectedReturnAlpha`, `InterestRateAlpha` and `EADRate` are fractions (0.2
//! is 20 %), as in Bondora's public loan dataset, because the reference gives
//! no unit for them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeDelta, Timelike, Utc};
use chrono_tz::{Europe::Tallinn, Tz};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::{Decimal, MathematicalOps};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// A decimal serialized as an exact JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Num(pub(crate) Decimal);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::arbitrary_precision::serialize(&self.0, serializer)
    }
}

fn eur(cents: i64) -> Num {
    Num(Decimal::new(cents, 2))
}

fn round2(value: Decimal) -> Decimal {
    value.round_dp(2)
}

/// The document's UTC format: `2024-12-09T17:41:11.8993295Z` (seven
/// fractional digits, 100 ns ticks as .NET writes them).
pub(crate) fn utc(instant: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        instant.format("%Y-%m-%dT%H:%M:%S"),
        instant.nanosecond() % 1_000_000_000 / 100
    )
}

/// The document's local format: `2024-12-09T19:41:11.8993295+02:00`, in
/// Bondora's own time zone (Tallinn).
pub(crate) fn local(instant: DateTime<Utc>) -> String {
    let at: DateTime<Tz> = instant.with_timezone(&Tallinn);
    format!(
        "{}.{:07}{}",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.nanosecond() % 1_000_000_000 / 100,
        at.format("%:z")
    )
}

/// A calendar date as Bondora's date-only values: midnight UTC.
fn day(date: NaiveDate) -> String {
    utc(date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

fn one_of<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, weight)| weight).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for &(item, weight) in items {
        if roll < weight {
            return item;
        }
        roll -= weight;
    }
    items[0].0
}

/// Bondora's ratings, safest first, with their share of the market.
pub(crate) const RATINGS: &[&str] = &["AA", "A", "B", "C", "D", "E", "F", "HR"];
const RATING_WEIGHTS: &[(usize, u32)] = &[
    (0, 5),
    (1, 10),
    (2, 18),
    (3, 22),
    (4, 18),
    (5, 12),
    (6, 8),
    (7, 7),
];
/// A range of whole numbers, inclusive.
type Span = (i64, i64);

/// Interest (percent, in hundredths) and one-year default probability (in
/// ten-thousandths) of each rating, as ranges.
const RATING_PRICING: &[(Span, Span)] = &[
    ((950, 1300), (150, 350)),
    ((1200, 1700), (300, 600)),
    ((1500, 2100), (550, 900)),
    ((1800, 2600), (850, 1300)),
    ((2200, 3200), (1250, 1800)),
    ((2700, 4000), (1700, 2500)),
    ((3300, 5000), (2400, 3400)),
    ((4000, 7500), (3300, 5000)),
];

/// `UseOfLoan`, as the reference enumerates it (`-1` is "not used", the only
/// value of auctions since June 2017).
pub(crate) const USE_OF_LOAN: &[i64] = &[
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 201, 202, 203,
    204, 205, 206, 207, 208, 209, 210, 211,
];
/// `LoanStatusCode`: 0 Reserved, 2 Current, 3 Cancelled, 4 Repaid, 5 60+ days
/// overdue, 8 Released, 100 Overdue.
pub(crate) const LOAN_STATUS_CODES: &[i64] = &[0, 2, 3, 4, 5, 8, 100];
/// `IncomeVerificationStatus` (and an auction's `VerificationType`).
pub(crate) const VERIFICATION: &[i64] = &[1, 2, 3, 4];
/// `Gender`: male, female, unknown.
pub(crate) const GENDERS: &[i64] = &[0, 1, 2];
/// `AuctionBidType`: manual, Portfolio Manager, API.
pub(crate) const BID_TYPES: &[i64] = &[0, 1, 2];
/// `BidSummary.StatusCode`: pending, open, successful, failed, cancelled, accepted.
pub(crate) const BID_STATUSES: &[i64] = &[0, 1, 2, 3, 4, 5];
/// `CreditScoreEeMini` values.
pub(crate) const EE_MINI_SCORES: &[&str] = &["1000", "900", "800", "700", "600", "500"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Country {
    Ee,
    Fi,
    Es,
    Nl,
}

const COUNTRIES: &[(Country, u32)] = &[
    (Country::Ee, 35),
    (Country::Fi, 30),
    (Country::Es, 25),
    (Country::Nl, 10),
];

impl Country {
    fn code(self) -> &'static str {
        match self {
            Self::Ee => "EE",
            Self::Fi => "FI",
            Self::Es => "ES",
            Self::Nl => "NL",
        }
    }

    /// (county, city) pairs.
    fn places(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Ee => &[
                ("Harju", "Tallinn"),
                ("Tartu", "Tartu"),
                ("Pärnu", "Pärnu"),
                ("Ida-Viru", "Narva"),
                ("Harju", "Maardu"),
            ],
            Self::Fi => &[
                ("Uusimaa", "Helsinki"),
                ("Uusimaa", "Espoo"),
                ("Pirkanmaa", "Tampere"),
                ("Pohjois-Pohjanmaa", "Oulu"),
                ("Varsinais-Suomi", "Turku"),
            ],
            Self::Es => &[
                ("Madrid", "Madrid"),
                ("Barcelona", "Barcelona"),
                ("Valencia", "Valencia"),
                ("Sevilla", "Sevilla"),
                ("Málaga", "Málaga"),
            ],
            Self::Nl => &[
                ("Noord-Holland", "Amsterdam"),
                ("Zuid-Holland", "Rotterdam"),
                ("Utrecht", "Utrecht"),
                ("Noord-Brabant", "Eindhoven"),
            ],
        }
    }

    /// The reference's `LanguageCode` (1 Estonian, 3 Russian, 4 Finnish,
    /// 6 Spanish, 19 Dutch).
    fn language(self, rng: &mut ChaCha8Rng) -> i32 {
        match self {
            Self::Ee if rng.random_bool(0.25) => 3,
            Self::Ee => 1,
            Self::Fi => 4,
            Self::Es => 6,
            Self::Nl => 19,
        }
    }

    fn loss_given_default(self) -> i64 {
        // In ten-thousandths.
        match self {
            Self::Ee => 5500,
            Self::Fi => 6500,
            Self::Es => 9000,
            Self::Nl => 8000,
        }
    }
}

/// The country-specific credit scores (`CreditScoreEsMicroL`,
/// `CreditScoreEsEquifaxRisk`, `CreditScoreFiAsiakasTietoRiskGrade`,
/// `CreditScoreEeMini`) and the general `CreditScore`.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct CreditScores {
    credit_score_es_micro_l: Option<String>,
    credit_score_es_equifax_risk: Option<String>,
    credit_score_fi_asiakas_tieto_risk_grade: Option<String>,
    credit_score_ee_mini: Option<String>,
}

fn credit_scores(rng: &mut ChaCha8Rng, country: Country, rating: usize) -> (CreditScores, i32) {
    let risk = rating.min(7);
    let mut scores = CreditScores {
        credit_score_es_micro_l: None,
        credit_score_es_equifax_risk: None,
        credit_score_fi_asiakas_tieto_risk_grade: None,
        credit_score_ee_mini: None,
    };
    let mut general = 1000;
    match country {
        Country::Es => {
            scores.credit_score_es_micro_l = Some(format!(
                "M{}",
                (risk + rng.random_range(1..=3)).clamp(1, 10)
            ));
            scores.credit_score_es_equifax_risk =
                Some((*one_of(rng, &["AAA", "AA", "A", "B", "C", "D"])).to_owned());
        }
        Country::Fi => {
            scores.credit_score_fi_asiakas_tieto_risk_grade = Some(format!(
                "RL{}",
                (risk / 2 + rng.random_range(1..=2)).clamp(1, 5)
            ));
        }
        Country::Ee => {
            let score = if rng.random_bool(0.8) {
                "1000"
            } else {
                one_of(rng, EE_MINI_SCORES)
            };
            general = score.parse().unwrap_or(1000);
            scores.credit_score_ee_mini = Some(score.to_owned());
        }
        Country::Nl => {}
    }
    if country != Country::Ee && rng.random_bool(0.15) {
        general = *one_of(rng, &[900, 800, 700]);
    }
    (scores, general)
}

/// The reference's `Auction` (the list item), field for field.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Auction {
    loan_id: String,
    auction_id: String,
    loan_number: i64,
    user_name: String,
    new_credit_customer: i32,
    loan_application_started_date: String,
    planned_close_date: String,
    application_signed_hour: u32,
    application_signed_weekday: u32,
    verification_type: i64,
    language_code: i32,
    age: i32,
    date_of_birth: Option<String>,
    gender: i64,
    country: &'static str,
    #[serde(flatten)]
    scores: CreditScores,
    applied_amount: Num,
    interest: Num,
    loan_duration: u32,
    county: Option<&'static str>,
    city: Option<&'static str>,
    education: i32,
    employment_duration_current_employer: Option<&'static str>,
    home_ownership_type: i32,
    income_total: Num,
    monthly_payment: Num,
    monthly_payment_day: u32,
    model_version: i32,
    expected_loss: Num,
    rating: &'static str,
    loss_given_default: Num,
    probability_of_default: Num,
    expected_return_alpha: Num,
    liabilities_total: Num,
    #[serde(rename = "ListedOnUTC")]
    listed_on_utc: String,
    actual_close_date: Option<String>,
    winning_bids_amount: Num,
    remaining_amount: Num,
    user_bids: u32,
    user_bid_amount: Num,
    fullfilled: Num,
    credit_score: i32,
    scoring_date: String,
    use_of_loan: i64,
    marital_status: i32,
    nr_of_dependants: Option<String>,
    employment_status: i32,
    employment_position: Option<String>,
    work_experience: Option<String>,
    occupation_area: i32,
    income_from_principal_employer: Num,
    income_from_pension: Num,
    income_from_family_allowance: Num,
    income_from_social_welfare: Num,
    income_from_leave_pay: Num,
    income_from_child_support: Num,
    income_other: Num,
    free_cash: Num,
    debt_to_income: Num,
    #[serde(rename = "EADRate")]
    ead_rate: Num,
    maturity_factor: Num,
    interest_rate_alpha: Num,
}

/// What `AuctionExtended` adds to `Auction`.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct AuctionExtras {
    liabilities: Vec<Liability>,
    debts: Vec<Debt>,
    borrower_history: BorrowerHistory,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Liability {
    is_refinanced: bool,
    type_of_liability: i32,
    creditor: String,
    monthly_payment: Num,
    outstanding: Option<Num>,
    collateral_type: i32,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Debt {
    start_date: String,
    end_date: Option<String>,
    amount: String,
    max_amount: String,
    industry: String,
    reporter: String,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct BorrowerHistory {
    overdue: Num,
    principal_repaid: Num,
    interest_repaid: Num,
    late_charges_repaid: Num,
    repaiments_total: Num,
    issued_loans: u32,
    issued_loan_amount: Num,
}

/// The fields `MyInvestmentItem`, `SecondMarketItem` and `LoanPartDetails`
/// share (a loan part), in the reference's order.
#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LoanPartBase {
    loan_id: String,
    loan_duration: u32,
    #[serde(flatten)]
    scores: CreditScores,
    loan_part_id: String,
    amount: Num,
    auction_id: String,
    auction_name: String,
    auction_number: i64,
    auction_bid_number: i64,
    investment_number: String,
    country: &'static str,
    credit_score: i32,
    rating: &'static str,
    interest: Num,
    use_of_loan: i64,
    income_verification_status: i64,
    loan_status_code: i64,
    user_name: String,
    gender: i64,
    date_of_birth: Option<String>,
    signed_date: String,
    re_scheduled_on: Option<String>,
    debt_occured_on: Option<String>,
    debt_occured_on_for_secondary: Option<String>,
    next_payment_nr: Option<u32>,
    next_payment_date: Option<String>,
    next_payment_sum: Option<Num>,
    nr_of_scheduled_payments: u32,
    last_payment_date: Option<String>,
    principal_repaid: Num,
    interest_repaid: Num,
    late_amount_paid: Num,
    principal_remaining: Num,
    principal_late_amount: Num,
    interest_late_amount: Num,
    penalty_late_amount: Num,
    late_amount_total: Num,
    principal_write_off_amount: Num,
    interest_write_off_amount: Num,
    penalty_write_off_amount: Num,
    debt_servicing_cost_main_amount: Num,
    debt_servicing_cost_interest_amount: Num,
    debt_servicing_cost_penalty_amount: Num,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ScheduledPayment {
    scheduled_date: String,
    principal_amount: Num,
    principal_amount_left: Num,
    interest_amount: Num,
    /// Misspelt as in the reference.
    intrest_amount_carried_over: Num,
    penalty_amount_carried_over: Num,
    total_amount: Num,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LoanTransfer {
    date: String,
    principal_amount: Num,
    interest_amount: Num,
    interest_amount_carried_over: Num,
    penalty_amount_carried_over: Num,
    total_amount: Num,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DebtManagementEvent {
    created_on: String,
    event_type: i32,
    description: String,
}

/// The reference's `MyInvestmentItem`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MyInvestmentItem<'a> {
    auction_bid_type: i64,
    loan_status_active_from: Option<String>,
    purchase_date: String,
    sold_date: Option<String>,
    purchase_price: Num,
    sale_price: Option<Num>,
    listed_in_second_market_on: Option<String>,
    latest_debt_management_stage: Option<i32>,
    latest_debt_management_sub_stage: Option<i32>,
    latest_debt_management_stage_type: Option<i32>,
    latest_debt_management_date: Option<String>,
    note_loan_transfers_main_amount: Num,
    note_loan_transfers_interest_amount: Num,
    note_loan_late_charges_paid: Num,
    note_loan_transfers_earnings_amount: Num,
    note_loan_transfers_total_repaiments_amount: Num,
    bought_from_id: Option<String>,
    #[serde(flatten)]
    base: &'a LoanPartBase,
}

/// The reference's `SecondMarketItem`. `LoanId`, `LoanDuration` and the
/// country credit scores come with the shared loan-part fields although the
/// generated clients' `SecondMarketItem` lacks them: its `LengthMin`/`LengthMax`
/// filters are about `LoanDuration`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SecondMarketItem<'a> {
    id: String,
    loan_status_active_from: Option<String>,
    latest_debt_management_stage_type: Option<i32>,
    latest_debt_management_date: Option<String>,
    price: Num,
    fee: Num,
    total_cost: Num,
    outstanding_payments: Num,
    desired_discount_rate: Num,
    xirr: Num,
    listed_on_date: String,
    /// "Webhook only": null in lists.
    debt_managment_events: Option<()>,
    loan_transfers: Option<()>,
    scheduled_payments: Option<()>,
    #[serde(flatten)]
    base: &'a LoanPartBase,
}

/// The reference's `LoanPartDetails`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LoanPartDetails<'a> {
    initial_interest: Num,
    rescheduled_interest: Option<Num>,
    write_off_total: Num,
    debt_servicing_cost_total: Num,
    repaid_principal_current_owner: Num,
    repaid_interests_current_owner: Num,
    late_charges_paid_current_owner: Num,
    repaid_total_current_owner: Num,
    total_repaid: Num,
    debt_managment_events: &'a [DebtManagementEvent],
    loan_transfers: &'a [LoanTransfer],
    scheduled_payments: &'a [ScheduledPayment],
    #[serde(flatten)]
    base: &'a LoanPartBase,
}

/// The reference's `BidSummary`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BidSummary {
    id: String,
    auction_id: String,
    requested_bid_amount: Num,
    actual_bid_amount: Option<Num>,
    requested_bid_minimum_limit: Option<Num>,
    bid_requested_date: String,
    bid_processed_date: Option<String>,
    is_request_being_processed: bool,
    status_code: i64,
    failure_reason: Option<i32>,
}

/// A generated auction: the list item and what the detail adds.
pub(crate) struct AuctionRecord {
    pub(crate) value: Value,
    pub(crate) extras: Value,
}

/// One of a user's investments.
pub(crate) struct InvestmentRecord {
    pub(crate) item: Value,
    pub(crate) details: Value,
}

/// A secondary market offer.
pub(crate) struct OfferRecord {
    pub(crate) item: Value,
}

/// A user's own data.
pub(crate) struct UserData {
    /// Including sold investments (`SoldDate` set), which the list hides by default.
    pub(crate) investments: Vec<InvestmentRecord>,
    pub(crate) bids: Vec<Value>,
}

pub(crate) struct World {
    pub(crate) auctions: Vec<AuctionRecord>,
    pub(crate) users: BTreeMap<String, UserData>,
    pub(crate) offers: Vec<OfferRecord>,
}

/// How much to generate.
pub(crate) struct Sizes {
    pub(crate) auctions: usize,
    pub(crate) investments_per_user: usize,
    pub(crate) bids_per_user: usize,
    pub(crate) secondary_market: usize,
}

/// A stable 64-bit hash (FNV-1a), so each user's data depends on the seed and
/// the user's name only.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) fn generate(seed: u64, sizes: &Sizes, users: &[String], now: DateTime<Utc>) -> World {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut numbers = Numbers::new(&mut rng);
    // The active auctions, and one closed for every twenty (only the detail
    // endpoint shows those).
    let auctions: Vec<AuctionRecord> = (0..sizes.auctions + sizes.auctions / 20)
        .map(|index| {
            let closed = index >= sizes.auctions;
            auction(&mut rng, &mut numbers, now, false, closed)
        })
        .collect();
    let active: Vec<String> = auctions
        .iter()
        .filter(|record| record.value["ActualCloseDate"].is_null())
        .filter_map(|record| record.value["AuctionId"].as_str().map(str::to_owned))
        .collect();

    let mut offers = Vec::new();
    let mut users_data = BTreeMap::new();
    for user in users {
        let mut user_rng = ChaCha8Rng::seed_from_u64(seed ^ fnv(user));
        let (data, listed) = user_data(&mut user_rng, &mut numbers, sizes, &active, now);
        offers.extend(listed.into_iter().map(|item| OfferRecord { item }));
        users_data.insert(user.clone(), data);
    }
    for _ in 0..sizes.secondary_market {
        let loan = issued_loan(&mut rng, &mut numbers, now);
        let part = loan_part(&mut rng, &mut numbers, &loan, now, true);
        offers.push(OfferRecord {
            item: offer(&mut rng, &part, now),
        });
    }
    World {
        auctions,
        users: users_data,
        offers,
    }
}

/// Growing loan and bid numbers.
pub(crate) struct Numbers {
    loan: i64,
    bid: i64,
}

impl Numbers {
    fn new(rng: &mut ChaCha8Rng) -> Self {
        Self {
            loan: rng.random_range(4_100_000..4_200_000),
            bid: rng.random_range(90_000_000..91_000_000),
        }
    }

    fn next_loan(&mut self, rng: &mut ChaCha8Rng) -> i64 {
        self.loan += rng.random_range(1..=7);
        self.loan
    }

    fn next_bid(&mut self, rng: &mut ChaCha8Rng) -> i64 {
        self.bid += rng.random_range(1..=40);
        self.bid
    }
}

/// A fresh generator for auctions published later (webhook events), in the
/// same numbering as the generated ones.
pub(crate) struct Publisher {
    rng: ChaCha8Rng,
    numbers: Numbers,
}

impl Publisher {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x005e_ed0f_a0c7_1015);
        let mut numbers = Numbers::new(&mut rng);
        // Past every generated loan number.
        numbers.loan += 1_000_000;
        Self { rng, numbers }
    }

    /// An auction published at `now`.
    pub(crate) fn publish(&mut self, now: DateTime<Utc>) -> AuctionRecord {
        auction(&mut self.rng, &mut self.numbers, now, true, false)
    }

    pub(crate) fn event_id(&mut self) -> String {
        uuid(&mut self.rng)
    }

    pub(crate) fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
}

fn borrower_name(rng: &mut ChaCha8Rng) -> String {
    let letter = char::from(b'A' + rng.random_range(0..26u8));
    format!("BO{letter}{:06}", rng.random_range(0..1_000_000))
}

const EMPLOYMENT_DURATIONS: &[&str] = &[
    "TrialPeriod",
    "UpTo1Year",
    "UpTo2Years",
    "UpTo3Years",
    "UpTo4Years",
    "UpTo5Years",
    "MoreThan5Years",
    "Retiree",
    "Other",
];

fn loan_duration(rng: &mut ChaCha8Rng) -> u32 {
    weighted(
        rng,
        &[
            (3, 1),
            (6, 2),
            (9, 2),
            (12, 8),
            (18, 8),
            (24, 14),
            (36, 20),
            (48, 20),
            (60, 25),
        ],
    )
}

/// The monthly instalment of an annuity of `principal` at `percent` a year.
fn annuity(principal: Decimal, percent: Decimal, months: u32) -> Decimal {
    let rate = percent / Decimal::from(1200);
    if rate.is_zero() || months == 0 {
        return round2(principal / Decimal::from(months.max(1)));
    }
    let growth = (Decimal::ONE + rate).powi(i64::from(months));
    round2(principal * rate * growth / (growth - Decimal::ONE))
}

fn fraction(rng: &mut ChaCha8Rng, (low, high): (i64, i64)) -> Decimal {
    Decimal::new(rng.random_range(low..=high), 4)
}

/// An auction: published at `now` when `published` (a webhook's), else in the
/// last three days (an active one) or weeks ago (a closed one).
fn auction(
    rng: &mut ChaCha8Rng,
    numbers: &mut Numbers,
    now: DateTime<Utc>,
    published: bool,
    closed: bool,
) -> AuctionRecord {
    let loan_id = uuid(rng);
    let auction_id = uuid(rng);
    let loan_number = numbers.next_loan(rng);
    let country = weighted(rng, COUNTRIES);
    let rating_index = weighted(rng, RATING_WEIGHTS);
    let (interest_range, default_range) = RATING_PRICING[rating_index];
    let interest = Decimal::new(rng.random_range(interest_range.0..=interest_range.1), 2);
    let probability_of_default = fraction(rng, default_range);
    let loss_given_default = Decimal::new(country.loss_given_default(), 4);
    let expected_loss = (probability_of_default * loss_given_default).round_dp(4);
    let duration = loan_duration(rng);
    let sizes = [
        (rng.random_range(100..=400), 50),
        (rng.random_range(400..=1000), 35),
        (rng.random_range(1000..=2000), 15),
    ];
    let applied_cents = 100 * 5 * weighted(rng, &sizes);
    let applied = Decimal::new(applied_cents, 2);

    let listed = if published {
        now
    } else if closed {
        now - TimeDelta::days(rng.random_range(4..30))
    } else {
        now - TimeDelta::milliseconds(rng.random_range(1..3 * 86_400_000))
    };
    let started = listed - TimeDelta::minutes(rng.random_range(30..7 * 24 * 60));
    let scored = started + TimeDelta::minutes(rng.random_range(1..20));
    let (planned_close, actual_close) = if closed {
        let planned = listed + TimeDelta::days(rng.random_range(1..4));
        let actual = planned - TimeDelta::minutes(rng.random_range(0..600));
        (planned, Some(utc(actual)))
    } else {
        (
            now + TimeDelta::minutes(rng.random_range(6 * 60..14 * 24 * 60)),
            None,
        )
    };
    let winning_cents = if closed {
        applied_cents
    } else {
        rng.random_range(0..applied_cents / 100) * 100
    };
    let winning = Decimal::new(winning_cents, 2);
    let (scores, credit_score) = credit_scores(rng, country, rating_index);
    let (county, city) = *one_of(rng, country.places());
    let income = rng.random_range(700..=4500);
    let liabilities: Vec<Liability> = (0..rng.random_range(0..=3))
        .map(|_| Liability {
            is_refinanced: false,
            type_of_liability: -1,
            creditor: (*one_of(
                rng,
                &[
                    "Bank",
                    "Credit card company",
                    "Consumer lender",
                    "Car lease",
                ],
            ))
            .to_owned(),
            monthly_payment: eur(rng.random_range(20..400) * 100),
            outstanding: None,
            collateral_type: -1,
        })
        .collect();
    let liabilities_total = liabilities
        .iter()
        .fold(Decimal::new(0, 2), |total, liability| {
            total + liability.monthly_payment.0
        });
    let new_customer = rng.random_bool(0.6);
    let history = if new_customer {
        BorrowerHistory {
            overdue: eur(0),
            principal_repaid: eur(0),
            interest_repaid: eur(0),
            late_charges_repaid: eur(0),
            repaiments_total: eur(0),
            issued_loans: 0,
            issued_loan_amount: eur(0),
        }
    } else {
        let issued = rng.random_range(50_000..1_000_000);
        let principal = issued * rng.random_range(20..90) / 100;
        let interest_paid = principal * rng.random_range(10..40) / 100;
        let late = rng.random_range(0..2000);
        BorrowerHistory {
            overdue: eur(if rng.random_bool(0.1) {
                rng.random_range(100..20_000)
            } else {
                0
            }),
            principal_repaid: eur(principal),
            interest_repaid: eur(interest_paid),
            late_charges_repaid: eur(late),
            repaiments_total: eur(principal + interest_paid + late),
            issued_loans: rng.random_range(1..6),
            issued_loan_amount: eur(issued),
        }
    };
    let debts = if rng.random_bool(0.1) {
        let start = (listed - TimeDelta::days(rng.random_range(200..2000))).date_naive();
        vec![Debt {
            start_date: day(start),
            end_date: Some(day(start + TimeDelta::days(rng.random_range(10..200)))),
            amount: rng.random_range(50..900).to_string(),
            max_amount: rng.random_range(900..2000).to_string(),
            industry: (*one_of(rng, &["Telecom", "Utilities", "Finance"])).to_owned(),
            reporter: (*one_of(rng, &["Creditinfo", "Asiakastieto", "Equifax"])).to_owned(),
        }]
    } else {
        Vec::new()
    };

    let value = Auction {
        loan_id,
        auction_id,
        loan_number,
        user_name: borrower_name(rng),
        new_credit_customer: i32::from(new_customer),
        loan_application_started_date: local(started),
        planned_close_date: utc(planned_close),
        application_signed_hour: started.with_timezone(&Tallinn).hour(),
        application_signed_weekday: started
            .with_timezone(&Tallinn)
            .weekday()
            .number_from_monday(),
        verification_type: *one_of(rng, VERIFICATION),
        language_code: country.language(rng),
        age: rng.random_range(19..=70),
        // Not disclosed on new auctions.
        date_of_birth: None,
        gender: weighted(rng, &[(0, 55), (1, 43), (2, 2)]),
        country: country.code(),
        scores,
        applied_amount: Num(applied),
        interest: Num(interest),
        loan_duration: duration,
        county: Some(county),
        city: Some(city),
        education: rng.random_range(1..=5),
        employment_duration_current_employer: Some(*one_of(rng, EMPLOYMENT_DURATIONS)),
        home_ownership_type: rng.random_range(0..=10),
        income_total: eur(income * 100),
        monthly_payment: Num(annuity(applied, interest, duration)),
        monthly_payment_day: rng.random_range(1..=28),
        model_version: weighted(rng, &[(5, 30), (6, 70)]),
        expected_loss: Num(expected_loss),
        rating: RATINGS[rating_index],
        loss_given_default: Num(loss_given_default),
        probability_of_default: Num(probability_of_default),
        expected_return_alpha: Num((interest / Decimal::from(100) - expected_loss).round_dp(4)),
        liabilities_total: Num(liabilities_total),
        listed_on_utc: utc(listed),
        actual_close_date: actual_close,
        winning_bids_amount: Num(winning),
        remaining_amount: Num(applied - winning),
        user_bids: 0,
        user_bid_amount: eur(0),
        fullfilled: Num(round2(winning * Decimal::from(100) / applied)),
        credit_score,
        scoring_date: local(scored),
        use_of_loan: if rng.random_bool(0.8) {
            -1
        } else {
            *one_of(rng, &USE_OF_LOAN[1..])
        },
        // "Only value for new auctions since 1st of June 2017" for the rest.
        marital_status: -1,
        nr_of_dependants: None,
        employment_status: -1,
        employment_position: None,
        work_experience: None,
        occupation_area: -1,
        income_from_principal_employer: eur(0),
        income_from_pension: eur(0),
        income_from_family_allowance: eur(0),
        income_from_social_welfare: eur(0),
        income_from_leave_pay: eur(0),
        income_from_child_support: eur(0),
        income_other: eur(0),
        free_cash: eur(0),
        debt_to_income: eur(0),
        ead_rate: Num(fraction(rng, (5500, 9500))),
        maturity_factor: Num(if duration > 12 {
            Decimal::new(13, 1)
        } else {
            Decimal::ONE
        }),
        interest_rate_alpha: Num(fraction(rng, (-300, 600))),
    };
    let extras = AuctionExtras {
        liabilities,
        debts,
        borrower_history: history,
    };
    AuctionRecord {
        value: serde_json::to_value(value).unwrap_or_default(),
        extras: serde_json::to_value(extras).unwrap_or_default(),
    }
}

/// An issued loan: what every loan part of it shares.
struct IssuedLoan {
    loan_id: String,
    auction_id: String,
    auction_number: i64,
    name: String,
    country: Country,
    scores: CreditScores,
    credit_score: i32,
    rating: &'static str,
    interest: Decimal,
    duration: u32,
    use_of_loan: i64,
    verification: i64,
    user_name: String,
    gender: i64,
    birth: NaiveDate,
    signed: DateTime<Utc>,
}

fn issued_loan(rng: &mut ChaCha8Rng, numbers: &mut Numbers, now: DateTime<Utc>) -> IssuedLoan {
    let country = weighted(rng, COUNTRIES);
    let rating_index = weighted(rng, RATING_WEIGHTS);
    let (interest_range, _) = RATING_PRICING[rating_index];
    let (scores, credit_score) = credit_scores(rng, country, rating_index);
    let use_of_loan = if rng.random_bool(0.6) {
        -1
    } else {
        *one_of(rng, &USE_OF_LOAN[1..])
    };
    let duration = loan_duration(rng);
    let signed = now - TimeDelta::minutes(rng.random_range(3 * 24 * 60..900 * 24 * 60));
    let birth = NaiveDate::from_ymd_opt(
        rng.random_range(1955..2004),
        rng.random_range(1..=12),
        rng.random_range(1..=28),
    )
    .unwrap_or_default();
    IssuedLoan {
        loan_id: uuid(rng),
        auction_id: uuid(rng),
        auction_number: numbers.next_loan(rng) - 600_000,
        name: format!(
            "{} {}",
            one_of(
                rng,
                &["Loan for", "Financing for", "Money for", "Small loan for"]
            ),
            one_of(
                rng,
                &[
                    "home improvement",
                    "a car",
                    "business",
                    "education",
                    "travel",
                    "health",
                    "refinancing",
                    "other"
                ]
            )
        ),
        country,
        scores,
        credit_score,
        rating: RATINGS[rating_index],
        interest: Decimal::new(rng.random_range(interest_range.0..=interest_range.1), 2),
        duration,
        use_of_loan,
        verification: *one_of(rng, VERIFICATION),
        user_name: borrower_name(rng),
        gender: weighted(rng, &[(0, 55), (1, 43), (2, 2)]),
        birth,
        signed,
    }
}

/// One month of a loan part's repayment schedule.
struct Row {
    date: DateTime<Utc>,
    principal: Decimal,
    /// Principal left after the payment.
    left: Decimal,
    interest: Decimal,
}

/// A loan part with its schedule and history.
struct Part {
    base: LoanPartBase,
    schedule: Vec<ScheduledPayment>,
    transfers: Vec<LoanTransfer>,
    events: Vec<DebtManagementEvent>,
    signed: DateTime<Utc>,
    status_from: DateTime<Utc>,
    debt_date: Option<DateTime<Utc>>,
    /// Unpaid scheduled interest still to come, for `OutstandingPayments`.
    future_interest: Decimal,
}

fn months_after(start: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    start
        .checked_add_months(Months::new(months))
        .unwrap_or(start)
}

/// `active_only`: only statuses an offer can have (current, overdue, 60+ days).
fn loan_part(
    rng: &mut ChaCha8Rng,
    numbers: &mut Numbers,
    loan: &IssuedLoan,
    now: DateTime<Utc>,
    active_only: bool,
) -> Part {
    let amounts = [
        (100, 20),
        (500, 25),
        (1000, 20),
        (rng.random_range(1..=100) * 100, 25),
        (rng.random_range(100..=500) * 100, 10),
    ];
    let amount_cents: i64 = weighted(rng, &amounts);
    let amount = Decimal::new(amount_cents, 2);
    let duration = loan.duration;
    let rate = loan.interest / Decimal::from(1200);
    let instalment = annuity(amount, loan.interest, duration);

    // The schedule, from the month after signing.
    let mut schedule = Vec::new();
    let mut balance = amount;
    for month in 1..=duration {
        let interest = round2(balance * rate);
        let principal = if month == duration {
            balance
        } else {
            (instalment - interest).min(balance).max(Decimal::ZERO)
        };
        balance -= principal;
        schedule.push(Row {
            date: months_after(loan.signed, month),
            principal,
            left: balance,
            interest,
        });
    }
    let due = schedule.iter().filter(|row| row.date <= now).count();
    let finished = due >= schedule.len();
    let status: i64 = if finished && !active_only {
        weighted(rng, &[(4, 85), (5, 10), (8, 5)])
    } else if finished {
        5
    } else if due >= 3 {
        weighted(rng, &[(2, 80), (100, 10), (5, 10)])
    } else if due >= 1 {
        weighted(rng, &[(2, 90), (100, 10)])
    } else {
        2
    };
    let paid = match status {
        4 | 8 => schedule.len(),
        100 => due.saturating_sub(1),
        5 => due.saturating_sub(rng.random_range(3..=6).min(due)),
        _ => due,
    };
    let sum = |range: std::ops::Range<usize>, pick: fn(&Row) -> Decimal| {
        schedule
            .get(range)
            .map_or(Decimal::ZERO, |rows| rows.iter().map(pick).sum())
    };
    let principal_repaid = sum(0..paid, |row| row.principal);
    let interest_repaid = sum(0..paid, |row| row.interest);
    let late_end = due.min(schedule.len()).max(paid);
    let principal_late = sum(paid..late_end, |row| row.principal);
    let interest_late = sum(paid..late_end, |row| row.interest);
    let penalty_late = round2((principal_late + interest_late) * Decimal::new(2, 2));
    let late_total = principal_late + interest_late + penalty_late;
    let debt_date = (late_total > Decimal::ZERO)
        .then(|| schedule.get(paid).map(|row| row.date))
        .flatten();
    let future_interest = sum(late_end..schedule.len(), |row| row.interest);

    let transfers: Vec<LoanTransfer> = schedule[..paid]
        .iter()
        .map(|row| LoanTransfer {
            date: utc(row.date + TimeDelta::hours(rng.random_range(0..72))),
            principal_amount: Num(row.principal),
            interest_amount: Num(row.interest),
            interest_amount_carried_over: eur(0),
            penalty_amount_carried_over: eur(0),
            total_amount: Num(row.principal + row.interest),
        })
        .collect();
    let mut events = Vec::new();
    if let Some(debt) = debt_date {
        events.push(DebtManagementEvent {
            created_on: utc(debt + TimeDelta::days(5)),
            event_type: 15,
            description: "DebtNotificationEmailSent".to_owned(),
        });
        if status == 5 {
            events.push(DebtManagementEvent {
                created_on: utc(debt + TimeDelta::days(20)),
                event_type: 24,
                description: "DebtNotificationSmsSent".to_owned(),
            });
            events.push(DebtManagementEvent {
                created_on: utc(debt + TimeDelta::days(61)),
                event_type: 30,
                description: "InHouseCollection".to_owned(),
            });
        }
    }
    let next = (paid < schedule.len()).then_some(paid);
    let status_from = match (status, debt_date) {
        (100 | 5, Some(debt)) => debt,
        (4 | 8, _) => transfers
            .last()
            .and_then(|transfer| {
                DateTime::parse_from_rfc3339(&transfer.date)
                    .ok()
                    .map(|at| at.to_utc())
            })
            .unwrap_or(loan.signed),
        _ => loan.signed,
    };
    let bid_number = numbers.next_bid(rng);
    let base = LoanPartBase {
        loan_id: loan.loan_id.clone(),
        loan_duration: duration,
        scores: loan.scores.clone(),
        loan_part_id: uuid(rng),
        amount: Num(amount),
        auction_id: loan.auction_id.clone(),
        auction_name: loan.name.clone(),
        auction_number: loan.auction_number,
        auction_bid_number: bid_number,
        investment_number: format!("{}-{bid_number}", loan.auction_number),
        country: loan.country.code(),
        credit_score: loan.credit_score,
        rating: loan.rating,
        interest: Num(loan.interest),
        use_of_loan: loan.use_of_loan,
        income_verification_status: loan.verification,
        loan_status_code: status,
        user_name: loan.user_name.clone(),
        gender: loan.gender,
        date_of_birth: Some(day(loan.birth)),
        signed_date: utc(loan.signed),
        re_scheduled_on: None,
        debt_occured_on: (principal_late > Decimal::ZERO)
            .then(|| debt_date.map(utc))
            .flatten(),
        debt_occured_on_for_secondary: debt_date.map(utc),
        next_payment_nr: next.and_then(|index| u32::try_from(index + 1).ok()),
        next_payment_date: next.map(|index| day(schedule[index].date.date_naive())),
        next_payment_sum: next
            .map(|index| Num(schedule[index].principal + schedule[index].interest)),
        nr_of_scheduled_payments: duration,
        last_payment_date: transfers.last().map(|transfer| transfer.date.clone()),
        principal_repaid: Num(principal_repaid),
        interest_repaid: Num(interest_repaid),
        late_amount_paid: eur(if status == 2 && rng.random_bool(0.1) {
            rng.random_range(1..50)
        } else {
            0
        }),
        principal_remaining: Num(amount - principal_repaid),
        principal_late_amount: Num(principal_late),
        interest_late_amount: Num(interest_late),
        penalty_late_amount: Num(penalty_late),
        late_amount_total: Num(late_total),
        principal_write_off_amount: eur(0),
        interest_write_off_amount: eur(0),
        penalty_write_off_amount: eur(0),
        debt_servicing_cost_main_amount: eur(0),
        debt_servicing_cost_interest_amount: eur(0),
        debt_servicing_cost_penalty_amount: eur(0),
    };
    Part {
        base,
        schedule: schedule
            .iter()
            .map(|row| ScheduledPayment {
                scheduled_date: day(row.date.date_naive()),
                principal_amount: Num(row.principal),
                principal_amount_left: Num(row.left),
                interest_amount: Num(row.interest),
                intrest_amount_carried_over: eur(0),
                penalty_amount_carried_over: eur(0),
                total_amount: Num(row.principal + row.interest),
            })
            .collect(),
        transfers,
        events,
        signed: loan.signed,
        status_from,
        debt_date,
        future_interest,
    }
}

/// The debt management stage of an overdue part: (stage, sub-stage, type, date).
fn debt_stage(part: &Part) -> (Option<i32>, Option<i32>, Option<i32>, Option<String>) {
    match (part.base.loan_status_code, part.debt_date) {
        (100, Some(debt)) => (
            Some(1),
            Some(1),
            Some(1),
            Some(utc(debt + TimeDelta::days(5))),
        ),
        (5, Some(debt)) => (
            Some(2),
            Some(3),
            Some(2),
            Some(utc(debt + TimeDelta::days(61))),
        ),
        _ => (None, None, None, None),
    }
}

/// A secondary market offer of `part`, listed in the last three weeks.
fn offer(rng: &mut ChaCha8Rng, part: &Part, now: DateTime<Utc>) -> Value {
    let rate: i64 = match part.base.loan_status_code {
        2 => {
            let rates = [
                (0, 30),
                (rng.random_range(-10..0), 35),
                (rng.random_range(1..=15), 35),
            ];
            weighted(rng, &rates)
        }
        100 => rng.random_range(-30..=0),
        _ => rng.random_range(-70..=-10),
    };
    let remaining = part.base.principal_remaining.0;
    let price = round2(remaining * Decimal::from(100 + rate) / Decimal::from(100));
    // Bondora charges the seller, not the buyer.
    let fee = Decimal::new(0, 2);
    let listed = (now - TimeDelta::minutes(rng.random_range(1..21 * 24 * 60))).max(part.signed);
    let xirr = if price.is_zero() {
        Decimal::ZERO
    } else {
        round2(part.base.interest.0 * remaining / price)
    };
    let (_, _, stage_type, stage_date) = debt_stage(part);
    let item = SecondMarketItem {
        id: uuid(rng),
        loan_status_active_from: Some(utc(part.status_from)),
        latest_debt_management_stage_type: stage_type,
        latest_debt_management_date: stage_date,
        price: Num(price),
        fee: Num(fee),
        total_cost: Num(price + fee),
        outstanding_payments: Num(remaining
            + part.base.interest_late_amount.0
            + part.base.penalty_late_amount.0
            + part.future_interest),
        desired_discount_rate: Num(Decimal::from(rate)),
        xirr: Num(xirr),
        listed_on_date: utc(listed),
        debt_managment_events: None,
        loan_transfers: None,
        scheduled_payments: None,
        base: &part.base,
    };
    serde_json::to_value(item).unwrap_or_default()
}

/// One user's investments (and the offers they list) and bids.
fn user_data(
    rng: &mut ChaCha8Rng,
    numbers: &mut Numbers,
    sizes: &Sizes,
    active_auctions: &[String],
    now: DateTime<Utc>,
) -> (UserData, Vec<Value>) {
    let mut investments = Vec::new();
    let mut listed = Vec::new();
    let mut api_auctions = Vec::new();
    for _ in 0..sizes.investments_per_user {
        let loan = issued_loan(rng, numbers, now);
        let part = loan_part(rng, numbers, &loan, now, false);
        let bid_type = weighted(rng, &[(0, 20), (1, 60), (2, 20)]);
        let bought = rng.random_bool(0.25);
        let remaining = part.base.principal_remaining.0;
        let amount = part.base.amount.0;
        let (purchased, purchase_price, bought_from) = if bought {
            let at = part.signed
                + TimeDelta::minutes(
                    rng.random_range(60..((now - part.signed).num_minutes().max(61))),
                );
            let discount = Decimal::from(rng.random_range(-15..=5));
            // Roughly the principal left when bought.
            let left = (remaining + (amount - remaining) / Decimal::from(2)).min(amount);
            (
                at,
                round2(left * (Decimal::from(100) + discount) / Decimal::from(100)),
                Some(uuid(rng)),
            )
        } else {
            (part.signed, amount, None)
        };
        if !bought && bid_type == 2 {
            api_auctions.push((part.base.auction_id.clone(), amount, part.signed));
        }
        let active = matches!(part.base.loan_status_code, 2 | 100 | 5) && !remaining.is_zero();
        let roll = rng.random_range(0..100);
        let sold = active && roll < 8;
        let on_sale = active && (8..15).contains(&roll);
        let sold_at = sold.then(|| {
            purchased
                + TimeDelta::minutes(rng.random_range(1..((now - purchased).num_minutes().max(2))))
        });
        let sale_price = sold.then(|| {
            Num(round2(
                remaining * Decimal::from(rng.random_range(85..=103)) / Decimal::from(100),
            ))
        });
        let offer_value = on_sale.then(|| offer(rng, &part, now));
        let listed_on = offer_value
            .as_ref()
            .and_then(|value| value["ListedOnDate"].as_str().map(str::to_owned));
        let owner_share = |total: Decimal| {
            if bought {
                round2(total / Decimal::from(2))
            } else {
                total
            }
        };
        let main = owner_share(part.base.principal_repaid.0);
        let interest = owner_share(part.base.interest_repaid.0);
        let late = part.base.late_amount_paid.0;
        let (stage, sub_stage, stage_type, stage_date) = debt_stage(&part);
        let item = MyInvestmentItem {
            auction_bid_type: if bought { 0 } else { bid_type },
            loan_status_active_from: Some(utc(part.status_from)),
            purchase_date: utc(purchased),
            sold_date: sold_at.map(utc),
            purchase_price: Num(purchase_price),
            sale_price,
            listed_in_second_market_on: listed_on,
            latest_debt_management_stage: stage,
            latest_debt_management_sub_stage: sub_stage,
            latest_debt_management_stage_type: stage_type,
            latest_debt_management_date: stage_date,
            note_loan_transfers_main_amount: Num(main),
            note_loan_transfers_interest_amount: Num(interest),
            note_loan_late_charges_paid: Num(late),
            note_loan_transfers_earnings_amount: Num(interest + late),
            note_loan_transfers_total_repaiments_amount: Num(main + interest + late),
            bought_from_id: bought_from,
            base: &part.base,
        };
        let total_repaid = part.base.principal_repaid.0 + part.base.interest_repaid.0 + late;
        let details = LoanPartDetails {
            initial_interest: part.base.interest,
            rescheduled_interest: None,
            write_off_total: eur(0),
            debt_servicing_cost_total: eur(0),
            repaid_principal_current_owner: Num(main),
            repaid_interests_current_owner: Num(interest),
            late_charges_paid_current_owner: Num(late),
            repaid_total_current_owner: Num(main + interest + late),
            total_repaid: Num(total_repaid),
            debt_managment_events: &part.events,
            loan_transfers: &part.transfers,
            scheduled_payments: &part.schedule,
            base: &part.base,
        };
        investments.push(InvestmentRecord {
            item: serde_json::to_value(item).unwrap_or_default(),
            details: serde_json::to_value(details).unwrap_or_default(),
        });
        listed.extend(offer_value);
    }

    let mut bids = Vec::new();
    for index in 0..sizes.bids_per_user {
        let requested = Decimal::new(rng.random_range(1..=50) * 100, 2);
        let requested_at = now - TimeDelta::minutes(rng.random_range(1..60 * 24 * 60));
        let (auction_id, status, requested_at) = match index % 10 {
            0..3 if !active_auctions.is_empty() => (
                one_of(rng, active_auctions).clone(),
                weighted(rng, &[(0, 30), (1, 70)]),
                now - TimeDelta::minutes(rng.random_range(1..24 * 60)),
            ),
            3..7 if !api_auctions.is_empty() => {
                let (auction, _, signed) = one_of(rng, &api_auctions).clone();
                (
                    auction,
                    weighted(rng, &[(2, 30), (5, 70)]),
                    signed - TimeDelta::minutes(rng.random_range(60..3 * 24 * 60)),
                )
            }
            7..9 => (uuid(rng), 3, requested_at),
            _ => (uuid(rng), 4, requested_at),
        };
        let processed = (status != 0)
            .then(|| requested_at + TimeDelta::milliseconds(rng.random_range(200..120_000)));
        let bid = BidSummary {
            id: uuid(rng),
            auction_id,
            requested_bid_amount: Num(requested),
            actual_bid_amount: matches!(status, 1 | 2 | 5).then_some(Num(requested)),
            requested_bid_minimum_limit: None,
            bid_requested_date: utc(requested_at),
            bid_processed_date: processed.map(utc),
            is_request_being_processed: status == 0,
            status_code: status,
            failure_reason: (status == 3).then(|| rng.random_range(1..=4)),
        };
        bids.push(serde_json::to_value(bid).unwrap_or_default());
    }
    (UserData { investments, bids }, listed)
}

/// The user's pending and open bids per auction: (count, amount).
pub(crate) fn bids_by_auction(bids: &[Value]) -> HashMap<String, (u64, Decimal)> {
    let mut by_auction: HashMap<String, (u64, Decimal)> = HashMap::new();
    for bid in bids {
        let pending_or_open = matches!(bid["StatusCode"].as_i64(), Some(0 | 1));
        let (Some(auction), true) = (bid["AuctionId"].as_str(), pending_or_open) else {
            continue;
        };
        let amount =
            crate::bondora::query::decimal_of(&bid["RequestedBidAmount"]).unwrap_or_default();
        let entry = by_auction.entry(auction.to_owned()).or_default();
        entry.0 += 1;
        entry.1 += amount;
    }
    by_auction
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-12-09T17:41:11.8993295Z")
            .unwrap()
            .to_utc()
    }

    fn sizes() -> Sizes {
        Sizes {
            auctions: 300,
            investments_per_user: 120,
            bids_per_user: 40,
            secondary_market: 200,
        }
    }

    fn users() -> Vec<String> {
        vec!["alice".to_owned(), "bob".to_owned()]
    }

    #[test]
    fn formats_as_the_document() {
        assert_eq!(utc(now()), "2024-12-09T17:41:11.8993295Z");
        assert_eq!(local(now()), "2024-12-09T19:41:11.8993295+02:00");
    }

    #[test]
    fn same_seed_same_world() {
        let json = |seed| {
            let world = generate(seed, &sizes(), &users(), now());
            let auctions: Vec<&Value> = world.auctions.iter().map(|a| &a.value).collect();
            serde_json::to_string(&auctions).unwrap()
        };
        assert_eq!(json(7), json(7));
        assert_ne!(json(7), json(8));
    }

    #[test]
    fn data_is_consistent() {
        let world = generate(3, &sizes(), &users(), now());
        let decimal = |value: &Value| crate::bondora::query::decimal_of(value).unwrap();
        for auction in &world.auctions {
            let value = &auction.value;
            let applied = decimal(&value["AppliedAmount"]);
            let winning = decimal(&value["WinningBidsAmount"]);
            assert_eq!(decimal(&value["RemainingAmount"]), applied - winning);
            assert!(RATINGS.contains(&value["Rating"].as_str().unwrap()));
            assert!(USE_OF_LOAN.contains(&value["UseOfLoan"].as_i64().unwrap()));
            assert_eq!(value["ListedOnUTC"].as_str().unwrap().len(), 28);
            assert!(auction.extras["BorrowerHistory"].is_object());
        }
        assert!(
            world
                .auctions
                .iter()
                .any(|a| !a.value["ActualCloseDate"].is_null())
        );
        let alice = &world.users["alice"];
        let bob = &world.users["bob"];
        assert_eq!(alice.investments.len(), 120);
        for investment in &alice.investments {
            let item = &investment.item;
            let amount = decimal(&item["Amount"]);
            let repaid = decimal(&item["PrincipalRepaid"]);
            assert_eq!(decimal(&item["PrincipalRemaining"]), amount - repaid);
            assert!(LOAN_STATUS_CODES.contains(&item["LoanStatusCode"].as_i64().unwrap()));
            assert_eq!(investment.details["LoanPartId"], item["LoanPartId"]);
            assert_eq!(
                investment.details["ScheduledPayments"]
                    .as_array()
                    .unwrap()
                    .len() as u64,
                item["LoanDuration"].as_u64().unwrap()
            );
            assert!(
                !bob.investments
                    .iter()
                    .any(|other| other.item["LoanPartId"] == item["LoanPartId"])
            );
        }
        for offer in &world.offers {
            let item = &offer.item;
            let remaining = decimal(&item["PrincipalRemaining"]);
            let rate = decimal(&item["DesiredDiscountRate"]);
            let price = decimal(&item["Price"]);
            assert_eq!(
                price,
                (remaining * (Decimal::from(100) + rate) / Decimal::from(100)).round_dp(2)
            );
            assert!(matches!(item["LoanStatusCode"].as_i64(), Some(2 | 5 | 100)));
        }
        assert!(world.offers.iter().any(|offer| {
            alice
                .investments
                .iter()
                .any(|own| own.item["LoanPartId"] == offer.item["LoanPartId"])
        }));
        let open = bids_by_auction(&alice.bids);
        assert!(!open.is_empty());
    }
}
