//! The writer's conversation and task changes: a message to send (its row,
//! queued, and the adapter's command, in one transaction, idempotent by the
//! message's id), and tasks created and closed (their row and the events
//! routing and this service's own timeline take them from).

use super::*;

/// A message to send, validated at the edge.
#[derive(Debug)]
pub(crate) struct SendInput {
    /// The command for the adapter (`agent_id` already the caller's).
    pub command: v1::SendMessage,
    pub channel: v1::Channel,
    /// Set when the caller is an agent: they answer only what routing gave them.
    pub agent_only: Option<String>,
    /// A notification's recipient (normalized); `None` for a reply.
    pub recipient: Option<CustomerIdentifier>,
    /// An SMS's encoding and segment count.
    pub encoding: Option<(&'static str, u32)>,
    /// Answer what would be sent, and send nothing.
    pub validate_only: bool,
}

/// A task to create, validated at the edge.
#[derive(Debug)]
pub(crate) struct TaskInput {
    pub title: String,
    pub description: String,
    pub identifiers: Vec<CustomerIdentifier>,
    pub queue: String,
    pub priority: u32,
    pub attributes: std::collections::BTreeMap<String, String>,
    pub due_at: Option<i64>,
}

/// The attribute a task's due time is kept in (RFC 3339, UTC).
pub(crate) const DUE_AT: &str = "due_at";

/// Who may be sent what, from the customer's consent ledger on the channel
/// (`(purpose, revoked, at)` per record, oldest first): a `transactional`
/// message always; a reply (no purpose) unless everything was revoked after
/// the customer last wrote; another purpose unless it or everything was
/// revoked. The latest record of a purpose is the one that counts.
pub(crate) fn consent_refusal(
    ledger: &[(String, bool, i64)],
    purpose: &str,
    last_inbound_at: Option<i64>,
) -> Option<String> {
    if purpose == "transactional" {
        return None;
    }
    let latest = |p: &str| {
        ledger
            .iter()
            .rfind(|(q, _, _)| q == p)
            .filter(|(_, revoked, _)| *revoked)
            .map(|(_, _, at)| *at)
    };
    let everything = latest("all");
    if purpose.is_empty() {
        return match (everything, last_inbound_at) {
            (Some(out), Some(wrote)) if wrote > out => None,
            (Some(_), _) => {
                Some("the customer opted out of this channel and has not written since".into())
            }
            (None, _) => None,
        };
    }
    if everything.is_some() {
        return Some("the customer opted out of this channel".into());
    }
    latest(purpose).map(|_| format!("the customer opted out of {purpose} messages"))
}

/// A stored message as the API shows it.
pub(crate) fn outbound_wire(m: &message::Model) -> v1::OutboundMessage {
    let attributes = parse_map(&m.attributes);
    let channel = m
        .channel
        .parse::<centralino_domain::Channel>()
        .map(|c| v1::Channel::from(c) as i32)
        .unwrap_or_default();
    v1::OutboundMessage {
        message_id: m.id.clone(),
        interaction_id: m.interaction_id.clone(),
        channel,
        status: m.status.clone(),
        error: m.error.clone(),
        status_at: (m.status_at > 0).then(|| crate::ts(m.status_at)),
        encoding: attributes.get("sms.encoding").cloned().unwrap_or_default(),
        segments: attributes
            .get("sms.segments")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        subject: m.subject.clone(),
        recipient: m.recipient.clone(),
    }
}

/// A stored task (an interaction of the `task` channel) as the API shows it.
pub(crate) fn task_wire(row: &interaction::Model) -> v1::Task {
    let attributes = parse_map(&row.attributes);
    let closed = matches!(
        row.status.as_str(),
        "completed" | "abandoned" | "closed" | "ended"
    );
    v1::Task {
        task_id: row.id.clone(),
        title: row.subject.clone(),
        queue: row.queue.clone(),
        priority: attributes
            .get("priority")
            .and_then(|p| p.parse().ok())
            .unwrap_or_default(),
        status: if closed { "closed" } else { "open" }.into(),
        outcome: if closed {
            if row.outcome.is_empty() && row.status == "completed" {
                "completed".into()
            } else {
                row.outcome.clone()
            }
        } else {
            String::new()
        },
        created_at: Some(crate::ts(row.created_at)),
        due_at: attributes
            .get(DUE_AT)
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| crate::ts(d.timestamp_millis())),
        agent: row.agent.clone(),
    }
}

/// The outcome of a notification's own interaction.
const NOTIFICATION: &str = "notification";

impl Writer {
    /// Queues a message (or, `validate_only`, says what would be queued).
    pub(super) async fn send(&self, input: SendInput) -> Result<v1::OutboundMessage, ApiError> {
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "history: message not queued");
            ApiError::from(e)
        };
        let txn = self.fence.begin(&self.db).await.map_err(unavailable)?;
        match self.queue_message(&txn, input).await {
            Ok((answer, true)) => {
                txn.commit().await.map_err(|e| unavailable(e.into()))?;
                Ok(answer)
            }
            // Nothing written: dropping the transaction rolls it back.
            Ok((answer, false)) => Ok(answer),
            Err(Fail::Api(e)) => Err(e),
            Err(Fail::Store(e)) => Err(unavailable(e)),
        }
    }

    /// The message's answer, and whether anything was written.
    async fn queue_message(
        &self,
        txn: &impl ConnectionTrait,
        input: SendInput,
    ) -> Result<(v1::OutboundMessage, bool), Fail> {
        let channel = centralino_bus::keys::channel_name(input.channel as i32);
        let mut command = input.command;
        if let Some(m) = message::Entity::find_by_id(command.message_id.clone())
            .one(txn)
            .await?
        {
            // The same message again (a retry): its state. Anything else
            // under this id is another message.
            // (Compared on what the adapter's record of it keeps: the
            // sender becomes our number or mailbox once it is sent.)
            let same = m.direction == "outbound"
                && m.channel == channel
                && m.body == command.body
                && match &input.recipient {
                    Some(to) => m.recipient == to.value(),
                    None => m.interaction_id == command.interaction_id,
                };
            if !same {
                return Err(ApiError::AlreadyExists(format!(
                    "message_id: {} is the id of another message",
                    m.id
                ))
                .into());
            }
            return Ok((outbound_wire(&m), false));
        }
        let now = now_ms();
        let mut suppressed_at: Option<i64> = None;
        let (customer, last_inbound, recipient) = match &input.recipient {
            None => {
                let row = interaction::Entity::find_by_id(command.interaction_id.clone())
                    .one(txn)
                    .await?
                    .ok_or_else(|| {
                        ApiError::NotFound(format!("interaction {}", command.interaction_id))
                    })?;
                if row.channel != channel {
                    return Err(ApiError::FailedPrecondition(format!(
                        "interaction_id: the interaction is on the {} channel; a reply goes \
                         on the channel of its conversation",
                        row.channel
                    ))
                    .into());
                }
                if row.resolved_by == ERASED {
                    return Err(ApiError::FailedPrecondition(
                        "interaction_id: its customer was erased".into(),
                    )
                    .into());
                }
                if row.outcome == NOTIFICATION {
                    return Err(ApiError::FailedPrecondition(
                        "interaction_id: a notification is not a conversation (send another \
                         notification)"
                            .into(),
                    )
                    .into());
                }
                // An agent answers what they hold now: not what waits for
                // someone else, went to another agent, or is done. Judged
                // by routing's latest step (all on routing's clock).
                if let Some(agent) = &input.agent_only {
                    use sea_orm::QuerySelect as _;
                    let recent = step::Entity::find()
                        .filter(step::Column::InteractionId.eq(row.id.clone()))
                        .order_by_desc(step::Column::At)
                        .limit(8)
                        .all(txn)
                        .await?;
                    // Steps of the same millisecond: an ending or a move
                    // wins over the assignment, the assignment over its offer.
                    let latest: Vec<&step::Model> = recent
                        .iter()
                        .filter(|s| Some(s.at) == recent.first().map(|f| f.at))
                        .collect();
                    let gone = latest.iter().any(|s| {
                        matches!(
                            s.kind.as_str(),
                            "completed" | "requeued" | "overflowed" | "closed" | "abandoned"
                        )
                    });
                    let holds = !gone
                        && latest
                            .iter()
                            .any(|s| s.kind == "assigned" && s.agent == *agent);
                    if !holds {
                        return Err(ApiError::PermissionDenied(format!(
                            "an agent answers only the conversations routing has assigned to \
                             them (this one is {})",
                            latest.first().map_or("not assigned", |s| s.kind.as_str())
                        ))
                        .into());
                    }
                }
                if channel == "email" && command.subject.is_empty() {
                    command.subject = centralino_mime::reply_subject(&row.subject);
                }
                let last_inbound = message::Entity::find()
                    .filter(message::Column::InteractionId.eq(row.id.clone()))
                    .filter(message::Column::Direction.eq("inbound"))
                    .order_by_desc(message::Column::At)
                    .one(txn)
                    .await?
                    .map(|m| m.at);
                (row.customer_id, last_inbound, String::new())
            }
            Some(to) => {
                let owner = identifier::Entity::find_by_id(key_of(to))
                    .one(txn)
                    .await?
                    .map(|i| i.customer_id);
                if command.purpose != "transactional" {
                    // An erased customer's opt-out outlives them: it binds
                    // whoever holds the number now, until they consent again.
                    let hashes =
                        suppression_hashes(&self.suppression, to.kind().as_str(), to.value());
                    suppressed_at = suppression::Entity::find()
                        .filter(suppression::Column::IdentifierHash.is_in(hashes))
                        .filter(suppression::Column::Channel.eq(channel))
                        .filter(
                            suppression::Column::Purpose
                                .is_in(["all".to_owned(), command.purpose.clone()]),
                        )
                        .all(txn)
                        .await?
                        .into_iter()
                        .map(|s| s.at)
                        .max();
                }
                command.interaction_id = new_id();
                if !input.validate_only {
                    // The notification's own interaction: outbound, ended
                    // once sent; the adapter's message joins it.
                    let mut row = ingest::blank(&command.interaction_id, channel, now);
                    row.customer_id = owner.clone();
                    row.resolved_by = owner.as_ref().map(|_| key_text(to)).unwrap_or_default();
                    row.direction = "outbound".into();
                    row.known = 1;
                    row.status = "ended".into();
                    row.status_at = now;
                    row.ended_at = Some(now);
                    row.outcome = NOTIFICATION.into();
                    interaction::Entity::insert(row.into_active_model().reset_all())
                        .exec_without_returning(txn)
                        .await?;
                }
                (owner, None, to.value().to_owned())
            }
        };
        let mut ledger: Vec<(String, bool, i64)> = Vec::new();
        if let Some(customer) = &customer {
            // In the ledger's order (time, then id): the last of a purpose counts.
            ledger = consent::Entity::find()
                .filter(consent::Column::CustomerId.eq(customer.clone()))
                .filter(consent::Column::Channel.eq(channel))
                .order_by_asc(consent::Column::At)
                .order_by_asc(consent::Column::Id)
                .all(txn)
                .await?
                .into_iter()
                .map(|c| (c.purpose, c.state == "revoked", c.at))
                .collect();
            if let Some(why) = consent_refusal(&ledger, &command.purpose, last_inbound) {
                return Err(ApiError::FailedPrecondition(format!("consent: {why}")).into());
            }
        }
        if let Some(at) = suppressed_at {
            let granted_since = ledger.iter().any(|(purpose, revoked, when)| {
                !revoked && *when > at && (purpose == "all" || *purpose == command.purpose)
            });
            if !granted_since {
                return Err(ApiError::FailedPrecondition(
                    "consent: the number opted out (kept after its customer was erased)".into(),
                )
                .into());
            }
        }
        let mut attributes = std::collections::BTreeMap::new();
        if let Some((encoding, segments)) = input.encoding {
            attributes.insert("sms.encoding".to_owned(), encoding.to_owned());
            attributes.insert("sms.segments".to_owned(), segments.to_string());
        }
        if !command.agent_id.is_empty() {
            attributes.insert("agent".to_owned(), command.agent_id.clone());
        }
        let row = message::Model {
            id: command.message_id.clone(),
            interaction_id: command.interaction_id.clone(),
            channel: channel.to_owned(),
            direction: "outbound".into(),
            subject: command.subject.clone(),
            body: command.body.clone(),
            sender: command.agent_id.clone(),
            recipient,
            at: now,
            status: "queued".into(),
            status_at: now,
            error: String::new(),
            attributes: json_map(&attributes),
        };
        let mut answer = outbound_wire(&row);
        if input.validate_only {
            answer.status.clear();
            answer.status_at = None;
            if input.recipient.is_some() {
                // No interaction is opened by a message not sent.
                answer.interaction_id.clear();
            }
            return Ok((answer, false));
        }
        message::Entity::insert(row.into_active_model().reset_all())
            .exec_without_returning(txn)
            .await?;
        outbox::enqueue(
            txn,
            SERVICE,
            &centralino_bus::keys::send(input.channel),
            &new_envelope(SERVICE, &command),
        )
        .await?;
        Ok((answer, true))
    }

    /// Creates a task: its row (so it can be read and closed at once) and
    /// its creation (and description) for routing and the timeline.
    pub(super) async fn create_task(
        &self,
        txn: &impl ConnectionTrait,
        actor: &str,
        input: TaskInput,
        now: i64,
    ) -> Result<Changed, Fail> {
        let id = new_id();
        let mut attributes = input.attributes;
        attributes.insert("priority".into(), input.priority.to_string());
        attributes.insert("created_by".into(), actor.to_owned());
        if let Some(d) = input
            .due_at
            .and_then(chrono::DateTime::from_timestamp_millis)
        {
            attributes.insert(DUE_AT.into(), d.to_rfc3339());
        }
        let mut row = ingest::blank(&id, "task", now);
        row.queue = input.queue.clone();
        row.subject = input.title.clone();
        row.status_at = now;
        row.attributes = json_map(&attributes);
        interaction::Entity::insert(row.clone().into_active_model().reset_all())
            .exec_without_returning(txn)
            .await?;
        let identifiers: Vec<v1::CustomerIdentifier> =
            input.identifiers.iter().map(Into::into).collect();
        let wire = v1::Interaction {
            id: id.clone(),
            channel: v1::Channel::Task as i32,
            direction: v1::Direction::Inbound as i32,
            identifiers: identifiers.clone(),
            queue_hint: input.queue,
            priority: input.priority,
            conversation_id: String::new(),
            subject: input.title.clone(),
            created_at: Some(crate::ts(now)),
            attributes: attributes.into_iter().collect(),
        };
        // What routing and this service's own ingest will require of it:
        // refused now, rather than dead-lettered after an answer of success.
        centralino_proto::interaction_from_proto(&wire, &self.cfg.rules)
            .map_err(|e| ApiError::invalid("task", e.to_string()))?;
        let created = v1::InteractionCreated {
            interaction: Some(wire),
        };
        use centralino_bus::keys::{Interaction as What, interaction as key};
        let mut events = vec![(
            key(v1::Channel::Task, What::Created),
            new_envelope(SERVICE, &created),
        )];
        if !input.description.is_empty() {
            let description = v1::MessageRecorded {
                message_id: new_id(),
                interaction_id: id.clone(),
                channel: v1::Channel::Task as i32,
                direction: v1::Direction::Inbound as i32,
                identifiers,
                subject: input.title,
                body: input.description,
                sender: actor.to_owned(),
                recipient: String::new(),
                at: Some(crate::ts(now)),
                attributes: Default::default(),
            };
            events.push((
                key(v1::Channel::Task, What::Message),
                new_envelope(SERVICE, &description),
            ));
        }
        outbox::enqueue_many(txn, SERVICE, &events).await?;
        Ok(Changed::Task(task_wire(&row)))
    }

    /// Closes an open task: routing withdraws it, the timeline shows it ended.
    pub(super) async fn close_task(
        &self,
        txn: &impl ConnectionTrait,
        task: &str,
        outcome: &str,
        now: i64,
    ) -> Result<Changed, Fail> {
        let row = interaction::Entity::find_by_id(task.to_owned())
            .one(txn)
            .await?
            .filter(|r| r.channel == "task")
            .ok_or_else(|| ApiError::NotFound(format!("task {task}")))?;
        let wire = task_wire(&row);
        if wire.status == "closed" {
            return Err(ApiError::FailedPrecondition(format!(
                "task_id: the task is already closed ({})",
                wire.outcome
            ))
            .into());
        }
        let mut active = row.into_active_model();
        active.status = Set("ended".into());
        active.status_at = Set(now);
        active.outcome = Set(outcome.to_owned());
        active.ended_at = Set(Some(now));
        let row = active.update(txn).await?;
        use centralino_bus::keys::{Interaction as What, interaction as key};
        let withdrawn = v1::InteractionAbandoned {
            interaction_id: task.to_owned(),
            channel: v1::Channel::Task as i32,
            reason: format!("{}{outcome}", centralino_bus::keys::TASK_CLOSED),
        };
        let ended = v1::InteractionEnded {
            interaction_id: task.to_owned(),
            channel: v1::Channel::Task as i32,
            outcome: outcome.to_owned(),
            at: Some(crate::ts(now)),
            ..Default::default()
        };
        outbox::enqueue_many(
            txn,
            SERVICE,
            &[
                (
                    key(v1::Channel::Task, What::Abandoned),
                    new_envelope(SERVICE, &withdrawn),
                ),
                (
                    key(v1::Channel::Task, What::Ended),
                    new_envelope(SERVICE, &ended),
                ),
            ],
        )
        .await?;
        Ok(Changed::Task(task_wire(&row)))
    }
}

#[cfg(test)]
mod tests {
    use super::consent_refusal;

    fn rec(p: &str, revoked: bool, at: i64) -> (String, bool, i64) {
        (p.to_owned(), revoked, at)
    }

    #[test]
    fn transactional_always_goes() {
        assert_eq!(
            consent_refusal(&[rec("all", true, 10)], "transactional", None),
            None
        );
    }

    #[test]
    fn a_reply_waits_for_the_customer_to_write_after_an_opt_out() {
        let ledger = [rec("all", true, 10)];
        assert!(consent_refusal(&ledger, "", None).is_some());
        assert!(consent_refusal(&ledger, "", Some(5)).is_some());
        assert_eq!(consent_refusal(&ledger, "", Some(11)), None);
        // Opted back in: the latest record counts.
        let back = [rec("all", true, 10), rec("all", false, 20)];
        assert_eq!(consent_refusal(&back, "", None), None);
    }

    #[test]
    fn a_purpose_is_blocked_by_its_own_opt_out_or_everything() {
        assert!(consent_refusal(&[rec("marketing", true, 1)], "marketing", None).is_some());
        assert_eq!(
            consent_refusal(&[rec("marketing", true, 1)], "notifications", None),
            None
        );
        assert!(consent_refusal(&[rec("all", true, 1)], "notifications", Some(9)).is_some());
        assert_eq!(
            consent_refusal(
                &[rec("marketing", true, 1), rec("marketing", false, 5)],
                "marketing",
                None
            ),
            None
        );
    }
}
