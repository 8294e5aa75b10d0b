//! The customer-history service.
//!
//! Consumes every interaction event on the bus (creations, routing steps,
//! messages, delivery receipts, endings), resolves which customer each
//! interaction belongs to from the identifiers it carries (the pure rule is
//! [`centralino_domain::identity`]), and keeps one timeline per customer plus
//! a consent ledger. Integrators and agents read and change it over gRPC
//! (`HistoryService`): find customers by any identifier, list the timeline,
//! search, merge and unmerge (audited, reversible), record and read consent,
//! export and erase a customer. Adapters record consent over the bus too
//! (`history.record_consent`, e.g. an SMS `STOP`). Agents and integrators
//! send messages through it (`ConversationService`: the message's row and
//! the adapter's `<channel>.send` command, its status as the adapter reports
//! it) and create work of their own (`InteractionService`: tasks on the
//! `task` channel, which routing offers like any interaction).
//!
//! One task (the writer) makes every change: bus events in batches (one
//! transaction per batch, de-duplicated by message id through the inbox) and
//! API changes one by one, so resolution and merges never race. Reads go to
//! the database directly. Events history publishes (consent changes, merges,
//! erasures) leave through the transactional outbox.

#![forbid(unsafe_code)]

mod commands;
mod conversation;
mod entities;
mod grpc;
mod ingest;
mod migrations;
mod read;
mod writer;

use std::collections::BTreeMap;
use std::sync::Arc;

use centralino_auth::{Access, Policy, Role};
use centralino_bus::{Bus, BusError, ConsumerSpec};
use centralino_domain::identity::ConflictPolicy;
use centralino_domain::{Direction, IdentityRules};
use centralino_store::StoreError;
use centralino_store::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

pub use conversation::{ConversationServer, InteractionServer};
pub use grpc::HistoryServer;
pub use migrations::HistoryMigrator;

/// Name of the history service: its consumer queue, outbox source and inbox consumer.
pub const SERVICE: &str = "history";

/// The consumer (queue) names history declares on the bus.
pub const CONSUMERS: [&str; 2] = [SERVICE, COMMANDS_CONSUMER];

const COMMANDS_CONSUMER: &str = "history-commands";

/// gRPC service names this crate serves.
pub const GRPC_SERVICES: [&str; 3] = [
    "centralino.v1.HistoryService",
    "centralino.v1.ConversationService",
    "centralino.v1.InteractionService",
];

/// How the history service behaves.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Normalization of identifiers (the default phone region).
    pub rules: IdentityRules,
    /// What happens when one interaction names two known customers.
    pub on_conflict: ConflictPolicy,
    /// Most bus events written in one transaction.
    pub batch_max: usize,
    /// The secret that opt-outs of erased customers are kept under; required
    /// by [`start`].
    pub suppression_key: Option<SuppressionKey>,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            rules: IdentityRules::default(),
            on_conflict: ConflictPolicy::Suggest,
            batch_max: 1_000,
            suppression_key: None,
        }
    }
}

/// An erased customer's opt-outs are kept under an HMAC-SHA256 of each
/// identifier with this secret, so the stored values cannot be turned back
/// into phone numbers by trying them all (a plain hash could). Every history
/// instance must use the same secret, and it must never change: opt-outs
/// are found by it.
#[derive(Clone)]
pub struct SuppressionKey(hmac::Hmac<sha2::Sha256>);

/// The shortest suppression secret accepted, in bytes.
pub const MIN_SUPPRESSION_SECRET: usize = 32;

impl SuppressionKey {
    pub fn new(secret: &[u8]) -> Result<Self, String> {
        if secret.len() < MIN_SUPPRESSION_SECRET {
            return Err(format!(
                "the suppression secret must be at least {MIN_SUPPRESSION_SECRET} bytes"
            ));
        }
        use hmac::Mac as _;
        hmac::Hmac::new_from_slice(secret)
            .map(Self)
            .map_err(|e| format!("the suppression secret: {e}"))
    }

    /// The hex HMAC-SHA256 of `kind:value`.
    pub(crate) fn hash(&self, kind: &str, value: &str) -> String {
        use hmac::Mac as _;
        let mut mac = self.0.clone();
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Refuses a suppression secret other than the one the database's opt-outs
/// were kept under (they would silently stop matching); the first start
/// records its fingerprint.
async fn same_key_as_before(
    db: &DatabaseConnection,
    key: &SuppressionKey,
) -> Result<(), HistoryError> {
    use entities::key;
    use sea_orm::{EntityTrait as _, Set};
    let fingerprint = key.hash("fingerprint", "centralino suppression secret");
    key::Entity::insert(key::ActiveModel {
        name: Set("suppression".into()),
        fingerprint: Set(fingerprint.clone()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(db)
    .await
    .map_err(StoreError::from)?;
    let kept = key::Entity::find_by_id("suppression".to_owned())
        .one(db)
        .await
        .map_err(StoreError::from)?;
    match kept {
        Some(k) if k.fingerprint != fingerprint => Err(HistoryError::Config(
            "identity.suppression_secret is not the one this database's opt-outs were kept \
             under: set it to that secret (with another, erased customers' opt-outs would \
             stop applying)"
                .into(),
        )),
        _ => Ok(()),
    }
}

impl std::fmt::Debug for SuppressionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SuppressionKey(..)")
    }
}

/// What can stop the history service.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("invalid history configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Who may call what: agents and supervisors read; integrators read and
/// write; admins too, and only they erase.
pub fn policy(policy: &mut Policy) {
    let read = || {
        Access::Roles(vec![
            Role::Agent,
            Role::Supervisor,
            Role::Integrator,
            Role::Admin,
        ])
    };
    let write = || Access::Roles(vec![Role::Integrator, Role::Admin]);
    policy.set("/centralino.v1.HistoryService/", read());
    for m in [
        "UpdateCustomer",
        "MergeCustomers",
        "UnmergeCustomers",
        "RecordConsent",
        "ExportCustomer",
        "ListAudit",
    ] {
        policy.set(&format!("/centralino.v1.HistoryService/{m}"), write());
    }
    policy.set(
        "/centralino.v1.HistoryService/EraseCustomer",
        Access::Roles(vec![Role::Admin]),
    );
    // An agent confirms a merge history suggested (checked in the handler).
    policy.set(
        "/centralino.v1.HistoryService/MergeCustomers",
        Access::Roles(vec![Role::Agent, Role::Integrator, Role::Admin]),
    );
    // Agents answer their conversations (checked against routing's
    // assignment); integrators and admins also send notifications.
    policy.set("/centralino.v1.ConversationService/", read());
    policy.set(
        "/centralino.v1.ConversationService/SendMessage",
        Access::Roles(vec![Role::Agent, Role::Integrator, Role::Admin]),
    );
    policy.set("/centralino.v1.InteractionService/", read());
    for m in ["CreateTask", "CloseTask"] {
        policy.set(&format!("/centralino.v1.InteractionService/{m}"), write());
    }
}

/// History's queue: every interaction and routing event, one active consumer.
pub fn consumer_spec() -> ConsumerSpec {
    ConsumerSpec::new(SERVICE)
        .bind_key(centralino_bus::keys::pattern::all_interactions())
        .bind_key(centralino_bus::keys::pattern::all_routing())
        .prefetch(2_000)
        .single_active()
}

/// History's command queue: consent changes adapters ask for (an SMS `STOP`).
pub fn commands_spec() -> ConsumerSpec {
    ConsumerSpec::new(COMMANDS_CONSUMER)
        .bind_key(centralino_bus::keys::record_consent())
        .prefetch(64)
}

/// A started history service: its gRPC service (add it to a server) and its task.
pub struct History {
    pub api: HistoryServer,
    pub conversations: ConversationServer,
    pub tasks: InteractionServer,
    /// Ends when the service has stopped (after `shutdown`, or on losing leadership).
    pub task: tokio::task::JoinHandle<()>,
    /// Turns `true` if this instance lost its lock and stopped writing; the
    /// embedding program starts it again to contend (`centralino::serve_contending`).
    pub lost: tokio::sync::watch::Receiver<bool>,
}

/// The advisory lock every history instance takes (one writer at a time).
const LOCK_KEY: i64 = 0x6365_6e74_2e68_6973;

/// Waits to lead (a second instance on the same PostgreSQL database stands by
/// until the first stops), then starts the writer, the bus consumer and the
/// outbox relay on `db` (migrated beforehand). Everything stops when
/// `shutdown` resolves.
pub async fn start(
    config: HistoryConfig,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    max_message_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<History, HistoryError> {
    let Some(key) = config.suppression_key.clone() else {
        return Err(HistoryError::Config(
            "a suppression secret is required (identity.suppression_secret)".into(),
        ));
    };
    same_key_as_before(&db, &key).await?;
    let leadership = centralino_store::leader::acquire(&db, SERVICE, LOCK_KEY, || {
        tracing::info!("another history instance is active; standing by until it stops");
    })
    .await?;
    let lost = leadership.lost();
    let relay = OutboxRelay::new(db.clone(), bus.clone(), SERVICE);
    let waker = relay.waker();
    let (tx, rx) = mpsc::channel(8_192);
    let (messages_tx, messages) = tokio::sync::watch::channel(0);
    let writer = writer::Writer::new(
        config.clone(),
        key.clone(),
        db.clone(),
        leadership.fence(),
        waker,
        messages_tx,
    );
    let subscription = bus.subscribe(consumer_spec()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let writer_task = tokio::spawn(writer.run(rx, stopped(stop_rx.clone())));
    let rules = config.rules.clone();
    let consumer_task = tokio::spawn(centralino_bus::run_in_order(
        subscription,
        tx.clone(),
        move |d| ingest::parse(d, &rules),
        writer::ingest_command,
        stopped(stop_rx.clone()),
    ));
    let commands = bus.subscribe(commands_spec()).await?;
    let handler = commands::ConsentCommands {
        cfg: config.clone(),
        db: db.clone(),
        fence: leadership.fence(),
        tx: tx.clone(),
    };
    let commands_task = tokio::spawn(centralino_bus::Pipeline::new(COMMANDS_CONSUMER).run(
        commands,
        handler,
        stopped(stop_rx.clone()),
    ));
    let relay_task = tokio::spawn(relay.run(stopped(stop_rx)));
    let (conversations, tasks) = conversation::servers(
        config.clone(),
        db.clone(),
        tx.clone(),
        messages,
        max_message_bytes,
    );
    let api = grpc::server(config, key, db, tx, max_message_bytes);
    let task = leadership.supervise(
        shutdown,
        stop_tx,
        vec![consumer_task, commands_task, writer_task, relay_task],
    );
    tracing::info!("history service started");
    Ok(History {
        api,
        conversations,
        tasks,
        task,
        lost,
    })
}

// ---------------------------------------------------------------------------
// Small conversions shared by the modules

pub(crate) fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

pub(crate) fn json_map<'a>(m: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let map: BTreeMap<&String, &String> = m.into_iter().collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

pub(crate) fn parse_map(s: &str) -> BTreeMap<String, String> {
    serde_json::from_str(s).unwrap_or_default()
}

pub(crate) fn json_list(l: &[String]) -> String {
    serde_json::to_string(l).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn parse_list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// Milliseconds since the epoch of a wire timestamp.
pub(crate) fn ms_of(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(t.nanos.clamp(0, 999_999_999)) / 1_000_000)
}

/// A wire timestamp of milliseconds since the epoch.
pub(crate) fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
