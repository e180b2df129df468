//! The usage records a filter selects, as CSV: one line per request,
//! newest first, with readable names beside the ids and cost in exact
//! micro-USD beside dollars. Names come from users and providers, so every
//! text cell goes through `spreadsheet_safe`.

use ccag_proto::admin::v1::UsageGroup;
use ccag_proto::export::spreadsheet_safe;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::store::entities::usage_records;

/// The most records one export holds.
pub const MAX_ROWS: u32 = 100_000;

pub struct Range {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

pub struct Csv {
    pub text: String,
    pub rows: u64,
    pub truncated: bool,
}

const HEADER: [&str; 22] = [
    "request_id",
    "started_at",
    "user_id",
    "user",
    "team_id",
    "team",
    "key_id",
    "key",
    "model",
    "bedrock_model",
    "endpoint_id",
    "endpoint",
    "stream",
    "status",
    "outcome",
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "cost_usd",
    "ttft_ms",
    "duration_ms",
];

/// Dollars from micro-USD, exactly (six decimals, no float).
fn usd(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let m = micro.unsigned_abs();
    format!("{sign}{}.{:06}", m / 1_000_000, m % 1_000_000)
}

pub async fn records(
    db: &DatabaseConnection,
    range: &Range,
    f: &super::dashboard::Filter,
    limit: u32,
) -> Result<Csv, DbErr> {
    use usage_records::Column as C;
    let limit = limit.clamp(1, MAX_ROWS);
    let mut q =
        usage_records::Entity::find().filter(C::StartedAt.gte(range.since)).filter(C::StartedAt.lt(range.until));
    for (col, v) in [
        (C::UserId, &f.user_id),
        (C::TeamId, &f.team_id),
        (C::KeyId, &f.key_id),
        (C::Model, &f.model),
        (C::EndpointId, &f.endpoint_id),
    ] {
        if let Some(v) = v {
            q = q.filter(col.eq(v.as_str()));
        }
    }
    let mut rows =
        q.order_by_desc(C::StartedAt).order_by_desc(C::RequestId).limit(u64::from(limit) + 1).all(db).await?;
    let truncated = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let lookup = |g: UsageGroup, ids: Vec<String>| async move {
        crate::api::usage_names(db, g as i32, ids.into_iter()).await.map_err(|e| DbErr::Custom(e.to_string()))
    };
    let (users, teams, keys, endpoints) = tokio::try_join!(
        lookup(UsageGroup::User, rows.iter().map(|r| r.user_id.clone()).collect()),
        lookup(UsageGroup::Team, rows.iter().map(|r| r.team_id.clone()).collect()),
        lookup(UsageGroup::Key, rows.iter().map(|r| r.key_id.clone()).collect()),
        lookup(UsageGroup::Endpoint, rows.iter().map(|r| r.endpoint_id.clone()).collect()),
    )?;
    let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 256 + 512));
    let fail = |e: csv::Error| DbErr::Custom(format!("writing CSV: {e}"));
    w.write_record(HEADER).map_err(fail)?;
    let name = |m: &std::collections::HashMap<String, String>, id: &str| m.get(id).cloned().unwrap_or_default();
    for r in &rows {
        let text = [
            r.request_id.clone(),
            r.started_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            r.user_id.clone(),
            name(&users, &r.user_id),
            r.team_id.clone(),
            name(&teams, &r.team_id),
            r.key_id.clone(),
            name(&keys, &r.key_id),
            r.model.clone(),
            r.bedrock_model.clone(),
            r.endpoint_id.clone(),
            name(&endpoints, &r.endpoint_id),
        ];
        let mut line: Vec<String> = text.iter().map(|s| spreadsheet_safe(s).into_owned()).collect();
        line.extend([
            r.stream.to_string(),
            r.status.to_string(),
            spreadsheet_safe(&r.outcome).into_owned(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cache_write_tokens.to_string(),
            r.cache_read_tokens.to_string(),
            usd(r.cost_micro_usd),
            r.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
            r.duration_ms.to_string(),
        ]);
        w.write_record(&line).map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| DbErr::Custom(format!("writing CSV: {e}")))?;
    Ok(Csv { text: String::from_utf8_lossy(&bytes).into_owned(), rows: rows.len() as u64, truncated })
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollars_are_exact() {
        assert_eq!(super::usd(1_234_567), "1.234567");
        assert_eq!(super::usd(5), "0.000005");
        assert_eq!(super::usd(0), "0.000000");
    }
}
