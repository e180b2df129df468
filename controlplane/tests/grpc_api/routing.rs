//! The routing resources data planes are sent: endpoints with their
//! credentials (an API key opened for them), each team's routing, the
//! organisation's routing policy, and keys naming their owner's email.

use ccag_proto::admin::v1::endpoint_service_client::EndpointServiceClient;
use ccag_proto::admin::v1::settings_service_client::SettingsServiceClient;

use super::{admin, dp, Client, Watch, DATAPLANE_TOKEN, STREAM_TIMEOUT};
use crate::common::{on_both_backends, Env, ADMIN};

const ROLE: &str = "arn:aws:iam::111111111111:role/ccag";
const API_KEY: &str = "ABSK-routing-test-key-0123456789";

on_both_backends!(async: routing_resources_carry_what_data_planes_need);

fn endpoints(r: &dp::WatchResponse) -> Vec<&dp::Endpoint> {
    r.resources
        .iter()
        .filter_map(|x| match &x.kind {
            Some(dp::resource::Kind::Endpoint(e)) => Some(e),
            _ => None,
        })
        .collect()
}

fn team_routing<'a>(r: &'a dp::WatchResponse, team: &str) -> Option<&'a dp::TeamRouting> {
    r.resources.iter().find_map(|x| match &x.kind {
        Some(dp::resource::Kind::TeamRouting(t)) if t.id == team => Some(t),
        _ => None,
    })
}

async fn routing_resources_carry_what_data_planes_need(env: Env) {
    let srv =
        env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN), ("CCAG_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")]);
    let admin = Client::admin(&srv).await;
    let mut eps = EndpointServiceClient::new(admin.svc());
    let role = eps
        .create_endpoint(admin::CreateEndpointRequest {
            name: "eu-role".into(),
            region: "eu-west-1".into(),
            role_arn: ROLE.into(),
            external_id: "ext-1".into(),
            per_user_sessions: true,
            enabled: true,
            priority: 1,
            weight: 4,
            endpoint_url: "http://127.0.0.1:9".into(),
            scope: admin::InferenceScope::Explicit as i32,
            scope_prefix: "eu".into(),
            models: vec!["claude-sonnet-4-5".into()],
            ..Default::default()
        })
        .await
        .expect("CreateEndpoint")
        .into_inner();
    let keyed = eps
        .create_endpoint(admin::CreateEndpointRequest {
            name: "keyed".into(),
            region: "us-east-1".into(),
            api_key: API_KEY.into(),
            enabled: true,
            ..Default::default()
        })
        .await
        .expect("CreateEndpoint with a key")
        .into_inner();
    assert!(keyed.has_api_key && !format!("{keyed:?}").contains(API_KEY), "{keyed:?}");
    let team = admin
        .teams()
        .create_team(admin::CreateTeamRequest { name: "eu-team".into(), ..Default::default() })
        .await
        .expect("CreateTeam")
        .into_inner();
    admin
        .teams()
        .update_team(admin::UpdateTeamRequest {
            id: team.id.clone(),
            routing: Some(admin::RoutingStrategy::Sticky as i32),
            set_endpoints: true,
            endpoints: vec!["eu-role".into(), keyed.id.clone()],
            ..Default::default()
        })
        .await
        .expect("UpdateTeam");
    let mut settings = SettingsServiceClient::new(admin.svc());
    for (key, value) in [("routing.strategy", "fallback"), ("routing.max_attempts", "2")] {
        settings
            .set_setting(admin::SetSettingRequest { key: key.into(), value: value.into() })
            .await
            .expect("SetSetting");
    }
    let key = admin.create_key("mine").await.api_key.expect("api_key");

    let plane = admin.with_token(DATAPLANE_TOKEN);
    let mut watch = Watch::open(&plane, "dp-routing").await.expect("Watch");
    let full = watch.next_by(std::time::Instant::now() + STREAM_TIMEOUT).await;
    assert!(full.full_state);
    let all = endpoints(&full);
    let e = all.iter().find(|e| e.id == role.id).unwrap_or_else(|| panic!("no endpoint {}: {all:?}", role.id));
    assert_eq!((e.region.as_str(), e.weight, e.priority, e.enabled), ("eu-west-1", 4, 1, true), "{e:?}");
    assert_eq!(e.endpoint_url, "http://127.0.0.1:9", "{e:?}");
    let c = e.credentials.as_ref().expect("credentials");
    assert_eq!(c.source, dp::CredentialSource::AssumeRole as i32, "{e:?}");
    assert_eq!((c.role_arn.as_str(), c.external_id.as_str(), c.per_user_sessions), (ROLE, "ext-1", true), "{e:?}");
    assert_eq!((e.scope, e.scope_prefix.as_str()), (dp::InferenceScope::Explicit as i32, "eu"), "{e:?}");
    assert_eq!(e.models, vec!["claude-sonnet-4-5"], "{e:?}");
    let k = all.iter().find(|e| e.id == keyed.id).expect("the keyed endpoint");
    let c = k.credentials.as_ref().expect("credentials");
    assert_eq!((c.source, c.api_key.as_str()), (dp::CredentialSource::ApiKey as i32, API_KEY), "{k:?}");
    assert_eq!(k.weight, 1, "{k:?}");

    let routing = team_routing(&full, &team.id).unwrap_or_else(|| panic!("no team routing: {full:?}"));
    assert_eq!(routing.strategy, dp::RoutingStrategy::Sticky as i32);
    assert_eq!(routing.endpoint_ids, vec![role.id.clone(), keyed.id.clone()], "in the team's order");
    let policy = full
        .resources
        .iter()
        .find_map(|x| match &x.kind {
            Some(dp::resource::Kind::Settings(s)) => s.routing,
            _ => None,
        })
        .expect("the settings carry the routing policy");
    assert_eq!((policy.strategy, policy.max_attempts), (dp::RoutingStrategy::Fallback as i32, 2), "{policy:?}");
    assert_eq!((policy.attempt_timeout_ms, policy.breaker_failures, policy.breaker_cooldown_ms), (0, 0, 0));
    let published = super::keys_of(&full).into_iter().find(|k| k.id == key.id).expect("the key");
    assert_eq!(published.user_email, ADMIN, "keys name their owner's email: {published:?}");

    // A change to one endpoint sends that endpoint alone.
    eps.update_endpoint(admin::UpdateEndpointRequest { id: role.id.clone(), weight: Some(9), ..Default::default() })
        .await
        .expect("UpdateEndpoint");
    let delta = watch.next_change(full.revision, STREAM_TIMEOUT).await;
    assert_eq!(
        endpoints(&delta).iter().map(|e| (e.id.as_str(), e.weight)).collect::<Vec<_>>(),
        vec![(role.id.as_str(), 9)]
    );

    // Deleting an endpoint takes it off the team's routing.
    eps.delete_endpoint(admin::DeleteEndpointRequest { id: keyed.id.clone() }).await.expect("DeleteEndpoint");
    let after = watch.next_change(delta.revision, STREAM_TIMEOUT).await;
    assert!(after
        .removed
        .contains(&dp::ResourceRef { r#type: dp::ResourceType::Endpoint as i32, name: keyed.id.clone() }));
    assert_eq!(
        team_routing(&after, &team.id).map(|t| t.endpoint_ids.clone()),
        Some(vec![role.id.clone()]),
        "{after:?}"
    );

    // Back to the organisation's routing: the resource goes.
    admin
        .teams()
        .update_team(admin::UpdateTeamRequest {
            id: team.id.clone(),
            routing: Some(admin::RoutingStrategy::Unspecified as i32),
            set_endpoints: true,
            ..Default::default()
        })
        .await
        .expect("UpdateTeam back");
    let cleared = watch.next_change(after.revision, STREAM_TIMEOUT).await;
    assert!(
        cleared
            .removed
            .contains(&dp::ResourceRef { r#type: dp::ResourceType::TeamRouting as i32, name: team.id.clone() }),
        "{cleared:?}"
    );
}
