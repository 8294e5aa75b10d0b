//! The bus side: new and abandoned interactions in, acks only after commit.

use std::time::Duration;

use centralino_bus::{
    Bus, BusError, ConsumerSpec, Delivery, EnvelopeExt as _, Exchange, Subscription,
    TypedPayload as _,
};
use centralino_domain::InteractionId;
use centralino_proto::v1;
use tokio::sync::{mpsc, oneshot};

use crate::actor::{Command, Ingest, IngestOutcome, SERVICE, now_ms};

/// The routing queue: new and abandoned interactions of every channel, one
/// active consumer at a time (a second router instance waits as standby).
pub(crate) async fn subscribe(bus: &dyn Bus) -> Result<Subscription, BusError> {
    bus.subscribe(
        ConsumerSpec::new(SERVICE)
            .bind(Exchange::Events, "interaction.*.created")
            .bind(Exchange::Events, "interaction.*.abandoned")
            .prefetch(512)
            .single_active(),
    )
    .await
}

pub(crate) async fn run(
    mut sub: Subscription,
    tx: mpsc::Sender<Command>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            d = sub.next() => {
                let Some(d) = d else { break };
                // Handed to the actor here, in delivery order (an abandon published
                // after its creation reaches the engine after it); the wait for the
                // outcome and the settling run beside the next deliveries.
                let Some(first) = submit(&d, &tx).await else { break };
                tokio::spawn(settle(d, first, tx.clone()));
            }
        }
    }
}

/// What one submission of a delivery to the actor gives back.
enum Submitted {
    /// Unusable: dead-letter it.
    Unusable(String),
    Waiting(oneshot::Receiver<IngestOutcome>),
}

/// Parses a delivery and hands it to the actor; `None` when the actor is gone
/// (stopping: the broker redelivers).
async fn submit(d: &Delivery, tx: &mpsc::Sender<Command>) -> Option<Submitted> {
    let what = match parse(d) {
        Ok(w) => w,
        Err(reason) => return Some(Submitted::Unusable(reason)),
    };
    let (done, outcome) = oneshot::channel();
    let cmd = Command::Ingest {
        message_id: d.envelope.message_id.clone(),
        what,
        done,
    };
    tx.send(cmd).await.ok()?;
    Some(Submitted::Waiting(outcome))
}

fn parse(d: &Delivery) -> Result<Ingest, String> {
    let env = &d.envelope;
    if env.event_type == v1::InteractionCreated::TYPE_NAME {
        let created: v1::InteractionCreated = env.decode().map_err(|e| e.to_string())?;
        let interaction = created
            .interaction
            .ok_or("InteractionCreated without an interaction")?;
        let occurred_at = env
            .occurred_at
            .as_ref()
            .and_then(|t| {
                u64::try_from(t.seconds)
                    .ok()
                    .map(|s| s * 1000 + (t.nanos.max(0) as u64) / 1_000_000)
            })
            .unwrap_or_else(now_ms);
        Ok(Ingest::Created {
            interaction: Box::new(interaction),
            occurred_at,
        })
    } else if env.event_type == v1::InteractionAbandoned::TYPE_NAME {
        let abandoned: v1::InteractionAbandoned = env.decode().map_err(|e| e.to_string())?;
        let id = InteractionId::parse_field(&abandoned.interaction_id, "interaction_id")
            .map_err(|e| e.to_string())?;
        Ok(Ingest::Abandoned(id))
    } else {
        Err(format!("routing does not handle {}", env.event_type))
    }
}

/// Waits for the actor's outcome and settles the delivery by it. Transient
/// failures (database down, a batch cut short) are retried here, holding the
/// delivery, so they do not count against the delivery limit.
async fn settle(d: Delivery, first: Submitted, tx: mpsc::Sender<Command>) {
    let mut submitted = first;
    let mut backoff = Duration::from_millis(100);
    loop {
        let outcome = match submitted {
            Submitted::Unusable(reason) => {
                tracing::warn!(message_id = %d.envelope.message_id, %reason, "unusable message dead-lettered");
                let _ = d.dead_letter().await;
                return;
            }
            Submitted::Waiting(rx) => rx.await,
        };
        match outcome {
            Ok(IngestOutcome::Done) => {
                if let Err(e) = d.ack().await {
                    tracing::debug!(error = %e, "ack lost; the redelivery will be absorbed by the inbox");
                }
                return;
            }
            Ok(IngestOutcome::Reject(reason)) => {
                tracing::warn!(message_id = %d.envelope.message_id, %reason, "interaction cannot be routed; dead-lettered");
                let _ = d.dead_letter().await;
                return;
            }
            Ok(IngestOutcome::Retry(reason)) => {
                tracing::debug!(%reason, "routing store unavailable; retrying");
            }
            // The actor dropped the command without an answer: retry, it is
            // never left unsettled.
            Err(_) => tracing::debug!("routing command unanswered; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        match submit(&d, &tx).await {
            Some(s) => submitted = s,
            None => return, // stopping: the broker redelivers
        }
    }
}
