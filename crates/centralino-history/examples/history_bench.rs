//! History benchmarks on real RabbitMQ and PostgreSQL, each beside a raw
//! baseline measured in the same run.
//!
//! - `ingest [events]` (default 100,000): the events (creations with phone
//!   identifiers, half of them of a known customer, and three routing steps
//!   each) are queued on RabbitMQ first; then the history service starts and
//!   drains them into PostgreSQL (`synchronous_commit` as the server has it,
//!   printed). Baseline: the same number of rows written by multi-row INSERTs
//!   of 1,000 rows per transaction into a plain table.
//! - `api [customers] [per-customer] [rate/s] [seconds]` (default 1,000,000 10
//!   2,000 20): seeds a database kept between runs
//!   (`centralino_bench_history_<customers>_<per>`), then sends `ListTimeline`
//!   and `FindCustomers` (half each, random customers) over gRPC at a fixed
//!   open-loop rate and reports latency from each request's scheduled time.
//!   Baseline: the same two reads straight on the database pool at the same rate.
//!
//! Needs RabbitMQ and PostgreSQL as for the tests (`CENTRALINO_TEST_AMQP_URL`,
//! `CENTRALINO_TEST_DATABASE_URL`).
//!
//! `cargo run --release -p centralino-history --example history_bench -- ingest 100000`
//! `cargo run --release -p centralino-history --example history_bench -- api 1000000 10 2000 20`
//!
//! `probe` is not a benchmark: it prints how long one statement takes by the
//! size of the message it sends over TCP (the stall `centralino_store::chunks`
//! works around).

use std::sync::Arc;
use std::time::{Duration, Instant};

use centralino_auth::{AuthLayer, Policy, Role, TokenKey};
use centralino_bus::{AmqpBus, AmqpConfig, Bus, Exchange, Topology, new_envelope};
use centralino_history::{HistoryConfig, SuppressionKey};
use centralino_proto::v1;
use centralino_proto::v1::history_service_client::HistoryServiceClient;
use centralino_server::{GrpcServer, GrpcSettings};
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix, postgres_admin_url};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use tokio::sync::mpsc;

const SECRET: &[u8] = b"history-bench-secret-0123456789abcdefgh";

fn config() -> HistoryConfig {
    HistoryConfig {
        suppression_key: Some(
            SuppressionKey::new(b"history-bench-suppression-0123456789").expect("key"),
        ),
        ..HistoryConfig::default()
    }
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map(|s| {
            s.parse().unwrap_or_else(|_| {
                eprintln!("argument {n} ({s}) is not a number");
                std::process::exit(64)
            })
        })
        .unwrap_or(default)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("an integer")
}

async fn text(db: &DatabaseConnection, sql: &str) -> String {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query")
        .expect("a row");
    row.try_get_by_index::<String>(0).expect("text")
}

fn amqp(prefix: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = "history-bench".into();
    c
}

fn stop_signal() -> (
    tokio::sync::watch::Sender<bool>,
    impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let f = move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|s| *s).await;
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    };
    (tx, f)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("ingest") => ingest(arg(2, 100_000).max(4)).await,
        // Not a benchmark: shows the statement-size stall the store works around.
        Some("probe") => probe().await,
        Some("api") => {
            api(
                arg(2, 1_000_000).max(1),
                arg(3, 10).max(1),
                arg(4, 2_000).max(1),
                arg(5, 20).max(1),
            )
            .await
        }
        _ => {
            eprintln!(
                "usage: history_bench ingest [events] | api [customers] [per-customer] [rate/s] [seconds] | probe"
            );
            std::process::exit(64);
        }
    }
}

// ---------------------------------------------------------------------------
// Ingest

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

async fn ingest(events: u64) {
    let interactions = events / 4;
    let events = interactions * 4;
    let db = TestDatabase::postgres().await;
    let store = centralino_store::connect(&db.url, 8)
        .await
        .expect("PostgreSQL");
    centralino_store::migrate::<centralino_store::CoreMigrator>(&store, |_| {})
        .await
        .expect("migrate");
    centralino_store::migrate::<centralino_history::HistoryMigrator>(&store, |_| {})
        .await
        .expect("migrate");
    let sync = text(&store, "SHOW synchronous_commit").await;
    println!(
        "history ingest: {events} events ({interactions} interactions × created + queued + assigned + completed), synchronous_commit={sync}"
    );
    let prefix = bus_prefix("hbench");
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp(&prefix)).await.expect("RabbitMQ"));
    // Declare history's queue, then queue every event before it starts.
    drop(
        bus.subscribe(centralino_history::consumer_spec())
            .await
            .expect("declare"),
    );
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let (tx, mut rx) = mpsc::channel::<(String, v1::Envelope)>(4_096);
    let producer = tokio::spawn(async move {
        for i in 0..interactions {
            let id = uuid::Uuid::now_v7().to_string();
            let at = now + i as i64;
            let created = v1::InteractionCreated {
                interaction: Some(v1::Interaction {
                    id: id.clone(),
                    channel: v1::Channel::Voice.into(),
                    direction: v1::Direction::Inbound.into(),
                    identifiers: vec![v1::CustomerIdentifier {
                        kind: v1::customer_identifier::Kind::Phone.into(),
                        // Half the calls come from a number seen before.
                        value: format!("+39347{:07}", i / 2),
                    }],
                    queue_hint: "support".into(),
                    subject: format!("call {i}"),
                    created_at: Some(ts(at)),
                    ..Default::default()
                }),
            };
            let mut batch = vec![(
                "interaction.voice.created".to_owned(),
                new_envelope("bench", &created),
            )];
            for (k, name, dt) in [
                (v1::routing_event::Kind::Queued, "queued", 10),
                (v1::routing_event::Kind::Assigned, "assigned", 2_000),
                (v1::routing_event::Kind::Completed, "completed", 90_000),
            ] {
                let e = v1::RoutingEvent {
                    kind: k.into(),
                    interaction_id: id.clone(),
                    channel: v1::Channel::Voice.into(),
                    queue: "support".into(),
                    agent: format!("agent{}", i % 100),
                    at: Some(ts(at + dt)),
                    ..Default::default()
                };
                batch.push((format!("routing.voice.{name}"), new_envelope("bench", &e)));
            }
            for item in batch {
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        }
    });
    let mut publishes = Vec::new();
    let mut published = 0u64;
    while let Some((key, env)) = rx.recv().await {
        let bus = bus.clone();
        publishes.push(tokio::spawn(async move {
            bus.publish(Exchange::Events, &key, &env)
                .await
                .expect("publish")
        }));
        if publishes.len() >= 1_000 {
            for p in publishes.drain(..) {
                p.await.expect("publish task");
            }
        }
        published += 1;
        if published.is_multiple_of(50_000) {
            println!("  queued {published}/{events}");
        }
    }
    for p in publishes {
        p.await.expect("publish task");
    }
    producer.await.expect("producer");
    println!(
        "  queued {events} on RabbitMQ in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let (stop, stopped) = stop_signal();
    let started = Instant::now();
    let history =
        centralino_history::start(config(), store.clone(), bus.clone(), 4 << 20, stopped())
            .await
            .expect("history");
    let mut last_print = Instant::now();
    let (mut last_done, mut progress_at) = (0, Instant::now());
    loop {
        let done = scalar(
            &store,
            "SELECT count(*) FROM centralino_inbox WHERE consumer = 'history'",
        )
        .await as u64;
        if done >= events {
            break;
        }
        if done > last_done {
            (last_done, progress_at) = (done, Instant::now());
        }
        if last_print.elapsed() > Duration::from_secs(5) {
            println!("  written {done}/{events}");
            last_print = Instant::now();
        }
        if progress_at.elapsed() > Duration::from_secs(60) {
            eprintln!(
                "history wrote nothing for 60 s ({done}/{events}): events were dead-lettered? \
                 (rabbitmqctl list_queues | grep {prefix}.history.dead)"
            );
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ours = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let _ = history.task.await;
    let rows = scalar(&store, "SELECT count(*) FROM history_interactions").await;
    let customers = scalar(&store, "SELECT count(*) FROM history_customers").await;
    let steps = scalar(&store, "SELECT count(*) FROM history_steps").await;
    assert_eq!(rows as u64, interactions, "every interaction written once");
    assert_eq!(
        customers as u64,
        interactions.div_ceil(2),
        "one customer per number"
    );
    assert_eq!(steps as u64, interactions * 3, "every step written once");
    let ours_rate = events as f64 / ours;
    println!(
        "  ours: {events} events in {ours:.2} s = {ours_rate:.0} events/s ({interactions} interactions, {customers} customers, {steps} steps; load average {})",
        load_average()
    );

    // Baseline: the same number of rows, multi-row INSERTs of 1,000 per transaction.
    store
        .execute_unprepared(
            "CREATE TABLE bench_raw (id text PRIMARY KEY, customer_id text, kind text, \
             queue text, agent text, subject text, at bigint)",
        )
        .await
        .expect("baseline table");
    let started = Instant::now();
    let mut n = 0u64;
    while n < events {
        let upto = (n + 1_000).min(events);
        let values: Vec<String> = (n..upto)
            .map(|i| {
                format!(
                    "('{}', '00000000-0000-4000-8000-{:012x}', 'completed', 'support', 'agent{}', 'call {i}', {})",
                    uuid::Uuid::now_v7(),
                    i / 8,
                    i % 100,
                    now + i as i64
                )
            })
            .collect();
        let txn_sql = format!(
            "INSERT INTO bench_raw (id, customer_id, kind, queue, agent, subject, at) VALUES {}",
            values.join(",")
        );
        let txn = centralino_store::begin(&store).await.expect("begin");
        txn.execute_unprepared(&txn_sql).await.expect("insert");
        txn.commit().await.expect("commit");
        n = upto;
    }
    let raw = started.elapsed().as_secs_f64();
    let raw_rate = events as f64 / raw;
    println!(
        "  raw batched INSERT (1,000 rows per transaction): {events} rows in {raw:.2} s = {raw_rate:.0} rows/s (load average {})",
        load_average()
    );
    println!(
        "  ratio ours / raw = {:.2}; target ≥ 10,000 events/s: {}",
        ours_rate / raw_rate,
        if ours_rate >= 10_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = store.close().await;
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(&prefix, &centralino_history::CONSUMERS);
    centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
    db.drop_db().await;
}

// ---------------------------------------------------------------------------
// API

fn customer_id(i: u64) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn phone_of(i: u64) -> String {
    format!("+39347{i:07}")
}

async fn seeded(customers: u64, per: u64) -> (String, DatabaseConnection) {
    let admin_url = postgres_admin_url();
    let name = format!("centralino_bench_history_{customers}_{per}");
    let admin = sea_orm::Database::connect(admin_url.as_str())
        .await
        .expect("PostgreSQL admin");
    let exists = scalar(
        &admin,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    )
    .await;
    if exists == 0 {
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create database");
    }
    let _ = admin.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("URL ends with /db");
    let url = format!("{base}/{name}");
    let db = centralino_store::connect(&url, 16).await.expect("bench db");
    centralino_store::migrate::<centralino_store::CoreMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    centralino_store::migrate::<centralino_history::HistoryMigrator>(&db, |_| {})
        .await
        .expect("migrate");
    let have = scalar(&db, "SELECT count(*) FROM history_interactions").await as u64;
    if have >= customers * per {
        println!("  using the seeded database {name} ({have} interactions)");
        return (url, db);
    }
    println!(
        "  seeding {name}: {customers} customers, {} interactions (kept for later runs)",
        customers * per
    );
    let started = Instant::now();
    for sql in [
        "TRUNCATE history_customers, history_identifiers, history_interactions",
        "DROP INDEX IF EXISTS history_interactions_fts",
        "DROP INDEX IF EXISTS history_interactions_timeline",
    ] {
        db.execute_unprepared(sql).await.expect("prepare");
    }
    let chunk = 100_000u64;
    let mut from = 1u64;
    while from <= customers {
        let to = (from + chunk - 1).min(customers);
        db.execute_unprepared(&format!(
            "INSERT INTO history_customers (id, display_name, name_key, attributes, created_at, updated_at) \
             SELECT '00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'), 'Cliente ' || i, 'cliente ' || i, \
                    '{{}}', 1700000000000 + i, 1700000000000 + i FROM generate_series({from}, {to}) i;
             INSERT INTO history_identifiers (kind, value, customer_id, added_at) \
             SELECT 'phone', '+39347' || lpad(i::text, 7, '0'), '00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'), 0 \
             FROM generate_series({from}, {to}) i;
             INSERT INTO history_interactions (id, customer_id, channel, direction, queue, agent, status, status_at, \
                    disposition, notes, subject, conversation_id, created_at, known, assigned_at, ended_at, duration_ms, \
                    outcome, recording_ref, ivr_path, attributes, resolved_by) \
             SELECT '00000000-0000-4000-9000-' || lpad(to_hex(n), 12, '0'), \
                    '00000000-0000-4000-8000-' || lpad(to_hex((n - 1) / {per} + 1), 12, '0'), \
                    (ARRAY['voice','email','sms','desk'])[1 + n % 4], 'inbound', 'support', 'agent' || (n % 200), \
                    'completed', 1700000000000 + n::bigint * 1000, 'solved', 'wrap-up notes ' || (n % 1000), \
                    'subject ' || (n % 5000), '', 1700000000000 + n::bigint * 1000, 1, NULL, NULL, 60000, '', '', '[]', '{{}}', '' \
             FROM generate_series(({from} - 1) * {per} + 1, {to} * {per}) n;"
        ))
        .await
        .expect("seed");
        println!(
            "    {to}/{customers} customers ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        from = to + 1;
    }
    println!("    building indexes…");
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS history_interactions_timeline \
         ON history_interactions (customer_id, created_at, id)",
    )
    .await
    .expect("index");
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS history_interactions_fts ON history_interactions USING gin \
         ((to_tsvector('simple', coalesce(subject, '') || ' ' || coalesce(notes, ''))))",
    )
    .await
    .expect("index");
    db.execute_unprepared("VACUUM ANALYZE")
        .await
        .expect("analyze");
    println!("  seeded in {:.0} s", started.elapsed().as_secs_f64());
    (url, db)
}

/// Sends `rate` requests a second for `seconds`, each made by `call(i)`;
/// latency counts from the request's scheduled time (open loop).
async fn open_loop<F, Fut>(rate: u64, seconds: u64, call: F) -> (Vec<f64>, u64)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let total = rate * seconds;
    let (tx, mut rx) = mpsc::unbounded_channel::<(f64, bool)>();
    let start = Instant::now();
    let tick = Duration::from_millis(1);
    let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0);
    let mut sent = 0u64;
    let mut k = 0u64;
    while sent < total {
        k += 1;
        let due = start + tick * k as u32;
        tokio::time::sleep_until(due.into()).await;
        let target = ((k as f64 * per_tick) as u64).min(total);
        while sent < target {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            let call = call.clone();
            let tx = tx.clone();
            let i = sent;
            tokio::spawn(async move {
                let ok = call(i).await;
                let _ = tx.send((scheduled.elapsed().as_secs_f64() * 1000.0, ok));
            });
            sent += 1;
        }
    }
    drop(tx);
    let mut lat = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some((ms, ok)) = rx.recv().await {
        lat.push(ms);
        if !ok {
            errors += 1;
        }
    }
    lat.sort_by(f64::total_cmp);
    (lat, errors)
}

fn report(what: &str, lat: &[f64], errors: u64, seconds: u64) {
    println!(
        "  {what}: {} requests ({:.0}/s), {errors} errors, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (load average {})",
        lat.len(),
        lat.len() as f64 / seconds as f64,
        pct(lat, 0.50),
        pct(lat, 0.99),
        lat.last().copied().unwrap_or(f64::NAN),
        load_average()
    );
}

/// A cheap, deterministic spread of customers.
fn pick(i: u64, customers: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % customers + 1
}

async fn api(customers: u64, per: u64, rate: u64, seconds: u64) {
    println!(
        "history API: ListTimeline + FindCustomers at {rate}/s for {seconds} s, {customers} customers × {per} interactions"
    );
    let (_url, db) = seeded(customers, per).await;
    let prefix = bus_prefix("hbench");
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp(&prefix)).await.expect("RabbitMQ"));
    let (stop, stopped) = stop_signal();
    let history = centralino_history::start(config(), db.clone(), bus.clone(), 4 << 20, stopped())
        .await
        .expect("history");
    let mut policy = Policy::default();
    centralino_history::policy(&mut policy);
    let key = TokenKey::new(SECRET.to_vec()).expect("key");
    let mut server = GrpcServer::new(
        GrpcSettings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..GrpcSettings::default()
        },
        AuthLayer::new(key.clone(), policy),
    );
    server.add(history.api);
    let (addr, serve) = server.bind(stopped()).await.expect("bind");
    let server_task = tokio::spawn(serve);
    let token = key
        .mint("bench", Role::Agent, chrono::Utc::now().timestamp(), 3_600)
        .expect("token");
    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("header");
    let mut clients = Vec::new();
    for _ in 0..8 {
        let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        clients.push(HistoryServiceClient::new(ch));
    }
    let clients = Arc::new(clients);
    // Warm up: one request each way.
    {
        let mut c = clients[0].clone();
        let mut r = tonic::Request::new(v1::ListTimelineRequest {
            customer_id: customer_id(1),
            ..Default::default()
        });
        r.metadata_mut().insert("authorization", bearer.clone());
        let got = c.list_timeline(r).await.expect("timeline").into_inner();
        assert_eq!(got.interactions.len() as u64, per.min(50));
    }
    let b = bearer.clone();
    let (lat, errors) = open_loop(rate, seconds, move |i| {
        let mut c = clients[(i % 8) as usize].clone();
        let who = pick(i, customers);
        let b = b.clone();
        async move {
            if i % 2 == 0 {
                let mut r = tonic::Request::new(v1::ListTimelineRequest {
                    customer_id: customer_id(who),
                    page_size: 20,
                    ..Default::default()
                });
                r.metadata_mut().insert("authorization", b);
                c.list_timeline(r)
                    .await
                    .is_ok_and(|t| !t.into_inner().interactions.is_empty())
            } else {
                let mut r = tonic::Request::new(v1::FindCustomersRequest {
                    identifier: Some(v1::CustomerIdentifier {
                        kind: v1::customer_identifier::Kind::Phone.into(),
                        value: phone_of(who),
                    }),
                    ..Default::default()
                });
                r.metadata_mut().insert("authorization", b);
                c.find_customers(r)
                    .await
                    .is_ok_and(|f| f.into_inner().customers.len() == 1)
            }
        }
    })
    .await;
    report("ours (gRPC, auth, validation)", &lat, errors, seconds);
    let ours_p99 = pct(&lat, 0.99);

    // Baseline: the same two reads, straight SQL on the pool.
    let pool = db.clone();
    let (lat, errors) = open_loop(rate, seconds, move |i| {
        let db = pool.clone();
        let who = pick(i, customers);
        async move {
            let sql = if i % 2 == 0 {
                format!(
                    "SELECT id FROM history_interactions WHERE customer_id = '{}' \
                     ORDER BY created_at DESC, id DESC LIMIT 21",
                    customer_id(who)
                )
            } else {
                format!(
                    "SELECT c.id FROM history_identifiers i JOIN history_customers c ON c.id = i.customer_id \
                     WHERE i.kind = 'phone' AND i.value = '{}'",
                    phone_of(who)
                )
            };
            db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
                .await
                .is_ok_and(|rows| !rows.is_empty())
        }
    })
    .await;
    report("raw SQL on the pool", &lat, errors, seconds);
    let raw_p99 = pct(&lat, 0.99);
    println!(
        "  p99 ratio ours / raw = {:.2}; target p99 < 10 ms at 2,000 req/s: {}",
        ours_p99 / raw_p99,
        if ours_p99 < 10.0 && rate >= 2_000 {
            "met"
        } else {
            "NOT met"
        }
    );
    let _ = stop.send(true);
    let _ = server_task.await;
    let _ = history.task.await;
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(&prefix, &centralino_history::CONSUMERS);
    centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
}

/// Why bulk statements are cut (see `centralino_store::chunks`): the time of
/// one INSERT and one SELECT by the size of the message sent, over TCP.
async fn probe() {
    let t = TestDatabase::postgres().await;
    let db = centralino_store::connect(&t.url, 1).await.expect("db");
    println!(
        "statement size probe over TCP ({}):",
        t.url.split('@').next_back().unwrap_or("?")
    );
    for rows in [50usize, 100, 200, 250, 300, 400, 500, 1_000, 2_000] {
        let ids: Vec<String> = (0..rows)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        let values: Vec<String> = ids
            .iter()
            .map(|i| format!("('probe', '{i}', now())"))
            .collect();
        let insert = format!(
            "CREATE TABLE IF NOT EXISTS probe (c text, m text PRIMARY KEY, at timestamptz); \
             INSERT INTO probe (c, m, at) VALUES {}",
            values.join(",")
        );
        let started = Instant::now();
        db.execute_unprepared(&insert).await.expect("insert");
        let wrote = started.elapsed();
        let list: Vec<String> = ids.iter().map(|i| format!("'{i}'")).collect();
        let select = format!("SELECT m FROM probe WHERE m IN ({})", list.join(","));
        let started = Instant::now();
        db.query_all_raw(Statement::from_string(
            db.get_database_backend(),
            select.clone(),
        ))
        .await
        .expect("select");
        println!(
            "  {rows:>5} rows: INSERT of {:>3} KB {:>7.1} ms, SELECT of {:>3} KB {:>7.1} ms",
            insert.len() / 1024,
            wrote.as_secs_f64() * 1000.0,
            select.len() / 1024,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let _ = db.close().await;
    t.drop_db().await;
}
