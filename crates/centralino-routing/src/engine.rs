//! The engine state machine.
//!
//! Layout, chosen for decisions in well under a microsecond:
//! - agents and interactions live in slabs addressed by dense indices; names and
//!   interaction ids map to them once at the edge;
//! - per channel, a bitset of *ready* agents (available, free capacity on that
//!   channel, nothing exclusive held) and an intrusive list of the same agents in
//!   order of last activity (longest idle first);
//! - per queue and requirement level, a bitset of *eligible* agents, so the
//!   candidates for an interaction are `eligible & ready` (a few word ANDs);
//! - waiting interactions sit in buckets per (queue, level, channel), ordered by
//!   a static key: effective priority at time `t` is `key + aging × t`, so the
//!   order inside a bucket never changes while time passes and comparing buckets
//!   costs one multiply each;
//! - timers (offer expiry, routing steps, wrap-up, exclusions, preferred-agent
//!   windows) sit in one heap and are validated when they fire, never cancelled.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;

use centralino_domain::{Channel, DomainError, InteractionId};

use crate::Millis;
use crate::agent::{AgentStatus, Presence};
use crate::bitset::BitSet;
use crate::config::{
    AgentConfig, EngineSettings, QueueConfig, SkillRequirement, StepAction, Strategy, index,
};
use crate::stats::{AgentCounts, Position, QueueCounters, QueueFigures, QueueStats};

const NIL: u32 = u32::MAX;
/// Fixed-point scale of priorities: one priority point = 1,000,000 units, so
/// aging of 0.001 points/s is one unit per millisecond.
const SCALE: i64 = 1_000_000;
/// Longest-idle walks the idle list at most this far before scanning candidates.
const IDLE_WALK: usize = 48;
/// Not-ready reason given to an agent who let too many offers expire.
pub const MISSED_OFFERS: &str = "missed-offers";

/// Why a call into the engine was refused. Nothing changed when it is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] DomainError),
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    #[error("unknown interaction {0}")]
    UnknownInteraction(InteractionId),
    #[error("interaction {0} is already known")]
    DuplicateInteraction(InteractionId),
    #[error("queue {queue} does not take {channel}")]
    ChannelNotServed { queue: String, channel: Channel },
    #[error("queue {queue} still has {waiting} interactions")]
    QueueBusy { queue: String, waiting: usize },
    #[error("agent {agent} still holds {held} interactions")]
    AgentBusy { agent: String, held: usize },
    #[error("interaction {interaction} is not offered to or held by {agent}")]
    NotYours {
        interaction: InteractionId,
        agent: String,
    },
    #[error("agent {0} is offline")]
    AgentOffline(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueReason {
    Rejected,
    TimedOut,
    /// The agent went offline or not-ready while the offer was open.
    AgentUnavailable,
    /// Moved by an agent or supervisor (transfer), keeping its place.
    Transferred,
    /// Assigned, but the adapter could not connect the customer to the agent
    /// (their phone did not answer).
    NotReached,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    TimedOut,
    /// The customer left (abandoned) while the offer was open.
    Abandoned,
    AgentUnavailable,
    /// Moved to another queue while offered.
    Transferred,
}

/// What the engine decided. Drained with [`Engine::drain_events`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Queued {
        interaction: InteractionId,
        queue: Arc<str>,
        channel: Channel,
    },
    Offered {
        interaction: InteractionId,
        agent: Arc<str>,
        queue: Arc<str>,
        channel: Channel,
        expires_at: Millis,
    },
    /// An open offer was taken back (the agent's screen should drop it).
    OfferRevoked {
        interaction: InteractionId,
        agent: Arc<str>,
        reason: RevokeReason,
    },
    Requeued {
        interaction: InteractionId,
        queue: Arc<str>,
        reason: RequeueReason,
    },
    Assigned {
        interaction: InteractionId,
        agent: Arc<str>,
        queue: Arc<str>,
        channel: Channel,
        waited_ms: u64,
    },
    /// A routing step replaced the skill requirements.
    Relaxed {
        interaction: InteractionId,
        queue: Arc<str>,
        level: u8,
    },
    Overflowed {
        interaction: InteractionId,
        from: Arc<str>,
        to: Arc<str>,
    },
    /// A close step ended the wait with an outcome for the adapter (voicemail, callback, …).
    Closed {
        interaction: InteractionId,
        queue: Arc<str>,
        outcome: Arc<str>,
        waited_ms: u64,
    },
    Abandoned {
        interaction: InteractionId,
        queue: Arc<str>,
        waited_ms: u64,
    },
    Completed {
        interaction: InteractionId,
        agent: Arc<str>,
        queue: Arc<str>,
        handle_ms: u64,
    },
    /// The customer left while an agent held the interaction.
    CustomerLeft {
        interaction: InteractionId,
        agent: Arc<str>,
    },
    AgentChanged {
        agent: Arc<str>,
        status: AgentStatus,
    },
}

/// A new interaction to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    pub id: InteractionId,
    pub queue: String,
    pub channel: Channel,
    /// 0–100, added to the queue's base priority.
    pub priority: u32,
    /// When the customer started waiting (kept across overflows, transfers and restarts).
    pub arrived_at: Millis,
    /// The customer's last agent, honoured for the queue's `preferred_agent_ms`.
    pub preferred_agent: Option<String>,
}

/// One interaction as the engine holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionView {
    pub queue: Arc<str>,
    pub channel: Channel,
    pub priority: u32,
    pub arrived_at: Millis,
    /// `waiting`, `offered` or `assigned`.
    pub state: &'static str,
    pub agent: Option<Arc<str>>,
    pub offer_expires_at: Option<Millis>,
    pub assigned_at: Option<Millis>,
}

/// Where an interaction is: its queue, `waiting` / `offered` / `assigned`, and the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub queue: Arc<str>,
    pub state: &'static str,
    pub agent: Option<Arc<str>>,
}

/// One agent as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub name: Arc<str>,
    pub presence: Presence,
    pub status: AgentStatus,
    pub capacity: [u16; Channel::COUNT],
    /// Offers, held interactions and wrap-ups per channel.
    pub load: [u16; Channel::COUNT],
    pub offers: Vec<InteractionId>,
    pub held: Vec<InteractionId>,
    pub missed_offers: u32,
}

// ---------------------------------------------------------------------------

type AgentIx = u32;
type IxIx = u32;
type BucketIx = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    key: Reverse<i64>,
    seq: u64,
    ix: IxIx,
}

#[derive(Debug)]
struct Level {
    reqs: Vec<(u32, u8)>,
    eligible: BitSet,
    /// Bucket per channel (index by channel), `NIL` when the queue does not take it.
    buckets: [BucketIx; Channel::COUNT],
}

#[derive(Debug)]
struct Queue {
    name: Arc<str>,
    config: QueueConfig,
    removed: bool,
    base: i64,
    levels: Vec<Level>,
    /// Level reached after each step (unchanged for overflow/close steps).
    step_levels: Vec<u8>,
    /// Best-proficiency score per agent (sum of levels on the base skills).
    scores: Vec<u16>,
    rr_cursor: usize,
    counters: QueueCounters,
}

#[derive(Debug)]
struct Bucket {
    queue: u32,
    level: u8,
    channel: Channel,
    set: BTreeSet<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting(BucketIx),
    Reserved(AgentIx, Millis),
    Offered(AgentIx, Millis),
    Assigned(AgentIx, Millis),
}

#[derive(Debug)]
struct Interaction {
    id: InteractionId,
    uid: u64,
    queue: u32,
    channel: Channel,
    priority: i64,
    arrived_at: Millis,
    entered_at: Millis,
    seq: u64,
    key: i64,
    level: u8,
    next_step: usize,
    status: Status,
    exclusions: Vec<(AgentIx, Millis)>,
    visited: Vec<u32>,
}

#[derive(Debug)]
struct Agent {
    name: Arc<str>,
    uid: u64,
    removed: bool,
    skills: Vec<(u32, u8)>,
    capacity: [u16; Channel::COUNT],
    presence: Presence,
    load: [u16; Channel::COUNT],
    wraps: Vec<(Channel, Millis, u64)>,
    offers: Vec<IxIx>,
    held: Vec<IxIx>,
    last_activity: Millis,
    missed: u32,
    ready_mask: u8,
    next: [AgentIx; Channel::COUNT],
    prev: [AgentIx; Channel::COUNT],
    buckets: Vec<BucketIx>,
    reserved: BTreeSet<Entry>,
    reported: AgentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Offer { ix: IxIx, uid: u64 },
    Step { ix: IxIx, uid: u64, step: usize },
    Exclusion { ix: IxIx, uid: u64 },
    Preferred { ix: IxIx, uid: u64 },
    Wrap { agent: AgentIx, uid: u64, wrap: u64 },
}

/// The routing engine. See the crate docs for the rules.
#[derive(Debug)]
pub struct Engine {
    settings: EngineSettings,
    /// Priority units gained per millisecond waited.
    aging: i64,
    origin: Millis,
    now: Millis,
    next_uid: u64,
    next_seq: u64,
    skills: HashMap<Arc<str>, u32>,
    queues: Vec<Queue>,
    queue_ix: HashMap<Arc<str>, u32>,
    buckets: Vec<Bucket>,
    agents: Vec<Agent>,
    agent_ix: HashMap<Arc<str>, AgentIx>,
    free_agents: Vec<AgentIx>,
    ixs: Vec<Option<Interaction>>,
    ix_of: HashMap<InteractionId, IxIx>,
    free_ixs: Vec<IxIx>,
    ready: [BitSet; Channel::COUNT],
    idle_head: [AgentIx; Channel::COUNT],
    idle_tail: [AgentIx; Channel::COUNT],
    timers: BinaryHeap<Reverse<(Millis, u64, Timer)>>,
    events: Vec<Event>,
    /// Queues whose figures changed since [`Engine::take_changed_figures`].
    figures_changed: Vec<u32>,
    /// Whether a queue is in `figures_changed` already (by queue index).
    figures_marked: Vec<bool>,
}

fn prio_key(base: i64, priority: i64, aging: i64, rel_arrival: i64) -> i64 {
    (base + priority)
        .saturating_mul(SCALE)
        .saturating_sub(aging.saturating_mul(rel_arrival))
}

impl Engine {
    /// An empty engine. `origin` is any time near now (it only keeps numbers small).
    pub fn new(settings: EngineSettings, origin: Millis) -> Result<Self, EngineError> {
        settings.validate()?;
        let aging = ((settings.aging_per_s * 1000.0).round() as i64).max(1);
        Ok(Self {
            settings,
            aging,
            origin,
            now: origin,
            next_uid: 1,
            next_seq: 1,
            skills: HashMap::new(),
            queues: Vec::new(),
            queue_ix: HashMap::new(),
            buckets: Vec::new(),
            agents: Vec::new(),
            agent_ix: HashMap::new(),
            free_agents: Vec::new(),
            ixs: Vec::new(),
            ix_of: HashMap::new(),
            free_ixs: Vec::new(),
            ready: Default::default(),
            idle_head: [NIL; Channel::COUNT],
            idle_tail: [NIL; Channel::COUNT],
            timers: BinaryHeap::new(),
            events: Vec::new(),
            figures_changed: Vec::new(),
            figures_marked: Vec::new(),
        })
    }

    /// The running figures of every queue that changed since the last call,
    /// for the service to store with the batch that changed them.
    pub fn take_changed_figures(&mut self) -> Vec<(Arc<str>, QueueFigures)> {
        for &qi in &self.figures_changed {
            if let Some(m) = self.figures_marked.get_mut(qi as usize) {
                *m = false;
            }
        }
        std::mem::take(&mut self.figures_changed)
            .into_iter()
            .filter_map(|qi| self.queues.get(qi as usize))
            .filter(|q| !q.removed)
            .map(|q| (q.name.clone(), q.counters.figures()))
            .collect()
    }

    /// Notes that a queue's figures changed (once per queue until taken).
    fn mark_figures(&mut self, qi: u32) {
        let i = qi as usize;
        if self.figures_marked.len() <= i {
            self.figures_marked.resize(i + 1, false);
        }
        if !self.figures_marked[i] {
            self.figures_marked[i] = true;
            self.figures_changed.push(qi);
        }
    }

    /// Gives a queue back the running figures it had before a takeover (as
    /// stored by the previous leader). They are not reported as changed.
    pub fn restore_figures(
        &mut self,
        queue: &str,
        figures: QueueFigures,
    ) -> Result<(), EngineError> {
        let qi = self.queue_index(queue)?;
        self.queues[qi as usize].counters = QueueCounters::from_figures(figures);
        Ok(())
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Takes every event produced since the last call, in order.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// The earliest time at which [`Engine::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }

    fn clock(&mut self, now: Millis) -> Millis {
        // Time never runs backwards inside the engine.
        self.now = self.now.max(now);
        self.now
    }

    fn rel(&self, t: Millis) -> i64 {
        t as i64 - self.origin as i64
    }

    fn uid(&mut self) -> u64 {
        self.next_uid += 1;
        self.next_uid
    }

    fn skill(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.skills.get(name) {
            return s;
        }
        let s = self.skills.len() as u32;
        self.skills.insert(Arc::from(name), s);
        s
    }

    fn timer(&mut self, at: Millis, t: Timer) {
        let seq = self.uid();
        self.timers.push(Reverse((at, seq, t)));
    }

    // ---- configuration --------------------------------------------------

    /// Creates or replaces a queue. Waiting interactions keep their arrival time
    /// and are re-ordered under the new priorities.
    pub fn upsert_queue(&mut self, config: QueueConfig, now: Millis) -> Result<(), EngineError> {
        config.validate()?;
        let now = self.clock(now);
        let name: Arc<str> = Arc::from(config.name.as_str());
        let mut levels_reqs = vec![config.skills.clone()];
        let mut step_levels = Vec::new();
        for step in &config.steps {
            if let StepAction::Relax(reqs) = &step.action {
                levels_reqs.push(reqs.clone());
            }
            step_levels.push((levels_reqs.len() - 1) as u8);
        }
        let qi = match self.queue_ix.get(&name) {
            Some(&qi) => {
                let waiting = self.queue_interactions(qi);
                if self.queues[qi as usize].config.channels != config.channels {
                    // Buckets depend on channels: only allowed when empty.
                    let busy = waiting
                        .iter()
                        .filter(|&&ix| {
                            self.ix(ix)
                                .is_some_and(|i| !config.channels.contains(&i.channel))
                        })
                        .count();
                    if busy > 0 {
                        return Err(EngineError::QueueBusy {
                            queue: name.to_string(),
                            waiting: busy,
                        });
                    }
                }
                // Only waiting work leaves its bucket: offered and held work stays
                // with its agent (its key and level are updated below).
                for &ix in &waiting {
                    if matches!(
                        self.ix(ix).map(|i| i.status),
                        Some(Status::Waiting(_) | Status::Reserved(..))
                    ) {
                        self.unlink_waiting(ix);
                    }
                }
                let q = &mut self.queues[qi as usize];
                if q.removed {
                    // Defined again after a removal: its figures start from zero.
                    q.counters = QueueCounters::default();
                }
                q.removed = false;
                qi
            }
            None => {
                let qi = self.queues.len() as u32;
                self.queues.push(Queue {
                    name: name.clone(),
                    config: config.clone(),
                    removed: false,
                    base: 0,
                    levels: Vec::new(),
                    step_levels: Vec::new(),
                    scores: Vec::new(),
                    rr_cursor: 0,
                    counters: QueueCounters::default(),
                });
                self.queue_ix.insert(name.clone(), qi);
                qi
            }
        };
        let reqs: Vec<Vec<(u32, u8)>> = levels_reqs
            .iter()
            .map(|level| {
                level
                    .iter()
                    .map(|r: &SkillRequirement| (self.skill(&r.skill), r.min_level))
                    .collect()
            })
            .collect();
        let mut levels = Vec::with_capacity(reqs.len());
        for (li, reqs) in reqs.into_iter().enumerate() {
            let mut buckets = [NIL; Channel::COUNT];
            for &c in &config.channels {
                // Reuse the bucket of the same (queue, level, channel) if it exists.
                let existing = self
                    .buckets
                    .iter()
                    .position(|b| b.queue == qi && b.level as usize == li && b.channel == c);
                buckets[index(c)] = match existing {
                    Some(b) => b as u32,
                    None => {
                        self.buckets.push(Bucket {
                            queue: qi,
                            level: li as u8,
                            channel: c,
                            set: BTreeSet::new(),
                        });
                        (self.buckets.len() - 1) as u32
                    }
                };
            }
            levels.push(Level {
                reqs,
                eligible: BitSet::default(),
                buckets,
            });
        }
        {
            let q = &mut self.queues[qi as usize];
            q.base = i64::from(config.base_priority);
            q.levels = levels;
            q.step_levels = step_levels;
            q.config = config;
        }
        for a in 0..self.agents.len() as u32 {
            self.index_agent_in_queue(a, qi);
        }
        self.rebuild_agent_buckets();
        // Re-file the waiting interactions under the new rules.
        for ix in self.queue_interactions(qi) {
            self.recompute_key(ix);
            self.clamp_level(ix);
            if matches!(self.ixm(ix).status, Status::Waiting(_)) {
                self.file(ix);
            }
        }
        let _ = now;
        self.dispatch_all();
        Ok(())
    }

    /// Removes an empty queue.
    pub fn remove_queue(&mut self, name: &str) -> Result<(), EngineError> {
        let qi = self.queue_index(name)?;
        let n = self.queue_interactions(qi).len();
        if n > 0 {
            return Err(EngineError::QueueBusy {
                queue: name.to_owned(),
                waiting: n,
            });
        }
        let q = &mut self.queues[qi as usize];
        q.removed = true;
        for level in &mut q.levels {
            level.eligible = BitSet::default();
        }
        self.rebuild_agent_buckets();
        Ok(())
    }

    /// Creates or updates an agent's skills and capacity. Presence is kept
    /// (a new agent starts offline).
    pub fn upsert_agent(&mut self, config: AgentConfig, now: Millis) -> Result<(), EngineError> {
        config.validate()?;
        let now = self.clock(now);
        let skills: Vec<(u32, u8)> = config
            .skills
            .iter()
            .map(|(s, l)| (self.skill(s), *l))
            .collect();
        let a = match self.agent_ix.get(config.name.as_str()) {
            Some(&a) => a,
            None => {
                let name: Arc<str> = Arc::from(config.name.as_str());
                let uid = self.uid();
                let agent = Agent {
                    name: name.clone(),
                    uid,
                    removed: false,
                    skills: Vec::new(),
                    capacity: [0; Channel::COUNT],
                    presence: Presence::Offline,
                    load: [0; Channel::COUNT],
                    wraps: Vec::new(),
                    offers: Vec::new(),
                    held: Vec::new(),
                    last_activity: now,
                    missed: 0,
                    ready_mask: 0,
                    next: [NIL; Channel::COUNT],
                    prev: [NIL; Channel::COUNT],
                    buckets: Vec::new(),
                    reserved: BTreeSet::new(),
                    reported: AgentStatus::Offline,
                };
                let a = match self.free_agents.pop() {
                    Some(a) => {
                        self.agents[a as usize] = agent;
                        a
                    }
                    None => {
                        self.agents.push(agent);
                        (self.agents.len() - 1) as u32
                    }
                };
                self.agent_ix.insert(name, a);
                a
            }
        };
        {
            let agent = &mut self.agents[a as usize];
            let mut skills = skills;
            skills.sort_unstable();
            agent.skills = skills;
            agent.capacity = config.capacity.0;
        }
        for qi in 0..self.queues.len() as u32 {
            self.index_agent_in_queue(a, qi);
        }
        self.rebuild_buckets_of(a);
        self.refresh(a);
        self.dispatch_agent(a);
        Ok(())
    }

    /// Removes an agent that holds nothing (open offers are requeued first).
    pub fn remove_agent(&mut self, name: &str, now: Millis) -> Result<(), EngineError> {
        let a = self.agent_index(name)?;
        let held = self.agents[a as usize].held.len();
        if held > 0 {
            return Err(EngineError::AgentBusy {
                agent: name.to_owned(),
                held,
            });
        }
        self.set_presence(name, Presence::Offline, now)?;
        // An offline agent can still hold an offer restored after a restart.
        self.release_agent_offers(a, RevokeReason::AgentUnavailable);
        self.release_reserved(a);
        let agent = &mut self.agents[a as usize];
        agent.removed = true;
        agent.skills.clear();
        agent.capacity = [0; Channel::COUNT];
        agent.wraps.clear();
        agent.load = [0; Channel::COUNT];
        for qi in 0..self.queues.len() as u32 {
            self.index_agent_in_queue(a, qi);
        }
        self.agents[a as usize].buckets.clear();
        self.refresh(a);
        let name = self.agents[a as usize].name.clone();
        self.agent_ix.remove(&name);
        // The slot goes to the next agent added: this agent's exclusions
        // must not keep that one away from interactions it never refused.
        for i in self.ixs.iter_mut().flatten() {
            i.exclusions.retain(|&(x, _)| x != a);
        }
        self.free_agents.push(a);
        Ok(())
    }

    fn queue_index(&self, name: &str) -> Result<u32, EngineError> {
        match self.queue_ix.get(name) {
            Some(&qi) if !self.queues[qi as usize].removed => Ok(qi),
            _ => Err(EngineError::UnknownQueue(name.to_owned())),
        }
    }

    fn agent_index(&self, name: &str) -> Result<AgentIx, EngineError> {
        self.agent_ix
            .get(name)
            .copied()
            .ok_or_else(|| EngineError::UnknownAgent(name.to_owned()))
    }

    fn ix(&self, ix: IxIx) -> Option<&Interaction> {
        self.ixs.get(ix as usize).and_then(Option::as_ref)
    }

    fn ixm(&mut self, ix: IxIx) -> &mut Interaction {
        match self.ixs.get_mut(ix as usize).and_then(Option::as_mut) {
            Some(i) => i,
            None => unreachable!("interaction slot {ix} is empty"),
        }
    }

    fn queue_interactions(&self, qi: u32) -> Vec<IxIx> {
        self.ixs
            .iter()
            .enumerate()
            .filter_map(|(n, i)| i.as_ref().filter(|i| i.queue == qi).map(|_| n as u32))
            .collect()
    }

    fn meets(agent: &Agent, reqs: &[(u32, u8)]) -> bool {
        reqs.iter().all(|&(s, min)| {
            agent
                .skills
                .binary_search_by_key(&s, |&(k, _)| k)
                .is_ok_and(|p| agent.skills[p].1 >= min)
        })
    }

    fn index_agent_in_queue(&mut self, a: AgentIx, qi: u32) {
        let agent = &self.agents[a as usize];
        let q = &mut self.queues[qi as usize];
        let live = !agent.removed && !q.removed;
        let score: u16 = q.levels.first().map_or(0, |l| {
            l.reqs
                .iter()
                .map(|&(s, _)| {
                    agent
                        .skills
                        .binary_search_by_key(&s, |&(k, _)| k)
                        .map_or(0, |p| u16::from(agent.skills[p].1))
                })
                .sum()
        });
        for level in &mut q.levels {
            level
                .eligible
                .set(a as usize, live && Self::meets(agent, &level.reqs));
        }
        if q.scores.len() <= a as usize {
            q.scores.resize(a as usize + 1, 0);
        }
        q.scores[a as usize] = score;
    }

    fn rebuild_buckets_of(&mut self, a: AgentIx) {
        let mut out = Vec::new();
        for q in &self.queues {
            if q.removed {
                continue;
            }
            for level in &q.levels {
                if level.eligible.get(a as usize) {
                    out.extend(level.buckets.iter().copied().filter(|&b| b != NIL));
                }
            }
        }
        self.agents[a as usize].buckets = out;
    }

    fn rebuild_agent_buckets(&mut self) {
        for a in 0..self.agents.len() as u32 {
            self.rebuild_buckets_of(a);
        }
    }

    // ---- readiness --------------------------------------------------------

    fn ready_mask(&self, agent: &Agent) -> u8 {
        if agent.removed || agent.presence != Presence::Available {
            return 0;
        }
        let ex = &self.settings.exclusive.0;
        if (0..Channel::COUNT).any(|c| ex[c] && agent.load[c] > 0) {
            return 0;
        }
        let mut mask = 0;
        for c in 0..Channel::COUNT {
            if agent.load[c] < agent.capacity[c] {
                mask |= 1 << c;
            }
        }
        mask
    }

    fn unlink_idle(&mut self, a: AgentIx, c: usize) {
        let (prev, next) = {
            let ag = &self.agents[a as usize];
            (ag.prev[c], ag.next[c])
        };
        if prev == NIL {
            self.idle_head[c] = next;
        } else {
            self.agents[prev as usize].next[c] = next;
        }
        if next == NIL {
            self.idle_tail[c] = prev;
        } else {
            self.agents[next as usize].prev[c] = prev;
        }
        let ag = &mut self.agents[a as usize];
        ag.prev[c] = NIL;
        ag.next[c] = NIL;
    }

    /// Appends at the tail, or earlier if an agent restored with an older
    /// activity time must keep the list ordered.
    fn push_idle(&mut self, a: AgentIx, c: usize) {
        let t = self.agents[a as usize].last_activity;
        let mut after = self.idle_tail[c];
        while after != NIL && self.agents[after as usize].last_activity > t {
            after = self.agents[after as usize].prev[c];
        }
        let before = if after == NIL {
            self.idle_head[c]
        } else {
            self.agents[after as usize].next[c]
        };
        {
            let ag = &mut self.agents[a as usize];
            ag.prev[c] = after;
            ag.next[c] = before;
        }
        if after == NIL {
            self.idle_head[c] = a;
        } else {
            self.agents[after as usize].next[c] = a;
        }
        if before == NIL {
            self.idle_tail[c] = a;
        } else {
            self.agents[before as usize].prev[c] = a;
        }
    }

    /// Recomputes readiness after any change to the agent; reports a changed status.
    fn refresh(&mut self, a: AgentIx) {
        let new = self.ready_mask(&self.agents[a as usize]);
        let old = self.agents[a as usize].ready_mask;
        if new != old {
            for c in 0..Channel::COUNT {
                let (was, is) = (old & (1 << c) != 0, new & (1 << c) != 0);
                if was && !is {
                    self.unlink_idle(a, c);
                    self.ready[c].set(a as usize, false);
                } else if is && !was {
                    self.push_idle(a, c);
                    self.ready[c].set(a as usize, true);
                }
            }
            self.agents[a as usize].ready_mask = new;
        }
        let status = Self::status_of(&self.agents[a as usize]);
        if status != self.agents[a as usize].reported {
            let agent = &mut self.agents[a as usize];
            agent.reported = status.clone();
            let name = agent.name.clone();
            self.events.push(Event::AgentChanged {
                agent: name,
                status,
            });
        }
    }

    /// Marks activity now (an offer, a completion, becoming available): moves the
    /// agent to the back of the longest-idle order.
    fn touch(&mut self, a: AgentIx) {
        self.agents[a as usize].last_activity = self.now;
        let mask = self.agents[a as usize].ready_mask;
        for c in 0..Channel::COUNT {
            if mask & (1 << c) != 0 {
                self.unlink_idle(a, c);
                self.push_idle(a, c);
            }
        }
    }

    fn status_of(agent: &Agent) -> AgentStatus {
        match &agent.presence {
            Presence::Offline => AgentStatus::Offline,
            Presence::NotReady(r) => AgentStatus::NotReady(r.clone()),
            Presence::Available => {
                if !agent.offers.is_empty() || !agent.held.is_empty() {
                    AgentStatus::Busy
                } else if !agent.wraps.is_empty() {
                    AgentStatus::WrapUp
                } else {
                    AgentStatus::Idle
                }
            }
        }
    }

    // ---- agent actions ----------------------------------------------------

    /// Logs in (`Available` / `NotReady`), pauses or logs out an agent. Open
    /// offers are taken back when it stops being available; interactions it
    /// holds stay with it until completed or transferred.
    pub fn set_presence(
        &mut self,
        name: &str,
        presence: Presence,
        now: Millis,
    ) -> Result<(), EngineError> {
        let a = self.agent_index(name)?;
        if let Presence::NotReady(reason) = &presence {
            crate::config::validate_name("reason", reason)?;
        }
        self.clock(now);
        if self.agents[a as usize].presence == presence {
            return Ok(());
        }
        let becomes_available = presence == Presence::Available;
        self.agents[a as usize].presence = presence;
        if becomes_available {
            self.agents[a as usize].missed = 0;
            self.touch(a);
            self.refresh(a);
            self.dispatch_agent(a);
        } else {
            self.refresh(a);
            self.release_agent_offers(a, RevokeReason::AgentUnavailable);
            self.release_reserved(a);
            self.refresh(a);
        }
        Ok(())
    }

    fn release_agent_offers(&mut self, a: AgentIx, reason: RevokeReason) {
        let offers = std::mem::take(&mut self.agents[a as usize].offers);
        for ix in offers {
            let channel = self.ixm(ix).channel;
            self.agents[a as usize].load[index(channel)] =
                self.agents[a as usize].load[index(channel)].saturating_sub(1);
            let id = self.ixm(ix).id;
            let agent = self.agents[a as usize].name.clone();
            self.events.push(Event::OfferRevoked {
                interaction: id,
                agent,
                reason,
            });
            self.requeue_waiting(ix, RequeueReason::AgentUnavailable);
        }
    }

    fn release_reserved(&mut self, a: AgentIx) {
        let reserved = std::mem::take(&mut self.agents[a as usize].reserved);
        for e in reserved {
            self.refile(e.ix);
        }
    }

    /// The agent accepts an open offer.
    pub fn accept(
        &mut self,
        agent: &str,
        interaction: InteractionId,
        now: Millis,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        let (a, ix) = self.offered_to(agent, interaction)?;
        let (qi, waited, channel) = {
            let i = self.ixm(ix);
            i.status = Status::Assigned(a, now);
            (i.queue, now.saturating_sub(i.arrived_at), i.channel)
        };
        let ag = &mut self.agents[a as usize];
        ag.offers.retain(|&x| x != ix);
        ag.held.push(ix);
        ag.missed = 0;
        let q = &mut self.queues[qi as usize];
        q.counters
            .answered(waited, q.config.service_level.threshold_ms);
        self.mark_figures(qi);
        let ev = Event::Assigned {
            interaction,
            agent: self.agents[a as usize].name.clone(),
            queue: self.queues[qi as usize].name.clone(),
            channel,
            waited_ms: waited,
        };
        self.events.push(ev);
        self.refresh(a);
        Ok(())
    }

    /// The agent turns down an open offer: the interaction goes back to its place
    /// and this agent is kept away from it for `exclusion_ms`.
    pub fn reject(
        &mut self,
        agent: &str,
        interaction: InteractionId,
        now: Millis,
    ) -> Result<(), EngineError> {
        self.clock(now);
        let (a, ix) = self.offered_to(agent, interaction)?;
        self.end_offer(a, ix, RequeueReason::Rejected);
        Ok(())
    }

    fn offered_to(
        &self,
        agent: &str,
        interaction: InteractionId,
    ) -> Result<(AgentIx, IxIx), EngineError> {
        let a = self.agent_index(agent)?;
        let ix = *self
            .ix_of
            .get(&interaction)
            .ok_or(EngineError::UnknownInteraction(interaction))?;
        match self.ix(ix).map(|i| i.status) {
            Some(Status::Offered(x, _)) if x == a => Ok((a, ix)),
            _ => Err(EngineError::NotYours {
                interaction,
                agent: agent.to_owned(),
            }),
        }
    }

    fn held_by(
        &self,
        agent: &str,
        interaction: InteractionId,
    ) -> Result<(AgentIx, IxIx), EngineError> {
        let a = self.agent_index(agent)?;
        let ix = *self
            .ix_of
            .get(&interaction)
            .ok_or(EngineError::UnknownInteraction(interaction))?;
        match self.ix(ix).map(|i| i.status) {
            Some(Status::Assigned(x, _)) if x == a => Ok((a, ix)),
            _ => Err(EngineError::NotYours {
                interaction,
                agent: agent.to_owned(),
            }),
        }
    }

    /// Rejected or expired offer: back in place, agent excluded for a while.
    fn end_offer(&mut self, a: AgentIx, ix: IxIx, reason: RequeueReason) {
        let until = self.now.saturating_add(self.settings.exclusion_ms);
        let (channel, uid) = {
            let i = self.ixm(ix);
            i.exclusions.push((a, until));
            (i.channel, i.uid)
        };
        self.timer(until, Timer::Exclusion { ix, uid });
        let ag = &mut self.agents[a as usize];
        ag.offers.retain(|&x| x != ix);
        ag.load[index(channel)] = ag.load[index(channel)].saturating_sub(1);
        self.requeue_waiting(ix, reason);
        self.refresh(a);
        self.dispatch_agent(a);
    }

    /// The adapter could not connect the customer of an interaction `agent`
    /// holds (their phone did not answer, was busy or unreachable): the
    /// interaction goes back to its place, the agent is kept away from it for
    /// `exclusion_ms` and set not ready with `reason` (redirection on no
    /// answer), so the next call does not ring the same empty desk.
    pub fn not_reached(
        &mut self,
        agent: &str,
        interaction: InteractionId,
        reason: &str,
        now: Millis,
    ) -> Result<(), EngineError> {
        crate::config::validate_name("reason", reason)?;
        self.clock(now);
        let (a, ix) = self.held_by(agent, interaction)?;
        let until = self.now.saturating_add(self.settings.exclusion_ms);
        let (channel, uid) = {
            let i = self.ixm(ix);
            i.exclusions.push((a, until));
            (i.channel, i.uid)
        };
        self.timer(until, Timer::Exclusion { ix, uid });
        let ag = &mut self.agents[a as usize];
        ag.held.retain(|&x| x != ix);
        ag.load[index(channel)] = ag.load[index(channel)].saturating_sub(1);
        // Not ready first, so the requeue does not offer it straight back.
        let presence = Presence::NotReady(reason.to_owned());
        if self.agents[a as usize].presence != presence {
            self.agents[a as usize].presence = presence;
            self.release_agent_offers(a, RevokeReason::AgentUnavailable);
            self.release_reserved(a);
        }
        self.requeue_waiting(ix, RequeueReason::NotReached);
        self.refresh(a);
        Ok(())
    }

    /// Finishes a held interaction. Wrap-up (the channel's default, or
    /// `wrap_up_ms` when given) keeps the slot busy until it ends.
    pub fn complete(
        &mut self,
        agent: &str,
        interaction: InteractionId,
        wrap_up_ms: Option<u64>,
        now: Millis,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        let (a, ix) = self.held_by(agent, interaction)?;
        let Some(i) = self.remove_interaction(ix) else {
            return Err(EngineError::UnknownInteraction(interaction));
        };
        let Status::Assigned(_, since) = i.status else {
            return Err(EngineError::UnknownInteraction(interaction));
        };
        let wrap = wrap_up_ms.unwrap_or(self.settings.wrap_up_ms.get(i.channel));
        let c = index(i.channel);
        let ag = &mut self.agents[a as usize];
        ag.held.retain(|&x| x != ix);
        if wrap > 0 {
            let w = self.next_uid + 1;
            self.next_uid = w;
            let ag = &mut self.agents[a as usize];
            ag.wraps.push((i.channel, now.saturating_add(wrap), w));
            let uid = ag.uid;
            self.timer(
                now.saturating_add(wrap),
                Timer::Wrap {
                    agent: a,
                    uid,
                    wrap: w,
                },
            );
        } else {
            self.agents[a as usize].load[c] = self.agents[a as usize].load[c].saturating_sub(1);
        }
        let handle = now.saturating_sub(since) + wrap;
        self.mark_figures(i.queue);
        let q = &mut self.queues[i.queue as usize];
        q.counters.handled(handle);
        let ev = Event::Completed {
            interaction,
            agent: self.agents[a as usize].name.clone(),
            queue: q.name.clone(),
            handle_ms: handle,
        };
        self.events.push(ev);
        self.touch(a);
        self.refresh(a);
        self.dispatch_agent(a);
        Ok(())
    }

    /// Ends every running wrap-up of the agent now.
    pub fn end_wrap_up(&mut self, agent: &str, now: Millis) -> Result<(), EngineError> {
        let a = self.agent_index(agent)?;
        self.clock(now);
        let wraps = std::mem::take(&mut self.agents[a as usize].wraps);
        for (channel, _, _) in wraps {
            self.agents[a as usize].load[index(channel)] =
                self.agents[a as usize].load[index(channel)].saturating_sub(1);
        }
        self.touch(a);
        self.refresh(a);
        self.dispatch_agent(a);
        Ok(())
    }

    /// Moves an interaction (waiting, offered or held) to `queue`, keeping its
    /// original arrival time, hence its place by priority.
    pub fn transfer(
        &mut self,
        interaction: InteractionId,
        queue: &str,
        now: Millis,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        let qi = self.queue_index(queue)?;
        let ix = *self
            .ix_of
            .get(&interaction)
            .ok_or(EngineError::UnknownInteraction(interaction))?;
        let channel = self.ixm(ix).channel;
        if !self.queues[qi as usize].config.channels.contains(&channel) {
            return Err(EngineError::ChannelNotServed {
                queue: queue.to_owned(),
                channel,
            });
        }
        let mut freed = None;
        match self.ixm(ix).status {
            Status::Waiting(_) | Status::Reserved(..) => self.unlink_waiting(ix),
            Status::Offered(a, _) | Status::Assigned(a, _) => {
                if matches!(self.ixm(ix).status, Status::Offered(..)) {
                    self.events.push(Event::OfferRevoked {
                        interaction,
                        agent: self.agents[a as usize].name.clone(),
                        reason: RevokeReason::Transferred,
                    });
                }
                let ag = &mut self.agents[a as usize];
                ag.offers.retain(|&x| x != ix);
                ag.held.retain(|&x| x != ix);
                ag.load[index(channel)] = ag.load[index(channel)].saturating_sub(1);
                freed = Some(a);
            }
        }
        {
            let i = self.ixm(ix);
            i.queue = qi;
            i.entered_at = now;
            i.level = 0;
            i.next_step = 0;
            if !i.visited.contains(&qi) {
                i.visited.push(qi);
            }
        }
        self.recompute_key(ix);
        self.requeue_waiting(ix, RequeueReason::Transferred);
        if let Some(a) = freed {
            self.refresh(a);
            self.dispatch_agent(a);
        }
        Ok(())
    }

    // ---- interactions -------------------------------------------------------

    /// What [`Engine::enqueue`] would refuse, without changing anything.
    pub fn check_enqueue(&self, req: &Enqueue) -> Result<(), EngineError> {
        if self.ix_of.contains_key(&req.id) {
            return Err(EngineError::DuplicateInteraction(req.id));
        }
        if req.priority > centralino_domain::MAX_PRIORITY {
            return Err(DomainError::invalid("priority", "must be 0 to 100").into());
        }
        let qi = self.queue_index(&req.queue)?;
        if !self.queues[qi as usize]
            .config
            .channels
            .contains(&req.channel)
        {
            return Err(EngineError::ChannelNotServed {
                queue: req.queue.clone(),
                channel: req.channel,
            });
        }
        Ok(())
    }

    /// Queues a new interaction and offers it at once if an agent is ready.
    pub fn enqueue(&mut self, req: Enqueue, now: Millis) -> Result<(), EngineError> {
        self.admit(req, now, true)
    }

    /// Queues again an interaction that was already waiting before a
    /// takeover (its entry is in the restored figures: not counted again).
    pub fn restore_waiting(&mut self, req: Enqueue, now: Millis) -> Result<(), EngineError> {
        self.admit(req, now, false)
    }

    fn admit(&mut self, req: Enqueue, now: Millis, entered: bool) -> Result<(), EngineError> {
        self.check_enqueue(&req)?;
        let now = self.clock(now);
        let qi = self.queue_index(&req.queue)?;
        let q = &self.queues[qi as usize];
        let preferred = match &req.preferred_agent {
            Some(p) if q.config.preferred_agent_ms > 0 => self.agent_ix.get(p.as_str()).copied(),
            _ => None,
        };
        let arrived_at = req.arrived_at.min(now);
        let key = prio_key(
            q.base,
            i64::from(req.priority),
            self.aging,
            self.rel(arrived_at),
        );
        let uid = self.uid();
        let seq = self.next_seq;
        self.next_seq += 1;
        let i = Interaction {
            id: req.id,
            uid,
            queue: qi,
            channel: req.channel,
            priority: i64::from(req.priority),
            arrived_at,
            // Steps count from arrival, so a restored interaction resumes them.
            entered_at: arrived_at,
            seq,
            key,
            level: 0,
            next_step: 0,
            status: Status::Waiting(NIL),
            exclusions: Vec::new(),
            visited: vec![qi],
        };
        let ix = match self.free_ixs.pop() {
            Some(ix) => {
                self.ixs[ix as usize] = Some(i);
                ix
            }
            None => {
                self.ixs.push(Some(i));
                (self.ixs.len() - 1) as u32
            }
        };
        self.ix_of.insert(req.id, ix);
        if entered {
            self.queues[qi as usize].counters.entered += 1;
            self.mark_figures(qi);
        }
        self.events.push(Event::Queued {
            interaction: req.id,
            queue: self.queues[qi as usize].name.clone(),
            channel: req.channel,
        });
        // Steps already due (a restored interaction) apply before routing.
        self.advance_steps(ix);
        if self.ix(ix).is_none() {
            return Ok(());
        }
        if let Some(p) = preferred
            && self.can_reserve(p, ix)
        {
            let until = now.saturating_add(self.queues[qi as usize].config.preferred_agent_ms);
            self.reserve(ix, p, until);
            self.dispatch_agent(p);
            return Ok(());
        }
        self.file(ix);
        self.dispatch_interaction(ix);
        Ok(())
    }

    fn can_reserve(&self, a: AgentIx, ix: IxIx) -> bool {
        let Some(i) = self.ix(ix) else { return false };
        let agent = &self.agents[a as usize];
        agent.presence != Presence::Offline
            && agent.capacity[index(i.channel)] > 0
            && self.queues[i.queue as usize].levels[i.level as usize]
                .eligible
                .get(a as usize)
    }

    fn reserve(&mut self, ix: IxIx, a: AgentIx, until: Millis) {
        let uid = {
            let i = self.ixm(ix);
            i.status = Status::Reserved(a, until);
            i.uid
        };
        let e = self.entry(ix);
        self.agents[a as usize].reserved.insert(e);
        self.timer(until, Timer::Preferred { ix, uid });
    }

    /// The customer left. Returns `true` when the interaction was still waiting
    /// or offered (an abandon), `false` when an agent held it (the agent keeps it
    /// until completing it).
    pub fn cancel(&mut self, interaction: InteractionId, now: Millis) -> Result<bool, EngineError> {
        self.leave(interaction, None, now)
    }

    /// Work its creator closed (a task done elsewhere): as [`Engine::cancel`],
    /// but counted and reported as closed with `outcome`, not as an abandon.
    pub fn withdraw(
        &mut self,
        interaction: InteractionId,
        outcome: &str,
        now: Millis,
    ) -> Result<bool, EngineError> {
        self.leave(interaction, Some(Arc::from(outcome)), now)
    }

    fn leave(
        &mut self,
        interaction: InteractionId,
        closed: Option<Arc<str>>,
        now: Millis,
    ) -> Result<bool, EngineError> {
        let now = self.clock(now);
        let ix = *self
            .ix_of
            .get(&interaction)
            .ok_or(EngineError::UnknownInteraction(interaction))?;
        let status = self.ixm(ix).status;
        if let Status::Assigned(a, _) = status {
            let agent = self.agents[a as usize].name.clone();
            self.events.push(Event::CustomerLeft { interaction, agent });
            return Ok(false);
        }
        let (qi, arrived) = {
            let i = self.ixm(ix);
            (i.queue, i.arrived_at)
        };
        if let Status::Offered(a, _) = status {
            let channel = self.ixm(ix).channel;
            let ag = &mut self.agents[a as usize];
            ag.offers.retain(|&x| x != ix);
            ag.load[index(channel)] = ag.load[index(channel)].saturating_sub(1);
            let agent = ag.name.clone();
            self.events.push(Event::OfferRevoked {
                interaction,
                agent,
                reason: RevokeReason::Abandoned,
            });
            self.remove_interaction(ix);
            self.refresh(a);
        } else {
            self.unlink_waiting(ix);
            self.remove_interaction(ix);
        }
        let waited = now.saturating_sub(arrived);
        self.mark_figures(qi);
        let q = &mut self.queues[qi as usize];
        match closed {
            Some(outcome) => {
                q.counters.closed += 1;
                self.events.push(Event::Closed {
                    interaction,
                    queue: q.name.clone(),
                    outcome,
                    waited_ms: waited,
                });
            }
            None => {
                q.counters.abandoned += 1;
                self.events.push(Event::Abandoned {
                    interaction,
                    queue: q.name.clone(),
                    waited_ms: waited,
                });
            }
        }
        if let Status::Offered(a, _) = status {
            self.dispatch_agent(a);
        }
        Ok(true)
    }

    fn remove_interaction(&mut self, ix: IxIx) -> Option<Interaction> {
        let i = self.ixs.get_mut(ix as usize)?.take()?;
        self.ix_of.remove(&i.id);
        self.free_ixs.push(ix);
        Some(i)
    }

    fn entry(&self, ix: IxIx) -> Entry {
        let Some(i) = self.ix(ix) else {
            unreachable!("entry of a missing interaction")
        };
        Entry {
            key: Reverse(i.key),
            seq: i.seq,
            ix,
        }
    }

    fn recompute_key(&mut self, ix: IxIx) {
        let (qi, prio, arrived) = {
            let i = self.ixm(ix);
            (i.queue, i.priority, i.arrived_at)
        };
        let q = &self.queues[qi as usize];
        let key = prio_key(q.base, prio, self.aging, self.rel(arrived));
        self.ixm(ix).key = key;
    }

    fn clamp_level(&mut self, ix: IxIx) {
        let qi = self.ixm(ix).queue;
        let max = self.queues[qi as usize].levels.len().saturating_sub(1) as u8;
        let i = self.ixm(ix);
        i.level = i.level.min(max);
    }

    /// Takes a waiting or reserved interaction out of its bucket.
    fn unlink_waiting(&mut self, ix: IxIx) {
        let e = self.entry(ix);
        match self.ixm(ix).status {
            Status::Waiting(b) if b != NIL => {
                self.buckets[b as usize].set.remove(&e);
            }
            Status::Reserved(a, _) => {
                self.agents[a as usize].reserved.remove(&e);
            }
            _ => {}
        }
        self.ixm(ix).status = Status::Waiting(NIL);
    }

    /// Puts an unlinked interaction in the bucket of its queue, level and channel.
    fn file(&mut self, ix: IxIx) {
        let (qi, level, channel) = {
            let i = self.ixm(ix);
            (i.queue, i.level, i.channel)
        };
        let b = self.queues[qi as usize].levels[level as usize].buckets[index(channel)];
        let e = self.entry(ix);
        self.buckets[b as usize].set.insert(e);
        self.ixm(ix).status = Status::Waiting(b);
    }

    /// Files an unlinked interaction, applies steps that came due meanwhile and routes it.
    fn refile(&mut self, ix: IxIx) {
        self.ixm(ix).status = Status::Waiting(NIL);
        self.file(ix);
        self.advance_steps(ix);
        if self.ix(ix).is_some() {
            self.dispatch_interaction(ix);
        }
    }

    fn requeue_waiting(&mut self, ix: IxIx, reason: RequeueReason) {
        let (id, qi) = {
            let i = self.ixm(ix);
            i.status = Status::Waiting(NIL);
            (i.id, i.queue)
        };
        self.events.push(Event::Requeued {
            interaction: id,
            queue: self.queues[qi as usize].name.clone(),
            reason,
        });
        self.refile(ix);
    }

    // ---- steps --------------------------------------------------------------

    fn schedule_step(&mut self, ix: IxIx) {
        let Some(i) = self.ix(ix) else { return };
        let (uid, step, entered) = (i.uid, i.next_step, i.entered_at);
        if let Some(s) = self.queues[i.queue as usize].config.steps.get(step) {
            let at = entered.saturating_add(s.after_ms);
            self.timer(at, Timer::Step { ix, uid, step });
        }
    }

    /// Applies every step that is due while the interaction waits, then arms
    /// the timer for the next one. Steps of an offered or held interaction wait
    /// until it is back in the queue.
    fn advance_steps(&mut self, ix: IxIx) {
        loop {
            let Some(i) = self.ix(ix) else { return };
            let waiting = matches!(i.status, Status::Waiting(_));
            let q = &self.queues[i.queue as usize];
            let Some(step) = q.config.steps.get(i.next_step) else {
                return;
            };
            if !waiting || i.entered_at.saturating_add(step.after_ms) > self.now {
                if waiting {
                    self.schedule_step(ix);
                }
                return;
            }
            let action = step.action.clone();
            let to_level = q.step_levels[i.next_step];
            let (id, qi) = (i.id, i.queue);
            self.ixm(ix).next_step += 1;
            match action {
                StepAction::Relax(_) => {
                    let filed = matches!(self.ixm(ix).status, Status::Waiting(b) if b != NIL);
                    if filed {
                        self.unlink_waiting(ix);
                    }
                    self.ixm(ix).level = to_level;
                    if filed {
                        self.file(ix);
                    }
                    self.events.push(Event::Relaxed {
                        interaction: id,
                        queue: self.queues[qi as usize].name.clone(),
                        level: to_level,
                    });
                }
                StepAction::Overflow(target) => {
                    let Ok(ti) = self.queue_index(&target) else {
                        continue;
                    };
                    let Some(i) = self.ix(ix) else { return };
                    if i.visited.contains(&ti)
                        || !self.queues[ti as usize]
                            .config
                            .channels
                            .contains(&i.channel)
                    {
                        continue;
                    }
                    let filed = matches!(self.ixm(ix).status, Status::Waiting(b) if b != NIL);
                    if filed {
                        self.unlink_waiting(ix);
                    }
                    let now = self.now;
                    {
                        let i = self.ixm(ix);
                        i.queue = ti;
                        i.level = 0;
                        i.next_step = 0;
                        i.entered_at = now;
                        i.visited.push(ti);
                    }
                    self.recompute_key(ix);
                    self.queues[qi as usize].counters.overflowed += 1;
                    self.queues[ti as usize].counters.entered += 1;
                    self.mark_figures(qi);
                    self.mark_figures(ti);
                    self.events.push(Event::Overflowed {
                        interaction: id,
                        from: self.queues[qi as usize].name.clone(),
                        to: self.queues[ti as usize].name.clone(),
                    });
                    if filed {
                        self.file(ix);
                    }
                }
                StepAction::Close(outcome) => {
                    self.unlink_waiting(ix);
                    let Some(i) = self.remove_interaction(ix) else {
                        return;
                    };
                    let waited = self.now.saturating_sub(i.arrived_at);
                    self.mark_figures(qi);
                    let q = &mut self.queues[qi as usize];
                    q.counters.closed += 1;
                    self.events.push(Event::Closed {
                        interaction: id,
                        queue: q.name.clone(),
                        outcome: Arc::from(outcome.as_str()),
                        waited_ms: waited,
                    });
                    return;
                }
            }
        }
    }

    // ---- timers -------------------------------------------------------------

    /// Runs every timer due at `now`: expired offers, routing steps, wrap-ups,
    /// ended exclusions and preferred-agent windows.
    pub fn tick(&mut self, now: Millis) {
        let now = self.clock(now);
        while let Some(Reverse((at, _, t))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.fire(t);
        }
    }

    fn live(&self, ix: IxIx, uid: u64) -> bool {
        self.ix(ix).is_some_and(|i| i.uid == uid)
    }

    fn fire(&mut self, t: Timer) {
        match t {
            Timer::Offer { ix, uid } => {
                if !self.live(ix, uid) {
                    return;
                }
                let Status::Offered(a, expires) = self.ixm(ix).status else {
                    return;
                };
                if expires > self.now {
                    return;
                }
                let id = self.ixm(ix).id;
                let agent = self.agents[a as usize].name.clone();
                self.events.push(Event::OfferRevoked {
                    interaction: id,
                    agent,
                    reason: RevokeReason::TimedOut,
                });
                self.agents[a as usize].missed += 1;
                let max = self.settings.max_missed_offers;
                let pause = max > 0 && self.agents[a as usize].missed >= max;
                if pause {
                    self.agents[a as usize].presence = Presence::NotReady(MISSED_OFFERS.to_owned());
                    self.refresh(a);
                }
                self.end_offer(a, ix, RequeueReason::TimedOut);
                if pause {
                    self.release_agent_offers(a, RevokeReason::AgentUnavailable);
                    self.release_reserved(a);
                    self.refresh(a);
                }
            }
            Timer::Step { ix, uid, step } => {
                if self.live(ix, uid) && self.ixm(ix).next_step == step {
                    self.advance_steps(ix);
                    if self.ix(ix).is_some() {
                        self.dispatch_interaction(ix);
                    }
                }
            }
            Timer::Exclusion { ix, uid } => {
                if self.live(ix, uid) {
                    let now = self.now;
                    self.ixm(ix).exclusions.retain(|&(_, until)| until > now);
                    self.dispatch_interaction(ix);
                }
            }
            Timer::Preferred { ix, uid } => {
                if self.live(ix, uid)
                    && let Status::Reserved(a, until) = self.ixm(ix).status
                    && until <= self.now
                {
                    let e = self.entry(ix);
                    self.agents[a as usize].reserved.remove(&e);
                    self.refile(ix);
                }
            }
            Timer::Wrap { agent, uid, wrap } => {
                let Some(ag) = self.agents.get_mut(agent as usize) else {
                    return;
                };
                if ag.uid != uid {
                    return;
                }
                if let Some(p) = ag.wraps.iter().position(|w| w.2 == wrap) {
                    let (channel, _, _) = ag.wraps.swap_remove(p);
                    ag.load[index(channel)] = ag.load[index(channel)].saturating_sub(1);
                    self.touch(agent);
                    self.refresh(agent);
                    self.dispatch_agent(agent);
                }
            }
        }
    }

    // ---- decisions ----------------------------------------------------------

    fn excluded(i: &Interaction, a: AgentIx, now: Millis) -> bool {
        i.exclusions.iter().any(|&(x, until)| x == a && until > now)
    }

    /// Offers a waiting interaction to the agent its queue's strategy picks, if any is ready.
    fn dispatch_interaction(&mut self, ix: IxIx) -> bool {
        let Some(i) = self.ix(ix) else { return false };
        if !matches!(i.status, Status::Waiting(b) if b != NIL) {
            return false;
        }
        let c = index(i.channel);
        let q = &self.queues[i.queue as usize];
        let eligible = &q.levels[i.level as usize].eligible;
        let ready = &self.ready[c];
        let now = self.now;
        let ok = |a: usize| !Self::excluded(i, a as u32, now);
        let pick = match q.config.strategy {
            Strategy::LongestIdle => {
                let mut found = None;
                let mut cur = self.idle_head[c];
                let mut walked = 0;
                while cur != NIL && walked < IDLE_WALK {
                    if eligible.get(cur as usize) && ok(cur as usize) {
                        found = Some(cur);
                        break;
                    }
                    cur = self.agents[cur as usize].next[c];
                    walked += 1;
                }
                if found.is_none() && cur != NIL {
                    let mut best: Option<(Millis, u32)> = None;
                    eligible.for_each_and(ready, |a| {
                        if ok(a) {
                            let k = (self.agents[a].last_activity, a as u32);
                            if best.is_none_or(|b| k < b) {
                                best = Some(k);
                            }
                        }
                    });
                    found = best.map(|b| b.1);
                }
                found
            }
            Strategy::LeastOccupied => {
                let mut best: Option<(u64, Millis, u32)> = None;
                eligible.for_each_and(ready, |a| {
                    if ok(a) {
                        let ag = &self.agents[a];
                        let occ =
                            u64::from(ag.load[c]) * 1_000_000 / u64::from(ag.capacity[c].max(1));
                        let k = (occ, ag.last_activity, a as u32);
                        if best.is_none_or(|b| k < b) {
                            best = Some(k);
                        }
                    }
                });
                best.map(|b| b.2)
            }
            Strategy::RoundRobin => {
                let mut from = q.rr_cursor;
                let mut found = None;
                for _ in 0..8 {
                    match eligible.next_and_wrapping(ready, from) {
                        Some(a) if ok(a) => {
                            found = Some(a as u32);
                            break;
                        }
                        Some(a) => from = a + 1,
                        None => break,
                    }
                }
                if found.is_none() {
                    eligible.for_each_and(ready, |a| {
                        if found.is_none() && ok(a) {
                            found = Some(a as u32);
                        }
                    });
                }
                found
            }
            Strategy::BestProficiency => {
                let mut best: Option<(Reverse<u16>, Millis, u32)> = None;
                eligible.for_each_and(ready, |a| {
                    if ok(a) {
                        let score = q.scores.get(a).copied().unwrap_or(0);
                        let k = (Reverse(score), self.agents[a].last_activity, a as u32);
                        if best.is_none_or(|b| k < b) {
                            best = Some(k);
                        }
                    }
                });
                best.map(|b| b.2)
            }
        };
        match pick {
            Some(a) => {
                let qi = i.queue as usize;
                if self.queues[qi].config.strategy == Strategy::RoundRobin {
                    self.queues[qi].rr_cursor = a as usize + 1;
                }
                self.offer(ix, a);
                true
            }
            None => false,
        }
    }

    /// Offers the ready agent the waiting work with the highest effective
    /// priority across every queue it serves, as long as it has room. With one
    /// aging rate, comparing effective priorities is comparing static keys.
    fn dispatch_agent(&mut self, a: AgentIx) {
        loop {
            let agent = &self.agents[a as usize];
            let mask = agent.ready_mask;
            if mask == 0 {
                return;
            }
            let now = self.now;
            let mut best: Option<Entry> = None;
            for &b in &agent.buckets {
                let bucket = &self.buckets[b as usize];
                if mask & (1 << index(bucket.channel)) == 0 {
                    continue;
                }
                for e in &bucket.set {
                    if best.is_some_and(|b| *e >= b) {
                        break;
                    }
                    let Some(i) = self.ix(e.ix) else { continue };
                    if !Self::excluded(i, a, now) {
                        best = Some(*e);
                        break;
                    }
                }
            }
            for e in &agent.reserved {
                if best.is_some_and(|b| *e >= b) {
                    break;
                }
                let Some(i) = self.ix(e.ix) else { continue };
                if mask & (1 << index(i.channel)) != 0 {
                    best = Some(*e);
                    break;
                }
            }
            match best {
                Some(e) => self.offer(e.ix, a),
                None => return,
            }
        }
    }

    fn dispatch_all(&mut self) {
        for a in 0..self.agents.len() as u32 {
            self.dispatch_agent(a);
        }
    }

    fn offer(&mut self, ix: IxIx, a: AgentIx) {
        self.unlink_waiting(ix);
        let now = self.now;
        let (id, qi, channel, uid) = {
            let i = self.ixm(ix);
            (i.id, i.queue, i.channel, i.uid)
        };
        let expires = now.saturating_add(self.settings.offer_timeout_ms.get(channel));
        self.ixm(ix).status = Status::Offered(a, expires);
        let ag = &mut self.agents[a as usize];
        ag.load[index(channel)] += 1;
        ag.offers.push(ix);
        let agent = ag.name.clone();
        self.timer(expires, Timer::Offer { ix, uid });
        self.events.push(Event::Offered {
            interaction: id,
            agent,
            queue: self.queues[qi as usize].name.clone(),
            channel,
            expires_at: expires,
        });
        self.refresh(a);
        self.touch(a);
    }

    // ---- restore ------------------------------------------------------------

    /// Restores an interaction an agent already held before a restart.
    pub fn restore_assigned(
        &mut self,
        req: Enqueue,
        agent: &str,
        assigned_at: Millis,
        now: Millis,
    ) -> Result<(), EngineError> {
        self.restore(req, agent, now, |ix| {
            Status::Assigned(0, assigned_at.min(ix))
        })
    }

    /// Restores an offer that was open before a restart, with its original expiry.
    pub fn restore_offer(
        &mut self,
        req: Enqueue,
        agent: &str,
        expires_at: Millis,
        now: Millis,
    ) -> Result<(), EngineError> {
        self.restore(req, agent, now, |_| Status::Offered(0, expires_at))
    }

    fn restore(
        &mut self,
        req: Enqueue,
        agent: &str,
        now: Millis,
        status: impl Fn(Millis) -> Status,
    ) -> Result<(), EngineError> {
        let now = self.clock(now);
        let a = self.agent_index(agent)?;
        if self.ix_of.contains_key(&req.id) {
            return Err(EngineError::DuplicateInteraction(req.id));
        }
        let qi = self.queue_index(&req.queue)?;
        if !self.queues[qi as usize]
            .config
            .channels
            .contains(&req.channel)
        {
            return Err(EngineError::ChannelNotServed {
                queue: req.queue,
                channel: req.channel,
            });
        }
        let q = &self.queues[qi as usize];
        let key = prio_key(
            q.base,
            i64::from(req.priority),
            self.aging,
            self.rel(req.arrived_at),
        );
        let uid = self.uid();
        let seq = self.next_seq;
        self.next_seq += 1;
        let st = match status(now) {
            Status::Assigned(_, t) => Status::Assigned(a, t),
            Status::Offered(_, t) => Status::Offered(a, t),
            other => other,
        };
        let ix = match self.free_ixs.pop() {
            Some(ix) => ix,
            None => {
                self.ixs.push(None);
                (self.ixs.len() - 1) as u32
            }
        };
        self.ixs[ix as usize] = Some(Interaction {
            id: req.id,
            uid,
            queue: qi,
            channel: req.channel,
            priority: i64::from(req.priority),
            arrived_at: req.arrived_at.min(now),
            entered_at: req.arrived_at.min(now),
            seq,
            key,
            level: 0,
            next_step: 0,
            status: st,
            exclusions: Vec::new(),
            visited: vec![qi],
        });
        self.ix_of.insert(req.id, ix);
        let c = index(req.channel);
        let ag = &mut self.agents[a as usize];
        ag.load[c] += 1;
        match st {
            Status::Offered(_, expires) => {
                ag.offers.push(ix);
                self.timer(expires, Timer::Offer { ix, uid });
            }
            _ => ag.held.push(ix),
        }
        self.refresh(a);
        Ok(())
    }

    // ---- queries ------------------------------------------------------------

    pub fn agent(&self, name: &str) -> Option<AgentView> {
        let a = *self.agent_ix.get(name)?;
        let ag = &self.agents[a as usize];
        let ids = |v: &[IxIx]| {
            v.iter()
                .filter_map(|&ix| self.ix(ix).map(|i| i.id))
                .collect()
        };
        Some(AgentView {
            name: ag.name.clone(),
            presence: ag.presence.clone(),
            status: Self::status_of(ag),
            capacity: ag.capacity,
            load: ag.load,
            offers: ids(&ag.offers),
            held: ids(&ag.held),
            missed_offers: ag.missed,
        })
    }

    pub fn agents(&self) -> impl Iterator<Item = AgentView> + '_ {
        self.agent_ix.keys().filter_map(|n| self.agent(n))
    }

    pub fn queue_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.queues.iter().filter(|q| !q.removed).map(|q| &q.name)
    }

    pub fn queue_config(&self, name: &str) -> Option<&QueueConfig> {
        let qi = self.queue_index(name).ok()?;
        Some(&self.queues[qi as usize].config)
    }

    /// Where an interaction is.
    pub fn locate(&self, id: InteractionId) -> Option<Location> {
        let i = self.ix(*self.ix_of.get(&id)?)?;
        let queue = self.queues[i.queue as usize].name.clone();
        let agent = |a: AgentIx| Some(self.agents[a as usize].name.clone());
        Some(match i.status {
            Status::Waiting(_) | Status::Reserved(..) => Location {
                queue,
                state: "waiting",
                agent: None,
            },
            Status::Offered(a, _) => Location {
                queue,
                state: "offered",
                agent: agent(a),
            },
            Status::Assigned(a, _) => Location {
                queue,
                state: "assigned",
                agent: agent(a),
            },
        })
    }

    /// Everything the engine holds about one interaction, for persistence.
    pub fn interaction(&self, id: InteractionId) -> Option<InteractionView> {
        let i = self.ix(*self.ix_of.get(&id)?)?;
        let name = |a: AgentIx| Some(self.agents[a as usize].name.clone());
        let (state, agent, offer_expires_at, assigned_at) = match i.status {
            Status::Waiting(_) | Status::Reserved(..) => ("waiting", None, None, None),
            Status::Offered(a, t) => ("offered", name(a), Some(t), None),
            Status::Assigned(a, t) => ("assigned", name(a), None, Some(t)),
        };
        Some(InteractionView {
            queue: self.queues[i.queue as usize].name.clone(),
            channel: i.channel,
            priority: i.priority as u32,
            arrived_at: i.arrived_at,
            state,
            agent,
            offer_expires_at,
            assigned_at,
        })
    }

    /// When an open offer expires.
    pub fn offer_expiry(&self, id: InteractionId) -> Option<Millis> {
        match self.ix(*self.ix_of.get(&id)?)?.status {
            Status::Offered(_, expires) => Some(expires),
            _ => None,
        }
    }

    /// Number of interactions the engine knows (waiting, offered or held).
    pub fn len(&self) -> usize {
        self.ix_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ix_of.is_empty()
    }

    /// Every waiting interaction of a queue in the order agents will get them,
    /// with its 1-based position and estimated wait.
    pub fn positions(&self, queue: &str) -> Result<Vec<Position>, EngineError> {
        let qi = self.queue_index(queue)?;
        let mut waiting: Vec<(Entry, IxIx)> = self
            .ixs
            .iter()
            .enumerate()
            .filter_map(|(n, i)| {
                let i = i.as_ref()?;
                (i.queue == qi && matches!(i.status, Status::Waiting(_) | Status::Reserved(..)))
                    .then(|| (self.entry(n as u32), n as u32))
            })
            .collect();
        waiting.sort_unstable();
        let mut per_channel = [0u64; Channel::COUNT];
        Ok(waiting
            .into_iter()
            .filter_map(|(_, ix)| {
                let i = self.ix(ix)?;
                let c = index(i.channel);
                per_channel[c] += 1;
                let position = per_channel[c];
                Some(Position {
                    interaction: i.id,
                    position,
                    estimated_wait_ms: self.estimate(qi, i, position),
                })
            })
            .collect())
    }

    /// Position and estimated wait of one waiting interaction: 1 + the waiting
    /// interactions of its queue and channel ahead of it (counted in its
    /// buckets, without sorting the queue).
    pub fn position(&self, id: InteractionId) -> Option<Position> {
        let ix = *self.ix_of.get(&id)?;
        let i = self.ix(ix)?;
        if !matches!(i.status, Status::Waiting(_) | Status::Reserved(..)) {
            return None;
        }
        let e = self.entry(ix);
        let c = index(i.channel);
        let ahead: usize = self.queues[i.queue as usize]
            .levels
            .iter()
            .filter(|l| l.buckets[c] != NIL)
            .map(|l| self.buckets[l.buckets[c] as usize].set.range(..e).count())
            .sum();
        let position = ahead as u64 + 1;
        Some(Position {
            interaction: id,
            position,
            estimated_wait_ms: self.estimate(i.queue, i, position),
        })
    }

    /// Expected wait of the `position`-th interaction of its channel in line:
    /// `position × average handle time ÷ staffed capacity` (exact for the
    /// M/M/c queue once every agent is busy). `None` when nobody who could take
    /// it is logged in and available.
    fn estimate(&self, qi: u32, i: &Interaction, position: u64) -> Option<u64> {
        let q = &self.queues[qi as usize];
        let c = index(i.channel);
        let eligible = &q.levels[i.level as usize].eligible;
        let mut staffed = 0u64;
        let mut ready = false;
        for (w, &bits) in eligible.words().iter().enumerate() {
            let mut x = bits;
            while x != 0 {
                let a = w * 64 + x.trailing_zeros() as usize;
                x &= x - 1;
                let ag = &self.agents[a];
                if ag.presence == Presence::Available {
                    staffed += u64::from(ag.capacity[c]);
                    ready |=
                        ag.ready_mask & (1 << c) != 0 && !Self::excluded(i, a as u32, self.now);
                }
            }
        }
        if staffed == 0 {
            return None;
        }
        if ready && position == 1 {
            return Some(0);
        }
        let aht = q
            .counters
            .aht_ms()
            .unwrap_or(self.settings.default_handle_ms.get(i.channel) as f64);
        Some((position as f64 * aht / staffed as f64).round() as u64)
    }

    /// Live figures of one queue.
    pub fn queue_stats(&self, queue: &str, now: Millis) -> Result<QueueStats, EngineError> {
        let qi = self.queue_index(queue)?;
        let q = &self.queues[qi as usize];
        let now = now.max(self.now);
        let mut waiting = 0;
        let mut offered = 0;
        let mut longest = 0;
        for i in self.ixs.iter().flatten().filter(|i| i.queue == qi) {
            match i.status {
                Status::Waiting(_) | Status::Reserved(..) => {
                    waiting += 1;
                    longest = longest.max(now.saturating_sub(i.arrived_at));
                }
                Status::Offered(..) => offered += 1,
                Status::Assigned(..) => {}
            }
        }
        let mut agents = AgentCounts::default();
        if let Some(level) = q.levels.first() {
            for (w, &bits) in level.eligible.words().iter().enumerate() {
                let mut x = bits;
                while x != 0 {
                    let a = w * 64 + x.trailing_zeros() as usize;
                    x &= x - 1;
                    agents.count(&Self::status_of(&self.agents[a]));
                }
            }
        }
        Ok(q.counters
            .stats(q.name.clone(), waiting, offered, longest, agents, &q.config))
    }

    /// Checks every internal invariant; the property tests call it after each step.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        let now = self.now;
        for (a, ag) in self.agents.iter().enumerate() {
            if ag.removed {
                continue;
            }
            let mut expect = [0u16; Channel::COUNT];
            for &ix in ag.offers.iter().chain(&ag.held) {
                let i = self
                    .ix(ix)
                    .ok_or("agent references a missing interaction")?;
                expect[index(i.channel)] += 1;
            }
            for w in &ag.wraps {
                expect[index(w.0)] += 1;
            }
            if expect != ag.load {
                return Err(format!(
                    "agent {} load {:?} != {:?}",
                    ag.name, ag.load, expect
                ));
            }
            for c in 0..Channel::COUNT {
                if ag.load[c] > ag.capacity[c] && ag.capacity[c] > 0 {
                    return Err(format!("agent {} over capacity on channel {c}", ag.name));
                }
            }
            let ex = &self.settings.exclusive.0;
            let exclusive_items = ag
                .offers
                .iter()
                .chain(&ag.held)
                .filter_map(|&ix| self.ix(ix))
                .filter(|i| ex[index(i.channel)])
                .count()
                + ag.wraps.iter().filter(|w| ex[index(w.0)]).count();
            if exclusive_items > 1 {
                return Err(format!("agent {} has two exclusive items", ag.name));
            }
            if self.ready_mask(ag) != ag.ready_mask {
                return Err(format!("agent {} stale ready mask", ag.name));
            }
            for c in 0..Channel::COUNT {
                if self.ready[c].get(a) != (ag.ready_mask & (1 << c) != 0) {
                    return Err(format!("agent {} ready bit mismatch", ag.name));
                }
            }
        }
        // Idle lists are ordered by last activity and hold exactly the ready agents.
        for c in 0..Channel::COUNT {
            let mut cur = self.idle_head[c];
            let mut last = 0;
            let mut n = 0;
            while cur != NIL {
                let ag = &self.agents[cur as usize];
                if ag.last_activity < last {
                    return Err("idle list out of order".into());
                }
                last = ag.last_activity;
                n += 1;
                cur = ag.next[c];
            }
            let ready = self.ready[c]
                .words()
                .iter()
                .map(|w| w.count_ones())
                .sum::<u32>();
            if n != ready {
                return Err(format!("idle list has {n}, ready set {ready}"));
            }
        }
        // No waiting interaction has a ready, eligible, non-excluded agent.
        for i in self.ixs.iter().flatten() {
            if let Status::Waiting(b) = i.status {
                if b == NIL {
                    return Err("interaction waiting outside any bucket".into());
                }
                let c = index(i.channel);
                let eligible = &self.queues[i.queue as usize].levels[i.level as usize].eligible;
                let mut bad = None;
                eligible.for_each_and(&self.ready[c], |a| {
                    if !Self::excluded(i, a as u32, now) {
                        bad = Some(a);
                    }
                });
                if let Some(a) = bad {
                    return Err(format!(
                        "interaction {} waits while agent {} is ready for it",
                        i.id, self.agents[a].name
                    ));
                }
            }
        }
        Ok(())
    }
}
