//! The events of each kind, built from the rows they are about. Callers
//! write them with `emit` in the transaction of their change.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::event::{rfc3339, usd, Event, EventType};
use crate::store::entities::{api_keys, dataplanes, notification_destinations as destinations, users};

fn opt_time(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| Value::String(rfc3339(t))).unwrap_or(Value::Null)
}

fn key_subject(k: &api_keys::Model) -> Value {
    json!({"kind": "key", "id": k.id, "name": k.name, "prefix": k.prefix})
}

fn key_detail(k: &api_keys::Model, owner_email: &str) -> Value {
    json!({
        "user_id": k.user_id,
        "user_email": owner_email,
        "team_id": k.team_id,
        "expires_at": opt_time(k.expires_at),
    })
}

pub fn key_created(k: &api_keys::Model, owner_email: &str, actor: &str) -> Event {
    let mut detail = key_detail(k, owner_email);
    detail["by"] = json!(actor);
    Event::new(EventType::KeyCreated, format!("key.created:{}", k.id), key_subject(k), detail)
}

pub fn key_revoked(k: &api_keys::Model, owner_email: &str, actor: &str) -> Event {
    let mut detail = key_detail(k, owner_email);
    detail["by"] = json!(actor);
    Event::new(EventType::KeyRevoked, format!("key.revoked:{}", k.id), key_subject(k), detail)
}

/// Expired (`expires_at` passed) or expiring within the week; once per
/// key and expiry time, so a changed expiry is reported again.
pub fn key_expiry(k: &api_keys::Model, owner_email: &str, now: DateTime<Utc>) -> Option<Event> {
    let at = k.expires_at?;
    let (kind, name) =
        if at <= now { (EventType::KeyExpired, "key.expired") } else { (EventType::KeyExpiring, "key.expiring") };
    let mut detail = key_detail(k, owner_email);
    if at > now {
        detail["expires_in_secs"] = json!((at - now).num_seconds());
    }
    Some(Event::new(kind, format!("{name}:{}:{}", k.id, at.timestamp()), key_subject(k), detail))
}

fn user_subject(u: &users::Model) -> Value {
    json!({"kind": "user", "id": u.id, "email": u.email, "name": u.display_name})
}

pub fn user_created(u: &users::Model, actor: &str) -> Event {
    Event::new(
        EventType::UserCreated,
        format!("user.created:{}", u.id),
        user_subject(u),
        json!({"role": u.role, "by": actor}),
    )
}

/// Once per deactivation: reactivating and deactivating again reports again.
pub fn user_deactivated(u: &users::Model, actor: &str, at: DateTime<Utc>) -> Event {
    Event::new(
        EventType::UserDeactivated,
        format!("user.deactivated:{}:{}", u.id, at.timestamp_millis()),
        user_subject(u),
        json!({"by": actor}),
    )
}

/// A threshold crossing of the budgets' outbox row `event_id`.
pub struct Crossing<'a> {
    pub event_id: &'a str,
    pub budget_id: &'a str,
    pub scope: &'a str,
    pub subject_id: &'a str,
    pub subject_name: &'a str,
    pub period: &'a str,
    pub period_start: i64,
    pub threshold_percent: u32,
    pub action: &'a str,
    pub limit_micro_usd: i64,
    pub spend_micro_usd: i64,
}

pub fn budget_crossing(c: &Crossing<'_>) -> Option<Event> {
    let kind = match c.action {
        "notify" => EventType::BudgetWarning,
        "shape" => EventType::BudgetShaped,
        "block" => EventType::BudgetBlocked,
        _ => return None,
    };
    let percent = if c.limit_micro_usd > 0 {
        (c.spend_micro_usd as f64 * 10_000.0 / c.limit_micro_usd as f64).round() / 100.0
    } else {
        100.0
    };
    let start = chrono::TimeZone::timestamp_opt(&Utc, c.period_start, 0).single().map(rfc3339);
    let subject = match c.scope {
        "team" => json!({"kind": "team", "id": c.subject_id, "name": c.subject_name}),
        _ => json!({"kind": "user", "id": c.subject_id, "email": c.subject_name}),
    };
    Some(Event::new(
        kind,
        format!("budget:{}", c.event_id),
        subject,
        json!({
            "budget_id": c.budget_id,
            "period": c.period,
            "period_start": start,
            "threshold_percent": c.threshold_percent,
            "action": c.action,
            "limit_micro_usd": c.limit_micro_usd,
            "limit_usd": usd(c.limit_micro_usd),
            "spend_micro_usd": c.spend_micro_usd,
            "spend_usd": usd(c.spend_micro_usd),
            "percent": percent,
        }),
    ))
}

/// A key's requests refused for rate limits; at most one per key and minute.
pub fn rate_limited(k: &api_keys::Model, owner_email: &str, minute: i64, refused: u64) -> Event {
    let mut detail = key_detail(k, owner_email);
    detail["refused_in_minute"] = json!(refused);
    detail["minute"] = json!(chrono::TimeZone::timestamp_opt(&Utc, minute * 60, 0).single().map(rfc3339));
    Event::new(EventType::RateLimitRefused, format!("rate_limit:{}:{minute}", k.id), key_subject(k), detail)
}

pub fn config_rejected(dataplane: &str, epoch: &str, revision: u64, error: &str) -> Event {
    Event::new(
        EventType::DataPlaneConfigRejected,
        format!("dataplane.config_rejected:{dataplane}:{epoch}:{revision}"),
        json!({"kind": "dataplane", "id": dataplane}),
        json!({"revision": revision, "epoch": epoch, "error": error}),
    )
}

pub fn dataplane_lost(d: &dataplanes::Model, now: DateTime<Utc>) -> Event {
    Event::new(
        EventType::DataPlaneLost,
        format!("dataplane.lost:{}:{}", d.id, d.connection),
        json!({"kind": "dataplane", "id": d.id, "address": d.address}),
        json!({
            "last_seen_at": rfc3339(d.lease_until),
            "lost_for_secs": (now - d.lease_until).num_seconds(),
            "replica": d.replica,
            "acked_revision": d.acked_revision,
        }),
    )
}

fn destination_subject(d: &destinations::Model) -> Value {
    json!({"kind": "destination", "id": d.id, "name": d.name, "destination_kind": d.kind})
}

pub fn destination_failing(d: &destinations::Model, since: DateTime<Utc>, now: DateTime<Utc>) -> Event {
    Event::new(
        EventType::DestinationFailing,
        format!("destination.failing:{}:{}", d.id, since.timestamp()),
        destination_subject(d),
        json!({"failing_since": rfc3339(since), "failing_for_secs": (now - since).num_seconds(), "last_error": d.last_error}),
    )
}

pub fn destination_recovered(d: &destinations::Model, now: DateTime<Utc>) -> Event {
    let since = d.failing_since.unwrap_or(now);
    Event::new(
        EventType::DestinationRecovered,
        format!("destination.recovered:{}:{}", d.id, since.timestamp()),
        destination_subject(d),
        json!({"failing_since": rfc3339(since), "recovered_at": rfc3339(now)}),
    )
}

/// The synthetic event of `ccag notifications test`; never stored.
pub fn test_event(d: &destinations::Model, actor: &str) -> Event {
    Event::new(
        EventType::Test,
        String::new(),
        destination_subject(d),
        json!({"message": "a test event from the CCAG gateway", "by": actor}),
    )
}
