//! Validation errors raised by the domain rules.

/// Why a value was refused. Every variant names the offending field so edges can
/// report it (`INVALID_ARGUMENT` naming the field, HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{field}: is required")]
    Missing { field: &'static str },
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Invalid { field, .. } | Self::Missing { field } => field,
        }
    }
}
