//! `ccag users`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, fetch_pages, list_out, one_out, require_change, Out};
use crate::args::{RoleArg, UserStatusArg, UsersCmd};
use crate::client::Ctx;
use crate::error::CliError;
use crate::prompt;

pub fn role(r: RoleArg) -> pb::Role {
    match r {
        RoleArg::Admin => pb::Role::Admin,
        RoleArg::Member => pb::Role::Member,
    }
}

pub fn user_status(s: UserStatusArg) -> pb::UserStatus {
    match s {
        UserStatusArg::Active => pb::UserStatus::Active,
        UserStatusArg::Disabled => pb::UserStatus::Disabled,
    }
}

pub async fn run(ctx: &Ctx, cmd: UsersCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        UsersCmd::Create { email, name, role: r, subject, password_stdin, rpm, tpm } => {
            let password = if password_stdin { prompt::read_stdin_secret()? } else { String::new() };
            let u = ctx
                .users()
                .create_user(pb::CreateUserRequest {
                    email,
                    subject: subject.unwrap_or_default(),
                    display_name: name.unwrap_or_default(),
                    role: role(r) as i32,
                    password,
                    rpm: rpm.unwrap_or(0),
                    tpm: tpm.unwrap_or(0),
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&u, json))
        }
        UsersCmd::List { role: r, status, query, page } => {
            let client = ctx.users();
            let filter = pb::ListUsersRequest {
                page: None,
                role: r.map(|r| role(r) as i32).unwrap_or(0),
                status: status.map(|s| user_status(s) as i32).unwrap_or(0),
                query: query.unwrap_or_default(),
            };
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListUsersRequest { page: Some(p), ..filter.clone() };
                async move {
                    let r = c.list_users(req).await?.into_inner();
                    Ok((r.users, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
        UsersCmd::Get { id } => {
            let u = ctx.users().get_user(pb::GetUserRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&u, json))
        }
        UsersCmd::Update { id, email, name, role: r, status, password_stdin, subject, rpm, tpm } => {
            require_change(
                email.is_some()
                    || name.is_some()
                    || r.is_some()
                    || status.is_some()
                    || password_stdin
                    || subject.is_some()
                    || rpm.is_some()
                    || tpm.is_some(),
            )?;
            let password = if password_stdin { Some(prompt::read_stdin_secret()?) } else { None };
            let id = ctx.user_id(&id).await?;
            let u = ctx
                .users()
                .update_user(pb::UpdateUserRequest {
                    id,
                    email,
                    display_name: name,
                    role: r.map(|r| role(r) as i32).unwrap_or(0),
                    status: status.map(|s| user_status(s) as i32).unwrap_or(0),
                    password,
                    subject,
                    rpm,
                    tpm,
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&u, json))
        }
        UsersCmd::Delete { id } => {
            let id = ctx.user_id(&id).await?;
            ctx.users().delete_user(pb::DeleteUserRequest { id: id.clone() }).await.map_err(|s| ctx.err(s))?;
            Ok(deleted_out("user", "id", &id, json))
        }
    }
}
