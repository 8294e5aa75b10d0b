//! Outbox rows written while RabbitMQ is away go out within 10 s of its
//! return, however long it was away: each failed row's retry wait stops
//! growing at 5 s (it grew to 5 minutes, so a long outage left events
//! waiting minutes after the broker was back).
//!
//! It stops the whole broker, so `cargo xtask test` runs it alone, before the
//! rest of the suite: `cargo nextest run -p centralino-store --run-ignored only`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Exchange, Topology};
use centralino_proto::v1::InteractionCreated;
use centralino_store::{CoreMigrator, outbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops RabbitMQ; cargo xtask test runs it in its own phase"]
async fn outbox_rows_held_through_a_long_broker_outage_go_out_within_10_s_of_its_return() {
    let t = centralino_test_support::TestDatabase::postgres().await;
    let db = centralino_store::connect(&t.url, 4).await.expect("connect");
    centralino_store::migrate::<CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    let mut config = AmqpConfig::new(centralino_test_support::amqp_url());
    config.topology = Topology::new(centralino_test_support::bus_prefix("t"));
    // Each attempt during the outage gives up after 2 s, so the row's
    // failures (and, before the fix, its retry wait) pile up quickly.
    config.publish_timeout = Duration::from_secs(2);
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(config).await.expect("rabbitmq"));
    let mut sub = bus
        .subscribe(ConsumerSpec::new("app").bind(Exchange::Events, "interaction.#"))
        .await
        .expect("subscribe");
    let relay = outbox::OutboxRelay::new(db.clone(), bus.clone(), "test");
    let wake = relay.waker();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relaying = tokio::spawn(relay.run(async {
        let _ = stopped.await;
    }));

    let down = tokio::task::spawn_blocking(centralino_test_support::BrokerDown::stop)
        .await
        .expect("stop the broker");
    let event = centralino_bus::new_envelope(
        "test",
        &InteractionCreated {
            interaction: Some(centralino_proto::v1::Interaction {
                subject: "written during the outage".into(),
                ..Default::default()
            }),
        },
    );
    let txn = centralino_store::begin(&db).await.expect("begin");
    outbox::enqueue(
        &txn,
        "test",
        &centralino_bus::Key::event("interaction.sms.created"),
        &event,
    )
    .await
    .expect("enqueue");
    txn.commit().await.expect("commit");
    wake.notify_one();
    // The outage itself: long enough for a doubling retry wait to pass 30 s.
    tokio::time::sleep(Duration::from_secs(42)).await;
    tokio::task::spawn_blocking(move || drop(down))
        .await
        .expect("start the broker");
    let back = Instant::now();
    let got = loop {
        let d = tokio::time::timeout(Duration::from_secs(30), sub.next())
            .await
            .expect("the row published within 30 s of the broker's return")
            .expect("subscription open");
        let ours = d.envelope.message_id == event.message_id;
        let _ = d.ack().await;
        if ours {
            break back.elapsed();
        }
    };
    eprintln!(
        "rabbitmq: 42 s outage: the held outbox row consumed {got:?} after the broker's return"
    );
    assert!(
        got < Duration::from_secs(10),
        "published {got:?} after the broker came back"
    );
    let _ = stop.send(());
    let _ = relaying.await;
    let _ = db.close().await;
    t.drop_db().await;
}
