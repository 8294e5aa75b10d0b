//! Strongly typed identifiers.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::DomainError;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses an id received from outside, naming `field` in the error.
            pub fn parse_field(s: &str, field: &'static str) -> Result<Self, DomainError> {
                if s.is_empty() {
                    return Err(DomainError::Missing { field });
                }
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| DomainError::invalid(field, "is not a UUID"))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse_field(s, $field)
            }
        }
    };
}

uuid_id!(
    /// Identifies one interaction across every service.
    InteractionId,
    "interaction_id"
);
uuid_id!(
    /// Identifies one bus message; consumers de-duplicate on it.
    MessageId,
    "message_id"
);
uuid_id!(
    /// Identifies a conversation (an email thread, an SMS exchange).
    ConversationId,
    "conversation_id"
);
uuid_id!(
    /// Identifies a customer record in the history service.
    CustomerId,
    "customer_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        let id = InteractionId::new();
        assert_eq!(id.to_string().parse::<InteractionId>(), Ok(id));
        assert_eq!(
            "nope".parse::<InteractionId>().unwrap_err().field(),
            "interaction_id"
        );
        assert_eq!(
            MessageId::parse_field("", "message_id"),
            Err(DomainError::Missing {
                field: "message_id"
            })
        );
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert!(a < b);
    }
}
