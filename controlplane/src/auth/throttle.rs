//! Slows password guessing: after a few failed sign-ins for a username, each
//! further attempt must wait, twice as long after every failure (up to five
//! minutes). Kept in the database (`login_failures`), so every replica
//! counts the same failures; a success clears them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use crate::store::entities::login_failures;

const FREE_ATTEMPTS: u32 = 5;
pub const MAX_WAIT: Duration = Duration::from_secs(300);

fn wait_after(failures: u32) -> Duration {
    if failures < FREE_ATTEMPTS {
        return Duration::ZERO;
    }
    let exp = (failures - FREE_ATTEMPTS).min(16);
    Duration::from_secs(1u64 << exp).min(MAX_WAIT)
}

/// How long `failures`, the last at `last`, still hold the name back at `now`.
fn remaining(failures: u32, last: DateTime<Utc>, now: DateTime<Utc>) -> Option<Duration> {
    let until = last + chrono::Duration::from_std(wait_after(failures)).unwrap_or_default();
    (now < until).then(|| (until - now).to_std().unwrap_or_default())
}

fn name(username: &str) -> String {
    username.trim().to_lowercase()
}

#[derive(Default)]
pub struct LoginThrottle;

impl LoginThrottle {
    /// `Err(wait)` while `username` must wait before its next attempt.
    pub async fn check<C: ConnectionTrait>(
        &self,
        c: &C,
        username: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(), Duration>, DbErr> {
        let row = login_failures::Entity::find_by_id(name(username)).one(c).await?;
        Ok(match row.and_then(|r| remaining(r.failures.max(0) as u32, r.last_at, now)) {
            Some(wait) => Err(wait),
            None => Ok(()),
        })
    }

    /// Counts one failure, atomically, however many replicas fail at once.
    pub async fn failed<C: ConnectionTrait>(&self, c: &C, username: &str, now: DateTime<Utc>) -> Result<(), DbErr> {
        login_failures::Entity::insert(login_failures::ActiveModel {
            username: Set(name(username)),
            failures: Set(1),
            last_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(login_failures::Column::Username)
                .value(
                    login_failures::Column::Failures,
                    Expr::col((login_failures::Entity, login_failures::Column::Failures)).add(1),
                )
                .value(login_failures::Column::LastAt, Expr::value(now))
                .to_owned(),
        )
        .exec_without_returning(c)
        .await?;
        Ok(())
    }

    pub async fn succeeded<C: ConnectionTrait>(&self, c: &C, username: &str) -> Result<(), DbErr> {
        login_failures::Entity::delete_by_id(name(username)).exec(c).await?;
        Ok(())
    }

    /// Forgets names whose wait has long passed (singleton housekeeping).
    pub async fn prune<C: ConnectionTrait>(c: &C, now: DateTime<Utc>) -> Result<u64, DbErr> {
        let cut = now - chrono::Duration::from_std(MAX_WAIT * 2).unwrap_or_default();
        let res = login_failures::Entity::delete_many().filter(login_failures::Column::LastAt.lt(cut)).exec(c).await?;
        Ok(res.rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_cost_nothing() {
        let now = Utc::now();
        assert_eq!(remaining(FREE_ATTEMPTS - 1, now, now), None);
    }

    #[test]
    fn further_failures_must_wait_twice_as_long_each_time() {
        let now = Utc::now();
        assert_eq!(remaining(FREE_ATTEMPTS, now, now), Some(Duration::from_secs(1)));
        assert_eq!(remaining(FREE_ATTEMPTS + 1, now, now), Some(Duration::from_secs(2)));
        assert_eq!(remaining(FREE_ATTEMPTS + 1, now, now + chrono::Duration::seconds(2)), None);
    }

    #[test]
    fn the_wait_is_capped() {
        let now = Utc::now();
        assert_eq!(remaining(100, now, now), Some(MAX_WAIT));
    }

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(name(" Admin "), name("admin"));
    }
}
