//! Command-line arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The endpoint used when neither `--endpoint`, `CCAG_ENDPOINT` nor a saved
/// session names one.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8091";

const AFTER_HELP: &str = "\
Output:
  Tables by default. With --json, single objects print as one JSON object
  (snake_case field names, enum values as lowercase words such as admin,
  member, active, disabled, revoked) and list commands print one JSON array
  holding the items of the fetched page(s). Without --all a list fetches one
  page; when more exist, a note naming the next --page-token goes to stderr.

Authentication:
  --token or CCAG_TOKEN, otherwise the session saved by `ccag login` in
  $CCAG_CONFIG_DIR/session.json (default $XDG_CONFIG_HOME/ccag or
  ~/.config/ccag). A saved session is only sent to the endpoint it was made for.

Exit codes:
  0 success, 1 other error, 2 bad arguments, 3 control plane unreachable,
  4 not logged in or not authenticated, 5 permission denied, 6 not found,
  7 already exists, 8 invalid argument. Failures print one line
  `ccag: <message>` on stderr.";

/// ccag: the command-line client of the CCAG control plane.
#[derive(Debug, Parser)]
#[command(name = "ccag", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Control-plane gRPC URL [default: the saved session's, else http://127.0.0.1:8091]
    #[arg(long, env = "CCAG_ENDPOINT", global = true, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Bearer token (session or API token) [default: the saved session's]
    #[arg(long, env = "CCAG_TOKEN", global = true, hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Machine-readable JSON output
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in (password, or --sso through the identity provider) and save the session
    Login(LoginArgs),
    /// End the saved session, on the server too, and forget it
    Logout,
    /// Show who the current token belongs to
    Whoami,
    /// Show the control plane's status
    Status,
    /// Manage users
    #[command(subcommand)]
    Users(UsersCmd),
    /// Manage teams
    #[command(subcommand)]
    Teams(TeamsCmd),
    /// Manage API keys for the gateway
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Manage the model catalogue
    #[command(subcommand)]
    Models(ModelsCmd),
    /// Manage Bedrock endpoints
    #[command(subcommand)]
    Endpoints(EndpointsCmd),
    /// Manage settings
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Read the audit log
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Manage API tokens for the admin API (automation)
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Show spend and tokens used, grouped by user, team, key or model
    Usage(UsageArgs),
    /// Export usage records as CSV, newest first (what the portal's Export CSV downloads)
    Export(ExportArgs),
    /// Manage model prices (US dollars per million tokens)
    #[command(subcommand)]
    Prices(PricesCmd),
    /// Manage spend budgets per user, team or the organisation
    #[command(subcommand)]
    Budgets(BudgetsCmd),
    /// Send gateway events to webhooks, SNS topics and EventBridge buses
    #[command(subcommand)]
    Notifications(NotificationsCmd),
    /// Manage OpenID Connect identity providers for single sign-on
    #[command(subcommand)]
    Idps(IdpsCmd),
    /// List and end sign-in sessions
    #[command(subcommand)]
    Sessions(SessionsCmd),
    /// Claude Code managed settings for sessions signed in through the gateway
    #[command(subcommand, name = "managed-settings")]
    ManagedSettings(ManagedSettingsCmd),
    /// Web search on Bedrock: the mode and the search providers
    #[command(subcommand)]
    Search(SearchCmd),
    /// SCIM 2.0 provisioning from an identity provider (Entra ID, Okta …)
    #[command(subcommand)]
    Scim(ScimCmd),
    /// Print a shell completion script, e.g. `ccag completions bash > /etc/bash_completion.d/ccag`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `ccag man > /usr/local/share/man/man1/ccag.1`
    Man,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username (the user's email); prompted for when missing
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    /// Read the password from stdin instead of prompting
    #[arg(long)]
    pub password_stdin: bool,
    /// Sign in through the identity provider in a browser (device code)
    #[arg(long, conflicts_with_all = ["username", "password_stdin"])]
    pub sso: bool,
}

/// Paging options shared by every list command.
#[derive(Debug, Args, Default, Clone)]
pub struct PageArgs {
    /// Items per page (server default 50, at most 500)
    #[arg(long, value_name = "N")]
    pub page_size: Option<u32>,
    /// Start at this page (the next_page_token of a previous list)
    #[arg(long, value_name = "TOKEN")]
    pub page_token: Option<String>,
    /// Follow next_page_token until the last page
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Member,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UserStatusArg {
    Active,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyStatusArg {
    Active,
    Disabled,
    Revoked,
}

/// The statuses UpdateKey accepts; revocation is `keys revoke`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyUpdateStatusArg {
    Active,
    Disabled,
}

// ------------------------------------------------------------------ users

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Create a user
    Create {
        /// Email, also the username for `ccag login`
        #[arg(long)]
        email: String,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = RoleArg::Member)]
        role: RoleArg,
        /// OIDC subject, for users who sign in through SSO
        #[arg(long)]
        subject: Option<String>,
        /// Read a password from stdin (enables `ccag login` for the user)
        #[arg(long)]
        password_stdin: bool,
        /// Requests per minute for all the user's keys together (0: the team default, else unlimited)
        #[arg(long, value_name = "N")]
        rpm: Option<u32>,
        /// Tokens per minute for all the user's keys together (0: the team default, else unlimited)
        #[arg(long, value_name = "N")]
        tpm: Option<u32>,
    },
    /// List users
    List {
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        #[arg(long, value_enum)]
        status: Option<UserStatusArg>,
        /// Substring of email or display name
        #[arg(long)]
        query: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a user
    Get {
        /// User id or email
        #[arg(value_name = "ID_OR_EMAIL")]
        id: String,
    },
    /// Change a user; options not given are left as they are
    Update {
        /// User id or email
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        email: Option<String>,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        #[arg(long, value_enum)]
        status: Option<UserStatusArg>,
        /// Read a new password from stdin
        #[arg(long)]
        password_stdin: bool,
        /// OIDC subject
        #[arg(long)]
        subject: Option<String>,
        /// Requests per minute for all the user's keys together
        #[arg(long, value_name = "N")]
        rpm: Option<u32>,
        /// Tokens per minute for all the user's keys together
        #[arg(long, value_name = "N")]
        tpm: Option<u32>,
    },
    /// Delete a user
    Delete {
        /// User id or email
        #[arg(value_name = "ID")]
        id: String,
    },
}

// ------------------------------------------------------------------ teams

#[derive(Debug, Subcommand)]
pub enum TeamsCmd {
    /// Create a team
    Create {
        /// Unique team name
        #[arg(long)]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Default requests per minute for each member (0: unlimited)
        #[arg(long, value_name = "N")]
        member_rpm: Option<u32>,
        /// Default tokens per minute for each member (0: unlimited)
        #[arg(long, value_name = "N")]
        member_tpm: Option<u32>,
        /// Requests per minute for the whole team (0: unlimited)
        #[arg(long, value_name = "N")]
        rpm: Option<u32>,
        /// Tokens per minute for the whole team (0: unlimited)
        #[arg(long, value_name = "N")]
        tpm: Option<u32>,
    },
    /// List teams
    List {
        /// Substring of the team name
        #[arg(long)]
        query: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a team
    Get {
        /// Team id or name
        #[arg(value_name = "ID_OR_NAME")]
        id: String,
    },
    /// Change a team; options not given are left as they are
    Update {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, value_name = "N")]
        member_rpm: Option<u32>,
        #[arg(long, value_name = "N")]
        member_tpm: Option<u32>,
        /// Requests per minute for the whole team (0: unlimited)
        #[arg(long, value_name = "N")]
        rpm: Option<u32>,
        /// Tokens per minute for the whole team (0: unlimited)
        #[arg(long, value_name = "N")]
        tpm: Option<u32>,
        /// How its requests spread over its endpoints (default: the routing.strategy setting)
        #[arg(long, value_enum)]
        routing: Option<RoutingArg>,
        /// The endpoints its requests may use, in its order: ids or names, comma-separated
        /// ("": every enabled endpoint)
        #[arg(long, value_name = "A,B,…")]
        endpoints: Option<String>,
    },
    /// Delete a team
    Delete {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Add a user to a team
    AddMember {
        /// Team id or name
        team: String,
        /// User id or email
        user: String,
    },
    /// Remove a user from a team
    RemoveMember {
        /// Team id or name
        team: String,
        /// User id or email
        user: String,
    },
}

// ------------------------------------------------------------------ keys

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Make a one-time setup command: run on a developer's machine, it makes
    /// a new key for the user and connects Claude Code with it (10 minutes, once)
    SetupToken {
        /// Owner (id or email) [default: you]
        #[arg(long)]
        user: Option<String>,
        /// The key's team (id or name)
        #[arg(long)]
        team: Option<String>,
        /// The key's name [default: setup-DATE]
        #[arg(long)]
        name: Option<String>,
    },
    /// Create a key; the plaintext key is shown once
    Create {
        /// A name to recognise the key by
        #[arg(long)]
        name: String,
        /// Owner (user id or email) [default: you]
        #[arg(long)]
        user: Option<String>,
        /// Team (id or name)
        #[arg(long)]
        team: Option<String>,
        /// Requests per minute (0: no per-key limit)
        #[arg(long, value_name = "N")]
        rpm: Option<u32>,
        /// Tokens per minute (0: no per-key limit)
        #[arg(long, value_name = "N")]
        tpm: Option<u32>,
        /// Days until the key expires (0: never)
        #[arg(long, value_name = "N")]
        ttl_days: Option<u32>,
    },
    /// List keys
    List {
        /// Owner (user id or email)
        #[arg(long)]
        user: Option<String>,
        /// Team (name or id)
        #[arg(long)]
        team: Option<String>,
        #[arg(long, value_enum)]
        status: Option<KeyStatusArg>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a key (never the plaintext key)
    Get {
        /// The key's id, or its name (refused, with the candidates, when several keys share it)
        #[arg(value_name = "KEY")]
        id: String,
    },
    /// Change a key; options not given are left as they are
    Update {
        /// The key's id, or its name (refused, with the candidates, when several keys share it)
        #[arg(value_name = "KEY")]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        status: Option<KeyUpdateStatusArg>,
        #[arg(long, value_name = "N")]
        rpm: Option<u32>,
        #[arg(long, value_name = "N")]
        tpm: Option<u32>,
        /// Team, by name or id (empty: no team)
        #[arg(long)]
        team: Option<String>,
    },
    /// Revoke a key, immediately and for good
    Revoke {
        /// The key's id, or its name (refused, with the candidates, when several keys share it)
        #[arg(value_name = "KEY")]
        id: String,
    },
    /// Delete a key
    Delete {
        /// The key's id, or its name (refused, with the candidates, when several keys share it)
        #[arg(value_name = "KEY")]
        id: String,
    },
}

// ------------------------------------------------------------------ models

#[derive(Debug, Subcommand)]
pub enum ModelsCmd {
    /// Add an explicit mapping: a name clients send and the Bedrock id it runs on
    Create {
        /// The name clients send, e.g. claude-sonnet-4-5
        #[arg(long)]
        anthropic_id: String,
        /// Bedrock inference profile, foundation model id or ARN
        #[arg(long)]
        bedrock_id: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// List the model at GET /v1/models
        #[arg(long)]
        listed: bool,
    },
    /// List every model the data planes answer for: the built-in catalogue
    /// and the explicit mappings, each with the Bedrock id it runs on in the
    /// configured region and its price per million tokens
    List {
        /// List only the explicit mappings (the rows `create` adds)
        #[arg(long)]
        mappings: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a model
    Get {
        /// Model id or anthropic id
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change a model; options not given are left as they are
    Update {
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        bedrock_id: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// List the model at GET /v1/models
        #[arg(long, value_name = "true|false")]
        listed: Option<bool>,
    },
    /// Delete a model
    Delete {
        #[arg(value_name = "ID")]
        id: String,
    },
}

// ------------------------------------------------------------------ endpoints

mod endpoints;
pub use endpoints::{EndpointOptions, EndpointsCmd, RoutingArg};

// ------------------------------------------------------------------ settings

#[derive(Debug, Subcommand)]
pub enum SettingsCmd {
    /// List settings
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a setting
    Get { key: String },
    /// Set a setting
    Set {
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Delete a setting
    Delete { key: String },
}

// ------------------------------------------------------------------ audit

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// List audit entries
    List {
        /// Whoever made the change: an email, a user id, `system` or `idp:NAME`
        #[arg(long)]
        actor: Option<String>,
        /// e.g. key, user
        #[arg(long)]
        resource_type: Option<String>,
        #[arg(long)]
        resource_id: Option<String>,
        /// e.g. key.create
        #[arg(long)]
        action: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Subcommand)]
pub enum TokensCmd {
    /// Create an API token for the admin API; the token is shown once
    Create {
        /// A name to recognise the token by
        #[arg(long)]
        name: String,
        /// Owner (user id or email) [default: you]
        #[arg(long)]
        user: Option<String>,
        /// Days until the token expires (0: never)
        #[arg(long, value_name = "N")]
        ttl_days: Option<u32>,
    },
    /// List API tokens
    List {
        /// Owner (user id or email)
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Revoke an API token
    Revoke {
        #[arg(value_name = "ID")]
        id: String,
    },
}

// ------------------------------------------------------------------ usage

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageGroupArg {
    User,
    Team,
    Key,
    Model,
    /// The Bedrock endpoint that answered
    Endpoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BucketArg {
    Hour,
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UsageFormat {
    Table,
    Json,
    Csv,
}

/// The period and whose usage, for `ccag usage` and `ccag export`.
#[derive(Debug, Args)]
pub struct UsageFilterArgs {
    /// Start: RFC 3339, or an age such as 90m, 24h, 7d, 2w [default: 30 days ago]
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// End: RFC 3339, or an age such as 1h [default: now]
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this user (id or email)
    #[arg(long)]
    pub user: Option<String>,
    /// Only this team (name or id)
    #[arg(long)]
    pub team: Option<String>,
    /// Only this key (id or name)
    #[arg(long)]
    pub key: Option<String>,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Group rows by this
    #[arg(long, value_enum, default_value_t = UsageGroupArg::User)]
    pub group_by: UsageGroupArg,
    /// A time series: one row per group and UTC hour (up to 31 days) or day (up to 366)
    #[arg(long, value_enum)]
    pub by: Option<BucketArg>,
    /// Output format (--json is the same as --format json)
    #[arg(long, value_enum, default_value_t = UsageFormat::Table)]
    pub format: UsageFormat,
    #[command(flatten)]
    pub filter: UsageFilterArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: UsageFilterArgs,
    /// Only this model, as clients name it
    #[arg(long)]
    pub model: Option<String>,
    /// Only requests answered through this Bedrock endpoint (id or name; `-` for the data planes' implicit one)
    #[arg(long, value_name = "ENDPOINT")]
    pub bedrock_endpoint: Option<String>,
    /// At most this many records (the server's maximum is 100000)
    #[arg(long, default_value_t = 100_000)]
    pub limit: u32,
}

// ------------------------------------------------------------------ budgets

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct BudgetScopeArgs {
    /// A user's own budget (email or id)
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// A team's pool (name or id), or with --member-default its per-member default
    #[arg(long, value_name = "NAME")]
    pub team: Option<String>,
    /// The organisation's default for every user
    #[arg(long)]
    pub org: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PeriodArg {
    Daily,
    Weekly,
    Monthly,
}

impl PeriodArg {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodArg::Daily => "daily",
            PeriodArg::Weekly => "weekly",
            PeriodArg::Monthly => "monthly",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BudgetsCmd {
    /// Create or replace the cap of a user, team or the organisation for a period
    Set {
        #[command(flatten)]
        scope: BudgetScopeArgs,
        /// Calendar period in UTC (weeks start on Monday)
        #[arg(long, value_enum)]
        period: PeriodArg,
        /// The cap in US dollars (0 blocks everything)
        #[arg(long, value_name = "USD")]
        limit_usd: f64,
        /// standard (80% notify, 100% block), soft (80/100% notify, 150% block),
        /// shaped (80% notify, 100% 5 rpm, 150% block), or rules such as
        /// 80:notify,100:shape:5,150:block
        #[arg(long, default_value = "standard")]
        policy: String,
        /// With --team: the default budget of each member, not the team's pool
        #[arg(long)]
        member_default: bool,
    },
    /// List every budget
    List,
    /// Delete a budget
    Delete {
        #[command(flatten)]
        scope: BudgetScopeArgs,
        #[arg(long, value_enum)]
        period: PeriodArg,
        #[arg(long)]
        member_default: bool,
    },
    /// Spend, limit, percent, where the limit comes from and when it resets
    Status {
        /// A user (email or id); default: yourself
        #[arg(long, value_name = "EMAIL", conflicts_with = "team")]
        user: Option<String>,
        /// A team (name or id)
        #[arg(long, value_name = "NAME")]
        team: Option<String>,
    },
}

// ------------------------------------------------------------------ notifications

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct DestinationTarget {
    /// An HTTPS URL, signed as Standard Webhooks says (plain HTTP to loopback only)
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// An SNS topic ARN
    #[arg(long, value_name = "ARN")]
    pub sns_topic: Option<String>,
    /// An EventBridge bus, by name or ARN
    #[arg(long, value_name = "BUS")]
    pub eventbridge_bus: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCmd {
    /// Add a destination; a webhook's signing secret is printed once
    Create {
        #[command(flatten)]
        target: DestinationTarget,
        /// A name for it (default: its id)
        #[arg(long)]
        name: Option<String>,
        /// Event types or categories, comma-separated (default: every event),
        /// e.g. budget,key.revoked
        #[arg(long, value_name = "LIST")]
        events: Option<String>,
        /// An IAM role to assume for SNS or EventBridge
        #[arg(long, value_name = "ARN")]
        role_arn: Option<String>,
        /// Create it disabled
        #[arg(long)]
        disabled: bool,
    },
    /// List destinations with their health
    List,
    /// Change a destination
    Update {
        /// Id or name
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// A new URL, topic ARN or bus (of the same kind)
        #[arg(long)]
        target: Option<String>,
        /// Event types or categories, comma-separated; "all" for every event
        #[arg(long, value_name = "LIST")]
        events: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// An IAM role to assume; "" for the control plane's own credentials
        #[arg(long, value_name = "ARN")]
        role_arn: Option<String>,
    },
    /// Delete a destination and its delivery log
    Delete {
        /// Id or name
        id: String,
    },
    /// Give a webhook a new signing secret; the old one also signs for the overlap
    RotateSecret {
        /// Id or name
        id: String,
        /// How long the old secret keeps signing, in hours
        #[arg(long, value_name = "HOURS", default_value_t = 24)]
        overlap_hours: u64,
    },
    /// Send a synthetic event now and show the destination's answer
    Test {
        /// Id or name
        id: String,
    },
    /// The delivery log, newest first
    Deliveries {
        /// Only this destination (id or name)
        #[arg(long)]
        destination: Option<String>,
        /// Only deliveries that failed (dead, or pending a retry)
        #[arg(long)]
        failed: bool,
        /// At most this many (up to 1000)
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

// ------------------------------------------------------------------ prices

#[derive(Debug, Subcommand)]
pub enum PricesCmd {
    /// List prices
    List,
    /// Set a model's price; the longest matching prefix of a model name wins
    Set {
        /// Model name or prefix, e.g. claude-sonnet-4
        model: String,
        /// Dollars per million input tokens
        #[arg(long, value_name = "USD")]
        input: f64,
        /// Dollars per million output tokens
        #[arg(long, value_name = "USD")]
        output: f64,
        /// Dollars per million cache-write tokens with the 5-minute TTL
        #[arg(long, value_name = "USD", default_value_t = 0.0)]
        cache_write: f64,
        /// Dollars per million cache-write tokens with the 1-hour TTL (default: twice --input)
        #[arg(long, value_name = "USD", default_value_t = 0.0)]
        cache_write_1h: f64,
        /// Dollars per million cache-read input tokens
        #[arg(long, value_name = "USD", default_value_t = 0.0)]
        cache_read: f64,
        /// Above this many input tokens, the whole request is charged --lc-* rates
        #[arg(long, value_name = "TOKENS", default_value_t = 0)]
        long_context_threshold: u64,
        /// Long-context rates: input, output, cache write (5 min), cache write (1 h), cache read
        #[arg(long, value_name = "USD,USD,USD,USD,USD", value_delimiter = ',', num_args = 5)]
        long_context: Option<Vec<f64>>,
        /// Premium of a regional inference profile over the global one, in percent
        #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
        regional_premium: f64,
    },
    /// Delete a model's price
    Delete { model: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ccag").chain(args.iter().copied()))
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["users", "list", "--json", "--endpoint", "http://x:1"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.endpoint.as_deref(), Some("http://x:1"));
        let cli = parse(&["--json", "--token", "t", "status"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.token.as_deref(), Some("t"));
    }

    #[test]
    fn users_create_defaults_to_member() {
        let cli = parse(&["users", "create", "--email", "a@b.c"]).unwrap();
        match cli.command {
            Command::Users(UsersCmd::Create { email, role, password_stdin, .. }) => {
                assert_eq!(email, "a@b.c");
                assert_eq!(role, RoleArg::Member);
                assert!(!password_stdin);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn enums_are_lowercase_words() {
        assert!(parse(&["users", "create", "--email", "a", "--role", "admin"]).is_ok());
        assert!(parse(&["users", "create", "--email", "a", "--role", "ROLE_ADMIN"]).is_err());
        assert!(parse(&["keys", "list", "--status", "revoked"]).is_ok());
        // Revocation is its own verb.
        assert!(parse(&["keys", "update", "k", "--status", "revoked"]).is_err());
        assert!(parse(&["users", "update", "u", "--status", "disabled"]).is_ok());
    }

    #[test]
    fn list_paging_flags() {
        let cli = parse(&["users", "list", "--page-size", "2", "--page-token", "abc", "--all"]).unwrap();
        match cli.command {
            Command::Users(UsersCmd::List { page, .. }) => {
                assert_eq!(page.page_size, Some(2));
                assert_eq!(page.page_token.as_deref(), Some("abc"));
                assert!(page.all);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["users", "list", "--page-size", "-1"]).is_err());
        assert!(parse(&["users", "list", "--page-size", "lots"]).is_err());
    }

    #[test]
    fn negative_priority_and_hyphen_values() {
        let cli = parse(&["endpoints", "create", "--name", "e", "--region", "r", "--priority", "-5"]).unwrap();
        match cli.command {
            Command::Endpoints(EndpointsCmd::Create { options, disabled, .. }) => {
                assert_eq!(options.priority, Some(-5));
                assert!(!disabled);
            }
            other => panic!("unexpected {other:?}"),
        }
        let cli = parse(&["settings", "set", "k", "-v"]).unwrap();
        match cli.command {
            Command::Settings(SettingsCmd::Set { key, value }) => {
                assert_eq!((key.as_str(), value.as_str()), ("k", "-v"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bool_update_flags_take_values() {
        let cli = parse(&["models", "update", "m", "--listed", "false"]).unwrap();
        match cli.command {
            Command::Models(ModelsCmd::Update { listed, .. }) => assert_eq!(listed, Some(false)),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["models", "update", "m", "--listed", "maybe"]).is_err());
    }

    #[test]
    fn missing_required_arguments_are_usage_errors() {
        let err = parse(&["keys", "create"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = parse(&["teams", "add-member", "t"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let err = parse(&["bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}

/// The settings `ccag idps create` and `update` share.
#[derive(Debug, Args, Default)]
pub struct IdpSettings {
    /// The issuer URL, exactly as the provider's discovery document states it
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// The OAuth client id registered at the provider
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Read the client secret from stdin (a confidential client)
    #[arg(long)]
    pub client_secret_stdin: bool,
    /// Scopes, comma- or space-separated [default: openid,email,profile]
    #[arg(long, value_name = "LIST")]
    pub scopes: Option<String>,
    /// The claim holding the email, or a JSON Pointer [default: email]
    #[arg(long, value_name = "CLAIM")]
    pub email_claim: Option<String>,
    /// The claim listing groups, or a JSON Pointer such as /realm_access/roles [default: groups]
    #[arg(long, value_name = "CLAIM")]
    pub groups_claim: Option<String>,
    /// Only these email domains may sign in, comma-separated ("" for any)
    #[arg(long, value_name = "LIST")]
    pub allowed_domains: Option<String>,
    /// Members of these groups are admins, comma-separated ("" for none)
    #[arg(long, value_name = "LIST")]
    pub admin_groups: Option<String>,
    /// A group whose members join a team, as GROUP=TEAM (team id or name); repeatable
    #[arg(long = "team-map", value_name = "GROUP=TEAM")]
    pub team_map: Vec<String>,
    /// Remove every group-to-team mapping (update only)
    #[arg(long, conflicts_with = "team_map")]
    pub clear_team_map: bool,
    /// The role of users created on first sign-in
    #[arg(long, value_enum)]
    pub default_role: Option<RoleArg>,
    /// Create unknown users on first sign-in (the default)
    #[arg(long, conflicts_with = "no_auto_provision")]
    pub auto_provision: bool,
    /// Let in only users who already exist
    #[arg(long)]
    pub no_auto_provision: bool,
    /// Save without fetching the discovery document (the provider is not reachable yet)
    #[arg(long)]
    pub skip_discovery: bool,
}

#[derive(Debug, Subcommand)]
pub enum IdpsCmd {
    /// Add an identity provider; prints the redirect URI to register at it
    Create {
        /// A short name, used in sign-in URLs (?idp=NAME)
        #[arg(long)]
        name: String,
        #[command(flatten)]
        settings: IdpSettings,
        /// Create it disabled
        #[arg(long)]
        disabled: bool,
    },
    /// List identity providers
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show one identity provider
    Show {
        /// Id or name
        idp: String,
    },
    /// Change an identity provider
    Update {
        /// Id or name
        idp: String,
        /// A new name
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        settings: IdpSettings,
        /// Remove the client secret (a public client: PKCE only)
        #[arg(long, conflicts_with = "client_secret_stdin")]
        clear_client_secret: bool,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Delete an identity provider; its sessions end, its users stay
    Delete {
        /// Id or name
        idp: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// List live sessions (yours, or everyone's for an admin)
    List {
        /// Only this user's (id or email)
        #[arg(long)]
        user: Option<String>,
        /// Include ended and expired sessions
        #[arg(long)]
        ended: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// End a session now
    Revoke {
        /// The session id (ses_…)
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ManagedSettingsCmd {
    /// Set the organisation's (or a team's) settings from a JSON file ("-": stdin)
    Set {
        /// A JSON object of Claude Code settings
        file: String,
        /// A team (id or name); without it, the organisation's
        #[arg(long)]
        team: Option<String>,
    },
    /// List every set of managed settings
    List,
    /// Show what a user's Claude Code receives, merged
    Show {
        /// The user (id or email)
        #[arg(long)]
        user: String,
    },
    /// Delete the organisation's (or a team's) settings
    Delete {
        #[arg(long)]
        team: Option<String>,
    },
}

/// Whose search provider: the organisation's or a user's.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct SearchScope {
    /// The organisation's provider (admins)
    #[arg(long)]
    pub org: bool,
    /// A user's own provider (id or email; members: themselves)
    #[arg(long)]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ScimCmd {
    /// The bearer tokens of SCIM clients, each bound to one identity provider
    #[command(subcommand)]
    Tokens(ScimTokensCmd),
}

#[derive(Debug, Subcommand)]
pub enum ScimTokensCmd {
    /// Create a token for an identity provider's SCIM client; it is shown once.
    /// From then on, sign-in through that provider no longer creates accounts
    Create {
        /// The identity provider (name or id)
        #[arg(long)]
        idp: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List the tokens (never their secrets)
    List {
        /// Only this identity provider's
        #[arg(long)]
        idp: Option<String>,
    },
    /// Revoke a token: its client gets 401 from then on
    Revoke {
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SearchCmd {
    /// Show the mode and the providers set
    Show,
    /// Set the mode: enabled (each user's provider, else the organisation's, else
    /// DuckDuckGo), disabled (search tools removed from requests) or global
    /// (the organisation's provider for everyone)
    Mode {
        #[arg(value_parser = ["enabled", "disabled", "global"])]
        mode: String,
    },
    /// Set a search provider
    Set {
        #[command(flatten)]
        scope: SearchScope,
        /// duckduckgo, tavily, serper, brave, searxng or custom
        #[arg(long, value_parser = ["duckduckgo", "tavily", "serper", "brave", "searxng", "custom"])]
        provider: String,
        /// The provider's endpoint (proxies, self-hosted SearXNG, custom; admins only)
        #[arg(long)]
        url: Option<String>,
        /// Read the provider's API key from stdin (kept sealed, never shown again)
        #[arg(long)]
        api_key_stdin: bool,
        /// Results per search, 1 to 20 (default 5)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=20))]
        max_results: Option<u32>,
    },
    /// Remove a search provider
    Unset {
        #[command(flatten)]
        scope: SearchScope,
    },
    /// Run one search from the control plane with the provider a user gets
    Test {
        /// The user (id or email); without it, the organisation's provider
        #[arg(long)]
        user: Option<String>,
        /// The query (default: "test search query")
        #[arg(long)]
        query: Option<String>,
    },
}
