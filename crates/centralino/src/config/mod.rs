//! The typed configuration: a TOML file overlaid with `CENTRALINO_*` environment
//! variables (`CENTRALINO_BUS__URL` sets `bus.url`), validated before anything starts.
//! This module never reads the environment itself: `main` passes the variables in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use centralino_telephony::ivr::{Action, Flow, Menu, ParseActionError};
use centralino_ticketing::numbering;
use serde::{Deserialize, Deserializer, Serialize};

/// Environment variables that configure the test suite or the loader, not a service.
const NOT_CONFIG: &[&str] = &["CENTRALINO_CONFIG", "CENTRALINO_BLESS"];

/// Everything a Centralino process can be configured with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded mode keeps its SQLite file and generated secret.
    pub data_dir: PathBuf,
    pub bus: BusConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub grpc: GrpcConfig,
    pub telemetry: TelemetryConfig,
    pub identity: IdentityConfig,
    pub routing: RoutingConfig,
    pub email: EmailSection,
    pub sms: SmsSection,
    pub voice: VoiceSection,
    pub desk: DeskSection,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            bus: BusConfig::default(),
            store: StoreConfig::default(),
            auth: AuthConfig::default(),
            grpc: GrpcConfig::default(),
            telemetry: TelemetryConfig::default(),
            identity: IdentityConfig::default(),
            routing: RoutingConfig::default(),
            email: EmailSection::default(),
            sms: SmsSection::default(),
            voice: VoiceSection::default(),
            desk: DeskSection::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `memory` (in-process, embedded mode) or `amqp://user:pass@host:5672/vhost`.
    pub url: String,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
    #[serde(deserialize_with = "number")]
    pub delivery_limit: u32,
    #[serde(deserialize_with = "number")]
    pub publish_window: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: "memory".into(),
            prefix: "centralino".into(),
            delivery_limit: 5,
            publish_window: 512,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://...` or `sqlite://path`; empty means `<data_dir>/centralino.sqlite`.
    pub url: String,
    #[serde(deserialize_with = "number")]
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Token signing secret (at least 32 bytes); empty means a secret generated once
    /// and kept in `<data_dir>/auth.secret`.
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    pub listen: String,
    #[serde(deserialize_with = "number")]
    pub max_message_bytes: usize,
    #[serde(deserialize_with = "number")]
    pub request_timeout_secs: u64,
    /// PEM certificate and key; both set turns TLS on.
    pub tls_cert: String,
    pub tls_key: String,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 30,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `human` or `json`.
    pub format: String,
    /// `tracing` filter, e.g. `info` or `info,centralino_bus=debug`. A bare
    /// level applies to Centralino's own crates; every dependency logs at
    /// warn unless a directive names it (`info,rsipstack=debug`).
    pub filter: String,
    /// OTLP/gRPC collector; empty disables export. `OTEL_EXPORTER_OTLP_ENDPOINT` sets it too.
    pub otlp_endpoint: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            format: "human".into(),
            filter: "info".into(),
            otlp_endpoint: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Region of phone numbers written without an international prefix.
    pub default_region: String,
    /// When one interaction names two known customers: `suggest` a merge for a
    /// person to decide, or `merge` them at once (audited, reversible).
    pub on_conflict: String,
    /// The secret (at least 32 bytes) that erased customers' opt-outs are kept
    /// under, as an HMAC of each phone number or address, so the kept values
    /// cannot be reversed. The same on every history instance, and never
    /// changed: opt-outs are found by it. Empty: generated once and kept in
    /// `<data_dir>/suppression.secret` (one machine only).
    pub suppression_secret: String,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            default_region: "IT".into(),
            on_conflict: "suggest".into(),
            suppression_secret: String::new(),
        }
    }
}

impl IdentityConfig {
    /// The history service's settings, or the errors naming each bad field.
    pub fn history_config(&self) -> Result<centralino_history::HistoryConfig, Vec<String>> {
        let mut errors = Vec::new();
        let rules = centralino_domain::IdentityRules::with_default_region(&self.default_region)
            .map_err(|_| {
                errors.push(
                    "identity.default_region: must be an ISO 3166-1 alpha-2 region like IT"
                        .to_owned(),
                )
            })
            .ok();
        let on_conflict = self
            .on_conflict
            .parse()
            .map_err(|_| {
                errors.push("identity.on_conflict: must be `suggest` or `merge`".to_owned())
            })
            .ok();
        // Set by the caller from the file when empty (`suppression_key`).
        let suppression_key = match self.suppression_secret.trim() {
            "" => None,
            secret => centralino_history::SuppressionKey::new(secret.as_bytes())
                .map_err(|e| errors.push(format!("identity.suppression_secret: {e}")))
                .ok(),
        };
        match (rules, on_conflict) {
            (Some(rules), Some(on_conflict)) if errors.is_empty() => {
                Ok(centralino_history::HistoryConfig {
                    rules,
                    on_conflict,
                    suppression_key,
                    ..centralino_history::HistoryConfig::default()
                })
            }
            _ => Err(errors),
        }
    }
}

/// The routing service. Per-channel values are written `voice=20000,email=60000`
/// (channels left out keep their default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Effective priority gained per second waited, in every queue (0.001–1000).
    #[serde(deserialize_with = "number")]
    pub aging_per_s: f64,
    /// How long an offer waits for an answer, per channel.
    pub offer_timeout_ms: String,
    /// Wrap-up after completing, per channel.
    pub wrap_up_ms: String,
    /// Channels that, while an agent holds one, block every other offer.
    pub exclusive_channels: String,
    /// How long an agent who let an offer expire or rejected it is kept away from it.
    #[serde(deserialize_with = "number")]
    pub exclusion_ms: u64,
    /// Expired offers in a row that make an agent not-ready (0 = never).
    #[serde(deserialize_with = "number")]
    pub max_missed_offers: u32,
    /// How long an agent whose desktop disconnected stays logged in.
    #[serde(deserialize_with = "number")]
    pub session_grace_ms: u64,
    /// How often position and wait estimates are published (0 = never).
    #[serde(deserialize_with = "number")]
    pub position_interval_ms: u64,
    /// Queue for interactions with no known queue hint (empty: dead-letter them).
    pub default_queue: String,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        let e = centralino_routing::EngineSettings::default();
        let r = centralino_router::RouterConfig::default();
        let per_channel = |m: centralino_routing::ChannelMap<u64>| {
            centralino_domain::Channel::ALL
                .iter()
                .map(|c| format!("{c}={}", m.get(*c)))
                .collect::<Vec<_>>()
                .join(",")
        };
        Self {
            aging_per_s: e.aging_per_s,
            offer_timeout_ms: per_channel(e.offer_timeout_ms),
            wrap_up_ms: per_channel(e.wrap_up_ms),
            exclusive_channels: centralino_domain::Channel::ALL
                .iter()
                .filter(|c| e.exclusive.get(**c))
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(","),
            exclusion_ms: e.exclusion_ms,
            max_missed_offers: e.max_missed_offers,
            session_grace_ms: r.session_grace_ms,
            position_interval_ms: r.position_interval_ms,
            default_queue: String::new(),
        }
    }
}

fn per_channel_ms(
    key: &str,
    text: &str,
    base: centralino_routing::ChannelMap<u64>,
) -> Result<centralino_routing::ChannelMap<u64>, String> {
    let mut map = base;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (channel, ms) = part
            .split_once('=')
            .ok_or_else(|| format!("{key}: {part:?} is not channel=milliseconds"))?;
        let channel: centralino_domain::Channel = channel
            .parse()
            .map_err(|_| format!("{key}: unknown channel {channel:?}"))?;
        let ms: u64 = ms
            .trim()
            .parse()
            .map_err(|_| format!("{key}: {ms:?} is not a number of milliseconds"))?;
        map.set(channel, ms);
    }
    Ok(map)
}

impl RoutingConfig {
    /// The service configuration, or every problem found (each naming its key).
    pub fn router_config(&self) -> Result<centralino_router::RouterConfig, Vec<String>> {
        let mut errors = Vec::new();
        let mut engine = centralino_routing::EngineSettings {
            aging_per_s: self.aging_per_s,
            exclusion_ms: self.exclusion_ms,
            max_missed_offers: self.max_missed_offers,
            ..Default::default()
        };
        match per_channel_ms(
            "routing.offer_timeout_ms",
            &self.offer_timeout_ms,
            engine.offer_timeout_ms,
        ) {
            Ok(m) if m.0.iter().all(|&t| t >= 1_000) => engine.offer_timeout_ms = m,
            Ok(_) => {
                errors.push("routing.offer_timeout_ms: at least 1000 ms per channel".to_owned())
            }
            Err(e) => errors.push(e),
        }
        match per_channel_ms("routing.wrap_up_ms", &self.wrap_up_ms, engine.wrap_up_ms) {
            Ok(m) => engine.wrap_up_ms = m,
            Err(e) => errors.push(e),
        }
        let mut exclusive = centralino_routing::ChannelMap::all(false);
        for name in self
            .exclusive_channels
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match name.parse::<centralino_domain::Channel>() {
                Ok(c) => exclusive.set(c, true),
                Err(_) => errors.push(format!(
                    "routing.exclusive_channels: unknown channel {name:?}"
                )),
            }
        }
        engine.exclusive = exclusive;
        if let Err(e) = engine.validate() {
            errors.push(e.to_string());
        }
        if !self.default_queue.is_empty()
            && centralino_routing::validate_name("routing.default_queue", &self.default_queue)
                .is_err()
        {
            errors.push(
                "routing.default_queue: letters, digits, '.', '_', '-', '@' (1–64)".to_owned(),
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(centralino_router::RouterConfig {
            engine,
            session_grace_ms: self.session_grace_ms,
            position_interval_ms: self.position_interval_ms,
            default_queue: (!self.default_queue.is_empty()).then(|| self.default_queue.clone()),
            ..Default::default()
        })
    }
}

/// Accepts a number, or a string holding one (environment overrides are strings).
fn number<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Num(T),
        Str(String),
    }
    match Either::<T>::deserialize(d)? {
        Either::Num(n) => Ok(n),
        Either::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a valid number"))),
    }
}

/// The email adapter: mailboxes to import, the SMTP server replies leave through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSection {
    pub mailboxes: Vec<MailboxSection>,
    pub smtp: Option<SmtpSection>,
    /// Messages above this size are imported as their headers only (flagged
    /// `oversized`) and left on the server.
    #[serde(deserialize_with = "number")]
    pub max_message_bytes: u64,
    /// Messages fetched and committed together.
    #[serde(deserialize_with = "number")]
    pub batch_size: usize,
    /// How often to look for new mail when the server has no IDLE.
    #[serde(deserialize_with = "number")]
    pub poll_interval_secs: u64,
    /// Automatic acknowledgement of a new conversation (empty subject: none).
    /// `{subject}` and `{token}` are filled in.
    pub ack_subject: String,
    pub ack_body: String,
}

impl Default for EmailSection {
    fn default() -> Self {
        let d = centralino_email::EmailConfig::default();
        Self {
            mailboxes: Vec::new(),
            smtp: None,
            max_message_bytes: d.max_message_bytes,
            batch_size: d.batch_size,
            poll_interval_secs: d.poll_interval.as_secs(),
            ack_subject: String::new(),
            ack_body: String::new(),
        }
    }
}

/// One mailbox (`[[email.mailboxes]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSection {
    pub name: String,
    /// The address customers write to; replies leave from it.
    pub address: String,
    #[serde(default)]
    pub display_name: String,
    pub queue: String,
    #[serde(default, deserialize_with = "number")]
    pub priority: u32,
    pub host: String,
    #[serde(default = "imaps_port", deserialize_with = "number")]
    pub port: u16,
    /// `tls` (default) or `plain`.
    #[serde(default = "tls")]
    pub security: String,
    pub user: String,
    pub password: String,
    #[serde(default = "inbox")]
    pub folder: String,
    /// `seen` (default) or `move:<folder>`.
    #[serde(default = "seen")]
    pub after_import: String,
    /// PEM file of the CA that signed the server's certificate, when it is a
    /// private one (empty: the public web roots).
    #[serde(default)]
    pub tls_ca_file: String,
}

/// The SMTP server (`[email.smtp]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    pub host: String,
    #[serde(default = "submission_port", deserialize_with = "number")]
    pub port: u16,
    /// `starttls` (default), `tls` or `plain`.
    #[serde(default = "starttls")]
    pub security: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
}

fn imaps_port() -> u16 {
    993
}
fn submission_port() -> u16 {
    587
}
fn tls() -> String {
    "tls".into()
}
fn starttls() -> String {
    "starttls".into()
}
fn inbox() -> String {
    "INBOX".into()
}
fn seen() -> String {
    "seen".into()
}

fn security(key: &str, value: &str) -> Result<centralino_email::Security, String> {
    match value {
        "plain" => Ok(centralino_email::Security::Plain),
        "tls" => Ok(centralino_email::Security::Tls),
        "starttls" => Ok(centralino_email::Security::StartTls),
        _ => Err(format!("{key}: must be tls, starttls or plain")),
    }
}

impl EmailSection {
    /// The adapter's settings, or the errors naming each bad field.
    pub fn email_config(&self) -> Result<centralino_email::EmailConfig, Vec<String>> {
        let mut errors = Vec::new();
        let mut config = centralino_email::EmailConfig {
            max_message_bytes: self.max_message_bytes,
            batch_size: self.batch_size,
            poll_interval: Duration::from_secs(self.poll_interval_secs.clamp(1, 3_600)),
            ..centralino_email::EmailConfig::default()
        };
        for (i, m) in self.mailboxes.iter().enumerate() {
            let at = format!("email.mailboxes[{i}]");
            let security = security(&format!("{at}.security"), &m.security)
                .map_err(|e| errors.push(e))
                .unwrap_or(centralino_email::Security::Tls);
            let after_import = match m.after_import.as_str() {
                "seen" => centralino_email::AfterImport::MarkSeen,
                other => match other.strip_prefix("move:") {
                    Some(folder) => centralino_email::AfterImport::Move(folder.to_owned()),
                    None => {
                        errors.push(format!(
                            "{at}.after_import: must be `seen` or `move:<folder>`"
                        ));
                        centralino_email::AfterImport::MarkSeen
                    }
                },
            };
            config.mailboxes.push(centralino_email::MailboxConfig {
                name: m.name.clone(),
                address: m.address.clone(),
                display_name: m.display_name.clone(),
                queue: m.queue.clone(),
                priority: m.priority,
                imap: centralino_email::ImapEndpoint {
                    host: m.host.clone(),
                    port: m.port,
                    security,
                    user: m.user.clone(),
                    password: m.password.clone(),
                    folder: m.folder.clone(),
                    tls_ca_file: (!m.tls_ca_file.is_empty())
                        .then(|| std::path::PathBuf::from(&m.tls_ca_file)),
                },
                after_import,
            });
        }
        if let Some(smtp) = &self.smtp {
            let security = security("email.smtp.security", &smtp.security)
                .map_err(|e| errors.push(e))
                .unwrap_or(centralino_email::Security::StartTls);
            let optional = |s: &String| (!s.is_empty()).then(|| s.clone());
            config.smtp = Some(centralino_email::SmtpConfig {
                host: smtp.host.clone(),
                port: smtp.port,
                security,
                user: optional(&smtp.user),
                password: optional(&smtp.password),
            });
        }
        if !self.ack_subject.is_empty() {
            config.ack = Some(centralino_email::AckTemplate {
                subject: self.ack_subject.clone(),
                body: self.ack_body.clone(),
            });
        }
        if let Err(e) = config.validate() {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(errors)
        }
    }
}

/// The SMS adapter: an SMSC over SMPP and/or a provider's webhooks and REST API.
/// It runs when `[sms.smpp]` or `[sms.webhook]` is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmsSection {
    /// Our numbers (`[[sms.numbers]]`) and the queue of each; the first sends
    /// messages that answer no conversation.
    pub numbers: Vec<SmsNumberSection>,
    /// Queue of conversations to a number not listed.
    pub default_queue: String,
    /// Answer to HELP / INFO.
    pub help_reply: String,
    /// Confirmation of STOP (empty: none).
    pub stop_reply: String,
    /// Confirmation of START (empty: none).
    pub start_reply: String,
    /// A message within this many hours of the conversation's last one (not
    /// completed) is a follow-up in it.
    #[serde(deserialize_with = "number")]
    pub conversation_window_hours: u64,
    /// Longest message sent, in segments.
    #[serde(deserialize_with = "number")]
    pub max_segments: usize,
    /// A message not sent within this many hours is given up.
    #[serde(deserialize_with = "number")]
    pub max_age_hours: u64,
    pub smpp: Option<SmppSection>,
    pub webhook: Option<SmsWebhookSection>,
    pub rest: Option<SmsRestSection>,
}

impl Default for SmsSection {
    fn default() -> Self {
        let d = centralino_sms::SmsConfig::default();
        Self {
            numbers: Vec::new(),
            default_queue: d.default_queue,
            help_reply: d.help_reply,
            stop_reply: d.stop_reply.unwrap_or_default(),
            start_reply: d.start_reply.unwrap_or_default(),
            conversation_window_hours: d.conversation_window.as_secs() / 3600,
            max_segments: d.max_segments,
            max_age_hours: d.max_age.as_secs() / 3600,
            smpp: None,
            webhook: None,
            rest: None,
        }
    }
}

/// One of our numbers (`[[sms.numbers]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsNumberSection {
    pub number: String,
    pub queue: String,
    #[serde(default = "fifty", deserialize_with = "number")]
    pub priority: u32,
}

/// The SMSC (`[sms.smpp]`): one transceiver bind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppSection {
    pub host: String,
    #[serde(default = "smpp_port", deserialize_with = "number")]
    pub port: u16,
    pub system_id: String,
    pub password: String,
    #[serde(default = "thirty", deserialize_with = "number")]
    pub enquire_link_secs: u64,
    /// Most submits awaiting their response at once.
    #[serde(default = "ten", deserialize_with = "number")]
    pub window: usize,
    /// Most parts per second the account may submit (0: no limit).
    #[serde(default, deserialize_with = "number")]
    pub max_per_second: u32,
}

/// The provider's webhooks (`[sms.webhook]`), Twilio's form and signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsWebhookSection {
    #[serde(default = "webhook_listen")]
    pub listen: String,
    /// The URL the provider calls, without the path (what it signs).
    pub public_base_url: String,
    #[serde(default = "webhook_path")]
    pub path: String,
    pub auth_token: String,
}

/// The provider's REST API (`[sms.rest]`), used when there is no `[sms.smpp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsRestSection {
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// Where the provider reports delivery (default: the webhook's `/status`).
    #[serde(default)]
    pub status_callback: String,
}

fn fifty() -> u32 {
    50
}
fn smpp_port() -> u16 {
    2775
}
fn thirty() -> u64 {
    30
}
fn ten() -> usize {
    10
}
fn webhook_listen() -> String {
    "0.0.0.0:8088".into()
}
fn webhook_path() -> String {
    "/sms/twilio".into()
}

impl SmsSection {
    /// Whether the adapter has anything to run.
    pub fn configured(&self) -> bool {
        self.smpp.is_some() || self.webhook.is_some()
    }

    /// The adapter's settings (`None` when it is not configured), or the
    /// errors naming each bad field.
    pub fn sms_config(
        &self,
        identity: &IdentityConfig,
    ) -> Result<Option<centralino_sms::SmsConfig>, Vec<String>> {
        if !self.configured() {
            if self.rest.is_some() || !self.numbers.is_empty() {
                return Err(vec![
                    "sms: [sms.smpp] or [sms.webhook] is needed to receive messages".to_owned(),
                ]);
            }
            return Ok(None);
        }
        let mut errors = Vec::new();
        let rules = centralino_domain::IdentityRules::with_default_region(&identity.default_region)
            .unwrap_or_default();
        let optional = |s: &String| (!s.trim().is_empty()).then(|| s.clone());
        let hours = |h: u64| Duration::from_secs(h.clamp(1, 24 * 365) * 3600);
        let mut config = centralino_sms::SmsConfig {
            numbers: self
                .numbers
                .iter()
                .map(|n| centralino_sms::NumberConfig {
                    number: n.number.clone(),
                    queue: n.queue.clone(),
                    priority: n.priority,
                })
                .collect(),
            default_queue: self.default_queue.clone(),
            rules,
            help_reply: self.help_reply.clone(),
            stop_reply: optional(&self.stop_reply),
            start_reply: optional(&self.start_reply),
            conversation_window: hours(self.conversation_window_hours),
            max_segments: self.max_segments,
            max_age: hours(self.max_age_hours),
            ..centralino_sms::SmsConfig::default()
        };
        if let Some(s) = &self.smpp {
            // Messages leave from the number the customer wrote to (or the
            // first one); this is only the fallback.
            let source = self
                .numbers
                .first()
                .map(|n| n.number.clone())
                .unwrap_or_default();
            if s.window == 0 || s.window > 1_000 {
                errors.push("sms.smpp.window: must be 1–1000".to_owned());
            }
            config.smpp = Some(centralino_sms::smpp::SmppConfig {
                host: s.host.clone(),
                port: s.port,
                system_id: s.system_id.clone(),
                password: s.password.clone(),
                source_addr: source,
                enquire_link: Duration::from_secs(s.enquire_link_secs.clamp(5, 600)),
                window: s.window,
                max_per_second: s.max_per_second,
                ..centralino_sms::smpp::SmppConfig::default()
            });
        }
        if let Some(w) = &self.webhook {
            match w.listen.parse() {
                Ok(listen) => {
                    config.webhook = Some(centralino_sms::WebhookListen {
                        listen,
                        webhook: centralino_sms::webhook::WebhookConfig {
                            public_base_url: w.public_base_url.clone(),
                            path: w.path.clone(),
                            auth_token: w.auth_token.clone(),
                        },
                    })
                }
                Err(_) => errors.push(format!(
                    "sms.webhook.listen: {:?} is not an address like 0.0.0.0:8088",
                    w.listen
                )),
            }
        }
        if let Some(r) = &self.rest {
            let signed = self.webhook.as_ref().map(|w| {
                format!(
                    "{}{}/status",
                    w.public_base_url.trim_end_matches('/'),
                    w.path.trim_end_matches('/')
                )
            });
            let callback = optional(&r.status_callback).or_else(|| signed.clone());
            if let (Some(cb), Some(signed)) = (&callback, &signed)
                && cb != signed
            {
                errors.push(format!(
                    "sms.rest.status_callback: must be {signed} (the URL the webhook checks signatures for), or empty"
                ));
            }
            config.rest = Some(centralino_sms::rest::RestConfig {
                base_url: r.base_url.clone(),
                account_sid: r.account_sid.clone(),
                auth_token: r.auth_token.clone(),
                status_callback: callback,
                timeout: Duration::from_secs(15),
            });
        }
        if let Err(e) = config.validate() {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(Some(config))
        } else {
            Err(errors)
        }
    }
}

/// The walk-in desk: kiosks, counters and display boards. It runs when
/// `[[desk.sites]]` defines at least one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeskSection {
    /// The HTTP API for kiosks and boards (the board page is `/sites/<id>/board`).
    pub listen: String,
    /// Digits of a ticket number (`A007`: 3).
    #[serde(deserialize_with = "number")]
    pub digits: usize,
    /// Recalls a counter may make; one more makes the ticket a no-show.
    #[serde(deserialize_with = "number")]
    pub max_recalls: u32,
    /// A called ticket not started within this long is a no-show.
    #[serde(deserialize_with = "number")]
    pub no_show_after_secs: u64,
    /// A booked customer may check in this long before the slot.
    #[serde(deserialize_with = "number")]
    pub check_in_early_mins: u64,
    /// …and up to this long after it started.
    #[serde(deserialize_with = "number")]
    pub check_in_grace_mins: u64,
    /// Added to the service's priority for a booked customer.
    #[serde(deserialize_with = "number")]
    pub appointment_priority: u32,
    /// Calls a board shows.
    #[serde(deserialize_with = "number")]
    pub board_size: usize,
    /// Text a customer who gave a phone once their ticket is at this place or
    /// nearer (through the SMS adapter). 0: never.
    #[serde(deserialize_with = "number")]
    pub notify_at_position: u64,
    /// The text; `{ticket}`, `{site}` and `{position}` are filled in.
    pub notify_text: String,
    /// Kiosks must send a bearer token (role integrator, from `centralino
    /// token`) to take tickets and check in. `false` only on a closed branch LAN.
    pub kiosk_auth: bool,
    pub sites: Vec<DeskSiteSection>,
    pub services: Vec<DeskServiceSection>,
}

impl Default for DeskSection {
    fn default() -> Self {
        let rules = centralino_ticketing::ticket::Rules::default();
        let check_in = centralino_ticketing::appointment::CheckInRules::default();
        Self {
            listen: "127.0.0.1:8090".into(),
            digits: 3,
            max_recalls: rules.max_recalls,
            no_show_after_secs: u64::try_from(rules.no_show_after_ms / 1_000).unwrap_or(300),
            check_in_early_mins: u64::try_from(check_in.early_ms / 60_000).unwrap_or(30),
            check_in_grace_mins: u64::try_from(check_in.grace_ms / 60_000).unwrap_or(10),
            appointment_priority: 50,
            board_size: 6,
            notify_at_position: 0,
            notify_text: "Ticket {ticket}: it is nearly your turn ({position} in line).".into(),
            kiosk_auth: true,
            sites: Vec::new(),
            services: Vec::new(),
        }
    }
}

/// A branch (`[[desk.sites]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskSiteSection {
    pub id: String,
    /// IANA time zone, e.g. `Europe/Rome`: numbering starts again at local midnight.
    pub timezone: String,
    /// `HH:MM`, local time.
    pub opens: String,
    pub closes: String,
    /// Counter names, e.g. `["1", "2", "3"]`.
    #[serde(default)]
    pub counters: Vec<String>,
    /// The kiosk's ticket printer, ESC/POS over TCP: `host:port` (port 9100
    /// by default). Empty: no printer.
    #[serde(default)]
    pub printer: String,
}

/// A service tickets are taken for (`[[desk.services]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskServiceSection {
    /// What kiosks send, e.g. `A`.
    pub code: String,
    pub name: String,
    /// Printed before the number; default: the code.
    #[serde(default)]
    pub prefix: String,
    /// Routing queue; `{site}` stands for the site's id.
    pub queue: String,
    #[serde(default)]
    pub priority: u32,
}

impl DeskSection {
    /// Whether the adapter has anything to run.
    pub fn configured(&self) -> bool {
        !self.sites.is_empty()
    }

    /// The adapter's settings (`None` when it is not configured), or the
    /// errors naming each bad key.
    pub fn desk_config(
        &self,
        identity: &IdentityConfig,
    ) -> Result<Option<centralino_desk::DeskConfig>, Vec<String>> {
        if !self.configured() {
            if !self.services.is_empty() {
                return Err(vec![
                    "desk: [[desk.sites]] is needed to issue tickets (see deploy/desk.toml)"
                        .to_owned(),
                ]);
            }
            return Ok(None);
        }
        let mut errors = Vec::new();
        let listen = self.listen.trim().parse().unwrap_or_else(|_| {
            errors.push(format!(
                "desk.listen: {:?} is not an address like 0.0.0.0:8090",
                self.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 8090))
        });
        let time = |errors: &mut Vec<String>, key: String, v: &str| {
            numbering::parse_time(v).unwrap_or_else(|e| {
                errors.push(format!("{key}: {e}"));
                chrono::NaiveTime::MIN
            })
        };
        let mut sites = Vec::new();
        let mut counters = std::collections::HashMap::new();
        let mut printers = std::collections::HashMap::new();
        for (i, s) in self.sites.iter().enumerate() {
            let tz = numbering::parse_time_zone(&s.timezone).unwrap_or_else(|e| {
                errors.push(format!("desk.sites[{i}].timezone: {e}"));
                chrono_tz::UTC
            });
            let opens = time(&mut errors, format!("desk.sites[{i}].opens"), &s.opens);
            let closes = time(&mut errors, format!("desk.sites[{i}].closes"), &s.closes);
            sites.push(numbering::Site {
                id: s.id.trim().to_owned(),
                tz,
                opens,
                closes,
            });
            counters.insert(s.id.trim().to_owned(), s.counters.clone());
            let printer = s.printer.trim();
            if !printer.is_empty() {
                let with_port = if printer.contains(':') {
                    printer.to_owned()
                } else {
                    format!("{printer}:9100")
                };
                match with_port.parse::<SocketAddr>() {
                    Ok(a) => {
                        printers.insert(s.id.trim().to_owned(), a);
                    }
                    Err(_) => errors.push(format!(
                        "desk.sites[{i}].printer: {:?} is not an address like 10.0.0.5:9100",
                        s.printer
                    )),
                }
            }
        }
        let config = centralino_desk::DeskConfig {
            listen,
            sites,
            services: self
                .services
                .iter()
                .map(|s| centralino_desk::ServiceConfig {
                    code: s.code.trim().to_owned(),
                    name: s.name.clone(),
                    prefix: if s.prefix.is_empty() {
                        s.code.trim().to_owned()
                    } else {
                        s.prefix.clone()
                    },
                    queue: s.queue.trim().to_owned(),
                    priority: s.priority,
                })
                .collect(),
            digits: self.digits,
            rules: centralino_domain::IdentityRules::with_default_region(&identity.default_region)
                .unwrap_or_default(),
            counters,
            tickets: centralino_ticketing::ticket::Rules {
                max_recalls: self.max_recalls,
                no_show_after_ms: i64::try_from(self.no_show_after_secs.saturating_mul(1_000))
                    .unwrap_or(i64::MAX),
            },
            check_in: centralino_ticketing::appointment::CheckInRules {
                early_ms: i64::try_from(self.check_in_early_mins.saturating_mul(60_000))
                    .unwrap_or(i64::MAX),
                grace_ms: i64::try_from(self.check_in_grace_mins.saturating_mul(60_000))
                    .unwrap_or(i64::MAX),
            },
            appointment_priority: self.appointment_priority,
            board_size: self.board_size,
            notify: (self.notify_at_position > 0).then(|| centralino_desk::TurnNotice {
                at_position: self.notify_at_position,
                text: self.notify_text.clone(),
            }),
            printers,
            // Set by the caller, who holds the signing key, when `kiosk_auth`.
            kiosk_key: None,
            clock: std::sync::Arc::new(chrono::Utc::now),
        };
        if errors.is_empty()
            && let Err(e) = config.validate()
        {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(Some(config))
        } else {
            Err(errors)
        }
    }
}

/// The voice adapter: a SIP user agent that answers our numbers with IVR
/// flows, holds callers in queues and bridges them to agents' phones. It runs
/// when `[voice.flows]` defines at least one flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSection {
    /// SIP over UDP and TCP on this address.
    pub listen: String,
    /// What SDP announces for RTP (and SIP advertises); empty: the address of
    /// `listen`, which must then not be a wildcard. RTP binds on `listen`'s IP,
    /// so behind NAT or a published container port this is the public address.
    pub media_ip: String,
    /// RTP ports, e.g. `10000-10999` (the even ones are used; a bridged call
    /// takes two): open exactly these in a firewall or a port mapping. Empty:
    /// any free port.
    pub rtp_ports: String,
    /// Prompt files, `<dir>/<name>.wav` (8 kHz mono); a relative path is
    /// relative to the working directory.
    pub prompts_dir: PathBuf,
    /// Flow of numbers not in `[[voice.numbers]]` (empty: such calls get 404).
    pub default_flow: String,
    /// How long an agent's phone rings before the call goes back to routing.
    #[serde(deserialize_with = "number")]
    pub ring_timeout_secs: u64,
    /// How an assigned caller reaches the agent: `bridge` (the adapter calls
    /// the agent and relays the audio) or `refer` (the caller's side is asked
    /// to call the agent, RFC 3515; bridging when it refuses).
    pub transfer: String,
    /// Where customers are called back (virtual hold): a SIP URI with
    /// `{number}` for their E.164 number, e.g. `sip:{number}@gateway.example.com`.
    pub trunk: String,
    /// Calls at once; more are refused with 503.
    #[serde(deserialize_with = "number")]
    pub max_calls: usize,
    /// A party that sends no RTP for this many seconds is gone (no BYE came):
    /// the call is ended. 0: never.
    #[serde(deserialize_with = "number")]
    pub media_timeout_secs: u64,
    /// Our numbers (`[[voice.numbers]]`): the user part callers dial, and its flow.
    pub numbers: Vec<VoiceNumberSection>,
    pub hold: VoiceHoldSection,
    /// Agent login → the SIP URI of their phone (`[voice.agents]`).
    pub agents: BTreeMap<String, String>,
    /// IVR flows by name (`[voice.flows.<name>]`).
    pub flows: BTreeMap<String, VoiceFlowSection>,
}

impl Default for VoiceSection {
    fn default() -> Self {
        let d = centralino_voice::VoiceConfig::default();
        Self {
            listen: d.listen.to_string(),
            media_ip: String::new(),
            rtp_ports: String::new(),
            prompts_dir: d.prompts_dir,
            default_flow: String::new(),
            ring_timeout_secs: d.ring_timeout.as_secs(),
            transfer: "bridge".into(),
            trunk: d.trunk.unwrap_or_default(),
            max_calls: d.max_calls,
            media_timeout_secs: d.media_timeout.as_secs(),
            numbers: Vec::new(),
            hold: VoiceHoldSection::default(),
            agents: BTreeMap::new(),
            flows: BTreeMap::new(),
        }
    }
}

/// One of our numbers (`[[voice.numbers]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceNumberSection {
    pub number: String,
    pub flow: String,
}

/// What a waiting caller hears (`[voice.hold]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceHoldSection {
    /// Played once on entering the queue.
    pub please_hold: Vec<String>,
    /// Looped between announcements.
    pub music: String,
    /// The first position announcement, this long after entering the queue.
    #[serde(deserialize_with = "number")]
    pub first_announcement_secs: u64,
    /// Then one every this long (at least 5).
    #[serde(deserialize_with = "number")]
    pub announce_every_secs: u64,
    /// The key that asks for a callback instead of waiting (empty: no virtual hold).
    pub callback_key: String,
    pub callback_prompt: Vec<String>,
    pub callback_confirmed: Vec<String>,
    pub closed_prompt: Vec<String>,
}

impl Default for VoiceHoldSection {
    fn default() -> Self {
        let d = centralino_voice::HoldConfig::default();
        Self {
            please_hold: d.please_hold,
            music: d.music,
            first_announcement_secs: d.first_announcement.as_secs(),
            announce_every_secs: d.announce_every.as_secs(),
            callback_key: d.callback_key.map(String::from).unwrap_or_default(),
            callback_prompt: d.callback_prompt,
            callback_confirmed: d.callback_confirmed,
            closed_prompt: d.closed_prompt,
        }
    }
}

/// One IVR flow (`[voice.flows.<name>]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceFlowSection {
    /// The first menu.
    pub start: String,
    /// Played before `hangup` hangs up.
    pub goodbye: Vec<String>,
    pub menus: BTreeMap<String, VoiceMenuSection>,
}

/// One menu (`[voice.flows.<flow>.menus.<menu>]`). Actions are `queue:NAME`,
/// `queue:NAME:PRIORITY` (0–100, default 0), `menu:NAME`, `repeat`, `hangup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceMenuSection {
    /// Prompt names, played in order.
    pub prompt: Vec<String>,
    /// How long the caller has to press a key after the prompt.
    #[serde(deserialize_with = "number")]
    pub timeout_ms: u64,
    /// Times the menu is played again after a wrong key or silence.
    #[serde(deserialize_with = "number")]
    pub retries: u32,
    pub invalid_prompt: Vec<String>,
    pub no_input_prompt: Vec<String>,
    /// Taken when the retries are used up.
    pub default: String,
    /// Key (`0`–`9`, `*`, `#`, `A`–`D`) → action.
    pub options: BTreeMap<String, String>,
}

impl Default for VoiceMenuSection {
    fn default() -> Self {
        Self {
            prompt: Vec::new(),
            timeout_ms: 5_000,
            retries: 2,
            invalid_prompt: Vec::new(),
            no_input_prompt: Vec::new(),
            default: String::new(),
            options: BTreeMap::new(),
        }
    }
}

/// An IVR action written `queue:NAME[:PRIORITY]`, `menu:NAME`, `repeat` or
/// `hangup` (telephony's grammar, [`Action`]'s `FromStr`), whose queue is a
/// name routing accepts. The error names `key`.
fn voice_action(key: &str, text: &str) -> Result<Action, String> {
    let parsed = text.parse::<Action>();
    // Routing's rule for the name is checked before the priority.
    let queue = match &parsed {
        Ok(Action::Queue { queue, .. }) | Err(ParseActionError::BadPriority { queue, .. }) => {
            Some(queue.as_str())
        }
        _ => None,
    };
    if let Some(queue) = queue
        && centralino_routing::validate_name("queue", queue).is_err()
    {
        return Err(format!(
            "{key}: {queue:?} is not a queue name (letters, digits, '.', '_', '-', '@'; 1–64)"
        ));
    }
    parsed.map_err(|e| format!("{key}: {e}"))
}

impl VoiceFlowSection {
    /// The flow, with the errors naming each bad key under `at`
    /// (`voice.flows.<name>`) added to `errors`.
    fn flow(&self, at: &str, errors: &mut Vec<String>) -> Flow {
        if self.start.is_empty() {
            errors.push(format!("{at}.start: name the first menu"));
        } else if !self.menus.contains_key(&self.start) {
            errors.push(format!("{at}.start: menu {:?} is not defined", self.start));
        }
        let mut menus = BTreeMap::new();
        for (name, m) in &self.menus {
            let here = format!("{at}.menus.{name}");
            let mut options = BTreeMap::new();
            for (key, text) in &m.options {
                let at_key = format!("{here}.options.{key}");
                let mut chars = key.chars();
                match (chars.next(), chars.next()) {
                    (Some(k), None) if centralino_telephony::dtmf::event_of(k).is_some() => {
                        let action = self.action(at, &at_key, text, errors);
                        options.insert(k.to_ascii_uppercase(), action);
                    }
                    _ => errors.push(format!(
                        "{at_key}: {key:?} is not a keypad key (0-9, *, #, A-D)"
                    )),
                }
            }
            let default = if m.default.trim().is_empty() {
                errors.push(format!(
                    "{here}.default: say where callers go when the retries are used up \
                     (queue:NAME, menu:NAME or hangup)"
                ));
                Action::Hangup
            } else {
                self.action(at, &format!("{here}.default"), &m.default, errors)
            };
            menus.insert(
                name.clone(),
                Menu {
                    prompt: m.prompt.clone(),
                    options,
                    timeout_ms: m.timeout_ms,
                    retries: m.retries,
                    invalid_prompt: m.invalid_prompt.clone(),
                    no_input_prompt: m.no_input_prompt.clone(),
                    default,
                },
            );
        }
        Flow {
            start: self.start.clone(),
            menus,
            goodbye: self.goodbye.clone(),
        }
    }

    /// The action `text` at `key`; a bad one is reported and read as hangup.
    fn action(&self, at: &str, key: &str, text: &str, errors: &mut Vec<String>) -> Action {
        match voice_action(key, text) {
            Ok(Action::Menu(m)) if !self.menus.contains_key(&m) => {
                errors.push(format!("{key}: menu {m:?} is not defined in {at}.menus"));
                Action::Hangup
            }
            Ok(a) => a,
            Err(e) => {
                errors.push(e);
                Action::Hangup
            }
        }
    }
}

impl VoiceSection {
    /// Whether the adapter has anything to run.
    pub fn configured(&self) -> bool {
        !self.flows.is_empty()
    }

    /// The adapter's settings (`None` when it is not configured), or the
    /// errors naming each bad key.
    pub fn voice_config(
        &self,
        identity: &IdentityConfig,
    ) -> Result<Option<centralino_voice::VoiceConfig>, Vec<String>> {
        if !self.configured() {
            if !self.numbers.is_empty() || !self.agents.is_empty() || !self.default_flow.is_empty()
            {
                return Err(vec![
                    "voice: [voice.flows] is needed to answer calls (see deploy/voice.toml)"
                        .to_owned(),
                ]);
            }
            return Ok(None);
        }
        let mut errors = Vec::new();
        let defaults = centralino_voice::VoiceConfig::default();
        let listen = self
            .listen
            .trim()
            .parse()
            .map_err(|_| {
                errors.push(format!(
                    "voice.listen: {:?} is not an address like 0.0.0.0:5060",
                    self.listen
                ))
            })
            .unwrap_or(defaults.listen);
        let media_ip = match self.media_ip.trim() {
            "" => None,
            ip => ip
                .parse()
                .map_err(|_| {
                    errors.push(format!(
                        "voice.media_ip: {:?} is not an IP address like 10.0.0.5",
                        self.media_ip
                    ))
                })
                .ok(),
        };
        let rtp_ports = match self.rtp_ports.trim() {
            "" => None,
            range => range
                .split_once('-')
                .and_then(|(a, b)| Some(a.trim().parse::<u16>().ok()?..=b.trim().parse().ok()?))
                .filter(|r| !r.is_empty())
                .or_else(|| {
                    errors.push(format!(
                        "voice.rtp_ports: {:?} is not a port range like 10000-10999",
                        self.rtp_ports
                    ));
                    None
                }),
        };
        let transfer = match self.transfer.trim() {
            "bridge" | "" => centralino_voice::Transfer::Bridge,
            "refer" => centralino_voice::Transfer::Refer,
            other => {
                errors.push(format!(
                    "voice.transfer: {other:?} must be `bridge` or `refer`"
                ));
                centralino_voice::Transfer::Bridge
            }
        };
        if self.ring_timeout_secs == 0 || self.ring_timeout_secs > 300 {
            errors.push("voice.ring_timeout_secs: must be 1–300".to_owned());
        }
        let h = &self.hold;
        if h.announce_every_secs < 5 {
            errors.push("voice.hold.announce_every_secs: must be at least 5".to_owned());
        }
        let callback_key = {
            let mut chars = h.callback_key.trim().chars();
            match (chars.next(), chars.next()) {
                (None, _) => None,
                (Some(k), None) => Some(k.to_ascii_uppercase()),
                _ => {
                    errors.push(format!(
                        "voice.hold.callback_key: {:?} is not one key (0-9, *, #, A-D) or empty",
                        h.callback_key
                    ));
                    None
                }
            }
        };
        let flows: BTreeMap<String, Flow> = self
            .flows
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    f.flow(&format!("voice.flows.{name}"), &mut errors),
                )
            })
            .collect();
        for (i, n) in self.numbers.iter().enumerate() {
            if !flows.contains_key(&n.flow) {
                errors.push(format!(
                    "voice.numbers[{i}].flow: {:?} is not one of [voice.flows]",
                    n.flow
                ));
            }
        }
        let default_flow = self.default_flow.trim();
        if !default_flow.is_empty() && !flows.contains_key(default_flow) {
            errors.push(format!(
                "voice.default_flow: {default_flow:?} is not one of [voice.flows]"
            ));
        }
        for (agent, uri) in &self.agents {
            // rsipstack's parser takes nearly any text as a host; ask for the
            // shape at least.
            let rest = uri
                .strip_prefix("sip:")
                .or_else(|| uri.strip_prefix("sips:"))
                .unwrap_or_default();
            let host = rest.rsplit('@').next().unwrap_or_default();
            if host.is_empty() || rest.chars().any(char::is_whitespace) {
                errors.push(format!(
                    "voice.agents.{agent}: {uri:?} is not a SIP URI like sip:{agent}@10.0.0.21:5060"
                ));
            }
        }
        let trunk = self.trunk.trim();
        if !trunk.is_empty()
            && (!(trunk.starts_with("sip:") || trunk.starts_with("sips:"))
                || !trunk.contains("{number}")
                || trunk.chars().any(char::is_whitespace))
        {
            errors.push(format!(
                "voice.trunk: {trunk:?} is not a SIP URI with {{number}}, like sip:{{number}}@gateway.example.com:5060"
            ));
        }
        if trunk.is_empty() && callback_key.is_some() {
            errors.push(
                "voice.trunk: required when voice.hold.callback_key offers callbacks \
                 (they are placed through it)"
                    .to_owned(),
            );
        }
        if media_ip.is_none() && listen.ip().is_unspecified() {
            errors.push(format!(
                "voice.media_ip: required when voice.listen ({listen}) is a wildcard address: \
                 the address phones send audio to"
            ));
        }
        let config = centralino_voice::VoiceConfig {
            listen,
            media_ip,
            rtp_ports,
            prompts_dir: self.prompts_dir.clone(),
            numbers: self
                .numbers
                .iter()
                .map(|n| centralino_voice::NumberConfig {
                    number: n.number.clone(),
                    flow: n.flow.clone(),
                })
                .collect(),
            default_flow: (!default_flow.is_empty()).then(|| default_flow.to_owned()),
            flows,
            hold: centralino_voice::HoldConfig {
                please_hold: h.please_hold.clone(),
                music: h.music.clone(),
                first_announcement: Duration::from_secs(h.first_announcement_secs),
                announce_every: Duration::from_secs(h.announce_every_secs),
                callback_key,
                callback_prompt: h.callback_prompt.clone(),
                callback_confirmed: h.callback_confirmed.clone(),
                closed_prompt: h.closed_prompt.clone(),
            },
            agents: self.agents.clone(),
            ring_timeout: Duration::from_secs(self.ring_timeout_secs),
            transfer,
            trunk: (!trunk.is_empty()).then(|| trunk.to_owned()),
            rules: centralino_domain::IdentityRules::with_default_region(&identity.default_region)
                .unwrap_or_default(),
            max_calls: self.max_calls,
            media_timeout: Duration::from_secs(self.media_timeout_secs),
        };
        // Then the adapter's own check (menus without a prompt, timeouts,
        // retries, number lengths, max_calls, ...): it names the key too, and
        // reports the first problem it finds.
        if errors.is_empty()
            && let Err(e) = config.validate()
        {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(Some(config))
        } else {
            Err(errors)
        }
    }
}

/// Why the configuration was refused; every line names a key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Reads `file` (if any), applies `env` overrides and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut root = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?
            }
            None => toml::Table::new(),
        };
        // The standard OpenTelemetry variable first, so CENTRALINO_* wins over it.
        let mut env: Vec<(String, String)> = env.into_iter().collect();
        env.sort_by_key(|(k, _)| k != "OTEL_EXPORTER_OTLP_ENDPOINT");
        for (key, value) in env {
            let path: Vec<String> = if key == "OTEL_EXPORTER_OTLP_ENDPOINT" {
                vec!["telemetry".into(), "otlp_endpoint".into()]
            } else if Self::is_setting(&key) {
                let rest = key.trim_start_matches("CENTRALINO_");
                rest.split("__").map(str::to_ascii_lowercase).collect()
            } else {
                continue;
            };
            set_path(&mut root, &path, value)
                .map_err(|e| ConfigError(vec![format!("{key}: {e}")]))?;
        }
        let config: Config = toml::Value::Table(root)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError(vec![e.message().trim().to_owned()]))?;
        config.validate()?;
        Ok(config)
    }

    /// Whether an environment variable sets configuration: `CENTRALINO_<SECTION>__<KEY>`
    /// (an unknown one is an error, so typos are caught) or a known top-level key
    /// such as `CENTRALINO_DATA_DIR`. Other `CENTRALINO_*` names (a compose
    /// variable, an orchestrator's injected `CENTRALINO_PORT`) are left alone.
    fn is_setting(key: &str) -> bool {
        let Some(rest) = key.strip_prefix("CENTRALINO_") else {
            return false;
        };
        if NOT_CONFIG.contains(&key) || rest.starts_with("TEST_") {
            return false;
        }
        rest.contains("__") || Self::env_names().iter().any(|n| n == key)
    }

    /// `CENTRALINO_*` variables in `env` that configure nothing (for a startup warning).
    pub fn ignored_env<'a>(env: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        env.into_iter()
            .filter(|k| {
                k.starts_with("CENTRALINO_")
                    && !Self::is_setting(k)
                    && !NOT_CONFIG.contains(k)
                    && !k.starts_with("CENTRALINO_TEST_")
            })
            .map(str::to_owned)
            .collect()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let bus = self.bus.url.as_str();
        if bus != "memory" && !bus.starts_with("amqp://") && !bus.starts_with("amqps://") {
            errors.push("bus.url: must be `memory` or an amqp:// or amqps:// URL".to_owned());
        }
        if self.bus.prefix.is_empty()
            || !self
                .bus
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.push("bus.prefix: use letters, digits, '-' or '_'".to_owned());
        }
        if self.bus.delivery_limit == 0 {
            errors.push("bus.delivery_limit: must be at least 1".to_owned());
        }
        if !self.store.url.is_empty() && centralino_store::backend_of(&self.store.url).is_err() {
            errors.push("store.url: must start with postgres:// or sqlite:".to_owned());
        }
        if self.listen_addr().is_none() {
            errors.push(format!(
                "grpc.listen: {:?} is not an address like 127.0.0.1:50051",
                self.grpc.listen
            ));
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.grpc.max_message_bytes) {
            errors.push("grpc.max_message_bytes: must be between 1024 and 67108864".to_owned());
        }
        if self.grpc.request_timeout_secs == 0 {
            errors.push("grpc.request_timeout_secs: must be at least 1".to_owned());
        }
        if self.grpc.tls_cert.is_empty() != self.grpc.tls_key.is_empty() {
            errors.push("grpc.tls_cert and grpc.tls_key: set both or neither".to_owned());
        }
        if !self.auth.secret.is_empty() && self.auth.secret.len() < centralino_auth::MIN_SECRET_LEN
        {
            errors.push("auth.secret: must be at least 32 bytes".to_owned());
        }
        if centralino_telemetry::parse_format(&self.telemetry.format).is_none() {
            errors.push("telemetry.format: must be `human` or `json`".to_owned());
        }
        if let Err(identity) = self.identity.history_config() {
            errors.extend(identity);
        }
        if let Err(routing) = self.routing.router_config() {
            errors.extend(routing);
        }
        if let Err(email) = self.email.email_config() {
            errors.extend(email);
        }
        if let Err(sms) = self.sms.sms_config(&self.identity) {
            errors.extend(sms);
        }
        if let Err(voice) = self.voice.voice_config(&self.identity) {
            errors.extend(voice);
        }
        if let Err(desk) = self.desk.desk_config(&self.identity) {
            errors.extend(desk);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(errors))
        }
    }

    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.grpc.listen.parse().ok()
    }

    /// The store URL, defaulting to a SQLite file in the data directory.
    pub fn store_url(&self) -> String {
        if self.store.url.is_empty() {
            format!(
                "sqlite://{}",
                self.data_dir.join("centralino.sqlite").display()
            )
        } else {
            self.store.url.clone()
        }
    }

    pub fn grpc_settings(&self) -> centralino_server::GrpcSettings {
        centralino_server::GrpcSettings {
            listen: self
                .listen_addr()
                .unwrap_or_else(|| centralino_server::GrpcSettings::default().listen),
            max_message_bytes: self.grpc.max_message_bytes,
            request_timeout: Duration::from_secs(self.grpc.request_timeout_secs),
            tls: (!self.grpc.tls_cert.is_empty()).then(|| centralino_server::TlsFiles {
                cert: self.grpc.tls_cert.clone().into(),
                key: self.grpc.tls_key.clone().into(),
            }),
        }
    }

    /// Every environment variable name this configuration reads.
    pub fn env_names() -> Vec<String> {
        let value = toml::Value::try_from(Config::default()).unwrap_or(toml::Value::Boolean(false));
        let mut names = vec![
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
            "CENTRALINO_CONFIG".to_owned(),
        ];
        if let toml::Value::Table(t) = value {
            for (k, v) in t {
                match v {
                    toml::Value::Table(inner) => {
                        for key in inner.keys() {
                            names.push(format!(
                                "CENTRALINO_{}__{}",
                                k.to_ascii_uppercase(),
                                key.to_ascii_uppercase()
                            ));
                        }
                    }
                    _ => names.push(format!("CENTRALINO_{}", k.to_ascii_uppercase())),
                }
            }
        }
        names.sort();
        names
    }
}

fn set_path(root: &mut toml::Table, path: &[String], value: String) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            root.insert(last.clone(), toml::Value::String(value));
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = root
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{first} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_embedded() {
        let c = Config::load(None, Vec::new()).expect("defaults load");
        assert_eq!(c.bus.url, "memory");
        assert_eq!(c.store_url(), "sqlite://data/centralino.sqlite");
        assert_eq!(
            c.listen_addr(),
            Some("127.0.0.1:50051".parse().expect("addr"))
        );
    }

    #[test]
    fn file_then_env_overrides() {
        let dir = std::env::temp_dir().join(centralino_test_support::unique("cfg"));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[bus]\nurl = \"amqp://guest:guest@rabbit:5672/%2f\"\ndelivery_limit = 9\n[grpc]\nlisten = \"0.0.0.0:6000\"\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("CENTRALINO_BUS__DELIVERY_LIMIT", "7"),
                ("CENTRALINO_STORE__URL", "postgres://pg/centralino"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
                ("CENTRALINO_TEST_AMQP_URL", "ignored"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.bus.url, "amqp://guest:guest@rabbit:5672/%2f");
        assert_eq!(c.bus.delivery_limit, 7, "env beats file");
        assert_eq!(c.grpc.listen, "0.0.0.0:6000");
        assert_eq!(c.store.url, "postgres://pg/centralino");
        assert_eq!(c.telemetry.otlp_endpoint, "http://otel:4317");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = Config::load(
            None,
            env(&[
                ("CENTRALINO_BUS__URL", "redis://x"),
                ("CENTRALINO_GRPC__LISTEN", "nowhere"),
                ("CENTRALINO_AUTH__SECRET", "short"),
                ("CENTRALINO_IDENTITY__DEFAULT_REGION", "ZZ"),
                ("CENTRALINO_IDENTITY__SUPPRESSION_SECRET", "short"),
            ]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        for key in [
            "bus.url",
            "grpc.listen",
            "auth.secret",
            "identity.default_region",
            "identity.suppression_secret",
        ] {
            assert!(text.contains(key), "{key} missing from {text}");
        }
        let err = Config::load(None, env(&[("CENTRALINO_BUS__DELIVERY_LIMIT", "many")]))
            .expect_err("not a number");
        assert!(err.to_string().contains("not a valid number"), "{err}");
        let err = Config::load(None, env(&[("CENTRALINO_BUS__URLL", "memory")])).expect_err("typo");
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn env_names_cover_the_sections() {
        let names = Config::env_names();
        for n in [
            "CENTRALINO_BUS__URL",
            "CENTRALINO_STORE__URL",
            "CENTRALINO_DATA_DIR",
            "CENTRALINO_AUTH__SECRET",
            "CENTRALINO_SMS__DEFAULT_QUEUE",
            "CENTRALINO_VOICE__LISTEN",
            "CENTRALINO_VOICE__MEDIA_IP",
        ] {
            assert!(names.contains(&n.to_owned()), "{n}");
        }
    }
}
