//! `ccag usage` and `ccag prices`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, one_out, Out};
use crate::args::{BucketArg, ExportArgs, PricesCmd, UsageArgs, UsageFormat, UsageGroupArg};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Record, Resource};

fn group(g: UsageGroupArg) -> pb::UsageGroup {
    match g {
        UsageGroupArg::User => pb::UsageGroup::User,
        UsageGroupArg::Team => pb::UsageGroup::Team,
        UsageGroupArg::Key => pb::UsageGroup::Key,
        UsageGroupArg::Model => pb::UsageGroup::Model,
        UsageGroupArg::Endpoint => pb::UsageGroup::Endpoint,
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
    // The server takes an id or an email.
    let user_id = args.filter.user.unwrap_or_default();
    let bucket = match args.by {
        None => pb::UsageBucket::Unspecified,
        Some(BucketArg::Hour) => pb::UsageBucket::Hour,
        Some(BucketArg::Day) => pb::UsageBucket::Day,
    };
    let format = if json { UsageFormat::Json } else { args.format };
    let resp = ctx
        .usage()
        .get_usage(pb::GetUsageRequest {
            group_by: group(args.group_by) as i32,
            since: time_arg(args.filter.since)?,
            until: time_arg(args.filter.until)?,
            user_id,
            team_id: args.filter.team.unwrap_or_default(),
            key_id: args.filter.key.unwrap_or_default(),
            bucket: bucket as i32,
        })
        .await
        .map_err(|s| ctx.err(s))?
        .into_inner();
    let series = bucket != pb::UsageBucket::Unspecified;
    Ok(match format {
        UsageFormat::Csv => render_csv(&resp, series)?,
        f => render_usage(&resp, f == UsageFormat::Json, series),
    }
    .into())
}

/// `ccag export`: the records as the server writes them (text cells that
/// would be formulas already made text); a note on stderr when the limit
/// cut the export short.
pub async fn export(ctx: &Ctx, args: ExportArgs) -> Result<Out, CliError> {
    let filter = pb::AnalyticsFilter {
        since: time_arg(args.filter.since)?,
        until: time_arg(args.filter.until)?,
        user: args.filter.user.unwrap_or_default(),
        team: args.filter.team.unwrap_or_default(),
        key: args.filter.key.unwrap_or_default(),
        model: args.model.unwrap_or_default(),
        endpoint: args.bedrock_endpoint.unwrap_or_default(),
    };
    let resp = ctx
        .analytics()
        .export_usage(pb::ExportUsageRequest { filter: Some(filter), limit: args.limit })
        .await
        .map_err(|s| ctx.err(s))?
        .into_inner();
    let note = resp.truncated.then(|| {
        format!("more records match: the export holds the newest {}; narrow it with --since/--until", resp.rows)
    });
    Ok(Out { stdout: resp.csv, note })
}

/// One line per row, ids and names both, exact micro-USD beside dollars;
/// no total line (spreadsheets sum for themselves).
fn render_csv(resp: &pb::GetUsageResponse, series: bool) -> Result<String, CliError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["group", "name"];
    if series {
        header.insert(0, "bucket");
    }
    header.extend([
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cost_usd",
        "cost_micro_usd",
        "unpriced_requests",
    ]);
    let fail = |e: csv::Error| CliError::other(format!("writing CSV: {e}"));
    w.write_record(&header).map_err(fail)?;
    for r in &resp.rows {
        let safe = |s: &str| ccag_proto::export::spreadsheet_safe(s).into_owned();
        let mut line = vec![safe(&r.group), safe(&r.name)];
        if series {
            line.insert(0, r.bucket.clone());
        }
        line.extend([
            r.requests.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cache_creation_input_tokens.to_string(),
            r.cache_read_input_tokens.to_string(),
            output::usd_text(r.cost_micro_usd),
            r.cost_micro_usd.to_string(),
            r.unpriced_requests.to_string(),
        ]);
        w.write_record(&line).map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| CliError::other(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// JSON: `{"rows": [...], "total": {...}}`; text: a table of names (ids
/// are in the JSON) ending in a total row.
fn render_usage(resp: &pb::GetUsageResponse, json: bool, series: bool) -> String {
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
    total.name = "TOTAL".into();
    recs.push(total.record());
    let columns: Vec<&str> = pb::UsageRow::COLUMNS.iter().copied().filter(|c| series || *c != "bucket").collect();
    output::list_table(&columns, &recs, pb::UsageRow::PLURAL)
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
            group: format!("usr_{g}"),
            name: format!("{g}@example.com"),
            requests: r,
            input_tokens: 10 * r,
            cost_usd: c,
            cost_micro_usd: (c * 1e6).round() as i64,
            ..Default::default()
        };
        pb::GetUsageResponse { rows: vec![row("alice", 2, 0.5), row("bob", 1, 0.25)], total: Some(row("", 3, 0.75)) }
    }

    #[test]
    fn usage_json_has_rows_and_total() {
        let v: serde_json::Value = serde_json::from_str(&render_usage(&resp(), true, false)).unwrap();
        assert_eq!(v["rows"].as_array().unwrap().len(), 2);
        assert_eq!(v["rows"][0]["group"], "usr_alice");
        assert_eq!(v["rows"][0]["name"], "alice@example.com");
        assert_eq!(v["total"]["requests"], 3);
        assert_eq!(v["total"]["cost_usd"], 0.75);
    }

    #[test]
    fn usage_text_ends_with_a_total() {
        let t = render_usage(&resp(), false, false);
        assert!(t.contains("alice@example.com") && t.contains("TOTAL") && t.contains("$0.75"), "{t}");
        assert!(!t.contains("usr_alice") && !t.contains("BUCKET"), "tables show names, ids are in the JSON: {t}");
        let empty = pb::GetUsageResponse::default();
        assert_eq!(render_usage(&empty, false, false), "No usage in this period.\n");
    }

    #[test]
    fn a_series_table_leads_with_its_bucket_and_csv_has_ids_and_names() {
        let mut r = resp();
        r.rows[0].bucket = "2026-12-01T00:00:00Z".into();
        assert!(render_usage(&r, false, true).contains("BUCKET"));
        let csv = render_csv(&r, true).unwrap();
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().starts_with("bucket,group,name,requests"));
        assert!(lines.next().unwrap().starts_with("2026-12-01T00:00:00Z,usr_alice,alice@example.com,2,20,"), "{csv}");
        assert_eq!(csv.lines().count(), 3, "no total line: {csv}");
    }
}
