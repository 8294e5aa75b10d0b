//! The routing engine: decides which agent is offered which interaction.
//!
//! A pure, deterministic state machine. Callers feed it configuration (queues,
//! agents), agent actions (log in, set state, accept, reject, complete) and
//! interactions (enqueue, cancel), each with the current time in milliseconds,
//! and call [`Engine::tick`] when [`Engine::next_deadline`] passes. It answers with
//! [`Event`]s (offered, assigned, requeued, abandoned, …) drained by
//! [`Engine::drain_events`]. It does no IO, reads no clock and spawns nothing,
//! which is what makes it testable, simulatable and fast.
//!
//! The rules it enforces:
//! - an agent is offered an interaction only when it has the queue's skills at
//!   the required levels (levels relax over wait time through routing steps),
//!   is `Available`, has free capacity on the interaction's channel, and holds
//!   nothing on an exclusive channel (by default voice and desk: while on a call
//!   nothing else is offered); offers, held interactions and wrap-up all count
//!   against capacity, so capacity is never exceeded;
//! - an agent who frees up gets the waiting interaction with the highest
//!   effective priority across every queue it serves, where effective priority
//!   = queue base priority + interaction priority + aging × seconds waited
//!   (aging is always > 0, so no interaction waits forever), ties by arrival;
//! - a new interaction goes to the ready agent the queue's [`Strategy`] picks;
//! - an offer goes to one agent at a time and expires after a per-channel
//!   timeout; a rejected or expired offer puts the interaction back in its
//!   place and keeps that agent away from it for a while; consecutive expired
//!   offers put the agent in not-ready (`missed-offers`).
//!
//! Invariant checked by the property tests after every step: no waiting
//! interaction has a ready, eligible, non-excluded agent.

#![forbid(unsafe_code)]

mod agent;
mod bitset;
mod config;
mod engine;
pub mod sim;
mod stats;

pub use agent::{AgentStatus, Presence};
pub use centralino_domain::{Channel, InteractionId};
pub use config::{
    AgentConfig, ChannelMap, EngineSettings, MAX_DURATION_MS, MAX_LEVEL, MIN_LEVEL, NameError,
    QueueConfig, ServiceLevel, SkillRequirement, Step, StepAction, Strategy, validate_name,
};
pub use engine::{
    AgentView, Engine, EngineError, Enqueue, Event, InteractionView, Location, MISSED_OFFERS,
    RequeueReason, RevokeReason,
};
pub use stats::{AgentCounts, Position, QueueFigures, QueueStats};

/// Milliseconds since the Unix epoch: the engine's only notion of time.
pub type Millis = u64;
