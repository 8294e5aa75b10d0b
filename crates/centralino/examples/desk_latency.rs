//! Offer-to-screen latency: how long from an interaction published on the
//! bus (as an adapter publishes it) to its offer on an agent's desktop, with
//! `clients + 1` agent desktops connected to `up` on RabbitMQ and PostgreSQL:
//! `clients` native gRPC clients of `AgentDeskService.Events` (they accept
//! and complete what they are offered), and one real browser (headless
//! Chromium through gRPC-web, the offer timed when its row enters the DOM).
//! Beside it, the raw baseline in the same run: the bus's own round trip
//! (publish → a consumer on the same broker gets it).
//!
//! `cargo run --release -p centralino --example desk_latency -- [offers] [clients]`
//! (defaults 200 and 49). Needs RabbitMQ and PostgreSQL (as the tests do),
//! Chromium and `tests/node`'s packages (`cargo xtask setup`). The suite runs
//! it small (`cargo xtask bench-smoke`), so it cannot rot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use centralino_auth::{Role, TokenKey};
use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Exchange, Topology, new_envelope};
use centralino_proto::v1;
use centralino_proto::v1::agent_desk_service_client::AgentDeskServiceClient;
use centralino_test_support::browser::Desktop;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};

const SECRET: &str = "desk-latency-secret-0123456789abcdef";
const PASSWORD: &str = "latency-bench-password";
/// Between two publications: well apart, so each offer is timed alone.
const SPACING: Duration = Duration::from_millis(40);

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// p50, p99 and max of `ms`, sorted in place.
fn percentiles(ms: &mut [f64]) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((ms.len() as f64 - 1.0) * q).round() as usize;
        ms.get(i).copied().unwrap_or(f64::NAN)
    };
    (at(0.50), at(0.99), ms.last().copied().unwrap_or(f64::NAN))
}

fn config_toml(dir: &std::path::Path, db: &str, prefix: &str, clients: usize) -> String {
    let mut t = format!(
        "data_dir = {dir:?}\n[store]\nurl = {db:?}\n[bus]\nurl = {amqp:?}\nprefix = {prefix:?}\n\
         [grpc]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = {SECRET:?}\n\
         [routing]\noffer_timeout_ms = \"task=120000\"\nwrap_up_ms = \"task=0\"\nposition_interval_ms = 0\n\
         [[routing.skills]]\nname = \"native\"\n[[routing.skills]]\nname = \"browser\"\n\
         [[routing.queues]]\nname = \"native\"\nchannels = [\"task\"]\nskills = {{ native = 1 }}\n\
         [[routing.queues]]\nname = \"browser\"\nchannels = [\"task\"]\nskills = {{ browser = 1 }}\n\
         [[routing.agents]]\nname = \"anna\"\nskills = {{ browser = 1 }}\ncapacity = {{ task = 100 }}\n",
        dir = dir.display().to_string(),
        amqp = amqp_url(),
    );
    for n in 0..clients {
        t.push_str(&format!(
            "[[routing.agents]]\nname = \"n{n:02}\"\nskills = {{ native = 1 }}\ncapacity = {{ task = 1 }}\n"
        ));
    }
    t
}

/// A new task interaction for `queue`, as an adapter publishes it.
fn created(id: &str, queue: &str) -> centralino_bus::Envelope {
    let mut interaction = v1::Interaction {
        id: id.to_owned(),
        channel: v1::Channel::Task as i32,
        direction: v1::Direction::Inbound as i32,
        queue_hint: queue.to_owned(),
        subject: format!("latency {id}"),
        ..Default::default()
    };
    interaction.created_at = Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now()));
    new_envelope(
        "latency-bench",
        &v1::InteractionCreated {
            interaction: Some(interaction),
        },
    )
}

async fn publish(bus: &Arc<dyn Bus>, id: &str, queue: &str) {
    bus.publish(
        Exchange::Events,
        "interaction.task.created",
        &created(id, queue),
    )
    .await
    .expect("publish");
}

fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    r
}

/// One native desktop: available, then accepts and completes every offer,
/// noting when each arrived.
async fn native_client(
    addr: std::net::SocketAddr,
    token: String,
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut desk = AgentDeskServiceClient::new(channel);
    let mut events = desk
        .events(authed(v1::DeskEventsRequest::default(), &token))
        .await
        .expect("events")
        .into_inner();
    let mut n = 0u64;
    let mut act = async |desk: &mut AgentDeskServiceClient<_>, action| {
        n += 1;
        let r = desk
            .act(authed(
                v1::AgentRequest {
                    request_id: format!("r{n}"),
                    action: Some(action),
                },
                &token,
            ))
            .await;
        r.map(|r| r.into_inner().ok).unwrap_or(false)
    };
    let available = v1::agent_request::Action::SetPresence(v1::SetPresence {
        presence: v1::AgentPresence::Available as i32,
        reason: String::new(),
    });
    assert!(act(&mut desk, available).await, "available");
    let _ = ready.send(()).await;
    while let Ok(Some(e)) = events.message().await {
        let Some(v1::desk_event::Event::Update(v1::AgentUpdate {
            update: Some(v1::agent_update::Update::Offer(o)),
        })) = e.event
        else {
            continue;
        };
        if let Ok(mut s) = seen.lock() {
            s.insert(o.interaction_id.clone(), Instant::now());
        }
        let id = o.interaction_id;
        act(
            &mut desk,
            v1::agent_request::Action::Accept(v1::OfferAnswer {
                interaction_id: id.clone(),
            }),
        )
        .await;
        act(
            &mut desk,
            v1::agent_request::Action::Complete(v1::CompleteInteraction {
                interaction_id: id,
                disposition: "resolved".into(),
                ..Default::default()
            }),
        )
        .await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let offers: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200);
    let clients: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(49);
    let browser_offers = offers.clamp(1, 100);
    println!(
        "desk_latency: {offers} offers to {clients} native desktops, {browser_offers} to one browser (RabbitMQ + PostgreSQL)"
    );

    let db = TestDatabase::postgres().await;
    let prefix = bus_prefix("bench");
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-latency-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(&file, config_toml(&dir, &db.url, &prefix, clients)).expect("config");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    {
        let store = centralino::connect_store(&config).await.expect("store");
        centralino::migrate_all(&store, |_| {})
            .await
            .expect("migrate");
        centralino_web::Users::new(store.clone())
            .create(centralino_web::NewUser {
                name: "anna".into(),
                display_name: "Anna".into(),
                role: Role::Agent,
                password: PASSWORD.into(),
                language: "en".into(),
            })
            .await
            .expect("the browser's user");
        let _ = store.close().await;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = centralino::up(&config, async {
        let _ = stopped.await;
    })
    .await
    .expect("up starts");
    let addr = running.grpc_addr;
    let bus: Arc<dyn Bus> = Arc::new(
        AmqpBus::connect({
            let mut c = AmqpConfig::new(amqp_url());
            c.topology = Topology::new(prefix.clone());
            c.connection_name = "desk-latency".into();
            c
        })
        .await
        .expect("RabbitMQ"),
    );

    // The baseline: the bus's own round trip, publish → consumer.
    let delivered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut sub = bus
        .subscribe(ConsumerSpec::new("latency-raw").bind(Exchange::Events, "latency.raw"))
        .await
        .expect("subscribe");
    let d = delivered.clone();
    let consumer = tokio::spawn(async move {
        while let Some(delivery) = sub.next().await {
            if let Ok(mut map) = d.lock() {
                map.insert(delivery.envelope.message_id.clone(), Instant::now());
            }
            let _ = delivery.ack().await;
        }
    });
    let mut raw = Vec::new();
    for _ in 0..offers {
        // The same message, on a key only this consumer takes.
        let env = created(&uuid::Uuid::now_v7().to_string(), "none");
        let id = env.message_id.clone();
        let at = Instant::now();
        bus.publish(Exchange::Events, "latency.raw", &env)
            .await
            .expect("publish");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(t) = delivered.lock().ok().and_then(|m| m.get(&id).copied()) {
                raw.push(t.duration_since(at).as_secs_f64() * 1000.0);
                break;
            }
            assert!(Instant::now() < deadline, "the raw round trip timed out");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    consumer.abort();

    // Native desktops.
    let key = TokenKey::new(SECRET.as_bytes().to_vec()).expect("key");
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(clients.max(1));
    for n in 0..clients {
        let token = key
            .mint(
                &format!("n{n:02}"),
                Role::Agent,
                chrono::Utc::now().timestamp(),
                3_600,
            )
            .expect("token");
        tokio::spawn(native_client(addr, token, seen.clone(), ready_tx.clone()));
    }
    drop(ready_tx);
    for _ in 0..clients {
        ready
            .recv()
            .await
            .expect("every desktop ready (one failed: its panic is above)");
    }
    let mut native = Vec::new();
    if clients > 0 {
        for _ in 0..offers {
            let id = uuid::Uuid::now_v7().to_string();
            let at = Instant::now();
            publish(&bus, &id, "native").await;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(t) = seen.lock().ok().and_then(|m| m.get(&id).copied()) {
                    native.push(t.duration_since(at).as_secs_f64() * 1000.0);
                    break;
                }
                assert!(Instant::now() < deadline, "a native offer timed out");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            tokio::time::sleep(SPACING).await;
        }
    }

    // One browser: offers timed from publication to their row in the DOM.
    let mut browser = Desktop::start(addr);
    browser.ask(&format!("login anna {PASSWORD}"));
    let mut published: HashMap<String, f64> = HashMap::new();
    for _ in 0..browser_offers {
        let id = uuid::Uuid::now_v7().to_string();
        published.insert(id.clone(), epoch_ms());
        publish(&bus, &id, "browser").await;
        tokio::time::sleep(SPACING * 3).await;
    }
    let shown: Vec<serde_json::Value> =
        serde_json::from_str(&browser.ask(&format!("shown {browser_offers}"))).expect("JSON");
    let mut dom: Vec<f64> = shown
        .iter()
        .filter_map(|s| {
            let at = s["at"].as_f64()?;
            Some(at - published.get(s["id"].as_str()?)?)
        })
        .collect();
    // Both ends read this machine's wall clock (the page's `Date.now()`).
    assert!(
        dom.iter().all(|ms| *ms >= 0.0),
        "an offer shown before it was published: the clocks disagree ({dom:?})"
    );
    drop(browser);

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (r50, r99, rmax) = percentiles(&mut raw);
    println!(
        "  {:<44} {:>6} {:>9} {:>9} {:>9}",
        "", "n", "p50 ms", "p99 ms", "max ms"
    );
    println!(
        "  {:<44} {:>6} {:>9.2} {:>9.2} {:>9.2}",
        "raw: bus publish -> consumer (RabbitMQ)",
        raw.len(),
        r50,
        r99,
        rmax
    );
    if !native.is_empty() {
        let (n50, n99, nmax) = percentiles(&mut native);
        println!(
            "  {:<44} {:>6} {:>9.2} {:>9.2} {:>9.2}   ({:.1}× raw at p99)",
            format!("ours: published -> offer at {clients} gRPC desktops"),
            native.len(),
            n50,
            n99,
            nmax,
            n99 / r99.max(1e-9)
        );
    }
    let (b50, b99, bmax) = percentiles(&mut dom);
    println!(
        "  {:<44} {:>6} {:>9.2} {:>9.2} {:>9.2}   ({:.1}× raw at p99)",
        "ours: published -> offer in a browser's DOM",
        dom.len(),
        b50,
        b99,
        bmax,
        b99 / r99.max(1e-9)
    );
    println!(
        "  target: p99 < 100 ms; machine load (1/5/15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );

    let _ = stop.send(());
    let _ = running.task.await;
    drop(bus);
    let mut consumers = centralino::consumer_names();
    consumers.push("latency-raw".into());
    let consumers: Vec<&str> = consumers.iter().map(String::as_str).collect();
    let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(&prefix, &consumers);
    centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
    let _ = std::fs::remove_dir_all(dir);
}
