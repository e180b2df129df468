//! `ccag keys`.

use ccag_proto::admin::v1 as pb;

use super::auth::secret_text;
use super::{deleted_out, fetch_pages, list_out, one_out, require_change, Out};
use crate::args::{KeyStatusArg, KeyUpdateStatusArg, KeysCmd};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Resource};

pub fn key_status(s: KeyStatusArg) -> pb::KeyStatus {
    match s {
        KeyStatusArg::Active => pb::KeyStatus::Active,
        KeyStatusArg::Disabled => pb::KeyStatus::Disabled,
        KeyStatusArg::Revoked => pb::KeyStatus::Revoked,
    }
}

fn update_status(s: KeyUpdateStatusArg) -> pb::KeyStatus {
    match s {
        KeyUpdateStatusArg::Active => pb::KeyStatus::Active,
        KeyUpdateStatusArg::Disabled => pb::KeyStatus::Disabled,
    }
}

/// `keys create`'s output: with --json one object, the plaintext `key` and
/// the key's fields; else a short text showing the key once.
pub fn created_out(resp: pb::CreateKeyResponse, json: bool) -> Out {
    let k = resp.api_key.unwrap_or_default();
    if json {
        output::to_json(&k.record().prepend("key", resp.key)).into()
    } else {
        secret_text("key", &k.name, &k.id, &resp.key).into()
    }
}

pub async fn run(ctx: &Ctx, cmd: KeysCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        KeysCmd::Create { name, user, team, rpm, tpm, ttl_days } => {
            let user_id = match user {
                Some(u) => ctx.user_id(&u).await?,
                None => String::new(),
            };
            let resp = ctx
                .keys()
                .create_key(pb::CreateKeyRequest {
                    name,
                    user_id,
                    team_id: team.unwrap_or_default(),
                    rpm: rpm.unwrap_or(0),
                    tpm: tpm.unwrap_or(0),
                    ttl_days: ttl_days.unwrap_or(0),
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(created_out(resp, json))
        }
        KeysCmd::List { user, team, status, page } => {
            let user_id = match user {
                Some(u) => ctx.user_id(&u).await?,
                None => String::new(),
            };
            let filter = pb::ListKeysRequest {
                page: None,
                user_id,
                team_id: team.unwrap_or_default(),
                status: status.map(|s| key_status(s) as i32).unwrap_or(0),
            };
            let client = ctx.keys();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListKeysRequest { page: Some(p), ..filter.clone() };
                async move {
                    let r = c.list_keys(req).await?.into_inner();
                    Ok((r.keys, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
        KeysCmd::Get { id } => {
            let k = ctx.keys().get_key(pb::GetKeyRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&k, json))
        }
        KeysCmd::Update { id, name, status, rpm, tpm, team } => {
            require_change(name.is_some() || status.is_some() || rpm.is_some() || tpm.is_some() || team.is_some())?;
            let k = ctx
                .keys()
                .update_key(pb::UpdateKeyRequest {
                    id,
                    name,
                    status: status.map(|s| update_status(s) as i32).unwrap_or(0),
                    rpm,
                    tpm,
                    team_id: team,
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&k, json))
        }
        KeysCmd::Revoke { id } => {
            let k = ctx.keys().revoke_key(pb::RevokeKeyRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&k, json))
        }
        KeysCmd::SetupToken { user, team, name } => {
            let r = ctx
                .keys()
                .create_setup_token(pb::CreateSetupTokenRequest {
                    user: user.unwrap_or_default(),
                    team: team.unwrap_or_default(),
                    key_name: name.unwrap_or_default(),
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            if json {
                let rec = crate::output::Record::new()
                    .field("token", r.token)
                    .field("expires_at", r.expires_at)
                    .field("command", r.command);
                return Ok(crate::output::to_json(&rec).into());
            }
            Ok(format!(
                "Run this on the developer's machine before {} (it works once):\n\n    {}\n",
                r.expires_at, r.command
            )
            .into())
        }
        KeysCmd::Delete { id } => {
            ctx.keys().delete_key(pb::DeleteKeyRequest { id: id.clone() }).await.map_err(|s| ctx.err(s))?;
            Ok(deleted_out("key", "id", &id, json))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp() -> pb::CreateKeyResponse {
        pb::CreateKeyResponse {
            api_key: Some(pb::ApiKey {
                id: "k1".into(),
                name: "ci".into(),
                prefix: "sk-ccag-ab".into(),
                user_id: "u1".into(),
                status: pb::KeyStatus::Active as i32,
                ..Default::default()
            }),
            key: "sk-ccag-abcdef".into(),
        }
    }

    #[test]
    fn created_json_is_one_object_with_the_key() {
        let out = created_out(resp(), true);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["key"], "sk-ccag-abcdef");
        for f in ["id", "name", "prefix", "user_id", "team_id", "status", "rpm", "tpm", "created_at", "expires_at"] {
            assert!(v.get(f).is_some(), "missing {f}");
        }
        assert_eq!(v["status"], "active");
    }

    #[test]
    fn created_text_shows_the_key_once() {
        let out = created_out(resp(), false);
        assert_eq!(out.stdout.matches("sk-ccag-abcdef").count(), 1);
        assert!(out.stdout.contains("not be shown again"));
    }
}
