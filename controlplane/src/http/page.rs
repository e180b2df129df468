//! The few HTML pages sign-in shows before the portal takes over: static
//! markup, every value escaped, no script.

use bytes::Bytes;
use http_body_util::Full;

use super::Response;

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `body` is already-escaped markup.
pub fn html(status: u16, title: &str, body: &str) -> Response {
    let doc = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} · CCAG</title></head>\n<body><main><h1>{}</h1>\n{body}\n</main></body></html>\n",
        escape(title),
        escape(title)
    );
    let mut res = http::Response::new(Full::new(Bytes::from(doc)));
    *res.status_mut() = http::StatusCode::from_u16(status).expect("valid status");
    res.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
    res
}

/// A refusal a person reads: what happened and what to do.
pub fn error(status: u16, message: &str) -> Response {
    html(status, "Sign-in failed", &format!("<p id=\"error\">{}</p>", escape(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_escaped() {
        assert_eq!(
            escape("<script>\"x\" & 'y'</script>"),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
