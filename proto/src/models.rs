//! The model catalogue both planes share: the Claude models this build
//! knows (Anthropic ids, aliases, the Bedrock foundation id each runs on) and
//! how a name becomes a Bedrock model id without an explicit mapping
//! (docs/protocol.md §3). The data plane resolves requests with it; the
//! control plane shows admins the same resolution in `ccag models list`.

pub struct KnownModel {
    /// The id listed by /v1/models.
    pub id: &'static str,
    /// Other names clients use for it (the dated form, the short alias).
    pub aliases: &'static [&'static str],
    /// Bedrock foundation-model id, without a geo prefix.
    pub foundation: &'static str,
    pub display_name: &'static str,
    pub created_at: &'static str,
}

/// Newest first, as /v1/models lists them. Undated ids carry the date the
/// model was first offered on Bedrock as far as our reference records it;
/// the list order is what clients rely on.
pub const MODELS: &[KnownModel] = &[
    m("claude-opus-5-5", &["opus"], "anthropic.claude-opus-5-5", "Claude Opus 5.5", "2026-09-01T00:00:00Z"),
    m("claude-sonnet-5-5", &["sonnet"], "anthropic.claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-01T00:00:00Z"),
    m("claude-haiku-5-5", &["haiku"], "anthropic.claude-haiku-5-5", "Claude Haiku 5.5", "2026-09-01T00:00:00Z"),
    m("claude-opus-5", &["claude-opus-5-0"], "anthropic.claude-opus-5", "Claude Opus 5", "2026-06-01T00:00:00Z"),
    m(
        "claude-sonnet-5",
        &["claude-sonnet-5-0"],
        "anthropic.claude-sonnet-5",
        "Claude Sonnet 5",
        "2026-06-01T00:00:00Z",
    ),
    m("claude-opus-4-8", &[], "anthropic.claude-opus-4-8", "Claude Opus 4.8", "2026-05-01T00:00:00Z"),
    m("claude-opus-4-7", &[], "anthropic.claude-opus-4-7", "Claude Opus 4.7", "2026-04-01T00:00:00Z"),
    m("claude-sonnet-4-6", &[], "anthropic.claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    m("claude-opus-4-6", &[], "anthropic.claude-opus-4-6-v1", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    m(
        "claude-opus-4-5-20251101",
        &["claude-opus-4-5"],
        "anthropic.claude-opus-4-5-20251101-v1:0",
        "Claude Opus 4.5",
        "2025-11-01T00:00:00Z",
    ),
    m(
        "claude-haiku-4-5-20251001",
        &["claude-haiku-4-5"],
        "anthropic.claude-haiku-4-5-20251001-v1:0",
        "Claude Haiku 4.5",
        "2025-10-01T00:00:00Z",
    ),
    m(
        "claude-sonnet-4-5-20250929",
        &["claude-sonnet-4-5"],
        "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "Claude Sonnet 4.5",
        "2025-09-29T00:00:00Z",
    ),
    m(
        "claude-opus-4-1-20250805",
        &["claude-opus-4-1"],
        "anthropic.claude-opus-4-1-20250805-v1:0",
        "Claude Opus 4.1",
        "2025-08-05T00:00:00Z",
    ),
    m(
        "claude-opus-4-20250514",
        &["claude-opus-4-0", "claude-opus-4"],
        "anthropic.claude-opus-4-20250514-v1:0",
        "Claude Opus 4",
        "2025-05-14T00:00:00Z",
    ),
    m(
        "claude-sonnet-4-20250514",
        &["claude-sonnet-4-0", "claude-sonnet-4"],
        "anthropic.claude-sonnet-4-20250514-v1:0",
        "Claude Sonnet 4",
        "2025-05-14T00:00:00Z",
    ),
    m(
        "claude-3-7-sonnet-20250219",
        &["claude-3-7-sonnet-latest"],
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "Claude Sonnet 3.7",
        "2025-02-19T00:00:00Z",
    ),
    m(
        "claude-3-5-haiku-20241022",
        &["claude-3-5-haiku-latest"],
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        "Claude Haiku 3.5",
        "2024-10-22T00:00:00Z",
    ),
];

const fn m(
    id: &'static str,
    aliases: &'static [&'static str],
    foundation: &'static str,
    display_name: &'static str,
    created_at: &'static str,
) -> KnownModel {
    KnownModel { id, aliases, foundation, display_name, created_at }
}

pub fn find(name: &str) -> Option<&'static KnownModel> {
    MODELS.iter().find(|m| m.id == name || m.aliases.contains(&name))
}

/// The Bedrock model id a name runs on when no explicit mapping names it:
/// Bedrock ids and ARNs as given, a catalogue model on the geo's inference
/// profile, and a Claude id newer than this build named as Bedrock names
/// them. An empty geo names the in-region foundation model. `None`: no
/// Claude model goes by that name.
pub fn derived_bedrock_id(name: &str, geo: &str) -> Option<String> {
    let dot = if geo.is_empty() { "" } else { "." };
    if name.starts_with("arn:") || name.contains("anthropic.") {
        Some(name.to_owned())
    } else if let Some(known) = find(name) {
        Some(format!("{geo}{dot}{}", known.foundation))
    } else if name.starts_with("claude-") && has_version(name) {
        // Bedrock names a model after its Anthropic id, with the `-v1:0`
        // suffix that dated ids carry.
        let dated = name.rsplit('-').next().is_some_and(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()));
        Some(format!("{geo}{dot}anthropic.{name}{}", if dated { "-v1:0" } else { "" }))
    } else {
        None
    }
}

/// Whether the id names a family and a major version, in either order
/// (`claude-opus-6…` or the legacy `claude-3-7-sonnet…`): what the data
/// plane's capability parser reads.
fn has_version(name: &str) -> bool {
    let mut toks = name.trim_start_matches("claude-").split(['-', ':', '/', '.']).peekable();
    let small = |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit());
    let family = |t: &str| matches!(t, "opus" | "sonnet" | "haiku");
    match toks.next() {
        Some(first) if small(first) => {
            toks.next_if(|t| small(t));
            toks.next().is_some_and(family)
        }
        Some(first) if family(first) => toks.next().is_some_and(small),
        _ => false,
    }
}

/// The inference-profile geo for a region (docs/protocol.md §3).
pub fn geo_for_region(region: &str) -> &'static str {
    match region {
        r if r.starts_with("us-gov-") => "us-gov",
        r if r.starts_with("us-") || r.starts_with("ca-") => "us",
        r if r.starts_with("eu-") => "eu",
        "ap-northeast-1" | "ap-northeast-3" => "jp",
        "ap-southeast-2" | "ap-southeast-4" => "au",
        r if r.starts_with("ap-") || r.starts_with("me-") => "apac",
        _ => "global",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_find_their_model() {
        assert_eq!(find("claude-sonnet-4-5").map(|m| m.id), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(find("opus").map(|m| m.id), Some("claude-opus-5-5"));
        assert!(find("gpt-4o").is_none());
    }

    #[test]
    fn an_empty_geo_names_the_foundation_model() {
        assert_eq!(derived_bedrock_id("claude-opus-4-6", "").unwrap(), "anthropic.claude-opus-4-6-v1");
    }

    #[test]
    fn catalogue_models_run_on_the_geo_profile() {
        assert_eq!(derived_bedrock_id("claude-opus-4-6", "eu").unwrap(), "eu.anthropic.claude-opus-4-6-v1");
    }

    #[test]
    fn newer_claude_ids_are_named_as_bedrock_names_them() {
        assert_eq!(derived_bedrock_id("claude-sonnet-6-1", "us").unwrap(), "us.anthropic.claude-sonnet-6-1");
        assert_eq!(
            derived_bedrock_id("claude-opus-6-20270101", "us").unwrap(),
            "us.anthropic.claude-opus-6-20270101-v1:0"
        );
        assert_eq!(
            derived_bedrock_id("claude-4-2-haiku-20270101", "us").unwrap(),
            "us.anthropic.claude-4-2-haiku-20270101-v1:0"
        );
        assert_eq!(derived_bedrock_id("claude-unknown", "us"), None);
        assert_eq!(derived_bedrock_id("claude-opus", "us"), None);
    }

    #[test]
    fn regions_map_to_geos() {
        assert_eq!(geo_for_region("us-east-1"), "us");
        assert_eq!(geo_for_region("ca-central-1"), "us");
        assert_eq!(geo_for_region("us-gov-west-1"), "us-gov");
        assert_eq!(geo_for_region("eu-west-3"), "eu");
        assert_eq!(geo_for_region("ap-northeast-1"), "jp");
        assert_eq!(geo_for_region("ap-southeast-2"), "au");
        assert_eq!(geo_for_region("ap-south-1"), "apac");
        assert_eq!(geo_for_region("me-central-1"), "apac");
        assert_eq!(geo_for_region("af-south-1"), "global");
    }
}
