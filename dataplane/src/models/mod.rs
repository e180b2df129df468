//! Which Bedrock model a request runs on, and what that model accepts.

mod resolve;

/// The built-in catalogue, shared with the control plane.
pub use ccag_proto::models as catalogue;
pub use ccag_proto::models::geo_for_region;
pub use resolve::{resolve, Capabilities, Family, Resolved, CONTEXT_1M_BETA};
