//! The one task that changes desk state: issuing numbers, check-ins,
//! counters, tickets called by routing, recalls, no-shows. Each change is one
//! transaction with the events it publishes (outbox); the boards are rebuilt
//! from the database after it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Key, keys, new_envelope};
use centralino_domain::IdentifierKind;
use centralino_proto::v1;
use centralino_server::ApiError;
use centralino_store::StoreError;
use centralino_store::leader::Fence;
use centralino_ticketing::appointment::{CheckInError, Slot, check_in};
use centralino_ticketing::numbering::{DailyCounter, Site, label, shown};
use centralino_ticketing::ticket::{Recall, State, Ticket};
use chrono::{NaiveDate, TimeZone as _, Utc};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, Condition, DatabaseConnection, DatabaseTransaction,
    EntityTrait as _, IntoActiveModel as _, PaginatorTrait as _, QueryFilter as _, QueryOrder as _,
    QuerySelect as _, Set,
};
use tokio::sync::{Notify, mpsc, watch};

use crate::command::{Booking, Command, CounterAction, Identifiers};
use crate::entities::{appointment, counter, ticket};
use crate::view::{Board, BoardCall, ServiceWaiting, TicketView};
use crate::{DeskConfig, SERVICE, ServiceConfig};

/// One event to publish with a change.
struct Outgoing {
    key: Key,
    envelope: centralino_bus::Envelope,
}

pub(crate) struct Actor {
    cfg: DeskConfig,
    db: DatabaseConnection,
    /// Every write transaction checks this instance still leads.
    fence: Fence,
    relay: Arc<Notify>,
    numbers: HashMap<(String, String), DailyCounter>,
    /// agent → (site, counter).
    counters: HashMap<String, (String, String)>,
    /// Routing's latest place and estimate of each waiting ticket.
    /// (position, estimate, when seen); entries not refreshed for 10 minutes
    /// are dropped (a ticket no longer waiting gets no more positions).
    waits: HashMap<String, (u64, Option<u64>, i64)>,
    /// Routing's latest (position, estimate) seen per queue, for new tickets.
    queue_estimates: HashMap<String, (u64, u64)>,
    boards: HashMap<String, watch::Sender<Arc<Board>>>,
    /// Each site's business day when its board was last rebuilt.
    days: HashMap<String, String>,
    /// Sites whose board changed since the last rebuild, and when that was.
    dirty: std::collections::BTreeSet<String>,
    flushed: std::time::Instant,
}

fn store(e: impl Into<StoreError>) -> ApiError {
    ApiError::from(e.into())
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1_000),
        nanos: i32::try_from(ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
    }
}

/// The row's state name for a ticket state.
fn state_name(s: &State) -> &'static str {
    match s {
        State::Waiting => "waiting",
        State::Called { .. } => "called",
        State::Serving { .. } => "serving",
        State::Served { .. } => "served",
        State::NoShow => "no-show",
        State::Closed => "closed",
    }
}

/// The ticket rules' view of a row.
fn ticket_of(row: &ticket::Model) -> Ticket {
    let counter = row.counter.clone().unwrap_or_default();
    let at = row.called_at.unwrap_or(row.arrived_at);
    let state = match row.state.as_str() {
        "called" => State::Called {
            counter,
            at,
            recalls: u32::try_from(row.recalls).unwrap_or(0),
        },
        "serving" => State::Serving { counter, since: at },
        "served" => State::Served {
            disposition: row.disposition.clone(),
        },
        "no-show" => State::NoShow,
        "closed" => State::Closed,
        _ => State::Waiting,
    };
    Ticket {
        service: current_service(row).to_owned(),
        arrived_at: row.arrived_at,
        state,
    }
}

/// The service a ticket waits for now: the issuing one unless transferred.
fn current_service(row: &ticket::Model) -> &str {
    if row.moved_to.is_empty() {
        &row.service
    } else {
        &row.moved_to
    }
}

/// Writes the ticket's state back into the row.
fn apply(row: &mut ticket::Model, t: &Ticket) {
    row.state = state_name(&t.state).to_owned();
    // The issuing service keeps the number; a transfer is remembered apart.
    if t.service == row.service {
        row.moved_to.clear();
    } else {
        row.moved_to.clone_from(&t.service);
    }
    match &t.state {
        State::Waiting => {
            row.counter = None;
            row.agent = None;
            row.called_at = None;
            row.recalls = 0;
        }
        State::Called {
            counter,
            at,
            recalls,
        } => {
            row.counter = Some(counter.clone());
            row.called_at = Some(*at);
            row.recalls = i32::try_from(*recalls).unwrap_or(i32::MAX);
        }
        State::Serving { counter, .. } => row.counter = Some(counter.clone()),
        State::Served { disposition } => disposition.clone_into(&mut row.disposition),
        State::NoShow | State::Closed => {}
    }
}

fn desk_event(
    kind: v1::desk_ticket_event::Kind,
    row: &ticket::Model,
    now: i64,
) -> (v1::DeskTicketEvent, Key) {
    let key = keys::desk(kind);
    (
        v1::DeskTicketEvent {
            kind: kind as i32,
            interaction_id: row.interaction_id.clone(),
            site: row.site.clone(),
            service: current_service(row).to_owned(),
            label: row.label.clone(),
            counter: row.counter.clone().unwrap_or_default(),
            agent: row.agent.clone().unwrap_or_default(),
            recalls: u32::try_from(row.recalls).unwrap_or(0),
            disposition: row.disposition.clone(),
            at: Some(ts(now)),
        },
        key,
    )
}

fn outgoing_event(kind: v1::desk_ticket_event::Kind, row: &ticket::Model, now: i64) -> Outgoing {
    let (event, key) = desk_event(kind, row, now);
    Outgoing {
        key,
        envelope: new_envelope(SERVICE, &event),
    }
}

/// The events of a no-show: the desk's, and the abandonment routing and
/// history know (the agent holding it is told the customer left).
fn no_show_events(row: &ticket::Model, now: i64) -> Vec<Outgoing> {
    vec![
        outgoing_event(v1::desk_ticket_event::Kind::NoShow, row, now),
        abandoned(row, "no-show"),
    ]
}

/// The customer is gone (`no-show`, `site-closed`).
fn abandoned(row: &ticket::Model, reason: &str) -> Outgoing {
    Outgoing {
        key: keys::interaction(v1::Channel::Desk, keys::Interaction::Abandoned),
        envelope: new_envelope(
            SERVICE,
            &v1::InteractionAbandoned {
                interaction_id: row.interaction_id.clone(),
                channel: v1::Channel::Desk as i32,
                reason: reason.to_owned(),
            },
        ),
    }
}

/// Letters and digits that cannot be misread (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

fn new_code() -> String {
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(6)
        .map(|b| char::from(CODE_ALPHABET[usize::from(*b) % CODE_ALPHABET.len()]))
        .collect()
}

impl Actor {
    /// Reads the counters from the database and builds the boards.
    pub(crate) async fn load(
        cfg: DeskConfig,
        db: DatabaseConnection,
        fence: Fence,
        relay: Arc<Notify>,
    ) -> Result<(Self, HashMap<String, watch::Receiver<Arc<Board>>>), StoreError> {
        let counters = counter::Entity::find()
            .all(&db)
            .await?
            .into_iter()
            .map(|c| (c.agent, (c.site, c.counter)))
            .collect();
        let mut boards = HashMap::new();
        let mut receivers = HashMap::new();
        for site in &cfg.sites {
            let (tx, rx) = watch::channel(Arc::new(Board {
                site: site.id.clone(),
                ..Board::default()
            }));
            boards.insert(site.id.clone(), tx);
            receivers.insert(site.id.clone(), rx);
        }
        let mut me = Self {
            cfg,
            db,
            fence,
            relay,
            numbers: HashMap::new(),
            counters,
            waits: HashMap::new(),
            queue_estimates: HashMap::new(),
            boards,
            days: HashMap::new(),
            dirty: std::collections::BTreeSet::new(),
            flushed: std::time::Instant::now(),
        };
        let sites: Vec<String> = me.cfg.sites.iter().map(|s| s.id.clone()).collect();
        for site in sites {
            me.refresh_board(&site).await?;
        }
        Ok((me, receivers))
    }

    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut stop => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                _ = tick.tick() => {
                    if let Err(e) = self.expire().await {
                        tracing::warn!(error = %e, "desk: cannot check called tickets for no-shows");
                    }
                }
            }
            // Boards are rebuilt once the burst of changes is through (or at
            // least every 200 ms under a steady load), not after each one.
            if !self.dirty.is_empty()
                && (rx.is_empty() || self.flushed.elapsed() >= Duration::from_millis(200))
            {
                self.flush_boards().await;
            }
        }
        // Dropping the boards ends the display streams.
    }

    fn now(&self) -> i64 {
        (self.cfg.clock)().timestamp_millis()
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Issue {
                site,
                service,
                who,
                reply,
            } => {
                let r = self.issue(&site, &service, &who, None).await;
                let _ = reply.send(r);
            }
            Command::CheckIn { site, code, reply } => {
                let _ = reply.send(self.check_in(&site, &code).await);
            }
            Command::Book { booking, reply } => {
                let _ = reply.send(self.book(booking).await);
            }
            Command::OpenCounter {
                agent,
                site,
                counter,
                reply,
            } => {
                let _ = reply.send(self.open_counter(&agent, &site, &counter).await);
            }
            Command::CloseCounter { agent, reply } => {
                let _ = reply.send(self.close_counter(&agent).await);
            }
            Command::Counter {
                agent,
                id,
                action,
                reply,
            } => {
                let _ = reply.send(self.counter_action(&agent, &id, action).await);
            }
            Command::Get { id, reply } => {
                let r = match self.find(&id).await {
                    Ok(Some(row)) => Ok(self.view(&row).await),
                    Ok(None) => Err(ApiError::NotFound(format!("ticket {id}"))),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Command::Waiting { site, reply } => {
                let _ = reply.send(self.waiting_by_service(&site).await.map_err(store));
            }
            Command::Routing { event, reply } => {
                let _ = reply.send(self.on_routing(event).await);
            }
        }
    }

    fn site(&self, id: &str) -> Result<Site, ApiError> {
        self.cfg
            .sites
            .iter()
            .find(|s| s.id == id)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("site `{}`", clip(id, 64))))
    }

    fn service(&self, code: &str) -> Result<ServiceConfig, ApiError> {
        self.cfg
            .services
            .iter()
            .find(|s| s.code == code)
            .cloned()
            .ok_or_else(|| ApiError::NotFound(format!("service `{}`", clip(code, 16))))
    }

    async fn find(&self, id: &str) -> Result<Option<ticket::Model>, ApiError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ApiError::invalid("interaction_id", "must be a UUID"));
        }
        ticket::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await
            .map_err(store)
    }

    fn identifiers(&self, who: &Identifiers) -> Result<Vec<v1::CustomerIdentifier>, ApiError> {
        let mut out = Vec::new();
        for (field, kind, wire, value) in [
            (
                "phone",
                IdentifierKind::Phone,
                v1::customer_identifier::Kind::Phone,
                &who.phone,
            ),
            (
                "codice_fiscale",
                IdentifierKind::CodiceFiscale,
                v1::customer_identifier::Kind::CodiceFiscale,
                &who.codice_fiscale,
            ),
            (
                "loyalty_card",
                IdentifierKind::LoyaltyCard,
                v1::customer_identifier::Kind::LoyaltyCard,
                &who.loyalty_card,
            ),
        ] {
            let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let normalized = self
                .cfg
                .rules
                .normalize(kind, value)
                .map_err(|e| ApiError::invalid(field, e.to_string()))?;
            out.push(v1::CustomerIdentifier {
                kind: wire as i32,
                value: normalized.value().to_owned(),
            });
        }
        Ok(out)
    }

    fn check_open(&self, site: &Site) -> Result<(), ApiError> {
        if site.is_open((self.cfg.clock)()) {
            Ok(())
        } else {
            Err(ApiError::FailedPrecondition(format!(
                "site `{}` is closed; it opens at {}",
                site.id,
                site.opens.format("%H:%M")
            )))
        }
    }

    /// Gives out the next number and records the ticket (and, for a
    /// check-in, the appointment's) with its creation event.
    async fn issue(
        &mut self,
        site_id: &str,
        service_code: &str,
        who: &Identifiers,
        booked: Option<appointment::Model>,
    ) -> Result<TicketView, ApiError> {
        let site = self.site(site_id)?;
        let service = self.service(service_code)?;
        self.check_open(&site)?;
        let identifiers = match &booked {
            Some(a) => stored_identifiers(&a.identifiers),
            None => self.identifiers(who)?,
        };
        let now_utc = (self.cfg.clock)();
        let now = now_utc.timestamp_millis();
        let day = site.business_day(now_utc);
        let key = (site.id.clone(), service.code.clone());
        let mut numbers = match self.numbers.get(&key) {
            Some(c) => *c,
            None => self.load_counter(&site.id, &service.code, day).await?,
        };
        // The day's sequence keeps the row unique; the ticket shows it
        // modulo the digits (999 is followed by 1).
        let number = numbers.next(day);
        let id = uuid::Uuid::new_v4().to_string();
        let label = label(
            &service.prefix,
            shown(number, self.cfg.digits),
            self.cfg.digits,
        );
        let queue = service.queue_for(&site.id);
        let mut attributes = HashMap::from([
            ("desk.site".to_owned(), site.id.clone()),
            ("desk.service".to_owned(), service.code.clone()),
            ("desk.ticket".to_owned(), label.clone()),
        ]);
        let mut priority = service.priority;
        if let Some(a) = &booked {
            priority = priority
                .saturating_add(self.cfg.appointment_priority)
                .min(100);
            attributes.insert("desk.appointment".into(), a.id.clone());
        }
        let notify_phone = self.cfg.notify.as_ref().and_then(|_| {
            identifiers
                .iter()
                .find(|i| i.kind == v1::customer_identifier::Kind::Phone as i32)
                .map(|i| i.value.clone())
        });
        let created = v1::InteractionCreated {
            interaction: Some(v1::Interaction {
                id: id.clone(),
                channel: v1::Channel::Desk as i32,
                direction: v1::Direction::Inbound as i32,
                identifiers,
                queue_hint: queue.clone(),
                priority,
                conversation_id: String::new(),
                subject: format!("{label} – {}", service.name),
                created_at: Some(ts(now)),
                attributes,
            }),
        };
        let row = ticket::Model {
            interaction_id: id.clone(),
            site: site.id.clone(),
            service: service.code.clone(),
            day: day.to_string(),
            number: i32::try_from(number).unwrap_or(i32::MAX),
            label,
            state: "waiting".into(),
            counter: None,
            arrived_at: now,
            agent: None,
            called_at: None,
            recalls: 0,
            disposition: String::new(),
            appointment_id: booked.as_ref().map(|a| a.id.clone()),
            moved_to: String::new(),
            notify_phone,
            notified: 0,
        };
        let out = vec![Outgoing {
            key: keys::interaction(v1::Channel::Desk, keys::Interaction::Created),
            envelope: new_envelope(SERVICE, &created),
        }];
        let committed = async {
            let txn = self.fence.begin(&self.db).await?;
            ticket::Entity::insert(row.clone().into_active_model())
                .exec_without_returning(&txn)
                .await?;
            if let Some(a) = booked {
                let mut a = a.into_active_model();
                a.checked_in_at = Set(Some(now));
                a.interaction_id = Set(Some(id.clone()));
                a.update(&txn).await?;
            }
            enqueue(&txn, out).await?;
            txn.commit().await?;
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(e) = committed {
            // Read the number back from the database next time.
            self.numbers.remove(&key);
            return Err(store(e));
        }
        self.numbers.insert(key, numbers);
        self.relay.notify_one();
        tracing::info!(site = %site.id, ticket = %row.label, "desk: ticket issued");
        self.dirty.insert(site.id.clone());
        let mut view = self.view(&row).await;
        if view.estimated_wait_secs.is_none()
            && let Some((pos, est)) = self.queue_estimates.get(&queue)
        {
            // Routing has not placed it yet: scale the queue's latest estimate.
            let per = est / (*pos).max(1);
            view.estimated_wait_secs = Some(per.saturating_mul(view.position) / 1_000);
        }
        if let Some(addr) = self.cfg.printers.get(&site.id) {
            let issued = now_utc
                .with_timezone(&site.tz)
                .format("%d/%m/%Y %H:%M")
                .to_string();
            let bytes = crate::printer::render(&crate::printer::Printout {
                label: &view.label,
                service: &service.name,
                site: &site.id,
                position: view.position,
                wait_mins: view.estimated_wait_secs.map(|s| s.div_ceil(60)),
                issued: &issued,
            });
            crate::printer::print(*addr, site.id.clone(), bytes);
        }
        Ok(view)
    }

    /// The last number given out today, from the database (after a start).
    async fn load_counter(
        &self,
        site: &str,
        service: &str,
        day: NaiveDate,
    ) -> Result<DailyCounter, ApiError> {
        let last: Option<Option<i32>> = ticket::Entity::find()
            .select_only()
            .column_as(ticket::Column::Number.max(), "last")
            .filter(ticket::Column::Site.eq(site))
            .filter(ticket::Column::Service.eq(service))
            .filter(ticket::Column::Day.eq(day.to_string()))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(store)?;
        Ok(DailyCounter {
            day: Some(day),
            last: last.flatten().map_or(0, |n| u32::try_from(n).unwrap_or(0)),
        })
    }

    async fn check_in(&mut self, site_id: &str, code: &str) -> Result<TicketView, ApiError> {
        let site = self.site(site_id)?;
        let code = code.trim().to_ascii_uppercase();
        if code.is_empty() || code.len() > 16 {
            return Err(ApiError::invalid("code", "must be 1–16 characters"));
        }
        let booked = appointment::Entity::find()
            .filter(appointment::Column::Site.eq(&site.id))
            .filter(appointment::Column::Code.eq(&code))
            .one(&self.db)
            .await
            .map_err(store)?
            .ok_or_else(|| ApiError::NotFound(format!("appointment `{code}` at this site")))?;
        if let Some(id) = &booked.interaction_id {
            let label = self.find(id).await?.map(|t| t.label).unwrap_or_default();
            return Err(ApiError::FailedPrecondition(format!(
                "appointment `{code}` is already checked in (ticket {label})"
            )));
        }
        let slot = Slot {
            starts_at: booked.starts_at,
            ends_at: booked.ends_at,
        };
        check_in(&slot, &self.cfg.check_in, self.now()).map_err(|e| match e {
            CheckInError::TooEarly { .. } | CheckInError::Missed => {
                ApiError::FailedPrecondition(e.to_string())
            }
        })?;
        let service = booked.service.clone();
        self.issue(&site.id, &service, &Identifiers::default(), Some(booked))
            .await
    }

    async fn book(&mut self, b: Booking) -> Result<v1::Appointment, ApiError> {
        let site = self.site(&b.site)?;
        let service = self.service(&b.service)?;
        if b.ends_at <= b.starts_at {
            return Err(ApiError::invalid("ends_at", "must be after starts_at"));
        }
        if b.ends_at - b.starts_at > 24 * 3_600_000 {
            return Err(ApiError::invalid("ends_at", "a slot lasts at most a day"));
        }
        if b.ends_at <= self.now() {
            return Err(ApiError::invalid("starts_at", "the slot is in the past"));
        }
        let identifiers = self.identifiers(&b.who)?;
        let stored = serde_json::to_string(
            &identifiers
                .iter()
                .map(|i| (i.kind, i.value.clone()))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        for _ in 0..8 {
            let code = new_code();
            let taken = appointment::Entity::find()
                .filter(appointment::Column::Site.eq(&site.id))
                .filter(appointment::Column::Code.eq(&code))
                .count(&self.db)
                .await
                .map_err(store)?;
            if taken > 0 {
                continue;
            }
            let txn = self.fence.begin(&self.db).await.map_err(store)?;
            appointment::Entity::insert(
                appointment::Model {
                    id: id.clone(),
                    site: site.id.clone(),
                    code: code.clone(),
                    service: service.code.clone(),
                    starts_at: b.starts_at,
                    ends_at: b.ends_at,
                    identifiers: stored,
                    interaction_id: None,
                    checked_in_at: None,
                }
                .into_active_model(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(store)?;
            txn.commit().await.map_err(store)?;
            return Ok(v1::Appointment {
                id,
                code,
                site: site.id,
                service: service.code,
                starts_at: Some(ts(b.starts_at)),
                ends_at: Some(ts(b.ends_at)),
            });
        }
        Err(ApiError::Unavailable("appointment codes".into()))
    }

    async fn open_counter(
        &mut self,
        agent: &str,
        site: &str,
        name: &str,
    ) -> Result<v1::CounterInfo, ApiError> {
        let site = self.site(site)?;
        let known = self
            .cfg
            .counters
            .get(&site.id)
            .is_some_and(|cs| cs.iter().any(|c| c == name));
        if !known {
            return Err(ApiError::NotFound(format!(
                "counter `{}` at site `{}`",
                clip(name, 16),
                site.id
            )));
        }
        if let Some((holder, _)) = self
            .counters
            .iter()
            .find(|(a, (s, c))| a.as_str() != agent && *s == site.id && c == name)
        {
            return Err(ApiError::FailedPrecondition(format!(
                "counter `{name}` at site `{}` is open by {holder}; they must close it first",
                site.id
            )));
        }
        let row = counter::Model {
            agent: agent.to_owned(),
            site: site.id.clone(),
            counter: name.to_owned(),
            opened_at: self.now(),
        };
        let txn = self.fence.begin(&self.db).await.map_err(store)?;
        counter::Entity::delete_by_id(agent.to_owned())
            .exec(&txn)
            .await
            .map_err(store)?;
        counter::Entity::insert(row.into_active_model())
            .exec_without_returning(&txn)
            .await
            .map_err(store)?;
        txn.commit().await.map_err(store)?;
        self.counters
            .insert(agent.to_owned(), (site.id.clone(), name.to_owned()));
        tracing::info!(site = %site.id, counter = name, "desk: counter opened");
        Ok(v1::CounterInfo {
            site: site.id,
            counter: name.to_owned(),
            agent: agent.to_owned(),
            open: true,
        })
    }

    async fn close_counter(&mut self, agent: &str) -> Result<v1::CounterInfo, ApiError> {
        let Some((site, counter)) = self.counters.get(agent).cloned() else {
            return Err(ApiError::FailedPrecondition(
                "no counter is open by you".into(),
            ));
        };
        let txn = self.fence.begin(&self.db).await.map_err(store)?;
        counter::Entity::delete_by_id(agent.to_owned())
            .exec(&txn)
            .await
            .map_err(store)?;
        txn.commit().await.map_err(store)?;
        self.counters.remove(agent);
        Ok(v1::CounterInfo {
            site,
            counter,
            agent: agent.to_owned(),
            open: false,
        })
    }

    async fn counter_action(
        &mut self,
        agent: &str,
        id: &str,
        action: CounterAction,
    ) -> Result<TicketView, ApiError> {
        let mut row = self
            .find(id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("ticket {id}")))?;
        let (site, counter) = self.counters.get(agent).cloned().ok_or_else(|| {
            ApiError::FailedPrecondition("open a counter first (OpenCounter)".into())
        })?;
        if row.site != site {
            return Err(ApiError::FailedPrecondition(format!(
                "ticket {} is at site `{}`, your counter at `{site}`",
                row.label, row.site
            )));
        }
        // The agent who called it may act on it from another counter too.
        let counter = match &row.counter {
            Some(c) if row.agent.as_deref() == Some(agent) => c.clone(),
            _ => counter,
        };
        let mut t = ticket_of(&row);
        let now = self.now();
        let refused = |e: centralino_ticketing::ticket::TicketError| {
            ApiError::FailedPrecondition(format!("ticket {}: {e}", row.label))
        };
        let kind = match action {
            CounterAction::Recall => match t.recall(&counter, &self.cfg.tickets, now) {
                Ok(Recall::Again(_)) => v1::desk_ticket_event::Kind::Recalled,
                Ok(Recall::NoShow) => v1::desk_ticket_event::Kind::NoShow,
                Err(e) => return Err(refused(e)),
            },
            CounterAction::NoShow => {
                t.no_show(&counter).map_err(refused)?;
                v1::desk_ticket_event::Kind::NoShow
            }
            CounterAction::Start => {
                t.start(&counter, now).map_err(refused)?;
                v1::desk_ticket_event::Kind::Started
            }
        };
        apply(&mut row, &t);
        self.commit_change(&row, kind, now).await.map_err(store)?;
        Ok(self.view(&row).await)
    }

    /// Writes the row and its events, then refreshes the board.
    async fn commit_change(
        &mut self,
        row: &ticket::Model,
        kind: v1::desk_ticket_event::Kind,
        now: i64,
    ) -> Result<(), StoreError> {
        let out = match kind {
            v1::desk_ticket_event::Kind::NoShow => no_show_events(row, now),
            v1::desk_ticket_event::Kind::Unspecified => Vec::new(),
            k => vec![outgoing_event(k, row, now)],
        };
        self.write(row, out).await?;
        tracing::info!(
            site = %row.site,
            ticket = %row.label,
            state = %row.state,
            counter = row.counter.as_deref().unwrap_or(""),
            "desk: ticket changed"
        );
        // Committed; the board follows (a board that cannot be rebuilt is
        // not the change's failure).
        self.dirty.insert(row.site.clone());
        Ok(())
    }

    /// Updates the row and queues its events, in one transaction.
    async fn write(&self, row: &ticket::Model, out: Vec<Outgoing>) -> Result<(), StoreError> {
        let txn = self.fence.begin(&self.db).await?;
        ticket::Entity::update(row.clone().into_active_model().reset_all())
            .exec(&txn)
            .await?;
        enqueue(&txn, out).await?;
        txn.commit().await?;
        self.relay.notify_one();
        Ok(())
    }

    /// The event's ticket while it is still open (its place is forgotten).
    async fn open_ticket(
        &mut self,
        id: &str,
    ) -> Result<Option<(ticket::Model, Ticket)>, StoreError> {
        self.waits.remove(id);
        let Some(row) = self.routing_row(id).await? else {
            return Ok(None);
        };
        let t = ticket_of(&row);
        Ok(t.open().then_some((row, t)))
    }

    /// Called tickets nobody started in time become no-shows; tickets still
    /// open from an earlier business day are closed; stale places are dropped.
    async fn expire(&mut self) -> Result<(), StoreError> {
        let now = self.now();
        self.waits.retain(|_, (_, _, at)| now - *at < 600_000);
        self.close_past_days().await?;
        let due = ticket::Entity::find()
            .filter(ticket::Column::State.eq("called"))
            .filter(ticket::Column::CalledAt.lte(now - self.cfg.tickets.no_show_after_ms))
            .limit(100)
            .all(&self.db)
            .await?;
        for mut row in due {
            let mut t = ticket_of(&row);
            if t.expire(&self.cfg.tickets, now) {
                apply(&mut row, &t);
                self.commit_change(&row, v1::desk_ticket_event::Kind::NoShow, now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Tickets of an earlier business day still waiting or called: the site
    /// closed without serving them. They are closed and abandoned (routing
    /// drops them, or tells the agent holding one that the customer left).
    async fn close_past_days(&mut self) -> Result<(), StoreError> {
        let now_utc = (self.cfg.clock)();
        let today: Vec<(String, String)> = self
            .cfg
            .sites
            .iter()
            .map(|s| (s.id.clone(), s.business_day(now_utc).to_string()))
            .collect();
        for (site, day) in today {
            let new_day = self.days.get(&site) != Some(&day);
            let stale = ticket::Entity::find()
                .filter(ticket::Column::Site.eq(&site))
                .filter(ticket::Column::Day.lt(&day))
                .filter(ticket::Column::State.is_in(["waiting", "called"]))
                .limit(100)
                .all(&self.db)
                .await?;
            for mut row in stale {
                self.waits.remove(&row.interaction_id);
                row.state = "closed".into();
                let out = vec![abandoned(&row, "site-closed")];
                self.write(&row, out).await?;
                tracing::info!(site = %row.site, ticket = %row.label, "desk: closed with the day");
            }
            if new_day {
                // Yesterday's calls leave the board at midnight.
                self.dirty.insert(site.clone());
            }
        }
        Ok(())
    }

    async fn on_routing(&mut self, e: v1::RoutingEvent) -> Result<(), StoreError> {
        use v1::routing_event::Kind;

        match e.kind() {
            Kind::Queued | Kind::Position => {
                if e.position > 0 {
                    let now = self.now();
                    self.waits.insert(
                        e.interaction_id.clone(),
                        (e.position, e.estimated_wait_ms, now),
                    );
                    if let Some(est) = e.estimated_wait_ms {
                        self.queue_estimates
                            .insert(e.queue.clone(), (e.position, est));
                    }
                    self.notify_turn(&e).await?;
                }
                Ok(())
            }
            Kind::Assigned => self.assigned(&e).await,
            Kind::Requeued | Kind::Overflowed => self.requeued(&e).await,
            Kind::Completed => self.completed(&e).await,
            Kind::Closed => self.closed(&e).await,
            Kind::Abandoned => {
                self.waits.remove(&e.interaction_id);
                Ok(())
            }
            Kind::Offered | Kind::Unspecified => Ok(()),
        }
    }

    /// Texts the customer once when routing puts their ticket near the head
    /// of the line (if they gave a phone and the site's notice is on).
    async fn notify_turn(&mut self, e: &v1::RoutingEvent) -> Result<(), StoreError> {
        let Some(notice) = &self.cfg.notify else {
            return Ok(());
        };
        if e.position > notice.at_position {
            return Ok(());
        }
        let Some(mut row) = self.routing_row(&e.interaction_id).await? else {
            return Ok(());
        };
        let Some(phone) = row.notify_phone.clone() else {
            return Ok(());
        };
        if row.notified != 0 || row.state != "waiting" {
            return Ok(());
        }
        let body = notice
            .text
            .replace("{ticket}", &row.label)
            .replace("{site}", &row.site)
            .replace("{position}", &e.position.to_string());
        let send = v1::SendMessage {
            message_id: uuid::Uuid::new_v4().to_string(),
            channel: v1::Channel::Sms as i32,
            body,
            recipient: phone,
            purpose: "transactional".into(),
            ..Default::default()
        };
        row.notified = 1;
        let out = vec![Outgoing {
            key: keys::send(v1::Channel::Sms),
            envelope: new_envelope(SERVICE, &send),
        }];
        self.write(&row, out).await?;
        tracing::info!(site = %row.site, ticket = %row.label, "desk: turn notice sent");
        Ok(())
    }

    async fn routing_row(&self, id: &str) -> Result<Option<ticket::Model>, StoreError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Ok(None);
        }
        Ok(ticket::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?)
    }

    /// Routing gave the ticket to an agent: it is called to their counter.
    async fn assigned(&mut self, e: &v1::RoutingEvent) -> Result<(), StoreError> {
        self.waits.remove(&e.interaction_id);
        let Some(mut row) = self.routing_row(&e.interaction_id).await? else {
            return Ok(());
        };
        let place = self.counters.get(&e.agent).cloned();
        let counter = match place {
            Some((site, counter)) if site == row.site => counter,
            other => {
                let reason = if other.is_some() {
                    "other-site"
                } else {
                    "no-counter"
                };
                tracing::warn!(
                    ticket = %row.label,
                    reason,
                    "desk: the assigned agent has no counter at the ticket's site"
                );
                return self.not_reached(&row, &e.agent, reason).await;
            }
        };
        let mut t = ticket_of(&row);
        match &t.state {
            State::Called { counter: c, .. } | State::Serving { counter: c, .. }
                if *c == counter =>
            {
                return Ok(()); // a repeated event
            }
            State::Waiting => {}
            State::Called { .. } => {
                // Routing re-assigned it after a requeue we have not seen yet.
                t.state = State::Waiting;
            }
            // Being served, or finished: a stale assignment changes nothing.
            _ => return Ok(()),
        }
        let now = self.now();
        if t.call(&counter, now).is_err() {
            return Ok(());
        }
        apply(&mut row, &t);
        row.agent = Some(e.agent.clone());
        self.commit_change(&row, v1::desk_ticket_event::Kind::Called, now)
            .await
    }

    async fn not_reached(
        &mut self,
        row: &ticket::Model,
        agent: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let txn = self.fence.begin(&self.db).await?;
        enqueue(
            &txn,
            vec![Outgoing {
                key: keys::agent_not_reached(),
                envelope: new_envelope(
                    SERVICE,
                    &v1::AgentNotReached {
                        interaction_id: row.interaction_id.clone(),
                        agent: agent.to_owned(),
                        reason: reason.to_owned(),
                    },
                ),
            }],
        )
        .await?;
        txn.commit().await?;
        self.relay.notify_one();
        Ok(())
    }

    /// Back in line: by a transfer (maybe to another service) or because the
    /// agent left. The ticket keeps its number and its place.
    async fn requeued(&mut self, e: &v1::RoutingEvent) -> Result<(), StoreError> {
        if e.position > 0 {
            let now = self.now();
            self.waits.insert(
                e.interaction_id.clone(),
                (e.position, e.estimated_wait_ms, now),
            );
        }
        let Some(mut row) = self.routing_row(&e.interaction_id).await? else {
            return Ok(());
        };
        // The ticket's own service when its queue is the one (services may
        // share a queue), else the service whose queue it is now in.
        let own = current_service(&row).to_owned();
        let own_queue = self
            .cfg
            .services
            .iter()
            .find(|s| s.code == own)
            .map(|s| s.queue_for(&row.site));
        let service = if own_queue.as_deref() == Some(e.queue.as_str()) {
            own
        } else {
            self.cfg
                .services
                .iter()
                .find(|s| s.queue_for(&row.site) == e.queue)
                .map_or(own, |s| s.code.clone())
        };
        let mut t = ticket_of(&row);
        let moved = service != current_service(&row);
        if matches!(t.state, State::Waiting) && !moved {
            return Ok(());
        }
        if t.transfer(&service).is_err() {
            return Ok(());
        }
        apply(&mut row, &t);
        let kind = if moved {
            v1::desk_ticket_event::Kind::Transferred
        } else {
            v1::desk_ticket_event::Kind::Unspecified
        };
        let now = self.now();
        self.commit_change(&row, kind, now).await
    }

    async fn completed(&mut self, e: &v1::RoutingEvent) -> Result<(), StoreError> {
        let Some((mut row, mut t)) = self.open_ticket(&e.interaction_id).await? else {
            return Ok(());
        };
        let now = self.now();
        let counter = row.counter.clone().unwrap_or_default();
        if matches!(t.state, State::Called { .. }) {
            // Finished without pressing "start": the customer was there.
            let _ = t.start(&counter, now);
        }
        if t.finish(&counter, &e.disposition).is_err() {
            t.state = State::Served {
                disposition: e.disposition.clone(),
            };
        }
        apply(&mut row, &t);
        self.commit_change(&row, v1::desk_ticket_event::Kind::Served, now)
            .await
    }

    async fn closed(&mut self, e: &v1::RoutingEvent) -> Result<(), StoreError> {
        let Some((mut row, mut t)) = self.open_ticket(&e.interaction_id).await? else {
            return Ok(());
        };
        t.state = State::Closed;
        apply(&mut row, &t);
        let now = self.now();
        self.commit_change(&row, v1::desk_ticket_event::Kind::Unspecified, now)
            .await
    }

    async fn position(&self, row: &ticket::Model) -> Result<u64, StoreError> {
        if row.state != "waiting" {
            return Ok(0);
        }
        if let Some((p, _, _)) = self.waits.get(&row.interaction_id) {
            return Ok(*p);
        }
        // Until routing says, count who goes first in its queue: a higher
        // priority (booked customers, when that raises it), then who came first.
        let service = current_service(row);
        let base = self
            .cfg
            .services
            .iter()
            .find(|s| s.code == service)
            .map_or(0, |s| s.priority);
        let booked_first = base.saturating_add(self.cfg.appointment_priority).min(100) > base;
        let earlier = ticket::Column::ArrivedAt.lt(row.arrived_at);
        let same_class = if row.appointment_id.is_some() {
            ticket::Column::AppointmentId.is_not_null()
        } else {
            ticket::Column::AppointmentId.is_null()
        };
        let ahead_of_me = match (booked_first, row.appointment_id.is_some()) {
            (false, _) => Condition::all().add(earlier),
            (true, true) => Condition::all().add(earlier).add(same_class),
            (true, false) => Condition::any()
                .add(ticket::Column::AppointmentId.is_not_null())
                .add(earlier),
        };
        let ahead = ticket::Entity::find()
            .filter(ticket::Column::Site.eq(&row.site))
            .filter(ticket::Column::Day.eq(&row.day))
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(ticket::Column::Service.eq(service))
                            .add(ticket::Column::MovedTo.eq("")),
                    )
                    .add(ticket::Column::MovedTo.eq(service)),
            )
            .filter(ticket::Column::State.eq("waiting"))
            .filter(ahead_of_me)
            .count(&self.db)
            .await?;
        Ok(ahead + 1)
    }

    async fn view(&self, row: &ticket::Model) -> TicketView {
        let position = self.position(row).await.unwrap_or(0);
        let estimated_wait_secs = self
            .waits
            .get(&row.interaction_id)
            .and_then(|(_, est, _)| *est)
            .map(|ms| ms / 1_000);
        TicketView {
            id: row.interaction_id.clone(),
            site: row.site.clone(),
            service: current_service(row).to_owned(),
            label: row.label.clone(),
            state: row.state.clone(),
            counter: row.counter.clone(),
            recalls: u32::try_from(row.recalls).unwrap_or(0),
            position,
            estimated_wait_secs,
            issued_at: Utc
                .timestamp_millis_opt(row.arrived_at)
                .single()
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            disposition: row.disposition.clone(),
        }
    }

    /// Today's waiting tickets of a site, by the service they wait for.
    async fn waiting_by_service(&self, site: &str) -> Result<HashMap<String, u64>, StoreError> {
        let Some(day) = self
            .cfg
            .sites
            .iter()
            .find(|s| s.id == site)
            .map(|s| s.business_day((self.cfg.clock)()).to_string())
        else {
            return Ok(HashMap::new());
        };
        let rows: Vec<(String, String, i64)> = ticket::Entity::find()
            .select_only()
            .column(ticket::Column::Service)
            .column(ticket::Column::MovedTo)
            .column_as(ticket::Column::InteractionId.count(), "n")
            .filter(ticket::Column::Site.eq(site))
            .filter(ticket::Column::Day.eq(day))
            .filter(ticket::Column::State.eq("waiting"))
            .group_by(ticket::Column::Service)
            .group_by(ticket::Column::MovedTo)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out = HashMap::new();
        for (service, moved_to, n) in rows {
            let current = if moved_to.is_empty() {
                service
            } else {
                moved_to
            };
            *out.entry(current).or_default() += u64::try_from(n).unwrap_or(0);
        }
        Ok(out)
    }

    /// Rebuilds the boards that changed.
    async fn flush_boards(&mut self) {
        self.flushed = std::time::Instant::now();
        for site in std::mem::take(&mut self.dirty) {
            self.refresh_board_logged(&site).await;
        }
    }

    async fn refresh_board_logged(&mut self, site: &str) {
        if let Err(e) = self.refresh_board(site).await {
            tracing::warn!(error = %e, "desk: cannot refresh the board");
        }
    }

    /// Rebuilds a site's board from the database: today's latest calls and
    /// the waiting count of each service.
    async fn refresh_board(&mut self, site_id: &str) -> Result<(), StoreError> {
        let Some(site) = self.cfg.sites.iter().find(|s| s.id == site_id) else {
            return Ok(());
        };
        let day = site.business_day((self.cfg.clock)()).to_string();
        self.days.insert(site_id.to_owned(), day.clone());
        let calls = ticket::Entity::find()
            .filter(ticket::Column::Site.eq(site_id))
            .filter(ticket::Column::Day.eq(&day))
            .filter(ticket::Column::State.is_in(["called", "serving", "served"]))
            .filter(ticket::Column::CalledAt.is_not_null())
            .order_by_desc(ticket::Column::CalledAt)
            .order_by_desc(ticket::Column::Number)
            .limit(self.cfg.board_size as u64)
            .all(&self.db)
            .await?;
        let waiting = self.waiting_by_service(site_id).await?;
        let board = Board {
            site: site_id.to_owned(),
            called: calls
                .into_iter()
                .map(|r| BoardCall {
                    service: current_service(&r).to_owned(),
                    ticket: r.label,
                    counter: r.counter.unwrap_or_default(),
                    state: r.state,
                    recalls: u32::try_from(r.recalls).unwrap_or(0),
                    called_at: Utc
                        .timestamp_millis_opt(r.called_at.unwrap_or(0))
                        .single()
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                })
                .collect(),
            waiting: self
                .cfg
                .services
                .iter()
                .map(|s| ServiceWaiting {
                    service: s.code.clone(),
                    name: s.name.clone(),
                    waiting: waiting.get(&s.code).copied().unwrap_or(0),
                })
                .collect(),
        };
        if let Some(tx) = self.boards.get(site_id) {
            tx.send_if_modified(|b| {
                if **b == board {
                    false
                } else {
                    *b = Arc::new(board);
                    true
                }
            });
        }
        Ok(())
    }
}

fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn stored_identifiers(json: &str) -> Vec<v1::CustomerIdentifier> {
    serde_json::from_str::<Vec<(i32, String)>>(json)
        .unwrap_or_default()
        .into_iter()
        .map(|(kind, value)| v1::CustomerIdentifier { kind, value })
        .collect()
}

async fn enqueue(txn: &DatabaseTransaction, out: Vec<Outgoing>) -> Result<(), StoreError> {
    for o in out {
        centralino_store::outbox::enqueue(txn, SERVICE, &o.key, &o.envelope).await?;
    }
    Ok(())
}
