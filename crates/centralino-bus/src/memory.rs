//! The in-process bus: RabbitMQ's semantics (topic routing, manual acks,
//! redelivery of unacked messages, delivery limit, dead-letter queues, unroutable
//! commands refused) without a broker. Used by the embedded single-process mode
//! and unit tests; shares the contract suite with [`crate::AmqpBus`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::{
    Acker, Bus, BusError, ConsumerSpec, DeadLetter, Delivery, DeliverySource, Envelope, Exchange,
    Outcome, Subscription, topic_matches,
};

/// Events kept for inspection when no queue is bound to them.
const UNROUTED_CAPACITY: usize = 10_000;

#[derive(Clone)]
struct Message {
    envelope: Envelope,
    routing_key: String,
    delivery_count: u32,
    redelivered: bool,
}

#[derive(Default)]
struct Queue {
    bindings: Vec<(Exchange, String)>,
    ready: VecDeque<Message>,
    /// delivery tag -> (subscriber id, message)
    unacked: BTreeMap<u64, (u64, Message)>,
    in_flight: HashMap<u64, usize>,
    dead: VecDeque<Message>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    unrouted: VecDeque<Message>,
    next_id: u64,
    closed: bool,
}

struct Inner {
    delivery_limit: u32,
    state: Mutex<State>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way
        // that matters more than stopping the process, so keep going with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns an unsettled message to the head of its queue, or dead-letters it
    /// once it has been returned more than the delivery limit.
    fn give_back(&self, queue: &mut Queue, mut msg: Message, front: bool) {
        msg.delivery_count += 1;
        msg.redelivered = true;
        if msg.delivery_count > self.delivery_limit {
            queue.dead.push_back(msg);
        } else if front {
            queue.ready.push_front(msg);
        } else {
            queue.ready.push_back(msg);
        }
    }
}

/// The in-process bus. Cheap to clone; clones share the same queues.
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus").finish_non_exhaustive()
    }
}

impl MemoryBus {
    /// A bus whose messages are dead-lettered after `delivery_limit` returns.
    pub fn new(delivery_limit: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                delivery_limit,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// Ends every subscription; later calls fail with [`BusError::Closed`].
    pub fn close(&self) {
        let mut state = self.inner.lock();
        state.closed = true;
        for q in state.queues.values() {
            q.notify.notify_waiters();
        }
    }

    /// Events published while no queue was bound to them (oldest first).
    pub fn unrouted(&self) -> Vec<Envelope> {
        self.inner
            .lock()
            .unrouted
            .iter()
            .map(|m| m.envelope.clone())
            .collect()
    }
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn publish(
        &self,
        exchange: Exchange,
        routing_key: &str,
        envelope: &Envelope,
    ) -> Result<(), BusError> {
        crate::validate_outgoing(routing_key, envelope)?;
        let mut state = self.inner.lock();
        if state.closed {
            return Err(BusError::Closed);
        }
        let msg = Message {
            envelope: envelope.clone(),
            routing_key: routing_key.to_owned(),
            delivery_count: 0,
            redelivered: false,
        };
        let mut routed = false;
        for q in state.queues.values_mut() {
            if q.bindings
                .iter()
                .any(|(ex, pattern)| *ex == exchange && topic_matches(pattern, routing_key))
            {
                q.ready.push_back(msg.clone());
                q.notify.notify_waiters();
                routed = true;
            }
        }
        if !routed {
            match exchange {
                Exchange::Events => {
                    if state.unrouted.len() >= UNROUTED_CAPACITY {
                        state.unrouted.pop_front();
                    }
                    state.unrouted.push_back(msg);
                }
                Exchange::Commands => {
                    return Err(BusError::Unroutable {
                        exchange: exchange.to_string(),
                        routing_key: routing_key.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&self, spec: ConsumerSpec) -> Result<Subscription, BusError> {
        spec.validate()?;
        let mut state = self.inner.lock();
        if state.closed {
            return Err(BusError::Closed);
        }
        state.next_id += 1;
        let id = state.next_id;
        let queue = state.queues.entry(spec.name.clone()).or_default();
        for binding in spec.bindings {
            if !queue.bindings.contains(&binding) {
                queue.bindings.push(binding);
            }
        }
        queue.in_flight.insert(id, 0);
        Ok(Subscription::new(Box::new(MemorySource {
            inner: self.inner.clone(),
            queue: spec.name,
            id,
            prefetch: usize::from(spec.prefetch.max(1)),
        })))
    }

    async fn dead_letters(
        &self,
        consumer: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let state = self.inner.lock();
        let queue = state
            .queues
            .get(consumer)
            .ok_or_else(|| BusError::UnknownConsumer(consumer.to_owned()))?;
        Ok(queue
            .dead
            .iter()
            .take(limit)
            .map(|m| DeadLetter {
                envelope: m.envelope.clone(),
                routing_key: m.routing_key.clone(),
                delivery_count: m.delivery_count,
            })
            .collect())
    }

    async fn replay_dead_letters(&self, consumer: &str, max: usize) -> Result<usize, BusError> {
        let mut state = self.inner.lock();
        let queue = state
            .queues
            .get_mut(consumer)
            .ok_or_else(|| BusError::UnknownConsumer(consumer.to_owned()))?;
        let n = max.min(queue.dead.len());
        for mut msg in queue.dead.drain(..n).collect::<Vec<_>>() {
            msg.delivery_count = 0;
            queue.ready.push_back(msg);
        }
        queue.notify.notify_waiters();
        Ok(n)
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

struct MemorySource {
    inner: Arc<Inner>,
    queue: String,
    id: u64,
    prefetch: usize,
}

#[async_trait::async_trait]
impl DeliverySource for MemorySource {
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            let notify = {
                let mut state = self.inner.lock();
                if state.closed {
                    return None;
                }
                state.next_id += 1;
                let tag = state.next_id;
                let queue = state.queues.get_mut(&self.queue)?;
                let in_flight = queue.in_flight.get(&self.id).copied().unwrap_or(0);
                if in_flight < self.prefetch
                    && let Some(msg) = queue.ready.pop_front()
                {
                    queue.in_flight.insert(self.id, in_flight + 1);
                    queue.unacked.insert(tag, (self.id, msg.clone()));
                    return Some(Delivery::new(
                        msg.envelope,
                        msg.routing_key,
                        msg.redelivered,
                        msg.delivery_count,
                        Box::new(MemoryAcker {
                            inner: self.inner.clone(),
                            queue: self.queue.clone(),
                            tag,
                        }),
                    ));
                }
                queue.notify.clone()
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after registering, so a publish between the check and the
            // registration is not missed.
            {
                let state = self.inner.lock();
                let ready = state.closed
                    || state.queues.get(&self.queue).is_some_and(|q| {
                        !q.ready.is_empty()
                            && q.in_flight.get(&self.id).copied().unwrap_or(0) < self.prefetch
                    });
                if ready {
                    continue;
                }
            }
            notified.await;
        }
    }
}

impl Drop for MemorySource {
    fn drop(&mut self) {
        let inner = self.inner.clone();
        let mut state = inner.lock();
        let Some(queue) = state.queues.get_mut(&self.queue) else {
            return;
        };
        queue.in_flight.remove(&self.id);
        let mine: Vec<u64> = queue
            .unacked
            .iter()
            .filter(|(_, (sub, _))| *sub == self.id)
            .map(|(tag, _)| *tag)
            .collect();
        // Return them to the head in their original order.
        for tag in mine.into_iter().rev() {
            if let Some((_, msg)) = queue.unacked.remove(&tag) {
                inner.give_back(queue, msg, true);
            }
        }
        queue.notify.notify_waiters();
    }
}

struct MemoryAcker {
    inner: Arc<Inner>,
    queue: String,
    tag: u64,
}

#[async_trait::async_trait]
impl Acker for MemoryAcker {
    async fn settle(&self, outcome: Outcome) -> Result<(), BusError> {
        let inner = self.inner.clone();
        let mut state = inner.lock();
        let queue = state
            .queues
            .get_mut(&self.queue)
            .ok_or(BusError::SubscriptionClosed)?;
        let (sub, msg) = queue
            .unacked
            .remove(&self.tag)
            .ok_or(BusError::SubscriptionClosed)?;
        if let Some(n) = queue.in_flight.get_mut(&sub) {
            *n = n.saturating_sub(1);
        }
        match outcome {
            Outcome::Ack => {}
            Outcome::Retry => inner.give_back(queue, msg, true),
            Outcome::DeadLetter => queue.dead.push_back(msg),
        }
        queue.notify.notify_waiters();
        Ok(())
    }
}
