//! The desk adapter and the real router in one process of their own (as in
//! `centralino up`), on RabbitMQ and PostgreSQL, with a movable desk clock;
//! an observer of what the desk publishes (and of routing's places, the
//! desk's input); kiosk and gRPC clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use centralino_auth::{AuthLayer, Policy, Role, TokenKey};
use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, Envelope, EnvelopeExt as _, Exchange, Topology,
};
use centralino_desk::{DeskConfig, ServiceConfig, TicketView};
use centralino_proto::v1;
use centralino_proto::v1::desk_service_client::DeskServiceClient;
use centralino_router::RouterConfig;
use centralino_routing::{ChannelMap, EngineSettings};
use centralino_server::{GrpcServer, GrpcSettings};
use centralino_test_support::agent::{authed, channel};
use centralino_test_support::isolated::Isolated;
use centralino_test_support::observer::Observer;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use centralino_ticketing::numbering::Site;
use chrono::{NaiveTime, TimeZone as _, Utc};
use tonic::transport::Channel;

pub const WAIT: Duration = Duration::from_secs(20);
const SECRET: &[u8] = b"desk-tests-secret-0123456789abcdef!!";

pub fn ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("valid")
        .timestamp_millis()
}

pub fn time(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("time")
}

fn amqp_config(prefix: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = name.to_owned();
    c
}

/// Two sites (Rome 08:30–17:00 and an always-open one), services A
/// (payments, priority 10), B (contracts) and C (information), counters 1–3
/// at each site.
pub fn desk_config(now: Arc<AtomicI64>, printer: SocketAddr) -> DeskConfig {
    let started = std::time::Instant::now();
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
                queue: "payments-{site}".into(),
                priority: 10,
            },
            ServiceConfig {
                code: "B".into(),
                name: "New contracts".into(),
                prefix: "B".into(),
                queue: "contracts-{site}".into(),
                priority: 0,
            },
            ServiceConfig {
                code: "C".into(),
                name: "Information".into(),
                prefix: "C".into(),
                queue: "info-{site}".into(),
                priority: 0,
            },
        ],
        digits: 3,
        rules: centralino_domain::IdentityRules::default(),
        counters: [("roma", ["1", "2", "3"]), ("h24", ["1", "2", "3"])]
            .into_iter()
            .map(|(s, cs)| (s.to_owned(), cs.iter().map(|c| (*c).to_owned()).collect()))
            .collect(),
        tickets: centralino_ticketing::ticket::Rules {
            max_recalls: 2,
            no_show_after_ms: 120_000,
        },
        check_in: centralino_ticketing::appointment::CheckInRules::default(),
        appointment_priority: 50,
        board_size: 6,
        notify: Some(centralino_desk::TurnNotice {
            at_position: 1,
            text: "Ticket {ticket} at {site}: {position} in line".into(),
        }),
        printers: [("h24".to_owned(), printer)].into_iter().collect(),
        kiosk_key: Some(TokenKey::new(SECRET.to_vec()).expect("key")),
        // The set time, running on from when it was set.
        clock: Arc::new(move || {
            let run = i64::try_from(started.elapsed().as_millis()).unwrap_or(0);
            Utc.timestamp_millis_opt(now.load(Ordering::SeqCst) + run)
                .single()
                .unwrap_or_default()
        }),
    }
}

pub struct Env {
    pub db: TestDatabase,
    pub prefix: String,
    /// Kept open for the observer.
    _bus: Arc<dyn Bus>,
    pub now: Arc<AtomicI64>,
    pub key: TokenKey,
    /// Stopped before the queues are deleted, or it would declare them again.
    observer: Observer,
    process: Option<Isolated>,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub client: reqwest::Client,
    /// The ticket printer of site `h24`.
    pub printer: tokio::net::TcpListener,
}

impl Env {
    /// Starts with the desk clock at `now` (ms since the epoch).
    pub async fn start(now: i64) -> Self {
        let db = TestDatabase::postgres().await;
        let prefix = bus_prefix("dk");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "desk-test"))
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        let observer = Observer::once_per_message(
            &bus,
            ConsumerSpec::new("observer")
                .bind(Exchange::Events, "interaction.desk.#")
                .bind(Exchange::Commands, "sms.send")
                .bind(Exchange::Events, "routing.desk.position"),
        )
        .await;
        let mut env = Self {
            db,
            prefix,
            _bus: bus,
            now: Arc::new(AtomicI64::new(now)),
            key: TokenKey::new(SECRET.to_vec()).expect("key"),
            observer,
            process: None,
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc: SocketAddr::from(([127, 0, 0, 1], 0)),
            client: reqwest::Client::new(),
            printer: tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a printer port"),
        };
        env.launch().await;
        env
    }

    /// Starts the router and the desk adapter behind one gRPC server.
    pub async fn launch(&mut self) {
        let (url, prefix, config) = (
            self.db.url.clone(),
            self.prefix.clone(),
            desk_config(
                self.now.clone(),
                self.printer.local_addr().expect("printer address"),
            ),
        );
        let (process, (http, grpc)) = Isolated::start(move |ready, stop| async move {
            let db = centralino_store::connect(&url, 8).await.expect("database");
            centralino_store::migrate::<centralino_store::CoreMigrator>(&db, |_| {})
                .await
                .expect("core migrations");
            centralino_store::migrate::<centralino_router::RoutingMigrator>(&db, |_| {})
                .await
                .expect("routing migrations");
            centralino_store::migrate::<centralino_desk::DeskMigrator>(&db, |_| {})
                .await
                .expect("desk migrations");
            let bus: Arc<dyn Bus> = Arc::new(
                AmqpBus::connect(amqp_config(&prefix, "desk-under-test"))
                    .await
                    .expect("bus"),
            );
            let (stop_all, stopped) = tokio::sync::watch::channel(false);
            let signal = move || {
                let mut rx = stopped.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            let routing = RouterConfig {
                engine: EngineSettings {
                    wrap_up_ms: ChannelMap::all(0),
                    ..EngineSettings::default()
                },
                position_interval_ms: 1_000,
                ..RouterConfig::default()
            };
            let router =
                centralino_router::start(routing, db.clone(), bus.clone(), 4 << 20, signal())
                    .await
                    .expect("router starts");
            let desk = centralino_desk::start(config, db, bus, 4 << 20, signal())
                .await
                .expect("desk starts");
            let mut policy = Policy::default();
            centralino_router::policy(&mut policy);
            centralino_desk::policy(&mut policy);
            let settings = GrpcSettings {
                listen: "127.0.0.1:0".parse().expect("addr"),
                ..GrpcSettings::default()
            };
            let key = TokenKey::new(SECRET.to_vec()).expect("key");
            let mut server = GrpcServer::new(settings, AuthLayer::new(key, policy));
            server.add(router.agent);
            server.add(router.supervisor);
            server.add(router.admin);
            server.add(desk.api);
            let (addr, serve) = server.bind(signal()).await.expect("bind");
            let _ = ready.send((desk.http_addr, addr));
            tokio::spawn(async move {
                stop.await;
                let _ = stop_all.send(true);
            });
            let _ = serve.await;
            let _ = router.task.await;
            let _ = desk.task.await;
        })
        .await;
        self.http = http;
        self.grpc = grpc;
        self.process = Some(process);
    }

    /// Stops the adapter and the router gracefully.
    pub async fn halt(&mut self) {
        if let Some(p) = self.process.take() {
            p.stop().await;
        }
    }

    /// Drops the router and the desk at once, as `kill -9` would.
    pub fn crash(&mut self) {
        if let Some(p) = self.process.take() {
            p.crash();
        }
    }

    pub fn token(&self, subject: &str, role: Role) -> String {
        self.key
            .mint(subject, role, Utc::now().timestamp(), 3_600)
            .expect("token")
    }

    pub async fn desk_client(&self) -> DeskServiceClient<Channel> {
        DeskServiceClient::new(channel(self.grpc).await)
    }

    /// `agent` opens `counter` at `site`.
    pub async fn open_counter(&self, agent: &str, site: &str, counter: &str) {
        self.desk_client()
            .await
            .open_counter(authed(
                v1::OpenCounterRequest {
                    site: site.into(),
                    counter: counter.into(),
                },
                &self.token(agent, Role::Agent),
            ))
            .await
            .expect("counter opened");
    }

    /// A kiosk's request, with a kiosk's token.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        let kiosk = self.token("kiosk-1", Role::Kiosk);
        self.post_with(path, body, Some(&format!("Bearer {kiosk}")))
            .await
    }

    /// A request with this `Authorization` header, or none.
    pub async fn post_with(
        &self,
        path: &str,
        body: serde_json::Value,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("http://{}{path}", self.http))
            .json(&body);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.expect("the desk API answers")
    }

    pub async fn take(&self, site: &str, service: &str) -> TicketView {
        let r = self
            .post(
                &format!("/api/sites/{site}/tickets"),
                serde_json::json!({ "service": service }),
            )
            .await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        r.json().await.expect("ticket")
    }

    pub async fn ticket(&self, id: &str) -> TicketView {
        self.client
            .get(format!("http://{}/api/tickets/{id}", self.http))
            .send()
            .await
            .expect("the desk API answers")
            .json()
            .await
            .expect("a ticket")
    }

    /// Everything the desk published (and routing's places for desk
    /// tickets), once per message id, in arrival order.
    pub fn published(&self) -> Vec<Envelope> {
        self.observer
            .seen()
            .lock()
            .expect("published")
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    pub fn created(&self) -> Vec<v1::Interaction> {
        self.published()
            .iter()
            .filter_map(|e| e.decode::<v1::InteractionCreated>().ok())
            .filter_map(|c| c.interaction)
            .collect()
    }

    /// The desk's ticket events about `id`, in order: (kind, counter).
    pub fn desk_events(&self, id: &str) -> Vec<(v1::desk_ticket_event::Kind, String)> {
        self.published()
            .iter()
            .filter_map(|e| e.decode::<v1::DeskTicketEvent>().ok())
            .filter(|e| e.interaction_id == id)
            .map(|e| (e.kind(), e.counter))
            .collect()
    }

    pub async fn stop(mut self) {
        self.halt().await;
        self.observer.stop().await;
        let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(
            &self.prefix,
            &["observer", "routing", "desk"],
        );
        centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
        self.db.drop_db().await;
    }
}
