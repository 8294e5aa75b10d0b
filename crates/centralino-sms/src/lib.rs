//! The SMS channel adapter.
//!
//! **Transports.** [`smpp`] keeps one SMPP 3.4 transceiver bind to an SMSC
//! (keep-alive, reconnect with backoff, exact GSM-7 / UCS-2 segments with
//! concatenation headers, a window of outstanding submits, inbound parts
//! reassembled, delivery receipts). [`webhook`] takes a provider's
//! Twilio-style callbacks (signature checked) and [`rest`] sends through the
//! same provider's REST API. Transports hand what they receive over as
//! [`Incoming`] and answer their peer only once it is committed.
//!
//! **Inbound.** A customer's message opens a conversation (an interaction,
//! `interaction.sms.created`, in the queue of the number they wrote to) or is
//! a follow-up in their open one (`interaction.sms.message`); numbers are
//! normalized to E.164. A provider's retry (same `MessageSid`) is recorded
//! once. Keywords (STOP, UNSUBSCRIBE, … / START, UNSTOP / HELP) change the
//! number's consent at once here, ask history to record it in the ledger
//! (`history.record_consent`), and get the configured answer.
//!
//! **Outbound.** `sms.send` commands (`SendMessage`) become rows of a durable
//! queue in the same transaction as their `MessageRecorded`; a sender task
//! submits them (SMPP, else REST), retries while the SMSC or provider is away
//! and reports `queued` / `sent` / `delivered` / `failed`. Every attempt checks
//! the number's consent, kept current from the keywords and from history's
//! `consent.sms.changed`, so an opt-out blocks the next send within a second.

#![forbid(unsafe_code)]

mod consent;
mod entities;
mod inbound;
mod migrations;
mod outbound;
pub mod rest;
pub mod smpp;
mod status;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Bus, BusError, ConsumerSpec};
use centralino_domain::IdentityRules;
use centralino_gsm::Receipt;
use centralino_store::StoreError;
use centralino_store::outbox::OutboxRelay;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, mpsc, oneshot, watch};

pub use migrations::SmsMigrator;

/// The adapter's name: outbox source, consumer name, envelope source.
pub const SERVICE: &str = "sms";

/// Something a transport delivered. The transport answers its peer (SMPP
/// `deliver_sm_resp`, the webhook's HTTP status) when `handled` is answered:
/// `true` (kept; it will not be sent again) or `false` (a temporary failure;
/// the peer delivers it again later).
#[derive(Debug)]
pub struct Incoming {
    pub what: Delivered,
    pub handled: oneshot::Sender<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// A customer's message (all its parts). `id` is the provider's id when it
    /// gives one (a webhook's `MessageSid`): the same id is the same message.
    Message {
        id: Option<String>,
        from: String,
        to: String,
        text: String,
    },
    /// A delivery receipt for a message we submitted over SMPP.
    Receipt(Receipt),
    /// A provider's status callback for a message we sent through its API:
    /// `status` is what history records (`sent`, `delivered`, `failed`).
    Status {
        id: String,
        status: String,
        error: String,
    },
}

/// One of our numbers (or short codes) and where its new conversations go.
#[derive(Debug, Clone)]
pub struct NumberConfig {
    /// As customers write to it (normalized to E.164 when it is a phone number).
    pub number: String,
    pub queue: String,
    /// 0–100.
    pub priority: u32,
}

/// Where the provider's webhooks are served.
#[derive(Debug, Clone)]
pub struct WebhookListen {
    pub listen: SocketAddr,
    pub webhook: webhook::WebhookConfig,
}

#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub smpp: Option<smpp::SmppConfig>,
    pub webhook: Option<WebhookListen>,
    /// Outbound through the provider's REST API (used when there is no SMPP).
    pub rest: Option<rest::RestConfig>,
    /// Our numbers; the first is the sender of messages that answer no
    /// conversation. At least one.
    pub numbers: Vec<NumberConfig>,
    /// Queue of conversations to a number not listed.
    pub default_queue: String,
    /// How phone numbers without an international prefix are read.
    pub rules: IdentityRules,
    /// Answer to HELP / INFO.
    pub help_reply: String,
    /// Confirmation of an opt-out (carriers expect one); none when `None`.
    pub stop_reply: Option<String>,
    /// Confirmation of an opt-in.
    pub start_reply: Option<String>,
    /// A message within this long of the conversation's last one is a
    /// follow-up in it (unless the conversation was completed or closed).
    pub conversation_window: Duration,
    /// Longest message accepted, in segments.
    pub max_segments: usize,
    /// A message not submitted within this long of its command is given up.
    pub max_age: Duration,
    /// First delay after a failed attempt; it doubles, up to a minute.
    pub retry_base: Duration,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            smpp: None,
            webhook: None,
            rest: None,
            numbers: Vec::new(),
            default_queue: "sms".into(),
            rules: IdentityRules::default(),
            help_reply: "Reply STOP to stop receiving messages, START to receive them again."
                .into(),
            stop_reply: Some(
                "You will receive no more messages from us. Reply START to receive them again."
                    .into(),
            ),
            start_reply: Some("You will receive our messages again. Reply STOP to stop.".into()),
            conversation_window: Duration::from_secs(24 * 3600),
            max_segments: 10,
            max_age: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_secs(2),
        }
    }
}

impl SmsConfig {
    /// Checks what the code relies on; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.smpp.is_none() && self.webhook.is_none() {
            return Err("sms: configure [sms.smpp] or [sms.webhook] (or both)".into());
        }
        if self.smpp.is_none() && self.rest.is_none() {
            return Err(
                "sms.rest: needed to send (replies, STOP and HELP answers) when there is no [sms.smpp]"
                    .into(),
            );
        }
        if self.numbers.is_empty() {
            return Err("sms.numbers: list at least one of our numbers".into());
        }
        for (i, n) in self.numbers.iter().enumerate() {
            if n.number.trim().is_empty() || n.number.len() > 20 {
                return Err(format!("sms.numbers[{i}].number must be 1–20 characters"));
            }
            if n.queue.is_empty() {
                return Err(format!("sms.numbers[{i}].queue is required"));
            }
            if n.priority > 100 {
                return Err(format!("sms.numbers[{i}].priority must be 0–100"));
            }
        }
        if self.default_queue.is_empty() {
            return Err("sms.default_queue is required".into());
        }
        if self.help_reply.trim().is_empty() {
            return Err("sms.help_reply must not be empty".into());
        }
        if !(1..=255).contains(&self.max_segments) {
            return Err("sms.max_segments must be 1–255".into());
        }
        if let Some(s) = &self.smpp {
            if s.host.is_empty() {
                return Err("sms.smpp.host is required".into());
            }
            // SMPP 3.4 field sizes, terminator included: 16 and 9.
            if s.system_id.is_empty() || s.system_id.len() > 15 {
                return Err("sms.smpp.system_id must be 1–15 characters".into());
            }
            if s.password.len() > 8 {
                return Err("sms.smpp.password must be at most 8 characters".into());
            }
            if s.source_addr.is_empty() || s.source_addr.len() > 20 {
                return Err("sms.smpp.source_addr must be 1–20 characters".into());
            }
        }
        if let Some(w) = &self.webhook {
            if !w.webhook.path.starts_with('/') {
                return Err("sms.webhook.path must start with /".into());
            }
            if w.webhook.auth_token.is_empty() {
                return Err("sms.webhook.auth_token is required".into());
            }
            if !w.webhook.public_base_url.starts_with("http") {
                return Err("sms.webhook.public_base_url must be an http(s) URL".into());
            }
        }
        if let Some(r) = &self.rest {
            r.validate()?;
        }
        Ok(())
    }

    /// The number a conversation to `to` is answered from, and its queue.
    fn number(&self, to: &str) -> (&str, &str, u32) {
        match self
            .numbers
            .iter()
            .find(|n| self.same_number(&n.number, to))
        {
            Some(n) => (&n.number, &n.queue, n.priority),
            None => (
                self.numbers.first().map_or("", |n| n.number.as_str()),
                &self.default_queue,
                50,
            ),
        }
    }

    fn same_number(&self, a: &str, b: &str) -> bool {
        self.phone(a) == self.phone(b)
    }

    /// A number as stored: E.164 when it is a phone number, else as written
    /// (a short code, an alphanumeric sender), at most 32 characters.
    pub(crate) fn phone(&self, raw: &str) -> String {
        self.rules
            .normalize(centralino_domain::IdentifierKind::Phone, raw)
            .map(|i| i.value().to_owned())
            .unwrap_or_else(|_| raw.trim().chars().take(32).collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("invalid sms configuration: {0}")]
    Config(String),
    #[error("sms webhook: cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// The adapter's queue: send commands, consent changes and the end of its
/// conversations.
pub fn consumer_spec() -> ConsumerSpec {
    use centralino_proto::v1;
    use v1::routing_event::Kind;
    let routing_sms =
        |kind: Kind| centralino_bus::keys::routing(v1::Channel::Sms as i32, kind as i32);
    ConsumerSpec::new(SERVICE)
        .bind_key(centralino_bus::keys::send(v1::Channel::Sms))
        .bind_key(centralino_bus::keys::consent_changed("sms"))
        .bind_key(routing_sms(Kind::Completed))
        .bind_key(routing_sms(Kind::Closed))
        .bind_key(routing_sms(Kind::Abandoned))
        .prefetch(64)
}

/// The running adapter: finished once `shutdown` resolved (or leadership was
/// lost) and every task stopped.
pub struct Sms {
    pub task: tokio::task::JoinHandle<()>,
    /// Turns `true` when the adapter lost its leadership and stopped (the
    /// embedding program starts it again to contend: `centralino::serve_contending`).
    pub lost: watch::Receiver<bool>,
    /// Where the webhooks listen, when configured.
    pub webhook_addr: Option<SocketAddr>,
}

/// PostgreSQL advisory-lock key of the SMS adapter ("cent.sms").
const LOCK_KEY: i64 = 0x6365_6e74_2e73_6d73;

/// What the adapter's tasks share.
pub(crate) struct Ctx {
    pub config: SmsConfig,
    pub db: DatabaseConnection,
    /// Every write transaction checks this instance still leads.
    pub fence: centralino_store::leader::Fence,
    /// Wakes the outbox relay.
    pub relay: Arc<Notify>,
    /// Wakes the sender.
    pub send_wake: Arc<Notify>,
    /// The last `created_at` given to an outbound message (see [`Ctx::stamp`]).
    pub last_stamp: std::sync::atomic::AtomicI64,
}

impl Ctx {
    /// A creation time for an outbound message: now in milliseconds, but
    /// always after the previous one, so messages queued in the same
    /// millisecond still keep the order they were queued in.
    pub(crate) fn stamp(&self) -> i64 {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let previous = self
            .last_stamp
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .unwrap_or(now);
        now.max(previous.saturating_add(1))
    }
}

/// Starts the transports, the handler of what they deliver, the command
/// consumer, the sender and the outbox relay. Run [`SmsMigrator`] first.
pub async fn start(
    config: SmsConfig,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Sms, SmsError> {
    config.validate().map_err(SmsError::Config)?;
    let leadership = centralino_store::leader::acquire(&db, SERVICE, LOCK_KEY, || {
        tracing::info!("another sms adapter is active; standing by until it stops");
    })
    .await?;
    let lost = leadership.lost();
    let relay = OutboxRelay::new(db.clone(), bus.clone(), SERVICE);
    let ctx = Arc::new(Ctx {
        config,
        db: db.clone(),
        fence: leadership.fence(),
        relay: relay.waker(),
        send_wake: Arc::new(Notify::new()),
        // After the last stamp given by any instance, even one whose clock
        // ran ahead: a message queued now goes after every one still queued.
        last_stamp: std::sync::atomic::AtomicI64::new(outbound::last_stamp(&db).await?),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    let (incoming_tx, incoming_rx) = mpsc::channel::<Incoming>(256);
    // `validate` made sure one of the two is there.
    let transport = match (&ctx.config.smpp, &ctx.config.rest) {
        (Some(smpp), _) => {
            tracing::info!(smsc = %format!("{}:{}", smpp.host, smpp.port), "sms: SMPP transceiver to the SMSC");
            let (client, task) =
                smpp::Smpp::start(smpp.clone(), incoming_tx.clone(), stop_rx.clone());
            tasks.push(task);
            outbound::Transport::Smpp(client)
        }
        (None, Some(r)) => {
            tracing::info!(api = %r.base_url, "sms: sending through the provider's REST API");
            outbound::Transport::Rest(rest::Rest::new(r.clone()))
        }
        (None, None) => {
            return Err(SmsError::Config(
                "sms.rest: needed to send when there is no [sms.smpp]".into(),
            ));
        }
    };
    let mut webhook_addr = None;
    if let Some(w) = &ctx.config.webhook {
        let listener = tokio::net::TcpListener::bind(w.listen)
            .await
            .map_err(|e| SmsError::Listen(w.listen, e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SmsError::Listen(w.listen, e))?;
        webhook_addr = Some(addr);
        let app = webhook::router(w.webhook.clone(), incoming_tx.clone());
        let stop = stopped(stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "sms: webhook server failed");
            }
        }));
        tracing::info!(listen = %addr, path = %w.webhook.path, "sms: provider webhooks listening");
    }
    drop(incoming_tx);
    tasks.push(tokio::spawn(inbound::run(
        ctx.clone(),
        incoming_rx,
        stopped(stop_rx.clone()),
    )));
    let subscription = bus.subscribe(consumer_spec()).await?;
    tasks.push(tokio::spawn(
        centralino_bus::Pipeline::new(SERVICE)
            .batch(outbound::BATCH)
            .run(
                subscription,
                outbound::Inbound { ctx: ctx.clone() },
                stopped(stop_rx.clone()),
            ),
    ));
    tasks.push(tokio::spawn(outbound::deliver(
        ctx.clone(),
        transport,
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(relay.run(stopped(stop_rx))));
    let task = leadership.supervise(shutdown, stop_tx, tasks);
    Ok(Sms {
        task,
        lost,
        webhook_addr,
    })
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
