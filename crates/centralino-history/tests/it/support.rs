//! A history service on real RabbitMQ and a test database, an adapter that
//! publishes events, an observer of what history publishes, and gRPC clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use centralino_auth::{AuthLayer, Policy, Role, TokenKey};
use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, Envelope, Exchange, Topology, TypedPayload,
    new_envelope,
};
use centralino_history::HistoryConfig;
use centralino_proto::v1;
use centralino_proto::v1::history_service_client::HistoryServiceClient;
use centralino_server::{GrpcServer, GrpcSettings};
use centralino_test_support::isolated::Isolated;
use centralino_test_support::observer::Observer;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use tokio::sync::watch;
use tonic::transport::Channel;

pub const SECRET: &[u8] = b"history-tests-secret-0123456789abcdef";

/// The suppression secret of every test's history service (unless the test
/// sets one).
pub fn suppression_key() -> centralino_history::SuppressionKey {
    centralino_history::SuppressionKey::new(SUPPRESSION_SECRET).expect("suppression key")
}

pub const SUPPRESSION_SECRET: &[u8] = b"history-tests-suppression-0123456789";

pub struct Env {
    pub db: TestDatabase,
    pub prefix: String,
    pub bus: Arc<dyn Bus>,
    key: TokenKey,
    config: HistoryConfig,
    /// What history published, by routing key.
    pub published: Arc<Mutex<Vec<(String, Envelope)>>>,
    pub addr: SocketAddr,
    process: Option<HistoryProcess>,
    observer: Observer,
}

fn amqp_config(prefix: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = name.to_owned();
    c
}

/// A history service in a runtime of its own, so a test can crash it (drop
/// every task at once, as `kill -9` would).
pub struct HistoryProcess {
    pub addr: SocketAddr,
    /// Turns `true` when the service lost its lock (its process would exit).
    pub lost: watch::Receiver<bool>,
    process: Isolated,
}

impl HistoryProcess {
    pub async fn start(url: String, prefix: String, config: HistoryConfig) -> Self {
        Self::start_within(url, prefix, config, std::time::Duration::from_secs(30))
            .await
            .expect("history serving within 30 s")
    }

    /// Starts a history service; `None` if it is not serving within `limit`
    /// (a standby waiting for the active instance).
    pub async fn start_within(
        url: String,
        prefix: String,
        config: HistoryConfig,
        limit: std::time::Duration,
    ) -> Option<Self> {
        let config = HistoryConfig {
            suppression_key: config.suppression_key.or_else(|| Some(suppression_key())),
            ..config
        };
        let (process, (addr, lost)) =
            Isolated::start_within(limit, move |ready, stop| async move {
                let conn = centralino_store::connect(&url, 8).await.expect("database");
                centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
                    .await
                    .expect("core migrations");
                centralino_store::migrate::<centralino_history::HistoryMigrator>(&conn, |_| {})
                    .await
                    .expect("history migrations");
                let bus: Arc<dyn Bus> = Arc::new(
                    AmqpBus::connect(amqp_config(&prefix, "history-under-test"))
                        .await
                        .expect("bus"),
                );
                // One stop signal for the service and its gRPC server.
                let (stop_all, stopped) = watch::channel(false);
                let signal = move || {
                    let mut rx = stopped.clone();
                    async move {
                        let _ = rx.wait_for(|s| *s).await;
                    }
                };
                tokio::spawn(async move {
                    stop.await;
                    let _ = stop_all.send(true);
                });
                let history = centralino_history::start(config, conn, bus, 4 << 20, signal())
                    .await
                    .expect("history starts");
                let mut policy = Policy::default();
                centralino_history::policy(&mut policy);
                let key = TokenKey::new(SECRET.to_vec()).expect("key");
                let settings = GrpcSettings {
                    listen: "127.0.0.1:0".parse().expect("addr"),
                    ..GrpcSettings::default()
                };
                let mut server = GrpcServer::new(settings, AuthLayer::new(key, policy));
                server.add(history.api);
                let (addr, serve) = server.bind(signal()).await.expect("bind");
                let _ = ready.send((addr, history.lost.clone()));
                let _ = serve.await;
                let _ = history.task.await;
            })
            .await?;
        Some(Self {
            addr,
            lost,
            process,
        })
    }

    /// Drops every task at once: no graceful step runs.
    pub fn crash(self) {
        self.process.crash();
    }

    pub async fn stop(self) {
        self.process.stop().await;
    }
}

impl Env {
    pub async fn postgres(config: HistoryConfig) -> Self {
        Self::start(TestDatabase::postgres().await, config).await
    }

    pub async fn sqlite(config: HistoryConfig) -> Self {
        Self::start(TestDatabase::sqlite(), config).await
    }

    async fn start(db: TestDatabase, config: HistoryConfig) -> Self {
        let prefix = bus_prefix("hi");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "history-test"))
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        let observer = Observer::start(
            &bus,
            ConsumerSpec::new("observer")
                .bind(Exchange::Events, "consent.#")
                .bind(Exchange::Events, "customer.#")
                .bind(Exchange::Events, centralino_bus::COMMAND_REFUSED),
        )
        .await;
        let published = observer.seen();
        let process = HistoryProcess::start(db.url.clone(), prefix.clone(), config.clone()).await;
        Self {
            db,
            prefix,
            bus,
            key: TokenKey::new(SECRET.to_vec()).expect("key"),
            config,
            published,
            addr: process.addr,
            process: Some(process),
            observer,
        }
    }

    /// Kills the service at once, as `kill -9` would.
    pub fn crash(&mut self) {
        if let Some(p) = self.process.take() {
            p.crash();
        }
    }

    /// Starts a second instance on the same database and bus; the task yields
    /// it once it serves (it stands by while this one leads).
    pub fn start_standby(&self) -> tokio::task::JoinHandle<Option<HistoryProcess>> {
        let (url, prefix, config) = (
            self.db.url.clone(),
            self.prefix.clone(),
            self.config.clone(),
        );
        tokio::spawn(async move {
            HistoryProcess::start_within(url, prefix, config, std::time::Duration::from_secs(60))
                .await
        })
    }

    /// Makes `p` the instance this environment talks to.
    pub fn adopt(&mut self, p: HistoryProcess) {
        self.addr = p.addr;
        self.process = Some(p);
    }

    /// The running instance's leadership-lost flag.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.process
            .as_ref()
            .expect("a running history")
            .lost
            .clone()
    }

    /// Starts a new service on the same database and bus.
    pub async fn restart(&mut self) {
        let p = HistoryProcess::start(
            self.db.url.clone(),
            self.prefix.clone(),
            self.config.clone(),
        )
        .await;
        self.addr = p.addr;
        self.process = Some(p);
    }

    pub fn token(&self, subject: &str, role: Role) -> String {
        self.key
            .mint(subject, role, chrono::Utc::now().timestamp(), 3_600)
            .expect("token")
    }

    pub async fn client(&self) -> HistoryServiceClient<Channel> {
        let ch = Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        HistoryServiceClient::new(ch)
    }

    /// Publishes an event the way an adapter or the router does; returns the envelope.
    pub async fn publish<P: TypedPayload>(&self, key: &str, payload: &P) -> Envelope {
        let env = new_envelope("test-adapter", payload);
        self.publish_envelope(key, &env).await;
        env
    }

    pub async fn publish_envelope(&self, key: &str, env: &Envelope) {
        self.bus
            .publish(Exchange::Events, key, env)
            .await
            .expect("publish");
    }

    pub fn published_keys(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for (k, _) in self.published.lock().expect("published").iter() {
            *out.entry(k.clone()).or_insert(0) += 1;
        }
        out
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.process.take() {
            p.stop().await;
        }
        // Stopped first, or its subscription would declare its queue again.
        self.observer.stop().await;
        let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(
            &self.prefix,
            &[centralino_history::CONSUMERS.as_slice(), &["observer"]].concat(),
        );
        centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
        self.db.drop_db().await;
    }
}

pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    r
}

pub fn phone(raw: &str) -> v1::CustomerIdentifier {
    v1::CustomerIdentifier {
        kind: v1::customer_identifier::Kind::Phone.into(),
        value: raw.into(),
    }
}

pub fn email(raw: &str) -> v1::CustomerIdentifier {
    v1::CustomerIdentifier {
        kind: v1::customer_identifier::Kind::Email.into(),
        value: raw.into(),
    }
}

pub fn ts(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A new interaction as a channel adapter publishes it.
pub fn created(
    channel: v1::Channel,
    ids: Vec<v1::CustomerIdentifier>,
    subject: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> v1::InteractionCreated {
    v1::InteractionCreated {
        interaction: Some(v1::Interaction {
            id: uuid::Uuid::now_v7().to_string(),
            channel: channel.into(),
            direction: v1::Direction::Inbound.into(),
            identifiers: ids,
            queue_hint: "support".into(),
            subject: subject.into(),
            created_at: Some(ts(at)),
            ..Default::default()
        }),
    }
}
