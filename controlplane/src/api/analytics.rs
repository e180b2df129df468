//! AnalyticsService: the portal's dashboards and the CSV export, for the
//! CLI and automation as well. Here only who may see what, and the filter
//! turned into ids; the figures are `crate::analytics`.

use ccag_proto::admin::v1::analytics_service_server::AnalyticsService;
use ccag_proto::admin::v1::*;
use chrono::{DateTime, Utc};

use super::{ok, ApiError, ApiResult, Shared};
use crate::analytics::dashboard::{self, Filter, Scope};
use crate::analytics::export;
use crate::analytics::Grain;
use crate::auth::Principal;

pub struct AnalyticsApi(pub Shared);

/// The longest period a dashboard covers.
const MAX_DAYS: i64 = 400;
const DEFAULT_TOP: u32 = 10;
const MAX_TOP: u32 = 100;

struct Period {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

fn period(f: &AnalyticsFilter) -> Result<Period, ApiError> {
    let until = super::usage::when("until", &f.until, Utc::now())?;
    let since = super::usage::when("since", &f.since, until - chrono::Duration::days(30))?;
    if since >= until {
        return Err(ApiError::InvalidArgument("since: must be before until".into()));
    }
    if until - since > chrono::Duration::days(MAX_DAYS) {
        return Err(ApiError::InvalidArgument(format!("since: a period spans at most {MAX_DAYS} days")));
    }
    Ok(Period { since, until })
}

/// The filter's names resolved to ids; members are held to their own usage.
async fn resolve(ctx: &Shared, who: &Principal, f: &AnalyticsFilter) -> Result<Filter, ApiError> {
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let user_id = match some(&f.user) {
        _ if !who.is_admin() => Some(who.user_id.clone()),
        None => None,
        Some(u) => Some(super::users::find(&ctx.db, &u).await?.id),
    };
    let team_id = match some(&f.team) {
        None => None,
        Some(t) => Some(super::teams::find(&ctx.db, &t).await?.id),
    };
    let key_id = match some(&f.key) {
        None => None,
        Some(k) => Some(super::keys::find_for(&ctx.db, who, &k).await?.id),
    };
    let endpoint_id = match some(&f.endpoint) {
        None => None,
        // The data planes' implicit endpoint has no id.
        Some(e) if e == "-" => Some(String::new()),
        Some(e) => Some(super::endpoints::find(&ctx.db, &e).await?.id),
    };
    Ok(Filter { since: 0, until: 0, user_id, team_id, key_id, model: some(&f.model), endpoint_id })
}

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    async fn get_dashboard(&self, req: tonic::Request<GetDashboardRequest>) -> ApiResult<Dashboard> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let f = r.filter.unwrap_or_default();
        let p = period(&f)?;
        let filter = resolve(&self.0, &who, &f).await?;
        // Whole periods: the roll-ups' grain.
        let (since, until) = (p.since.timestamp(), p.until.timestamp());
        let grain = match UsageBucket::try_from(r.bucket) {
            Ok(UsageBucket::Unspecified) => dashboard::grain_for_span(since, until),
            Ok(UsageBucket::Hour) if until - since > 31 * 86_400 => {
                return Err(ApiError::InvalidArgument("bucket: a series by hour spans at most 31 days".into()).into())
            }
            Ok(UsageBucket::Hour) => Grain::Hour,
            Ok(UsageBucket::Day) => Grain::Day,
            Err(_) => return Err(ApiError::InvalidArgument("bucket: hour or day".into()).into()),
        };
        let filter = Filter { since, until, ..filter }.widened(grain);
        let top = match r.top {
            0 => DEFAULT_TOP,
            n if n > MAX_TOP => {
                return Err(ApiError::InvalidArgument(format!("top: at most {MAX_TOP}")).into());
            }
            n => n,
        };
        let scope = if who.is_admin() { Scope::Organisation } else { Scope::OwnUsage };
        let d = dashboard::build(&self.0.db, &filter, grain, top as usize, scope).await.map_err(ApiError::from)?;
        ok(d)
    }

    async fn export_usage(&self, req: tonic::Request<ExportUsageRequest>) -> ApiResult<ExportUsageResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let f = r.filter.unwrap_or_default();
        let p = period(&f)?;
        if r.limit > export::MAX_ROWS {
            return Err(ApiError::InvalidArgument(format!("limit: at most {}", export::MAX_ROWS)).into());
        }
        let filter = resolve(&self.0, &who, &f).await?;
        let limit = if r.limit == 0 { export::MAX_ROWS } else { r.limit };
        let range = export::Range { since: p.since, until: p.until };
        let csv = export::records(&self.0.db, &range, &filter, limit).await.map_err(ApiError::from)?;
        ok(ExportUsageResponse { csv: csv.text, rows: csv.rows, truncated: csv.truncated })
    }
}
