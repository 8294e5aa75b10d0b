//! The typed configuration: a TOML file overlaid with `CENTRALINO_*` environment
//! variables (`CENTRALINO_BUS__URL` sets `bus.url`), validated before anything starts.
//! This module never reads the environment itself: `main` passes the variables in.
//!
//! Here: [`Config`] (every section), [`Config::load`] (file, then environment),
//! the validation entry and [`ConfigError`]. Each section, with what turns it
//! into its service's settings, is in its own file: `platform` (bus, store,
//! auth, gRPC, telemetry, identity), `routing`, `email`, `sms`, `desk`,
//! `voice`. Grammars that belong to a domain are parsed by its crate:
//! IVR actions by `centralino-telephony`, desk hours by `centralino-ticketing`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

mod desk;
mod email;
mod platform;
mod routing;
mod sms;
mod voice;

pub use desk::{DeskSection, DeskServiceSection, DeskSiteSection};
pub use email::{EmailSection, MailboxSection, SmtpSection};
pub use platform::{
    AuthConfig, BusConfig, GrpcConfig, IdentityConfig, StoreConfig, TelemetryConfig,
};
pub use routing::{AgentSection, QueueSection, RoutingConfig, SkillSection, StepSection};
pub use sms::{SmppSection, SmsNumberSection, SmsRestSection, SmsSection, SmsWebhookSection};
pub use voice::{
    VoiceFlowSection, VoiceHoldSection, VoiceMenuSection, VoiceNumberSection, VoiceSection,
};

/// Environment variables that configure the test suite, the loader or the
/// operator's commands (`--addr`, `--token`), not a service.
const NOT_CONFIG: &[&str] = &[
    "CENTRALINO_CONFIG",
    "CENTRALINO_BLESS",
    "CENTRALINO_ADDR",
    "CENTRALINO_TOKEN",
];

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

/// Why the configuration was refused; every line names a key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// The built-in demo configuration (`config/demo.toml`): what `centralino up`
/// runs when no configuration file is given.
pub const DEMO: &str = include_str!("demo.toml");

impl Config {
    /// Reads `file` (if any), applies `env` overrides and validates.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let root = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?
            }
            None => toml::Table::new(),
        };
        Self::overlay(root, env)
    }

    /// The built-in demo ([`DEMO`]) with `env` overrides, validated.
    pub fn load_demo(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let root = DEMO
            .parse::<toml::Table>()
            .map_err(|e| ConfigError(vec![format!("built-in demo: {e}")]))?;
        Self::overlay(root, env)
    }

    fn overlay(
        mut root: toml::Table,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
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
        for origin in &self.grpc.browser_origins {
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.contains('/')) {
                errors.push(format!(
                    "grpc.browser_origins: {origin:?} is not an origin like https://desk.example.com"
                ));
            }
        }
        for proxy in &self.grpc.trusted_proxies {
            if proxy.parse::<std::net::IpAddr>().is_err() {
                errors.push(format!(
                    "grpc.trusted_proxies: {proxy:?} is not an IP address like 10.0.0.2"
                ));
            }
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
