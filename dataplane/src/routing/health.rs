//! What a data plane knows of each endpoint from its own calls: the circuit
//! breaker, the recent latency and throttling that adaptive routing weighs,
//! and the counters reported to the control plane.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ccag_proto::config::v1 as pb;
use ccag_proto::routing::{bucket_of, LATENCY_BUCKETS};

/// The throttle penalty halves in this time without new throttles.
const PENALTY_HALF_LIFE: Duration = Duration::from_secs(30);
/// Weight of a new latency sample in the moving average.
const LATENCY_ALPHA: f64 = 0.2;
/// An endpoint's latency estimate halves in this time without a new
/// sample, so that one that looked slow once is tried (and measured) again
/// rather than shunned for good.
const LATENCY_HALF_LIFE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Takes traffic; counts consecutive failures.
    Closed { failures: u32 },
    /// Takes none until `until`.
    Open { until: Instant, cooldown: Duration },
    /// One probe is out since `since`; its outcome closes or reopens the
    /// circuit. A probe whose outcome never came (its client left) is
    /// replaced after a cooldown.
    HalfOpen { cooldown: Duration, since: Instant },
}

/// May this endpoint take a request now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Yes,
    /// Yes, as the probe of an open circuit.
    Probe,
    /// Tried only after every admitted endpoint.
    Last,
}

struct Adaptive {
    /// Milliseconds to first byte, moving average; `None` before a sample.
    latency_ms: Option<f64>,
    latency_at: Instant,
    penalty: f64,
    penalty_at: Instant,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    throttles: AtomicU64,
    errors: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS],
}

pub struct Health {
    circuit: Mutex<Circuit>,
    adaptive: Mutex<Adaptive>,
    counters: Counters,
    /// Attempts since start, by [`AttemptResult`], for the metrics (the
    /// report counters restart at every report).
    totals: [AtomicU64; 4],
}

/// How an attempt ended, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    Ok = 0,
    Throttled = 1,
    Failed = 2,
    Refused = 3,
}

impl AttemptResult {
    pub const ALL: [AttemptResult; 4] =
        [AttemptResult::Ok, AttemptResult::Throttled, AttemptResult::Failed, AttemptResult::Refused];

    pub fn as_str(self) -> &'static str {
        match self {
            AttemptResult::Ok => "ok",
            AttemptResult::Throttled => "throttled",
            AttemptResult::Failed => "failed",
            AttemptResult::Refused => "refused",
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Health {
            // Known from the start: a new endpoint takes traffic until its
            // own calls say otherwise.
            circuit: Mutex::new(Circuit::Closed { failures: 0 }),
            adaptive: Mutex::new(Adaptive {
                latency_ms: None,
                latency_at: Instant::now(),
                penalty: 0.0,
                penalty_at: Instant::now(),
            }),
            counters: Counters::default(),
            totals: Default::default(),
        }
    }
}

/// How one attempt ended, as far as the endpoint's health goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// The first byte arrived after this long.
    Answered(Duration),
    Throttled,
    Failed,
    /// Refused for a reason of the request or the model, not the endpoint.
    Neutral,
}

impl Health {
    /// Where the endpoint goes in a request's order (nothing changes).
    pub fn admission(&self, now: Instant) -> Admission {
        match *self.circuit.lock().unwrap_or_else(|e| e.into_inner()) {
            Circuit::Closed { .. } => Admission::Yes,
            Circuit::Open { until, .. } if now >= until => Admission::Probe,
            Circuit::HalfOpen { cooldown, since } if now >= since + cooldown => Admission::Probe,
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => Admission::Last,
        }
    }

    /// Claims the probe of a circuit whose cooldown is over; false when
    /// another request holds it.
    pub fn begin_probe(&self, now: Instant) -> bool {
        let mut c = self.circuit.lock().unwrap_or_else(|e| e.into_inner());
        match *c {
            Circuit::Closed { .. } => true,
            Circuit::Open { until, cooldown } if now >= until => {
                *c = Circuit::HalfOpen { cooldown, since: now };
                true
            }
            Circuit::HalfOpen { cooldown, since } if now >= since + cooldown => {
                *c = Circuit::HalfOpen { cooldown, since: now };
                true
            }
            Circuit::Open { .. } | Circuit::HalfOpen { .. } => false,
        }
    }

    /// Records an attempt's outcome; `threshold` failures in a row open the
    /// circuit for `cooldown` (doubled, up to ten times, while probes fail).
    pub fn record(&self, outcome: Attempted, threshold: u32, cooldown: Duration, now: Instant) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let result = match outcome {
            Attempted::Answered(_) => AttemptResult::Ok,
            Attempted::Throttled => AttemptResult::Throttled,
            Attempted::Failed => AttemptResult::Failed,
            Attempted::Neutral => AttemptResult::Refused,
        };
        self.totals[result as usize].fetch_add(1, Ordering::Relaxed);
        match outcome {
            Attempted::Answered(t) => {
                let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
                self.counters.latency[bucket_of(ms)].fetch_add(1, Ordering::Relaxed);
                let mut a = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
                let sample = t.as_secs_f64() * 1000.0;
                a.latency_ms = Some(match a.latency_ms {
                    None => sample,
                    Some(avg) => avg + LATENCY_ALPHA * (sample - avg),
                });
                a.latency_at = now;
                drop(a);
                *self.circuit.lock().unwrap_or_else(|e| e.into_inner()) = Circuit::Closed { failures: 0 };
            }
            Attempted::Throttled | Attempted::Failed => {
                if outcome == Attempted::Throttled {
                    self.counters.throttles.fetch_add(1, Ordering::Relaxed);
                    let mut a = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
                    a.penalty = decayed(a.penalty, a.penalty_at, now) + 1.0;
                    a.penalty_at = now;
                } else {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                }
                let mut c = self.circuit.lock().unwrap_or_else(|e| e.into_inner());
                *c = match *c {
                    Circuit::Closed { failures } if failures + 1 >= threshold.max(1) => {
                        Circuit::Open { until: now + cooldown, cooldown }
                    }
                    Circuit::Closed { failures } => Circuit::Closed { failures: failures + 1 },
                    Circuit::HalfOpen { cooldown: last, .. } => {
                        let next = (last * 2).min(cooldown * 10);
                        Circuit::Open { until: now + next, cooldown: next }
                    }
                    open @ Circuit::Open { .. } => open,
                };
            }
            Attempted::Neutral => {}
        }
    }

    /// The cost adaptive routing weighs: recent latency, multiplied up by
    /// recent throttling. An endpoint without samples looks fast, so that it
    /// gets tried.
    pub fn cost(&self, now: Instant) -> f64 {
        let a = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
        let latency = a.latency_ms.map_or(1.0, |l| decayed_by(l, a.latency_at, now, LATENCY_HALF_LIFE)).max(1.0);
        latency * (1.0 + 4.0 * decayed(a.penalty, a.penalty_at, now))
    }

    /// Attempts since start, indexed by [`AttemptResult`].
    pub fn totals(&self) -> [u64; 4] {
        self.totals.each_ref().map(|t| t.load(Ordering::Relaxed))
    }

    pub fn circuit(&self) -> Circuit {
        *self.circuit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the counters since the last report (they restart from zero).
    pub fn take_report(&self, endpoint_id: &str, until_ms: u64) -> Option<pb::EndpointReport> {
        let c = &self.counters;
        let requests = c.requests.swap(0, Ordering::Relaxed);
        if requests == 0 {
            return None;
        }
        let circuit = match self.circuit() {
            Circuit::Closed { .. } => pb::CircuitState::Closed,
            Circuit::Open { .. } => pb::CircuitState::Open,
            Circuit::HalfOpen { .. } => pb::CircuitState::HalfOpen,
        };
        Some(pb::EndpointReport {
            endpoint_id: endpoint_id.to_owned(),
            requests,
            throttles: c.throttles.swap(0, Ordering::Relaxed),
            errors: c.errors.swap(0, Ordering::Relaxed),
            latency_buckets: c.latency.iter().map(|b| b.swap(0, Ordering::Relaxed)).collect(),
            circuit: circuit as i32,
            until_ms,
        })
    }

    /// Puts back the counters of a report that did not arrive.
    pub fn restore(&self, r: &pb::EndpointReport) {
        let c = &self.counters;
        c.requests.fetch_add(r.requests, Ordering::Relaxed);
        c.throttles.fetch_add(r.throttles, Ordering::Relaxed);
        c.errors.fetch_add(r.errors, Ordering::Relaxed);
        for (b, n) in c.latency.iter().zip(&r.latency_buckets) {
            b.fetch_add(*n, Ordering::Relaxed);
        }
    }
}

fn decayed(penalty: f64, since: Instant, now: Instant) -> f64 {
    decayed_by(penalty, since, now, PENALTY_HALF_LIFE)
}

fn decayed_by(value: f64, since: Instant, now: Instant, half_life: Duration) -> f64 {
    if value <= 0.0 {
        return 0.0;
    }
    let halves = now.saturating_duration_since(since).as_secs_f64() / half_life.as_secs_f64();
    value * 0.5f64.powf(halves)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL: Duration = Duration::from_secs(30);

    #[test]
    fn consecutive_failures_open_the_circuit_and_a_success_in_between_resets_them() {
        let h = Health::default();
        let t = Instant::now();
        h.record(Attempted::Failed, 3, COOL, t);
        h.record(Attempted::Failed, 3, COOL, t);
        h.record(Attempted::Answered(Duration::from_millis(5)), 3, COOL, t);
        h.record(Attempted::Failed, 3, COOL, t);
        h.record(Attempted::Failed, 3, COOL, t);
        assert_eq!(h.admission(t), Admission::Yes);
        h.record(Attempted::Throttled, 3, COOL, t);
        assert_eq!(h.admission(t), Admission::Last);
    }

    #[test]
    fn an_open_circuit_lets_one_probe_through_after_its_cooldown() {
        let h = Health::default();
        let t = Instant::now();
        h.record(Attempted::Failed, 1, COOL, t);
        assert_eq!(h.admission(t), Admission::Last);
        assert_eq!(h.admission(t + COOL), Admission::Probe);
        assert!(h.begin_probe(t + COOL));
        assert!(!h.begin_probe(t + COOL), "one probe at a time");
        assert_eq!(h.admission(t + COOL), Admission::Last);
        h.record(Attempted::Answered(Duration::from_millis(5)), 1, COOL, t + COOL);
        assert_eq!(h.admission(t + COOL), Admission::Yes);
    }

    #[test]
    fn a_failed_probe_reopens_the_circuit_for_longer() {
        let h = Health::default();
        let t = Instant::now();
        h.record(Attempted::Failed, 1, COOL, t);
        assert!(h.begin_probe(t + COOL));
        h.record(Attempted::Failed, 1, COOL, t + COOL);
        assert_eq!(h.admission(t + COOL + COOL), Admission::Last);
        assert_eq!(h.admission(t + COOL + COOL * 2), Admission::Probe);
    }

    #[test]
    fn a_probe_that_never_reported_is_replaced_after_a_cooldown() {
        let h = Health::default();
        let t = Instant::now();
        h.record(Attempted::Failed, 1, COOL, t);
        assert!(h.begin_probe(t + COOL));
        assert!(!h.begin_probe(t + COOL + COOL / 2));
        assert!(h.begin_probe(t + COOL * 2));
    }

    #[test]
    fn neutral_refusals_leave_the_circuit_alone() {
        let h = Health::default();
        let t = Instant::now();
        for _ in 0..10 {
            h.record(Attempted::Neutral, 1, COOL, t);
        }
        assert_eq!(h.admission(t), Admission::Yes);
    }

    #[test]
    fn throttling_raises_the_cost_and_it_decays() {
        let h = Health::default();
        let t = Instant::now();
        h.record(Attempted::Answered(Duration::from_millis(100)), 5, COOL, t);
        let calm = h.cost(t);
        h.record(Attempted::Throttled, 5, COOL, t);
        assert!(h.cost(t) > 4.0 * calm);
        assert!(h.cost(t + Duration::from_secs(300)) < 1.01 * calm);
    }

    #[test]
    fn a_slow_endpoint_looks_faster_as_its_estimate_ages() {
        let h = Health::default();
        let t = Instant::now();
        h.record(Attempted::Answered(Duration::from_millis(800)), 5, COOL, t);
        assert!(h.cost(t) > 700.0);
        assert!(h.cost(t + Duration::from_secs(120)) < 100.0);
    }

    #[test]
    fn a_report_takes_the_counters_and_a_failed_one_puts_them_back() {
        let h = Health::default();
        let t = Instant::now();
        h.record(Attempted::Answered(Duration::from_millis(40)), 5, COOL, t);
        h.record(Attempted::Throttled, 5, COOL, t);
        let r = h.take_report("ep", 1).unwrap();
        assert_eq!((r.requests, r.throttles, r.errors), (2, 1, 0));
        assert_eq!(r.latency_buckets.iter().sum::<u64>(), 1);
        assert!(h.take_report("ep", 2).is_none());
        h.restore(&r);
        assert_eq!(h.take_report("ep", 3).unwrap().requests, 2);
    }
}
