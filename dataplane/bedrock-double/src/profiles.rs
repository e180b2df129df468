//! Bedrock's ListInferenceProfiles (`GET /inference-profiles`): the
//! SYSTEM_DEFINED cross-region profiles of the double's geo, for the models
//! it serves.
//!
//! Profile ids are `{geo}.{foundation id}`, exactly what the gateway derives
//! for a catalogue model (`ccag_proto::models::derived_bedrock_id`), so a
//! test can feed a listing straight into routing.

use serde_json::{json, Value};

use crate::models::{self, Family, ModelInfo, Version};
use crate::sigv4;

/// The account the double's profile ARNs name.
pub const ACCOUNT_ID: &str = "111111111111";
/// The most ListInferenceProfiles returns per page (Bedrock's limit).
pub const MAX_RESULTS: usize = 1000;

/// The inference-profile geo of a region, as the gateway maps it: `us`,
/// `eu`, `apac`, `jp`, `au`, `us-gov`, or `global` for regions no geo
/// covers.
pub fn geo_for_region(region: &str) -> &'static str {
    match region {
        r if r.starts_with("us-gov-") => "us-gov",
        r if r.starts_with("us-") || r.starts_with("ca-") => "us",
        r if r.starts_with("eu-") => "eu",
        "ap-northeast-1" | "ap-northeast-3" => "jp",
        "ap-southeast-2" | "ap-southeast-4" => "au",
        r if r.starts_with("ap-") || r.starts_with("me-") => "apac",
        _ => "global",
    }
}

/// The ARN partition of a region.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("cn-") {
        "aws-cn"
    } else {
        "aws"
    }
}

/// Whether Bedrock offers a `global.` profile for the model: Claude Sonnet 4
/// and everything from 4.5 on, not the older models.
pub fn has_global_profile(m: &ModelInfo) -> bool {
    m.version >= Version::new(4, 5) || (m.family == Family::Sonnet && m.version == Version::new(4, 0))
}

fn geo_label(geo: &str) -> &str {
    match geo {
        "us" => "US",
        "eu" => "EU",
        "apac" => "APAC",
        "jp" => "JP",
        "au" => "AU",
        "us-gov" => "US-GOV",
        "global" => "Global",
        other => other,
    }
}

/// `Claude Sonnet 4.5`, `Claude Opus 4`, and `Claude 3.7 Sonnet` for the
/// models named version first.
fn model_name(m: &ModelInfo) -> String {
    let family = match m.family {
        Family::Opus => "Opus",
        Family::Sonnet => "Sonnet",
        Family::Haiku => "Haiku",
    };
    let version = if m.version.minor == 0 { m.version.major.to_string() } else { m.version.to_string() };
    if m.version < Version::new(4, 0) {
        format!("Claude {version} {family}")
    } else {
        format!("Claude {family} {version}")
    }
}

fn summary(m: &ModelInfo, geo: &str, region: &str) -> Value {
    let partition = partition_of(region);
    let id = format!("{geo}.{}", m.foundation_id);
    let name = format!("{} Anthropic {}", geo_label(geo), model_name(m));
    json!({
        "inferenceProfileId": id,
        "inferenceProfileArn": format!("arn:{partition}:bedrock:{region}:{ACCOUNT_ID}:inference-profile/{id}"),
        "inferenceProfileName": name,
        "description": format!("Routes requests to {} in {} regions.", model_name(m), geo_label(geo)),
        "status": "ACTIVE",
        "type": "SYSTEM_DEFINED",
        "models": [{
            "modelArn": format!("arn:{partition}:bedrock:{region}::foundation-model/{}", m.foundation_id)
        }],
    })
}

/// Every profile for `region`, in [`models::FOUNDATION_IDS`] order: the
/// geo's profile of each model `serves` accepts, then its `global.` ones.
pub fn profiles(region: &str, serves: impl Fn(&ModelInfo) -> bool) -> Vec<Value> {
    let geo = geo_for_region(region);
    let served: Vec<ModelInfo> = models::FOUNDATION_IDS
        .iter()
        .filter_map(|id| models::resolve_count_tokens(id).ok())
        .filter(|m| serves(m))
        .collect();
    let regional = served.iter().filter(|_| geo != "global").map(|m| summary(m, geo, region));
    let global = served.iter().filter(|m| has_global_profile(m)).map(|m| summary(m, "global", region));
    regional.chain(global).collect()
}

/// One page of the listing, honouring `typeEquals`, `maxResults` and
/// `nextToken` (an offset).
pub fn list_response(all: Vec<Value>, raw_query: Option<&str>) -> Result<Value, String> {
    let mut max = MAX_RESULTS;
    let mut start = 0usize;
    let mut wanted_type: Option<String> = None;
    for pair in raw_query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = sigv4::percent_decode(v);
        match k {
            "maxResults" => {
                max = v.parse().ok().filter(|n| (1..=MAX_RESULTS).contains(n)).ok_or_else(|| {
                    format!("1 validation error detected: Value '{v}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and {MAX_RESULTS}")
                })?
            }
            "nextToken" => start = v.parse().map_err(|_| "The nextToken is invalid.".to_string())?,
            "typeEquals" => wanted_type = Some(v),
            _ => {}
        }
    }
    let matching: Vec<Value> =
        all.into_iter().filter(|p| wanted_type.as_deref().is_none_or(|t| p["type"] == t)).collect();
    let end = matching.len().min(start.saturating_add(max));
    let page = matching.get(start..end).unwrap_or_default().to_vec();
    let mut out = json!({ "inferenceProfileSummaries": page });
    if end < matching.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[Value]) -> Vec<String> {
        v.iter().map(|p| p["inferenceProfileId"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn regions_map_to_the_gateways_geos() {
        let cases = [
            ("us-east-1", "us"),
            ("ca-central-1", "us"),
            ("us-gov-west-1", "us-gov"),
            ("eu-west-3", "eu"),
            ("ap-northeast-1", "jp"),
            ("ap-southeast-2", "au"),
            ("ap-south-1", "apac"),
            ("me-central-1", "apac"),
            ("af-south-1", "global"),
        ];
        for (region, geo) in cases {
            assert_eq!(geo_for_region(region), geo, "{region}");
        }
    }

    #[test]
    fn ids_are_geo_dot_foundation_as_the_gateway_derives_them() {
        let all = ids(&profiles("us-west-2", |_| true));
        assert!(all.contains(&"us.anthropic.claude-sonnet-4-5-20250929-v1:0".to_string()));
        assert!(all.contains(&"us.anthropic.claude-opus-4-6-v1".to_string()));
        assert!(all.contains(&"us.anthropic.claude-3-7-sonnet-20250219-v1:0".to_string()));
        assert!(all.contains(&"global.anthropic.claude-haiku-4-5-20251001-v1:0".to_string()));
        assert!(all.contains(&"global.anthropic.claude-sonnet-4-20250514-v1:0".to_string()));
        assert!(!all.contains(&"global.anthropic.claude-3-7-sonnet-20250219-v1:0".to_string()));
        assert!(!all.iter().any(|id| id.starts_with("eu.")));
        // Every listed id is one the double serves.
        for id in &all {
            assert!(models::resolve_invoke(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn summary_arns_name_the_region_and_account() {
        let all = profiles("eu-central-1", |m| m.anthropic_id == "claude-sonnet-4-5-20250929");
        assert_eq!(
            ids(&all),
            ["eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"]
        );
        let p = &all[0];
        assert_eq!(
            p["inferenceProfileArn"],
            "arn:aws:bedrock:eu-central-1:111111111111:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(
            p["models"][0]["modelArn"],
            "arn:aws:bedrock:eu-central-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(p["inferenceProfileName"], "EU Anthropic Claude Sonnet 4.5");
        assert_eq!((p["status"].as_str(), p["type"].as_str()), (Some("ACTIVE"), Some("SYSTEM_DEFINED")));
    }

    #[test]
    fn regions_without_a_geo_list_global_profiles_only() {
        let all = ids(&profiles("af-south-1", |_| true));
        assert!(!all.is_empty());
        assert!(all.iter().all(|id| id.starts_with("global.")));
    }

    #[test]
    fn gov_regions_use_their_partition() {
        let all = profiles("us-gov-west-1", |m| m.anthropic_id == "claude-sonnet-4-5-20250929");
        assert_eq!(
            all[0]["inferenceProfileArn"],
            "arn:aws-us-gov:bedrock:us-gov-west-1:111111111111:inference-profile/us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
    }

    #[test]
    fn legacy_names_put_the_version_first() {
        let m = models::resolve_count_tokens("anthropic.claude-3-7-sonnet-20250219-v1:0").unwrap();
        assert_eq!(model_name(&m), "Claude 3.7 Sonnet");
        let m = models::resolve_count_tokens("anthropic.claude-opus-4-20250514-v1:0").unwrap();
        assert_eq!(model_name(&m), "Claude Opus 4");
    }

    #[test]
    fn listing_pages_by_offset_token() {
        let all = profiles("us-east-1", |_| true);
        let n = all.len();
        let first = list_response(all.clone(), Some("maxResults=2")).unwrap();
        assert_eq!(first["inferenceProfileSummaries"].as_array().unwrap().len(), 2);
        assert_eq!(first["nextToken"], "2");
        let last = list_response(all.clone(), Some(&format!("maxResults=2&nextToken={}", n - 1))).unwrap();
        assert_eq!(last["inferenceProfileSummaries"].as_array().unwrap().len(), 1);
        assert!(last.get("nextToken").is_none());
        let apps = list_response(all.clone(), Some("typeEquals=APPLICATION")).unwrap();
        assert_eq!(apps, json!({"inferenceProfileSummaries": []}));
        assert!(list_response(all, Some("maxResults=0")).is_err());
    }
}
