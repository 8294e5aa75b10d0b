//! Storage shared by Centralino services.
//!
//! - [`connect`]: a sea-orm connection from a URL: PostgreSQL for services, a SQLite
//!   file for the embedded single-process mode. The same code runs on both.
//! - [`migrate`]: runs a service's migrations under a lock, reporting progress; every
//!   service keeps its own migration table so several can share one database.
//! - [`inbox`]: exactly-once processing on top of at-least-once delivery, keyed by
//!   bus message id, in the consumer's own transaction.
//! - [`chunks`]: cutting bulk statements below the size that stalls a
//!   connection (sqlx 0.9.0 leaves Nagle's algorithm on).
//! - [`leader`]: active/standby through a PostgreSQL advisory lock per service.
//! - [`outbox`]: events written in the same transaction as the state change they
//!   describe, relayed to the bus with publisher confirms.

pub mod chunks;
pub mod entities;
mod error;
pub mod inbox;
pub mod leader;
mod migrations;
pub mod outbox;
pub mod schema;

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

pub use error::StoreError;
pub use migrations::CoreMigrator;
pub use sea_orm;
pub use sea_orm_migration;

/// Opens a pool on `url` (`postgres://...` or `sqlite://path`; a missing SQLite
/// file is created). Every SQLite connection runs in WAL mode with a busy
/// timeout and foreign keys on, so several services in one process can share the file.
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, StoreError> {
    let backend = backend_of(url)?;
    let url = match backend {
        DbBackend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        }
        _ => url.to_owned(),
    };
    // `migrate` holds one PostgreSQL connection for its lock while it migrates on
    // another, so a pool of one would wait forever.
    let floor = if backend == DbBackend::Postgres { 2 } else { 1 };
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(max_connections.max(floor))
        .min_connections(0)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // Pragmas hold per connection: set them on each one the pool opens.
        .map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                .synchronous(SqliteSynchronous::Normal)
        });
    Database::connect(opts).await.map_err(StoreError::Connect)
}

/// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the write
/// lock is taken (waiting up to the busy timeout) when the transaction starts,
/// instead of at its first write, where a second writer in the same file
/// would fail at once with "database is locked" (SQLITE_BUSY 5 / 517) instead
/// of waiting. On PostgreSQL it is a plain `BEGIN`. Every service writes
/// through this (clippy forbids `TransactionTrait::begin` elsewhere).
pub async fn begin(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::TransactionTrait as _;
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// The backend a URL names, or a clear error for anything else.
pub fn backend_of(url: &str) -> Result<DbBackend, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DbBackend::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(DbBackend::Sqlite)
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

/// `postgres` or `sqlite`.
pub fn backend_name(db: &DatabaseConnection) -> &'static str {
    match db.get_database_backend() {
        DbBackend::Postgres => "postgres",
        DbBackend::Sqlite => "sqlite",
        _ => "other",
    }
}

/// Applies `M`'s pending migrations, calling `progress` with each name before it
/// runs. On PostgreSQL an advisory lock keeps two processes from migrating at once.
/// Returns the names applied.
pub async fn migrate<M: MigratorTrait>(
    db: &DatabaseConnection,
    mut progress: impl FnMut(&str),
) -> Result<Vec<String>, StoreError> {
    let lock = if db.get_database_backend() == DbBackend::Postgres {
        let txn = begin(db).await?;
        // The lock's transaction sits idle while migrations run on other
        // connections: a server-side idle timeout must not end it half-way.
        txn.execute_unprepared("SET LOCAL idle_in_transaction_session_timeout = 0")
            .await?;
        // Held until `txn` ends; the key is arbitrary but fixed.
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7351092385)")
            .await?;
        Some(txn)
    } else {
        None
    };
    let pending = M::get_pending_migrations(db).await?;
    let mut applied = Vec::with_capacity(pending.len());
    for migration in &pending {
        progress(migration.name());
        M::up(db, Some(1)).await?;
        applied.push(migration.name().to_owned());
    }
    if let Some(txn) = lock {
        txn.commit().await?;
    }
    Ok(applied)
}
