//! HS256 JSON Web Tokens.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Shortest accepted signing secret, in bytes.
pub const MIN_SECRET_LEN: usize = 32;
/// Clock skew tolerated when checking expiry, in seconds.
const LEEWAY_SECS: i64 = 30;
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// What a caller may do. Each API method names the roles it admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Supervisor,
    Integrator,
    Admin,
    /// A walk-in kiosk: takes tickets and checks customers in, nothing else
    /// (a token left on a kiosk in a branch must not read customer data).
    Kiosk,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Agent,
        Role::Supervisor,
        Role::Integrator,
        Role::Admin,
        Role::Kiosk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Integrator => "integrator",
            Role::Admin => "admin",
            Role::Kiosk => "kiosk",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or(AuthError::UnknownRole)
    }
}

/// The verified content of a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who: a user name, an agent id, an integration's name.
    pub sub: String,
    pub role: Role,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
}

/// Why a token was refused. Messages are safe to return to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("invalid token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("unknown role: use agent, supervisor, integrator, admin or kiosk")]
    UnknownRole,
    #[error("signing secret must be at least 32 bytes")]
    WeakSecret,
    #[error("subject must be 1 to 128 characters without control characters")]
    BadSubject,
    #[error("session ended: log in again")]
    SessionEnded,
    #[error("sessions cannot be checked now (the database is away); retry")]
    SessionUnavailable,
}

/// A signing and verification key.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<Self, AuthError> {
        let secret = secret.into();
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthError::WeakSecret);
        }
        Ok(Self { secret })
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).unwrap_or_else(|_| unreachable!())
    }

    /// A token for `subject` with `role`, valid from `now` for `ttl_secs`.
    pub fn mint(
        &self,
        subject: &str,
        role: Role,
        now: i64,
        ttl_secs: i64,
    ) -> Result<String, AuthError> {
        if subject.is_empty()
            || subject.chars().count() > 128
            || subject.chars().any(char::is_control)
        {
            return Err(AuthError::BadSubject);
        }
        let claims = Claims {
            sub: subject.to_owned(),
            role,
            iat: now,
            exp: now.saturating_add(ttl_secs),
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| AuthError::Malformed)?;
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = mac.finalize().into_bytes();
        Ok(format!("{signing_input}.{}", B64.encode(sig)))
    }

    /// Checks signature and expiry at `now`, returning the claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, AuthError> {
        if token.len() > 4096 {
            return Err(AuthError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header_json = B64.decode(header).map_err(|_| AuthError::Malformed)?;
        let header: serde_json::Value =
            serde_json::from_slice(&header_json).map_err(|_| AuthError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(AuthError::Algorithm);
        }
        let sig = B64.decode(sig).map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(header_b64_and_payload(token).as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig).map_err(|_| AuthError::Signature)?;
        let payload = B64.decode(payload).map_err(|_| AuthError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| AuthError::Malformed)?;
        if claims.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }
}

fn header_b64_and_payload(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(signed, _)| signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(vec![7u8; 32]).expect("32-byte secret")
    }

    #[test]
    fn minted_tokens_verify() {
        let t = key().mint("alice", Role::Admin, 1_000, 60).expect("mint");
        let c = key().verify(&t, 1_030).expect("valid");
        assert_eq!(
            (c.sub.as_str(), c.role, c.exp),
            ("alice", Role::Admin, 1_060)
        );
    }

    #[test]
    fn tampering_expiry_and_other_keys_are_refused() {
        let t = key().mint("bob", Role::Agent, 1_000, 60).expect("mint");
        assert_eq!(key().verify(&t, 1_000 + 60 + 31), Err(AuthError::Expired));
        let other = TokenKey::new(vec![8u8; 32]).expect("key");
        assert_eq!(other.verify(&t, 1_000), Err(AuthError::Signature));
        // Swap the payload for one claiming admin, keep the signature.
        let forged_payload = B64.encode(br#"{"sub":"bob","role":"admin","iat":1000,"exp":9999}"#);
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert_eq!(key().verify(&forged, 1_000), Err(AuthError::Signature));
        // alg=none is never accepted.
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), parts[1]);
        assert_eq!(key().verify(&none, 1_000), Err(AuthError::Algorithm));
        for junk in ["", "a.b", "a.b.c.d", "%%%.%%%.%%%"] {
            assert_eq!(
                key().verify(junk, 1_000),
                Err(AuthError::Malformed),
                "{junk}"
            );
        }
    }

    #[test]
    fn weak_secrets_bad_subjects_and_roles_are_refused() {
        assert_eq!(
            TokenKey::new(b"short".to_vec()).err(),
            Some(AuthError::WeakSecret)
        );
        assert_eq!(
            key().mint("", Role::Agent, 0, 1),
            Err(AuthError::BadSubject)
        );
        assert_eq!(
            key().mint("a\nb", Role::Agent, 0, 1),
            Err(AuthError::BadSubject)
        );
        assert_eq!("Admin".parse::<Role>(), Ok(Role::Admin));
        assert_eq!("root".parse::<Role>(), Err(AuthError::UnknownRole));
    }
}
