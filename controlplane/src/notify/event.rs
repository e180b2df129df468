//! The events: their types, severities, and the one JSON shape every
//! destination receives (docs/notifications.md documents each field).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// Every event the gateway emits. The dotted name is the wire `type`; the
/// part before the dot is its category, which a destination's filter may
/// name instead of listing types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    BudgetWarning,
    BudgetShaped,
    BudgetBlocked,
    KeyCreated,
    KeyRevoked,
    KeyExpired,
    KeyExpiring,
    UserCreated,
    UserDeactivated,
    DataPlaneConfigRejected,
    DataPlaneLost,
    RateLimitRefused,
    DestinationFailing,
    DestinationRecovered,
    Test,
}

impl EventType {
    pub const ALL: [EventType; 15] = [
        EventType::BudgetWarning,
        EventType::BudgetShaped,
        EventType::BudgetBlocked,
        EventType::KeyCreated,
        EventType::KeyRevoked,
        EventType::KeyExpired,
        EventType::KeyExpiring,
        EventType::UserCreated,
        EventType::UserDeactivated,
        EventType::DataPlaneConfigRejected,
        EventType::DataPlaneLost,
        EventType::RateLimitRefused,
        EventType::DestinationFailing,
        EventType::DestinationRecovered,
        EventType::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::BudgetWarning => "budget.warning",
            EventType::BudgetShaped => "budget.shaped",
            EventType::BudgetBlocked => "budget.blocked",
            EventType::KeyCreated => "key.created",
            EventType::KeyRevoked => "key.revoked",
            EventType::KeyExpired => "key.expired",
            EventType::KeyExpiring => "key.expiring",
            EventType::UserCreated => "user.created",
            EventType::UserDeactivated => "user.deactivated",
            EventType::DataPlaneConfigRejected => "dataplane.config_rejected",
            EventType::DataPlaneLost => "dataplane.lost",
            EventType::RateLimitRefused => "rate_limit.refused",
            EventType::DestinationFailing => "notification.destination_failing",
            EventType::DestinationRecovered => "notification.destination_recovered",
            EventType::Test => "notification.test",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn category(self) -> &'static str {
        let s = self.as_str();
        &s[..s.find('.').unwrap_or(s.len())]
    }

    pub fn severity(self) -> Severity {
        match self {
            EventType::BudgetBlocked | EventType::DataPlaneLost => Severity::Critical,
            EventType::BudgetShaped | EventType::DataPlaneConfigRejected | EventType::DestinationFailing => {
                Severity::High
            }
            EventType::BudgetWarning | EventType::KeyExpiring | EventType::RateLimitRefused => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// An event about to be written to the outbox.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventType,
    /// Two events with one key are one event: the second write is dropped.
    pub dedupe_key: String,
    pub subject: Value,
    pub detail: Value,
    pub occurred_at: DateTime<Utc>,
}

impl Event {
    pub fn new(kind: EventType, dedupe_key: impl Into<String>, subject: Value, detail: Value) -> Event {
        Event { kind, dedupe_key: dedupe_key.into(), subject, detail, occurred_at: Utc::now() }
    }

    /// The JSON every destination receives; `id` is the event's for good,
    /// so receivers deduplicate retries on it.
    pub fn payload(&self, id: &str) -> Value {
        json!({
            "id": id,
            "type": self.kind.as_str(),
            "version": "1",
            "occurred_at": rfc3339(self.occurred_at),
            "severity": self.kind.severity().as_str(),
            "subject": self.subject,
            "detail": self.detail,
        })
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Dollars for readers; the micro-USD integer beside it is the exact figure.
pub fn usd(micro: i64) -> f64 {
    micro as f64 / 1e6
}

/// A destination's event filter: type names and categories; empty is every
/// event. Parsed once, when the destination is written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter(Vec<String>);

impl Filter {
    pub fn parse(list: &str) -> Result<Filter, String> {
        let mut out: Vec<String> = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let known = EventType::parse(item).is_some() || EventType::ALL.iter().any(|t| t.category() == item);
            if !known {
                let cats: std::collections::BTreeSet<&str> = EventType::ALL.iter().map(|t| t.category()).collect();
                return Err(format!(
                    "unknown event {item:?}: give event types (such as budget.blocked) or categories ({})",
                    cats.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
            if !out.iter().any(|s| s == item) {
                out.push(item.to_owned());
            }
        }
        Ok(Filter(out))
    }

    pub fn matches(&self, t: EventType) -> bool {
        self.0.is_empty() || self.0.iter().any(|s| s == t.as_str() || s == t.category())
    }

    pub fn stored(&self) -> String {
        self.0.join(",")
    }

    pub fn items(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_name_and_has_a_category() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(!t.category().is_empty() && !t.category().contains('.'));
        }
        assert_eq!(EventType::BudgetBlocked.category(), "budget");
        assert_eq!(EventType::RateLimitRefused.category(), "rate_limit");
    }

    #[test]
    fn an_empty_filter_takes_every_event() {
        let f = Filter::parse(" , ").unwrap();
        assert!(EventType::ALL.iter().all(|t| f.matches(*t)));
    }

    #[test]
    fn a_filter_takes_its_categories_and_its_types_only() {
        let f = Filter::parse("budget, key.revoked").unwrap();
        assert!(f.matches(EventType::BudgetWarning));
        assert!(f.matches(EventType::BudgetBlocked));
        assert!(f.matches(EventType::KeyRevoked));
        assert!(!f.matches(EventType::KeyCreated));
        assert!(!f.matches(EventType::UserCreated));
        assert_eq!(f.stored(), "budget,key.revoked");
    }

    #[test]
    fn a_filter_naming_an_unknown_event_is_refused_with_the_categories() {
        let e = Filter::parse("budget,keys").unwrap_err();
        assert!(e.contains("\"keys\"") && e.contains("budget, dataplane, key"), "{e}");
    }

    #[test]
    fn the_payload_has_the_documented_fields() {
        let e = Event::new(EventType::KeyCreated, "k", json!({"kind": "key"}), json!({"a": 1}));
        let p = e.payload("evt_1");
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 7);
        for k in ["id", "type", "version", "occurred_at", "severity", "subject", "detail"] {
            assert!(keys.contains(&k), "{k} missing");
        }
        assert_eq!(p["version"], "1");
        assert_eq!(p["severity"], "info");
        assert!(p["occurred_at"].as_str().unwrap().ends_with('Z'));
    }
}
