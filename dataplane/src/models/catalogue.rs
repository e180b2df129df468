//! The built-in model catalogue: Anthropic ids and aliases, and the Bedrock
//! foundation-model id each runs on (docs/protocol.md §3).

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
