//! SMS throughput benchmark: messages per second through the adapter, beside
//! the SMPP transport alone, against the same SMSC simulator.
//!
//! `cargo run --release -p centralino-sms --example sms_bench -- [messages]`
//!
//! Needs Node.js with `tests/node` installed (`npm ci`), RabbitMQ and
//! PostgreSQL (as for the tests). Measured in the same run, each on a fresh
//! simulator:
//! - outbound raw: `Smpp::send` of `messages` single-part texts (window 10),
//!   until every `submit_sm_resp` is in;
//! - outbound ours: as many `sms.send` commands on RabbitMQ, until every
//!   message is recorded `sent` (consumed, stored with its `MessageRecorded`,
//!   consent checked, submitted, outcome committed, events published);
//! - inbound raw: the transport receiving `messages` customer messages and
//!   answering each at once;
//! - inbound ours: the adapter, until every message's `interaction.sms.created`
//!   is on the bus (one conversation per number, committed with its events
//!   before the SMSC gets its answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Exchange, Topology, new_envelope};
use centralino_proto::v1;
use centralino_sms::smpp::{Smpp, SmppConfig};
use centralino_sms::{NumberConfig, SmsConfig};
use centralino_test_support::mail::Smsc;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use tokio::sync::{mpsc, watch};

const OURS: &str = "4321";

fn smpp_config(port: u16) -> SmppConfig {
    SmppConfig {
        port,
        system_id: "centralino".into(),
        password: "secret".into(),
        source_addr: OURS.into(),
        ..SmppConfig::default()
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn bound(smpp: &Smpp) {
    let mut b = smpp.bound();
    tokio::time::timeout(Duration::from_secs(30), b.wait_for(|b| *b))
        .await
        .expect("bound within 30 s")
        .expect("transport running");
}

async fn raw_outbound(n: usize) -> Duration {
    let smsc = Smsc::start();
    let (tx, _rx) = mpsc::channel(1_024);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(smpp_config(smsc.port()), tx, stop);
    bound(&smpp).await;
    let started = Instant::now();
    let sends: Vec<_> = (0..n)
        .map(|i| {
            let smpp = smpp.clone();
            tokio::spawn(async move {
                smpp.send(&format!("+39333{i:07}"), &format!("Messaggio {i}"))
                    .await
            })
        })
        .collect();
    for s in sends {
        s.await.expect("join").expect("submitted");
    }
    started.elapsed()
}

async fn raw_inbound(n: usize) -> Duration {
    let smsc = Smsc::start();
    let (tx, mut rx) = mpsc::channel(1_024);
    let (_stop, stop) = watch::channel(false);
    let (smpp, _task) = Smpp::start(smpp_config(smsc.port()), tx, stop);
    bound(&smpp).await;
    let started = Instant::now();
    assert!(smsc.mobile_originated_many("39333", OURS, "Buongiorno", n));
    let mut got = 0;
    while got < n {
        let incoming = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("messages keep coming")
            .expect("transport running");
        if matches!(incoming.what, centralino_sms::Delivered::Message { .. }) {
            got += 1;
        }
        let _ = incoming.handled.send(true);
    }
    started.elapsed()
}

struct Adapter {
    smsc: Smsc,
    db: TestDatabase,
    prefix: String,
    bus: Arc<dyn Bus>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn adapter() -> Adapter {
    let smsc = Smsc::start();
    let db = TestDatabase::postgres().await;
    let prefix = bus_prefix("sm");
    let mut amqp = AmqpConfig::new(amqp_url());
    amqp.topology = Topology::new(prefix.clone());
    amqp.connection_name = "sms-bench".into();
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp).await.expect("RabbitMQ"));
    let conn = centralino_store::connect(&db.url, 8).await.expect("db");
    centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
        .await
        .expect("core migrations");
    centralino_store::migrate::<centralino_sms::SmsMigrator>(&conn, |_| {})
        .await
        .expect("sms migrations");
    let config = SmsConfig {
        smpp: Some(smpp_config(smsc.port())),
        numbers: vec![NumberConfig {
            number: OURS.into(),
            queue: "sms".into(),
            priority: 50,
        }],
        ..SmsConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sms = centralino_sms::start(config, conn, bus.clone(), async move {
        let _ = stopped.await;
    })
    .await
    .expect("adapter starts");
    Adapter {
        smsc,
        db,
        prefix,
        bus,
        stop,
        task: sms.task,
    }
}

impl Adapter {
    async fn count(&self, sql: &str) -> i64 {
        use sea_orm::{ConnectionTrait as _, Statement};
        let conn = centralino_store::connect(&self.db.url, 1)
            .await
            .expect("db");
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }

    async fn finish(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), self.task).await;
        let (queues, exchanges) =
            centralino_test_support::rabbitmq_shared_objects(&self.prefix, &["sms", "counter"]);
        centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
        drop(self.smsc);
        self.db.drop_db().await;
    }
}

async fn ours_outbound(n: usize) -> Duration {
    let a = adapter().await;
    // Bound once the simulator has a session to hand a message to.
    while !a.smsc.mobile_originated("393330000000", OURS, "ping") {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ticket = uuid::Uuid::now_v7().to_string();
    let started = Instant::now();
    for i in 0..n {
        let cmd = v1::SendMessage {
            message_id: uuid::Uuid::now_v7().to_string(),
            interaction_id: ticket.clone(),
            channel: v1::Channel::Sms as i32,
            body: format!("Messaggio {i}"),
            recipient: format!("+39333{i:07}"),
            purpose: "transactional".into(),
            ..Default::default()
        };
        a.bus
            .publish(Exchange::Commands, "sms.send", &new_envelope("bench", &cmd))
            .await
            .expect("published");
    }
    loop {
        let sent = a
            .count("SELECT COUNT(*) FROM sms_outbound WHERE status = 'sent'")
            .await;
        if sent as usize >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    a.finish().await;
    took
}

async fn ours_inbound(n: usize) -> Duration {
    let a = adapter().await;
    let created = Arc::new(AtomicUsize::new(0));
    let mut sub = a
        .bus
        .subscribe(ConsumerSpec::new("counter").bind(Exchange::Events, "interaction.sms.created"))
        .await
        .expect("counter subscribes");
    let counter = created.clone();
    tokio::spawn(async move {
        while let Some(d) = sub.next().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = d.ack().await;
        }
    });
    let started = loop {
        let at = Instant::now();
        if a.smsc
            .mobile_originated_many("39333", OURS, "Buongiorno", n)
        {
            break at;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    while created.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    a.finish().await;
    took
}

#[tokio::main]
async fn main() {
    // Warnings by default (RUST_LOG=sms=debug,… for more), on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    println!("sms_bench: {n} messages each way; load before: {}", load());
    println!("  outbound raw (transport alone) ...");
    let raw_out = raw_outbound(n).await;
    println!("  outbound ours (sms.send → sent) ...");
    let ours_out = ours_outbound(n).await;
    println!("  inbound raw (transport alone) ...");
    let raw_in = raw_inbound(n).await;
    println!("  inbound ours (deliver_sm → interaction.sms.created on the bus) ...");
    let ours_in = ours_inbound(n).await;
    println!();
    println!("| path | raw msg/s | ours msg/s | ours / raw |");
    println!("|---|---|---|---|");
    for (name, raw, ours) in [
        ("outbound", raw_out, ours_out),
        ("inbound", raw_in, ours_in),
    ] {
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} |",
            rate(n, raw),
            rate(n, ours),
            raw.as_secs_f64() / ours.as_secs_f64()
        );
    }
    println!("load after: {}", load());
}
