//! One delivery to one destination, bounded by the call timeout, so that a
//! slow or dead destination holds up nothing but itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{aws::Aws, webhook, SendError};
use crate::secrets::Keyring;
use crate::store::entities::notification_destinations as destinations;
use crate::store::DestinationKind;
use ccag_outbound::Policy;

pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Sender {
    pub policy: Policy,
    pub keyring: Arc<Keyring>,
    pub aws: Aws,
}

/// What one send needs of its event.
pub struct Outgoing<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub payload: &'a str,
}

/// The destination's answer, in a line: the HTTP status and body for a
/// webhook, the message or event id for SNS and EventBridge.
#[derive(Debug, Clone)]
pub struct Sent {
    pub status: i32,
    pub answer: String,
}

impl Sender {
    /// The secrets a webhook is signed with now: its own, and the previous
    /// one while its overlap runs.
    pub fn signing_secrets(&self, d: &destinations::Model) -> Result<Vec<String>, SendError> {
        let mut out = vec![self.keyring.open(&d.secret_enc, &d.id)?];
        if !d.previous_secret_enc.is_empty() && d.previous_secret_until.is_some_and(|t| t > Utc::now()) {
            out.push(self.keyring.open(&d.previous_secret_enc, &d.id)?);
        }
        Ok(out)
    }

    pub async fn send(&self, d: &destinations::Model, ev: &Outgoing<'_>) -> Result<Sent, SendError> {
        match tokio::time::timeout(CALL_TIMEOUT, self.send_unbounded(d, ev)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(CALL_TIMEOUT.as_secs())),
        }
    }

    async fn send_unbounded(&self, d: &destinations::Model, ev: &Outgoing<'_>) -> Result<Sent, SendError> {
        match DestinationKind::parse(&d.kind) {
            DestinationKind::Webhook => {
                let target = ccag_outbound::webhook_target(&d.target)?;
                let secrets = self.signing_secrets(d)?;
                let a = webhook::post(
                    &self.policy,
                    &target,
                    &secrets,
                    ev.id,
                    Utc::now().timestamp(),
                    Bytes::copy_from_slice(ev.payload.as_bytes()),
                )
                .await?;
                Ok(Sent { status: a.status as i32, answer: format!("{} {}", a.status, a.body.trim()) })
            }
            DestinationKind::Sns => {
                let v: serde_json::Value = serde_json::from_str(ev.payload).unwrap_or_default();
                let s = &v["subject"];
                let who = ["name", "email", "id"].iter().find_map(|k| s[*k].as_str()).unwrap_or("");
                let severity = v["severity"].as_str().unwrap_or("");
                let subject = if who.is_empty() { ev.kind.to_owned() } else { format!("{} for {who}", ev.kind) };
                let answer = self.aws.publish_sns(&d.target, &d.role_arn, ev, severity, &subject).await?;
                Ok(Sent { status: 200, answer })
            }
            DestinationKind::EventBridge => {
                let answer = self.aws.put_event(&d.target, &d.role_arn, ev.kind, ev.occurred_at, ev.payload).await?;
                Ok(Sent { status: 200, answer })
            }
        }
    }
}
