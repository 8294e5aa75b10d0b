//! The routing service's section (`[routing]`): aging, per-channel offer
//! timeouts and wrap-up, exclusive channels, the default queue.

use serde::{Deserialize, Serialize};

use super::number;

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
