//! Cookie sessions: a random token in the browser, its SHA-256 in the store.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;
use centralino_auth::{AuthError, BoxFuture, Claims, Role, SessionResolver};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::entities::{session, user};

/// How long a session lasts from its login (a working day and then some).
pub const SESSION_LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;

/// The store's key of a token.
fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ends every session of `user` (a new password, the user disabled).
pub(crate) async fn revoke_user(db: &DatabaseConnection, user: &str) -> Result<(), DbErr> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(crate::now_ms()))
        .filter(session::Column::User.eq(user))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await
        .map(|_| ())
}

/// The sessions table.
#[derive(Clone)]
pub struct Sessions {
    db: DatabaseConnection,
}

impl Sessions {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Opens a session for `user` at `now`: the token for the cookie, and
    /// when it expires.
    pub async fn open(&self, user: &str, now: i64) -> Result<(String, i64), DbErr> {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let expires_at = now + SESSION_LIFETIME_MS;
        session::Entity::insert(session::ActiveModel {
            token_hash: sea_orm::ActiveValue::Set(token_hash(&token)),
            user: sea_orm::ActiveValue::Set(user.to_owned()),
            created_at: sea_orm::ActiveValue::Set(now),
            expires_at: sea_orm::ActiveValue::Set(expires_at),
            revoked_at: sea_orm::ActiveValue::Set(None),
        })
        .exec(&self.db)
        .await?;
        // Expired sessions are of no use to anyone: cleared as new ones open.
        session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lt(now - SESSION_LIFETIME_MS))
            .exec(&self.db)
            .await?;
        Ok((token, expires_at))
    }

    /// Ends the session of `token` (logout).
    pub async fn close(&self, token: &str) -> Result<(), DbErr> {
        session::Entity::update_many()
            .col_expr(session::Column::RevokedAt, Expr::value(crate::now_ms()))
            .filter(session::Column::TokenHash.eq(token_hash(token)))
            .filter(session::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// The claims of a live session at `now`: not expired, not revoked, its
    /// user enabled (with the user's role now, so a role change applies).
    pub async fn claims(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        let found = session::Entity::find_by_id(token_hash(token))
            .one(&self.db)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "session lookup failed");
                AuthError::SessionUnavailable
            })?
            .ok_or(AuthError::SessionEnded)?;
        if found.revoked_at.is_some() || found.expires_at <= now {
            return Err(AuthError::SessionEnded);
        }
        let owner = user::Entity::find_by_id(found.user.clone())
            .one(&self.db)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "session user lookup failed");
                AuthError::SessionUnavailable
            })?
            .filter(|u| u.enabled && found.created_at >= u.password_changed_at)
            .ok_or(AuthError::SessionEnded)?;
        let role = owner
            .role
            .parse::<Role>()
            .map_err(|_| AuthError::SessionEnded)?;
        Ok(Claims {
            sub: owner.name,
            role,
            iat: found.created_at / 1000,
            exp: found.expires_at / 1000,
        })
    }
}

impl SessionResolver for Sessions {
    fn resolve<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Claims, AuthError>> {
        Box::pin(self.claims(token, crate::now_ms()))
    }
}
