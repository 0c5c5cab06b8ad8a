//! Estimates of what a cached answer occupies in memory, so the cache is
//! bounded in bytes rather than in entries.
//!
//! Each record counts its struct, its own strings, and the platform's raw
//! JSON as a tree of `serde_json::Value`s (numbers kept as text:
//! `arbitrary_precision`; objects are B-trees), every heap block with the
//! allocator's overhead. Calibrated against the allocator on a Zonky loan
//! (772 bytes of JSON): estimated 5.9 KB, measured 4.7 KB requested in 62
//! blocks and 6.0 KB of resident memory per loan.

use std::mem::size_of;

use serde_json::Value;

use crate::id::GlobalId;
use crate::model::{Investment, Loan, Offer, PortfolioSummary, Transfer};
use crate::provider::Slice;

/// What the allocator keeps per heap block beyond the bytes asked for
/// (header and rounding).
const ALLOCATION: usize = 32;
/// A B-tree node of a JSON object (11 keys and values, links), as a block.
const BTREE_NODE: usize = 640 + ALLOCATION;
/// Entries per B-tree node, on average.
const NODE_FILL: usize = 7;

/// Approximate heap and inline bytes of a value.
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// Bytes of a heap block of `capacity` bytes (none when empty).
fn block(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        capacity + ALLOCATION
    }
}

/// Bytes of a JSON tree, the root `Value` included.
pub fn json_weight(value: &Value) -> usize {
    size_of::<Value>() + json_heap(value)
}

/// Bytes a JSON value owns on the heap.
fn json_heap(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 0,
        Value::Number(number) => block(number.as_str().len()),
        Value::String(text) => block(text.capacity()),
        Value::Array(items) => {
            block(items.capacity() * size_of::<Value>())
                + items.iter().map(json_heap).sum::<usize>()
        }
        Value::Object(fields) => {
            fields.len().div_ceil(NODE_FILL) * BTREE_NODE
                + fields
                    .iter()
                    .map(|(key, value)| block(key.capacity()) + json_heap(value))
                    .sum::<usize>()
        }
    }
}

/// A platform record's raw JSON behind its `Arc`.
fn raw(raw: &Value) -> usize {
    block(2 * size_of::<usize>() + size_of::<Value>()) + json_heap(raw)
}

fn text(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, |t| block(t.capacity()))
}

fn id(id: &GlobalId) -> usize {
    block(id.native().len())
}

impl Weigh for GlobalId {
    fn weight(&self) -> usize {
        size_of::<GlobalId>() + id(self)
    }
}

impl Weigh for Loan {
    fn weight(&self) -> usize {
        size_of::<Loan>()
            + id(&self.id)
            + block(self.name.capacity())
            + [
                &self.story,
                &self.purpose_raw,
                &self.rating,
                &self.country,
                &self.url,
                &self.borrower_region,
                &self.borrower_income_type,
            ]
            .into_iter()
            .map(text)
            .sum::<usize>()
            + raw(&self.raw)
    }
}

impl Weigh for Investment {
    fn weight(&self) -> usize {
        size_of::<Investment>()
            + id(&self.id)
            + self.loan_id.as_ref().map_or(0, id)
            + text(&self.loan_name)
            + raw(&self.raw)
    }
}

impl Weigh for Offer {
    fn weight(&self) -> usize {
        size_of::<Offer>()
            + id(&self.id)
            + self.loan_id.as_ref().map_or(0, id)
            + text(&self.loan_name)
            + text(&self.rating)
            + raw(&self.raw)
    }
}

impl Weigh for Transfer {
    fn weight(&self) -> usize {
        size_of::<Transfer>()
            + id(&self.id)
            + block(self.destination_account.capacity())
            + self.metadata.len().div_ceil(NODE_FILL) * BTREE_NODE
            + self
                .metadata
                .iter()
                .map(|(k, v)| block(k.capacity()) + block(v.capacity()))
                .sum::<usize>()
            + raw(&self.raw)
    }
}

impl Weigh for PortfolioSummary {
    fn weight(&self) -> usize {
        size_of::<PortfolioSummary>()
    }
}

impl<T: Weigh> Weigh for Vec<T> {
    fn weight(&self) -> usize {
        // Each item's weight counts its inline part; the buffer adds the spare room.
        let buffer = match self.capacity() {
            0 => 0,
            capacity => ALLOCATION + (capacity - self.len()) * size_of::<T>(),
        };
        size_of::<Vec<T>>() + buffer + self.iter().map(Weigh::weight).sum::<usize>()
    }
}

impl<T: Weigh> Weigh for Slice<T> {
    fn weight(&self) -> usize {
        size_of::<Option<u64>>() + self.items.weight()
    }
}
