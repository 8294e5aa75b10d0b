//! The browser application's server side.
//!
//! - [`Users`]: the people who log in, with argon2id password hashes
//!   (`web_users`), created by `centralino user add` or the admin API.
//! - [`Sessions`]: cookie sessions (`web_sessions`, stored as the SHA-256 of
//!   their token) that logout, a new password or disabling the user end at
//!   once; the [`centralino_auth::SessionResolver`] the gRPC auth layer asks.
//! - [`throttle`]: login throttling per address and lockout per user (pure
//!   rules, the time an input).
//! - [`WebApi`]: `WebSessionService` (login, logout, me) and
//!   `UserAdminService` over gRPC-web.
//! - [`assets`]: the built application (`web/dist`, embedded in the binary)
//!   with its caching headers and a strict Content-Security-Policy.

#![forbid(unsafe_code)]

pub mod assets;
mod entities;
mod grpc;
mod migrations;
mod sessions;
pub mod throttle;
mod users;

pub use grpc::{WebApi, WebSettings, policy};
pub use migrations::WebMigrator;
pub use sessions::{SESSION_LIFETIME_MS, Sessions};
pub use users::{NewUser, UserError, UserRecord, Users, hash_password};

/// Milliseconds since the Unix epoch now (the web layer's only clock).
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
