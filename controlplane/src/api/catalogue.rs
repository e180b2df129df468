//! The catalogue as the data planes see it (`ListCatalogue`): the built-in
//! models and the explicit mappings, each resolved to the Bedrock id it runs
//! on and priced as usage is priced. It reads the same rows the data planes
//! are sent (models, endpoints, the routing.geo setting, prices) and
//! resolves them with the data planes' own code (`ccag_proto::models`).

use std::collections::HashMap;

use ccag_proto::admin::v1::{CatalogueModel, ListCatalogueResponse, ModelSource};
use ccag_proto::config::v1::PriceTable;
use ccag_proto::models::{self as known, derived_bedrock_id, geo_for_region};
use ccag_proto::pricing::is_regional_profile;

use crate::store::entities::{endpoints, models};
use crate::store::Scope;

/// The data planes' region when no endpoint names one (their SDK default).
const DEFAULT_GEO: &str = "us";

pub fn build(
    mappings: &[models::Model],
    endpoints: &[endpoints::Model],
    geo_setting: &str,
    prices: &PriceTable,
) -> ListCatalogueResponse {
    // The data plane's rule: the first enabled endpoint by priority, then name.
    let endpoint = endpoints
        .iter()
        .filter(|e| e.enabled && !e.region.trim().is_empty())
        .min_by(|a, b| (a.priority, &a.name, &a.id).cmp(&(b.priority, &b.name, &b.id)));
    let region = endpoint.map(|e| e.region.trim().to_owned()).unwrap_or_default();
    // The endpoint's own scope first, then the setting, then its region's
    // geo; "" names the in-region foundation models.
    let geo = match endpoint.map(|e| (Scope::parse(&e.scope), e.scope_prefix.trim())) {
        Some((Scope::Explicit, p)) if !p.is_empty() => p.to_owned(),
        Some((Scope::Global, _)) => "global".to_owned(),
        Some((Scope::Regional, _)) => String::new(),
        _ => match geo_setting.trim() {
            "" if region.is_empty() => DEFAULT_GEO.to_owned(),
            "" => geo_for_region(&region).to_owned(),
            g => g.to_owned(),
        },
    };
    // An Application Inference Profile of the endpoint's wins over everything.
    let profiles: HashMap<String, String> =
        endpoint.map(|e| serde_json::from_str(&e.profile_arns).unwrap_or_default()).unwrap_or_default();
    let by_name: HashMap<&str, &models::Model> = mappings.iter().map(|m| (m.anthropic_id.trim(), m)).collect();
    let mapped = |name: &str| by_name.get(name).map(|m| m.bedrock_id.trim()).filter(|b| !b.is_empty());
    // /v1/models lists the built-in catalogue only while no mapping is listed.
    let any_listed = mappings.iter().any(|m| m.listed);

    let mut out = Vec::with_capacity(known::MODELS.len() + mappings.len());
    for k in known::MODELS {
        let mapping = by_name.get(k.id).copied();
        let profile = std::iter::once(k.id).chain(k.aliases.iter().copied()).find_map(|n| profiles.get(n));
        let (bedrock_id, source) = match mapped(k.id) {
            Some(b) => (b.to_owned(), ModelSource::BuiltInMapped),
            None if geo.is_empty() => (k.foundation.to_owned(), ModelSource::BuiltIn),
            None => (format!("{geo}.{}", k.foundation), ModelSource::BuiltIn),
        };
        let bedrock_id = profile.cloned().unwrap_or(bedrock_id);
        let listed = if any_listed { mapping.is_some_and(|m| m.listed) } else { true };
        let display_name =
            mapping.map(|m| m.display_name.trim()).filter(|d| !d.is_empty()).unwrap_or(k.display_name).to_owned();
        // An alias an explicit mapping takes over is no longer this model's.
        let aliases = k.aliases.iter().filter(|a| mapped(a).is_none()).map(|a| (*a).to_owned()).collect();
        out.push(entry(k.id, aliases, display_name, bedrock_id, source, listed, mapping, prices));
    }
    let mut others: Vec<&models::Model> =
        mappings.iter().filter(|m| !known::MODELS.iter().any(|k| k.id == m.anthropic_id.trim())).collect();
    others.sort_by(|a, b| a.anthropic_id.cmp(&b.anthropic_id));
    for m in others {
        let name = m.anthropic_id.trim();
        let bedrock_id = profiles
            .get(name)
            .cloned()
            .or_else(|| mapped(name).map(str::to_owned))
            .or_else(|| derived_bedrock_id(name, &geo))
            .unwrap_or_default();
        out.push(entry(
            name,
            Vec::new(),
            m.display_name.trim().to_owned(),
            bedrock_id,
            ModelSource::Mapping,
            m.listed,
            Some(m),
            prices,
        ));
    }
    ListCatalogueResponse { models: out, region, endpoint: endpoint.map(|e| e.name.clone()).unwrap_or_default(), geo }
}

#[allow(clippy::too_many_arguments)]
fn entry(
    id: &str,
    aliases: Vec<String>,
    display_name: String,
    bedrock_id: String,
    source: ModelSource,
    listed: bool,
    mapping: Option<&models::Model>,
    prices: &PriceTable,
) -> CatalogueModel {
    let row = if bedrock_id.is_empty() { None } else { prices.find(&bedrock_id, id) };
    let price = row.or(prices.unpriced.as_ref());
    let rates = price.and_then(|p| p.rates).unwrap_or_default();
    let premium = match price {
        Some(p) if is_regional_profile(&bedrock_id) => i128::from(p.regional_premium_bp),
        _ => 0,
    };
    // Rounded half up, as usage is.
    let charged = |rate: i64| {
        let r = i128::from(rate.max(0)) * (10_000 + premium);
        i64::try_from((r + 5_000) / 10_000).unwrap_or(i64::MAX)
    };
    CatalogueModel {
        id: id.to_owned(),
        aliases,
        display_name,
        bedrock_id,
        source: source as i32,
        listed,
        mapping_id: mapping.map(|m| m.id.clone()).unwrap_or_default(),
        price_model: row.map(|p| p.model.clone()).unwrap_or_default(),
        input_micro_usd_per_mtok: charged(rates.input),
        output_micro_usd_per_mtok: charged(rates.output),
        cache_write_micro_usd_per_mtok: charged(rates.cache_write_5m),
        cache_write_1h_micro_usd_per_mtok: charged(rates.cache_write_1h),
        cache_read_micro_usd_per_mtok: charged(rates.cache_read),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccag_proto::config::v1::{ModelPrice, TokenRates};
    use chrono::Utc;

    fn mapping(name: &str, bedrock: &str, listed: bool) -> models::Model {
        models::Model {
            id: format!("mdl_{name}"),
            anthropic_id: name.into(),
            bedrock_id: bedrock.into(),
            display_name: String::new(),
            listed,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn endpoint(name: &str, region: &str, priority: i32, enabled: bool) -> endpoints::Model {
        endpoints::Model {
            id: format!("ep_{name}"),
            name: name.into(),
            region: region.into(),
            role_arn: String::new(),
            enabled,
            priority,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            weight: 1,
            endpoint_url: String::new(),
            credentials: "default".into(),
            external_id: String::new(),
            api_key_sealed: None,
            per_user_sessions: false,
            scope: String::new(),
            scope_prefix: String::new(),
            profile_arns: "{}".into(),
            models: "[]".into(),
        }
    }

    fn prices() -> PriceTable {
        let rates =
            |i, o| Some(TokenRates { input: i, output: o, cache_write_5m: 0, cache_write_1h: 0, cache_read: 0 });
        PriceTable {
            models: vec![
                ModelPrice {
                    model: "claude-opus-4-6".into(),
                    rates: rates(5_000_000, 25_000_000),
                    ..Default::default()
                },
                ModelPrice {
                    model: "claude-sonnet-4-5".into(),
                    rates: rates(3_000_000, 15_000_000),
                    regional_premium_bp: 1000,
                    ..Default::default()
                },
            ],
            unpriced: Some(ModelPrice { model: String::new(), rates: rates(1, 2), ..Default::default() }),
            web_search_micro_usd: 0,
        }
    }

    fn find<'a>(c: &'a ListCatalogueResponse, id: &str) -> &'a CatalogueModel {
        c.models.iter().find(|m| m.id == id).unwrap()
    }

    #[test]
    fn with_no_endpoint_every_built_in_model_runs_on_the_us_profile() {
        let c = build(&[], &[], "", &prices());
        assert_eq!(c.geo, "us");
        assert_eq!(c.region, "");
        assert_eq!(c.models.len(), known::MODELS.len());
        let opus = find(&c, "claude-opus-4-6");
        assert_eq!(opus.bedrock_id, "us.anthropic.claude-opus-4-6-v1");
        assert_eq!(opus.source, ModelSource::BuiltIn as i32);
        assert!(opus.listed);
    }

    #[test]
    fn the_first_enabled_endpoint_by_priority_sets_the_region() {
        let eps = [
            endpoint("a", "us-east-1", 5, true),
            endpoint("b", "eu-west-1", 1, true),
            endpoint("c", "ap-south-1", 0, false),
        ];
        let c = build(&[], &eps, "", &prices());
        assert_eq!((c.region.as_str(), c.endpoint.as_str(), c.geo.as_str()), ("eu-west-1", "b", "eu"));
        assert_eq!(find(&c, "claude-opus-4-6").bedrock_id, "eu.anthropic.claude-opus-4-6-v1");
    }

    #[test]
    fn the_first_endpoints_scope_and_profiles_win_over_the_setting() {
        let arn = "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/abc";
        let scoped = |scope: &str, prefix: &str| endpoints::Model {
            scope: scope.into(),
            scope_prefix: prefix.into(),
            profile_arns: format!(r#"{{"claude-sonnet-4-5": "{arn}"}}"#),
            ..endpoint("a", "eu-west-1", 0, true)
        };
        let c = build(&[], &[scoped("explicit", "apac")], "global", &prices());
        assert_eq!(c.geo, "apac");
        assert_eq!(find(&c, "claude-opus-4-6").bedrock_id, "apac.anthropic.claude-opus-4-6-v1");
        assert_eq!(find(&c, "claude-sonnet-4-5-20250929").bedrock_id, arn, "a profile named by an alias");
        let c = build(&[], &[scoped("global", "")], "", &prices());
        assert_eq!(find(&c, "claude-opus-4-6").bedrock_id, "global.anthropic.claude-opus-4-6-v1");
        let c = build(&[], &[scoped("regional", "")], "us", &prices());
        assert_eq!(
            (c.geo.as_str(), find(&c, "claude-opus-4-6").bedrock_id.as_str()),
            ("", "anthropic.claude-opus-4-6-v1")
        );
    }

    #[test]
    fn the_geo_setting_wins_over_the_region() {
        let c = build(&[], &[endpoint("a", "eu-west-1", 0, true)], "global", &prices());
        assert_eq!(find(&c, "claude-opus-4-6").bedrock_id, "global.anthropic.claude-opus-4-6-v1");
    }

    #[test]
    fn an_explicit_mapping_sets_a_built_in_models_bedrock_id() {
        let arn = "arn:aws:bedrock:us-east-1:1:application-inference-profile/x";
        let c = build(&[mapping("claude-opus-4-6", arn, false)], &[], "", &prices());
        let opus = find(&c, "claude-opus-4-6");
        assert_eq!(opus.bedrock_id, arn);
        assert_eq!(opus.source, ModelSource::BuiltInMapped as i32);
        assert_eq!(opus.mapping_id, "mdl_claude-opus-4-6");
        // Priced by the name the client sends when the ARN names no model.
        assert_eq!(opus.price_model, "claude-opus-4-6");
    }

    #[test]
    fn an_alias_taken_by_a_mapping_leaves_the_built_in_model() {
        let c = build(&[mapping("opus", "us.anthropic.claude-opus-4-6-v1", false)], &[], "", &prices());
        assert!(find(&c, "claude-opus-5-5").aliases.is_empty());
        let alias = find(&c, "opus");
        assert_eq!(alias.source, ModelSource::Mapping as i32);
        assert_eq!(alias.bedrock_id, "us.anthropic.claude-opus-4-6-v1");
    }

    #[test]
    fn a_listed_mapping_hides_the_built_in_models_from_v1_models() {
        let c = build(&[mapping("claude-custom-1", "", true)], &[], "", &prices());
        assert!(!find(&c, "claude-opus-4-6").listed);
        let custom = find(&c, "claude-custom-1");
        assert!(custom.listed);
        // Neither a Claude id with a version nor mapped: requests are refused.
        assert_eq!(custom.bedrock_id, "");
    }

    #[test]
    fn prices_are_per_million_tokens_with_the_regional_premium() {
        let c = build(&[], &[], "", &prices());
        let sonnet = find(&c, "claude-sonnet-4-5-20250929");
        assert_eq!(sonnet.price_model, "claude-sonnet-4-5");
        assert_eq!(sonnet.input_micro_usd_per_mtok, 3_300_000);
        assert_eq!(sonnet.output_micro_usd_per_mtok, 16_500_000);
        let global = build(&[], &[], "global", &prices());
        assert_eq!(find(&global, "claude-sonnet-4-5-20250929").input_micro_usd_per_mtok, 3_000_000);
    }

    #[test]
    fn a_model_without_a_price_row_shows_the_unpriced_rates() {
        let c = build(&[], &[], "", &prices());
        let haiku = find(&c, "claude-haiku-5-5");
        assert_eq!(haiku.price_model, "");
        assert_eq!((haiku.input_micro_usd_per_mtok, haiku.output_micro_usd_per_mtok), (1, 2));
    }
}
