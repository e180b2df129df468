//! The control plane's side of the split: building configuration snapshots,
//! streaming them to data planes (and tracking who holds what), and
//! receiving their usage reports.

mod publisher;
mod service;
mod snapshot;
pub mod usage;

pub use publisher::{DataPlaneInfo, Publisher};
pub use service::DataPlaneApi;
