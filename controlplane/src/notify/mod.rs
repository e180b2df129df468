//! Notifications: gateway events written to an outbox in the transaction
//! of the change that caused them (`emit`), fanned out to every destination
//! whose filter takes them, and delivered at least once per destination
//! (webhook, SNS, EventBridge), with the event id for deduplication, by
//! one replica at a time.
//!
//! `event` is the events and their JSON, `outbox` the tables (fan-out,
//! claims, outcomes, backoff), `send` one delivery to one destination
//! (`webhook`, `aws`), `worker` the loop and the periodic checks that emit
//! events of their own (expiring keys, lost data planes, failing
//! destinations).

pub mod aws;
pub mod event;
pub mod outbox;
pub mod producers;
pub mod send;
pub mod webhook;
pub mod worker;

pub use event::{Event, EventType, Filter};
pub use outbox::emit;

use crate::secrets::SecretError;
use ccag_outbound::OutboundError;

/// Why one delivery failed; the text goes to the delivery's log.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{0}")]
    Config(String),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("HTTP: {0}")]
    Http(String),
    #[error("{}", status_text(.0))]
    Status(webhook::Answer),
    #[error("{0}")]
    Aws(String),
    #[error("no answer within {0} seconds")]
    Timeout(u64),
}

fn status_text(a: &webhook::Answer) -> String {
    let hint = if (300..400).contains(&a.status) { " (redirects are not followed)" } else { "" };
    let body: String = a.body.chars().take(200).collect();
    format!("answered {}{hint}: {}", a.status, body.trim())
}

impl SendError {
    /// The HTTP status the destination answered, if it answered.
    pub fn status(&self) -> i32 {
        match self {
            SendError::Status(a) => a.status as i32,
            _ => 0,
        }
    }
}
