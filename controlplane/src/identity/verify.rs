//! The checks an id_token passes before anyone is signed in: a signature
//! by a key the provider publishes, with an algorithm of that key's family
//! (never `none` or HMAC); `iss`, `aud`, `azp`, `exp`, `nbf` and `nonce`;
//! and an `email_verified` that is not false.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;
use subtle::ConstantTimeEq;

use super::{IdentityError, Provider};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 60;

/// What a verified id_token says of its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// None when the token has no groups claim (which is not "no groups").
    pub groups: Option<Vec<String>>,
}

fn reject(why: impl Into<String>) -> IdentityError {
    IdentityError::TokenRejected(why.into())
}

/// The header's algorithm, if it is one a provider may sign with.
pub fn algorithm(token: &str) -> Result<(Algorithm, Option<String>), IdentityError> {
    let h = jsonwebtoken::decode_header(token).map_err(|e| reject(format!("not a signed JWT ({e})")))?;
    if matches!(h.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(reject("it is signed with a shared secret (HMAC), which is not accepted"));
    }
    Ok((h.alg, h.kid))
}

/// Checks the signature and the standard claims, then the claims that
/// jsonwebtoken does not know.
pub fn decode(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
    p: &Provider,
    nonce: &str,
) -> Result<Verified, IdentityError> {
    claims(&decode_claims(token, key, alg, p)?, p, nonce)
}

/// The claims of a token whose signature, time, issuer and audience check.
pub fn decode_claims(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    alg: Algorithm,
    p: &Provider,
) -> Result<Value, IdentityError> {
    let mut v = Validation::new(alg);
    v.leeway = LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_issuer(&[p.issuer.as_str()]);
    v.set_audience(&[p.client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, key, &v).map_err(|e| {
        reject(match e.kind() {
            ErrorKind::ExpiredSignature => "it has expired".to_owned(),
            ErrorKind::ImmatureSignature => "it is not valid yet (nbf)".to_owned(),
            ErrorKind::InvalidAudience => format!("it was issued for another client, not {:?}", p.client_id),
            ErrorKind::InvalidIssuer => format!("it was issued by another issuer, not {:?}", p.issuer),
            ErrorKind::InvalidSignature => "its signature does not verify".to_owned(),
            ErrorKind::MissingRequiredClaim(c) => format!("it has no {c:?} claim"),
            ErrorKind::InvalidAlgorithm => "its algorithm does not fit the key".to_owned(),
            other => format!("{other:?}"),
        })
    })?;
    Ok(data.claims)
}

/// Whether the token lacks a claim the provider's settings read, which
/// the UserInfo endpoint may then supply (providers that keep id_tokens
/// small do this).
pub fn wants_userinfo(c: &Value, p: &Provider) -> bool {
    claim(c, &p.email_claim).is_none() || claim(c, &p.groups_claim).is_none()
}

/// Adds what UserInfo says to the token's claims, never replacing one: the
/// signed token wins. UserInfo must be about the same subject (OIDC Core
/// 5.3.2), or it is refused.
pub fn merge_userinfo(token: &mut Value, info: &Value) -> Result<(), IdentityError> {
    let sub = token.get("sub").and_then(Value::as_str);
    if info.get("sub").and_then(Value::as_str) != sub {
        return Err(reject("the UserInfo answer is about another subject"));
    }
    if let (Some(t), Some(i)) = (token.as_object_mut(), info.as_object()) {
        for (k, v) in i {
            t.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(())
}

/// The checks on a decoded token's claims beyond signature, time, issuer
/// and audience.
pub fn claims(c: &Value, p: &Provider, nonce: &str) -> Result<Verified, IdentityError> {
    let several_audiences = c.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
    match c.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != p.client_id => {
            return Err(reject(format!("it was issued to another party (azp {azp:?})")));
        }
        None if several_audiences => return Err(reject("it has several audiences and no azp")),
        _ => {}
    }
    let got = c.get("nonce").and_then(Value::as_str).unwrap_or_default();
    let same: bool = got.as_bytes().ct_eq(nonce.as_bytes()).into();
    if nonce.is_empty() || !same {
        return Err(reject("its nonce is not the one this sign-in sent (a replayed or foreign token)"));
    }
    let verified = match c.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
        _ => true,
    };
    if !verified {
        return Err(IdentityError::Forbidden(
            "the identity provider says this email address is not verified; verify it there and sign in again".into(),
        ));
    }
    let subject = c.get("sub").and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 255);
    let subject = subject.ok_or_else(|| reject("its sub claim is missing or too long"))?.to_owned();
    let email = claim(c, &p.email_claim).and_then(Value::as_str).map(|e| e.trim().to_owned()).filter(|e| !e.is_empty());
    let name = c.get("name").and_then(Value::as_str).map(str::to_owned);
    let groups = claim(c, &p.groups_claim).map(|g| match g {
        Value::Array(items) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    });
    Ok(Verified { subject, email, name, groups })
}

/// A claim by name, or by JSON Pointer when it starts with `/`
/// (`/resource_access/gateway/roles`).
fn claim<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') {
        c.pointer(name)
    } else {
        c.get(name)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use jsonwebtoken::{DecodingKey, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    fn provider() -> Provider {
        Provider::for_tests()
    }

    struct Signer {
        enc: EncodingKey,
        dec: DecodingKey,
    }

    fn signer() -> Signer {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        Signer { enc: EncodingKey::from_ed_der(pkcs8.as_ref()), dec: DecodingKey::from_ed_components(&x).unwrap() }
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn good() -> Value {
        json!({"iss": "https://idp.example.com", "aud": "gateway", "sub": "u-1", "iat": now(), "exp": now() + 300,
               "nonce": "n-1", "email": "ann@example.com", "groups": ["eng", "admins"]})
    }

    fn run(s: &Signer, claims: &Value) -> Result<Verified, IdentityError> {
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), claims, &s.enc).unwrap();
        let (alg, _) = algorithm(&token)?;
        decode(&token, &s.dec, alg, &provider(), "n-1")
    }

    fn refusal(s: &Signer, claims: Value) -> String {
        run(s, &claims).unwrap_err().to_string()
    }

    fn with(k: &str, v: Value) -> Value {
        let mut c = good();
        c[k] = v;
        c
    }

    #[test]
    fn a_good_token_yields_its_subject_email_and_groups() {
        let v = run(&signer(), &good()).unwrap();
        assert_eq!(v.subject, "u-1");
        assert_eq!(v.email.as_deref(), Some("ann@example.com"));
        assert_eq!(v.groups, Some(vec!["eng".to_string(), "admins".to_string()]));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let s = signer();
        let e = refusal(&s, with("exp", json!(now() - 600)));
        assert!(e.contains("expired"), "{e}");
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let e = refusal(&signer(), with("nbf", json!(now() + 600)));
        assert!(e.contains("not valid yet"), "{e}");
    }

    #[test]
    fn a_token_for_another_audience_is_refused() {
        let e = refusal(&signer(), with("aud", json!("someone-else")));
        assert!(e.contains("another client"), "{e}");
    }

    #[test]
    fn a_token_from_another_issuer_is_refused() {
        let e = refusal(&signer(), with("iss", json!("https://evil.example.com")));
        assert!(e.contains("another issuer"), "{e}");
    }

    #[test]
    fn a_foreign_authorized_party_is_refused() {
        let e = refusal(&signer(), with("azp", json!("other-app")));
        assert!(e.contains("azp"), "{e}");
        let e = refusal(&signer(), with("aud", json!(["gateway", "other-app"])));
        assert!(e.contains("no azp"), "{e}");
        let mut ok = with("aud", json!(["gateway", "other-app"]));
        ok["azp"] = json!("gateway");
        assert!(run(&signer(), &ok).is_ok());
    }

    #[test]
    fn a_token_with_another_nonce_is_refused() {
        let e = refusal(&signer(), with("nonce", json!("n-2")));
        assert!(e.contains("nonce"), "{e}");
        let mut none = good();
        none.as_object_mut().unwrap().remove("nonce");
        assert!(refusal(&signer(), none).contains("nonce"));
    }

    #[test]
    fn an_unverified_email_is_refused() {
        let e = refusal(&signer(), with("email_verified", json!(false)));
        assert!(e.contains("not verified"), "{e}");
        assert!(run(&signer(), &with("email_verified", json!(true))).is_ok());
    }

    #[test]
    fn a_token_signed_by_another_key_is_refused() {
        let token = jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &good(), &signer().enc).unwrap();
        let e = decode(&token, &signer().dec, Algorithm::EdDSA, &provider(), "n-1").unwrap_err().to_string();
        assert!(e.contains("signature"), "{e}");
    }

    #[test]
    fn an_hmac_signed_token_is_refused_before_any_key_is_looked_up() {
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &good(), &EncodingKey::from_secret(b"k")).unwrap();
        assert!(algorithm(&token).unwrap_err().to_string().contains("HMAC"));
    }

    #[test]
    fn userinfo_adds_claims_but_never_replaces_the_tokens() {
        let mut c = json!({"sub": "u-1", "email": "ann@example.com"});
        merge_userinfo(&mut c, &json!({"sub": "u-1", "email": "evil@example.com", "groups": ["eng"]})).unwrap();
        assert_eq!(c["email"], "ann@example.com");
        assert_eq!(c["groups"], json!(["eng"]));
        assert!(merge_userinfo(&mut c, &json!({"sub": "u-2"})).is_err(), "another subject is refused");
    }

    #[test]
    fn claims_can_be_named_by_json_pointer() {
        let mut p = provider();
        p.groups_claim = "/resource_access/gateway/roles".into();
        let mut c = good();
        c["resource_access"] = json!({"gateway": {"roles": ["admin"]}});
        assert_eq!(claims(&c, &p, "n-1").unwrap().groups, Some(vec!["admin".to_string()]));
        c.as_object_mut().unwrap().remove("resource_access");
        assert_eq!(claims(&c, &p, "n-1").unwrap().groups, None, "an absent claim is not an empty list");
    }
}
