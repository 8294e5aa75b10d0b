//! The routing service.
//!
//! Consumes new and abandoned interactions from the bus, routes them with the
//! pure [`centralino_routing`] engine, keeps its state in the database (waiting
//! interactions, open offers, held work, agents' presence, queue and agent
//! definitions), publishes what it decided through the transactional outbox,
//! and serves three gRPC APIs: agent sessions, supervisor boards, and routing
//! administration.
//!
//! One task (the actor) owns the engine; everything else sends it commands.
//! Restart safety comes from that: every decision is committed together with
//! the state it changes before anybody hears of it, and a restarted router
//! rebuilds the engine from those rows (open offers keep their expiry, so no
//! interaction is offered twice at once).

#![forbid(unsafe_code)]

mod actor;
mod consumer;
mod convert;
mod definitions;
mod entities;
mod grpc;
mod migrations;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use centralino_auth::{Access, Policy, Role};
use centralino_bus::{Bus, BusError};
use centralino_store::StoreError;
use centralino_store::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

pub use actor::{RouterConfig, SERVICE};
pub use definitions::FileDefinitions;
pub use migrations::RoutingMigrator;

/// The advisory lock every routing instance takes (one writer at a time).
const LOCK_KEY: i64 = 0x6365_6e74_2e72_6f75;

/// What can stop the routing service.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("routing configuration: {0}")]
    Config(String),
}

impl From<sea_orm::DbErr> for RouterError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Store(e.into())
    }
}

/// gRPC service names this crate serves.
pub const GRPC_SERVICES: [&str; 4] = [
    "centralino.v1.AgentService",
    "centralino.v1.AgentDeskService",
    "centralino.v1.SupervisorService",
    "centralino.v1.RoutingAdminService",
];

/// Who may call what: agents hold sessions; supervisors watch; admins
/// administer (supervisors may read the definitions).
pub fn policy(policy: &mut Policy) {
    let sup = || Access::Roles(vec![Role::Supervisor, Role::Admin]);
    policy
        .set(
            "/centralino.v1.AgentService/Session",
            Access::Roles(vec![Role::Agent]),
        )
        .set(
            "/centralino.v1.AgentDeskService/",
            Access::Roles(vec![Role::Agent]),
        )
        .set("/centralino.v1.SupervisorService/", sup())
        .set(
            "/centralino.v1.RoutingAdminService/",
            Access::Roles(vec![Role::Admin]),
        )
        .set("/centralino.v1.RoutingAdminService/ListSkills", sup())
        .set("/centralino.v1.RoutingAdminService/ListQueues", sup())
        .set("/centralino.v1.RoutingAdminService/ListAgents", sup());
}

/// The names of the queues routing has defined (in `db`, migrated
/// beforehand), for checking what the adapters send against them.
pub async fn defined_queues(
    db: &DatabaseConnection,
) -> Result<std::collections::BTreeSet<String>, centralino_store::StoreError> {
    use sea_orm::{EntityTrait as _, QuerySelect as _};
    let names: Vec<String> = entities::queue::Entity::find()
        .select_only()
        .column(entities::queue::Column::Name)
        .into_tuple()
        .all(db)
        .await?;
    Ok(names.into_iter().collect())
}

/// A started routing service: its gRPC services (add them to a server) and its tasks.
pub struct Router {
    pub agent: grpc::AgentServer,
    /// The same agent session for browsers (a server stream and unary calls).
    pub desk: grpc::DeskServer,
    pub supervisor: grpc::SupervisorServer,
    pub admin: grpc::AdminServer,
    /// Ends when the service has stopped (after `shutdown`, or on losing leadership).
    pub task: tokio::task::JoinHandle<()>,
    /// Turns `true` if this instance lost leadership and stopped routing; the
    /// embedding program starts it again to contend (`centralino::serve_contending`).
    pub lost: tokio::sync::watch::Receiver<bool>,
}

/// Waits to lead (a second instance on the same PostgreSQL database stands by
/// until the first stops), loads the routing state from `db` (migrated
/// beforehand) and starts the actor, the bus consumer and the outbox relay.
/// Everything stops when `shutdown` resolves.
pub async fn start(
    config: RouterConfig,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    max_message_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Router, RouterError> {
    config
        .engine
        .validate()
        .map_err(|e| RouterError::Config(e.to_string()))?;
    let leadership = centralino_store::leader::acquire(&db, SERVICE, LOCK_KEY, || {
        tracing::info!("another routing instance is active; standing by until it stops");
    })
    .await?;
    let lost = leadership.lost();
    let relay = OutboxRelay::new(db.clone(), bus.clone(), SERVICE);
    let waker = relay.waker();
    let mut actor = actor::Actor::load(config, db, leadership.fence(), bus.clone(), waker).await?;
    actor.apply_file().await?;
    let (tx, rx) = mpsc::channel(4_096);
    let subscription = consumer::subscribe(bus.as_ref()).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let actor_task = tokio::spawn(actor.run(rx, stopped(stop_rx.clone())));
    let consumer_task = tokio::spawn(consumer::run(
        subscription,
        tx.clone(),
        stopped(stop_rx.clone()),
    ));
    let relay_task = tokio::spawn(relay.run(stopped(stop_rx.clone())));
    let sessions = Arc::new(AtomicU64::new(1));
    let router = Router {
        agent: grpc::agent_server(
            tx.clone(),
            sessions.clone(),
            grpc::Stop(stop_rx.clone()),
            max_message_bytes,
        ),
        desk: grpc::desk_server(
            tx.clone(),
            sessions,
            grpc::Stop(stop_rx.clone()),
            max_message_bytes,
        ),
        supervisor: grpc::supervisor_server(tx.clone(), grpc::Stop(stop_rx), max_message_bytes),
        admin: grpc::admin_server(tx, max_message_bytes),
        lost: lost.clone(),
        task: tokio::spawn(async move {
            let mut lost = lost;
            tokio::select! {
                () = shutdown => {}
                _ = lost.wait_for(|l| *l) => {}
            }
            let _ = stop_tx.send(true);
            let _ = consumer_task.await;
            let _ = actor_task.await;
            let _ = relay_task.await;
            // Last: the lock is released only once nothing routes any more.
            drop(leadership);
        }),
    };
    tracing::info!("routing service started");
    Ok(router)
}
