//! The one place errors become gRPC codes and HTTP statuses.

use centralino_bus::BusError;
use centralino_domain::DomainError;
use centralino_store::StoreError;

/// An error as an API caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Bad input; names the field.
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many requests (a login throttle, a lockout); says when to retry.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A dependency (broker, database) is down; the caller may retry.
    #[error("{0} is unavailable, retry later")]
    Unavailable(String),
    /// A bug or an unexpected failure. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The table: each variant's gRPC code and HTTP status.
    pub fn code_and_status(&self) -> (tonic::Code, u16) {
        match self {
            ApiError::InvalidArgument { .. } => (tonic::Code::InvalidArgument, 400),
            ApiError::NotFound(_) => (tonic::Code::NotFound, 404),
            ApiError::AlreadyExists(_) => (tonic::Code::AlreadyExists, 409),
            ApiError::FailedPrecondition(_) => (tonic::Code::FailedPrecondition, 409),
            ApiError::PermissionDenied(_) => (tonic::Code::PermissionDenied, 403),
            ApiError::Unauthenticated(_) => (tonic::Code::Unauthenticated, 401),
            ApiError::ResourceExhausted(_) => (tonic::Code::ResourceExhausted, 429),
            ApiError::Unavailable(_) => (tonic::Code::Unavailable, 503),
            ApiError::Internal(_) => (tonic::Code::Internal, 500),
        }
    }

    /// The gRPC status code's canonical name (`INVALID_ARGUMENT`, …), as
    /// outcome events on the bus carry it.
    pub fn code_name(&self) -> &'static str {
        match self.code_and_status().0 {
            tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
            tonic::Code::NotFound => "NOT_FOUND",
            tonic::Code::AlreadyExists => "ALREADY_EXISTS",
            tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
            tonic::Code::PermissionDenied => "PERMISSION_DENIED",
            tonic::Code::Unauthenticated => "UNAUTHENTICATED",
            tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            tonic::Code::Unavailable => "UNAVAILABLE",
            _ => "INTERNAL",
        }
    }

    pub fn http_status(&self) -> u16 {
        self.code_and_status().1
    }
}

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        if let ApiError::Internal(detail) = &e {
            tracing::error!(%detail, "internal error");
        }
        let (code, _) = e.code_and_status();
        tonic::Status::new(code, e.to_string())
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid { field, reason } => ApiError::invalid(field, reason),
            DomainError::Missing { field } => ApiError::invalid(field, "is required"),
        }
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::UnknownConsumer(name) => ApiError::NotFound(format!("consumer {name:?}")),
            BusError::InvalidName(_) => {
                ApiError::invalid("queue", "use 1 to 64 letters, digits, '-' or '_'")
            }
            BusError::Unavailable(_) | BusError::Closed => ApiError::Unavailable("the bus".into()),
            BusError::Unroutable { routing_key, .. } => {
                ApiError::FailedPrecondition(format!("no service handles {routing_key}"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Bus(b) => b.into(),
            // Lost or refused connections, serialization failures, a busy
            // SQLite file: the caller may retry.
            e if e.is_transient() => ApiError::Unavailable("the database".into()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_code_and_status() {
        let cases = [
            (
                ApiError::invalid("phone", "bad"),
                tonic::Code::InvalidArgument,
                400,
            ),
            (ApiError::NotFound("x".into()), tonic::Code::NotFound, 404),
            (
                ApiError::AlreadyExists("x".into()),
                tonic::Code::AlreadyExists,
                409,
            ),
            (
                ApiError::FailedPrecondition("x".into()),
                tonic::Code::FailedPrecondition,
                409,
            ),
            (
                ApiError::PermissionDenied("x".into()),
                tonic::Code::PermissionDenied,
                403,
            ),
            (
                ApiError::Unauthenticated("x".into()),
                tonic::Code::Unauthenticated,
                401,
            ),
            (
                ApiError::ResourceExhausted("x".into()),
                tonic::Code::ResourceExhausted,
                429,
            ),
            (
                ApiError::Unavailable("x".into()),
                tonic::Code::Unavailable,
                503,
            ),
            (
                ApiError::Internal("secret detail".into()),
                tonic::Code::Internal,
                500,
            ),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.code_and_status(), (code, status), "{e:?}");
            let s = tonic::Status::from(e);
            assert_eq!(s.code(), code);
            assert!(!s.message().contains("secret"), "internal detail leaked");
        }
    }

    #[test]
    fn transient_store_errors_are_unavailable_and_permanent_ones_internal() {
        use centralino_store::sea_orm::{DbErr, RuntimeErr, sqlx};
        let lost = StoreError::Db(DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::PoolTimedOut,
        ))));
        assert!(matches!(ApiError::from(lost), ApiError::Unavailable(_)));
        let refused = StoreError::Db(DbErr::Custom("constraint".into()));
        assert!(matches!(ApiError::from(refused), ApiError::Internal(_)));
    }

    #[test]
    fn domain_errors_name_the_field() {
        let s = tonic::Status::from(ApiError::from(DomainError::invalid("email", "has no @")));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(s.message(), "email: has no @");
    }
}
