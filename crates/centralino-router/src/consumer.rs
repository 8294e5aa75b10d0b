//! The bus side: new and abandoned interactions in, acks only after commit.

use centralino_bus::{
    Bus, BusError, ConsumerSpec, Delivery, EnvelopeExt as _, Handled, Subscription,
    TypedPayload as _, keys,
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
            .bind_key(keys::pattern::interactions(keys::Interaction::Created))
            .bind_key(keys::pattern::interactions(keys::Interaction::Abandoned))
            .bind_key(keys::agent_not_reached())
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

fn command(d: &Delivery, what: Ingest, done: oneshot::Sender<Handled>) -> Command {
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
        let occurred_at = arrival_ms(env.occurred_at.as_ref(), now_ms());
        Ok(Ingest::Created {
            interaction: Box::new(interaction),
            occurred_at,
        })
    } else if env.event_type == v1::InteractionAbandoned::TYPE_NAME {
        let abandoned: v1::InteractionAbandoned = env.decode().map_err(|e| e.to_string())?;
        let id = InteractionId::parse_field(&abandoned.interaction_id, "interaction_id")
            .map_err(|e| e.to_string())?;
        // A task its creator closed is withdrawn, not abandoned.
        let closed = (abandoned.channel == v1::Channel::Task as i32)
            .then(|| abandoned.reason.strip_prefix(keys::TASK_CLOSED))
            .flatten()
            .map(|o| o.chars().take(64).collect());
        Ok(Ingest::Abandoned { id, closed })
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

/// How far back an envelope's `occurred_at` is believed: an interaction that
/// waited longer than this on the bus (a dead letter replayed after a week)
/// queues as if it arrived now.
const OLDEST_BELIEVED_MS: u64 = 7 * 24 * 3_600_000;

/// When an interaction arrived, in ms since the epoch, from its envelope's
/// `occurred_at` as any publisher wrote it. A missing, negative, overflowing,
/// future or implausibly old time is `now`: no publisher can put an
/// interaction at the front of a queue with a made-up timestamp.
fn arrival_ms(occurred_at: Option<&prost_types::Timestamp>, now: u64) -> u64 {
    let believed = occurred_at.and_then(|t| {
        let seconds = u64::try_from(t.seconds).ok()?;
        let millis = u64::try_from(t.nanos).ok().filter(|n| *n < 1_000_000_000)? / 1_000_000;
        seconds.checked_mul(1000)?.checked_add(millis)
    });
    believed
        .filter(|at| *at <= now && now - *at <= OLDEST_BELIEVED_MS)
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    #[test]
    fn an_absurd_occurred_at_is_now_and_a_plausible_one_is_kept() {
        let now = 1_800_000_000_000;
        let plausible = at(1_799_999_990, 250_000_000);
        assert_eq!(arrival_ms(Some(&plausible), now), 1_799_999_990_250);
        for absurd in [
            at(i64::MAX, 0),
            at(i64::MAX / 1000 + 1, 0),
            at(-1, 0),
            at(0, 0),
            at(1_799_999_990, -1),
            at(1_799_999_990, 1_000_000_000),
            at(1_800_000_001, 0),
            at(1_700_000_000, 0),
        ] {
            assert_eq!(arrival_ms(Some(&absurd), now), now, "{absurd:?}");
        }
        assert_eq!(arrival_ms(None, now), now);
    }
}
