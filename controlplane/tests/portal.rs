//! The portal on the control plane's HTTP address: the embedded
//! application with its security headers, password sign-in into an
//! HttpOnly cookie, and the admin API as gRPC-Web, where a cookie is only
//! good with its CSRF token and from this origin. Sign-in runs on SQLite
//! and PostgreSQL, the rest on SQLite: nothing
//! else here depends on the database. Needs the portal built (`./test.sh` does
//! it first).

mod common;

use std::time::Duration;

use bytes::Bytes;
use ccag_proto::admin::v1 as admin;
use http_body_util::{BodyExt, Full};
use prost::Message;

use common::{on_both_backends, Backend, Env, Server, ADMIN, ADMIN_PASSWORD};

const WAIT: Duration = Duration::from_secs(30);

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request to the HTTP listener.
async fn send(srv: &Server, req: http::Request<Full<Bytes>>) -> Answer {
    let addr = srv.http.strip_prefix("http://").expect("an http:// address").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.expect("connecting to the HTTP listener");
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(conn);
    let mut req = req;
    req.headers_mut().insert(http::header::HOST, addr.parse().expect("a host header"));
    let res = tokio::time::timeout(WAIT, sender.send_request(req)).await.expect("an answer in time").expect("sent");
    let (parts, body) = res.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect()).await.expect("a body in time").expect("read").to_bytes();
    Answer { status: parts.status.as_u16(), headers: parts.headers, body }
}

fn get(path: &str) -> http::request::Builder {
    http::Request::builder().method("GET").uri(path)
}

async fn fetch(srv: &Server, path: &str) -> Answer {
    send(srv, get(path).body(Full::default()).expect("a request")).await
}

fn login_request(username: &str, password: &str) -> http::Request<Full<Bytes>> {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    http::Request::builder()
        .method("POST")
        .uri("/auth/login")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a request")
}

/// Signs in with a password; the session cookie and its CSRF token.
async fn sign_in(srv: &Server, username: &str, password: &str) -> (String, String) {
    let a = send(srv, login_request(username, password)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let cookie = a.header("set-cookie").split(';').next().expect("a cookie").to_owned();
    let s = send(srv, get("/auth/session").header("cookie", &cookie).body(Full::default()).expect("a request")).await;
    assert_eq!(s.status, 200, "{}", s.text());
    let v: serde_json::Value = serde_json::from_slice(&s.body).expect("JSON");
    (cookie, v["csrf_token"].as_str().expect("a CSRF token").to_owned())
}

/// A gRPC-Web call's outcome: the status code and message (from the
/// trailers frame, or the headers of a trailers-only answer) and the
/// message bytes.
struct WebCall {
    code: i32,
    message: String,
    data: Bytes,
}

async fn grpc_web<M: Message>(srv: &Server, path: &str, msg: &M, headers: &[(&str, &str)]) -> WebCall {
    let body = msg.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(&body);
    let mut b = http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let a = send(srv, b.body(Full::new(Bytes::from(framed))).expect("a request")).await;
    assert_eq!(a.status, 200, "gRPC-Web answers 200 with its status inside: {}", a.text());
    let mut code = a.header("grpc-status").parse::<i32>().ok();
    let mut message = percent_encoding::percent_decode_str(a.header("grpc-message")).decode_utf8_lossy().into_owned();
    let mut data = Bytes::new();
    let mut rest = a.body.clone();
    while rest.len() >= 5 {
        let flag = rest[0];
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let frame = rest.slice(5..5 + len);
        rest = rest.slice(5 + len..);
        if flag & 0x80 != 0 {
            for line in String::from_utf8_lossy(&frame).split("\r\n") {
                if let Some((k, v)) = line.split_once(':') {
                    match k.trim().to_ascii_lowercase().as_str() {
                        "grpc-status" => code = v.trim().parse().ok(),
                        "grpc-message" => {
                            message = percent_encoding::percent_decode_str(v.trim()).decode_utf8_lossy().into_owned()
                        }
                        _ => {}
                    }
                }
            }
        } else {
            data = frame;
        }
    }
    WebCall { code: code.expect("a grpc-status"), message, data }
}

const WHOAMI: &str = "/ccag.admin.v1.AuthService/WhoAmI";

fn server() -> (Env, Server) {
    let env = Env::new(Backend::Sqlite);
    let srv = env.start();
    (env, srv)
}

#[tokio::test]
async fn the_portal_is_served_with_a_strict_content_security_policy() {
    let (_env, srv) = server();
    let a = fetch(&srv, "/portal/").await;
    assert_eq!(a.status, 200, "is the portal built? {}", a.text());
    assert!(a.header("content-type").starts_with("text/html"), "{:?}", a.headers);
    assert!(a.text().contains("<div id=\"app\">"), "{}", a.text());
    let csp = a.header("content-security-policy");
    for part in ["script-src 'self'", "frame-ancestors 'none'", "default-src 'none'", "connect-src 'self'"] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(a.header("x-content-type-options"), "nosniff");
    assert_eq!(a.header("cache-control"), "no-cache");
    // No inline script in the page itself.
    assert!(!a.text().contains("<script>"), "{}", a.text());
}

#[tokio::test]
async fn every_page_of_the_portal_is_the_application_but_a_missing_asset_is_not_found() {
    let (_env, srv) = server();
    let page = fetch(&srv, "/portal/admin/analytics?range=7d").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<div id=\"app\">"));
    assert_eq!(fetch(&srv, "/portal/assets/nope-123.js").await.status, 404);
    let root = fetch(&srv, "/").await;
    assert_eq!((root.status, root.header("location")), (302, "/portal/"));
}

#[tokio::test]
async fn assets_are_cached_for_good_and_sent_compressed_when_accepted() {
    let (_env, srv) = server();
    let index = fetch(&srv, "/portal/").await.text();
    let script = index.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("a script src").to_owned();
    assert!(script.starts_with("/portal/assets/") && script.ends_with(".js"), "{script}");
    let plain = fetch(&srv, &script).await;
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-type").starts_with("text/javascript"));
    assert!(plain.header("cache-control").contains("immutable"));
    assert_eq!(plain.header("content-encoding"), "");
    let gz = send(&srv, get(&script).header("accept-encoding", "gzip, br").body(Full::default()).unwrap()).await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert!(gz.body.len() < plain.body.len() / 2, "{} vs {}", gz.body.len(), plain.body.len());
}

// Sessions live in the database: this one runs on both.
on_both_backends!(async: password_sign_in_sets_an_http_only_session_cookie);

async fn password_sign_in_sets_an_http_only_session_cookie(env: Env) {
    let srv = env.start();
    let a = send(&srv, login_request(ADMIN, ADMIN_PASSWORD)).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let cookie = a.header("set-cookie");
    assert!(cookie.starts_with("ccag_session=ccag_ses_"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"), "{cookie}");
    // The token is in the cookie only, never in what a script can read.
    let token = cookie.split(';').next().and_then(|c| c.split_once('=')).map(|(_, v)| v).unwrap_or_default();
    assert!(!a.text().contains(token), "{}", a.text());
}

#[tokio::test]
async fn a_wrong_password_or_a_form_post_signs_nobody_in() {
    let (_env, srv) = server();
    let wrong = send(&srv, login_request(ADMIN, "not the password")).await;
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    assert!(wrong.header("set-cookie").is_empty());
    assert!(wrong.text().contains("invalid username or password"), "{}", wrong.text());
    let form = http::Request::builder()
        .method("POST")
        .uri("/auth/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(format!("username={ADMIN}&password={ADMIN_PASSWORD}"))))
        .unwrap();
    assert_eq!(send(&srv, form).await.status, 415);
    let mut other = login_request(ADMIN, ADMIN_PASSWORD);
    other.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    let refused = send(&srv, other).await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.header("set-cookie").is_empty());
}

#[tokio::test]
async fn a_cookie_calls_the_admin_api_only_with_its_csrf_token() {
    let (_env, srv) = server();
    let (cookie, csrf) = sign_in(&srv, ADMIN, ADMIN_PASSWORD).await;
    let req = admin::WhoAmIRequest {};
    let without = grpc_web(&srv, WHOAMI, &req, &[("cookie", &cookie)]).await;
    assert_eq!(without.code, tonic::Code::PermissionDenied as i32, "{}", without.message);
    assert!(without.message.contains("x-csrf-token"), "{}", without.message);
    let wrong = grpc_web(&srv, WHOAMI, &req, &[("cookie", &cookie), ("x-csrf-token", "0000")]).await;
    assert_eq!(wrong.code, tonic::Code::PermissionDenied as i32);
    let elsewhere = grpc_web(
        &srv,
        WHOAMI,
        &req,
        &[("cookie", &cookie), ("x-csrf-token", &csrf), ("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(elsewhere.code, tonic::Code::PermissionDenied as i32);
    let ok = grpc_web(&srv, WHOAMI, &req, &[("cookie", &cookie), ("x-csrf-token", &csrf)]).await;
    assert_eq!(ok.code, 0, "{}", ok.message);
    let who = admin::Principal::decode(ok.data).expect("a Principal");
    assert_eq!((who.email.as_str(), who.role), (ADMIN, admin::Role::Admin as i32), "{who:?}");
}

#[tokio::test]
async fn without_a_session_the_admin_api_is_unauthenticated() {
    let (_env, srv) = server();
    let anon = grpc_web(&srv, WHOAMI, &admin::WhoAmIRequest {}, &[]).await;
    assert_eq!(anon.code, tonic::Code::Unauthenticated as i32, "{}", anon.message);
}

#[tokio::test]
async fn members_are_refused_admin_calls_over_grpc_web() {
    let (_env, srv) = server();
    let (cookie, csrf) = sign_in(&srv, ADMIN, ADMIN_PASSWORD).await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let create = admin::CreateUserRequest {
        email: "mia@example.com".into(),
        role: admin::Role::Member as i32,
        password: "member-password-1".into(),
        ..Default::default()
    };
    let made = grpc_web(&srv, "/ccag.admin.v1.UserService/CreateUser", &create, &h).await;
    assert_eq!(made.code, 0, "{}", made.message);
    let (cookie, csrf) = sign_in(&srv, "mia@example.com", "member-password-1").await;
    let h = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let audit = grpc_web(&srv, "/ccag.admin.v1.AuditService/ListAudit", &admin::ListAuditRequest::default(), &h).await;
    assert_eq!(audit.code, tonic::Code::PermissionDenied as i32, "{}", audit.message);
    let another = admin::CreateUserRequest { email: "eve@example.com".into(), ..Default::default() };
    let made = grpc_web(&srv, "/ccag.admin.v1.UserService/CreateUser", &another, &h).await;
    assert_eq!(made.code, tonic::Code::PermissionDenied as i32, "{}", made.message);
    // Listing users shows a member only themselves.
    let list = grpc_web(&srv, "/ccag.admin.v1.UserService/ListUsers", &admin::ListUsersRequest::default(), &h).await;
    assert_eq!(list.code, 0, "{}", list.message);
    let users = admin::ListUsersResponse::decode(list.data).expect("users");
    assert_eq!(users.users.iter().map(|u| u.email.as_str()).collect::<Vec<_>>(), ["mia@example.com"]);
    let mine = grpc_web(&srv, "/ccag.admin.v1.KeyService/ListKeys", &admin::ListKeysRequest::default(), &h).await;
    assert_eq!(mine.code, 0, "{}", mine.message);
}

#[tokio::test]
async fn the_web_cannot_obtain_a_session_token_from_login() {
    let (_env, srv) = server();
    let req = admin::LoginRequest { username: ADMIN.into(), password: ADMIN_PASSWORD.into() };
    let r = grpc_web(&srv, "/ccag.admin.v1.AuthService/Login", &req, &[]).await;
    assert_eq!(r.code, tonic::Code::FailedPrecondition as i32, "{}", r.message);
    assert!(r.data.is_empty());
}

#[tokio::test]
async fn the_admin_api_here_speaks_only_grpc_web() {
    let (_env, srv) = server();
    let req = http::Request::builder()
        .method("POST")
        .uri(WHOAMI)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let a = send(&srv, req).await;
    assert_eq!(a.status, 415, "{}", a.text());
    assert!(a.text().contains("gRPC-Web"), "{}", a.text());
}
