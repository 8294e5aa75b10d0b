//! Active/standby: only one instance of a service may write at a time, and a
//! deposed one cannot.
//!
//! The active instance holds a PostgreSQL session advisory lock (one key per
//! service) on a connection of its own (detached from the pool, so it is never
//! recycled). A second instance waits in [`acquire`] until the lock is free,
//! i.e. until the active one stops or dies (PostgreSQL releases the lock when
//! its connection closes), then loads its state and takes over. The bus side
//! agrees: the service's queue is single-active-consumer, and the standby
//! subscribes only once it leads.
//!
//! A lock alone does not stop a deposed leader: after a PostgreSQL restart
//! the lock is free at once, while the old leader, which has not noticed yet,
//! still consumes and writes. So leadership is **fenced**: taking the lock
//! raises the service's epoch (`centralino_leader_epoch`), and every write
//! transaction of the leader begins with [`Fence::begin`], which reads the
//! epoch `FOR SHARE` and fails with [`StoreError::Fenced`] when it is no
//! longer this instance's. The new leader's raise waits for the old leader's
//! open transactions, and every later one of them sees the new epoch: no write
//! of a deposed leader lands after its successor took over. A fenced write,
//! or a failed check of the lock connection, turns [`Leadership::lost`]
//! `true`: the service stops and contends again. The lock is also a lease:
//! a leader that stops answering (paused by SIGSTOP, frozen) loses its lock
//! connection after `LEASE` of silence, a standby takes over, and the paused
//! one, once it runs again, steps down on noticing how long it slept (its
//! writes meanwhile are fenced). SQLite (the embedded, single-process mode)
//! needs no lock and no fence.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx;
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, Statement};
use tokio::sync::watch;

use crate::StoreError;

const RETRY: Duration = Duration::from_secs(1);
const CHECK: Duration = Duration::from_secs(2);
/// How long the lock outlives a leader that stops answering (a process
/// paused by SIGSTOP or a debugger, a VM frozen): PostgreSQL closes its lock
/// connection once it has been idle this long (`idle_session_timeout`), so a
/// standby can take over from a hung leader and not only from a dead one.
/// The watchdog touches the connection every [`CHECK`], well inside it.
const LEASE: Duration = Duration::from_secs(10);
/// A watchdog that wakes this late since its last good check was paused
/// long enough that the lease may have run out: it steps down without
/// waiting to learn whether it did.
const LEASE_MARGIN: Duration = Duration::from_secs(7);

/// Held leadership. Dropping it releases the lock (its connection closes).
pub struct Leadership {
    lost: watch::Receiver<bool>,
    fence: Fence,
    watchdog: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Turns `true` if the lock connection fails or a write was fenced:
    /// another instance may lead now.
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// What every write transaction of this leadership begins with.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// The service's last task: waits for `shutdown` (or the lock's loss),
    /// tells the service's `tasks` to stop through `stop`, waits for every
    /// one of them, and only then releases the lock, so a standby never
    /// starts while this instance still writes. (When the lock itself was
    /// lost, a standby may already lead: the fence refuses this instance's
    /// remaining writes.)
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

/// The check every write transaction of a leader makes: that its epoch is
/// still the service's. Cheap to clone; a no-op on SQLite.
#[derive(Clone)]
pub struct Fence {
    /// `(service, epoch)` on PostgreSQL; `None` on SQLite.
    held: Option<(&'static str, i64)>,
    lost: Arc<watch::Sender<bool>>,
    /// When the watchdog last found the lock held (PostgreSQL only).
    lease: Option<Arc<Lease>>,
}

/// The time of the last good check of the lock, for [`Fence::check_lease`].
struct Lease {
    origin: tokio::time::Instant,
    last_good_ms: std::sync::atomic::AtomicU64,
}

impl Lease {
    fn renewed(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_good_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    fn age(&self) -> Duration {
        let last = self.last_good_ms.load(std::sync::atomic::Ordering::SeqCst);
        self.origin
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence").field("held", &self.held).finish()
    }
}

impl Fence {
    /// A fence that never fails: for SQLite, and for code run outside any
    /// leadership (tools, tests of a single instance).
    pub fn none() -> Self {
        let (tx, _) = watch::channel(false);
        Self {
            held: None,
            lost: Arc::new(tx),
            lease: None,
        }
    }

    /// The leadership epoch this fence checks, if any.
    pub fn epoch(&self) -> Option<i64> {
        self.held.map(|(_, e)| e)
    }

    /// What a leader checks right before an effect outside the database (an
    /// email or SMS handed to its server): that its lease is fresh. An
    /// instance that was paused past `LEASE_MARGIN` may have been replaced
    /// while it slept, and its successor may be sending the same message:
    /// it steps down instead (the error is transient: the work is held and
    /// the leader handles it). Always `Ok` on SQLite and outside leadership.
    pub fn check_lease(&self) -> Result<(), StoreError> {
        let stale = self.lease.as_ref().is_some_and(|l| l.age() > LEASE_MARGIN);
        if *self.lost.borrow() || stale {
            let _ = self.lost.send(true);
            return Err(StoreError::Leadership {
                message: "this instance's leadership lease may have run out (it was paused); \
                          stepping down"
                    .into(),
                transient: true,
            });
        }
        Ok(())
    }

    /// Begins a write transaction ([`crate::begin`]) that fails with
    /// [`StoreError::Fenced`] if another instance took the leadership since
    /// this one did. The epoch row stays share-locked until the transaction
    /// ends, so a successor's takeover waits for it.
    pub async fn begin(&self, db: &DatabaseConnection) -> Result<DatabaseTransaction, StoreError> {
        let txn = crate::begin(db).await?;
        let Some((service, epoch)) = self.held else {
            return Ok(txn);
        };
        use sea_orm::ConnectionTrait as _;
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                // The lease covers the transaction too: a leader paused
                // inside it would otherwise keep the epoch row share-locked,
                // and its successor's takeover waiting, until it resumed.
                "SELECT epoch, set_config('idle_in_transaction_session_timeout', $2, true) \
                 FROM centralino_leader_epoch WHERE service = $1 FOR SHARE",
                [service.into(), LEASE.as_millis().to_string().into()],
            ))
            .await?;
        let current: Option<i64> = row.map(|r| r.try_get("", "epoch")).transpose()?;
        if current == Some(epoch) {
            return Ok(txn);
        }
        tracing::error!(
            service,
            epoch,
            current = current.unwrap_or_default(),
            "leadership taken by another instance; this write is refused and the service steps down"
        );
        let _ = self.lost.send(true);
        Err(StoreError::Fenced {
            service,
            epoch,
            current: current.unwrap_or_default(),
        })
    }
}

fn err(e: sqlx::Error) -> StoreError {
    StoreError::Leadership {
        transient: crate::error::sqlx_is_transient(&e),
        message: e.to_string(),
    }
}

/// Waits until this instance leads `service` (the lock `key`, one per service),
/// then raises the service's epoch. `standing_by` is called once if it has to
/// wait.
pub async fn acquire(
    db: &DatabaseConnection,
    service: &'static str,
    key: i64,
    standing_by: impl FnOnce(),
) -> Result<Leadership, StoreError> {
    let (tx, rx) = watch::channel(false);
    let tx = Arc::new(tx);
    if db.get_database_backend() != DbBackend::Postgres {
        // Keep the sender alive: an embedded service never loses leadership.
        let keep = tx.clone();
        let watchdog = tokio::spawn(async move {
            keep.closed().await;
        });
        return Ok(Leadership {
            lost: rx,
            fence: Fence {
                held: None,
                lost: tx,
                lease: None,
            },
            watchdog,
        });
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
    // The lease: a leader that stops touching its lock connection (paused,
    // hung) loses it after `LEASE`, as a dead one does at once.
    match sqlx::query("SELECT set_config('idle_session_timeout', $1, false)")
        .bind(LEASE.as_millis().to_string())
        .execute(&mut conn)
        .await
    {
        Ok(_) => {}
        // 42704: no such setting, PostgreSQL before 14.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42704") => {
            tracing::warn!(
                service,
                "PostgreSQL before 14 has no idle_session_timeout: a paused leader keeps its \
                 lock until it resumes or dies"
            );
        }
        Err(e) => return Err(err(e)),
    }
    // Waits for the open write transactions of a deposed leader (they hold
    // the row FOR SHARE); every later one of them sees this epoch and fails.
    let (epoch,): (i64,) = sqlx::query_as(
        "INSERT INTO centralino_leader_epoch (service, epoch, since) VALUES ($1, 1, now()) \
         ON CONFLICT (service) DO UPDATE \
         SET epoch = centralino_leader_epoch.epoch + 1, since = now() \
         RETURNING epoch",
    )
    .bind(service)
    .fetch_one(&mut conn)
    .await
    .map_err(err)?;
    tracing::info!(service, epoch, "leadership acquired");
    let watch = tx.clone();
    let lease = Arc::new(Lease {
        origin: tokio::time::Instant::now(),
        last_good_ms: std::sync::atomic::AtomicU64::new(0),
    });
    let renewing = lease.clone();
    let watchdog = tokio::spawn(async move {
        let mut last_good = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(CHECK).await;
            if last_good.elapsed() > LEASE_MARGIN {
                tracing::error!(
                    service,
                    late_ms = u64::try_from(last_good.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "this instance was paused past its leadership lease; stepping down"
                );
                let _ = watch.send(true);
                return;
            }
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
                    "leadership lost (lock connection failed); stepping down"
                );
                let _ = watch.send(true);
                return;
            }
            last_good = tokio::time::Instant::now();
            renewing.renewed();
            if *watch.borrow() {
                return;
            }
        }
    });
    Ok(Leadership {
        lost: rx,
        fence: Fence {
            held: Some((service, epoch)),
            lost: tx,
            lease: Some(lease),
        },
        watchdog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence_renewed_ago(ago: Duration) -> (Fence, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        let now = tokio::time::Instant::now();
        let lease = Lease {
            origin: now.checked_sub(ago).unwrap_or(now),
            last_good_ms: std::sync::atomic::AtomicU64::new(0),
        };
        let fence = Fence {
            held: Some(("test", 1)),
            lost: Arc::new(tx),
            lease: Some(Arc::new(lease)),
        };
        (fence, rx)
    }

    #[test]
    fn a_fresh_lease_lets_a_send_through_and_a_stale_one_steps_down() {
        let (fresh, lost) = fence_renewed_ago(Duration::from_secs(1));
        assert!(fresh.check_lease().is_ok());
        assert!(!*lost.borrow());

        let (stale, lost) = fence_renewed_ago(LEASE_MARGIN + Duration::from_secs(1));
        let refused = stale
            .check_lease()
            .expect_err("a lease older than the margin");
        assert!(refused.is_transient(), "the work is held, not failed");
        assert!(*lost.borrow(), "the instance steps down");

        assert!(
            Fence::none().check_lease().is_ok(),
            "no leadership, no lease"
        );
    }
}
