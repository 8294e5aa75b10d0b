//! RabbitMQ fault tests: the broker drops our connection mid-stream.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use centralino_bus::{ConsumerSpec, Exchange};

use crate::harness::{TestBus, event, publish_all};

/// The broker closes the bus's connection while 2,000 events are being published
/// and consumed: publishing and consuming resume within 10 s and every event
/// arrives (duplicates allowed, losses not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_closed_by_broker_is_survived() {
    const N: usize = 2_000;
    let t = TestBus::amqp().await;
    let bus = t.bus.clone();
    let name = t.connection_name().expect("amqp bus has a connection name");
    let mut sub = bus
        .subscribe(ConsumerSpec::new("app").bind(Exchange::Events, "interaction.#"))
        .await
        .expect("subscribe");

    let envelopes: Vec<_> = (0..N).map(|i| event(&i.to_string())).collect();
    let expected: HashSet<String> = envelopes.iter().map(|e| e.message_id.clone()).collect();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut confirmed_at = Vec::with_capacity(N);
            for e in envelopes {
                bus.publish(Exchange::Events, "interaction.sms.created", &e)
                    .await
                    .expect("publish is retried until confirmed");
                confirmed_at.push(Instant::now());
            }
            confirmed_at
        })
    };

    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut killed_at = None;
    let mut probe_id = None;
    let mut probe_seen_at = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < N || probe_seen_at.is_none() {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} events arrived",
            seen.len()
        );
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(15), sub.next()).await else {
            panic!("consumer stalled with {} of {N} events", seen.len());
        };
        if probe_id.as_ref() == Some(&d.envelope.message_id) {
            probe_seen_at.get_or_insert_with(Instant::now);
            let _ = d.ack().await;
            continue;
        }
        if !seen.insert(d.envelope.message_id.clone()) {
            duplicates += 1;
        }
        // An ack can fail when the connection died under it: the message comes back.
        let _ = d.ack().await;
        if seen.len() == N / 4 && killed_at.is_none() {
            let closer = name.clone();
            let closed = tokio::task::spawn_blocking(move || {
                centralino_test_support::close_rabbitmq_connections(&closer)
            })
            .await
            .expect("rabbitmqctl task");
            assert!(closed >= 1, "the bus connection was found and closed");
            killed_at = Some(Instant::now());
            // A probe published after the fault measures full recovery: reconnect,
            // confirmed publish, resubscribed consumer.
            let probe = event("probe");
            probe_id = Some(probe.message_id.clone());
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.publish(Exchange::Events, "interaction.sms.created", &probe)
                    .await
                    .expect("probe confirmed");
            });
        }
    }
    let confirmed_at = publisher.await.expect("publisher finished");
    assert_eq!(seen, expected, "every event arrived");
    let killed_at = killed_at.expect("fault was injected");
    let resumed = probe_seen_at.expect("probe arrived") - killed_at;
    let publish_gap = confirmed_at
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    eprintln!(
        "broker closed the connection: consumer resumed after {resumed:?}, longest publish gap {publish_gap:?}, {duplicates} duplicates absorbed"
    );
    assert!(
        resumed < Duration::from_secs(10),
        "consumer resumed after {resumed:?}"
    );
    assert!(
        publish_gap < Duration::from_secs(10),
        "publisher stalled {publish_gap:?}"
    );
    t.cleanup().await;
}

/// RabbitMQ restarts with 10,000 confirmed messages waiting and a publisher still
/// publishing: after the restart publisher and consumer reconnect by themselves
/// within 10 s, and all 12,000 messages arrive (duplicates allowed, losses not).
///
/// It stops the whole broker, so `cargo xtask test` runs it alone, before the
/// rest of the suite: `cargo nextest run -p centralino-bus --run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts RabbitMQ; cargo xtask test runs it in its own phase"]
async fn broker_restart_with_ten_thousand_in_flight_loses_nothing() {
    const QUEUED: usize = 10_000;
    const DURING: usize = 2_000;
    let t = TestBus::amqp().await;
    let bus = t.bus.clone();
    let mut sub = bus
        .subscribe(
            ConsumerSpec::new("app")
                .bind(Exchange::Events, "interaction.#")
                .prefetch(200),
        )
        .await
        .expect("subscribe");
    let queued: Vec<_> = (0..QUEUED).map(|i| event(&i.to_string())).collect();
    let during: Vec<_> = (0..DURING).map(|i| event(&format!("d{i}"))).collect();
    let mut expected: HashSet<String> = queued.iter().map(|e| e.message_id.clone()).collect();
    expected.extend(during.iter().map(|e| e.message_id.clone()));
    publish_all(&bus, "interaction.email.created", queued).await;

    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut restarted_at = None;
    let mut publisher = None;
    let mut probe_id = None;
    let mut probe_seen_at = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < expected.len() || probe_seen_at.is_none() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} messages arrived",
            seen.len(),
            expected.len()
        );
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(30), sub.next()).await else {
            panic!("consumer stalled with {} of {}", seen.len(), expected.len());
        };
        if probe_id.as_ref() == Some(&d.envelope.message_id) {
            probe_seen_at.get_or_insert_with(Instant::now);
            let _ = d.ack().await;
            continue;
        }
        if !seen.insert(d.envelope.message_id.clone()) {
            duplicates += 1;
        }
        let _ = d.ack().await;
        if seen.len() == 1_000 && restarted_at.is_none() {
            // A publisher keeps going through the outage.
            let bus2 = bus.clone();
            let during = during.clone();
            publisher = Some(tokio::spawn(async move {
                for e in during {
                    bus2.publish(Exchange::Events, "interaction.sms.created", &e)
                        .await
                        .expect("publish retried until confirmed");
                }
            }));
            let restart = tokio::task::spawn_blocking(|| {
                let broker = centralino_test_support::BrokerDown::stop();
                std::thread::sleep(Duration::from_secs(2));
                broker.start();
            });
            restart.await.expect("restart task");
            restarted_at = Some(Instant::now());
            let probe = event("probe");
            probe_id = Some(probe.message_id.clone());
            let bus3 = bus.clone();
            tokio::spawn(async move {
                bus3.publish(Exchange::Events, "interaction.sms.created", &probe)
                    .await
                    .expect("probe confirmed");
            });
        }
    }
    publisher
        .expect("publisher started")
        .await
        .expect("publisher finished");
    assert_eq!(seen, expected, "every message arrived");
    let recovered = probe_seen_at.expect("probe") - restarted_at.expect("restarted");
    eprintln!(
        "broker restarted: publish+consume recovered {recovered:?} after the broker came back, {duplicates} duplicates absorbed"
    );
    assert!(
        recovered < Duration::from_secs(10),
        "recovered after {recovered:?}"
    );
    t.cleanup().await;
}
