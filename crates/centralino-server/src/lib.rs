//! The parts every Centralino gRPC server shares.
//!
//! - [`ApiError`]: the one table mapping errors to gRPC codes and HTTP statuses.
//! - [`GrpcServer`]: binds a listener and serves a set of services behind the
//!   [`centralino_auth::AuthLayer`], with the standard health service, server
//!   reflection, message-size limits, a request deadline cap, and optional TLS.
//! - [`OpsApi`]: `centralino.v1.OpsService` (who am I, what runs here, dead letters).

mod error;
mod grpc;
mod ops;

pub use error::ApiError;
pub use grpc::{GrpcServer, GrpcSettings, ServeError, StreamAuth, TlsFiles, claims};
pub use ops::{OpsApi, ProcessInfo, ops_policy, role_to_proto};
