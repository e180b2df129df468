//! `ccag notifications`.

use ccag_proto::admin::v1 as pb;

use super::{deleted_out, one_out, require_change, Out};
use crate::args::{DestinationTarget, NotificationsCmd};
use crate::client::Ctx;
use crate::error::CliError;
use crate::output::{self, Resource};

fn target(t: DestinationTarget) -> (pb::DestinationKind, String) {
    match (t.webhook, t.sns_topic, t.eventbridge_bus) {
        (Some(u), _, _) => (pb::DestinationKind::Webhook, u),
        (_, Some(a), _) => (pb::DestinationKind::Sns, a),
        (_, _, Some(b)) => (pb::DestinationKind::Eventbridge, b),
        _ => (pb::DestinationKind::Unspecified, String::new()),
    }
}

fn list(events: &str) -> Vec<String> {
    events.split(',').map(str::trim).filter(|s| !s.is_empty() && *s != "all").map(str::to_owned).collect()
}

/// A destination and, for a webhook, its secret, which is shown only now.
fn with_secret(d: &pb::Destination, secret: &str, verb: &str, json: bool) -> Out {
    if json {
        let mut rec = d.record();
        if !secret.is_empty() {
            rec = rec.prepend("secret", secret.to_owned());
        }
        return output::to_json(&rec).into();
    }
    if secret.is_empty() {
        return format!("{verb} notification destination {:?} (id {}).\n", d.name, d.id).into();
    }
    format!(
        "{verb} notification destination {:?} (id {}). Its signing secret:\n\n    {secret}\n\n\
         Copy it now: it will not be shown again. Receivers verify the webhook-signature header with it\n\
         (any Standard Webhooks library does).\n",
        d.name, d.id
    )
    .into()
}

pub async fn run(ctx: &Ctx, cmd: NotificationsCmd, json: bool) -> Result<Out, CliError> {
    let mut api = ctx.notifications();
    match cmd {
        NotificationsCmd::Create { target: t, name, events, role_arn, disabled } => {
            let (kind, target) = target(t);
            let r = api
                .create_destination(pb::CreateDestinationRequest {
                    name: name.unwrap_or_default(),
                    kind: kind as i32,
                    target,
                    events: list(&events.unwrap_or_default()),
                    role_arn: role_arn.unwrap_or_default(),
                    disabled,
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(with_secret(&r.destination.unwrap_or_default(), &r.secret, "Created", json))
        }
        NotificationsCmd::List => {
            let r = api.list_destinations(pb::ListDestinationsRequest {}).await.map_err(|e| ctx.err(e))?.into_inner();
            Ok(output::render_list(&r.destinations, json).into())
        }
        NotificationsCmd::Update { id, name, target, events, enable, disable, role_arn } => {
            require_change(
                name.is_some() || target.is_some() || events.is_some() || enable || disable || role_arn.is_some(),
            )?;
            let d = api
                .update_destination(pb::UpdateDestinationRequest {
                    id,
                    name,
                    target,
                    set_events: events.is_some(),
                    events: list(&events.unwrap_or_default()),
                    enabled: if enable {
                        Some(true)
                    } else if disable {
                        Some(false)
                    } else {
                        None
                    },
                    role_arn,
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(one_out(&d, json))
        }
        NotificationsCmd::Delete { id } => {
            api.delete_destination(pb::DeleteDestinationRequest { id: id.clone() }).await.map_err(|e| ctx.err(e))?;
            Ok(deleted_out("notification destination", "id", &id, json))
        }
        NotificationsCmd::RotateSecret { id, overlap_hours } => {
            let overlap_secs = overlap_hours
                .checked_mul(3600)
                .filter(|s| *s > 0)
                .ok_or_else(|| CliError::usage("--overlap-hours: from 1 to 720"))?;
            let r = api
                .rotate_secret(pb::RotateSecretRequest { id, overlap_secs })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(with_secret(&r.destination.unwrap_or_default(), &r.secret, "Rotated the secret of", json))
        }
        NotificationsCmd::Test { id } => {
            let r = api.test_destination(pb::TestDestinationRequest { id }).await.map_err(|e| ctx.err(e))?.into_inner();
            if !r.ok && !json {
                return Err(CliError::other(format!(
                    "the test event {} was not delivered ({} ms): {}",
                    r.event_id, r.duration_ms, r.answer
                )));
            }
            Ok(one_out(&r, json))
        }
        NotificationsCmd::Deliveries { destination, failed, limit } => {
            let r = api
                .list_deliveries(pb::ListDeliveriesRequest {
                    destination: destination.unwrap_or_default(),
                    failed,
                    limit,
                })
                .await
                .map_err(|e| ctx.err(e))?
                .into_inner();
            Ok(output::render_list(&r.deliveries, json).into())
        }
    }
}
