//! Handing deliveries to a single-owner worker (an actor) in delivery order,
//! and settling each by what the worker answers.
//!
//! A service whose state is owned by one task (the router, the history writer)
//! reads its subscription here: each delivery is parsed, handed over **in the
//! order it arrived** (an abandon published after its creation reaches the
//! worker after it), and settled beside the next deliveries: acked when
//! applied, dead-lettered when it never can be, retried with backoff (holding
//! the delivery, so it does not count against the delivery limit) when the
//! worker's store is unavailable or the worker dropped it unanswered.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::{Delivery, Subscription};

/// What became of a delivery the worker was handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    /// Applied (or a duplicate): ack.
    Done,
    /// Not applied for a reason that may pass (the database is down): try again.
    Retry(String),
    /// Can never be applied as it is: dead-letter it.
    Reject(String),
}

/// Runs until `shutdown` or the end of the subscription. `parse` turns a
/// delivery into the worker's input (`Ok(None)`: nothing for this worker, it
/// is acked; an error dead-letters it); `command` wraps
/// the input and the answer channel into the worker's command type.
pub async fn run_in_order<T, C>(
    mut sub: Subscription,
    worker: mpsc::Sender<C>,
    parse: impl Fn(&Delivery) -> Result<Option<T>, String> + Send + Sync + 'static,
    command: fn(&Delivery, T, oneshot::Sender<Settle>) -> C,
    shutdown: impl Future<Output = ()>,
) where
    T: Send + 'static,
    C: Send + 'static,
{
    tokio::pin!(shutdown);
    let handoff = Handoff {
        worker,
        parse: Arc::new(parse),
        command,
    };
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            d = sub.next() => {
                let Some(d) = d else { break };
                let Some(first) = handoff.submit(&d).await else { break };
                tokio::spawn(handoff.clone().settle(d, first));
            }
        }
    }
}

type Parse<T> = Arc<dyn Fn(&Delivery) -> Result<Option<T>, String> + Send + Sync>;

struct Handoff<T, C> {
    worker: mpsc::Sender<C>,
    parse: Parse<T>,
    command: fn(&Delivery, T, oneshot::Sender<Settle>) -> C,
}

impl<T, C> Clone for Handoff<T, C> {
    fn clone(&self) -> Self {
        Self {
            worker: self.worker.clone(),
            parse: self.parse.clone(),
            command: self.command,
        }
    }
}

enum Submitted {
    Unusable(String),
    Nothing,
    Waiting(oneshot::Receiver<Settle>),
}

impl<T: Send + 'static, C: Send + 'static> Handoff<T, C> {
    /// Parses and hands over; `None` when the worker is gone (stopping: the
    /// broker redelivers).
    async fn submit(&self, d: &Delivery) -> Option<Submitted> {
        let input = match (self.parse)(d) {
            Ok(Some(i)) => i,
            Ok(None) => return Some(Submitted::Nothing),
            Err(reason) => return Some(Submitted::Unusable(reason)),
        };
        let (done, answer) = oneshot::channel();
        self.worker
            .send((self.command)(d, input, done))
            .await
            .ok()?;
        Some(Submitted::Waiting(answer))
    }

    async fn settle(self, d: Delivery, first: Submitted) {
        let mut submitted = first;
        let mut backoff = Duration::from_millis(100);
        loop {
            let answer = match submitted {
                Submitted::Unusable(reason) => {
                    tracing::warn!(message_id = %d.envelope.message_id, %reason, "unusable message dead-lettered");
                    let _ = d.dead_letter().await;
                    return;
                }
                Submitted::Nothing => Ok(Settle::Done),
                Submitted::Waiting(rx) => rx.await,
            };
            match answer {
                Ok(Settle::Done) => {
                    if let Err(e) = d.ack().await {
                        tracing::debug!(error = %e, "ack lost; the redelivery will be absorbed by the inbox");
                    }
                    return;
                }
                Ok(Settle::Reject(reason)) => {
                    tracing::warn!(message_id = %d.envelope.message_id, %reason, "message cannot be applied; dead-lettered");
                    let _ = d.dead_letter().await;
                    return;
                }
                Ok(Settle::Retry(reason)) => {
                    tracing::debug!(%reason, "store unavailable; retrying");
                }
                // Dropped without an answer: retried, never left unsettled.
                Err(_) => tracing::debug!("message unanswered; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
            match self.submit(&d).await {
                Some(s) => submitted = s,
                None => return,
            }
        }
    }
}
