//! Running spend per (subject, period), moved by the transaction that
//! stores the usage records, so that a record counts exactly once however
//! often it is reported and by however many replicas; and the outbox of
//! threshold crossings, written in that same transaction.

use std::collections::BTreeMap;

use ccag_proto::budget::{period_name, period_start, reached};
use ccag_proto::config::v1::{BudgetAction, BudgetPeriod, LimitScope, SpendCounter};
use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, OnConflict};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set, TryInsertResult};

use super::book::Line;
use super::{Book, Scope};
use crate::store::entities::{budget_events, budget_spend};

const PERIODS: [BudgetPeriod; 3] = [BudgetPeriod::Daily, BudgetPeriod::Weekly, BudgetPeriod::Monthly];

/// One stored record's cost and whom it counts against.
pub struct Charge<'a> {
    pub user_id: &'a str,
    pub team_id: &'a str,
    /// Unix seconds: the period is the one the request started in.
    pub started_at: i64,
    pub micro_usd: i64,
}

type CounterKey = (Scope, String, BudgetPeriod, i64);

/// Adds `charges` to the counters; returns the counters moved, as they are now.
pub async fn apply<C: ConnectionTrait>(c: &C, book: &Book, charges: &[Charge<'_>]) -> Result<Vec<SpendCounter>, DbErr> {
    // Sorted, so that concurrent transactions lock rows in one order.
    let mut deltas: BTreeMap<CounterKey, i64> = BTreeMap::new();
    for ch in charges.iter().filter(|c| c.micro_usd > 0) {
        for (scope, id) in [(Scope::User, ch.user_id), (Scope::Team, ch.team_id)] {
            if id.is_empty() {
                continue;
            }
            for p in PERIODS {
                *deltas.entry((scope, id.to_owned(), p, period_start(p, ch.started_at))).or_default() += ch.micro_usd;
            }
        }
    }
    let mut out = Vec::with_capacity(deltas.len());
    let entries: Vec<(CounterKey, i64)> = deltas.into_iter().collect();
    // Bounded statements keep within every backend's bind-parameter limit.
    for chunk in entries.chunks(300) {
        let rows = chunk.iter().map(|((scope, id, p, start), delta)| budget_spend::ActiveModel {
            scope: Set(scope.as_str().to_owned()),
            subject_id: Set(id.clone()),
            period: Set(period_name(*p).to_owned()),
            period_start: Set(*start),
            spend_micro_usd: Set(*delta),
        });
        use budget_spend::Column as S;
        let add = Expr::col((budget_spend::Entity, S::SpendMicroUsd))
            .add(Expr::col((Alias::new("excluded"), Alias::new("spend_micro_usd"))));
        let moved = budget_spend::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([S::Scope, S::SubjectId, S::Period, S::PeriodStart])
                    .value(S::SpendMicroUsd, add)
                    .to_owned(),
            )
            .exec_with_returning_many(c)
            .await?;
        let by_key: BTreeMap<(String, String, String, i64), i64> =
            moved.into_iter().map(|m| ((m.scope, m.subject_id, m.period, m.period_start), m.spend_micro_usd)).collect();
        for ((scope, id, p, start), delta) in chunk {
            let Some(&after) = by_key.get(&(scope.as_str().to_owned(), id.clone(), period_name(*p).to_owned(), *start))
            else {
                continue;
            };
            let lines = book.lines(*scope, id).iter().filter(|l| l.period == *p);
            for line in lines {
                crossings(c, line, *scope, id, *start, after - delta, after).await?;
            }
            out.push(SpendCounter {
                scope: match scope {
                    Scope::Team => LimitScope::Team,
                    _ => LimitScope::User,
                } as i32,
                id: id.clone(),
                period: *p as i32,
                period_start: *start,
                spend_micro_usd: after,
            });
        }
    }
    Ok(out)
}

/// Writes one event per threshold of `line` that spend passed going from
/// `before` to `after` (at most once per budget, subject, period, threshold
/// and limit: a raised limit arms its thresholds again).
pub async fn crossings<C: ConnectionTrait>(
    c: &C,
    line: &Line,
    scope: Scope,
    subject: &str,
    period_start: i64,
    before: i64,
    after: i64,
) -> Result<u32, DbErr> {
    let mut written = 0;
    for rule in &line.rules {
        if !reached(after, line.limit, rule.at_percent) || reached(before, line.limit, rule.at_percent) {
            continue;
        }
        let action = match rule.action() {
            BudgetAction::Notify => "notify",
            BudgetAction::Shape => "shape",
            BudgetAction::Block => "block",
            BudgetAction::Unspecified => continue,
        };
        use budget_events::Column as E;
        let event_id = crate::store::ids::new_id("bev");
        let ev = budget_events::ActiveModel {
            id: Set(event_id.clone()),
            budget_id: Set(line.budget_id.clone()),
            scope: Set(scope.as_str().to_owned()),
            subject_id: Set(subject.to_owned()),
            period: Set(period_name(line.period).to_owned()),
            period_start: Set(period_start),
            threshold_percent: Set(rule.at_percent as i32),
            action: Set(action.to_owned()),
            limit_micro_usd: Set(line.limit),
            spend_micro_usd: Set(after),
            created_at: Set(Utc::now()),
        };
        let r = budget_events::Entity::insert(ev)
            .on_conflict(
                OnConflict::columns([E::BudgetId, E::SubjectId, E::PeriodStart, E::ThresholdPercent, E::LimitMicroUsd])
                    .do_nothing()
                    .to_owned(),
            )
            .do_nothing()
            .exec_without_returning(c)
            .await?;
        if let TryInsertResult::Inserted(n) = r {
            written += n as u32;
            // The notification goes out with the crossing, in its transaction.
            let crossing = crate::notify::producers::Crossing {
                event_id: &event_id,
                budget_id: &line.budget_id,
                scope: scope.as_str(),
                subject_id: subject,
                subject_name: &subject_name(c, scope, subject).await?,
                period: period_name(line.period),
                period_start,
                threshold_percent: rule.at_percent,
                action,
                limit_micro_usd: line.limit,
                spend_micro_usd: after,
            };
            if let Some(e) = crate::notify::producers::budget_crossing(&crossing) {
                crate::notify::emit(c, &e).await?;
            }
        }
    }
    Ok(written)
}

/// A user's email (or display name) or a team's name, for the events.
async fn subject_name<C: ConnectionTrait>(c: &C, scope: Scope, id: &str) -> Result<String, DbErr> {
    use crate::store::entities::{teams, users};
    Ok(match scope {
        Scope::Team => teams::Entity::find_by_id(id.to_owned()).one(c).await?.map(|t| t.name),
        _ => users::Entity::find_by_id(id.to_owned()).one(c).await?.map(|u| u.email.unwrap_or(u.display_name)),
    }
    .unwrap_or_default())
}

/// The spend counted for each (scope, subject, period) of the periods
/// holding `now`.
pub async fn current<C: ConnectionTrait>(
    c: &C,
    now: i64,
) -> Result<BTreeMap<(Scope, String, BudgetPeriod), (i64, i64)>, DbErr> {
    use sea_orm::{ColumnTrait, Condition, QueryFilter};
    let mut cond = Condition::any();
    for p in PERIODS {
        cond = cond.add(
            Condition::all()
                .add(budget_spend::Column::Period.eq(period_name(p)))
                .add(budget_spend::Column::PeriodStart.eq(period_start(p, now))),
        );
    }
    let mut out = BTreeMap::new();
    for row in budget_spend::Entity::find().filter(cond).all(c).await? {
        let (Some(scope), Some(p)) = (Scope::parse(&row.scope), ccag_proto::budget::parse_period(&row.period)) else {
            continue;
        };
        out.insert((scope, row.subject_id, p), (row.period_start, row.spend_micro_usd));
    }
    Ok(out)
}
