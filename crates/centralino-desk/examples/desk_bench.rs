//! Desk benchmark: kiosk tickets per second through the HTTP API (number,
//! row and `interaction.desk.created` in one transaction, board rebuilt),
//! beside the raw floor measured in the same run (the same two rows, a
//! ticket and an outbox entry, inserted in one transaction each with plain
//! SQL, no HTTP, no actor); then how fast a change reaches many open boards
//! (server-sent events).
//!
//! `cargo run --release -p centralino-desk --example desk_bench -- [tickets] [clients] [boards]`
//! (defaults 2000, 8, 50). Needs RabbitMQ and PostgreSQL (as for the tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino_bus::{AmqpBus, AmqpConfig, Bus, Topology};
use centralino_desk::{DeskConfig, ServiceConfig};
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use centralino_ticketing::numbering::Site;
use sea_orm::ConnectionTrait as _;
use tokio::sync::watch;

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn config() -> DeskConfig {
    DeskConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sites: vec![Site {
            id: "bench".into(),
            tz: chrono_tz::UTC,
            opens: chrono::NaiveTime::MIN,
            closes: chrono::NaiveTime::from_hms_opt(23, 59, 59).expect("time"),
        }],
        services: vec![ServiceConfig {
            code: "A".into(),
            name: "Payments".into(),
            prefix: "A".into(),
            queue: "bench-a".into(),
            priority: 0,
        }],
        digits: 4,
        rules: centralino_domain::IdentityRules::default(),
        counters: [("bench".to_owned(), vec!["1".to_owned()])]
            .into_iter()
            .collect(),
        tickets: centralino_ticketing::ticket::Rules::default(),
        check_in: centralino_ticketing::appointment::CheckInRules::default(),
        appointment_priority: 50,
        board_size: 6,
        notify: None,
        printers: std::collections::HashMap::new(),
        kiosk_key: Some(kiosk_key()),
        clock: Arc::new(chrono::Utc::now),
    }
}

fn kiosk_key() -> centralino_auth::TokenKey {
    centralino_auth::TokenKey::new(b"desk-bench-secret-0123456789abcdef".to_vec()).expect("key")
}

/// An HTTP client sending a kiosk's token, as a real kiosk does.
fn kiosk_client() -> reqwest::Client {
    let token = kiosk_key()
        .mint(
            "bench-kiosk",
            centralino_auth::Role::Integrator,
            chrono::Utc::now().timestamp(),
            3_600,
        )
        .expect("token");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client")
}

/// One kiosk ticket for service A; panics unless it is issued.
async fn take_ticket(client: &reqwest::Client, http: SocketAddr) {
    let r = client
        .post(format!("http://{http}/api/sites/bench/tickets"))
        .json(&serde_json::json!({ "service": "A" }))
        .send()
        .await
        .expect("kiosk API");
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

/// Issues `n` tickets from `clients` concurrent kiosks; the latency of each.
async fn kiosks(http: SocketAddr, n: usize, clients: usize) -> (Duration, Vec<Duration>) {
    let client = kiosk_client();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                let t = Instant::now();
                take_ticket(&client, http).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("kiosk task"));
    }
    (started.elapsed(), all)
}

/// The same rows with plain SQL: one transaction per ticket.
async fn raw(db: &sea_orm::DatabaseConnection, n: usize, clients: usize) -> Duration {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (db, next) = (db.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let id = uuid::Uuid::new_v4();
                let txn = centralino_store::begin(&db).await.expect("begin");
                txn.execute_unprepared(&format!(
                    "INSERT INTO desk_tickets (interaction_id, site, service, day, number, label, \
                     state, arrived_at) VALUES ('{id}', 'raw', 'A', '2026-01-01', {i}, 'A{i:04}', \
                     'waiting', 0)"
                ))
                .await
                .expect("ticket");
                txn.execute_unprepared(&format!(
                    "INSERT INTO centralino_outbox (source, exchange, routing_key, envelope, \
                     created_at, attempts, next_attempt_at) VALUES ('raw', 'events', \
                     'interaction.desk.created', decode('{}', 'hex'), now(), 0, now())",
                    "00".repeat(300)
                ))
                .await
                .expect("outbox");
                txn.commit().await.expect("commit");
            }
        }));
    }
    for t in tasks {
        t.await.expect("raw task");
    }
    started.elapsed()
}

/// One board watcher: the time each waiting count was first seen.
async fn watch_board(
    http: SocketAddr,
    seen: watch::Sender<Vec<(u64, Instant)>>,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let mut r = reqwest::Client::new()
        .get(format!("http://{http}/api/sites/bench/board/events"))
        .send()
        .await
        .expect("board events");
    let mut buf = String::new();
    let mut first = true;
    while let Ok(Some(chunk)) = r.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                let board: centralino_desk::Board =
                    serde_json::from_str(data.trim()).expect("board JSON");
                let waiting = board.waiting.first().map_or(0, |w| w.waiting);
                let now = Instant::now();
                seen.send_modify(|s| s.push((waiting, now)));
                if first {
                    first = false;
                    let _ = ready.send(()).await;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let n = arg(1, 2_000);
    let clients = arg(2, 8);
    let boards = arg(3, 50);
    let db = TestDatabase::postgres().await;
    let conn = centralino_store::connect(&db.url, 16)
        .await
        .expect("database");
    centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
        .await
        .expect("core migrations");
    centralino_store::migrate::<centralino_desk::DeskMigrator>(&conn, |_| {})
        .await
        .expect("desk migrations");
    let prefix = bus_prefix("dkb");
    let mut amqp = AmqpConfig::new(amqp_url());
    amqp.topology = Topology::new(prefix.clone());
    amqp.connection_name = "desk-bench".into();
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp).await.expect("RabbitMQ"));
    let (stop, stopped) = watch::channel(false);
    let desk = centralino_desk::start(config(), conn.clone(), bus, 4 << 20, {
        let mut s = stopped.clone();
        async move {
            let _ = s.wait_for(|v| *v).await;
        }
    })
    .await
    .expect("desk starts");
    let http = desk.http_addr;
    println!("desk_bench: {n} tickets from {clients} kiosks, then {boards} open boards");

    println!("  load before: {}", load());
    let raw_took = raw(&conn, n, clients).await;
    let raw_rate = n as f64 / raw_took.as_secs_f64();
    println!(
        "  raw   {n} ticket+outbox transactions in {:.2} s: {raw_rate:.0}/s   load {}",
        raw_took.as_secs_f64(),
        load()
    );
    let (took, mut lat) = kiosks(http, n, clients).await;
    lat.sort();
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "  ours  {n} kiosk tickets in {:.2} s: {rate:.0}/s ({:.2}× raw), p50 {:.1} ms, p99 {:.1} ms   load {}",
        took.as_secs_f64(),
        rate / raw_rate,
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        load()
    );

    // Boards: each of 50 more tickets must reach every open board.
    let mut watchers = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(boards.max(1));
    for _ in 0..boards {
        let (tx, rx) = watch::channel(Vec::new());
        tokio::spawn(watch_board(http, tx, ready_tx.clone()));
        watchers.push(rx);
    }
    for _ in 0..boards {
        ready_rx.recv().await.expect("a board connected");
    }
    let client = kiosk_client();
    let mut fan = Vec::new();
    for i in 1..=50u64 {
        let expect = (n as u64) + i;
        let t = Instant::now();
        take_ticket(&client, http).await;
        for w in &mut watchers {
            let at = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    if let Some((_, at)) = w.borrow().iter().find(|(c, _)| *c >= expect) {
                        return *at;
                    }
                    if w.changed().await.is_err() {
                        return Instant::now();
                    }
                }
            })
            .await
            .expect("every board gets the change within 10 s");
            fan.push(at.saturating_duration_since(t));
        }
    }
    fan.sort();
    println!(
        "  boards  50 changes × {boards} open boards: ticket taken → board shown p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms   load {}",
        pct(&fan, 0.5).as_secs_f64() * 1e3,
        pct(&fan, 0.99).as_secs_f64() * 1e3,
        fan.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        load()
    );
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), desk.task).await;
    let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(&prefix, &["desk"]);
    centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
    drop(conn);
    db.drop_db().await;
}
