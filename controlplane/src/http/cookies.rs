//! Cookies: read from the `Cookie` header, written with the attributes a
//! session needs (HttpOnly always; Secure unless the gateway is served
//! over plain HTTP on loopback; SameSite=Lax, so the provider's redirect
//! back carries the sign-in cookie but other sites' requests do not).

pub const SESSION: &str = "ccag_session";
/// Binds a sign-in in flight to the browser that started it.
pub const FLOW: &str = "ccag_oidc";

pub fn get<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

pub struct Jar {
    pub secure: bool,
}

impl Jar {
    pub fn set(&self, name: &str, value: &str, path: &str, max_age_secs: u64) -> http::HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let v = format!("{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}");
        http::HeaderValue::from_str(&v).expect("cookie values are base62")
    }

    pub fn clear(&self, name: &str, path: &str) -> http::HeaderValue {
        self.set(name, "", path, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cookie_is_found_among_others() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; ccag_session=abc".parse().unwrap());
        h.append(http::header::COOKIE, "b=2".parse().unwrap());
        assert_eq!(get(&h, SESSION), Some("abc"));
        assert_eq!(get(&h, "b"), Some("2"));
        assert_eq!(get(&h, "ccag"), None);
    }

    #[test]
    fn session_cookies_are_http_only_and_secure_off_loopback() {
        let v = Jar { secure: true }.set(SESSION, "t", "/", 60);
        let v = v.to_str().unwrap();
        assert!(v.contains("HttpOnly") && v.contains("Secure") && v.contains("SameSite=Lax"), "{v}");
        assert!(!Jar { secure: false }.set(SESSION, "t", "/", 60).to_str().unwrap().contains("Secure"));
    }
}
