//! `ccag audit`.

use ccag_proto::admin::v1 as pb;

use super::{fetch_pages, list_out, Out};
use crate::args::AuditCmd;
use crate::client::Ctx;
use crate::error::CliError;

pub async fn run(ctx: &Ctx, cmd: AuditCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        AuditCmd::List { actor, resource_type, resource_id, action, page } => {
            let actor = match actor {
                Some(a) => ctx.user_id(&a).await?,
                None => String::new(),
            };
            let filter = pb::ListAuditRequest {
                page: None,
                actor,
                resource_type: resource_type.unwrap_or_default(),
                resource_id: resource_id.unwrap_or_default(),
                action: action.unwrap_or_default(),
            };
            let client = ctx.audit();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListAuditRequest { page: Some(p), ..filter.clone() };
                async move {
                    let r = c.list_audit(req).await?.into_inner();
                    Ok((r.entries, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
    }
}
