//! The control plane's side of the split: the configuration as versioned
//! resources (`state`, built by `resources` from the database, kept current
//! by `publisher` from the change log that `revision` writes), the watch
//! stream that sends each data plane what it lacks (`service`), the fleet
//! registry shared by every replica (`registry`), each data plane's share
//! of the rate limits (`shares`), usage reports (`usage`) with the
//! endpoints' counters (`health`), and the routing resources (`routing`).

pub mod health;
mod publisher;
pub mod registry;
pub mod resources;
pub mod revision;
pub mod routing;
mod service;
pub mod shares;
pub mod state;
pub mod usage;

pub use publisher::Publisher;
pub use registry::Registry;
pub use resources::Touched;
pub use service::DataPlaneApi;
