//! What an agent is doing: the presence it gave ([`Presence`]) and the status
//! the engine derives from it and from what the agent holds ([`AgentStatus`]).
//! Shared by the engine and the queue figures, which count agents by status.

/// What an agent said it is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    Offline,
    Available,
    NotReady(String),
}

/// What an agent is doing, derived from presence and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStatus {
    Offline,
    /// Available with nothing held.
    Idle,
    /// Available, holding or being offered something.
    Busy,
    /// Available, nothing held but wrap-up still running.
    WrapUp,
    NotReady(String),
}

impl AgentStatus {
    pub fn as_str(&self) -> &str {
        match self {
            AgentStatus::Offline => "offline",
            AgentStatus::Idle => "idle",
            AgentStatus::Busy => "busy",
            AgentStatus::WrapUp => "wrap-up",
            AgentStatus::NotReady(_) => "not-ready",
        }
    }
}
