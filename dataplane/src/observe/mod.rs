//! What the data plane tells its operators: Prometheus metrics on the admin
//! listener (`metrics`, `admin`) and, when the `OTEL_*` variables ask for
//! it, OTLP traces and metrics (`otlp`).
//!
//! Both are fed from the same two places, neither of which holds up a
//! request: the usage writer, which sees every finished request's record
//! after its response has gone, and the scrape, which reads gauges from the
//! state that already keeps them.

pub mod admin;
pub mod metrics;
pub mod otlp;

use std::sync::Arc;

pub use metrics::{Metrics, RouteLabel};
pub use otlp::{Otlp, TraceParent};

use crate::config::ConfigStore;
use crate::usage::UsageRecord;

pub struct Observer {
    pub metrics: Arc<Metrics>,
    pub otlp: Option<Otlp>,
    config: Arc<ConfigStore>,
}

impl Observer {
    pub fn new(metrics: Arc<Metrics>, otlp: Option<Otlp>, config: Arc<ConfigStore>) -> Self {
        Observer { metrics, otlp, config }
    }

    /// Whether requests' trace contexts are worth reading.
    pub fn traces(&self) -> bool {
        self.otlp.as_ref().is_some_and(Otlp::traces)
    }

    /// A finished request, seen by the usage writer.
    pub fn observe(&self, r: &UsageRecord) {
        let cfg = self.config.get();
        let endpoints = cfg.as_ref().map_or(&[][..], |c| &c.endpoints[..]);
        let endpoint = metrics::endpoint_label(r, endpoints);
        let model = self.metrics.observe(r, endpoint);
        if let Some(o) = &self.otlp {
            o.observe(r, endpoint, model);
        }
    }
}
