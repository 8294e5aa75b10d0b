//! Bus benchmark: publish→consume throughput of `AmqpBus` beside raw lapin on the
//! same broker, same payload, same durability, in the same run.
//!
//! Both sides: persistent messages, publisher confirms with up to 512 outstanding,
//! a durable quorum queue, a consumer with prefetch 200 acking every message.
//! Ours adds the envelope properties, `mandatory`, the dead-letter setup and the
//! reconnecting consumer loop.
//!
//! ```text
//! cargo run --release -p centralino-bus --example bus_bench -- [MESSAGES] [ROUNDS]
//! ```
//! `CENTRALINO_BENCH_AMQP_URL` overrides the broker (default the local RabbitMQ).

use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Exchange, Topology};
use futures::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use prost::Message as _;

const WINDOW: usize = 512;
const PREFETCH: u16 = 200;

fn payload() -> centralino_proto::v1::InteractionCreated {
    centralino_proto::v1::InteractionCreated {
        interaction: Some(centralino_proto::v1::Interaction {
            id: uuid::Uuid::now_v7().to_string(),
            channel: centralino_proto::v1::Channel::Email.into(),
            direction: centralino_proto::v1::Direction::Inbound.into(),
            queue_hint: "billing".into(),
            subject: "Fattura di ottobre: importo errato".into(),
            ..Default::default()
        }),
    }
}

/// Raw lapin publish→consume. With `via = Some((exchange, routing_key))` it goes
/// through an existing exchange into an existing queue (the bus's own topology);
/// otherwise it declares a plain quorum queue and publishes to it directly.
async fn raw_lapin(url: &str, n: usize, queue: &str, via: Option<(&str, &str)>) -> Duration {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("connect");
    let pub_ch = conn.create_channel().await.expect("channel");
    pub_ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    if via.is_none() {
        pub_ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            )
            .await
            .expect("declare");
    }
    let (exchange, routing_key) = via.unwrap_or(("", queue));
    let (exchange, routing_key) = (exchange.to_owned(), routing_key.to_owned());
    let con_ch = conn.create_channel().await.expect("channel");
    con_ch
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = con_ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let body = centralino_bus::new_envelope("bench", &payload()).encode_to_vec();

    let start = Instant::now();
    let consume = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let d = consumer.next().await.expect("open").expect("delivery");
            d.acker.ack(BasicAckOptions::default()).await.expect("ack");
            got += 1;
        }
    });
    futures::stream::iter(0..n)
        .map(|_| {
            let ch = pub_ch.clone();
            let body = body.clone();
            let (exchange, routing_key) = (exchange.clone(), routing_key.clone());
            async move {
                ch.basic_publish(
                    exchange.as_str().into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
            }
        })
        .buffer_unordered(WINDOW)
        .for_each(|()| async {})
        .await;
    consume.await.expect("consumer");
    let elapsed = start.elapsed();
    if via.is_none() {
        let _ = pub_ch
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
    elapsed
}

async fn ours(url: &str, n: usize, prefix: &str) -> Duration {
    let mut config = AmqpConfig::new(url);
    config.topology = Topology::new(prefix);
    config.publish_window = WINDOW;
    config.connection_name = "centralino-bench".into();
    let bus = AmqpBus::connect(config).await.expect("connect");
    let mut sub = bus
        .subscribe(
            ConsumerSpec::new("bench")
                .bind(Exchange::Events, "interaction.#")
                .prefetch(PREFETCH),
        )
        .await
        .expect("subscribe");
    let envelopes: Vec<_> = (0..n)
        .map(|_| centralino_bus::new_envelope("bench", &payload()))
        .collect();
    let bus: Arc<dyn Bus> = Arc::new(bus.clone());

    let start = Instant::now();
    let consume = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let d = sub.next().await.expect("delivery");
            d.ack().await.expect("ack");
            got += 1;
        }
    });
    futures::stream::iter(envelopes)
        .map(|e| {
            let bus = bus.clone();
            async move {
                bus.publish(Exchange::Events, "interaction.email.created", &e)
                    .await
                    .expect("confirmed");
            }
        })
        .buffer_unordered(WINDOW)
        .for_each(|()| async {})
        .await;
    consume.await.expect("consumer");
    let elapsed = start.elapsed();
    drop(bus);
    elapsed
}

async fn cleanup(url: &str, prefix: &str) {
    let Ok(conn) = Connection::connect(url, ConnectionProperties::default()).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    for q in [
        format!("{prefix}.bench"),
        format!("{prefix}.bench.dead"),
        format!("{prefix}.unrouted"),
    ] {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for e in ["events", "commands", "unrouted", "dead-letter"] {
        let _ = ch
            .exchange_delete(
                format!("{prefix}.{e}").as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let url = std::env::var("CENTRALINO_BENCH_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("bus benchmark: {n} messages x {rounds} rounds, window {WINDOW}, prefetch {PREFETCH}");
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Warm-up, not counted.
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    raw_lapin(&url, n / 10, &format!("{prefix}.raw"), None).await;
    ours(&url, n / 10, &prefix).await;
    cleanup(&url, &prefix).await;

    let (mut raw_rates, mut our_rates, mut topo_rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        // Alternate the order so neither side always runs on a warmer broker.
        let (raw, our) = if round % 2 == 1 {
            let raw = raw_lapin(&url, n, &format!("{prefix}.raw"), None).await;
            (raw, ours(&url, n, &prefix).await)
        } else {
            let our = ours(&url, n, &prefix).await;
            (
                raw_lapin(&url, n, &format!("{prefix}.raw"), None).await,
                our,
            )
        };
        // Raw lapin again, through the bus's own exchange and queue: separates the
        // cost of our topology (topic routing, dead-lettering) from client overhead.
        let events = format!("{prefix}.events");
        let topo = raw_lapin(
            &url,
            n,
            &format!("{prefix}.bench"),
            Some((events.as_str(), "interaction.email.created")),
        )
        .await;
        cleanup(&url, &prefix).await;
        let (r, o, t) = (rate(raw), rate(our), rate(topo));
        println!(
            "round {round}: raw lapin {r:>7.0} msg/s | centralino-bus {o:>7.0} msg/s (ratio {:.2}) | raw lapin on bus topology {t:>7.0} msg/s",
            o / r
        );
        raw_rates.push(r);
        our_rates.push(o);
        topo_rates.push(t);
    }
    let (r, o, t) = (median(raw_rates), median(our_rates), median(topo_rates));
    println!(
        "median:  raw lapin {r:>7.0} msg/s | centralino-bus {o:>7.0} msg/s | ratio {:.2} (target >= 0.70) | raw on bus topology {t:>7.0} msg/s ({:.2} of raw)",
        o / r,
        t / r
    );
}
