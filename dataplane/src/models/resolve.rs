//! Model resolution: the name a client sends to the Bedrock model id to call,
//! plus what that model family accepts (which drives body adaptation).

use std::collections::HashMap;

/// Claude Code's `…[1m]` model names mean "this model with the 1M context beta".
pub const CONTEXT_1M_BETA: &str = "context-1m-2025-08-07";

const GEO_PREFIXES: &[&str] = &["us-gov.", "us.", "eu.", "apac.", "jp.", "au.", "global."];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Opus,
    Sonnet,
    Haiku,
}

/// What a model accepts. `version` is `None` when the id does not tell (an
/// application inference profile ARN, say): then nothing is adapted and the
/// request goes through as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub family: Option<Family>,
    pub version: Option<(u8, u8)>,
}

impl Capabilities {
    const UNKNOWN: Capabilities = Capabilities { family: None, version: None };

    fn at_least(&self, v: (u8, u8)) -> bool {
        self.version.is_none_or(|m| m >= v)
    }
    fn below(&self, v: (u8, u8)) -> bool {
        self.version.is_none_or(|m| m < v)
    }
    /// `thinking: {"type":"adaptive"}` arrived with the 4.6 models.
    pub fn adaptive_thinking(&self) -> bool {
        self.at_least((4, 6))
    }
    /// From 4.7 on, Bedrock only takes adaptive thinking.
    pub fn budgeted_thinking(&self) -> bool {
        self.below((4, 7))
    }
    pub fn thinking_display(&self) -> bool {
        self.at_least((4, 6))
    }
    pub fn effort(&self, effort_beta: bool) -> bool {
        self.version.is_none()
            || self.at_least((4, 7))
            || (effort_beta && self.family == Some(Family::Opus) && self.version == Some((4, 5)))
    }
    pub fn output_format(&self) -> bool {
        self.below((4, 7))
    }
    pub fn context_management(&self) -> bool {
        self.version.is_none()
            || (self.version == Some((4, 5)) && matches!(self.family, Some(Family::Sonnet | Family::Haiku)))
    }
    /// `{"role":"system"}` entries inside `messages`.
    pub fn system_messages(&self) -> bool {
        self.at_least((4, 7))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// What goes into the Bedrock URL: an inference profile, foundation id or ARN.
    pub bedrock_id: String,
    /// The in-region foundation id (CountTokens accepts only these).
    pub foundation_id: Option<String>,
    pub caps: Capabilities,
    /// The client asked for the 1M-context variant.
    pub context_1m: bool,
}

/// Resolves a client's model name. `None` means no Claude model goes by it.
pub fn resolve(name: &str, mappings: &HashMap<String, String>, geo: &str) -> Option<Resolved> {
    let name = name.trim();
    let (base, context_1m) = match name.len().checked_sub(4) {
        Some(i) if name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case("[1m]") => (&name[..i], true),
        _ => (name, false),
    };
    if base.is_empty() {
        return None;
    }
    let bedrock_id = match mappings.get(name).or_else(|| mappings.get(base)) {
        Some(mapped) => mapped.clone(),
        None => ccag_proto::models::derived_bedrock_id(base, geo)?,
    };
    let foundation_id = foundation_of(&bedrock_id);
    let caps = parse_caps(&bedrock_id);
    Some(Resolved { bedrock_id, foundation_id, caps, context_1m })
}

/// `us.anthropic.X` → `anthropic.X`; an inference-profile ARN → its
/// foundation id; an application profile ARN → unknown.
fn foundation_of(id: &str) -> Option<String> {
    let id = match id.strip_prefix("arn:") {
        Some(arn) => arn.split_once(":inference-profile/")?.1,
        None => id,
    };
    let bare = GEO_PREFIXES.iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id);
    bare.starts_with("anthropic.").then(|| bare.to_owned())
}

/// Reads family and version out of any id that contains `claude-…`.
fn parse_caps(id: &str) -> Capabilities {
    let Some(pos) = id.find("claude-") else {
        return Capabilities::UNKNOWN;
    };
    let mut toks = id[pos + 7..].split(['-', ':', '/', '.']).peekable();
    let fam = |t: &str| match t {
        "opus" => Some(Family::Opus),
        "sonnet" => Some(Family::Sonnet),
        "haiku" => Some(Family::Haiku),
        _ => None,
    };
    let small = |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit());
    let Some(first) = toks.next() else {
        return Capabilities::UNKNOWN;
    };
    let (family, major, minor) = if small(first) {
        // Legacy order: claude-3-7-sonnet-…
        let major = first.parse().ok();
        let minor = toks.next_if(|t| small(t)).and_then(|t| t.parse().ok()).unwrap_or(0);
        (toks.next().and_then(fam), major, minor)
    } else {
        let family = fam(first);
        let major = toks.next().filter(|t| small(t)).and_then(|t| t.parse().ok());
        let minor = toks.next_if(|t| small(t)).and_then(|t| t.parse().ok()).unwrap_or(0);
        (family, major, minor)
    };
    match (family, major) {
        (Some(f), Some(m)) => Capabilities { family: Some(f), version: Some((m, minor)) },
        _ => Capabilities::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::super::catalogue;
    use super::*;

    fn r(name: &str) -> Option<Resolved> {
        resolve(name, &HashMap::new(), "us")
    }

    #[test]
    fn alias_resolves_to_geo_profile() {
        assert_eq!(r("claude-sonnet-4-5").unwrap().bedrock_id, "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    }

    #[test]
    fn dated_id_resolves_to_same_profile_as_alias() {
        assert_eq!(r("claude-sonnet-4-5-20250929").unwrap().bedrock_id, r("claude-sonnet-4-5").unwrap().bedrock_id);
    }

    #[test]
    fn short_aliases_pick_the_newest_family_member() {
        assert_eq!(r("opus").unwrap().bedrock_id, "us.anthropic.claude-opus-5-5");
        assert_eq!(r("sonnet").unwrap().bedrock_id, "us.anthropic.claude-sonnet-5-5");
        assert_eq!(r("haiku").unwrap().bedrock_id, "us.anthropic.claude-haiku-5-5");
    }

    #[test]
    fn every_catalogue_entry_resolves() {
        for m in catalogue::MODELS {
            let got = r(m.id).unwrap();
            assert_eq!(got.bedrock_id, format!("us.{}", m.foundation));
            assert!(got.caps.version.is_some(), "{} has no parsed version", m.id);
        }
    }

    #[test]
    fn one_million_suffix_sets_the_context_beta() {
        let got = r("claude-sonnet-4-5[1m]").unwrap();
        assert!(got.context_1m);
        assert_eq!(got.bedrock_id, "us.anthropic.claude-sonnet-4-5-20250929-v1:0");
    }

    #[test]
    fn geo_prefix_follows_configured_geo() {
        let got = resolve("claude-opus-4-6", &HashMap::new(), "eu").unwrap();
        assert_eq!(got.bedrock_id, "eu.anthropic.claude-opus-4-6-v1");
    }

    #[test]
    fn explicit_mapping_wins() {
        let maps = HashMap::from([(
            "claude-sonnet-4-5".to_owned(),
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc".to_owned(),
        )]);
        let got = resolve("claude-sonnet-4-5", &maps, "us").unwrap();
        assert!(got.bedrock_id.ends_with("application-inference-profile/abc"));
        assert_eq!(got.foundation_id, None);
    }

    #[test]
    fn bedrock_ids_pass_through() {
        let got = r("eu.anthropic.claude-haiku-4-5-20251001-v1:0").unwrap();
        assert_eq!(got.bedrock_id, "eu.anthropic.claude-haiku-4-5-20251001-v1:0");
        assert_eq!(got.foundation_id.as_deref(), Some("anthropic.claude-haiku-4-5-20251001-v1:0"));
    }

    #[test]
    fn arns_pass_through() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1";
        let got = r(arn).unwrap();
        assert_eq!(got.bedrock_id, arn);
        assert_eq!(got.foundation_id.as_deref(), Some("anthropic.claude-opus-4-6-v1"));
        assert_eq!(got.caps.version, Some((4, 6)));
    }

    #[test]
    fn future_claude_ids_are_derived() {
        assert_eq!(r("claude-sonnet-6-1").unwrap().bedrock_id, "us.anthropic.claude-sonnet-6-1");
        assert_eq!(r("claude-opus-6-20270101").unwrap().bedrock_id, "us.anthropic.claude-opus-6-20270101-v1:0");
    }

    #[test]
    fn non_claude_names_do_not_resolve() {
        assert_eq!(r("gpt-4o"), None);
        assert_eq!(r(""), None);
        assert_eq!(r("[1m]"), None);
    }

    #[test]
    fn versions_are_parsed_from_every_id_form() {
        let v = |id: &str| parse_caps(id).version;
        assert_eq!(v("anthropic.claude-opus-4-20250514-v1:0"), Some((4, 0)));
        assert_eq!(v("us.anthropic.claude-sonnet-4-5-20250929-v1:0"), Some((4, 5)));
        assert_eq!(v("anthropic.claude-3-7-sonnet-20250219-v1:0"), Some((3, 7)));
        assert_eq!(v("global.anthropic.claude-opus-5"), Some((5, 0)));
        assert_eq!(v("anthropic.claude-opus-4-6-v1"), Some((4, 6)));
        assert_eq!(v("arn:aws:bedrock:us-east-1:1:application-inference-profile/x"), None);
    }

    #[test]
    fn capabilities_follow_the_family_rules() {
        let c = |id: &str| r(id).unwrap().caps;
        assert!(!c("claude-sonnet-4-5").adaptive_thinking());
        assert!(c("claude-opus-4-6").adaptive_thinking() && c("claude-opus-4-6").budgeted_thinking());
        assert!(!c("claude-opus-4-7").budgeted_thinking());
        assert!(c("claude-haiku-4-5").context_management());
        assert!(!c("claude-opus-4-5").context_management());
        assert!(c("claude-opus-4-5").effort(true) && !c("claude-opus-4-5").effort(false));
        assert!(c("claude-opus-5-5").effort(false));
        assert!(!c("claude-sonnet-4-5").system_messages() && c("claude-opus-5-5").system_messages());
    }
}
