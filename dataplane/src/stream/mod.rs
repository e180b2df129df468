//! Bedrock event stream → Anthropic server-sent events, one event written the
//! moment its frame arrives.

mod events;
mod pump;

pub use events::{rewrite_message, EventTranslator, Usage};
pub use pump::{sse_body, StreamRun};
