//! Pure domain model of Centralino.
//!
//! Ids, the normalized [`Interaction`] every channel adapter produces, channels,
//! directions and customer identifiers with their normalization rules (E.164
//! phones with a configurable default region, internationalized emails, Italian
//! codice fiscale with checksum), and the identity rule that decides which
//! customer an interaction belongs to ([`identity::resolve`]).
//!
//! Architecture invariant: this crate does no IO and knows nothing about tokio,
//! tonic, lapin or sea-orm. Everything here is deterministic; the clock is passed in.

mod channel;
mod error;
mod identifier;
pub mod identity;
mod ids;
mod interaction;

pub use channel::{Channel, Direction};
pub use error::DomainError;
pub use identifier::{CustomerIdentifier, IdentifierKind, IdentityRules};
pub use ids::{ConversationId, CustomerId, InteractionId, MessageId};
pub use interaction::{Interaction, InteractionDraft, MAX_PRIORITY};
