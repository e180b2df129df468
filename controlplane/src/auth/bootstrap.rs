//! The first admin. `ADMIN_USERNAME` (default `admin`) names it; with
//! `ADMIN_PASSWORD` set, that password is (re)applied at every start; without
//! it, a strong password is generated once, printed once, and never again.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, TransactionTrait};

use super::AuthError;
use super::{hash_password, verify_password};
use crate::fleet::{revision, Touched};
use crate::store::audit::append as audit;
use crate::store::entities::users;
use crate::store::ids;
use crate::store::AuditAction;
use crate::store::{Role, UserStatus};

pub async fn ensure_admin(db: &DatabaseConnection, username: &str, password: Option<&str>) -> Result<(), AuthError> {
    let existing = users::Entity::find().filter(users::Column::Email.eq(username)).one(db).await?;
    let txn = db.begin().await?;
    match existing {
        None => {
            let (password, generated) = match password {
                Some(p) => (p.to_owned(), false),
                None => (ids::random_base62(24), true),
            };
            let now = Utc::now();
            let row = users::ActiveModel {
                id: Set(ids::new_id("usr")),
                email: Set(Some(username.to_owned())),
                subject: Set(None),
                display_name: Set("Administrator".into()),
                role: Set(Role::Admin.as_str().into()),
                status: Set(UserStatus::Active.as_str().into()),
                password_hash: Set(Some(hash_password(&password))),
                created_at: Set(now),
                updated_at: Set(now),
                rpm: Set(0),
                tpm: Set(0),
            }
            .insert(&txn)
            .await?;
            audit(&txn, "system", AuditAction::UserCreate, "user", &row.id, None::<&users::Model>, Some(&row)).await?;
            txn.commit().await?;
            if generated {
                // Printed once, on stdout, for whoever started the service.
                println!("ccag-controlplane: generated password for admin user '{username}': {password}");
            }
            tracing::info!(username, "bootstrap admin created");
        }
        Some(user) => {
            if let Some(p) = password {
                if !user.password_hash.as_deref().is_some_and(|h| verify_password(p, h)) {
                    let mut am: users::ActiveModel = user.clone().into();
                    am.password_hash = Set(Some(hash_password(p)));
                    am.role = Set(Role::Admin.as_str().into());
                    am.status = Set(UserStatus::Active.as_str().into());
                    am.updated_at = Set(Utc::now());
                    let after = am.update(&txn).await?;
                    audit(&txn, "system", AuditAction::UserUpdate, "user", &after.id, Some(&user), Some(&after))
                        .await?;
                    // Its role or status may have changed, and with it its keys.
                    revision::bump(&txn, &[Touched::User(after.id.clone())]).await?;
                    tracing::info!(username, "bootstrap admin password reset from ADMIN_PASSWORD");
                }
            }
            txn.commit().await?;
        }
    }
    Ok(())
}
