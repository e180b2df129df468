//! The routing resources: each endpoint with everything a data plane needs
//! to call it (its API key opened from its sealed form), and the routing of
//! each team that sets a strategy or endpoints.

use std::collections::HashMap;

use ccag_proto::config::v1::{self as pb, resource::Kind, Resource};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::secrets::Keyring;
use crate::store::entities::{endpoints, team_endpoints, teams};
use crate::store::{CredentialKind, Routing, Scope};

/// The AAD binding a sealed endpoint API key to its endpoint.
pub fn api_key_aad(endpoint_id: &str) -> String {
    format!("endpoint_api_key:{endpoint_id}")
}

pub fn strategy_pb(r: Routing) -> pb::RoutingStrategy {
    match r {
        Routing::Inherit => pb::RoutingStrategy::Unspecified,
        Routing::Fallback => pb::RoutingStrategy::Fallback,
        Routing::RoundRobin => pb::RoutingStrategy::RoundRobin,
        Routing::Sticky => pb::RoutingStrategy::Sticky,
        Routing::Adaptive => pb::RoutingStrategy::Adaptive,
    }
}

fn scope_pb(s: Scope) -> pb::InferenceScope {
    match s {
        Scope::Geo => pb::InferenceScope::Unspecified,
        Scope::Global => pb::InferenceScope::Global,
        Scope::Explicit => pb::InferenceScope::Explicit,
        Scope::Regional => pb::InferenceScope::Regional,
    }
}

/// The endpoint as data planes call it. A stored key that does not open
/// (another encryption key, a corrupt row) is left out with a warning: the
/// endpoint still says API_KEY, so the data plane fails its calls rather
/// than sending them with other credentials.
pub fn endpoint_resource(e: endpoints::Model, keyring: &Keyring) -> Resource {
    let kind = CredentialKind::parse(&e.credentials);
    let api_key = match (&kind, &e.api_key_sealed) {
        (CredentialKind::ApiKey, Some(sealed)) => match keyring.open(sealed, &api_key_aad(&e.id)) {
            Ok(k) => k,
            Err(err) => {
                tracing::warn!(endpoint = %e.id, error = %err, "cannot open an endpoint's API key; it is left out");
                String::new()
            }
        },
        _ => String::new(),
    };
    let source = match kind {
        CredentialKind::Default => pb::CredentialSource::Unspecified,
        CredentialKind::AssumeRole => pb::CredentialSource::AssumeRole,
        CredentialKind::ApiKey => pb::CredentialSource::ApiKey,
    };
    Resource {
        version: 0,
        kind: Some(Kind::Endpoint(pb::Endpoint {
            weight: e.weight.max(1) as u32,
            endpoint_url: e.endpoint_url,
            credentials: Some(pb::EndpointCredentials {
                source: source as i32,
                role_arn: e.role_arn,
                external_id: e.external_id,
                api_key,
                per_user_sessions: e.per_user_sessions,
            }),
            scope: scope_pb(Scope::parse(&e.scope)) as i32,
            scope_prefix: e.scope_prefix,
            profile_arns: serde_json::from_str(&e.profile_arns).unwrap_or_default(),
            models: serde_json::from_str(&e.models).unwrap_or_default(),
            id: e.id,
            name: e.name,
            region: e.region,
            enabled: e.enabled,
            priority: e.priority,
        })),
    }
}

/// A team's routing; `None` when it sets neither a strategy nor endpoints
/// (it follows the organisation's).
pub fn team_routing(t: &teams::Model, endpoint_ids: Vec<String>) -> Option<Resource> {
    let strategy = Routing::parse(&t.routing_strategy);
    (strategy != Routing::Inherit || !endpoint_ids.is_empty()).then(|| Resource {
        version: 0,
        kind: Some(Kind::TeamRouting(pb::TeamRouting {
            id: t.id.clone(),
            strategy: strategy_pb(strategy) as i32,
            endpoint_ids,
        })),
    })
}

/// The endpoints of each team, in the team's order: of `teams`, or of all.
pub async fn endpoints_of<C: ConnectionTrait>(
    c: &C,
    teams: Option<Vec<String>>,
) -> Result<HashMap<String, Vec<String>>, DbErr> {
    let mut q = team_endpoints::Entity::find();
    if let Some(ids) = teams {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        q = q.filter(team_endpoints::Column::TeamId.is_in(ids));
    }
    let rows = q
        .order_by_asc(team_endpoints::Column::TeamId)
        .order_by_asc(team_endpoints::Column::Position)
        .order_by_asc(team_endpoints::Column::EndpointId)
        .all(c)
        .await?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in rows {
        out.entry(r.team_id).or_default().push(r.endpoint_id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn endpoint(kind: CredentialKind, sealed: Option<String>) -> endpoints::Model {
        endpoints::Model {
            id: "ep_1".into(),
            name: "one".into(),
            region: "eu-west-1".into(),
            role_arn: String::new(),
            enabled: true,
            priority: 2,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            weight: 0,
            endpoint_url: "https://bedrock.example".into(),
            credentials: kind.as_str().into(),
            external_id: String::new(),
            api_key_sealed: sealed,
            per_user_sessions: false,
            scope: "explicit".into(),
            scope_prefix: "eu".into(),
            profile_arns: r#"{"claude-sonnet-4-5":"arn:x"}"#.into(),
            models: r#"["claude-sonnet-4-5"]"#.into(),
        }
    }

    fn of(r: Resource) -> pb::Endpoint {
        match r.kind {
            Some(Kind::Endpoint(e)) => e,
            other => panic!("not an endpoint: {other:?}"),
        }
    }

    #[test]
    fn an_endpoint_carries_its_opened_api_key_and_every_field() {
        let k = Keyring::for_tests();
        let sealed = k.seal("ABSK-secret", &api_key_aad("ep_1")).unwrap();
        let e = of(endpoint_resource(endpoint(CredentialKind::ApiKey, Some(sealed)), &k));
        let c = e.credentials.unwrap();
        assert_eq!((c.source, c.api_key.as_str()), (pb::CredentialSource::ApiKey as i32, "ABSK-secret"));
        assert_eq!(e.weight, 1, "a stored 0 reads as 1");
        assert_eq!((e.scope, e.scope_prefix.as_str()), (pb::InferenceScope::Explicit as i32, "eu"));
        assert_eq!(e.profile_arns.get("claude-sonnet-4-5").map(String::as_str), Some("arn:x"));
        assert_eq!(e.models, vec!["claude-sonnet-4-5"]);
        assert_eq!(e.endpoint_url, "https://bedrock.example");
    }

    #[test]
    fn a_key_that_does_not_open_is_left_out() {
        let sealed = Keyring::for_tests().seal("ABSK-secret", &api_key_aad("ep_other")).unwrap();
        let e = of(endpoint_resource(endpoint(CredentialKind::ApiKey, Some(sealed)), &Keyring::for_tests()));
        let c = e.credentials.unwrap();
        assert_eq!((c.source, c.api_key.as_str()), (pb::CredentialSource::ApiKey as i32, ""));
    }

    #[test]
    fn a_team_following_the_organisation_is_no_resource() {
        let t = teams::Model {
            id: "team_1".into(),
            name: "t".into(),
            description: String::new(),
            member_rpm: 0,
            member_tpm: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            rpm: 0,
            tpm: 0,
            routing_strategy: String::new(),
        };
        assert!(team_routing(&t, Vec::new()).is_none());
        let with_list = team_routing(&t, vec!["ep_2".into(), "ep_1".into()]).unwrap();
        match with_list.kind {
            Some(Kind::TeamRouting(r)) => {
                assert_eq!(r.endpoint_ids, vec!["ep_2", "ep_1"]);
                assert_eq!(r.strategy, pb::RoutingStrategy::Unspecified as i32);
            }
            other => panic!("{other:?}"),
        }
        let adaptive = teams::Model { routing_strategy: "adaptive".into(), ..t };
        assert!(team_routing(&adaptive, Vec::new()).is_some());
    }
}
