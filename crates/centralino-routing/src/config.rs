//! Queue, agent and engine configuration, validated before the engine sees it.

use std::collections::BTreeSet;

use centralino_domain::{Channel, DomainError};

/// Lowest and highest skill proficiency.
pub const MIN_LEVEL: u8 = 1;
pub const MAX_LEVEL: u8 = 5;
/// Limits that keep one bad configuration from slowing every decision.
pub const MAX_SKILLS_PER_QUEUE: usize = 32;
pub const MAX_SKILLS_PER_AGENT: usize = 200;
pub const MAX_STEPS: usize = 16;
pub const MAX_CAPACITY: u16 = 100;
const MAX_BASE_PRIORITY: i32 = 1_000_000;
const MAX_AGING_PER_S: f64 = 1_000.0;
/// Longest duration any setting may name (30 days): keeps deadline arithmetic far from overflow.
pub const MAX_DURATION_MS: u64 = 30 * 24 * 3_600_000;

fn validate_duration(field: &'static str, ms: u64) -> Result<(), DomainError> {
    if ms > MAX_DURATION_MS {
        return Err(DomainError::invalid(field, "must be at most 30 days"));
    }
    Ok(())
}

/// Why a name (queue, agent, skill) was refused.
pub type NameError = DomainError;

/// Checks a queue, agent or skill name: 1–64 characters of `A–Z a–z 0–9 . _ - @`.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(DomainError::Missing { field });
    }
    if name.len() > 64 {
        return Err(DomainError::invalid(field, "is longer than 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
    {
        return Err(DomainError::invalid(
            field,
            "may contain only letters, digits, '.', '_', '-' and '@'",
        ));
    }
    Ok(())
}

/// One value per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelMap<T>(pub [T; Channel::COUNT]);

impl<T: Copy> ChannelMap<T> {
    pub fn get(&self, c: Channel) -> T {
        self.0[index(c)]
    }
    pub fn set(&mut self, c: Channel, v: T) {
        self.0[index(c)] = v;
    }
    /// The same value on every channel.
    pub fn all(v: T) -> Self {
        Self([v; Channel::COUNT])
    }
}

/// Dense index of a channel (the order of [`Channel::ALL`]).
pub(crate) fn index(c: Channel) -> usize {
    match c {
        Channel::Voice => 0,
        Channel::Email => 1,
        Channel::Sms => 2,
        Channel::Desk => 3,
        Channel::Chat => 4,
        Channel::Task => 5,
    }
}

/// Engine-wide rules.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// How long an offer waits for accept or reject, per channel.
    pub offer_timeout_ms: ChannelMap<u64>,
    /// Wrap-up after completing an interaction, per channel (an agent may end it early).
    pub wrap_up_ms: ChannelMap<u64>,
    /// Channels that, while an agent holds (or is offered, or wraps up) one of
    /// them, block every other offer to that agent.
    pub exclusive: ChannelMap<bool>,
    /// How long an agent who rejected (or let expire) an offer is kept away from it.
    pub exclusion_ms: u64,
    /// Consecutive expired offers that put an agent in not-ready (`missed-offers`). 0 = never.
    pub max_missed_offers: u32,
    /// Handle time assumed for estimates until a queue has its own samples.
    pub default_handle_ms: ChannelMap<u64>,
    /// Effective priority gained per second of waiting, the same in every queue:
    /// an interaction can then only be overtaken by work that arrived at most
    /// (priority difference ÷ aging) seconds after it, so nothing starves, at
    /// any load. Must be between 0.001 and 1000.
    pub aging_per_s: f64,
}

impl EngineSettings {
    pub fn validate(&self) -> Result<(), DomainError> {
        if !(self.aging_per_s.is_finite()
            && self.aging_per_s >= 0.001
            && self.aging_per_s <= MAX_AGING_PER_S)
        {
            return Err(DomainError::invalid(
                "routing.aging_per_s",
                "must be between 0.001 and 1000 (aging keeps low-priority work from starving)",
            ));
        }
        for c in Channel::ALL {
            validate_duration("routing.offer_timeout_ms", self.offer_timeout_ms.get(c))?;
            validate_duration("routing.wrap_up_ms", self.wrap_up_ms.get(c))?;
            validate_duration("routing.default_handle_ms", self.default_handle_ms.get(c))?;
        }
        validate_duration("routing.exclusion_ms", self.exclusion_ms)?;
        Ok(())
    }
}

impl Default for EngineSettings {
    fn default() -> Self {
        // voice, email, sms, desk, chat, task
        Self {
            offer_timeout_ms: ChannelMap([20_000, 60_000, 60_000, 30_000, 30_000, 60_000]),
            wrap_up_ms: ChannelMap([10_000, 0, 0, 5_000, 0, 0]),
            exclusive: ChannelMap([true, false, false, true, false, false]),
            exclusion_ms: 60_000,
            max_missed_offers: 3,
            default_handle_ms: ChannelMap([180_000, 600_000, 300_000, 300_000, 300_000, 600_000]),
            aging_per_s: 1.0,
        }
    }
}

/// How a queue picks among several ready agents for a new interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// The agent whose last offer or completion is oldest.
    #[default]
    LongestIdle,
    /// The agent with the lowest load on the interaction's channel (load / capacity), then longest idle.
    LeastOccupied,
    /// The next eligible agent after the last one this queue picked.
    RoundRobin,
    /// The highest sum of levels on the queue's skills, then longest idle.
    BestProficiency,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::LongestIdle,
        Strategy::LeastOccupied,
        Strategy::RoundRobin,
        Strategy::BestProficiency,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest-idle",
            Strategy::LeastOccupied => "least-occupied",
            Strategy::RoundRobin => "round-robin",
            Strategy::BestProficiency => "best-proficiency",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid(
                    "strategy",
                    "must be longest-idle, least-occupied, round-robin or best-proficiency",
                )
            })
    }
}

/// A skill a queue requires, at a minimum level.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SkillRequirement {
    pub skill: String,
    pub min_level: u8,
}

impl SkillRequirement {
    pub fn new(skill: impl Into<String>, min_level: u8) -> Self {
        Self {
            skill: skill.into(),
            min_level,
        }
    }
}

/// Service-level target: `target_pct` % answered within `threshold_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServiceLevel {
    pub target_pct: f64,
    pub threshold_ms: u64,
}

impl Default for ServiceLevel {
    fn default() -> Self {
        Self {
            target_pct: 80.0,
            threshold_ms: 20_000,
        }
    }
}

/// What happens to an interaction still waiting `after_ms` after it entered the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub after_ms: u64,
    pub action: StepAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepAction {
    /// Replace the skill requirements (usually fewer skills or lower levels).
    Relax(Vec<SkillRequirement>),
    /// Move to another queue, keeping the original arrival time for priority.
    Overflow(String),
    /// Leave the queue with this outcome (e.g. `voicemail`, `callback`, `close`);
    /// the adapter carries it out.
    Close(String),
}

/// One queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub name: String,
    pub channels: Vec<Channel>,
    pub skills: Vec<SkillRequirement>,
    /// Added to every interaction's own priority (0–100); effective priority
    /// then grows by the engine's aging rate per second waited.
    pub base_priority: i32,
    pub strategy: Strategy,
    pub service_level: ServiceLevel,
    /// Routing steps, by ascending `after_ms`.
    pub steps: Vec<Step>,
    /// How long an interaction that names a preferred agent (the customer's last
    /// agent) waits for that agent before any other may take it. 0 = ignore preferences.
    pub preferred_agent_ms: u64,
}

impl QueueConfig {
    /// A queue on `channels` with no skills, priority 0, aging 1/s, longest-idle.
    pub fn new(name: impl Into<String>, channels: &[Channel]) -> Self {
        Self {
            name: name.into(),
            channels: channels.to_vec(),
            skills: Vec::new(),
            base_priority: 0,
            strategy: Strategy::LongestIdle,
            service_level: ServiceLevel::default(),
            steps: Vec::new(),
            preferred_agent_ms: 0,
        }
    }

    /// Refuses a configuration the engine cannot honour, naming the field.
    pub fn validate(&self) -> Result<(), DomainError> {
        validate_name("queue.name", &self.name)?;
        if self.channels.is_empty() {
            return Err(DomainError::Missing {
                field: "queue.channels",
            });
        }
        let set: BTreeSet<_> = self.channels.iter().collect();
        if set.len() != self.channels.len() {
            return Err(DomainError::invalid(
                "queue.channels",
                "lists a channel twice",
            ));
        }
        validate_requirements("queue.skills", &self.skills)?;
        if self.base_priority.abs() > MAX_BASE_PRIORITY {
            return Err(DomainError::invalid(
                "queue.base_priority",
                "must be between -1000000 and 1000000",
            ));
        }
        let sl = self.service_level;
        if !(sl.target_pct.is_finite() && (0.0..=100.0).contains(&sl.target_pct)) {
            return Err(DomainError::invalid(
                "queue.service_level.target_pct",
                "must be between 0 and 100",
            ));
        }
        if self.steps.len() > MAX_STEPS {
            return Err(DomainError::invalid(
                "queue.steps",
                format!("at most {MAX_STEPS} steps"),
            ));
        }
        validate_duration("queue.preferred_agent_ms", self.preferred_agent_ms)?;
        let mut last = 0;
        for (i, step) in self.steps.iter().enumerate() {
            if step.after_ms == 0 || (i > 0 && step.after_ms <= last) {
                return Err(DomainError::invalid(
                    "queue.steps.after_ms",
                    "must be positive and strictly increasing",
                ));
            }
            validate_duration("queue.steps.after_ms", step.after_ms)?;
            last = step.after_ms;
            match &step.action {
                StepAction::Relax(reqs) => validate_requirements("queue.steps.relax", reqs)?,
                StepAction::Overflow(target) => {
                    validate_name("queue.steps.overflow", target)?;
                    if *target == self.name {
                        return Err(DomainError::invalid(
                            "queue.steps.overflow",
                            "cannot overflow a queue into itself",
                        ));
                    }
                }
                StepAction::Close(outcome) => {
                    validate_name("queue.steps.close", outcome)?;
                    if i + 1 != self.steps.len() {
                        return Err(DomainError::invalid(
                            "queue.steps.close",
                            "a close step must be the last step",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn validate_requirements(
    field: &'static str,
    reqs: &[SkillRequirement],
) -> Result<(), DomainError> {
    if reqs.len() > MAX_SKILLS_PER_QUEUE {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_SKILLS_PER_QUEUE} skills"),
        ));
    }
    let mut seen = BTreeSet::new();
    for r in reqs {
        validate_name(field, &r.skill)?;
        if !(MIN_LEVEL..=MAX_LEVEL).contains(&r.min_level) {
            return Err(DomainError::invalid(field, "levels are 1 to 5"));
        }
        if !seen.insert(r.skill.as_str()) {
            return Err(DomainError::invalid(field, "lists a skill twice"));
        }
    }
    Ok(())
}

/// One agent: skills with levels 1–5 and capacity per channel (0 = never offered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub name: String,
    pub skills: Vec<(String, u8)>,
    pub capacity: ChannelMap<u16>,
}

impl AgentConfig {
    /// An agent with the usual capacity: voice 1, email 5, SMS 10, desk 1, chat 3, task 3.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            skills: Vec::new(),
            capacity: ChannelMap([1, 5, 10, 1, 3, 3]),
        }
    }

    pub fn skill(mut self, skill: impl Into<String>, level: u8) -> Self {
        self.skills.push((skill.into(), level));
        self
    }

    pub fn validate(&self) -> Result<(), DomainError> {
        validate_name("agent.name", &self.name)?;
        if self.skills.len() > MAX_SKILLS_PER_AGENT {
            return Err(DomainError::invalid(
                "agent.skills",
                format!("at most {MAX_SKILLS_PER_AGENT} skills"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (skill, level) in &self.skills {
            validate_name("agent.skills", skill)?;
            if !(MIN_LEVEL..=MAX_LEVEL).contains(level) {
                return Err(DomainError::invalid("agent.skills", "levels are 1 to 5"));
            }
            if !seen.insert(skill.as_str()) {
                return Err(DomainError::invalid("agent.skills", "lists a skill twice"));
            }
        }
        if self.capacity.0.iter().any(|&c| c > MAX_CAPACITY) {
            return Err(DomainError::invalid(
                "agent.capacity",
                format!("at most {MAX_CAPACITY} per channel"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("f", "support.it-2@x").is_ok());
        assert_eq!(validate_name("f", "").unwrap_err().field(), "f");
        assert!(validate_name("f", "a b").is_err());
        assert!(validate_name("f", &"a".repeat(65)).is_err());
    }

    #[test]
    fn queue_validation_names_the_field() {
        let ok = QueueConfig::new("support", &[Channel::Voice]);
        assert!(ok.validate().is_ok());
        let field = |f: fn(&mut QueueConfig)| {
            let mut q = ok.clone();
            f(&mut q);
            q.validate().unwrap_err().field()
        };
        assert_eq!(field(|q| q.channels.clear()), "queue.channels");
        assert_eq!(field(|q| q.channels.push(Channel::Voice)), "queue.channels");
        assert_eq!(field(|q| q.base_priority = i32::MAX), "queue.base_priority");
        let mut settings = EngineSettings::default();
        assert!(settings.validate().is_ok());
        settings.aging_per_s = 0.0;
        assert_eq!(
            settings.validate().unwrap_err().field(),
            "routing.aging_per_s"
        );
        settings.aging_per_s = f64::NAN;
        assert!(settings.validate().is_err());
        let settings = EngineSettings {
            exclusion_ms: u64::MAX,
            ..EngineSettings::default()
        };
        assert_eq!(
            settings.validate().unwrap_err().field(),
            "routing.exclusion_ms"
        );
        let mut settings = EngineSettings::default();
        settings
            .offer_timeout_ms
            .set(Channel::Sms, MAX_DURATION_MS + 1);
        assert_eq!(
            settings.validate().unwrap_err().field(),
            "routing.offer_timeout_ms"
        );
        assert_eq!(
            field(|q| q.preferred_agent_ms = u64::MAX),
            "queue.preferred_agent_ms"
        );
        assert_eq!(
            field(|q| {
                q.steps = vec![Step {
                    after_ms: u64::MAX,
                    action: StepAction::Relax(vec![]),
                }]
            }),
            "queue.steps.after_ms"
        );
        assert_eq!(
            field(|q| q.skills.push(SkillRequirement::new("it", 6))),
            "queue.skills"
        );
        assert_eq!(
            field(|q| {
                q.steps = vec![
                    Step {
                        after_ms: 5_000,
                        action: StepAction::Relax(vec![]),
                    },
                    Step {
                        after_ms: 5_000,
                        action: StepAction::Relax(vec![]),
                    },
                ]
            }),
            "queue.steps.after_ms"
        );
        assert_eq!(
            field(|q| {
                q.steps = vec![Step {
                    after_ms: 5_000,
                    action: StepAction::Overflow("support".into()),
                }]
            }),
            "queue.steps.overflow"
        );
        assert_eq!(
            field(|q| {
                q.steps = vec![
                    Step {
                        after_ms: 5_000,
                        action: StepAction::Close("voicemail".into()),
                    },
                    Step {
                        after_ms: 6_000,
                        action: StepAction::Relax(vec![]),
                    },
                ]
            }),
            "queue.steps.close"
        );
    }

    #[test]
    fn agent_validation_names_the_field() {
        assert!(AgentConfig::new("mario").skill("it", 5).validate().is_ok());
        assert_eq!(
            AgentConfig::new("mario")
                .skill("it", 0)
                .validate()
                .unwrap_err()
                .field(),
            "agent.skills"
        );
        assert_eq!(
            AgentConfig::new("mario")
                .skill("it", 1)
                .skill("it", 2)
                .validate()
                .unwrap_err()
                .field(),
            "agent.skills"
        );
        let mut a = AgentConfig::new("mario");
        a.capacity.set(Channel::Email, 1000);
        assert_eq!(a.validate().unwrap_err().field(), "agent.capacity");
        assert_eq!("round-robin".parse::<Strategy>(), Ok(Strategy::RoundRobin));
        assert!("random".parse::<Strategy>().is_err());
    }
}
