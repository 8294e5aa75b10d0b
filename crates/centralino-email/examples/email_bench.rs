//! Email ingest benchmark: messages per second from a real Dovecot to the bus.
//!
//! `cargo run --release -p centralino-email --example email_bench -- [messages] [batch]`
//!
//! Needs Dovecot installed (apt-get install dovecot-imapd), RabbitMQ and
//! PostgreSQL (as for the tests). It delivers `messages` (default 5,000) emails
//! into a private Dovecot, then measures in the same run:
//! - raw: one async-imap session fetching every message body in batches
//!   (`UID FETCH … BODY.PEEK[]`), nothing else: the ceiling an importer has;
//! - ours: the adapter, from start until every message's event is on the bus
//!   (parsed, de-duplicated, threaded, committed to PostgreSQL with its
//!   position, published with confirms through the outbox) and flagged seen.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, EnvelopeExt as _, Exchange, Topology,
};
use centralino_email::{AfterImport, EmailConfig, ImapEndpoint, MailboxConfig, Security};
use centralino_proto::v1;
use centralino_test_support::mail::{Dovecot, PASSWORD};
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use futures::TryStreamExt as _;

const USER: &str = "support@example.test";

fn message(i: usize) -> Vec<u8> {
    let body = "Buongiorno, vorrei sapere lo stato della mia pratica. ".repeat(20);
    format!(
        "From: Cliente {i} <c{i}@example.test>\r\nTo: {USER}\r\nSubject: Pratica {i}\r\n\
         Message-ID: <bench-{i}@example.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

async fn login(port: u16) -> async_imap::Session<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.expect("greeting");
    client
        .login(USER, PASSWORD)
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let batch: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200);
    let dovecot = Dovecot::start(&[USER]);
    println!(
        "email_bench: delivering {n} messages into Dovecot on port {}",
        dovecot.port()
    );
    let mut s = login(dovecot.port()).await;
    for i in 0..n {
        s.append("INBOX", None, None, message(i))
            .await
            .expect("APPEND");
        if (i + 1) % 1_000 == 0 {
            println!("  delivered {}/{n}", i + 1);
        }
    }

    // Raw: fetch every body, in batches of `batch`, in one session.
    s.select("INBOX").await.expect("select");
    let started = Instant::now();
    let mut fetched = 0usize;
    let mut bytes = 0usize;
    let mut from = 1usize;
    while fetched < n {
        let to = from + batch - 1;
        let got: Vec<_> = s
            .uid_fetch(format!("{from}:{to}"), "(UID BODY.PEEK[])")
            .await
            .expect("fetch")
            .try_collect()
            .await
            .expect("fetch");
        if got.is_empty() {
            break;
        }
        fetched += got.len();
        bytes += got
            .iter()
            .filter_map(|f| f.body().map(<[u8]>::len))
            .sum::<usize>();
        from = to + 1;
    }
    let raw = started.elapsed();
    let raw_rate = fetched as f64 / raw.as_secs_f64();
    println!(
        "raw IMAP fetch: {fetched} messages ({} KiB) in {:.2} s = {raw_rate:.0} msg/s",
        bytes / 1024,
        raw.as_secs_f64()
    );
    let _ = s.logout().await;

    // Ours: the adapter, from start to every message on the bus and flagged.
    let db = TestDatabase::postgres().await;
    let prefix = bus_prefix("eb");
    let mut amqp = AmqpConfig::new(amqp_url());
    amqp.topology = Topology::new(prefix.clone());
    amqp.connection_name = "email-bench".into();
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp).await.expect("RabbitMQ"));
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut sub = bus
        .subscribe(
            ConsumerSpec::new("observer")
                .bind(Exchange::Events, "interaction.email.message")
                .prefetch(1_000),
        )
        .await
        .expect("observer");
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(d) = sub.next().await {
            if let Ok(m) = d.envelope.decode::<v1::MessageRecorded>() {
                sink.lock().expect("seen").insert(m.subject);
            }
            let _ = d.ack().await;
        }
    });
    let conn = centralino_store::connect(&db.url, 8).await.expect("db");
    centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
        .await
        .expect("migrate");
    centralino_store::migrate::<centralino_email::EmailMigrator>(&conn, |_| {})
        .await
        .expect("migrate");
    let config = EmailConfig {
        mailboxes: vec![MailboxConfig {
            name: "support".into(),
            address: USER.into(),
            display_name: "Support".into(),
            queue: "support".into(),
            priority: 0,
            imap: ImapEndpoint {
                host: "127.0.0.1".into(),
                port: dovecot.port(),
                security: Security::Plain,
                user: USER.into(),
                password: PASSWORD.into(),
                folder: "INBOX".into(),
                tls_ca_file: None,
            },
            after_import: AfterImport::MarkSeen,
        }],
        batch_size: batch,
        ..EmailConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let email = centralino_email::start(config, conn.clone(), bus.clone(), async move {
        let _ = stopped.await;
    })
    .await
    .expect("adapter starts");
    let mut last_report = Instant::now();
    loop {
        let count = seen.lock().expect("seen").len();
        if count >= n {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(2) {
            println!("  on the bus: {count}/{n}");
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "stalled at {count}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let ours = started.elapsed();
    let ours_rate = n as f64 / ours.as_secs_f64();
    // Flagging follows the broker's confirms; wait for it too.
    let mut s = login(dovecot.port()).await;
    s.select("INBOX").await.expect("select");
    loop {
        let unseen = s.uid_search("UNSEEN").await.expect("search").len();
        if unseen == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let flagged = started.elapsed();
    println!(
        "ours (IMAP -> parse -> PostgreSQL -> RabbitMQ): {n} messages on the bus in {:.2} s = {ours_rate:.0} msg/s; all flagged seen after {:.2} s",
        ours.as_secs_f64(),
        flagged.as_secs_f64()
    );
    println!(
        "ratio ours/raw: {:.2}   target >= 200 msg/s: {}   load average: {}",
        ours_rate / raw_rate,
        if ours_rate >= 200.0 { "met" } else { "NOT met" },
        load()
    );
    let _ = stop.send(());
    let _ = email.task.await;
    conn.close().await.ok();
    db.drop_db().await;
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(&prefix, &["email", "observer"]);
    centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
}
