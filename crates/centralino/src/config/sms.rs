//! The SMS adapter's section (`[sms]`): our numbers and their queues, the
//! SMSC over SMPP, the provider's webhooks and REST API, keyword replies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{IdentityConfig, number};

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
