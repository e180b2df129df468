//! Budgets: who may spend how much per calendar period, and what happens
//! past each threshold.
//!
//! * `book`: the budgets in force for every user and team (explicit, team
//!   member default, organisation default, team pool), rebuilt when the
//!   configuration changes;
//! * `spend`: the running spend per (subject, period), moved in the same
//!   transaction that stores usage records, and the outbox of threshold
//!   crossings written with it;
//! * `verdicts`: the book joined with the spend, published to the data
//!   planes, which enforce.

pub mod book;
pub mod spend;
pub mod verdicts;

pub use book::Book;
pub use verdicts::VerdictTable;

/// Whose budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    User,
    Team,
    Org,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Team => "team",
            Scope::Org => "org",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "user" => Some(Scope::User),
            "team" => Some(Scope::Team),
            "org" => Some(Scope::Org),
            _ => None,
        }
    }
}
