//! `ccag budgets`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, one_out, Out};
use crate::args::{BudgetScopeArgs, BudgetsCmd};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output;

fn scope(s: &BudgetScopeArgs) -> (pb::BudgetScope, String) {
    match (&s.user, &s.team) {
        (Some(u), _) => (pb::BudgetScope::User, u.clone()),
        (_, Some(t)) => (pb::BudgetScope::Team, t.clone()),
        _ => (pb::BudgetScope::Org, String::new()),
    }
}

pub async fn run(ctx: &Ctx, cmd: BudgetsCmd, json: bool) -> Result<Out, CliError> {
    match cmd {
        BudgetsCmd::Set { scope: s, period, limit_usd, policy, member_default } => {
            if !limit_usd.is_finite() || limit_usd < 0.0 {
                return Err(CliError::usage(format!("--limit-usd must be a non-negative number, got {limit_usd}")));
            }
            if member_default && s.team.is_none() {
                return Err(CliError::usage("--member-default goes with --team"));
            }
            let (sc, subject) = scope(&s);
            let b = ctx
                .budgets()
                .set_budget(pb::SetBudgetRequest {
                    scope: sc as i32,
                    subject,
                    member_default,
                    period: period.as_str().into(),
                    limit_micro_usd: 0,
                    limit_usd,
                    policy,
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(one_out(&b, json))
        }
        BudgetsCmd::List => {
            let r = ctx.budgets().list_budgets(pb::ListBudgetsRequest {}).await.map_err(|e| ctx.err(e))?.into_inner();
            Ok(output::render_list(&r.budgets, json).into())
        }
        BudgetsCmd::Delete { scope: s, period, member_default } => {
            let (sc, subject) = scope(&s);
            let what = if subject.is_empty() { "organisation".to_owned() } else { subject.clone() };
            ctx.budgets()
                .delete_budget(pb::DeleteBudgetRequest {
                    id: String::new(),
                    scope: sc as i32,
                    subject,
                    period: period.as_str().into(),
                    member_default,
                })
                .await
                .map_err(|e| ctx.err(e))?;
            Ok(deleted_out(&format!("the {} budget of", period.as_str()), "subject", &what, json))
        }
        BudgetsCmd::Status { user, team } => {
            let r = ctx
                .budgets()
                .get_budget_status(pb::GetBudgetStatusRequest {
                    user: user.unwrap_or_default(),
                    team: team.unwrap_or_default(),
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            if r.lines.is_empty() && !json {
                return Ok("No budget applies.\n".to_string().into());
            }
            Ok(output::render_list(&r.lines, json).into())
        }
    }
}
