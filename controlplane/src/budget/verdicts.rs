//! The verdicts the data planes enforce: every budgeted user's and team's
//! lines with the spend counted so far in each current period.
//!
//! Like the rate-limit shares these are derived, not stored: every replica
//! computes them from the database (the book when the configuration
//! changes, the counters every `TICK` and soon after it stores usage), and
//! each verdict carries its own version, so a data plane is sent only the
//! verdicts that moved since it was last sent any.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ccag_proto::budget::period_start;
use ccag_proto::config::v1::{resource::Kind, BudgetVerdict, Resource, ResourceRef, ResourceType};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{watch, Notify};

use super::{book, spend, Book, Scope};
use crate::fleet::Publisher;

pub const TICK: Duration = Duration::from_secs(1);
/// Shortest gap between two computations woken by stored usage.
const MIN_GAP: Duration = Duration::from_millis(200);

/// By subject id: (the seq at which the verdict last changed, the verdict).
pub type Verdicts = HashMap<String, (u64, Arc<BudgetVerdict>)>;

#[derive(Debug, Default)]
pub struct VerdictTable {
    /// Bumped by every computation that changed a verdict.
    pub seq: u64,
    /// By subject id: (the seq at which it last changed, the verdict).
    pub users: Verdicts,
    pub teams: Verdicts,
    /// Subjects whose verdict went away, and when.
    pub removed: HashMap<(ResourceType, String), u64>,
    /// The budgets in force, for the threshold events written at ingest.
    pub book: Arc<Book>,
}

fn resource(ty: ResourceType, v: &BudgetVerdict, version: u64) -> Resource {
    let kind = match ty {
        ResourceType::TeamBudget => Kind::TeamBudget(v.clone()),
        _ => Kind::UserBudget(v.clone()),
    };
    Resource { version, kind: Some(kind) }
}

impl VerdictTable {
    fn maps(&self) -> [(ResourceType, &Verdicts); 2] {
        [(ResourceType::UserBudget, &self.users), (ResourceType::TeamBudget, &self.teams)]
    }

    /// Every verdict.
    pub fn all(&self) -> Vec<Resource> {
        self.maps().into_iter().flat_map(|(ty, m)| m.values().map(move |(ver, v)| resource(ty, v, *ver))).collect()
    }

    /// What changed after `seq`.
    pub fn since(&self, seq: u64) -> (Vec<Resource>, Vec<ResourceRef>) {
        let changed = self
            .maps()
            .into_iter()
            .flat_map(|(ty, m)| m.values().filter(|(ver, _)| *ver > seq).map(move |(ver, v)| resource(ty, v, *ver)))
            .collect();
        let removed = self
            .removed
            .iter()
            .filter(|(_, at)| **at > seq)
            .map(|((ty, name), _)| ResourceRef { r#type: *ty as i32, name: name.clone() })
            .collect();
        (changed, removed)
    }

    /// The next table from `book` and the counters, or `None` if nothing changed.
    fn next(
        &self,
        book: Arc<Book>,
        counters: &std::collections::BTreeMap<(Scope, String, ccag_proto::config::v1::BudgetPeriod), (i64, i64)>,
        now: i64,
    ) -> Option<VerdictTable> {
        let seq = self.seq + 1;
        let mut changed = !Arc::ptr_eq(&book, &self.book) && *book != *self.book;
        let mut removed = self.removed.clone();
        let mut build = |scope: Scope, ty: ResourceType, lines: &HashMap<String, Vec<book::Line>>, old: &Verdicts| {
            let mut out = HashMap::with_capacity(lines.len());
            for (id, ls) in lines {
                let v = BudgetVerdict {
                    id: id.clone(),
                    lines: ls
                        .iter()
                        .map(|l| {
                            let start = period_start(l.period, now);
                            let spent = counters
                                .get(&(scope, id.clone(), l.period))
                                .filter(|(s, _)| *s == start)
                                .map_or(0, |(_, v)| *v);
                            l.with_spend(start, spent)
                        })
                        .collect(),
                };
                match old.get(id) {
                    Some((ver, prev)) if **prev == v => {
                        out.insert(id.clone(), (*ver, prev.clone()));
                    }
                    _ => {
                        changed = true;
                        removed.remove(&(ty, id.clone()));
                        out.insert(id.clone(), (seq, Arc::new(v)));
                    }
                }
            }
            for id in old.keys().filter(|id| !lines.contains_key(*id)) {
                changed = true;
                removed.insert((ty, id.clone()), seq);
            }
            out
        };
        let users = build(Scope::User, ResourceType::UserBudget, &book.users, &self.users);
        let teams = build(Scope::Team, ResourceType::TeamBudget, &book.teams, &self.teams);
        changed.then_some(VerdictTable { seq, users, teams, removed, book })
    }
}

async fn catch_up_events(
    db: &DatabaseConnection,
    book: &Book,
    counters: &std::collections::BTreeMap<(Scope, String, ccag_proto::config::v1::BudgetPeriod), (i64, i64)>,
) -> Result<(), DbErr> {
    for ((scope, id, period), (start, spent)) in counters {
        for line in book.lines(*scope, id).iter().filter(|l| l.period == *period) {
            if line.rules.iter().any(|r| ccag_proto::budget::reached(*spent, line.limit, r.at_percent)) {
                spend::crossings(db, line, *scope, id, *start, 0, *spent).await?;
            }
        }
    }
    Ok(())
}

/// Computes the verdicts until `stop`; `wake` asks for a computation soon
/// (usage was stored).
pub fn spawn(
    db: DatabaseConnection,
    publisher: Arc<Publisher>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> watch::Receiver<Arc<VerdictTable>> {
    let (tx, rx) = watch::channel(Arc::new(VerdictTable::default()));
    let mut revisions = publisher.subscribe();
    tokio::spawn(async move {
        let mut book: Option<Arc<Book>> = None;
        loop {
            let result = async {
                let reloaded = book.is_none();
                if reloaded {
                    revisions.borrow_and_update();
                    book = Some(Arc::new(book::load(&db).await?));
                }
                let b = book.clone().unwrap_or_default();
                let now = chrono::Utc::now().timestamp();
                let counters = if b.is_empty() { Default::default() } else { spend::current(&db, now).await? };
                if reloaded {
                    // Usage stored while this replica still held the old
                    // book was checked against it: thresholds of the new
                    // one that spend has already passed get their events
                    // now (once: the outbox's unique index).
                    catch_up_events(&db, &b, &counters).await?;
                }
                let current = tx.borrow().clone();
                Ok::<_, DbErr>(current.next(b, &counters, now))
            }
            .await;
            match result {
                Ok(Some(next)) => {
                    tx.send_replace(Arc::new(next));
                }
                Ok(None) => {}
                // Keep the last verdicts: data planes go on enforcing them.
                Err(e) => tracing::warn!(error = %e, "cannot compute budget verdicts; keeping the last ones"),
            }
            let woken = tokio::select! {
                _ = tokio::time::sleep(TICK) => false,
                _ = wake.notified() => true,
                r = revisions.changed() => {
                    if r.is_err() { return; }
                    book = None;
                    false
                }
                _ = stop.wait_for(|s| *s) => return,
            };
            if woken {
                // Usage arrives in bursts: one computation for the burst.
                tokio::time::sleep(MIN_GAP).await;
            }
        }
    });
    rx
}
