//! Email burst: `messages` small emails waiting in a mailbox when
//! `centralino up` (in-process bus) starts, timed until every one is an
//! interaction in history, on SQLite (the embedded mode) and on PostgreSQL, beside a raw
//! baseline measured in the same run: the same number of plain one-row
//! inserts, one transaction each, into the same kind of database.
//!
//! `cargo run --release -p centralino --example email_burst -- [messages] [sqlite|postgres|both]`
//!
//! Needs Dovecot (`apt-get install dovecot-imapd`) and, for `postgres`, the
//! PostgreSQL the tests use. The test suite runs it small (`burst_smoke`), so
//! it cannot rot.

#![allow(dead_code)] // Shared with the test suite, which uses part of it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use centralino_store::sea_orm::{self, ConnectionTrait as _};
use centralino_test_support::TestDatabase;
use centralino_test_support::mail::{Dovecot, PASSWORD};

const USER: &str = "support@example.test";

/// What one burst measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub store: &'static str,
    pub messages: usize,
    /// `up` started with the burst in the mailbox, to the last interaction in history.
    pub seconds: f64,
    /// How long Dovecot took to take the burst (IMAP APPEND, 4 connections).
    pub append_seconds: f64,
    /// The raw baseline: `messages` one-row transactions, same database kind.
    pub raw_seconds: f64,
    /// IMAP sessions that ended in an error (each one reconnects).
    pub session_drops: usize,
    /// "database is locked" in the log (SQLite busy, codes 5 and 517).
    pub locked: usize,
}

impl Figures {
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.seconds.max(1e-9)
    }

    pub fn raw_per_second(&self) -> f64 {
        self.messages as f64 / self.raw_seconds.max(1e-9)
    }
}

/// The process's log, for counting what went wrong.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// Installs it as the global subscriber at the default level (main's filter).
    pub fn install() -> Self {
        let log = Self::default();
        let writer = log.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                centralino_telemetry::effective_filter("info"),
            ))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        log
    }

    fn count(&self, what: &str) -> usize {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).matches(what).count())
            .unwrap_or(0)
    }

    fn clear(&self) {
        if let Ok(mut b) = self.0.lock() {
            b.clear();
        }
    }
}

fn message(i: usize) -> String {
    format!(
        "From: Cliente {i} <c{i}@example.test>\r\nTo: {USER}\r\nSubject: Pratica {i}\r\n\
         Message-ID: <burst-{i}@example.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nVorrei sapere lo stato della pratica {i}.\r\n"
    )
}

/// One burst of `n` messages on `store` (`sqlite` or `postgres`).
pub async fn burst(n: usize, store: &'static str, log: &Log, progress: bool) -> Figures {
    log.clear();
    let dovecot = Dovecot::start(&[USER]);
    let dir = std::env::temp_dir().join(centralino_test_support::unique("centralino-burst-"));
    std::fs::create_dir_all(&dir).expect("dir");
    let database = match store {
        "postgres" => Some(TestDatabase::postgres().await),
        _ => None,
    };
    let store_line = database
        .as_ref()
        .map(|d| format!("[store]\nurl = {:?}\n", d.url))
        .unwrap_or_default();
    let file = dir.join("centralino.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = {data:?}\n{store_line}[grpc]\nlisten = \"127.0.0.1:0\"\n\
             [email]\npoll_interval_secs = 1\n\
             [[email.mailboxes]]\nname = \"support\"\naddress = \"{USER}\"\nqueue = \"support\"\n\
             host = \"127.0.0.1\"\nport = {imap}\nsecurity = \"plain\"\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            data = dir.display().to_string(),
            imap = dovecot.port(),
        ),
    )
    .expect("config file");
    // The burst waits in the mailbox (appended over several connections, as
    // mail servers deliver); the clock starts with `up`.
    let appending = Instant::now();
    let writers = 4;
    let appends: Vec<_> = (0..writers)
        .map(|w| {
            let port = dovecot.port();
            tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("IMAP");
                let mut client = async_imap::Client::new(tcp);
                client.read_response().await.expect("greeting");
                let mut imap = client
                    .login(USER, PASSWORD)
                    .await
                    .map_err(|(e, _)| e)
                    .expect("login");
                for i in (w..n).step_by(writers) {
                    imap.append("INBOX", None, None, message(i))
                        .await
                        .expect("APPEND");
                }
                let _ = imap.logout().await;
            })
        })
        .collect();
    for a in appends {
        a.await.expect("appender");
    }
    let append_seconds = appending.elapsed().as_secs_f64();
    let config = centralino::Config::load(Some(&file), []).expect("config loads");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let running = centralino::up(&config, async {
        let _ = stopped.await;
    })
    .await
    .expect("up starts");
    let db = centralino_store::connect(&config.store_url(), 2)
        .await
        .expect("store");

    let mut last_report = Instant::now();
    loop {
        let done = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT COUNT(*) FROM history_interactions WHERE channel = 'email' AND known = 1",
            ))
            .await
            .ok()
            .flatten()
            .and_then(|r| r.try_get_by_index::<i64>(0).ok())
            .unwrap_or(0);
        if done as usize >= n {
            break;
        }
        if progress && last_report.elapsed() >= Duration::from_secs(2) {
            println!(
                "  {store}: {done}/{n} in history after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{store}: only {done}/{n} in history after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let session_drops = log.count("mailbox session ended");
    let locked = log.count("database is locked");
    let _ = stop.send(());
    let _ = running.task.await;

    // The raw floor: n one-row transactions in a fresh table of the same database.
    db.execute_unprepared(
        "CREATE TABLE burst_raw (id VARCHAR(36) PRIMARY KEY, subject TEXT NOT NULL)",
    )
    .await
    .expect("raw table");
    let raw_started = Instant::now();
    for i in 0..n {
        let txn = centralino_store::begin(&db).await.expect("begin");
        txn.execute_unprepared(&format!(
            "INSERT INTO burst_raw (id, subject) VALUES ('{}', 'Pratica {i}')",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect("insert");
        txn.commit().await.expect("commit");
    }
    let raw_seconds = raw_started.elapsed().as_secs_f64();
    let _ = db.close().await;
    if let Some(d) = database {
        d.drop_db().await;
    }
    let _ = std::fs::remove_dir_all(dir);
    Figures {
        store,
        messages: n,
        seconds,
        append_seconds,
        raw_seconds,
        session_drops,
        locked,
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(not(test))]
#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let stores: Vec<&'static str> = match args.get(2).map(String::as_str) {
        Some("sqlite") => vec!["sqlite"],
        Some("postgres") => vec!["postgres"],
        _ => vec!["sqlite", "postgres"],
    };
    let log = Log::install();
    println!(
        "email_burst: {n} emails waiting in the mailbox at start, timed until all are in history"
    );
    for store in stores {
        let f = burst(n, store, &log, true).await;
        println!(
            "{store:>8}: ours {:>7.0} msg/s ({:.1} s), raw one-row transactions {:>7.0}/s, \
             ratio {:.2}; IMAP session drops {}, 'database is locked' {}; \
             (Dovecot took the burst at {:.0}/s); load {}",
            f.per_second(),
            f.seconds,
            f.raw_per_second(),
            f.per_second() / f.raw_per_second().max(1e-9),
            f.session_drops,
            f.locked,
            f.messages as f64 / f.append_seconds.max(1e-9),
            load()
        );
    }
}
