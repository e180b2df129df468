//! The control plane's admin gRPC API, through the generated clients, as
//! the `ccag` CLI uses it: login, keys, status and usage.

use std::time::Duration;

use ccag_proto::admin::v1 as pb;
use ccag_proto::admin::v1::{
    auth_service_client::AuthServiceClient, key_service_client::KeyServiceClient,
    status_service_client::StatusServiceClient, usage_service_client::UsageServiceClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::fleet::ControlPlane;
use crate::Error;

/// Adds `authorization: Bearer <session token>` to every call.
#[derive(Clone)]
struct Bearer(MetadataValue<Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Bearer>;

/// A logged-in admin session on one HTTP/2 connection.
#[derive(Clone)]
pub struct Admin {
    ch: Channel,
    bearer: Bearer,
}

/// A key created for the bench: its id and its plaintext.
#[derive(Clone, Debug)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

fn rpc_error(what: &str) -> impl Fn(tonic::Status) -> Error + '_ {
    move |e| format!("admin API, {what}: {} {}", e.code(), e.message())
}

impl Admin {
    pub async fn login(cp: &ControlPlane) -> Result<Self, Error> {
        let ch = Endpoint::from_shared(cp.grpc.clone())
            .map_err(|e| format!("{}: {e}", cp.grpc))?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("connecting to the control plane at {}: {e}", cp.grpc))?;
        let res = AuthServiceClient::new(ch.clone())
            .login(pb::LoginRequest { username: cp.admin_user.clone(), password: cp.admin_password.clone() })
            .await
            .map_err(rpc_error("Login"))?
            .into_inner();
        let bearer = format!("Bearer {}", res.token).parse().map_err(|_| "a session token that is not ASCII")?;
        Ok(Admin { ch, bearer: Bearer(bearer) })
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.ch.clone(), self.bearer.clone())
    }

    pub async fn create_key(&self, name: &str) -> Result<Key, Error> {
        let res = KeyServiceClient::new(self.svc())
            .create_key(pb::CreateKeyRequest { name: name.into(), ..Default::default() })
            .await
            .map_err(rpc_error("CreateKey"))?
            .into_inner();
        let id = res.api_key.map(|k| k.id).ok_or("CreateKey answered without the key")?;
        Ok(Key { id, secret: res.key })
    }

    /// A key of `team_id` with request and token limits: the data plane
    /// admits each request under them, as it does for a configured team.
    pub async fn create_limited_key(&self, name: &str, team_id: &str, rpm: u32, tpm: u32) -> Result<Key, Error> {
        let res = KeyServiceClient::new(self.svc())
            .create_key(pb::CreateKeyRequest {
                name: name.into(),
                team_id: team_id.into(),
                rpm,
                tpm,
                ..Default::default()
            })
            .await
            .map_err(rpc_error("CreateKey"))?
            .into_inner();
        let id = res.api_key.map(|k| k.id).ok_or("CreateKey answered without the key")?;
        Ok(Key { id, secret: res.key })
    }

    /// A Bedrock endpoint at `url` (the data plane's default credentials).
    pub async fn create_endpoint(&self, name: &str, url: &str) -> Result<(), Error> {
        pb::endpoint_service_client::EndpointServiceClient::new(self.svc())
            .create_endpoint(pb::CreateEndpointRequest {
                name: name.into(),
                region: crate::REGION.into(),
                enabled: true,
                weight: 1,
                endpoint_url: url.into(),
                ..Default::default()
            })
            .await
            .map_err(rpc_error("CreateEndpoint"))?;
        Ok(())
    }

    /// A team whose requests go round-robin over `endpoints` (names);
    /// returns its id.
    pub async fn create_routed_team(&self, name: &str, endpoints: &[&str]) -> Result<String, Error> {
        let mut teams = pb::team_service_client::TeamServiceClient::new(self.svc());
        let team = teams
            .create_team(pb::CreateTeamRequest { name: name.into(), ..Default::default() })
            .await
            .map_err(rpc_error("CreateTeam"))?
            .into_inner();
        teams
            .update_team(pb::UpdateTeamRequest {
                id: team.id.clone(),
                routing: Some(pb::RoutingStrategy::RoundRobin as i32),
                set_endpoints: true,
                endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
                ..Default::default()
            })
            .await
            .map_err(rpc_error("UpdateTeam"))?;
        Ok(team.id)
    }

    /// A member user with no password; returns its id.
    pub async fn create_user(&self, email: &str) -> Result<String, Error> {
        let u = ccag_proto::admin::v1::user_service_client::UserServiceClient::new(self.svc())
            .create_user(pb::CreateUserRequest { email: email.into(), ..Default::default() })
            .await
            .map_err(rpc_error("CreateUser"))?
            .into_inner();
        Ok(u.id)
    }

    /// An organisation-wide daily budget far above what the bench spends:
    /// every request is then judged by a budget, and none is refused.
    pub async fn set_org_budget(&self, limit_usd: f64) -> Result<(), Error> {
        ccag_proto::admin::v1::budget_service_client::BudgetServiceClient::new(self.svc())
            .set_budget(pb::SetBudgetRequest {
                scope: pb::BudgetScope::Org as i32,
                period: "daily".into(),
                limit_usd,
                ..Default::default()
            })
            .await
            .map_err(rpc_error("SetBudget"))?;
        Ok(())
    }

    /// Enables or disables a key: one configuration change.
    pub async fn set_key_active(&self, id: &str, active: bool) -> Result<(), Error> {
        let status = if active { pb::KeyStatus::Active } else { pb::KeyStatus::Disabled };
        KeyServiceClient::new(self.svc())
            .update_key(pb::UpdateKeyRequest { id: id.into(), status: status as i32, ..Default::default() })
            .await
            .map_err(rpc_error("UpdateKey"))?;
        Ok(())
    }

    pub async fn status(&self) -> Result<pb::Status, Error> {
        Ok(StatusServiceClient::new(self.svc())
            .get_status(pb::GetStatusRequest {})
            .await
            .map_err(rpc_error("GetStatus"))?
            .into_inner())
    }

    /// Requests the control plane has stored for one key.
    pub async fn key_requests(&self, key_id: &str) -> Result<u64, Error> {
        let res = UsageServiceClient::new(self.svc())
            .get_usage(pb::GetUsageRequest {
                group_by: pb::UsageGroup::Key as i32,
                key_id: key_id.into(),
                ..Default::default()
            })
            .await
            .map_err(rpc_error("GetUsage"))?
            .into_inner();
        Ok(res.total.map_or(0, |t| t.requests))
    }
}
