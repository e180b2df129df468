//! An identity provider's settings, parsed once from its row.

use std::collections::BTreeMap;

use crate::secrets::Keyring;
use crate::store::entities::identity_providers;
use crate::store::Role;

use super::IdentityError;

pub const DEFAULT_SCOPES: &str = "openid email profile";
pub const DEFAULT_EMAIL_CLAIM: &str = "email";
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// None for a public client.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub email_claim: String,
    pub groups_claim: String,
    pub allowed_domains: Vec<String>,
    pub auto_provision: bool,
    pub default_role: Role,
    pub admin_groups: Vec<String>,
    /// IdP group -> team id.
    pub team_mappings: BTreeMap<String, String>,
    pub enabled: bool,
}

/// The associated data a client secret is sealed under: a sealed secret
/// copied to another provider's row does not open.
pub fn secret_aad(id: &str) -> String {
    format!("idp:{id}:client_secret")
}

pub fn split_list(s: &str) -> Vec<String> {
    s.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl Provider {
    pub fn from_row(row: &identity_providers::Model, keyring: &Keyring) -> Result<Provider, IdentityError> {
        let client_secret = if row.client_secret_enc.is_empty() {
            None
        } else {
            Some(keyring.open(&row.client_secret_enc, &secret_aad(&row.id))?)
        };
        let or = |v: &str, d: &str| if v.trim().is_empty() { d.to_owned() } else { v.trim().to_owned() };
        let team_mappings = if row.team_mappings.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_str(&row.team_mappings)
                .map_err(|e| IdentityError::ProviderInvalid(format!("stored team mappings: {e}")))?
        };
        Ok(Provider {
            id: row.id.clone(),
            name: row.name.clone(),
            issuer: row.issuer.clone(),
            client_id: row.client_id.clone(),
            client_secret,
            scopes: split_list(&or(&row.scopes, DEFAULT_SCOPES)),
            email_claim: or(&row.email_claim, DEFAULT_EMAIL_CLAIM),
            groups_claim: or(&row.groups_claim, DEFAULT_GROUPS_CLAIM),
            allowed_domains: split_list(&row.allowed_domains).into_iter().map(|d| d.to_ascii_lowercase()).collect(),
            auto_provision: row.auto_provision,
            default_role: Role::parse(&row.default_role),
            admin_groups: row
                .admin_groups
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            team_mappings,
            enabled: row.enabled,
        })
    }

    /// A provider for tests: issuer https://idp.example.com, client
    /// "gateway", no domains, groups or mappings.
    #[cfg(test)]
    pub fn for_tests() -> Provider {
        Provider {
            id: "idp_1".into(),
            name: "corp".into(),
            issuer: "https://idp.example.com".into(),
            client_id: "gateway".into(),
            client_secret: None,
            scopes: vec!["openid".into()],
            email_claim: DEFAULT_EMAIL_CLAIM.into(),
            groups_claim: DEFAULT_GROUPS_CLAIM.into(),
            allowed_domains: vec![],
            auto_provision: true,
            default_role: Role::Member,
            admin_groups: vec![],
            team_mappings: BTreeMap::new(),
            enabled: true,
        }
    }

    /// Whether `email`'s domain is one this provider may sign in.
    pub fn domain_allowed(&self, email: Option<&str>) -> bool {
        if self.allowed_domains.is_empty() {
            return true;
        }
        let Some(domain) = email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase()) else {
            return false;
        };
        self.allowed_domains.contains(&domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(domains: &[&str]) -> Provider {
        Provider { allowed_domains: domains.iter().map(|d| d.to_string()).collect(), ..Provider::for_tests() }
    }

    #[test]
    fn any_domain_signs_in_when_none_is_listed() {
        assert!(provider(&[]).domain_allowed(Some("a@b.example")));
        assert!(provider(&[]).domain_allowed(None));
    }

    #[test]
    fn a_listed_domain_matches_exactly_and_without_case() {
        let p = provider(&["example.com"]);
        assert!(p.domain_allowed(Some("Ann@EXAMPLE.com")));
        assert!(!p.domain_allowed(Some("ann@sub.example.com")));
        assert!(!p.domain_allowed(Some("ann@example.com.evil.test")));
        assert!(!p.domain_allowed(None), "a missing email is refused when domains are listed");
    }
}
