//! Provider-neutral domain types.

mod loan;

pub use loan::{Loan, LoanPurpose, LoanStatus};
