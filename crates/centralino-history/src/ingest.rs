//! Bus events as history sees them, and how each one folds into the stored
//! interaction and message rows.
//!
//! Events may arrive in any order (a routing step before the creation, a
//! delivery receipt before its message). The fold is built so the result does
//! not depend on it: each field is set by the event that owns it, the status
//! is the latest event's, and an ending (completed, abandoned, closed, ended)
//! is never undone by an earlier step arriving late.

use centralino_bus::{Delivery, EnvelopeExt as _, TypedPayload as _};
use centralino_domain::{CustomerIdentifier, Direction, IdentityRules, InteractionId};
use centralino_proto::v1;
use centralino_proto::v1::routing_event::Kind;

use crate::entities::{interaction, message, step};
use crate::{direction_name, json_list, json_map, ms_of, now_ms};

/// One event history applies.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Created {
        /// The interaction id as text (the row key).
        id: String,
        interaction: Box<centralino_domain::Interaction>,
    },
    Abandoned {
        id: String,
        channel: &'static str,
        reason: String,
        at: i64,
    },
    Routing {
        event: Box<v1::RoutingEvent>,
        channel: &'static str,
        at: i64,
    },
    Message {
        message: Box<v1::MessageRecorded>,
        identifiers: Vec<CustomerIdentifier>,
        channel: &'static str,
        at: i64,
    },
    MessageStatus {
        status: v1::MessageStatusChanged,
        channel: &'static str,
        at: i64,
    },
    Ended {
        ended: v1::InteractionEnded,
        channel: &'static str,
        at: i64,
    },
    /// A walk-in ticket at the counter (called, recalled, no-show, …).
    Desk {
        event: Box<v1::DeskTicketEvent>,
        at: i64,
    },
}

impl Event {
    /// The interaction the event is about.
    pub(crate) fn interaction_id(&self) -> &str {
        match self {
            Event::Created { id, .. } => id,
            Event::Abandoned { id, .. } => id,
            Event::Routing { event, .. } => &event.interaction_id,
            Event::Message { message, .. } => &message.interaction_id,
            Event::MessageStatus { status, .. } => &status.interaction_id,
            Event::Ended { ended, .. } => &ended.interaction_id,
            Event::Desk { event, .. } => &event.interaction_id,
        }
    }

    /// The identifiers it names the customer by (normalized).
    pub(crate) fn identifiers(&self) -> &[CustomerIdentifier] {
        match self {
            Event::Created { interaction, .. } => &interaction.identifiers,
            Event::Message { identifiers, .. } => identifiers,
            _ => &[],
        }
    }
}

/// Turns a delivery into an [`Event`] (`None`: nothing for history, such as
/// the outcome of a notification that belongs to no interaction), or says
/// why it can never be applied.
pub(crate) fn parse(d: &Delivery, rules: &IdentityRules) -> Result<Option<Event>, String> {
    if d.envelope.event_type == v1::MessageStatusChanged::TYPE_NAME {
        let s: v1::MessageStatusChanged = d.envelope.decode().map_err(|e| e.to_string())?;
        if s.interaction_id.is_empty() {
            return Ok(None);
        }
    }
    parse_event(d, rules).map(Some)
}

fn parse_event(d: &Delivery, rules: &IdentityRules) -> Result<Event, String> {
    let env = &d.envelope;
    let at = env.occurred_at.as_ref().map_or_else(now_ms, ms_of);
    let event = match env.event_type.as_str() {
        t if t == v1::InteractionCreated::TYPE_NAME => {
            let created: v1::InteractionCreated = env.decode().map_err(|e| e.to_string())?;
            let mut wire = created
                .interaction
                .ok_or("InteractionCreated without an interaction")?;
            // A caller id like "anonymous" must not cost the whole interaction:
            // identifiers that do not normalize are left out.
            usable_identifiers(&mut wire.identifiers, rules, &wire.id);
            let interaction = centralino_proto::interaction_from_proto(&wire, rules)
                .map_err(|e| e.to_string())?;
            Event::Created {
                id: interaction.id.to_string(),
                interaction: Box::new(interaction),
            }
        }
        t if t == v1::InteractionAbandoned::TYPE_NAME => {
            let a: v1::InteractionAbandoned = env.decode().map_err(|e| e.to_string())?;
            Event::Abandoned {
                id: uuid_field(&a.interaction_id, "interaction_id")?,
                channel: channel(a.channel)?,
                reason: a.reason,
                at,
            }
        }
        t if t == v1::RoutingEvent::TYPE_NAME => {
            let mut e: v1::RoutingEvent = env.decode().map_err(|e| e.to_string())?;
            e.interaction_id = uuid_field(&e.interaction_id, "interaction_id")?;
            at_most("queue", &e.queue, 64)?;
            at_most("agent", &e.agent, 64)?;
            if e.kind() == Kind::Closed {
                at_most("reason", &e.reason, 64)?;
            }
            let at = e.at.as_ref().map_or(at, ms_of);
            Event::Routing {
                channel: channel(e.channel)?,
                event: Box::new(e),
                at,
            }
        }
        t if t == v1::MessageRecorded::TYPE_NAME => {
            let mut m: v1::MessageRecorded = env.decode().map_err(|e| e.to_string())?;
            m.interaction_id = uuid_field(&m.interaction_id, "interaction_id")?;
            if m.message_id.is_empty() || m.message_id.len() > 64 {
                return Err("message_id must be 1 to 64 characters".into());
            }
            let identifiers = usable_identifiers(&mut m.identifiers, rules, &m.interaction_id);
            let at = m.at.as_ref().map_or(at, ms_of);
            Event::Message {
                channel: channel(m.channel)?,
                message: Box::new(m),
                identifiers,
                at,
            }
        }
        t if t == v1::MessageStatusChanged::TYPE_NAME => {
            let mut s: v1::MessageStatusChanged = env.decode().map_err(|e| e.to_string())?;
            s.interaction_id = uuid_field(&s.interaction_id, "interaction_id")?;
            if s.message_id.is_empty() || s.message_id.len() > 64 {
                return Err("message_id must be 1 to 64 characters".into());
            }
            if !matches!(
                s.status.as_str(),
                "queued" | "sent" | "delivered" | "failed"
            ) {
                return Err("status must be queued, sent, delivered or failed".into());
            }
            let at = s.at.as_ref().map_or(at, ms_of);
            Event::MessageStatus {
                channel: channel(s.channel)?,
                status: s,
                at,
            }
        }
        t if t == v1::InteractionEnded::TYPE_NAME => {
            let mut e: v1::InteractionEnded = env.decode().map_err(|e| e.to_string())?;
            e.interaction_id = uuid_field(&e.interaction_id, "interaction_id")?;
            at_most("outcome", &e.outcome, 64)?;
            let at = e.at.as_ref().map_or(at, ms_of);
            Event::Ended {
                channel: channel(e.channel)?,
                ended: e,
                at,
            }
        }
        t if t == v1::DeskTicketEvent::TYPE_NAME => {
            let mut e: v1::DeskTicketEvent = env.decode().map_err(|e| e.to_string())?;
            e.interaction_id = uuid_field(&e.interaction_id, "interaction_id")?;
            at_most("label", &e.label, 16)?;
            at_most("counter", &e.counter, 64)?;
            at_most("agent", &e.agent, 64)?;
            at_most("disposition", &e.disposition, 64)?;
            let at = e.at.as_ref().map_or(at, ms_of);
            Event::Desk {
                event: Box::new(e),
                at,
            }
        }
        other => return Err(format!("history does not handle {other}")),
    };
    Ok(event)
}

/// Keeps the identifiers that normalize (and returns them normalized); the
/// others are dropped with a log line that names neither value nor customer.
fn usable_identifiers(
    wire: &mut Vec<v1::CustomerIdentifier>,
    rules: &IdentityRules,
    interaction: &str,
) -> Vec<CustomerIdentifier> {
    let mut kept = Vec::new();
    let before = wire.len();
    wire.retain(|ci| {
        let normalized = centralino_proto::identifier_kind_from_i32(ci.kind)
            .ok()
            .and_then(|k| rules.normalize(k, &ci.value).ok());
        match normalized {
            Some(n) => {
                kept.push(n);
                true
            }
            None => false,
        }
    });
    if wire.len() < before {
        tracing::info!(
            %interaction,
            dropped = before - wire.len(),
            "identifiers that do not normalize were left out"
        );
    }
    kept
}

/// Refuses (dead-letters) a value longer than its column: stored, it would
/// fail the whole batch on PostgreSQL, and again on every retry.
fn at_most(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!("{field} is longer than {max} bytes"));
    }
    Ok(())
}

fn uuid_field(raw: &str, field: &'static str) -> Result<String, String> {
    InteractionId::parse_field(raw, field)
        .map(|i| i.to_string())
        .map_err(|e| e.to_string())
}

fn channel(raw: i32) -> Result<&'static str, String> {
    centralino_proto::channel_from_i32(raw)
        .map(|c| c.as_str())
        .map_err(|e| e.to_string())
}

/// Statuses after which nothing but another ending may change the status.
fn terminal(status: &str) -> bool {
    matches!(status, "completed" | "abandoned" | "closed" | "ended")
}

/// An interaction row before any event filled it.
pub(crate) fn blank(id: &str, channel: &str, at: i64) -> interaction::Model {
    interaction::Model {
        id: id.to_owned(),
        customer_id: None,
        channel: channel.to_owned(),
        direction: "inbound".into(),
        queue: String::new(),
        agent: String::new(),
        status: "new".into(),
        status_at: i64::MIN,
        disposition: String::new(),
        notes: String::new(),
        subject: String::new(),
        conversation_id: String::new(),
        created_at: at,
        known: 0,
        assigned_at: None,
        completed_at: None,
        ended_at: None,
        duration_ms: 0,
        outcome: String::new(),
        recording_ref: String::new(),
        ivr_path: "[]".into(),
        attributes: "{}".into(),
        resolved_by: String::new(),
    }
}

/// Moves the status to `status` if this event is the latest (an ending wins
/// over any step, and only a later ending replaces it).
fn set_status(row: &mut interaction::Model, status: &str, at: i64) -> bool {
    let newer = at >= row.status_at;
    let apply = match (terminal(&row.status), terminal(status)) {
        (true, false) => false,
        (false, true) => true,
        _ => newer,
    };
    if apply {
        row.status = status.to_owned();
        row.status_at = at;
    }
    apply
}

/// Folds one event into its interaction row; returns the routing step to keep, if any.
pub(crate) fn fold(
    row: &mut interaction::Model,
    event: &Event,
    event_id: &str,
) -> Option<step::Model> {
    // Until the creation is seen, the earliest event dates the interaction.
    let at = match event {
        Event::Created { interaction, .. } => interaction.created_at.timestamp_millis(),
        Event::Abandoned { at, .. }
        | Event::Routing { at, .. }
        | Event::Message { at, .. }
        | Event::MessageStatus { at, .. }
        | Event::Ended { at, .. }
        | Event::Desk { at, .. } => *at,
    };
    if row.known == 0 && at < row.created_at {
        row.created_at = at;
    }
    match event {
        Event::Created { interaction: i, .. } => {
            row.known = 1;
            row.created_at = at;
            row.channel = i.channel.as_str().to_owned();
            row.direction = direction_name(i.direction).to_owned();
            if row.queue.is_empty() {
                row.queue = i.queue_hint.clone();
            }
            row.subject = i.subject.clone();
            row.conversation_id = i.conversation_id.map(|c| c.to_string()).unwrap_or_default();
            row.attributes = json_map(&i.attributes);
            set_status(row, "new", at);
            None
        }
        Event::Abandoned { reason, at, .. } => {
            if set_status(row, "abandoned", *at) {
                row.ended_at = Some(*at);
                if row.outcome.is_empty() {
                    row.outcome = "abandoned".into();
                }
            }
            Some(step_row(
                event_id,
                &row.id,
                "abandoned",
                "",
                "",
                reason,
                *at,
            ))
        }
        Event::Routing { event: e, at, .. } => {
            let kind = e.kind();
            if matches!(kind, Kind::Position | Kind::Unspecified) {
                return None;
            }
            let name = centralino_bus::keys::routing_kind_name(kind);
            let status = match kind {
                Kind::Requeued | Kind::Overflowed => "queued",
                _ => name,
            };
            let latest = set_status(row, status, *at);
            if latest && !e.queue.is_empty() {
                row.queue = e.queue.clone();
            }
            match kind {
                Kind::Assigned => {
                    // The agent is the completing one, else the latest assigned.
                    if row.completed_at.is_none() && row.assigned_at.is_none_or(|t| *at >= t) {
                        row.agent = e.agent.clone();
                    }
                    row.assigned_at = Some(row.assigned_at.map_or(*at, |t| t.max(*at)));
                }
                Kind::Completed => {
                    if row.completed_at.is_none_or(|t| *at >= t) {
                        row.agent = e.agent.clone();
                        row.disposition = e.disposition.clone();
                        row.notes = e.wrap_up_notes.clone();
                        row.completed_at = Some(*at);
                    }
                    row.ended_at = Some(row.ended_at.map_or(*at, |t| t.max(*at)));
                }
                Kind::Closed => {
                    row.outcome = e.reason.clone();
                    row.ended_at = Some(row.ended_at.map_or(*at, |t| t.max(*at)));
                }
                Kind::Abandoned => {
                    row.ended_at = Some(row.ended_at.map_or(*at, |t| t.max(*at)));
                }
                _ => {}
            }
            if row.queue.is_empty() {
                row.queue = e.queue.clone();
            }
            Some(step_row(
                event_id, &row.id, name, &e.queue, &e.agent, &e.reason, *at,
            ))
        }
        Event::Ended { ended: e, at, .. } => {
            set_status(row, "ended", *at);
            row.outcome = e.outcome.clone();
            row.duration_ms = i64::try_from(e.duration_ms).unwrap_or(i64::MAX);
            row.recording_ref = e.recording_ref.clone();
            row.ivr_path = json_list(&e.ivr_path);
            row.ended_at = Some(*at);
            None
        }
        Event::Message { message: m, .. } => {
            if row.subject.is_empty() {
                row.subject = m.subject.clone();
            }
            if row.known == 0 && Direction::Outbound == direction_of(m.direction) {
                row.direction = "outbound".into();
            }
            None
        }
        Event::MessageStatus { .. } => None,
        Event::Desk { event: e, at } => {
            use v1::desk_ticket_event::Kind as D;
            let kind = match e.kind() {
                D::Called => "desk-called",
                D::Recalled => "desk-recalled",
                D::Started => "desk-started",
                D::NoShow => "desk-no-show",
                D::Served => "desk-served",
                D::Transferred => "desk-transferred",
                D::Unspecified => return None,
            };
            let reason = match e.kind() {
                D::Served => e.disposition.clone(),
                D::Transferred => format!("{} to service {}", e.label, e.service),
                _ => format!("{} at counter {}", e.label, e.counter),
            };
            Some(step_row(
                event_id, &row.id, kind, "", &e.agent, &reason, *at,
            ))
        }
    }
}

fn direction_of(raw: i32) -> Direction {
    match v1::Direction::try_from(raw) {
        Ok(v1::Direction::Outbound) => Direction::Outbound,
        _ => Direction::Inbound,
    }
}

fn step_row(
    event_id: &str,
    interaction: &str,
    kind: &str,
    queue: &str,
    agent: &str,
    reason: &str,
    at: i64,
) -> step::Model {
    step::Model {
        event_id: event_id.to_owned(),
        interaction_id: interaction.to_owned(),
        kind: kind.to_owned(),
        queue: queue.to_owned(),
        agent: agent.to_owned(),
        reason: reason.to_owned(),
        at,
    }
}

/// A message row before its content or status arrived.
pub(crate) fn blank_message(id: &str, interaction: &str, channel: &str) -> message::Model {
    message::Model {
        id: id.to_owned(),
        interaction_id: interaction.to_owned(),
        channel: channel.to_owned(),
        direction: "inbound".into(),
        subject: String::new(),
        body: String::new(),
        sender: String::new(),
        recipient: String::new(),
        at: 0,
        status: String::new(),
        status_at: i64::MIN,
        error: String::new(),
        attributes: "{}".into(),
    }
}

/// Folds a message event (content or status) into its row.
pub(crate) fn fold_message(row: &mut message::Model, event: &Event) {
    match event {
        Event::Message { message: m, at, .. } => {
            row.direction = direction_name(direction_of(m.direction)).to_owned();
            row.subject = m.subject.clone();
            row.body = m.body.clone();
            row.sender = m.sender.clone();
            row.recipient = m.recipient.clone();
            row.at = *at;
            row.attributes = json_map(&m.attributes);
            if row.status.is_empty() {
                row.status = if row.direction == "inbound" {
                    "received".into()
                } else {
                    "queued".into()
                };
            }
        }
        Event::MessageStatus { status: s, at, .. } => {
            // A status never goes back (delivered does not return to sent),
            // whatever order the receipts come in.
            let rank = |s: &str| match s {
                "queued" => 1,
                "sent" => 2,
                "delivered" | "failed" => 3,
                _ => 0,
            };
            if rank(&s.status) > rank(&row.status)
                || (rank(&s.status) == rank(&row.status) && *at >= row.status_at)
            {
                row.status = s.status.clone();
                row.status_at = *at;
                row.error = s.error.clone();
            }
            if row.at == 0 {
                row.at = *at;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(kind: Kind, queue: &str, agent: &str, at: i64) -> Event {
        Event::Routing {
            event: Box::new(v1::RoutingEvent {
                kind: kind.into(),
                interaction_id: "i".into(),
                queue: queue.into(),
                agent: agent.into(),
                disposition: if kind == Kind::Completed {
                    "sold".into()
                } else {
                    String::new()
                },
                ..Default::default()
            }),
            channel: "voice",
            at,
        }
    }

    fn apply_all(events: &[Event]) -> interaction::Model {
        let mut row = blank("i", "voice", i64::MAX);
        for (n, e) in events.iter().enumerate() {
            fold(&mut row, e, &n.to_string());
        }
        row
    }

    #[test]
    fn any_order_of_the_same_events_gives_the_same_row() {
        let events = vec![
            routing(Kind::Queued, "sales", "", 10),
            routing(Kind::Offered, "sales", "ada", 20),
            routing(Kind::Assigned, "sales", "ada", 25),
            routing(Kind::Requeued, "sales", "ada", 30),
            routing(Kind::Overflowed, "support", "", 40),
            routing(Kind::Offered, "support", "bob", 50),
            routing(Kind::Assigned, "support", "bob", 60),
            routing(Kind::Completed, "support", "bob", 70),
        ];
        let expected = apply_all(&events);
        assert_eq!(expected.status, "completed");
        assert_eq!(expected.queue, "support");
        assert_eq!(expected.agent, "bob");
        assert_eq!(expected.disposition, "sold");
        assert_eq!(expected.assigned_at, Some(60));
        assert_eq!(expected.ended_at, Some(70));
        assert_eq!(expected.created_at, 10);
        // Every rotation and the reverse.
        for r in 1..events.len() {
            let mut e = events.clone();
            e.rotate_left(r);
            assert_eq!(apply_all(&e), expected, "rotation {r}");
        }
        let mut rev = events.clone();
        rev.reverse();
        assert_eq!(apply_all(&rev), expected);
    }

    #[test]
    fn a_late_step_never_reopens_an_ended_interaction() {
        let row = apply_all(&[
            Event::Abandoned {
                id: "i".into(),
                channel: "voice",
                reason: "hung up".into(),
                at: 50,
            },
            routing(Kind::Queued, "sales", "", 10),
        ]);
        assert_eq!(row.status, "abandoned");
        assert_eq!(row.queue, "sales");
        assert_eq!(row.ended_at, Some(50));
    }

    #[test]
    fn a_receipt_before_its_message_keeps_the_final_status() {
        let status = |s: &str, at| Event::MessageStatus {
            status: v1::MessageStatusChanged {
                message_id: "m".into(),
                interaction_id: "i".into(),
                status: s.into(),
                ..Default::default()
            },
            channel: "sms",
            at,
        };
        let msg = Event::Message {
            message: Box::new(v1::MessageRecorded {
                message_id: "m".into(),
                direction: v1::Direction::Outbound.into(),
                body: "hello".into(),
                ..Default::default()
            }),
            identifiers: vec![],
            channel: "sms",
            at: 5,
        };
        let mut row = blank_message("m", "i", "sms");
        for e in [status("delivered", 30), status("sent", 20), msg] {
            fold_message(&mut row, &e);
        }
        assert_eq!(
            (row.status.as_str(), row.body.as_str(), row.at),
            ("delivered", "hello", 5)
        );
    }
}
