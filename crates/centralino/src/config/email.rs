//! The email adapter's section (`[email]`): mailboxes to import over IMAP,
//! the SMTP server replies leave through, the acknowledgement template.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::number;

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
