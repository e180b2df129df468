//! One configuration snapshot from the database.

use std::collections::HashMap;

use ccag_proto::config::v1 as pb;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::store::entities::{api_keys, endpoints, models, settings, team_members, teams, users};

/// Settings that shape the data plane, by key.
const LIMIT_SETTINGS: &[&str] = &[
    "dataplane.max_body_bytes",
    "dataplane.first_byte_timeout_ms",
    "dataplane.stream_idle_timeout_ms",
    "dataplane.max_stream_duration_ms",
    "dataplane.ping_interval_ms",
    "dataplane.request_timeout_ms",
];

pub async fn build(db: &DatabaseConnection, version: u64) -> Result<pb::Snapshot, DbErr> {
    let users: HashMap<String, users::Model> =
        users::Entity::find().all(db).await?.into_iter().map(|u| (u.id.clone(), u)).collect();
    let teams = teams::Entity::find().all(db).await?;
    let members = team_members::Entity::find().all(db).await?;
    let settings: HashMap<String, String> =
        settings::Entity::find().all(db).await?.into_iter().map(|s| (s.key, s.value)).collect();

    // Revoked keys are left out: an unknown key and a revoked one get the same 401.
    let keys = api_keys::Entity::find()
        .filter(api_keys::Column::Status.ne("revoked"))
        .all(db)
        .await?
        .into_iter()
        .map(|k| {
            let owner_active = users.get(&k.user_id).is_some_and(|u| u.status == "active");
            let status =
                if k.status == "active" && owner_active { pb::KeyStatus::Active } else { pb::KeyStatus::Disabled };
            pb::ApiKey {
                id: k.id,
                sha256: k.key_hash,
                name: k.name,
                user_id: k.user_id,
                team_id: k.team_id.unwrap_or_default(),
                status: status as i32,
                expires_at: k.expires_at.map(|t| t.timestamp()).unwrap_or(0),
                rpm: k.rpm.max(0) as u64,
                tpm: k.tpm.max(0) as u64,
            }
        })
        .collect();

    // A user's own limit wins; otherwise the strictest default of their teams.
    let team_by_id: HashMap<&str, &teams::Model> = teams.iter().map(|t| (t.id.as_str(), t)).collect();
    let strictest = |a: i64, b: i64| match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    };
    let mut user_limits = Vec::new();
    for u in users.values() {
        let (mut rpm, mut tpm) = (0, 0);
        for m in members.iter().filter(|m| m.user_id == u.id) {
            if let Some(t) = team_by_id.get(m.team_id.as_str()) {
                rpm = strictest(rpm, t.member_rpm);
                tpm = strictest(tpm, t.member_tpm);
            }
        }
        if u.rpm > 0 {
            rpm = u.rpm;
        }
        if u.tpm > 0 {
            tpm = u.tpm;
        }
        if rpm > 0 || tpm > 0 {
            user_limits.push(pb::SubjectLimit { id: u.id.clone(), rpm: rpm as u64, tpm: tpm as u64 });
        }
    }
    let team_limits = teams
        .iter()
        .filter(|t| t.rpm > 0 || t.tpm > 0)
        .map(|t| pb::SubjectLimit { id: t.id.clone(), rpm: t.rpm.max(0) as u64, tpm: t.tpm.max(0) as u64 })
        .collect();

    let catalogue_rows = models::Entity::find().order_by_asc(models::Column::AnthropicId).all(db).await?;
    let model_mappings = catalogue_rows
        .iter()
        .filter(|m| !m.bedrock_id.is_empty())
        .map(|m| pb::ModelMapping { anthropic_id: m.anthropic_id.clone(), bedrock_id: m.bedrock_id.clone() })
        .collect();
    let catalogue = catalogue_rows
        .iter()
        .filter(|m| m.listed)
        .map(|m| pb::ModelInfo {
            id: m.anthropic_id.clone(),
            display_name: if m.display_name.is_empty() { m.anthropic_id.clone() } else { m.display_name.clone() },
            created_at: m.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            description: String::new(),
        })
        .collect();

    let region = endpoints::Entity::find()
        .filter(endpoints::Column::Enabled.eq(true))
        .order_by_asc(endpoints::Column::Priority)
        .order_by_asc(endpoints::Column::Name)
        .one(db)
        .await?
        .map(|e| e.region)
        .unwrap_or_default();

    let num = |k: &str| settings.get(k).and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(0);
    let ms = |k: &str| u32::try_from(num(k)).unwrap_or(u32::MAX);
    let limits = LIMIT_SETTINGS.iter().any(|k| settings.contains_key(*k)).then(|| pb::Limits {
        max_body_bytes: num("dataplane.max_body_bytes"),
        first_byte_timeout_ms: ms("dataplane.first_byte_timeout_ms"),
        stream_idle_timeout_ms: ms("dataplane.stream_idle_timeout_ms"),
        max_stream_duration_ms: ms("dataplane.max_stream_duration_ms"),
        ping_interval_ms: ms("dataplane.ping_interval_ms"),
        request_timeout_ms: ms("dataplane.request_timeout_ms"),
    });
    let extra_betas = settings
        .get("dataplane.extra_betas")
        .map(|v| v.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();

    Ok(pb::Snapshot {
        version,
        keys,
        model_mappings,
        models: catalogue,
        routing: Some(pb::Routing { region, geo: settings.get("routing.geo").cloned().unwrap_or_default() }),
        limits,
        extra_betas,
        user_limits,
        team_limits,
        dataplane_count: 1,
    })
}
