//! `ccag status`.

use ccag_proto::admin::v1::GetStatusRequest;

use super::{one_out, Out};
use crate::client::Ctx;
use crate::error::CliError;

pub async fn run(ctx: &Ctx, json: bool) -> Result<Out, CliError> {
    let s = ctx
        .status()
        .get_status(GetStatusRequest {})
        .await
        .map_err(|s| ctx.err(s))?
        .into_inner();
    Ok(one_out(&s, json))
}
