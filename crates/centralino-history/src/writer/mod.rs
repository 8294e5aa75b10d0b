//! The writer: the one task that changes history.
//!
//! Bus events come in batches and are written in one transaction per batch:
//! the inbox claims (so a redelivered event changes nothing), new customers and
//! identifiers, the interaction and message rows folded from their events, the
//! routing steps. API changes (update, merge, unmerge, consent, erase) each get
//! their own transaction, with their answer stored under the caller's request
//! id so a retried request is answered, not applied twice (`changes.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use centralino_bus::{Delivery, Handled, new_envelope};
use centralino_domain::identity::{self, ConflictPolicy, Resolution};
use centralino_domain::{CustomerIdentifier, IdentifierKind};
use centralino_proto::v1;
use centralino_server::ApiError;
use centralino_store::chunks::{VALUE_OVERHEAD, by_size, text_row};
use centralino_store::{StoreError, inbox, outbox};
use prost::Message as _;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, Iterable, QueryFilter, QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::entities::{
    audit, consent, customer, identifier, interaction, merge, message, request, step, suggestion,
    suppression,
};
use crate::ingest::{self, Event};
use crate::read;
use crate::{HistoryConfig, SERVICE, json_map, now_ms, parse_map};

mod changes;
mod outbound;

pub(crate) use outbound::{DUE_AT, SendInput, TaskInput, outbound_wire, task_wire};

/// A change an API caller asks for.
#[derive(Debug)]
pub(crate) enum Change {
    Update(v1::UpdateCustomerRequest),
    Merge {
        survivor: String,
        merged: String,
        reason: String,
    },
    Unmerge {
        merge_id: String,
        reason: String,
    },
    Consent(ConsentInput),
    Erase {
        customer: String,
        reason: String,
    },
    CreateTask(TaskInput),
    CloseTask {
        task: String,
        outcome: String,
    },
}

/// A validated consent record to add.
#[derive(Debug)]
pub(crate) struct ConsentInput {
    pub customer: Option<String>,
    pub identifier: Option<CustomerIdentifier>,
    pub channel: &'static str,
    pub purpose: String,
    pub granted: bool,
    pub source: String,
    pub note: String,
    pub at: i64,
}

/// The answer to a change.
#[derive(Debug, Clone)]
pub(crate) enum Changed {
    Customer(v1::Customer),
    Merge(v1::MergeResult),
    Unmerge(v1::UnmergeResult),
    Consent(v1::ConsentRecord),
    Erase(v1::EraseResult),
    Task(v1::Task),
}

impl Changed {
    fn encode(&self) -> Vec<u8> {
        match self {
            Changed::Customer(m) => m.encode_to_vec(),
            Changed::Merge(m) => m.encode_to_vec(),
            Changed::Unmerge(m) => m.encode_to_vec(),
            Changed::Consent(m) => m.encode_to_vec(),
            Changed::Erase(m) => m.encode_to_vec(),
            Changed::Task(m) => m.encode_to_vec(),
        }
    }

    fn decode(method: &str, bytes: &[u8]) -> Option<Self> {
        Some(match method {
            "customer" => Changed::Customer(v1::Customer::decode(bytes).ok()?),
            "merge" => Changed::Merge(v1::MergeResult::decode(bytes).ok()?),
            "unmerge" => Changed::Unmerge(v1::UnmergeResult::decode(bytes).ok()?),
            "consent" => Changed::Consent(v1::ConsentRecord::decode(bytes).ok()?),
            "erase" => Changed::Erase(v1::EraseResult::decode(bytes).ok()?),
            "create_task" | "close_task" => Changed::Task(v1::Task::decode(bytes).ok()?),
            _ => return None,
        })
    }
}

fn method_of(change: &Change) -> &'static str {
    match change {
        Change::Update(_) => "customer",
        Change::Merge { .. } => "merge",
        Change::Unmerge { .. } => "unmerge",
        Change::Consent(_) => "consent",
        Change::Erase { .. } => "erase",
        Change::CreateTask(_) => "create_task",
        Change::CloseTask { .. } => "close_task",
    }
}

pub(crate) enum Command {
    Ingest {
        message_id: String,
        event: Event,
        done: oneshot::Sender<Handled>,
    },
    Change {
        actor: String,
        request_id: String,
        change: Change,
        reply: oneshot::Sender<Result<Changed, ApiError>>,
    },
    /// A message to queue: idempotent by its own id, not a request id.
    Send {
        input: SendInput,
        reply: oneshot::Sender<Result<v1::OutboundMessage, ApiError>>,
    },
}

/// How the bus consumer wraps a parsed delivery for the writer.
pub(crate) fn ingest_command(
    d: &Delivery,
    event: Event,
    done: oneshot::Sender<Handled>,
) -> Command {
    Command::Ingest {
        message_id: d.envelope.message_id.clone(),
        event,
        done,
    }
}

/// A failed step of a change: a caller's error (answered, nothing written) or
/// a store error (answered UNAVAILABLE / retried).
enum Fail {
    Api(ApiError),
    Store(StoreError),
}

impl From<sea_orm::DbErr> for Fail {
    fn from(e: sea_orm::DbErr) -> Self {
        Fail::Store(e.into())
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Self {
        Fail::Api(e)
    }
}

type Key = (String, String);

fn key_of(i: &CustomerIdentifier) -> Key {
    (i.kind().as_str().to_owned(), i.value().to_owned())
}

fn key_text(i: &CustomerIdentifier) -> String {
    format!("{}:{}", i.kind().as_str(), i.value())
}

/// What a stored answer's method becomes when its customer is erased (the
/// answer itself is emptied).
const ERASED_ANSWER: &str = "erased";

/// The hashes an opt-out may have outlived its customer under: the keyed
/// one ([`crate::SuppressionKey`], the only one written) and a plain SHA-256,
/// under which opt-outs were kept before the key existed.
pub(crate) fn suppression_hashes(
    key: &crate::SuppressionKey,
    kind: &str,
    value: &str,
) -> [String; 2] {
    let legacy = Sha256::digest(format!("{kind}:{value}").as_bytes());
    [
        key.hash(kind, value),
        legacy.iter().map(|b| format!("{b:02x}")).collect(),
    ]
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What one ingest batch will write, gathered before any statement runs.
#[derive(Default)]
struct Batch {
    owners: HashMap<Key, String>,
    customers: Vec<customer::Model>,
    identifiers: Vec<identifier::Model>,
    suggestions: Vec<suggestion::Model>,
    merges: Vec<(String, String)>,
}

pub(crate) struct Writer {
    cfg: HistoryConfig,
    /// What erased customers' opt-outs are kept under.
    suppression: crate::SuppressionKey,
    db: DatabaseConnection,
    /// Every write transaction checks this instance still leads.
    fence: centralino_store::leader::Fence,
    relay: Arc<Notify>,
    /// Bumped after each batch that changed a message's row, so watchers of
    /// a message read it again.
    messages: tokio::sync::watch::Sender<u64>,
}

impl Writer {
    pub(crate) fn new(
        cfg: HistoryConfig,
        suppression: crate::SuppressionKey,
        db: DatabaseConnection,
        fence: centralino_store::leader::Fence,
        relay: Arc<Notify>,
        messages: tokio::sync::watch::Sender<u64>,
    ) -> Self {
        Self {
            cfg,
            suppression,
            db,
            fence,
            relay,
            messages,
        }
    }

    pub(crate) async fn run(
        self,
        mut rx: mpsc::Receiver<Command>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut purge = tokio::time::interval(std::time::Duration::from_secs(3_600));
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let mut batch = vec![cmd];
                    while batch.len() < self.cfg.batch_max {
                        match rx.try_recv() {
                            Ok(c) => batch.push(c),
                            Err(_) => break,
                        }
                    }
                    self.process(batch).await;
                }
                _ = purge.tick() => self.purge().await,
            }
        }
        tracing::info!("history writer stopped");
    }

    async fn process(&self, batch: Vec<Command>) {
        let mut events = Vec::new();
        let mut dones = Vec::new();
        let mut changes = Vec::new();
        let mut sends = Vec::new();
        for cmd in batch {
            match cmd {
                Command::Ingest {
                    message_id,
                    event,
                    done,
                } => {
                    events.push((message_id, event));
                    dones.push(done);
                }
                Command::Change {
                    actor,
                    request_id,
                    change,
                    reply,
                } => changes.push((actor, request_id, change, reply)),
                Command::Send { input, reply } => sends.push((input, reply)),
            }
        }
        let touched_messages = events
            .iter()
            .any(|(_, e)| matches!(e, Event::Message { .. } | Event::MessageStatus { .. }));
        if !events.is_empty() {
            match self.ingest(&events).await {
                Ok(()) => {
                    for d in dones {
                        let _ = d.send(Handled::Done);
                    }
                }
                // A value the database refuses (not a lost connection): one bad
                // event must not hold back the others.
                Err(e) if events.len() > 1 && !e.is_transient() => {
                    tracing::warn!(error = %e, events = events.len(), "history batch not written; applying its events one by one");
                    for (item, done) in events.chunks(1).zip(dones) {
                        let outcome = match self.ingest(item).await {
                            Ok(()) => Handled::Done,
                            Err(e) if e.is_transient() => Handled::Hold(e.to_string()),
                            Err(e) => Handled::Retry(e.to_string()),
                        };
                        let _ = done.send(outcome);
                    }
                }
                Err(e) => {
                    for d in dones {
                        let _ = d.send(if e.is_transient() {
                            Handled::Hold(e.to_string())
                        } else {
                            Handled::Retry(e.to_string())
                        });
                    }
                }
            }
            self.relay.notify_one();
        }
        if touched_messages {
            self.messages.send_modify(|v| *v = v.wrapping_add(1));
        }
        for (input, reply) in sends {
            let r = self.send(input).await;
            self.relay.notify_one();
            let _ = reply.send(r);
        }
        for (actor, request_id, change, reply) in changes {
            let r = self.change(&actor, &request_id, change).await;
            self.relay.notify_one();
            let _ = reply.send(r);
        }
    }

    /// Forgets processed message ids after a week and stored answers after a day.
    async fn purge(&self) {
        let week = chrono::Utc::now() - chrono::Duration::days(7);
        if let Err(e) = inbox::purge(&self.db, week).await {
            tracing::warn!(error = %e, "history inbox purge failed");
        }
        let day = now_ms() - 86_400_000;
        if let Err(e) = request::Entity::delete_many()
            .filter(request::Column::At.lt(day))
            .exec(&self.db)
            .await
        {
            tracing::warn!(error = %e, "history request purge failed");
        }
    }

    // -----------------------------------------------------------------------
    // Ingest

    async fn ingest(&self, items: &[(String, Event)]) -> Result<(), StoreError> {
        let txn = self.fence.begin(&self.db).await?;
        // Claimed first: what comes back is what was never processed.
        let ids = unique(items.iter().map(|(m, _)| m.clone()));
        let mut claimed = inbox::claim_new(&txn, SERVICE, &ids).await?;
        let fresh: Vec<&(String, Event)> =
            items.iter().filter(|(m, _)| claimed.remove(m)).collect();
        if fresh.is_empty() {
            txn.commit().await?;
            return Ok(());
        }
        let now = now_ms();

        let iids: Vec<String> = unique(fresh.iter().map(|(_, e)| e.interaction_id().to_owned()));
        let mut rows: HashMap<String, interaction::Model> = HashMap::new();
        for chunk in by_size(&iids, 500, |i| i.len() + VALUE_OVERHEAD) {
            for r in interaction::Entity::find()
                .filter(interaction::Column::Id.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?
            {
                rows.insert(r.id.clone(), r);
            }
        }
        let mids: Vec<String> = unique(fresh.iter().filter_map(|(_, e)| match e {
            Event::Message { message, .. } => Some(message.message_id.clone()),
            Event::MessageStatus { status, .. } => Some(status.message_id.clone()),
            _ => None,
        }));
        let mut msgs: HashMap<String, message::Model> = HashMap::new();
        for chunk in by_size(&mids, 500, |m| m.len() + VALUE_OVERHEAD) {
            for m in message::Entity::find()
                .filter(message::Column::Id.is_in(chunk.iter().cloned()))
                .all(&txn)
                .await?
            {
                msgs.insert(m.id.clone(), m);
            }
        }
        let mut batch = Batch {
            owners: load_owners(&txn, fresh.iter().flat_map(|(_, e)| e.identifiers().iter()))
                .await?,
            ..Batch::default()
        };

        let mut steps = Vec::new();
        for (mid, event) in &fresh {
            let iid = event.interaction_id();
            let row = rows
                .entry(iid.to_owned())
                .or_insert_with(|| ingest::blank(iid, channel_of(event), i64::MAX));
            if let Some(s) = ingest::fold(row, event, mid) {
                steps.push(s);
            }
            let message_id = match event {
                Event::Message { message, .. } => Some(&message.message_id),
                Event::MessageStatus { status, .. } => Some(&status.message_id),
                _ => None,
            };
            let erased = row.resolved_by == ERASED;
            if let Some(m) = message_id {
                let mrow = msgs
                    .entry(m.clone())
                    .or_insert_with(|| ingest::blank_message(m, iid, channel_of(event)));
                if mrow.interaction_id != iid {
                    // One id is one message: another interaction's event must
                    // not take it over (its text would show on the first
                    // customer's timeline). Ids only in the log.
                    tracing::warn!(
                        message = %m,
                        interaction = %iid,
                        owner = %mrow.interaction_id,
                        "history: a message id already belongs to another interaction; \
                         this event's message is not recorded"
                    );
                } else {
                    ingest::fold_message(mrow, event);
                    if erased {
                        // A late message of an erased customer keeps only its facts.
                        for field in [
                            &mut mrow.subject,
                            &mut mrow.body,
                            &mut mrow.sender,
                            &mut mrow.recipient,
                        ] {
                            field.clear();
                        }
                        mrow.attributes = "{}".into();
                    }
                }
            }
            if erased {
                row.subject.clear();
                row.conversation_id.clear();
                row.attributes = "{}".into();
                continue;
            }
            if let Some(cid) = row.customer_id.clone() {
                // Identifiers nobody holds yet join the interaction's customer
                // (a creation that arrived after a message, a new address).
                for i in event.identifiers() {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        batch.owners.entry(key_of(i))
                    {
                        slot.insert(cid.clone());
                        batch.identifiers.push(identifier::Model {
                            kind: i.kind().as_str().to_owned(),
                            value: i.value().to_owned(),
                            customer_id: cid.clone(),
                            added_at: now,
                        });
                    }
                }
            } else if !event.identifiers().is_empty() {
                let name = match event {
                    Event::Created { interaction, .. } => interaction
                        .attributes
                        .get("customer_name")
                        .cloned()
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                let (cid, by) = self.resolve(event.identifiers(), &name, iid, now, &mut batch);
                row.customer_id = cid;
                row.resolved_by = by;
            }
        }

        for chunk in by_size(&batch.customers, 500, customer_size) {
            customer::Entity::insert_many(chunk.iter().cloned().map(set_all_customer))
                .exec_without_returning(&txn)
                .await?;
        }
        for chunk in by_size(&batch.identifiers, 500, |i| {
            text_row(&[&i.kind, &i.value, &i.customer_id]) + 16
        }) {
            identifier::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(|m| m.into_active_model().reset_all()),
            )
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await?;
        }
        let rows: Vec<interaction::Model> = rows.into_values().collect();
        for chunk in by_size(&rows, 400, interaction_size) {
            interaction::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(|m| m.into_active_model().reset_all()),
            )
            .on_conflict(
                OnConflict::column(interaction::Column::Id)
                    .update_columns(
                        interaction::Column::iter()
                            .filter(|c| !matches!(c, interaction::Column::Id)),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        let msgs: Vec<message::Model> = msgs.into_values().collect();
        for chunk in by_size(&msgs, 400, message_size) {
            message::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(|m| m.into_active_model().reset_all()),
            )
            .on_conflict(
                OnConflict::column(message::Column::Id)
                    .update_columns(
                        message::Column::iter().filter(|c| !matches!(c, message::Column::Id)),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        for chunk in by_size(&steps, 500, |s| {
            text_row(&[
                &s.event_id,
                &s.interaction_id,
                &s.kind,
                &s.queue,
                &s.agent,
                &s.reason,
            ]) + 16
        }) {
            step::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(|m| m.into_active_model().reset_all()),
            )
            .on_conflict_do_nothing()
            .exec_without_returning(&txn)
            .await?;
        }
        for chunk in by_size(&batch.suggestions, 500, |s| {
            text_row(&[
                &s.id,
                &s.customer_a,
                &s.customer_b,
                &s.identifiers,
                &s.interaction_id,
            ]) + 16
        }) {
            suggestion::Entity::insert_many(
                chunk
                    .iter()
                    .cloned()
                    .map(|m| m.into_active_model().reset_all()),
            )
            .on_conflict(
                OnConflict::columns([suggestion::Column::CustomerA, suggestion::Column::CustomerB])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        for (survivor, merged) in batch.merges {
            match self
                .merge(
                    &txn,
                    &survivor,
                    &merged,
                    "identity-rule",
                    "one interaction named both",
                    now,
                )
                .await
            {
                Ok(_) => {}
                Err(Fail::Api(e)) => {
                    tracing::info!(%survivor, %merged, reason = %e, "automatic merge skipped");
                }
                Err(Fail::Store(e)) => return Err(e),
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// Decides the customer of an interaction with `ids`, recording new
    /// customers, identifiers, suggestions and merges in `batch`.
    fn resolve(
        &self,
        ids: &[CustomerIdentifier],
        name: &str,
        interaction: &str,
        now: i64,
        batch: &mut Batch,
    ) -> (Option<String>, String) {
        let pairs: Vec<(CustomerIdentifier, Option<String>)> = ids
            .iter()
            .map(|i| (i.clone(), batch.owners.get(&key_of(i)).cloned()))
            .collect();
        let strongest = ids
            .iter()
            .max_by_key(|i| identity::strength(i.kind()))
            .map(key_text)
            .unwrap_or_default();
        let adopt = |batch: &mut Batch, cid: &str, add: Vec<CustomerIdentifier>| {
            for i in add {
                batch.owners.insert(key_of(&i), cid.to_owned());
                batch.identifiers.push(identifier::Model {
                    kind: i.kind().as_str().to_owned(),
                    value: i.value().to_owned(),
                    customer_id: cid.to_owned(),
                    added_at: now,
                });
            }
        };
        match identity::resolve(&pairs, self.cfg.on_conflict) {
            Resolution::Anonymous => (None, String::new()),
            Resolution::New(add) => {
                let cid = new_id();
                batch.customers.push(customer::Model {
                    id: cid.clone(),
                    display_name: name.to_owned(),
                    name_key: name.to_lowercase(),
                    attributes: "{}".into(),
                    created_at: now,
                    updated_at: now,
                    merged_into: None,
                    erased_at: None,
                });
                adopt(batch, &cid, add);
                (Some(cid), strongest)
            }
            Resolution::Existing {
                customer,
                add,
                others,
                action,
            } => {
                adopt(batch, &customer, add);
                for other in others {
                    match action {
                        ConflictPolicy::Merge => {
                            // Later events of this batch already see one customer.
                            for owner in batch.owners.values_mut() {
                                if *owner == other {
                                    owner.clone_from(&customer);
                                }
                            }
                            batch.merges.push((customer.clone(), other));
                        }
                        ConflictPolicy::Suggest => {
                            let (a, b) = if customer < other {
                                (customer.clone(), other)
                            } else {
                                (other, customer.clone())
                            };
                            let shared: Vec<v1::CustomerIdentifier> =
                                ids.iter().map(Into::into).collect();
                            batch.suggestions.push(suggestion::Model {
                                id: new_id(),
                                customer_a: a,
                                customer_b: b,
                                identifiers: identifiers_json(&shared),
                                interaction_id: interaction.to_owned(),
                                created_at: now,
                            });
                        }
                    }
                }
                (Some(customer), strongest)
            }
        }
    }
}

/// `resolved_by` of an interaction whose customer was erased.
pub(crate) const ERASED: &str = "erased";

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items.filter(|i| seen.insert(i.clone())).collect()
}

fn channel_of(e: &Event) -> &'static str {
    match e {
        Event::Created { interaction, .. } => interaction.channel.as_str(),
        Event::Abandoned { channel, .. }
        | Event::Routing { channel, .. }
        | Event::Message { channel, .. }
        | Event::MessageStatus { channel, .. }
        | Event::Ended { channel, .. } => channel,
        Event::Desk { .. } => "desk",
    }
}

fn customer_size(c: &customer::Model) -> usize {
    text_row(&[&c.id, &c.display_name, &c.name_key, &c.attributes]) + 64
}

fn interaction_size(r: &interaction::Model) -> usize {
    text_row(&[
        &r.id,
        r.customer_id.as_deref().unwrap_or_default(),
        &r.channel,
        &r.direction,
        &r.queue,
        &r.agent,
        &r.status,
        &r.disposition,
        &r.notes,
        &r.subject,
        &r.conversation_id,
        &r.outcome,
        &r.recording_ref,
        &r.ivr_path,
        &r.attributes,
        &r.resolved_by,
    ]) + 7 * (8 + VALUE_OVERHEAD)
}

fn message_size(m: &message::Model) -> usize {
    text_row(&[
        &m.id,
        &m.interaction_id,
        &m.channel,
        &m.direction,
        &m.subject,
        &m.body,
        &m.sender,
        &m.recipient,
        &m.status,
        &m.error,
        &m.attributes,
    ]) + 2 * (8 + VALUE_OVERHEAD)
}

fn set_all_customer(m: customer::Model) -> customer::ActiveModel {
    m.into_active_model().reset_all()
}

fn identifiers_json(ids: &[v1::CustomerIdentifier]) -> String {
    let pairs: Vec<(i32, &str)> = ids.iter().map(|i| (i.kind, i.value.as_str())).collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

/// Whether identifiers of `kind` reach the customer on `channel`.
pub(crate) fn relevant(channel: &str, kind: &str) -> bool {
    match channel {
        "sms" | "voice" => kind == IdentifierKind::Phone.as_str(),
        "email" => kind == IdentifierKind::Email.as_str(),
        _ => true,
    }
}

/// The owners of these identifiers, as stored.
async fn load_owners<'a>(
    db: &impl ConnectionTrait,
    ids: impl Iterator<Item = &'a CustomerIdentifier>,
) -> Result<HashMap<Key, String>, StoreError> {
    let wanted: HashSet<Key> = ids.map(key_of).collect();
    let values: Vec<String> = unique(wanted.iter().map(|(_, v)| v.clone()));
    // Both key columns, so the primary key index answers.
    let kinds: Vec<String> = unique(wanted.iter().map(|(k, _)| k.clone()));
    let mut owners = HashMap::new();
    for chunk in by_size(&values, 500, |v| v.len() + VALUE_OVERHEAD) {
        for row in identifier::Entity::find()
            .filter(identifier::Column::Kind.is_in(kinds.iter().cloned()))
            .filter(identifier::Column::Value.is_in(chunk.iter().cloned()))
            .all(db)
            .await?
        {
            let key = (row.kind.clone(), row.value.clone());
            if wanted.contains(&key) {
                owners.insert(key, row.customer_id);
            }
        }
    }
    Ok(owners)
}

fn uuid_arg(raw: &str, field: &'static str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|_| ())
        .map_err(|_| ApiError::invalid(field, "is not a UUID"))
}

/// A customer that exists, is not erased and was not merged away.
async fn live_customer(
    db: &impl ConnectionTrait,
    id: &str,
    field: &'static str,
) -> Result<customer::Model, Fail> {
    uuid_arg(id, field)?;
    let c = customer::Entity::find_by_id(id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("customer {id}")))?;
    if c.erased_at.is_some() {
        return Err(
            ApiError::FailedPrecondition(format!("{field}: the customer was erased")).into(),
        );
    }
    if let Some(into) = &c.merged_into {
        return Err(ApiError::FailedPrecondition(format!(
            "{field}: the customer was merged into {into}"
        ))
        .into());
    }
    Ok(c)
}

pub(crate) fn normalize(
    rules: &centralino_domain::IdentityRules,
    raw: &v1::CustomerIdentifier,
    field: &'static str,
) -> Result<CustomerIdentifier, ApiError> {
    let kind = centralino_proto::identifier_kind_from_i32(raw.kind)
        .map_err(|e| ApiError::invalid(field, e.to_string()))?;
    rules
        .normalize(kind, &raw.value)
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

pub(crate) async fn audit_row(
    db: &impl ConnectionTrait,
    customer: &str,
    action: &str,
    actor: &str,
    reason: &str,
    detail: &str,
    now: i64,
) -> Result<(), StoreError> {
    audit::ActiveModel {
        id: Set(new_id()),
        customer_id: Set(customer.to_owned()),
        action: Set(action.to_owned()),
        actor: Set(actor.to_owned()),
        reason: Set(reason.to_owned()),
        detail: Set(detail.to_owned()),
        at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}

async fn customer_event(
    txn: &impl ConnectionTrait,
    kind: v1::customer_changed::Kind,
    customer: &str,
    other: &str,
    merge_id: &str,
) -> Result<(), StoreError> {
    let event = v1::CustomerChanged {
        kind: kind.into(),
        customer_id: customer.to_owned(),
        other_customer_id: other.to_owned(),
        merge_id: merge_id.to_owned(),
    };
    outbox::enqueue(
        txn,
        SERVICE,
        &centralino_bus::keys::customer(kind),
        &new_envelope(SERVICE, &event),
    )
    .await
}
