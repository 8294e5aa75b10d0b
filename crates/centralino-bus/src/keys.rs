//! Every routing key on the bus, with the exchange it travels on. Services
//! name keys and binding patterns through here (a literal key in service
//! code fails the tidy test), so what a publisher writes and what a consumer
//! binds cannot drift apart.
//!
//! | key | exchange | payload |
//! |---|---|---|
//! | `interaction.<channel>.created` / `abandoned` / `message` / `message_status` / `ended` | events | `InteractionCreated`, `InteractionAbandoned`, `MessageRecorded`, `MessageStatusChanged`, `InteractionEnded` |
//! | `interaction.desk.<kind>` (`called`, `recalled`, `started`, `no_show`, `served`, `transferred`) | events | `DeskTicketEvent` |
//! | `routing.<channel>.<kind>` | events | `RoutingEvent` |
//! | `consent.<channel>.changed` | events | `ConsentChanged` |
//! | `customer.<kind>` (`merged`, `unmerged`, `erased`) | events | `CustomerChanged` |
//! | `command.refused` | events | `CommandRefused` |
//! | `<channel>.send` | commands | `SendMessage` |
//! | `history.record_consent` | commands | `RecordConsentRequest` |
//! | `routing.agent_not_reached` | commands | `AgentNotReached` |

use centralino_proto::v1;

use crate::Exchange;

/// A routing key and the exchange it is published on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub exchange: Exchange,
    pub name: String,
}

impl Key {
    /// An event key by name: for tests and tools; services use the functions below.
    pub fn event(name: impl Into<String>) -> Self {
        Self {
            exchange: Exchange::Events,
            name: name.into(),
        }
    }

    /// A command key by name: for tests and tools; services use the functions below.
    pub fn command(name: impl Into<String>) -> Self {
        Self {
            exchange: Exchange::Commands,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// The name keys use for a wire channel (`voice`, `email`, …; `unknown`
/// for a value no channel has).
pub fn channel_name(channel: i32) -> &'static str {
    centralino_proto::channel_from_i32(channel)
        .map(|c| c.as_str())
        .unwrap_or("unknown")
}

/// What an adapter says happened to one of its interactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Created,
    Abandoned,
    Message,
    MessageStatus,
    Ended,
}

impl Interaction {
    fn as_str(self) -> &'static str {
        match self {
            Interaction::Created => "created",
            Interaction::Abandoned => "abandoned",
            Interaction::Message => "message",
            Interaction::MessageStatus => "message_status",
            Interaction::Ended => "ended",
        }
    }
}

/// `interaction.<channel>.<what>` (channel as on the wire).
pub fn interaction(channel: v1::Channel, what: Interaction) -> Key {
    Key::event(format!(
        "interaction.{}.{}",
        channel_name(channel as i32),
        what.as_str()
    ))
}

/// `interaction.desk.<kind>`: a walk-in ticket's step.
pub fn desk(kind: v1::desk_ticket_event::Kind) -> Key {
    use v1::desk_ticket_event::Kind;
    let kind = match kind {
        Kind::Called => "called",
        Kind::Recalled => "recalled",
        Kind::Started => "started",
        Kind::NoShow => "no_show",
        Kind::Served => "served",
        Kind::Transferred | Kind::Unspecified => "transferred",
    };
    Key::event(format!("interaction.desk.{kind}"))
}

/// `routing.<channel>.<kind>`.
pub fn routing(channel: i32, kind: i32) -> Key {
    use v1::routing_event::Kind;
    let kind = routing_kind_name(Kind::try_from(kind).unwrap_or(Kind::Unspecified));
    Key::event(format!("routing.{}.{kind}", channel_name(channel)))
}

/// The name of a routing event's kind, as its key (and history's steps) say it.
pub fn routing_kind_name(kind: v1::routing_event::Kind) -> &'static str {
    use v1::routing_event::Kind;
    match kind {
        Kind::Queued => "queued",
        Kind::Offered => "offered",
        Kind::Assigned => "assigned",
        Kind::Requeued => "requeued",
        Kind::Overflowed => "overflowed",
        Kind::Closed => "closed",
        Kind::Abandoned => "abandoned",
        Kind::Completed => "completed",
        Kind::Position => "position",
        Kind::Unspecified => "unspecified",
    }
}

/// `consent.<channel>.changed`, for a channel named as keys name it.
pub fn consent_changed(channel: &str) -> Key {
    Key::event(format!("consent.{channel}.changed"))
}

/// `customer.<kind>`.
pub fn customer(kind: v1::customer_changed::Kind) -> Key {
    use v1::customer_changed::Kind;
    let kind = match kind {
        Kind::Merged => "merged",
        Kind::Unmerged => "unmerged",
        Kind::Erased | Kind::Unspecified => "erased",
    };
    Key::event(format!("customer.{kind}"))
}

/// `command.refused`: the answer to a command that was not carried out.
pub fn command_refused() -> Key {
    Key::event(crate::COMMAND_REFUSED.to_owned())
}

/// How the reason of an `interaction.task.abandoned` starts when the task's
/// creator closed it (the outcome follows): routing then counts it closed,
/// not abandoned.
pub const TASK_CLOSED: &str = "closed: ";

/// `<channel>.send`: a message for an adapter to send.
pub fn send(channel: v1::Channel) -> Key {
    Key::command(format!("{}.send", channel_name(channel as i32)))
}

/// `history.record_consent`.
pub fn record_consent() -> Key {
    Key::command("history.record_consent".to_owned())
}

/// `routing.agent_not_reached`.
pub fn agent_not_reached() -> Key {
    Key::command("routing.agent_not_reached".to_owned())
}

/// Binding patterns, for consumers.
pub mod pattern {
    use super::{Interaction, Key, channel_name};
    use centralino_proto::v1;

    /// Every interaction event (`interaction.#`).
    pub fn all_interactions() -> Key {
        Key::event("interaction.#".to_owned())
    }

    /// Every routing event (`routing.#`).
    pub fn all_routing() -> Key {
        Key::event("routing.#".to_owned())
    }

    /// `interaction.*.<what>`: one kind of event from every channel.
    pub fn interactions(what: Interaction) -> Key {
        Key::event(format!("interaction.*.{}", what.as_str()))
    }

    /// `routing.<channel>.*`: routing's news about one channel.
    pub fn routing_of(channel: v1::Channel) -> Key {
        Key::event(format!("routing.{}.*", channel_name(channel as i32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_what_the_topology_documents_and_patterns_match_them() {
        use v1::Channel as C;
        assert_eq!(
            interaction(C::Email, Interaction::MessageStatus).name,
            "interaction.email.message_status"
        );
        assert_eq!(
            desk(v1::desk_ticket_event::Kind::NoShow).name,
            "interaction.desk.no_show"
        );
        let r = routing(C::Voice as i32, v1::routing_event::Kind::Assigned as i32);
        assert_eq!(
            (r.exchange, r.name.as_str()),
            (Exchange::Events, "routing.voice.assigned")
        );
        assert_eq!(routing(99, 99).name, "routing.unknown.unspecified");
        assert_eq!(send(C::Sms).exchange, Exchange::Commands);
        assert_eq!(send(C::Sms).name, "sms.send");
        assert_eq!(record_consent().name, "history.record_consent");
        assert_eq!(agent_not_reached().exchange, Exchange::Commands);
        assert_eq!(consent_changed("sms").name, "consent.sms.changed");
        assert_eq!(
            customer(v1::customer_changed::Kind::Merged).name,
            "customer.merged"
        );
        let m = |p: Key, k: Key| crate::topic_matches(&p.name, &k.name);
        assert!(m(
            pattern::interactions(Interaction::Created),
            interaction(C::Desk, Interaction::Created)
        ));
        assert!(m(
            pattern::all_interactions(),
            desk(v1::desk_ticket_event::Kind::Served)
        ));
        assert!(m(
            pattern::routing_of(C::Voice),
            routing(C::Voice as i32, v1::routing_event::Kind::Position as i32)
        ));
        assert!(!m(
            pattern::routing_of(C::Voice),
            routing(C::Sms as i32, v1::routing_event::Kind::Position as i32)
        ));
    }
}
