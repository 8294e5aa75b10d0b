//! A service started while PostgreSQL is down (a container started before its
//! database, or restarted during its restart) waits for it, and is up within
//! 10 s of its return however long it was away; it used to give up after its
//! 10 s connect timeout and leave the restarting to a supervisor whose waits
//! grow to a minute.
//!
//! It stops PostgreSQL, so `cargo xtask test` runs it alone, before the rest
//! of the suite: `cargo nextest run -p centralino --run-ignored only`.

use std::time::{Duration, Instant};

use centralino_test_support::TestDatabase;

/// Starts PostgreSQL again when dropped, so a failing test never leaves it down.
struct PostgresDown;

impl PostgresDown {
    fn stop() -> Self {
        assert!(
            centralino_test_support::postgres_cluster("stop"),
            "pg_ctlcluster stop failed"
        );
        Self
    }
}

impl Drop for PostgresDown {
    fn drop(&mut self) {
        let _ = centralino_test_support::postgres_cluster("start");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "stops PostgreSQL; cargo xtask test runs it in its own phase"]
async fn a_service_started_during_a_long_database_outage_is_up_within_10_s_of_its_return() {
    let db = TestDatabase::postgres().await;
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-outage-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n[grpc]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = {url:?}\n",
            data = dir.display().to_string(),
            url = db.url,
        ),
    )
    .expect("config file");
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let down = tokio::task::spawn_blocking(PostgresDown::stop)
        .await
        .expect("stop PostgreSQL");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let starting = tokio::spawn(async move {
        centralino::serve(
            &config,
            &[centralino::Service::Routing, centralino::Service::History],
            "centralino-outage-test",
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    // The outage itself: longer than the connect timeout, long enough for a
    // doubling wait to pass 15 s.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        !starting.is_finished(),
        "the service waits for its database instead of giving up"
    );
    tokio::task::spawn_blocking(move || drop(down))
        .await
        .expect("start PostgreSQL");
    let back = Instant::now();
    let running = tokio::time::timeout(Duration::from_secs(30), starting)
        .await
        .expect("up within 30 s of the database's return")
        .expect("join")
        .expect("the service starts once its database is back");
    let took = back.elapsed();
    eprintln!("postgres: 20 s outage at start: services up {took:?} after the database's return");
    assert!(
        took < Duration::from_secs(10),
        "up {took:?} after the database came back"
    );
    assert!(
        running
            .services
            .iter()
            .any(|s| s.contains("HistoryService"))
    );
    let _ = stop.send(());
    let _ = running.task.await;
    db.drop_db().await;
    let _ = std::fs::remove_dir_all(dir);
}
