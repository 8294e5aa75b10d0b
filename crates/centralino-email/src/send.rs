//! Outbound mail: `email.send` commands become rows (built once, in the same
//! transaction as their `MessageRecorded` event), and the sender delivers the
//! rows over SMTP, with backoff on temporary failures.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Delivery, EnvelopeExt as _, Handled, Handler, new_envelope};
use centralino_proto::v1;
use centralino_store::StoreError;
use centralino_store::leader::Fence;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use tokio::sync::{Notify, watch};

use crate::entities::{message, outbound, thread};
use crate::{EmailConfig, SERVICE, Security, SmtpConfig, compose, now_ms, pause};

/// Longest reply body accepted (characters).
const MAX_BODY_CHARS: usize = 1_000_000;

/// Why a send command cannot be carried out (reported as `failed`).
fn refuse(cmd: &v1::SendMessage, config: &EmailConfig) -> Option<String> {
    if uuid::Uuid::parse_str(&cmd.interaction_id).is_err() {
        return Some("interaction_id is not a UUID".into());
    }
    if cmd.body.trim().is_empty() && cmd.attachments.is_empty() {
        return Some("body is empty and there are no attachments".into());
    }
    if cmd.body.chars().count() > MAX_BODY_CHARS {
        return Some(format!("body is longer than {MAX_BODY_CHARS} characters"));
    }
    let total: usize = cmd.body.len()
        + cmd
            .attachments
            .iter()
            .map(|a| a.content.len())
            .sum::<usize>();
    if total as u64 > config.max_message_bytes {
        return Some(format!(
            "message of {total} bytes is above the {}-byte limit",
            config.max_message_bytes
        ));
    }
    None
}

/// The `email.send` consumer, run by the shared pipeline: a command is
/// stored (or refused, with its `failed` status) in one transaction; while
/// the database is away the command is held, not spent toward the delivery
/// limit (an agent's reply must survive a database restart).
pub(crate) struct SendCommands {
    pub config: Arc<EmailConfig>,
    pub db: DatabaseConnection,
    /// Every write transaction checks this instance still leads.
    pub fence: Fence,
    pub relay: Arc<Notify>,
    pub send_wake: Arc<Notify>,
}

#[async_trait::async_trait]
impl Handler for SendCommands {
    type Input = ();

    fn parse(&self, _: &Delivery) -> Result<Option<()>, String> {
        // Decoded in `accept`, which answers every readable command itself.
        Ok(Some(()))
    }

    async fn handle(&self, (): (), delivery: &Delivery) -> Handled {
        match accept(&self.config, &self.db, &self.fence, delivery).await {
            Ok(Accepted::Queued) => {
                self.relay.notify_one();
                self.send_wake.notify_one();
                Handled::Done
            }
            Ok(Accepted::Refused) => {
                self.relay.notify_one();
                Handled::Done
            }
            Ok(Accepted::AlreadyDone) => Handled::Done,
            Ok(Accepted::Unreadable) => Handled::Reject("not a readable SendMessage".into()),
            Err(e) if e.is_transient() => Handled::Hold(e.to_string()),
            Err(e) => Handled::Retry(e.to_string()),
        }
    }
}

enum Accepted {
    Queued,
    Refused,
    AlreadyDone,
    Unreadable,
}

async fn accept(
    config: &EmailConfig,
    db: &DatabaseConnection,
    fence: &Fence,
    delivery: &Delivery,
) -> Result<Accepted, StoreError> {
    let Ok(cmd) = delivery.envelope.decode::<v1::SendMessage>() else {
        tracing::warn!(message = %delivery.envelope.message_id, "email: a send command that does not decode; dead-lettered");
        return Ok(Accepted::Unreadable);
    };
    // The outcome names the interaction only when it is one (a UUID), so
    // history never refuses it.
    let interaction = uuid::Uuid::parse_str(&cmd.interaction_id)
        .map(|u| u.to_string())
        .unwrap_or_default();
    let Ok(id) = uuid::Uuid::parse_str(&cmd.message_id) else {
        // Still answered, addressed by the id it came with, when it has one.
        if !unaddressable(&cmd.message_id) {
            tracing::info!(message = %delivery.envelope.message_id, "email: a send command without a UUID message_id; refused");
            let txn = fence.begin(db).await?;
            status_event(
                &txn,
                &cmd.message_id,
                &interaction,
                "failed",
                "message_id: not a UUID",
            )
            .await?;
            txn.commit().await?;
            return Ok(Accepted::Refused);
        }
        tracing::warn!(message = %delivery.envelope.message_id, "email: a send command without a message_id to answer to; dead-lettered");
        return Ok(Accepted::Unreadable);
    };
    let id = id.to_string();
    let txn = fence.begin(db).await?;
    let dedupe_key = format!("out:{id}");
    if message::Entity::find()
        .filter(message::Column::DedupeKey.eq(dedupe_key.clone()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Ok(Accepted::AlreadyDone);
    }
    let now = now_ms();
    let conversation = match refuse(&cmd, config) {
        Some(why) => Err(why),
        None => thread::Entity::find_by_id(cmd.interaction_id.clone())
            .one(&txn)
            .await?
            .ok_or_else(|| "no email conversation has this interaction_id".to_owned()),
    };
    let conversation = conversation.and_then(|t| {
        let mailbox = config
            .mailboxes
            .iter()
            .find(|m| m.name == t.mailbox)
            .ok_or_else(|| format!("mailbox {} is no longer configured", t.mailbox))?;
        let to = t
            .customer
            .clone()
            .ok_or_else(|| "the conversation has no address to answer".to_owned())?;
        Ok((t, mailbox, to))
    });
    let (mut t, mailbox, to) = match conversation {
        Ok(found) => found,
        Err(why) => {
            // Recorded so the same id is refused again without another event.
            message::Entity::insert(message::ActiveModel {
                id: Set(id.clone()),
                dedupe_key: Set(dedupe_key),
                interaction_id: Set(uuid::Uuid::parse_str(&cmd.interaction_id)
                    .ok()
                    .map(|u| u.to_string())),
                direction: Set("outbound".into()),
                mailbox: Set(String::new()),
                rfc_id: Set(None),
                outcome: Set("refused".into()),
                detail: Set(Some(why.clone())),
                size: Set(0),
                raw: Set(None),
                created_at: Set(now),
            })
            .exec_without_returning(&txn)
            .await?;
            status_event(&txn, &id, &interaction, "failed", &why).await?;
            txn.commit().await?;
            return Ok(Accepted::Refused);
        }
    };
    let rfc_id = compose::new_rfc_id(
        &uuid::Uuid::parse_str(&id).unwrap_or_default(),
        &mailbox.address,
    );
    let subject = centralino_mime::with_token(
        &if cmd.subject.trim().is_empty() {
            centralino_mime::reply_subject(&t.subject)
        } else {
            cmd.subject.clone()
        },
        &t.token,
    );
    let refs: Vec<String> = t.refs.split_whitespace().map(str::to_owned).collect();
    let raw = compose::build(&compose::Draft {
        from_address: &mailbox.address,
        from_name: &mailbox.display_name,
        to: &to,
        subject: &subject,
        rfc_id: &rfc_id,
        references: &refs,
        in_reply_to: t.last_inbound.as_deref(),
        body: &cmd.body,
        attachments: &cmd.attachments,
        automatic: false,
    });
    let raw = match raw {
        Ok(raw) => raw,
        Err(why) => {
            status_event(&txn, &id, &interaction, "failed", &why).await?;
            txn.commit().await?;
            return Ok(Accepted::Refused);
        }
    };
    message::Entity::insert(message::ActiveModel {
        id: Set(id.clone()),
        dedupe_key: Set(dedupe_key),
        interaction_id: Set(Some(t.interaction_id.clone())),
        direction: Set("outbound".into()),
        mailbox: Set(mailbox.name.clone()),
        rfc_id: Set(Some(rfc_id.clone())),
        outcome: Set("reply".into()),
        detail: Set(None),
        size: Set(raw.len() as i64),
        raw: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    outbound::Entity::insert(outbound::ActiveModel {
        id: Set(id.clone()),
        interaction_id: Set(t.interaction_id.clone()),
        mailbox: Set(mailbox.name.clone()),
        kind: Set("reply".into()),
        sender: Set(mailbox.address.clone()),
        recipient: Set(to.clone()),
        raw: Set(raw),
        status: Set("queued".into()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    let mut list = refs;
    list.push(rfc_id);
    t.refs = compose::kept_refs(&list).join(" ");
    let mut active: thread::ActiveModel = t.clone().into();
    active.refs = Set(t.refs.clone());
    active.update(&txn).await?;
    let mut attributes = HashMap::from([("email.kind".to_owned(), "reply".to_owned())]);
    if !cmd.agent_id.is_empty() {
        attributes.insert("agent".into(), cmd.agent_id.chars().take(64).collect());
    }
    if !cmd.attachments.is_empty() {
        attributes.insert(
            "email.attachments".into(),
            cmd.attachments.len().to_string(),
        );
    }
    let recorded = v1::MessageRecorded {
        message_id: id.clone(),
        interaction_id: t.interaction_id.clone(),
        channel: v1::Channel::Email as i32,
        direction: v1::Direction::Outbound as i32,
        identifiers: Vec::new(),
        subject,
        body: cmd.body.clone(),
        sender: mailbox.address.clone(),
        recipient: to,
        at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
        attributes,
    };
    centralino_store::outbox::enqueue(
        &txn,
        SERVICE,
        &centralino_bus::keys::interaction(
            v1::Channel::Email,
            centralino_bus::keys::Interaction::Message,
        ),
        &new_envelope(SERVICE, &recorded),
    )
    .await?;
    txn.commit().await?;
    Ok(Accepted::Queued)
}

/// A message id no outcome can be addressed to: empty, or longer than
/// consumers keep.
pub(crate) fn unaddressable(message_id: &str) -> bool {
    message_id.is_empty() || message_id.len() > centralino_bus::MAX_MESSAGE_ID_LEN
}

async fn status_event(
    txn: &impl sea_orm::ConnectionTrait,
    id: &str,
    interaction: &str,
    status: &str,
    error: &str,
) -> Result<(), StoreError> {
    let (key, envelope) =
        centralino_bus::message_status(SERVICE, v1::Channel::Email, id, interaction, status, error);
    centralino_store::outbox::enqueue(txn, SERVICE, &key, &envelope).await
}

fn transport(
    smtp: &SmtpConfig,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = |host: &str| TlsParameters::new(host.to_owned()).map_err(|e| e.to_string());
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port)
        .timeout(Some(timeout));
    builder = match smtp.security {
        Security::Plain => builder.tls(Tls::None),
        Security::Tls => builder.tls(Tls::Wrapper(tls(&smtp.host)?)),
        Security::StartTls => builder.tls(Tls::Required(tls(&smtp.host)?)),
    };
    if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// Whether an SMTP error condemns this message (a 5xx about the message or its
/// recipient), rather than the server or our account (530/535 authentication,
/// 421 and other temporary or connection failures), which may heal.
fn refused_for_good(e: &lettre::transport::smtp::Error) -> bool {
    let Some(code) = e.status() else {
        return false;
    };
    e.is_permanent()
        && matches!(
            code.to_string().as_str(),
            "501" | "550" | "551" | "552" | "553" | "554" | "555"
        )
}

/// Delay before attempt `attempts + 1`: `base` doubling, at most 30 minutes.
fn backoff_ms(base: Duration, attempts: i32) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(0);
    let base = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
    base.saturating_mul(1i64 << exp).min(30 * 60 * 1000)
}

/// Delivers due rows until stopped.
pub(crate) async fn deliver(
    config: Arc<EmailConfig>,
    db: DatabaseConnection,
    fence: Fence,
    relay: Arc<Notify>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(smtp) = config.smtp.clone() else {
        return;
    };
    let transport = match transport(&smtp, config.io_timeout) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "email: SMTP settings unusable; replies are not sent");
            return;
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        match deliver_due(&config, &db, &fence, &transport).await {
            Ok(0) => {}
            Ok(_) => {
                relay.notify_one();
                continue;
            }
            Err(e) => tracing::warn!(error = %e, "email: sender could not read or record its work"),
        }
        tokio::select! {
            () = wake.notified() => {}
            _ = pause(Duration::from_secs(1), &mut stop) => {}
        }
    }
}

/// Sends every due row once; returns how many were settled (sent, failed or rescheduled).
async fn deliver_due(
    config: &EmailConfig,
    db: &DatabaseConnection,
    fence: &Fence,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
) -> Result<usize, StoreError> {
    let due = outbound::Entity::find()
        .filter(outbound::Column::Status.eq("queued"))
        .filter(outbound::Column::NextAttemptAt.lte(now_ms()))
        .order_by_asc(outbound::Column::NextAttemptAt)
        .limit(32)
        .all(db)
        .await?;
    let count = due.len();
    for row in due {
        let envelope = match (row.sender.parse(), row.recipient.parse()) {
            (Ok(from), Ok(to)) => {
                lettre::address::Envelope::new(Some(from), vec![to]).map_err(|e| e.to_string())
            }
            _ => Err("not an email address".to_owned()),
        };
        // Claimed before sending: if recording the outcome fails after the
        // server accepted, the next attempt waits for the backoff, not a second.
        let attempts = row.attempts + 1;
        let mut claim: outbound::ActiveModel = row.clone().into();
        claim.attempts = Set(attempts);
        claim.next_attempt_at = Set(now_ms() + backoff_ms(config.retry_base, row.attempts));
        // Fenced: a deposed instance cannot claim (and send) what its
        // successor sends.
        let txn = fence.begin(db).await?;
        claim.update(&txn).await?;
        txn.commit().await?;
        // A leader paused past its lease may have a successor sending this
        // very row: it steps down rather than send it too.
        fence.check_lease()?;
        let result = match envelope {
            Ok(envelope) => transport.send_raw(&envelope, &row.raw).await.map_err(|e| {
                (
                    refused_for_good(&e),
                    e.status().map(|c| c.to_string()),
                    e.to_string(),
                )
            }),
            Err(e) => Err((true, None, format!("address: {e}"))),
        };
        // No SMTP reply at all: either the server cannot be reached (down, the
        // network), or something went wrong with this message midway (a
        // timeout after DATA, TLS). Asking the server tells them apart.
        let unreachable = match &result {
            Err((false, None, _)) => !transport.test_connection().await.unwrap_or(false),
            _ => false,
        };
        let txn = fence.begin(db).await?;
        let mut active: outbound::ActiveModel = row.clone().into();
        active.attempts = Set(attempts);
        match result {
            Ok(_) => {
                active.status = Set("sent".into());
                active.last_error = Set(None);
                status_event(&txn, &row.id, &row.interaction_id, "sent", "").await?;
            }
            // The server is not reachable: not the message's fault, so not
            // one of its attempts, and tried again within seconds of the
            // server's return, however long it was away.
            Err((_, _, error)) if unreachable => {
                tracing::info!(message = %row.id, "email: SMTP server not reachable; will retry");
                active.attempts = Set(row.attempts);
                active.next_attempt_at = Set(now_ms()
                    + i64::try_from(centralino_bus::backoff::PEER_MAX.as_millis())
                        .unwrap_or(5_000));
                active.last_error = Set(Some(error));
            }
            // Logs carry the SMTP code only: servers quote the recipient.
            Err((permanent, code, error)) if permanent || attempts >= config.max_send_attempts => {
                tracing::warn!(message = %row.id, attempts, code = code.as_deref().unwrap_or("-"), "email: send failed for good");
                active.status = Set("failed".into());
                active.last_error = Set(Some(error.clone()));
                status_event(&txn, &row.id, &row.interaction_id, "failed", &error).await?;
            }
            Err((_, code, error)) => {
                tracing::info!(message = %row.id, attempts, code = code.as_deref().unwrap_or("-"), "email: send failed for now; will retry");
                active.next_attempt_at =
                    Set(now_ms() + backoff_ms(config.retry_base, row.attempts));
                active.last_error = Set(Some(error));
            }
        }
        active.update(&txn).await?;
        txn.commit().await?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = std::time::Duration::from_secs(5);
        assert_eq!(super::backoff_ms(base, 0), 5_000);
        assert_eq!(super::backoff_ms(base, 1), 10_000);
        assert_eq!(super::backoff_ms(base, 30), 30 * 60 * 1000);
    }
}
