//! The configuration revision: one row (`config_state`) bumped in the same
//! transaction as every change that affects data planes, with a log of what
//! each revision touched (`config_changes`). An audit-only change bumps
//! nothing.
//!
//! The bump is an `UPDATE … RETURNING` on that one row, so concurrent
//! writers queue on its row lock and revisions commit in the order they are
//! numbered: a reader that has seen revision N has seen every revision
//! below it. On PostgreSQL the same transaction sends a NOTIFY, delivered
//! at commit to every replica's listener.

use std::collections::HashSet;

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, Set, Statement,
};

use super::resources::Touched;
use crate::store::entities::{config_changes, config_state};

/// The channel replicas LISTEN on.
pub const CHANNEL: &str = "ccag_config";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub epoch: String,
    pub revision: u64,
}

pub async fn current<C: ConnectionTrait>(c: &C) -> Result<Committed, DbErr> {
    let row = config_state::Entity::find_by_id(1)
        .one(c)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("config_state has no row; were the migrations applied?".into()))?;
    Ok(Committed { epoch: row.epoch, revision: row.revision.max(0) as u64 })
}

fn new_epoch() -> String {
    crate::store::ids::random_base62(12)
}

/// Gives a new database its first epoch; any replica may win the race.
pub async fn ensure_epoch<C: ConnectionTrait>(c: &C) -> Result<Committed, DbErr> {
    config_state::Entity::update_many()
        .col_expr(config_state::Column::Epoch, sea_orm::sea_query::Expr::value(new_epoch()))
        .filter(config_state::Column::Id.eq(1))
        .filter(config_state::Column::Epoch.eq(""))
        .exec(c)
        .await?;
    current(c).await
}

/// Starts a new epoch when the stored history is found to have gone
/// backwards (a database restored from an older backup). Only the replica
/// that still sees `old` changes it, so two replicas noticing at once
/// agree on one new epoch.
pub async fn rotate_epoch<C: ConnectionTrait>(c: &C, old: &str) -> Result<Committed, DbErr> {
    config_state::Entity::update_many()
        .col_expr(config_state::Column::Epoch, sea_orm::sea_query::Expr::value(new_epoch()))
        .filter(config_state::Column::Id.eq(1))
        .filter(config_state::Column::Epoch.eq(old))
        .exec(c)
        .await?;
    current(c).await
}

/// Takes the next revision and logs what it touched. Call inside the
/// transaction of the change itself.
pub async fn bump<C: ConnectionTrait>(c: &C, touched: &[Touched]) -> Result<u64, DbErr> {
    let backend = c.get_database_backend();
    let row = c
        .query_one(Statement::from_string(
            backend,
            "UPDATE config_state SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("config_state has no row".into()))?;
    let revision: i64 = row.try_get("", "revision")?;
    let now = Utc::now();
    let unique: HashSet<&Touched> = touched.iter().collect();
    let rows: Vec<config_changes::ActiveModel> = unique
        .into_iter()
        .map(|t| config_changes::ActiveModel {
            revision: Set(revision),
            kind: Set(t.kind().to_owned()),
            name: Set(t.name().to_owned()),
            at: Set(now),
        })
        .collect();
    for chunk in rows.chunks(500) {
        config_changes::Entity::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([
                    config_changes::Column::Revision,
                    config_changes::Column::Kind,
                    config_changes::Column::Name,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(c)
            .await?;
    }
    if backend == DatabaseBackend::Postgres {
        c.execute(Statement::from_sql_and_values(
            backend,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), revision.to_string().into()],
        ))
        .await?;
    }
    Ok(revision as u64)
}

/// What revisions `after + 1 ..= upto` touched, or `None` when the log no
/// longer holds all of them (pruned): the reader must then load everything.
pub async fn changes<C: ConnectionTrait>(c: &C, after: u64, upto: u64) -> Result<Option<Vec<Touched>>, DbErr> {
    if upto <= after {
        return Ok(Some(Vec::new()));
    }
    let rows = config_changes::Entity::find()
        .filter(config_changes::Column::Revision.gt(after as i64))
        .filter(config_changes::Column::Revision.lte(upto as i64))
        .order_by_asc(config_changes::Column::Revision)
        .all(c)
        .await?;
    let seen: HashSet<i64> = rows.iter().map(|r| r.revision).collect();
    // Every bump logs at least one row, so a missing revision was pruned.
    if seen.len() as u64 != upto - after {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        match Touched::parse(&r.kind, &r.name) {
            Some(t) => out.push(t),
            // Written by a newer control plane: only a full load is safe.
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Drops log rows older than the newest `keep` revisions.
pub async fn prune<C: ConnectionTrait>(c: &C, keep: u64) -> Result<u64, DbErr> {
    let now = current(c).await?;
    if now.revision <= keep {
        return Ok(0);
    }
    let res = config_changes::Entity::delete_many()
        .filter(config_changes::Column::Revision.lte((now.revision - keep) as i64))
        .exec(c)
        .await?;
    Ok(res.rows_affected)
}
