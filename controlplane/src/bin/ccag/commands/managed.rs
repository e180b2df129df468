//! `ccag managed-settings`.

use std::io::Read;

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, one_out, Out};
use crate::args::ManagedSettingsCmd;
use crate::client::Ctx;
use crate::error::CliError;
use crate::output;

fn read(file: &str) -> Result<String, CliError> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| CliError::other(format!("reading stdin: {e}")))?;
    } else {
        text = std::fs::read_to_string(file).map_err(|e| CliError::usage(format!("{file}: {e}")))?;
    }
    Ok(text)
}

pub async fn run(ctx: &Ctx, cmd: ManagedSettingsCmd, json: bool) -> Result<Out, CliError> {
    let mut api = ctx.managed();
    match cmd {
        ManagedSettingsCmd::Set { file, team } => {
            let r = api
                .set_managed_settings(pb::SetManagedSettingsRequest {
                    team: team.unwrap_or_default(),
                    settings_json: read(&file)?,
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(one_out(&r, json))
        }
        ManagedSettingsCmd::List => {
            let r = api.list_managed_settings(pb::ListManagedSettingsRequest {}).await.map_err(|e| ctx.err(e))?;
            Ok(output::render_list(&r.into_inner().managed_settings, json).into())
        }
        ManagedSettingsCmd::Show { user } => {
            let r = api
                .get_effective_managed_settings(pb::GetEffectiveManagedSettingsRequest { user })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            let v: serde_json::Value = serde_json::from_str(&r.settings_json).unwrap_or_default();
            Ok(output::to_json(&v).into())
        }
        ManagedSettingsCmd::Delete { team } => {
            let t = team.unwrap_or_default();
            api.delete_managed_settings(pb::DeleteManagedSettingsRequest { team: t.clone() })
                .await
                .map_err(|e| ctx.err(e))?;
            let what = if t.is_empty() {
                "the organisation's managed settings".to_owned()
            } else {
                format!("team {t}'s managed settings")
            };
            if json {
                return Ok(deleted_out(&what, "team", &t, true));
            }
            Ok(format!("Deleted {what}.\n").into())
        }
    }
}
