//! The browser leg of the device authorization grant (`verification_uri`):
//! the person signs in through an identity provider if they are not, sees
//! the code, checks it against their terminal, and approves or denies. The
//! forms post back here with the session's CSRF token.

use std::net::SocketAddr;
use std::time::Instant;

use chrono::Utc;

use super::oidc::{csrf_token, from_cookie, same_origin};
use super::{form, page, redirect, Response};
use crate::api::Ctx;
use crate::identity::device;
use crate::store::entities::identity_providers;

fn code_of(req: &http::Request<hyper::body::Incoming>) -> String {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "user_code")
        .map(|(_, v)| v.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(16).collect())
        .unwrap_or_default()
}

pub async fn page(ctx: &Ctx, req: &http::Request<hyper::body::Incoming>) -> Response {
    let code = code_of(req);
    let here = if code.is_empty() { "/device".to_owned() } else { format!("/device?user_code={code}") };
    let Some((who, _, token)) = from_cookie(ctx, req).await else {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        let idps = identity_providers::Entity::find()
            .filter(identity_providers::Column::Enabled.eq(true))
            .order_by_asc(identity_providers::Column::Name)
            .all(&ctx.db)
            .await
            .unwrap_or_default();
        let back = crate::identity::flow::form_encode(&here);
        return match idps.as_slice() {
            [] => page::error(
                503,
                "No identity provider is set up on this gateway, so nobody can sign in here; ask an admin.",
            ),
            [one] => redirect(&format!(
                "/auth/oidc/login?idp={}&return_to={back}",
                crate::identity::flow::form_encode(&one.name)
            )),
            many => {
                let links: String = many
                    .iter()
                    .map(|p| {
                        format!(
                            "<li><a href=\"/auth/oidc/login?idp={}&amp;return_to={back}\">{}</a></li>",
                            crate::identity::flow::form_encode(&p.name),
                            page::escape(&p.name)
                        )
                    })
                    .collect();
                page::html(200, "Sign in to approve Claude Code", &format!("<p>Sign in with:</p><ul>{links}</ul>"))
            }
        };
    };
    let email = if who.email.is_empty() { who.user_id.clone() } else { who.email.clone() };
    page::html(
        200,
        "Approve a sign-in",
        &format!(
            "<p id=\"who\">Signed in as {}.</p>\n\
             <p>Check that this code is the one your terminal shows, then approve. Never approve a code someone sent you.</p>\n\
             <form method=\"post\" action=\"/device\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\n\
             <label>Code <input name=\"user_code\" value=\"{}\" autocomplete=\"off\" required></label>\n\
             <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\n\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
             </form>",
            page::escape(&email),
            csrf_token(token),
            page::escape(&code)
        ),
    )
}

pub async fn decide(ctx: &Ctx, ip: SocketAddr, req: http::Request<hyper::body::Incoming>) -> Response {
    if let Err(wait) = ctx.device_code_limit.check(ip.ip(), Instant::now()) {
        return page::error(429, &format!("Too many attempts from this address; try again in {wait} s."));
    }
    let Some((who, _, token)) = from_cookie(ctx, &req).await else {
        return page::error(401, "You are not signed in; open the link from your terminal again.");
    };
    let token = token.to_owned();
    if !same_origin(ctx, &req) {
        return page::error(403, "This form was sent from another site.");
    }
    let f = match form(req).await {
        Ok(f) => f,
        Err(e) => return page::error(400, &e),
    };
    use subtle::ConstantTimeEq;
    let sent = f.get("csrf_token").map(String::as_str).unwrap_or_default();
    if !bool::from(sent.as_bytes().ct_eq(csrf_token(&token).as_bytes())) {
        return page::error(403, "This form has expired; open the link from your terminal again.");
    }
    let approve = match f.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => return page::error(400, "Choose approve or deny."),
    };
    let code = f.get("user_code").map(String::as_str).unwrap_or_default();
    let grant = match device::pending(&ctx.db, code, Utc::now()).await {
        Ok(Some(g)) => g,
        Ok(None) => {
            return page::error(400, "That code is unknown, expired or already used; check it against your terminal.")
        }
        Err(_) => return page::error(503, "The gateway's database is unavailable; try again."),
    };
    match device::decide(&ctx.db, &grant.id, &who.user_id, approve).await {
        Ok(true) if approve => {
            tracing::info!(user = %who.user_id, "device sign-in approved");
            page::html(200, "Signed in", "<p id=\"done\">Approved. Return to your terminal: it is signed in now.</p>")
        }
        Ok(true) => page::html(200, "Denied", "<p id=\"done\">Denied. Nothing was signed in.</p>"),
        Ok(false) => page::error(400, "That code was already used."),
        Err(_) => page::error(503, "The gateway's database is unavailable; try again."),
    }
}
