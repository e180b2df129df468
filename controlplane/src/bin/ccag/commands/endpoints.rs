//! `ccag endpoints`.

use std::collections::HashMap;

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, fetch_pages, one_out, require_change, Out};
use crate::args::{EndpointOptions, EndpointsCmd};
use crate::client::Ctx;
use crate::error::CliError;
use crate::{output, prompt};

/// `--scope`: a scope word, or an explicit prefix (checked by the server).
pub fn scope(v: &str) -> (pb::InferenceScope, String) {
    match v.trim() {
        "" | "geo" => (pb::InferenceScope::Unspecified, String::new()),
        "global" => (pb::InferenceScope::Global, String::new()),
        "regional" => (pb::InferenceScope::Regional, String::new()),
        p => (pb::InferenceScope::Explicit, p.to_owned()),
    }
}

/// `--models a,b`, `--endpoints a,b`: the items, blanks dropped ("" is none).
pub fn comma_list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect()
}

/// `--profile-arn MODEL=ARN`, each.
pub fn profile_arns(v: &[String]) -> Result<HashMap<String, String>, CliError> {
    let mut out = HashMap::new();
    for item in v {
        let (m, a) = item
            .split_once('=')
            .filter(|(m, a)| !m.trim().is_empty() && !a.trim().is_empty())
            .ok_or_else(|| CliError::usage(format!("--profile-arn: {item:?} is not MODEL=ARN")))?;
        if out.insert(m.trim().to_owned(), a.trim().to_owned()).is_some() {
            return Err(CliError::usage(format!("--profile-arn: {} is given twice", m.trim())));
        }
    }
    Ok(out)
}

/// The API key on stdin, when `--api-key-stdin` asks for it.
fn api_key(o: &EndpointOptions, empty_ok: bool) -> Result<Option<String>, CliError> {
    if !o.api_key_stdin {
        return Ok(None);
    }
    let k = prompt::read_stdin_line("--api-key-stdin")?;
    if k.is_empty() && !empty_ok {
        return Err(CliError::usage("--api-key-stdin: no API key on stdin"));
    }
    Ok(Some(k))
}

pub async fn run(ctx: &Ctx, cmd: EndpointsCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        EndpointsCmd::Create { name, region, options: o, per_user_sessions, disabled } => {
            // The API reads a weight of 0 as "unset" (1): say so instead.
            if o.weight == Some(0) {
                return Err(CliError::new(
                    crate::error::EXIT_INVALID_ARGUMENT,
                    "invalid argument: weight: from 1 to 1000, not 0",
                ));
            }
            let api_key = api_key(&o, false)?.unwrap_or_default();
            let (scope, scope_prefix) =
                o.scope.as_deref().map(scope).unwrap_or((pb::InferenceScope::Unspecified, String::new()));
            let e = ctx
                .endpoints()
                .create_endpoint(pb::CreateEndpointRequest {
                    name,
                    region,
                    role_arn: o.role_arn.unwrap_or_default(),
                    enabled: !disabled,
                    priority: o.priority.unwrap_or(0),
                    weight: o.weight.unwrap_or(0),
                    endpoint_url: o.endpoint_url.unwrap_or_default(),
                    external_id: o.external_id.unwrap_or_default(),
                    api_key,
                    per_user_sessions,
                    scope: scope as i32,
                    scope_prefix,
                    profile_arns: profile_arns(&o.profile_arn)?,
                    models: o.models.as_deref().map(comma_list).unwrap_or_default(),
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&e, json))
        }
        EndpointsCmd::List { window, page } => {
            let client = ctx.endpoints();
            let paged = fetch_pages(&page, |p| {
                let mut c = client.clone();
                let req = pb::ListEndpointsRequest { page: Some(p), stats_window_secs: window };
                async move {
                    let r = c.list_endpoints(req).await?.into_inner();
                    Ok((r.endpoints, r.next_page_token))
                }
            })
            .await
            .map_err(|s| ctx.err(s))?;
            let note = (!paged.next_page_token.is_empty()).then(|| {
                format!("note: more results exist; run again with --page-token {} or use --all", paged.next_page_token)
            });
            Ok(Out { stdout: output::render_endpoints(&paged.items, window, json), note })
        }
        EndpointsCmd::Get { id } => {
            let e =
                ctx.endpoints().get_endpoint(pb::GetEndpointRequest { id }).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(one_out(&e, json))
        }
        EndpointsCmd::Update {
            id,
            name,
            region,
            options: o,
            per_user_sessions,
            enabled,
            disabled,
            clear_profile_arns,
        } => {
            let enabled = if disabled { Some(false) } else { enabled };
            let set_profile_arns = clear_profile_arns || !o.profile_arn.is_empty();
            let set_models = o.models.is_some();
            require_change(
                name.is_some()
                    || region.is_some()
                    || o.endpoint_url.is_some()
                    || o.role_arn.is_some()
                    || o.external_id.is_some()
                    || o.api_key_stdin
                    || o.priority.is_some()
                    || o.weight.is_some()
                    || o.scope.is_some()
                    || set_models
                    || set_profile_arns
                    || per_user_sessions.is_some()
                    || enabled.is_some(),
            )?;
            let api_key = api_key(&o, true)?;
            let (scope, scope_prefix) = match o.scope.as_deref().map(scope) {
                Some((s, p)) => (Some(s as i32), Some(p)),
                None => (None, None),
            };
            let e = ctx
                .endpoints()
                .update_endpoint(pb::UpdateEndpointRequest {
                    id,
                    name,
                    region,
                    role_arn: o.role_arn,
                    enabled,
                    priority: o.priority,
                    weight: o.weight,
                    endpoint_url: o.endpoint_url,
                    external_id: o.external_id,
                    api_key,
                    per_user_sessions,
                    scope,
                    scope_prefix,
                    set_profile_arns,
                    profile_arns: profile_arns(&o.profile_arn)?,
                    set_models,
                    models: o.models.as_deref().map(comma_list).unwrap_or_default(),
                })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_words_or_a_prefix() {
        assert_eq!(scope("geo"), (pb::InferenceScope::Unspecified, String::new()));
        assert_eq!(scope("global"), (pb::InferenceScope::Global, String::new()));
        assert_eq!(scope("regional"), (pb::InferenceScope::Regional, String::new()));
        assert_eq!(scope(" eu "), (pb::InferenceScope::Explicit, "eu".to_string()));
    }

    #[test]
    fn model_lists_and_profile_arns_parse() {
        assert_eq!(comma_list(" a, ,b "), vec!["a", "b"]);
        assert!(comma_list("").is_empty());
        let m = profile_arns(&["a=arn:aws:bedrock:x".into()]).unwrap();
        assert_eq!(m.get("a").map(String::as_str), Some("arn:aws:bedrock:x"));
        assert_eq!(profile_arns(&["a".into()]).unwrap_err().code, 2);
        assert_eq!(profile_arns(&["a=x".into(), "a=y".into()]).unwrap_err().code, 2);
    }
}
