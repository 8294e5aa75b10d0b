//! Store errors, classified once: transient (the database is away or asks
//! for the transaction again) or permanent (the statement itself is refused).

use sea_orm::{DbErr, RuntimeErr, sqlx};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database url must start with postgres:// or sqlite:")]
    UnsupportedUrl,
    #[error("cannot connect to the database: {0}")]
    Connect(sea_orm::DbErr),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Taking or keeping the leadership lock failed; `transient` when the
    /// database was away or restarting (then contend again), not when it
    /// refused the statement (a permission, a missing table).
    #[error("leadership lock: {message}")]
    Leadership { message: String, transient: bool },
    #[error("bus: {0}")]
    Bus(#[from] centralino_bus::BusError),
    /// This instance's leadership of `service` (epoch `epoch`) was taken over
    /// (epoch `current`): the write is refused and the instance steps down.
    #[error("{service}: leadership epoch {epoch} was taken over (now {current}); write refused")]
    Fenced {
        service: &'static str,
        epoch: i64,
        current: i64,
    },
}

impl StoreError {
    /// Whether trying the same work again later can succeed without anything
    /// else changing: the connection was lost or refused, the pool timed out,
    /// PostgreSQL shut down or asked to retry a serialization failure or a
    /// deadlock, SQLite was busy or locked, the bus is away, this instance
    /// was fenced off (held until it has stepped down, then handled by the
    /// new leader). A constraint
    /// violation, a value too long or a bad URL is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::UnsupportedUrl => false,
            StoreError::Connect(_) | StoreError::Fenced { .. } => true,
            StoreError::Leadership { transient, .. } => *transient,
            StoreError::Db(e) => db_err_is_transient(e),
            StoreError::Bus(e) => e.is_transient(),
        }
    }
}

/// See [`StoreError::is_transient`].
pub fn db_err_is_transient(e: &DbErr) -> bool {
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            sqlx_is_transient(inner)
        }
        _ => false,
    }
}

/// See [`StoreError::is_transient`].
pub(crate) fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| transient_code(&c)),
        _ => false,
    }
}

/// PostgreSQL SQLSTATEs and SQLite result codes that mean "try again".
fn transient_code(code: &str) -> bool {
    // PostgreSQL: class 08 connection exception; 40001 serialization failure;
    // 40P01 deadlock; 53300 too many connections; 55P03 lock not available;
    // 57014 statement cancelled (a timeout); 57P01-57P03 admin/crash
    // shutdown, cannot connect now; 25006 read-only transaction (a standby
    // reached during a failover); 25P03 idle-in-transaction and 57P05 idle
    // session timeouts (the leadership lease ended a paused instance's
    // transaction or lock connection: held, then handled by the new leader).
    code.starts_with("08")
        || matches!(
            code,
            "40001"
                | "40P01"
                | "53300"
                | "55P03"
                | "57014"
                | "57P01"
                | "57P02"
                | "57P03"
                | "57P05"
                | "25006"
                | "25P03"
        )
        // SQLite (sqlx reports the extended result code as a number):
        // BUSY 5 and its extended codes (261 recovery, 517 snapshot, 773
        // timeout), LOCKED 6 and 262 shared cache.
        || matches!(code, "5" | "6" | "261" | "262" | "517" | "773")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_busy_files_and_retry_codes_are_transient_and_refusals_are_not() {
        let io = || {
            std::sync::Arc::new(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )))
        };
        assert!(StoreError::Db(DbErr::Exec(RuntimeErr::SqlxError(io()))).is_transient());
        assert!(StoreError::Db(DbErr::Query(RuntimeErr::SqlxError(io()))).is_transient());
        assert!(
            StoreError::Db(DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
                sqlx::Error::PoolTimedOut
            ))))
            .is_transient()
        );
        assert!(StoreError::Connect(DbErr::Custom("refused".into())).is_transient());
        assert!(
            StoreError::Bus(centralino_bus::BusError::Unavailable("down".into())).is_transient()
        );
        for code in ["08006", "08003", "40001", "40P01", "57P01", "5", "517", "6"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["23505", "22001", "42P01", "19", "2067", "1"] {
            assert!(!transient_code(code), "{code}");
        }
        assert!(!StoreError::Db(DbErr::Custom("bad".into())).is_transient());
        assert!(!StoreError::Db(DbErr::RecordNotInserted).is_transient());
        assert!(!StoreError::UnsupportedUrl.is_transient());
    }
}
