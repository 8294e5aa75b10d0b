//! Outbound through a provider's REST API in Twilio's shape:
//! `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with
//! HTTP basic auth (account SID, auth token) and the form fields `To`, `From`,
//! `Body` and optionally `StatusCallback`; the answer's `sid` is the id its
//! status callbacks name. 4xx answers are refusals of the message (except 429
//! and 401/403, which are about us and may heal); 5xx and connection errors are
//! temporary.

use std::time::Duration;

use crate::smpp::SendError;

#[derive(Debug, Clone)]
pub struct RestConfig {
    /// The API's base, e.g. `https://api.twilio.com`.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// Where the provider sends status callbacks (our webhook's `/status`).
    pub status_callback: Option<String>,
    pub timeout: Duration,
}

impl RestConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.base_url.starts_with("https://") || self.base_url.starts_with("http://")) {
            return Err("sms.rest.base_url must be an http(s) URL".into());
        }
        if self.account_sid.is_empty()
            || !self.account_sid.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err("sms.rest.account_sid must be letters and digits".into());
        }
        if self.auth_token.is_empty() {
            return Err("sms.rest.auth_token is required".into());
        }
        Ok(())
    }
}

/// A client of the provider's API.
#[derive(Clone)]
pub struct Rest {
    config: RestConfig,
    http: reqwest::Client,
}

#[derive(serde::Deserialize)]
struct Created {
    sid: String,
}

#[derive(serde::Deserialize, Default)]
struct Refusal {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    message: Option<String>,
}

impl Rest {
    pub fn new(config: RestConfig) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        if let Ok(tls) = tls {
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder.build().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "sms: REST client settings refused; using the defaults");
            reqwest::Client::new()
        });
        Self { config, http }
    }

    /// Sends `body` from `from` to `to`; the provider's id of the message
    /// (empty when its answer had none).
    pub async fn send(&self, from: &str, to: &str, body: &str) -> Result<String, SendError> {
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.base_url.trim_end_matches('/'),
            self.config.account_sid
        );
        let mut form = vec![("To", to), ("From", from), ("Body", body)];
        if let Some(cb) = &self.config.status_callback {
            form.push(("StatusCallback", cb));
        }
        let response = self
            .http
            .post(url)
            .basic_auth(&self.config.account_sid, Some(&self.config.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::Unreachable(format!("provider: {}", e.without_url())))?;
        let status = response.status();
        if status.is_success() {
            // Accepted: never send it again, even if the answer is unreadable
            // (its status callbacks then cannot be matched).
            let sid = match response.json::<Created>().await {
                Ok(c) if !c.sid.is_empty() && c.sid.len() <= 64 => c.sid,
                _ => {
                    tracing::warn!("sms: the provider accepted a message without a usable sid");
                    String::new()
                }
            };
            return Ok(sid);
        }
        let refusal: Refusal = response.json().await.unwrap_or_default();
        let code = refusal.code.map(|c| c.to_string()).unwrap_or_default();
        // The provider's message may quote the number: keep its code only.
        let what = format!("HTTP {} code {}", status.as_u16(), code.trim_matches('"'));
        let _ = refusal.message;
        if status.is_client_error() && !matches!(status.as_u16(), 401 | 403 | 408 | 429) {
            Err(SendError::Refused(what))
        } else {
            Err(SendError::Unavailable(what))
        }
    }
}
