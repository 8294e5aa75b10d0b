//! The bus side: new and abandoned interactions in, acks only after commit.

use centralino_bus::{
    Bus, BusError, ConsumerSpec, Delivery, EnvelopeExt as _, Exchange, Settle, Subscription,
    TypedPayload as _,
};
use centralino_domain::InteractionId;
use centralino_proto::v1;
use tokio::sync::{mpsc, oneshot};

use crate::actor::{Command, Ingest, SERVICE, now_ms};

/// The routing queue: new and abandoned interactions of every channel, one
/// active consumer at a time (a second router instance waits as standby).
pub(crate) async fn subscribe(bus: &dyn Bus) -> Result<Subscription, BusError> {
    bus.subscribe(
        ConsumerSpec::new(SERVICE)
            .bind(Exchange::Events, "interaction.*.created")
            .bind(Exchange::Events, "interaction.*.abandoned")
            .bind(Exchange::Commands, "routing.agent_not_reached")
            .prefetch(512)
            .single_active(),
    )
    .await
}

/// Hands deliveries to the actor in order and settles them by its answer.
pub(crate) async fn run(
    sub: Subscription,
    tx: mpsc::Sender<Command>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    centralino_bus::run_in_order(sub, tx, |d| parse(d).map(Some), command, shutdown).await;
}

fn command(d: &Delivery, what: Ingest, done: oneshot::Sender<Settle>) -> Command {
    Command::Ingest {
        message_id: d.envelope.message_id.clone(),
        what,
        done,
    }
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
    } else if env.event_type == v1::AgentNotReached::TYPE_NAME {
        let n: v1::AgentNotReached = env.decode().map_err(|e| e.to_string())?;
        let interaction = InteractionId::parse_field(&n.interaction_id, "interaction_id")
            .map_err(|e| e.to_string())?;
        if n.agent.is_empty() || n.agent.len() > 64 {
            return Err("agent must be 1 to 64 characters".into());
        }
        let reason = if n.reason.is_empty() {
            "no-answer".to_owned()
        } else {
            n.reason
        };
        Ok(Ingest::NotReached {
            interaction,
            agent: n.agent,
            reason,
        })
    } else {
        Err(format!("routing does not handle {}", env.event_type))
    }
}
