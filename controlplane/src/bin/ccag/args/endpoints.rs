//! `ccag endpoints` arguments.

use clap::{Args, Subcommand, ValueEnum};

use super::PageArgs;

/// A team's routing strategy; `default` follows the routing.strategy setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoutingArg {
    Sticky,
    Fallback,
    RoundRobin,
    Adaptive,
    Default,
}

/// The options `create` and `update` share.
#[derive(Debug, Args, Default)]
pub struct EndpointOptions {
    /// Where its calls go instead of the regional URL (a VPC endpoint, FIPS, a test double):
    /// a host only, https or http to loopback (update: "" for the default)
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// An IAM role to assume with STS, e.g. in another account (update: "" removes it)
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for (update: "" removes it)
    #[arg(long, value_name = "ID")]
    pub external_id: Option<String>,
    /// Read a Bedrock API key from stdin, to send as a bearer token instead of signing
    /// (not with a role; update: empty input removes the stored key)
    #[arg(long)]
    pub api_key_stdin: bool,
    /// Lower runs first: the fallback order
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub priority: Option<i32>,
    /// Its share of round-robin, sticky and adaptive traffic, 1 to 1000 [default: 1]
    #[arg(long, value_name = "N")]
    pub weight: Option<u32>,
    /// The inference profiles its model ids name: geo (its region's, the default), global,
    /// regional (foundation model ids), or a prefix: us, eu, apac, jp, au, us-gov
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// The Anthropic model ids it serves, comma-separated (default: every model; update: "" for every model)
    #[arg(long, value_name = "M1,M2,…")]
    pub models: Option<String>,
    /// An application inference profile to call for a model; repeatable (update: replaces them all)
    #[arg(long = "profile-arn", value_name = "MODEL=ARN")]
    pub profile_arn: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum EndpointsCmd {
    /// Add a Bedrock endpoint: a region of an account, with its own credentials
    Create {
        #[arg(long)]
        name: String,
        /// AWS region, e.g. us-east-1
        #[arg(long)]
        region: String,
        #[command(flatten)]
        options: EndpointOptions,
        /// With --role-arn: one STS session per user, named after them, with their email as the
        /// source identity (CloudTrail names each caller; the trust policy must allow sts:SetSourceIdentity)
        #[arg(long, requires = "role_arn")]
        per_user_sessions: bool,
        /// Create the endpoint disabled
        #[arg(long)]
        disabled: bool,
    },
    /// List endpoints, with their health: circuit, calls, throttles, errors and latency
    List {
        /// The window of the health figures, in seconds (at most 86400)
        #[arg(long, value_name = "SECS", default_value_t = 900)]
        window: u32,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show an endpoint, with its health over the last 15 minutes
    Get {
        /// Endpoint id or name
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Change an endpoint; options not given are left as they are
    Update {
        /// Endpoint id or name
        #[arg(value_name = "ID")]
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        options: EndpointOptions,
        /// One STS session per user (--per-user-sessions false: one for the endpoint)
        #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true")]
        per_user_sessions: Option<bool>,
        /// Enable it (--enabled false: disable it)
        #[arg(long, value_name = "true|false", num_args = 0..=1, default_missing_value = "true")]
        enabled: Option<bool>,
        /// Disable it
        #[arg(long, conflicts_with = "enabled")]
        disabled: bool,
        /// Remove every application inference profile
        #[arg(long, conflicts_with = "profile_arn")]
        clear_profile_arns: bool,
    },
    /// Delete an endpoint (it leaves the teams' lists; refused when it is a team's only one)
    Delete {
        /// Endpoint id or name
        #[arg(value_name = "ID")]
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ccag").chain(args.iter().copied()))
    }

    #[test]
    fn create_takes_every_routing_option() {
        let cli = parse(&[
            "endpoints",
            "create",
            "--name",
            "e",
            "--region",
            "eu-west-1",
            "--role-arn",
            "arn:aws:iam::111111111111:role/x",
            "--external-id",
            "ext",
            "--per-user-sessions",
            "--weight",
            "3",
            "--scope",
            "eu",
            "--models",
            "a,b",
            "--profile-arn",
            "a=arn:1",
            "--profile-arn",
            "b=arn:2",
        ])
        .unwrap();
        match cli.command {
            Command::Endpoints(EndpointsCmd::Create { options, per_user_sessions, disabled, .. }) => {
                assert!(per_user_sessions && !disabled);
                assert_eq!(options.weight, Some(3));
                assert_eq!(options.profile_arn, vec!["a=arn:1", "b=arn:2"]);
                assert_eq!(options.scope.as_deref(), Some("eu"));
            }
            other => panic!("unexpected {other:?}"),
        }
        // Per-user sessions are a role's.
        assert!(parse(&["endpoints", "create", "--name", "e", "--region", "r", "--per-user-sessions"]).is_err());
    }

    #[test]
    fn update_flags_turn_things_on_and_off() {
        let cli = parse(&["endpoints", "update", "e", "--enabled", "--per-user-sessions", "false"]).unwrap();
        match cli.command {
            Command::Endpoints(EndpointsCmd::Update { enabled, per_user_sessions, disabled, .. }) => {
                assert_eq!((enabled, per_user_sessions, disabled), (Some(true), Some(false), false));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["endpoints", "update", "e", "--enabled", "--disabled"]).is_err());
        assert!(parse(&["endpoints", "update", "e", "--clear-profile-arns", "--profile-arn", "a=b"]).is_err());
        assert!(parse(&["endpoints", "update", "e", "--enabled", "false"]).is_ok());
    }

    #[test]
    fn routing_strategies_are_kebab_case_words() {
        let cli = parse(&["teams", "update", "t", "--routing", "round-robin", "--endpoints", ""]).unwrap();
        match cli.command {
            Command::Teams(super::super::TeamsCmd::Update { routing, endpoints, .. }) => {
                assert_eq!(routing, Some(RoutingArg::RoundRobin));
                assert_eq!(endpoints.as_deref(), Some(""));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse(&["teams", "update", "t", "--routing", "random"]).is_err());
    }
}
