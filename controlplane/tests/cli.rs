//! End-to-end tests of the `ccag` CLI against a real `ccag-controlplane`,
//! each on SQLite and on PostgreSQL (see `common` for the harness and
//! `CCAG_TEST_SKIP_POSTGRES`).

mod common;
#[path = "cli/routing.rs"]
mod routing;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{on_both_backends, unique, Backend, Env, Server, ADMIN, ADMIN_PASSWORD};
use serde_json::Value;

const CLI_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// A failure with the given exit code and exactly one `ccag: ` line on stderr.
    #[track_caller]
    fn fails(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "expected exit {code}, got {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line: {self:#?}");
        assert!(lines[0].starts_with("ccag: "), "stderr: {self:#?}");
        self
    }
}

/// Runs `ccag` with the given endpoint (None: unset) and config directory.
fn ccag_at(endpoint: Option<&str>, config: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    ccag_at_env(endpoint, config, args, stdin, &[])
}

/// As `ccag_at`, with extra environment variables.
fn ccag_at_env(
    endpoint: Option<&str>,
    config: &Path,
    args: &[&str],
    stdin: Option<&str>,
    extra_env: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccag"));
    cmd.args(args)
        .env_remove("CCAG_TOKEN")
        .env_remove("CCAG_ENDPOINT")
        .env_remove("XDG_CONFIG_HOME")
        .env("CCAG_CONFIG_DIR", config)
        .env("HOME", config)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    if let Some(e) = endpoint {
        cmd.env("CCAG_ENDPOINT", e);
    }
    let mut child = cmd.spawn().expect("starting ccag");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("piped stdin");
        let _ = si.write_all(input.as_bytes());
    }
    let mut so = child.stdout.take().expect("piped stdout");
    let mut se = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for ccag") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ccag {args:?} did not finish in {CLI_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        // A signal (e.g. a panic's abort) shows as -1.
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

impl Server {
    fn ccag(&self, config: &Path, args: &[&str]) -> Run {
        ccag_at(Some(&self.grpc), config, args, None)
    }

    fn ccag_env(&self, config: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
        ccag_at_env(Some(&self.grpc), config, args, None, env)
    }

    fn ccag_stdin(&self, config: &Path, args: &[&str], stdin: &str) -> Run {
        ccag_at(Some(&self.grpc), config, args, Some(stdin))
    }

    /// Logs in as the given user into a fresh config directory.
    fn login_as(&self, env: &Env, user: &str, password: &str) -> PathBuf {
        let dir = env.config_dir(user);
        let r = self.ccag_stdin(&dir, &["login", "--username", user, "--password-stdin"], &format!("{password}\n"));
        assert_eq!(r.code, 0, "login as {user} failed: {r:#?}\nserver log:\n{}", self.log());
        dir
    }

    fn admin(&self, env: &Env) -> PathBuf {
        self.login_as(env, ADMIN, ADMIN_PASSWORD)
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// Whether a JSON array holds an object whose `field` equals `value`.
fn has(list: &Value, field: &str, value: &str) -> bool {
    list.as_array().unwrap_or_else(|| panic!("not an array: {list}")).iter().any(|o| o[field] == value)
}

on_both_backends!(
    login_then_whoami,
    logout_forgets_the_session,
    wrong_password_is_exit_4,
    status_names_the_backend,
    key_plaintext_is_shown_only_at_creation,
    users_crud,
    teams_crud,
    keys_crud,
    models_crud,
    endpoints_crud,
    settings_crud,
    settings_refuse_unknown_keys_and_bad_values,
    keys_revoke_sets_revoked,
    members_only_reach_their_own_keys,
    garbage_token_is_exit_4,
    audit_records_changes,
    duplicate_user_email_is_exit_7,
    invalid_input_is_exit_8,
    api_tokens_act_as_their_user,
    restart_keeps_users_and_keys,
    user_and_team_limits,
    prices_crud,
    usage_reports_rows_and_total,
    export_writes_the_records_as_csv_and_refuses_bad_filters,
    key_tables_name_owners_and_teams,
    keys_are_found_by_name_and_an_ambiguous_name_lists_the_candidates,
    models_list_shows_the_built_in_catalogue_as_the_data_planes_resolve_it,
    models_list_follows_the_first_endpoints_region_and_the_geo_setting,
    models_list_shows_mappings_beside_the_built_in_models,
    team_and_user_tables_name_members_and_teams,
    tables_show_local_times_and_json_keeps_rfc3339,
    tables_show_money_as_dollars_and_json_as_micro_usd,
    refusals_name_the_field,
    scim_tokens_are_shown_once_listed_without_secrets_and_admin_only,
);

// ------------------------------------------------------------------ tests

fn login_then_whoami(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let me = srv.ccag(&cfg, &["whoami", "--json"]).json();
    assert_eq!(me["email"], ADMIN);
    assert_eq!(me["role"], "admin");
    assert!(!s(&me["user_id"]).is_empty());

    let session = cfg.join("session.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    assert_eq!(saved["endpoint"], srv.grpc.as_str());
    assert!(!s(&saved["token"]).is_empty());
    assert!(saved.get("expires_at").is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&session), 0o600);
        assert_eq!(mode(&cfg), 0o700);
    }

    // Human output too.
    let r = srv.ccag(&cfg, &["whoami"]);
    assert!(r.ok().stdout.contains(ADMIN), "{r:#?}");
}

fn logout_forgets_the_session(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.join("session.json")).unwrap()).unwrap();
    let token = saved["token"].as_str().unwrap().to_owned();
    srv.ccag(&cfg, &["logout"]).ok();
    assert!(!cfg.join("session.json").exists());
    // It ended on the server too: a copy of the token is worthless.
    let copy = env.config_dir("copy");
    srv.ccag(&copy, &["--token", &token, "whoami"]).fails(4);
    srv.ccag(&cfg, &["whoami"]).fails(4);
    // Logging out twice is fine.
    srv.ccag(&cfg, &["logout"]).ok();
}

fn wrong_password_is_exit_4(env: Env) {
    let srv = env.start();
    let cfg = env.config_dir("wrong");
    let r = srv.ccag_stdin(&cfg, &["login", "--username", ADMIN, "--password-stdin"], "not-the-password\n");
    r.fails(4);
    assert!(!cfg.join("session.json").exists());
    // An unknown user fails the same way.
    srv.ccag_stdin(&cfg, &["login", "--username", "nobody@example.com", "--password-stdin"], "whatever\n").fails(4);
}

fn status_names_the_backend(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let st = srv.ccag(&cfg, &["status", "--json"]).json();
    let want = match env.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(st["database"], want, "{st}");
    assert!(st["users"].as_u64().unwrap_or(0) >= 1, "{st}");
    srv.ccag(&cfg, &["status"]).ok();
}

fn key_plaintext_is_shown_only_at_creation(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let created = srv.ccag(&cfg, &["keys", "create", "--name", "laptop", "--json"]).json();
    let key = s(&created["key"]).to_string();
    assert!(key.starts_with("sk-ccag-"), "{created}");
    let id = s(&created["id"]).to_string();
    assert_eq!(created["name"], "laptop");
    assert_eq!(created["status"], "active");
    assert!(key.starts_with(s(&created["prefix"])), "{created}");
    for f in ["user_id", "team_id", "rpm", "tpm", "created_at", "expires_at"] {
        assert!(created.get(f).is_some(), "missing {f}: {created}");
    }

    for args in [
        vec!["keys", "get", id.as_str(), "--json"],
        vec!["keys", "get", id.as_str()],
        vec!["keys", "list", "--json"],
        vec!["keys", "list"],
    ] {
        let r = srv.ccag(&cfg, &args);
        r.ok();
        assert!(!r.stdout.contains(&key), "{args:?} shows the key: {r:#?}");
    }
    let got = srv.ccag(&cfg, &["keys", "get", &id, "--json"]).json();
    assert!(got.get("key").is_none(), "{got}");
    assert_eq!(got["id"], id.as_str());

    // The human output shows it once, with a warning.
    let r = srv.ccag(&cfg, &["keys", "create", "--name", "other"]);
    r.ok();
    let shown: Vec<&str> = r.stdout.split_whitespace().filter(|w| w.starts_with("sk-ccag-")).collect();
    assert_eq!(shown.len(), 1, "{r:#?}");
    assert!(r.stdout.contains("not be shown again"), "{r:#?}");
}

fn users_crud(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let u = srv.ccag(&cfg, &["users", "create", "--email", "alice@example.com", "--name", "Alice", "--json"]).json();
    let id = s(&u["id"]).to_string();
    assert_eq!(u["email"], "alice@example.com");
    assert_eq!(u["display_name"], "Alice");
    assert_eq!(u["role"], "member");
    assert_eq!(u["status"], "active");

    assert_eq!(srv.ccag(&cfg, &["users", "get", &id, "--json"]).json()["email"], "alice@example.com");
    assert_eq!(srv.ccag(&cfg, &["users", "get", "alice@example.com", "--json"]).json()["id"], id.as_str());
    srv.ccag(&cfg, &["users", "get", &id]).ok();

    let list = srv.ccag(&cfg, &["users", "list", "--json"]).json();
    assert!(has(&list, "id", &id) && has(&list, "email", ADMIN), "{list}");
    let members = srv.ccag(&cfg, &["users", "list", "--role", "member", "--json"]).json();
    assert!(has(&members, "id", &id) && !has(&members, "email", ADMIN), "{members}");
    let found = srv.ccag(&cfg, &["users", "list", "--query", "alice", "--json", "--all"]).json();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
    let r = srv.ccag(&cfg, &["users", "list"]);
    assert!(r.ok().stdout.contains("alice@example.com"), "{r:#?}");

    let upd = srv
        .ccag(
            &cfg,
            &["users", "update", &id, "--name", "Alice A.", "--status", "disabled", "--role", "admin", "--json"],
        )
        .json();
    assert_eq!(upd["display_name"], "Alice A.");
    assert_eq!(upd["status"], "disabled");
    assert_eq!(upd["role"], "admin");
    assert_eq!(upd["email"], "alice@example.com");
    let got = srv.ccag(&cfg, &["users", "get", &id, "--json"]).json();
    assert_eq!(got["status"], "disabled");
    let disabled = srv.ccag(&cfg, &["users", "list", "--status", "disabled", "--json"]).json();
    assert!(has(&disabled, "id", &id), "{disabled}");

    srv.ccag(&cfg, &["users", "delete", &id]).ok();
    srv.ccag(&cfg, &["users", "get", &id]).fails(6);
    srv.ccag(&cfg, &["users", "delete", &id]).fails(6);
}

fn teams_crud(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let t = srv
        .ccag(
            &cfg,
            &[
                "teams",
                "create",
                "--name",
                "platform",
                "--description",
                "Platform team",
                "--member-rpm",
                "60",
                "--member-tpm",
                "1000",
                "--json",
            ],
        )
        .json();
    let id = s(&t["id"]).to_string();
    assert_eq!(t["name"], "platform");
    assert_eq!(t["member_rpm"], 60);
    assert_eq!(t["member_tpm"], 1000);

    assert_eq!(srv.ccag(&cfg, &["teams", "get", &id, "--json"]).json()["name"], "platform");
    assert_eq!(srv.ccag(&cfg, &["teams", "get", "platform", "--json"]).json()["id"], id.as_str());
    let list = srv.ccag(&cfg, &["teams", "list", "--json"]).json();
    assert!(has(&list, "id", &id), "{list}");
    srv.ccag(&cfg, &["teams", "list"]).ok();

    let upd = srv.ccag(&cfg, &["teams", "update", &id, "--description", "Infra", "--member-rpm", "0", "--json"]).json();
    assert_eq!(upd["description"], "Infra");
    assert_eq!(upd["member_rpm"], 0);
    assert_eq!(upd["member_tpm"], 1000);
    assert_eq!(upd["name"], "platform");

    let u = srv.ccag(&cfg, &["users", "create", "--email", "bob@example.com", "--json"]).json();
    let uid = s(&u["id"]).to_string();
    let added = srv.ccag(&cfg, &["teams", "add-member", "platform", "bob@example.com", "--json"]).json();
    assert!(added["member_ids"].as_array().unwrap().iter().any(|m| m == uid.as_str()), "{added}");
    let bob = srv.ccag(&cfg, &["users", "get", &uid, "--json"]).json();
    assert!(bob["team_ids"].as_array().unwrap().iter().any(|t| t == id.as_str()), "{bob}");
    let removed = srv.ccag(&cfg, &["teams", "remove-member", &id, &uid, "--json"]).json();
    assert!(!removed["member_ids"].as_array().unwrap().iter().any(|m| m == uid.as_str()), "{removed}");

    srv.ccag(&cfg, &["teams", "delete", &id]).ok();
    srv.ccag(&cfg, &["teams", "get", &id]).fails(6);
}

fn keys_crud(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let me = srv.ccag(&cfg, &["whoami", "--json"]).json();
    let team = srv.ccag(&cfg, &["teams", "create", "--name", "ml", "--json"]).json();
    let team_id = s(&team["id"]).to_string();
    let k = srv
        .ccag(
            &cfg,
            &[
                "keys",
                "create",
                "--name",
                "ci",
                "--team",
                &team_id,
                "--rpm",
                "10",
                "--tpm",
                "2000",
                "--ttl-days",
                "30",
                "--json",
            ],
        )
        .json();
    let id = s(&k["id"]).to_string();
    assert_eq!(k["user_id"], me["user_id"]);
    assert_eq!(k["team_id"], team_id.as_str());
    assert_eq!(k["rpm"], 10);
    assert_eq!(k["tpm"], 2000);
    assert!(!s(&k["expires_at"]).is_empty(), "{k}");

    let got = srv.ccag(&cfg, &["keys", "get", &id, "--json"]).json();
    assert_eq!(got["name"], "ci");
    assert_eq!(got["status"], "active");
    let list = srv.ccag(&cfg, &["keys", "list", "--json"]).json();
    assert!(has(&list, "id", &id), "{list}");
    let by_team = srv.ccag(&cfg, &["keys", "list", "--team", &team_id, "--json"]).json();
    assert!(has(&by_team, "id", &id), "{by_team}");
    let by_user = srv.ccag(&cfg, &["keys", "list", "--user", ADMIN, "--json"]).json();
    assert!(has(&by_user, "id", &id), "{by_user}");

    let upd = srv
        .ccag(&cfg, &["keys", "update", &id, "--name", "ci-2", "--rpm", "20", "--status", "disabled", "--json"])
        .json();
    assert_eq!(upd["name"], "ci-2");
    assert_eq!(upd["rpm"], 20);
    assert_eq!(upd["tpm"], 2000);
    assert_eq!(upd["status"], "disabled");
    let upd = srv.ccag(&cfg, &["keys", "update", &id, "--status", "active", "--json"]).json();
    assert_eq!(upd["status"], "active");

    srv.ccag(&cfg, &["keys", "delete", &id]).ok();
    srv.ccag(&cfg, &["keys", "get", &id]).fails(6);
}

fn models_crud(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let m = srv
        .ccag(
            &cfg,
            &[
                "models",
                "create",
                "--anthropic-id",
                "claude-test-1",
                "--bedrock-id",
                "us.anthropic.claude-test-1-v1:0",
                "--display-name",
                "Claude Test",
                "--listed",
                "--json",
            ],
        )
        .json();
    let id = s(&m["id"]).to_string();
    assert_eq!(m["anthropic_id"], "claude-test-1");
    assert_eq!(m["listed"], true);

    assert_eq!(srv.ccag(&cfg, &["models", "get", &id, "--json"]).json()["display_name"], "Claude Test");
    assert_eq!(srv.ccag(&cfg, &["models", "get", "claude-test-1", "--json"]).json()["id"], id.as_str());
    let list = srv.ccag(&cfg, &["models", "list", "--mappings", "--json"]).json();
    assert!(has(&list, "id", &id), "{list}");
    srv.ccag(&cfg, &["models", "list", "--mappings"]).ok();

    let upd = srv.ccag(&cfg, &["models", "update", &id, "--listed", "false", "--display-name", "CT", "--json"]).json();
    assert_eq!(upd["listed"], false);
    assert_eq!(upd["display_name"], "CT");
    assert_eq!(upd["bedrock_id"], "us.anthropic.claude-test-1-v1:0");

    srv.ccag(&cfg, &["models", "delete", &id]).ok();
    srv.ccag(&cfg, &["models", "get", &id]).fails(6);
}

fn endpoints_crud(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let e = srv
        .ccag(
            &cfg,
            &[
                "endpoints",
                "create",
                "--name",
                "east",
                "--region",
                "us-east-1",
                "--role-arn",
                "arn:aws:iam::123456789012:role/ccag",
                "--priority",
                "5",
                "--json",
            ],
        )
        .json();
    let id = s(&e["id"]).to_string();
    assert_eq!(e["region"], "us-east-1");
    assert_eq!(e["enabled"], true);
    assert_eq!(e["priority"], 5);

    assert_eq!(srv.ccag(&cfg, &["endpoints", "get", &id, "--json"]).json()["name"], "east");
    let list = srv.ccag(&cfg, &["endpoints", "list", "--json"]).json();
    assert!(has(&list, "id", &id), "{list}");
    srv.ccag(&cfg, &["endpoints", "list"]).ok();

    let upd = srv.ccag(&cfg, &["endpoints", "update", &id, "--enabled", "false", "--priority", "-1", "--json"]).json();
    assert_eq!(upd["enabled"], false);
    assert_eq!(upd["priority"], -1);
    assert_eq!(upd["region"], "us-east-1");

    let d = srv
        .ccag(&cfg, &["endpoints", "create", "--name", "west", "--region", "us-west-2", "--disabled", "--json"])
        .json();
    assert_eq!(d["enabled"], false);

    srv.ccag(&cfg, &["endpoints", "delete", &id]).ok();
    srv.ccag(&cfg, &["endpoints", "get", &id]).fails(6);
}

fn settings_crud(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let k = "dataplane.ping_interval_ms";
    let st = srv.ccag(&cfg, &["settings", "set", k, "2500", "--json"]).json();
    assert_eq!(st["key"], k);
    assert_eq!(st["value"], "2500");
    assert_eq!(srv.ccag(&cfg, &["settings", "get", k, "--json"]).json()["value"], "2500");
    let list = srv.ccag(&cfg, &["settings", "list", "--json"]).json();
    assert!(has(&list, "key", k), "{list}");
    srv.ccag(&cfg, &["settings", "list"]).ok();

    let st = srv.ccag(&cfg, &["settings", "set", k, " 3000 ", "--json"]).json();
    assert_eq!(st["value"], "3000", "stored in canonical form");

    srv.ccag(&cfg, &["settings", "delete", k]).ok();
    srv.ccag(&cfg, &["settings", "get", k]).fails(6);
}

fn settings_refuse_unknown_keys_and_bad_values(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let typo = srv.ccag(&cfg, &["settings", "set", "dataplane.max_body_byte", "1000000"]);
    typo.fails(8);
    assert!(typo.stderr.contains("not a setting") && typo.stderr.contains("dataplane.max_body_bytes"), "{typo:?}");
    let bad = srv.ccag(&cfg, &["settings", "set", "dataplane.max_body_bytes", "tenmegabytes"]);
    bad.fails(8);
    assert!(bad.stderr.contains("whole number of bytes"), "{bad:?}");
    srv.ccag(&cfg, &["settings", "get", "dataplane.max_body_bytes"]).fails(6);
}

fn keys_revoke_sets_revoked(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let k = srv.ccag(&cfg, &["keys", "create", "--name", "doomed", "--json"]).json();
    let id = s(&k["id"]).to_string();
    let r = srv.ccag(&cfg, &["keys", "revoke", &id, "--json"]).json();
    assert_eq!(r["status"], "revoked");
    assert_eq!(srv.ccag(&cfg, &["keys", "get", &id, "--json"]).json()["status"], "revoked");
    let revoked = srv.ccag(&cfg, &["keys", "list", "--status", "revoked", "--json"]).json();
    assert!(has(&revoked, "id", &id), "{revoked}");
    let active = srv.ccag(&cfg, &["keys", "list", "--status", "active", "--json"]).json();
    assert!(!has(&active, "id", &id), "{active}");
}

fn members_only_reach_their_own_keys(env: Env) {
    let srv = env.start();
    let admin = srv.admin(&env);
    let admin_key = srv.ccag(&admin, &["keys", "create", "--name", "admin-key", "--json"]).json();
    let admin_key_id = s(&admin_key["id"]).to_string();
    let admin_id = s(&srv.ccag(&admin, &["whoami", "--json"]).json()["user_id"]).to_string();
    srv.ccag_stdin(
        &admin,
        &["users", "create", "--email", "mia@example.com", "--password-stdin", "--json"],
        "mia-password-1\n",
    )
    .ok();

    let mia = srv.login_as(&env, "mia@example.com", "mia-password-1");
    let me = srv.ccag(&mia, &["whoami", "--json"]).json();
    assert_eq!(me["role"], "member");
    let mia_id = s(&me["user_id"]).to_string();

    // Their own key.
    let own = srv.ccag(&mia, &["keys", "create", "--name", "mine", "--json"]).json();
    assert_eq!(own["user_id"], mia_id.as_str());
    assert!(s(&own["key"]).starts_with("sk-ccag-"));
    let own_id = s(&own["id"]).to_string();
    srv.ccag(&mia, &["keys", "get", &own_id]).ok();
    // Not for someone else.
    srv.ccag(&mia, &["keys", "create", "--name", "theirs", "--user", &admin_id]).fails(5);

    // Someone else's key.
    srv.ccag(&mia, &["keys", "get", &admin_key_id]).fails(5);
    srv.ccag(&mia, &["keys", "revoke", &admin_key_id]).fails(5);
    srv.ccag(&mia, &["keys", "delete", &admin_key_id]).fails(5);
    let still = srv.ccag(&admin, &["keys", "get", &admin_key_id, "--json"]).json();
    assert_eq!(still["status"], "active");

    let list = srv.ccag(&mia, &["keys", "list", "--json"]).json();
    let list = list.as_array().unwrap();
    assert!(list.iter().all(|k| k["user_id"] == mia_id.as_str()), "{list:?}");
    assert!(list.iter().any(|k| k["id"] == own_id.as_str()), "{list:?}");
    let r = srv.ccag(&mia, &["keys", "list", "--user", &admin_id, "--json"]);
    if r.code == 0 {
        let l = r.json();
        assert!(l.as_array().unwrap().iter().all(|k| k["user_id"] == mia_id.as_str()), "{l}");
    } else {
        r.fails(5);
    }

    // Admin-only areas.
    srv.ccag(&mia, &["users", "create", "--email", "x@example.com"]).fails(5);
}

fn garbage_token_is_exit_4(env: Env) {
    let srv = env.start();
    let cfg = env.config_dir("garbage");
    srv.ccag(&cfg, &["--token", "garbage", "whoami"]).fails(4);
    srv.ccag(&cfg, &["--token", "Bearer.x.y", "users", "list"]).fails(4);
    srv.ccag(&cfg, &["whoami"]).fails(4);
}

#[test]
fn unreachable_endpoint_is_exit_3() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let cfg = std::env::temp_dir().join(format!("ccag-cli-test-{}", unique()));
    let r = ccag_at(Some(&url), &cfg, &["--token", "t", "status"], None);
    r.fails(3);
    assert!(r.stderr.starts_with(&format!("ccag: cannot reach the control plane at {url}: ")), "{r:#?}");
    ccag_at(Some(&url), &cfg, &["login", "--username", "a", "--password-stdin"], Some("pw\n")).fails(3);
    let _ = std::fs::remove_dir_all(&cfg);
}

#[test]
fn usage_errors_are_exit_2() {
    let cfg = std::env::temp_dir().join(format!("ccag-cli-test-{}", unique()));
    let r = ccag_at(None, &cfg, &["keys", "create"], None);
    assert_eq!(r.code, 2, "{r:#?}");
    let r = ccag_at(None, &cfg, &["users", "create", "--email", "a", "--role", "owner"], None);
    assert_eq!(r.code, 2, "{r:#?}");
    let r = ccag_at(None, &cfg, &["--token", "t", "--endpoint", "http://bad host", "status"], None);
    r.fails(2);
    let r = ccag_at(None, &cfg, &["--help"], None);
    assert_eq!(r.code, 0, "{r:#?}");
    assert!(r.stdout.contains("--json"));
}

#[test]
fn not_logged_in_is_exit_4() {
    let cfg = std::env::temp_dir().join(format!("ccag-cli-test-{}", unique()));
    let r = ccag_at(None, &cfg, &["users", "list"], None);
    r.fails(4);
    assert!(r.stderr.contains("ccag login"), "{r:#?}");
}

fn audit_records_changes(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let admin_id = s(&srv.ccag(&cfg, &["whoami", "--json"]).json()["user_id"]).to_string();
    let k = srv.ccag(&cfg, &["keys", "create", "--name", "audited", "--json"]).json();
    let key_id = s(&k["id"]).to_string();
    let u = srv.ccag(&cfg, &["users", "create", "--email", "audit@example.com", "--json"]).json();
    let user_id = s(&u["id"]).to_string();

    let entries = srv.ccag(&cfg, &["audit", "list", "--action", "key.create", "--json", "--all"]).json();
    let entry = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource_id"] == key_id.as_str())
        .unwrap_or_else(|| panic!("no key.create entry for {key_id}: {entries}"));
    assert_eq!(entry["actor"], admin_id.as_str(), "{entry}");
    assert_eq!(entry["actor_email"], ADMIN, "{entry}");
    assert_eq!(entry["action"], "key.create");
    assert!(entries.as_array().unwrap().iter().all(|e| e["action"] == "key.create"), "{entries}");
    // The snapshot never holds the plaintext key.
    assert!(!entries.to_string().contains(s(&k["key"])), "{entries}");

    let by_actor = srv.ccag(&cfg, &["audit", "list", "--actor", &admin_id, "--json"]).json();
    assert!(
        by_actor
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.create" && e["resource_id"] == user_id.as_str()),
        "{by_actor}"
    );
    let by_email = srv.ccag(&cfg, &["audit", "list", "--actor", ADMIN, "--json"]).json();
    assert_eq!(by_email, by_actor, "--actor takes an email too");
    let by_resource =
        srv.ccag(&cfg, &["audit", "list", "--resource-type", "user", "--resource-id", &user_id, "--json"]).json();
    assert!(has(&by_resource, "action", "user.create"), "{by_resource}");
    let table = srv.ccag(&cfg, &["audit", "list"]).ok().stdout.clone();
    let by: Vec<&str> = table.lines().filter_map(|l| l.split('┆').nth(1)).map(str::trim).collect();
    assert!(by.contains(&ADMIN) && !by.contains(&admin_id.as_str()), "the table names the actor: {table}");
}

fn duplicate_user_email_is_exit_7(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    srv.ccag(&cfg, &["users", "create", "--email", "dup@example.com"]).ok();
    srv.ccag(&cfg, &["users", "create", "--email", "dup@example.com"]).fails(7);
    srv.ccag(&cfg, &["teams", "create", "--name", "dup"]).ok();
    srv.ccag(&cfg, &["teams", "create", "--name", "dup"]).fails(7);
}

fn invalid_input_is_exit_8(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    srv.ccag(&cfg, &["users", "create", "--email", ""]).fails(8);
    srv.ccag(&cfg, &["keys", "create", "--name", ""]).fails(8);
    let r = srv.ccag(&cfg, &["users", "create", "--email", "notanemail"]);
    r.fails(8);
    assert!(r.stderr.contains("email") && r.stderr.contains("name@example.com"), "{r:#?}");
}

fn api_tokens_act_as_their_user(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let t = srv.ccag(&cfg, &["tokens", "create", "--name", "automation", "--json"]).json();
    let token = s(&t["token"]).to_string();
    let id = s(&t["id"]).to_string();
    assert!(!token.is_empty());
    let list = srv.ccag(&cfg, &["tokens", "list", "--json"]).json();
    assert!(has(&list, "id", &id), "{list}");
    assert!(has(&list, "user", ADMIN), "tokens name their owner: {list}");
    assert!(!list.to_string().contains(&token));

    let other = env.config_dir("token-user");
    let me = srv.ccag(&other, &["--token", &token, "whoami", "--json"]).json();
    assert_eq!(me["email"], ADMIN);
    assert_eq!(me["via"], "api_token");

    let revoked = srv.ccag(&cfg, &["tokens", "revoke", &id, "--json"]).json();
    assert_eq!(revoked["revoked"], true);
    srv.ccag(&other, &["--token", &token, "whoami"]).fails(4);
}

fn restart_keeps_users_and_keys(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let u = srv.ccag(&cfg, &["users", "create", "--email", "keep@example.com", "--json"]).json();
    let k = srv.ccag(&cfg, &["keys", "create", "--name", "kept", "--json"]).json();
    srv.stop();

    let srv = env.start();
    let cfg = srv.admin(&env);
    let got = srv.ccag(&cfg, &["users", "get", "keep@example.com", "--json"]).json();
    assert_eq!(got["id"], u["id"]);
    let key = srv.ccag(&cfg, &["keys", "get", s(&k["id"]), "--json"]).json();
    assert_eq!(key["name"], "kept");
    assert_eq!(key["status"], "active");
    assert_eq!(key["prefix"], k["prefix"]);
    // Still exactly one admin.
    let admins = srv.ccag(&cfg, &["users", "list", "--role", "admin", "--json"]).json();
    assert_eq!(admins.as_array().map(Vec::len), Some(1), "{admins}");
}

fn user_and_team_limits(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let u = srv
        .ccag(&cfg, &["users", "create", "--email", "lim@example.com", "--rpm", "5", "--tpm", "500", "--json"])
        .json();
    assert_eq!((u["rpm"].as_u64(), u["tpm"].as_u64()), (Some(5), Some(500)), "{u}");
    let u = srv.ccag(&cfg, &["users", "update", "lim@example.com", "--rpm", "0", "--json"]).json();
    assert_eq!((u["rpm"].as_u64(), u["tpm"].as_u64()), (Some(0), Some(500)), "{u}");

    let t = srv.ccag(&cfg, &["teams", "create", "--name", "lim", "--rpm", "100", "--tpm", "9000", "--json"]).json();
    assert_eq!((t["rpm"].as_u64(), t["tpm"].as_u64()), (Some(100), Some(9000)), "{t}");
    let t = srv.ccag(&cfg, &["teams", "update", s(&t["id"]), "--tpm", "10", "--json"]).json();
    assert_eq!((t["rpm"].as_u64(), t["tpm"].as_u64()), (Some(100), Some(10)), "{t}");
}

fn prices_crud(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let p = srv
        .ccag(
            &cfg,
            &["prices", "set", "claude-test", "--input", "3", "--output", "15", "--cache-read", "0.3", "--json"],
        )
        .json();
    assert_eq!(p["model"], "claude-test");
    assert_eq!(p["input"].as_f64(), Some(3.0));
    assert_eq!(p["cache_read"].as_f64(), Some(0.3));
    let list = srv.ccag(&cfg, &["prices", "list", "--json"]).json();
    assert!(has(&list, "model", "claude-test"), "{list}");
    srv.ccag(&cfg, &["prices", "list"]).ok();
    let p = srv.ccag(&cfg, &["prices", "set", "claude-test", "--input", "1", "--output", "2", "--json"]).json();
    assert_eq!(p["output"].as_f64(), Some(2.0));
    srv.ccag(&cfg, &["prices", "delete", "claude-test"]).ok();
    let list = srv.ccag(&cfg, &["prices", "list", "--json"]).json();
    assert!(!has(&list, "model", "claude-test"), "{list}");
    srv.ccag(&cfg, &["prices", "delete", "claude-test"]).fails(6);
}

fn usage_reports_rows_and_total(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let u = srv.ccag(&cfg, &["usage", "--group-by", "model", "--json"]).json();
    assert!(u["rows"].is_array(), "{u}");
    assert_eq!(u["total"]["requests"].as_u64(), Some(0), "{u}");
    srv.ccag(&cfg, &["usage"]).ok();
    srv.ccag(&cfg, &["usage", "--since", "yesterday"]).fails(8);
    let csv = srv.ccag(&cfg, &["usage", "--format", "csv", "--by", "day"]).ok().stdout.clone();
    assert!(csv.starts_with("bucket,group,name,requests,"), "{csv}");
    let csv = srv.ccag(&cfg, &["usage", "--format", "csv"]).ok().stdout.clone();
    assert!(csv.starts_with("group,name,requests,") && csv.contains("cost_micro_usd"), "{csv}");
    srv.ccag(&cfg, &["usage", "--by", "hour", "--since", "40d"]).fails(8);
    srv.ccag(&cfg, &["usage", "--team", "no-such-team"]).fails(6);
}

fn export_writes_the_records_as_csv_and_refuses_bad_filters(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let run = srv.ccag(&cfg, &["export", "--since", "7d"]).ok().stdout.clone();
    assert_eq!(run.lines().count(), 1, "no records yet, only the header: {run}");
    assert!(run.starts_with("request_id,started_at,user_id,user,team_id,team,key_id,key,model,"), "{run}");
    srv.ccag(&cfg, &["export", "--limit", "100001"]).fails(8);
    srv.ccag(&cfg, &["export", "--since", "yesterday"]).fails(8);
    srv.ccag(&cfg, &["export", "--team", "no-such-team"]).fails(6);
    srv.ccag(&cfg, &["export", "--bedrock-endpoint", "no-such-endpoint"]).fails(6);
    srv.ccag(&cfg, &["export", "--bedrock-endpoint", "-", "--model", "claude-sonnet-4-5"]).ok();
}

fn key_tables_name_owners_and_teams(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    srv.ccag(&cfg, &["users", "create", "--email", "zoe@example.com"]).ok();
    srv.ccag(&cfg, &["teams", "create", "--name", "platform"]).ok();
    let k = srv
        .ccag(&cfg, &["keys", "create", "--name", "ci", "--user", "zoe@example.com", "--team", "platform", "--json"])
        .json();
    assert_eq!((s(&k["user"]), s(&k["team"])), ("zoe@example.com", "platform"), "{k}");
    assert!(s(&k["user_id"]).starts_with("usr_") && s(&k["team_id"]).starts_with("team_"), "ids stay in the JSON: {k}");
    let table = srv.ccag(&cfg, &["keys", "list"]).ok().stdout.clone();
    assert!(table.contains("zoe@example.com") && table.contains("platform"), "{table}");
    assert!(!table.contains("usr_"), "the table names the owner: {table}");
}

fn keys_are_found_by_name_and_an_ambiguous_name_lists_the_candidates(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    srv.ccag(&cfg, &["users", "create", "--email", "amy@example.com"]).ok();
    let mine = srv.ccag(&cfg, &["keys", "create", "--name", "laptop", "--json"]).json();
    let got = srv.ccag(&cfg, &["keys", "get", "laptop", "--json"]).json();
    assert_eq!(got["id"], mine["id"]);
    srv.ccag(&cfg, &["usage", "--key", "laptop"]).ok();
    let theirs = srv.ccag(&cfg, &["keys", "create", "--name", "laptop", "--user", "amy@example.com", "--json"]).json();
    let run = srv.ccag(&cfg, &["keys", "revoke", "laptop"]);
    run.fails(8);
    let line = run.stderr.clone();
    assert!(line.contains("ambiguous") && line.contains(s(&mine["id"])) && line.contains(s(&theirs["id"])), "{line}");
    assert!(line.contains("amy@example.com"), "candidates name their owners: {line}");
    // By id, as always; nothing was revoked by the refused name.
    let k = srv.ccag(&cfg, &["keys", "revoke", s(&theirs["id"]), "--json"]).json();
    assert_eq!(k["status"], "revoked");
    assert_eq!(srv.ccag(&cfg, &["keys", "get", s(&mine["id"]), "--json"]).json()["status"], "active");
    srv.ccag(&cfg, &["keys", "get", "no-such-key"]).fails(6);
}

/// The catalogue entry of `id` in `ccag models list --json`.
fn catalogued<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["models"].as_array().unwrap().iter().find(|m| m["id"] == id).unwrap_or_else(|| panic!("{id} not in {list}"))
}

fn models_list_shows_the_built_in_catalogue_as_the_data_planes_resolve_it(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let list = srv.ccag(&cfg, &["models", "list", "--json"]).json();
    // No endpoint: the data planes' default region, us-east-1.
    assert_eq!((s(&list["region"]), s(&list["geo"])), ("", "us"), "{list}");
    let opus = catalogued(&list, "claude-opus-4-6");
    assert_eq!(opus["bedrock_id"], "us.anthropic.claude-opus-4-6-v1");
    assert_eq!(opus["source"], "built-in");
    assert_eq!(opus["listed"], true);
    assert_eq!(opus["price_model"], "claude-opus-4-6");
    assert!(opus["input_micro_usd_per_mtok"].as_i64().unwrap() > 0, "{opus}");
    let sonnet = catalogued(&list, "claude-sonnet-4-5-20250929");
    assert!(sonnet["aliases"].as_array().unwrap().iter().any(|a| a == "claude-sonnet-4-5"), "{sonnet}");
    let table = srv.ccag(&cfg, &["models", "list"]).ok().stdout.clone();
    assert!(table.contains("us.anthropic.claude-opus-4-6-v1") && table.contains("built-in"), "{table}");
    assert!(table.contains("No endpoint configured"), "{table}");
    assert!(table.lines().any(|l| l.contains("claude-opus-4-6 ") && l.contains('$')), "prices in dollars: {table}");
}

fn models_list_follows_the_first_endpoints_region_and_the_geo_setting(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    srv.ccag(&cfg, &["endpoints", "create", "--name", "backup", "--region", "us-west-2", "--priority", "5"]).ok();
    srv.ccag(&cfg, &["endpoints", "create", "--name", "frankfurt", "--region", "eu-central-1", "--priority", "1"]).ok();
    let list = srv.ccag(&cfg, &["models", "list", "--json"]).json();
    assert_eq!((s(&list["region"]), s(&list["endpoint"]), s(&list["geo"])), ("eu-central-1", "frankfurt", "eu"));
    let regional = catalogued(&list, "claude-opus-4-6").clone();
    assert_eq!(regional["bedrock_id"], "eu.anthropic.claude-opus-4-6-v1");

    srv.ccag(&cfg, &["settings", "set", "routing.geo", "global"]).ok();
    let list = srv.ccag(&cfg, &["models", "list", "--json"]).json();
    let global = catalogued(&list, "claude-opus-4-6");
    assert_eq!(global["bedrock_id"], "global.anthropic.claude-opus-4-6-v1");
    // A geo profile costs the regional premium over the global one.
    let input = |m: &Value| m["input_micro_usd_per_mtok"].as_i64().unwrap();
    assert!(input(&regional) > input(global), "{regional} vs {global}");
    let prices = srv.ccag(&cfg, &["prices", "list", "--json"]).json();
    let row = prices.as_array().unwrap().iter().find(|p| p["model"] == "claude-opus-4-6").unwrap();
    assert_eq!(row["input_micro_usd"], input(global), "the global profile pays the price as set");
}

fn models_list_shows_mappings_beside_the_built_in_models(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
    srv.ccag(&cfg, &["models", "create", "--anthropic-id", "claude-opus-4-6", "--bedrock-id", arn]).ok();
    srv.ccag(
        &cfg,
        &[
            "models",
            "create",
            "--anthropic-id",
            "house-model",
            "--bedrock-id",
            "us.anthropic.claude-haiku-4-5-20251001-v1:0",
        ],
    )
    .ok();
    let list = srv.ccag(&cfg, &["models", "list", "--json"]).json();
    let opus = catalogued(&list, "claude-opus-4-6");
    assert_eq!((s(&opus["bedrock_id"]), s(&opus["source"])), (arn, "built-in, mapped"));
    assert!(s(&opus["mapping_id"]).starts_with("mdl_"), "{opus}");
    let house = catalogued(&list, "house-model");
    assert_eq!(house["source"], "mapping");
    assert_eq!(house["price_model"], "claude-haiku-4-5", "priced by the Bedrock model it runs on: {house}");
    let mappings = srv.ccag(&cfg, &["models", "list", "--mappings", "--json"]).json();
    assert_eq!(mappings.as_array().unwrap().len(), 2, "{mappings}");
    srv.ccag(&cfg, &["models", "list", "--all"]).fails(2);
}

fn team_and_user_tables_name_members_and_teams(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    srv.ccag(&cfg, &["users", "create", "--email", "ann@example.com"]).ok();
    srv.ccag(&cfg, &["teams", "create", "--name", "research"]).ok();
    let team = srv.ccag(&cfg, &["teams", "add-member", "research", "ann@example.com", "--json"]).json();
    assert_eq!(team["members"], serde_json::json!(["ann@example.com"]), "{team}");
    assert!(s(&team["member_ids"][0]).starts_with("usr_"), "ids stay in the JSON: {team}");
    let teams = srv.ccag(&cfg, &["teams", "list"]).ok().stdout.clone();
    assert!(teams.contains("ann@example.com") && !teams.contains("usr_"), "{teams}");
    let users = srv.ccag(&cfg, &["users", "list"]).ok().stdout.clone();
    assert!(users.lines().any(|l| l.contains("ann@example.com") && l.contains("research")), "{users}");
}

fn tables_show_local_times_and_json_keeps_rfc3339(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let u = srv.ccag(&cfg, &["users", "create", "--email", "tz@example.com", "--json"]).json();
    let created = s(&u["created_at"]).to_string();
    assert!(created.ends_with('Z') && created.contains('T'), "RFC 3339 in UTC in JSON: {created}");
    // A POSIX TZ five and a half hours east of UTC.
    let table = srv.ccag_env(&cfg, &[("TZ", "IST-5:30")], &["users", "get", "tz@example.com"]).ok().stdout.clone();
    let line = table.lines().find(|l| l.starts_with("created_at")).unwrap_or_else(|| panic!("{table}"));
    assert!(line.ends_with("+05:30"), "{line}");
    let utc = chrono::DateTime::parse_from_rfc3339(&created).unwrap();
    let local = (utc + chrono::Duration::minutes(330)).format("%Y-%m-%d %H:%M:%S").to_string();
    assert!(line.contains(&local), "{line} should show {local}");
}

fn tables_show_money_as_dollars_and_json_as_micro_usd(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    srv.ccag(&cfg, &["budgets", "set", "--org", "--period", "monthly", "--limit-usd", "12.5"]).ok();
    let table = srv.ccag(&cfg, &["budgets", "list"]).ok().stdout.clone();
    assert!(table.contains("$12.50"), "{table}");
    let json = srv.ccag(&cfg, &["budgets", "list", "--json"]).json();
    assert_eq!(json[0]["limit_micro_usd"], 12_500_000, "{json}");
    let prices = srv.ccag(&cfg, &["prices", "list"]).ok().stdout.clone();
    assert!(prices.lines().any(|l| l.contains("claude-opus-4-6") && l.contains("$5.00")), "{prices}");
}

fn refusals_name_the_field(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let refused = |args: &[&str], field: &str| {
        let r = srv.ccag(&cfg, args);
        r.fails(8);
        assert!(r.stderr.contains(&format!("{field}: ")), "{args:?} should name {field}: {r:#?}");
    };
    refused(&["users", "create", "--email", "<ann>@example.com"], "email");
    refused(&["keys", "create", "--name", "k", "--ttl-days", "100000"], "ttl_days");
    refused(
        &["endpoints", "create", "--name", "x", "--region", "us-east-1", "--role-arn", "arn:aws:iam::12:role/x"],
        "role_arn",
    );
    refused(&["endpoints", "create", "--name", "x", "--region", "mars-1"], "region");
    refused(&["budgets", "set", "--org", "--period", "daily", "--limit-usd", "0.0000001"], "limit_usd");
    refused(
        &[
            "budgets",
            "set",
            "--org",
            "--period",
            "daily",
            "--limit-usd",
            "5",
            "--policy",
            "50:shape:999999999,100:block",
        ],
        "policy",
    );
    refused(&["users", "update", ADMIN, "--rpm", "4000000000"], "rpm");
    // Emails are one user whatever the case of their domain.
    srv.ccag(&cfg, &["users", "create", "--email", "Ann@Example.COM"]).ok();
    assert_eq!(srv.ccag(&cfg, &["users", "get", "Ann@example.com", "--json"]).json()["email"], "Ann@example.com");
    srv.ccag(&cfg, &["users", "create", "--email", "Ann@example.com"]).fails(7);
}

fn scim_tokens_are_shown_once_listed_without_secrets_and_admin_only(env: Env) {
    let srv = env.start();
    let admin = srv.admin(&env);
    srv.ccag(
        &admin,
        &[
            "idps",
            "create",
            "--name",
            "corp",
            "--issuer",
            "http://127.0.0.1:9/corp",
            "--client-id",
            "gw",
            "--skip-discovery",
        ],
    )
    .ok();
    let t = srv.ccag(&admin, &["scim", "tokens", "create", "--idp", "corp", "--name", "entra", "--json"]).json();
    let token = s(&t["token"]).to_string();
    assert!(token.starts_with("scim-ccag-") && token.len() > 40, "{t}");
    assert_eq!((s(&t["idp"]), s(&t["name"])), ("corp", "entra"));
    let list = srv.ccag(&admin, &["scim", "tokens", "list", "--idp", "corp", "--json"]).json();
    assert!(has(&list, "id", s(&t["id"])) && !list.to_string().contains(&token), "{list}");
    srv.ccag(&admin, &["scim", "tokens", "create", "--idp", "nope"]).fails(6);
    srv.ccag_stdin(&admin, &["users", "create", "--email", "sam@example.com", "--password-stdin"], "sam-password-1\n")
        .ok();
    let sam = srv.login_as(&env, "sam@example.com", "sam-password-1");
    srv.ccag(&sam, &["scim", "tokens", "create", "--idp", "corp"]).fails(5);
    srv.ccag(&sam, &["scim", "tokens", "list"]).fails(5);
    let revoked = srv.ccag(&admin, &["scim", "tokens", "revoke", s(&t["id"]), "--json"]).json();
    assert_eq!(revoked["revoked"], true);
}

#[test]
fn completions_and_the_man_page_need_no_control_plane() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccag")).args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("notifications") && text.contains("budgets"), "{shell}: {text}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ccag")).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && page.starts_with(".ie") && page.contains(".TH ccag 1"), "{page}");
    assert!(page.contains("CCAG NOTIFICATIONS") && page.contains("\\-\\-endpoint"), "{page}");
}
