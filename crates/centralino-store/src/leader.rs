//! Active/standby: only one instance of a service may write at a time.
//!
//! The active instance holds a PostgreSQL session advisory lock (one key per
//! service) on a connection of its own (detached from the pool, so it is never
//! recycled). A second instance blocks in [`acquire`] until the lock is free,
//! i.e. until the active one stops or dies (PostgreSQL releases the lock when
//! its connection closes), then loads its state and takes over. The bus side
//! agrees: the service's queue is single-active-consumer, and the standby
//! subscribes only once it leads. If the active instance loses its lock
//! connection, it must assume another instance took over: [`Leadership::lost`]
//! turns `true` and the service stops. SQLite (the embedded, single-process
//! mode) needs no lock.

use std::time::Duration;

use sea_orm::sqlx;
use sea_orm::{DatabaseConnection, DbBackend};
use tokio::sync::watch;

use crate::StoreError;

const RETRY: Duration = Duration::from_secs(1);
const CHECK: Duration = Duration::from_secs(2);

/// Held leadership. Dropping it releases the lock (its connection closes).
pub struct Leadership {
    lost: watch::Receiver<bool>,
    watchdog: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Turns `true` if the lock connection fails: another instance may lead now.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// The service's last task: waits for `shutdown` (or the lock's loss),
    /// tells the service's `tasks` to stop through `stop`, waits for every
    /// one of them, and only then releases the lock, so a standby never
    /// starts while this instance still writes.
    pub fn supervise(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        stop: watch::Sender<bool>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    ) -> tokio::task::JoinHandle<()> {
        let mut lost = self.lost.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => {}
                _ = lost.wait_for(|l| *l) => {}
            }
            let _ = stop.send(true);
            for t in tasks {
                let _ = t.await;
            }
            drop(self);
        })
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.watchdog.abort();
    }
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError::Leadership(e.to_string())
}

/// Waits until this instance leads `service` (the lock `key`, one per service).
/// `standing_by` is called once if it has to wait.
pub async fn acquire(
    db: &DatabaseConnection,
    service: &'static str,
    key: i64,
    standing_by: impl FnOnce(),
) -> Result<Leadership, StoreError> {
    let (tx, rx) = watch::channel(false);
    if db.get_database_backend() != DbBackend::Postgres {
        // Keep the sender alive: an embedded service never loses leadership.
        let watchdog = tokio::spawn(async move {
            tx.closed().await;
        });
        return Ok(Leadership { lost: rx, watchdog });
    }
    let mut conn = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(err)?
        .detach();
    let mut standing_by = Some(standing_by);
    loop {
        let (got,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(err)?;
        if got {
            break;
        }
        if let Some(f) = standing_by.take() {
            f();
        }
        tokio::time::sleep(RETRY).await;
    }
    tracing::info!(service, "leadership acquired");
    let watchdog = tokio::spawn(async move {
        loop {
            tokio::time::sleep(CHECK).await;
            let ok: Result<(bool,), _> = sqlx::query_as(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted \
                 AND ((classid::bigint << 32) | objid::bigint) = $1)",
            )
            .bind(key)
            .fetch_one(&mut conn)
            .await;
            if !matches!(ok, Ok((true,))) {
                tracing::error!(
                    service,
                    "leadership lost (lock connection failed); stopping"
                );
                let _ = tx.send(true);
                return;
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    Ok(Leadership { lost: rx, watchdog })
}
