//! The email channel adapter.
//!
//! **Inbound.** One task per configured mailbox keeps an IMAP session (IDLE
//! when the server has it, polling otherwise), fetches every message above the
//! stored position (UIDVALIDITY + last UID) in batches, and commits each batch
//! in one transaction: the messages (raw bytes kept), their attachments, the
//! conversations they open or join, the UIDs seen, the new position and the
//! bus events (outbox). A message seen again (another UID, another mailbox, a
//! new UIDVALIDITY) is recognised by its Message-ID (or the hash of its bytes)
//! and imported once. Messages are flagged `\Seen` (or moved) only once their
//! events are confirmed by the broker. Any error drops the session and
//! reconnects with backoff, resuming from the committed position.
//!
//! Threading: a message that answers (In-Reply-To / References) a message of a
//! conversation, or carries its token (`[#CN-…]`) in the subject, is a follow-up
//! (`interaction.email.message`); anything else opens a conversation
//! (`interaction.email.created` + the message). Bounces mark the message they
//! report on as failed; automatic mail never gets our acknowledgement, and our
//! acknowledgement is itself marked `Auto-Submitted: auto-replied`.
//!
//! **Outbound.** `email.send` commands (`SendMessage`) become rows built once
//! (Message-ID, In-Reply-To, References, From = the mailbox the customer wrote
//! to); a sender task delivers them over SMTP, retries temporary failures with
//! backoff and reports `sent` / `failed` on the bus.

#![forbid(unsafe_code)]

mod compose;
mod entities;
mod imap;
mod import;
mod migrations;
mod send;

use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, BusError, ConsumerSpec};
use centralino_store::StoreError;
use centralino_store::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;

pub use migrations::EmailMigrator;

/// The adapter's name: outbox source, consumer name, envelope source.
pub const SERVICE: &str = "email";

/// How the adapter reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain TCP (tests, a local relay).
    Plain,
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain, then STARTTLS (SMTP submission 587; not offered for IMAP).
    StartTls,
}

/// An IMAP account and folder.
#[derive(Debug, Clone)]
pub struct ImapEndpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: String,
    pub password: String,
    /// Folder to import (default `INBOX`).
    pub folder: String,
    /// With TLS: trust only the CA certificates in this PEM file (a private CA)
    /// instead of the public web roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
}

/// What happens on the server to a message once it is imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterImport {
    /// Set `\Seen`.
    MarkSeen,
    /// Move it to this folder (created if missing).
    Move(String),
}

/// One mailbox the contact center answers, e.g. `support@` → queue `support`.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// Short name, unique in the deployment (the position is stored under it).
    pub name: String,
    /// The address customers write to; replies are sent from it.
    pub address: String,
    /// Display name of that address in replies.
    pub display_name: String,
    /// Queue new conversations ask for.
    pub queue: String,
    /// 0–100.
    pub priority: u32,
    pub imap: ImapEndpoint,
    pub after_import: AfterImport,
}

/// The SMTP server replies leave through.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// The optional automatic acknowledgement of a new conversation. `{subject}` and
/// `{token}` are replaced.
#[derive(Debug, Clone)]
pub struct AckTemplate {
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub mailboxes: Vec<MailboxConfig>,
    pub smtp: Option<SmtpConfig>,
    pub ack: Option<AckTemplate>,
    /// Messages larger than this are not fetched whole: their headers become the
    /// message, flagged `oversized`, and the message stays on the server.
    pub max_message_bytes: u64,
    /// Messages fetched and committed together.
    pub batch_size: usize,
    /// Without IDLE, how often to look for new mail; with IDLE, the longest an
    /// IDLE lasts before it is renewed (mail announced at the very moment IDLE
    /// starts waits at most this long).
    pub poll_interval: Duration,
    /// How long one IDLE lasts before it is renewed (servers drop it after 30 min).
    pub idle_renew: Duration,
    /// Every IMAP and SMTP exchange must finish within this.
    pub io_timeout: Duration,
    /// A send is given up after this many temporary failures.
    pub max_send_attempts: i32,
    /// First delay after a temporary send failure; it doubles, up to 30 minutes.
    pub retry_base: Duration,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            mailboxes: Vec::new(),
            smtp: None,
            ack: None,
            max_message_bytes: 25 * 1024 * 1024,
            batch_size: 200,
            poll_interval: Duration::from_secs(30),
            idle_renew: Duration::from_secs(20 * 60),
            io_timeout: Duration::from_secs(60),
            max_send_attempts: 12,
            retry_base: Duration::from_secs(5),
        }
    }
}

impl EmailConfig {
    /// Checks what the code relies on; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = std::collections::HashSet::new();
        for (i, m) in self.mailboxes.iter().enumerate() {
            let at = format!("email.mailboxes[{i}]");
            if m.name.is_empty() || m.name.len() > 64 || !names.insert(m.name.as_str()) {
                return Err(format!("{at}.name must be unique and 1–64 characters"));
            }
            if compose::domain_of(&m.address).is_none() {
                return Err(format!("{at}.address is not an email address"));
            }
            if m.queue.is_empty() {
                return Err(format!("{at}.queue is required"));
            }
            if m.priority > 100 {
                return Err(format!("{at}.priority must be 0–100"));
            }
            if m.imap.security == Security::StartTls {
                return Err(format!("{at}.imap.security: use tls or plain"));
            }
            if m.imap.host.is_empty() || m.imap.user.is_empty() {
                return Err(format!("{at}.imap needs host and user"));
            }
            if let AfterImport::Move(folder) = &m.after_import {
                let same = folder.eq_ignore_ascii_case("INBOX")
                    && m.imap.folder.eq_ignore_ascii_case("INBOX")
                    || *folder == m.imap.folder;
                if folder.is_empty() || same {
                    return Err(format!(
                        "{at}.after_import: move to a folder other than the one imported"
                    ));
                }
            }
        }
        if self.batch_size == 0 || self.batch_size > 5_000 {
            return Err("email.batch_size must be 1–5000".into());
        }
        if self.max_message_bytes < 1024 {
            return Err("email.max_message_bytes must be at least 1024".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("invalid email configuration: {0}")]
    Config(String),
}

/// The queue replies come through.
pub fn consumer_spec() -> ConsumerSpec {
    ConsumerSpec::new(SERVICE)
        .bind_key(centralino_bus::keys::send(
            centralino_proto::v1::Channel::Email,
        ))
        .prefetch(64)
}

/// The running adapter: finished once `shutdown` resolved (or leadership was
/// lost) and every task stopped.
pub struct Email {
    pub task: tokio::task::JoinHandle<()>,
    /// Turns `true` when the adapter lost its leadership and stopped (the
    /// embedding program starts it again to contend: `centralino::serve_contending`).
    pub lost: tokio::sync::watch::Receiver<bool>,
}

/// PostgreSQL advisory-lock key of the email adapter ("cent.ema").
const LOCK_KEY: i64 = 0x6365_6e74_2e65_6d61;

/// Starts the importers (one per mailbox), the reply consumer, the sender and
/// the outbox relay. Run [`EmailMigrator`] first.
pub async fn start(
    config: EmailConfig,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Email, EmailError> {
    config.validate().map_err(EmailError::Config)?;
    // One importer per mailbox in the whole deployment: a second instance waits.
    let leadership = centralino_store::leader::acquire(&db, SERVICE, LOCK_KEY, || {
        tracing::info!("another email adapter is active; standing by until it stops");
    })
    .await?;
    let lost = leadership.lost();
    let config = Arc::new(config);
    let relay = OutboxRelay::new(db.clone(), bus.clone(), SERVICE);
    let waker = relay.waker();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let send_wake = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for mailbox in &config.mailboxes {
        let importer = import::Importer {
            config: config.clone(),
            mailbox: mailbox.clone(),
            db: db.clone(),
            fence: leadership.fence(),
            relay: waker.clone(),
            send_wake: send_wake.clone(),
            unreadable: std::sync::Mutex::default(),
        };
        tasks.push(tokio::spawn(importer.run(stop_rx.clone())));
        tracing::info!(
            mailbox = %mailbox.name,
            server = %format!("{}:{}", mailbox.imap.host, mailbox.imap.port),
            queue = %mailbox.queue,
            "email: importing mailbox"
        );
    }
    let subscription = bus.subscribe(consumer_spec()).await?;
    let commands = send::SendCommands {
        config: config.clone(),
        db: db.clone(),
        fence: leadership.fence(),
        relay: waker.clone(),
        send_wake: send_wake.clone(),
    };
    tasks.push(tokio::spawn(centralino_bus::Pipeline::new(SERVICE).run(
        subscription,
        commands,
        stopped(stop_rx.clone()),
    )));
    match &config.smtp {
        Some(smtp) => {
            tracing::info!(server = %format!("{}:{}", smtp.host, smtp.port), "email: sending replies over SMTP");
            tasks.push(tokio::spawn(send::deliver(
                config.clone(),
                db.clone(),
                leadership.fence(),
                waker.clone(),
                send_wake,
                stop_rx.clone(),
            )));
        }
        None => {
            tracing::warn!("email: no [email.smtp] server configured; replies wait until one is")
        }
    }
    tasks.push(tokio::spawn(relay.run(stopped(stop_rx))));
    let task = leadership.supervise(shutdown, stop_tx, tasks);
    Ok(Email { task, lost })
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Waits `delay` or until `stop` says stop; true when stopping.
pub(crate) async fn pause(delay: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    let stopped = tokio::select! {
        () = tokio::time::sleep(delay) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}
