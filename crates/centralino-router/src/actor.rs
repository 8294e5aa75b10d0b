//! The router actor: the single owner of the engine.
//!
//! Every input (a bus delivery, an agent's action, an admin change, a timer)
//! becomes a [`Command`] on one channel. The actor takes what is queued (up to a
//! batch), applies it to the engine, and writes the resulting state changes, the
//! inbox claims and the outbox events in **one** transaction. Only after the
//! commit does anyone hear about it: deliveries are acked, agents get their
//! offers, callers get their answers. If the commit fails, nothing was promised:
//! callers get `UNAVAILABLE` (deliveries are retried) and the engine is rebuilt
//! from the database, which is the truth.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, Handled, new_envelope};
use centralino_domain::{Channel, InteractionId};
use centralino_proto::v1;
use centralino_routing::{
    AgentView, Engine, EngineError, EngineSettings, Enqueue, Event, Millis, Presence,
};
use centralino_server::ApiError;
use centralino_store::{StoreError, inbox, outbox};
use prost::Message as _;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::RouterError;
use crate::convert;
use crate::definitions::{FileDefinitions, Kind};
use crate::entities::{agent, figures, file_owned, interaction, queue, skill};

/// Name of the routing service: its consumer queue, its outbox source, its inbox consumer.
pub const SERVICE: &str = "routing";

/// How the routing service behaves.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub engine: EngineSettings,
    /// An agent whose session dropped is set offline after this long without a new one.
    pub session_grace_ms: u64,
    /// How often waiting interactions get a position event (0 = never).
    pub position_interval_ms: u64,
    /// Queue for interactions whose queue hint is empty or unknown; without one
    /// they are dead-lettered (visible and replayable once the queue exists).
    pub default_queue: Option<String>,
    /// Most commands applied in one transaction.
    pub batch_max: usize,
    /// The skills, queues and agents the configuration file defines (applied
    /// at start; see [`crate::definitions`]).
    pub definitions: FileDefinitions,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            engine: EngineSettings::default(),
            session_grace_ms: 30_000,
            position_interval_ms: 30_000,
            default_queue: None,
            batch_max: 256,
            definitions: FileDefinitions::default(),
        }
    }
}

pub(crate) fn now_ms() -> Millis {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// What a bus delivery asks for.
#[derive(Debug)]
pub(crate) enum Ingest {
    Created {
        interaction: Box<v1::Interaction>,
        occurred_at: Millis,
    },
    /// The customer left; or, with `closed` (an outcome), the work's
    /// creator withdrew it (a task closed).
    Abandoned {
        id: InteractionId,
        closed: Option<String>,
    },
    /// An adapter could not connect the customer to the assigned agent.
    NotReached {
        interaction: InteractionId,
        agent: String,
        reason: String,
    },
}

#[derive(Debug)]
pub(crate) enum AdminOp {
    UpsertSkill(v1::Skill),
    DeleteSkill(String),
    ListSkills,
    UpsertQueue(v1::QueueDefinition),
    DeleteQueue(String),
    ListQueues,
    UpsertAgent(v1::AgentDefinition),
    DeleteAgent(String),
    ListAgents,
}

#[derive(Debug)]
pub(crate) enum AdminReply {
    Skill(v1::Skill),
    Skills(Vec<v1::Skill>),
    Queue(v1::QueueDefinition),
    Queues(Vec<v1::QueueDefinition>),
    Agent(v1::AgentDefinition),
    Agents(Vec<v1::AgentDefinition>),
    Deleted,
}

pub(crate) enum Command {
    Ingest {
        message_id: String,
        what: Ingest,
        done: oneshot::Sender<Handled>,
    },
    Agent {
        agent: String,
        request_id: String,
        action: v1::agent_request::Action,
        reply: oneshot::Sender<v1::RequestResult>,
    },
    Connect {
        agent: String,
        session: u64,
        updates: mpsc::Sender<Numbered>,
        /// Set to end the session's stream (replaced, or too slow).
        kick: tokio::sync::watch::Sender<Kick>,
        /// The epoch and seq of the last update the desktop applied, to
        /// resume after instead of starting from a snapshot.
        resume: Option<(String, u64)>,
        /// The feed's epoch, once the opening updates are in `updates`.
        reply: oneshot::Sender<Result<String, ApiError>>,
    },
    Disconnect {
        agent: String,
        session: u64,
    },
    Admin {
        op: AdminOp,
        reply: oneshot::Sender<Result<AdminReply, ApiError>>,
    },
    Board {
        queues: Vec<String>,
        reply: oneshot::Sender<Result<v1::QueueBoard, ApiError>>,
    },
    Waiting {
        queue: String,
        reply: oneshot::Sender<Result<v1::ListWaitingResponse, ApiError>>,
    },
}

/// The engine's refusals as API errors: the one mapping for this service.
pub(crate) fn api_error(e: EngineError) -> ApiError {
    match e {
        EngineError::Invalid(d) => d.into(),
        EngineError::UnknownQueue(q) => ApiError::NotFound(format!("queue {q}")),
        EngineError::UnknownAgent(a) => ApiError::NotFound(format!("agent {a}")),
        EngineError::UnknownInteraction(i) => ApiError::NotFound(format!("interaction {i}")),
        EngineError::DuplicateInteraction(i) => ApiError::AlreadyExists(format!("interaction {i}")),
        EngineError::ChannelNotServed { queue, channel } => {
            ApiError::invalid("queue", format!("queue {queue} does not take {channel}"))
        }
        e @ (EngineError::QueueBusy { .. }
        | EngineError::AgentBusy { .. }
        | EngineError::NotYours { .. }
        | EngineError::AgentOffline(_)) => ApiError::FailedPrecondition(e.to_string()),
    }
}

fn result_of(request_id: &str, r: Result<(), ApiError>) -> v1::RequestResult {
    match r {
        Ok(()) => v1::RequestResult {
            request_id: request_id.to_owned(),
            ok: true,
            ..Default::default()
        },
        Err(e) => {
            let field = match &e {
                ApiError::InvalidArgument { field, .. } => field.clone(),
                _ => String::new(),
            };
            let status = tonic::Status::from(e);
            v1::RequestResult {
                request_id: request_id.to_owned(),
                ok: false,
                code: status.code() as i32,
                message: status.message().to_owned(),
                field,
            }
        }
    }
}

/// An answer held back until the batch commits.
enum Pending {
    Ingest(oneshot::Sender<Handled>, Handled),
    Agent {
        reply: oneshot::Sender<v1::RequestResult>,
        result: v1::RequestResult,
        agent: String,
    },
    Admin(
        oneshot::Sender<Result<AdminReply, ApiError>>,
        Result<AdminReply, ApiError>,
    ),
    /// A desktop's opening (a snapshot, or what it missed): sent only once
    /// the batch is committed, so it never shows state that a failed commit
    /// takes back, and before the batch's own updates.
    Connect {
        reply: oneshot::Sender<Result<String, ApiError>>,
        snapshot: Result<v1::AgentSnapshot, ApiError>,
        resume: Option<(String, u64)>,
        agent: String,
        session: u64,
    },
}

/// An update for an agent with its place in the agent's feed (0 for what
/// is not in the feed: a session's own request results).
#[derive(Debug, Clone)]
pub(crate) struct Numbered {
    pub(crate) seq: u64,
    pub(crate) update: v1::AgentUpdate,
}

/// Most recent updates kept per agent for a desktop that resumes, by count
/// and by encoded size (offers carry whole emails).
pub(crate) const FEED_KEPT: usize = 256;
const FEED_KEPT_BYTES: usize = 4 * 1024 * 1024;

/// What an agent was sent, numbered, so a desktop that lost its stream
/// resumes after the last update it applied (if it is still kept) instead of
/// reloading a snapshot. Numbering restarts with the actor (a new epoch).
#[derive(Default)]
struct Feed {
    seq: u64,
    /// Updates after `floor`, oldest first.
    kept: VecDeque<Numbered>,
    kept_bytes: usize,
    /// The seq below which updates were let go: a resume needs `after_seq >= floor`.
    floor: u64,
}

impl Feed {
    fn push(&mut self, update: v1::AgentUpdate) -> Numbered {
        self.seq += 1;
        let n = Numbered {
            seq: self.seq,
            update,
        };
        self.kept_bytes += n.update.encoded_len();
        self.kept.push_back(n.clone());
        while self.kept.len() > FEED_KEPT
            || (self.kept_bytes > FEED_KEPT_BYTES && self.kept.len() > 1)
        {
            if let Some(old) = self.kept.pop_front() {
                self.kept_bytes -= old.update.encoded_len();
                self.floor = old.seq;
            }
        }
        n
    }

    /// A snapshot takes a seq of its own (not kept: a resume after it
    /// replays what follows).
    fn snapshot(&mut self, snapshot: v1::AgentSnapshot) -> Numbered {
        self.seq += 1;
        Numbered {
            seq: self.seq,
            update: v1::AgentUpdate {
                update: Some(v1::agent_update::Update::Snapshot(snapshot)),
            },
        }
    }

    /// Lets go of what is kept (numbering goes on, so no seq is ever reused
    /// within the epoch): a desktop that resumes later gets a snapshot.
    fn forget(&mut self) {
        self.kept.clear();
        self.kept_bytes = 0;
        self.floor = self.seq;
    }

    /// What follows `after`, if everything after it is still kept.
    fn after(&self, after: u64) -> Option<Vec<Numbered>> {
        (after >= self.floor && after <= self.seq).then(|| {
            self.kept
                .iter()
                .filter(|n| n.seq > after)
                .cloned()
                .collect()
        })
    }
}

/// Why a session's stream ends (what its `kick` carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kick {
    Live,
    /// Dropped (too slow, failed, the service stopping): the desktop reconnects.
    Ended,
    /// A newer desktop of the same agent took over: this one should not
    /// reconnect by itself, or two tabs would take turns forever.
    Replaced,
}

struct Session {
    id: u64,
    updates: mpsc::Sender<Numbered>,
    kick: tokio::sync::watch::Sender<Kick>,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Whatever removes a session ends its stream: the desktop reconnects
        // and gets a fresh snapshot instead of silently missing offers.
        self.kick.send_if_modified(|k| {
            let live = *k == Kick::Live;
            if live {
                *k = Kick::Ended;
            }
            live
        });
    }
}

/// What a batch must write, gathered while it runs and written at the end with
/// a handful of statements whatever the batch size.
#[derive(Default)]
struct Writes {
    /// Bus messages claimed at the start of the batch but refused (dead-lettered):
    /// their claims go, so a replay once the cause is fixed is applied.
    unclaims: Vec<String>,
    /// Interactions whose row must match the engine (upserted, or deleted when gone).
    touched: std::collections::BTreeSet<InteractionId>,
    outbox: Vec<(centralino_bus::Key, centralino_bus::Envelope)>,
    /// Agents whose chosen presence changed.
    presence: BTreeMap<String, (String, String)>,
}

pub(crate) struct Actor {
    cfg: RouterConfig,
    db: DatabaseConnection,
    /// Every write transaction checks this instance still leads.
    fence: centralino_store::leader::Fence,
    bus: Arc<dyn Bus>,
    relay: Arc<Notify>,
    engine: Engine,
    skills: BTreeMap<String, String>,
    queues: BTreeMap<String, v1::QueueDefinition>,
    agents: BTreeMap<String, v1::AgentDefinition>,
    payloads: HashMap<InteractionId, v1::Interaction>,
    sessions: HashMap<String, Session>,
    /// Each agent's numbered updates, for desktops that resume.
    feeds: HashMap<String, Feed>,
    /// Names this actor's numbering (random per start).
    epoch: String,
    /// Agents whose session dropped, with the time they go offline.
    gone: HashMap<String, Millis>,
    /// Recent answers per agent, by request id, so a repeated request is not applied twice.
    answered: HashMap<String, VecDeque<v1::RequestResult>>,
    /// Completion notes of the batch being processed, for the completed events.
    notes: HashMap<InteractionId, (String, String)>,
    /// Presence as stored, so only real changes are written.
    stored_presence: HashMap<String, (String, String)>,
    /// The engine may not match the database (a commit failed and reloading
    /// failed too): nothing is applied until a reload succeeds.
    needs_restore: bool,
    /// Abandons that arrived for interactions routing did not hold, with when:
    /// a creation delivered after its own abandon (a redelivery) is then not routed.
    early_abandons: HashMap<InteractionId, Millis>,
    /// A queue was defined in the batch being committed: work held for want
    /// of it (routing's dead letters) is replayed once the commit is in.
    queue_defined: bool,
    /// The definitions the configuration file owns (the API may not change them).
    file_owned: BTreeSet<(Kind, String)>,
}

const ANSWERS_KEPT: usize = 256;
/// Most held deliveries sent back through routing when a queue is defined.
const HELD_REPLAYED: usize = 10_000;
/// Most early abandons remembered, and for how long.
const EARLY_ABANDONS_KEPT: usize = 100_000;
const EARLY_ABANDON_MS: Millis = 3_600_000;

impl Actor {
    /// Loads everything from the database into a fresh engine.
    pub(crate) async fn load(
        cfg: RouterConfig,
        db: DatabaseConnection,
        fence: centralino_store::leader::Fence,
        bus: Arc<dyn Bus>,
        relay: Arc<Notify>,
    ) -> Result<Self, RouterError> {
        let engine = Engine::new(cfg.engine.clone(), now_ms())
            .map_err(|e| RouterError::Config(e.to_string()))?;
        let mut actor = Self {
            cfg,
            db,
            fence,
            bus,
            relay,
            engine,
            skills: BTreeMap::new(),
            queues: BTreeMap::new(),
            agents: BTreeMap::new(),
            payloads: HashMap::new(),
            sessions: HashMap::new(),
            feeds: HashMap::new(),
            epoch: uuid::Uuid::new_v4().simple().to_string(),
            gone: HashMap::new(),
            answered: HashMap::new(),
            notes: HashMap::new(),
            stored_presence: HashMap::new(),
            needs_restore: false,
            early_abandons: HashMap::new(),
            queue_defined: false,
            file_owned: BTreeSet::new(),
        };
        actor.restore().await?;
        Ok(actor)
    }

    /// Rebuilds the engine from the database (at start, and after a failed commit).
    async fn restore(&mut self) -> Result<(), RouterError> {
        let now = now_ms();
        self.engine = Engine::new(self.cfg.engine.clone(), now)
            .map_err(|e| RouterError::Config(e.to_string()))?;
        self.payloads.clear();
        self.file_owned = file_owned::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|r| Some((Kind::parse(&r.kind)?, r.name)))
            .collect();
        self.skills = skill::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|s| (s.name, s.description))
            .collect();
        self.queues.clear();
        let queues = queue::Entity::find().all(&self.db).await?;
        // Overflow targets may come later in the list: add every queue, then again
        // so steps naming each other resolve (the engine resolves names lazily anyway).
        for row in queues {
            let Ok(def) = v1::QueueDefinition::decode(row.definition.as_slice()) else {
                tracing::error!(queue = %row.name, "stored queue definition does not decode; skipped");
                continue;
            };
            match convert::queue_config(&def) {
                Ok(cfg) => {
                    if let Err(e) = self.engine.upsert_queue(cfg, now) {
                        tracing::error!(queue = %row.name, error = %e, "stored queue refused");
                        continue;
                    }
                    self.queues.insert(row.name, def);
                }
                Err(e) => tracing::error!(queue = %row.name, error = %e, "stored queue invalid"),
            }
        }
        // The figures as the previous leader left them; what happens from
        // here on (steps now due while re-queueing) adds to them.
        for row in figures::Entity::find().all(&self.db).await? {
            let _ = self.engine.restore_figures(&row.queue, figures_of(&row));
        }
        self.agents.clear();
        self.stored_presence.clear();
        let agents = agent::Entity::find().all(&self.db).await?;
        let mut presences = Vec::new();
        for row in agents {
            let Ok(def) = v1::AgentDefinition::decode(row.definition.as_slice()) else {
                tracing::error!(agent = %row.name, "stored agent definition does not decode; skipped");
                continue;
            };
            match convert::agent_config(&def) {
                Ok(cfg) => {
                    if let Err(e) = self.engine.upsert_agent(cfg, now) {
                        tracing::error!(agent = %row.name, error = %e, "stored agent refused");
                        continue;
                    }
                    presences.push((
                        row.name.clone(),
                        convert::presence_from_row(&row.presence, &row.reason),
                    ));
                    self.stored_presence
                        .insert(row.name.clone(), (row.presence.clone(), row.reason.clone()));
                    self.agents.insert(row.name, def);
                }
                Err(e) => tracing::error!(agent = %row.name, error = %e, "stored agent invalid"),
            }
        }
        // Held and offered work first (it occupies capacity), then presence, then the waiting line.
        let rows = interaction::Entity::find()
            .order_by_asc(interaction::Column::ArrivedAt)
            .all(&self.db)
            .await?;
        let mut waiting = Vec::new();
        for row in rows {
            let Some((req, payload)) = self.request_of(&row) else {
                continue;
            };
            let id = req.id;
            let restored = match (row.state.as_str(), row.agent.as_deref()) {
                ("assigned", Some(a)) if self.agents.contains_key(a) => self
                    .engine
                    .restore_assigned(req, a, row.assigned_at.map_or(now, |t| t as u64), now),
                ("offered", Some(a)) if self.agents.contains_key(a) => {
                    let expires = row.offer_expires_at.map_or(now, |t| t as u64);
                    self.engine.restore_offer(req, a, expires, now)
                }
                _ => {
                    waiting.push(req);
                    self.payloads.insert(id, payload);
                    continue;
                }
            };
            match restored {
                Ok(()) => {
                    self.payloads.insert(id, payload);
                }
                Err(e) => tracing::error!(interaction = %id, error = %e, "could not restore"),
            }
        }
        for (name, presence) in presences {
            // The desktop has to come back: until it does, the grace period runs.
            if presence != Presence::Offline && !self.sessions.contains_key(&name) {
                self.gone
                    .entry(name.clone())
                    .or_insert(now + self.cfg.session_grace_ms);
            }
            let _ = self.engine.set_presence(&name, presence, now);
        }
        for req in waiting {
            let id = req.id;
            if let Err(e) = self.engine.restore_waiting(req, now) {
                tracing::error!(interaction = %id, error = %e, "could not restore a waiting interaction");
                self.payloads.remove(&id);
            }
        }
        // Re-queueing is not news: drop those events, persist the decisions (offers).
        let events: Vec<Event> = self
            .engine
            .drain_events()
            .filter(|e| !matches!(e, Event::Queued { .. } | Event::AgentChanged { .. }))
            .collect();
        let txn = self.fence.begin(&self.db).await?;
        let mut outgoing = Vec::new();
        let mut writes = Writes::default();
        for e in &events {
            self.record(e, now, &mut writes, &mut outgoing);
        }
        self.flush(&txn, writes).await?;
        txn.commit().await?;
        self.deliver(outgoing);
        self.relay.notify_one();
        tracing::info!(
            queues = self.queues.len(),
            agents = self.agents.len(),
            interactions = self.engine.len(),
            "routing state loaded"
        );
        Ok(())
    }

    fn request_of(&self, row: &interaction::Model) -> Option<(Enqueue, v1::Interaction)> {
        let id = InteractionId::parse_field(&row.id, "id").ok()?;
        let channel: Channel = row.channel.parse().ok()?;
        let payload = v1::Interaction::decode(row.interaction.as_slice()).unwrap_or_default();
        Some((
            Enqueue {
                id,
                queue: row.queue.clone(),
                channel,
                priority: u32::try_from(row.priority).unwrap_or(0),
                arrived_at: u64::try_from(row.arrived_at).unwrap_or(0),
                preferred_agent: row.preferred_agent.clone(),
            },
            payload,
        ))
    }

    /// The actor loop: batches of commands, timers, periodic positions.
    pub(crate) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Command>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let positions = Duration::from_millis(self.cfg.position_interval_ms.max(1_000));
        let mut position_tick = tokio::time::interval(positions);
        position_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut purge_tick = tokio::time::interval(Duration::from_secs(3_600));
        purge_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A queue the configuration file defined at start may be what held
        // work was waiting for.
        if std::mem::take(&mut self.queue_defined) {
            self.replay_held();
        }
        loop {
            let next = self.next_deadline();
            let sleep = async move {
                match next {
                    Some(t) => {
                        let wait = t.saturating_sub(now_ms());
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let mut batch = vec![cmd];
                    while batch.len() < self.cfg.batch_max {
                        match rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    self.process(batch).await;
                }
                () = sleep => self.process(Vec::new()).await,
                _ = position_tick.tick(), if self.cfg.position_interval_ms > 0 => self.publish_positions(),
                _ = purge_tick.tick() => self.purge_inbox(),
            }
        }
        tracing::info!("routing stopped");
    }

    fn next_deadline(&self) -> Option<Millis> {
        if self.needs_restore {
            return Some(now_ms() + 1_000);
        }
        let gone = self.gone.values().min().copied();
        match (self.engine.next_deadline(), gone) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn process(&mut self, batch: Vec<Command>) {
        if self.needs_restore {
            match self.restore().await {
                Ok(()) => self.needs_restore = false,
                Err(e) => {
                    tracing::warn!(error = %e, "routing store still unavailable");
                    self.refuse(batch, &e.to_string());
                    return;
                }
            }
        }
        let now = now_ms();
        let mut pending = Vec::new();
        let mut outgoing = Vec::new();
        let mut batch = VecDeque::from(batch);
        let result = self
            .apply(&mut batch, now, &mut pending, &mut outgoing)
            .await;
        match result {
            Ok(()) => {
                self.relay.notify_one();
                for p in pending {
                    match p {
                        Pending::Ingest(tx, outcome) => {
                            let _ = tx.send(outcome);
                        }
                        Pending::Agent {
                            reply,
                            result,
                            agent,
                        } => {
                            let kept = self.answered.entry(agent).or_default();
                            kept.push_back(result.clone());
                            if kept.len() > ANSWERS_KEPT {
                                kept.pop_front();
                            }
                            let _ = reply.send(result);
                        }
                        Pending::Admin(tx, r) => {
                            let _ = tx.send(r);
                        }
                        Pending::Connect {
                            reply,
                            snapshot,
                            resume,
                            agent,
                            session,
                        } => {
                            let opened = snapshot
                                .and_then(|snapshot| self.open(&agent, session, snapshot, resume));
                            let _ = reply.send(opened);
                        }
                    }
                }
                self.deliver(outgoing);
                if std::mem::take(&mut self.queue_defined) {
                    self.replay_held();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "routing batch not committed; rebuilding from the database");
                for p in pending {
                    match p {
                        Pending::Ingest(tx, _) => {
                            let _ = tx.send(Handled::Hold(e.to_string()));
                        }
                        Pending::Agent { reply, result, .. } => {
                            let _ = reply.send(result_of(
                                &result.request_id,
                                Err(ApiError::Unavailable("routing store".into())),
                            ));
                        }
                        Pending::Admin(tx, _) => {
                            let _ = tx.send(Err(ApiError::Unavailable("routing store".into())));
                        }
                        Pending::Connect {
                            reply,
                            agent,
                            session,
                            ..
                        } => {
                            // The desktop retries; until then it holds no session.
                            if self.sessions.get(&agent).is_some_and(|s| s.id == session) {
                                self.sessions.remove(&agent);
                            }
                            let _ = reply.send(Err(ApiError::Unavailable("routing store".into())));
                        }
                    }
                }
                // Commands the failure stopped before reaching are answered too:
                // a delivery left without an answer would never be acked.
                self.refuse(batch.into(), &e.to_string());
                self.notes.clear();
                if let Err(e) = self.restore().await {
                    tracing::error!(error = %e, "routing state could not be reloaded; retrying before the next command");
                    self.needs_restore = true;
                }
            }
        }
    }

    /// Work for a queue routing did not know was refused (dead-lettered, its
    /// inbox claim taken back) and waits in routing's dead-letter queue,
    /// visible to `ListDeadLetters`. Once a new queue is defined, what is
    /// there now is sent back through routing once: what now has its queue is
    /// routed, the rest is refused again and waits for the next new queue
    /// (counted first, so nothing is sent round twice in one replay).
    fn replay_held(&self) {
        let bus = self.bus.clone();
        tokio::spawn(async move {
            let held = match bus.dead_letters(SERVICE, HELD_REPLAYED).await {
                Ok(held) => held.len(),
                Err(e) => {
                    tracing::warn!(error = %e, "routing: held work not counted; replay it with ReplayDeadLetters");
                    return;
                }
            };
            if held == 0 {
                return;
            }
            match bus.replay_dead_letters(SERVICE, held).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    replayed = n,
                    "routing: a queue was defined; work held for want of a queue is routed again"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "routing: held work not replayed; replay it with ReplayDeadLetters")
                }
            }
        });
    }

    /// Answers a batch that cannot be applied: deliveries are retried, callers
    /// hear `UNAVAILABLE`, reads too (the engine is not trustworthy now).
    fn refuse(&mut self, batch: Vec<Command>, reason: &str) {
        let unavailable = || ApiError::Unavailable("routing store".into());
        for cmd in batch {
            match cmd {
                Command::Ingest { done, .. } => {
                    let _ = done.send(Handled::Hold(reason.to_owned()));
                }
                Command::Agent {
                    request_id, reply, ..
                } => {
                    let _ = reply.send(result_of(&request_id, Err(unavailable())));
                }
                Command::Connect { reply, .. } => {
                    let _ = reply.send(Err(unavailable()));
                }
                Command::Disconnect { agent, session } => {
                    if self.sessions.get(&agent).is_some_and(|s| s.id == session) {
                        self.sessions.remove(&agent);
                        self.gone
                            .insert(agent, now_ms() + self.cfg.session_grace_ms);
                    }
                }
                Command::Admin { reply, .. } => {
                    let _ = reply.send(Err(unavailable()));
                }
                Command::Board { reply, .. } => {
                    let _ = reply.send(Err(unavailable()));
                }
                Command::Waiting { reply, .. } => {
                    let _ = reply.send(Err(unavailable()));
                }
            }
        }
    }

    /// Applies a batch and writes it in one transaction. On failure the
    /// commands not yet taken stay in `batch` for the caller to refuse.
    async fn apply(
        &mut self,
        batch: &mut VecDeque<Command>,
        now: Millis,
        pending: &mut Vec<Pending>,
        outgoing: &mut Vec<(String, v1::AgentUpdate)>,
    ) -> Result<(), StoreError> {
        let txn = self.fence.begin(&self.db).await?;
        let ids: Vec<String> = batch
            .iter()
            .filter_map(|c| match c {
                Command::Ingest { message_id, .. } => Some(message_id.clone()),
                _ => None,
            })
            .collect();
        // Claimed first: what comes back was never processed (the insert's
        // conflict check costs the same at any inbox size).
        let mut claimed = if ids.is_empty() {
            std::collections::HashSet::new()
        } else {
            inbox::claim_new(&txn, SERVICE, &ids).await?
        };
        let mut writes = Writes::default();
        self.engine.tick(now);
        let due: Vec<String> = self
            .gone
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(a, _)| a.clone())
            .collect();
        for a in due {
            self.gone.remove(&a);
            // Resuming is promised within the grace only: what was kept goes.
            if let Some(feed) = self.feeds.get_mut(&a) {
                feed.forget();
            }
            let _ = self.engine.set_presence(&a, Presence::Offline, now);
        }
        while let Some(cmd) = batch.pop_front() {
            match cmd {
                Command::Ingest {
                    message_id,
                    what,
                    done,
                } => {
                    let outcome = self.ingest(&mut claimed, &mut writes, message_id, what, now);
                    pending.push(Pending::Ingest(done, outcome));
                }
                Command::Agent {
                    agent,
                    request_id,
                    action,
                    reply,
                } => {
                    if let Some(previous) = self
                        .answered
                        .get(&agent)
                        .and_then(|k| k.iter().find(|r| r.request_id == request_id))
                    {
                        let _ = reply.send(previous.clone());
                        continue;
                    }
                    let r = self.agent_action(&agent, action, now);
                    pending.push(Pending::Agent {
                        reply,
                        result: result_of(&request_id, r),
                        agent,
                    });
                }
                Command::Connect {
                    agent,
                    session,
                    updates,
                    kick,
                    resume,
                    reply,
                } => {
                    let snapshot = self.connect(&agent, session, updates, kick);
                    pending.push(Pending::Connect {
                        reply,
                        snapshot,
                        resume,
                        agent,
                        session,
                    });
                }
                Command::Disconnect { agent, session } => {
                    if self.sessions.get(&agent).is_some_and(|s| s.id == session) {
                        self.sessions.remove(&agent);
                        self.gone.insert(agent, now + self.cfg.session_grace_ms);
                    }
                }
                Command::Admin { op, reply } => match self.admin(&txn, op, now).await {
                    Ok(r) => pending.push(Pending::Admin(reply, r)),
                    Err(e) => {
                        // Answered UNAVAILABLE with the rest of the pending work.
                        pending.push(Pending::Admin(
                            reply,
                            Err(ApiError::Unavailable("routing store".into())),
                        ));
                        return Err(e);
                    }
                },
                Command::Board { queues, reply } => {
                    let _ = reply.send(self.board(&queues, now));
                }
                Command::Waiting { queue, reply } => {
                    let _ = reply.send(self.waiting(&queue));
                }
            }
        }
        let events: Vec<Event> = self.engine.drain_events().collect();
        for e in &events {
            self.record(e, now, &mut writes, outgoing);
        }
        self.flush(&txn, writes).await?;
        txn.commit().await?;
        self.notes.clear();
        Ok(())
    }

    fn ingest(
        &mut self,
        claimed: &mut std::collections::HashSet<String>,
        writes: &mut Writes,
        message_id: String,
        what: Ingest,
        now: Millis,
    ) -> Handled {
        if !claimed.remove(&message_id) {
            // Processed before, or repeated within this batch.
            return Handled::Done;
        }
        let outcome = self.apply_ingest(writes, what, now);
        if matches!(outcome, Handled::Reject(_)) {
            writes.unclaims.push(message_id);
        }
        outcome
    }

    fn apply_ingest(&mut self, writes: &mut Writes, what: Ingest, now: Millis) -> Handled {
        match what {
            Ingest::Created {
                interaction,
                occurred_at,
            } => {
                let Ok(id) = InteractionId::parse_field(&interaction.id, "id") else {
                    return Handled::Reject("interaction id is not a UUID".into());
                };
                let Ok(channel) = centralino_proto::channel_from_i32(interaction.channel) else {
                    return Handled::Reject("interaction has no valid channel".into());
                };
                let queue = if self.queues.contains_key(&interaction.queue_hint) {
                    interaction.queue_hint.clone()
                } else if let Some(q) = self
                    .cfg
                    .default_queue
                    .as_ref()
                    .filter(|q| self.queues.contains_key(*q))
                {
                    q.clone()
                } else {
                    // Held, not lost: routed again when the queue is defined.
                    return Handled::Reject(format!(
                        "no queue {:?} and no default queue; held until it is defined",
                        interaction.queue_hint
                    ));
                };
                let req = Enqueue {
                    id,
                    queue,
                    channel,
                    priority: interaction.priority,
                    arrived_at: occurred_at.min(now),
                    preferred_agent: preferred_agent(&interaction),
                };
                match self.engine.check_enqueue(&req) {
                    Ok(()) => {}
                    // Already routing it: another delivery of the same interaction.
                    Err(EngineError::DuplicateInteraction(_)) => return Handled::Done,
                    Err(e) => return Handled::Reject(e.to_string()),
                }
                if self.early_abandons.remove(&id).is_some() {
                    tracing::info!(interaction = %id, "creation arrived after its abandon; not routed");
                    return Handled::Done;
                }
                writes.touched.insert(id);
                self.payloads.insert(id, *interaction);
                if let Err(e) = self.engine.enqueue(req, now) {
                    // Checked above; a refusal here is a bug, not input.
                    tracing::error!(error = %e, "enqueue refused after its check");
                    self.payloads.remove(&id);
                    return Handled::Reject(e.to_string());
                }
                Handled::Done
            }
            Ingest::NotReached {
                interaction,
                agent,
                reason,
            } => {
                match self.engine.not_reached(&agent, interaction, &reason, now) {
                    Ok(()) => {
                        tracing::info!(%interaction, %agent, %reason, "agent not reached; back in the queue")
                    }
                    // The agent completed, transferred or lost it meanwhile:
                    // nothing to take back.
                    Err(e) => {
                        tracing::info!(%interaction, %agent, error = %e, "agent-not-reached ignored")
                    }
                }
                Handled::Done
            }
            Ingest::Abandoned { id, closed } => {
                let left = match &closed {
                    Some(outcome) => self.engine.withdraw(id, outcome, now),
                    None => self.engine.cancel(id, now),
                };
                match left {
                    Ok(_) => {}
                    Err(EngineError::UnknownInteraction(_)) => {
                        tracing::debug!(interaction = %id, "abandon for an interaction routing does not hold");
                        if self.early_abandons.len() < EARLY_ABANDONS_KEPT {
                            self.early_abandons.insert(id, now);
                        }
                    }
                    Err(e) => tracing::warn!(interaction = %id, error = %e, "abandon not applied"),
                }
                Handled::Done
            }
        }
    }

    fn agent_action(
        &mut self,
        agent: &str,
        action: v1::agent_request::Action,
        now: Millis,
    ) -> Result<(), ApiError> {
        use v1::agent_request::Action;
        let id = |s: &str| InteractionId::parse_field(s, "interaction_id").map_err(ApiError::from);
        let e = &mut self.engine;
        match action {
            Action::SetPresence(p) => {
                let presence = convert::presence_from_wire(&p)?;
                e.set_presence(agent, presence, now).map_err(api_error)
            }
            Action::Accept(a) => e
                .accept(agent, id(&a.interaction_id)?, now)
                .map_err(api_error),
            Action::Reject(a) => e
                .reject(agent, id(&a.interaction_id)?, now)
                .map_err(api_error),
            Action::Complete(c) => {
                let iid = id(&c.interaction_id)?;
                if c.disposition.chars().count() > 64 {
                    return Err(ApiError::invalid("disposition", "at most 64 characters"));
                }
                if c.wrap_up_notes.chars().count() > 4_000 {
                    return Err(ApiError::invalid(
                        "wrap_up_notes",
                        "at most 4000 characters",
                    ));
                }
                if c.wrap_up_ms.is_some_and(|w| w > 3_600_000) {
                    return Err(ApiError::invalid("wrap_up_ms", "at most one hour"));
                }
                e.complete(agent, iid, c.wrap_up_ms, now)
                    .map_err(api_error)?;
                self.notes.insert(iid, (c.disposition, c.wrap_up_notes));
                Ok(())
            }
            Action::EndWrapUp(_) => e.end_wrap_up(agent, now).map_err(api_error),
            Action::Transfer(t) => {
                let iid = id(&t.interaction_id)?;
                let mine = e
                    .locate(iid)
                    .is_some_and(|l| l.agent.as_deref() == Some(agent));
                if !mine {
                    return Err(ApiError::FailedPrecondition(format!(
                        "interaction {iid} is not offered to or held by {agent}"
                    )));
                }
                e.transfer(iid, &t.queue, now).map_err(api_error)
            }
        }
    }

    /// Puts a new session's opening in its stream, after the commit and
    /// before the batch's updates: what it missed since `resume` when the
    /// feed still holds it, else the snapshot. Answers the feed's epoch.
    fn open(
        &mut self,
        agent: &str,
        session: u64,
        snapshot: v1::AgentSnapshot,
        resume: Option<(String, u64)>,
    ) -> Result<String, ApiError> {
        let Some(s) = self.sessions.get(agent).filter(|s| s.id == session) else {
            return Err(ApiError::Unavailable(
                "agent session (replaced by a newer one)".into(),
            ));
        };
        let feed = self.feeds.entry(agent.to_owned()).or_default();
        let missed = resume
            .filter(|(epoch, _)| *epoch == self.epoch)
            .and_then(|(_, after)| feed.after(after));
        let opening = match missed {
            Some(missed) => missed,
            None => vec![feed.snapshot(snapshot)],
        };
        // The channel is new and holds a feed's worth: it fails only when
        // its reader left while the batch ran (then no disconnect will come).
        // The session goes and the grace starts, as on a disconnect.
        let mut gone = s.updates.is_closed();
        for n in opening {
            if gone || s.updates.try_send(n).is_err() {
                gone = true;
                break;
            }
        }
        if gone {
            self.sessions.remove(agent);
            self.gone
                .insert(agent.to_owned(), now_ms() + self.cfg.session_grace_ms);
            return Err(ApiError::Unavailable("agent session".into()));
        }
        Ok(self.epoch.clone())
    }

    fn connect(
        &mut self,
        agent: &str,
        session: u64,
        updates: mpsc::Sender<Numbered>,
        kick: tokio::sync::watch::Sender<Kick>,
    ) -> Result<v1::AgentSnapshot, ApiError> {
        let view = self.engine.agent(agent).ok_or_else(|| {
            ApiError::NotFound(format!("agent {agent} (ask an admin to create it)"))
        })?;
        // A new desktop replaces the old one, whose stream ends (told why).
        if let Some(old) = self.sessions.insert(
            agent.to_owned(),
            Session {
                id: session,
                updates,
                kick,
            },
        ) {
            let _ = old.kick.send(Kick::Replaced);
        }
        self.gone.remove(agent);
        Ok(self.snapshot(&view))
    }

    fn snapshot(&self, view: &AgentView) -> v1::AgentSnapshot {
        v1::AgentSnapshot {
            status: Some(convert::agent_status(view)),
            offers: view
                .offers
                .iter()
                .filter_map(|&i| self.offer_of(i))
                .collect(),
            assigned: view
                .held
                .iter()
                .filter_map(|&i| self.assignment_of(i))
                .collect(),
        }
    }

    fn offer_of(&self, id: InteractionId) -> Option<v1::Offer> {
        let loc = self.engine.locate(id)?;
        let payload = self.payloads.get(&id).cloned().unwrap_or_default();
        Some(v1::Offer {
            interaction_id: id.to_string(),
            queue: loc.queue.to_string(),
            channel: payload.channel,
            expires_at: self.engine.offer_expiry(id).map(ts),
            interaction: Some(payload),
        })
    }

    fn assignment_of(&self, id: InteractionId) -> Option<v1::Assignment> {
        let loc = self.engine.locate(id)?;
        let payload = self.payloads.get(&id).cloned().unwrap_or_default();
        Some(v1::Assignment {
            interaction_id: id.to_string(),
            queue: loc.queue.to_string(),
            channel: payload.channel,
            interaction: Some(payload),
        })
    }

    fn board(&self, queues: &[String], now: Millis) -> Result<v1::QueueBoard, ApiError> {
        let names: Vec<String> = if queues.is_empty() {
            self.queues.keys().cloned().collect()
        } else {
            queues.to_vec()
        };
        let figures = names
            .iter()
            .map(|q| {
                self.engine
                    .queue_stats(q, now)
                    .map(|s| convert::queue_figures(&s))
                    .map_err(api_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut agents: Vec<v1::AgentStatus> = self
            .engine
            .agents()
            .map(|v| convert::agent_status(&v))
            .collect();
        agents.sort_by(|a, b| a.agent.cmp(&b.agent));
        Ok(v1::QueueBoard {
            at: Some(ts(now)),
            queues: figures,
            agents,
        })
    }

    fn waiting(&self, queue: &str) -> Result<v1::ListWaitingResponse, ApiError> {
        let positions = self.engine.positions(queue).map_err(api_error)?;
        Ok(v1::ListWaitingResponse {
            waiting: positions
                .into_iter()
                .map(|p| v1::WaitingPosition {
                    interaction_id: p.interaction.to_string(),
                    channel: self.payloads.get(&p.interaction).map_or(0, |i| i.channel),
                    position: p.position,
                    estimated_wait_ms: p.estimated_wait_ms,
                })
                .collect(),
        })
    }

    /// An admin API operation: refused for what the configuration file owns.
    async fn admin(
        &mut self,
        txn: &impl ConnectionTrait,
        op: AdminOp,
        now: Millis,
    ) -> Result<Result<AdminReply, ApiError>, StoreError> {
        let target = match &op {
            AdminOp::UpsertSkill(s) => Some((Kind::Skill, s.name.as_str())),
            AdminOp::DeleteSkill(n) => Some((Kind::Skill, n.as_str())),
            AdminOp::UpsertQueue(q) => Some((Kind::Queue, q.name.as_str())),
            AdminOp::DeleteQueue(n) => Some((Kind::Queue, n.as_str())),
            AdminOp::UpsertAgent(a) => Some((Kind::Agent, a.name.as_str())),
            AdminOp::DeleteAgent(n) => Some((Kind::Agent, n.as_str())),
            AdminOp::ListSkills | AdminOp::ListQueues | AdminOp::ListAgents => None,
        };
        if let Some((kind, name)) = target
            && self.file_owned.contains(&(kind, name.to_owned()))
        {
            return Ok(Err(ApiError::FailedPrecondition(kind.owned_by_file(name))));
        }
        self.define(txn, op, now).await
    }

    /// Applies the configuration file's definitions in one transaction (at
    /// start, before anything is routed): each that differs from what is
    /// stored is written through the admin operations' own checks, and what
    /// the file owned before but no longer lists is deleted (or, when it
    /// cannot be, such as a skill an API-defined agent holds, left to the API
    /// with a warning). A definition the file gets wrong (a bad value, a skill
    /// or overflow target nobody defines) fails the start, naming its key,
    /// and nothing of the file is applied; one refused for what routing holds
    /// now (a queue's channel dropped while work waits on it) keeps the stored
    /// definition, with a warning, until a later start. A file that defines
    /// nothing deletes nothing: an earlier file's definitions become the API's.
    pub(crate) async fn apply_file(&mut self) -> Result<(), RouterError> {
        let defs = self.cfg.definitions.clone();
        let now = now_ms();
        let txn = self.fence.begin(&self.db).await?;
        if defs.is_empty() {
            // A file with no definitions (or no file: a service run from
            // variables alone) deletes nothing: what an earlier file owned
            // is the API's from now on.
            if !self.file_owned.is_empty() {
                file_owned::Entity::delete_many().exec(&txn).await?;
                txn.commit().await?;
                tracing::info!(
                    released = self.file_owned.len(),
                    "routing: the configuration file defines nothing; what an earlier file \
                     defined is kept, and the admin API may now change it"
                );
                self.file_owned.clear();
            }
            return Ok(());
        }
        let mut wanted = BTreeSet::new();
        for s in &defs.skills {
            wanted.insert((Kind::Skill, s.name.clone()));
        }
        for q in &defs.queues {
            wanted.insert((Kind::Queue, q.name.clone()));
        }
        for a in &defs.agents {
            wanted.insert((Kind::Agent, a.name.clone()));
        }
        // Agents first, then queues, then skills: what uses a skill goes
        // before it; in passes, so a queue another released queue overflows
        // to goes once that one has gone.
        let mut released: Vec<(Kind, String)> =
            self.file_owned.difference(&wanted).cloned().collect();
        released.reverse();
        // What the file still uses must be what it (or the API) still
        // defines: a skill or an overflow target it dropped is a mistake in
        // the file, not something to keep by accident.
        let dropped =
            |kind: Kind, name: &str| released.iter().any(|(k, n)| *k == kind && n == name);
        for q in &defs.queues {
            let skills = q.skills.iter().map(|s| s.skill.as_str()).chain(
                q.steps
                    .iter()
                    .filter_map(|st| match &st.action {
                        Some(v1::routing_step::Action::Relax(set)) => Some(&set.skills),
                        _ => None,
                    })
                    .flatten()
                    .map(|s| s.skill.as_str()),
            );
            for skill in skills {
                if dropped(Kind::Skill, skill) {
                    return Err(RouterError::Config(format!(
                        "routing.queues[{}]: uses skill {skill}, which the file no longer lists",
                        q.name
                    )));
                }
            }
            for (i, step) in q.steps.iter().enumerate() {
                if let Some(v1::routing_step::Action::OverflowTo(target)) = &step.action {
                    let listed = defs.queues.iter().any(|d| &d.name == target);
                    let stored = self.queues.contains_key(target) && !dropped(Kind::Queue, target);
                    if !listed && !stored {
                        return Err(RouterError::Config(format!(
                            "routing.queues[{}].steps[{}].overflow_to: no queue {target}",
                            q.name,
                            i + 1
                        )));
                    }
                }
            }
        }
        for a in &defs.agents {
            if let Some(s) = a.skills.iter().find(|s| dropped(Kind::Skill, &s.skill)) {
                return Err(RouterError::Config(format!(
                    "routing.agents[{}]: holds skill {}, which the file no longer lists",
                    a.name, s.skill
                )));
            }
        }
        // A name the API defined and the file now lists becomes the file's:
        // said once, since the API's version is replaced.
        for (kind, name) in &wanted {
            let exists = match kind {
                Kind::Skill => self.skills.contains_key(name),
                Kind::Queue => self.queues.contains_key(name),
                Kind::Agent => self.agents.contains_key(name),
            };
            if exists && !self.file_owned.contains(&(*kind, name.clone())) {
                tracing::warn!(
                    kind = kind.as_str(),
                    name = %name,
                    "routing: defined through the admin API and now listed in the configuration \
                     file: the file's definition replaces it, and the file owns it from now on"
                );
            }
        }
        let mut ops = Vec::new();
        for s in defs.skills {
            if self.skills.get(&s.name) != Some(&s.description) {
                ops.push((Kind::Skill, s.name.clone(), AdminOp::UpsertSkill(s)));
            }
        }
        for q in defs.queues {
            if self.queues.get(&q.name) != Some(&q) {
                ops.push((Kind::Queue, q.name.clone(), AdminOp::UpsertQueue(q)));
            }
        }
        for a in defs.agents {
            if self.agents.get(&a.name) != Some(&a) {
                ops.push((Kind::Agent, a.name.clone(), AdminOp::UpsertAgent(a)));
            }
        }
        let mut changed = 0;
        for (kind, name, op) in ops {
            match self.define(&txn, op, now).await? {
                Ok(_) => changed += 1,
                // Refused for what routing holds now (a channel dropped from
                // a queue with work waiting on it): the stored definition
                // stays until a later start can apply the file's.
                Err(e @ ApiError::FailedPrecondition(_)) => tracing::warn!(
                    kind = kind.as_str(),
                    name = %name,
                    error = %e,
                    "routing: the configuration file's definition cannot be applied now; the \
                     stored one stays until a later start"
                ),
                Err(e) => {
                    return Err(RouterError::Config(format!("{}[{name}]: {e}", kind.key())));
                }
            }
        }
        let mut removed = 0;
        let mut pending = released;
        loop {
            let tried = pending.len();
            let mut refused = Vec::new();
            for (kind, name) in std::mem::take(&mut pending) {
                let op = match kind {
                    Kind::Skill => AdminOp::DeleteSkill(name.clone()),
                    Kind::Queue => AdminOp::DeleteQueue(name.clone()),
                    Kind::Agent => AdminOp::DeleteAgent(name.clone()),
                };
                match self.define(&txn, op, now).await? {
                    Ok(_) | Err(ApiError::NotFound(_)) => removed += 1,
                    Err(e) => refused.push((kind, name, e)),
                }
            }
            if refused.is_empty() {
                break;
            }
            if refused.len() == tried {
                // No pass can do more.
                for (kind, name, e) in refused {
                    tracing::warn!(
                        kind = kind.as_str(),
                        name = %name,
                        error = %e,
                        "routing: no longer in the configuration file but cannot be deleted; \
                         kept, and the admin API may now change it"
                    );
                }
                break;
            }
            pending = refused.into_iter().map(|(k, n, _)| (k, n)).collect();
        }
        file_owned::Entity::delete_many().exec(&txn).await?;
        file_owned::Entity::insert_many(wanted.iter().map(|(kind, name)| {
            file_owned::ActiveModel {
                kind: Set(kind.as_str().to_owned()),
                name: Set(name.clone()),
            }
        }))
        .exec_without_returning(&txn)
        .await?;
        // What the changes did to routing (an agent removed while holding
        // work sends it back to its queue) is written like any batch's.
        let mut writes = Writes::default();
        let mut outgoing = Vec::new();
        let events: Vec<Event> = self.engine.drain_events().collect();
        for e in &events {
            self.record(e, now, &mut writes, &mut outgoing);
        }
        self.flush(&txn, writes).await?;
        txn.commit().await?;
        self.notes.clear();
        self.relay.notify_one();
        self.deliver(outgoing);
        tracing::info!(
            defined = wanted.len(),
            changed,
            removed,
            "routing: definitions from the configuration file applied"
        );
        self.file_owned = wanted;
        Ok(())
    }

    /// An admin operation on the definitions, whoever asks (the API through
    /// [`Self::admin`], the file through [`Self::apply_file`]).
    async fn define(
        &mut self,
        txn: &impl ConnectionTrait,
        op: AdminOp,
        now: Millis,
    ) -> Result<Result<AdminReply, ApiError>, StoreError> {
        Ok(match op {
            AdminOp::UpsertSkill(s) => {
                if let Err(e) = centralino_routing::validate_name("skill.name", &s.name) {
                    return Ok(Err(e.into()));
                }
                if s.description.chars().count() > 500 {
                    return Ok(Err(ApiError::invalid(
                        "skill.description",
                        "at most 500 characters",
                    )));
                }
                skill::Entity::insert(skill::ActiveModel {
                    name: Set(s.name.clone()),
                    description: Set(s.description.clone()),
                })
                .on_conflict(
                    OnConflict::column(skill::Column::Name)
                        .update_column(skill::Column::Description)
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
                self.skills.insert(s.name.clone(), s.description.clone());
                Ok(AdminReply::Skill(s))
            }
            AdminOp::DeleteSkill(name) => {
                if !self.skills.contains_key(&name) {
                    return Ok(Err(ApiError::NotFound(format!("skill {name}"))));
                }
                let used_by_queue = self.queues.values().find(|d| {
                    convert::queue_config(d)
                        .map(|c| convert::queue_skills(&c).any(|s| s == name))
                        .unwrap_or(false)
                });
                let used_by_agent = self
                    .agents
                    .values()
                    .find(|d| d.skills.iter().any(|s| s.skill == name));
                if let Some(q) = used_by_queue {
                    return Ok(Err(ApiError::FailedPrecondition(format!(
                        "skill {name} is required by queue {}",
                        q.name
                    ))));
                }
                if let Some(a) = used_by_agent {
                    return Ok(Err(ApiError::FailedPrecondition(format!(
                        "skill {name} is held by agent {}",
                        a.name
                    ))));
                }
                skill::Entity::delete_by_id(name.clone()).exec(txn).await?;
                self.skills.remove(&name);
                Ok(AdminReply::Deleted)
            }
            AdminOp::ListSkills => Ok(AdminReply::Skills(
                self.skills
                    .iter()
                    .map(|(name, description)| v1::Skill {
                        name: name.clone(),
                        description: description.clone(),
                    })
                    .collect(),
            )),
            AdminOp::UpsertQueue(def) => {
                let cfg = match convert::queue_config(&def) {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(e.into())),
                };
                if let Some(s) = convert::queue_skills(&cfg).find(|s| !self.skills.contains_key(*s))
                {
                    return Ok(Err(ApiError::invalid(
                        "queue.skills",
                        format!("unknown skill {s} (create it first)"),
                    )));
                }
                if let Err(e) = self.engine.upsert_queue(cfg, now) {
                    return Ok(Err(api_error(e)));
                }
                queue::Entity::insert(queue::ActiveModel {
                    name: Set(def.name.clone()),
                    definition: Set(def.encode_to_vec()),
                })
                .on_conflict(
                    OnConflict::column(queue::Column::Name)
                        .update_column(queue::Column::Definition)
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
                // A new name is what held work can have been waiting for.
                self.queue_defined |= self.queues.insert(def.name.clone(), def.clone()).is_none();
                Ok(AdminReply::Queue(def))
            }
            AdminOp::DeleteQueue(name) => {
                if !self.queues.contains_key(&name) {
                    return Ok(Err(ApiError::NotFound(format!("queue {name}"))));
                }
                // Its overflow step would be skipped without a word.
                let overflowing = self.queues.values().find(|d| {
                    d.name != name
                        && d.steps.iter().any(|st| {
                            matches!(&st.action,
                                Some(v1::routing_step::Action::OverflowTo(t)) if *t == name)
                        })
                });
                if let Some(d) = overflowing {
                    return Ok(Err(ApiError::FailedPrecondition(format!(
                        "queue {name} is where queue {} overflows to; change that first",
                        d.name
                    ))));
                }
                if let Err(e) = self.engine.remove_queue(&name) {
                    return Ok(Err(api_error(e)));
                }
                queue::Entity::delete_by_id(name.clone()).exec(txn).await?;
                // A queue defined again under this name starts from zero.
                figures::Entity::delete_by_id(name.clone())
                    .exec(txn)
                    .await?;
                self.queues.remove(&name);
                Ok(AdminReply::Deleted)
            }
            AdminOp::ListQueues => Ok(AdminReply::Queues(self.queues.values().cloned().collect())),
            AdminOp::UpsertAgent(def) => {
                let cfg = match convert::agent_config(&def) {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(e.into())),
                };
                if let Some((s, _)) = cfg
                    .skills
                    .iter()
                    .find(|(s, _)| !self.skills.contains_key(s))
                {
                    return Ok(Err(ApiError::invalid(
                        "agent.skills",
                        format!("unknown skill {s} (create it first)"),
                    )));
                }
                if let Err(e) = self.engine.upsert_agent(cfg, now) {
                    return Ok(Err(api_error(e)));
                }
                let presence = self
                    .engine
                    .agent(&def.name)
                    .map_or(Presence::Offline, |v| v.presence);
                let (p, reason) = convert::presence_to_row(&presence);
                agent::Entity::insert(agent::ActiveModel {
                    name: Set(def.name.clone()),
                    definition: Set(def.encode_to_vec()),
                    presence: Set(p.to_owned()),
                    reason: Set(reason),
                })
                .on_conflict(
                    OnConflict::column(agent::Column::Name)
                        .update_column(agent::Column::Definition)
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
                self.stored_presence
                    .entry(def.name.clone())
                    .or_insert_with(|| (p.to_owned(), String::new()));
                self.agents.insert(def.name.clone(), def.clone());
                Ok(AdminReply::Agent(def))
            }
            AdminOp::DeleteAgent(name) => {
                if !self.agents.contains_key(&name) {
                    return Ok(Err(ApiError::NotFound(format!("agent {name}"))));
                }
                if let Err(e) = self.engine.remove_agent(&name, now) {
                    return Ok(Err(api_error(e)));
                }
                agent::Entity::delete_by_id(name.clone()).exec(txn).await?;
                self.agents.remove(&name);
                self.stored_presence.remove(&name);
                self.sessions.remove(&name);
                self.gone.remove(&name);
                if let Some(feed) = self.feeds.get_mut(&name) {
                    feed.forget();
                }
                Ok(AdminReply::Deleted)
            }
            AdminOp::ListAgents => Ok(AdminReply::Agents(self.agents.values().cloned().collect())),
        })
    }

    /// Notes what one engine event changes (rows to sync, outbox message,
    /// presence) and what agents must hear after the commit.
    fn record(
        &mut self,
        e: &Event,
        now: Millis,
        writes: &mut Writes,
        outgoing: &mut Vec<(String, v1::AgentUpdate)>,
    ) {
        use v1::agent_update::Update;
        use v1::routing_event::Kind;
        let event = |payloads: &HashMap<InteractionId, v1::Interaction>,
                     kind: Kind,
                     id: InteractionId,
                     queue: &str| v1::RoutingEvent {
            kind: kind as i32,
            interaction_id: id.to_string(),
            channel: payloads.get(&id).map_or(0, |i| i.channel),
            queue: queue.to_owned(),
            at: Some(ts(now)),
            ..Default::default()
        };
        let p = &self.payloads;
        let out: Option<v1::RoutingEvent> = match e {
            Event::Queued {
                interaction, queue, ..
            } => {
                writes.touched.insert(*interaction);
                let mut ev = event(p, Kind::Queued, *interaction, queue);
                if let Some(pos) = self.engine.position(*interaction) {
                    ev.position = pos.position;
                    ev.estimated_wait_ms = pos.estimated_wait_ms;
                }
                Some(ev)
            }
            Event::Offered {
                interaction,
                agent,
                queue,
                ..
            } => {
                writes.touched.insert(*interaction);
                if let Some(offer) = self.offer_of(*interaction) {
                    outgoing.push((
                        agent.to_string(),
                        v1::AgentUpdate {
                            update: Some(Update::Offer(offer)),
                        },
                    ));
                }
                let mut ev = event(p, Kind::Offered, *interaction, queue);
                ev.agent = agent.to_string();
                Some(ev)
            }
            Event::OfferRevoked {
                interaction,
                agent,
                reason,
            } => {
                writes.touched.insert(*interaction);
                outgoing.push((
                    agent.to_string(),
                    v1::AgentUpdate {
                        update: Some(Update::OfferRevoked(v1::OfferRevoked {
                            interaction_id: interaction.to_string(),
                            reason: revoke_reason(*reason).to_owned(),
                        })),
                    },
                ));
                None
            }
            Event::Requeued {
                interaction,
                queue,
                reason,
            } => {
                writes.touched.insert(*interaction);
                let mut ev = event(p, Kind::Requeued, *interaction, queue);
                ev.reason = requeue_reason(*reason).to_owned();
                if let Some(pos) = self.engine.position(*interaction) {
                    ev.position = pos.position;
                    ev.estimated_wait_ms = pos.estimated_wait_ms;
                }
                Some(ev)
            }
            Event::Assigned {
                interaction,
                agent,
                queue,
                waited_ms,
                ..
            } => {
                writes.touched.insert(*interaction);
                if let Some(a) = self.assignment_of(*interaction) {
                    outgoing.push((
                        agent.to_string(),
                        v1::AgentUpdate {
                            update: Some(Update::Assigned(a)),
                        },
                    ));
                }
                let mut ev = event(p, Kind::Assigned, *interaction, queue);
                ev.agent = agent.to_string();
                ev.waited_ms = *waited_ms;
                Some(ev)
            }
            Event::Relaxed { interaction, .. } => {
                writes.touched.insert(*interaction);
                None
            }
            Event::Overflowed {
                interaction,
                from,
                to,
            } => {
                writes.touched.insert(*interaction);
                let mut ev = event(p, Kind::Overflowed, *interaction, to);
                ev.previous_queue = from.to_string();
                Some(ev)
            }
            Event::Closed {
                interaction,
                queue,
                outcome,
                waited_ms,
            } => {
                writes.touched.insert(*interaction);
                let mut ev = event(p, Kind::Closed, *interaction, queue);
                ev.reason = outcome.to_string();
                ev.waited_ms = *waited_ms;
                Some(ev)
            }
            Event::Abandoned {
                interaction,
                queue,
                waited_ms,
            } => {
                writes.touched.insert(*interaction);
                let mut ev = event(p, Kind::Abandoned, *interaction, queue);
                ev.waited_ms = *waited_ms;
                Some(ev)
            }
            Event::Completed {
                interaction,
                agent,
                queue,
                handle_ms,
            } => {
                writes.touched.insert(*interaction);
                outgoing.push((
                    agent.to_string(),
                    v1::AgentUpdate {
                        update: Some(Update::Released(v1::Released {
                            interaction_id: interaction.to_string(),
                            reason: "completed".into(),
                        })),
                    },
                ));
                let mut ev = event(p, Kind::Completed, *interaction, queue);
                ev.agent = agent.to_string();
                ev.handle_ms = *handle_ms;
                if let Some((disposition, notes)) = self.notes.get(interaction) {
                    ev.disposition = disposition.clone();
                    ev.wrap_up_notes = notes.clone();
                }
                Some(ev)
            }
            Event::CustomerLeft { interaction, agent } => {
                outgoing.push((
                    agent.to_string(),
                    v1::AgentUpdate {
                        update: Some(Update::CustomerLeft(v1::CustomerLeft {
                            interaction_id: interaction.to_string(),
                        })),
                    },
                ));
                None
            }
            Event::AgentChanged { agent, .. } => {
                if let Some(view) = self.engine.agent(agent) {
                    let (p, reason) = convert::presence_to_row(&view.presence);
                    let row = (p.to_owned(), reason);
                    if self.stored_presence.get(&**agent) != Some(&row) {
                        self.stored_presence.insert(agent.to_string(), row.clone());
                        writes.presence.insert(agent.to_string(), row);
                    }
                    outgoing.push((
                        agent.to_string(),
                        v1::AgentUpdate {
                            update: Some(Update::Status(convert::agent_status(&view))),
                        },
                    ));
                }
                None
            }
        };
        if let Some(ev) = out {
            let key = centralino_bus::keys::routing(ev.channel, ev.kind);
            writes.outbox.push((key, new_envelope(SERVICE, &ev)));
        }
    }

    /// Writes a batch: inbox claims, every touched interaction's row as the
    /// engine now has it (or its removal), presence changes, outbox events.
    async fn flush(
        &mut self,
        txn: &impl ConnectionTrait,
        writes: Writes,
    ) -> Result<(), StoreError> {
        use interaction::Column as C;
        if !writes.unclaims.is_empty() {
            inbox::release(txn, SERVICE, &writes.unclaims).await?;
        }
        let mut upserts = Vec::new();
        let mut gone = Vec::new();
        for id in &writes.touched {
            match self.engine.interaction(*id) {
                Some(v) => {
                    let payload = self.payloads.get(id);
                    // Fixed columns, then the stored interaction.
                    let size = 400 + payload.map_or(0, |p| p.encoded_len());
                    upserts.push((
                        size,
                        interaction::ActiveModel {
                            id: Set(id.to_string()),
                            queue: Set(v.queue.to_string()),
                            channel: Set(v.channel.as_str().to_owned()),
                            priority: Set(i32::try_from(v.priority).unwrap_or(0)),
                            arrived_at: Set(v.arrived_at as i64),
                            preferred_agent: Set(payload.and_then(preferred_agent)),
                            state: Set(v.state.to_owned()),
                            agent: Set(v.agent.map(|a| a.to_string())),
                            offer_expires_at: Set(v.offer_expires_at.map(|t| t as i64)),
                            assigned_at: Set(v.assigned_at.map(|t| t as i64)),
                            interaction: Set(payload
                                .map(|p| p.encode_to_vec())
                                .unwrap_or_default()),
                        },
                    ));
                }
                None => {
                    gone.push(id.to_string());
                    self.payloads.remove(id);
                }
            }
        }
        for chunk in centralino_store::chunks::by_size(&upserts, 200, |(size, _)| *size) {
            interaction::Entity::insert_many(chunk.iter().map(|(_, m)| m.clone()))
                .on_conflict(
                    OnConflict::column(C::Id)
                        .update_columns([
                            C::Queue,
                            C::Channel,
                            C::Priority,
                            C::ArrivedAt,
                            C::PreferredAgent,
                            C::State,
                            C::Agent,
                            C::OfferExpiresAt,
                            C::AssignedAt,
                            C::Interaction,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        for chunk in centralino_store::chunks::by_size(&gone, 500, |g| g.len() + 8) {
            interaction::Entity::delete_many()
                .filter(C::Id.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        let changed: Vec<figures::ActiveModel> = self
            .engine
            .take_changed_figures()
            .into_iter()
            .map(|(queue, f)| figures_row(&queue, &f))
            .collect();
        for chunk in centralino_store::chunks::by_size(&changed, 100, |_| 160) {
            use figures::Column as F;
            figures::Entity::insert_many(chunk.iter().cloned())
                .on_conflict(
                    OnConflict::column(F::Queue)
                        .update_columns([
                            F::Entered,
                            F::Answered,
                            F::AnsweredInSl,
                            F::Abandoned,
                            F::Closed,
                            F::Overflowed,
                            F::WaitAnsweredMs,
                            F::AhtMs,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
        }
        for (name, (presence, reason)) in writes.presence {
            agent::Entity::update_many()
                .filter(agent::Column::Name.eq(name))
                .col_expr(agent::Column::Presence, Expr::value(presence))
                .col_expr(agent::Column::Reason, Expr::value(reason))
                .exec(txn)
                .await?;
        }
        if !writes.outbox.is_empty() {
            outbox::enqueue_many(txn, SERVICE, &writes.outbox).await?;
        }
        Ok(())
    }

    /// Sends what agents must hear, after the commit. A desktop that cannot keep
    /// up loses its session (it reconnects and gets a snapshot).
    fn deliver(&mut self, outgoing: Vec<(String, v1::AgentUpdate)>) {
        for (agent, update) in outgoing {
            // Numbered whether or not a desktop is connected: one that
            // reconnects within the grace resumes and sees it.
            let numbered = self.feeds.entry(agent.clone()).or_default().push(update);
            let Some(s) = self.sessions.get(&agent) else {
                continue;
            };
            if s.updates.try_send(numbered).is_err() {
                tracing::warn!(agent = %agent, "agent desktop is not keeping up; closing its session");
                self.sessions.remove(&agent);
                self.gone
                    .insert(agent, now_ms() + self.cfg.session_grace_ms);
            }
        }
    }

    /// Forgets processed message ids older than a week (redeliveries come
    /// within minutes), in the background.
    fn purge_inbox(&mut self) {
        let now = now_ms();
        self.early_abandons
            .retain(|_, at| now.saturating_sub(*at) < EARLY_ABANDON_MS);
        let db = self.db.clone();
        tokio::spawn(async move {
            let before = chrono::Utc::now() - chrono::Duration::days(7);
            match inbox::purge(&db, before).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "routing inbox purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "routing inbox purge failed"),
            }
        });
    }

    /// Publishes position and estimated wait of every waiting interaction
    /// (best effort, straight to the bus: the next round replaces a lost one).
    fn publish_positions(&self) {
        let now = now_ms();
        let mut envelopes = Vec::new();
        for q in self.queues.keys() {
            let Ok(positions) = self.engine.positions(q) else {
                continue;
            };
            for p in positions {
                let channel = self.payloads.get(&p.interaction).map_or(0, |i| i.channel);
                let ev = v1::RoutingEvent {
                    kind: v1::routing_event::Kind::Position as i32,
                    interaction_id: p.interaction.to_string(),
                    channel,
                    queue: q.clone(),
                    position: p.position,
                    estimated_wait_ms: p.estimated_wait_ms,
                    at: Some(ts(now)),
                    ..Default::default()
                };
                envelopes.push((
                    centralino_bus::keys::routing(channel, ev.kind),
                    new_envelope(SERVICE, &ev),
                ));
            }
        }
        if envelopes.is_empty() {
            return;
        }
        let bus = self.bus.clone();
        tokio::spawn(async move {
            for (key, env) in envelopes {
                if let Err(e) = bus.publish(key.exchange, &key.name, &env).await {
                    tracing::debug!(error = %e, "position event not published");
                    break;
                }
            }
        });
    }
}

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait as _, QueryFilter as _};

pub(crate) fn ts(ms: Millis) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

fn revoke_reason(r: centralino_routing::RevokeReason) -> &'static str {
    use centralino_routing::RevokeReason as R;
    match r {
        R::TimedOut => "timed-out",
        R::Abandoned => "abandoned",
        R::AgentUnavailable => "agent-unavailable",
        R::Transferred => "transferred",
    }
}

fn requeue_reason(r: centralino_routing::RequeueReason) -> &'static str {
    use centralino_routing::RequeueReason as R;
    match r {
        R::Rejected => "rejected",
        R::TimedOut => "timed-out",
        R::AgentUnavailable => "agent-unavailable",
        R::Transferred => "transferred",
        R::NotReached => "agent-not-reached",
    }
}

fn figures_row(queue: &str, f: &centralino_routing::QueueFigures) -> figures::ActiveModel {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    figures::ActiveModel {
        queue: Set(queue.to_owned()),
        entered: Set(n(f.entered)),
        answered: Set(n(f.answered)),
        answered_in_sl: Set(n(f.answered_in_sl)),
        abandoned: Set(n(f.abandoned)),
        closed: Set(n(f.closed)),
        overflowed: Set(n(f.overflowed)),
        wait_answered_ms: Set(n(f.wait_answered_ms)),
        aht_ms: Set(f.aht_ms.map(|a| a.round() as i64)),
    }
}

fn figures_of(row: &figures::Model) -> centralino_routing::QueueFigures {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    centralino_routing::QueueFigures {
        entered: n(row.entered),
        answered: n(row.answered),
        answered_in_sl: n(row.answered_in_sl),
        abandoned: n(row.abandoned),
        closed: n(row.closed),
        overflowed: n(row.overflowed),
        wait_answered_ms: n(row.wait_answered_ms),
        aht_ms: row.aht_ms.map(|a| a.max(0) as f64),
    }
}

/// The agent an interaction asks for (`preferred_agent` attribute), when it
/// could be an agent's name at all: anything else (too long, a NUL, spaces)
/// is ignored, as the name of nobody, rather than refused by the database
/// with the whole batch it came in.
fn preferred_agent(interaction: &v1::Interaction) -> Option<String> {
    interaction
        .attributes
        .get("preferred_agent")
        .filter(|a| centralino_routing::validate_name("preferred_agent", a).is_ok())
        .cloned()
}
