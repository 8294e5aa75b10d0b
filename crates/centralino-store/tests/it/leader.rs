//! Fenced leadership on real PostgreSQL: a leader whose lock went away (a
//! restart, a cut connection) cannot write once another instance took over,
//! and a takeover waits for the old leader's open write.

use std::time::Duration;

use centralino_store::leader::{self, Leadership};
use centralino_store::sea_orm::{ConnectionTrait as _, DatabaseConnection, Statement};
use centralino_store::{CoreMigrator, StoreError};
use centralino_test_support::{TestDatabase, eventually};

const KEY: i64 = 0x7465_7374_2e66_656e;
/// Inside the 10 s leadership lease: past it PostgreSQL ends an idle write
/// transaction of the leader (the lease), which one test holds open.
const WAIT: Duration = Duration::from_secs(8);

/// Cuts the lock connection of whoever holds `KEY`, as a restart would.
async fn cut_the_lock_connection(db: &DatabaseConnection) {
    let sql = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
         AND granted AND ((classid::bigint << 32) | objid::bigint) = {KEY}"
    );
    db.execute_unprepared(&sql).await.expect("terminate");
}

async fn lead(db: &DatabaseConnection) -> Leadership {
    leader::acquire(db, "fence-test", KEY, || {})
        .await
        .expect("acquire")
}

/// A write of the fenced transaction: one row in a scratch table.
async fn write(db: &DatabaseConnection, fence: &leader::Fence, n: i32) -> Result<(), StoreError> {
    let txn = fence.begin(db).await?;
    txn.execute_unprepared(&format!("INSERT INTO scratch VALUES ({n})"))
        .await?;
    txn.commit().await?;
    Ok(())
}

/// A fresh migrated database with a scratch table, and the pools of two
/// instances of one service on it.
async fn two_instances() -> (TestDatabase, DatabaseConnection, DatabaseConnection) {
    let t = TestDatabase::postgres().await;
    let a_db = centralino_store::connect(&t.url, 4).await.expect("a");
    let b_db = centralino_store::connect(&t.url, 4).await.expect("b");
    centralino_store::migrate::<CoreMigrator>(&a_db, |_| {})
        .await
        .expect("migrate");
    a_db.execute_unprepared("CREATE TABLE scratch (n INT)")
        .await
        .expect("scratch");
    (t, a_db, b_db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_write_after_its_successor_took_over() {
    let (t, a_db, b_db) = two_instances().await;
    let a = lead(&a_db).await;
    let a_fence = a.fence();
    assert_eq!(a_fence.epoch(), Some(1));
    write(&a_db, &a_fence, 1).await.expect("the leader writes");

    // The lock goes (a restart would free it the same way), a second
    // instance takes over before the first has noticed...
    cut_the_lock_connection(&b_db).await;
    let b = lead(&b_db).await;
    assert_eq!(b.fence().epoch(), Some(2));
    // ...and the first one's next write is refused, and it steps down.
    let refused = write(&a_db, &a_fence, 2).await.expect_err("fenced");
    assert!(
        matches!(
            refused,
            StoreError::Fenced {
                epoch: 1,
                current: 2,
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(
        refused.is_transient(),
        "held until the step-down, not dead-lettered"
    );
    assert!(*a.lost().borrow(), "the deposed leader knows at once");
    write(&b_db, &b.fence(), 3)
        .await
        .expect("the new leader writes");
    let rows: Vec<i32> = b_db
        .query_all_raw(Statement::from_string(
            b_db.get_database_backend(),
            "SELECT n FROM scratch ORDER BY n",
        ))
        .await
        .expect("rows")
        .iter()
        .map(|r| r.try_get("", "n").expect("n"))
        .collect();
    assert_eq!(rows, vec![1, 3]);
    drop((a, b));
    let _ = a_db.close().await;
    let _ = b_db.close().await;
    t.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_waits_for_the_old_leaders_open_write() {
    let (t, a_db, b_db) = two_instances().await;
    let a = lead(&a_db).await;
    let open = a.fence().begin(&a_db).await.expect("begin");
    open.execute_unprepared("INSERT INTO scratch VALUES (1)")
        .await
        .expect("insert");
    cut_the_lock_connection(&b_db).await;
    let taking_over = tokio::spawn(async move {
        let b = lead(&b_db).await;
        (b, b_db)
    });
    // The successor's epoch raise waits on the row the open write holds
    // (within the 10 s lease: past it PostgreSQL ends the idle write).
    eventually(WAIT, "the takeover waiting on the open write", || async {
        let waiting = a_db
            .query_one_raw(Statement::from_string(
                a_db.get_database_backend(),
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND query LIKE 'INSERT INTO centralino_leader_epoch%'",
            ))
            .await
            .ok()??
            .try_get::<i64>("", "n")
            .ok()?;
        (waiting == 1).then_some(())
    })
    .await;
    assert!(!taking_over.is_finished());
    open.commit().await.expect("the open write lands first");
    let (b, b_db) = taking_over.await.expect("takeover");
    assert_eq!(b.fence().epoch(), Some(2));
    drop((a, b));
    let _ = a_db.close().await;
    let _ = b_db.close().await;
    t.drop_db().await;
}
