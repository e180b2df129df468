//! AWS Signature Version 4 verification (header-based auth only).
//!
//! The canonicalisation core ([`canonical_request`], [`string_to_sign`],
//! [`signing_key`], [`signature`]) is independent of the service name so it
//! can be checked against the official AWS SigV4 test-suite vectors; the
//! Bedrock-specific checks (service must be `bedrock`, region and access key
//! must match) live in [`verify`]; which credentials are accepted at all
//! (static key, moto-issued role sessions, API keys) is [`crate::auth`]'s job.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm this verifier understands.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Why a request failed authentication. Each variant maps onto the AWS error
/// type the real service would answer with (see [`AuthError::error_type`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header at all.
    MissingAuthorization,
    /// The header is present but is not a well-formed SigV4 header.
    Malformed(String),
    /// The access key id is not the configured one.
    UnknownAccessKey(String),
    /// The credential scope names a service other than the expected one.
    WrongService(String),
    /// The credential scope names a region other than the double's.
    WrongRegion { expected: String, got: String },
    /// `x-amz-security-token` is missing or is not the session's token.
    InvalidSecurityToken,
    /// Authenticated, but as a principal the double does not serve.
    AccessDenied { caller: String, action: String, allowed: String },
    /// `Authorization: Bearer` with a key other than the configured one.
    InvalidApiKey,
    /// SigV4 (or another scheme) where only a Bearer API key is accepted.
    ApiKeyRequired,
    /// The double could not read the state it checks credentials against
    /// (moto's STS); a fault of the test set-up, not of the request.
    StateUnavailable(String),
    /// A header listed in `SignedHeaders` is absent from the request.
    MissingSignedHeader(String),
    /// `x-amz-content-sha256` disagrees with the body actually received.
    PayloadHashMismatch,
    /// The recomputed signature differs from the one supplied.
    SignatureMismatch,
}

impl AuthError {
    /// AWS error type name for the `x-amzn-ErrorType` header.
    pub fn error_type(&self) -> &'static str {
        match self {
            AuthError::UnknownAccessKey(_)
            | AuthError::InvalidSecurityToken
            | AuthError::InvalidApiKey
            | AuthError::ApiKeyRequired => "UnrecognizedClientException",
            AuthError::AccessDenied { .. } => "AccessDeniedException",
            AuthError::StateUnavailable(_) => "InternalServerException",
            _ => "InvalidSignatureException",
        }
    }

    /// HTTP status: 403, except when the double itself could not check.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::StateUnavailable(_) => 500,
            _ => 403,
        }
    }

    /// Human-readable message in the style of AWS.
    pub fn message(&self) -> String {
        match self {
            AuthError::MissingAuthorization => {
                "Missing Authentication Token: no Authorization header was provided.".to_string()
            }
            AuthError::Malformed(why) => format!("Authorization header is malformed: {why}"),
            AuthError::UnknownAccessKey(_) => "The security token included in the request is invalid.".to_string(),
            AuthError::WrongService(svc) => {
                format!("Credential should be scoped to correct service: 'bedrock'. (got '{svc}')")
            }
            AuthError::WrongRegion { expected, got } => {
                format!("Credential should be scoped to a valid region: '{expected}'. (got '{got}')")
            }
            AuthError::InvalidSecurityToken => "The security token included in the request is invalid.".to_string(),
            AuthError::AccessDenied { caller, action, allowed } => format!(
                "User: {caller} is not authorized to perform: {action} \
                 (this endpoint accepts only sessions of {allowed})"
            ),
            AuthError::InvalidApiKey => "Authentication failed: Please make sure your API Key is valid.".to_string(),
            AuthError::ApiKeyRequired => {
                "This endpoint accepts only a Bedrock API key (Authorization: Bearer <key>).".to_string()
            }
            AuthError::StateUnavailable(why) => format!("The Bedrock double could not check the credentials: {why}"),
            AuthError::MissingSignedHeader(h) => {
                format!("Header '{h}' is listed in SignedHeaders but is not present.")
            }
            AuthError::PayloadHashMismatch => {
                "The provided 'x-amz-content-sha256' header does not match what was computed.".to_string()
            }
            AuthError::SignatureMismatch => "The request signature we calculated does not match \
                 the signature you provided. Check your AWS Secret Access Key and signing method. \
                 Consult the service documentation for details."
                .to_string(),
        }
    }
}

/// The parsed `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationHeader {
    pub access_key_id: String,
    /// `YYYYMMDD` from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase header names, in the order given.
    pub signed_headers: Vec<String>,
    /// Lowercase hex signature.
    pub signature: String,
}

impl AuthorizationHeader {
    /// `date/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Result<AuthorizationHeader, AuthError> {
    let value = value.trim();
    let rest =
        value.strip_prefix(ALGORITHM).ok_or_else(|| AuthError::Malformed(format!("algorithm must be {ALGORITHM}")))?;
    if !rest.starts_with(' ') {
        return Err(AuthError::Malformed("expected a space after the algorithm".into()));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) =
            part.split_once('=').ok_or_else(|| AuthError::Malformed(format!("component '{part}' has no '='")))?;
        match k.trim() {
            "Credential" => credential = Some(v.trim().to_string()),
            "SignedHeaders" => signed_headers = Some(v.trim().to_string()),
            "Signature" => signature = Some(v.trim().to_string()),
            other => {
                return Err(AuthError::Malformed(format!("unknown component '{other}'")));
            }
        }
    }
    let credential = credential.ok_or_else(|| AuthError::Malformed("missing Credential".into()))?;
    let signed_headers = signed_headers.ok_or_else(|| AuthError::Malformed("missing SignedHeaders".into()))?;
    let signature = signature.ok_or_else(|| AuthError::Malformed("missing Signature".into()))?;

    let parts: Vec<&str> = credential.split('/').collect();
    if parts.len() != 5 || parts[4] != "aws4_request" {
        return Err(AuthError::Malformed("Credential must be AK/YYYYMMDD/REGION/SERVICE/aws4_request".into()));
    }
    if parts[1].len() != 8 || !parts[1].bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::Malformed("credential date must be YYYYMMDD".into()));
    }
    let signed_headers: Vec<String> = signed_headers.split(';').map(|h| h.trim().to_ascii_lowercase()).collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(AuthError::Malformed("empty name in SignedHeaders".into()));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AuthError::Malformed("Signature must be 64 hex digits".into()));
    }
    Ok(AuthorizationHeader {
        access_key_id: parts[0].to_string(),
        date: parts[1].to_string(),
        region: parts[2].to_string(),
        service: parts[3].to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes every byte except the unreserved set (and `/` when
/// `keep_slash`), using uppercase hex, as SigV4 requires.
pub fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() * 3);
    for &b in input.as_bytes() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` sequences; malformed escapes are kept literally.
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Canonical URI: the path exactly as it appeared on the wire, encoded once
/// more (`%` → `%25`, `:` → `%3A`), `/` kept. An empty path becomes `/`.
pub fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_string();
    }
    uri_encode(raw_path, true)
}

/// Canonical query string: parameters decoded, re-encoded strictly, sorted by
/// name then value, joined with `&`.
pub fn canonical_query(raw_query: Option<&str>) -> String {
    let Some(q) = raw_query else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = q
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (uri_encode(&percent_decode(k), false), uri_encode(&percent_decode(v), false))
        })
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// Trims a header value and collapses inner runs of spaces to one.
pub fn canonical_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut prev_space = false;
    for c in value.trim().chars() {
        if c == ' ' {
            if !prev_space {
                out.push(' ');
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
    out
}

/// Everything needed to rebuild a canonical request.
#[derive(Debug, Clone)]
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    /// The path as on the wire (still percent-encoded as the client sent it).
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub signed_headers: &'a [String],
    /// Hex SHA-256 of the payload, or whatever `x-amz-content-sha256` says.
    pub payload_hash: &'a str,
}

/// Builds the SigV4 canonical request.
pub fn canonical_request(input: &CanonicalInput<'_>) -> Result<String, AuthError> {
    let mut out = String::new();
    out.push_str(input.method);
    out.push('\n');
    out.push_str(&canonical_uri(input.raw_path));
    out.push('\n');
    out.push_str(&canonical_query(input.raw_query));
    out.push('\n');
    for name in input.signed_headers {
        let values: Vec<String> = input
            .headers
            .get_all(name.as_str())
            .iter()
            .map(|v| canonical_header_value(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(AuthError::MissingSignedHeader(name.clone()));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&input.signed_headers.join(";"));
    out.push('\n');
    out.push_str(input.payload_hash);
    Ok(out)
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hex sha256(canonical request)}`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// The derived signing key: HMAC chain from `AWS4`+secret over date, region,
/// service and `aws4_request`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Lowercase hex HMAC of the string to sign.
pub fn signature(signing_key: &[u8], string_to_sign: &str) -> String {
    hex::encode(hmac(signing_key, string_to_sign.as_bytes()))
}

/// Constant-time comparison of two hex signatures.
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Computes the signature a request *should* carry for the given parsed
/// authorization header and secret, for any service name.
pub fn expected_signature(
    auth: &AuthorizationHeader,
    secret: &str,
    amz_date: &str,
    input: &CanonicalInput<'_>,
) -> Result<String, AuthError> {
    let creq = canonical_request(input)?;
    let sts = string_to_sign(amz_date, &auth.scope(), &creq);
    let key = signing_key(secret, &auth.date, &auth.region, &auth.service);
    Ok(signature(&key, &sts))
}

/// What [`verify`] needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Who may call and what they must sign for.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub service: &'a str,
    /// The only region the credential scope may name; `None`: any.
    pub region: Option<&'a str>,
}

/// Parses the request's `Authorization` header (without verifying it), so
/// the caller can look up the secret of the access key it names.
pub fn authorization_of(headers: &HeaderMap) -> Result<AuthorizationHeader, AuthError> {
    let raw = headers.get(http::header::AUTHORIZATION).ok_or(AuthError::MissingAuthorization)?;
    let raw = raw.to_str().map_err(|_| AuthError::Malformed("non-ASCII Authorization header".into()))?;
    parse_authorization(raw)
}

/// Verifies a header-signed request. On success returns the parsed header.
pub fn verify(verifier: &Verifier<'_>, req: &RequestParts<'_>) -> Result<AuthorizationHeader, AuthError> {
    verify_parsed(verifier, authorization_of(req.headers)?, req)
}

/// [`verify`] for a header already parsed with [`authorization_of`].
pub fn verify_parsed(
    verifier: &Verifier<'_>,
    auth: AuthorizationHeader,
    req: &RequestParts<'_>,
) -> Result<AuthorizationHeader, AuthError> {
    if auth.service != verifier.service {
        return Err(AuthError::WrongService(auth.service.clone()));
    }
    if let Some(expected) = verifier.region.filter(|r| *r != auth.region) {
        return Err(AuthError::WrongRegion { expected: expected.to_string(), got: auth.region.clone() });
    }
    if auth.access_key_id != verifier.access_key_id {
        return Err(AuthError::UnknownAccessKey(auth.access_key_id.clone()));
    }
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AuthError::Malformed("missing x-amz-date header".into()))?
        .trim()
        .to_string();
    if amz_date.len() < 8 || amz_date[..8] != auth.date {
        return Err(AuthError::Malformed("credential scope date does not match x-amz-date".into()));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Err(AuthError::Malformed("'host' must be a signed header".into()));
    }
    let body_hash = sha256_hex(req.body);
    let payload_hash = match req.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
        Some(declared) => {
            let declared = declared.trim().to_string();
            let is_hash = declared.len() == 64 && declared.bytes().all(|b| b.is_ascii_hexdigit());
            if is_hash && !declared.eq_ignore_ascii_case(&body_hash) {
                return Err(AuthError::PayloadHashMismatch);
            }
            declared
        }
        None => body_hash,
    };
    let input = CanonicalInput {
        method: req.method,
        raw_path: req.raw_path,
        raw_query: req.raw_query,
        headers: req.headers,
        signed_headers: &auth.signed_headers,
        payload_hash: &payload_hash,
    };
    let expected = expected_signature(&auth, verifier.secret_access_key, &amz_date, &input)?;
    if signatures_equal(&expected, &auth.signature) {
        Ok(auth)
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// Credentials and scope for [`sign`].
#[derive(Debug, Clone, Copy)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
}

/// Signs a request (header auth) the way an AWS SDK would; used by the
/// double's own tests. Adds `x-amz-date` and `Authorization` to `headers`;
/// `host` must already be present. Every header present is signed.
pub fn sign(
    headers: &mut HeaderMap,
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    body: &[u8],
    params: &SigningParams<'_>,
) {
    headers.insert("x-amz-date", http::HeaderValue::from_str(params.amz_date).expect("ascii date"));
    let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_ascii_lowercase()).collect();
    names.sort();
    names.dedup();
    let auth = AuthorizationHeader {
        access_key_id: params.access_key_id.to_string(),
        date: params.amz_date[..8].to_string(),
        region: params.region.to_string(),
        service: params.service.to_string(),
        signed_headers: names,
        signature: String::new(),
    };
    let payload_hash = sha256_hex(body);
    let input = CanonicalInput {
        method,
        raw_path,
        raw_query,
        headers,
        signed_headers: &auth.signed_headers,
        payload_hash: &payload_hash,
    };
    let sig = expected_signature(&auth, params.secret_access_key, params.amz_date, &input)
        .expect("all signed headers are present by construction");
    let value = format!(
        "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={sig}",
        auth.access_key_id,
        auth.scope(),
        auth.signed_headers.join(";")
    );
    headers.insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&value).expect("ascii authorization"));
}

#[cfg(test)]
mod tests {
    use super::*;

    const AK: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TEST_PARAMS: SigningParams<'static> = SigningParams {
        access_key_id: "AK",
        secret_access_key: "SK",
        region: "us-east-1",
        service: "bedrock",
        amz_date: "20250101T000000Z",
    };
    const GET_VANILLA_SIG: &str = "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    fn vanilla_headers(sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", "example.amazonaws.com".parse().unwrap());
        h.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        h.insert(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={AK}/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={sig}"
            )
            .parse()
            .unwrap(),
        );
        h
    }

    #[test]
    fn get_vanilla_canonical_request_matches_suite() {
        let headers = vanilla_headers(GET_VANILLA_SIG);
        let signed = vec!["host".to_string(), "x-amz-date".to_string()];
        let hash = sha256_hex(b"");
        let creq = canonical_request(&CanonicalInput {
            method: "GET",
            raw_path: "/",
            raw_query: None,
            headers: &headers,
            signed_headers: &signed,
            payload_hash: &hash,
        })
        .unwrap();
        assert_eq!(
            creq,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let sts = string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", &creq);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    #[test]
    fn get_vanilla_signature_matches_suite() {
        let headers = vanilla_headers(GET_VANILLA_SIG);
        let verifier = Verifier { access_key_id: AK, secret_access_key: SECRET, service: "service", region: None };
        let req = RequestParts { method: "GET", raw_path: "/", raw_query: None, headers: &headers, body: b"" };
        let auth = verify(&verifier, &req).expect("official vector verifies");
        assert_eq!(auth.signature, GET_VANILLA_SIG);
    }

    #[test]
    fn get_vanilla_with_wrong_secret_is_rejected() {
        let headers = vanilla_headers(GET_VANILLA_SIG);
        let verifier =
            Verifier { access_key_id: AK, secret_access_key: "not-the-secret", service: "service", region: None };
        let req = RequestParts { method: "GET", raw_path: "/", raw_query: None, headers: &headers, body: b"" };
        assert_eq!(verify(&verifier, &req), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn tampered_signature_is_rejected() {
        let mut bad = GET_VANILLA_SIG.to_string();
        bad.replace_range(0..1, "6");
        let headers = vanilla_headers(&bad);
        let verifier = Verifier { access_key_id: AK, secret_access_key: SECRET, service: "service", region: None };
        let req = RequestParts { method: "GET", raw_path: "/", raw_query: None, headers: &headers, body: b"" };
        assert_eq!(verify(&verifier, &req), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn wrong_service_and_unknown_key_are_distinguished() {
        let headers = vanilla_headers(GET_VANILLA_SIG);
        let req = RequestParts { method: "GET", raw_path: "/", raw_query: None, headers: &headers, body: b"" };
        let bedrock = Verifier { access_key_id: AK, secret_access_key: SECRET, service: "bedrock", region: None };
        assert_eq!(verify(&bedrock, &req), Err(AuthError::WrongService("service".into())));
        let other_key =
            Verifier { access_key_id: "AKIDOTHER", secret_access_key: SECRET, service: "service", region: None };
        let err = verify(&other_key, &req).unwrap_err();
        assert_eq!(err.error_type(), "UnrecognizedClientException");
    }

    #[test]
    fn canonical_uri_double_encodes_percent_encoded_model_id() {
        assert_eq!(
            canonical_uri("/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"),
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%253A0/invoke"
        );
    }

    #[test]
    fn canonical_uri_encodes_raw_colon_once() {
        assert_eq!(
            canonical_uri("/model/us.anthropic.claude-sonnet-4-5-20250929-v1:0/invoke"),
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
        );
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        assert_eq!(canonical_query(None), "");
        assert_eq!(canonical_query(Some("b=2&a=x%20y&a=1")), "a=1&a=x%20y&b=2");
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        assert_eq!(canonical_header_value("  a   b  c "), "a b c");
    }

    #[test]
    fn unsigned_security_token_is_not_required_but_signed_one_is() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "localhost:1".parse().unwrap());
        sign(&mut headers, "POST", "/model/x/invoke", None, b"{}", &TEST_PARAMS);
        // An extra unsigned x-amz-security-token is ignored.
        headers.insert("x-amz-security-token", "tok".parse().unwrap());
        let v = Verifier { access_key_id: "AK", secret_access_key: "SK", service: "bedrock", region: None };
        let req = RequestParts {
            method: "POST",
            raw_path: "/model/x/invoke",
            raw_query: None,
            headers: &headers,
            body: b"{}",
        };
        assert!(verify(&v, &req).is_ok());
        // Tampering with the body breaks the signature.
        let req2 = RequestParts { body: b"{ }", ..req };
        assert_eq!(verify(&v, &req2), Err(AuthError::SignatureMismatch));
    }

    #[test]
    fn scope_of_another_region_is_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "localhost:1".parse().unwrap());
        sign(&mut headers, "POST", "/", None, b"{}", &TEST_PARAMS);
        let req = RequestParts { method: "POST", raw_path: "/", raw_query: None, headers: &headers, body: b"{}" };
        let west =
            Verifier { access_key_id: "AK", secret_access_key: "SK", service: "bedrock", region: Some("us-west-2") };
        let err = verify(&west, &req).unwrap_err();
        assert_eq!(err, AuthError::WrongRegion { expected: "us-west-2".into(), got: "us-east-1".into() });
        assert_eq!(err.error_type(), "InvalidSignatureException");
        assert_eq!(err.message(), "Credential should be scoped to a valid region: 'us-west-2'. (got 'us-east-1')");
        let east = Verifier { region: Some("us-east-1"), ..west };
        assert!(verify(&east, &req).is_ok());
    }

    #[test]
    fn declared_payload_hash_must_match_body() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "localhost:1".parse().unwrap());
        headers.insert("x-amz-content-sha256", sha256_hex(b"other").parse().unwrap());
        sign(&mut headers, "POST", "/", None, b"{}", &TEST_PARAMS);
        let v = Verifier { access_key_id: "AK", secret_access_key: "SK", service: "bedrock", region: None };
        let req = RequestParts { method: "POST", raw_path: "/", raw_query: None, headers: &headers, body: b"{}" };
        assert_eq!(verify(&v, &req), Err(AuthError::PayloadHashMismatch));
    }

    #[test]
    fn malformed_headers_are_rejected() {
        assert!(matches!(parse_authorization("Bearer abc"), Err(AuthError::Malformed(_))));
        assert!(matches!(
            parse_authorization(
                "AWS4-HMAC-SHA256 Credential=AK/2015/us-east-1/s/aws4_request, SignedHeaders=host, Signature=00"
            ),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn percent_decode_handles_escapes() {
        assert_eq!(percent_decode("v1%3A0"), "v1:0");
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }
}
