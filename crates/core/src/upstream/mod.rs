//! The upstream HTTP client every adapter uses, and the throttle in front of it.
//!
//! - [`Upstream`] (one per provider instance) builds requests against the
//!   platform's base URL with the right `User-Agent`, timeouts and decompression,
//!   maps transport failures to the error taxonomy, and traces every request.
//! - Before every attempt it takes a token from the request's bucket in a
//!   [`Throttle`], chosen by the provider's [`ThrottlePolicy`], so we never send
//!   a request the platform would refuse. A 429 pauses the bucket for everyone
//!   using it (honouring `Retry-After`) and idempotent requests are retried.
//! - [`LocalThrottle`] keeps the buckets in this process; a shared (Redis)
//!   implementation can replace it behind the same trait.

mod client;
pub(crate) mod middleware;
mod observe;
mod policy;
mod throttle;

pub use client::{Upstream, UpstreamConfig, UpstreamRequest, UpstreamResponse};
pub use policy::{ANONYMOUS, BucketKey, BucketLimit, BucketRule, EndpointMatch, ThrottlePolicy};
pub use throttle::{BucketSnapshot, LocalThrottle, Throttle, ThrottleBackend};
