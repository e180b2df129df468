//! `ccag scim`.

use ccag_proto::admin::v1 as pb;

use super::{one_out, Out};
use crate::args::{ScimCmd, ScimTokensCmd};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Resource};

pub async fn run(ctx: &Ctx, cmd: ScimCmd, json: bool) -> Result<Out, CliError> {
    let ScimCmd::Tokens(cmd) = cmd;
    match cmd {
        ScimTokensCmd::Create { idp, name } => {
            let resp = ctx
                .scim()
                .create_scim_token(pb::CreateScimTokenRequest { idp, name: name.unwrap_or_default() })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            let t = resp.scim_token.unwrap_or_default();
            if json {
                Ok(output::to_json(&t.record().prepend("token", resp.token)).into())
            } else {
                Ok(super::auth::secret_text("SCIM token", &t.name, &t.id, &resp.token).into())
            }
        }
        ScimTokensCmd::List { idp } => {
            let resp = ctx
                .scim()
                .list_scim_tokens(pb::ListScimTokensRequest { idp: idp.unwrap_or_default() })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(output::render_list(&resp.scim_tokens, json).into())
        }
        ScimTokensCmd::Revoke { id } => {
            let t = ctx
                .scim()
                .revoke_scim_token(pb::RevokeScimTokenRequest { id })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&t, json))
        }
    }
}
