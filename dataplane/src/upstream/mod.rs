//! Calls to Bedrock Runtime through aws-sdk-bedrockruntime, and the mapping
//! of every Bedrock failure onto the Anthropic error a client expects.

mod bedrock;
mod errors;
pub mod eventstream;

pub use bedrock::{Bedrock, EventStream};
pub use errors::UpstreamError;
