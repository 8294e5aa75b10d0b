//! Wire definitions ↔ engine configuration, and engine views → wire messages.

use centralino_domain::{Channel, DomainError};
use centralino_proto::v1;
use centralino_routing::{
    AgentConfig, AgentStatus, AgentView, Presence, QueueConfig, QueueStats, ServiceLevel,
    SkillRequirement, Step, StepAction,
};

fn channel(raw: i32, field: &'static str) -> Result<Channel, DomainError> {
    centralino_proto::channel_from_i32(raw).map_err(|e| match e {
        DomainError::Missing { .. } => DomainError::Missing { field },
        DomainError::Invalid { reason, .. } => DomainError::Invalid { field, reason },
    })
}

fn level(raw: u32, field: &'static str) -> Result<u8, DomainError> {
    u8::try_from(raw)
        .ok()
        .filter(|l| (1..=5).contains(l))
        .ok_or_else(|| DomainError::invalid(field, "levels are 1 to 5"))
}

fn requirements(
    skills: &[v1::SkillLevel],
    field: &'static str,
) -> Result<Vec<SkillRequirement>, DomainError> {
    skills
        .iter()
        .map(|s| {
            Ok(SkillRequirement::new(
                s.skill.clone(),
                level(s.level, field)?,
            ))
        })
        .collect()
}

/// A queue definition from the wire, validated.
pub fn queue_config(d: &v1::QueueDefinition) -> Result<QueueConfig, DomainError> {
    let channels = d
        .channels
        .iter()
        .map(|&c| channel(c, "queue.channels"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut q = QueueConfig::new(d.name.clone(), &channels);
    q.skills = requirements(&d.skills, "queue.skills")?;
    q.base_priority = d.base_priority;
    if !d.strategy.is_empty() {
        q.strategy = d.strategy.parse().map_err(|_| {
            DomainError::invalid(
                "queue.strategy",
                "must be longest-idle, least-occupied, round-robin or best-proficiency",
            )
        })?;
    }
    let default = ServiceLevel::default();
    q.service_level = ServiceLevel {
        target_pct: d.service_level_target_pct.unwrap_or(default.target_pct),
        threshold_ms: d.service_level_threshold_ms.unwrap_or(default.threshold_ms),
    };
    q.steps = d
        .steps
        .iter()
        .map(|s| {
            let action = match &s.action {
                Some(v1::routing_step::Action::Relax(set)) => {
                    StepAction::Relax(requirements(&set.skills, "queue.steps.relax")?)
                }
                Some(v1::routing_step::Action::OverflowTo(q)) => StepAction::Overflow(q.clone()),
                Some(v1::routing_step::Action::CloseWith(o)) => StepAction::Close(o.clone()),
                None => {
                    return Err(DomainError::Missing {
                        field: "queue.steps.action",
                    });
                }
            };
            Ok(Step {
                after_ms: s.after_ms,
                action,
            })
        })
        .collect::<Result<_, _>>()?;
    q.preferred_agent_ms = d.preferred_agent_ms;
    q.validate()?;
    Ok(q)
}

/// The skills a queue definition names (base and relax steps).
pub fn queue_skills(q: &QueueConfig) -> impl Iterator<Item = &str> {
    q.skills.iter().map(|s| s.skill.as_str()).chain(
        q.steps
            .iter()
            .filter_map(|s| match &s.action {
                StepAction::Relax(r) => Some(r.iter().map(|s| s.skill.as_str())),
                _ => None,
            })
            .flatten(),
    )
}

/// An agent definition from the wire, validated.
pub fn agent_config(d: &v1::AgentDefinition) -> Result<AgentConfig, DomainError> {
    let mut a = AgentConfig::new(d.name.clone());
    if d.display_name.chars().count() > 128 {
        return Err(DomainError::invalid(
            "agent.display_name",
            "at most 128 characters",
        ));
    }
    for s in &d.skills {
        a.skills
            .push((s.skill.clone(), level(s.level, "agent.skills")?));
    }
    let mut seen = Vec::new();
    for c in &d.capacity {
        let ch = channel(c.channel, "agent.capacity")?;
        if seen.contains(&ch) {
            return Err(DomainError::invalid(
                "agent.capacity",
                "lists a channel twice",
            ));
        }
        seen.push(ch);
        let cap = u16::try_from(c.capacity)
            .map_err(|_| DomainError::invalid("agent.capacity", "at most 100 per channel"))?;
        a.capacity.set(ch, cap);
    }
    a.validate()?;
    Ok(a)
}

pub fn presence_from_wire(p: &v1::SetPresence) -> Result<Presence, DomainError> {
    match v1::AgentPresence::try_from(p.presence) {
        Ok(v1::AgentPresence::Offline) => Ok(Presence::Offline),
        Ok(v1::AgentPresence::Available) => Ok(Presence::Available),
        Ok(v1::AgentPresence::NotReady) => {
            if p.reason.is_empty() {
                return Err(DomainError::Missing { field: "reason" });
            }
            centralino_routing::validate_name("reason", &p.reason)?;
            Ok(Presence::NotReady(p.reason.clone()))
        }
        Ok(v1::AgentPresence::Unspecified) => Err(DomainError::Missing { field: "presence" }),
        Err(_) => Err(DomainError::invalid("presence", "unknown presence")),
    }
}

/// Stored form of a presence: (`offline` | `available` | `not-ready`, reason).
pub fn presence_to_row(p: &Presence) -> (&'static str, String) {
    match p {
        Presence::Offline => ("offline", String::new()),
        Presence::Available => ("available", String::new()),
        Presence::NotReady(r) => ("not-ready", r.clone()),
    }
}

pub fn presence_from_row(presence: &str, reason: &str) -> Presence {
    match presence {
        "available" => Presence::Available,
        "not-ready" => Presence::NotReady(reason.to_owned()),
        _ => Presence::Offline,
    }
}

fn wire_presence(p: &Presence) -> v1::AgentPresence {
    match p {
        Presence::Offline => v1::AgentPresence::Offline,
        Presence::Available => v1::AgentPresence::Available,
        Presence::NotReady(_) => v1::AgentPresence::NotReady,
    }
}

pub fn agent_status(v: &AgentView) -> v1::AgentStatus {
    let reason = match &v.status {
        AgentStatus::NotReady(r) => r.clone(),
        _ => String::new(),
    };
    v1::AgentStatus {
        agent: v.name.to_string(),
        presence: wire_presence(&v.presence) as i32,
        status: v.status.as_str().to_owned(),
        reason,
        load: Channel::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| v.capacity[*i] > 0 || v.load[*i] > 0)
            .map(|(i, c)| v1::ChannelLoad {
                channel: v1::Channel::from(*c) as i32,
                used: u32::from(v.load[i]),
                capacity: u32::from(v.capacity[i]),
            })
            .collect(),
    }
}

pub fn queue_figures(s: &QueueStats) -> v1::QueueFigures {
    v1::QueueFigures {
        queue: s.queue.to_string(),
        waiting: s.waiting,
        offered: s.offered,
        longest_wait_ms: s.longest_wait_ms,
        entered: s.entered,
        answered: s.answered,
        abandoned: s.abandoned,
        closed: s.closed,
        overflowed: s.overflowed,
        service_level_pct: s.service_level_pct,
        service_level_target_pct: s.service_level_target_pct,
        service_level_threshold_ms: s.service_level_threshold_ms,
        abandon_rate_pct: s.abandon_rate_pct,
        average_answer_ms: s.average_answer_ms,
        average_handle_ms: s.average_handle_ms,
        agents: Some(v1::AgentCounts {
            idle: s.agents.idle,
            busy: s.agents.busy,
            wrap_up: s.agents.wrap_up,
            not_ready: s.agents.not_ready,
            offline: s.agents.offline,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> v1::QueueDefinition {
        v1::QueueDefinition {
            name: "billing".into(),
            channels: vec![v1::Channel::Voice as i32],
            skills: vec![v1::SkillLevel {
                skill: "billing".into(),
                level: 3,
            }],
            strategy: "round-robin".into(),
            steps: vec![v1::RoutingStep {
                after_ms: 1000,
                action: Some(v1::routing_step::Action::CloseWith("voicemail".into())),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn queue_definitions_convert_and_name_bad_fields() {
        let q = queue_config(&def()).expect("valid");
        assert_eq!(q.strategy, centralino_routing::Strategy::RoundRobin);
        assert_eq!(q.service_level.threshold_ms, 20_000);
        let bad = |f: fn(&mut v1::QueueDefinition)| {
            let mut d = def();
            f(&mut d);
            queue_config(&d).expect_err("invalid").field()
        };
        assert_eq!(bad(|d| d.channels = vec![0]), "queue.channels");
        assert_eq!(bad(|d| d.channels = vec![42]), "queue.channels");
        assert_eq!(bad(|d| d.skills[0].level = 9), "queue.skills");
        assert_eq!(bad(|d| d.strategy = "random".into()), "queue.strategy");
        assert_eq!(bad(|d| d.steps[0].action = None), "queue.steps.action");
        assert_eq!(bad(|d| d.name = "a b".into()), "queue.name");
    }

    #[test]
    fn agent_definitions_convert_and_name_bad_fields() {
        let mut d = v1::AgentDefinition {
            name: "mario".into(),
            skills: vec![v1::SkillLevel {
                skill: "billing".into(),
                level: 5,
            }],
            capacity: vec![v1::ChannelCapacity {
                channel: v1::Channel::Email as i32,
                capacity: 2,
            }],
            ..Default::default()
        };
        let a = agent_config(&d).expect("valid");
        assert_eq!(a.capacity.get(Channel::Email), 2);
        assert_eq!(a.capacity.get(Channel::Voice), 1);
        d.capacity[0].capacity = 70_000;
        assert_eq!(agent_config(&d).expect_err("bad").field(), "agent.capacity");
        d.capacity[0].capacity = 1;
        d.skills[0].level = 0;
        assert_eq!(agent_config(&d).expect_err("bad").field(), "agent.skills");
        let p = v1::SetPresence {
            presence: v1::AgentPresence::NotReady as i32,
            reason: String::new(),
        };
        assert_eq!(presence_from_wire(&p).expect_err("bad").field(), "reason");
    }
}
