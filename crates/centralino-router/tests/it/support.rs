//! A router on real RabbitMQ and PostgreSQL, run in a runtime of its own so a
//! test can crash it (drop every task at once, as `kill -9` would), plus agent
//! desktops, a test adapter and an observer of routing events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use centralino_auth::{AuthLayer, Policy, Role, TokenKey};
use centralino_bus::{AmqpBus, AmqpConfig, Bus, ConsumerSpec, Exchange, Topology, new_envelope};
use centralino_proto::v1;
use centralino_proto::v1::supervisor_service_client::SupervisorServiceClient;
use centralino_router::RouterConfig;
use centralino_server::{GrpcServer, GrpcSettings};
pub use centralino_test_support::agent::{
    Desk, OfferLedger, admin, authed, channel, configure, offer_id, skill_level, spawn_worker,
};
use centralino_test_support::observer::Observer;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use tokio::sync::{oneshot, watch};
use tonic::transport::Channel;

pub const SECRET: &[u8] = b"router-tests-secret-0123456789abcdef";

pub struct Env {
    pub db: TestDatabase,
    pub prefix: String,
    pub bus: Arc<dyn Bus>,
    pub key: TokenKey,
    /// Stopped before the queues are deleted, or it would declare them again.
    observer: Observer,
}

impl Env {
    pub async fn new() -> Self {
        let db = TestDatabase::postgres().await;
        let prefix = bus_prefix("rt");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "router-test-adapter"))
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        // The observer: every routing event, once per message id.
        let observer = Observer::once_per_message(
            &bus,
            ConsumerSpec::new("observer").bind(Exchange::Events, "routing.#"),
        )
        .await;
        Self {
            db,
            prefix,
            bus,
            key: TokenKey::new(SECRET.to_vec()).expect("key"),
            observer,
        }
    }

    pub fn token(&self, subject: &str, role: Role) -> String {
        self.key
            .mint(subject, role, chrono::Utc::now().timestamp(), 3_600)
            .expect("token")
    }

    /// Publishes a new interaction the way a channel adapter does.
    pub async fn publish(&self, queue: &str, channel: v1::Channel) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.publish_as(&id, queue, channel).await;
        id
    }

    /// Publishes a new interaction with a given id.
    pub async fn publish_as(&self, id: &str, queue: &str, channel: v1::Channel) {
        let id = id.to_owned();
        let interaction = v1::Interaction {
            id: id.clone(),
            channel: channel as i32,
            direction: v1::Direction::Inbound as i32,
            queue_hint: queue.to_owned(),
            subject: "help".into(),
            created_at: Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        };
        let env = new_envelope(
            "test-adapter",
            &v1::InteractionCreated {
                interaction: Some(interaction),
            },
        );
        let name = centralino_proto::channel_from_i32(channel as i32)
            .expect("channel")
            .as_str();
        self.bus
            .publish(
                Exchange::Events,
                &format!("interaction.{name}.created"),
                &env,
            )
            .await
            .expect("publish");
    }

    pub async fn abandon(&self, id: &str, channel: v1::Channel) {
        let env = new_envelope(
            "test-adapter",
            &v1::InteractionAbandoned {
                interaction_id: id.to_owned(),
                channel: channel as i32,
                reason: "hung up".into(),
            },
        );
        self.bus
            .publish(Exchange::Events, "interaction.voice.abandoned", &env)
            .await
            .expect("publish");
    }

    /// What the voice adapter says when the assigned agent's phone did not answer.
    pub async fn not_reached(&self, id: &str, agent: &str, reason: &str) {
        let env = new_envelope(
            "test-adapter",
            &v1::AgentNotReached {
                interaction_id: id.to_owned(),
                agent: agent.to_owned(),
                reason: reason.to_owned(),
            },
        );
        self.bus
            .publish(Exchange::Commands, "routing.agent_not_reached", &env)
            .await
            .expect("publish");
    }

    /// Every routing event seen so far, once per message id.
    pub fn events(&self) -> Vec<v1::RoutingEvent> {
        self.observer.decoded()
    }

    pub fn events_of(&self, id: &str) -> Vec<(v1::routing_event::Kind, String)> {
        self.events()
            .iter()
            .filter(|e| e.interaction_id == id)
            .map(|e| (e.kind(), e.agent.clone()))
            .collect()
    }

    pub async fn cleanup(mut self) {
        self.observer.stop().await;
        let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(
            &self.prefix,
            &["routing", "observer"],
        );
        centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
        self.db.drop_db().await;
    }
}

fn amqp_config(prefix: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = name.to_owned();
    c
}

/// A router running in its own runtime.
pub struct RouterProcess {
    pub addr: SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl RouterProcess {
    pub async fn start(env: &Env, config: RouterConfig) -> Self {
        Self::start_at(
            env.db.url.clone(),
            env.prefix.clone(),
            config,
            Duration::from_secs(30),
        )
        .await
        .expect("router started within 30 s")
    }

    /// Starts a router on `url` and bus `prefix`; `None` if it is not serving
    /// within `limit` (a standby waiting for the active instance).
    pub async fn start_at(
        url: String,
        prefix: String,
        config: RouterConfig,
        limit: Duration,
    ) -> Option<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (addr_tx, addr_rx) = oneshot::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        rt.spawn(async move {
            let db = centralino_store::connect(&url, 8).await.expect("database");
            centralino_store::migrate::<centralino_store::CoreMigrator>(&db, |_| {})
                .await
                .expect("core migrations");
            centralino_store::migrate::<centralino_router::RoutingMigrator>(&db, |_| {})
                .await
                .expect("routing migrations");
            let bus: Arc<dyn Bus> = Arc::new(
                AmqpBus::connect(amqp_config(&prefix, "router-under-test"))
                    .await
                    .expect("bus"),
            );
            let (stop_all, stopped) = watch::channel(false);
            let signal = move || {
                let mut rx = stopped.clone();
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                }
            };
            let router = centralino_router::start(config, db, bus, 4 << 20, signal())
                .await
                .expect("router starts");
            let mut policy = Policy::default();
            centralino_router::policy(&mut policy);
            let key = TokenKey::new(SECRET.to_vec()).expect("key");
            let settings = GrpcSettings {
                listen: "127.0.0.1:0".parse().expect("addr"),
                ..GrpcSettings::default()
            };
            let mut server = GrpcServer::new(settings, AuthLayer::new(key, policy));
            server.add(router.agent);
            server.add(router.desk);
            server.add(router.supervisor);
            server.add(router.admin);
            let (addr, serve) = server.bind(signal()).await.expect("bind");
            let _ = addr_tx.send(addr);
            tokio::spawn(async move {
                let _ = stop_rx.await;
                let _ = stop_all.send(true);
            });
            let _ = serve.await;
            let _ = router.task.await;
            let _ = done_tx.send(());
        });
        let mut me = Self {
            addr: "0.0.0.0:0".parse().expect("addr"),
            rt: Some(rt),
            stop: Some(stop),
            done: Some(done),
        };
        match tokio::time::timeout(limit, addr_rx).await {
            Ok(Ok(addr)) => {
                me.addr = addr;
                Some(me)
            }
            _ => None,
        }
    }

    /// Starts a router that is expected to wait as a standby: returns a task
    /// that yields it once it serves.
    pub fn start_standby(env: &Env, config: RouterConfig) -> tokio::task::JoinHandle<Option<Self>> {
        let (url, prefix) = (env.db.url.clone(), env.prefix.clone());
        tokio::spawn(
            async move { Self::start_at(url, prefix, config, Duration::from_secs(60)).await },
        )
    }

    /// Drops every task of the router at once: no graceful step runs.
    pub fn crash(mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(Duration::from_secs(10), done)
                .await
                .expect("graceful shutdown within 10 s, even with sessions open")
                .expect("router task ended");
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

pub async fn supervisor(addr: SocketAddr) -> SupervisorServiceClient<Channel> {
    SupervisorServiceClient::new(channel(addr).await)
}
