//! The typed settings registry: every gateway setting an admin may set, with
//! its parser. `SetSetting` refuses an unknown key or a value its parser
//! does not take, so a typo never silently means "the default".

use std::collections::HashMap;

use ccag_proto::config::v1 as pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A whole number of bytes in a range.
    Bytes { min: u64, max: u64 },
    /// A duration in whole milliseconds in a range.
    Millis { min: u32, max: u32 },
    /// A comma-separated list of beta names.
    Betas,
    /// An inference-profile geo.
    Geo,
    /// true or false.
    Flag,
    /// A whole number in a range.
    Count { min: u32, max: u32 },
    /// A routing strategy.
    Strategy,
}

pub struct Def {
    pub key: &'static str,
    kind: Kind,
    pub about: &'static str,
}

const DAY_MS: u32 = 86_400_000;

pub const KNOWN: &[Def] = &[
    Def {
        key: "dataplane.max_body_bytes",
        kind: Kind::Bytes { min: 1024, max: 25_000_000 },
        about: "largest request body the data plane accepts (Bedrock's own limit is 25,000,000)",
    },
    Def {
        key: "dataplane.first_byte_timeout_ms",
        kind: Kind::Millis { min: 100, max: DAY_MS },
        about: "how long to wait for Bedrock's first byte",
    },
    Def {
        key: "dataplane.stream_idle_timeout_ms",
        kind: Kind::Millis { min: 100, max: DAY_MS },
        about: "longest silence inside a stream",
    },
    Def {
        key: "dataplane.max_stream_duration_ms",
        kind: Kind::Millis { min: 1000, max: DAY_MS },
        about: "longest a stream may last",
    },
    Def {
        key: "dataplane.ping_interval_ms",
        kind: Kind::Millis { min: 100, max: 3_600_000 },
        about: "interval of SSE pings to the client",
    },
    Def {
        key: "dataplane.request_timeout_ms",
        kind: Kind::Millis { min: 100, max: DAY_MS },
        about: "deadline of a non-streaming request",
    },
    Def {
        key: "dataplane.extra_betas",
        kind: Kind::Betas,
        about: "betas forwarded to Bedrock on top of the built-in allow-list (comma-separated)",
    },
    Def {
        key: "routing.geo",
        kind: Kind::Geo,
        about: "forces the inference-profile geo: global, us, eu, apac, jp, au or us-gov",
    },
    Def {
        key: "routing.strategy",
        kind: Kind::Strategy,
        about: "how requests spread over the endpoints, for teams that set none: fallback, round-robin, sticky \
                or adaptive (default sticky)",
    },
    Def {
        key: "routing.max_attempts",
        kind: Kind::Count { min: 1, max: 10 },
        about: "endpoints a request may try before the first byte, the first included (default 3)",
    },
    Def {
        key: "routing.attempt_timeout_ms",
        kind: Kind::Millis { min: 100, max: DAY_MS },
        about: "how long one attempt waits for its first byte before the next endpoint is tried \
                (default: the whole first-byte timeout)",
    },
    Def {
        key: "routing.breaker_failures",
        kind: Kind::Count { min: 1, max: 100 },
        about: "consecutive failures that open an endpoint's circuit (default 5)",
    },
    Def {
        key: "routing.breaker_cooldown_ms",
        kind: Kind::Millis { min: 100, max: 3_600_000 },
        about: "how long an open circuit waits before a probe (default 30000)",
    },
    Def {
        key: "scim.revoke_keys_on_deprovision",
        kind: Kind::Flag,
        about: "true: a user SCIM deactivates or deletes also loses their API keys, so re-activation needs new ones \
                (default false: re-activation restores the same keys)",
    },
];

const GEOS: &[&str] = &["global", "us", "eu", "apac", "jp", "au", "us-gov"];
const STRATEGIES: &[&str] = &["fallback", "round-robin", "sticky", "adaptive"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingError {
    #[error("key: {0:?} is not a setting; known settings: {1}")]
    Unknown(String, String),
    #[error("value: {key} takes {want}, not {got:?}")]
    Invalid { key: &'static str, want: String, got: String },
}

pub fn def(key: &str) -> Option<&'static Def> {
    KNOWN.iter().find(|d| d.key == key)
}

/// The value in its canonical form, or why it is refused.
pub fn validate(key: &str, value: &str) -> Result<String, SettingError> {
    let d = def(key).ok_or_else(|| {
        SettingError::Unknown(key.to_owned(), KNOWN.iter().map(|d| d.key).collect::<Vec<_>>().join(", "))
    })?;
    let v = value.trim();
    let invalid = |want: String| SettingError::Invalid { key: d.key, want, got: value.to_owned() };
    match d.kind {
        Kind::Bytes { min, max } => match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid(format!("a whole number of bytes from {min} to {max}"))),
        },
        Kind::Millis { min, max } => match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid(format!("whole milliseconds from {min} to {max}"))),
        },
        Kind::Betas => {
            let betas = betas(v);
            let ok = betas.iter().all(|b| {
                b.len() <= 100 && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            });
            if ok {
                Ok(betas.join(","))
            } else {
                Err(invalid("beta names of a-z, 0-9 and '-', separated by commas".into()))
            }
        }
        Kind::Geo => {
            if GEOS.contains(&v) {
                Ok(v.to_owned())
            } else {
                Err(invalid(format!("one of {}", GEOS.join(", "))))
            }
        }
        Kind::Flag => match v.to_ascii_lowercase().as_str() {
            "true" => Ok("true".into()),
            "false" => Ok("false".into()),
            _ => Err(invalid("true or false".into())),
        },
        Kind::Count { min, max } => match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
            _ => Err(invalid(format!("a whole number from {min} to {max}"))),
        },
        Kind::Strategy => {
            if STRATEGIES.contains(&v) {
                Ok(v.to_owned())
            } else {
                Err(invalid(format!("one of {}", STRATEGIES.join(", "))))
            }
        }
    }
}

/// A flag's stored value, or false when it is unset or no longer parses.
pub async fn flag<C: sea_orm::ConnectionTrait>(c: &C, key: &str) -> Result<bool, sea_orm::DbErr> {
    use sea_orm::EntityTrait;
    let stored = crate::store::entities::settings::Entity::find_by_id(key.to_owned()).one(c).await?;
    Ok(stored.is_some_and(|s| validate(key, &s.value).as_deref() == Ok("true")))
}

fn betas(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|b| !b.is_empty()).map(str::to_owned).collect()
}

/// The settings resource from the stored rows. A stored value that no
/// longer parses (written before this registry) is left out, with a warning,
/// so the data plane uses its default for it.
pub fn resource(stored: &HashMap<String, String>) -> pb::GatewaySettings {
    let get = |k: &str| -> Option<String> {
        let raw = stored.get(k)?;
        match validate(k, raw) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(setting = k, error = %e, "ignoring a stored setting that does not parse");
                None
            }
        }
    };
    let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let ms = |k: &str| u32::try_from(num(k)).unwrap_or(0);
    let limits = pb::Limits {
        max_body_bytes: num("dataplane.max_body_bytes"),
        first_byte_timeout_ms: ms("dataplane.first_byte_timeout_ms"),
        stream_idle_timeout_ms: ms("dataplane.stream_idle_timeout_ms"),
        max_stream_duration_ms: ms("dataplane.max_stream_duration_ms"),
        ping_interval_ms: ms("dataplane.ping_interval_ms"),
        request_timeout_ms: ms("dataplane.request_timeout_ms"),
    };
    let strategy =
        get("routing.strategy").map(|v| crate::store::Routing::parse(&v)).unwrap_or(crate::store::Routing::Inherit);
    let routing = pb::RoutingPolicy {
        strategy: crate::fleet::routing::strategy_pb(strategy) as i32,
        max_attempts: ms("routing.max_attempts"),
        attempt_timeout_ms: ms("routing.attempt_timeout_ms"),
        breaker_failures: ms("routing.breaker_failures"),
        breaker_cooldown_ms: ms("routing.breaker_cooldown_ms"),
    };
    pb::GatewaySettings {
        geo: get("routing.geo").unwrap_or_default(),
        limits: (limits != pb::Limits::default()).then_some(limits),
        extra_betas: get("dataplane.extra_betas").map(|v| betas(&v)).unwrap_or_default(),
        routing: (routing != pb::RoutingPolicy::default()).then_some(routing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_key_is_refused_and_the_known_ones_are_listed() {
        let e = validate("dataplane.max_body_byte", "10").unwrap_err();
        assert!(
            matches!(&e, SettingError::Unknown(k, known) if k == "dataplane.max_body_byte" && known.contains("dataplane.max_body_bytes"))
        );
    }

    #[test]
    fn a_value_that_does_not_parse_is_refused_with_what_the_key_takes() {
        let e = validate("dataplane.max_body_bytes", "tenmegabytes").unwrap_err();
        assert_eq!(
            e.to_string(),
            "value: dataplane.max_body_bytes takes a whole number of bytes from 1024 to 25000000, not \"tenmegabytes\""
        );
        assert!(validate("dataplane.ping_interval_ms", "10s").is_err());
        assert!(validate("dataplane.ping_interval_ms", "0").is_err());
        assert!(validate("routing.geo", "mars").is_err());
        assert!(validate("scim.revoke_keys_on_deprovision", "yes").is_err());
        assert_eq!(validate("scim.revoke_keys_on_deprovision", " TRUE ").unwrap(), "true");
        assert!(validate("dataplane.extra_betas", "Bad Beta").is_err());
        assert!(validate("routing.strategy", "random").is_err());
        assert!(validate("routing.strategy", "round_robin").is_err());
        assert!(validate("routing.max_attempts", "0").is_err());
        assert!(validate("routing.max_attempts", "11").is_err());
        assert!(validate("routing.breaker_failures", "101").is_err());
        assert!(validate("routing.breaker_cooldown_ms", "99").is_err());
        assert!(validate("routing.breaker_cooldown_ms", "3600001").is_err());
        assert!(validate("routing.attempt_timeout_ms", "50").is_err());
        assert_eq!(
            validate("routing.max_attempts", "x").unwrap_err().to_string(),
            "value: routing.max_attempts takes a whole number from 1 to 10, not \"x\""
        );
    }

    #[test]
    fn the_routing_policy_carries_the_set_values_and_zero_for_the_rest() {
        let stored: HashMap<String, String> =
            [("routing.strategy", "adaptive"), ("routing.max_attempts", "2"), ("routing.breaker_cooldown_ms", "5000")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let p = resource(&stored).routing.unwrap();
        assert_eq!(p.strategy, pb::RoutingStrategy::Adaptive as i32);
        assert_eq!((p.max_attempts, p.attempt_timeout_ms, p.breaker_failures, p.breaker_cooldown_ms), (2, 0, 0, 5000));
        assert_eq!(validate("routing.strategy", " round-robin ").unwrap(), "round-robin");
        assert_eq!(validate("routing.attempt_timeout_ms", "2500").unwrap(), "2500");
        assert!(resource(&HashMap::new()).routing.is_none());
    }

    #[test]
    fn values_are_stored_in_canonical_form() {
        assert_eq!(validate("dataplane.ping_interval_ms", " 250 ").unwrap(), "250");
        assert_eq!(validate("dataplane.extra_betas", " a-1 , ,b-2").unwrap(), "a-1,b-2");
        assert_eq!(validate("routing.geo", "global").unwrap(), "global");
    }

    #[test]
    fn the_resource_carries_parsed_values_and_leaves_out_bad_stored_ones() {
        let stored: HashMap<String, String> = [
            ("dataplane.ping_interval_ms", "250"),
            ("dataplane.request_timeout_ms", "ten"),
            ("routing.geo", "eu"),
            ("dataplane.extra_betas", "x-1,y-2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let r = resource(&stored);
        let l = r.limits.unwrap();
        assert_eq!((l.ping_interval_ms, l.request_timeout_ms), (250, 0));
        assert_eq!(r.geo, "eu");
        assert_eq!(r.extra_betas, vec!["x-1", "y-2"]);
        assert!(resource(&HashMap::new()).limits.is_none());
    }
}
