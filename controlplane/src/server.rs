//! The gRPC listener: the admin API, the data planes' service, health and
//! reflection. The HTTP listener is `crate::http`.

use ccag_proto::admin::v1::{
    audit_service_server::AuditServiceServer, auth_service_server::AuthServiceServer,
    budget_service_server::BudgetServiceServer, endpoint_service_server::EndpointServiceServer,
    identity_provider_service_server::IdentityProviderServiceServer, key_service_server::KeyServiceServer,
    managed_settings_service_server::ManagedSettingsServiceServer, model_service_server::ModelServiceServer,
    notification_service_server::NotificationServiceServer, pricing_service_server::PricingServiceServer,
    scim_service_server::ScimServiceServer, search_service_server::SearchServiceServer,
    settings_service_server::SettingsServiceServer, status_service_server::StatusServiceServer,
    team_service_server::TeamServiceServer, usage_service_server::UsageServiceServer,
    user_service_server::UserServiceServer,
};
use ccag_proto::config::v1::data_plane_service_server::DataPlaneServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{self, Shared};
use crate::metrics::grpc::{Known, MetricsLayer};
use ccag_proto::admin::v1::analytics_service_server::AnalyticsServiceServer;

pub async fn serve_grpc(
    listener: TcpListener,
    ctx: Shared,
    fleet: crate::fleet::DataPlaneApi,
    tls: Option<crate::Tls>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", tonic_health::ServingStatus::Serving).await;
    health.set_serving::<UserServiceServer<api::UsersApi>>().await;
    health.set_serving::<KeyServiceServer<api::KeysApi>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ccag_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| e.to_string())?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ccag_proto::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| e.to_string())?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        let identity = tonic::transport::Identity::from_pem(tls.cert_pem, tls.key_pem);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| format!("TLS configuration: {e}"))?;
    }
    // Every call, of every service, counted and timed.
    let metrics = MetricsLayer::new(ctx.metrics.clone(), Known::served());
    builder
        .layer(metrics)
        .add_routes(admin_routes(&ctx))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(DataPlaneServiceServer::new(fleet))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.changed().await;
        })
        .await
        .map_err(|e| format!("gRPC server: {e}"))
}

/// Every service of the admin API: served on the gRPC listener, and as
/// gRPC-Web on the HTTP listener for the portal (`crate::http::web_api`).
pub fn admin_routes(ctx: &Shared) -> tonic::service::Routes {
    let mut b = tonic::service::Routes::builder();
    b.add_service(AuthServiceServer::new(api::AuthApi(ctx.clone())))
        .add_service(UserServiceServer::new(api::UsersApi(ctx.clone())))
        .add_service(TeamServiceServer::new(api::TeamsApi(ctx.clone())))
        .add_service(KeyServiceServer::new(api::KeysApi(ctx.clone())))
        .add_service(ManagedSettingsServiceServer::new(api::ManagedApi(ctx.clone())))
        .add_service(SearchServiceServer::new(api::SearchApi(ctx.clone())))
        .add_service(ModelServiceServer::new(api::ModelsApi(ctx.clone())))
        .add_service(EndpointServiceServer::new(api::EndpointsApi(ctx.clone())))
        .add_service(IdentityProviderServiceServer::new(api::IdpsApi(ctx.clone())))
        .add_service(SettingsServiceServer::new(api::SettingsApi(ctx.clone())))
        .add_service(AuditServiceServer::new(api::AuditApi(ctx.clone())))
        .add_service(UsageServiceServer::new(api::UsageApi(ctx.clone())))
        .add_service(AnalyticsServiceServer::new(api::AnalyticsApi(ctx.clone())))
        .add_service(PricingServiceServer::new(api::PricingApi(ctx.clone())))
        .add_service(BudgetServiceServer::new(api::BudgetsApi(ctx.clone())))
        .add_service(NotificationServiceServer::new(api::NotificationsApi(ctx.clone())))
        .add_service(ScimServiceServer::new(api::ScimApi(ctx.clone())))
        .add_service(StatusServiceServer::new(api::StatusApi(ctx.clone())));
    b.routes()
}
