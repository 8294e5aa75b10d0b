//! A consumer dies mid-stream on real RabbitMQ after committing some work but
//! before acking it: every message is redelivered, none is lost, and the inbox
//! makes each effect happen exactly once (PostgreSQL).

use std::collections::HashSet;
use std::time::Duration;

use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Delivery, Exchange, Topology};
use centralino_proto::v1::InteractionCreated;
use centralino_store::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use centralino_store::{CoreMigrator, inbox};

async fn apply(db: &DatabaseConnection, d: &Delivery) -> bool {
    let txn = centralino_store::begin(db).await.expect("begin");
    if !inbox::claim(&txn, "effects", &d.envelope.message_id)
        .await
        .expect("claim")
    {
        txn.rollback().await.expect("rollback");
        return false;
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO effects (message_id) VALUES ($1)",
        [d.envelope.message_id.clone().into()],
    ))
    .await
    .expect("effect");
    txn.commit().await.expect("commit");
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_crash_between_commit_and_ack_applies_each_effect_once() {
    const N: usize = 500;
    let t = centralino_test_support::TestDatabase::postgres().await;
    let db = centralino_store::connect(&t.url, 4).await.expect("connect");
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    // Deliberately no unique constraint: a double effect must show up in the count.
    db.execute_unprepared("CREATE TABLE effects (message_id TEXT NOT NULL)")
        .await
        .expect("effects table");

    let mut config = AmqpConfig::new(centralino_test_support::amqp_url());
    config.topology = Topology::new(centralino_test_support::bus_prefix("t"));
    let bus = AmqpBus::connect(config.clone()).await.expect("rabbitmq");
    let spec = ConsumerSpec::new("app")
        .bind(Exchange::Events, "interaction.#")
        .prefetch(100);
    let mut first = bus.subscribe(spec.clone()).await.expect("subscribe");
    let mut ids = HashSet::new();
    for i in 0..N {
        let e = centralino_bus::new_envelope(
            "test",
            &InteractionCreated {
                interaction: Some(centralino_proto::v1::Interaction {
                    subject: i.to_string(),
                    ..Default::default()
                }),
            },
        );
        ids.insert(e.message_id.clone());
        bus.publish(Exchange::Events, "interaction.sms.created", &e)
            .await
            .expect("publish");
    }

    // First consumer: commits 200 effects, acks only the first 100, then dies.
    let mut held = Vec::new();
    for i in 0..200 {
        let d = tokio::time::timeout(Duration::from_secs(20), first.next())
            .await
            .expect("delivery")
            .expect("open");
        assert!(apply(&db, &d).await, "first delivery applies");
        if i < 100 {
            d.ack().await.expect("ack");
        } else {
            held.push(d);
        }
    }
    drop(held);
    drop(first);

    let mut second = bus.subscribe(spec).await.expect("resubscribe");
    let mut skipped = 0;
    let mut applied = 200;
    while applied < N {
        let d = tokio::time::timeout(Duration::from_secs(20), second.next())
            .await
            .expect("every message comes (back)")
            .expect("open");
        if apply(&db, &d).await {
            applied += 1;
        } else {
            skipped += 1;
        }
        d.ack().await.expect("ack");
    }
    assert!(
        skipped >= 100,
        "the 100 committed-but-unacked messages were redelivered and skipped, got {skipped}"
    );

    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COUNT(*) AS n, COUNT(DISTINCT message_id) AS d FROM effects",
        ))
        .await
        .expect("count")
        .expect("row");
    let n: i64 = row.try_get("", "n").expect("n");
    let distinct: i64 = row.try_get("", "d").expect("d");
    assert_eq!(
        (n, distinct),
        (N as i64, N as i64),
        "each effect exactly once"
    );

    bus.close().await;
    crate_cleanup(&config).await;
    let _ = db.close().await;
    t.drop_db().await;
}

async fn crate_cleanup(config: &AmqpConfig) {
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(config.topology.prefix(), &["app"]);
    centralino_test_support::delete_rabbitmq_objects(&config.url, &queues, &exchanges).await;
}
