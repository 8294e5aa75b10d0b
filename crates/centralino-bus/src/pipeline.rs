//! The consumer pipeline every service reads the bus through:
//! parse → handle → settle.
//!
//! A [`Handler`] reads each delivery ([`Handler::parse`]: nothing to do, or
//! never usable, or an input) and handles the inputs, one at a time or a
//! batch at a time ([`Handler::handle_batch`]), answering for each what
//! became of it ([`Handled`]). The pipeline settles by that answer, the same
//! way for every service:
//!
//! | answer | settle |
//! |---|---|
//! | `Done` (applied, or a duplicate) | ack |
//! | `Hold` (a dependency is away: the store, the actor) | keep the delivery in the process and handle it again after a wait ([`RetryParams::hold`]); never counts toward the delivery limit; returned to the queue at shutdown |
//! | `Retry` (this message failed by itself) | return it to the broker after a wait growing with its delivery count ([`RetryParams::redeliver`]); at the delivery limit the broker dead-letters it |
//! | `Reject` (can never be applied) | dead-letter it now, with the reason logged |
//!
//! De-duplication is the handler's, in the transaction of its effect: the
//! inbox (`centralino_store::inbox::claim`) or a natural key the consumer
//! keeps (an outbound message's id). Ordered single-owner delivery to an
//! actor is [`crate::run_in_order`], which settles by the same answers.

use std::future::Future;

use futures::FutureExt as _;

use crate::backoff::{RetryParams, random_unit};
use crate::{Delivery, Subscription};

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Applied, or already applied before: ack.
    Done,
    /// A dependency is unavailable (the store is away, the worker is busy
    /// restarting): keep it and try again; it is not the message's fault.
    Hold(String),
    /// This message failed by itself, perhaps for a passing reason: return it
    /// to the broker (toward its delivery limit, then the dead-letter queue).
    Retry(String),
    /// Can never be applied as it is: dead-letter it now.
    Reject(String),
}

/// The part of a consumer that is the service's own.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// What a usable delivery becomes.
    type Input: Send + 'static;

    /// Reads a delivery: `Ok(None)` when there is nothing to do (it is
    /// acked), `Err(reason)` when it can never be used (dead-lettered).
    fn parse(&self, delivery: &Delivery) -> Result<Option<Self::Input>, String>;

    /// Handles one input.
    async fn handle(&self, input: Self::Input, delivery: &Delivery) -> Handled;

    /// Handles a batch (see [`Pipeline::batch`]), answering for each input in
    /// order. By default, one by one.
    async fn handle_batch(&self, items: Vec<(Self::Input, &Delivery)>) -> Vec<Handled> {
        let mut out = Vec::with_capacity(items.len());
        for (input, d) in items {
            out.push(self.handle(input, d).await);
        }
        out
    }
}

/// A handler shared with the rest of the service.
#[async_trait::async_trait]
impl<H: Handler> Handler for std::sync::Arc<H> {
    type Input = H::Input;

    fn parse(&self, delivery: &Delivery) -> Result<Option<Self::Input>, String> {
        (**self).parse(delivery)
    }

    async fn handle(&self, input: Self::Input, delivery: &Delivery) -> Handled {
        (**self).handle(input, delivery).await
    }

    async fn handle_batch(&self, items: Vec<(Self::Input, &Delivery)>) -> Vec<Handled> {
        (**self).handle_batch(items).await
    }
}

/// How a consumer is run: its name (for logs), how many deliveries it takes
/// at once, and its waits.
#[derive(Debug, Clone)]
pub struct Pipeline {
    name: &'static str,
    batch: usize,
    hold: RetryParams,
    redeliver: RetryParams,
}

impl Pipeline {
    /// One delivery at a time, with the standard waits.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            batch: 1,
            hold: RetryParams::hold(),
            redeliver: RetryParams::redeliver(),
        }
    }

    /// Up to `n` deliveries already waiting are handled together (one
    /// transaction for many, in a handler that overrides
    /// [`Handler::handle_batch`]).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// The waits while holding.
    pub fn hold(mut self, params: RetryParams) -> Self {
        self.hold = params;
        self
    }

    /// The waits before a failed delivery goes back to the broker.
    pub fn redeliver(mut self, params: RetryParams) -> Self {
        self.redeliver = params;
        self
    }

    /// Consumes `sub` with `handler` until `shutdown` or the end of the
    /// subscription. Deliveries held at shutdown go back to the queue.
    pub async fn run<H: Handler>(
        self,
        mut sub: Subscription,
        handler: H,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let first = tokio::select! {
                biased;
                () = &mut shutdown => return,
                d = sub.next() => match d { Some(d) => d, None => return },
            };
            let mut batch = vec![first];
            while batch.len() < self.batch {
                match sub.next().now_or_never() {
                    Some(Some(d)) => batch.push(d),
                    _ => break,
                }
            }
            if !self.work(&handler, batch, &mut shutdown).await {
                return;
            }
        }
    }

    /// Handles a batch until each delivery is settled; `false` when shutdown
    /// came while holding (what was held went back to the queue).
    async fn work<H: Handler>(
        &self,
        handler: &H,
        mut batch: Vec<Delivery>,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> bool {
        let mut holding = self.hold.backoff();
        loop {
            let mut inputs = Vec::new();
            let mut parsed = Vec::new();
            for d in batch {
                match handler.parse(&d) {
                    Ok(Some(input)) => {
                        inputs.push(input);
                        parsed.push(d);
                    }
                    Ok(None) => self.settle(d, Handled::Done).await,
                    Err(reason) => self.settle(d, Handled::Reject(reason)).await,
                }
            }
            if parsed.is_empty() {
                return true;
            }
            let answers = handler
                .handle_batch(inputs.into_iter().zip(parsed.iter()).collect())
                .await;
            let mut held = Vec::new();
            let mut answers = answers.into_iter();
            for d in parsed {
                // A handler that answers for fewer inputs than it was given
                // holds the rest: nothing is left unsettled.
                let answer = answers
                    .next()
                    .unwrap_or_else(|| Handled::Hold("the handler gave no answer".into()));
                match answer {
                    Handled::Hold(reason) => {
                        if held.is_empty() {
                            tracing::warn!(consumer = self.name, %reason, retry_in_ms = holding.peek().as_millis() as u64, "holding deliveries until it can be handled");
                        }
                        held.push(d);
                    }
                    other => self.settle(d, other).await,
                }
            }
            if held.is_empty() {
                return true;
            }
            let wait = holding.next_wait();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.as_mut() => {
                    for d in held {
                        if let Err(e) = d.retry().await {
                            tracing::debug!(consumer = self.name, error = %e, "not returned at shutdown; the broker redelivers it");
                        }
                    }
                    return false;
                }
            }
            batch = held;
        }
    }

    async fn settle(&self, d: Delivery, answer: Handled) {
        settle(self.name, &self.redeliver, d, answer).await;
    }
}

/// Settles `d` by `answer`. The callers hold what they can before settling;
/// a `Hold` that reaches here is returned to the broker like a `Retry`.
pub(crate) async fn settle(consumer: &str, redeliver: &RetryParams, d: Delivery, answer: Handled) {
    let id = d.envelope.message_id.clone();
    let settled = match answer {
        Handled::Done => d.ack().await,
        Handled::Reject(reason) => {
            tracing::warn!(consumer, message = %id, %reason, "message cannot be applied; dead-lettered");
            d.dead_letter().await
        }
        Handled::Retry(reason) | Handled::Hold(reason) => {
            let wait = redeliver.wait(d.delivery_count, random_unit());
            tracing::warn!(consumer, message = %id, %reason, delivery_count = d.delivery_count, retry_in_ms = wait.as_millis() as u64, "message failed; returned to the broker after a wait");
            // The wait does not hold up the deliveries behind it.
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                if let Err(e) = d.retry().await {
                    tracing::debug!(error = %e, "not returned; the broker redelivers it");
                }
            });
            return;
        }
    };
    if let Err(e) = settled {
        tracing::debug!(consumer, message = %id, error = %e, "not settled; the broker redelivers it (the consumer de-duplicates)");
    }
}
