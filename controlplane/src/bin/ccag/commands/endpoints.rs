//! `ccag endpoints`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, fetch_pages, list_out, one_out, require_change, Out};
use crate::args::EndpointsCmd;
use crate::client::Ctx;
use crate::error::CliError;

pub async fn run(ctx: &Ctx, cmd: EndpointsCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        EndpointsCmd::Create { name, region, role_arn, disabled, priority } => {
            let e = ctx
                .endpoints()
                .create_endpoint(pb::CreateEndpointRequest {
                    name,
                    region,
                    role_arn: role_arn.unwrap_or_default(),
                    enabled: !disabled,
                    priority: priority.unwrap_or(0),
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&e, json))
        }
        EndpointsCmd::List { page } => {
            let client = ctx.endpoints();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListEndpointsRequest { page: Some(p) };
                async move {
                    let r = c.list_endpoints(req).await?.into_inner();
                    Ok((r.endpoints, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
        EndpointsCmd::Get { id } => {
            let e =
                ctx.endpoints().get_endpoint(pb::GetEndpointRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&e, json))
        }
        EndpointsCmd::Update { id, name, region, role_arn, enabled, priority } => {
            require_change(
                name.is_some() || region.is_some() || role_arn.is_some() || enabled.is_some() || priority.is_some(),
            )?;
            let e = ctx
                .endpoints()
                .update_endpoint(pb::UpdateEndpointRequest { id, name, region, role_arn, enabled, priority })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&e, json))
        }
        EndpointsCmd::Delete { id } => {
            ctx.endpoints()
                .delete_endpoint(pb::DeleteEndpointRequest { id: id.clone() })
                .await
                .map_err(|s| ctx.err(s))?;
            Ok(deleted_out("endpoint", "id", &id, json))
        }
    }
}
