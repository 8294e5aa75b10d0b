//! Routing definitions kept in the configuration file (`[[routing.skills]]`,
//! `[[routing.queues]]`, `[[routing.agents]]`), so ops can keep them in git.
//!
//! At every start the leader applies them in one transaction: what differs
//! from the stored definition is written (through the same validation as the
//! admin API), and a definition the file owned at the last start but no
//! longer lists is deleted. The file owns what it lists: the admin API
//! refuses to change or delete those (FAILED_PRECONDITION naming the file);
//! everything else stays the API's.

use centralino_proto::v1;

use crate::convert;

/// The definitions a configuration file gives, in the API's own types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileDefinitions {
    pub skills: Vec<v1::Skill>,
    pub queues: Vec<v1::QueueDefinition>,
    pub agents: Vec<v1::AgentDefinition>,
}

/// What kind of definition a name is (the ownership table's `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Skill,
    Queue,
    Agent,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Skill => "skill",
            Self::Queue => "queue",
            Self::Agent => "agent",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "skill" => Some(Self::Skill),
            "queue" => Some(Self::Queue),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }

    /// The configuration key its definitions are listed under.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::Skill => "routing.skills",
            Self::Queue => "routing.queues",
            Self::Agent => "routing.agents",
        }
    }

    /// Why the admin API may not change `name`.
    pub(crate) fn owned_by_file(self, name: &str) -> String {
        format!(
            "{} {name} is defined in the configuration file ([[{}]]): change it there and \
             restart routing",
            self.as_str(),
            self.key()
        )
    }
}

impl FileDefinitions {
    /// Every problem a definition has on its own, each naming its key
    /// (`routing.queues[sales]: queue.strategy: …`): names, levels, channels,
    /// strategies, steps, lengths, and names listed twice. Whether the skills
    /// they name exist is checked at start, against the file and the
    /// database together (a skill may come from the API).
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut twice = |kind: Kind, name: &str, errors: &mut Vec<String>| {
            if !seen.insert((kind, name.to_owned())) {
                errors.push(format!("{}[{name}]: listed twice", kind.key()));
            }
        };
        for (i, s) in self.skills.iter().enumerate() {
            let at = format!("routing.skills[{}]", label(&s.name, i));
            if let Err(e) = centralino_routing::validate_name("name", &s.name) {
                errors.push(format!("{at}: {e}"));
            }
            if s.description.chars().count() > 500 {
                errors.push(format!("{at}: description: at most 500 characters"));
            }
            twice(Kind::Skill, &s.name, &mut errors);
        }
        for (i, q) in self.queues.iter().enumerate() {
            if let Err(e) = convert::queue_config(q) {
                errors.push(format!("routing.queues[{}]: {e}", label(&q.name, i)));
            }
            twice(Kind::Queue, &q.name, &mut errors);
        }
        for (i, a) in self.agents.iter().enumerate() {
            if let Err(e) = convert::agent_config(a) {
                errors.push(format!("routing.agents[{}]: {e}", label(&a.name, i)));
            }
            twice(Kind::Agent, &a.name, &mut errors);
        }
        errors
    }

    /// How many definitions the file gives.
    pub fn len(&self) -> usize {
        self.skills.len() + self.queues.len() + self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A definition's name, or its position when it has none.
fn label(name: &str, index: usize) -> String {
    if name.is_empty() {
        format!("#{}", index + 1)
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str) -> v1::QueueDefinition {
        v1::QueueDefinition {
            name: name.into(),
            channels: vec![v1::Channel::Voice as i32],
            ..Default::default()
        }
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let defs = FileDefinitions {
            skills: vec![
                v1::Skill {
                    name: "it".into(),
                    description: String::new(),
                },
                v1::Skill {
                    name: "bad name".into(),
                    description: String::new(),
                },
                v1::Skill {
                    name: "it".into(),
                    description: String::new(),
                },
            ],
            queues: vec![
                queue("sales"),
                v1::QueueDefinition {
                    strategy: "fastest".into(),
                    ..queue("support")
                },
                v1::QueueDefinition {
                    channels: vec![],
                    ..queue("")
                },
            ],
            agents: vec![v1::AgentDefinition {
                name: "anna".into(),
                skills: vec![v1::SkillLevel {
                    skill: "it".into(),
                    level: 9,
                }],
                ..Default::default()
            }],
        };
        let errors = defs.validate();
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has("routing.skills[bad name]: name"), "{errors:?}");
        assert!(has("routing.skills[it]: listed twice"), "{errors:?}");
        assert!(has("routing.queues[support]: queue.strategy"), "{errors:?}");
        assert!(has("routing.queues[#3]"), "{errors:?}");
        assert!(has("routing.agents[anna]: agent.skills"), "{errors:?}");
        assert!(!has("routing.queues[sales]"), "{errors:?}");
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in [Kind::Skill, Kind::Queue, Kind::Agent] {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("other"), None);
    }
}
