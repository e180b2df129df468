//! Replicas starting together on one empty PostgreSQL database: they take
//! turns at the schema and the first-start rows, so none fails on a
//! duplicate and every one serves.

use super::common::{Backend, Env, Server};

#[test]
fn replicas_starting_at_once_on_an_empty_postgres_all_come_up() {
    if std::env::var_os("CCAG_TEST_SKIP_POSTGRES").is_some() {
        eprintln!("skipped: CCAG_TEST_SKIP_POSTGRES is set");
        return;
    }
    let env = Env::new(Backend::Postgres);
    // Server::start panics (with the log) if a replica exits before it
    // listens, as one that lost a migration race would.
    let servers: Vec<Server> = std::thread::scope(|s| {
        let starting: Vec<_> = (0..3).map(|_| s.spawn(|| Server::start(&env, &[]))).collect();
        starting.into_iter().map(|h| h.join().expect("a replica came up")).collect()
    });
    for server in &servers {
        let ready = ccag_outbound::probe::check(&format!("{}/ready", server.http));
        assert_eq!(ready, Ok(()), "replica at {} is not ready:\n{}", server.http, server.log());
    }
    let log = servers.iter().map(Server::log).collect::<Vec<_>>().join("\n");
    assert!(!log.contains("duplicate key"), "a replica hit a duplicate:\n{log}");
}
