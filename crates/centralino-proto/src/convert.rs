//! Conversions between wire types and domain types.

use centralino_domain as d;
use chrono::{DateTime, Utc};

use crate::v1;

pub fn timestamp_from_chrono(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// Converts a wire timestamp, naming `field` when it is out of range.
pub fn timestamp_to_chrono(
    t: &prost_types::Timestamp,
    field: &'static str,
) -> Result<DateTime<Utc>, d::DomainError> {
    let nanos =
        u32::try_from(t.nanos).map_err(|_| d::DomainError::invalid(field, "has negative nanos"))?;
    DateTime::<Utc>::from_timestamp(t.seconds, nanos)
        .ok_or_else(|| d::DomainError::invalid(field, "is out of range"))
}

impl From<d::Channel> for v1::Channel {
    fn from(c: d::Channel) -> Self {
        match c {
            d::Channel::Voice => v1::Channel::Voice,
            d::Channel::Email => v1::Channel::Email,
            d::Channel::Sms => v1::Channel::Sms,
            d::Channel::Desk => v1::Channel::Desk,
            d::Channel::Chat => v1::Channel::Chat,
            d::Channel::Task => v1::Channel::Task,
        }
    }
}

impl TryFrom<v1::Channel> for d::Channel {
    type Error = d::DomainError;
    fn try_from(c: v1::Channel) -> Result<Self, Self::Error> {
        Ok(match c {
            v1::Channel::Voice => d::Channel::Voice,
            v1::Channel::Email => d::Channel::Email,
            v1::Channel::Sms => d::Channel::Sms,
            v1::Channel::Desk => d::Channel::Desk,
            v1::Channel::Chat => d::Channel::Chat,
            v1::Channel::Task => d::Channel::Task,
            v1::Channel::Unspecified => return Err(d::DomainError::Missing { field: "channel" }),
        })
    }
}

/// A wire channel number as a domain channel, naming the field `channel` when it is not one.
pub fn channel_from_i32(raw: i32) -> Result<d::Channel, d::DomainError> {
    v1::Channel::try_from(raw)
        .map_err(|_| d::DomainError::invalid("channel", "unknown channel"))?
        .try_into()
}

impl From<d::Direction> for v1::Direction {
    fn from(dir: d::Direction) -> Self {
        match dir {
            d::Direction::Inbound => v1::Direction::Inbound,
            d::Direction::Outbound => v1::Direction::Outbound,
        }
    }
}

fn direction_from_i32(raw: i32) -> Result<d::Direction, d::DomainError> {
    match v1::Direction::try_from(raw) {
        Ok(v1::Direction::Inbound) => Ok(d::Direction::Inbound),
        Ok(v1::Direction::Outbound) => Ok(d::Direction::Outbound),
        Ok(v1::Direction::Unspecified) => Err(d::DomainError::Missing { field: "direction" }),
        Err(_) => Err(d::DomainError::invalid("direction", "unknown direction")),
    }
}

impl From<d::IdentifierKind> for v1::customer_identifier::Kind {
    fn from(k: d::IdentifierKind) -> Self {
        use v1::customer_identifier::Kind;
        match k {
            d::IdentifierKind::Phone => Kind::Phone,
            d::IdentifierKind::Email => Kind::Email,
            d::IdentifierKind::CodiceFiscale => Kind::CodiceFiscale,
            d::IdentifierKind::LoyaltyCard => Kind::LoyaltyCard,
            d::IdentifierKind::ExternalId => Kind::ExternalId,
        }
    }
}

/// Converts the wire kind; unspecified or unknown kinds are refused.
pub fn identifier_kind_from_i32(raw: i32) -> Result<d::IdentifierKind, d::DomainError> {
    use v1::customer_identifier::Kind;
    match Kind::try_from(raw) {
        Ok(Kind::Phone) => Ok(d::IdentifierKind::Phone),
        Ok(Kind::Email) => Ok(d::IdentifierKind::Email),
        Ok(Kind::CodiceFiscale) => Ok(d::IdentifierKind::CodiceFiscale),
        Ok(Kind::LoyaltyCard) => Ok(d::IdentifierKind::LoyaltyCard),
        Ok(Kind::ExternalId) => Ok(d::IdentifierKind::ExternalId),
        Ok(Kind::Unspecified) => Err(d::DomainError::Missing {
            field: "identifiers.kind",
        }),
        Err(_) => Err(d::DomainError::invalid("identifiers.kind", "unknown kind")),
    }
}

impl From<&d::CustomerIdentifier> for v1::CustomerIdentifier {
    fn from(i: &d::CustomerIdentifier) -> Self {
        Self {
            kind: v1::customer_identifier::Kind::from(i.kind()).into(),
            value: i.value().to_owned(),
        }
    }
}

impl From<&d::Interaction> for v1::Interaction {
    fn from(i: &d::Interaction) -> Self {
        Self {
            id: i.id.to_string(),
            channel: v1::Channel::from(i.channel).into(),
            direction: v1::Direction::from(i.direction).into(),
            identifiers: i.identifiers.iter().map(Into::into).collect(),
            queue_hint: i.queue_hint.clone(),
            priority: i.priority,
            conversation_id: i.conversation_id.map(|c| c.to_string()).unwrap_or_default(),
            subject: i.subject.clone(),
            created_at: Some(timestamp_from_chrono(i.created_at)),
            attributes: i.attributes.clone().into_iter().collect(),
        }
    }
}

/// Converts and validates a wire interaction. Identifiers are normalized with `rules`,
/// so a value that is already normalized passes through unchanged.
pub fn interaction_from_proto(
    i: &v1::Interaction,
    rules: &d::IdentityRules,
) -> Result<d::Interaction, d::DomainError> {
    let created_at = i
        .created_at
        .as_ref()
        .ok_or(d::DomainError::Missing {
            field: "created_at",
        })
        .and_then(|t| timestamp_to_chrono(t, "created_at"))?;
    let mut draft = d::InteractionDraft::new(
        channel_from_i32(i.channel)?,
        direction_from_i32(i.direction)?,
        created_at,
    );
    draft.id = d::InteractionId::parse_field(&i.id, "id")?;
    draft.identifiers = i
        .identifiers
        .iter()
        .map(|ci| rules.normalize(identifier_kind_from_i32(ci.kind)?, &ci.value))
        .collect::<Result<_, _>>()?;
    draft.queue_hint = i.queue_hint.clone();
    draft.priority = i.priority;
    draft.conversation_id = if i.conversation_id.is_empty() {
        None
    } else {
        Some(d::ConversationId::parse_field(
            &i.conversation_id,
            "conversation_id",
        )?)
    };
    draft.subject = i.subject.clone();
    draft.attributes = i.attributes.clone().into_iter().collect();
    draft.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_round_trips_through_the_wire() {
        let rules = d::IdentityRules::default();
        let mut draft = d::InteractionDraft::new(
            d::Channel::Email,
            d::Direction::Inbound,
            DateTime::<Utc>::from_timestamp(1_700_000_000, 5).expect("valid time"),
        );
        draft.identifiers = vec![
            rules
                .normalize(d::IdentifierKind::Email, "Anna@Example.it")
                .expect("valid"),
        ];
        draft.queue_hint = "billing".into();
        draft.priority = 7;
        draft.conversation_id = Some(d::ConversationId::new());
        draft.attributes.insert("mailbox".into(), "billing@".into());
        let interaction = draft.validate().expect("valid");
        let wire = v1::Interaction::from(&interaction);
        assert_eq!(interaction_from_proto(&wire, &rules), Ok(interaction));
    }

    #[test]
    fn wire_errors_name_the_field() {
        let rules = d::IdentityRules::default();
        let mut wire = v1::Interaction {
            id: "not-a-uuid".into(),
            channel: v1::Channel::Sms.into(),
            direction: v1::Direction::Inbound.into(),
            created_at: Some(prost_types::Timestamp::default()),
            ..Default::default()
        };
        assert_eq!(
            interaction_from_proto(&wire, &rules).unwrap_err().field(),
            "id"
        );
        wire.id = d::InteractionId::new().to_string();
        wire.channel = 42;
        assert_eq!(
            interaction_from_proto(&wire, &rules).unwrap_err().field(),
            "channel"
        );
        wire.channel = v1::Channel::Sms.into();
        wire.identifiers.push(v1::CustomerIdentifier {
            kind: 1,
            value: "not a phone".into(),
        });
        assert_eq!(
            interaction_from_proto(&wire, &rules).unwrap_err().field(),
            "phone"
        );
        wire.identifiers.clear();
        wire.created_at = None;
        assert_eq!(
            interaction_from_proto(&wire, &rules).unwrap_err().field(),
            "created_at"
        );
    }
}
