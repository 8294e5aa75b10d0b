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

/// A handler whose answer is written in each event's subject: `done`,
/// `hold-N` (held N times, then done), `retry`, `reject`, `skip` (nothing to
/// do), `garbage` (cannot be parsed). It records what it saw.
#[derive(Default)]
struct Scripted {
    /// (subject, delivery count) of each time an input was handled.
    seen: std::sync::Mutex<Vec<(String, u32)>>,
    /// Sizes of the batches handed over.
    batches: std::sync::Mutex<Vec<usize>>,
}

fn subject(d: &Delivery) -> String {
    use centralino_bus::EnvelopeExt as _;
    d.envelope
        .decode::<centralino_proto::v1::InteractionCreated>()
        .ok()
        .and_then(|c| c.interaction)
        .map(|i| i.subject)
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl centralino_bus::Handler for Scripted {
    type Input = String;

    fn parse(&self, d: &Delivery) -> Result<Option<String>, String> {
        match subject(d).as_str() {
            "skip" => Ok(None),
            "garbage" => Err("not an interaction".into()),
            s => Ok(Some(s.to_owned())),
        }
    }

    async fn handle(&self, input: String, d: &Delivery) -> centralino_bus::Handled {
        use centralino_bus::Handled;
        let times = {
            let mut seen = self.seen.lock().expect("seen");
            seen.push((input.clone(), d.delivery_count));
            seen.iter().filter(|(s, _)| *s == input).count()
        };
        match input.as_str() {
            "retry" => Handled::Retry("fails by itself".into()),
            "reject" => Handled::Reject("never".into()),
            s if s.starts_with("hold-") => {
                let n: usize = s["hold-".len()..].parse().unwrap_or(0);
                if times <= n {
                    Handled::Hold("store away".into())
                } else {
                    Handled::Done
                }
            }
            _ => Handled::Done,
        }
    }

    async fn handle_batch(&self, items: Vec<(String, &Delivery)>) -> Vec<centralino_bus::Handled> {
        self.batches.lock().expect("batches").push(items.len());
        let mut out = Vec::new();
        for (input, d) in items {
            out.push(self.handle(input, d).await);
        }
        out
    }
}

fn fast() -> centralino_bus::RetryParams {
    centralino_bus::RetryParams::new(Duration::from_millis(10), Duration::from_millis(40))
}

/// Each answer of a handler settles its delivery the one way the pipeline
/// promises: done → acked; hold → handled again in the process, never
/// redelivered by the broker; retry → back to the broker until its delivery
/// limit, then dead-lettered; reject and unparseable → dead-lettered at once;
/// nothing to do → acked. Waiting deliveries are handed over in batches.
pub async fn the_pipeline_settles_each_delivery_by_the_handlers_answer(bus: Arc<dyn Bus>) {
    let sub = bus.subscribe(spec("app")).await.expect("subscribe");
    let mut done_ids = Vec::new();
    for i in 0..20 {
        let e = event("done");
        done_ids.push(e.message_id.clone());
        let _ = i;
        bus.publish(Exchange::Events, "interaction.sms.created", &e)
            .await
            .expect("publish");
    }
    let mut dead_expected = HashSet::new();
    for s in ["hold-3", "retry", "reject", "skip", "garbage", "done"] {
        let e = event(s);
        if matches!(s, "retry" | "reject" | "garbage") {
            dead_expected.insert(e.message_id.clone());
        }
        bus.publish(Exchange::Events, "interaction.sms.created", &e)
            .await
            .expect("publish");
    }
    let handler = Arc::new(Scripted::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(
        centralino_bus::Pipeline::new("test")
            .batch(8)
            .hold(fast())
            .redeliver(fast())
            .run(sub, handler.clone(), async move {
                let _ = stopped.await;
            }),
    );
    let dead = centralino_test_support::eventually(WAIT, "three dead letters", || {
        let bus = bus.clone();
        async move {
            let dead = bus.dead_letters("app", 10).await.expect("list");
            (dead.len() == 3).then_some(dead)
        }
    })
    .await;
    let dead: HashSet<String> = dead.into_iter().map(|d| d.envelope.message_id).collect();
    assert_eq!(dead, dead_expected);
    let seen = centralino_test_support::eventually(WAIT, "the held one done", || {
        let handler = handler.clone();
        async move {
            let seen = handler.seen.lock().expect("seen").clone();
            (seen.iter().filter(|(s, _)| s == "hold-3").count() == 4).then_some(seen)
        }
    })
    .await;
    let of = |s: &str| -> Vec<u32> {
        seen.iter()
            .filter(|(x, _)| x == s)
            .map(|(_, c)| *c)
            .collect()
    };
    assert_eq!(of("hold-3"), vec![0, 0, 0, 0], "held in the process");
    assert_eq!(of("retry"), (0..=DELIVERY_LIMIT).collect::<Vec<_>>());
    assert_eq!(of("reject"), vec![0]);
    assert_eq!(of("done").len(), 21, "each done once");
    assert!(of("skip").is_empty() && of("garbage").is_empty());
    assert!(
        handler
            .batches
            .lock()
            .expect("batches")
            .iter()
            .any(|n| *n > 1),
        "waiting deliveries are handed over together"
    );
    let _ = stop.send(());
    run.await.expect("pipeline task");
    // Everything was settled: a new consumer gets nothing.
    let mut again = bus.subscribe(spec("app")).await.expect("subscribe again");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), again.next())
            .await
            .is_err(),
        "nothing left in the queue"
    );
}

/// A delivery held when the service stops goes back to the queue for the
/// next instance.
pub async fn a_delivery_held_at_shutdown_goes_back_to_the_queue(bus: Arc<dyn Bus>) {
    let sub = bus.subscribe(spec("app")).await.expect("subscribe");
    let e = event("hold-1000");
    bus.publish(Exchange::Events, "interaction.sms.created", &e)
        .await
        .expect("publish");
    let handler = Arc::new(Scripted::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(centralino_bus::Pipeline::new("test").hold(fast()).run(
        sub,
        handler.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    centralino_test_support::eventually(WAIT, "held twice", || {
        let handler = handler.clone();
        async move { (handler.seen.lock().expect("seen").len() >= 2).then_some(()) }
    })
    .await;
    let _ = stop.send(());
    run.await.expect("pipeline task");
    let mut next_instance = bus.subscribe(spec("app")).await.expect("subscribe");
    let d = next(&mut next_instance).await;
    assert_eq!(d.envelope.message_id, e.message_id);
    d.ack().await.expect("ack");
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
    the_pipeline_settles_each_delivery_by_the_handlers_answer,
    a_delivery_held_at_shutdown_goes_back_to_the_queue,
);
