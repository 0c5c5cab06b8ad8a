//! Relay cursor connections over the aggregator's pages, one pair of types
//! per kind of record.

use async_graphql::SimpleObject;
use finmesh_core::aggregate::Page;
use finmesh_core::model;

use crate::investment::Investment;
use crate::loan::Loan;
use crate::offer::Offer;
use crate::transfer::Transfer;

/// Where a page stands in the whole list.
#[derive(SimpleObject)]
pub(crate) struct PageInfo {
    has_next_page: bool,
    has_previous_page: bool,
    start_cursor: Option<String>,
    end_cursor: Option<String>,
}

impl PageInfo {
    fn of<T>(page: &Page<T>) -> Self {
        PageInfo {
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            start_cursor: page.start_cursor().map(str::to_string),
            end_cursor: page.end_cursor().map(str::to_string),
        }
    }
}

/// A connection type and its edge type for one kind of record.
macro_rules! connection {
    ($connection:ident, $edge:ident, $node:ident, $model:ty, $title:literal, $records:literal, $a_record:literal, $record:literal) => {
        #[doc = concat!($title, ", one page at a time (Relay cursor connection).")]
        #[derive(SimpleObject)]
        pub(crate) struct $connection {
            edges: Vec<$edge>,
            page_info: PageInfo,
            #[doc = concat!("How many ", $records, " match across the providers asked; null when a provider cannot tell or failed.")]
            total_count: Option<u64>,
        }

        #[doc = concat!($a_record, " and where it stands in the list.")]
        #[derive(SimpleObject)]
        pub(crate) struct $edge {
            #[doc = concat!("Pass as `after` to continue after this ", $record, ".")]
            cursor: String,
            node: $node,
        }

        impl From<Page<$model>> for $connection {
            /// The page's records; its per-provider errors are the caller's to report.
            fn from(page: Page<$model>) -> Self {
                $connection {
                    page_info: PageInfo::of(&page),
                    total_count: page.total_count,
                    edges: page
                        .edges
                        .into_iter()
                        .map(|edge| $edge {
                            cursor: edge.cursor,
                            node: $node(edge.node),
                        })
                        .collect(),
                }
            }
        }
    };
}

connection!(
    LoanConnection,
    LoanEdge,
    Loan,
    model::Loan,
    "Loans",
    "loans",
    "A loan",
    "loan"
);
connection!(
    InvestmentConnection,
    InvestmentEdge,
    Investment,
    model::Investment,
    "Investments",
    "investments",
    "An investment",
    "investment"
);
connection!(
    OfferConnection,
    OfferEdge,
    Offer,
    model::Offer,
    "Secondary-market offers",
    "offers",
    "An offer",
    "offer"
);
connection!(
    TransferConnection,
    TransferEdge,
    Transfer,
    model::Transfer,
    "Transfers",
    "transfers",
    "A transfer",
    "transfer"
);
