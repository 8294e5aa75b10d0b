//! What the adapter writes: the call's row and, in the same transaction, the
//! events the outbox relay publishes (interaction created, abandoned, ended,
//! and the `routing.agent_not_reached` command).

use std::collections::HashMap;

use centralino_bus::new_envelope;
use centralino_proto::v1;
use centralino_store::StoreError;
use centralino_store::leader::Fence;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, DatabaseConnection, EntityTrait as _,
    QueryFilter as _, Set,
};

use crate::SERVICE;
use crate::entities::call;

/// A call that chose a queue.
#[derive(Debug, Clone)]
pub(crate) struct Queued {
    pub interaction_id: String,
    pub sip_call_id: String,
    /// E.164 when the caller's number normalizes.
    pub caller: Option<String>,
    pub caller_raw: String,
    pub dialled: String,
    pub queue: String,
    pub priority: u32,
    pub keys: String,
    pub path: Vec<String>,
    pub started_at: i64,
}

fn identifiers(caller: Option<&str>) -> Vec<v1::CustomerIdentifier> {
    caller
        .map(|p| v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Phone as i32,
            value: p.to_owned(),
        })
        .into_iter()
        .collect()
}

fn ts(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn created(
    q: &Queued,
    direction: v1::Direction,
    attributes: HashMap<String, String>,
) -> v1::InteractionCreated {
    v1::InteractionCreated {
        interaction: Some(v1::Interaction {
            id: q.interaction_id.clone(),
            channel: v1::Channel::Voice as i32,
            direction: direction as i32,
            identifiers: identifiers(q.caller.as_deref()),
            queue_hint: q.queue.clone(),
            priority: q.priority,
            conversation_id: String::new(),
            subject: String::new(),
            created_at: Some(ts(q.started_at)),
            attributes,
        }),
    }
}

/// Virtual hold: the waiting interaction `waiting` is abandoned (reason
/// `callback-requested`) and an outbound callback interaction `q` takes its
/// place in the same queue, in one transaction.
pub(crate) async fn callback(
    db: &DatabaseConnection,
    fence: &Fence,
    waiting: &str,
    q: &Queued,
) -> Result<(), StoreError> {
    let attributes = HashMap::from([
        ("voice.callback".to_owned(), "true".to_owned()),
        ("voice.callback_for".to_owned(), waiting.to_owned()),
        ("voice.dialled".to_owned(), q.dialled.clone()),
    ]);
    let events = [
        (
            centralino_bus::keys::interaction(
                v1::Channel::Voice,
                centralino_bus::keys::Interaction::Abandoned,
            ),
            new_envelope(
                SERVICE,
                &v1::InteractionAbandoned {
                    interaction_id: waiting.to_owned(),
                    channel: v1::Channel::Voice as i32,
                    reason: "callback-requested".into(),
                },
            ),
        ),
        (
            centralino_bus::keys::interaction(
                v1::Channel::Voice,
                centralino_bus::keys::Interaction::Created,
            ),
            new_envelope(SERVICE, &created(q, v1::Direction::Outbound, attributes)),
        ),
    ];
    let txn = fence.begin(db).await?;
    call::Entity::insert(row(q, "outbound"))
        .exec_without_returning(&txn)
        .await?;
    centralino_store::outbox::enqueue_many(&txn, SERVICE, &events).await?;
    txn.commit().await?;
    Ok(())
}

fn row(q: &Queued, direction: &str) -> call::ActiveModel {
    call::ActiveModel {
        interaction_id: Set(q.interaction_id.clone()),
        sip_call_id: Set(q.sip_call_id.chars().take(255).collect()),
        direction: Set(direction.to_owned()),
        caller: Set(q
            .caller
            .clone()
            .unwrap_or_else(|| q.caller_raw.chars().take(64).collect())),
        dialled: Set(q.dialled.chars().take(64).collect()),
        queue: Set(q.queue.clone()),
        ivr_path: Set(q.path.join(" ")),
        agent: Set(None),
        outcome: Set(String::new()),
        created_at: Set(q.started_at),
        answered_at: Set(None),
        ended_at: Set(None),
    }
}

/// The outbound call waiting to be placed for `interaction_id`, if any.
pub(crate) async fn outbound(
    db: &DatabaseConnection,
    interaction_id: &str,
) -> Result<Option<call::Model>, StoreError> {
    Ok(call::Entity::find_by_id(interaction_id.to_owned())
        .filter(call::Column::Direction.eq("outbound"))
        .filter(call::Column::Outcome.eq(""))
        .one(db)
        .await?)
}

/// The row and `interaction.voice.created`.
pub(crate) async fn queued(
    db: &DatabaseConnection,
    fence: &Fence,
    q: &Queued,
) -> Result<(), StoreError> {
    let mut attributes = HashMap::from([("voice.dialled".to_owned(), q.dialled.clone())]);
    if !q.keys.is_empty() {
        attributes.insert("ivr.keys".into(), q.keys.clone());
    }
    if !q.path.is_empty() {
        attributes.insert("ivr.path".into(), q.path.join(" "));
    }
    let created = created(q, v1::Direction::Inbound, attributes);
    let txn = fence.begin(db).await?;
    call::Entity::insert(row(q, "inbound"))
        .exec_without_returning(&txn)
        .await?;
    centralino_store::outbox::enqueue(
        &txn,
        SERVICE,
        &centralino_bus::keys::interaction(
            v1::Channel::Voice,
            centralino_bus::keys::Interaction::Created,
        ),
        &new_envelope(SERVICE, &created),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A callback's agent answered: the customer is being dialled.
pub(crate) async fn dialling(
    db: &DatabaseConnection,
    fence: &Fence,
    interaction_id: &str,
    agent: &str,
) -> Result<(), StoreError> {
    let txn = fence.begin(db).await?;
    call::ActiveModel {
        interaction_id: Set(interaction_id.to_owned()),
        agent: Set(Some(agent.to_owned())),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The agent's phone answered (for a callback: the customer did).
pub(crate) async fn answered(
    db: &DatabaseConnection,
    fence: &Fence,
    interaction_id: &str,
    agent: &str,
    at: i64,
) -> Result<(), StoreError> {
    let txn = fence.begin(db).await?;
    call::ActiveModel {
        interaction_id: Set(interaction_id.to_owned()),
        agent: Set(Some(agent.to_owned())),
        answered_at: Set(Some(at)),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The assigned agent could not be reached: routing takes the call back.
pub(crate) async fn agent_not_reached(
    db: &DatabaseConnection,
    fence: &Fence,
    interaction_id: &str,
    agent: &str,
    reason: &str,
) -> Result<(), StoreError> {
    let command = v1::AgentNotReached {
        interaction_id: interaction_id.to_owned(),
        agent: agent.to_owned(),
        reason: reason.to_owned(),
    };
    let txn = fence.begin(db).await?;
    centralino_store::outbox::enqueue(
        &txn,
        SERVICE,
        &centralino_bus::keys::agent_not_reached(),
        &new_envelope(SERVICE, &command),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// How a call ended, for its record.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub interaction_id: String,
    /// answered, abandoned, callback, closed, failed.
    pub outcome: &'static str,
    pub started_at: i64,
    pub at: i64,
    pub path: Vec<String>,
    /// Set when the customer left before being served (routing must forget
    /// the interaction).
    pub abandoned: Option<&'static str>,
    /// Channel details for the record (agent, RTP packet counts).
    pub attributes: HashMap<String, String>,
}

/// The row's outcome, `interaction.voice.ended` (the CDR) and, for a caller
/// who left while waiting, `interaction.voice.abandoned`.
pub(crate) async fn ended(
    db: &DatabaseConnection,
    fence: &Fence,
    e: &Ended,
) -> Result<(), StoreError> {
    let txn = fence.begin(db).await?;
    let updated = call::Entity::update_many()
        .col_expr(call::Column::Outcome, e.outcome.into())
        .col_expr(call::Column::EndedAt, Some(e.at).into())
        .filter(call::Column::InteractionId.eq(&e.interaction_id))
        .filter(call::Column::Outcome.eq(""))
        .exec(&txn)
        .await?;
    if updated.rows_affected == 0 {
        // Already recorded (a second hang-up path): nothing more to say.
        return Ok(());
    }
    let mut events = Vec::new();
    if let Some(reason) = e.abandoned {
        events.push((
            centralino_bus::keys::interaction(
                v1::Channel::Voice,
                centralino_bus::keys::Interaction::Abandoned,
            ),
            new_envelope(
                SERVICE,
                &v1::InteractionAbandoned {
                    interaction_id: e.interaction_id.clone(),
                    channel: v1::Channel::Voice as i32,
                    reason: reason.to_owned(),
                },
            ),
        ));
    }
    events.push((
        centralino_bus::keys::interaction(
            v1::Channel::Voice,
            centralino_bus::keys::Interaction::Ended,
        ),
        new_envelope(
            SERVICE,
            &v1::InteractionEnded {
                interaction_id: e.interaction_id.clone(),
                channel: v1::Channel::Voice as i32,
                outcome: e.outcome.to_owned(),
                duration_ms: u64::try_from(e.at.saturating_sub(e.started_at)).unwrap_or(0),
                recording_ref: String::new(),
                ivr_path: e.path.clone(),
                at: Some(ts(e.at)),
                attributes: e.attributes.clone(),
            },
        ),
    ));
    centralino_store::outbox::enqueue_many(&txn, SERVICE, &events).await?;
    txn.commit().await?;
    Ok(())
}

/// Calls a previous run left open (it crashed or was killed with them up):
/// they are over, and routing must not hand them to an agent.
pub(crate) async fn close_lost_calls(
    db: &DatabaseConnection,
    fence: &Fence,
    now: i64,
) -> Result<usize, StoreError> {
    // Inbound calls that were up, and callbacks whose dialing had begun
    // (a callback not yet placed waits for routing's next assignment).
    let open = call::Entity::find()
        .filter(call::Column::Outcome.eq(""))
        .filter(
            sea_orm::Condition::any()
                .add(call::Column::Direction.eq("inbound"))
                .add(call::Column::Agent.is_not_null()),
        )
        .all(db)
        .await?;
    for c in &open {
        let path = if c.ivr_path.is_empty() {
            Vec::new()
        } else {
            c.ivr_path.split(' ').map(str::to_owned).collect()
        };
        ended(
            db,
            fence,
            &Ended {
                interaction_id: c.interaction_id.clone(),
                outcome: "failed",
                started_at: c.created_at,
                at: now,
                path,
                abandoned: (c.direction == "inbound" && c.answered_at.is_none())
                    .then_some("adapter-restart"),
                attributes: c
                    .agent
                    .iter()
                    .map(|a| ("agent".to_owned(), a.clone()))
                    .collect(),
            },
        )
        .await?;
    }
    Ok(open.len())
}
