//! Anthropic Messages request → Bedrock InvokeModel body.

pub mod betas;
mod request;

pub use request::{count_tokens_body, parse_messages_request, MessagesRequest};
