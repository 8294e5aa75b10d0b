//! The email burst benchmark (`examples/email_burst.rs`), run small so it
//! cannot rot: a burst into the embedded mode reaches history whole, with no
//! IMAP session dropped and no "database is locked" in the log. (The
//! discriminating test of the lock is the store's
//! `concurrent_read_then_write_transactions_on_sqlite_all_commit`; at this
//! size collisions are rare.)

#[path = "../../examples/email_burst.rs"]
mod email_burst;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_smoke_a_burst_reaches_history_with_no_session_dropped() {
    let log = email_burst::Log::install();
    let f = email_burst::burst(200, "sqlite", &log, false).await;
    assert_eq!((f.session_drops, f.locked), (0, 0), "{f:?}");
    assert!(f.per_second() > 0.0 && f.raw_per_second() > 0.0, "{f:?}");
}
