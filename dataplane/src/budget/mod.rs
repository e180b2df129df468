//! Budget enforcement. The control plane sends, for every budgeted user
//! and team, a verdict: each budget line with the spend it has counted in
//! the current period. This data plane adds what it knows that the verdict
//! cannot yet:
//!
//! * `seen`: the counters as they stood right after the control plane
//!   stored this data plane's own records (it returns them with each usage
//!   report), so the data plane's own spend counts at once and exactly once;
//! * `pending`: the cost of its own finished requests not yet acknowledged,
//!   priced locally with the same table the control plane uses.
//!
//! The spend it judges by is `max(verdict, seen) + pending`: a lower bound
//! of the true spend (everything in it is real), so a block it decides is
//! never premature. Other data planes' spend reaches it with the next
//! verdict; to keep a burst across N data planes from overshooting a cap,
//! each one spends at most `1/N` of the headroom the verdict left before it
//! waits for the next verdict (a `Hold`: a short, retryable 429). The bound
//! this gives is in docs/budgets.md.
//!
//! The hot path (`judge`) takes no lock across an await (it is
//! synchronous), allocates nothing unless it refuses, and for an
//! unbudgeted key costs one hash lookup per subject.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ccag_proto::budget::{in_force, next_start, period_name, period_start, reached};
use ccag_proto::config::v1::{
    resource::Kind, BudgetAction, BudgetLine, BudgetPeriod, BudgetVerdict, LimitScope, PriceTable, SpendCounter,
};
use ccag_proto::pricing::Quantities;
use dashmap::DashMap;

use crate::config::resources::ResourceSet;

/// What a `Hold` asks the client to wait: about one verdict period.
pub const HOLD_RETRY_SECS: u64 = 1;

/// The verdicts and prices as last received.
#[derive(Debug, Default)]
pub struct Book {
    users: HashMap<String, BudgetVerdict>,
    teams: HashMap<String, BudgetVerdict>,
    prices: PriceTable,
    dataplanes: u32,
}

impl Book {
    pub fn from_resources(set: &ResourceSet) -> Book {
        let mut b = Book { dataplanes: 1, ..Default::default() };
        for k in set.kinds() {
            match k {
                Kind::UserBudget(v) => {
                    b.users.insert(v.id.clone(), v.clone());
                }
                Kind::TeamBudget(v) => {
                    b.teams.insert(v.id.clone(), v.clone());
                }
                Kind::Prices(p) => b.prices = p.clone(),
                Kind::Shares(s) => b.dataplanes = s.dataplane_count.max(1),
                _ => {}
            }
        }
        b
    }

    pub fn verdicts(&self) -> usize {
        self.users.len() + self.teams.len()
    }
}

/// This data plane's own spend of one subject that the verdict may not hold.
#[derive(Debug, Default)]
struct Local {
    /// Micro-USD of finished requests not yet acknowledged.
    pending: AtomicI64,
    /// Per period (daily, weekly, monthly): the period start and the counter
    /// as the control plane returned it after storing our records.
    seen_start: [AtomicI64; 3],
    seen_spend: [AtomicI64; 3],
}

fn index(p: BudgetPeriod) -> usize {
    match p {
        BudgetPeriod::Weekly => 1,
        BudgetPeriod::Monthly => 2,
        _ => 0,
    }
}

impl Local {
    fn seen(&self, p: BudgetPeriod, start: i64) -> i64 {
        let i = index(p);
        if self.seen_start[i].load(Ordering::Acquire) == start {
            self.seen_spend[i].load(Ordering::Acquire)
        } else {
            0
        }
    }
}

/// How a budgeted response stands, for its `x-ccag-budget-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: Status,
    /// Tenths of a percent of the limit spent.
    pub permille: i64,
    pub remaining_micro_usd: i64,
    /// Unix seconds: the next period start.
    pub resets: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok,
    Warning,
    Shaped,
    Blocked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Shaped => "shaped",
            Status::Blocked => "blocked",
        }
    }
}

/// What the budgets say about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No budget applies.
    Unbudgeted,
    Admit(Standing),
    /// Admit only under this reduced rate (requests per minute across the
    /// fleet), counted per subject.
    Shape {
        standing: Standing,
        rpm: u64,
        scope: LimitScope,
    },
    /// This data plane has spent its part of the headroom: wait for the
    /// next verdict.
    Hold {
        standing: Standing,
    },
    Block {
        standing: Standing,
        message: String,
        retry_after_secs: u64,
    },
}

impl Verdict {
    pub fn standing(&self) -> Option<&Standing> {
        match self {
            Verdict::Unbudgeted => None,
            Verdict::Admit(s) | Verdict::Shape { standing: s, .. } | Verdict::Hold { standing: s } => Some(s),
            Verdict::Block { standing, .. } => Some(standing),
        }
    }
}

/// One line judged.
struct Judged<'a> {
    line: &'a BudgetLine,
    action: Option<BudgetAction>,
    hold: bool,
    standing: Standing,
    rpm: u32,
    scope: LimitScope,
}

impl Judged<'_> {
    /// Block, hold, shape, notify, nothing: then the higher percentage.
    fn rank(&self) -> (u8, i64) {
        let r = match self.action {
            Some(BudgetAction::Block) => 4,
            _ if self.hold => 3,
            Some(BudgetAction::Shape) => 2,
            Some(BudgetAction::Notify) => 1,
            _ => 0,
        };
        (r, self.standing.permille)
    }
}

#[derive(Debug, Default)]
pub struct Budgets {
    book: ArcSwap<Book>,
    users: DashMap<Box<str>, Local>,
    teams: DashMap<Box<str>, Local>,
}

impl Budgets {
    pub fn install(&self, book: Book) {
        // Own spend of subjects no longer budgeted is forgotten.
        self.users.retain(|id, _| book.users.contains_key(id.as_ref()));
        self.teams.retain(|id, _| book.teams.contains_key(id.as_ref()));
        self.book.store(Arc::new(book));
    }

    pub fn book(&self) -> arc_swap::Guard<Arc<Book>> {
        self.book.load()
    }

    fn locals(&self, scope: LimitScope) -> &DashMap<Box<str>, Local> {
        match scope {
            LimitScope::Team => &self.teams,
            _ => &self.users,
        }
    }

    /// The budgets' verdict on a request by `user_id` under `team_id`, at
    /// `now` (Unix seconds).
    pub fn judge(&self, user_id: &str, team_id: &str, now: i64) -> Verdict {
        let book = self.book.load();
        let n = i64::from(book.dataplanes.max(1));
        let mut worst: Option<Judged> = None;
        let subjects = [(LimitScope::User, user_id, &book.users), (LimitScope::Team, team_id, &book.teams)];
        for (scope, id, verdicts) in subjects {
            if id.is_empty() {
                continue;
            }
            let Some(v) = verdicts.get(id) else { continue };
            let local = self.locals(scope).get(id);
            let pending = local.as_ref().map_or(0, |l| l.pending.load(Ordering::Acquire).max(0));
            for line in &v.lines {
                let period = line.period();
                let start = period_start(period, now);
                let verdict_spend = ccag_proto::budget::spend_now(line, start);
                let seen = local.as_ref().map_or(0, |l| l.seen(period, start));
                let base = verdict_spend.max(seen);
                let spend = base.saturating_add(pending);
                let limit = line.limit_micro_usd;
                let rule = in_force(&line.rules, spend, limit);
                let mut action = rule.map(|r| r.action());
                if limit <= 0 {
                    action = Some(BudgetAction::Block);
                }
                // The part of the headroom to the block threshold this data
                // plane may spend before the next verdict.
                let hold = n > 1
                    && action != Some(BudgetAction::Block)
                    && line.rules.iter().find(|r| r.action() == BudgetAction::Block).is_some_and(|b| {
                        let at = i128::from(limit) * i128::from(b.at_percent) / 100;
                        let share = (at - i128::from(verdict_spend)) / i128::from(n);
                        i128::from(base - verdict_spend + pending) >= share
                    });
                let status = match action {
                    Some(BudgetAction::Block) => Status::Blocked,
                    Some(BudgetAction::Shape) => Status::Shaped,
                    Some(BudgetAction::Notify) => Status::Warning,
                    _ if reached(spend, limit, 80) => Status::Warning,
                    _ => Status::Ok,
                };
                let permille = if limit > 0 {
                    i64::try_from(i128::from(spend) * 1000 / i128::from(limit)).unwrap_or(i64::MAX)
                } else {
                    1000
                };
                let j = Judged {
                    line,
                    action,
                    hold,
                    standing: Standing {
                        status,
                        permille,
                        remaining_micro_usd: (limit - spend).max(0),
                        resets: next_start(period, start),
                    },
                    rpm: rule.map_or(0, |r| r.shaped_rpm),
                    scope,
                };
                // Among blocks, the one that lifts last decides.
                let better = match &worst {
                    None => true,
                    Some(w) if w.rank().0 == 4 && j.rank().0 == 4 => j.standing.resets > w.standing.resets,
                    Some(w) => j.rank() > w.rank(),
                };
                if better {
                    worst = Some(j);
                }
            }
        }
        let Some(j) = worst else { return Verdict::Unbudgeted };
        match j.action {
            Some(BudgetAction::Block) => {
                let retry_after_secs = u64::try_from(j.standing.resets - now).unwrap_or(1).max(1);
                Verdict::Block { standing: j.standing, message: block_message(j.line, &j.standing), retry_after_secs }
            }
            _ if j.hold => Verdict::Hold { standing: j.standing },
            Some(BudgetAction::Shape) => {
                let rpm = u64::from(j.rpm).div_ceil(n as u64).max(1);
                Verdict::Shape { standing: j.standing, rpm, scope: j.scope }
            }
            _ => Verdict::Admit(j.standing),
        }
    }

    /// The local price of a finished request, added to the pending spend of
    /// its user and team if they are budgeted; returns it (0 if neither is).
    pub fn charge(&self, user_id: &str, team_id: &str, bedrock_model: &str, model: &str, q: &Quantities) -> i64 {
        let book = self.book.load();
        let budgeted = |scope: LimitScope, id: &str| {
            !id.is_empty()
                && match scope {
                    LimitScope::Team => book.teams.contains_key(id),
                    _ => book.users.contains_key(id),
                }
        };
        let (u, t) = (budgeted(LimitScope::User, user_id), budgeted(LimitScope::Team, team_id));
        if !u && !t {
            return 0;
        }
        let cost = book.prices.cost(bedrock_model, model, q).micro_usd;
        for (on, scope, id) in [(u, LimitScope::User, user_id), (t, LimitScope::Team, team_id)] {
            if on && cost > 0 {
                self.local(scope, id).pending.fetch_add(cost, Ordering::AcqRel);
            }
        }
        cost
    }

    fn local(&self, scope: LimitScope, id: &str) -> dashmap::mapref::one::Ref<'_, Box<str>, Local> {
        let map = self.locals(scope);
        if let Some(l) = map.get(id) {
            return l;
        }
        map.entry(Box::from(id)).or_default().downgrade()
    }

    /// The control plane stored records charged `cost` each: they leave
    /// `pending` (they are in the counters it returned).
    pub fn settle(&self, user_id: &str, team_id: &str, cost: i64) {
        if cost <= 0 {
            return;
        }
        for (scope, id) in [(LimitScope::User, user_id), (LimitScope::Team, team_id)] {
            if let Some(l) = self.locals(scope).get(id) {
                // Never below zero: a record spooled before a restart was
                // never pending here.
                let _ = l.pending.fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| Some((p - cost).max(0)));
            }
        }
    }

    /// Counters as the control plane returned them after a report.
    pub fn observe(&self, counters: &[SpendCounter]) {
        let book = self.book.load();
        for c in counters {
            let scope = c.scope();
            let budgeted = match scope {
                LimitScope::Team => book.teams.contains_key(&c.id),
                LimitScope::User => book.users.contains_key(&c.id),
                _ => false,
            };
            if !budgeted {
                continue;
            }
            let l = self.local(scope, &c.id);
            let i = index(c.period());
            let held = l.seen_start[i].load(Ordering::Acquire);
            if c.period_start > held {
                l.seen_spend[i].store(c.spend_micro_usd, Ordering::Release);
                l.seen_start[i].store(c.period_start, Ordering::Release);
            } else if c.period_start == held {
                l.seen_spend[i].fetch_max(c.spend_micro_usd, Ordering::AcqRel);
            }
        }
    }
}

fn block_message(line: &BudgetLine, s: &Standing) -> String {
    let resets = crate::http::ratelimit_headers::rfc3339_unix(s.resets);
    let spent = line.limit_micro_usd - s.remaining_micro_usd;
    let spent = if s.remaining_micro_usd == 0 { s.permille * line.limit_micro_usd / 1000 } else { spent };
    format!(
        "Spend limit reached: the {} budget of {} is ${} of ${} ({}.{}%). It resets at {}. Ask an admin to raise it.",
        period_name(line.period()),
        line.label,
        ccag_proto::budget::dollars(spent),
        ccag_proto::budget::dollars(line.limit_micro_usd),
        s.permille / 10,
        s.permille % 10,
        resets
    )
}

#[cfg(test)]
mod tests;
