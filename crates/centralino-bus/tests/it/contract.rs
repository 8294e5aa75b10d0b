//! The bus contract: every implementation of `Bus` must pass these.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, BusError, ConsumerSpec, Delivery, Exchange, Subscription};

use crate::harness::{DELIVERY_LIMIT, event, label, publish_all};

const WAIT: Duration = Duration::from_secs(30);

async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within 30 s")
        .expect("subscription still open")
}

fn spec(name: &str) -> ConsumerSpec {
    ConsumerSpec::new(name).bind(Exchange::Events, "interaction.#")
}

pub async fn ten_thousand_events_are_all_consumed(bus: Arc<dyn Bus>) {
    const N: usize = 10_000;
    let mut sub = bus
        .subscribe(spec("app").prefetch(500))
        .await
        .expect("subscribe");
    let envelopes: Vec<_> = (0..N).map(|i| event(&i.to_string())).collect();
    let expected: HashSet<String> = envelopes.iter().map(|e| e.message_id.clone()).collect();
    let publisher = {
        let bus = bus.clone();
        tokio::spawn(async move { publish_all(&bus, "interaction.sms.created", envelopes).await })
    };
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    while seen.len() < N {
        let d = next(&mut sub).await;
        if !seen.insert(d.envelope.message_id.clone()) {
            duplicates += 1;
        }
        d.ack().await.expect("ack");
    }
    publisher.await.expect("publisher task");
    assert_eq!(seen, expected);
    assert_eq!(
        duplicates, 0,
        "no fault was injected, so no redelivery is expected"
    );
}

pub async fn unacked_messages_are_redelivered_after_consumer_drop(bus: Arc<dyn Bus>) {
    let mut first = bus
        .subscribe(spec("app").prefetch(50))
        .await
        .expect("subscribe");
    let all: Vec<_> = (0..100).map(|i| event(&i.to_string())).collect();
    for e in &all {
        bus.publish(Exchange::Events, "interaction.email.created", e)
            .await
            .expect("publish");
    }
    let mut acked = HashSet::new();
    let mut held = Vec::new();
    for i in 0..40 {
        let d = next(&mut first).await;
        if i < 10 {
            acked.insert(d.envelope.message_id.clone());
            d.ack().await.expect("ack");
        } else {
            held.push(d);
        }
    }
    let unacked: HashSet<String> = held.iter().map(|d| d.envelope.message_id.clone()).collect();
    // The consumer dies without acking what it holds.
    drop(held);
    drop(first);

    let mut second = bus.subscribe(spec("app")).await.expect("resubscribe");
    let mut seen = HashSet::new();
    let mut redelivered = HashSet::new();
    while seen.len() < 90 {
        let d = next(&mut second).await;
        let id = d.envelope.message_id.clone();
        assert!(!acked.contains(&id), "an acked message came back");
        if d.redelivered {
            redelivered.insert(id.clone());
        }
        seen.insert(id);
        d.ack().await.expect("ack");
    }
    let everything: HashSet<String> = all.iter().map(|e| e.message_id.clone()).collect();
    let union: HashSet<String> = seen.union(&acked).cloned().collect();
    assert_eq!(union, everything, "no message lost");
    assert!(
        unacked.is_subset(&redelivered),
        "every message held unacked is flagged redelivered"
    );
}

pub async fn poison_message_is_dead_lettered_after_the_delivery_limit(bus: Arc<dyn Bus>) {
    let mut sub = bus
        .subscribe(ConsumerSpec::new("poison").bind(Exchange::Events, "interaction.#"))
        .await
        .expect("subscribe");
    let poison = event("poison");
    bus.publish(Exchange::Events, "interaction.sms.created", &poison)
        .await
        .expect("publish");
    let mut deliveries = 0;
    loop {
        let d = next(&mut sub).await;
        assert_eq!(d.envelope.message_id, poison.message_id);
        assert_eq!(
            d.delivery_count, deliveries,
            "delivery count of attempt {deliveries}"
        );
        deliveries += 1;
        d.retry().await.expect("nack");
        if deliveries == DELIVERY_LIMIT + 1 {
            break;
        }
    }
    let dead = centralino_test_support::eventually(WAIT, "the poison message in the DLQ", || {
        let bus = bus.clone();
        async move {
            let dead = bus
                .dead_letters("poison", 10)
                .await
                .expect("list dead letters");
            (!dead.is_empty()).then_some(dead)
        }
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope, poison);
    assert_eq!(dead[0].routing_key, "interaction.sms.created");
    // Listing leaves it in place.
    assert_eq!(bus.dead_letters("poison", 10).await.expect("list").len(), 1);

    // A good message published after it arrives, so the poison no longer blocks.
    let good = event("good");
    bus.publish(Exchange::Events, "interaction.sms.created", &good)
        .await
        .expect("publish");
    let d = next(&mut sub).await;
    assert_eq!(d.envelope.message_id, good.message_id);
    d.ack().await.expect("ack");

    // Replay sends it back to this consumer only, with a fresh delivery count.
    assert_eq!(
        bus.replay_dead_letters("poison", 100)
            .await
            .expect("replay"),
        1
    );
    let d = next(&mut sub).await;
    assert_eq!(d.envelope, poison);
    assert_eq!(d.routing_key, "interaction.sms.created");
    assert_eq!(d.delivery_count, 0);
    d.ack().await.expect("ack");
    assert!(
        bus.dead_letters("poison", 10)
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn dead_letter_now_skips_retries(bus: Arc<dyn Bus>) {
    let mut sub = bus.subscribe(spec("app")).await.expect("subscribe");
    let e = event("hopeless");
    bus.publish(Exchange::Events, "interaction.desk.created", &e)
        .await
        .expect("publish");
    next(&mut sub).await.dead_letter().await.expect("reject");
    let dead = centralino_test_support::eventually(WAIT, "the message in the DLQ", || {
        let bus = bus.clone();
        async move {
            let dead = bus.dead_letters("app", 10).await.expect("list");
            (!dead.is_empty()).then_some(dead)
        }
    })
    .await;
    assert_eq!(dead[0].envelope.message_id, e.message_id);
}

pub async fn unroutable_commands_are_refused_and_events_are_parked(bus: Arc<dyn Bus>) {
    let err = bus
        .publish(Exchange::Commands, "fax.send", &event("nobody"))
        .await
        .expect_err("no queue is bound for fax.send");
    assert!(matches!(err, BusError::Unroutable { .. }), "{err:?}");
    bus.publish(
        Exchange::Events,
        "interaction.fax.created",
        &event("parked"),
    )
    .await
    .expect("events nobody listens to are still accepted");

    let mut sub = bus
        .subscribe(ConsumerSpec::new("other").bind(Exchange::Commands, "email.send"))
        .await
        .expect("subscribe");
    let cmd = event("send it");
    bus.publish(Exchange::Commands, "email.send", &cmd)
        .await
        .expect("bound command is routable");
    let d = next(&mut sub).await;
    assert_eq!(d.envelope.message_id, cmd.message_id);
    d.ack().await.expect("ack");
}

pub async fn topic_bindings_route_only_matching_keys(bus: Arc<dyn Bus>) {
    let mut sub = bus
        .subscribe(ConsumerSpec::new("app").bind(Exchange::Events, "interaction.*.created"))
        .await
        .expect("subscribe");
    for (key, l) in [
        ("interaction.sms.created", "a"),
        ("interaction.sms.queued", "skip"),
        ("interaction.email.created", "b"),
        ("routing.agent.created", "skip"),
        ("interaction.voice.created", "sentinel"),
    ] {
        bus.publish(Exchange::Events, key, &event(l))
            .await
            .expect("publish");
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next(&mut sub).await;
        got.push((d.routing_key.clone(), label(&d.envelope)));
        d.ack().await.expect("ack");
    }
    assert_eq!(
        got,
        vec![
            ("interaction.sms.created".to_owned(), "a".to_owned()),
            ("interaction.email.created".to_owned(), "b".to_owned()),
            (
                "interaction.voice.created".to_owned(),
                "sentinel".to_owned()
            ),
        ]
    );
}

pub async fn two_services_each_get_every_event(bus: Arc<dyn Bus>) {
    let mut a = bus.subscribe(spec("app")).await.expect("subscribe");
    let mut b = bus.subscribe(spec("other")).await.expect("subscribe");
    let e = event("fan-out");
    bus.publish(Exchange::Events, "interaction.chat.created", &e)
        .await
        .expect("publish");
    for sub in [&mut a, &mut b] {
        let d = next(sub).await;
        assert_eq!(d.envelope, e, "envelope arrives intact");
        d.ack().await.expect("ack");
    }
}

pub async fn bad_names_and_unknown_consumers_are_errors(bus: Arc<dyn Bus>) {
    let err = bus
        .subscribe(ConsumerSpec::new("has spaces"))
        .await
        .expect_err("invalid name");
    assert!(matches!(err, BusError::InvalidName(_)), "{err:?}");
    let err = bus
        .dead_letters("never-subscribed", 10)
        .await
        .expect_err("unknown consumer");
    assert!(matches!(err, BusError::UnknownConsumer(_)), "{err:?}");
}

pub async fn malformed_messages_are_refused_before_sending(bus: Arc<dyn Bus>) {
    let mut no_id = event("x");
    no_id.message_id.clear();
    let mut long_id = event("x");
    long_id.message_id = "m".repeat(65);
    let mut no_type = event("x");
    no_type.event_type.clear();
    for (key, e) in [
        ("interaction.sms.created", &no_id),
        ("interaction.sms.created", &long_id),
        ("interaction.sms.created", &no_type),
        ("", &event("x")),
        (&*"k".repeat(256), &event("x")),
    ] {
        let err = bus
            .publish(Exchange::Events, key, e)
            .await
            .expect_err("refused");
        assert!(matches!(err, BusError::InvalidMessage(_)), "{err:?}");
    }
}

macro_rules! contract_suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = crate::harness::TestBus::memory();
                    super::$name(t.bus.clone()).await;
                }
            )*
        }
        mod amqp {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = crate::harness::TestBus::amqp().await;
                    super::$name(t.bus.clone()).await;
                    t.cleanup().await;
                }
            )*
        }
    };
}

contract_suite!(
    ten_thousand_events_are_all_consumed,
    unacked_messages_are_redelivered_after_consumer_drop,
    poison_message_is_dead_lettered_after_the_delivery_limit,
    dead_letter_now_skips_retries,
    unroutable_commands_are_refused_and_events_are_parked,
    topic_bindings_route_only_matching_keys,
    two_services_each_get_every_event,
    bad_names_and_unknown_consumers_are_errors,
    malformed_messages_are_refused_before_sending,
);
