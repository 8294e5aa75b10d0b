//! The store contract, run on SQLite and PostgreSQL from the same code.

use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, ConsumerSpec, Exchange, MemoryBus};
use centralino_proto::v1::{Interaction, InteractionCreated};
use centralino_store::sea_orm::DatabaseConnection;
use centralino_store::{CoreMigrator, inbox, outbox};

fn event(subject: &str) -> centralino_bus::Envelope {
    centralino_bus::new_envelope(
        "test",
        &InteractionCreated {
            interaction: Some(Interaction {
                subject: subject.into(),
                ..Default::default()
            }),
        },
    )
}

pub async fn migrations_apply_once_and_are_idempotent(db: DatabaseConnection) {
    let mut seen = Vec::new();
    let applied = centralino_store::migrate::<CoreMigrator>(&db, |name| seen.push(name.to_owned()))
        .await
        .expect("migrate");
    assert_eq!(
        applied,
        vec![
            "core_0001_inbox_outbox".to_owned(),
            "core_0002_leader_epoch".to_owned()
        ]
    );
    assert_eq!(seen, applied, "progress reported each migration");
    let again = centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate again");
    assert!(again.is_empty(), "nothing left to apply: {again:?}");
}

pub async fn inbox_claims_each_message_once_per_consumer(db: DatabaseConnection) {
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    let txn = centralino_store::begin(&db).await.expect("begin");
    assert!(inbox::claim(&txn, "history", "m1").await.expect("claim"));
    assert!(!inbox::claim(&txn, "history", "m1").await.expect("claim"));
    assert!(
        inbox::claim(&txn, "routing", "m1")
            .await
            .expect("other consumer")
    );
    txn.commit().await.expect("commit");

    // A claim in a rolled-back transaction leaves no trace.
    let txn = centralino_store::begin(&db).await.expect("begin");
    assert!(inbox::claim(&txn, "history", "m2").await.expect("claim"));
    txn.rollback().await.expect("rollback");
    let txn = centralino_store::begin(&db).await.expect("begin");
    assert!(
        inbox::claim(&txn, "history", "m2")
            .await
            .expect("claim after rollback")
    );
    assert!(
        !inbox::claim(&txn, "history", "m1")
            .await
            .expect("committed claim persists")
    );
    txn.commit().await.expect("commit");

    let purged = inbox::purge(&db, chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("purge");
    assert_eq!(purged, 3);
}

pub async fn outbox_rows_commit_with_the_transaction_and_are_relayed(db: DatabaseConnection) {
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    let bus = Arc::new(MemoryBus::new(3));
    let mut sub = bus
        .subscribe(ConsumerSpec::new("app").bind(Exchange::Events, "interaction.#"))
        .await
        .expect("subscribe");

    let rolled_back = event("rolled back");
    let txn = centralino_store::begin(&db).await.expect("begin");
    outbox::enqueue(
        &txn,
        "svc",
        &centralino_bus::Key::event("interaction.sms.created"),
        &rolled_back,
    )
    .await
    .expect("enqueue");
    txn.rollback().await.expect("rollback");

    let committed: Vec<_> = (0..300).map(|i| event(&i.to_string())).collect();
    let txn = centralino_store::begin(&db).await.expect("begin");
    for e in &committed {
        outbox::enqueue(
            &txn,
            "svc",
            &centralino_bus::Key::event("interaction.sms.created"),
            e,
        )
        .await
        .expect("enqueue");
    }
    // Another service's row is not this relay's business.
    outbox::enqueue(
        &txn,
        "other-svc",
        &centralino_bus::Key::event("interaction.sms.created"),
        &event("x"),
    )
    .await
    .expect("enqueue");
    txn.commit().await.expect("commit");
    assert_eq!(outbox::pending(&db, "svc").await.expect("count"), 300);

    let relay = outbox::OutboxRelay::new(db.clone(), bus.clone() as Arc<dyn Bus>, "svc");
    let mut relayed = 0;
    while relayed < 300 {
        let r = relay.relay_once().await.expect("relay");
        assert!(r.published > 0 && r.deferred == 0 && r.parked == 0, "{r:?}");
        relayed += r.published;
    }
    assert_eq!(
        relay.relay_once().await.expect("relay"),
        outbox::RelayReport::default()
    );
    assert_eq!(outbox::pending(&db, "svc").await.expect("count"), 0);
    assert_eq!(outbox::pending(&db, "other-svc").await.expect("count"), 1);

    for e in &committed {
        let d = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("delivery")
            .expect("open");
        assert_eq!(&d.envelope, e, "relayed in order, intact");
        d.ack().await.expect("ack");
    }
}

pub async fn unroutable_outbox_rows_stay_until_they_can_be_published(db: DatabaseConnection) {
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    let bus = Arc::new(MemoryBus::new(3));
    let cmd = event("send");
    let txn = centralino_store::begin(&db).await.expect("begin");
    outbox::enqueue(
        &txn,
        "svc",
        &centralino_bus::Key::command("email.send"),
        &cmd,
    )
    .await
    .expect("enqueue");
    txn.commit().await.expect("commit");
    let relay = outbox::OutboxRelay::new(db.clone(), bus.clone() as Arc<dyn Bus>, "svc");
    let r = relay.relay_once().await.expect("relay");
    assert_eq!(r.deferred, 1, "no email adapter is listening yet: {r:?}");
    assert_eq!(
        outbox::pending(&db, "svc").await.expect("count"),
        1,
        "row kept"
    );
    // Backed off: not retried at once.
    assert_eq!(
        relay.relay_once().await.expect("relay"),
        outbox::RelayReport::default()
    );
    let mut sub = bus
        .subscribe(ConsumerSpec::new("email").bind(Exchange::Commands, "email.send"))
        .await
        .expect("subscribe");
    centralino_test_support::eventually(Duration::from_secs(10), "the retried row", || {
        let relay = &relay;
        async move { (relay.relay_once().await.expect("relay").published == 1).then_some(()) }
    })
    .await;
    let d = sub.next().await.expect("delivery");
    assert_eq!(d.envelope, cmd);
}

pub async fn a_corrupt_row_is_parked_and_does_not_block_the_rest(db: DatabaseConnection) {
    use centralino_store::entities::outbox as row;
    use centralino_store::sea_orm::{ActiveModelTrait as _, Set};
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    let now = chrono::Utc::now();
    row::ActiveModel {
        source: Set("svc".into()),
        exchange: Set("events".into()),
        routing_key: Set("interaction.sms.created".into()),
        envelope: Set(vec![0xff, 0x00, 0xff]),
        created_at: Set(now),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        parked_at: Set(None),
        ..Default::default()
    }
    .insert(&db)
    .await
    .expect("corrupt row");
    let mut bad_id = event("bad id");
    bad_id.message_id = "x".repeat(100);
    let good = event("good");
    let txn = centralino_store::begin(&db).await.expect("begin");
    for e in [&bad_id, &good] {
        outbox::enqueue(
            &txn,
            "svc",
            &centralino_bus::Key::event("interaction.sms.created"),
            e,
        )
        .await
        .expect("enqueue");
    }
    txn.commit().await.expect("commit");

    let bus = Arc::new(MemoryBus::new(3));
    let mut sub = bus
        .subscribe(ConsumerSpec::new("app").bind(Exchange::Events, "interaction.#"))
        .await
        .expect("subscribe");
    let relay = outbox::OutboxRelay::new(db.clone(), bus.clone() as Arc<dyn Bus>, "svc");
    let r = relay.relay_once().await.expect("relay");
    assert_eq!((r.published, r.deferred, r.parked), (1, 0, 2), "{r:?}");
    let d = sub.next().await.expect("delivery");
    assert_eq!(d.envelope, good);
    let parked = outbox::parked(&db, "svc").await.expect("parked");
    assert_eq!(parked.len(), 2);
    assert!(parked.iter().all(|p| p.last_error.is_some()));
    assert_eq!(outbox::pending(&db, "svc").await.expect("count"), 0);
}

pub async fn bulk_claims_return_only_new_messages_and_roll_back(db: DatabaseConnection) {
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    // More than one statement's worth, so the chunking is exercised too.
    let ids: Vec<String> = (0..1_200)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let txn = centralino_store::begin(&db).await.expect("begin");
    let first = inbox::claim_new(&txn, "history", &ids[..800])
        .await
        .expect("claim");
    assert_eq!(first.len(), 800);
    txn.commit().await.expect("commit");
    let txn = centralino_store::begin(&db).await.expect("begin");
    let second = inbox::claim_new(&txn, "history", &ids)
        .await
        .expect("claim");
    assert_eq!(second.len(), 400);
    assert!(ids[800..].iter().all(|m| second.contains(m)));
    txn.rollback().await.expect("rollback");
    // Another consumer's claims are its own; a rolled-back claim left no trace.
    let txn = centralino_store::begin(&db).await.expect("begin");
    assert_eq!(
        inbox::claim_new(&txn, "routing", &ids[..10])
            .await
            .expect("claim")
            .len(),
        10
    );
    assert_eq!(
        inbox::claim_new(&txn, "history", &ids[800..])
            .await
            .expect("claim")
            .len(),
        400
    );
    txn.commit().await.expect("commit");
}

/// A statement the database refuses (a duplicate key) is a permanent error:
/// trying it again cannot succeed.
pub async fn a_refused_statement_is_a_permanent_error(db: DatabaseConnection) {
    use sea_orm::ConnectionTrait as _;
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    let insert = "INSERT INTO centralino_inbox (consumer, message_id, processed_at) \
                  VALUES ('c', 'm', '2026-01-01 00:00:00')";
    db.execute_unprepared(insert).await.expect("first insert");
    let e = db.execute_unprepared(insert).await.expect_err("duplicate");
    let e = centralino_store::StoreError::from(e);
    assert!(!e.is_transient(), "{e}");
}

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = centralino_test_support::TestDatabase::sqlite();
                    let db = centralino_store::connect(&t.url, 4).await.expect("connect sqlite");
                    super::$name(db.clone()).await;
                    let _ = db.close().await;
                    t.drop_db().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = centralino_test_support::TestDatabase::postgres().await;
                    let db = centralino_store::connect(&t.url, 4).await.expect("connect postgres");
                    super::$name(db.clone()).await;
                    let _ = db.close().await;
                    t.drop_db().await;
                }
            )*
        }
    };
}

store_suite!(
    migrations_apply_once_and_are_idempotent,
    inbox_claims_each_message_once_per_consumer,
    bulk_claims_return_only_new_messages_and_roll_back,
    outbox_rows_commit_with_the_transaction_and_are_relayed,
    unroutable_outbox_rows_stay_until_they_can_be_published,
    a_corrupt_row_is_parked_and_does_not_block_the_rest,
    a_refused_statement_is_a_permanent_error,
);

/// A PostgreSQL connection that is cut under a transaction (a restart, a
/// network drop; here `pg_terminate_backend`) is a transient error.
#[tokio::test]
async fn a_lost_postgres_connection_is_a_transient_error() {
    use sea_orm::{ConnectionTrait as _, Statement};
    let t = centralino_test_support::TestDatabase::postgres().await;
    let db = centralino_store::connect(&t.url, 4)
        .await
        .expect("connect postgres");
    let txn = centralino_store::begin(&db).await.expect("begin");
    let pid: i32 = txn
        .query_one_raw(Statement::from_string(
            txn.get_database_backend(),
            "SELECT pg_backend_pid() AS pid",
        ))
        .await
        .expect("pid")
        .expect("a row")
        .try_get("", "pid")
        .expect("pid column");
    db.execute_unprepared(&format!("SELECT pg_terminate_backend({pid})"))
        .await
        .expect("terminate");
    let e = txn
        .execute_unprepared("SELECT 1")
        .await
        .expect_err("the connection is gone");
    let e = centralino_store::StoreError::from(e);
    assert!(e.is_transient(), "{e:?}");
    drop(txn);
    let _ = db.close().await;
    t.drop_db().await;
}

/// Pragmas are per connection: every connection the pool opens must have them,
/// not just the first.
#[tokio::test]
async fn every_sqlite_connection_has_the_pragmas() {
    use sea_orm::{ConnectionTrait, Statement};
    let t = centralino_test_support::TestDatabase::sqlite();
    let db = centralino_store::connect(&t.url, 3)
        .await
        .expect("connect sqlite");
    // Open transactions hold their connections, so these are three (read
    // transactions: three writers would wait for each other).
    let mut held = Vec::new();
    for _ in 0..3 {
        let txn = sea_orm::TransactionTrait::begin_with_options(
            &db,
            sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Deferred),
                ..Default::default()
            },
        )
        .await
        .expect("begin");
        let mut seen = Vec::new();
        for pragma in [
            "journal_mode",
            "busy_timeout",
            "foreign_keys",
            "synchronous",
        ] {
            let row = txn
                .query_one_raw(Statement::from_string(
                    txn.get_database_backend(),
                    format!("PRAGMA {pragma}"),
                ))
                .await
                .expect("pragma")
                .expect("a row");
            let value = row
                .try_get_by_index::<String>(0)
                .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
                .expect("a value");
            seen.push(value);
        }
        assert_eq!(seen, ["wal", "5000", "1", "1"], "journal, busy, fk, sync");
        held.push(txn);
    }
    drop(held);
    let _ = db.close().await;
    t.drop_db().await;
}

#[test]
fn unsupported_urls_are_refused() {
    assert!(centralino_store::backend_of("mysql://x").is_err());
    assert!(centralino_store::backend_of("sqlite://data/x.sqlite").is_ok());
}

/// Two services writing one SQLite file (the embedded mode) wait for each
/// other: a transaction that reads and then writes, begun as a plain
/// (deferred) `BEGIN`, fails at once with "database is locked" (517) when
/// another writer got there first, whatever the busy timeout; begun by
/// `centralino_store::begin` (IMMEDIATE) it waits its turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_read_then_write_transactions_on_sqlite_all_commit() {
    use sea_orm::ConnectionTrait as _;
    let t = centralino_test_support::TestDatabase::sqlite();
    let db = centralino_store::connect(&t.url, 4)
        .await
        .expect("connect sqlite");
    db.execute_unprepared("CREATE TABLE counter (n INTEGER NOT NULL)")
        .await
        .expect("table");
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut failures = Vec::new();
                for _ in 0..50 {
                    let attempt = async {
                        let txn = centralino_store::begin(&db).await?;
                        // Read first (a shared lock), then write: the upgrade
                        // is what a deferred transaction cannot wait for.
                        txn.execute_unprepared("SELECT COUNT(*) FROM counter")
                            .await?;
                        txn.execute_unprepared("INSERT INTO counter (n) VALUES (1)")
                            .await?;
                        tokio::task::yield_now().await;
                        txn.commit().await
                    };
                    if let Err(e) = attempt.await {
                        failures.push(e.to_string());
                    }
                }
                failures
            })
        })
        .collect();
    let mut failures = Vec::new();
    for w in writers {
        failures.extend(w.await.expect("writer"));
    }
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "every transaction committed"
    );
    let rows = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM counter",
        ))
        .await
        .expect("count")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a number");
    assert_eq!(rows, 200);
    let _ = db.close().await;
    t.drop_db().await;
}
