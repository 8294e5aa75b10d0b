//! Users: names, roles, argon2id password hashes, the login check with its
//! lockout.

use std::sync::{Arc, OnceLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use centralino_auth::Role;
use centralino_server::ApiError;
use centralino_store::StoreError;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use tokio::sync::Semaphore;

use crate::entities::user;
use crate::throttle::Attempts;

/// Password length bounds (characters): long enough to resist guessing, short
/// enough that a hash stays cheap.
const PASSWORD_MIN: usize = 10;
const PASSWORD_MAX: usize = 256;
/// Languages the application speaks.
pub const LANGUAGES: [&str; 2] = ["it", "en"];

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
    pub language: String,
}

/// A user as the APIs show it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub name: String,
    pub display_name: String,
    pub role: Role,
    pub enabled: bool,
    pub language: String,
    pub locked_until: Option<i64>,
    pub created_at: i64,
}

/// Why a user operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("user {0} already exists")]
    Exists(String),
    #[error("user {0} not found")]
    NotFound(String),
    /// Wrong name or password (the same answer for both).
    #[error("wrong user name or password")]
    BadCredentials,
    /// Too many bad passwords: refused until `until` (ms since the epoch).
    #[error("too many failed logins: this user is locked until {}; an admin can unlock it by enabling the user", at_utc(*until))]
    Locked { until: i64 },
    #[error("this user is disabled")]
    Disabled,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing: {0}")]
    Hash(String),
}

impl From<sea_orm::DbErr> for UserError {
    fn from(e: sea_orm::DbErr) -> Self {
        UserError::Store(e.into())
    }
}

fn at_utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Invalid { field, reason } => ApiError::invalid(field, reason),
            UserError::Exists(name) => ApiError::AlreadyExists(format!("user {name}")),
            UserError::NotFound(name) => ApiError::NotFound(format!("user {name}")),
            UserError::BadCredentials | UserError::Disabled => {
                ApiError::Unauthenticated(UserError::BadCredentials.to_string())
            }
            UserError::Locked { .. } => ApiError::ResourceExhausted(e.to_string()),
            UserError::Store(s) => s.into(),
            UserError::Hash(detail) => ApiError::Internal(detail),
        }
    }
}

/// Checks a user name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn valid_name(name: &str) -> Result<&str, UserError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name)
    } else {
        Err(UserError::Invalid {
            field: "name",
            reason: "use 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit".into(),
        })
    }
}

fn valid_password(password: &str) -> Result<&str, UserError> {
    let n = password.chars().count();
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        Ok(password)
    } else {
        Err(UserError::Invalid {
            field: "password",
            reason: format!("use {PASSWORD_MIN} to {PASSWORD_MAX} characters"),
        })
    }
}

fn valid_display_name(display: &str, name: &str) -> Result<String, UserError> {
    let d = display.trim();
    if d.chars().count() > 128 || d.chars().any(char::is_control) {
        return Err(UserError::Invalid {
            field: "display_name",
            reason: "use at most 128 characters, no control characters".into(),
        });
    }
    Ok(if d.is_empty() {
        name.to_owned()
    } else {
        d.to_owned()
    })
}

/// Checks a language (empty means Italian).
pub fn valid_language(language: &str) -> Result<String, UserError> {
    let l = language.trim().to_ascii_lowercase();
    if l.is_empty() {
        return Ok("it".into());
    }
    if LANGUAGES.contains(&l.as_str()) {
        Ok(l)
    } else {
        Err(UserError::Invalid {
            field: "language",
            reason: "use it or en".into(),
        })
    }
}

/// The argon2id PHC string of `password` (OWASP's parameters: 19 MiB, two
/// passes, one lane).
pub fn hash_password(password: &str) -> Result<String, UserError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, verified for unknown users so that the
/// answer takes as long as for a known one.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"no password matches this decoy", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

fn record(m: user::Model) -> Result<UserRecord, UserError> {
    let role = m.role.parse::<Role>().map_err(|_| {
        UserError::Store(StoreError::Db(sea_orm::DbErr::Custom(format!(
            "user {}: unknown role in the store",
            m.name
        ))))
    })?;
    Ok(UserRecord {
        name: m.name,
        display_name: m.display_name,
        role,
        enabled: m.enabled,
        language: m.language,
        locked_until: m.locked_until,
        created_at: m.created_at,
    })
}

/// The users table.
#[derive(Clone)]
pub struct Users {
    db: DatabaseConnection,
    /// Hashes at once (each takes a core and 19 MiB for tens of milliseconds).
    hashing: Arc<Semaphore>,
    /// Bad logins for names that are no user, kept like a user's (in memory).
    unknown: Arc<std::sync::Mutex<std::collections::HashMap<String, Attempts>>>,
}

impl Users {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            hashing: Arc::new(Semaphore::new(2)),
            unknown: Arc::default(),
        }
    }

    /// Runs a hash or a verification off the async threads, two at a time.
    async fn hashed<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, UserError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| UserError::Hash(e.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| UserError::Hash(e.to_string()))
    }

    pub async fn create(&self, new: NewUser) -> Result<UserRecord, UserError> {
        let name = valid_name(&new.name)?.to_owned();
        let display_name = valid_display_name(&new.display_name, &name)?;
        let language = valid_language(&new.language)?;
        let password = valid_password(&new.password)?.to_owned();
        if user::Entity::find_by_id(name.clone())
            .one(&self.db)
            .await?
            .is_some()
        {
            return Err(UserError::Exists(name));
        }
        let hash = self.hashed(move || hash_password(&password)).await??;
        let model = user::ActiveModel {
            name: Set(name.clone()),
            display_name: Set(display_name),
            role: Set(new.role.as_str().to_owned()),
            password_hash: Set(hash),
            enabled: Set(true),
            language: Set(language),
            failed_logins: Set(0),
            locked_until: Set(None),
            created_at: Set(crate::now_ms()),
            password_changed_at: Set(0),
        };
        match user::Entity::insert(model).exec(&self.db).await {
            Ok(_) => {}
            // Two creates racing: the loser is told the name is taken.
            Err(e)
                if e.to_string().to_ascii_lowercase().contains("unique")
                    || e.to_string().to_ascii_lowercase().contains("duplicate") =>
            {
                return Err(UserError::Exists(name));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = %name, role = %new.role, "user created");
        self.get(&name).await
    }

    pub async fn get(&self, name: &str) -> Result<UserRecord, UserError> {
        let m = user::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| UserError::NotFound(name.to_owned()))?;
        record(m)
    }

    pub async fn list(&self) -> Result<Vec<UserRecord>, UserError> {
        user::Entity::find()
            .order_by_asc(user::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(record)
            .collect()
    }

    /// Sets a new password and ends the user's sessions.
    pub async fn set_password(&self, name: &str, password: &str) -> Result<UserRecord, UserError> {
        let password = valid_password(password)?.to_owned();
        let existing = self.model(name).await?;
        let hash = self.hashed(move || hash_password(&password)).await??;
        let mut m: user::ActiveModel = existing.into();
        m.password_hash = Set(hash);
        // Sessions opened before this instant end, even one whose login
        // checked the old password while this ran.
        m.password_changed_at = Set(crate::now_ms());
        m.update(&self.db).await?;
        crate::sessions::revoke_user(&self.db, name).await?;
        tracing::info!(user = %name, "password changed; sessions ended");
        self.get(name).await
    }

    /// Enables or disables a user. Disabling ends their sessions; enabling
    /// clears a lockout.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<UserRecord, UserError> {
        let existing = self.model(name).await?;
        let mut m: user::ActiveModel = existing.into();
        m.enabled = Set(enabled);
        if enabled {
            m.failed_logins = Set(0);
            m.locked_until = Set(None);
        }
        m.update(&self.db).await?;
        if !enabled {
            crate::sessions::revoke_user(&self.db, name).await?;
        }
        tracing::info!(user = %name, enabled, "user enabled changed");
        self.get(name).await
    }

    pub async fn set_language(&self, name: &str, language: &str) -> Result<UserRecord, UserError> {
        let language = valid_language(language)?;
        let existing = self.model(name).await?;
        let mut m: user::ActiveModel = existing.into();
        m.language = Set(language);
        m.update(&self.db).await?;
        self.get(name).await
    }

    async fn model(&self, name: &str) -> Result<user::Model, UserError> {
        user::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
            .ok_or_else(|| UserError::NotFound(name.to_owned()))
    }

    /// Checks a login at `now`: the user if the password is right; counts a
    /// bad one toward the lockout. A locked user is refused before the
    /// password is looked at (even a right one), so guessing cannot go on.
    /// The count is changed only if nobody changed it meanwhile (else read
    /// again), so guesses sent at once each count.
    pub async fn verify(
        &self,
        name: &str,
        password: &str,
        now: i64,
    ) -> Result<UserRecord, UserError> {
        let found = match valid_name(name) {
            Ok(n) => user::Entity::find_by_id(n.to_owned()).one(&self.db).await?,
            Err(_) => None,
        };
        let Some(found) = found else {
            // Same cost and same answers as for a real user, lock included, so
            // neither the time nor a lock tells which names exist: a locked
            // name is refused before hashing, as a locked user is.
            if let Some(until) = self.unknown_locked(name, now) {
                return Err(UserError::Locked { until });
            }
            let password = password.to_owned();
            self.hashed(move || verify_password(&password, decoy_hash()))
                .await?;
            return Err(self.unknown_failed(name, now));
        };
        let attempts = Attempts {
            failures: found.failed_logins,
            locked_until: found.locked_until,
        };
        if let Some(until) = attempts.locked(now) {
            return Err(UserError::Locked { until });
        }
        let (password, phc) = (password.to_owned(), found.password_hash.clone());
        let right = self
            .hashed(move || verify_password(&password, &phc))
            .await?;
        for _ in 0..16 {
            let fresh = self.model(&found.name).await?;
            // The password changed while this one was checked: it was
            // checked against the old one, which no longer opens anything.
            if right && fresh.password_hash != found.password_hash {
                return Err(UserError::BadCredentials);
            }
            let attempts = Attempts {
                failures: fresh.failed_logins,
                locked_until: fresh.locked_until,
            };
            // Locked by guesses that finished while this one was hashed.
            if let Some(until) = attempts.locked(now) {
                return Err(UserError::Locked { until });
            }
            let after = if right {
                if !fresh.enabled {
                    return Err(UserError::Disabled);
                }
                Attempts::default()
            } else {
                attempts.failed(now)
            };
            if after != attempts {
                let changed = user::Entity::update_many()
                    .col_expr(user::Column::FailedLogins, Expr::value(after.failures))
                    .col_expr(user::Column::LockedUntil, Expr::value(after.locked_until))
                    .filter(user::Column::Name.eq(fresh.name.clone()))
                    .filter(user::Column::FailedLogins.eq(fresh.failed_logins))
                    .filter(match fresh.locked_until {
                        Some(t) => user::Column::LockedUntil.eq(t),
                        None => user::Column::LockedUntil.is_null(),
                    })
                    .exec(&self.db)
                    .await?;
                if changed.rows_affected == 0 {
                    continue;
                }
            }
            if right {
                return record(fresh);
            }
            if let Some(until) = after.locked(now) {
                tracing::warn!(user = %fresh.name, "user locked after too many failed logins");
                return Err(UserError::Locked { until });
            }
            return Err(UserError::BadCredentials);
        }
        Err(UserError::Store(StoreError::Db(sea_orm::DbErr::Custom(
            "login attempts kept changing under this one".into(),
        ))))
    }

    fn unknown_key(name: &str) -> String {
        name.chars().take(64).collect::<String>().to_lowercase()
    }

    /// The end of a lock in force on a name with no user.
    fn unknown_locked(&self, name: &str, now: i64) -> Option<i64> {
        let unknown = self.unknown.lock().ok()?;
        unknown.get(&Self::unknown_key(name))?.locked(now)
    }

    /// A bad login for a name with no user, counted like a real user's.
    fn unknown_failed(&self, name: &str, now: i64) -> UserError {
        let Ok(mut unknown) = self.unknown.lock() else {
            return UserError::BadCredentials;
        };
        if unknown.len() > 10_000 {
            unknown.retain(|_, a| a.locked(now).is_some());
        }
        let attempts = unknown.entry(Self::unknown_key(name)).or_default();
        if let Some(until) = attempts.locked(now) {
            return UserError::Locked { until };
        }
        *attempts = attempts.failed(now);
        match attempts.locked(now) {
            Some(until) => UserError::Locked { until },
            None => UserError::BadCredentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(valid_name("anna").is_ok());
        assert!(valid_name("a.b_c-1").is_ok());
        for bad in ["", "Anna", "-x", "a b", &"x".repeat(65)] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
        assert!(valid_password("short").is_err());
        assert!(valid_password("long enough!").is_ok());
        assert!(valid_password(&"p".repeat(257)).is_err());
        assert_eq!(valid_language("").ok().as_deref(), Some("it"));
        assert_eq!(valid_language("EN").ok().as_deref(), Some("en"));
        assert!(valid_language("fr").is_err());
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("correct horse battery").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("wrong horse battery", &phc));
        assert!(!verify_password("anything", decoy_hash()));
    }
}
