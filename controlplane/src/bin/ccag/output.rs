//! Rendering: JSON objects with snake_case fields in a stable order, and
//! comfy-table tables.

use ccag_proto::admin::v1 as pb;
use comfy_table::{presets, ContentArrangement, Table};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// An object whose fields keep their order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Record(pub Vec<(&'static str, Value)>);

impl Record {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn field(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.0.push((name, value.into()));
        self
    }

    /// Puts `name` first (used for a plaintext key or token).
    pub fn prepend(mut self, name: &'static str, value: impl Into<Value>) -> Self {
        self.0.insert(0, (name, value.into()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising a Record or Vec<Record> of serde_json values cannot fail.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    s.push('\n');
    s
}

// ------------------------------------------------------------------ enums

pub fn role_name(v: i32) -> String {
    match pb::Role::try_from(v) {
        Ok(pb::Role::Admin) => "admin".into(),
        Ok(pb::Role::Member) => "member".into(),
        Ok(pb::Role::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({v})"),
    }
}

pub fn user_status_name(v: i32) -> String {
    match pb::UserStatus::try_from(v) {
        Ok(pb::UserStatus::Active) => "active".into(),
        Ok(pb::UserStatus::Disabled) => "disabled".into(),
        Ok(pb::UserStatus::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({v})"),
    }
}

pub fn key_status_name(v: i32) -> String {
    match pb::KeyStatus::try_from(v) {
        Ok(pb::KeyStatus::Active) => "active".into(),
        Ok(pb::KeyStatus::Disabled) => "disabled".into(),
        Ok(pb::KeyStatus::Revoked) => "revoked".into(),
        Ok(pb::KeyStatus::Unspecified) => "unspecified".into(),
        Err(_) => format!("unknown({v})"),
    }
}

// ------------------------------------------------------------------ records

mod endpoints;
pub use endpoints::{render_endpoints, strategy_name};

/// Something that prints as an object, and as a row of a list.
pub trait Resource {
    /// Plural noun, e.g. "users", for "No users found.".
    const PLURAL: &'static str;
    /// The fields a list table shows.
    const COLUMNS: &'static [&'static str];
    fn record(&self) -> Record;
}

/// Names in the order of their ids, the id standing in for a missing name
/// (a server older than the names, or a member without an email).
fn named(names: &[String], ids: &[String]) -> Vec<String> {
    ids.iter().enumerate().map(|(i, id)| names.get(i).filter(|n| !n.is_empty()).unwrap_or(id).clone()).collect()
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().cloned().map(Value::String).collect())
}

impl Resource for pb::Principal {
    const PLURAL: &'static str = "principals";
    const COLUMNS: &'static [&'static str] = &["user_id", "email", "role", "via"];
    fn record(&self) -> Record {
        Record::new()
            .field("user_id", self.user_id.clone())
            .field("email", self.email.clone())
            .field("role", role_name(self.role))
            .field("via", self.via.clone())
    }
}

impl Resource for pb::User {
    const PLURAL: &'static str = "users";
    const COLUMNS: &'static [&'static str] = &["id", "email", "display_name", "role", "status", "teams", "created_at"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("email", self.email.clone())
            .field("display_name", self.display_name.clone())
            .field("role", role_name(self.role))
            .field("status", user_status_name(self.status))
            .field("subject", self.subject.clone())
            .field("team_ids", strings(&self.team_ids))
            .field("teams", strings(&named(&self.team_names, &self.team_ids)))
            .field("rpm", self.rpm)
            .field("tpm", self.tpm)
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

impl Resource for pb::Team {
    const PLURAL: &'static str = "teams";
    const COLUMNS: &'static [&'static str] =
        &["id", "name", "description", "member_rpm", "member_tpm", "members", "routing", "endpoints"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("name", self.name.clone())
            .field("description", self.description.clone())
            .field("member_rpm", self.member_rpm)
            .field("member_tpm", self.member_tpm)
            .field("rpm", self.rpm)
            .field("tpm", self.tpm)
            .field("member_ids", strings(&self.member_ids))
            .field("members", strings(&named(&self.member_emails, &self.member_ids)))
            // Empty lists: every enabled endpoint, as the table says.
            .field("routing", strategy_name(self.routing))
            .field("endpoint_ids", strings(&self.endpoint_ids))
            .field("endpoints", strings(&named(&self.endpoint_names, &self.endpoint_ids)))
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

impl Resource for pb::ApiKey {
    const PLURAL: &'static str = "keys";
    const COLUMNS: &'static [&'static str] =
        &["id", "name", "prefix", "user", "team", "status", "rpm", "tpm", "expires_at"];
    fn record(&self) -> Record {
        let or_id = |name: &str, id: &str| if name.is_empty() { id.to_owned() } else { name.to_owned() };
        Record::new()
            .field("id", self.id.clone())
            .field("name", self.name.clone())
            .field("prefix", self.prefix.clone())
            .field("user_id", self.user_id.clone())
            .field("user", or_id(&self.user_email, &self.user_id))
            .field("team_id", self.team_id.clone())
            .field("team", or_id(&self.team_name, &self.team_id))
            .field("status", key_status_name(self.status))
            .field("rpm", self.rpm)
            .field("tpm", self.tpm)
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
            .field("last_used_at", self.last_used_at.clone())
            .field("expires_at", self.expires_at.clone())
    }
}

impl Resource for pb::Model {
    const PLURAL: &'static str = "models";
    const COLUMNS: &'static [&'static str] = &["id", "anthropic_id", "bedrock_id", "display_name", "listed"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("anthropic_id", self.anthropic_id.clone())
            .field("bedrock_id", self.bedrock_id.clone())
            .field("display_name", self.display_name.clone())
            .field("listed", self.listed)
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

pub fn model_source_name(v: i32) -> &'static str {
    match pb::ModelSource::try_from(v) {
        Ok(pb::ModelSource::BuiltIn) => "built-in",
        Ok(pb::ModelSource::BuiltInMapped) => "built-in, mapped",
        Ok(pb::ModelSource::Mapping) => "mapping",
        _ => "unknown",
    }
}

impl Resource for pb::CatalogueModel {
    const PLURAL: &'static str = "models";
    const COLUMNS: &'static [&'static str] =
        &["id", "aliases", "bedrock_id", "source", "listed", "input_usd_per_mtok", "output_usd_per_mtok"];
    fn record(&self) -> Record {
        let usd = |m: i64| m as f64 / 1e6;
        Record::new()
            .field("id", self.id.clone())
            .field("aliases", strings(&self.aliases))
            .field("display_name", self.display_name.clone())
            .field("bedrock_id", self.bedrock_id.clone())
            .field("source", model_source_name(self.source))
            .field("listed", self.listed)
            .field("mapping_id", self.mapping_id.clone())
            .field("price_model", self.price_model.clone())
            .field("input_usd_per_mtok", float(usd(self.input_micro_usd_per_mtok)))
            .field("input_micro_usd_per_mtok", self.input_micro_usd_per_mtok)
            .field("output_usd_per_mtok", float(usd(self.output_micro_usd_per_mtok)))
            .field("output_micro_usd_per_mtok", self.output_micro_usd_per_mtok)
            .field("cache_write_micro_usd_per_mtok", self.cache_write_micro_usd_per_mtok)
            .field("cache_write_1h_micro_usd_per_mtok", self.cache_write_1h_micro_usd_per_mtok)
            .field("cache_read_micro_usd_per_mtok", self.cache_read_micro_usd_per_mtok)
    }
}

/// `ccag models list`: JSON `{region, endpoint, geo, models}`; text: where
/// the Bedrock ids point, then the table.
pub fn render_catalogue(resp: &pb::ListCatalogueResponse, json: bool) -> String {
    let recs: Vec<Record> = resp.models.iter().map(Resource::record).collect();
    if json {
        let models = Value::Array(recs.into_iter().map(Into::into).collect());
        return to_json(
            &Record::new()
                .field("region", resp.region.clone())
                .field("endpoint", resp.endpoint.clone())
                .field("geo", resp.geo.clone())
                .field("models", models),
        );
    }
    let mut out = if resp.region.is_empty() {
        format!(
            "No endpoint configured: each data plane calls Bedrock in its own AWS region; \
             the ids below assume the inference-profile geo {}.\n",
            resp.geo
        )
    } else {
        let profiles = if resp.geo.is_empty() {
            "in-region foundation models".to_owned()
        } else {
            format!("inference-profile geo {}", resp.geo)
        };
        format!("Bedrock ids for region {} (endpoint {}), {profiles}.\n", resp.region, resp.endpoint)
    };
    out.push_str("Prices are per million tokens.\n");
    out.push_str(&list_table(pb::CatalogueModel::COLUMNS, &recs, pb::CatalogueModel::PLURAL));
    let unpriced: Vec<&str> = resp.models.iter().filter(|m| m.price_model.is_empty()).map(|m| m.id.as_str()).collect();
    if !unpriced.is_empty() {
        out.push_str(&format!(
            "No price set for {} (charged the unpriced rates): ccag prices set MODEL ...\n",
            unpriced.join(", ")
        ));
    }
    out
}

impl Resource for pb::Setting {
    const PLURAL: &'static str = "settings";
    const COLUMNS: &'static [&'static str] = &["key", "value", "updated_at"];
    fn record(&self) -> Record {
        Record::new()
            .field("key", self.key.clone())
            .field("value", self.value.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

/// The before/after snapshots as JSON values when they parse, else strings.
fn embedded_json(s: &str) -> Value {
    if s.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

impl Resource for pb::AuditEntry {
    const PLURAL: &'static str = "audit entries";
    const COLUMNS: &'static [&'static str] = &["at", "by", "action", "resource_type", "resource_id"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("at", self.at.clone())
            .field("actor", self.actor.clone())
            .field("actor_email", self.actor_email.clone())
            // Who, as a person reads it: the email, else `system` or `idp:NAME`.
            .field("by", if self.actor_email.is_empty() { self.actor.clone() } else { self.actor_email.clone() })
            .field("action", self.action.clone())
            .field("resource_type", self.resource_type.clone())
            .field("resource_id", self.resource_id.clone())
            .field("before_json", embedded_json(&self.before_json))
            .field("after_json", embedded_json(&self.after_json))
    }
}

impl Resource for pb::ApiToken {
    const PLURAL: &'static str = "API tokens";
    const COLUMNS: &'static [&'static str] = &["id", "name", "user", "prefix", "revoked", "expires_at", "last_used_at"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("name", self.name.clone())
            .field("user_id", self.user_id.clone())
            .field("user", if self.user_email.is_empty() { self.user_id.clone() } else { self.user_email.clone() })
            .field("prefix", self.prefix.clone())
            .field("revoked", self.revoked)
            .field("created_at", self.created_at.clone())
            .field("expires_at", self.expires_at.clone())
            .field("last_used_at", self.last_used_at.clone())
    }
}

impl Resource for pb::Status {
    const PLURAL: &'static str = "statuses";
    const COLUMNS: &'static [&'static str] = &["version", "database", "started_at", "users", "teams", "active_keys"];
    fn record(&self) -> Record {
        Record::new()
            .field("version", self.version.clone())
            .field("database", self.database.clone())
            .field("started_at", self.started_at.clone())
            .field("users", self.users)
            .field("teams", self.teams)
            .field("active_keys", self.active_keys)
            .field("replica", self.replica.clone())
            .field("config_epoch", self.config_epoch.clone())
            .field("config_version", self.config_version)
            .field("unpriced_requests", self.unpriced_requests)
            .field("unpriced_models", Value::Array(self.unpriced_models.iter().cloned().map(Value::String).collect()))
            .field("dataplanes", Value::Array(self.dataplanes.iter().map(|d| d.record().into()).collect()))
            .field("leases", Value::Array(self.leases.iter().map(|l| l.record().into()).collect()))
            .field("dead_deliveries", self.dead_deliveries)
            .field(
                "failing_destinations",
                Value::Array(self.failing_destinations.iter().map(|d| d.record().into()).collect()),
            )
    }
}

impl Resource for pb::FailingDestination {
    const PLURAL: &'static str = "failing destinations";
    const COLUMNS: &'static [&'static str] = &["name", "failing_since", "last_error"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("name", self.name.clone())
            .field("failing_since", self.failing_since.clone())
            .field("last_error", self.last_error.clone())
    }
}

pub fn destination_kind_name(v: i32) -> &'static str {
    match pb::DestinationKind::try_from(v) {
        Ok(pb::DestinationKind::Webhook) => "webhook",
        Ok(pb::DestinationKind::Sns) => "sns",
        Ok(pb::DestinationKind::Eventbridge) => "eventbridge",
        _ => "unknown",
    }
}

impl Resource for pb::Destination {
    const PLURAL: &'static str = "notification destinations";
    const COLUMNS: &'static [&'static str] =
        &["id", "name", "kind", "target", "events", "enabled", "pending", "dead", "failing_since"];
    fn record(&self) -> Record {
        let events = if self.events.is_empty() { "all".to_owned() } else { self.events.join(",") };
        Record::new()
            .field("id", self.id.clone())
            .field("name", self.name.clone())
            .field("kind", destination_kind_name(self.kind))
            .field("target", self.target.clone())
            .field("events", events)
            .field("enabled", self.enabled)
            .field("role_arn", self.role_arn.clone())
            .field("pending", self.pending)
            .field("dead", self.dead)
            .field("failing_since", self.failing_since.clone())
            .field("last_error", self.last_error.clone())
            .field("last_success_at", self.last_success_at.clone())
            .field("previous_secret_until", self.previous_secret_until.clone())
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

impl Resource for pb::IdentityProvider {
    const PLURAL: &'static str = "identity providers";
    const COLUMNS: &'static [&'static str] =
        &["name", "issuer", "client_id", "enabled", "auto_provision", "default_role", "allowed_domains", "users"];
    fn record(&self) -> Record {
        let mut mappings: Vec<(&String, &String)> = self.team_mappings.iter().collect();
        mappings.sort();
        let mappings: serde_json::Map<String, Value> =
            mappings.into_iter().map(|(g, t)| (g.clone(), Value::String(t.clone()))).collect();
        Record::new()
            .field("id", self.id.clone())
            .field("name", self.name.clone())
            .field("issuer", self.issuer.clone())
            .field("client_id", self.client_id.clone())
            .field("has_client_secret", self.has_client_secret)
            .field("scopes", self.scopes.join(" "))
            .field("email_claim", self.email_claim.clone())
            .field("groups_claim", self.groups_claim.clone())
            .field("allowed_domains", self.allowed_domains.join(","))
            .field("auto_provision", self.auto_provision)
            .field("default_role", role_name(self.default_role))
            .field("admin_groups", self.admin_groups.join(","))
            .field("team_mappings", Value::Object(mappings))
            .field("enabled", self.enabled)
            .field("source", self.source.clone())
            .field("users", self.users)
            .field("login_url", self.login_url.clone())
            .field("redirect_uri", self.redirect_uri.clone())
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

impl Resource for pb::ManagedSettings {
    const PLURAL: &'static str = "managed settings";
    const COLUMNS: &'static [&'static str] = &["scope", "settings", "updated_at"];
    fn record(&self) -> Record {
        let settings: Value = serde_json::from_str(&self.settings_json).unwrap_or(Value::Null);
        let scope =
            if self.team_id.is_empty() { "organisation".to_owned() } else { format!("team {}", self.team_name) };
        Record::new()
            .field("scope", scope)
            .field("team_id", self.team_id.clone())
            .field("team_name", self.team_name.clone())
            .field("settings", settings)
            .field("updated_at", self.updated_at.clone())
    }
}

impl Resource for pb::SearchProviderInfo {
    const PLURAL: &'static str = "search providers";
    const COLUMNS: &'static [&'static str] = &["scope", "kind", "url", "has_api_key", "max_results", "updated_at"];
    fn record(&self) -> Record {
        let scope = if self.user_id.is_empty() { "organisation".to_owned() } else { self.user_email.clone() };
        Record::new()
            .field("scope", scope)
            .field("user_id", self.user_id.clone())
            .field("email", self.user_email.clone())
            .field("kind", self.kind.clone())
            .field("url", self.url.clone())
            .field("has_api_key", self.has_api_key)
            .field("max_results", self.max_results)
            .field("updated_at", self.updated_at.clone())
    }
}

impl Resource for pb::SearchResultInfo {
    const PLURAL: &'static str = "results";
    const COLUMNS: &'static [&'static str] = &["title", "url", "page_age"];
    fn record(&self) -> Record {
        Record::new()
            .field("title", self.title.clone())
            .field("url", self.url.clone())
            .field("snippet", self.snippet.clone())
            .field("page_age", self.page_age.clone())
    }
}

impl Resource for pb::ScimToken {
    const PLURAL: &'static str = "SCIM tokens";
    const COLUMNS: &'static [&'static str] = &["id", "idp", "name", "prefix", "created_at", "last_used_at", "revoked"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("idp_id", self.idp_id.clone())
            .field("idp", self.idp.clone())
            .field("name", self.name.clone())
            .field("prefix", self.prefix.clone())
            .field("created_by", self.created_by.clone())
            .field("created_at", self.created_at.clone())
            .field("last_used_at", self.last_used_at.clone())
            .field("revoked", self.revoked)
    }
}

impl Resource for pb::Session {
    const PLURAL: &'static str = "sessions";
    const COLUMNS: &'static [&'static str] =
        &["id", "user", "via", "idp", "ip", "created_at", "last_seen_at", "expires_at", "current"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("user_id", self.user_id.clone())
            .field("user", if self.user_email.is_empty() { self.user_id.clone() } else { self.user_email.clone() })
            .field("via", self.via.clone())
            .field("idp", self.idp.clone())
            .field("user_agent", self.user_agent.clone())
            .field("ip", self.ip.clone())
            .field("created_at", self.created_at.clone())
            .field("last_seen_at", self.last_seen_at.clone())
            .field("expires_at", self.expires_at.clone())
            .field("revoked_at", self.revoked_at.clone())
            .field("current", self.current)
    }
}

impl Resource for pb::Delivery {
    const PLURAL: &'static str = "deliveries";
    const COLUMNS: &'static [&'static str] =
        &["id", "event_type", "destination", "state", "attempts", "last_status", "last_error", "created_at"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("event_id", self.event_id.clone())
            .field("event_type", self.event_type.clone())
            .field("destination_id", self.destination_id.clone())
            .field("destination", self.destination.clone())
            .field("state", self.state.clone())
            .field("attempts", self.attempts)
            .field("last_status", self.last_status)
            .field("last_error", self.last_error.clone())
            .field("created_at", self.created_at.clone())
            .field("next_attempt_at", self.next_attempt_at.clone())
            .field("delivered_at", self.delivered_at.clone())
    }
}

impl Resource for pb::TestDestinationResponse {
    const PLURAL: &'static str = "test results";
    const COLUMNS: &'static [&'static str] = &["ok", "status", "answer", "event_id", "duration_ms"];
    fn record(&self) -> Record {
        Record::new()
            .field("ok", self.ok)
            .field("status", self.status)
            .field("answer", self.answer.clone())
            .field("event_id", self.event_id.clone())
            .field("duration_ms", self.duration_ms)
    }
}

impl Resource for pb::Lease {
    const PLURAL: &'static str = "leases";
    const COLUMNS: &'static [&'static str] = &["name", "holder", "expires_at"];
    fn record(&self) -> Record {
        Record::new()
            .field("name", self.name.clone())
            .field("holder", self.holder.clone())
            .field("expires_at", self.expires_at.clone())
    }
}

impl Resource for pb::DataPlane {
    const PLURAL: &'static str = "data planes";
    const COLUMNS: &'static [&'static str] =
        &["id", "address", "replica", "connected_at", "acked_version", "nacked_version", "nack_error"];
    fn record(&self) -> Record {
        Record::new()
            .field("id", self.id.clone())
            .field("address", self.address.clone())
            .field("replica", self.replica.clone())
            .field("connected_at", self.connected_at.clone())
            .field("acked_version", self.acked_version)
            .field("nacked_version", self.nacked_version)
            .field("nack_error", self.nack_error.clone())
    }
}

impl Resource for pb::UsageRow {
    const PLURAL: &'static str = "usage rows";
    const COLUMNS: &'static [&'static str] = &[
        "bucket",
        "name",
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cost_usd",
        "unpriced_requests",
    ];
    fn record(&self) -> Record {
        Record::new()
            .field("group", self.group.clone())
            .field("name", self.name.clone())
            .field("bucket", self.bucket.clone())
            .field("requests", self.requests)
            .field("input_tokens", self.input_tokens)
            .field("output_tokens", self.output_tokens)
            .field("cache_creation_input_tokens", self.cache_creation_input_tokens)
            .field("cache_read_input_tokens", self.cache_read_input_tokens)
            .field("cost_usd", float(self.cost_usd))
            .field("cost_micro_usd", self.cost_micro_usd)
            .field("unpriced_requests", self.unpriced_requests)
    }
}

impl Resource for pb::Price {
    const PLURAL: &'static str = "prices";
    const COLUMNS: &'static [&'static str] = &[
        "model",
        "input",
        "output",
        "cache_write",
        "cache_write_1h",
        "cache_read",
        "long_context",
        "regional_premium",
        "source",
    ];
    fn record(&self) -> Record {
        let lc = if self.long_context_threshold > 0 {
            let d = |v: f64| format!("${}", usd_text(micro(v)));
            format!(
                ">{}: {}/{}/{}/{}/{}",
                self.long_context_threshold,
                d(self.long_context_input),
                d(self.long_context_output),
                d(self.long_context_cache_write),
                d(self.long_context_cache_write_1h),
                d(self.long_context_cache_read)
            )
        } else {
            String::new()
        };
        // Dollars per million tokens, and the exact micro-USD the control
        // plane stores them as.
        Record::new()
            .field("model", self.model.clone())
            .field("input", float(self.input))
            .field("input_micro_usd", micro(self.input))
            .field("output", float(self.output))
            .field("output_micro_usd", micro(self.output))
            .field("cache_write", float(self.cache_write))
            .field("cache_write_micro_usd", micro(self.cache_write))
            .field("cache_write_1h", float(self.cache_write_1h))
            .field("cache_write_1h_micro_usd", micro(self.cache_write_1h))
            .field("cache_read", float(self.cache_read))
            .field("cache_read_micro_usd", micro(self.cache_read))
            .field("long_context", lc)
            .field("long_context_threshold", self.long_context_threshold)
            .field("regional_premium", format!("{}%", f64::from(self.regional_premium_bp) / 100.0))
            .field("source", self.source.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

/// Dollars as the API gives them (stored as integers) back to micro-USD.
fn micro(usd: f64) -> i64 {
    // Saturating float-to-int cast; prices are bounded at the API.
    (usd * 1e6).round() as i64
}

impl Resource for pb::Budget {
    const PLURAL: &'static str = "budgets";
    const COLUMNS: &'static [&'static str] = &["id", "scope", "subject", "period", "limit_usd", "policy"];
    fn record(&self) -> Record {
        let scope = match pb::BudgetScope::try_from(self.scope) {
            Ok(pb::BudgetScope::User) => "user",
            Ok(pb::BudgetScope::Team) if self.member_default => "team member default",
            Ok(pb::BudgetScope::Team) => "team",
            _ => "org",
        };
        Record::new()
            .field("id", self.id.clone())
            .field("scope", scope)
            .field("subject", self.subject.clone())
            .field("subject_id", self.subject_id.clone())
            .field("member_default", self.member_default)
            .field("period", self.period.clone())
            .field("limit_usd", float(self.limit_usd))
            .field("limit_micro_usd", self.limit_micro_usd)
            .field("policy", self.policy.clone())
            .field("created_at", self.created_at.clone())
            .field("updated_at", self.updated_at.clone())
    }
}

impl Resource for pb::BudgetStatusLine {
    const PLURAL: &'static str = "budgets";
    const COLUMNS: &'static [&'static str] =
        &["scope", "subject", "period", "spend_usd", "limit_usd", "percent", "status", "source", "resets_at"];
    fn record(&self) -> Record {
        Record::new()
            .field("budget_id", self.budget_id.clone())
            .field("scope", self.scope.clone())
            .field("subject", self.subject.clone())
            .field("period", self.period.clone())
            .field("spend_usd", float(self.spend_usd))
            .field("spend_micro_usd", self.spend_micro_usd)
            .field("limit_usd", float(self.limit_usd))
            .field("limit_micro_usd", self.limit_micro_usd)
            .field("percent", float(self.percent))
            .field("status", self.status.clone())
            .field("source", self.source.clone())
            .field("policy", self.policy.clone())
            .field("period_start", self.period_start.clone())
            .field("resets_at", self.resets_at.clone())
    }
}

/// A float as a JSON number (null when not finite, which JSON cannot hold).
/// Exact dollars from micro-USD, with at least the cents: 8500 → "0.0085",
/// 1230000 → "1.23".
pub fn usd_text(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let m = micro.unsigned_abs();
    let frac = format!("{:06}", m % 1_000_000);
    let frac = frac.trim_end_matches('0');
    let frac = if frac.len() < 2 { format!("{frac:0<2}") } else { frac.to_owned() };
    format!("{sign}{}.{frac}", m / 1_000_000)
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

impl From<Record> for Value {
    fn from(r: Record) -> Value {
        Value::Object(r.0.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

// ------------------------------------------------------------------ human

/// A value as a table cell; empty strings and nulls show as "-", RFC 3339
/// timestamps in local time (JSON keeps them as the API gave them).
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => local_time(s).unwrap_or_else(|| s.clone()),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(", "),
        Value::Object(_) => v.to_string(),
    }
}

/// `2026-12-03T07:00:00Z` → `2026-12-03 08:00:00 +01:00` in the terminal's
/// time zone (`TZ`, else the system's).
fn local_time(s: &str) -> Option<String> {
    // Cheap test first: most cells are not timestamps.
    if s.len() < 20 || s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %:z").to_string())
}

/// The exact micro-USD field that goes with a dollar field: `cost_usd` →
/// `cost_micro_usd`, `input_usd_per_mtok` → `input_micro_usd_per_mtok`,
/// and a price's `input` → `input_micro_usd`.
fn micro_sibling(column: &str) -> String {
    match column.find("_usd") {
        Some(i) => format!("{}_micro{}", &column[..i], &column[i..]),
        None => format!("{column}_micro_usd"),
    }
}

/// A record's field as a table cell: money as exact dollars with at least
/// the cents, from the integer micro-USD beside it, so a table never shows
/// a float's rounding.
fn table_cell(rec: &Record, column: &str) -> String {
    if !column.contains("micro_usd") {
        if let Some(Value::Number(n)) = rec.get(&micro_sibling(column)) {
            if let Some(micro) = n.as_i64() {
                return format!("${}", usd_text(micro));
            }
        }
    }
    rec.get(column).map(cell).unwrap_or_else(|| "-".into())
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled);
    t
}

fn finish(t: Table) -> String {
    let mut s = t.to_string();
    s.push('\n');
    s
}

/// Field/value rows for one object.
pub fn object_table(rec: &Record) -> String {
    let mut t = new_table();
    t.load_preset(presets::NOTHING);
    for (k, _) in &rec.0 {
        t.add_row(vec![k.to_string(), table_cell(rec, k)]);
    }
    // The preset's padding is noise in a terminal.
    let s = t.to_string();
    let mut out: String = s.lines().map(|l| format!("{}\n", l.strip_prefix(' ').unwrap_or(l).trim_end())).collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// One row per item with the given columns.
pub fn list_table(columns: &[&str], rows: &[Record], plural: &str) -> String {
    if rows.is_empty() {
        return format!("No {plural} found.\n");
    }
    let mut t = new_table();
    t.set_header(columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>());
    for r in rows {
        t.add_row(columns.iter().map(|c| table_cell(r, c)).collect::<Vec<_>>());
    }
    finish(t)
}

/// How a command's result prints.
pub fn render_one<T: Resource>(item: &T, json: bool) -> String {
    let rec = item.record();
    if json {
        to_json(&rec)
    } else {
        object_table(&rec)
    }
}

/// The object's fields, then a table for each non-empty list of objects
/// among them (e.g. a status's data planes).
pub fn object_with_tables(rec: &Record, nested: &[(&'static str, String)]) -> String {
    let flat = Record(rec.0.iter().filter(|(k, _)| !nested.iter().any(|(n, _)| n == k)).cloned().collect());
    let mut out = object_table(&flat);
    for (name, table) in nested {
        out.push('\n');
        out.push_str(&format!("{name}:\n"));
        out.push_str(table);
    }
    out
}

pub fn render_list<T: Resource>(items: &[T], json: bool) -> String {
    let recs: Vec<Record> = items.iter().map(Resource::record).collect();
    if json {
        to_json(&recs)
    } else {
        list_table(T::COLUMNS, &recs, T::PLURAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> pb::ApiKey {
        pb::ApiKey {
            id: "k1".into(),
            name: "ci".into(),
            prefix: "sk-ccag-abc".into(),
            user_id: "u1".into(),
            team_id: String::new(),
            status: pb::KeyStatus::Revoked as i32,
            rpm: 10,
            tpm: 0,
            created_at: "2025-01-01T00:00:00Z".into(),
            last_used_at: String::new(),
            expires_at: String::new(),
            updated_at: "2025-01-02T00:00:00Z".into(),
            user_email: "ada@example.com".into(),
            team_name: String::new(),
        }
    }

    #[test]
    fn dollars_are_exact_with_at_least_the_cents() {
        assert_eq!(usd_text(8_500), "0.0085");
        assert_eq!(usd_text(1_230_000), "1.23");
        assert_eq!(usd_text(0), "0.00");
        assert_eq!(usd_text(12_000_001), "12.000001");
        assert_eq!(usd_text(-500_000), "-0.50");
    }

    #[test]
    fn enum_names_are_lowercase_words() {
        assert_eq!(role_name(pb::Role::Admin as i32), "admin");
        assert_eq!(role_name(pb::Role::Member as i32), "member");
        assert_eq!(user_status_name(pb::UserStatus::Disabled as i32), "disabled");
        assert_eq!(key_status_name(pb::KeyStatus::Revoked as i32), "revoked");
        assert_eq!(key_status_name(pb::KeyStatus::Active as i32), "active");
        assert_eq!(role_name(42), "unknown(42)");
    }

    #[test]
    fn json_object_has_snake_case_fields_in_order() {
        let json = render_one(&key(), true);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["status"], "revoked");
        assert_eq!(v["user_id"], "u1");
        assert_eq!(v["rpm"], 10);
        assert_eq!(v["expires_at"], "");
        assert!(v.get("userId").is_none());
        // Field order follows the record, not the alphabet.
        assert!(json.find("\"id\"").unwrap() < json.find("\"name\"").unwrap());
        assert!(json.find("\"name\"").unwrap() < json.find("\"created_at\"").unwrap());
    }

    #[test]
    fn prepend_puts_the_secret_first() {
        let rec = key().record().prepend("key", "sk-ccag-secret");
        let json = to_json(&rec);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["key"], "sk-ccag-secret");
        assert_eq!(v["id"], "k1");
        assert!(json.trim_start().starts_with("{\n  \"key\""));
    }

    #[test]
    fn json_list_is_an_array() {
        let out = render_list(&[key(), key()], true);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        let empty: Vec<pb::ApiKey> = vec![];
        assert_eq!(render_list(&empty, true).trim(), "[]");
    }

    #[test]
    fn tables() {
        let out = render_list(&[key()], false);
        assert!(out.contains("PREFIX"), "{out}");
        assert!(out.contains("sk-ccag-abc"), "{out}");
        assert!(out.contains("revoked"), "{out}");
        let empty: Vec<pb::User> = vec![];
        assert_eq!(render_list(&empty, false), "No users found.\n");
        let one = render_one(&key(), false);
        assert!(one.lines().any(|l| l.contains("status") && l.contains("revoked")), "{one}");
        assert!(one.lines().all(|l| l == l.trim_end()));
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&Value::String(String::new())), "-");
        assert_eq!(cell(&Value::Bool(true)), "yes");
        assert_eq!(cell(&serde_json::json!(["a", "b"])), "a, b");
        assert_eq!(cell(&serde_json::json!(7)), "7");
    }

    #[test]
    fn timestamps_show_in_local_time_in_tables() {
        // The process's zone is read once; CI machines run in UTC.
        let want = chrono::DateTime::parse_from_rfc3339("2026-12-03T07:05:09Z")
            .unwrap()
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string();
        assert_eq!(cell(&Value::String("2026-12-03T07:05:09Z".into())), want);
        assert!(!want.contains('T'));
        assert_eq!(cell(&Value::String("2026-12-03 not a time at all".into())), "2026-12-03 not a time at all");
    }

    #[test]
    fn timestamps_stay_rfc3339_in_json() {
        let out = render_one(&key(), true);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["created_at"], key().created_at);
    }

    #[test]
    fn money_columns_show_exact_dollars_from_micro_usd() {
        let row =
            pb::UsageRow { name: "ada".into(), cost_usd: 0.1 + 0.2, cost_micro_usd: 300_000, ..Default::default() };
        let out = render_list(&[row], false);
        assert!(out.contains("$0.30"), "{out}");
        assert!(!out.contains("0.30000000000000004"), "{out}");
        let price =
            pb::Price { model: "claude-x".into(), input: 3.0, output: 15.0, cache_read: 0.3, ..Default::default() };
        let out = render_list(std::slice::from_ref(&price), false);
        assert!(out.contains("$3.00") && out.contains("$15.00") && out.contains("$0.30"), "{out}");
        let v: Value = serde_json::from_str(&render_one(&price, true)).unwrap();
        assert_eq!((v["input"].as_f64(), v["input_micro_usd"].as_i64()), (Some(3.0), Some(3_000_000)));
    }

    #[test]
    fn audit_snapshots_are_embedded() {
        let e = pb::AuditEntry {
            id: "1".into(),
            at: "t".into(),
            actor: "u".into(),
            action: "key.create".into(),
            resource_type: "key".into(),
            resource_id: "k".into(),
            before_json: String::new(),
            after_json: "{\"name\":\"ci\"}".into(),
            actor_email: String::new(),
        };
        let v: Value = serde_json::from_str(&render_one(&e, true)).unwrap();
        assert_eq!(v["before_json"], Value::Null);
        assert_eq!(v["after_json"]["name"], "ci");
    }
}
