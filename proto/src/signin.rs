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

pub fn is_signin_path(p: &str) -> bool {
    PATHS.contains(&p) || p.starts_with(PREFIX)
}
