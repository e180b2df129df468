//! Endpoints with their health, and the routing words.

use ccag_proto::admin::v1 as pb;
use serde_json::{Map, Value};

use super::{finish, list_table, new_table, table_cell, to_json, Record, Resource};

pub fn strategy_name(v: i32) -> String {
    match pb::RoutingStrategy::try_from(v) {
        Ok(pb::RoutingStrategy::Unspecified) => "default".into(),
        Ok(pb::RoutingStrategy::Fallback) => "fallback".into(),
        Ok(pb::RoutingStrategy::RoundRobin) => "round-robin".into(),
        Ok(pb::RoutingStrategy::Sticky) => "sticky".into(),
        Ok(pb::RoutingStrategy::Adaptive) => "adaptive".into(),
        Err(_) => format!("unknown({v})"),
    }
}

pub fn credentials_name(v: i32) -> String {
    match pb::EndpointCredentials::try_from(v) {
        Ok(pb::EndpointCredentials::Unspecified) => "default".into(),
        Ok(pb::EndpointCredentials::AssumeRole) => "assume-role".into(),
        Ok(pb::EndpointCredentials::ApiKey) => "api-key".into(),
        Err(_) => format!("unknown({v})"),
    }
}

pub fn scope_name(v: i32) -> String {
    match pb::InferenceScope::try_from(v) {
        Ok(pb::InferenceScope::Unspecified) => "geo".into(),
        Ok(pb::InferenceScope::Global) => "global".into(),
        Ok(pb::InferenceScope::Explicit) => "explicit".into(),
        Ok(pb::InferenceScope::Regional) => "regional".into(),
        Err(_) => format!("unknown({v})"),
    }
}

/// "" when no data plane reported one.
pub fn circuit_name(v: i32) -> String {
    match pb::CircuitState::try_from(v) {
        Ok(pb::CircuitState::Unspecified) => String::new(),
        Ok(pb::CircuitState::Closed) => "closed".into(),
        Ok(pb::CircuitState::Open) => "open".into(),
        Ok(pb::CircuitState::HalfOpen) => "half-open".into(),
        Err(_) => format!("unknown({v})"),
    }
}

impl Resource for pb::Endpoint {
    const PLURAL: &'static str = "endpoints";
    const COLUMNS: &'static [&'static str] = &[
        "name",
        "region",
        "credentials",
        "priority",
        "weight",
        "enabled",
        "circuit",
        "requests",
        "throttles",
        "errors",
        "p50_ms",
        "p99_ms",
    ];
    fn record(&self) -> Record {
        let mut arns: Vec<(&String, &String)> = self.profile_arns.iter().collect();
        arns.sort();
        let arns: Map<String, Value> = arns.into_iter().map(|(m, a)| (m.clone(), Value::String(a.clone()))).collect();
        let s = self.stats.clone().unwrap_or_default();
        Record::new()
            .field("id", self.id.clone())
            .field("name", self.name.clone())
            .field("region", self.region.clone())
            .field("endpoint_url", self.endpoint_url.clone())
            .field("credentials", credentials_name(self.credentials))
            .field("role_arn", self.role_arn.clone())
            .field("external_id", self.external_id.clone())
            .field("per_user_sessions", self.per_user_sessions)
            .field("has_api_key", self.has_api_key)
            .field("enabled", self.enabled)
            .field("priority", self.priority)
            .field("weight", self.weight)
            .field("scope", scope_name(self.scope))
            .field("scope_prefix", self.scope_prefix.clone())
            .field("models", Value::Array(self.models.iter().cloned().map(Value::String).collect()))
            .field("profile_arns", Value::Object(arns))
            .field("stats_window_secs", s.window_secs)
            .field("circuit", circuit_name(s.circuit))
            .field("requests", s.requests)
            .field("throttles", s.throttles)
            .field("errors", s.errors)
            .field("p50_ms", s.p50_ms)
            .field("p99_ms", s.p99_ms)
            .field("reported_at", s.reported_at)
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

/// `ccag endpoints list`: the health columns, with what they measure.
pub fn render_endpoints(items: &[pb::Endpoint], window_secs: u32, json: bool) -> String {
    let recs: Vec<Record> = items.iter().map(Resource::record).collect();
    if json {
        return to_json(&recs);
    }
    if recs.is_empty() {
        return list_table(pb::Endpoint::COLUMNS, &recs, pb::Endpoint::PLURAL);
    }
    let mut t = new_table();
    t.set_header(
        pb::Endpoint::COLUMNS.iter().map(|c| c.strip_suffix("_ms").unwrap_or(c).to_uppercase()).collect::<Vec<_>>(),
    );
    for r in &recs {
        t.add_row(pb::Endpoint::COLUMNS.iter().map(|c| table_cell(r, c)).collect::<Vec<_>>());
    }
    let mut out = finish(t);
    out.push_str(&format!(
        "Calls in the last {} as the data planes reported them (failed-over attempts included); \
         P50 and P99: time to first byte in ms.\n",
        span(window_secs)
    ));
    out
}

fn span(secs: u32) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> pb::Endpoint {
        pb::Endpoint {
            id: "ep_1".into(),
            name: "eu-one".into(),
            region: "eu-west-1".into(),
            role_arn: "arn:aws:iam::111111111111:role/x".into(),
            enabled: true,
            priority: 1,
            weight: 3,
            credentials: pb::EndpointCredentials::AssumeRole as i32,
            models: vec!["claude-sonnet-4-5".into()],
            stats: Some(pb::EndpointStats {
                window_secs: 900,
                requests: 120,
                throttles: 4,
                errors: 1,
                p50_ms: 250,
                p99_ms: 2000,
                circuit: pb::CircuitState::HalfOpen as i32,
                reported_at: "2026-12-08T10:00:00Z".into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_list_shows_health_in_its_own_columns() {
        let out = render_endpoints(&[endpoint()], 900, false);
        let header = out.lines().nth(1).unwrap();
        for h in [
            "NAME",
            "REGION",
            "CREDENTIALS",
            "PRIORITY",
            "WEIGHT",
            "ENABLED",
            "CIRCUIT",
            "REQUESTS",
            "THROTTLES",
            "ERRORS",
            "P50",
            "P99",
        ] {
            assert!(header.contains(h), "{h}: {out}");
        }
        assert!(!header.contains("P50_MS"), "{out}");
        for cell in ["eu-one", "assume-role", "half-open", "120", "2000"] {
            assert!(out.contains(cell), "{cell}: {out}");
        }
        assert!(out.contains("last 15 min"), "{out}");
        assert_eq!(render_endpoints(&[], 900, false), "No endpoints found.\n");
    }

    #[test]
    fn json_keeps_every_field_and_never_a_key() {
        let v: Value = serde_json::from_str(&render_endpoints(&[endpoint()], 900, true)).unwrap();
        let e = &v[0];
        assert_eq!(e["credentials"], "assume-role");
        assert_eq!(e["has_api_key"], false);
        assert_eq!(e["weight"], 3);
        assert_eq!(e["models"], serde_json::json!(["claude-sonnet-4-5"]));
        assert_eq!((e["requests"].as_u64(), e["p99_ms"].as_u64()), (Some(120), Some(2000)));
        assert!(e.get("api_key").is_none());
    }

    #[test]
    fn routing_words() {
        assert_eq!(strategy_name(pb::RoutingStrategy::RoundRobin as i32), "round-robin");
        assert_eq!(strategy_name(0), "default");
        assert_eq!(circuit_name(0), "");
        assert_eq!(scope_name(pb::InferenceScope::Explicit as i32), "explicit");
        assert_eq!(span(900), "15 min");
        assert_eq!(span(3600), "1 h");
        assert_eq!(span(90), "90 s");
    }
}
