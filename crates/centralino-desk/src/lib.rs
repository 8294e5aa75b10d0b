//! The walk-in desk adapter: kiosk tickets, counters, display boards.
//!
//! - **Kiosk** (`POST /api/sites/{site}/tickets`, JSON, or gRPC `IssueTicket`):
//!   a ticket gets the next number of its site and service for the site's day
//!   (it starts again at 1 at local midnight, `centralino_ticketing::numbering`)
//!   and is written with its `interaction.desk.created` (the service's routing
//!   queue, the customer's identifiers) in one transaction, published through
//!   the outbox. Booked customers check in with their appointment's code and
//!   wait with the appointment priority.
//! - **Counters** are agents with desk capacity. `OpenCounter` (gRPC) says where
//!   an agent sits; routing picks the ticket (skills, priority, fairness) and the
//!   agent accepting routing's offer is the call: on `routing.desk.assigned` the
//!   ticket is called to the agent's counter. Recall, no-show (also after too
//!   many recalls or a timeout) and start act on it here; completion and
//!   transfer come from routing (`routing.desk.completed` / `requeued`).
//! - **Boards**: per site, the last called tickets and their counters, as JSON,
//!   as server-sent events, and as a plain web page (`/sites/{site}/board`).
//!
//! One task (the actor) makes every change, so numbers and counters never
//! race; each change is a transaction carrying its events (outbox).

#![forbid(unsafe_code)]

mod actor;
mod command;
mod entities;
mod grpc;
mod http;
mod migrations;
mod printer;
mod view;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use centralino_bus::{Bus, BusError, ConsumerSpec};
use centralino_domain::IdentityRules;
use centralino_store::StoreError;
use centralino_store::outbox::OutboxRelay;
use centralino_ticketing::appointment::CheckInRules;
use centralino_ticketing::numbering::{Site, validate_prefix};
use centralino_ticketing::ticket::Rules;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

pub use grpc::{DeskApi, DeskServer, policy};
pub use migrations::DeskMigrator;
pub use view::{Board, BoardCall, ServiceWaiting, SiteInfo, TicketView};

/// The gRPC services the desk adapter adds to the server.
pub const GRPC_SERVICES: &[&str] = &["centralino.v1.DeskService"];

/// The adapter's name: outbox source, envelope source.
pub const SERVICE: &str = "desk";

/// A service customers take tickets for.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// What kiosks send, e.g. `A`.
    pub code: String,
    pub name: String,
    /// Printed before the number: `A` gives `A007`.
    pub prefix: String,
    /// The routing queue its tickets wait in; `{site}` stands for the site's
    /// id (required with more than one site: each site's counters call their
    /// own site's tickets).
    pub queue: String,
    /// 0–100.
    pub priority: u32,
}

impl ServiceConfig {
    /// The routing queue of this service's tickets at `site`.
    pub fn queue_for(&self, site: &str) -> String {
        self.queue.replace("{site}", site)
    }
}

/// The SMS sent when a ticket gets near the head of its line (through the
/// SMS adapter's `sms.send` command, purpose `transactional`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnNotice {
    /// Sent once routing puts the ticket at this place or nearer.
    pub at_position: u64,
    /// `{ticket}`, `{site}` and `{position}` are filled in.
    pub text: String,
}

/// Where the clock comes from (tests move it).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

#[derive(Clone)]
pub struct DeskConfig {
    /// The kiosk and display HTTP API.
    pub listen: SocketAddr,
    pub sites: Vec<Site>,
    /// Offered at every site.
    pub services: Vec<ServiceConfig>,
    /// Digits of the number on a ticket (`A007`: 3); it starts again at 1
    /// after the largest.
    pub digits: usize,
    pub rules: IdentityRules,
    /// The counters of each site (by site id), e.g. `["1", "2", "3"]`.
    pub counters: HashMap<String, Vec<String>>,
    /// Recalls allowed and how long a called customer has.
    pub tickets: Rules,
    /// How early and how late a booked customer may check in.
    pub check_in: CheckInRules,
    /// Added to the service's priority for a booked customer (capped at 100).
    pub appointment_priority: u32,
    /// How many calls a board shows.
    pub board_size: usize,
    /// Text customers who gave a phone when their turn is near.
    pub notify: Option<TurnNotice>,
    /// Ticket printers (ESC/POS over TCP, port 9100) by site id.
    pub printers: HashMap<String, SocketAddr>,
    /// When set, kiosk writes (taking a ticket, checking in) need a bearer
    /// token signed with this key, of a role in [`KIOSK_ROLES`]: a kiosk's phone
    /// number field must not be open to anyone on the network (SMS pumping).
    /// `None` leaves them open, for a closed branch LAN.
    pub kiosk_key: Option<centralino_auth::TokenKey>,
    pub clock: Clock,
}

/// The roles a kiosk's token may have: `kiosk` (what to mint for kiosks: it
/// can do nothing else), or an integrator or admin driving a kiosk.
pub const KIOSK_ROLES: &[centralino_auth::Role] = &[
    centralino_auth::Role::Kiosk,
    centralino_auth::Role::Integrator,
    centralino_auth::Role::Admin,
];

impl std::fmt::Debug for DeskConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeskConfig")
            .field("listen", &self.listen)
            .field("sites", &self.sites)
            .field("services", &self.services)
            .field("digits", &self.digits)
            .field("counters", &self.counters)
            .field("tickets", &self.tickets)
            .field("check_in", &self.check_in)
            .field("appointment_priority", &self.appointment_priority)
            .field("board_size", &self.board_size)
            .field("notify", &self.notify)
            .field("printers", &self.printers)
            .field("kiosk_auth", &self.kiosk_key.is_some())
            .finish_non_exhaustive()
    }
}

impl DeskConfig {
    /// Checks what the code relies on; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.sites.is_empty() {
            return Err("desk.sites: define at least one site".into());
        }
        for (i, s) in self.sites.iter().enumerate() {
            if s.id.is_empty() || s.id.len() > 64 {
                return Err(format!("desk.sites[{i}].id must be 1–64 characters"));
            }
            if s.opens >= s.closes {
                return Err(format!("desk.sites[{i}]: opens must be before closes"));
            }
        }
        if self.services.is_empty() {
            return Err("desk.services: define at least one service".into());
        }
        for (i, s) in self.services.iter().enumerate() {
            if s.code.is_empty() || s.code.len() > 16 {
                return Err(format!("desk.services[{i}].code must be 1–16 characters"));
            }
            validate_prefix(&s.prefix).map_err(|e| format!("desk.services[{i}].prefix: {e}"))?;
            if s.queue.is_empty() {
                return Err(format!("desk.services[{i}].queue is required"));
            }
            if self.sites.len() > 1 && !s.queue.contains("{site}") {
                return Err(format!(
                    "desk.services[{i}].queue must contain `{{site}}` when there are several \
                     sites (each site's counters call their own site's tickets)"
                ));
            }
            if s.priority > 100 {
                return Err(format!("desk.services[{i}].priority must be 0–100"));
            }
        }
        if !(2..=6).contains(&self.digits) {
            return Err("desk.digits must be 2–6".into());
        }
        for (site, counters) in &self.counters {
            if !self.sites.iter().any(|s| &s.id == site) {
                return Err(format!("desk.counters.{site}: no such site"));
            }
            for c in counters {
                if c.is_empty() || c.len() > 16 || c.chars().any(char::is_control) {
                    return Err(format!(
                        "desk.counters.{site}: counter names must be 1–16 characters"
                    ));
                }
            }
        }
        if self.tickets.no_show_after_ms <= 0 {
            return Err("desk.no_show_after_secs must be positive".into());
        }
        if self.check_in.early_ms < 0 || self.check_in.grace_ms < 0 {
            return Err(
                "desk.check_in_early_mins and check_in_grace_mins must not be negative".into(),
            );
        }
        if self.appointment_priority > 100 {
            return Err("desk.appointment_priority must be 0–100".into());
        }
        if !(1..=50).contains(&self.board_size) {
            return Err("desk.board_size must be 1–50".into());
        }
        if let Some(n) = &self.notify {
            if n.at_position == 0 {
                return Err("desk.notify_at_position must be at least 1".into());
            }
            if n.text.trim().is_empty() || !n.text.contains("{ticket}") {
                return Err("desk.notify_text must say the ticket: include {ticket}".into());
            }
        }
        for site in self.printers.keys() {
            if !self.sites.iter().any(|s| &s.id == site) {
                return Err(format!("desk.sites: printer of unknown site {site}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("invalid desk configuration: {0}")]
    Config(String),
    #[error("desk: cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// The running adapter.
pub struct Desk {
    /// `centralino.v1.DeskService`: add it to the gRPC server.
    pub api: DeskServer,
    pub task: tokio::task::JoinHandle<()>,
    pub lost: watch::Receiver<bool>,
    /// Where the HTTP API (kiosks, boards) listens.
    pub http_addr: SocketAddr,
}

/// PostgreSQL advisory-lock key of the desk adapter ("cent.dsk").
const LOCK_KEY: i64 = 0x6365_6e74_2e64_736b;

/// The adapter's queue: routing's news about desk interactions.
pub fn consumer_spec() -> ConsumerSpec {
    ConsumerSpec::new(SERVICE)
        .bind_key(centralino_bus::keys::pattern::routing_of(
            centralino_proto::v1::Channel::Desk,
        ))
        .prefetch(64)
}

/// Waits to lead, then starts the actor, the HTTP API, the routing-event
/// consumer and the outbox relay. Run [`DeskMigrator`] first. The gRPC
/// service in the result serves once added to a server.
pub async fn start(
    config: DeskConfig,
    db: sea_orm::DatabaseConnection,
    bus: Arc<dyn Bus>,
    max_message_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Desk, DeskError> {
    config.validate().map_err(DeskError::Config)?;
    let leadership = centralino_store::leader::acquire(&db, SERVICE, LOCK_KEY, || {
        tracing::info!("another desk adapter is active; standing by until it stops");
    })
    .await?;
    let lost = leadership.lost();
    let relay = OutboxRelay::new(db.clone(), bus.clone(), SERVICE);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| DeskError::Listen(config.listen, e))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| DeskError::Listen(config.listen, e))?;
    let subscription = bus.subscribe(consumer_spec()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (tx, rx) = mpsc::channel::<command::Command>(1_024);
    let (actor, boards) =
        actor::Actor::load(config.clone(), db, leadership.fence(), relay.waker()).await?;
    let mut tasks = vec![tokio::spawn(actor.run(rx, stopped(stop_rx.clone())))];
    tasks.push(tokio::spawn(centralino_bus::Pipeline::new(SERVICE).run(
        subscription,
        command::RoutingEvents { tx: tx.clone() },
        stopped(stop_rx.clone()),
    )));
    let app = http::router(tx.clone(), Arc::new(config), boards);
    let stop = stopped(stop_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "desk: HTTP server failed");
        }
    }));
    tasks.push(tokio::spawn(relay.run(stopped(stop_rx))));
    tracing::info!(listen = %http_addr, "desk: kiosk and board API listening");
    let task = leadership.supervise(shutdown, stop_tx, tasks);
    Ok(Desk {
        api: grpc::server(tx, max_message_bytes),
        task,
        lost,
        http_addr,
    })
}
