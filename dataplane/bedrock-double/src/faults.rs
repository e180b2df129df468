//! Faults injected with `POST /_double/fault`, for the model calls that
//! follow (InvokeModel and InvokeModelWithResponseStream) rather than for one
//! marked request: a gateway failing over or opening a circuit sends its
//! retries to another endpoint, so the fault must belong to the endpoint.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How long a `stall` holds the response head back unless told otherwise.
pub const DEFAULT_STALL_MS: u64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// HTTP 429 ThrottlingException.
    Throttle,
    /// HTTP 500 InternalServerException.
    Error,
    /// No response head for `stall_ms`, then a normal answer.
    Stall,
    /// No fault (clears one).
    None,
}

fn one() -> u64 {
    1
}

/// The body of `POST /_double/fault`, and of its answers: `count` is what is
/// left, 0 meaning until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// How many model calls fail; 0: every one until cleared. Default 1.
    #[serde(default = "one")]
    pub count: u64,
    /// For `stall`; default [`DEFAULT_STALL_MS`].
    #[serde(default)]
    pub stall_ms: Option<u64>,
}

impl FaultSpec {
    pub const NONE: FaultSpec = FaultSpec { kind: FaultKind::None, count: 0, stall_ms: None };
}

/// What one model call must suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    Throttle,
    Error,
    Stall(std::time::Duration),
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    kind: FaultKind,
    /// `None`: until cleared.
    remaining: Option<u64>,
    stall_ms: u64,
}

/// The fault in force, if any.
#[derive(Default)]
pub struct Faults(Mutex<Option<Armed>>);

impl Faults {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Armed>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault in force (`kind: none` clears it).
    pub fn set(&self, spec: FaultSpec) {
        *self.slot() = (spec.kind != FaultKind::None).then(|| Armed {
            kind: spec.kind,
            remaining: (spec.count > 0).then_some(spec.count),
            stall_ms: spec.stall_ms.unwrap_or(DEFAULT_STALL_MS),
        });
    }

    pub fn clear(&self) {
        *self.slot() = None;
    }

    /// What is left, in the shape `POST` takes.
    pub fn current(&self) -> FaultSpec {
        match *self.slot() {
            Some(a) => FaultSpec { kind: a.kind, count: a.remaining.unwrap_or(0), stall_ms: Some(a.stall_ms) },
            None => FaultSpec::NONE,
        }
    }

    /// Uses up one call's worth of the fault, under one lock so that
    /// concurrent calls never share the last one.
    pub fn take(&self) -> Option<Injected> {
        let mut slot = self.slot();
        let armed = slot.as_mut()?;
        let injected = match armed.kind {
            FaultKind::Throttle => Injected::Throttle,
            FaultKind::Error => Injected::Error,
            FaultKind::Stall => Injected::Stall(std::time::Duration::from_millis(armed.stall_ms)),
            FaultKind::None => return None,
        };
        match &mut armed.remaining {
            Some(1) => *slot = None,
            Some(n) => *n -= 1,
            None => {}
        }
        Some(injected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn counted_fault_runs_out() {
        let f = Faults::default();
        f.set(spec(r#"{"kind":"throttle","count":2}"#));
        assert_eq!(f.take(), Some(Injected::Throttle));
        assert_eq!(f.current().count, 1);
        assert_eq!(f.take(), Some(Injected::Throttle));
        assert_eq!(f.take(), None);
        assert_eq!(f.current(), FaultSpec::NONE);
    }

    #[test]
    fn count_zero_lasts_until_cleared() {
        let f = Faults::default();
        f.set(spec(r#"{"kind":"error","count":0}"#));
        for _ in 0..10 {
            assert_eq!(f.take(), Some(Injected::Error));
        }
        f.set(spec(r#"{"kind":"none"}"#));
        assert_eq!(f.take(), None);
    }

    #[test]
    fn count_defaults_to_one_and_stall_to_a_minute() {
        let s = spec(r#"{"kind":"stall"}"#);
        assert_eq!(s.count, 1);
        let f = Faults::default();
        f.set(s);
        assert_eq!(f.current().stall_ms, Some(DEFAULT_STALL_MS));
        assert_eq!(f.take(), Some(Injected::Stall(Duration::from_millis(DEFAULT_STALL_MS))));
        assert_eq!(f.take(), None);
    }

    #[test]
    fn unknown_kinds_are_refused() {
        assert!(serde_json::from_str::<FaultSpec>(r#"{"kind":"explode"}"#).is_err());
    }
}
