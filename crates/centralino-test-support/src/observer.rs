//! The one bus observer of the integration tests: a consumer of its own that
//! keeps every message it is bound to (routing key and envelope) for the test
//! to read: every delivery, or once per message id.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use centralino_bus::{Bus, ConsumerSpec, Envelope, EnvelopeExt as _};

/// What the observer saw: `(routing key, envelope)` in arrival order.
pub type Seen = Arc<Mutex<Vec<(String, Envelope)>>>;

pub struct Observer {
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
    stopped: bool,
}

impl Observer {
    /// Subscribes `spec` (its consumer name is usually `observer`) on `bus`
    /// and keeps every delivery, a message published twice included.
    pub async fn start(bus: &Arc<dyn Bus>, spec: ConsumerSpec) -> Self {
        Self::subscribe(bus, spec, false).await
    }

    /// Like [`start`](Self::start), keeping one delivery per message id (a
    /// redelivery, or an outbox row published again, counted once: what
    /// an idempotent consumer sees).
    pub async fn once_per_message(bus: &Arc<dyn Bus>, spec: ConsumerSpec) -> Self {
        Self::subscribe(bus, spec, true).await
    }

    async fn subscribe(bus: &Arc<dyn Bus>, spec: ConsumerSpec, once: bool) -> Self {
        let mut sub = bus.subscribe(spec).await.expect("the observer subscribes");
        let seen: Seen = Arc::default();
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            let mut ids = HashSet::new();
            while let Some(d) = sub.next().await {
                if (!once || ids.insert(d.envelope.message_id.clone()))
                    && let Ok(mut s) = sink.lock()
                {
                    s.push((d.routing_key.clone(), d.envelope.clone()));
                }
                let _ = d.ack().await;
            }
        });
        Self {
            seen,
            task,
            stopped: false,
        }
    }

    /// The list the observer appends to, shared.
    pub fn seen(&self) -> Seen {
        self.seen.clone()
    }

    /// Every payload of type `T` seen so far (others skipped).
    pub fn decoded<T: centralino_bus::TypedPayload>(&self) -> Vec<T> {
        self.seen
            .lock()
            .map(|s| s.iter().filter_map(|(_, e)| e.decode::<T>().ok()).collect())
            .unwrap_or_default()
    }

    /// Stops consuming; call it before deleting the test's queues, or the
    /// subscription would declare them again.
    pub async fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            self.task.abort();
            let _ = (&mut self.task).await;
        }
    }
}
