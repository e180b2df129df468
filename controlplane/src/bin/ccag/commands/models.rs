//! `ccag models`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, fetch_pages, list_out, one_out, require_change, Out};
use crate::args::ModelsCmd;
use crate::client::Ctx;
use crate::error::CliError;
use crate::output;

pub async fn run(ctx: &Ctx, cmd: ModelsCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        ModelsCmd::Create { anthropic_id, bedrock_id, display_name, listed } => {
            let m = ctx
                .models()
                .create_model(pb::CreateModelRequest {
                    anthropic_id,
                    bedrock_id: bedrock_id.unwrap_or_default(),
                    display_name: display_name.unwrap_or_default(),
                    listed,
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&m, json))
        }
        ModelsCmd::List { mappings: false, page } => {
            if page.all || page.page_token.is_some() || page.page_size.is_some() {
                return Err(CliError::usage("paging options apply to --mappings; the catalogue comes whole"));
            }
            let resp =
                ctx.models().list_catalogue(pb::ListCatalogueRequest {}).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(output::render_catalogue(&resp, json).into())
        }
        ModelsCmd::List { mappings: true, page } => {
            let client = ctx.models();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListModelsRequest { page: Some(p) };
                async move {
                    let r = c.list_models(req).await?.into_inner();
                    Ok((r.models, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            Ok(list_out(&paged, json))
        }
        ModelsCmd::Get { id } => {
            let m = ctx.models().get_model(pb::GetModelRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&m, json))
        }
        ModelsCmd::Update { id, bedrock_id, display_name, listed } => {
            require_change(bedrock_id.is_some() || display_name.is_some() || listed.is_some())?;
            let m = ctx
                .models()
                .update_model(pb::UpdateModelRequest { id, bedrock_id, display_name, listed })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&m, json))
        }
        ModelsCmd::Delete { id } => {
            ctx.models().delete_model(pb::DeleteModelRequest { id: id.clone() }).await.map_err(|s| ctx.err(s))?;
            Ok(deleted_out("model", "id", &id, json))
        }
    }
}
