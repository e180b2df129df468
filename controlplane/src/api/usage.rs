//! UsageService and PricingService: spend from the usage log, and the
//! editable price table it is computed with.

use ccag_proto::admin::v1::pricing_service_server::PricingService;
use ccag_proto::admin::v1::usage_service_server::UsageService;
use ccag_proto::admin::v1::*;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, SimpleExpr};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set};

use super::{ok, ts, ApiError, ApiResult, Change, Shared};
use crate::fleet::Touched;
use std::collections::HashMap;

use crate::store::entities::{api_keys, endpoints, model_prices, teams, usage_records, users};
use crate::store::{AuditAction, Backend};

pub struct UsageApi(pub Shared);
pub struct PricingApi(pub Shared);

#[derive(Debug, FromQueryResult)]
struct Row {
    bucket: String,
    grp: String,
    requests: i64,
    input: i64,
    output: i64,
    cache_write: i64,
    cache_read: i64,
    cost: i64,
    unpriced: i64,
}

pub(super) fn when(field: &str, v: &str, default: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if v.trim().is_empty() {
        return Ok(default);
    }
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::InvalidArgument(format!("{field}: not an RFC 3339 time")))
}

/// SUM() of a BIGINT column is NUMERIC in PostgreSQL; cast it back.
fn total(col: usage_records::Column) -> SimpleExpr {
    SimpleExpr::from(Func::coalesce([Expr::col(col).sum(), Expr::val(0).into()])).cast_as(Alias::new("BIGINT"))
}

#[tonic::async_trait]
impl UsageService for UsageApi {
    async fn get_usage(&self, req: tonic::Request<GetUsageRequest>) -> ApiResult<GetUsageResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let until = when("until", &r.until, Utc::now())?;
        let since = when("since", &r.since, until - chrono::Duration::days(30))?;
        if since >= until {
            return Err(ApiError::InvalidArgument("since: must be before until".into()).into());
        }
        let bucket = match UsageBucket::try_from(r.bucket) {
            Ok(b) => b,
            Err(_) => return Err(ApiError::InvalidArgument("bucket: hour or day".into()).into()),
        };
        let longest = match bucket {
            UsageBucket::Hour => Some((chrono::Duration::days(31), "31 days")),
            UsageBucket::Day => Some((chrono::Duration::days(366), "366 days")),
            UsageBucket::Unspecified => None,
        };
        if let Some((_, text)) = longest.filter(|(span, _)| until - since > *span) {
            return Err(ApiError::InvalidArgument(format!(
                "since: a series by {} spans at most {text}",
                bucket_name(bucket)
            ))
            .into());
        }
        use usage_records::Column as C;
        let group = match UsageGroup::try_from(r.group_by) {
            Ok(UsageGroup::Unspecified | UsageGroup::User) => C::UserId,
            Ok(UsageGroup::Team) => C::TeamId,
            Ok(UsageGroup::Key) => C::KeyId,
            Ok(UsageGroup::Model) => C::Model,
            Ok(UsageGroup::Endpoint) => C::EndpointId,
            Err(_) => return Err(ApiError::InvalidArgument("group_by: unknown value".into()).into()),
        };
        let mut q = usage_records::Entity::find()
            .select_only()
            .column_as(bucket_expr(self.0.backend, bucket), "bucket")
            .column_as(group, "grp")
            .column_as(Expr::col(C::RequestId).count(), "requests")
            .column_as(total(C::InputTokens), "input")
            .column_as(total(C::OutputTokens), "output")
            .column_as(total(C::CacheWriteTokens), "cache_write")
            .column_as(total(C::CacheReadTokens), "cache_read")
            .column_as(total(C::CostMicroUsd), "cost")
            .column_as(
                SimpleExpr::from(Func::coalesce([
                    Func::sum(Into::<SimpleExpr>::into(Expr::case(Expr::col(C::Unpriced).eq(true), 1).finally(0)))
                        .into(),
                    Expr::val(0).into(),
                ]))
                .cast_as(Alias::new("BIGINT")),
                "unpriced",
            )
            .filter(C::StartedAt.gte(since))
            .filter(C::StartedAt.lt(until));
        // Members see their own usage only, whatever they ask for.
        let user_filter = match r.user_id.trim() {
            _ if !who.is_admin() => who.user_id.clone(),
            "" => String::new(),
            u => super::users::find(&self.0.db, u).await?.id,
        };
        let team_filter = match r.team_id.trim() {
            "" => String::new(),
            t => super::teams::find(&self.0.db, t).await?.id,
        };
        let key_filter = match r.key_id.trim() {
            "" => String::new(),
            k => super::keys::find_for(&self.0.db, &who, k).await?.id,
        };
        for (col, v) in
            [(C::UserId, user_filter.as_str()), (C::TeamId, team_filter.as_str()), (C::KeyId, key_filter.as_str())]
        {
            if !v.is_empty() {
                q = q.filter(col.eq(v));
            }
        }
        if bucket != UsageBucket::Unspecified {
            q = q.group_by(bucket_expr(self.0.backend, bucket)).order_by_asc(bucket_expr(self.0.backend, bucket));
        }
        let rows =
            q.group_by(group).order_by_asc(group).into_model::<Row>().all(&self.0.db).await.map_err(ApiError::from)?;
        let names = names(&self.0.db, r.group_by, rows.iter().map(|r| r.grp.clone())).await?;
        let mut sum = UsageRow { group: "total".into(), ..Default::default() };
        let rows: Vec<UsageRow> = rows
            .into_iter()
            .map(|row| {
                let r = UsageRow {
                    name: names.get(&row.grp).cloned().unwrap_or_else(|| row.grp.clone()),
                    bucket: row.bucket,
                    group: row.grp,
                    requests: row.requests.max(0) as u64,
                    input_tokens: row.input.max(0) as u64,
                    output_tokens: row.output.max(0) as u64,
                    cache_creation_input_tokens: row.cache_write.max(0) as u64,
                    cache_read_input_tokens: row.cache_read.max(0) as u64,
                    cost_usd: micro_to_usd(row.cost),
                    cost_micro_usd: row.cost,
                    unpriced_requests: row.unpriced.max(0) as u64,
                };
                sum.requests += r.requests;
                sum.input_tokens += r.input_tokens;
                sum.output_tokens += r.output_tokens;
                sum.cache_creation_input_tokens += r.cache_creation_input_tokens;
                sum.cache_read_input_tokens += r.cache_read_input_tokens;
                sum.cost_micro_usd += r.cost_micro_usd;
                sum.unpriced_requests += r.unpriced_requests;
                r
            })
            .collect();
        sum.cost_usd = micro_to_usd(sum.cost_micro_usd);
        ok(GetUsageResponse { rows, total: Some(sum) })
    }
}

fn bucket_name(b: UsageBucket) -> &'static str {
    match b {
        UsageBucket::Hour => "hour",
        UsageBucket::Day => "day",
        UsageBucket::Unspecified => "period",
    }
}

/// The start of each record's UTC hour or day as RFC 3339 text, computed by
/// the database (each has its own date functions); '' without a bucket.
fn bucket_expr(backend: Backend, b: UsageBucket) -> SimpleExpr {
    let sql = match (backend, b) {
        (_, UsageBucket::Unspecified) => "''",
        (Backend::Postgres, UsageBucket::Hour) => {
            r#"to_char(date_trunc('hour', started_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"HH24:00:00"Z"')"#
        }
        (Backend::Postgres, UsageBucket::Day) => {
            r#"to_char(date_trunc('day', started_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T00:00:00Z"')"#
        }
        (Backend::Sqlite, UsageBucket::Hour) => "strftime('%Y-%m-%dT%H:00:00Z', started_at)",
        (Backend::Sqlite, UsageBucket::Day) => "strftime('%Y-%m-%dT00:00:00Z', started_at)",
    };
    Expr::cust(sql)
}

/// Readable names of the groups: users' emails (or display names), teams'
/// and keys' names; models are their own names.
pub(crate) async fn names(
    db: &sea_orm::DatabaseConnection,
    group_by: i32,
    ids: impl Iterator<Item = String>,
) -> Result<HashMap<String, String>, ApiError> {
    let ids: Vec<String> =
        ids.filter(|i| !i.is_empty()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(match UsageGroup::try_from(group_by) {
        Ok(UsageGroup::Unspecified | UsageGroup::User) => users::Entity::find()
            .filter(users::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.email.unwrap_or(u.display_name)))
            .collect(),
        Ok(UsageGroup::Team) => teams::Entity::find()
            .filter(teams::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect(),
        Ok(UsageGroup::Key) => api_keys::Entity::find()
            .filter(api_keys::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|k| (k.id, k.name))
            .collect(),
        Ok(UsageGroup::Endpoint) => endpoints::Entity::find()
            .filter(endpoints::Column::Id.is_in(ids))
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.id, e.name))
            .collect(),
        _ => HashMap::new(),
    })
}

pub(crate) fn micro_to_usd(micro: i64) -> f64 {
    micro as f64 / 1e6
}

/// A price from the API (USD per million tokens) in micro-USD per million.
fn usd_to_micro(field: &str, usd: f64) -> Result<i64, ApiError> {
    if !usd.is_finite() || !(0.0..=100_000.0).contains(&usd) {
        return Err(ApiError::InvalidArgument(format!("{field}: a price between 0 and 100000 USD per million tokens")));
    }
    Ok((usd * 1e6).round() as i64)
}

fn to_proto(p: model_prices::Model) -> Price {
    Price {
        model: p.model,
        input: micro_to_usd(p.input_micro),
        output: micro_to_usd(p.output_micro),
        cache_write: micro_to_usd(p.cache_write_micro),
        cache_read: micro_to_usd(p.cache_read_micro),
        updated_at: ts(p.updated_at),
        cache_write_1h: micro_to_usd(p.cache_write_1h_micro),
        long_context_threshold: p.lc_threshold.max(0) as u64,
        long_context_input: micro_to_usd(p.lc_input_micro),
        long_context_output: micro_to_usd(p.lc_output_micro),
        long_context_cache_write: micro_to_usd(p.lc_cache_write_micro),
        long_context_cache_write_1h: micro_to_usd(p.lc_cache_write_1h_micro),
        long_context_cache_read: micro_to_usd(p.lc_cache_read_micro),
        regional_premium_bp: p.regional_premium_bp.clamp(0, u32::MAX as i64) as u32,
        source: p.source,
    }
}

#[tonic::async_trait]
impl PricingService for PricingApi {
    async fn list_prices(&self, req: tonic::Request<ListPricesRequest>) -> ApiResult<ListPricesResponse> {
        self.0.caller(&req).await?;
        let rows = model_prices::Entity::find()
            .order_by_asc(model_prices::Column::Model)
            .all(&self.0.db)
            .await
            .map_err(ApiError::from)?;
        ok(ListPricesResponse { prices: rows.into_iter().map(to_proto).collect() })
    }

    async fn set_price(&self, req: tonic::Request<Price>) -> ApiResult<Price> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let p = req.into_inner();
        let model = super::require("model", &p.model, 200)?;
        let input = usd_to_micro("input", p.input)?;
        let output = usd_to_micro("output", p.output)?;
        let cache_write = usd_to_micro("cache_write", p.cache_write)?;
        let cache_read = usd_to_micro("cache_read", p.cache_read)?;
        // Unset, the 1-hour write rate is Anthropic's ratio to input: 2x.
        let cache_write_1h =
            if p.cache_write_1h != 0.0 { usd_to_micro("cache_write_1h", p.cache_write_1h)? } else { input * 2 };
        let lc = [
            usd_to_micro("long_context_input", p.long_context_input)?,
            usd_to_micro("long_context_output", p.long_context_output)?,
            usd_to_micro("long_context_cache_write", p.long_context_cache_write)?,
            usd_to_micro("long_context_cache_write_1h", p.long_context_cache_write_1h)?,
            usd_to_micro("long_context_cache_read", p.long_context_cache_read)?,
        ];
        if p.long_context_threshold > 0 && lc[0] == 0 {
            return Err(
                ApiError::InvalidArgument("long_context_input: needed with a long-context threshold".into()).into()
            );
        }
        if p.regional_premium_bp > 100_000 {
            return Err(ApiError::InvalidArgument("regional_premium_bp: at most 100000 (1000%)".into()).into());
        }
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = model_prices::Entity::find_by_id(model.clone()).one(txn.db()).await.map_err(ApiError::from)?;
        let am = model_prices::ActiveModel {
            model: Set(model.clone()),
            input_micro: Set(input),
            output_micro: Set(output),
            cache_write_micro: Set(cache_write),
            cache_read_micro: Set(cache_read),
            updated_at: Set(Utc::now()),
            cache_write_1h_micro: Set(cache_write_1h),
            lc_input_micro: Set(lc[0]),
            lc_output_micro: Set(lc[1]),
            lc_cache_write_micro: Set(lc[2]),
            lc_cache_write_1h_micro: Set(lc[3]),
            lc_cache_read_micro: Set(lc[4]),
            lc_threshold: Set(i64::try_from(p.long_context_threshold).unwrap_or(i64::MAX)),
            regional_premium_bp: Set(i64::from(p.regional_premium_bp)),
            // An admin's row: a release's defaults never overwrite it.
            source: Set(crate::pricing::Source::Admin.as_str().to_owned()),
        };
        let after = if before.is_some() { am.update(txn.db()).await } else { am.insert(txn.db()).await }
            .map_err(ApiError::from)?;
        txn.audit(AuditAction::PriceSet, "price", &model, before.as_ref(), Some(&after)).await?;
        txn.touch(Touched::Prices);
        txn.commit().await?;
        ok(to_proto(after))
    }

    async fn delete_price(&self, req: tonic::Request<DeletePriceRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let model = req.get_ref().model.trim().to_owned();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let before = model_prices::Entity::find_by_id(model.clone())
            .one(txn.db())
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound(format!("no price for {model:?}")))?;
        model_prices::Entity::delete_by_id(model.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::PriceDelete, "price", &model, Some(&before), None).await?;
        txn.touch(Touched::Prices);
        txn.commit().await?;
        ok(DeleteResponse {})
    }
}
