//! `ccag search`.

use ccag_proto::admin::v1 as pb;
use serde_json::{json, Value};

use super::{deleted_out, one_out, Out};
use crate::args::{SearchCmd, SearchScope};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Resource};
use crate::prompt;

fn user_of(scope: &SearchScope) -> String {
    if scope.org {
        String::new()
    } else {
        scope.user.clone().unwrap_or_default()
    }
}

fn settings_out(s: &pb::SearchSettings, json: bool) -> Out {
    let provider = |p: &pb::SearchProviderInfo| serde_json::to_value(p.record()).unwrap_or_default();
    if json {
        let v = json!({
            "mode": s.mode,
            "org_provider": s.org_provider.as_ref().map(provider),
            "users": s.users.iter().map(provider).collect::<Vec<_>>(),
        });
        return output::to_json(&v).into();
    }
    let mut out = format!("Mode: {}\n", s.mode);
    match &s.org_provider {
        Some(p) => out.push_str(&format!(
            "Organisation's provider: {}{}{}\n",
            p.kind,
            if p.url.is_empty() { String::new() } else { format!(" at {}", p.url) },
            if p.has_api_key { " (API key set)" } else { "" }
        )),
        None => out.push_str("Organisation's provider: none (DuckDuckGo)\n"),
    }
    if !s.users.is_empty() {
        out.push('\n');
        out.push_str(&output::render_list(&s.users, false));
    }
    out.into()
}

pub async fn run(ctx: &Ctx, cmd: SearchCmd, json: bool) -> Result<Out, CliError> {
    let mut api = ctx.search();
    match cmd {
        SearchCmd::Show => {
            let r = api.get_search_settings(pb::GetSearchSettingsRequest {}).await.map_err(|e| ctx.err(e))?;
            Ok(settings_out(&r.into_inner(), json))
        }
        SearchCmd::Mode { mode } => {
            let r = api.set_search_mode(pb::SetSearchModeRequest { mode }).await.map_err(|e| ctx.err(e))?;
            Ok(settings_out(&r.into_inner(), json))
        }
        SearchCmd::Set { scope, provider, url, api_key_stdin, max_results } => {
            let api_key = if api_key_stdin { prompt::read_stdin_secret()? } else { String::new() };
            let r = api
                .set_search_provider(pb::SetSearchProviderRequest {
                    user: user_of(&scope),
                    kind: provider,
                    url: url.unwrap_or_default(),
                    api_key,
                    max_results: max_results.unwrap_or(0),
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(one_out(&r, json))
        }
        SearchCmd::Unset { scope } => {
            let user = user_of(&scope);
            api.delete_search_provider(pb::DeleteSearchProviderRequest { user: user.clone() })
                .await
                .map_err(|e| ctx.err(e))?;
            let what = if user.is_empty() {
                "the organisation's search provider".to_owned()
            } else {
                format!("{user}'s search provider")
            };
            if json {
                return Ok(deleted_out(&what, "user", &user, true));
            }
            Ok(format!("Removed {what}.\n").into())
        }
        SearchCmd::Test { user, query } => {
            let r = api
                .test_search(pb::TestSearchRequest { user: user.unwrap_or_default(), query: query.unwrap_or_default() })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            if !r.error.is_empty() && !json {
                return Err(CliError::other(format!(
                    "the {} search failed after {} ms ({}): {}",
                    r.provider, r.elapsed_ms, r.error_code, r.error
                )));
            }
            if json {
                let results: Vec<Value> =
                    r.results.iter().map(|h| serde_json::to_value(h.record()).unwrap_or_default()).collect();
                let v = json!({"provider": r.provider, "elapsed_ms": r.elapsed_ms, "results": results,
                    "error": (!r.error.is_empty()).then_some(&r.error),
                    "error_code": (!r.error_code.is_empty()).then_some(&r.error_code)});
                if !r.error.is_empty() {
                    // The JSON on stdout, and the exit code says it failed.
                    print!("{}", output::to_json(&v));
                    return Err(CliError::other(format!("the {} search failed: {}", r.provider, r.error)));
                }
                return Ok(output::to_json(&v).into());
            }
            let mut out = format!("{} answered in {} ms with {} results.\n", r.provider, r.elapsed_ms, r.results.len());
            if !r.results.is_empty() {
                out.push('\n');
                out.push_str(&output::render_list(&r.results, false));
            }
            Ok(out.into())
        }
    }
}
