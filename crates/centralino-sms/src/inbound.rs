//! What the transports deliver, committed: customers' messages (new
//! conversation or follow-up, keywords), SMPP delivery receipts and provider
//! status callbacks. Each is one transaction with its bus events (outbox);
//! the transport answers its peer only after the commit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::new_envelope;
use centralino_domain::IdentifierKind;
use centralino_gsm::Keyword;
use centralino_proto::v1;
use centralino_store::StoreError;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use tokio::sync::mpsc;

use crate::consent::set_consent;
use crate::entities::{conversation, message, part};
use crate::outbound::{Outgoing, queue as queue_outgoing};
use crate::status::{MessageStatus, advance};
use crate::{Ctx, Delivered, Incoming, SERVICE, now_ms};

/// Longest inbound text kept (characters); a longer one is cut and flagged.
const MAX_TEXT: usize = 10_000;

/// A receipt or status callback for a message not recorded as sent yet (the
/// SMSC answers the submit and reports on it at once) is tried again this
/// often, this many times, before it is acknowledged and dropped.
const EARLY_RETRY: Duration = Duration::from_millis(200);
const EARLY_ATTEMPTS: u8 = 50;

/// Most deliveries committed together.
const BATCH: usize = 128;

/// Handles deliveries until `shutdown`, in the order they come, committing
/// what is waiting together (one transaction per batch, one by one when a
/// batch fails), so two messages from the same number never open two
/// conversations.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    mut incoming: mpsc::Receiver<Incoming>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let (again_tx, mut again) = mpsc::channel::<(Incoming, u8)>(1_024);
    loop {
        let first = tokio::select! {
            i = incoming.recv() => match i { Some(i) => (i, 0), None => return },
            Some(a) = again.recv() => a,
            () = &mut shutdown => return,
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match incoming.try_recv() {
                Ok(i) => batch.push((i, 0)),
                Err(_) => break,
            }
        }
        let whats: Vec<Delivered> = batch.iter().map(|(i, _)| i.what.clone()).collect();
        match commit(&ctx, &whats).await {
            Ok(known) => settle(&ctx, batch, known, &again_tx),
            Err(e) if batch.len() == 1 => fail(batch, &e),
            Err(_) => {
                for item in batch {
                    match commit(&ctx, std::slice::from_ref(&item.0.what)).await {
                        Ok(known) => settle(&ctx, vec![item], known, &again_tx),
                        Err(e) => fail(vec![item], &e),
                    }
                }
            }
        }
    }
}

/// Applies `whats` in one transaction.
async fn commit(ctx: &Ctx, whats: &[Delivered]) -> Result<Vec<Known>, StoreError> {
    let txn = ctx.fence.begin(&ctx.db).await?;
    let mut known = Vec::with_capacity(whats.len());
    for what in whats {
        known.push(handle(ctx, &txn, what).await?);
    }
    txn.commit().await?;
    Ok(known)
}

/// Answers the peers of a committed batch; what named an unknown message is
/// tried again a little later.
fn settle(
    ctx: &Ctx,
    batch: Vec<(Incoming, u8)>,
    known: Vec<Known>,
    again: &mpsc::Sender<(Incoming, u8)>,
) {
    ctx.relay.notify_one();
    ctx.send_wake.notify_one();
    for ((item, attempt), known) in batch.into_iter().zip(known) {
        match known {
            Known::No if attempt < EARLY_ATTEMPTS => {
                let again = again.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(EARLY_RETRY).await;
                    let _ = again.send((item, attempt + 1)).await;
                });
            }
            Known::No => {
                tracing::debug!(
                    "sms: a receipt or status for a message we do not know; acknowledged"
                );
                let _ = item.handled.send(true);
            }
            Known::Yes => {
                let _ = item.handled.send(true);
            }
        }
    }
}

fn fail(batch: Vec<(Incoming, u8)>, e: &StoreError) {
    tracing::warn!(error = %e, "sms: delivery not stored; the peer will deliver it again");
    for (item, _) in batch {
        let _ = item.handled.send(false);
    }
}

/// Whether what was delivered is about something we know.
enum Known {
    Yes,
    No,
}

async fn handle(
    ctx: &Ctx,
    txn: &impl ConnectionTrait,
    what: &Delivered,
) -> Result<Known, StoreError> {
    match what {
        Delivered::Message { id, from, to, text } => {
            customer_message(ctx, txn, id.as_deref(), from, to, text).await?;
            Ok(Known::Yes)
        }
        Delivered::Receipt(r) => receipt(txn, r).await,
        Delivered::Status { id, status, error } => provider_status(txn, id, status, error).await,
    }
}

async fn customer_message(
    ctx: &Ctx,
    txn: &impl ConnectionTrait,
    provider_id: Option<&str>,
    from: &str,
    to: &str,
    text: &str,
) -> Result<(), StoreError> {
    let config = &ctx.config;
    let identifier = config.rules.normalize(IdentifierKind::Phone, from).ok();
    let phone = config.phone(from);
    let (our_number, queue, priority) = config.number(to);
    let id = uuid::Uuid::now_v7().to_string();
    let dedupe_key = match provider_id {
        Some(sid) => format!("sid:{sid}"),
        None => format!("in:{id}"),
    };
    if message::Entity::find()
        .filter(message::Column::DedupeKey.eq(dedupe_key.clone()))
        .one(txn)
        .await?
        .is_some()
    {
        // A provider's retry of what is already kept.
        return Ok(());
    }
    let now = now_ms();
    let keyword = centralino_gsm::keyword(text);
    let window = i64::try_from(config.conversation_window.as_millis()).unwrap_or(i64::MAX);
    let open = conversation::Entity::find()
        .filter(conversation::Column::Phone.eq(phone.clone()))
        .filter(conversation::Column::OurNumber.eq(our_number))
        .filter(conversation::Column::Closed.eq(false))
        .filter(conversation::Column::LastMessageAt.gte(now.saturating_sub(window)))
        .order_by_desc(conversation::Column::LastMessageAt)
        .one(txn)
        .await?;
    let wire_identifiers: Vec<v1::CustomerIdentifier> = identifier
        .iter()
        .map(|i| v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Phone as i32,
            value: i.value().to_owned(),
        })
        .collect();
    // A keyword alone opens no conversation: nobody needs to answer it.
    let conversation = match (open, keyword) {
        (Some(c), _) => Some(c),
        (None, Some(_)) => None,
        (None, None) => {
            let c = conversation::Model {
                interaction_id: id.clone(),
                phone: phone.clone(),
                our_number: our_number.to_owned(),
                closed: false,
                last_inbound_at: now,
                last_message_at: now,
                created_at: now,
            };
            conversation::Entity::insert(conversation::ActiveModel::from(c.clone()))
                .exec_without_returning(txn)
                .await?;
            let created = v1::InteractionCreated {
                interaction: Some(v1::Interaction {
                    id: id.clone(),
                    channel: v1::Channel::Sms as i32,
                    direction: v1::Direction::Inbound as i32,
                    identifiers: wire_identifiers.clone(),
                    queue_hint: queue.to_owned(),
                    priority,
                    conversation_id: id.clone(),
                    subject: text.chars().take(100).collect(),
                    created_at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
                    attributes: HashMap::from([("sms.to".to_owned(), our_number.to_owned())]),
                }),
            };
            centralino_store::outbox::enqueue(
                txn,
                SERVICE,
                &centralino_bus::keys::interaction(
                    v1::Channel::Sms,
                    centralino_bus::keys::Interaction::Created,
                ),
                &new_envelope(SERVICE, &created),
            )
            .await?;
            Some(c)
        }
    };
    let interaction_id = conversation.as_ref().map(|c| c.interaction_id.clone());
    message::Entity::insert(message::ActiveModel {
        id: Set(id.clone()),
        dedupe_key: Set(dedupe_key),
        interaction_id: Set(interaction_id.clone()),
        direction: Set("inbound".into()),
        provider_id: Set(provider_id.map(str::to_owned)),
        status: Set(MessageStatus::Received.as_str().into()),
        segments: Set(0),
        encoding: Set(String::new()),
        created_at: Set(now),
    })
    .exec_without_returning(txn)
    .await?;
    if let Some(c) = &conversation {
        let mut active: conversation::ActiveModel = c.clone().into();
        active.last_inbound_at = Set(now);
        active.last_message_at = Set(now);
        active.update(txn).await?;
        let mut attributes = HashMap::new();
        if let Some(k) = keyword {
            attributes.insert("sms.keyword".to_owned(), keyword_name(k).to_owned());
        }
        let cut = text.chars().count() > MAX_TEXT;
        if cut {
            attributes.insert("sms.truncated".to_owned(), "true".to_owned());
        }
        let recorded = v1::MessageRecorded {
            message_id: id.clone(),
            interaction_id: c.interaction_id.clone(),
            channel: v1::Channel::Sms as i32,
            direction: v1::Direction::Inbound as i32,
            identifiers: wire_identifiers,
            subject: String::new(),
            body: text.chars().take(MAX_TEXT).collect(),
            sender: phone.clone(),
            recipient: our_number.to_owned(),
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
    }
    if let Some(k) = keyword {
        let answer = match k {
            Keyword::OptOut => {
                consent(ctx, txn, &id, &phone, identifier.is_some(), false, now).await?;
                config.stop_reply.clone()
            }
            Keyword::OptIn => {
                consent(ctx, txn, &id, &phone, identifier.is_some(), true, now).await?;
                config.start_reply.clone()
            }
            Keyword::Help => Some(config.help_reply.clone()),
        };
        if let Some(body) = answer {
            let answer_id = uuid::Uuid::now_v7();
            queue_outgoing(
                ctx,
                txn,
                Outgoing {
                    id: answer_id.to_string(),
                    interaction_id: interaction_id.clone().unwrap_or_default(),
                    recipient: phone.clone(),
                    sender: our_number.to_owned(),
                    body,
                    kind: keyword_name(k),
                    purpose: "transactional".into(),
                    agent: String::new(),
                },
            )
            .await?;
        }
    }
    Ok(())
}

fn keyword_name(k: Keyword) -> &'static str {
    match k {
        Keyword::OptOut => "stop",
        Keyword::OptIn => "start",
        Keyword::Help => "help",
    }
}

/// Records an opt-out (or opt-in) from a keyword: here at once, in history's
/// ledger through a command (when the number is a phone number history can
/// keep).
async fn consent(
    _ctx: &Ctx,
    txn: &impl ConnectionTrait,
    message_id: &str,
    phone: &str,
    known_phone: bool,
    granted: bool,
    now: i64,
) -> Result<(), StoreError> {
    set_consent(txn, phone, "all", !granted, now).await?;
    if !known_phone {
        return Ok(());
    }
    let request = v1::RecordConsentRequest {
        request_id: format!("sms-keyword:{message_id}"),
        customer_id: String::new(),
        identifier: Some(v1::CustomerIdentifier {
            kind: v1::customer_identifier::Kind::Phone as i32,
            value: phone.to_owned(),
        }),
        channel: v1::Channel::Sms as i32,
        purpose: "all".into(),
        state: if granted {
            v1::ConsentState::Granted
        } else {
            v1::ConsentState::Revoked
        } as i32,
        source: "sms-keyword".into(),
        note: String::new(),
        at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
    };
    centralino_store::outbox::enqueue(
        txn,
        SERVICE,
        &centralino_bus::keys::record_consent(),
        &new_envelope(SERVICE, &request),
    )
    .await
}

/// The forms an SMSC id may take between `submit_sm_resp` and its receipt:
/// as given, and hexadecimal ↔ decimal (SMSCs disagree on which they print).
fn id_forms(id: &str) -> Vec<String> {
    let mut forms = vec![id.to_owned()];
    // Hexadecimal in the submit answer, decimal in the receipt is the usual
    // disagreement: that reading first.
    if let Ok(n) = id.parse::<u64>() {
        forms.push(format!("{n:x}"));
        forms.push(format!("{n:X}"));
    }
    if let Ok(n) = u64::from_str_radix(id, 16) {
        forms.push(n.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    forms.retain(|f| seen.insert(f.clone()));
    forms
}

async fn receipt(
    txn: &impl ConnectionTrait,
    r: &centralino_gsm::Receipt,
) -> Result<Known, StoreError> {
    let mut found = None;
    // The id as written first; other forms only when it is not found.
    for form in id_forms(&r.id) {
        found = part::Entity::find_by_id(form).one(txn).await?;
        if found.is_some() {
            break;
        }
    }
    let Some(p) = found else {
        return Ok(Known::No);
    };
    let mut active: part::ActiveModel = p.clone().into();
    // A stored name this adapter does not write ranks below every status.
    if let Some(status) = MessageStatus::parse(r.status())
        && MessageStatus::parse(&p.status).is_none_or(|now| now.may_become(status))
    {
        active.status = Set(status.as_str().to_owned());
        active.error = Set(if status == MessageStatus::Failed {
            format!("{} err:{}", r.stat, r.err)
                .chars()
                .take(32)
                .collect()
        } else {
            String::new()
        });
        active.update(txn).await?;
    }
    let parts = part::Entity::find()
        .filter(part::Column::MessageId.eq(p.message_id.clone()))
        .all(txn)
        .await?;
    let is = |p: &part::Model, s: MessageStatus| p.status == s.as_str();
    let (status, error) = if let Some(f) = parts.iter().find(|p| is(p, MessageStatus::Failed)) {
        (MessageStatus::Failed, f.error.clone())
    } else if parts.iter().all(|p| is(p, MessageStatus::Delivered)) {
        (MessageStatus::Delivered, String::new())
    } else {
        return Ok(Known::Yes);
    };
    advance(txn, &p.message_id, status, &error).await?;
    Ok(Known::Yes)
}

async fn provider_status(
    txn: &impl ConnectionTrait,
    sid: &str,
    status: &str,
    error: &str,
) -> Result<Known, StoreError> {
    let Some(m) = message::Entity::find()
        .filter(message::Column::ProviderId.eq(sid))
        .filter(message::Column::Direction.eq("outbound"))
        .one(txn)
        .await?
    else {
        return Ok(Known::No);
    };
    let Some(status) = MessageStatus::parse(status) else {
        // News this adapter does not know changes nothing.
        return Ok(Known::Yes);
    };
    let error = if error.is_empty() {
        String::new()
    } else {
        format!("provider error {error}")
    };
    advance(txn, &m.id, status, &error).await?;
    Ok(Known::Yes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn smsc_ids_match_in_hex_and_decimal() {
        let forms = super::id_forms("1a");
        assert!(forms.contains(&"26".to_owned()));
        let forms = super::id_forms("26");
        assert!(forms.contains(&"1a".to_owned()));
        assert_eq!(super::id_forms("msg-1"), vec!["msg-1".to_owned()]);
    }
}
