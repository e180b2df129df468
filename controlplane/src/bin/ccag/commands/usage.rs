//! `ccag usage` and `ccag prices`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, one_out, Out};
use crate::args::{PricesCmd, UsageArgs, UsageGroupArg};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Record, Resource};

fn group(g: UsageGroupArg) -> pb::UsageGroup {
    match g {
        UsageGroupArg::User => pb::UsageGroup::User,
        UsageGroupArg::Team => pb::UsageGroup::Team,
        UsageGroupArg::Key => pb::UsageGroup::Key,
        UsageGroupArg::Model => pb::UsageGroup::Model,
    }
}

/// `7d` → the RFC 3339 time seven days ago; anything else is sent as given
/// (the server validates RFC 3339).
fn time_arg(v: Option<String>) -> Result<String, CliError> {
    let Some(v) = v else { return Ok(String::new()) };
    let t = v.trim();
    let Some(unit) = t.chars().last().filter(|c| "smhdw".contains(*c)) else { return Ok(t.to_owned()) };
    let Ok(n) = t[..t.len() - 1].parse::<i64>() else { return Ok(t.to_owned()) };
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => 7 * 86_400,
    };
    let age = n
        .checked_mul(secs)
        .and_then(chrono::Duration::try_seconds)
        .ok_or_else(|| CliError::usage(format!("{t:?} is too long ago")))?;
    Ok((chrono::Utc::now() - age).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

pub async fn usage(ctx: &Ctx, args: UsageArgs, json: bool) -> Result<Out, CliError> {
    let user_id = match args.user {
        Some(u) => ctx.user_id(&u).await?,
        None => String::new(),
    };
    let resp = ctx
        .usage()
        .get_usage(pb::GetUsageRequest {
            group_by: group(args.group_by) as i32,
            since: time_arg(args.since)?,
            until: time_arg(args.until)?,
            user_id,
            team_id: args.team.unwrap_or_default(),
            key_id: args.key.unwrap_or_default(),
        })
        .await
        .map_err(|s| ctx.err(s))?
        .into_inner();
    Ok(render_usage(&resp, json).into())
}

/// JSON: `{"rows": [...], "total": {...}}`; text: a table ending in a total row.
fn render_usage(resp: &pb::GetUsageResponse, json: bool) -> String {
    let total = resp.total.clone().unwrap_or_default();
    if json {
        let rows: Vec<Record> = resp.rows.iter().map(Resource::record).collect();
        let rows = serde_json::Value::Array(rows.into_iter().map(Into::into).collect());
        return output::to_json(&Record::new().field("rows", rows).field("total", total.record()));
    }
    let mut recs: Vec<Record> = resp.rows.iter().map(Resource::record).collect();
    if recs.is_empty() {
        return "No usage in this period.\n".to_string();
    }
    let mut total = total;
    total.group = "TOTAL".into();
    recs.push(total.record());
    output::list_table(pb::UsageRow::COLUMNS, &recs, pb::UsageRow::PLURAL)
}

pub async fn prices(ctx: &Ctx, cmd: PricesCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        PricesCmd::List => {
            let resp = ctx.pricing().list_prices(pb::ListPricesRequest {}).await.map_err(|s| ctx.err(s))?.into_inner();
            Ok(output::render_list(&resp.prices, json).into())
        }
        PricesCmd::Set {
            model,
            input,
            output: out,
            cache_write,
            cache_write_1h,
            cache_read,
            long_context_threshold,
            long_context,
            regional_premium,
        } => {
            let lc = long_context.unwrap_or_else(|| vec![0.0; 5]);
            let checks = [
                ("--input", input),
                ("--output", out),
                ("--cache-write", cache_write),
                ("--cache-write-1h", cache_write_1h),
                ("--cache-read", cache_read),
                ("--regional-premium", regional_premium),
            ];
            for (flag, v) in checks.into_iter().chain(lc.iter().map(|v| ("--long-context", *v))) {
                if !v.is_finite() || v < 0.0 {
                    return Err(CliError::usage(format!("{flag} must be a non-negative number, got {v}")));
                }
            }
            if long_context_threshold > 0 && lc[0] == 0.0 {
                return Err(CliError::usage("--long-context-threshold needs --long-context rates"));
            }
            let p = ctx
                .pricing()
                .set_price(pb::Price {
                    model,
                    input,
                    output: out,
                    cache_write,
                    cache_read,
                    cache_write_1h,
                    long_context_threshold,
                    long_context_input: lc[0],
                    long_context_output: lc[1],
                    long_context_cache_write: lc[2],
                    long_context_cache_write_1h: lc[3],
                    long_context_cache_read: lc[4],
                    regional_premium_bp: (regional_premium * 100.0).round() as u32,
                    ..Default::default()
                })
                .await
                .map_err(|s| ctx.err(s))?
                .into_inner();
            Ok(one_out(&p, json))
        }
        PricesCmd::Delete { model } => {
            ctx.pricing()
                .delete_price(pb::DeletePriceRequest { model: model.clone() })
                .await
                .map_err(|s| ctx.err(s))?;
            Ok(deleted_out("the price of", "model", &model, json))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_become_rfc3339_times_and_times_pass_through() {
        let t = time_arg(Some("7d".into())).unwrap();
        let parsed = chrono::DateTime::parse_from_rfc3339(&t).unwrap();
        let age = chrono::Utc::now() - parsed.with_timezone(&chrono::Utc);
        assert!((age.num_seconds() - 7 * 86_400).abs() < 60, "{t}");
        assert_eq!(time_arg(Some("2026-01-01T00:00:00Z".into())).unwrap(), "2026-01-01T00:00:00Z");
        assert_eq!(time_arg(None).unwrap(), "");
        assert!(time_arg(Some("99999999999999w".into())).is_err());
    }

    fn resp() -> pb::GetUsageResponse {
        let row = |g: &str, r: u64, c: f64| pb::UsageRow {
            group: g.into(),
            requests: r,
            input_tokens: 10 * r,
            cost_usd: c,
            ..Default::default()
        };
        pb::GetUsageResponse { rows: vec![row("alice", 2, 0.5), row("bob", 1, 0.25)], total: Some(row("", 3, 0.75)) }
    }

    #[test]
    fn usage_json_has_rows_and_total() {
        let v: serde_json::Value = serde_json::from_str(&render_usage(&resp(), true)).unwrap();
        assert_eq!(v["rows"].as_array().unwrap().len(), 2);
        assert_eq!(v["rows"][0]["group"], "alice");
        assert_eq!(v["total"]["requests"], 3);
        assert_eq!(v["total"]["cost_usd"], 0.75);
    }

    #[test]
    fn usage_text_ends_with_a_total() {
        let t = render_usage(&resp(), false);
        assert!(t.contains("alice") && t.contains("TOTAL") && t.contains("0.75"), "{t}");
        let empty = pb::GetUsageResponse::default();
        assert_eq!(render_usage(&empty, false), "No usage in this period.\n");
    }
}
