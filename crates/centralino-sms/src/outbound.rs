//! Outbound messages: `sms.send` commands become rows of a durable queue (in
//! the same transaction as their `MessageRecorded`), and a sender submits due
//! rows through the configured transport, retrying while it is away. The same
//! queue consumes consent changes (`consent.sms.changed`) and the end of
//! conversations (`routing.sms.completed|closed|abandoned`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{
    Delivery, EnvelopeExt as _, Handled, Handler, TypedPayload as _, new_envelope,
};
use centralino_domain::IdentifierKind;
use centralino_proto::v1;
use centralino_store::StoreError;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use tokio::sync::watch;

use crate::consent::{blocked, set_consent};
use crate::entities::{conversation, message, outbound, part};
use crate::rest::Rest;
use crate::smpp::{SendError, Smpp};
use crate::status::{MessageStatus, advance, status_event};
use crate::{Ctx, SERVICE, now_ms};

/// Longest message body accepted (characters), before the segment limit.
const MAX_BODY_CHARS: usize = 10_000;

/// How messages leave.
pub(crate) enum Transport {
    Smpp(Smpp),
    Rest(Rest),
}

/// What became of a submitted message.
struct Sent {
    provider_id: Option<String>,
    part_ids: Vec<String>,
}

impl Transport {
    async fn send(&self, from: &str, to: &str, body: &str) -> Result<Sent, SendError> {
        match self {
            Transport::Smpp(s) => s.send_from(Some(from), to, body).await.map(|s| Sent {
                provider_id: s.part_ids.first().cloned(),
                part_ids: s.part_ids,
            }),
            Transport::Rest(r) => r.send(from, to, body).await.map(|sid| Sent {
                provider_id: (!sid.is_empty()).then_some(sid),
                part_ids: Vec::new(),
            }),
        }
    }
}

/// A message to queue.
pub(crate) struct Outgoing {
    pub id: String,
    /// Empty when it belongs to no interaction (a HELP answer outside any conversation).
    pub interaction_id: String,
    pub recipient: String,
    pub sender: String,
    pub body: String,
    pub kind: &'static str,
    pub purpose: String,
    pub agent: String,
}

/// Queues `o` and reports it (`MessageRecorded`, then `queued`) in `txn`.
pub(crate) async fn queue(
    ctx: &Ctx,
    txn: &impl ConnectionTrait,
    o: Outgoing,
) -> Result<(), StoreError> {
    let encoded = centralino_gsm::encode(&o.body);
    let segments = i32::try_from(encoded.segment_count()).unwrap_or(i32::MAX);
    // Strictly increasing: the sender goes by it, oldest first per recipient.
    let now = ctx.stamp();
    let interaction = (!o.interaction_id.is_empty()).then(|| o.interaction_id.clone());
    message::Entity::insert(message::ActiveModel {
        id: Set(o.id.clone()),
        dedupe_key: Set(format!("out:{}", o.id)),
        interaction_id: Set(interaction.clone()),
        direction: Set("outbound".into()),
        provider_id: Set(None),
        status: Set(MessageStatus::Queued.as_str().into()),
        segments: Set(segments),
        encoding: Set(encoded.encoding.name().into()),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    outbound::Entity::insert(outbound::ActiveModel {
        id: Set(o.id.clone()),
        interaction_id: Set(o.interaction_id.clone()),
        kind: Set(o.kind.into()),
        purpose: Set(o.purpose.clone()),
        sender: Set(o.sender.clone()),
        recipient: Set(o.recipient.clone()),
        body: Set(o.body.clone()),
        status: Set(MessageStatus::Queued.as_str().into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    let Some(interaction) = interaction else {
        // A notification: no message for a timeline, but its outcome.
        return status_event(txn, &o.id, "", MessageStatus::Queued, "").await;
    };
    let identifiers = ctx
        .config
        .rules
        .normalize(IdentifierKind::Phone, &o.recipient)
        .map(|i| {
            vec![v1::CustomerIdentifier {
                kind: v1::customer_identifier::Kind::Phone as i32,
                value: i.value().to_owned(),
            }]
        })
        .unwrap_or_default();
    let mut attributes = HashMap::from([
        ("sms.segments".to_owned(), segments.to_string()),
        (
            "sms.encoding".to_owned(),
            encoded.encoding.name().to_owned(),
        ),
        ("sms.kind".to_owned(), o.kind.to_owned()),
    ]);
    if !o.agent.is_empty() {
        attributes.insert("agent".into(), o.agent.chars().take(64).collect());
    }
    if !o.purpose.is_empty() {
        attributes.insert("sms.purpose".into(), o.purpose.clone());
    }
    let recorded = v1::MessageRecorded {
        message_id: o.id.clone(),
        interaction_id: interaction.clone(),
        channel: v1::Channel::Sms as i32,
        direction: v1::Direction::Outbound as i32,
        identifiers,
        subject: String::new(),
        body: o.body,
        sender: o.sender,
        recipient: o.recipient,
        at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
        attributes,
    };
    centralino_store::outbox::enqueue(
        txn,
        SERVICE,
        &centralino_bus::keys::interaction(
            v1::Channel::Sms,
            centralino_bus::keys::Interaction::Message,
        ),
        &new_envelope(SERVICE, &recorded),
    )
    .await?;
    status_event(txn, &o.id, &interaction, MessageStatus::Queued, "").await
}

/// Most bus messages committed together.
pub(crate) const BATCH: usize = 64;

/// The adapter's queue (send commands, consent changes, routing's ends), run
/// by the shared pipeline in batches: what is waiting is committed together
/// (one transaction per batch, one by one when a batch fails, so one bad
/// message cannot hold back the others). While the database is away the
/// messages are held, not spent toward the delivery limit.
pub(crate) struct Inbound {
    pub ctx: Arc<Ctx>,
}

#[async_trait::async_trait]
impl Handler for Inbound {
    type Input = ();

    fn parse(&self, _: &Delivery) -> Result<Option<()>, String> {
        // Decoded in `accept`, in the batch's transaction.
        Ok(Some(()))
    }

    async fn handle(&self, (): (), d: &Delivery) -> Handled {
        self.handle_batch(vec![((), d)])
            .await
            .pop()
            .unwrap_or(Handled::Hold("no answer".into()))
    }

    async fn handle_batch(&self, items: Vec<((), &Delivery)>) -> Vec<Handled> {
        let batch: Vec<&Delivery> = items.into_iter().map(|(_, d)| d).collect();
        let answers = match accept_all(&self.ctx, &batch).await {
            Ok(outcomes) => outcomes.into_iter().map(answer).collect(),
            // The store is away: the whole batch waits (trying each message
            // alone would wait out a timeout per message).
            Err(e) if e.is_transient() => vec![Handled::Hold(e.to_string()); batch.len()],
            Err(_) if batch.len() > 1 => {
                let mut answers = Vec::with_capacity(batch.len());
                for d in &batch {
                    answers.push(match accept_all(&self.ctx, std::slice::from_ref(d)).await {
                        Ok(mut outcomes) => outcomes.pop().map_or(Handled::Done, answer),
                        Err(e) => failed(&e),
                    });
                }
                answers
            }
            Err(e) => vec![failed(&e)],
        };
        self.ctx.relay.notify_one();
        self.ctx.send_wake.notify_one();
        answers
    }
}

fn answer(outcome: Accepted) -> Handled {
    match outcome {
        Accepted::Done => Handled::Done,
        Accepted::Unreadable => Handled::Reject("not a message this adapter reads".into()),
    }
}

/// A store failure: held while the database is away, else back to the broker
/// (which dead-letters the message at its limit).
fn failed(e: &StoreError) -> Handled {
    if e.is_transient() {
        Handled::Hold(e.to_string())
    } else {
        Handled::Retry(e.to_string())
    }
}

async fn accept_all(ctx: &Ctx, batch: &[&Delivery]) -> Result<Vec<Accepted>, StoreError> {
    let txn = ctx.fence.begin(&ctx.db).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for d in batch {
        outcomes.push(accept(ctx, &txn, d).await?);
    }
    txn.commit().await?;
    Ok(outcomes)
}

enum Accepted {
    Done,
    Unreadable,
}

async fn accept(
    ctx: &Ctx,
    txn: &impl ConnectionTrait,
    delivery: &Delivery,
) -> Result<Accepted, StoreError> {
    let env = &delivery.envelope;
    let unreadable = |what: &str| {
        tracing::warn!(message = %env.message_id, what, "sms: a bus message that does not decode; dead-lettered");
        Ok(Accepted::Unreadable)
    };
    if env.event_type == v1::SendMessage::TYPE_NAME {
        let Ok(cmd) = env.decode::<v1::SendMessage>() else {
            return unreadable("SendMessage");
        };
        let Ok(id) = uuid::Uuid::parse_str(&cmd.message_id) else {
            if cmd.message_id.is_empty()
                || cmd.message_id.len() > centralino_bus::MAX_MESSAGE_ID_LEN
            {
                return unreadable("SendMessage without a message_id to answer to");
            }
            // Still answered, addressed by the id it came with.
            tracing::info!(message = %env.message_id, "sms: a send command without a UUID message_id; refused");
            let interaction = uuid::Uuid::parse_str(&cmd.interaction_id)
                .map(|u| u.to_string())
                .unwrap_or_default();
            status_event(
                txn,
                &cmd.message_id,
                &interaction,
                MessageStatus::Failed,
                "message_id: not a UUID",
            )
            .await?;
            return Ok(Accepted::Done);
        };
        send_command(ctx, txn, id.to_string(), cmd).await?;
    } else if env.event_type == v1::ConsentChanged::TYPE_NAME {
        let Ok(changed) = env.decode::<v1::ConsentChanged>() else {
            return unreadable("ConsentChanged");
        };
        consent_changed(ctx, txn, &changed).await?;
    } else if env.event_type == v1::RoutingEvent::TYPE_NAME {
        let Ok(event) = env.decode::<v1::RoutingEvent>() else {
            return unreadable("RoutingEvent");
        };
        conversation::Entity::update_many()
            .col_expr(conversation::Column::Closed, Expr::value(true))
            .filter(conversation::Column::InteractionId.eq(event.interaction_id))
            .exec(txn)
            .await?;
    }
    Ok(Accepted::Done)
}

async fn consent_changed(
    ctx: &Ctx,
    txn: &impl ConnectionTrait,
    changed: &v1::ConsentChanged,
) -> Result<(), StoreError> {
    let Some(c) = &changed.consent else {
        return Ok(());
    };
    let revoked = c.state == v1::ConsentState::Revoked as i32;
    let at = c.at.as_ref().map_or_else(now_ms, |t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos.clamp(0, 999_999_999)) / 1_000_000)
    });
    for i in &changed.identifiers {
        if i.kind == v1::customer_identifier::Kind::Phone as i32 && !i.value.is_empty() {
            let phone = ctx.config.phone(&i.value);
            set_consent(txn, &phone, &c.purpose, revoked, at).await?;
        }
    }
    Ok(())
}

/// Why a send command is refused, if it is.
fn refusal(ctx: &Ctx, cmd: &v1::SendMessage) -> Option<String> {
    if cmd.body.trim().is_empty() {
        return Some("body is empty".into());
    }
    if cmd.body.chars().count() > MAX_BODY_CHARS {
        return Some(format!("body is longer than {MAX_BODY_CHARS} characters"));
    }
    let segments = centralino_gsm::encode(&cmd.body).segment_count();
    if segments > ctx.config.max_segments {
        return Some(format!(
            "body takes {segments} segments; at most {} are sent",
            ctx.config.max_segments
        ));
    }
    let purpose_ok = cmd.purpose.len() <= 64
        && cmd
            .purpose
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !purpose_ok {
        return Some("purpose may contain only lowercase letters, digits, '-' and '_'".into());
    }
    None
}

async fn send_command(
    ctx: &Ctx,
    txn: &impl ConnectionTrait,
    id: String,
    cmd: v1::SendMessage,
) -> Result<(), StoreError> {
    if message::Entity::find()
        .filter(message::Column::DedupeKey.eq(format!("out:{id}")))
        .one(txn)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let interaction = uuid::Uuid::parse_str(&cmd.interaction_id)
        .ok()
        .map(|u| u.to_string());
    let conversation = match &interaction {
        Some(i) => conversation::Entity::find_by_id(i.clone()).one(txn).await?,
        None => None,
    };
    let target = match (&conversation, refusal(ctx, &cmd)) {
        (_, Some(why)) => Err(why),
        (Some(c), None) => Ok((c.phone.clone(), c.our_number.clone())),
        (None, None) if !cmd.recipient.is_empty() => ctx
            .config
            .rules
            .normalize(IdentifierKind::Phone, &cmd.recipient)
            .map(|i| {
                let from = ctx
                    .config
                    .numbers
                    .first()
                    .map(|n| n.number.clone())
                    .unwrap_or_default();
                (i.value().to_owned(), from)
            })
            .map_err(|_| "recipient is not a phone number".to_owned()),
        (None, None) => {
            Err("no SMS conversation has this interaction_id and no recipient is given".into())
        }
    };
    let interaction_id = interaction.clone().unwrap_or_default();
    let (recipient, sender) = match target {
        Ok(t) => t,
        Err(why) => {
            // Recorded so the same id is refused again without another event.
            message::Entity::insert(message::ActiveModel {
                id: Set(id.clone()),
                dedupe_key: Set(format!("out:{id}")),
                interaction_id: Set(interaction.clone()),
                direction: Set("outbound".into()),
                provider_id: Set(None),
                status: Set(MessageStatus::Failed.as_str().into()),
                segments: Set(0),
                encoding: Set(String::new()),
                created_at: Set(now_ms()),
            })
            .exec_without_returning(txn)
            .await?;
            // Every command gets its outcome, with or without an interaction.
            status_event(txn, &id, &interaction_id, MessageStatus::Failed, &why).await?;
            tracing::info!(message = %id, reason = %why, "sms: send command refused");
            return Ok(());
        }
    };
    if let Some(c) = conversation {
        let mut active: conversation::ActiveModel = c.into();
        active.last_message_at = Set(now_ms());
        active.update(txn).await?;
    }
    queue(
        ctx,
        txn,
        Outgoing {
            id,
            interaction_id,
            recipient,
            sender,
            body: cmd.body,
            kind: if cmd.purpose.is_empty() {
                "reply"
            } else {
                "notice"
            },
            purpose: cmd.purpose,
            agent: cmd.agent_id,
        },
    )
    .await?;
    Ok(())
}

/// The latest creation stamp of an outbound message, 0 when there is none.
pub(crate) async fn last_stamp(db: &DatabaseConnection) -> Result<i64, StoreError> {
    let latest: Option<Option<i64>> = outbound::Entity::find()
        .select_only()
        .column_as(outbound::Column::CreatedAt.max(), "latest")
        .into_tuple()
        .one(db)
        .await?;
    Ok(latest.flatten().unwrap_or(0))
}

/// No older queued message to the same recipient (ties by id): the row may go.
const OLDEST_OF_ITS_RECIPIENT: &str = "NOT EXISTS (SELECT 1 FROM sms_outbound older \
     WHERE older.recipient = sms_outbound.recipient AND older.status = 'queued' \
     AND (older.created_at < sms_outbound.created_at \
     OR (older.created_at = sms_outbound.created_at AND older.id < sms_outbound.id)))";

/// Delay before attempt `attempts + 1` after the SMSC or provider said "not
/// now" for the message: `base` doubling, at most a minute. (A peer that is
/// not reachable at all is tried again after 5 s, see `finish`.)
fn backoff_ms(base: Duration, attempts: i32) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(0);
    let base = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
    base.saturating_mul(1i64 << exp).min(60_000)
}

/// Sends due rows until stopped.
pub(crate) async fn deliver(ctx: Arc<Ctx>, transport: Transport, mut stop: watch::Receiver<bool>) {
    let mut bound = match &transport {
        Transport::Smpp(s) => Some(s.bound()),
        _ => None,
    };
    loop {
        if *stop.borrow() {
            return;
        }
        match deliver_due(&ctx, &transport).await {
            Ok(0) => {}
            Ok(_) => {
                ctx.relay.notify_one();
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "sms: sender could not read or record its work"),
        }
        let back = async {
            match bound.as_mut() {
                Some(b) => {
                    let _ = b.changed().await;
                    *b.borrow_and_update()
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = ctx.send_wake.notified() => {}
            up = back => if up {
                // The SMSC is back: what waited for it goes now, not after its backoff.
                if let Err(e) = due_now(&ctx.db, &ctx.fence).await {
                    tracing::warn!(error = %e, "sms: could not reschedule waiting messages");
                }
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn due_now(
    db: &DatabaseConnection,
    fence: &centralino_store::leader::Fence,
) -> Result<(), StoreError> {
    let txn = fence.begin(db).await?;
    outbound::Entity::update_many()
        .col_expr(outbound::Column::NextAttemptAt, Expr::value(now_ms()))
        .filter(outbound::Column::Status.eq(MessageStatus::Queued.as_str()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Submits every due row once; returns how many it handled (sent, failed or
/// tried). A recipient's messages go one at a time and in the order they were
/// queued: only a row that is the oldest still queued for its recipient is
/// taken (the others are not even read), so a message whose attempt failed
/// holds back the newer ones to that number until it is sent or given up,
/// and never holds back anyone else's.
async fn deliver_due(ctx: &Ctx, transport: &Transport) -> Result<usize, StoreError> {
    use futures::StreamExt as _;
    let now = now_ms();
    let due = outbound::Entity::find()
        .filter(outbound::Column::Status.eq(MessageStatus::Queued.as_str()))
        .filter(outbound::Column::NextAttemptAt.lte(now))
        .filter(Expr::cust(OLDEST_OF_ITS_RECIPIENT))
        .order_by_asc(outbound::Column::CreatedAt)
        .order_by_asc(outbound::Column::Id)
        .limit(64)
        .all(&ctx.db)
        .await?;
    let count = due.len();
    let max_age = i64::try_from(ctx.config.max_age.as_millis()).unwrap_or(i64::MAX);
    let mut sending = Vec::new();
    for row in due {
        if now.saturating_sub(row.created_at) > max_age {
            let expired = Err(SendError::Refused("not sent in time (expired)".into()));
            finish_one(ctx, &row, expired).await?;
        } else {
            sending.push(row);
        }
    }
    // Claimed before sending (one statement per attempt count): if recording
    // the outcome fails after the SMSC accepted, the next attempt waits for
    // the backoff.
    let mut by_attempts: std::collections::BTreeMap<i32, Vec<String>> = Default::default();
    for row in &sending {
        by_attempts
            .entry(row.attempts)
            .or_default()
            .push(row.id.clone());
    }
    // Claimed in a fenced transaction: a deposed instance cannot claim
    // (and submit) what its successor submits.
    let claim = ctx.fence.begin(&ctx.db).await?;
    for (attempts, ids) in by_attempts {
        outbound::Entity::update_many()
            .col_expr(
                outbound::Column::Attempts,
                sea_orm::sea_query::ExprTrait::add(Expr::col(outbound::Column::Attempts), 1),
            )
            .col_expr(
                outbound::Column::NextAttemptAt,
                Expr::value(now_ms() + backoff_ms(ctx.config.retry_base, attempts)),
            )
            .filter(outbound::Column::Id.is_in(ids))
            .exec(&claim)
            .await?;
    }
    claim.commit().await?;
    // Each outcome is committed as soon as it is known (receipts for it may
    // already be on their way), and consent is read at the last moment.
    let mut in_flight: futures::stream::FuturesUnordered<_> = sending
        .iter()
        .map(|row| async move {
            let result = match blocked(&ctx.db, row).await {
                Ok(Some(why)) => Err(SendError::Refused(why.into())),
                // A leader paused past its lease may have a successor
                // submitting this very row: it steps down rather than
                // submit it too.
                Ok(None) => match ctx.fence.check_lease() {
                    Ok(()) => transport.send(&row.sender, &row.recipient, &row.body).await,
                    Err(e) => Err(SendError::Unavailable(e.to_string())),
                },
                Err(e) => Err(SendError::Unavailable(format!("consent not readable: {e}"))),
            };
            (row, result)
        })
        .collect();
    while let Some((row, result)) = in_flight.next().await {
        if let Err(e) = finish_one(ctx, row, result).await {
            tracing::warn!(message = %row.id, error = %e, "sms: outcome not recorded; the message is tried again after its backoff");
        }
    }
    Ok(count)
}

async fn finish_one(
    ctx: &Ctx,
    row: &outbound::Model,
    result: Result<Sent, SendError>,
) -> Result<(), StoreError> {
    let txn = ctx.fence.begin(&ctx.db).await?;
    finish(&txn, row, result).await?;
    txn.commit().await?;
    ctx.relay.notify_one();
    Ok(())
}

/// Records what became of one attempt.
async fn finish(
    txn: &impl ConnectionTrait,
    row: &outbound::Model,
    result: Result<Sent, SendError>,
) -> Result<(), StoreError> {
    let mut active: outbound::ActiveModel = row.clone().into();
    active.attempts = Set(row.attempts + 1);
    let (status, error) = match result {
        Ok(sent) => {
            for (i, smsc_id) in sent.part_ids.iter().enumerate() {
                part::Entity::insert(part::ActiveModel {
                    smsc_id: Set(smsc_id.chars().take(64).collect()),
                    message_id: Set(row.id.clone()),
                    part: Set(i32::try_from(i + 1).unwrap_or(i32::MAX)),
                    status: Set(MessageStatus::Sent.as_str().into()),
                    error: Set(String::new()),
                })
                // An SMSC that reuses ids after a restart: the newest message owns it.
                .on_conflict(
                    sea_orm::sea_query::OnConflict::column(part::Column::SmscId)
                        .update_columns([
                            part::Column::MessageId,
                            part::Column::Part,
                            part::Column::Status,
                            part::Column::Error,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
            }
            message::Entity::update_many()
                .col_expr(message::Column::ProviderId, Expr::value(sent.provider_id))
                .filter(message::Column::Id.eq(row.id.clone()))
                .exec(txn)
                .await?;
            active.status = Set(MessageStatus::Sent.as_str().into());
            active.last_error = Set(None);
            (MessageStatus::Sent, String::new())
        }
        Err(SendError::Refused(why)) => {
            tracing::warn!(message = %row.id, reason = %why, "sms: message not sent for good");
            active.status = Set(MessageStatus::Failed.as_str().into());
            active.last_error = Set(Some(why.clone()));
            (MessageStatus::Failed, why)
        }
        Err(SendError::Unreachable(why)) => {
            // The peer is away, not the message's fault: tried again within
            // seconds of its return, however long it was away.
            tracing::info!(message = %row.id, reason = %why, "sms: the SMSC or provider is not reachable; will retry");
            active.next_attempt_at = Set(now_ms()
                + i64::try_from(centralino_bus::backoff::PEER_MAX.as_millis()).unwrap_or(5_000));
            active.last_error = Set(Some(why));
            active.update(txn).await?;
            return Ok(());
        }
        Err(SendError::Unavailable(why)) => {
            tracing::info!(message = %row.id, attempts = row.attempts + 1, reason = %why, "sms: message not sent for now; will retry");
            active.last_error = Set(Some(why));
            active.update(txn).await?;
            return Ok(());
        }
    };
    active.update(txn).await?;
    advance(txn, &row.id, status, &error).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = std::time::Duration::from_secs(2);
        assert_eq!(super::backoff_ms(base, 0), 2_000);
        assert_eq!(super::backoff_ms(base, 2), 8_000);
        assert_eq!(super::backoff_ms(base, 30), 60_000);
    }
}
