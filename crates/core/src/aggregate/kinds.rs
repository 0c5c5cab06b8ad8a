//! The list operations of the [`Provider`] trait, described for the aggregator.

use std::cmp::Ordering;

use async_trait::async_trait;

use super::ListKind;
use crate::cache::Operation;
use crate::error::Result;
use crate::id::GlobalId;
use crate::model::{Investment, Loan, Offer, Transfer};
use crate::provider::{
    CallContext, Capabilities, InvestmentRequest, ListCapabilities, LoanRequest, OfferRequest,
    Provider, Slice, TransferRequest,
};
use crate::query::{
    InvestmentFilter, InvestmentFilterField, InvestmentOrderField, LoanFilter, LoanFilterField,
    LoanOrderField, OfferFilter, OfferFilterField, OfferOrderField, OrderKey, TransferFilter,
    TransferFilterField, TransferOrderField, compare_investments, compare_loans, compare_offers,
    compare_transfers,
};

/// Marketplace loans.
pub struct Loans;

#[async_trait]
impl ListKind for Loans {
    type Item = Loan;
    type Filter = LoanFilter;
    type Field = LoanFilterField;
    type Order = LoanOrderField;

    const OPERATION: &'static str = "loans";
    const CACHED_AS: Operation = Operation::Loans;

    fn capabilities(
        caps: &Capabilities,
    ) -> Option<&ListCapabilities<LoanFilterField, LoanOrderField>> {
        caps.loans.as_ref()
    }

    fn filter_fields(filter: &LoanFilter) -> Vec<LoanFilterField> {
        filter.fields()
    }

    fn restrict(filter: &LoanFilter, fields: &[LoanFilterField]) -> LoanFilter {
        filter.restricted_to(fields)
    }

    fn matches(filter: &LoanFilter, item: &Loan) -> bool {
        filter.matches(item)
    }

    fn compare(a: &Loan, b: &Loan, keys: &[OrderKey<LoanOrderField>]) -> Ordering {
        compare_loans(a, b, keys)
    }

    fn id(item: &Loan) -> &GlobalId {
        &item.id
    }

    async fn fetch(
        provider: &dyn Provider,
        ctx: &CallContext,
        request: &LoanRequest,
    ) -> Result<Slice<Loan>> {
        provider.loans(ctx, request).await
    }
}

/// A principal's investments.
pub struct Investments;

#[async_trait]
impl ListKind for Investments {
    type Item = Investment;
    type Filter = InvestmentFilter;
    type Field = InvestmentFilterField;
    type Order = InvestmentOrderField;

    const OPERATION: &'static str = "investments";
    const CACHED_AS: Operation = Operation::Investments;

    fn capabilities(
        caps: &Capabilities,
    ) -> Option<&ListCapabilities<InvestmentFilterField, InvestmentOrderField>> {
        caps.investments.as_ref()
    }

    fn filter_fields(filter: &InvestmentFilter) -> Vec<InvestmentFilterField> {
        filter.fields()
    }

    fn restrict(filter: &InvestmentFilter, fields: &[InvestmentFilterField]) -> InvestmentFilter {
        filter.restricted_to(fields)
    }

    fn matches(filter: &InvestmentFilter, item: &Investment) -> bool {
        filter.matches(item)
    }

    fn compare(
        a: &Investment,
        b: &Investment,
        keys: &[OrderKey<InvestmentOrderField>],
    ) -> Ordering {
        compare_investments(a, b, keys)
    }

    fn id(item: &Investment) -> &GlobalId {
        &item.id
    }

    async fn fetch(
        provider: &dyn Provider,
        ctx: &CallContext,
        request: &InvestmentRequest,
    ) -> Result<Slice<Investment>> {
        provider.investments(ctx, request).await
    }
}

/// A principal's transfers.
pub struct Transfers;

#[async_trait]
impl ListKind for Transfers {
    type Item = Transfer;
    type Filter = TransferFilter;
    type Field = TransferFilterField;
    type Order = TransferOrderField;

    const OPERATION: &'static str = "transfers";
    const CACHED_AS: Operation = Operation::Transfers;

    fn capabilities(
        caps: &Capabilities,
    ) -> Option<&ListCapabilities<TransferFilterField, TransferOrderField>> {
        caps.transfers.as_ref().map(|t| &t.list)
    }

    fn filter_fields(filter: &TransferFilter) -> Vec<TransferFilterField> {
        filter.fields()
    }

    fn restrict(filter: &TransferFilter, fields: &[TransferFilterField]) -> TransferFilter {
        filter.restricted_to(fields)
    }

    fn matches(filter: &TransferFilter, item: &Transfer) -> bool {
        filter.matches(item)
    }

    fn compare(a: &Transfer, b: &Transfer, keys: &[OrderKey<TransferOrderField>]) -> Ordering {
        compare_transfers(a, b, keys)
    }

    fn id(item: &Transfer) -> &GlobalId {
        &item.id
    }

    async fn fetch(
        provider: &dyn Provider,
        ctx: &CallContext,
        request: &TransferRequest,
    ) -> Result<Slice<Transfer>> {
        provider.transfers(ctx, request).await
    }
}

/// Secondary-market offers.
pub struct Offers;

#[async_trait]
impl ListKind for Offers {
    type Item = Offer;
    type Filter = OfferFilter;
    type Field = OfferFilterField;
    type Order = OfferOrderField;

    const OPERATION: &'static str = "secondaryMarket";
    const CACHED_AS: Operation = Operation::Offers;

    fn capabilities(
        caps: &Capabilities,
    ) -> Option<&ListCapabilities<OfferFilterField, OfferOrderField>> {
        caps.offers.as_ref()
    }

    fn filter_fields(filter: &OfferFilter) -> Vec<OfferFilterField> {
        filter.fields()
    }

    fn restrict(filter: &OfferFilter, fields: &[OfferFilterField]) -> OfferFilter {
        filter.restricted_to(fields)
    }

    fn matches(filter: &OfferFilter, item: &Offer) -> bool {
        filter.matches(item)
    }

    fn compare(a: &Offer, b: &Offer, keys: &[OrderKey<OfferOrderField>]) -> Ordering {
        compare_offers(a, b, keys)
    }

    fn id(item: &Offer) -> &GlobalId {
        &item.id
    }

    async fn fetch(
        provider: &dyn Provider,
        ctx: &CallContext,
        request: &OfferRequest,
    ) -> Result<Slice<Offer>> {
        provider.offers(ctx, request).await
    }
}
