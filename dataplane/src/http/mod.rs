//! HTTP plumbing: the listener and the cores it spreads connections over, the body type, the client-facing error,
//! the live counts of `/health`, and the rate-limit headers. It knows
//! nothing of the API behind it: the server calls whatever [`App`] it is
//! given.

pub mod body;
pub mod budget_headers;
mod cores;
pub mod error;
mod gauges;
pub mod ratelimit_headers;
mod server;

pub use cores::{Cores, Threading};
pub use gauges::Gauges;
pub use server::{bind, serve, App, Timeouts};
