//! The notification outbox on a real database: fan-out, claims and
//! settling, on SQLite and PostgreSQL; on PostgreSQL, two senders claiming
//! at once never take the same delivery.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use ccag_controlplane::notify::outbox::{self, Retry};
use ccag_controlplane::notify::{emit, Event, EventType};
use ccag_controlplane::store::{
    self, entities::notification_destinations as destinations, Backend as Db, DeliveryState,
};
use chrono::Utc;
use common::{Backend, Env};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};
use serde_json::json;

async fn open(env: &Env) -> (DatabaseConnection, Db) {
    let s = store::open(env.database_url.as_deref(), &env.data_dir()).await.expect("opening the database");
    (s.db, s.backend)
}

async fn destination(db: &DatabaseConnection, id: &str, events: &str) {
    let now = Utc::now();
    destinations::ActiveModel {
        id: Set(id.into()),
        name: Set(id.into()),
        kind: Set("webhook".into()),
        target: Set("http://127.0.0.1:9/".into()),
        events: Set(events.into()),
        enabled: Set(true),
        role_arn: Set(String::new()),
        secret_enc: Set(String::new()),
        previous_secret_enc: Set(String::new()),
        previous_secret_until: Set(None),
        failures: Set(0),
        backoff_until: Set(None),
        failing_since: Set(None),
        failing_reported: Set(false),
        last_error: Set(String::new()),
        last_success_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .expect("inserting a destination");
}

fn key_event(i: usize) -> Event {
    Event::new(
        EventType::KeyCreated,
        format!("key.created:k{i}"),
        json!({"kind": "key", "id": format!("k{i}")}),
        json!({}),
    )
}

fn skip_postgres() -> bool {
    std::env::var_os("CCAG_TEST_SKIP_POSTGRES").is_some()
}

async fn an_event_with_a_known_dedupe_key_is_written_once(env: Env) {
    let (db, _) = open(&env).await;
    assert!(emit(&db, &key_event(1)).await.unwrap());
    assert!(!emit(&db, &key_event(1)).await.unwrap(), "the second write of one event is dropped");
}

async fn fan_out_makes_one_delivery_per_matching_destination_once(env: Env) {
    let (db, b) = open(&env).await;
    destination(&db, "all", "").await;
    destination(&db, "keys", "key").await;
    destination(&db, "budgets", "budget").await;
    for i in 0..3 {
        emit(&db, &key_event(i)).await.unwrap();
    }
    assert_eq!(outbox::fan_out(&db, b).await.unwrap(), 6);
    assert_eq!(outbox::fan_out(&db, b).await.unwrap(), 0, "events already fanned out are not again");
    let ready: HashSet<String> = outbox::ready_destinations(&db).await.unwrap().into_iter().map(|d| d.id).collect();
    assert_eq!(ready, HashSet::from(["all".to_string(), "keys".to_string()]));
}

async fn a_claimed_delivery_is_not_claimed_again_until_its_claim_lapses(env: Env) {
    let (db, b) = open(&env).await;
    destination(&db, "d", "").await;
    emit(&db, &key_event(1)).await.unwrap();
    outbox::fan_out(&db, b).await.unwrap();
    let first = outbox::claim(&db, b, "d", "cp-a", 5, Duration::from_millis(300)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(outbox::claim(&db, b, "d", "cp-b", 5, Duration::from_secs(60)).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    let again = outbox::claim(&db, b, "d", "cp-b", 5, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.len(), 1, "a lapsed claim is taken over");
    // The first holder's late outcome changes nothing: the row is cp-b's now.
    let settled = outbox::settle(&db, &first[0].delivery, "cp-a", Ok(200), &Retry::default()).await.unwrap();
    assert_eq!(settled, None, "nothing of cp-a's was settled");
    let log = ccag_controlplane::store::entities::notification_deliveries::Entity::find().all(&db).await.unwrap();
    assert_eq!((log[0].state.as_str(), log[0].claimed_by.as_str()), ("pending", "cp-b"));
}

async fn a_failure_backs_the_destination_off_and_past_the_window_the_delivery_is_dead(env: Env) {
    let (db, b) = open(&env).await;
    destination(&db, "d", "").await;
    emit(&db, &key_event(1)).await.unwrap();
    emit(&db, &key_event(2)).await.unwrap();
    outbox::fan_out(&db, b).await.unwrap();
    let retry =
        Retry { window: Duration::from_secs(3600), base: Duration::from_secs(60), max: Duration::from_secs(600) };
    let c = outbox::claim(&db, b, "d", "cp-a", 1, Duration::from_secs(60)).await.unwrap();
    let settled = outbox::settle(&db, &c[0].delivery, "cp-a", Err((503, "answered 503".into())), &retry).await.unwrap();
    assert_eq!(settled, Some(DeliveryState::Pending), "to be tried again");
    assert!(outbox::ready_destinations(&db).await.unwrap().is_empty(), "a failing destination waits out its backoff");
    let d = destinations::Entity::find_by_id("d").one(&db).await.unwrap().unwrap();
    assert!(d.failing_since.is_some() && d.last_error == "answered 503" && d.failures == 1);
    let short = Retry { window: Duration::from_millis(1), ..retry };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(outbox::expire(&db, &short).await.unwrap(), 2, "both, tried or not, are dead past the window");
}

common::on_both_backends!(
    async:
    an_event_with_a_known_dedupe_key_is_written_once,
    fan_out_makes_one_delivery_per_matching_destination_once,
    a_claimed_delivery_is_not_claimed_again_until_its_claim_lapses,
    a_failure_backs_the_destination_off_and_past_the_window_the_delivery_is_dead,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_senders_claiming_at_once_on_postgres_never_take_the_same_delivery() {
    if skip_postgres() {
        return;
    }
    let env = Env::new(Backend::Postgres);
    let (db, b) = open(&env).await;
    destination(&db, "d", "").await;
    for i in 0..60 {
        emit(&db, &key_event(i)).await.unwrap();
    }
    outbox::fan_out(&db, b).await.unwrap();
    let sender = |holder: &'static str| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = outbox::claim(&db, b, "d", holder, 3, Duration::from_secs(60)).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.delivery.id));
            }
        })
    };
    let (a, c) = (sender("cp-a"), sender("cp-b"));
    let (a, c) = (a.await.unwrap(), c.await.unwrap());
    let a_set: HashSet<_> = a.iter().cloned().collect();
    let c_set: HashSet<_> = c.iter().cloned().collect();
    assert!(a_set.is_disjoint(&c_set), "a delivery claimed twice");
    assert_eq!(a.len() + c.len(), 60);
}
