use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize)]
#[sea_orm(table_name = "endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub region: String,
    pub role_arn: String,
    pub enabled: bool,
    pub priority: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub weight: i32,
    #[sea_orm(column_type = "Text")]
    pub endpoint_url: String,
    /// `crate::store::CredentialKind`, derived from the role and the key.
    pub credentials: String,
    pub external_id: String,
    /// The Bedrock API key, sealed. The audit log records only whether
    /// there is one.
    #[sea_orm(column_type = "Text", nullable)]
    #[serde(rename = "has_api_key", serialize_with = "present")]
    pub api_key_sealed: Option<String>,
    pub per_user_sessions: bool,
    /// `crate::store::Scope`.
    pub scope: String,
    pub scope_prefix: String,
    /// JSON: model id -> application inference profile ARN.
    #[sea_orm(column_type = "Text")]
    #[serde(serialize_with = "json")]
    pub profile_arns: String,
    /// JSON: the model ids it serves; empty, every model.
    #[sea_orm(column_type = "Text")]
    #[serde(serialize_with = "json")]
    pub models: String,
}

fn present<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(v.is_some())
}

/// Stored JSON shows as JSON in the audit log, not as a string holding it.
fn json<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(j) => j.serialize(s),
        Err(_) => s.serialize_str(v),
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
