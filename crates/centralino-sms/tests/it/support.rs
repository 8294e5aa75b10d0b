//! An SMS adapter in a runtime of its own (so a test can crash it), the SMSC
//! simulator, optionally the history service on the same database, and an
//! observer of what is published.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, Envelope, EnvelopeExt as _, Exchange, Topology,
    TypedPayload, new_envelope,
};
use centralino_proto::v1;
use centralino_sms::smpp::SmppConfig;
use centralino_sms::{NumberConfig, SmsConfig};
use centralino_test_support::isolated::Isolated;
use centralino_test_support::mail::Smsc;
use centralino_test_support::observer::Observer;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use tokio::sync::oneshot;

pub const WAIT: Duration = Duration::from_secs(20);
/// Our number customers write to, and its queue.
pub const OURS: &str = "4321";

fn amqp_config(prefix: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = name.to_owned();
    c
}

pub fn smpp_config(port: u16) -> SmppConfig {
    SmppConfig {
        port,
        system_id: "centralino".into(),
        password: "secret".into(),
        source_addr: OURS.into(),
        enquire_link: Duration::from_secs(1),
        response_timeout: Duration::from_secs(5),
        ..SmppConfig::default()
    }
}

pub fn config() -> SmsConfig {
    SmsConfig {
        numbers: vec![NumberConfig {
            number: OURS.into(),
            queue: "sms-support".into(),
            priority: 20,
        }],
        help_reply: "ACME: call 800 123 456. Reply STOP to stop.".into(),
        stop_reply: Some("ACME: you will get no more messages. Reply START to undo.".into()),
        start_reply: Some("ACME: welcome back.".into()),
        retry_base: Duration::from_millis(300),
        ..SmsConfig::default()
    }
}

/// The adapter in its own runtime; reports where its webhooks listen.
async fn launch(url: String, prefix: String, config: SmsConfig) -> (Isolated, Option<String>) {
    Isolated::start(move |ready, stop| async move {
        let conn = centralino_store::connect(&url, 8).await.expect("database");
        centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
            .await
            .expect("core migrations");
        centralino_store::migrate::<centralino_sms::SmsMigrator>(&conn, |_| {})
            .await
            .expect("sms migrations");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "sms-under-test"))
                .await
                .expect("bus"),
        );
        let sms = centralino_sms::start(config, conn, bus, stop)
            .await
            .expect("sms adapter starts");
        let _ = ready.send(sms.webhook_addr.map(|a| format!("http://{a}")));
        let _ = sms.task.await;
    })
    .await
}

pub struct Env {
    pub db: TestDatabase,
    pub prefix: String,
    pub bus: Arc<dyn Bus>,
    pub smsc: Option<Smsc>,
    pub config: SmsConfig,
    /// Where the adapter's webhooks listen (`http://host:port`), when configured.
    pub webhook: Option<String>,
    /// Everything published on the events exchange, in arrival order.
    pub published: Arc<Mutex<Vec<(String, Envelope)>>>,
    process: Option<Isolated>,
    history: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    /// Stopped before the queues are deleted, or it would declare them again.
    observer: Observer,
}

impl Env {
    /// An adapter bound to a fresh SMSC simulator, on PostgreSQL.
    pub async fn smpp() -> Self {
        let smsc = Smsc::start();
        let mut config = config();
        config.smpp = Some(smpp_config(smsc.port()));
        let mut env = Self::new(TestDatabase::postgres().await, config).await;
        env.smsc = Some(smsc);
        env
    }

    pub async fn new(db: TestDatabase, config: SmsConfig) -> Self {
        let prefix = bus_prefix("sm");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "sms-test"))
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        let observer = Observer::start(
            &bus,
            ConsumerSpec::new("observer")
                .bind(Exchange::Events, "interaction.sms.#")
                .bind(Exchange::Events, "consent.#"),
        )
        .await;
        let published = observer.seen();
        Self {
            db,
            prefix,
            bus,
            smsc: None,
            config,
            webhook: None,
            published,
            process: None,
            history: None,
            observer,
        }
    }

    pub fn smsc(&self) -> &Smsc {
        self.smsc.as_ref().expect("an SMSC simulator")
    }

    pub async fn start(&mut self) {
        let (p, webhook) = launch(
            self.db.url.clone(),
            self.prefix.clone(),
            self.config.clone(),
        )
        .await;
        self.process = Some(p);
        self.webhook = webhook;
    }

    /// Drops the adapter's runtime at once, as `kill -9` would.
    pub fn crash(&mut self) {
        if let Some(p) = self.process.take() {
            p.crash();
        }
    }

    /// A customer's message through the SMSC, once the adapter is bound.
    pub async fn mo(&self, from: &str, text: &str) {
        centralino_test_support::eventually(WAIT, "an SMPP session bound", || async {
            self.smsc()
                .mobile_originated(from, OURS, text)
                .then_some(())
        })
        .await;
    }

    /// Starts the history service on the same database and bus.
    pub async fn start_history(&mut self) {
        let conn = centralino_store::connect(&self.db.url, 4)
            .await
            .expect("database");
        centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
            .await
            .expect("core migrations");
        centralino_store::migrate::<centralino_history::HistoryMigrator>(&conn, |_| {})
            .await
            .expect("history migrations");
        let (stop, stop_rx) = oneshot::channel::<()>();
        let history = centralino_history::start(
            centralino_history::HistoryConfig {
                suppression_key: Some(
                    centralino_history::SuppressionKey::new(b"sms-tests-suppression-0123456789ab")
                        .expect("suppression key"),
                ),
                ..centralino_history::HistoryConfig::default()
            },
            conn,
            self.bus.clone(),
            4 * 1024 * 1024,
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .expect("history starts");
        self.history = Some((stop, history.task));
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.process.take() {
            p.stop().await;
        }
        if let Some((stop, task)) = self.history.take() {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        self.observer.stop().await;
        let (queues, exchanges) = centralino_test_support::rabbitmq_shared_objects(
            &self.prefix,
            &[
                &["sms", "observer"],
                centralino_history::CONSUMERS.as_slice(),
            ]
            .concat(),
        );
        centralino_test_support::delete_rabbitmq_objects(&amqp_url(), &queues, &exchanges).await;
        self.db.drop_db().await;
    }

    /// Payloads published under `key`, once each (the bus may deliver one twice).
    pub fn events<P: TypedPayload>(&self, key: &str) -> Vec<P> {
        let mut seen = HashSet::new();
        self.published
            .lock()
            .expect("published")
            .iter()
            .filter(|(k, e)| k == key && seen.insert(e.message_id.clone()))
            .filter_map(|(_, e)| e.decode::<P>().ok())
            .collect()
    }

    pub fn created(&self) -> Vec<v1::Interaction> {
        self.events::<v1::InteractionCreated>("interaction.sms.created")
            .into_iter()
            .filter_map(|c| c.interaction)
            .collect()
    }

    pub fn messages(&self) -> Vec<v1::MessageRecorded> {
        self.events("interaction.sms.message")
    }

    /// The statuses reported for `message_id`, in order.
    pub fn statuses(&self, message_id: &str) -> Vec<(String, String)> {
        self.events::<v1::MessageStatusChanged>("interaction.sms.message_status")
            .into_iter()
            .filter(|s| s.message_id == message_id)
            .map(|s| (s.status, s.error))
            .collect()
    }

    pub async fn command<P: TypedPayload>(&self, key: &str, payload: &P) {
        self.bus
            .publish(
                Exchange::Commands,
                key,
                &new_envelope("test-desktop", payload),
            )
            .await
            .expect("command published");
    }

    /// Sends `body` (an agent's reply or a notification); returns its id.
    pub async fn send(
        &self,
        interaction: &str,
        recipient: &str,
        purpose: &str,
        body: &str,
    ) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.command(
            "sms.send",
            &v1::SendMessage {
                message_id: id.clone(),
                interaction_id: interaction.into(),
                channel: v1::Channel::Sms as i32,
                body: body.into(),
                agent_id: "agent-7".into(),
                recipient: recipient.into(),
                purpose: purpose.into(),
                ..Default::default()
            },
        )
        .await;
        id
    }

    /// Every submit_sm the simulator received.
    pub fn submitted(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.smsc().submitted()).expect("JSON from the simulator")
    }

    /// Texts submitted to `destination` (as written on the wire, without '+').
    pub fn submitted_to(&self, destination: &str) -> Vec<String> {
        self.submitted()
            .iter()
            .filter(|p| p["destination"] == destination)
            .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub async fn sql_count(&self, sql: &str) -> i64 {
        use sea_orm::{ConnectionTrait as _, Statement};
        let conn = centralino_store::connect(&self.db.url, 1)
            .await
            .expect("db");
        let row = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .expect("query")
            .expect("a row");
        row.try_get_by_index::<i64>(0).expect("a count")
    }
}
