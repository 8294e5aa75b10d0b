//! The Centralino bus: events and commands between services over RabbitMQ.
//!
//! Every message body is a [`centralino_proto::v1::Envelope`] carrying a unique
//! message id, the payload's protobuf type, the time it happened and the W3C trace
//! context of its producer. Two implementations share the [`Bus`] trait and one
//! contract-test suite:
//!
//! - [`AmqpBus`]: RabbitMQ. Persistent messages with publisher confirms and
//!   `mandatory`, a bounded in-flight window, durable quorum queues with a delivery
//!   limit and a dead-letter queue per consumer, manual acks, and its own reconnect
//!   loop with backoff that re-declares the topology (lapin's auto-recovery is off).
//! - [`MemoryBus`]: the same semantics in process, for the embedded single-process
//!   mode and unit tests.
//!
//! Delivery is at-least-once: a consumer acks only after its work is committed and
//! de-duplicates on the message id (see the inbox in `centralino-store`).

mod amqp;
pub mod backoff;
mod envelope;
mod error;
mod handoff;
pub mod keys;
mod memory;
pub mod pipeline;
mod topology;

use std::fmt;

pub use amqp::{AmqpBus, AmqpConfig};
pub use backoff::{Backoff, RetryParams};
pub use envelope::{
    COMMAND_REFUSED, DecodeError, EnvelopeExt, TypedPayload, command_refused, message_status,
    new_envelope,
};
pub use error::BusError;
pub use handoff::run_in_order;
pub use keys::Key;
pub use memory::MemoryBus;
pub use pipeline::{Handled, Handler, Pipeline};
pub use topology::{Topology, topic_matches};

pub use centralino_proto::v1::Envelope;

/// The two exchanges every deployment has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// Facts that happened (`interaction.<channel>.<event>`). Events nobody is bound
    /// to are parked in the `unrouted` queue, never dropped.
    Events,
    /// Requests to one adapter (`email.send`, `sms.send`). A command no queue is bound
    /// to is refused with [`BusError::Unroutable`].
    Commands,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exchange::Events => "events",
            Exchange::Commands => "commands",
        })
    }
}

/// What a consuming service subscribes to: its durable queue and the bindings.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// Service name, e.g. `history`; the queue is `<prefix>.<name>`.
    pub name: String,
    /// `(exchange, topic pattern)` pairs, e.g. `(Events, "interaction.*.created")`.
    pub bindings: Vec<(Exchange, String)>,
    /// Unacknowledged messages the consumer may hold at once.
    pub prefetch: u16,
    /// Deliver to one consumer of the queue at a time and fail over to the next
    /// when it goes away (RabbitMQ `x-single-active-consumer`): the active/standby
    /// mode of services that must have a single writer. Fixed when the queue is
    /// first declared.
    pub single_active: bool,
}

impl ConsumerSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            bindings: Vec::new(),
            prefetch: 64,
            single_active: false,
        }
    }

    pub fn bind(mut self, exchange: Exchange, pattern: impl Into<String>) -> Self {
        self.bindings.push((exchange, pattern.into()));
        self
    }

    /// Binds a key or pattern from [`keys`], on its own exchange.
    pub fn bind_key(self, key: Key) -> Self {
        self.bind(key.exchange, key.name)
    }

    /// See [`ConsumerSpec::single_active`].
    pub fn single_active(mut self) -> Self {
        self.single_active = true;
        self
    }

    pub fn prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    fn validate(&self) -> Result<(), BusError> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(BusError::InvalidName(self.name.clone()));
        }
        Ok(())
    }
}

/// Longest message id accepted (ids are UUIDs; stores key on them).
pub const MAX_MESSAGE_ID_LEN: usize = 64;
/// AMQP short strings (routing keys, type, app id) hold at most 255 bytes.
const MAX_SHORT: usize = 255;

/// Checks what both implementations need before a message goes out.
fn validate_outgoing(routing_key: &str, envelope: &Envelope) -> Result<(), BusError> {
    let invalid = |what: &str| Err(BusError::InvalidMessage(what.to_owned()));
    if routing_key.is_empty() || routing_key.len() > MAX_SHORT {
        return invalid("routing key must be 1 to 255 bytes");
    }
    if envelope.message_id.is_empty() || envelope.message_id.len() > MAX_MESSAGE_ID_LEN {
        return invalid("message id must be 1 to 64 bytes");
    }
    if envelope.event_type.is_empty() || envelope.event_type.len() > MAX_SHORT {
        return invalid("event type must be 1 to 255 bytes");
    }
    if envelope.source.len() > MAX_SHORT {
        return invalid("source must be at most 255 bytes");
    }
    Ok(())
}

/// Whether a received envelope can be processed (consumers de-duplicate on its id).
fn acceptable_incoming(envelope: &Envelope) -> bool {
    !envelope.message_id.is_empty() && envelope.message_id.len() <= MAX_MESSAGE_ID_LEN
}

/// A message parked in a consumer's dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub envelope: Envelope,
    pub routing_key: String,
    pub delivery_count: u32,
}

/// A bus: publish with confirmation, subscribe with manual acks, inspect and replay
/// dead letters.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes `envelope` and returns once the broker has confirmed it durably.
    async fn publish(
        &self,
        exchange: Exchange,
        routing_key: &str,
        envelope: &Envelope,
    ) -> Result<(), BusError>;

    /// Declares the consumer's queue and bindings (idempotently) and starts consuming.
    /// Dropping the [`Subscription`] returns every unacknowledged message to the queue.
    async fn subscribe(&self, spec: ConsumerSpec) -> Result<Subscription, BusError>;

    /// Up to `limit` messages in `consumer`'s dead-letter queue, oldest first, left in place.
    async fn dead_letters(&self, consumer: &str, limit: usize)
    -> Result<Vec<DeadLetter>, BusError>;

    /// Moves up to `max` dead-lettered messages back to `consumer`'s queue; returns how many.
    async fn replay_dead_letters(&self, consumer: &str, max: usize) -> Result<usize, BusError>;

    /// `memory` or `amqp`.
    fn kind(&self) -> &'static str;
}

/// The receiving end of a consumer. Yields deliveries until the bus shuts down.
pub struct Subscription {
    source: Box<dyn DeliverySource>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(source: Box<dyn DeliverySource>) -> Self {
        Self { source }
    }

    /// The next delivery; `None` once the subscription is closed for good.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.source.next().await
    }
}

#[async_trait::async_trait]
pub(crate) trait DeliverySource: Send {
    async fn next(&mut self) -> Option<Delivery>;
}

#[async_trait::async_trait]
pub(crate) trait Acker: Send + Sync {
    async fn settle(&self, outcome: Outcome) -> Result<(), BusError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ack,
    Retry,
    DeadLetter,
}

/// One message handed to a consumer. Settle it with [`ack`](Self::ack) after the
/// work is committed, [`retry`](Self::retry) on a transient failure (it comes back,
/// and after the delivery limit goes to the dead-letter queue), or
/// [`dead_letter`](Self::dead_letter) when it can never succeed. Dropping it
/// unsettled leaves it unacknowledged until the subscription ends.
pub struct Delivery {
    pub envelope: Envelope,
    /// The routing key it was published with.
    pub routing_key: String,
    /// True when the message was delivered before (to this or another consumer).
    pub redelivered: bool,
    /// Earlier deliveries that ended without an ack.
    pub delivery_count: u32,
    acker: Box<dyn Acker>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("message_id", &self.envelope.message_id)
            .field("event_type", &self.envelope.event_type)
            .field("routing_key", &self.routing_key)
            .field("redelivered", &self.redelivered)
            .field("delivery_count", &self.delivery_count)
            .finish()
    }
}

impl Delivery {
    pub(crate) fn new(
        envelope: Envelope,
        routing_key: String,
        redelivered: bool,
        delivery_count: u32,
        acker: Box<dyn Acker>,
    ) -> Self {
        Self {
            envelope,
            routing_key,
            redelivered,
            delivery_count,
            acker,
        }
    }

    /// The work is done and committed: remove the message.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.settle(Outcome::Ack).await
    }

    /// Transient failure: return the message to the queue.
    pub async fn retry(self) -> Result<(), BusError> {
        self.acker.settle(Outcome::Retry).await
    }

    /// Permanent failure: move the message to the dead-letter queue now.
    pub async fn dead_letter(self) -> Result<(), BusError> {
        self.acker.settle(Outcome::DeadLetter).await
    }
}
