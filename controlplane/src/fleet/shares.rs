//! Each data plane's share of every rate limit, following demand.
//!
//! Data planes enforce limits locally, without talking to each other on the
//! hot path. Behind a load balancer one developer's keep-alive connections
//! stick to one data plane, so an equal split (limit ÷ data planes) would
//! refuse them early. Every `TICK`, each replica reads the spend log of the
//! last minute, grouped by data plane and subject (all data planes report
//! there, whichever replica they talk to), and gives each data plane:
//!
//! * what it already admitted in the window (`used`), so that moving a
//!   share never lets the fleet admit a minute's limit twice over; plus
//! * a part of the headroom (`limit - Σ used`): a tenth spread evenly, so
//!   idle data planes keep a floor, and the rest in proportion to each data
//!   plane's requests in the last `RECENT` (refused ones included: they are
//!   demand that a share turned away).
//!
//! The shares add up to the limit (each is at least 1, since 0 would mean
//! unlimited). A subject with no traffic anywhere has no explicit share,
//! and each data plane enforces `ceil(limit / data planes)` for it.
//! docs/controlplane.md states the accuracy this reaches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ccag_proto::config::v1::{resource::Kind, LimitScope, LimitShare, LimitShares, ResourceType};
use chrono::Utc;
use sea_orm::sea_query::{Alias, Expr, Func, SimpleExpr};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use tokio::sync::watch;

use super::registry::Registry;
use super::Publisher;
use crate::store::entities::usage_records;

pub const TICK: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(60);
const RECENT: Duration = Duration::from_secs(10);
/// The usage outcomes of requests a data plane refused before admitting
/// them (a rate limit, a spent budget).
pub const REFUSED_OUTCOMES: [&str; 2] = ["rate_limited", "budget_blocked"];

/// The shares of every data plane in the fleet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharesTable {
    pub dataplane_count: u32,
    pub by_dataplane: HashMap<String, Vec<LimitShare>>,
}

impl SharesTable {
    pub fn for_dataplane(&self, id: &str) -> LimitShares {
        LimitShares {
            dataplane_count: self.dataplane_count.max(1),
            shares: self.by_dataplane.get(id).cloned().unwrap_or_default(),
        }
    }
}

/// One data plane's traffic of one subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Demand {
    /// Requests admitted in the last minute.
    pub requests: u64,
    /// Tokens counted in the last minute.
    pub tokens: u64,
    /// Requests seen (admitted or refused) in the last `RECENT`.
    pub recent: u64,
}

/// Splits `limit` between data planes given each one's `used` and `weight`.
/// `absent_used` is what data planes no longer in the fleet admitted.
fn split(limit: u64, used: &[u64], weight: &[u64], absent_used: u64) -> Vec<u64> {
    let n = used.len() as u128;
    if n == 0 {
        return Vec::new();
    }
    let total_used: u128 = used.iter().map(|&u| u as u128).sum::<u128>() + absent_used as u128;
    let headroom = (limit as u128).saturating_sub(total_used);
    let total_w: u128 = weight.iter().map(|&w| w as u128).sum();
    let floor = headroom / (10 * n);
    let rest = headroom - floor * n;
    let mut out: Vec<u128> = used
        .iter()
        .zip(weight)
        .map(|(&u, &w)| u as u128 + floor + (rest * w as u128).checked_div(total_w).unwrap_or(rest / n))
        .collect();
    // Rounding leaves a little: it goes to the busiest data plane.
    let given: u128 = out.iter().sum::<u128>() + absent_used as u128;
    let target = total_used.max(limit as u128);
    let busiest = (0..weight.len()).max_by_key(|&i| (weight[i], used[i])).unwrap_or(0);
    if given < target {
        out[busiest] += target - given;
    }
    // No share may be 0 (that would mean unlimited): the busiest pays for
    // the floors of 1 while it can.
    for i in 0..out.len() {
        if out[i] == 0 {
            out[i] = 1;
            if i != busiest && out[busiest] > 1 {
                out[busiest] -= 1;
            }
        }
    }
    out.into_iter().map(|s| u64::try_from(s).unwrap_or(u64::MAX)).collect()
}

/// A subject's configured limits and each live data plane's demand.
pub struct SubjectDemand {
    pub scope: LimitScope,
    pub id: String,
    pub rpm: u64,
    pub tpm: u64,
    /// By data-plane id; data planes not in `live` count as absent.
    pub by_dataplane: HashMap<String, Demand>,
}

pub fn compute(live: &[String], subjects: &[SubjectDemand]) -> SharesTable {
    let mut table = SharesTable { dataplane_count: live.len().max(1) as u32, by_dataplane: HashMap::new() };
    if live.is_empty() {
        return table;
    }
    for s in subjects {
        let d: Vec<Demand> = live.iter().map(|id| s.by_dataplane.get(id).copied().unwrap_or_default()).collect();
        let absent = |f: fn(&Demand) -> u64| {
            s.by_dataplane.iter().filter(|(id, _)| !live.contains(id)).map(|(_, d)| f(d)).sum::<u64>()
        };
        let weight: Vec<u64> = d.iter().map(|x| x.recent).collect();
        if weight.iter().all(|&w| w == 0) && d.iter().all(|x| x.requests == 0 && x.tokens == 0) {
            continue;
        }
        let rpm = (s.rpm > 0)
            .then(|| split(s.rpm, &d.iter().map(|x| x.requests).collect::<Vec<_>>(), &weight, absent(|x| x.requests)));
        let tpm = (s.tpm > 0)
            .then(|| split(s.tpm, &d.iter().map(|x| x.tokens).collect::<Vec<_>>(), &weight, absent(|x| x.tokens)));
        for (i, id) in live.iter().enumerate() {
            table.by_dataplane.entry(id.clone()).or_default().push(LimitShare {
                scope: s.scope as i32,
                id: s.id.clone(),
                rpm: rpm.as_ref().map_or(0, |v| v[i]),
                tpm: tpm.as_ref().map_or(0, |v| v[i]),
            });
        }
    }
    for v in table.by_dataplane.values_mut() {
        v.sort_by(|a, b| (a.scope, &a.id).cmp(&(b.scope, &b.id)));
    }
    table
}

/// The last minute's usage, grouped by data plane and subject.
async fn demand(db: &DatabaseConnection) -> Result<Vec<(String, String, String, String, Demand)>, DbErr> {
    let now = Utc::now();
    let window = now - chrono::Duration::from_std(WINDOW).unwrap_or_default();
    let recent = now - chrono::Duration::from_std(RECENT).unwrap_or_default();
    use usage_records::Column as C;
    // Sums cast to BIGINT: PostgreSQL's SUM of integers is NUMERIC.
    let sum = |e: SimpleExpr| -> SimpleExpr { Func::cast_as(Func::sum(e), Alias::new("BIGINT")).into() };
    let admitted: SimpleExpr = Expr::case(Expr::col(C::Outcome).is_not_in(REFUSED_OUTCOMES), 1).finally(0).into();
    let is_recent: SimpleExpr = Expr::case(Expr::col(C::StartedAt).gte(recent), 1).finally(0).into();
    let rows: Vec<(String, String, String, String, i64, i64, i64)> = usage_records::Entity::find()
        .select_only()
        .column(C::DataplaneId)
        .column(C::KeyId)
        .column(C::UserId)
        .column(C::TeamId)
        .column_as(sum(admitted), "requests")
        .column_as(sum(Expr::col(C::InputTokens).add(Expr::col(C::OutputTokens))), "tokens")
        .column_as(sum(is_recent), "recent")
        .filter(C::StartedAt.gte(window))
        .group_by(C::DataplaneId)
        .group_by(C::KeyId)
        .group_by(C::UserId)
        .group_by(C::TeamId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(dp, k, u, t, n, tok, rec)| {
            (dp, k, u, t, Demand { requests: n.max(0) as u64, tokens: tok.max(0) as u64, recent: rec.max(0) as u64 })
        })
        .collect())
}

/// Joins the usage with the limits the publisher holds.
fn subjects(publisher: &Publisher, rows: Vec<(String, String, String, String, Demand)>) -> Vec<SubjectDemand> {
    let mut by: HashMap<(i32, String), SubjectDemand> = HashMap::new();
    publisher.read(|state| {
        for (dp, key, user, team, d) in rows {
            let limited = [
                (LimitScope::Key, ResourceType::Key, key),
                (LimitScope::User, ResourceType::UserLimit, user),
                (LimitScope::Team, ResourceType::TeamLimit, team),
            ];
            for (scope, ty, id) in limited {
                if id.is_empty() {
                    continue;
                }
                let limits = state.get(ty, &id).and_then(|r| match r.kind.as_ref()? {
                    Kind::Key(k) => Some((k.rpm, k.tpm)),
                    Kind::UserLimit(l) | Kind::TeamLimit(l) => Some((l.rpm, l.tpm)),
                    _ => None,
                });
                let Some((rpm, tpm)) = limits.filter(|(r, t)| *r > 0 || *t > 0) else { continue };
                let e = by.entry((scope as i32, id.clone())).or_insert_with(|| SubjectDemand {
                    scope,
                    id,
                    rpm,
                    tpm,
                    by_dataplane: HashMap::new(),
                });
                let slot = e.by_dataplane.entry(dp.clone()).or_default();
                slot.requests += d.requests;
                slot.tokens += d.tokens;
                slot.recent += d.recent;
            }
        }
    });
    by.into_values().collect()
}

pub fn spawn(
    db: DatabaseConnection,
    registry: Arc<Registry>,
    publisher: Arc<Publisher>,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<Arc<SharesTable>> {
    let (tx, rx) = watch::channel(Arc::new(SharesTable { dataplane_count: 1, by_dataplane: HashMap::new() }));
    let mut membership = registry.membership.subscribe();
    tokio::spawn(async move {
        loop {
            let result = async {
                let live: Vec<String> = registry.live().await?.into_iter().map(|d| d.id).collect();
                let rows = demand(&db).await?;
                Ok::<_, DbErr>(compute(&live, &subjects(&publisher, rows)))
            }
            .await;
            match result {
                Ok(table) => {
                    if **tx.borrow() != table {
                        tx.send_replace(Arc::new(table));
                    }
                }
                // Keep the last shares: they stay within the limit.
                Err(e) => tracing::warn!(error = %e, "cannot compute rate-limit shares; keeping the last ones"),
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                r = membership.changed() => { if r.is_err() { return; } }
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(requests: u64, recent: u64) -> Demand {
        Demand { requests, tokens: 0, recent }
    }

    fn subject(rpm: u64, d: &[(&str, Demand)]) -> SubjectDemand {
        SubjectDemand {
            scope: LimitScope::Key,
            id: "k".into(),
            rpm,
            tpm: 0,
            by_dataplane: d.iter().map(|(id, d)| (id.to_string(), *d)).collect(),
        }
    }

    fn live(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn rpm_of(t: &SharesTable, dp: &str) -> u64 {
        t.by_dataplane[dp][0].rpm
    }

    #[test]
    fn traffic_pinned_to_one_data_plane_gets_nearly_the_whole_limit_there() {
        let t = compute(&live(&["a", "b", "c"]), &[subject(30, &[("a", demand(10, 10))])]);
        assert_eq!(rpm_of(&t, "a"), 28);
        assert_eq!((rpm_of(&t, "b"), rpm_of(&t, "c")), (1, 1));
        assert_eq!(t.dataplane_count, 3);
    }

    #[test]
    fn shares_add_up_to_the_limit() {
        let t = compute(&live(&["a", "b"]), &[subject(1000, &[("a", demand(100, 30)), ("b", demand(50, 10))])]);
        assert_eq!(rpm_of(&t, "a") + rpm_of(&t, "b"), 1000);
        assert!(rpm_of(&t, "a") > rpm_of(&t, "b"));
    }

    #[test]
    fn a_share_never_drops_below_what_its_data_plane_admitted_in_the_window() {
        // Demand moved from a to b; a's admitted requests still fill the window.
        let t = compute(&live(&["a", "b"]), &[subject(100, &[("a", demand(90, 0)), ("b", demand(5, 20))])]);
        assert!(rpm_of(&t, "a") >= 90);
        assert_eq!(rpm_of(&t, "a") + rpm_of(&t, "b"), 100);
        assert!(rpm_of(&t, "b") <= 10, "b may only have what a has not used");
    }

    #[test]
    fn a_vanished_data_planes_usage_still_fills_the_window() {
        let t = compute(&live(&["a"]), &[subject(100, &[("gone", demand(60, 0)), ("a", demand(1, 5))])]);
        assert_eq!(rpm_of(&t, "a"), 40);
    }

    #[test]
    fn a_subject_without_traffic_has_no_explicit_share() {
        let t = compute(&live(&["a", "b"]), &[subject(100, &[])]);
        assert!(t.by_dataplane.is_empty());
        assert_eq!(t.for_dataplane("a").dataplane_count, 2);
    }

    #[test]
    fn no_share_is_zero_which_would_mean_unlimited() {
        let t = compute(&live(&["a", "b", "c"]), &[subject(2, &[("a", demand(2, 5))])]);
        assert!(t.by_dataplane.values().all(|v| v[0].rpm >= 1));
    }
}
