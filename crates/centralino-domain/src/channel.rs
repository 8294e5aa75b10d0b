//! Channels and directions.

use std::fmt;
use std::str::FromStr;

use crate::DomainError;

/// The channel an interaction arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Voice,
    Email,
    Sms,
    Desk,
    Chat,
    /// A work item an integrator creates (a callback request, a CRM task).
    Task,
}

impl Channel {
    /// How many channels there are.
    pub const COUNT: usize = 6;

    pub const ALL: [Channel; Self::COUNT] = [
        Channel::Voice,
        Channel::Email,
        Channel::Sms,
        Channel::Desk,
        Channel::Chat,
        Channel::Task,
    ];

    /// Every channel's name, comma-separated (for error messages).
    pub const NAMES: &'static str = "voice, email, sms, desk, chat, task";

    /// Lowercase name used in routing keys (`interaction.<channel>.<event>`) and config.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Desk => "desk",
            Channel::Chat => "chat",
            Channel::Task => "task",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                DomainError::invalid("channel", format!("must be one of {}", Channel::NAMES))
            })
    }
}

/// Who started the interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>(), Ok(c));
        }
        assert_eq!(" SMS ".parse::<Channel>(), Ok(Channel::Sms));
        assert!("fax".parse::<Channel>().is_err());
        let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.join(", "), Channel::NAMES);
    }
}
