//! Which Bedrock model a request runs on, and what that model accepts.

pub mod catalogue;
mod resolve;

pub use resolve::{geo_for_region, resolve, Capabilities, Family, Resolved, CONTEXT_1M_BETA};
