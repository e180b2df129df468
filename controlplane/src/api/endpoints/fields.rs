//! The checks of an endpoint's fields, each refusal naming its field first,
//! and the stored forms of the routing enums beside their API forms.

use std::collections::{BTreeMap, HashMap};

use ccag_proto::admin::v1 as pb;

use crate::api::{require, ApiError};
use crate::store::{Circuit, CredentialKind, Routing, Scope};

pub const MAX_WEIGHT: u32 = 1000;
/// Models an endpoint may list, and profile ARNs it may map.
pub const MAX_MODELS: usize = 200;
/// The inference-profile prefixes Bedrock knows.
pub const PREFIXES: &[&str] = &["global", "us", "eu", "apac", "jp", "au", "us-gov"];

fn invalid(msg: String) -> ApiError {
    ApiError::InvalidArgument(msg)
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// `us-east-1`, `us-gov-west-1`, `ap-southeast-4` …
pub fn region(v: &str) -> Result<String, ApiError> {
    let r = require("region", v, 32)?;
    if !is_region(&r) {
        return Err(invalid(format!("region: {r:?} is not an AWS region name")));
    }
    Ok(r)
}

/// "" is none.
pub fn role_arn(v: &str) -> Result<String, ApiError> {
    let a = v.trim();
    if a.is_empty() {
        return Ok(String::new());
    }
    crate::notify::aws::check_role_arn(a).map_err(|e| invalid(format!("role_arn: {e}")))?;
    Ok(a.to_owned())
}

pub fn weight(v: u32) -> Result<i32, ApiError> {
    if !(1..=MAX_WEIGHT).contains(&v) {
        return Err(invalid(format!("weight: from 1 to {MAX_WEIGHT}, not {v}")));
    }
    Ok(v as i32)
}

/// The URL as stored (no trailing slash) and its target, whose addresses
/// the caller checks; "" is none.
pub fn endpoint_url(v: &str) -> Result<(String, Option<ccag_outbound::Target>), ApiError> {
    let u = v.trim();
    if u.is_empty() {
        return Ok((String::new(), None));
    }
    if u.len() > 2048 {
        return Err(invalid("endpoint_url: at most 2048 characters".into()));
    }
    let t = ccag_outbound::bedrock_target(u).map_err(|e| invalid(format!("endpoint_url: {e}")))?;
    Ok((u.trim_end_matches('/').to_owned(), Some(t)))
}

/// STS's rule for an external id; "" is none.
pub fn external_id(v: &str) -> Result<String, ApiError> {
    let x = v.trim();
    if x.is_empty() {
        return Ok(String::new());
    }
    let ok = (2..=1224).contains(&x.len()) && x.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@:/-".contains(&b));
    if !ok {
        return Err(invalid("external_id: 2 to 1224 characters of letters, digits and _+=,.@:/-".into()));
    }
    Ok(x.to_owned())
}

/// A Bedrock API key; "" is none. The refusal never quotes it.
pub fn api_key(v: &str) -> Result<Option<String>, ApiError> {
    let k = v.trim();
    if k.is_empty() {
        return Ok(None);
    }
    if k.len() > 4096 || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid("api_key: at most 4096 printable characters, without spaces".into()));
    }
    Ok(Some(k.to_owned()))
}

/// The kind of credentials the final fields make, or why they do not go
/// together. `key_given`: the request itself sets a key (then the key is
/// what is refused beside a role, else the role).
pub fn credentials(
    role_arn: &str,
    has_key: bool,
    key_given: bool,
    external_id: &str,
    per_user_sessions: bool,
) -> Result<CredentialKind, ApiError> {
    let role = !role_arn.is_empty();
    if role && has_key {
        return Err(invalid(if key_given {
            "api_key: not with role_arn (an endpoint uses a role or an API key, not both)".into()
        } else {
            "role_arn: the endpoint has an API key; remove it (an empty api_key) to use a role".into()
        }));
    }
    if !role && !external_id.is_empty() {
        return Err(invalid("external_id: only with role_arn".into()));
    }
    if !role && per_user_sessions {
        return Err(invalid("per_user_sessions: only with role_arn".into()));
    }
    Ok(if has_key {
        CredentialKind::ApiKey
    } else if role {
        CredentialKind::AssumeRole
    } else {
        CredentialKind::Default
    })
}

pub fn scope_of(v: i32) -> Result<Scope, ApiError> {
    Ok(match pb::InferenceScope::try_from(v) {
        Ok(pb::InferenceScope::Unspecified) => Scope::Geo,
        Ok(pb::InferenceScope::Global) => Scope::Global,
        Ok(pb::InferenceScope::Explicit) => Scope::Explicit,
        Ok(pb::InferenceScope::Regional) => Scope::Regional,
        Err(_) => return Err(invalid(format!("scope: {v} is not an inference scope"))),
    })
}

/// A scope and its prefix: a prefix goes with EXPLICIT, and only there.
pub fn scope(s: Scope, prefix: &str) -> Result<(Scope, String), ApiError> {
    let p = prefix.trim();
    match (s, p.is_empty()) {
        (Scope::Explicit, true) => {
            Err(invalid(format!("scope_prefix: needed with scope EXPLICIT: one of {}", PREFIXES.join(", "))))
        }
        (Scope::Explicit, false) if !PREFIXES.contains(&p) => {
            Err(invalid(format!("scope_prefix: {p:?} is not one of {}", PREFIXES.join(", "))))
        }
        (Scope::Explicit, false) => Ok((s, p.to_owned())),
        (_, false) => Err(invalid("scope_prefix: only with scope EXPLICIT".into())),
        (_, true) => Ok((s, String::new())),
    }
}

/// An Anthropic model id as clients send it (`claude-sonnet-4-5`, a dated
/// id, a mapping's name).
pub fn model_id(field: &str, v: &str) -> Result<String, ApiError> {
    let m = v.trim();
    let ok = !m.is_empty()
        && m.len() <= 200
        && m.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && m.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._:@".contains(&b));
    if !ok {
        return Err(invalid(format!("{field}: {m:?} is not a model id such as claude-sonnet-4-5")));
    }
    Ok(m.to_owned())
}

/// The models an endpoint serves, in order, each once.
pub fn models(v: &[String]) -> Result<Vec<String>, ApiError> {
    if v.len() > MAX_MODELS {
        return Err(invalid(format!("models: at most {MAX_MODELS}")));
    }
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for m in v {
        let id = model_id("models", m)?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The region of `arn:aws(-cn|-us-gov)?:bedrock:REGION:ACCOUNT:application-inference-profile/ID`.
fn profile_arn_region(a: &str) -> Option<&str> {
    let p: Vec<&str> = a.splitn(6, ':').collect();
    let id_ok =
        |id: &str| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = a.len() <= 2048
        && p.len() == 6
        && p[0] == "arn"
        && matches!(p[1], "aws" | "aws-cn" | "aws-us-gov")
        && p[2] == "bedrock"
        && is_region(p[3])
        && p[4].len() == 12
        && p[4].bytes().all(|b| b.is_ascii_digit())
        && p[5].strip_prefix("application-inference-profile/").is_some_and(id_ok);
    ok.then_some(p[3])
}

/// Model id -> Application Inference Profile ARN, each in `region` (a
/// profile is called in the region it lives in).
pub fn profile_arns(v: &HashMap<String, String>, region: &str) -> Result<BTreeMap<String, String>, ApiError> {
    if v.len() > MAX_MODELS {
        return Err(invalid(format!("profile_arns: at most {MAX_MODELS}")));
    }
    let sorted: BTreeMap<&String, &String> = v.iter().collect();
    let mut out = BTreeMap::new();
    for (model, arn) in sorted {
        let m = model_id("profile_arns", model)?;
        let a = arn.trim();
        let Some(r) = profile_arn_region(a) else {
            return Err(invalid(format!(
                "profile_arns: {a:?} (for {m}) is not an application inference profile ARN \
                 (arn:aws:bedrock:REGION:ACCOUNT:application-inference-profile/ID)"
            )));
        };
        if r != region {
            return Err(invalid(format!(
                "profile_arns: the profile for {m} is in {r}, not in the endpoint's region {region}"
            )));
        }
        if out.insert(m.clone(), a.to_owned()).is_some() {
            return Err(invalid(format!("profile_arns: {m} is given twice")));
        }
    }
    Ok(out)
}

pub fn stored_arns(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub fn stored_models(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

// ------------------------------------------------------------------ enums

pub fn credentials_pb(k: CredentialKind) -> pb::EndpointCredentials {
    match k {
        CredentialKind::Default => pb::EndpointCredentials::Unspecified,
        CredentialKind::AssumeRole => pb::EndpointCredentials::AssumeRole,
        CredentialKind::ApiKey => pb::EndpointCredentials::ApiKey,
    }
}

pub fn scope_pb(s: Scope) -> pb::InferenceScope {
    match s {
        Scope::Geo => pb::InferenceScope::Unspecified,
        Scope::Global => pb::InferenceScope::Global,
        Scope::Explicit => pb::InferenceScope::Explicit,
        Scope::Regional => pb::InferenceScope::Regional,
    }
}

pub fn circuit_pb(c: Circuit) -> pb::CircuitState {
    match c {
        Circuit::Unknown => pb::CircuitState::Unspecified,
        Circuit::Closed => pb::CircuitState::Closed,
        Circuit::HalfOpen => pb::CircuitState::HalfOpen,
        Circuit::Open => pb::CircuitState::Open,
    }
}

/// A team's strategy from the API; UNSPECIFIED is the organisation's.
pub fn routing(v: i32) -> Result<Routing, ApiError> {
    Ok(match pb::RoutingStrategy::try_from(v) {
        Ok(pb::RoutingStrategy::Unspecified) => Routing::Inherit,
        Ok(pb::RoutingStrategy::Fallback) => Routing::Fallback,
        Ok(pb::RoutingStrategy::RoundRobin) => Routing::RoundRobin,
        Ok(pb::RoutingStrategy::Sticky) => Routing::Sticky,
        Ok(pb::RoutingStrategy::Adaptive) => Routing::Adaptive,
        Err(_) => return Err(invalid(format!("routing: {v} is not a routing strategy"))),
    })
}

pub fn routing_pb(r: Routing) -> pb::RoutingStrategy {
    match r {
        Routing::Inherit => pb::RoutingStrategy::Unspecified,
        Routing::Fallback => pb::RoutingStrategy::Fallback,
        Routing::RoundRobin => pb::RoutingStrategy::RoundRobin,
        Routing::Sticky => pb::RoutingStrategy::Sticky,
        Routing::Adaptive => pb::RoutingStrategy::Adaptive,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn aws_region_names_are_accepted() {
        for r in ["us-east-1", "us-gov-west-1", "ap-southeast-4", "eu-central-2"] {
            assert!(region(r).is_ok(), "{r}");
        }
    }

    #[test]
    fn other_strings_are_not_regions() {
        for r in ["", "useast1", "US-EAST-1", "us-east-", "us east 1"] {
            assert!(region(r).is_err(), "{r}");
        }
    }

    #[test]
    fn role_arns_must_name_an_iam_role() {
        assert!(role_arn("arn:aws:iam::123456789012:role/ccag").is_ok());
        assert!(role_arn("").is_ok());
        assert!(role_arn("arn:aws:s3:::bucket").is_err());
        for bad in [
            "arn:awsX:iam::123456789012:role/ccag",
            "arn:aws:iam::12345:role/ccag",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam:us-east-1:123456789012:role/ccag",
            "arn:aws:iam::123456789012:role/cc ag",
        ] {
            assert!(role_arn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_run_from_1_to_1000() {
        assert_eq!(weight(1).unwrap(), 1);
        assert_eq!(weight(1000).unwrap(), 1000);
        assert!(message(weight(0).unwrap_err()).starts_with("weight: "));
        assert!(weight(1001).is_err());
    }

    #[test]
    fn endpoint_urls_name_a_host_only_and_lose_a_trailing_slash() {
        let (u, t) = endpoint_url(" https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com/ ").unwrap();
        assert_eq!(u, "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com");
        assert_eq!(t.unwrap().port, 443);
        assert_eq!(endpoint_url("").unwrap(), (String::new(), None));
        assert_eq!(endpoint_url("http://127.0.0.1:9000").unwrap().0, "http://127.0.0.1:9000");
        for bad in ["https://x.example/model", "http://bedrock.example", "ftp://x.example", "https://u:p@x.example"] {
            assert!(message(endpoint_url(bad).unwrap_err()).starts_with("endpoint_url: "), "{bad}");
        }
    }

    #[test]
    fn external_ids_follow_the_sts_rule() {
        assert_eq!(external_id(" ccag-ext_1:x/y ").unwrap(), "ccag-ext_1:x/y");
        assert_eq!(external_id("").unwrap(), "");
        assert!(external_id("x").is_err());
        assert!(message(external_id("a b").unwrap_err()).starts_with("external_id: "));
    }

    #[test]
    fn api_keys_are_bounded_and_never_quoted() {
        assert_eq!(api_key("").unwrap(), None);
        assert_eq!(api_key(" ABSKkey123= ").unwrap().as_deref(), Some("ABSKkey123="));
        let e = message(api_key("secret with spaces").unwrap_err());
        assert!(e.starts_with("api_key: ") && !e.contains("secret"), "{e}");
        assert!(api_key(&"k".repeat(4097)).is_err());
    }

    #[test]
    fn a_role_and_an_api_key_exclude_each_other() {
        let role = "arn:aws:iam::123456789012:role/x";
        assert_eq!(credentials("", false, false, "", false).unwrap(), CredentialKind::Default);
        assert_eq!(credentials(role, false, false, "ext", true).unwrap(), CredentialKind::AssumeRole);
        assert_eq!(credentials("", true, true, "", false).unwrap(), CredentialKind::ApiKey);
        assert!(message(credentials(role, true, true, "", false).unwrap_err()).starts_with("api_key: "));
        assert!(message(credentials(role, true, false, "", false).unwrap_err()).starts_with("role_arn: "));
        assert!(message(credentials("", false, false, "ext", false).unwrap_err()).starts_with("external_id: "));
        assert!(message(credentials("", true, true, "", true).unwrap_err()).starts_with("per_user_sessions: "));
    }

    #[test]
    fn a_prefix_goes_with_the_explicit_scope_only() {
        assert_eq!(scope(Scope::Explicit, " eu ").unwrap(), (Scope::Explicit, "eu".into()));
        assert_eq!(scope(Scope::Global, "").unwrap(), (Scope::Global, String::new()));
        assert!(message(scope(Scope::Explicit, "").unwrap_err()).starts_with("scope_prefix: "));
        assert!(message(scope(Scope::Explicit, "mars").unwrap_err()).starts_with("scope_prefix: "));
        assert!(message(scope(Scope::Regional, "us").unwrap_err()).starts_with("scope_prefix: "));
        assert!(message(scope_of(9).unwrap_err()).starts_with("scope: "));
        assert_eq!(scope_of(pb::InferenceScope::Regional as i32).unwrap(), Scope::Regional);
    }

    #[test]
    fn models_are_model_ids_each_once() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            models(&v(&["claude-sonnet-4-5", " claude-haiku-4-5-20251001 ", "claude-sonnet-4-5"])).unwrap(),
            v(&["claude-sonnet-4-5", "claude-haiku-4-5-20251001"])
        );
        assert!(message(models(&v(&[""])).unwrap_err()).starts_with("models: "));
        assert!(models(&v(&["claude sonnet"])).is_err());
        assert!(models(&v(&["-x"])).is_err());
        assert!(models(&vec!["m".to_string(); MAX_MODELS + 1]).is_err());
    }

    #[test]
    fn profile_arns_are_application_inference_profiles_in_the_endpoints_region() {
        let arn = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/a1b2c3d4e5f6";
        let map = |m: &str, a: &str| [(m.to_string(), a.to_string())].into_iter().collect::<HashMap<_, _>>();
        let ok = profile_arns(&map("claude-sonnet-4-5", arn), "eu-west-1").unwrap();
        assert_eq!(ok.get("claude-sonnet-4-5").map(String::as_str), Some(arn));
        assert!(profile_arns(
            &map("m", "arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:application-inference-profile/x1"),
            "us-gov-west-1"
        )
        .is_ok());
        let e = message(profile_arns(&map("claude-sonnet-4-5", arn), "us-east-1").unwrap_err());
        assert!(e.starts_with("profile_arns: ") && e.contains("eu-west-1"), "{e}");
        for bad in [
            "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.x",
            "arn:aws:bedrock:eu-west-1:1234:application-inference-profile/a1",
            "arn:aws:iam:eu-west-1:123456789012:application-inference-profile/a1",
            "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/A1",
            "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/",
        ] {
            assert!(
                message(profile_arns(&map("m", bad), "eu-west-1").unwrap_err()).starts_with("profile_arns: "),
                "{bad}"
            );
        }
        assert!(profile_arns(&map("not a model", arn), "eu-west-1").is_err());
    }

    #[test]
    fn strategies_map_both_ways() {
        for r in [Routing::Inherit, Routing::Fallback, Routing::RoundRobin, Routing::Sticky, Routing::Adaptive] {
            assert_eq!(routing(routing_pb(r) as i32).unwrap(), r);
        }
        assert!(message(routing(42).unwrap_err()).starts_with("routing: "));
    }
}
