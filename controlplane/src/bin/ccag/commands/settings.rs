//! `ccag settings`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, fetch_pages, list_out, one_out, Out};
use crate::args::SettingsCmd;
use crate::client::Ctx;
use crate::error::CliError;

pub async fn run(ctx: &Ctx, cmd: SettingsCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        SettingsCmd::List { page } => {
            let client = ctx.settings();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListSettingsRequest { page: Some(p) };
                async move {
                    let r = c.list_settings(req).await?.into_inner();
                    Ok((r.settings, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
        SettingsCmd::Get { key } => {
            let s =
                ctx.settings().get_setting(pb::GetSettingRequest { key }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&s, json))
        }
        SettingsCmd::Set { key, value } => {
            let s = ctx
                .settings()
                .set_setting(pb::SetSettingRequest { key, value })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&s, json))
        }
        SettingsCmd::Delete { key } => {
            ctx.settings()
                .delete_setting(pb::DeleteSettingRequest { key: key.clone() })
                .await
                .map_err(|s| ctx.err(s))?;
            Ok(deleted_out("setting", "key", &key, json))
        }
    }
}
