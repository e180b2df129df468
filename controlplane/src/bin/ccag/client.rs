//! Connecting to the control plane.

use std::time::Duration;

use ccag_proto::admin::v1::{
    audit_service_client::AuditServiceClient, auth_service_client::AuthServiceClient,
    endpoint_service_client::EndpointServiceClient, key_service_client::KeyServiceClient,
    model_service_client::ModelServiceClient, pricing_service_client::PricingServiceClient,
    settings_service_client::SettingsServiceClient, status_service_client::StatusServiceClient,
    team_service_client::TeamServiceClient, usage_service_client::UsageServiceClient,
    user_service_client::UserServiceClient, GetUserRequest,
};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::CliError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone)]
pub struct Bearer(AsciiMetadataValue);

impl Bearer {
    pub fn new(token: &str) -> Result<Self, CliError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(CliError::not_logged_in("the token is empty (run `ccag login` or set CCAG_TOKEN)"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(CliError::not_logged_in("the token holds characters a token cannot have (run `ccag login`)"));
        }
        MetadataValue::try_from(format!("Bearer {token}")).map(Bearer).map_err(|_| {
            CliError::not_logged_in("the token holds characters not allowed in a header (run `ccag login`)")
        })
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// "host:port" becomes "http://host:port"; a trailing slash goes.
pub fn normalize_endpoint(url: &str) -> String {
    let url = url.trim();
    let url = if url.contains("://") { url.to_string() } else { format!("http://{url}") };
    url.trim_end_matches('/').to_string()
}

/// Opens a connection, so that an unreachable server fails here with exit 3.
/// An `https://` endpoint is verified against the system roots plus the PEM
/// file in `CCAG_CA_CERT`, if set.
pub async fn connect(endpoint: &str) -> Result<Channel, CliError> {
    let mut ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| CliError::usage(format!("invalid endpoint URL {endpoint:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT);
    if endpoint.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(path) = std::env::var_os("CCAG_CA_CERT") {
            let pem = std::fs::read(&path)
                .map_err(|e| CliError::usage(format!("CCAG_CA_CERT={}: {e}", path.to_string_lossy())))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        ep = ep.tls_config(tls).map_err(|e| CliError::usage(format!("TLS configuration: {e}")))?;
    }
    match ep.connect().await {
        Ok(ch) => Ok(ch),
        Err(e) => Err(CliError::unreachable(endpoint, &e)),
    }
}

/// An authenticated connection.
pub struct Ctx {
    pub endpoint: String,
    channel: Channel,
    bearer: Bearer,
}

impl Ctx {
    pub fn new(endpoint: String, channel: Channel, bearer: Bearer) -> Self {
        Self { endpoint, channel, bearer }
    }

    fn svc(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }

    pub fn auth(&self) -> AuthServiceClient<Authed> {
        AuthServiceClient::new(self.svc())
    }
    pub fn users(&self) -> UserServiceClient<Authed> {
        UserServiceClient::new(self.svc())
    }
    pub fn teams(&self) -> TeamServiceClient<Authed> {
        TeamServiceClient::new(self.svc())
    }
    pub fn keys(&self) -> KeyServiceClient<Authed> {
        KeyServiceClient::new(self.svc())
    }
    pub fn models(&self) -> ModelServiceClient<Authed> {
        ModelServiceClient::new(self.svc())
    }
    pub fn endpoints(&self) -> EndpointServiceClient<Authed> {
        EndpointServiceClient::new(self.svc())
    }
    pub fn settings(&self) -> SettingsServiceClient<Authed> {
        SettingsServiceClient::new(self.svc())
    }
    pub fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::new(self.svc())
    }
    pub fn status(&self) -> StatusServiceClient<Authed> {
        StatusServiceClient::new(self.svc())
    }
    pub fn usage(&self) -> UsageServiceClient<Authed> {
        UsageServiceClient::new(self.svc())
    }
    pub fn analytics(&self) -> ccag_proto::admin::v1::analytics_service_client::AnalyticsServiceClient<Authed> {
        ccag_proto::admin::v1::analytics_service_client::AnalyticsServiceClient::new(self.svc())
    }
    pub fn pricing(&self) -> PricingServiceClient<Authed> {
        PricingServiceClient::new(self.svc())
    }
    pub fn budgets(&self) -> ccag_proto::admin::v1::budget_service_client::BudgetServiceClient<Authed> {
        ccag_proto::admin::v1::budget_service_client::BudgetServiceClient::new(self.svc())
    }

    pub fn notifications(
        &self,
    ) -> ccag_proto::admin::v1::notification_service_client::NotificationServiceClient<Authed> {
        ccag_proto::admin::v1::notification_service_client::NotificationServiceClient::new(self.svc())
    }

    pub fn idps(
        &self,
    ) -> ccag_proto::admin::v1::identity_provider_service_client::IdentityProviderServiceClient<Authed> {
        ccag_proto::admin::v1::identity_provider_service_client::IdentityProviderServiceClient::new(self.svc())
    }

    pub fn managed(
        &self,
    ) -> ccag_proto::admin::v1::managed_settings_service_client::ManagedSettingsServiceClient<Authed> {
        ccag_proto::admin::v1::managed_settings_service_client::ManagedSettingsServiceClient::new(self.svc())
    }

    pub fn scim(&self) -> ccag_proto::admin::v1::scim_service_client::ScimServiceClient<Authed> {
        ccag_proto::admin::v1::scim_service_client::ScimServiceClient::new(self.svc())
    }

    pub fn search(&self) -> ccag_proto::admin::v1::search_service_client::SearchServiceClient<Authed> {
        ccag_proto::admin::v1::search_service_client::SearchServiceClient::new(self.svc())
    }

    /// Maps an RPC failure to the CLI's error.
    pub fn err(&self, status: tonic::Status) -> CliError {
        CliError::from_status(&status, &self.endpoint)
    }

    /// A user id from an id or an email (emails are looked up).
    pub async fn user_id(&self, id_or_email: &str) -> Result<String, CliError> {
        if !id_or_email.contains('@') {
            return Ok(id_or_email.to_string());
        }
        let user = self
            .users()
            .get_user(GetUserRequest { id: id_or_email.to_string() })
            .await
            .map_err(|s| self.err(s))?
            .into_inner();
        Ok(user.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(normalize_endpoint("127.0.0.1:8091"), "http://127.0.0.1:8091");
        assert_eq!(normalize_endpoint(" http://h:1/ "), "http://h:1");
        assert_eq!(normalize_endpoint("https://h"), "https://h");
    }

    #[test]
    fn bearer_rejects_bad_tokens() {
        assert_eq!(Bearer::new("").err().map(|e| e.code), Some(4));
        assert_eq!(Bearer::new("a\nb").err().map(|e| e.code), Some(4));
        assert_eq!(Bearer::new("tok\u{e9}").err().map(|e| e.code), Some(4));
        assert!(Bearer::new("garbage").is_ok());
    }

    #[tokio::test]
    async fn invalid_url_is_a_usage_error() {
        let err = connect("http://exa mple").await.unwrap_err();
        assert_eq!(err.code, 2);
    }

    #[tokio::test]
    async fn refused_connection_is_unreachable() {
        // Bind then drop a listener so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let err = connect(&url).await.unwrap_err();
        assert_eq!(err.code, 3, "{err:?}");
        assert!(err.message.starts_with(&format!("cannot reach the control plane at {url}: ")), "{}", err.message);
    }
}
