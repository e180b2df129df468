//! Model ids: which ones exist, how they are addressed and what they can do.

/// Foundation-model ids the double knows.
pub const FOUNDATION_IDS: &[&str] = &[
    "anthropic.claude-opus-4-1-20250805-v1:0",
    "anthropic.claude-opus-4-20250514-v1:0",
    "anthropic.claude-opus-4-5-20251101-v1:0",
    "anthropic.claude-opus-4-6-v1",
    "anthropic.claude-opus-4-7",
    "anthropic.claude-opus-4-8",
    "anthropic.claude-opus-5",
    "anthropic.claude-opus-5-5",
    "anthropic.claude-sonnet-4-20250514-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "anthropic.claude-sonnet-4-6",
    "anthropic.claude-sonnet-5",
    "anthropic.claude-sonnet-5-5",
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "anthropic.claude-haiku-5-5",
    "anthropic.claude-3-7-sonnet-20250219-v1:0",
    "anthropic.claude-3-5-haiku-20241022-v1:0",
];

/// Cross-region inference-profile prefixes.
pub const GEO_PREFIXES: &[&str] = &["us", "eu", "apac", "jp", "au", "us-gov", "global"];

/// The foundation model an application inference profile stands for (the
/// double cannot look the profile up, so it assumes this one unless the
/// profile name embeds a known foundation id).
pub const DEFAULT_APPLICATION_PROFILE_MODEL: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

pub const INVALID_MODEL_MESSAGE: &str = "The provided model identifier is invalid.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Opus,
    Sonnet,
    Haiku,
}

/// `major.minor`, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32) -> Self {
        Version { major, minor }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A resolved model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The foundation id, e.g. `anthropic.claude-sonnet-4-5-20250929-v1:0`.
    pub foundation_id: String,
    /// The Anthropic-style name, e.g. `claude-sonnet-4-5-20250929`.
    pub anthropic_id: String,
    pub family: Family,
    pub version: Version,
}

impl ModelInfo {
    fn from_foundation(id: &str) -> Option<ModelInfo> {
        let (family, version) = parse_family_version(id)?;
        Some(ModelInfo { foundation_id: id.to_string(), anthropic_id: anthropic_id(id), family, version })
    }
}

/// Why a model id was refused; both are 400 ValidationException.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// A bare foundation id used where an inference profile is needed.
    OnDemandNotSupported(String),
    /// Not a known id at all (or the wrong kind of id for the operation).
    Invalid,
}

impl ModelError {
    pub fn message(&self) -> String {
        match self {
            ModelError::OnDemandNotSupported(id) => format!(
                "Invocation of model ID {id} with on-demand throughput isn't supported. Retry \
                 your request with the ID or ARN of an inference profile that contains this model."
            ),
            ModelError::Invalid => INVALID_MODEL_MESSAGE.to_string(),
        }
    }
}

fn is_short_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit())
}

fn family_of(s: &str) -> Option<Family> {
    match s {
        "opus" => Some(Family::Opus),
        "sonnet" => Some(Family::Sonnet),
        "haiku" => Some(Family::Haiku),
        _ => None,
    }
}

/// Parses family and version from any id that contains `claude-…`
/// (foundation id, profile id or Anthropic name).
///
/// Handles `claude-{family}-{major}[-{minor}][-{date}][-v1[:0]]` and the older
/// `claude-{major}-{minor}-{family}-{date}…` shape.
pub fn parse_family_version(id: &str) -> Option<(Family, Version)> {
    let start = id.find("claude-")? + "claude-".len();
    let rest = &id[start..];
    let rest = rest.split(':').next().unwrap_or(rest);
    let tokens: Vec<&str> = rest.split('-').collect();
    if let Some(family) = tokens.first().and_then(|t| family_of(t)) {
        let major: u32 = tokens.get(1).filter(|t| is_short_number(t))?.parse().ok()?;
        let minor: u32 = match tokens.get(2) {
            Some(t) if is_short_number(t) => t.parse().ok()?,
            _ => 0,
        };
        return Some((family, Version::new(major, minor)));
    }
    let major: u32 = tokens.first().filter(|t| is_short_number(t))?.parse().ok()?;
    let (minor, fam_tok) = match tokens.get(1) {
        Some(t) if is_short_number(t) => (t.parse().ok()?, tokens.get(2)?),
        Some(t) => (0, t),
        None => return None,
    };
    Some((family_of(fam_tok)?, Version::new(major, minor)))
}

/// `anthropic.claude-sonnet-4-5-20250929-v1:0` → `claude-sonnet-4-5-20250929`.
pub fn anthropic_id(foundation_id: &str) -> String {
    let s = foundation_id.strip_prefix("anthropic.").unwrap_or(foundation_id);
    let s = s.split(':').next().unwrap_or(s);
    let s = s.strip_suffix("-v1").unwrap_or(s);
    s.to_string()
}

fn is_foundation(id: &str) -> bool {
    FOUNDATION_IDS.contains(&id)
}

/// Resolves the model label of InvokeModel / InvokeModelWithResponseStream.
pub fn resolve_invoke(model_id: &str) -> Result<ModelInfo, ModelError> {
    if is_foundation(model_id) {
        return Err(ModelError::OnDemandNotSupported(model_id.to_string()));
    }
    if let Some(rest) = model_id.strip_prefix("arn:") {
        return resolve_arn(rest);
    }
    resolve_profile_id(model_id)
}

fn resolve_profile_id(id: &str) -> Result<ModelInfo, ModelError> {
    let (geo, _) = id.split_once(".anthropic.").ok_or(ModelError::Invalid)?;
    if !GEO_PREFIXES.contains(&geo) {
        return Err(ModelError::Invalid);
    }
    let foundation = &id[geo.len() + 1..];
    debug_assert!(foundation.starts_with("anthropic."));
    if !is_foundation(foundation) {
        return Err(ModelError::Invalid);
    }
    ModelInfo::from_foundation(foundation).ok_or(ModelError::Invalid)
}

/// `aws:bedrock:{region}:{account}:{resource}` (after the leading `arn:`).
fn resolve_arn(rest: &str) -> Result<ModelInfo, ModelError> {
    let mut parts = rest.splitn(5, ':');
    let partition = parts.next().ok_or(ModelError::Invalid)?;
    let service = parts.next().ok_or(ModelError::Invalid)?;
    let region = parts.next().ok_or(ModelError::Invalid)?;
    let _account = parts.next().ok_or(ModelError::Invalid)?;
    let resource = parts.next().ok_or(ModelError::Invalid)?;
    if !partition.starts_with("aws") || service != "bedrock" || region.is_empty() {
        return Err(ModelError::Invalid);
    }
    if let Some(profile) = resource.strip_prefix("inference-profile/") {
        return resolve_profile_id(profile);
    }
    if let Some(name) = resource.strip_prefix("application-inference-profile/") {
        if name.is_empty() {
            return Err(ModelError::Invalid);
        }
        let embedded = FOUNDATION_IDS.iter().find(|f| name.contains(**f));
        let foundation = embedded.copied().unwrap_or(DEFAULT_APPLICATION_PROFILE_MODEL);
        return ModelInfo::from_foundation(foundation).ok_or(ModelError::Invalid);
    }
    if let Some(foundation) = resource.strip_prefix("foundation-model/") {
        if is_foundation(foundation) {
            return Err(ModelError::OnDemandNotSupported(format!("arn:{rest}")));
        }
    }
    Err(ModelError::Invalid)
}

/// The geo prefix of a cross-region profile, given as an id or as an
/// `inference-profile/` ARN; `None` for anything else (application
/// profiles, foundation ids), which no geo restricts.
pub fn profile_geo(model_id: &str) -> Option<&str> {
    let id = match model_id.split_once(":inference-profile/") {
        Some((arn, id)) if arn.starts_with("arn:") => id,
        Some(_) => return None,
        None if model_id.starts_with("arn:") => return None,
        None => model_id,
    };
    let (geo, _) = id.split_once(".anthropic.")?;
    GEO_PREFIXES.contains(&geo).then_some(geo)
}

/// Resolves the model label of CountTokens: foundation ids only.
pub fn resolve_count_tokens(model_id: &str) -> Result<ModelInfo, ModelError> {
    if is_foundation(model_id) {
        ModelInfo::from_foundation(model_id).ok_or(ModelError::Invalid)
    } else {
        Err(ModelError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_all_id_shapes() {
        let cases = [
            ("anthropic.claude-sonnet-4-5-20250929-v1:0", Family::Sonnet, 4, 5),
            ("anthropic.claude-opus-4-6-v1", Family::Opus, 4, 6),
            ("anthropic.claude-opus-5-5", Family::Opus, 5, 5),
            ("anthropic.claude-opus-5", Family::Opus, 5, 0),
            ("anthropic.claude-opus-4-20250514-v1:0", Family::Opus, 4, 0),
            ("anthropic.claude-3-7-sonnet-20250219-v1:0", Family::Sonnet, 3, 7),
            ("anthropic.claude-haiku-4-5-20251001-v1:0", Family::Haiku, 4, 5),
            ("anthropic.claude-3-5-haiku-20241022-v1:0", Family::Haiku, 3, 5),
            ("us.anthropic.claude-opus-4-7", Family::Opus, 4, 7),
        ];
        for (id, fam, major, minor) in cases {
            assert_eq!(parse_family_version(id), Some((fam, Version::new(major, minor))), "{id}");
        }
        for id in FOUNDATION_IDS {
            assert!(parse_family_version(id).is_some(), "{id}");
        }
    }

    #[test]
    fn anthropic_ids_are_derived() {
        assert_eq!(anthropic_id("anthropic.claude-sonnet-4-5-20250929-v1:0"), "claude-sonnet-4-5-20250929");
        assert_eq!(anthropic_id("anthropic.claude-opus-4-6-v1"), "claude-opus-4-6");
        assert_eq!(anthropic_id("anthropic.claude-opus-5-5"), "claude-opus-5-5");
    }

    #[test]
    fn bare_foundation_id_on_invoke_needs_a_profile() {
        let err = resolve_invoke("anthropic.claude-sonnet-4-5-20250929-v1:0").unwrap_err();
        assert_eq!(
            err.message(),
            "Invocation of model ID anthropic.claude-sonnet-4-5-20250929-v1:0 with on-demand \
             throughput isn't supported. Retry your request with the ID or ARN of an inference \
             profile that contains this model."
        );
    }

    #[test]
    fn geo_profiles_resolve() {
        for geo in GEO_PREFIXES {
            let m = resolve_invoke(&format!("{geo}.anthropic.claude-haiku-4-5-20251001-v1:0")).unwrap();
            assert_eq!(m.family, Family::Haiku);
            assert_eq!(m.anthropic_id, "claude-haiku-4-5-20251001");
        }
        assert_eq!(resolve_invoke("xx.anthropic.claude-haiku-4-5-20251001-v1:0"), Err(ModelError::Invalid));
        assert_eq!(resolve_invoke("us.anthropic.claude-sonnet-9"), Err(ModelError::Invalid));
    }

    #[test]
    fn arns_resolve() {
        let m =
            resolve_invoke("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-opus-4-6-v1")
                .unwrap();
        assert_eq!(m.anthropic_id, "claude-opus-4-6");
        let m = resolve_invoke("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123").unwrap();
        assert_eq!(m.foundation_id, DEFAULT_APPLICATION_PROFILE_MODEL);
        assert_eq!(
            resolve_invoke("arn:aws:bedrock:us-east-1:1:inference-profile/anthropic.claude-opus-5"),
            Err(ModelError::Invalid)
        );
    }

    #[test]
    fn profile_geo_reads_ids_and_profile_arns() {
        assert_eq!(profile_geo("eu.anthropic.claude-opus-4-6-v1"), Some("eu"));
        assert_eq!(profile_geo("us-gov.anthropic.claude-opus-4-6-v1"), Some("us-gov"));
        assert_eq!(
            profile_geo("arn:aws:bedrock:us-east-1:1:inference-profile/global.anthropic.claude-opus-5"),
            Some("global")
        );
        assert_eq!(profile_geo("arn:aws:bedrock:us-east-1:1:application-inference-profile/abc"), None);
        assert_eq!(profile_geo("anthropic.claude-opus-5"), None);
    }

    #[test]
    fn count_tokens_accepts_foundation_ids_only() {
        assert!(resolve_count_tokens("anthropic.claude-sonnet-4-5-20250929-v1:0").is_ok());
        assert_eq!(resolve_count_tokens("us.anthropic.claude-sonnet-4-5-20250929-v1:0"), Err(ModelError::Invalid));
    }
}
