//! What a cached answer is about: the operation, its class, and the key that
//! names one answer.

use std::fmt;
use std::mem::size_of;

use crate::auth::Principal;
use crate::id::ProviderId;

/// Whether an operation's answer is the same for everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationClass {
    /// The same for every caller (marketplace): keyed without the principal.
    Public,
    /// About one user: keyed by the principal (and its tenant).
    Private,
}

/// Every read of the [`Provider`](crate::Provider) trait the gateway caches.
/// Writes (create, confirm, update a transfer) are never cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Loans,
    Loan,
    Offers,
    Investments,
    Investment,
    Portfolio,
    Transfers,
    Transfer,
}

impl Operation {
    /// The class each operation declares, which decides its key and its time to live.
    pub fn class(self) -> OperationClass {
        match self {
            Operation::Loans | Operation::Loan | Operation::Offers => OperationClass::Public,
            Operation::Investments
            | Operation::Investment
            | Operation::Portfolio
            | Operation::Transfers
            | Operation::Transfer => OperationClass::Private,
        }
    }

    /// The primary marketplace's listing, which a newly published loan changes.
    fn lists_marketplace(self) -> bool {
        self == Operation::Loans
    }
}

/// Which of a principal's data a write or an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Investment lists and details, and the portfolio built from them.
    Investments,
    /// Transfer lists and details.
    Transfers,
    /// Everything cached about the principal at the provider.
    All,
}

impl Scope {
    fn covers(self, operation: Operation) -> bool {
        match self {
            Scope::Investments => matches!(
                operation,
                Operation::Investments | Operation::Investment | Operation::Portfolio
            ),
            Scope::Transfers => matches!(operation, Operation::Transfers | Operation::Transfer),
            Scope::All => operation.class() == OperationClass::Private,
        }
    }
}

/// Names one cached answer: provider, operation, whose (private operations
/// only) and the normalised arguments (the request's `Debug` form, or the
/// native id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    provider: ProviderId,
    operation: Operation,
    principal: Option<Principal>,
    args: String,
}

impl CacheKey {
    /// The key of `operation` with `args` as asked by `principal`; `None` for a
    /// private operation without a principal, which must not be cached at all.
    pub fn new(
        provider: &ProviderId,
        operation: Operation,
        principal: Option<&Principal>,
        args: &impl fmt::Debug,
    ) -> Option<CacheKey> {
        let principal = match operation.class() {
            OperationClass::Public => None,
            OperationClass::Private => Some(principal?.clone()),
        };
        Some(CacheKey {
            provider: provider.clone(),
            operation,
            principal,
            args: format!("{args:?}"),
        })
    }

    pub fn provider(&self) -> &ProviderId {
        &self.provider
    }

    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// Whose answer this is; `None` for public operations.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    pub(super) fn weight(&self) -> usize {
        size_of::<CacheKey>()
            + self.args.capacity()
            + self
                .principal
                .as_ref()
                .map_or(0, |p| p.id().len() + p.tenant().map_or(0, str::len))
    }

    pub(super) fn in_marketplace_of(&self, provider: &ProviderId) -> bool {
        &self.provider == provider && self.operation.lists_marketplace()
    }

    pub(super) fn in_scope_of(
        &self,
        provider: &ProviderId,
        principal: &Principal,
        scope: Scope,
    ) -> bool {
        &self.provider == provider
            && self.principal.as_ref() == Some(principal)
            && scope.covers(self.operation)
    }
}
