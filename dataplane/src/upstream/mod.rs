//! Calls to Bedrock Runtime, and the mapping of every Bedrock failure onto the
//! Anthropic error a client expects. InvokeModel and its streaming form go
//! through the data plane's own signed client (`client`); CountTokens goes
//! through aws-sdk-bedrockruntime.

mod bedrock;
mod client;
mod credentials;
mod errors;
pub mod eventstream;

pub use bedrock::Bedrock;
pub use client::EventStream;
pub use errors::UpstreamError;
