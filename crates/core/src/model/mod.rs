//! Provider-neutral domain types.

mod investment;
mod loan;
mod offer;
mod transfer;

pub use investment::{Investment, InvestmentStatus, LoanHealth, PortfolioSummary, SellStatus};
pub use loan::{Loan, LoanPurpose, LoanStatus};
pub use offer::Offer;
pub use transfer::{NewTransfer, Transfer, TransferStatus};
