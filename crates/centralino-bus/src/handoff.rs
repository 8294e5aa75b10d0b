//! Handing deliveries to a single-owner worker (an actor) in delivery order,
//! and settling each by what the worker answers.
//!
//! A service whose state is owned by one task (the router, the history writer)
//! reads its subscription here: each delivery is parsed, handed over **in the
//! order it arrived** (an abandon published after its creation reaches the
//! worker after it), and settled beside the next deliveries by the worker's
//! [`Handled`] answer, as the [pipeline](crate::pipeline) settles: `Hold`
//! (the worker's store is unavailable, or the worker dropped it unanswered)
//! hands it over again after a wait, without counting toward the delivery
//! limit.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::backoff::RetryParams;
use crate::pipeline::{Handled, settle};
use crate::{Delivery, Subscription};

/// Runs until `shutdown` or the end of the subscription. `parse` turns a
/// delivery into the worker's input (`Ok(None)`: nothing for this worker, it
/// is acked; an error dead-letters it); `command` wraps
/// the input and the answer channel into the worker's command type.
pub async fn run_in_order<T, C>(
    mut sub: Subscription,
    worker: mpsc::Sender<C>,
    parse: impl Fn(&Delivery) -> Result<Option<T>, String> + Send + Sync + 'static,
    command: fn(&Delivery, T, oneshot::Sender<Handled>) -> C,
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
    command: fn(&Delivery, T, oneshot::Sender<Handled>) -> C,
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
    Waiting(oneshot::Receiver<Handled>),
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
        let mut holding = RetryParams::hold().backoff();
        loop {
            let answer = match submitted {
                Submitted::Unusable(reason) => Ok(Handled::Reject(reason)),
                Submitted::Nothing => Ok(Handled::Done),
                Submitted::Waiting(rx) => rx.await,
            };
            match answer {
                Ok(Handled::Hold(reason)) => {
                    tracing::debug!(%reason, "worker cannot apply it now; holding");
                }
                // Dropped without an answer: held, never left unsettled.
                Err(_) => tracing::debug!("message unanswered; holding"),
                Ok(other) => {
                    settle("in-order", &RetryParams::redeliver(), d, other).await;
                    return;
                }
            }
            tokio::time::sleep(holding.next_wait()).await;
            match self.submit(&d).await {
                Some(s) => submitted = s,
                None => return,
            }
        }
    }
}
