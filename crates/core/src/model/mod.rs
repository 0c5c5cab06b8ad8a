//! Provider-neutral domain types.

mod investment;
mod loan;

pub use investment::{Investment, InvestmentStatus, LoanHealth, PortfolioSummary, SellStatus};
pub use loan::{Loan, LoanPurpose, LoanStatus};
