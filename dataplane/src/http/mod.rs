//! HTTP plumbing: the listener, the body type, the client-facing error.

pub mod body;
pub mod error;
mod server;

pub use server::{bind, serve, Timeouts};
