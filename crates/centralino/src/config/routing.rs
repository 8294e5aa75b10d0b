//! The routing service's section (`[routing]`): aging, per-channel offer
//! timeouts and wrap-up, exclusive channels, the default queue, and the
//! skills, queues and agents the file defines (`[[routing.skills]]`,
//! `[[routing.queues]]`, `[[routing.agents]]`, owned by the file: see
//! `centralino_router::FileDefinitions`).

use std::collections::BTreeMap;

use centralino_proto::v1;
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
    /// Skills the file defines.
    pub skills: Vec<SkillSection>,
    /// Queues the file defines.
    pub queues: Vec<QueueSection>,
    /// Agents the file defines.
    pub agents: Vec<AgentSection>,
}

/// A skill (`[[routing.skills]]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SkillSection {
    pub name: String,
    pub description: String,
}

/// A queue (`[[routing.queues]]`); skills are `{ name = level }`, levels 1–5.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSection {
    pub name: String,
    /// voice, email, sms, desk, chat, task.
    pub channels: Vec<String>,
    pub skills: BTreeMap<String, u32>,
    /// Added to every interaction's priority in this queue.
    pub priority: i32,
    /// longest-idle (default), least-occupied, round-robin or best-proficiency.
    pub strategy: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_level_target_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_level_threshold_ms: Option<u64>,
    /// How long work naming a preferred agent waits for them (0: not at all).
    pub preferred_agent_ms: u64,
    /// `[[routing.queues.steps]]`, in time order.
    pub steps: Vec<StepSection>,
}

/// A routing step: after `after_ms` in the queue, one of relax (new skill
/// requirements), overflow_to (a queue) or close_with (an outcome).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepSection {
    pub after_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relax: Option<BTreeMap<String, u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overflow_to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_with: Option<String>,
}

/// An agent (`[[routing.agents]]`): `name` is the login (their tokens'
/// subject); capacity is `{ channel = n }` (channels left out keep their
/// default).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    pub name: String,
    pub display_name: String,
    pub skills: BTreeMap<String, u32>,
    pub capacity: BTreeMap<String, u32>,
}

fn skill_levels(levels: &BTreeMap<String, u32>) -> Vec<v1::SkillLevel> {
    levels
        .iter()
        .map(|(skill, &level)| v1::SkillLevel {
            skill: skill.clone(),
            level,
        })
        .collect()
}

fn wire_channel(key: &str, name: &str, errors: &mut Vec<String>) -> i32 {
    match name.parse::<centralino_domain::Channel>() {
        Ok(c) => v1::Channel::from(c) as i32,
        Err(_) => {
            errors.push(format!(
                "{key}: unknown channel {name:?} ({})",
                centralino_domain::Channel::NAMES
            ));
            0
        }
    }
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
            skills: Vec::new(),
            queues: Vec::new(),
            agents: Vec::new(),
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
        let definitions = self.definitions(&mut errors);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(centralino_router::RouterConfig {
            engine,
            session_grace_ms: self.session_grace_ms,
            position_interval_ms: self.position_interval_ms,
            default_queue: (!self.default_queue.is_empty()).then(|| self.default_queue.clone()),
            definitions,
            ..Default::default()
        })
    }

    /// The file's skills, queues and agents in the API's types; what is
    /// wrong goes to `errors`, each naming its key.
    fn definitions(&self, errors: &mut Vec<String>) -> centralino_router::FileDefinitions {
        let before = errors.len();
        let skills = self
            .skills
            .iter()
            .map(|s| v1::Skill {
                name: s.name.clone(),
                description: s.description.clone(),
            })
            .collect();
        let queues = self
            .queues
            .iter()
            .map(|q| {
                let at = format!("routing.queues[{}]", q.name);
                let steps = q
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, step)| {
                        use v1::routing_step::Action;
                        let mut actions = Vec::new();
                        if let Some(r) = &step.relax {
                            actions.push(Action::Relax(v1::SkillSet {
                                skills: skill_levels(r),
                            }));
                        }
                        if let Some(q) = &step.overflow_to {
                            actions.push(Action::OverflowTo(q.clone()));
                        }
                        if let Some(o) = &step.close_with {
                            actions.push(Action::CloseWith(o.clone()));
                        }
                        if actions.len() != 1 {
                            errors.push(format!(
                                "{at}.steps[{}]: give exactly one of relax, overflow_to, close_with",
                                i + 1
                            ));
                        }
                        v1::RoutingStep {
                            after_ms: step.after_ms,
                            action: actions.into_iter().next(),
                        }
                    })
                    .collect();
                v1::QueueDefinition {
                    name: q.name.clone(),
                    channels: q
                        .channels
                        .iter()
                        .map(|c| wire_channel(&format!("{at}.channels"), c, errors))
                        .collect(),
                    skills: skill_levels(&q.skills),
                    base_priority: q.priority,
                    strategy: q.strategy.clone(),
                    service_level_target_pct: q.service_level_target_pct,
                    service_level_threshold_ms: q.service_level_threshold_ms,
                    steps,
                    preferred_agent_ms: q.preferred_agent_ms,
                }
            })
            .collect();
        let agents = self
            .agents
            .iter()
            .map(|a| {
                let at = format!("routing.agents[{}].capacity", a.name);
                v1::AgentDefinition {
                    name: a.name.clone(),
                    display_name: a.display_name.clone(),
                    skills: skill_levels(&a.skills),
                    capacity: a
                        .capacity
                        .iter()
                        .map(|(c, &capacity)| v1::ChannelCapacity {
                            channel: wire_channel(&at, c, errors),
                            capacity,
                        })
                        .collect(),
                }
            })
            .collect();
        let defs = centralino_router::FileDefinitions {
            skills,
            queues,
            agents,
        };
        // A channel or step already named wrong is not reported twice.
        if errors.len() == before {
            errors.extend(defs.validate());
        }
        defs
    }
}
