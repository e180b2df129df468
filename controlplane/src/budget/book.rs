//! The budgets in force for each user and each team.
//!
//! Per period a user has at most one line: their own budget, else the
//! strictest per-member default of the teams they belong to, else the
//! organisation's default. A team has its pool. A request is judged by its
//! user's lines and by the lines of the team it was made under (the key's
//! team), and the most restrictive outcome wins.

use std::collections::HashMap;

use ccag_proto::budget::parse_period;
use ccag_proto::config::v1::{BudgetLine, BudgetPeriod, BudgetRule, BudgetSource};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::Scope;
use crate::store::entities::{budgets, team_members, teams, users};

/// One budget as it applies to one subject, without spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub budget_id: String,
    pub period: BudgetPeriod,
    pub limit: i64,
    pub rules: Vec<BudgetRule>,
    pub source: BudgetSource,
    pub label: String,
}

impl Line {
    pub fn with_spend(&self, period_start: i64, spend: i64) -> BudgetLine {
        BudgetLine {
            budget_id: self.budget_id.clone(),
            period: self.period as i32,
            limit_micro_usd: self.limit,
            rules: self.rules.clone(),
            source: self.source as i32,
            label: self.label.clone(),
            period_start,
            spend_micro_usd: spend,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    pub users: HashMap<String, Vec<Line>>,
    pub teams: HashMap<String, Vec<Line>>,
}

impl Book {
    pub fn lines(&self, scope: Scope, id: &str) -> &[Line] {
        let m = match scope {
            Scope::User => &self.users,
            Scope::Team => &self.teams,
            Scope::Org => return &[],
        };
        m.get(id).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.teams.is_empty()
    }
}

pub fn rules_of(b: &budgets::Model) -> Vec<BudgetRule> {
    // Stored policies were validated when set.
    ccag_proto::budget::parse_policy(&b.policy)
        .unwrap_or_else(|_| ccag_proto::budget::parse_policy("standard").unwrap_or_default())
}

fn line(b: &budgets::Model, source: BudgetSource, label: String) -> Option<Line> {
    Some(Line {
        budget_id: b.id.clone(),
        period: parse_period(&b.period)?,
        limit: b.limit_micro_usd,
        rules: rules_of(b),
        source,
        label,
    })
}

fn user_label(u: &users::Model) -> String {
    format!("user {}", u.email.as_deref().unwrap_or(&u.display_name))
}

pub fn build(
    all: &[budgets::Model],
    users: &[users::Model],
    teams: &[teams::Model],
    members: &[team_members::Model],
) -> Book {
    let team_name: HashMap<&str, &str> = teams.iter().map(|t| (t.id.as_str(), t.name.as_str())).collect();
    let mut own: HashMap<&str, Vec<&budgets::Model>> = HashMap::new();
    let mut member_default: HashMap<&str, Vec<&budgets::Model>> = HashMap::new();
    let mut org: Vec<&budgets::Model> = Vec::new();
    let mut book = Book::default();
    for b in all {
        match (Scope::parse(&b.scope), b.member_default) {
            (Some(Scope::User), _) => own.entry(b.subject_id.as_str()).or_default().push(b),
            (Some(Scope::Team), true) => member_default.entry(b.subject_id.as_str()).or_default().push(b),
            (Some(Scope::Team), false) => {
                let label = format!("team {}", team_name.get(b.subject_id.as_str()).unwrap_or(&b.subject_id.as_str()));
                if let Some(l) = line(b, BudgetSource::Team, label) {
                    book.teams.entry(b.subject_id.clone()).or_default().push(l);
                }
            }
            (Some(Scope::Org), _) => org.push(b),
            (None, _) => {}
        }
    }
    let mut teams_of: HashMap<&str, Vec<&str>> = HashMap::new();
    for m in members {
        teams_of.entry(m.user_id.as_str()).or_default().push(m.team_id.as_str());
    }
    if own.is_empty() && member_default.is_empty() && org.is_empty() {
        return book;
    }
    for u in users {
        let mut lines = Vec::new();
        for period in [BudgetPeriod::Daily, BudgetPeriod::Weekly, BudgetPeriod::Monthly] {
            let name = ccag_proto::budget::period_name(period);
            fn of_period<'b>(bs: &[&'b budgets::Model], name: &str) -> Option<&'b budgets::Model> {
                bs.iter().copied().find(|b| b.period == name)
            }
            if let Some(b) = own.get(u.id.as_str()).and_then(|bs| of_period(bs, name)) {
                lines.extend(line(b, BudgetSource::User, user_label(u)));
                continue;
            }
            let strictest = teams_of
                .get(u.id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|t| member_default.get(t).and_then(|bs| of_period(bs, name)))
                .min_by_key(|b| b.limit_micro_usd);
            if let Some(b) = strictest {
                lines.extend(line(b, BudgetSource::TeamMemberDefault, user_label(u)));
                continue;
            }
            if let Some(b) = of_period(&org, name) {
                lines.extend(line(b, BudgetSource::OrgDefault, user_label(u)));
            }
        }
        if !lines.is_empty() {
            book.users.insert(u.id.clone(), lines);
        }
    }
    book
}

pub async fn load<C: ConnectionTrait>(c: &C) -> Result<Book, DbErr> {
    let all = budgets::Entity::find().all(c).await?;
    if all.is_empty() {
        return Ok(Book::default());
    }
    let users = users::Entity::find().all(c).await?;
    let teams = teams::Entity::find().all(c).await?;
    let members = team_members::Entity::find().all(c).await?;
    Ok(build(&all, &users, &teams, &members))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn budget(id: &str, scope: &str, subject: &str, member_default: bool, period: &str, usd: i64) -> budgets::Model {
        budgets::Model {
            id: id.into(),
            scope: scope.into(),
            subject_id: subject.into(),
            member_default,
            period: period.into(),
            limit_micro_usd: usd * 1_000_000,
            policy: "standard".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn user(id: &str) -> users::Model {
        users::Model {
            id: id.into(),
            email: Some(format!("{id}@example.com")),
            subject: None,
            display_name: id.into(),
            role: "member".into(),
            status: "active".into(),
            password_hash: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            rpm: 0,
            tpm: 0,
        }
    }

    fn member(team: &str, user: &str) -> team_members::Model {
        team_members::Model { team_id: team.into(), user_id: user.into(), created_at: Utc::now() }
    }

    #[test]
    fn an_own_budget_wins_over_team_member_defaults_and_the_org_default() {
        let b = [
            budget("b1", "user", "u1", false, "daily", 5),
            budget("b2", "team", "t1", true, "daily", 3),
            budget("b3", "org", "", false, "daily", 1),
        ];
        let book = build(&b, &[user("u1"), user("u2"), user("u3")], &[], &[member("t1", "u1"), member("t1", "u2")]);
        assert_eq!(book.users["u1"][0].source, BudgetSource::User);
        assert_eq!(book.users["u2"][0].source, BudgetSource::TeamMemberDefault);
        assert_eq!(book.users["u3"][0].source, BudgetSource::OrgDefault);
        assert_eq!(book.users["u3"][0].limit, 1_000_000);
    }

    #[test]
    fn the_strictest_member_default_of_a_users_teams_applies() {
        let b = [budget("a", "team", "t1", true, "monthly", 30), budget("b", "team", "t2", true, "monthly", 20)];
        let book = build(&b, &[user("u1")], &[], &[member("t1", "u1"), member("t2", "u1")]);
        assert_eq!(book.users["u1"][0].budget_id, "b");
    }

    #[test]
    fn each_period_is_resolved_on_its_own() {
        let b = [budget("d", "user", "u1", false, "daily", 5), budget("m", "org", "", false, "monthly", 100)];
        let book = build(&b, &[user("u1")], &[], &[]);
        let ids: Vec<&str> = book.users["u1"].iter().map(|l| l.budget_id.as_str()).collect();
        assert_eq!(ids, ["d", "m"]);
    }

    #[test]
    fn a_team_pool_is_the_teams_and_not_its_members() {
        let b = [budget("p", "team", "t1", false, "daily", 50)];
        let book = build(&b, &[user("u1")], &[], &[member("t1", "u1")]);
        assert_eq!(book.teams["t1"][0].source, BudgetSource::Team);
        assert!(!book.users.contains_key("u1"));
    }
}
