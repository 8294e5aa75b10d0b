//! Authentication and authorization for Centralino's APIs.
//!
//! Tokens are HS256-signed JWTs carrying a subject, one [`Role`] and an expiry.
//! [`AuthLayer`] is a tower layer put in front of every gRPC server: it answers
//! `UNAUTHENTICATED` when the bearer token is missing, malformed, forged or expired,
//! `PERMISSION_DENIED` when the role is not allowed for the method, and otherwise
//! passes the request on with its [`Claims`] in the request extensions.
//! The per-method rules are a [`Policy`], so each service declares its own table.

mod layer;
mod token;

pub use layer::{
    Access, AuthLayer, AuthService, BoxFuture, CookieSession, Policy, SECURE_SESSION_COOKIE,
    SESSION_COOKIE, SessionResolver, cookie, is_grpc_path, verify_bearer,
};
pub use token::{AuthError, Claims, MIN_SECRET_LEN, Role, TokenKey};
