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

/// Micro-USD as dollars, for messages and headers.
pub fn usd(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let m = micro.unsigned_abs();
    // Cents, rounded half up.
    let cents = (m + 5_000) / 10_000;
    format!("{sign}${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollars_are_rounded_to_the_cent() {
        assert_eq!(super::usd(5_000_000), "$5.00");
        assert_eq!(super::usd(4_995_000), "$5.00");
        assert_eq!(super::usd(1_234), "$0.00");
        assert_eq!(super::usd(12_345_678), "$12.35");
    }
}
