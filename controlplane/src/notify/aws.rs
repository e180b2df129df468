//! Amazon SNS (`Publish`) and Amazon EventBridge (`PutEvents`). Credentials
//! come from the standard AWS chain, or from a role assumed per destination;
//! endpoints from the standard variables (`AWS_ENDPOINT_URL_SNS`,
//! `AWS_ENDPOINT_URL_EVENTBRIDGE`, `AWS_ENDPOINT_URL_STS`). One client per
//! (region, role) is built once and kept.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_sns::types::MessageAttributeValue;
use tokio::sync::{Mutex, OnceCell};

use super::send::Outgoing;
use super::SendError;

/// `Source` of every EventBridge event the gateway puts.
pub const EVENT_SOURCE: &str = "ccag";

#[derive(Default)]
pub struct Aws {
    base: OnceCell<SdkConfig>,
    configs: Mutex<HashMap<(String, String), SdkConfig>>,
}

/// The region an ARN names (`arn:aws:sns:REGION:ACCOUNT:…`), if it names one.
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    parts.next()?;
    parts.next()?;
    parts.next().filter(|r| !r.is_empty())
}

/// An SNS topic ARN: `arn:PARTITION:sns:REGION:ACCOUNT:NAME`.
pub fn check_topic_arn(arn: &str) -> Result<(), String> {
    let p: Vec<&str> = arn.split(':').collect();
    let ok = p.len() == 6
        && p[0] == "arn"
        && p[1].starts_with("aws")
        && p[2] == "sns"
        && !p[3].is_empty()
        && p[4].len() == 12
        && p[4].bytes().all(|b| b.is_ascii_digit())
        && !p[5].is_empty()
        && p[5].len() <= 256
        && p[5].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then_some(()).ok_or_else(|| format!("{arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"))
}

/// An EventBridge bus: its name, or `arn:PARTITION:events:REGION:ACCOUNT:event-bus/NAME`.
pub fn check_bus(bus: &str) -> Result<(), String> {
    let name_ok = |n: &str| {
        !n.is_empty() && n.len() <= 256 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    };
    let ok = if bus.starts_with("arn:") {
        let p: Vec<&str> = bus.splitn(6, ':').collect();
        p.len() == 6
            && p[1].starts_with("aws")
            && p[2] == "events"
            && !p[3].is_empty()
            && p[4].len() == 12
            && p[4].bytes().all(|b| b.is_ascii_digit())
            && p[5].strip_prefix("event-bus/").is_some_and(name_ok)
    } else {
        name_ok(bus) && !bus.contains('/')
    };
    ok.then_some(()).ok_or_else(|| {
        format!("{bus:?} is not an EventBridge bus name or ARN (arn:aws:events:REGION:ACCOUNT:event-bus/NAME)")
    })
}

/// An IAM role ARN to assume, or empty.
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    if arn.is_empty() {
        return Ok(());
    }
    let p: Vec<&str> = arn.splitn(6, ':').collect();
    // IAM names: letters, digits and +=,.@-_, with / for paths.
    let name_ok = |n: &str| {
        !n.is_empty() && n.len() <= 512 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b))
    };
    let ok = arn.len() <= 2048
        && p.len() == 6
        && p[0] == "arn"
        && matches!(p[1], "aws" | "aws-cn" | "aws-us-gov")
        && p[2] == "iam"
        && p[3].is_empty()
        && p[4].len() == 12
        && p[4].bytes().all(|b| b.is_ascii_digit())
        && p[5].strip_prefix("role/").is_some_and(name_ok);
    ok.then_some(()).ok_or_else(|| format!("{arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"))
}

/// SNS subjects are ASCII, one line, at most 100 characters.
pub fn sns_subject(text: &str) -> String {
    let s: String = text.chars().map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    s.chars().take(100).collect()
}

impl Aws {
    async fn config(&self, region: Option<&str>, role: &str) -> Result<SdkConfig, SendError> {
        let base = self
            .base
            .get_or_init(|| async {
                aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .connect_timeout(Duration::from_secs(5))
                            .operation_timeout(Duration::from_secs(10))
                            .build(),
                    )
                    .load()
                    .await
            })
            .await;
        let region = region.map(str::to_owned).or_else(|| base.region().map(|r| r.to_string()));
        let key = (region.clone().unwrap_or_default(), role.to_owned());
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(&key) {
            return Ok(c.clone());
        }
        let mut b = base.to_builder();
        if let Some(r) = &region {
            b = b.region(Region::new(r.clone()));
        }
        if !role.is_empty() {
            let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                .session_name("ccag-notifications")
                .configure(base)
                .build()
                .await;
            b = b.credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider));
        }
        let c = b.build();
        configs.insert(key, c.clone());
        Ok(c)
    }

    /// Publishes `ev` with `subject` as the SNS subject and its type and
    /// severity as message attributes.
    pub async fn publish_sns(
        &self,
        topic: &str,
        role: &str,
        ev: &Outgoing<'_>,
        severity: &str,
        subject: &str,
    ) -> Result<String, SendError> {
        let conf = self.config(arn_region(topic), role).await?;
        let client = aws_sdk_sns::Client::new(&conf);
        let attr = |v: &str| MessageAttributeValue::builder().data_type("String").string_value(v).build();
        let mut req = client
            .publish()
            .topic_arn(topic)
            .subject(sns_subject(subject))
            .message(ev.payload)
            .message_attributes("type", attr(ev.kind).map_err(|e| SendError::Config(e.to_string()))?)
            .message_attributes("severity", attr(severity).map_err(|e| SendError::Config(e.to_string()))?)
            .message_attributes("event_id", attr(ev.id).map_err(|e| SendError::Config(e.to_string()))?);
        if topic.ends_with(".fifo") {
            // FIFO topics drop a repeat of the same deduplication id for five minutes.
            req = req.message_group_id("ccag").message_deduplication_id(ev.id);
        }
        let out = req.send().await.map_err(|e| SendError::Aws(aws_error(&e)))?;
        Ok(format!("MessageId {}", out.message_id().unwrap_or("")))
    }

    pub async fn put_event(
        &self,
        bus: &str,
        role: &str,
        event_type: &str,
        occurred_at: chrono::DateTime<chrono::Utc>,
        detail: &str,
    ) -> Result<String, SendError> {
        let conf = self.config(arn_region(bus), role).await?;
        let client = aws_sdk_eventbridge::Client::new(&conf);
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(EVENT_SOURCE)
            .detail_type(event_type)
            .detail(detail)
            .time(aws_smithy_types::DateTime::from_millis(occurred_at.timestamp_millis()))
            .build();
        let out = client.put_events().entries(entry).send().await.map_err(|e| SendError::Aws(aws_error(&e)))?;
        let first = out.entries().first();
        if out.failed_entry_count() > 0 || first.is_some_and(|e| e.error_code().is_some()) {
            let (code, msg) =
                first.map(|e| (e.error_code().unwrap_or(""), e.error_message().unwrap_or(""))).unwrap_or_default();
            return Err(SendError::Aws(format!("PutEvents refused the event: {code} {msg}")));
        }
        Ok(format!("EventId {}", first.and_then(|e| e.event_id()).unwrap_or("")))
    }
}

/// The service's own code and message where there is one, rather than the
/// SDK's "service error".
fn aws_error<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), m) => format!("{c}: {}", m.unwrap_or("")),
                // An answer the SDK could not read as this service's error
                // (an IAM-style XML error from a gateway or emulator, say).
                (None, _) => {
                    let raw = s.raw();
                    let body = raw.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
                    let tag = |t: &str| {
                        let open = format!("<{t}>");
                        let start = body.find(&open)? + open.len();
                        Some(body[start..start + body[start..].find('<')?].to_owned())
                    };
                    match tag("Code") {
                        Some(c) => format!("{c}: {}", tag("Message").unwrap_or_default()),
                        None => format!("the service answered {}", raw.status().as_u16()),
                    }
                }
            }
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(_) => format!("cannot reach the service: {}", chain(e)),
        _ => chain(e),
    }
}

/// An error and its causes, each once, in one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(x) = cur {
        let s = x.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = x.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns_are_checked() {
        assert!(check_topic_arn("arn:aws:sns:eu-west-1:123456789012:alerts").is_ok());
        assert!(check_topic_arn("arn:aws:sns:eu-west-1:123456789012:alerts.fifo").is_ok());
        assert!(check_topic_arn("arn:aws:sqs:eu-west-1:123456789012:alerts").is_err());
        assert!(check_topic_arn("arn:aws:sns:eu-west-1:1234:alerts").is_err());
        assert_eq!(arn_region("arn:aws:sns:eu-west-1:123456789012:alerts"), Some("eu-west-1"));
    }

    #[test]
    fn buses_are_names_or_arns() {
        assert!(check_bus("default").is_ok());
        assert!(check_bus("ccag-events").is_ok());
        assert!(check_bus("arn:aws:events:us-east-1:123456789012:event-bus/ccag").is_ok());
        assert!(check_bus("arn:aws:events:us-east-1:123456789012:rule/x").is_err());
        assert!(check_bus("").is_err());
        assert_eq!(arn_region("default"), None);
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(check_role_arn("").is_ok());
        assert!(check_role_arn("arn:aws:iam::123456789012:role/ccag").is_ok());
        assert!(check_role_arn("arn:aws:iam::123456789012:user/ccag").is_err());
    }

    #[test]
    fn sns_subjects_are_one_ascii_line_of_100() {
        let s = sns_subject(&format!("budget.blocked for zoë\n{}", "x".repeat(200)));
        assert_eq!(s.len(), 100);
        assert!(s.starts_with("budget.blocked for zo??x"), "{s}");
    }
}
