//! The domain's open enums as GraphQL enums: a value finmesh does not model
//! (core's `Other(raw)`) is `OTHER`, and a `...Raw` field beside it keeps the
//! platform's own value.

use async_graphql::Enum;
use finmesh_core::Error;
use finmesh_core::model;

/// A GraphQL enum for the core enum of the same name, with its `Other(raw)`
/// variant as `OTHER`; `$raw` names the field that shows the raw value.
macro_rules! open_enum {
    (
        $raw:literal;
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident,)* }
    ) => {
        $(#[$meta])*
        #[derive(Enum, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name {
            $($(#[$variant_meta])* $variant,)*
            #[doc = concat!("A value finmesh does not model; `", $raw, "` has the platform's own.")]
            Other,
        }

        impl $name {
            /// The GraphQL value, and the platform's own when it is `OTHER`.
            pub(crate) fn of(value: &model::$name) -> ($name, Option<&str>) {
                match value {
                    $(model::$name::$variant => ($name::$variant, None),)*
                    model::$name::Other(raw) => ($name::Other, Some(raw)),
                }
            }

            /// The values a filter lists; `OTHER` stands for no one value, so
            /// it cannot be filtered on. `field` names the list in errors.
            pub(crate) fn to_core_all(
                values: Vec<$name>,
                field: &str,
            ) -> Result<Vec<model::$name>, Error> {
                values
                    .into_iter()
                    .map(|value| match value {
                        $($name::$variant => Ok(model::$name::$variant),)*
                        $name::Other => Err(Error::invalid_input(
                            field,
                            "OTHER stands for any value finmesh does not model and cannot be filtered on",
                        )),
                    })
                    .collect()
            }
        }
    };
}

open_enum! {
    "statusRaw";
    /// Where an investment is in its life.
    InvestmentStatus {
        /// Bid or reservation placed, loan not yet funded.
        Pending,
        /// Repaying.
        Active,
        /// Repaid in full.
        PaidOff,
        /// Sold on the secondary market.
        Sold,
        /// Written off or in default.
        Defaulted,
    }
}

open_enum! {
    "sellStatusRaw";
    /// Whether an investment can be sold on the secondary market.
    SellStatus {
        Sellable,
        /// Sellable, but the platform charges a fee.
        SellableWithFee,
        NotSellable,
        /// Listed for sale now.
        Offered,
        Sold,
    }
}

open_enum! {
    "loanHealthRaw";
    /// How the borrower is paying.
    LoanHealth {
        /// Never late.
        Healthy,
        /// Late in the past, on time now.
        HistoricallyLate,
        /// Late now.
        Late,
    }
}

open_enum! {
    "statusRaw";
    /// Where a transfer is in its life.
    TransferStatus {
        /// Created, waiting for confirmation; no money moved.
        Pending,
        /// Confirmed; money is moving.
        Confirmed,
        /// The money arrived.
        Successful,
        Failed,
        /// Not confirmed in time.
        Expired,
    }
}
