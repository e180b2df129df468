//! "Mutate, audit, bump revision, commit" as one step. A handler opens a
//! `Change`, makes its writes through `db()`, records the audit entry, says
//! which data-plane resources it touched, and commits: the configuration
//! revision moves in the same transaction when (and only when) something a
//! data plane serves was touched, and the data planes hear of it at once.

use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde::Serialize;

use super::{ApiError, Ctx};
use crate::fleet::{revision, Touched};

pub struct Change<'a> {
    ctx: &'a Ctx,
    txn: DatabaseTransaction,
    actor: String,
    touched: Vec<Touched>,
}

impl<'a> Change<'a> {
    pub async fn begin(ctx: &'a Ctx, actor: &str) -> Result<Change<'a>, ApiError> {
        let txn = ctx.db.begin().await?;
        Ok(Change { ctx, txn, actor: actor.to_owned(), touched: Vec::new() })
    }

    pub fn db(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// A resource that data planes serve changed (or may have).
    pub fn touch(&mut self, t: Touched) {
        self.touched.push(t);
    }

    /// Appends the audit entry, in this transaction, so that the change and
    /// its record commit together.
    pub async fn audit<T: Serialize>(
        &self,
        action: crate::store::AuditAction,
        resource_type: &str,
        resource_id: &str,
        before: Option<&T>,
        after: Option<&T>,
    ) -> Result<(), ApiError> {
        Ok(crate::store::audit::append(&self.txn, &self.actor, action, resource_type, resource_id, before, after)
            .await?)
    }

    /// Writes a notification event in this transaction: it is sent if,
    /// and only if, the change commits.
    pub async fn emit(&self, e: &crate::notify::Event) -> Result<(), ApiError> {
        crate::notify::emit(&self.txn, e).await?;
        Ok(())
    }

    pub async fn commit(self) -> Result<(), ApiError> {
        let bumped = if self.touched.is_empty() { None } else { Some(revision::bump(&self.txn, &self.touched).await?) };
        self.txn.commit().await?;
        if let Some(revision) = bumped {
            self.ctx.publisher.committed_here(revision);
            self.ctx.publisher.notify();
        }
        Ok(())
    }
}
