//! BudgetService: setting, listing and deleting caps, and the status of a
//! user's or team's budgets (spend, limit, percent, where the limit comes
//! from, when it resets).

use ccag_proto::admin::v1::budget_service_server::BudgetService;
use ccag_proto::admin::v1::*;
use ccag_proto::budget::{format_policy, in_force, next_start, parse_period, parse_policy, period_name, period_start};
use ccag_proto::config::v1::{BudgetAction, BudgetSource};
use chrono::{TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use super::{ok, ts, ApiError, ApiResult, Change, Shared};
use crate::budget::{book, Scope};
use crate::fleet::Touched;
use crate::store::entities::{budget_spend, budgets, teams, users};
use crate::store::AuditAction;

pub struct BudgetsApi(pub Shared);

/// The largest cap: a million dollars per period.
const MAX_LIMIT_MICRO_USD: i64 = 1_000_000 * 1_000_000;

fn scope_of(s: i32) -> Result<Scope, ApiError> {
    match BudgetScope::try_from(s) {
        Ok(BudgetScope::User) => Ok(Scope::User),
        Ok(BudgetScope::Team) => Ok(Scope::Team),
        Ok(BudgetScope::Org) => Ok(Scope::Org),
        _ => Err(ApiError::InvalidArgument("scope: user, team or org".into())),
    }
}

fn scope_pb(s: Scope) -> BudgetScope {
    match s {
        Scope::User => BudgetScope::User,
        Scope::Team => BudgetScope::Team,
        Scope::Org => BudgetScope::Org,
    }
}

fn usd(micro: i64) -> f64 {
    micro as f64 / 1e6
}

/// (id, readable name) of the subject.
async fn subject<C: sea_orm::ConnectionTrait>(c: &C, scope: Scope, s: &str) -> Result<(String, String), ApiError> {
    if scope != Scope::Org {
        super::require("subject", s, 254)?;
    }
    match scope {
        Scope::User => {
            let u = super::users::find(c, s).await?;
            Ok((u.id.clone(), u.email.unwrap_or(u.display_name)))
        }
        Scope::Team => {
            let t = super::teams::find(c, s).await?;
            Ok((t.id, t.name))
        }
        Scope::Org => {
            if !s.trim().is_empty() {
                return Err(ApiError::InvalidArgument("subject: the organisation budget names no subject".into()));
            }
            Ok((String::new(), "organisation".into()))
        }
    }
}

async fn name_of<C: sea_orm::ConnectionTrait>(c: &C, b: &budgets::Model) -> Result<String, ApiError> {
    Ok(match Scope::parse(&b.scope) {
        Some(Scope::User) => users::Entity::find_by_id(b.subject_id.clone())
            .one(c)
            .await?
            .map(|u| u.email.unwrap_or(u.display_name))
            .unwrap_or_default(),
        Some(Scope::Team) => {
            teams::Entity::find_by_id(b.subject_id.clone()).one(c).await?.map(|t| t.name).unwrap_or_default()
        }
        _ => "organisation".into(),
    })
}

fn proto(b: budgets::Model, name: String) -> Budget {
    Budget {
        id: b.id,
        scope: scope_pb(Scope::parse(&b.scope).unwrap_or(Scope::Org)) as i32,
        subject_id: b.subject_id,
        subject: name,
        member_default: b.member_default,
        period: b.period,
        limit_micro_usd: b.limit_micro_usd,
        limit_usd: usd(b.limit_micro_usd),
        policy: b.policy,
        created_at: ts(b.created_at),
        updated_at: ts(b.updated_at),
    }
}

fn rfc3339(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0).single().map(ts).unwrap_or_default()
}

fn source_name(s: BudgetSource) -> &'static str {
    match s {
        BudgetSource::User => "user",
        BudgetSource::TeamMemberDefault => "team_member_default",
        BudgetSource::OrgDefault => "org_default",
        BudgetSource::Team => "team",
        BudgetSource::Unspecified => "",
    }
}

#[tonic::async_trait]
impl BudgetService for BudgetsApi {
    async fn set_budget(&self, req: tonic::Request<SetBudgetRequest>) -> ApiResult<Budget> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let scope = scope_of(r.scope)?;
        if r.member_default && scope != Scope::Team {
            return Err(ApiError::InvalidArgument("member_default: only a team has a per-member default".into()).into());
        }
        let period = parse_period(r.period.trim())
            .ok_or_else(|| ApiError::InvalidArgument("period: daily, weekly or monthly".into()))?;
        let (field, limit) = if r.limit_micro_usd != 0 {
            if r.limit_usd != 0.0 && (r.limit_usd * 1e6).round() as i64 != r.limit_micro_usd {
                return Err(
                    ApiError::InvalidArgument("limit_usd: differs from limit_micro_usd; give one".into()).into()
                );
            }
            ("limit_micro_usd", r.limit_micro_usd)
        } else if r.limit_usd.is_finite() {
            let micro = (r.limit_usd * 1e6).round() as i64;
            // A limit that rounds to nothing would block every request.
            if micro == 0 && r.limit_usd != 0.0 {
                return Err(ApiError::InvalidArgument(
                    "limit_usd: below one micro-dollar (a limit of 0 blocks everything)".into(),
                )
                .into());
            }
            ("limit_usd", micro)
        } else {
            ("limit_usd", -1)
        };
        if !(0..=MAX_LIMIT_MICRO_USD).contains(&limit) {
            return Err(
                ApiError::InvalidArgument(format!("{field}: from 0 to 1000000 USD (0 blocks everything)")).into()
            );
        }
        let rules = parse_policy(&r.policy).map_err(|e| ApiError::InvalidArgument(format!("policy: {e}")))?;
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let (subject_id, name) = subject(txn.db(), scope, &r.subject).await?;
        let before = budgets::Entity::find()
            .filter(budgets::Column::Scope.eq(scope.as_str()))
            .filter(budgets::Column::SubjectId.eq(subject_id.clone()))
            .filter(budgets::Column::MemberDefault.eq(r.member_default))
            .filter(budgets::Column::Period.eq(period_name(period)))
            .one(txn.db())
            .await
            .map_err(ApiError::from)?;
        let now = Utc::now();
        let am = budgets::ActiveModel {
            id: Set(before.as_ref().map_or_else(|| crate::store::ids::new_id("bud"), |b| b.id.clone())),
            scope: Set(scope.as_str().to_owned()),
            subject_id: Set(subject_id.clone()),
            member_default: Set(r.member_default),
            period: Set(period_name(period).to_owned()),
            limit_micro_usd: Set(limit),
            policy: Set(format_policy(&rules)),
            created_at: Set(before.as_ref().map_or(now, |b| b.created_at)),
            updated_at: Set(now),
        };
        let after = if before.is_some() { am.update(txn.db()).await } else { am.insert(txn.db()).await }
            .map_err(ApiError::from)?;
        // Thresholds the spend already passed under the new limit get their
        // events when the replicas reload the book for this revision
        // (`budget::verdicts`), as for any other change that moves a limit.
        txn.audit(AuditAction::BudgetSet, "budget", &after.id, before.as_ref(), Some(&after)).await?;
        txn.touch(Touched::Budgets);
        txn.commit().await?;
        ok(proto(after, name))
    }

    async fn list_budgets(&self, req: tonic::Request<ListBudgetsRequest>) -> ApiResult<ListBudgetsResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let rows = budgets::Entity::find()
            .order_by_asc(budgets::Column::Scope)
            .order_by_asc(budgets::Column::SubjectId)
            .order_by_asc(budgets::Column::Period)
            .all(&self.0.db)
            .await
            .map_err(ApiError::from)?;
        let mut out = Vec::with_capacity(rows.len());
        for b in rows {
            let name = name_of(&self.0.db, &b).await?;
            out.push(proto(b, name));
        }
        ok(ListBudgetsResponse { budgets: out })
    }

    async fn delete_budget(&self, req: tonic::Request<DeleteBudgetRequest>) -> ApiResult<DeleteResponse> {
        let who = self.0.caller(&req).await?;
        who.require_admin()?;
        let r = req.into_inner();
        let mut txn = Change::begin(&self.0, &who.user_id).await?;
        let found = if !r.id.trim().is_empty() {
            budgets::Entity::find_by_id(r.id.trim().to_owned()).one(txn.db()).await.map_err(ApiError::from)?
        } else {
            let scope = scope_of(r.scope)?;
            let period = parse_period(r.period.trim())
                .ok_or_else(|| ApiError::InvalidArgument("period: daily, weekly or monthly".into()))?;
            let (subject_id, _) = subject(txn.db(), scope, &r.subject).await?;
            budgets::Entity::find()
                .filter(budgets::Column::Scope.eq(scope.as_str()))
                .filter(budgets::Column::SubjectId.eq(subject_id))
                .filter(budgets::Column::MemberDefault.eq(r.member_default))
                .filter(budgets::Column::Period.eq(period_name(period)))
                .one(txn.db())
                .await
                .map_err(ApiError::from)?
        };
        let before = found.ok_or_else(|| ApiError::NotFound("no such budget".into()))?;
        budgets::Entity::delete_by_id(before.id.clone()).exec(txn.db()).await.map_err(ApiError::from)?;
        txn.audit(AuditAction::BudgetDelete, "budget", &before.id, Some(&before), None).await?;
        txn.touch(Touched::Budgets);
        txn.commit().await?;
        ok(DeleteResponse {})
    }

    async fn get_budget_status(
        &self,
        req: tonic::Request<GetBudgetStatusRequest>,
    ) -> ApiResult<GetBudgetStatusResponse> {
        let who = self.0.caller(&req).await?;
        let r = req.into_inner();
        let db = &self.0.db;
        // (scope, id, name) of each subject to report on.
        let mut subjects: Vec<(Scope, String, String)> = Vec::new();
        if !r.team.trim().is_empty() {
            let t = super::teams::find(db, &r.team).await?;
            let member = crate::store::entities::team_members::Entity::find_by_id((t.id.clone(), who.user_id.clone()))
                .one(db)
                .await
                .map_err(ApiError::from)?
                .is_some();
            if !who.is_admin() && !member {
                return Err(
                    ApiError::PermissionDenied("only admins and the team's members see its budget".into()).into()
                );
            }
            subjects.push((Scope::Team, t.id, t.name));
        } else {
            let u = if r.user.trim().is_empty() {
                super::users::find(db, &who.user_id).await?
            } else {
                super::users::find(db, &r.user).await?
            };
            if !who.is_admin() && u.id != who.user_id {
                return Err(ApiError::PermissionDenied("members see their own budget status only".into()).into());
            }
            let name = u.email.clone().unwrap_or(u.display_name.clone());
            subjects.push((Scope::User, u.id.clone(), name));
            // And the pools of the teams the user is in.
            for m in crate::store::entities::team_members::Entity::find()
                .filter(crate::store::entities::team_members::Column::UserId.eq(u.id.clone()))
                .all(db)
                .await
                .map_err(ApiError::from)?
            {
                let tname = teams::Entity::find_by_id(m.team_id.clone())
                    .one(db)
                    .await
                    .map_err(ApiError::from)?
                    .map(|t| t.name)
                    .unwrap_or_default();
                subjects.push((Scope::Team, m.team_id, tname));
            }
        }
        let b = book::load(db).await.map_err(ApiError::from)?;
        let now = Utc::now().timestamp();
        let mut lines = Vec::new();
        for (scope, id, name) in subjects {
            for l in b.lines(scope, &id) {
                let start = period_start(l.period, now);
                let spent = budget_spend::Entity::find_by_id((
                    scope.as_str().to_owned(),
                    id.clone(),
                    period_name(l.period).to_owned(),
                    start,
                ))
                .one(db)
                .await
                .map_err(ApiError::from)?
                .map_or(0, |s| s.spend_micro_usd);
                let status = match in_force(&l.rules, spent, l.limit).map(|r| r.action()) {
                    _ if l.limit == 0 => "blocked",
                    Some(BudgetAction::Block) => "blocked",
                    Some(BudgetAction::Shape) => "shaped",
                    Some(BudgetAction::Notify) => "warning",
                    _ => "ok",
                };
                let percent = if l.limit > 0 { (spent as f64 * 1000.0 / l.limit as f64).round() / 10.0 } else { 100.0 };
                lines.push(BudgetStatusLine {
                    budget_id: l.budget_id.clone(),
                    scope: scope.as_str().into(),
                    subject: name.clone(),
                    period: period_name(l.period).into(),
                    spend_micro_usd: spent,
                    spend_usd: usd(spent),
                    limit_micro_usd: l.limit,
                    limit_usd: usd(l.limit),
                    percent,
                    source: source_name(l.source).into(),
                    status: status.into(),
                    policy: format_policy(&l.rules),
                    period_start: rfc3339(start),
                    resets_at: rfc3339(next_start(l.period, start)),
                });
            }
        }
        ok(GetBudgetStatusResponse { lines })
    }
}
