//! Multi-endpoint routing through the CLI: endpoints with their
//! credentials, scope, models and health; teams' routing; the routing
//! settings. Each test runs on SQLite and on PostgreSQL.

use std::time::Duration;

use ccag_proto::config::v1 as dp;
use ccag_proto::routing::{bucket_of, LATENCY_BUCKETS};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::Value;

use super::{has, s};
use crate::common::{on_both_backends, Backend, Env, Server};

const DATAPLANE_TOKEN: &str = "dp-routing-token-0123456789";
const ROLE: &str = "arn:aws:iam::111111111111:role/ccag";
const API_KEY: &str = "ABSKc2VjcmV0LWJlZHJvY2sta2V5LTEyMzQ1Njc4OTA=";
const PROFILE: &str = "arn:aws:bedrock:eu-west-1:111111111111:application-inference-profile/a1b2c3d4e5f6";

on_both_backends!(
    endpoints_take_credentials_scope_models_and_profiles,
    an_endpoints_api_key_is_never_shown_and_kept_on_update,
    endpoint_refusals_name_the_field,
    teams_route_to_endpoints_named_in_order,
    routing_settings_are_validated,
    endpoint_health_adds_up_the_data_planes_reports,
);

fn names(v: &Value) -> Vec<&str> {
    v.as_array().unwrap_or_else(|| panic!("not an array: {v}")).iter().map(s).collect()
}

fn endpoints_take_credentials_scope_models_and_profiles(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let e = srv
        .ccag(
            &cfg,
            &[
                "endpoints",
                "create",
                "--name",
                "eu-acct",
                "--region",
                "eu-west-1",
                "--endpoint-url",
                "https://vpce-0abc.bedrock-runtime.eu-west-1.vpce.amazonaws.com/",
                "--role-arn",
                ROLE,
                "--external-id",
                "ext-123",
                "--per-user-sessions",
                "--priority",
                "2",
                "--weight",
                "3",
                "--scope",
                "eu",
                "--models",
                "claude-sonnet-4-5,claude-haiku-4-5,claude-sonnet-4-5",
                "--profile-arn",
                &format!("claude-sonnet-4-5={PROFILE}"),
                "--json",
            ],
        )
        .json();
    let id = s(&e["id"]).to_string();
    assert_eq!(e["endpoint_url"], "https://vpce-0abc.bedrock-runtime.eu-west-1.vpce.amazonaws.com", "{e}");
    assert_eq!(e["credentials"], "assume-role", "{e}");
    assert_eq!((e["role_arn"].as_str(), e["external_id"].as_str()), (Some(ROLE), Some("ext-123")), "{e}");
    assert_eq!((e["per_user_sessions"].as_bool(), e["has_api_key"].as_bool()), (Some(true), Some(false)), "{e}");
    assert_eq!((e["priority"].as_i64(), e["weight"].as_u64()), (Some(2), Some(3)), "{e}");
    assert_eq!((e["scope"].as_str(), e["scope_prefix"].as_str()), (Some("explicit"), Some("eu")), "{e}");
    assert_eq!(names(&e["models"]), vec!["claude-sonnet-4-5", "claude-haiku-4-5"], "each model once: {e}");
    assert_eq!(e["profile_arns"]["claude-sonnet-4-5"], PROFILE, "{e}");

    // The default: weight 1, the default chain, the region's geo, every model.
    let plain = srv.ccag(&cfg, &["endpoints", "create", "--name", "us", "--region", "us-east-1", "--json"]).json();
    assert_eq!((plain["weight"].as_u64(), plain["credentials"].as_str()), (Some(1), Some("default")), "{plain}");
    assert_eq!((plain["scope"].as_str(), plain["models"].as_array().map(Vec::len)), (Some("geo"), Some(0)), "{plain}");

    let got = srv.ccag(&cfg, &["endpoints", "get", "eu-acct", "--json"]).json();
    assert_eq!(got["weight"], 3);
    assert_eq!(got["stats_window_secs"], 900, "get shows the last 15 minutes' health: {got}");

    // Clearing the role clears what goes with it.
    let upd = srv.ccag(&cfg, &["endpoints", "update", &id, "--role-arn", "", "--json"]).json();
    assert_eq!(upd["credentials"], "default", "{upd}");
    assert_eq!((upd["external_id"].as_str(), upd["per_user_sessions"].as_bool()), (Some(""), Some(false)), "{upd}");
    let upd = srv
        .ccag(
            &cfg,
            &["endpoints", "update", "eu-acct", "--models", "", "--clear-profile-arns", "--scope", "global", "--json"],
        )
        .json();
    assert_eq!(upd["models"], serde_json::json!([]), "{upd}");
    assert_eq!(upd["profile_arns"], serde_json::json!({}), "{upd}");
    assert_eq!((upd["scope"].as_str(), upd["scope_prefix"].as_str()), (Some("global"), Some("")), "{upd}");
    assert_eq!(upd["weight"], 3, "options not given are kept: {upd}");
    let upd = srv.ccag(&cfg, &["endpoints", "update", "eu-acct", "--disabled", "--weight", "1000", "--json"]).json();
    assert_eq!((upd["enabled"].as_bool(), upd["weight"].as_u64()), (Some(false), Some(1000)), "{upd}");
    let upd = srv.ccag(&cfg, &["endpoints", "update", "eu-acct", "--enabled", "--json"]).json();
    assert_eq!(upd["enabled"], true, "{upd}");

    let table = srv.ccag(&cfg, &["endpoints", "list"]).ok().stdout.clone();
    for h in ["NAME", "REGION", "CREDENTIALS", "PRIORITY", "WEIGHT", "ENABLED", "CIRCUIT", "REQUESTS", "P50", "P99"] {
        assert!(table.contains(h), "{h}: {table}");
    }
    assert!(table.contains("eu-acct") && table.contains("time to first byte in ms"), "{table}");
}

fn an_endpoints_api_key_is_never_shown_and_kept_on_update(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let created = srv.ccag_stdin(
        &cfg,
        &["endpoints", "create", "--name", "keyed", "--region", "us-west-2", "--api-key-stdin", "--json"],
        &format!("{API_KEY}\n"),
    );
    let e = created.json();
    assert_eq!((e["credentials"].as_str(), e["has_api_key"].as_bool()), (Some("api-key"), Some(true)), "{e}");
    let kept = srv.ccag(&cfg, &["endpoints", "update", "keyed", "--weight", "7", "--json"]).json();
    assert_eq!((kept["has_api_key"].as_bool(), kept["weight"].as_u64()), (Some(true), Some(7)), "{kept}");
    // A role beside the key is refused, naming the role.
    let r = srv.ccag(&cfg, &["endpoints", "update", "keyed", "--role-arn", ROLE]);
    r.fails(8);
    assert!(r.stderr.contains("role_arn: "), "{r:?}");
    let shown = [
        srv.ccag(&cfg, &["endpoints", "get", "keyed", "--json"]).ok().stdout.clone(),
        srv.ccag(&cfg, &["endpoints", "get", "keyed"]).ok().stdout.clone(),
        srv.ccag(&cfg, &["endpoints", "list", "--json"]).ok().stdout.clone(),
        srv.ccag(&cfg, &["audit", "list", "--resource-type", "endpoint", "--json", "--all"]).ok().stdout.clone(),
        created.stdout.clone(),
    ];
    for text in &shown {
        assert!(!text.contains(&API_KEY[..16]) && !text.contains("c2VjcmV0"), "the key leaked: {text}");
    }
    let audit = srv.ccag(&cfg, &["audit", "list", "--action", "endpoint.create", "--json"]).json();
    assert_eq!(audit[0]["after_json"]["has_api_key"], true, "the audit log says a key is set: {audit}");
    // Empty input removes it; a role may then be set.
    let cleared = srv.ccag_stdin(&cfg, &["endpoints", "update", "keyed", "--api-key-stdin", "--json"], "\n").json();
    assert_eq!((cleared["credentials"].as_str(), cleared["has_api_key"].as_bool()), (Some("default"), Some(false)));
    let role = srv.ccag(&cfg, &["endpoints", "update", "keyed", "--role-arn", ROLE, "--json"]).json();
    assert_eq!(role["credentials"], "assume-role", "{role}");
    // Create refuses an empty key on stdin.
    srv.ccag_stdin(&cfg, &["endpoints", "create", "--name", "k2", "--region", "us-east-1", "--api-key-stdin"], "\n")
        .fails(2);
}

fn endpoint_refusals_name_the_field(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let refused = |args: &[&str], field: &str| {
        let mut all = vec!["endpoints", "create", "--name", "x", "--region", "eu-west-1"];
        all.extend_from_slice(args);
        let r = srv.ccag(&cfg, &all);
        r.fails(8);
        assert!(r.stderr.contains(&format!("{field}: ")), "{args:?} should name {field}: {r:#?}");
    };
    refused(&["--weight", "0"], "weight");
    refused(&["--weight", "1001"], "weight");
    refused(&["--endpoint-url", "http://bedrock.example"], "endpoint_url");
    refused(&["--endpoint-url", "https://bedrock.example/model/x"], "endpoint_url");
    refused(&["--endpoint-url", "https://10.1.2.3"], "endpoint_url");
    refused(&["--endpoint-url", "http://127.0.0.1:9"], "endpoint_url");
    refused(&["--external-id", "ext-1"], "external_id");
    refused(&["--scope", "mars"], "scope_prefix");
    refused(&["--models", "claude sonnet"], "models");
    refused(&["--profile-arn", "claude-sonnet-4-5=arn:aws:bedrock:eu-west-1:111111111111:model/x"], "profile_arns");
    refused(
        &["--profile-arn", "claude-sonnet-4-5=arn:aws:bedrock:us-east-1:111111111111:application-inference-profile/a1"],
        "profile_arns",
    );
    let both = srv.ccag_stdin(
        &cfg,
        &["endpoints", "create", "--name", "x", "--region", "us-east-1", "--role-arn", ROLE, "--api-key-stdin"],
        &format!("{API_KEY}\n"),
    );
    both.fails(8);
    assert!(both.stderr.contains("api_key: ") && !both.stderr.contains(&API_KEY[..16]), "{both:?}");
    let r = srv.ccag(&cfg, &["endpoints", "list", "--window", "100000"]);
    r.fails(8);
    assert!(r.stderr.contains("stats_window_secs: "), "{r:?}");
    // A region change must keep the profiles in it.
    srv.ccag(
        &cfg,
        &["endpoints", "create", "--name", "p", "--region", "eu-west-1", "--profile-arn", &format!("m={PROFILE}")],
    )
    .ok();
    let r = srv.ccag(&cfg, &["endpoints", "update", "p", "--region", "us-east-1"]);
    r.fails(8);
    assert!(r.stderr.contains("profile_arns: "), "{r:?}");
    assert!(!has(&srv.ccag(&cfg, &["endpoints", "list", "--json"]).json(), "name", "x"));

    // Loopback is allowed when CCAG_OUTBOUND_ALLOW_CIDRS says so (a test double).
    drop(srv);
    let srv = env.start_with(&[("CCAG_OUTBOUND_ALLOW_CIDRS", "127.0.0.0/8")]);
    let cfg = srv.admin(&env);
    let e = srv
        .ccag(
            &cfg,
            &[
                "endpoints",
                "create",
                "--name",
                "double",
                "--region",
                "us-east-1",
                "--endpoint-url",
                "http://127.0.0.1:9",
                "--json",
            ],
        )
        .json();
    assert_eq!(e["endpoint_url"], "http://127.0.0.1:9", "{e}");
}

fn teams_route_to_endpoints_named_in_order(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    let a = srv.ccag(&cfg, &["endpoints", "create", "--name", "a", "--region", "us-east-1", "--json"]).json();
    let b = srv.ccag(&cfg, &["endpoints", "create", "--name", "b", "--region", "us-west-2", "--json"]).json();
    srv.ccag(&cfg, &["teams", "create", "--name", "eng"]).ok();
    let t = srv.ccag(&cfg, &["teams", "get", "eng", "--json"]).json();
    assert_eq!((t["routing"].as_str(), t["endpoints"].as_array().map(Vec::len)), (Some("default"), Some(0)), "{t}");

    let t = srv
        .ccag(
            &cfg,
            &[
                "teams",
                "update",
                "eng",
                "--routing",
                "round-robin",
                "--endpoints",
                &format!("b,{}", s(&a["id"])),
                "--json",
            ],
        )
        .json();
    assert_eq!(t["routing"], "round-robin", "{t}");
    assert_eq!(names(&t["endpoints"]), vec!["b", "a"], "in the order given: {t}");
    assert_eq!(names(&t["endpoint_ids"]), vec![s(&b["id"]), s(&a["id"])], "{t}");
    let table = srv.ccag(&cfg, &["teams", "list"]).ok().stdout.clone();
    assert!(table.contains("ROUTING") && table.contains("round-robin") && table.contains("b, a"), "{table}");
    let shown = srv.ccag(&cfg, &["teams", "get", "eng"]).ok().stdout.clone();
    assert!(shown.lines().any(|l| l.starts_with("endpoints") && l.contains("b, a")), "{shown}");

    // The strategy alone leaves the list.
    let t = srv.ccag(&cfg, &["teams", "update", "eng", "--routing", "adaptive", "--json"]).json();
    assert_eq!((t["routing"].as_str(), names(&t["endpoints"])), (Some("adaptive"), vec!["b", "a"]), "{t}");

    let missing = srv.ccag(&cfg, &["teams", "update", "eng", "--endpoints", "a,nowhere"]);
    missing.fails(6);
    assert!(missing.stderr.contains("nowhere"), "{missing:?}");
    let twice = srv.ccag(&cfg, &["teams", "update", "eng", "--endpoints", &format!("a,{}", s(&a["id"]))]);
    twice.fails(8);
    assert!(twice.stderr.contains("endpoints: "), "{twice:?}");
    assert_eq!(names(&srv.ccag(&cfg, &["teams", "get", "eng", "--json"]).json()["endpoints"]), vec!["b", "a"]);

    let audit = srv.ccag(&cfg, &["audit", "list", "--action", "team.update", "--json"]).json();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["after_json"]["endpoint_ids"] == serde_json::json!([b["id"], a["id"]])),
        "{audit}"
    );

    // Deleting an endpoint takes it off the lists, but never empties one.
    srv.ccag(&cfg, &["endpoints", "delete", "a"]).ok();
    assert_eq!(names(&srv.ccag(&cfg, &["teams", "get", "eng", "--json"]).json()["endpoints"]), vec!["b"]);
    let last = srv.ccag(&cfg, &["endpoints", "delete", "b"]);
    last.fails(1);
    assert!(last.stderr.contains("eng"), "{last:?}");
    let deleted = srv.ccag(&cfg, &["audit", "list", "--action", "endpoint.delete", "--json"]).json();
    assert_eq!(deleted[0]["before_json"]["removed_from_teams"], serde_json::json!([t["id"]]), "{deleted}");

    let t = srv.ccag(&cfg, &["teams", "update", "eng", "--routing", "default", "--endpoints", "", "--json"]).json();
    assert_eq!((t["routing"].as_str(), t["endpoints"].as_array().map(Vec::len)), (Some("default"), Some(0)), "{t}");
    srv.ccag(&cfg, &["endpoints", "delete", "b"]).ok();
}

fn routing_settings_are_validated(env: Env) {
    let srv = env.start();
    let cfg = srv.admin(&env);
    for (k, v) in [
        ("routing.strategy", "adaptive"),
        ("routing.max_attempts", "3"),
        ("routing.attempt_timeout_ms", "2000"),
        ("routing.breaker_failures", "5"),
        ("routing.breaker_cooldown_ms", "30000"),
    ] {
        assert_eq!(srv.ccag(&cfg, &["settings", "set", k, v, "--json"]).json()["value"], v);
    }
    for (k, v) in [
        ("routing.strategy", "random"),
        ("routing.max_attempts", "0"),
        ("routing.max_attempts", "11"),
        ("routing.attempt_timeout_ms", "99"),
        ("routing.breaker_failures", "101"),
        ("routing.breaker_cooldown_ms", "3600001"),
    ] {
        let r = srv.ccag(&cfg, &["settings", "set", k, v]);
        r.fails(8);
        assert!(r.stderr.contains(k), "{k}={v}: {r:?}");
    }
    assert_eq!(srv.ccag(&cfg, &["settings", "get", "routing.strategy", "--json"]).json()["value"], "adaptive");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock after 1970").as_millis() as u64
}

fn buckets(latencies: &[(u64, u64)]) -> Vec<u64> {
    let mut b = vec![0u64; LATENCY_BUCKETS];
    for (ms, n) in latencies {
        b[bucket_of(*ms)] += n;
    }
    b
}

/// Sends one ReportUsage as the data plane `dataplane`.
fn report(srv: &Server, dataplane: &str, records: Vec<dp::UsageRecord>, endpoints: Vec<dp::EndpointReport>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    rt.block_on(async {
        let ch = tonic::transport::Endpoint::from_shared(srv.grpc.clone())
            .expect("a URL")
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connecting");
        let token: tonic::metadata::MetadataValue<_> = format!("Bearer {DATAPLANE_TOKEN}").parse().expect("ASCII");
        let mut client = dp::data_plane_service_client::DataPlaneServiceClient::with_interceptor(
            ch,
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", token.clone());
                Ok(r)
            },
        );
        client
            .report_usage(dp::ReportUsageRequest { dataplane_id: dataplane.into(), records, endpoints })
            .await
            .expect("ReportUsage");
    });
}

/// One row of the usage log, read from the database.
fn stored_record(env: &Env, request_id: &str) -> (String, i64) {
    let url = match env.backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rw", env.data_dir().join("ccag.db").display()),
        Backend::Postgres => env.database_url.clone().expect("a database URL"),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    rt.block_on(async {
        let db = Database::connect(url).await.expect("opening the database");
        let sql = format!("SELECT endpoint_id, attempts FROM usage_records WHERE request_id = '{request_id}'");
        let row = db
            .query_one(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("query")
            .expect("the record is stored");
        let out =
            (row.try_get::<String>("", "endpoint_id").unwrap(), i64::from(row.try_get::<i32>("", "attempts").unwrap()));
        db.close().await.ok();
        out
    })
}

fn endpoint_health_adds_up_the_data_planes_reports(env: Env) {
    let srv = env.start_with(&[("CCAG_DATAPLANE_TOKEN", DATAPLANE_TOKEN)]);
    let cfg = srv.admin(&env);
    let a = srv.ccag(&cfg, &["endpoints", "create", "--name", "a", "--region", "us-east-1", "--json"]).json();
    let b = srv.ccag(&cfg, &["endpoints", "create", "--name", "b", "--region", "us-west-2", "--json"]).json();
    let (a_id, b_id) = (s(&a["id"]).to_string(), s(&b["id"]).to_string());
    let now = now_ms();
    let ep =
        |id: &str, until_ms: u64, n: (u64, u64, u64), lat: &[(u64, u64)], c: dp::CircuitState| dp::EndpointReport {
            endpoint_id: id.into(),
            requests: n.0,
            throttles: n.1,
            errors: n.2,
            latency_buckets: buckets(lat),
            circuit: c as i32,
            until_ms,
        };
    let record = dp::UsageRecord {
        request_id: "routed-1".into(),
        operation: "messages".into(),
        model: "claude-haiku-4-5".into(),
        status: 200,
        outcome: "ok".into(),
        started_at_ms: now - 1000,
        endpoint_id: b_id.clone(),
        attempts: 2,
        ..Default::default()
    };
    report(
        &srv,
        "dp-1",
        vec![record],
        vec![
            ep(&a_id, now, (60, 3, 1), &[(40, 58)], dp::CircuitState::Closed),
            ep(&b_id, now, (10, 0, 0), &[(200, 10)], dp::CircuitState::Closed),
            // Deleted meanwhile, or never known: skipped, the report stands.
            ep("ep_gone", now, (5, 0, 0), &[], dp::CircuitState::Open),
            // Outside the default 15 minutes.
            ep(&b_id, now - 20 * 60_000, (100, 50, 0), &[], dp::CircuitState::Open),
        ],
    );
    // The same minute again from dp-1 adds up; dp-2 sees a open.
    report(
        &srv,
        "dp-1",
        vec![],
        vec![ep(&a_id, now, (40, 0, 0), &[(40, 40), (900, 1), (3000, 1)], dp::CircuitState::Closed)],
    );
    report(&srv, "dp-2", vec![], vec![ep(&a_id, now, (1, 0, 1), &[], dp::CircuitState::Open)]);

    let list = srv.ccag(&cfg, &["endpoints", "list", "--json"]).json();
    let of = |list: &Value, id: &str| list.as_array().unwrap().iter().find(|e| e["id"] == id).cloned().unwrap();
    let ea = of(&list, &a_id);
    assert_eq!(
        (ea["requests"].as_u64(), ea["throttles"].as_u64(), ea["errors"].as_u64()),
        (Some(101), Some(3), Some(2)),
        "{ea}"
    );
    // 98 at 40 ms, one at 900 ms, one at 3 s.
    assert_eq!((ea["p50_ms"].as_u64(), ea["p99_ms"].as_u64()), (Some(50), Some(1000)), "{ea}");
    assert_eq!(ea["circuit"], "open", "the worst of the data planes' latest: {ea}");
    assert!(!s(&ea["reported_at"]).is_empty(), "{ea}");
    let eb = of(&list, &b_id);
    assert_eq!(
        (eb["requests"].as_u64(), eb["circuit"].as_str(), eb["p50_ms"].as_u64()),
        (Some(10), Some("closed"), Some(250)),
        "{eb}"
    );
    let hour = srv.ccag(&cfg, &["endpoints", "list", "--window", "3600", "--json"]).json();
    let eb = of(&hour, &b_id);
    assert_eq!(
        (eb["requests"].as_u64(), eb["throttles"].as_u64(), eb["stats_window_secs"].as_u64()),
        (Some(110), Some(50), Some(3600)),
        "{eb}"
    );
    assert_eq!(eb["circuit"], "closed", "dp-1's latest report of b is closed: {eb}");
    let table = srv.ccag(&cfg, &["endpoints", "list"]).ok().stdout.clone();
    assert!(table.contains("open") && table.contains("101"), "{table}");
    assert!(srv.ccag(&cfg, &["endpoints", "get", "a"]).ok().stdout.contains("open"));

    // Each usage record names its endpoint and the attempts it took.
    assert_eq!(stored_record(&env, "routed-1"), (b_id.clone(), 2));
}
