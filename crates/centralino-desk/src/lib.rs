//! The walk-in desk adapter (first part: the kiosk).
//!
//! A customer takes a ticket for a service at a site's kiosk
//! (`POST /api/sites/{site}/tickets`, JSON). The ticket gets the next number
//! of that site and service for the site's day (it starts again at 1 at local
//! midnight, `centralino_ticketing::numbering`), is written with its
//! `interaction.desk.created` (the service's routing queue, the customer's
//! identifiers when given) in one transaction and published through the
//! outbox, so counters call it through the same routing as every other
//! channel. One task gives out the numbers, so two kiosks never get the same
//! one; the database's unique index is the backstop.
//!
//! Still to come (issue 8): counters calling, recalling, no-shows and
//! transfers from routing's events, display boards, appointments.

#![forbid(unsafe_code)]

mod entities;
mod migrations;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use centralino_bus::{Bus, Exchange, new_envelope};
use centralino_domain::{IdentifierKind, IdentityRules};
use centralino_proto::v1;
use centralino_store::StoreError;
use centralino_store::outbox::OutboxRelay;
use centralino_ticketing::numbering::{DailyCounter, Site, label, validate_prefix};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait as _, DatabaseConnection, EntityTrait as _, PaginatorTrait as _, QueryFilter as _,
    QuerySelect as _, Set, TransactionTrait as _,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use entities::ticket;
pub use migrations::DeskMigrator;

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
    /// The routing queue its tickets wait in.
    pub queue: String,
    /// 0–100.
    pub priority: u32,
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
    pub clock: Clock,
}

impl std::fmt::Debug for DeskConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeskConfig")
            .field("listen", &self.listen)
            .field("sites", &self.sites)
            .field("services", &self.services)
            .field("digits", &self.digits)
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
            if s.priority > 100 {
                return Err(format!("desk.services[{i}].priority must be 0–100"));
            }
        }
        if !(2..=6).contains(&self.digits) {
            return Err("desk.digits must be 2–6".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid desk configuration: {0}")]
    Config(String),
    #[error("desk: cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// The running adapter.
pub struct Desk {
    pub task: tokio::task::JoinHandle<()>,
    pub lost: watch::Receiver<bool>,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
}

/// PostgreSQL advisory-lock key of the desk adapter ("cent.dsk").
const LOCK_KEY: i64 = 0x6365_6e74_2e64_736b;

/// A kiosk's request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    pub service: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub codice_fiscale: Option<String>,
    #[serde(default)]
    pub loyalty_card: Option<String>,
}

/// What the kiosk prints.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TicketIssued {
    pub id: String,
    pub label: String,
    pub service: String,
    /// 1-based place among the open tickets of the service at the site.
    pub position: u64,
}

/// Why a ticket was refused (the HTTP status and message say it).
#[derive(Debug)]
enum Refused {
    UnknownSite(String),
    UnknownService(String),
    Closed {
        site: String,
        opens: String,
    },
    Invalid {
        field: &'static str,
        message: String,
    },
    Unavailable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let (status, message, field) = match self {
            Refused::UnknownSite(s) => (StatusCode::NOT_FOUND, format!("unknown site `{s}`"), None),
            Refused::UnknownService(s) => (
                StatusCode::NOT_FOUND,
                format!("unknown service `{s}`"),
                Some("service"),
            ),
            Refused::Closed { site, opens } => (
                StatusCode::CONFLICT,
                format!("site `{site}` is closed; it opens at {opens}"),
                None,
            ),
            Refused::Invalid { field, message } => (StatusCode::BAD_REQUEST, message, Some(field)),
            Refused::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "tickets cannot be issued right now; try again".to_owned(),
                None,
            ),
        };
        let body = match field {
            Some(f) => serde_json::json!({ "error": message, "field": f }),
            None => serde_json::json!({ "error": message }),
        };
        (status, Json(body)).into_response()
    }
}

struct Issue {
    site: String,
    request: TicketRequest,
    reply: oneshot::Sender<Result<TicketIssued, Refused>>,
}

/// The one task that gives out numbers.
struct Issuer {
    config: DeskConfig,
    db: DatabaseConnection,
    relay: Arc<tokio::sync::Notify>,
    counters: HashMap<(String, String), DailyCounter>,
}

impl Issuer {
    async fn issue(&mut self, site_id: &str, req: &TicketRequest) -> Result<TicketIssued, Refused> {
        let site = self
            .config
            .sites
            .iter()
            .find(|s| s.id == site_id)
            .ok_or_else(|| Refused::UnknownSite(site_id.chars().take(64).collect()))?
            .clone();
        let service = self
            .config
            .services
            .iter()
            .find(|s| s.code == req.service)
            .ok_or_else(|| Refused::UnknownService(req.service.chars().take(16).collect()))?
            .clone();
        let now = (self.config.clock)();
        if !site.is_open(now) {
            return Err(Refused::Closed {
                site: site.id.clone(),
                opens: site.opens.format("%H:%M").to_string(),
            });
        }
        let identifiers = self.identifiers(req)?;
        let day = site.business_day(now);
        let key = (site.id.clone(), service.code.clone());
        let mut counter = match self.counters.get(&key) {
            Some(c) => *c,
            None => self.load_counter(&site.id, &service.code, day).await?,
        };
        let max = 10u32.pow(self.config.digits as u32) - 1;
        let number = counter.next(day, max);
        let id = uuid::Uuid::new_v4().to_string();
        let label = label(&service.prefix, number, self.config.digits);
        let created = v1::InteractionCreated {
            interaction: Some(v1::Interaction {
                id: id.clone(),
                channel: v1::Channel::Desk as i32,
                direction: v1::Direction::Inbound as i32,
                identifiers,
                queue_hint: service.queue.clone(),
                priority: service.priority,
                conversation_id: String::new(),
                subject: format!("{label} – {}", service.name),
                created_at: Some(prost_types::Timestamp {
                    seconds: now.timestamp(),
                    nanos: 0,
                }),
                attributes: HashMap::from([
                    ("desk.site".to_owned(), site.id.clone()),
                    ("desk.service".to_owned(), service.code.clone()),
                    ("desk.ticket".to_owned(), label.clone()),
                ]),
            }),
        };
        let row = ticket::ActiveModel {
            interaction_id: Set(id.clone()),
            site: Set(site.id.clone()),
            service: Set(service.code.clone()),
            day: Set(day.to_string()),
            number: Set(number as i32),
            label: Set(label.clone()),
            state: Set("waiting".into()),
            counter: Set(None),
            arrived_at: Set(now.timestamp_millis()),
        };
        let committed = async {
            let txn = self.db.begin().await?;
            ticket::Entity::insert(row)
                .exec_without_returning(&txn)
                .await?;
            centralino_store::outbox::enqueue(
                &txn,
                SERVICE,
                Exchange::Events,
                "interaction.desk.created",
                &new_envelope(SERVICE, &created),
            )
            .await?;
            let waiting = ticket::Entity::find()
                .filter(ticket::Column::Site.eq(&site.id))
                .filter(ticket::Column::Service.eq(&service.code))
                .filter(ticket::Column::Day.eq(day.to_string()))
                .filter(ticket::Column::State.eq("waiting"))
                .count(&txn)
                .await?;
            txn.commit().await?;
            Ok::<u64, StoreError>(waiting)
        }
        .await;
        match committed {
            Ok(position) => {
                self.counters.insert(key, counter);
                self.relay.notify_one();
                tracing::info!(site = %site.id, ticket = %label, "desk: ticket issued");
                Ok(TicketIssued {
                    id,
                    label,
                    service: service.code,
                    position,
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "desk: could not record a ticket");
                // Read the number back from the database next time.
                self.counters.remove(&key);
                Err(Refused::Unavailable)
            }
        }
    }

    /// The last number given out today, from the database (after a start).
    async fn load_counter(
        &self,
        site: &str,
        service: &str,
        day: NaiveDate,
    ) -> Result<DailyCounter, Refused> {
        let last: Option<Option<i32>> = ticket::Entity::find()
            .select_only()
            .column_as(ticket::Column::Number.max(), "last")
            .filter(ticket::Column::Site.eq(site))
            .filter(ticket::Column::Service.eq(service))
            .filter(ticket::Column::Day.eq(day.to_string()))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "desk: cannot read today's numbers");
                Refused::Unavailable
            })?;
        Ok(DailyCounter {
            day: Some(day),
            last: last.flatten().map_or(0, |n| n.max(0) as u32),
        })
    }

    fn identifiers(&self, req: &TicketRequest) -> Result<Vec<v1::CustomerIdentifier>, Refused> {
        let mut out = Vec::new();
        for (field, kind, wire, value) in [
            (
                "phone",
                IdentifierKind::Phone,
                v1::customer_identifier::Kind::Phone,
                &req.phone,
            ),
            (
                "codice_fiscale",
                IdentifierKind::CodiceFiscale,
                v1::customer_identifier::Kind::CodiceFiscale,
                &req.codice_fiscale,
            ),
            (
                "loyalty_card",
                IdentifierKind::LoyaltyCard,
                v1::customer_identifier::Kind::LoyaltyCard,
                &req.loyalty_card,
            ),
        ] {
            let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let normalized =
                self.config
                    .rules
                    .normalize(kind, value)
                    .map_err(|e| Refused::Invalid {
                        field,
                        message: format!("{field}: {e}"),
                    })?;
            out.push(v1::CustomerIdentifier {
                kind: wire as i32,
                value: normalized.value().to_owned(),
            });
        }
        Ok(out)
    }
}

async fn take_ticket(
    State(tx): State<mpsc::Sender<Issue>>,
    Path(site): Path<String>,
    Json(request): Json<TicketRequest>,
) -> Result<(StatusCode, Json<TicketIssued>), Refused> {
    let (reply, answer) = oneshot::channel();
    tx.send(Issue {
        site,
        request,
        reply,
    })
    .await
    .map_err(|_| Refused::Unavailable)?;
    let issued = answer.await.map_err(|_| Refused::Unavailable)??;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Starts the HTTP API, the issuing task and the outbox relay. Run
/// [`DeskMigrator`] first.
pub async fn start(
    config: DeskConfig,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Desk, DeskError> {
    config.validate().map_err(DeskError::Config)?;
    let leadership = centralino_store::leader::acquire(&db, SERVICE, LOCK_KEY, || {
        tracing::info!("another desk adapter is active; standing by until it stops");
    })
    .await?;
    let lost = leadership.lost();
    let relay = OutboxRelay::new(db.clone(), bus, SERVICE);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| DeskError::Listen(config.listen, e))?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| DeskError::Listen(config.listen, e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (issue_tx, mut issue_rx) = mpsc::channel::<Issue>(256);
    let mut issuer = Issuer {
        config,
        db,
        relay: relay.waker(),
        counters: HashMap::new(),
    };
    let mut tasks = vec![tokio::spawn(async move {
        while let Some(Issue {
            site,
            request,
            reply,
        }) = issue_rx.recv().await
        {
            let _ = reply.send(issuer.issue(&site, &request).await);
        }
    })];
    let app = axum::Router::new()
        .route("/api/sites/{site}/tickets", post(take_ticket))
        .with_state(issue_tx);
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
    tracing::info!(listen = %http_addr, "desk: kiosk API listening");
    let task = leadership.supervise(shutdown, stop_tx, tasks);
    Ok(Desk {
        task,
        lost,
        http_addr,
    })
}
