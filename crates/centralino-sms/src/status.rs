//! Where a message stands ([`MessageStatus`]: received, queued, sent,
//! delivered, failed), how it moves (forward only, whatever order the submit
//! answer, receipts and status callbacks arrive in: [`advance`]) and the
//! `MessageStatusChanged` event each move publishes ([`status_event`]).

use centralino_proto::v1;
use centralino_store::StoreError;
use sea_orm::{ActiveModelTrait as _, ConnectionTrait, EntityTrait, Set};

use crate::SERVICE;
use crate::entities::message;

/// A message's status, stored as its name (`sms_messages.status`, and the
/// same names in `sms_parts` and `sms_outbound`) and published as it is in
/// `MessageStatusChanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageStatus {
    /// A customer's message (inbound); never moves.
    Received,
    /// Waiting to be submitted.
    Queued,
    /// Accepted by the SMSC or provider.
    Sent,
    Delivered,
    Failed,
}

impl MessageStatus {
    /// The stored and published name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Received => "received",
            MessageStatus::Queued => "queued",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
        }
    }

    /// The status of a stored or reported name; `None` for a name this
    /// adapter does not write.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "received" => MessageStatus::Received,
            "queued" => MessageStatus::Queued,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "failed" => MessageStatus::Failed,
            _ => return None,
        })
    }

    /// How far along a message is: a late `sent` never undoes `delivered`;
    /// `delivered` and `failed` are both final.
    fn rank(self) -> u8 {
        match self {
            MessageStatus::Received => 0,
            MessageStatus::Queued => 1,
            MessageStatus::Sent => 2,
            MessageStatus::Delivered | MessageStatus::Failed => 3,
        }
    }

    /// Nothing moves a message on from here.
    pub(crate) fn is_final(self) -> bool {
        self.rank() == 3
    }

    /// Whether news of `next` moves a message that is at `self`: only to
    /// another status, forward, and never out of a final one.
    pub(crate) fn may_become(self, next: MessageStatus) -> bool {
        self != next && !self.is_final() && next.rank() >= self.rank()
    }
}

/// Publishes `MessageStatusChanged` for message `id` (through the outbox, in
/// `txn`); `interaction` is empty for a notification that belongs to none.
pub(crate) async fn status_event(
    txn: &impl ConnectionTrait,
    id: &str,
    interaction: &str,
    status: MessageStatus,
    error: &str,
) -> Result<(), StoreError> {
    let (key, envelope) = centralino_bus::message_status(
        SERVICE,
        v1::Channel::Sms,
        id,
        interaction,
        status.as_str(),
        error,
    );
    centralino_store::outbox::enqueue(txn, SERVICE, &key, &envelope).await
}

/// Moves a message's status forward (never back) and reports it.
pub(crate) async fn advance(
    txn: &impl ConnectionTrait,
    message_id: &str,
    status: MessageStatus,
    error: &str,
) -> Result<(), StoreError> {
    let Some(m) = message::Entity::find_by_id(message_id.to_owned())
        .one(txn)
        .await?
    else {
        return Ok(());
    };
    // A stored name this adapter does not write ranks below every status.
    if MessageStatus::parse(&m.status).is_some_and(|now| !now.may_become(status)) {
        return Ok(());
    }
    let mut active: message::ActiveModel = m.clone().into();
    active.status = Set(status.as_str().to_owned());
    active.update(txn).await?;
    // A notification (no interaction) gets its outcome too; history skips it.
    let interaction = m.interaction_id.as_deref().unwrap_or_default();
    status_event(txn, message_id, interaction, status, error).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::MessageStatus::{self, Delivered, Failed, Queued, Received, Sent};

    const ALL: [MessageStatus; 5] = [Received, Queued, Sent, Delivered, Failed];

    #[test]
    fn status_only_moves_forward() {
        assert!(Delivered.rank() > Sent.rank());
        assert!(Sent.rank() > Queued.rank());
        assert_eq!(Failed.rank(), Delivered.rank());
        assert!(Queued.may_become(Sent));
        assert!(Queued.may_become(Delivered));
        assert!(Sent.may_become(Failed));
        assert!(!Sent.may_become(Queued));
        assert!(!Sent.may_become(Sent));
        for next in ALL {
            assert!(!Delivered.may_become(next), "delivered is final");
            assert!(!Failed.may_become(next), "failed is final");
        }
    }

    #[test]
    fn names_are_the_stored_ones() {
        let names: Vec<&str> = ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["received", "queued", "sent", "delivered", "failed"]);
        for s in ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(MessageStatus::parse("undelivered"), None);
        assert_eq!(MessageStatus::parse(""), None);
    }
}
