//! The sections every process shares: the bus (`[bus]`), the store
//! (`[store]`), token signing (`[auth]`), the gRPC server (`[grpc]`), logs and
//! traces (`[telemetry]`) and how customers are recognised (`[identity]`,
//! which also gives the history service its settings).

use serde::{Deserialize, Serialize};

use super::number;

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
    /// Origins (`https://desk.example.com`) a browser may call from besides
    /// the address it reached this server at (a proxy's public name).
    pub browser_origins: Vec<String>,
    /// Addresses of proxies in front whose `X-Forwarded-For` names the client
    /// (so logins are throttled per client, not per proxy).
    pub trusted_proxies: Vec<String>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            max_message_bytes: 4 * 1024 * 1024,
            request_timeout_secs: 30,
            tls_cert: String::new(),
            tls_key: String::new(),
            browser_origins: Vec::new(),
            trusted_proxies: Vec::new(),
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
