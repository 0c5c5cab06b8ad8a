//! The document's sorting and filtering tables, one per listing: which
//! properties each allows, their types, and where a record keeps them.

use rust_decimal::Decimal;

use super::{
    data::{IncomeType, Loan, Purpose, WireEnum},
    filter::{Column, Kind, Scalar},
    portfolio::{
        CovidLabel, InsuranceStatus, Investment, InvestmentStatus, LoanHealth, LoanHealthInfo,
        Region, SellStatus,
    },
    secondary::Offer,
};

/// `GET /loans/marketplace`: every property sorts and filters but `incomes`,
/// which only filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoanColumn {
    DatePublished,
    InterestRate,
    Covered,
    TermInMonths,
    Purpose,
    Rating,
    /// Filters on the loan's `mainIncomeType`; cannot order.
    Incomes,
    Topped,
    RemainingInvestment,
    /// `remainingInvestment - reservedAmount`, what anyone may still invest.
    NonReservedRemainingInvestment,
    InsuranceActive,
}

impl Column for LoanColumn {
    type Record = Loan;

    const ALL: &'static [Self] = &[
        Self::DatePublished,
        Self::InterestRate,
        Self::Covered,
        Self::TermInMonths,
        Self::Purpose,
        Self::Rating,
        Self::Incomes,
        Self::Topped,
        Self::RemainingInvestment,
        Self::NonReservedRemainingInvestment,
        Self::InsuranceActive,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::DatePublished => "datePublished",
            Self::InterestRate => "interestRate",
            Self::Covered => "covered",
            Self::TermInMonths => "termInMonths",
            Self::Purpose => "purpose",
            Self::Rating => "rating",
            Self::Incomes => "incomes",
            Self::Topped => "topped",
            Self::RemainingInvestment => "remainingInvestment",
            Self::NonReservedRemainingInvestment => "nonReservedRemainingInvestment",
            Self::InsuranceActive => "insuranceActive",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::DatePublished => Kind::Instant,
            Self::InterestRate
            | Self::TermInMonths
            | Self::RemainingInvestment
            | Self::NonReservedRemainingInvestment => Kind::Number,
            Self::Covered | Self::Topped | Self::InsuranceActive => Kind::Boolean,
            Self::Purpose => Kind::Enum(Purpose::NAMES),
            Self::Rating => Kind::Text,
            Self::Incomes => Kind::EnumSet(IncomeType::NAMES),
        }
    }

    fn sortable(self) -> bool {
        self != Self::Incomes
    }

    fn filterable(self) -> bool {
        true
    }

    fn value(self, loan: &Loan) -> Option<Scalar> {
        Some(match self {
            Self::DatePublished => Scalar::Instant(loan.date_published.to_utc()),
            Self::InterestRate => Scalar::Number(loan.interest_rate),
            Self::Covered => Scalar::Boolean(loan.covered),
            Self::TermInMonths => Scalar::Number(loan.term_in_months.into()),
            Self::Purpose => text(loan.purpose),
            Self::Rating => text(loan.rating),
            Self::Incomes => text(loan.main_income_type),
            Self::Topped => Scalar::Boolean(loan.topped?),
            Self::RemainingInvestment => Scalar::Number(loan.remaining_investment),
            Self::NonReservedRemainingInvestment => {
                Scalar::Number(loan.remaining_investment - loan.reserved_amount)
            }
            Self::InsuranceActive => Scalar::Boolean(loan.insurance_active),
        })
    }

    fn id(loan: &Loan) -> u64 {
        loan.id
    }
}

/// `GET /me/investments` (and its summary): the document's table, where a
/// property sorts, filters, or both. `ext.*`, `unpaidPrincipal` and the
/// `borrower*` names are the table's own aliases of fields of the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InvestmentColumn {
    LoanName,
    LoanPurpose,
    LoanInterestRate,
    LoanAmount,
    UnpaidInstalmentCount,
    RevenueRate,
    UnpaidPrincipal,
    LoanHealth,
    BorrowerPrimaryIncomeType,
    InsuranceStatus,
    BorrowerRegion,
    SellStatus,
    InvestmentStatus,
    CovidLabel,
    TimeCreated,
    TimeModified,
    Id,
}

impl Column for InvestmentColumn {
    type Record = Investment;

    const ALL: &'static [Self] = &[
        Self::LoanName,
        Self::LoanPurpose,
        Self::LoanInterestRate,
        Self::LoanAmount,
        Self::UnpaidInstalmentCount,
        Self::RevenueRate,
        Self::UnpaidPrincipal,
        Self::LoanHealth,
        Self::BorrowerPrimaryIncomeType,
        Self::InsuranceStatus,
        Self::BorrowerRegion,
        Self::SellStatus,
        Self::InvestmentStatus,
        Self::CovidLabel,
        Self::TimeCreated,
        Self::TimeModified,
        Self::Id,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::LoanName => "loan.name",
            Self::LoanPurpose => "loan.purpose",
            Self::LoanInterestRate => "loan.interestRate",
            Self::LoanAmount => "loan.amount",
            Self::UnpaidInstalmentCount => "ext.unpaidInstalmentCount",
            Self::RevenueRate => "ext.revenueRate",
            Self::UnpaidPrincipal => "unpaidPrincipal",
            Self::LoanHealth => "loanHealth",
            Self::BorrowerPrimaryIncomeType => "borrowerPrimaryIncomeType",
            Self::InsuranceStatus => "insuranceStatus",
            Self::BorrowerRegion => "borrowerRegion",
            Self::SellStatus => "sellStatus",
            Self::InvestmentStatus => "investmentStatus",
            Self::CovidLabel => "covidLabel",
            Self::TimeCreated => "timeCreated",
            Self::TimeModified => "timeModified",
            Self::Id => "id",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::LoanName => Kind::Text,
            Self::LoanInterestRate
            | Self::LoanAmount
            | Self::UnpaidInstalmentCount
            | Self::RevenueRate
            | Self::UnpaidPrincipal
            | Self::Id => Kind::Number,
            Self::LoanPurpose => Kind::Enum(Purpose::NAMES),
            Self::LoanHealth => Kind::Enum(LoanHealth::NAMES),
            Self::BorrowerPrimaryIncomeType => Kind::Enum(IncomeType::NAMES),
            Self::InsuranceStatus => Kind::Enum(InsuranceStatus::NAMES),
            Self::BorrowerRegion => Kind::Enum(Region::NAMES),
            Self::SellStatus => Kind::Enum(SellStatus::NAMES),
            Self::InvestmentStatus => Kind::Enum(InvestmentStatus::NAMES),
            Self::CovidLabel => Kind::Enum(CovidLabel::NAMES),
            Self::TimeCreated | Self::TimeModified => Kind::Instant,
        }
    }

    fn sortable(self) -> bool {
        matches!(
            self,
            Self::LoanName
                | Self::LoanInterestRate
                | Self::UnpaidInstalmentCount
                | Self::UnpaidPrincipal
                | Self::TimeCreated
                | Self::TimeModified
                | Self::Id
        )
    }

    fn filterable(self) -> bool {
        !matches!(
            self,
            Self::LoanName | Self::LoanInterestRate | Self::UnpaidPrincipal
        )
    }

    fn value(self, investment: &Investment) -> Option<Scalar> {
        let loan = &investment.loan;
        Some(match self {
            Self::LoanName => Scalar::Text(loan.name.clone().into()),
            Self::LoanPurpose => text(loan.purpose),
            Self::LoanInterestRate => Scalar::Number(loan.interest_rate),
            Self::LoanAmount => Scalar::Number(loan.amount),
            Self::UnpaidInstalmentCount => Scalar::Number(loan.payments.unpaid.into()),
            Self::RevenueRate => Scalar::Number(loan.revenue_rate),
            Self::UnpaidPrincipal => Scalar::Number(investment.principal.unpaid),
            Self::LoanHealth => text(investment.loan_health),
            Self::BorrowerPrimaryIncomeType => text(loan.borrower.primary_income_type),
            Self::InsuranceStatus => text(investment.insurance_status),
            Self::BorrowerRegion => text(loan.borrower.region),
            Self::SellStatus => text(investment.sell_status),
            Self::InvestmentStatus => text(investment.investment_status),
            Self::CovidLabel => text(investment.covid_label?),
            Self::TimeCreated => Scalar::Instant(investment.time_created.to_utc()),
            Self::TimeModified => Scalar::Instant(investment.time_modified.to_utc()),
            Self::Id => Scalar::Number(Decimal::from(investment.id)),
        })
    }

    fn id(investment: &Investment) -> u64 {
        investment.id
    }

    fn members_of(self, member: &'static str) -> Vec<&'static str> {
        match self {
            Self::LoanHealth => LoanHealth::group(member),
            _ => vec![member],
        }
    }
}

/// `GET /smp/investments`: every property sorts and filters but
/// `loanHealthInfo`, which only filters (`delinquent` is a plain parameter,
/// not a property).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OfferColumn {
    Rating,
    DatePublished,
    Deadline,
    RemainingInstalmentCount,
    RemainingPrincipal,
    Purpose,
    IncomeType,
    LoanHealthInfo,
}

impl Column for OfferColumn {
    type Record = Offer;

    const ALL: &'static [Self] = &[
        Self::Rating,
        Self::DatePublished,
        Self::Deadline,
        Self::RemainingInstalmentCount,
        Self::RemainingPrincipal,
        Self::Purpose,
        Self::IncomeType,
        Self::LoanHealthInfo,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Rating => "rating",
            Self::DatePublished => "datePublished",
            Self::Deadline => "deadline",
            Self::RemainingInstalmentCount => "remainingInstalmentCount",
            Self::RemainingPrincipal => "remainingPrincipal",
            Self::Purpose => "purpose",
            Self::IncomeType => "incomeType",
            Self::LoanHealthInfo => "loanHealthInfo",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::Rating => Kind::Text,
            Self::DatePublished | Self::Deadline => Kind::Instant,
            Self::RemainingInstalmentCount | Self::RemainingPrincipal => Kind::Number,
            Self::Purpose => Kind::Enum(Purpose::NAMES),
            Self::IncomeType => Kind::Enum(IncomeType::NAMES),
            Self::LoanHealthInfo => Kind::Enum(LoanHealthInfo::NAMES),
        }
    }

    fn sortable(self) -> bool {
        self != Self::LoanHealthInfo
    }

    fn filterable(self) -> bool {
        true
    }

    fn value(self, offer: &Offer) -> Option<Scalar> {
        Some(match self {
            Self::Rating => text(offer.rating),
            Self::DatePublished => Scalar::Instant(offer.date_published.to_utc()),
            Self::Deadline => Scalar::Instant(offer.deadline.to_utc()),
            Self::RemainingInstalmentCount => {
                Scalar::Number(offer.remaining_instalment_count.into())
            }
            Self::RemainingPrincipal => Scalar::Number(offer.remaining_principal),
            Self::Purpose => text(offer.purpose),
            Self::IncomeType => text(offer.income_type),
            Self::LoanHealthInfo => text(offer.loan_health_info),
        })
    }

    fn id(offer: &Offer) -> u64 {
        offer.id
    }
}

fn text<E: WireEnum>(member: E) -> Scalar {
    Scalar::Text(member.as_str().into())
}
