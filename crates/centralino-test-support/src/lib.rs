//! Helpers shared by Centralino's integration tests.
//!
//! Tests talk to real services. Their locations come from
//! `CENTRALINO_TEST_AMQP_URL` and `CENTRALINO_TEST_DATABASE_URL` (defaults: the
//! local RabbitMQ and PostgreSQL of the project's machines). A test whose service is
//! missing fails with a message saying how to start it; nothing is skipped.

use std::future::Future;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

pub mod agent;
pub mod browser;
pub mod isolated;
pub mod mail;
pub mod observer;
pub mod voice;

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// RabbitMQ for tests; fails the test with instructions when it is not reachable.
pub fn amqp_url() -> String {
    let url = std::env::var("CENTRALINO_TEST_AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
    require_reachable(
        &url,
        5672,
        "RabbitMQ",
        "rabbitmq-server -detached (or set CENTRALINO_TEST_AMQP_URL)",
    );
    url
}

/// PostgreSQL admin database URL for tests (the suite creates a database per test).
pub fn postgres_admin_url() -> String {
    let url = std::env::var("CENTRALINO_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
    require_reachable(
        &url,
        5432,
        "PostgreSQL",
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
         (or set CENTRALINO_TEST_DATABASE_URL)",
    );
    url
}

/// `host:port` of a URL like `scheme://user:pass@host:port/path`.
fn host_port(url: &str, default_port: u16) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if hostport.contains(':') {
        Some(hostport.to_owned())
    } else {
        Some(format!("{hostport}:{default_port}"))
    }
}

fn require_reachable(url: &str, default_port: u16, what: &str, how: &str) {
    let addr = host_port(url, default_port)
        .unwrap_or_else(|| panic!("{what} URL {url:?} has no host; fix the URL"));
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|a: SocketAddr| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "{what} is not reachable at {addr}: this test needs it. Start it with `{how}`, \
         or run the suite with `cargo xtask test`, which starts it for you."
    );
}

/// Stops the RabbitMQ application (`rabbitmqctl stop_app`) and starts it
/// again when dropped, so a failing test never leaves the broker down.
pub struct BrokerDown;

impl BrokerDown {
    pub fn stop() -> Self {
        let ok = std::process::Command::new("rabbitmqctl")
            .args(["-q", "stop_app"])
            .status()
            .expect("rabbitmqctl runs (Debian package rabbitmq-server)");
        assert!(ok.success(), "rabbitmqctl stop_app failed");
        BrokerDown
    }

    /// Starts the broker again now.
    pub fn start(self) {
        drop(self);
    }
}

impl Drop for BrokerDown {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "start_app"])
            .status();
    }
}

/// A free TCP port on 127.0.0.1 below the kernel's ephemeral range, for a
/// server that a test stops and starts again at the same address. A port of
/// the ephemeral range (what binding port 0 gives) can, while its server is
/// down, become the source port of some outgoing connection, or of a client
/// that connects to `127.0.0.1:p` from `p` and so to itself (a client
/// retrying the address in a loop does, sooner or later): the server then
/// cannot bind it again.
pub fn stable_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(10_100));
    for _ in 0..500 {
        let r = u16::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..2]
                .try_into()
                .unwrap_or([0, 0]),
        );
        let port = from + r % (to - from);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {from} and {to} on 127.0.0.1");
}

/// Runs `pg_ctlcluster <action>` (`stop`, `start`, `restart`) on the local
/// Debian PostgreSQL cluster the tests use; whether it succeeded (it panics
/// naming what is missing when there is no such cluster).
pub fn postgres_cluster(action: &str) -> bool {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster (/etc/postgresql)")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a cluster version");
    let ok = std::process::Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .expect("pg_ctlcluster runs (Debian package postgresql-common)");
    ok.success()
}

mod prefixes;
pub use prefixes::BUS_PREFIXES;

/// A bus prefix unique to this test run, from a prefix registered in
/// [`BUS_PREFIXES`] (so an interrupted run's queues can be found and
/// deleted); panics on one that is not.
pub fn bus_prefix(prefix: &str) -> String {
    assert!(
        BUS_PREFIXES.contains(&prefix),
        "bus prefix {prefix:?} is not registered in centralino-test-support's prefixes.rs"
    );
    unique(prefix)
}

/// A name unique to this test run, e.g. `t3f9a1c2b`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..10])
}

/// Polls `check` until it returns `Some`, failing the test with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Closes, broker side, every RabbitMQ connection whose client-provided name
/// starts with `connection_name` (what `rabbitmqctl close_connection` does to a real outage).
/// Returns how many were closed.
pub fn close_rabbitmq_connections(connection_name: &str) -> usize {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_connections", "pid", "client_properties"])
        .output()
        .expect("rabbitmqctl is needed for broker fault tests (Debian package rabbitmq-server)");
    assert!(out.status.success(), "rabbitmqctl list_connections failed");
    let listing = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in listing.lines() {
        if !line.contains(&format!("\"{connection_name}")) {
            continue;
        }
        let Some(pid) = line.split('\t').next() else {
            continue;
        };
        let status = Command::new("rabbitmqctl")
            .args(["-q", "close_connection", pid, "fault injected by test"])
            .status()
            .expect("rabbitmqctl close_connection runs");
        if status.success() {
            closed += 1;
        }
    }
    closed
}

/// A database of its own for one test: a fresh PostgreSQL database, or a SQLite
/// file in a temporary directory. Call [`drop_db`](Self::drop_db) at the end;
/// a test that fails before it (a panic) still removes it when the value is
/// dropped.
pub struct TestDatabase {
    pub url: String,
    admin_url: Option<String>,
    name: String,
    removed: bool,
}

impl TestDatabase {
    /// A new, empty PostgreSQL database `centralino_test_<random>`.
    pub async fn postgres() -> Self {
        use sea_orm::ConnectionTrait as _;
        let admin_url = postgres_admin_url();
        let name = unique("centralino_test_");
        let admin = sea_orm::Database::connect(admin_url.as_str())
            .await
            .expect("connect to PostgreSQL admin database");
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("database URL ends with /<database>");
        Self {
            url: format!("{base}/{name}"),
            admin_url: Some(admin_url),
            name,
            removed: false,
        }
    }

    /// A new SQLite database file in the system temp directory.
    pub fn sqlite() -> Self {
        let name = unique("centralino-test-");
        let path = std::env::temp_dir().join(format!("{name}.sqlite"));
        Self {
            url: format!("sqlite://{}", path.display()),
            admin_url: None,
            name,
            removed: false,
        }
    }

    /// Waits until a standby on this (PostgreSQL) database has asked for a
    /// leader lock and been refused: a session whose last statement,
    /// finished, was `pg_try_advisory_lock` and which holds no advisory lock
    /// (`centralino_store::leader` asks again every second until it gets one).
    pub async fn standby_refused(&self, limit: Duration) {
        use sea_orm::ConnectionTrait as _;
        let db = sea_orm::Database::connect(self.url.as_str())
            .await
            .expect("connect to the test database");
        let refused = "SELECT count(*) FROM pg_stat_activity a \
             WHERE a.datname = current_database() AND a.state = 'idle' \
             AND a.query LIKE 'SELECT pg_try_advisory_lock(%' \
             AND NOT EXISTS (SELECT 1 FROM pg_locks l \
                 WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)";
        eventually(limit, "a standby refused the leader lock", || async {
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    refused,
                ))
                .await
                .ok()??;
            let n: i64 = row.try_get_by_index(0).ok()?;
            (n > 0).then_some(())
        })
        .await;
        let _ = db.close().await;
    }

    /// Removes the database (PostgreSQL) or file (SQLite).
    pub async fn drop_db(mut self) {
        self.removed = true;
        remove_database(self.admin_url.clone(), self.name.clone(), self.url.clone()).await;
    }
}

impl Drop for TestDatabase {
    /// The guard: a test that did not reach `drop_db` (it failed) removes
    /// its database here, on a thread of its own (it may be dropped inside
    /// a runtime, which cannot block).
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        let (admin_url, name, url) = (self.admin_url.take(), self.name.clone(), self.url.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(remove_database(admin_url, name, url));
            }
        })
        .join();
    }
}

async fn remove_database(admin_url: Option<String>, name: String, url: String) {
    use sea_orm::ConnectionTrait as _;
    match admin_url {
        Some(admin_url) => {
            if let Ok(admin) = sea_orm::Database::connect(admin_url.as_str()).await {
                let _ = admin
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
                let _ = admin.close().await;
            }
        }
        None => {
            let path = url.trim_start_matches("sqlite://").to_owned();
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

/// Deletes queues and exchanges a test declared on RabbitMQ (errors ignored: they
/// may not exist).
pub async fn delete_rabbitmq_objects(url: &str, queues: &[String], exchanges: &[String]) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let Ok(conn) = lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    for q in queues {
        let _ = ch
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for ex in exchanges {
        let _ = ch
            .exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = conn.close(200, "cleanup".into()).await;
}

/// The shared objects every bus with `prefix` declares: (queues, exchanges).
pub fn rabbitmq_shared_objects(prefix: &str, consumers: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut queues = vec![format!("{prefix}.unrouted")];
    for c in consumers {
        queues.push(format!("{prefix}.{c}"));
        queues.push(format!("{prefix}.{c}.dead"));
    }
    let exchanges = ["events", "commands", "unrouted", "dead-letter"]
        .iter()
        .map(|e| format!("{prefix}.{e}"))
        .collect();
    (queues, exchanges)
}

#[cfg(test)]
mod tests {
    use super::TestDatabase;

    #[test]
    fn a_database_not_dropped_by_its_test_is_removed_by_the_guard() {
        let db = TestDatabase::sqlite();
        let path = db.url.trim_start_matches("sqlite://").to_owned();
        std::fs::write(&path, b"x").expect("create the file");
        let failing = std::panic::catch_unwind(move || {
            let _db = db;
            panic!("the test fails before drop_db");
        });
        assert!(failing.is_err());
        assert!(
            !std::path::Path::new(&path).exists(),
            "the guard removed {path}"
        );
    }
}
