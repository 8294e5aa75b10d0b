//! Ingest → offer latency: an adapter publishes interactions on real RabbitMQ
//! at a fixed rate; the router (real PostgreSQL) offers them to agents
//! connected over gRPC. Measured from the adapter's publish call to the offer
//! arriving on the agent's stream. The baseline, in the same run, is a raw
//! consumer of the very same messages on its own queue (the bus alone: no
//! routing, no database).
//!
//! Needs RabbitMQ and PostgreSQL as for the tests (`CENTRALINO_TEST_AMQP_URL`,
//! `CENTRALINO_TEST_DATABASE_URL`).
//!
//! `cargo run --release -p centralino-router --example ingest_bench -- [rate/s] [seconds] [agents]`
//! (defaults: 500 20 50).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use centralino_auth::{AuthLayer, Policy, Role, TokenKey};
use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, EnvelopeExt as _, Exchange, Topology, new_envelope,
};
use centralino_proto::v1;
use centralino_proto::v1::agent_request::Action;
use centralino_proto::v1::agent_service_client::AgentServiceClient;
use centralino_proto::v1::agent_update::Update;
use centralino_proto::v1::routing_admin_service_client::RoutingAdminServiceClient;
use centralino_router::RouterConfig;
use centralino_server::{GrpcServer, GrpcSettings};
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use tokio::sync::mpsc;

const SECRET: &[u8] = b"ingest-bench-secret-0123456789abcdefgh";

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = arg(1, 500).max(1);
    let seconds = arg(2, 20).max(1);
    let agents = arg(3, 50).max(1);
    let total = rate * seconds;
    println!(
        "ingest → offer: {total} email interactions at {rate}/s over {seconds} s, {agents} agents, real RabbitMQ + PostgreSQL"
    );
    let db = TestDatabase::postgres().await;
    let prefix = bus_prefix("bench");
    let mut amqp = AmqpConfig::new(amqp_url());
    amqp.topology = Topology::new(prefix.clone());
    let bus: Arc<dyn Bus> = Arc::new(AmqpBus::connect(amqp.clone()).await.expect("RabbitMQ"));
    let store = centralino_store::connect(&db.url, 16)
        .await
        .expect("PostgreSQL");
    centralino_store::migrate::<centralino_store::CoreMigrator>(&store, |_| {})
        .await
        .expect("migrate");
    centralino_store::migrate::<centralino_router::RoutingMigrator>(&store, |_| {})
        .await
        .expect("migrate");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let config = RouterConfig {
        position_interval_ms: 0,
        ..RouterConfig::default()
    };
    let router = centralino_router::start(config, store.clone(), bus.clone(), 4 << 20, stopped())
        .await
        .expect("router");
    let mut policy = Policy::default();
    centralino_router::policy(&mut policy);
    let key = TokenKey::new(SECRET.to_vec()).expect("key");
    let mut server = GrpcServer::new(
        GrpcSettings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..GrpcSettings::default()
        },
        AuthLayer::new(key.clone(), policy),
    );
    server.add(router.agent);
    server.add(router.supervisor);
    server.add(router.admin);
    let (addr, serve) = server.bind(stopped()).await.expect("bind");
    let server_task = tokio::spawn(serve);
    let token = |sub: &str, role| {
        key.mint(sub, role, chrono::Utc::now().timestamp(), 3_600)
            .expect("token")
    };
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut admin = RoutingAdminServiceClient::new(channel.clone());
    let admin_token = token("bench", Role::Admin);
    admin
        .upsert_queue(authed(
            v1::QueueDefinition {
                name: "bench".into(),
                channels: vec![v1::Channel::Email as i32],
                ..Default::default()
            },
            &admin_token,
        ))
        .await
        .expect("queue");
    // Agents with room for everything: the measure is the path, not staffing.
    let routed = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    for n in 0..agents {
        let name = format!("agent-{n}");
        admin
            .upsert_agent(authed(
                v1::AgentDefinition {
                    name: name.clone(),
                    capacity: vec![v1::ChannelCapacity {
                        channel: v1::Channel::Email as i32,
                        capacity: 100,
                    }],
                    ..Default::default()
                },
                &admin_token,
            ))
            .await
            .expect("agent");
        let (tx, rx) = mpsc::channel(1024);
        let mut client = AgentServiceClient::new(channel.clone());
        let mut updates = client
            .session(authed(
                tokio_stream::wrappers::ReceiverStream::new(rx),
                &token(&name, Role::Agent),
            ))
            .await
            .expect("session")
            .into_inner();
        let send = |tx: &mpsc::Sender<v1::AgentRequest>, action| {
            let tx = tx.clone();
            async move {
                let _ = tx
                    .send(v1::AgentRequest {
                        request_id: uuid::Uuid::new_v4().simple().to_string(),
                        action: Some(action),
                    })
                    .await;
            }
        };
        send(
            &tx,
            Action::SetPresence(v1::SetPresence {
                presence: v1::AgentPresence::Available as i32,
                reason: String::new(),
            }),
        )
        .await;
        let routed = routed.clone();
        tokio::spawn(async move {
            while let Ok(Some(u)) = updates.message().await {
                match u.update {
                    Some(Update::Offer(o)) => {
                        let arrived = now_ns();
                        if let Some(sent) = o
                            .interaction
                            .as_ref()
                            .and_then(|i| i.attributes.get("sent_at_ns"))
                            .and_then(|s| s.parse::<u128>().ok())
                        {
                            routed
                                .lock()
                                .expect("routed")
                                .push(arrived.saturating_sub(sent) as f64 / 1e6);
                        }
                        send(
                            &tx,
                            Action::Accept(v1::OfferAnswer {
                                interaction_id: o.interaction_id,
                            }),
                        )
                        .await;
                    }
                    Some(Update::Assigned(a)) => {
                        send(
                            &tx,
                            Action::Complete(v1::CompleteInteraction {
                                interaction_id: a.interaction_id,
                                wrap_up_ms: Some(0),
                                ..Default::default()
                            }),
                        )
                        .await;
                    }
                    _ => {}
                }
            }
        });
    }
    // The raw baseline: the same messages, consumed straight off the bus.
    let raw = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let mut sub = bus
        .subscribe(
            ConsumerSpec::new("bench-raw")
                .bind(Exchange::Events, "interaction.*.created")
                .prefetch(512),
        )
        .await
        .expect("raw consumer");
    let raw_sink = raw.clone();
    tokio::spawn(async move {
        while let Some(d) = sub.next().await {
            let arrived = now_ns();
            if let Ok(c) = d.envelope.decode::<v1::InteractionCreated>()
                && let Some(sent) = c
                    .interaction
                    .as_ref()
                    .and_then(|i| i.attributes.get("sent_at_ns"))
                    .and_then(|s| s.parse::<u128>().ok())
            {
                raw_sink
                    .lock()
                    .expect("raw")
                    .push(arrived.saturating_sub(sent) as f64 / 1e6);
            }
            let _ = d.ack().await;
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut publishes = Vec::with_capacity(total as usize);
    for n in 0..total {
        tick.tick().await;
        let bus = bus.clone();
        publishes.push(tokio::spawn(async move {
            let mut interaction = v1::Interaction {
                id: uuid::Uuid::now_v7().to_string(),
                channel: v1::Channel::Email as i32,
                direction: v1::Direction::Inbound as i32,
                queue_hint: "bench".into(),
                created_at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
                ..Default::default()
            };
            interaction
                .attributes
                .insert("sent_at_ns".into(), now_ns().to_string());
            let env = new_envelope(
                "bench-adapter",
                &v1::InteractionCreated {
                    interaction: Some(interaction),
                },
            );
            bus.publish(Exchange::Events, "interaction.email.created", &env)
                .await
        }));
        if n > 0 && n % (rate * 5) == 0 {
            eprintln!(
                "  … {n} published, {} offered ({:.1} s)",
                routed.lock().expect("routed").len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut failed = 0;
    for p in publishes {
        if !matches!(p.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let publish_secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && (routed.lock().expect("routed").len() < total as usize
            || raw.lock().expect("raw").len() < total as usize)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut r = routed.lock().expect("routed").clone();
    let mut b = raw.lock().expect("raw").clone();
    r.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    println!(
        "published {total} in {publish_secs:.1} s ({:.0}/s, {failed} failed); load average {}",
        total as f64 / publish_secs,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    println!("path                          received     p50        p95        p99        max");
    for (name, v) in [
        ("routing (publish → offer)", &r),
        ("raw bus (publish → consume)", &b),
    ] {
        println!(
            "{name:<29} {:>8}   {:>6.2} ms  {:>6.2} ms  {:>6.2} ms  {:>7.2} ms",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.95),
            pct(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!();
    println!(
        "routing p99 is {:.2}× the raw bus p99 (+{:.2} ms)",
        pct(&r, 0.99) / pct(&b, 0.99),
        pct(&r, 0.99) - pct(&b, 0.99)
    );
    let ok = r.len() == total as usize && pct(&r, 0.99) < 25.0;
    println!(
        "target (every interaction offered, p99 < 25 ms at {rate}/s): {}",
        if ok { "met" } else { "NOT met" }
    );
    let _ = stop_tx.send(true);
    let _ = server_task.await;
    let _ = router.task.await;
    let (queues, exchanges) =
        centralino_test_support::rabbitmq_shared_objects(&prefix, &["routing", "bench-raw"]);
    centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
    let _ = store.close().await;
    db.drop_db().await;
}
