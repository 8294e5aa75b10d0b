//! Kiosks taking tickets: numbering, events, errors, restarts.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, Envelope, EnvelopeExt as _, Exchange, Topology,
};
use centralino_desk::{DeskConfig, ServiceConfig, TicketIssued};
use centralino_proto::v1;
use centralino_test_support::{TestDatabase, amqp_url, eventually, unique};
use centralino_ticketing::numbering::Site;
use chrono::{NaiveTime, TimeZone as _, Utc};

const WAIT: Duration = Duration::from_secs(20);

fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid")
        .timestamp_millis()
}

fn time(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("time")
}

struct Env {
    db: TestDatabase,
    prefix: String,
    bus: Arc<dyn Bus>,
    now: Arc<AtomicI64>,
    published: Arc<Mutex<Vec<Envelope>>>,
    observer: tokio::task::JoinHandle<()>,
    desk: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    http: SocketAddr,
    client: reqwest::Client,
}

impl Env {
    async fn start(now: i64) -> Self {
        let db = TestDatabase::postgres().await;
        let prefix = unique("dk");
        let mut amqp = AmqpConfig::new(amqp_url());
        amqp.topology = Topology::new(prefix.clone());
        amqp.connection_name = "desk-test".into();
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp)
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        let published = Arc::new(Mutex::new(Vec::new()));
        let mut sub = bus
            .subscribe(ConsumerSpec::new("observer").bind(Exchange::Events, "interaction.desk.#"))
            .await
            .expect("observer");
        let sink = published.clone();
        let observer = tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                sink.lock().expect("published").push(d.envelope.clone());
                let _ = d.ack().await;
            }
        });
        let mut env = Self {
            db,
            prefix,
            bus,
            now: Arc::new(AtomicI64::new(now)),
            published,
            observer,
            desk: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            client: reqwest::Client::new(),
        };
        env.launch().await;
        env
    }

    fn config(&self) -> DeskConfig {
        let now = self.now.clone();
        DeskConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            sites: vec![
                Site {
                    id: "roma".into(),
                    tz: chrono_tz::Europe::Rome,
                    opens: time(8, 30),
                    closes: time(17, 0),
                },
                Site {
                    id: "h24".into(),
                    tz: chrono_tz::Europe::Rome,
                    opens: time(0, 0),
                    closes: NaiveTime::from_hms_opt(23, 59, 59).expect("time"),
                },
            ],
            services: vec![
                ServiceConfig {
                    code: "A".into(),
                    name: "Payments".into(),
                    prefix: "A".into(),
                    queue: "payments".into(),
                    priority: 10,
                },
                ServiceConfig {
                    code: "B".into(),
                    name: "New contracts".into(),
                    prefix: "B".into(),
                    queue: "contracts".into(),
                    priority: 0,
                },
            ],
            digits: 3,
            rules: centralino_domain::IdentityRules::default(),
            clock: Arc::new(move || {
                Utc.timestamp_millis_opt(now.load(Ordering::SeqCst))
                    .single()
                    .unwrap_or_default()
            }),
        }
    }

    async fn launch(&mut self) {
        let conn = centralino_store::connect(&self.db.url, 4)
            .await
            .expect("database");
        centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
            .await
            .expect("core migrations");
        centralino_store::migrate::<centralino_desk::DeskMigrator>(&conn, |_| {})
            .await
            .expect("desk migrations");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let desk = centralino_desk::start(self.config(), conn, self.bus.clone(), async move {
            let _ = stop_rx.await;
        })
        .await
        .expect("desk starts");
        self.http = desk.http_addr;
        self.desk = Some((stop, desk.task));
    }

    async fn halt(&mut self) {
        if let Some((stop, task)) = self.desk.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }

    async fn post(&self, site: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("http://{}/api/sites/{site}/tickets", self.http))
            .json(&body)
            .send()
            .await
            .expect("the kiosk API answers")
    }

    async fn take(&self, site: &str, service: &str) -> TicketIssued {
        let r = self
            .post(site, serde_json::json!({ "service": service }))
            .await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        r.json().await.expect("ticket")
    }

    fn created(&self) -> Vec<v1::Interaction> {
        let mut seen = HashSet::new();
        self.published
            .lock()
            .expect("published")
            .iter()
            .filter(|e| seen.insert(e.message_id.clone()))
            .filter_map(|e| e.decode::<v1::InteractionCreated>().ok())
            .filter_map(|c| c.interaction)
            .collect()
    }

    async fn stop(mut self) {
        self.halt().await;
        self.observer.abort();
        let _ = (&mut self.observer).await;
        let (queues, exchanges) =
            centralino_test_support::rabbitmq_shared_objects(&self.prefix, &["observer"]);
        centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
        self.db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_are_numbered_per_service_and_start_again_at_local_midnight() {
    // 09:00 in Rome (UTC+1 in January).
    let env = Env::start(ms(2026, 1, 14, 8, 0)).await;
    let a1 = env.take("roma", "A").await;
    let a2 = env.take("roma", "A").await;
    let b1 = env.take("roma", "B").await;
    assert_eq!(
        (a1.label.as_str(), a2.label.as_str(), b1.label.as_str()),
        ("A001", "A002", "B001")
    );
    assert_eq!((a1.position, a2.position, b1.position), (1, 2, 1));
    // Another site counts on its own.
    assert_eq!(env.take("h24", "A").await.label, "A001");
    // 23:30 UTC on the 14th is 00:30 on the 15th in Rome: a new day there.
    env.now.store(ms(2026, 1, 14, 22, 30), Ordering::SeqCst);
    assert_eq!(
        env.take("h24", "A").await.label,
        "A002",
        "still the 14th in Rome"
    );
    env.now.store(ms(2026, 1, 14, 23, 30), Ordering::SeqCst);
    assert_eq!(env.take("h24", "A").await.label, "A001", "the 15th in Rome");
    // Every ticket is an interaction in its service's queue.
    let created = eventually(WAIT, "six interaction.desk.created", || async {
        let c = env.created();
        (c.len() >= 6).then_some(c)
    })
    .await;
    let first = created
        .iter()
        .find(|i| i.id == a1.id)
        .expect("A001's interaction");
    assert_eq!(first.channel, v1::Channel::Desk as i32);
    assert_eq!(first.queue_hint, "payments");
    assert_eq!(first.priority, 10);
    assert_eq!(
        first.attributes.get("desk.ticket").map(String::as_str),
        Some("A001")
    );
    assert_eq!(
        first.attributes.get("desk.site").map(String::as_str),
        Some("roma")
    );
    assert_eq!(
        created
            .iter()
            .find(|i| i.id == b1.id)
            .map(|i| i.queue_hint.as_str()),
        Some("contracts")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn numbering_goes_on_after_a_restart_and_identified_customers_are_linked() {
    let mut env = Env::start(ms(2026, 1, 14, 9, 0)).await;
    env.take("roma", "A").await;
    env.take("roma", "A").await;
    env.halt().await;
    env.launch().await;
    let r = env
        .post(
            "roma",
            serde_json::json!({ "service": "A", "phone": "+39 347 123 4567" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let t: TicketIssued = r.json().await.expect("ticket");
    assert_eq!(t.label, "A003", "read back from the database");
    let created = eventually(WAIT, "the identified ticket", || async {
        env.created().into_iter().find(|i| i.id == t.id)
    })
    .await;
    assert_eq!(created.identifiers.len(), 1);
    assert_eq!(created.identifiers[0].value, "+393471234567");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_clear_errors_and_issue_nothing() {
    let env = Env::start(ms(2026, 1, 14, 9, 0)).await;
    let check = |status: u16, needle: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status().as_u16(), status);
            let body = r.text().await.expect("body");
            assert!(body.contains(needle), "{body}");
        }
    };
    check(404, "unknown site `milano`")(
        env.post("milano", serde_json::json!({"service": "A"}))
            .await,
    )
    .await;
    check(404, "unknown service `Z`")(env.post("roma", serde_json::json!({"service": "Z"})).await)
        .await;
    check(400, "codice_fiscale")(
        env.post(
            "roma",
            serde_json::json!({"service": "A", "codice_fiscale": "RSSMRA80A01H501X"}),
        )
        .await,
    )
    .await;
    let r = env.post("roma", serde_json::json!({"servizio": "A"})).await;
    assert!(
        r.status().is_client_error(),
        "a body that is not a request: {}",
        r.status()
    );
    // 18:00 in Rome: closed, saying when it opens.
    env.now.store(ms(2026, 1, 14, 17, 0), Ordering::SeqCst);
    check(409, "opens at 08:30")(env.post("roma", serde_json::json!({"service": "A"})).await).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(env.created().is_empty(), "nothing was issued");
    // The first good ticket of the day is still number 1.
    env.now.store(ms(2026, 1, 14, 9, 0), Ordering::SeqCst);
    assert_eq!(env.take("roma", "A").await.label, "A001");
    env.stop().await;
}
