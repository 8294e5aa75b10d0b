//! The writer: the one task that changes history.
//!
//! Bus events come in batches and are written in one transaction per batch:
//! the inbox claims (so a redelivered event changes nothing), new customers and
//! identifiers, the interaction and message rows folded from their events, the
//! routing steps. API changes (update, merge, unmerge, consent, erase) each get
//! their own transaction, with their answer stored under the caller's request
//! id so a retried request is answered, not applied twice.

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
}

impl Changed {
    fn method(&self) -> &'static str {
        match self {
            Changed::Customer(_) => "customer",
            Changed::Merge(_) => "merge",
            Changed::Unmerge(_) => "unmerge",
            Changed::Consent(_) => "consent",
            Changed::Erase(_) => "erase",
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Changed::Customer(m) => m.encode_to_vec(),
            Changed::Merge(m) => m.encode_to_vec(),
            Changed::Unmerge(m) => m.encode_to_vec(),
            Changed::Consent(m) => m.encode_to_vec(),
            Changed::Erase(m) => m.encode_to_vec(),
        }
    }

    fn decode(method: &str, bytes: &[u8]) -> Option<Self> {
        Some(match method {
            "customer" => Changed::Customer(v1::Customer::decode(bytes).ok()?),
            "merge" => Changed::Merge(v1::MergeResult::decode(bytes).ok()?),
            "unmerge" => Changed::Unmerge(v1::UnmergeResult::decode(bytes).ok()?),
            "consent" => Changed::Consent(v1::ConsentRecord::decode(bytes).ok()?),
            "erase" => Changed::Erase(v1::EraseResult::decode(bytes).ok()?),
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
}

impl Writer {
    pub(crate) fn new(
        cfg: HistoryConfig,
        suppression: crate::SuppressionKey,
        db: DatabaseConnection,
        fence: centralino_store::leader::Fence,
        relay: Arc<Notify>,
    ) -> Self {
        Self {
            cfg,
            suppression,
            db,
            fence,
            relay,
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
            }
        }
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

    // -----------------------------------------------------------------------
    // Changes

    async fn change(
        &self,
        actor: &str,
        request_id: &str,
        change: Change,
    ) -> Result<Changed, ApiError> {
        let method = method_of(&change);
        // A lost database is UNAVAILABLE (retry later); a statement the
        // database refuses is INTERNAL: retrying it cannot help.
        let unavailable = |e: StoreError| {
            tracing::warn!(error = %e, "history change not written");
            ApiError::from(e)
        };
        let txn = self.fence.begin(&self.db).await.map_err(unavailable)?;
        if let Some(previous) =
            request::Entity::find_by_id((actor.to_owned(), request_id.to_owned()))
                .one(&txn)
                .await
                .map_err(|e| unavailable(e.into()))?
        {
            if previous.method == ERASED_ANSWER {
                return Err(ApiError::FailedPrecondition(
                    "request_id: the customer this request was about was erased".into(),
                ));
            }
            if previous.method != method {
                return Err(ApiError::invalid(
                    "request_id",
                    format!("was already used for a {} request", previous.method),
                ));
            }
            return Changed::decode(&previous.method, &previous.response)
                .ok_or_else(|| ApiError::Internal("stored answer does not decode".into()));
        }
        let now = now_ms();
        // The answer and the customers it is about (kept with it, so that
        // erasing one of them erases the stored answer too).
        let result = match change {
            Change::Update(req) => {
                let about = vec![req.customer_id.clone()];
                self.update(&txn, actor, req, now).await.map(|a| (a, about))
            }
            Change::Merge {
                survivor,
                merged,
                reason,
            } => self
                .merge(&txn, &survivor, &merged, actor, &reason, now)
                .await
                .map(|m| (Changed::Merge(m), vec![survivor.clone(), merged.clone()])),
            Change::Unmerge { merge_id, reason } => {
                self.unmerge(&txn, &merge_id, actor, &reason, now).await
            }
            Change::Consent(input) => self.consent(&txn, actor, request_id, input, now).await,
            Change::Erase { customer, reason } => self
                .erase(&txn, &customer, actor, &reason, now)
                .await
                .map(|a| (a, vec![customer.clone()])),
        };
        let (answer, about) = match result {
            Ok(a) => a,
            Err(Fail::Api(e)) => return Err(e),
            Err(Fail::Store(e)) => return Err(unavailable(e)),
        };
        let stored = request::ActiveModel {
            actor: Set(actor.to_owned()),
            request_id: Set(request_id.to_owned()),
            method: Set(answer.method().to_owned()),
            response: Set(answer.encode()),
            at: Set(now),
            customers: Set(Some(about.join(" "))),
        };
        let written = async {
            request::Entity::insert(stored)
                .exec_without_returning(&txn)
                .await?;
            txn.commit().await
        };
        written.await.map_err(|e| unavailable(e.into()))?;
        Ok(answer)
    }

    async fn update(
        &self,
        txn: &impl ConnectionTrait,
        actor: &str,
        req: v1::UpdateCustomerRequest,
        now: i64,
    ) -> Result<Changed, Fail> {
        let c = live_customer(txn, &req.customer_id, "customer_id").await?;
        let mut attributes = parse_map(&c.attributes);
        let mut changed: Vec<String> = Vec::new();
        for (k, v) in &req.attributes {
            if v.is_empty() {
                attributes.remove(k);
            } else {
                attributes.insert(k.clone(), v.clone());
            }
            changed.push(format!("attribute {k}"));
        }
        let mut active = c.clone().into_active_model();
        if let Some(name) = &req.display_name {
            active.display_name = Set(name.clone());
            active.name_key = Set(name.to_lowercase());
            changed.push("display_name".into());
        }
        active.attributes = Set(json_map(&attributes));
        active.updated_at = Set(now);
        active.update(txn).await?;
        for raw in &req.add_identifiers {
            let i = normalize(&self.cfg.rules, raw, "add_identifiers")?;
            match identifier::Entity::find_by_id(key_of(&i)).one(txn).await? {
                Some(owner) if owner.customer_id == c.id => {}
                Some(_) => {
                    return Err(ApiError::FailedPrecondition(format!(
                        "add_identifiers: the {} belongs to another customer; merge the two instead",
                        i.kind()
                    ))
                    .into());
                }
                None => {
                    identifier::ActiveModel {
                        kind: Set(i.kind().as_str().to_owned()),
                        value: Set(i.value().to_owned()),
                        customer_id: Set(c.id.clone()),
                        added_at: Set(now),
                    }
                    .insert(txn)
                    .await?;
                    changed.push(format!("added {}", i.kind()));
                }
            }
        }
        for raw in &req.remove_identifiers {
            let i = normalize(&self.cfg.rules, raw, "remove_identifiers")?;
            let gone = identifier::Entity::delete_many()
                .filter(identifier::Column::Kind.eq(i.kind().as_str()))
                .filter(identifier::Column::Value.eq(i.value()))
                .filter(identifier::Column::CustomerId.eq(c.id.clone()))
                .exec(txn)
                .await?;
            if gone.rows_affected > 0 {
                changed.push(format!("removed {}", i.kind()));
            }
        }
        audit_row(txn, &c.id, "update", actor, "", &changed.join(", "), now).await?;
        Ok(Changed::Customer(
            read::customer(txn, &c.id)
                .await?
                .ok_or_else(|| Fail::Api(ApiError::Internal("updated customer vanished".into())))?,
        ))
    }

    /// Moves everything of `merged` to `survivor`, recording what moved.
    async fn merge(
        &self,
        txn: &impl ConnectionTrait,
        survivor: &str,
        merged: &str,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<v1::MergeResult, Fail> {
        if survivor == merged {
            return Err(ApiError::invalid("merged_id", "is the survivor itself").into());
        }
        let s = live_customer(txn, survivor, "survivor_id").await?;
        let m = live_customer(txn, merged, "merged_id").await?;
        let idents = identifier::Entity::find()
            .filter(identifier::Column::CustomerId.eq(merged))
            .all(txn)
            .await?;
        let interactions: Vec<String> = interaction::Entity::find()
            .filter(interaction::Column::CustomerId.eq(merged))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let consents: Vec<String> = consent::Entity::find()
            .filter(consent::Column::CustomerId.eq(merged))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        identifier::Entity::update_many()
            .col_expr(identifier::Column::CustomerId, Expr::value(survivor))
            .filter(identifier::Column::CustomerId.eq(merged))
            .exec(txn)
            .await?;
        interaction::Entity::update_many()
            .col_expr(interaction::Column::CustomerId, Expr::value(survivor))
            .filter(interaction::Column::CustomerId.eq(merged))
            .exec(txn)
            .await?;
        consent::Entity::update_many()
            .col_expr(consent::Column::CustomerId, Expr::value(survivor))
            .filter(consent::Column::CustomerId.eq(merged))
            .exec(txn)
            .await?;
        // The survivor keeps its own values and gains what only the merged one had.
        let mut attrs = parse_map(&s.attributes);
        let mut copied = Vec::new();
        for (k, v) in parse_map(&m.attributes) {
            if !attrs.contains_key(&k) {
                attrs.insert(k.clone(), v);
                copied.push(k);
            }
        }
        let copy_name = s.display_name.is_empty() && !m.display_name.is_empty();
        let mut sa = s.clone().into_active_model();
        sa.attributes = Set(json_map(&attrs));
        if copy_name {
            sa.display_name = Set(m.display_name.clone());
            sa.name_key = Set(m.name_key.clone());
        }
        sa.updated_at = Set(now);
        sa.update(txn).await?;
        let mut ma = m.into_active_model();
        ma.merged_into = Set(Some(survivor.to_owned()));
        ma.updated_at = Set(now);
        ma.update(txn).await?;
        let (a, b) = if survivor < merged {
            (survivor, merged)
        } else {
            (merged, survivor)
        };
        suggestion::Entity::delete_many()
            .filter(suggestion::Column::CustomerA.eq(a))
            .filter(suggestion::Column::CustomerB.eq(b))
            .exec(txn)
            .await?;
        let detail = serde_json::json!({
            "identifiers": idents.iter().map(|i| [i.kind.clone(), i.value.clone()]).collect::<Vec<_>>(),
            "interactions": interactions,
            "consents": consents,
            "copied_attributes": copied,
            "copied_name": copy_name,
        });
        let merge_id = new_id();
        merge::ActiveModel {
            id: Set(merge_id.clone()),
            survivor_id: Set(survivor.to_owned()),
            merged_id: Set(merged.to_owned()),
            actor: Set(actor.to_owned()),
            reason: Set(reason.to_owned()),
            at: Set(now),
            detail: Set(detail.to_string()),
            undone_at: Set(None),
        }
        .insert(txn)
        .await?;
        let summary = format!(
            "merge {merge_id}: {} identifiers, {} interactions, {} consents moved",
            idents.len(),
            interactions.len(),
            consents.len()
        );
        audit_row(txn, survivor, "merge", actor, reason, &summary, now).await?;
        audit_row(txn, merged, "merge", actor, reason, &summary, now).await?;
        customer_event(
            txn,
            v1::customer_changed::Kind::Merged,
            survivor,
            merged,
            &merge_id,
        )
        .await?;
        Ok(v1::MergeResult {
            merge_id,
            customer: read::customer(txn, survivor).await?,
            identifiers_moved: u32::try_from(idents.len()).unwrap_or(u32::MAX),
            interactions_moved: u32::try_from(interactions.len()).unwrap_or(u32::MAX),
        })
    }

    /// Undoes a merge: what it moved (and interactions that arrived since
    /// through an identifier it moved) goes back.
    async fn unmerge(
        &self,
        txn: &impl ConnectionTrait,
        merge_id: &str,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<(Changed, Vec<String>), Fail> {
        uuid_arg(merge_id, "merge_id")?;
        let mg = merge::Entity::find_by_id(merge_id.to_owned())
            .one(txn)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("merge {merge_id}")))?;
        if mg.undone_at.is_some() {
            return Err(ApiError::FailedPrecondition("the merge was already undone".into()).into());
        }
        let s = match live_customer(txn, &mg.survivor_id, "merge_id").await {
            Ok(s) => s,
            Err(Fail::Store(e)) => return Err(Fail::Store(e)),
            Err(Fail::Api(_)) => {
                return Err(ApiError::FailedPrecondition(
                    "the surviving customer was merged again or erased since: undo that first"
                        .into(),
                )
                .into());
            }
        };
        let m = customer::Entity::find_by_id(mg.merged_id.clone())
            .one(txn)
            .await?
            .filter(|m| m.erased_at.is_none() && m.merged_into.as_deref() == Some(&s.id))
            .ok_or_else(|| {
                ApiError::FailedPrecondition("the merged customer is no longer merged".into())
            })?;
        let detail: serde_json::Value = serde_json::from_str(&mg.detail).unwrap_or_default();
        let strings = |key: &str| -> Vec<String> {
            detail[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let idents: Vec<(String, String)> = detail["identifiers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p[0].as_str()?.to_owned(), p[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        for (kind, value) in &idents {
            identifier::Entity::update_many()
                .col_expr(identifier::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(identifier::Column::Kind.eq(kind.clone()))
                .filter(identifier::Column::Value.eq(value.clone()))
                .filter(identifier::Column::CustomerId.eq(s.id.clone()))
                .exec(txn)
                .await?;
        }
        let moved = strings("interactions");
        let by: Vec<String> = idents.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        for chunk in by_size(&moved, 500, |i| i.len() + VALUE_OVERHEAD) {
            interaction::Entity::update_many()
                .col_expr(interaction::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(interaction::Column::CustomerId.eq(s.id.clone()))
                .filter(interaction::Column::Id.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        for chunk in by_size(&by, 500, |i| i.len() + VALUE_OVERHEAD) {
            interaction::Entity::update_many()
                .col_expr(interaction::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(interaction::Column::CustomerId.eq(s.id.clone()))
                .filter(interaction::Column::ResolvedBy.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        let consents = strings("consents");
        for chunk in by_size(&consents, 500, |i| i.len() + VALUE_OVERHEAD) {
            consent::Entity::update_many()
                .col_expr(consent::Column::CustomerId, Expr::value(m.id.clone()))
                .filter(consent::Column::Id.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        let mut attrs = parse_map(&s.attributes);
        let theirs = parse_map(&m.attributes);
        for k in strings("copied_attributes") {
            if attrs.get(&k) == theirs.get(&k) {
                attrs.remove(&k);
            }
        }
        let mut sa = s.clone().into_active_model();
        sa.attributes = Set(json_map(&attrs));
        if detail["copied_name"].as_bool() == Some(true) && s.display_name == m.display_name {
            sa.display_name = Set(String::new());
            sa.name_key = Set(String::new());
        }
        sa.updated_at = Set(now);
        sa.update(txn).await?;
        let mut ma = m.clone().into_active_model();
        ma.merged_into = Set(None);
        ma.updated_at = Set(now);
        ma.update(txn).await?;
        let mut done = mg.into_active_model();
        done.undone_at = Set(Some(now));
        done.update(txn).await?;
        let summary = format!("unmerge {merge_id}");
        audit_row(txn, &s.id, "unmerge", actor, reason, &summary, now).await?;
        audit_row(txn, &m.id, "unmerge", actor, reason, &summary, now).await?;
        customer_event(
            txn,
            v1::customer_changed::Kind::Unmerged,
            &s.id,
            &m.id,
            merge_id,
        )
        .await?;
        Ok((
            Changed::Unmerge(v1::UnmergeResult {
                survivor: read::customer(txn, &s.id).await?,
                restored: read::customer(txn, &m.id).await?,
            }),
            vec![s.id.clone(), m.id.clone()],
        ))
    }

    async fn consent(
        &self,
        txn: &impl ConnectionTrait,
        actor: &str,
        request_id: &str,
        input: ConsentInput,
        now: i64,
    ) -> Result<(Changed, Vec<String>), Fail> {
        let cid = match (&input.customer, &input.identifier) {
            (Some(id), _) => live_customer(txn, id, "customer_id").await?.id,
            (None, Some(i)) => match identifier::Entity::find_by_id(key_of(i)).one(txn).await? {
                Some(owner) => owner.customer_id,
                None => {
                    // An opt-out from a number nobody knew yet still has to hold.
                    let cid = new_id();
                    customer::ActiveModel {
                        id: Set(cid.clone()),
                        display_name: Set(String::new()),
                        name_key: Set(String::new()),
                        attributes: Set("{}".into()),
                        created_at: Set(now),
                        updated_at: Set(now),
                        merged_into: Set(None),
                        erased_at: Set(None),
                    }
                    .insert(txn)
                    .await?;
                    identifier::ActiveModel {
                        kind: Set(i.kind().as_str().to_owned()),
                        value: Set(i.value().to_owned()),
                        customer_id: Set(cid.clone()),
                        added_at: Set(now),
                    }
                    .insert(txn)
                    .await?;
                    cid
                }
            },
            (None, None) => {
                return Err(ApiError::invalid(
                    "customer_id",
                    "give a customer id or an identifier",
                )
                .into());
            }
        };
        let row = consent::Model {
            id: new_id(),
            customer_id: cid.clone(),
            channel: input.channel.to_owned(),
            purpose: input.purpose,
            state: if input.granted { "granted" } else { "revoked" }.to_owned(),
            source: input.source,
            note: input.note,
            at: input.at,
            recorded_by: actor.to_owned(),
        };
        consent::Entity::insert(row.clone().into_active_model().reset_all())
            .exec_without_returning(txn)
            .await?;
        let record = read::consent_record(&row);
        // Senders act on what is current for that channel and purpose, which a
        // back-dated record does not change.
        let ledger = read::consents(txn, &cid, Some(input.channel), Some(&row.purpose)).await?;
        let current = read::current(&ledger)
            .into_iter()
            .next()
            .unwrap_or_else(|| record.clone());
        // Senders block on the identifiers of that channel without asking.
        let idents: Vec<v1::CustomerIdentifier> = identifier::Entity::find()
            .filter(identifier::Column::CustomerId.eq(cid.clone()))
            .all(txn)
            .await?
            .iter()
            .filter(|i| relevant(input.channel, &i.kind))
            .map(read::identifier_wire)
            .collect();
        let changed = v1::ConsentChanged {
            customer_id: cid.clone(),
            consent: Some(current),
            identifiers: idents,
            request_id: request_id.to_owned(),
        };
        outbox::enqueue(
            txn,
            SERVICE,
            &centralino_bus::keys::consent_changed(input.channel),
            &new_envelope(SERVICE, &changed),
        )
        .await?;
        Ok((Changed::Consent(record), vec![cid]))
    }

    /// Removes a customer's personal data; what stays is anonymous (channel,
    /// queue, agent, times, status, outcome) plus opt-outs by identifier hash.
    async fn erase(
        &self,
        txn: &impl ConnectionTrait,
        customer_id: &str,
        actor: &str,
        reason: &str,
        now: i64,
    ) -> Result<Changed, Fail> {
        let c = live_customer(txn, customer_id, "customer_id").await?;
        let idents = identifier::Entity::find()
            .filter(identifier::Column::CustomerId.eq(c.id.clone()))
            .all(txn)
            .await?;
        let consents = consent::Entity::find()
            .filter(consent::Column::CustomerId.eq(c.id.clone()))
            .order_by_asc(consent::Column::At)
            .order_by_asc(consent::Column::Id)
            .all(txn)
            .await?;
        let mut current: HashMap<(String, String), &consent::Model> = HashMap::new();
        for row in &consents {
            current.insert((row.channel.clone(), row.purpose.clone()), row);
        }
        for ((channel, purpose), row) in &current {
            if row.state != "revoked" {
                continue;
            }
            for i in idents.iter().filter(|i| relevant(channel, &i.kind)) {
                suppression::Entity::insert(suppression::ActiveModel {
                    identifier_hash: Set(self.suppression.hash(&i.kind, &i.value)),
                    channel: Set(channel.clone()),
                    purpose: Set(purpose.clone()),
                    at: Set(row.at),
                })
                .on_conflict(
                    OnConflict::columns([
                        suppression::Column::IdentifierHash,
                        suppression::Column::Channel,
                        suppression::Column::Purpose,
                    ])
                    .update_column(suppression::Column::At)
                    .to_owned(),
                )
                .exec_without_returning(txn)
                .await?;
            }
        }
        identifier::Entity::delete_many()
            .filter(identifier::Column::CustomerId.eq(c.id.clone()))
            .exec(txn)
            .await?;
        consent::Entity::delete_many()
            .filter(consent::Column::CustomerId.eq(c.id.clone()))
            .exec(txn)
            .await?;
        // Records merged into this one hold the same person's data.
        let mut absorbed: Vec<String> = Vec::new();
        let mut frontier = vec![c.id.clone()];
        while !frontier.is_empty() {
            // Merged into a record merged into this one, at any depth.
            let next: Vec<String> = customer::Entity::find()
                .filter(customer::Column::MergedInto.is_in(frontier.clone()))
                .all(txn)
                .await?
                .into_iter()
                .map(|m| m.id)
                .filter(|id| !absorbed.contains(id) && *id != c.id)
                .collect();
            absorbed.extend(next.iter().cloned());
            frontier = next;
        }
        let mut people = absorbed.clone();
        people.push(c.id.clone());
        customer::Entity::update_many()
            .col_expr(customer::Column::DisplayName, Expr::value(""))
            .col_expr(customer::Column::NameKey, Expr::value(""))
            .col_expr(customer::Column::Attributes, Expr::value("{}"))
            .col_expr(customer::Column::ErasedAt, Expr::value(now))
            .col_expr(customer::Column::UpdatedAt, Expr::value(now))
            .filter(customer::Column::Id.is_in(people.clone()))
            .exec(txn)
            .await?;
        let interactions: Vec<String> = interaction::Entity::find()
            .filter(interaction::Column::CustomerId.eq(c.id.clone()))
            .all(txn)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let mut messages = 0u64;
        for chunk in by_size(&interactions, 500, |i| i.len() + VALUE_OVERHEAD) {
            interaction::Entity::update_many()
                .col_expr(
                    interaction::Column::CustomerId,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(interaction::Column::Subject, Expr::value(""))
                .col_expr(interaction::Column::Notes, Expr::value(""))
                .col_expr(interaction::Column::ConversationId, Expr::value(""))
                .col_expr(interaction::Column::RecordingRef, Expr::value(""))
                .col_expr(interaction::Column::IvrPath, Expr::value("[]"))
                .col_expr(interaction::Column::Attributes, Expr::value("{}"))
                // Marked, so a late event never links it to anybody again.
                .col_expr(interaction::Column::ResolvedBy, Expr::value(ERASED))
                .filter(interaction::Column::Id.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
            messages += message::Entity::update_many()
                .col_expr(message::Column::Subject, Expr::value(""))
                .col_expr(message::Column::Body, Expr::value(""))
                .col_expr(message::Column::Sender, Expr::value(""))
                .col_expr(message::Column::Recipient, Expr::value(""))
                .col_expr(message::Column::Attributes, Expr::value("{}"))
                .filter(message::Column::InteractionId.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?
                .rows_affected;
        }
        for col in [suggestion::Column::CustomerA, suggestion::Column::CustomerB] {
            suggestion::Entity::delete_many()
                .filter(col.is_in(people.clone()))
                .exec(txn)
                .await?;
        }
        for col in [merge::Column::SurvivorId, merge::Column::MergedId] {
            merge::Entity::update_many()
                .col_expr(merge::Column::Detail, Expr::value("{}"))
                .filter(col.is_in(people.clone()))
                .exec(txn)
                .await?;
        }
        // Answers kept for retries name the customer: their content goes, and
        // a retry is refused rather than run again (a consent by phone number
        // would otherwise create the erased person anew).
        for chunk in people.chunks(50) {
            let mut about = Condition::any();
            for id in chunk {
                about = about.add(request::Column::Customers.contains(id.as_str()));
            }
            request::Entity::update_many()
                .col_expr(request::Column::Method, Expr::value(ERASED_ANSWER))
                .col_expr(request::Column::Response, Expr::value(Vec::<u8>::new()))
                .filter(about)
                .exec(txn)
                .await?;
        }
        let result = v1::EraseResult {
            customer_id: c.id.clone(),
            interactions_anonymized: u32::try_from(interactions.len()).unwrap_or(u32::MAX),
            messages_erased: u32::try_from(messages).unwrap_or(u32::MAX),
            identifiers_removed: u32::try_from(idents.len()).unwrap_or(u32::MAX),
        };
        let summary = format!(
            "{} interactions anonymized, {} messages erased, {} identifiers removed, {} merged records erased",
            result.interactions_anonymized,
            result.messages_erased,
            result.identifiers_removed,
            absorbed.len()
        );
        audit_row(txn, &c.id, "erase", actor, reason, &summary, now).await?;
        customer_event(txn, v1::customer_changed::Kind::Erased, &c.id, "", "").await?;
        Ok(Changed::Erase(result))
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
