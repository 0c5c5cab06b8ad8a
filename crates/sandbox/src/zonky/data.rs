//! The generated marketplace: typed loans shaped like the document's `Loan`
//! data structure, the same for the same seed.

use chrono::{DateTime, Months, NaiveDate, TimeDelta, Utc};
use chrono_tz::{Europe::Prague, Tz};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::{Decimal, MathematicalOps};
use serde::{Serialize, Serializer};

/// A string enum spelled on the wire as the document lists its members.
pub(crate) trait WireEnum: Copy + 'static {
    const ALL: &'static [Self];
    /// The wire names of `ALL`, in the same order.
    const NAMES: &'static [&'static str];
    fn as_str(self) -> &'static str;
    /// Relative frequency on the generated marketplace.
    fn weight(self) -> u32;
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $wire:literal @ $weight:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum $name { $($variant),+ }

        impl $crate::zonky::data::WireEnum for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            const NAMES: &'static [&'static str] = &[$($wire),+];

            fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }

            fn weight(self) -> u32 {
                match self { $(Self::$variant => $weight),+ }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($crate::zonky::data::WireEnum::as_str(*self))
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// `Loan.purpose`.
    Purpose {
        AutoMoto = "AUTO_MOTO" @ 12,
        Education = "EDUCATION" @ 5,
        Travel = "TRAVEL" @ 6,
        Electronics = "ELECTRONICS" @ 6,
        Health = "HEALTH" @ 4,
        Refinancing = "REFINANCING" @ 35,
        Household = "HOUSEHOLD" @ 18,
        OwnProject = "OWN_PROJECT" @ 6,
        Other = "OTHER" @ 8,
    }
}

wire_enum! {
    /// `Loan.rating`, from the safest to the riskiest.
    Rating {
        Aaaaa = "AAAAA" @ 6,
        Aaaa = "AAAA" @ 8,
        Aaa = "AAA" @ 12,
        Aae = "AAE" @ 10,
        Aa = "AA" @ 14,
        Ae = "AE" @ 12,
        A = "A" @ 14,
        B = "B" @ 12,
        C = "C" @ 8,
        D = "D" @ 4,
    }
}

wire_enum! {
    /// `Loan.mainIncomeType`, with the members of the document's income enum.
    IncomeType {
        Employment = "EMPLOYMENT" @ 62,
        SelfEmployment = "SELF_EMPLOYMENT" @ 8,
        MaternityLeave = "MATERNITY_LEAVE" @ 5,
        Entrepreneur = "ENTREPRENEUR" @ 9,
        Student = "STUDENT" @ 3,
        Pension = "PENSION" @ 8,
        LiberalProfession = "LIBERAL_PROFESSION" @ 2,
        Unemployed = "UNEMPLOYED" @ 1,
        Other = "OTHER" @ 2,
    }
}

impl Rating {
    /// The few interest rates loans of this rating are priced at (in 1/10,000),
    /// so that ordering by rate has many ties, and the yearly investment fee
    /// that turns the interest rate into the revenue rate.
    fn pricing(self) -> (&'static [i64], i64) {
        match self {
            Self::Aaaaa => (&[299, 349, 399], 100),
            Self::Aaaa => (&[399, 449, 499], 100),
            Self::Aaa => (&[499, 549, 599], 100),
            Self::Aae => (&[599, 649, 699], 100),
            Self::Aa => (&[749, 799, 849], 150),
            Self::Ae => (&[849, 899, 949], 150),
            Self::A => (&[999, 1099, 1199], 200),
            Self::B => (&[1249, 1349, 1449], 250),
            Self::C => (&[1549, 1699, 1849], 300),
            Self::D => (&[1999, 2199, 2499], 350),
        }
    }
}

/// A marketplace loan, field for field the document's `Loan`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Loan {
    pub(crate) id: u64,
    pub(crate) url: String,
    pub(crate) name: String,
    pub(crate) story: String,
    pub(crate) purpose: Purpose,
    photos: Vec<Photo>,
    pub(crate) nick_name: String,
    pub(crate) term_in_months: u32,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) interest_rate: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) revenue_rate: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) annuity_with_insurance: Decimal,
    pub(crate) rating: Rating,
    pub(crate) topped: Option<bool>,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) amount: Decimal,
    pub(crate) country_of_origin: &'static str,
    pub(crate) currency: &'static str,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) remaining_investment: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) reserved_amount: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) investment_rate: Decimal,
    pub(crate) covered: bool,
    #[serde(serialize_with = "serialize_instant")]
    pub(crate) date_published: DateTime<Tz>,
    published: bool,
    #[serde(serialize_with = "serialize_instant")]
    pub(crate) deadline: DateTime<Tz>,
    investments_count: u32,
    pub(crate) region: String,
    pub(crate) main_income_type: IncomeType,
    pub(crate) insurance_active: bool,
    insurance_history: Vec<InsurancePeriod>,
}

/// `Photo`.
#[derive(Clone, Debug, Serialize)]
struct Photo {
    name: String,
    url: String,
}

/// One insured interval. The document names `InsuranceHistoryItem` without
/// defining it: here it is the policy's first and last day.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct InsurancePeriod {
    policy_period_from: NaiveDate,
    policy_period_to: NaiveDate,
}

/// The document's time format: milliseconds and the offset, e.g.
/// `2016-04-19T18:25:41.208+02:00`.
pub(crate) fn serialize_instant<S: Serializer>(
    instant: &DateTime<Tz>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&instant.format("%Y-%m-%dT%H:%M:%S%.3f%:z"))
}

/// How long before `now` loans were published: up to three days.
const MAX_AGE_MS: i64 = 3 * 24 * 60 * 60 * 1000;
/// How long a loan stays on the marketplace, as in the document's example.
const MARKETPLACE_DAYS: i64 = 7;

/// Generates `count` loans from `seed`, published in the three days before `now`
/// and with deadlines at least four days after it. Ids grow with the position
/// but leave gaps; publication times are independent of ids.
pub(crate) fn generate(seed: u64, count: usize, now: DateTime<Utc>) -> Vec<Loan> {
    // Whole milliseconds, so a time read back from the JSON is the same instant.
    let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut id = rng.random_range(100_000..200_000);
    (0..count)
        .map(|_| {
            id += rng.random_range(1..=9);
            loan(&mut rng, id, now)
        })
        .collect()
}

fn loan(rng: &mut ChaCha8Rng, id: u64, now: DateTime<Utc>) -> Loan {
    let purpose: Purpose = pick(rng);
    let rating: Rating = pick(rng);
    let (rates, fee) = rating.pricing();
    let interest_rate = Decimal::new(*one_of(rng, rates), 4);
    let revenue_rate = interest_rate - Decimal::new(fee, 4);

    let term_in_months = if rng.random_bool(0.7) {
        6 * rng.random_range(1..=14)
    } else {
        rng.random_range(6..=84)
    };
    // Most loans ask for little; a few for up to a million.
    let thousands: i64 = match rng.random_range(0..100) {
        0..60 => rng.random_range(20..=200),
        60..90 => rng.random_range(200..=500),
        _ => rng.random_range(500..=1000),
    };
    let amount = Decimal::new(thousands * 1000 * 100, 2);
    let amount_hundreds = thousands * 10;
    let invested_hundreds = if rng.random_bool(0.1) {
        amount_hundreds
    } else {
        rng.random_range(0..amount_hundreds)
    };
    let remaining_hundreds = amount_hundreds - invested_hundreds;
    let reserved_hundreds = if remaining_hundreds > 0 && rng.random_bool(0.15) {
        rng.random_range(1..=remaining_hundreds.min(50))
    } else {
        0
    };
    let remaining_investment = Decimal::new(remaining_hundreds * 100 * 100, 2);
    let investments_count = if invested_hundreds == 0 {
        0
    } else {
        u32::try_from(invested_hundreds / rng.random_range(2..=8))
            .unwrap_or(u32::MAX)
            .max(1)
    };

    let insurance_active = rng.random_bool(0.35);
    let date_published = (now - TimeDelta::milliseconds(rng.random_range(60_000..=MAX_AGE_MS)))
        .with_timezone(&Prague);
    let deadline = date_published + TimeDelta::days(MARKETPLACE_DAYS)
        - TimeDelta::milliseconds(rng.random_range(0..300_000));
    let insurance_history = if insurance_active {
        let from = date_published.date_naive();
        vec![InsurancePeriod {
            policy_period_from: from,
            policy_period_to: from
                .checked_add_months(Months::new(term_in_months))
                .unwrap_or(from),
        }]
    } else {
        Vec::new()
    };

    let name = one_of(rng, titles(purpose)).to_string();
    let story = format!(
        "{} Peníze použiji na: {}. {}",
        one_of(
            rng,
            &["Dobrý den, investoři.", "Zdravím všechny.", "Dobrý den,"]
        ),
        name.to_lowercase(),
        one_of(
            rng,
            &[
                "Děkuji za důvěru.",
                "Splácím vždy včas.",
                "Předem děkuji všem investorům."
            ]
        ),
    );
    let nick_name = if rng.random_bool(0.2) {
        format!("zonky{}", rng.random_range(0..100_000))
    } else {
        let base = one_of(
            rng,
            &[
                "petr", "jana", "martin", "lucie", "tomas", "eva", "jiri", "katka", "honza", "misa",
            ],
        );
        format!("{base}{}", rng.random_range(1..1000))
    };
    let topped = match rng.random_range(0..100) {
        0..80 => Some(false),
        80..88 => Some(true),
        _ => None,
    };

    Loan {
        id,
        url: format!("https://app.zonky.cz/loan/{id}"),
        name,
        story,
        purpose,
        photos: vec![Photo {
            name: rng.random_range(1..=12).to_string(),
            url: format!("/loans/{id}/photos/{}", rng.random_range(1000..100_000)),
        }],
        nick_name,
        term_in_months,
        interest_rate,
        revenue_rate,
        annuity_with_insurance: annuity(amount, interest_rate, term_in_months, insurance_active),
        rating,
        topped,
        amount,
        country_of_origin: "CZ",
        currency: "CZK",
        remaining_investment,
        reserved_amount: Decimal::new(reserved_hundreds * 100 * 100, 2),
        investment_rate: (Decimal::from(invested_hundreds) / Decimal::from(amount_hundreds))
            .round_dp(3)
            .normalize(),
        covered: remaining_hundreds == 0,
        date_published,
        published: true,
        deadline,
        investments_count,
        region: rng.random_range(1..=14).to_string(),
        main_income_type: pick(rng),
        insurance_active,
        insurance_history,
    }
}

/// The monthly instalment of an annuity loan, plus a plausible insurance
/// premium (0.07 % of the amount a month) when insured.
fn annuity(amount: Decimal, yearly_rate: Decimal, months: u32, insured: bool) -> Decimal {
    let monthly_rate = yearly_rate / Decimal::from(12);
    let growth = (Decimal::ONE + monthly_rate).powi(i64::from(months));
    let instalment = amount * monthly_rate * growth / (growth - Decimal::ONE);
    let premium = if insured {
        amount * Decimal::new(7, 4)
    } else {
        Decimal::ZERO
    };
    (instalment + premium).round_dp(2)
}

fn titles(purpose: Purpose) -> &'static [&'static str] {
    match purpose {
        Purpose::AutoMoto => &[
            "Nové auto",
            "Oprava auta",
            "Ojetý vůz pro rodinu",
            "Motorka",
        ],
        Purpose::Education => &["Rekvalifikační kurz", "Studium při práci", "Jazykový kurz"],
        Purpose::Travel => &["Dovolená u moře", "Cesta za rodinou", "Svatební cesta"],
        Purpose::Electronics => &["Nový počítač", "Pračka a lednice", "Elektronika do bytu"],
        Purpose::Health => &["Zubař", "Rehabilitace", "Operace očí"],
        Purpose::Refinancing => &[
            "Refinancování půjček",
            "Konsolidace úvěrů",
            "Splacení kreditky",
            "Sloučení půjček",
        ],
        Purpose::Household => &[
            "Rekonstrukce koupelny",
            "Nová kuchyň",
            "Vybavení bytu",
            "Stěhování",
        ],
        Purpose::OwnProject => &["Rozjezd živnosti", "Vybavení dílny", "Vlastní e-shop"],
        Purpose::Other => &["Svatba", "Nákup pozemku", "Rodinná oslava"],
    }
}

/// A member drawn with the enum's weights.
pub(crate) fn pick<E: WireEnum>(rng: &mut ChaCha8Rng) -> E {
    let total: u32 = E::ALL.iter().map(|member| member.weight()).sum();
    let mut roll = rng.random_range(0..total);
    for &member in E::ALL {
        if roll < member.weight() {
            return member;
        }
        roll -= member.weight();
    }
    unreachable!("the roll is below the sum of the weights")
}

pub(crate) fn one_of<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-03-30T12:34:56.789123+01:00")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn same_seed_same_loans() {
        let json = |seed| serde_json::to_string(&generate(seed, 200, now())).unwrap();
        assert_eq!(json(42), json(42));
        assert_ne!(json(42), json(43));
    }

    #[test]
    fn loans_are_consistent() {
        let now = now();
        let loans = generate(42, 2000, now);
        for pair in loans.windows(2) {
            assert!(pair[0].id < pair[1].id, "ids grow");
        }
        assert!(
            loans.windows(2).any(|pair| pair[1].id - pair[0].id > 1),
            "ids leave gaps"
        );
        for loan in &loans {
            assert!((6..=84).contains(&loan.term_in_months));
            assert_eq!(loan.interest_rate.scale(), 4);
            assert!(loan.revenue_rate > Decimal::ZERO && loan.revenue_rate < loan.interest_rate);
            assert!(
                loan.amount >= Decimal::from(20_000) && loan.amount <= Decimal::from(1_000_000)
            );
            assert!((loan.amount % Decimal::from(1000)).is_zero());
            assert!(loan.remaining_investment <= loan.amount);
            assert!((loan.remaining_investment % Decimal::from(100)).is_zero());
            assert!(loan.reserved_amount <= loan.remaining_investment);
            assert_eq!(loan.covered, loan.remaining_investment.is_zero());
            assert_eq!(
                loan.investments_count == 0,
                loan.remaining_investment == loan.amount
            );
            assert!(loan.date_published.to_utc() < now);
            assert!(loan.deadline.to_utc() > now + TimeDelta::days(3));
            assert_eq!(loan.insurance_active, !loan.insurance_history.is_empty());
            assert!(loan.annuity_with_insurance > Decimal::ZERO);
        }
        assert!(loans.iter().any(|loan| loan.covered));
        assert!(loans.iter().any(|loan| loan.topped.is_none()));
        assert!(loans.iter().any(|loan| !loan.reserved_amount.is_zero()));
    }

    #[test]
    fn serializes_as_the_document_shows() {
        let loan = serde_json::to_value(&generate(1, 1, now())[0]).unwrap();
        let published = loan["datePublished"].as_str().unwrap();
        // e.g. 2024-03-28T09:12:03.456+01:00
        assert_eq!(published.len(), 29, "{published}");
        assert!(published.ends_with("+01:00") || published.ends_with("+02:00"));
        let rate = loan["interestRate"].as_number().unwrap().as_str();
        assert_eq!(rate.len(), 6, "four decimals: {rate}");
        assert!(
            loan["amount"]
                .as_number()
                .unwrap()
                .as_str()
                .ends_with(".00")
        );
        assert_eq!(
            loan["url"],
            format!("https://app.zonky.cz/loan/{}", loan["id"])
        );
        assert!(loan["region"].is_string());
        let fields = loan.as_object().unwrap().len();
        assert_eq!(fields, 28, "every field of the document's Loan");
    }
}
