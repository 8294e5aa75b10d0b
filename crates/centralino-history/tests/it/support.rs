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
use centralino_test_support::{TestDatabase, amqp_url, unique};
use tokio::sync::watch;
use tonic::transport::Channel;

pub const SECRET: &[u8] = b"history-tests-secret-0123456789abcdef";

pub struct Env {
    pub db: TestDatabase,
    pub prefix: String,
    pub bus: Arc<dyn Bus>,
    key: TokenKey,
    /// What history published, by routing key.
    pub published: Arc<Mutex<Vec<(String, Envelope)>>>,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

fn amqp_config(prefix: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = name.to_owned();
    c
}

impl Env {
    pub async fn postgres(config: HistoryConfig) -> Self {
        Self::start(TestDatabase::postgres().await, config).await
    }

    pub async fn sqlite(config: HistoryConfig) -> Self {
        Self::start(TestDatabase::sqlite(), config).await
    }

    async fn start(db: TestDatabase, config: HistoryConfig) -> Self {
        let prefix = unique("hi");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "history-test"))
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        let published = Arc::new(Mutex::new(Vec::new()));
        let mut sub = bus
            .subscribe(
                ConsumerSpec::new("observer")
                    .bind(Exchange::Events, "consent.#")
                    .bind(Exchange::Events, "customer.#"),
            )
            .await
            .expect("observer subscribes");
        let sink = published.clone();
        tokio::spawn(async move {
            while let Some(d) = sub.next().await {
                sink.lock()
                    .expect("published")
                    .push((d.routing_key.clone(), d.envelope.clone()));
                let _ = d.ack().await;
            }
        });
        let conn = centralino_store::connect(&db.url, 8)
            .await
            .expect("database");
        centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
            .await
            .expect("core migrations");
        centralino_store::migrate::<centralino_history::HistoryMigrator>(&conn, |_| {})
            .await
            .expect("history migrations");
        let (stop, stopped) = watch::channel(false);
        let signal = move || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let history = centralino_history::start(config, conn, bus.clone(), 4 << 20, signal())
            .await
            .expect("history starts");
        let mut policy = Policy::default();
        centralino_history::policy(&mut policy);
        let key = TokenKey::new(SECRET.to_vec()).expect("key");
        let settings = GrpcSettings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..GrpcSettings::default()
        };
        let mut server = GrpcServer::new(settings, AuthLayer::new(key.clone(), policy));
        server.add(history.api);
        let (addr, serve) = server.bind(signal()).await.expect("bind");
        let task = tokio::spawn(async move {
            let _ = serve.await;
            let _ = history.task.await;
        });
        Self {
            db,
            prefix,
            bus,
            key,
            published,
            addr,
            stop,
            task: Some(task),
        }
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
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(
            &self.prefix,
            &["history", "observer"],
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
