//! The HTTP paths of sign-in and onboarding: served by the control plane,
//! and passed through to it by the data plane, so that developers and
//! Claude Code need only the gateway's one URL. One list for both.

/// Exactly these paths.
pub const PATHS: &[&str] = &[
    "/.well-known/oauth-authorization-server",
    "/oauth/device_authorization",
    "/oauth/token",
    "/oauth/revoke",
    "/device",
    "/managed/settings",
    "/setup",
    "/setup/credential",
];

/// And every path under this one (browser sign-in).
pub const PREFIX: &str = "/auth/";

/// The portal: its pages and assets, and the admin API as gRPC-Web that
/// it calls (authenticated by the control plane, call by call).
pub const PORTAL: &str = "/portal";
pub const PORTAL_PREFIX: &str = "/portal/";
pub const ADMIN_API_PREFIX: &str = "/ccag.admin.v1.";

pub fn is_signin_path(p: &str) -> bool {
    PATHS.contains(&p) || p.starts_with(PREFIX) || is_portal_path(p)
}

/// The portal's paths, whose answers (pages, assets, CSV exports) may be
/// larger than sign-in's.
pub fn is_portal_path(p: &str) -> bool {
    p == PORTAL || p.starts_with(PORTAL_PREFIX) || p.starts_with(ADMIN_API_PREFIX)
}
