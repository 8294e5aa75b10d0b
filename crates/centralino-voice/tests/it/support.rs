//! The voice adapter on a fresh database and bus prefix, an observer of what
//! it publishes, and a stand-in for routing's events.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use centralino_bus::{
    AmqpBus, AmqpConfig, Bus, ConsumerSpec, Envelope, EnvelopeExt as _, Exchange, Topology,
    TypedPayload, new_envelope,
};
use centralino_proto::v1;
use centralino_telephony::ivr::{Action, Flow, Menu};
use centralino_test_support::isolated::Isolated;
use centralino_test_support::observer::Observer;
use centralino_test_support::{TestDatabase, amqp_url, bus_prefix};
use centralino_voice::{HoldConfig, NumberConfig, VoiceConfig};

pub const WAIT: Duration = Duration::from_secs(20);
/// The number callers dial.
pub const NUMBER: &str = "100";

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn queue(q: &str, priority: u32) -> Action {
    Action::Queue {
        queue: q.into(),
        priority,
    }
}

/// 1 → sales, 2 → billing menu (1 → billing), 0 → repeat; after one retry,
/// support.
pub fn flow() -> Flow {
    let root = Menu {
        prompt: names(&["menu/welcome", "menu/options"]),
        options: BTreeMap::from([
            ('1', queue("sales", 10)),
            ('2', Action::Menu("billing".into())),
            ('0', Action::Repeat),
        ]),
        timeout_ms: 4_000,
        retries: 1,
        invalid_prompt: names(&["menu/invalid"]),
        no_input_prompt: names(&["menu/no-input"]),
        default: queue("support", 0),
    };
    let billing = Menu {
        prompt: names(&["menu/billing"]),
        options: BTreeMap::from([('1', queue("billing", 50))]),
        timeout_ms: 4_000,
        retries: 1,
        invalid_prompt: names(&["menu/invalid"]),
        no_input_prompt: names(&["menu/no-input"]),
        default: Action::Hangup,
    };
    Flow {
        start: "root".into(),
        menus: BTreeMap::from([("root".into(), root), ("billing".into(), billing)]),
        goodbye: names(&["menu/goodbye"]),
    }
}

pub fn prompts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prompts")
}

pub fn config() -> VoiceConfig {
    VoiceConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        prompts_dir: prompts_dir(),
        numbers: vec![NumberConfig {
            number: NUMBER.into(),
            flow: "main".into(),
        }],
        flows: BTreeMap::from([("main".into(), flow())]),
        hold: HoldConfig {
            first_announcement: Duration::from_millis(500),
            announce_every: Duration::from_secs(5),
            callback_key: Some('1'),
            ..HoldConfig::default()
        },
        ring_timeout: Duration::from_secs(3),
        // Every test's calls and bridges take their RTP ports from a range
        // (shared by tests running at once: ports in use are skipped).
        rtp_ports: Some(31_000..=31_999),
        // Nobody answers there; the callback test points it at a phone.
        trunk: Some("sip:{number}@127.0.0.1:9".into()),
        ..VoiceConfig::default()
    }
}

fn amqp_config(prefix: &str, name: &str) -> AmqpConfig {
    let mut c = AmqpConfig::new(amqp_url());
    c.topology = Topology::new(prefix.to_owned());
    c.connection_name = name.to_owned();
    c
}

pub struct Env {
    pub db: TestDatabase,
    pub prefix: String,
    pub bus: Arc<dyn Bus>,
    pub sip: SocketAddr,
    pub config: VoiceConfig,
    /// Everything the adapter published, in arrival order.
    pub published: Arc<Mutex<Vec<(String, Envelope)>>>,
    process: Option<Isolated>,
    observer: Observer,
}

impl Env {
    pub async fn start(config: VoiceConfig) -> Self {
        let db = TestDatabase::postgres().await;
        let prefix = bus_prefix("vo");
        let bus: Arc<dyn Bus> = Arc::new(
            AmqpBus::connect(amqp_config(&prefix, "voice-test"))
                .await
                .expect("RabbitMQ is reachable (cargo xtask test starts it)"),
        );
        let observer = Observer::start(
            &bus,
            ConsumerSpec::new("observer")
                .bind(Exchange::Events, "interaction.voice.#")
                .bind(Exchange::Commands, "routing.agent_not_reached"),
        )
        .await;
        let published = observer.seen();
        let (process, sip) = Self::launch(&db.url, &prefix, config.clone()).await;
        Self {
            db,
            prefix,
            bus,
            sip,
            config,
            published,
            process: Some(process),
            observer,
        }
    }

    /// The adapter in a runtime of its own (so a test can crash it).
    async fn launch(url: &str, prefix: &str, config: VoiceConfig) -> (Isolated, SocketAddr) {
        let (url, prefix) = (url.to_owned(), prefix.to_owned());
        Isolated::start(move |ready, stop| async move {
            let conn = centralino_store::connect(&url, 8).await.expect("database");
            centralino_store::migrate::<centralino_store::CoreMigrator>(&conn, |_| {})
                .await
                .expect("core migrations");
            centralino_store::migrate::<centralino_voice::VoiceMigrator>(&conn, |_| {})
                .await
                .expect("voice migrations");
            let bus: Arc<dyn Bus> = Arc::new(
                AmqpBus::connect(amqp_config(&prefix, "voice-under-test"))
                    .await
                    .expect("bus"),
            );
            let voice = centralino_voice::start(config, conn, bus, stop)
                .await
                .expect("voice adapter starts");
            let _ = ready.send(voice.sip_addr);
            let _ = voice.task.await;
        })
        .await
    }

    /// Drops the adapter's runtime at once, as `kill -9` would.
    pub fn crash(&mut self) {
        if let Some(p) = self.process.take() {
            p.crash();
        }
    }

    /// Starts the adapter again (after [`Env::crash`]), on a new SIP port.
    pub async fn restart(&mut self) {
        let (process, sip) = Self::launch(&self.db.url, &self.prefix, self.config.clone()).await;
        self.process = Some(process);
        self.sip = sip;
    }

    pub async fn stop(mut self) {
        if let Some(p) = self.process.take() {
            p.stop().await;
        }
        self.observer.stop().await;
        let (queues, exchanges) =
            centralino_test_support::rabbitmq_shared_objects(&self.prefix, &["voice", "observer"]);
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
        self.events::<v1::InteractionCreated>("interaction.voice.created")
            .into_iter()
            .filter_map(|c| c.interaction)
            .collect()
    }

    pub async fn wait_created(&self, n: usize) -> Vec<v1::Interaction> {
        centralino_test_support::eventually(WAIT, "the call's interaction", || async {
            let c = self.created();
            (c.len() >= n).then_some(c)
        })
        .await
    }

    pub async fn wait_ended(&self, interaction: &str) -> v1::InteractionEnded {
        centralino_test_support::eventually(WAIT, "the call's record", || async {
            self.events::<v1::InteractionEnded>("interaction.voice.ended")
                .into_iter()
                .find(|e| e.interaction_id == interaction)
        })
        .await
    }

    /// Waits until the adapter has recorded `interaction` answered: the
    /// called party picked up, and the legs are bridged right after.
    pub async fn wait_answered(&self, interaction: &str) {
        use centralino_store::sea_orm::{ConnectionTrait as _, Statement};
        let db = centralino_store::connect(&self.db.url, 1)
            .await
            .expect("database");
        let sql = format!(
            "SELECT count(*) FROM voice_calls \
             WHERE interaction_id = '{interaction}' AND answered_at IS NOT NULL"
        );
        centralino_test_support::eventually(WAIT, "the call answered", || async {
            let row = db
                .query_one_raw(Statement::from_string(
                    db.get_database_backend(),
                    sql.clone(),
                ))
                .await
                .ok()??;
            (row.try_get_by_index::<i64>(0).ok()? == 1).then_some(())
        })
        .await;
        let _ = db.close().await;
    }

    /// Publishes what routing would say about `interaction`.
    pub async fn routing(&self, kind: v1::routing_event::Kind, interaction: &str, agent: &str) {
        let e = v1::RoutingEvent {
            kind: kind as i32,
            interaction_id: interaction.into(),
            channel: v1::Channel::Voice as i32,
            queue: "sales".into(),
            agent: agent.into(),
            position: 1,
            estimated_wait_ms: Some(60_000),
            ..Default::default()
        };
        let key = format!(
            "routing.voice.{}",
            match kind {
                v1::routing_event::Kind::Assigned => "assigned",
                v1::routing_event::Kind::Queued => "queued",
                v1::routing_event::Kind::Position => "position",
                v1::routing_event::Kind::Closed => "closed",
                _ => "other",
            }
        );
        self.bus
            .publish(Exchange::Events, &key, &new_envelope("routing", &e))
            .await
            .expect("routing event published");
    }
}
