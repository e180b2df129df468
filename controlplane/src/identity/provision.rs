//! What a verified identity becomes: the user it is linked to (by the
//! provider's subject, then by a pre-created user's subject or email),
//! created on first sign-in when the provider allows it; its role from
//! `ADMIN_USERS` and the provider's admin groups; its teams from the
//! provider's group mappings. All in one audited transaction.

use std::collections::BTreeSet;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, Set};

use super::verify::Verified;
use super::{IdentityError, Provider};
use crate::api::{insert_user, ApiError, Change, Ctx, NewUser};
use crate::fleet::Touched;
use crate::store::entities::{team_members, user_identities, users};
use crate::store::{AuditAction, Role, UserStatus};

impl From<ApiError> for IdentityError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unavailable(m) => IdentityError::ProviderUnavailable(m),
            other => IdentityError::Forbidden(other.to_string()),
        }
    }
}

fn listed(admin_users: &[String], v: &Verified) -> bool {
    admin_users.iter().any(|a| a == &v.subject || v.email.as_deref().is_some_and(|e| a.eq_ignore_ascii_case(e)))
}

/// The role the provider's settings give, or None to leave it as it is.
pub fn role_for(p: &Provider, admin_users: &[String], v: &Verified) -> Option<Role> {
    if listed(admin_users, v) {
        return Some(Role::Admin);
    }
    // Groups decide only when the provider maps some and the token lists them.
    match (&v.groups, p.admin_groups.is_empty()) {
        (Some(groups), false) => {
            Some(if groups.iter().any(|g| p.admin_groups.contains(g)) { Role::Admin } else { Role::Member })
        }
        _ => None,
    }
}

/// (teams to join, teams to leave) from the mapped groups the token lists;
/// teams that no mapping names are never touched.
pub fn team_changes(p: &Provider, v: &Verified, current: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let Some(groups) = &v.groups else { return (vec![], vec![]) };
    let mapped: BTreeSet<&String> = p.team_mappings.values().collect();
    let wanted: BTreeSet<&String> =
        p.team_mappings.iter().filter(|(g, _)| groups.contains(g)).map(|(_, t)| t).collect();
    let join = wanted.iter().filter(|t| !current.contains(**t)).map(|t| (*t).clone()).collect();
    let leave = mapped.iter().filter(|t| !wanted.contains(*t) && current.contains(**t)).map(|t| (*t).clone()).collect();
    (join, leave)
}

async fn find_user(txn: &Change<'_>, p: &Provider, v: &Verified) -> Result<Option<users::Model>, IdentityError> {
    let db = txn.db();
    if let Some(link) = user_identities::Entity::find_by_id((p.id.clone(), v.subject.clone())).one(db).await? {
        return Ok(users::Entity::find_by_id(link.user_id).one(db).await?);
    }
    let mut by = Condition::any().add(users::Column::Subject.eq(v.subject.clone()));
    if let Some(e) = &v.email {
        by = by.add(users::Column::Email.eq(e.clone())).add(users::Column::Email.eq(e.to_lowercase()));
    }
    let Some(user) = users::Entity::find().filter(by).one(db).await? else { return Ok(None) };
    // An account already linked to another subject of this provider is not
    // taken over by a second subject that claims the same email.
    let other = user_identities::Entity::find()
        .filter(user_identities::Column::IdpId.eq(p.id.clone()))
        .filter(user_identities::Column::UserId.eq(user.id.clone()))
        .one(db)
        .await?;
    if other.is_some() {
        return Err(IdentityError::Forbidden(
            "this email belongs to another account at this identity provider; ask an admin".into(),
        ));
    }
    Ok(Some(user))
}

/// The role and mapped teams the identity's groups give, applied to `user`
/// in `txn` (audited): shared by sign-in and SCIM provisioning.
pub async fn apply_groups(
    txn: &mut Change<'_>,
    p: &Provider,
    admin_users: &[String],
    user: users::Model,
    v: &Verified,
) -> Result<users::Model, IdentityError> {
    let now = Utc::now();
    let user = match role_for(p, admin_users, v) {
        Some(role) if role.as_str() != user.role => {
            // Groups never demote the last admin: the gateway would lock everyone out.
            if role == Role::Member && crate::api::users_keep_an_admin(txn.db(), &user).await.is_err() {
                user
            } else {
                let mut am: users::ActiveModel = user.clone().into();
                am.role = Set(role.as_str().into());
                am.updated_at = Set(now);
                let after = am.update(txn.db()).await?;
                txn.audit(AuditAction::UserUpdate, "user", &after.id, Some(&user), Some(&after)).await?;
                txn.touch(Touched::User(after.id.clone()));
                after
            }
        }
        _ => user,
    };
    let current: BTreeSet<String> = team_members::Entity::find()
        .filter(team_members::Column::UserId.eq(user.id.clone()))
        .all(txn.db())
        .await?
        .into_iter()
        .map(|m| m.team_id)
        .collect();
    let (join, leave) = team_changes(p, v, &current);
    for team in &join {
        let row = team_members::ActiveModel {
            team_id: Set(team.clone()),
            user_id: Set(user.id.clone()),
            created_at: Set(now),
        };
        // A mapping to a team deleted since is skipped, not fatal.
        match row.insert(txn.db()).await {
            Ok(row) => txn.audit(AuditAction::TeamAddMember, "team", team, None, Some(&row)).await?,
            Err(e) => tracing::warn!(team = %team, error = %e, idp = %p.name, "a mapped team could not be joined"),
        }
    }
    for team in &leave {
        team_members::Entity::delete_by_id((team.clone(), user.id.clone())).exec(txn.db()).await?;
        txn.audit::<team_members::Model>(AuditAction::TeamRemoveMember, "team", team, None, None).await?;
    }
    if !join.is_empty() || !leave.is_empty() {
        txn.touch(Touched::User(user.id.clone()));
    }
    Ok(user)
}

/// SCIM is on for a provider while it has a token that is not revoked.
async fn scim_on(txn: &Change<'_>, p: &Provider) -> Result<bool, IdentityError> {
    use crate::store::entities::scim_tokens;
    Ok(scim_tokens::Entity::find()
        .filter(scim_tokens::Column::IdpId.eq(p.id.clone()))
        .filter(scim_tokens::Column::Revoked.eq(false))
        .one(txn.db())
        .await?
        .is_some())
}

pub async fn sign_in(
    ctx: &Ctx,
    admin_users: &[String],
    p: &Provider,
    v: &Verified,
) -> Result<users::Model, IdentityError> {
    if !p.domain_allowed(v.email.as_deref()) {
        return Err(IdentityError::Forbidden(match &v.email {
            Some(e) => format!("{e} is not in a domain allowed to sign in here ({})", p.allowed_domains.join(", ")),
            None => "the identity provider sent no email address, which this gateway needs to check the domain".into(),
        }));
    }
    let actor = format!("idp:{}", p.name);
    let mut txn = Change::begin(ctx, &actor).await?;
    let now = Utc::now();
    let user = match find_user(&txn, p, v).await? {
        Some(u) => u,
        // The provider's SCIM client decides who has an account.
        None if scim_on(&txn, p).await? => {
            return Err(IdentityError::Forbidden(format!(
                "{} is not provisioned on this gateway: {} provisions accounts (SCIM); ask its admin to assign you",
                v.email.as_deref().unwrap_or(&v.subject),
                p.name
            )));
        }
        None if !p.auto_provision => {
            return Err(IdentityError::Forbidden(format!(
                "{} has no account on this gateway; ask an admin to add you",
                v.email.as_deref().unwrap_or(&v.subject)
            )));
        }
        None => {
            let new = NewUser {
                email: v.email.clone(),
                subject: Some(v.subject.clone()),
                display_name: v.name.clone().unwrap_or_default().chars().take(200).collect(),
                role: role_for(p, admin_users, v).unwrap_or(p.default_role),
                active: true,
                password_hash: None,
                rpm: 0,
                tpm: 0,
            };
            insert_user(&mut txn, new, &actor).await?
        }
    };
    if UserStatus::parse(&user.status) != UserStatus::Active {
        return Err(IdentityError::Forbidden("your account on this gateway is deactivated; ask an admin".into()));
    }
    let user = apply_groups(&mut txn, p, admin_users, user, v).await?;
    let link = user_identities::Entity::find_by_id((p.id.clone(), v.subject.clone())).one(txn.db()).await?;
    match link {
        Some(l) => {
            let mut am: user_identities::ActiveModel = l.into();
            am.last_login_at = Set(now);
            am.email = Set(v.email.clone().unwrap_or_default());
            am.update(txn.db()).await?;
        }
        None => {
            user_identities::ActiveModel {
                idp_id: Set(p.id.clone()),
                subject: Set(v.subject.clone()),
                user_id: Set(user.id.clone()),
                email: Set(v.email.clone().unwrap_or_default()),
                created_at: Set(now),
                last_login_at: Set(now),
            }
            .insert(txn.db())
            .await?;
        }
    }
    #[derive(serde::Serialize)]
    struct SignIn<'a> {
        idp: &'a str,
        subject: &'a str,
    }
    txn.audit(AuditAction::UserSignIn, "user", &user.id, None, Some(&SignIn { idp: &p.name, subject: &v.subject }))
        .await?;
    txn.commit().await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn provider() -> Provider {
        Provider {
            admin_groups: vec!["gw-admins".into()],
            team_mappings: BTreeMap::from([("eng".into(), "team_eng".into()), ("ops".into(), "team_ops".into())]),
            ..Provider::for_tests()
        }
    }

    fn who(groups: Option<&[&str]>) -> Verified {
        Verified {
            subject: "u-1".into(),
            email: Some("ann@example.com".into()),
            name: None,
            groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn admin_users_are_admins_whatever_their_groups() {
        let p = provider();
        assert_eq!(role_for(&p, &["ANN@example.com".into()], &who(Some(&[]))), Some(Role::Admin));
        assert_eq!(role_for(&p, &["u-1".into()], &who(None)), Some(Role::Admin));
    }

    #[test]
    fn admin_groups_decide_the_role_only_when_the_token_lists_groups() {
        let p = provider();
        assert_eq!(role_for(&p, &[], &who(Some(&["gw-admins"]))), Some(Role::Admin));
        assert_eq!(role_for(&p, &[], &who(Some(&["eng"]))), Some(Role::Member));
        assert_eq!(role_for(&p, &[], &who(None)), None);
        let mut no_groups = provider();
        no_groups.admin_groups.clear();
        assert_eq!(role_for(&no_groups, &[], &who(Some(&["gw-admins"]))), None);
    }

    #[test]
    fn mapped_teams_follow_the_groups_and_unmapped_teams_stay() {
        let p = provider();
        let current = BTreeSet::from(["team_ops".to_string(), "team_manual".to_string()]);
        let (join, leave) = team_changes(&p, &who(Some(&["eng"])), &current);
        assert_eq!(join, ["team_eng"]);
        assert_eq!(leave, ["team_ops"]);
        assert_eq!(team_changes(&p, &who(None), &current), (vec![], vec![]), "no groups claim: no change");
    }
}
