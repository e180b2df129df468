//! Usage reporting: the durable spool and the reporter that drains the
//! usage channel through it to the control plane.

pub mod reporter;
pub mod spool;
