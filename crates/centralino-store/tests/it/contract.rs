//! The store contract, run on SQLite and PostgreSQL from the same code.

use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, ConsumerSpec, Exchange, MemoryBus};
use centralino_proto::v1::{Interaction, InteractionCreated};
use centralino_store::sea_orm::{DatabaseConnection, TransactionTrait};
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
    assert_eq!(applied, vec!["core_0001_inbox_outbox".to_owned()]);
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
    let txn = db.begin().await.expect("begin");
    assert!(inbox::claim(&txn, "history", "m1").await.expect("claim"));
    assert!(!inbox::claim(&txn, "history", "m1").await.expect("claim"));
    assert!(
        inbox::claim(&txn, "routing", "m1")
            .await
            .expect("other consumer")
    );
    txn.commit().await.expect("commit");

    // A claim in a rolled-back transaction leaves no trace.
    let txn = db.begin().await.expect("begin");
    assert!(inbox::claim(&txn, "history", "m2").await.expect("claim"));
    txn.rollback().await.expect("rollback");
    let txn = db.begin().await.expect("begin");
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
    let txn = db.begin().await.expect("begin");
    outbox::enqueue(
        &txn,
        "svc",
        Exchange::Events,
        "interaction.sms.created",
        &rolled_back,
    )
    .await
    .expect("enqueue");
    txn.rollback().await.expect("rollback");

    let committed: Vec<_> = (0..300).map(|i| event(&i.to_string())).collect();
    let txn = db.begin().await.expect("begin");
    for e in &committed {
        outbox::enqueue(&txn, "svc", Exchange::Events, "interaction.sms.created", e)
            .await
            .expect("enqueue");
    }
    // Another service's row is not this relay's business.
    outbox::enqueue(
        &txn,
        "other-svc",
        Exchange::Events,
        "interaction.sms.created",
        &event("x"),
    )
    .await
    .expect("enqueue");
    txn.commit().await.expect("commit");
    assert_eq!(outbox::pending(&db, "svc").await.expect("count"), 300);

    let relay = outbox::OutboxRelay::new(db.clone(), bus.clone() as Arc<dyn Bus>, "svc");
    let mut relayed = 0;
    while relayed < 300 {
        let n = relay.relay_once().await.expect("relay");
        assert!(n > 0, "relay made progress");
        relayed += n;
    }
    assert_eq!(relay.relay_once().await.expect("relay"), 0);
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
    let txn = db.begin().await.expect("begin");
    outbox::enqueue(&txn, "svc", Exchange::Commands, "email.send", &cmd)
        .await
        .expect("enqueue");
    txn.commit().await.expect("commit");
    let relay = outbox::OutboxRelay::new(db.clone(), bus.clone() as Arc<dyn Bus>, "svc");
    relay
        .relay_once()
        .await
        .expect_err("no email adapter is listening yet");
    assert_eq!(
        outbox::pending(&db, "svc").await.expect("count"),
        1,
        "row kept"
    );
    let mut sub = bus
        .subscribe(ConsumerSpec::new("email").bind(Exchange::Commands, "email.send"))
        .await
        .expect("subscribe");
    assert_eq!(relay.relay_once().await.expect("relay"), 1);
    let d = sub.next().await.expect("delivery");
    assert_eq!(d.envelope, cmd);
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
    outbox_rows_commit_with_the_transaction_and_are_relayed,
    unroutable_outbox_rows_stay_until_they_can_be_published,
);

#[test]
fn unsupported_urls_are_refused() {
    assert!(centralino_store::backend_of("mysql://x").is_err());
    assert!(centralino_store::backend_of("sqlite://data/x.sqlite").is_ok());
}
