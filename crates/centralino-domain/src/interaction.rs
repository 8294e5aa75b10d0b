//! The normalized interaction every channel adapter produces.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{Channel, ConversationId, CustomerIdentifier, Direction, DomainError, InteractionId};

/// Highest priority an interaction can carry.
pub const MAX_PRIORITY: u32 = 100;
const MAX_QUEUE_HINT: usize = 64;
const MAX_SUBJECT: usize = 998; // RFC 5322 line limit
const MAX_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTE_LEN: usize = 1024;

/// One customer contact on one channel: a call that finished its IVR, an email,
/// an SMS, a desk ticket. Built only through [`InteractionDraft::validate`], so
/// every `Interaction` in the system satisfies the invariants below.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub id: InteractionId,
    pub channel: Channel,
    pub direction: Direction,
    /// Normalized, de-duplicated, sorted.
    pub identifiers: Vec<CustomerIdentifier>,
    /// Queue the adapter asks for; empty means "let routing decide".
    pub queue_hint: String,
    /// 0..=[`MAX_PRIORITY`].
    pub priority: u32,
    pub conversation_id: Option<ConversationId>,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub attributes: BTreeMap<String, String>,
}

/// Unvalidated fields of an interaction, as received from an edge.
#[derive(Debug, Clone)]
pub struct InteractionDraft {
    pub id: InteractionId,
    pub channel: Channel,
    pub direction: Direction,
    pub identifiers: Vec<CustomerIdentifier>,
    pub queue_hint: String,
    pub priority: u32,
    pub conversation_id: Option<ConversationId>,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub attributes: BTreeMap<String, String>,
}

impl InteractionDraft {
    /// A draft with only the required fields set.
    pub fn new(channel: Channel, direction: Direction, created_at: DateTime<Utc>) -> Self {
        Self {
            id: InteractionId::new(),
            channel,
            direction,
            identifiers: Vec::new(),
            queue_hint: String::new(),
            priority: 0,
            conversation_id: None,
            subject: String::new(),
            created_at,
            attributes: BTreeMap::new(),
        }
    }

    /// Checks every invariant and returns the interaction, or the first field at fault.
    pub fn validate(mut self) -> Result<Interaction, DomainError> {
        if self.priority > MAX_PRIORITY {
            return Err(DomainError::invalid(
                "priority",
                "must be between 0 and 100",
            ));
        }
        let hint = self.queue_hint.trim();
        if hint.len() > MAX_QUEUE_HINT
            || !hint
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(DomainError::invalid(
                "queue_hint",
                "must be at most 64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        self.queue_hint = hint.to_owned();
        if self.subject.len() > MAX_SUBJECT {
            return Err(DomainError::invalid("subject", "is longer than 998 bytes"));
        }
        if self.attributes.len() > MAX_ATTRIBUTES
            || self
                .attributes
                .iter()
                .any(|(k, v)| k.is_empty() || k.len() > 128 || v.len() > MAX_ATTRIBUTE_LEN)
        {
            return Err(DomainError::invalid(
                "attributes",
                "at most 64 entries, keys 1 to 128 bytes, values at most 1024 bytes",
            ));
        }
        self.identifiers.sort();
        self.identifiers.dedup();
        Ok(Interaction {
            id: self.id,
            channel: self.channel,
            direction: self.direction,
            identifiers: self.identifiers,
            queue_hint: self.queue_hint,
            priority: self.priority,
            conversation_id: self.conversation_id,
            subject: self.subject,
            created_at: self.created_at,
            attributes: self.attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IdentifierKind, IdentityRules};

    fn draft() -> InteractionDraft {
        InteractionDraft::new(
            Channel::Sms,
            Direction::Inbound,
            DateTime::<Utc>::UNIX_EPOCH,
        )
    }

    #[test]
    fn validation_dedups_identifiers_and_trims_hint() {
        let rules = IdentityRules::default();
        let phone = rules
            .normalize(IdentifierKind::Phone, "3471234567")
            .expect("valid");
        let same = rules
            .normalize(IdentifierKind::Phone, "+39 347 123 4567")
            .expect("valid");
        let mut d = draft();
        d.identifiers = vec![phone.clone(), same];
        d.queue_hint = " billing ".into();
        let i = d.validate().expect("valid draft");
        assert_eq!(i.identifiers, vec![phone]);
        assert_eq!(i.queue_hint, "billing");
    }

    #[test]
    fn validation_names_the_field() {
        let mut d = draft();
        d.priority = 101;
        assert_eq!(d.validate().unwrap_err().field(), "priority");
        let mut d = draft();
        d.queue_hint = "no spaces please".into();
        assert_eq!(d.validate().unwrap_err().field(), "queue_hint");
        let mut d = draft();
        d.subject = "x".repeat(999);
        assert_eq!(d.validate().unwrap_err().field(), "subject");
    }
}
