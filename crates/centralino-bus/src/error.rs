//! Bus errors.

/// What can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No queue is bound for a command's routing key.
    #[error("no queue is bound for {exchange} routing key {routing_key}")]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
    /// The broker refused the message (a negative confirm).
    #[error("broker refused the message: {0}")]
    Nacked(String),
    /// The broker could not be reached within the configured time.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A protocol-level failure on an open connection.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// A consumer or queue name outside `[A-Za-z0-9_-]{1,64}`.
    #[error("invalid consumer name {0:?}: use 1 to 64 letters, digits, '-' or '_'")]
    InvalidName(String),
    /// No consumer of that name ever declared its queue.
    #[error("no consumer named {0:?} has a queue")]
    UnknownConsumer(String),
    /// The message cannot be sent as it is (empty or oversized id, type or key).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The delivery's channel or subscription is gone; the message will be redelivered.
    #[error("delivery can no longer be settled: its subscription is closed")]
    SubscriptionClosed,
    /// The bus was shut down.
    #[error("bus is shut down")]
    Closed,
}

impl BusError {
    /// Whether waiting may cure it: the broker unreachable or the bus being
    /// reconnected, as opposed to a message or name that is wrong.
    pub fn is_transient(&self) -> bool {
        matches!(self, BusError::Unavailable(_) | BusError::Closed)
    }
}
