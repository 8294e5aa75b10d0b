//! The importer of one mailbox: an IMAP session that commits each batch of new
//! messages with the position it reached, and flags them on the server once
//! their events are on the bus.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use centralino_bus::{Envelope, keys, new_envelope};
use centralino_mime::{Inbound, Malformed};
use centralino_proto::v1;
use centralino_store::StoreError;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use sha2::Digest as _;
use tokio::sync::{Notify, watch};

use crate::entities::{attachment, message, outbound, position, thread, uid};
use crate::imap::{self, ImapError, ImapSession, within};
use crate::{EmailConfig, MailboxConfig, SERVICE, compose, now_ms, pause};

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sea_orm::DbErr> for SessionError {
    fn from(e: sea_orm::DbErr) -> Self {
        SessionError::Store(e.into())
    }
}

pub(crate) struct Importer {
    pub config: Arc<EmailConfig>,
    pub mailbox: MailboxConfig,
    pub db: DatabaseConnection,
    /// Every write transaction checks this instance still leads.
    pub fence: centralino_store::leader::Fence,
    pub relay: Arc<Notify>,
    pub send_wake: Arc<Notify>,
    /// UIDs the server listed but returned no content for, and how often.
    pub unreadable: std::sync::Mutex<HashMap<u32, u32>>,
}

/// One fetched message.
struct Fetched {
    uid: u32,
    size: u64,
    raw: Vec<u8>,
    headers_only: bool,
}

impl Importer {
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = centralino_bus::Backoff::peer();
        loop {
            match self.session(&mut stop, &mut backoff).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(
                    mailbox = %self.mailbox.name,
                    error = %e,
                    retry_in_ms = backoff.peek().as_millis() as u64,
                    "email: mailbox session ended; reconnecting"
                ),
            }
            if pause(backoff.next_wait(), &mut stop).await {
                return;
            }
        }
    }

    async fn session(
        &self,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut centralino_bus::Backoff,
    ) -> Result<(), SessionError> {
        let t = self.config.io_timeout;
        let endpoint = &self.mailbox.imap;
        let mut session = imap::connect(endpoint, t).await?;
        let capabilities = within(t, "CAPABILITY", session.capabilities()).await?;
        let idle = capabilities.has_str("IDLE");
        let settle = match &self.mailbox.after_import {
            crate::AfterImport::MarkSeen => imap::Settle::Seen,
            crate::AfterImport::Move(folder) => {
                // Already there is the usual answer; a real failure shows at MOVE.
                let _ = within(t, "CREATE", session.create(folder)).await;
                if capabilities.has_str("MOVE") {
                    imap::Settle::Move(folder.clone())
                } else if capabilities.has_str("UIDPLUS") {
                    imap::Settle::CopyDelete(folder.clone())
                } else {
                    tracing::warn!(mailbox = %self.mailbox.name, "email: the server can neither MOVE nor UID EXPUNGE; imported mail is marked seen instead");
                    imap::Settle::Seen
                }
            }
        };
        let selected = within(t, "SELECT", session.select(&endpoint.folder)).await?;
        let validity = selected
            .uid_validity
            .ok_or(ImapError::Missing("UIDVALIDITY"))?;
        let mut last_uid = self.position(validity).await?;
        tracing::info!(mailbox = %self.mailbox.name, uidvalidity = validity, last_uid, idle, "email: mailbox connected");
        let mut waiting_pause = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                let _ = within(t, "LOGOUT", session.logout()).await;
                return Ok(());
            }
            loop {
                let listed = imap::list_new(&mut session, last_uid, t).await?;
                if listed.is_empty() {
                    break;
                }
                for chunk in self.chunks(&listed) {
                    let fetched = self.fetch(&mut session, chunk).await?;
                    let reached = chunk.iter().map(|(uid, _)| *uid).max().unwrap_or(last_uid);
                    last_uid = self.commit(validity, reached, fetched).await?;
                    backoff.reset();
                    self.relay.notify_one();
                    if *stop.borrow() {
                        break;
                    }
                }
                if *stop.borrow() {
                    break;
                }
            }
            let waiting = self
                .settle_published(&mut session, validity, &settle)
                .await?;
            // A whole round went through: whatever failed before is behind us.
            backoff.reset();
            if *stop.borrow() {
                continue;
            }
            if waiting {
                // Events still on their way to the broker (it may be down):
                // look again, less and less often.
                pause(waiting_pause, stop).await;
                waiting_pause = (waiting_pause * 2).min(Duration::from_secs(5));
                continue;
            }
            waiting_pause = Duration::from_millis(100);
            if mailbox_changed(&session) {
                // New mail was announced during an earlier command; IDLE would
                // not announce it again.
                continue;
            } else if idle {
                let mut handle = session.idle();
                within(t, "IDLE", handle.init()).await?;
                {
                    let (wait, _interrupt) = handle.wait_with_timeout(self.config.idle_renew);
                    tokio::select! {
                        // Keep-alives reset the library's own timer: renew on the
                        // clock. Mail announced while IDLE was starting went to
                        // the unsolicited channel; the poll interval bounds that.
                        r = tokio::time::timeout(self.config.idle_renew.min(self.config.poll_interval), wait) => {
                            if let Ok(r) = r {
                                r.map_err(|e| ImapError::Imap("IDLE", e))?;
                            }
                        }
                        _ = stop.wait_for(|s| *s) => {}
                    }
                }
                session = within(t, "DONE", handle.done()).await?;
            } else {
                pause(self.config.poll_interval, stop).await;
            }
        }
    }

    /// `listed` cut into batches of at most `batch_size` messages and about
    /// [`BATCH_BYTES`] (a message larger than that is a batch of its own).
    fn chunks<'a>(&self, listed: &'a [(u32, u64)]) -> Vec<&'a [(u32, u64)]> {
        let max = self.config.max_message_bytes;
        let mut out = Vec::new();
        let (mut start, mut bytes) = (0, 0u64);
        for (i, (_, size)) in listed.iter().enumerate() {
            // What is fetched of an oversized message is its header block.
            let size = if *size > max { 64 * 1024 } else { *size };
            if i > start && (i - start >= self.config.batch_size || bytes + size > BATCH_BYTES) {
                out.push(&listed[start..i]);
                start = i;
                bytes = 0;
            }
            bytes += size;
        }
        if start < listed.len() {
            out.push(&listed[start..]);
        }
        out
    }

    /// Which server folder the position counts in: another account, server or
    /// folder under the same mailbox name starts over.
    fn source(&self) -> String {
        let i = &self.mailbox.imap;
        format!("{}@{}:{}/{}", i.user, i.host, i.port, i.folder)
    }

    /// The committed last UID for `validity`; a new UIDVALIDITY (or another
    /// folder) starts over at 0 (messages already imported are recognised by
    /// their Message-ID).
    async fn position(&self, validity: u32) -> Result<u32, StoreError> {
        let stored = position::Entity::find_by_id(self.mailbox.name.clone())
            .one(&self.db)
            .await?;
        let source = self.source();
        match stored {
            Some(p) if p.uidvalidity == i64::from(validity) && p.source == source => {
                Ok(u32::try_from(p.last_uid).unwrap_or(0))
            }
            other => {
                if let Some(p) = other {
                    tracing::warn!(
                        mailbox = %self.mailbox.name,
                        before = p.uidvalidity,
                        now = validity,
                        "email: UIDVALIDITY or folder changed; rescanning the folder (messages already imported are recognised and not imported again)"
                    );
                }
                let txn = self.fence.begin(&self.db).await?;
                save_position(&txn, &self.mailbox.name, &source, validity, 0).await?;
                txn.commit().await?;
                Ok(0)
            }
        }
    }

    /// Fetches `listed`. A UID the server does not return must be gone
    /// (expunged meanwhile, checked with UID SEARCH); one still there is asked
    /// for again on its own, so no message is ever skipped.
    async fn fetch(
        &self,
        session: &mut ImapSession,
        listed: &[(u32, u64)],
    ) -> Result<Vec<Fetched>, ImapError> {
        let max = self.config.max_message_bytes;
        let sizes: HashMap<u32, u64> = listed.iter().copied().collect();
        let (whole, big): (Vec<u32>, Vec<u32>) = listed
            .iter()
            .map(|(uid, _)| *uid)
            .partition(|uid| sizes.get(uid).copied().unwrap_or(u64::MAX) <= max);
        let total: u64 = whole.iter().filter_map(|u| sizes.get(u)).sum();
        // Slow links: allow at least 256 KiB/s on top of the usual timeout.
        let t = self.config.io_timeout + Duration::from_secs(total / (256 * 1024));
        let mut out = Vec::with_capacity(listed.len());
        for (uids, headers_only) in [(whole, false), (big, true)] {
            for (uid, raw) in imap::fetch(session, &uids, headers_only, t).await? {
                if sizes.contains_key(&uid) {
                    out.push(Fetched {
                        uid,
                        size: sizes.get(&uid).copied().unwrap_or(raw.len() as u64),
                        raw,
                        headers_only,
                    });
                }
            }
        }
        out.sort_by_key(|f| f.uid);
        out.dedup_by_key(|f| f.uid);
        if out.len() < listed.len() {
            let got: HashSet<u32> = out.iter().map(|f| f.uid).collect();
            let missing: Vec<u32> = listed
                .iter()
                .map(|(uid, _)| *uid)
                .filter(|uid| !got.contains(uid))
                .collect();
            let still_there = imap::present(session, &missing, self.config.io_timeout).await?;
            for uid in still_there {
                // Once more on its own; a message the server still will not
                // return is imported as unreadable (it stays on the server)
                // rather than holding the mailbox up for ever.
                let headers_only = sizes.get(&uid).copied().unwrap_or(u64::MAX) > max;
                let mut again = imap::fetch(session, &[uid], headers_only, t).await?;
                let raw = match again.pop() {
                    Some((_, raw)) => raw,
                    None => {
                        // A hiccup heals on a new session; a message that stays
                        // unreadable over three is given up on (it stays on the server).
                        let tries = {
                            let mut tries = self
                                .unreadable
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            let n = tries.entry(uid).or_insert(0);
                            *n += 1;
                            *n
                        };
                        if tries < 3 {
                            return Err(ImapError::Missing("a message it listed"));
                        }
                        tracing::warn!(mailbox = %self.mailbox.name, uid, "email: the server returns no content for a message; imported as unreadable");
                        Vec::new()
                    }
                };
                out.push(Fetched {
                    uid,
                    size: sizes.get(&uid).copied().unwrap_or(raw.len() as u64),
                    raw,
                    headers_only,
                });
            }
            out.sort_by_key(|f| f.uid);
        }
        Ok(out)
    }

    /// Commits one batch: messages, conversations, UIDs, events and the new
    /// position, together. Returns the position reached.
    async fn commit(
        &self,
        validity: u32,
        last: u32,
        batch: Vec<Fetched>,
    ) -> Result<u32, StoreError> {
        if batch.is_empty() {
            // Every listed UID is gone: only the position moves.
            let txn = self.fence.begin(&self.db).await?;
            save_position(&txn, &self.mailbox.name, &self.source(), validity, last).await?;
            txn.commit().await?;
            return Ok(last);
        }
        let now = now_ms();
        let parsed: Vec<(Fetched, Result<Inbound, Malformed>)> = batch
            .into_iter()
            .map(|f| {
                let understood = if f.headers_only {
                    centralino_mime::parse_headers(&f.raw)
                } else {
                    centralino_mime::parse(&f.raw)
                };
                (f, understood)
            })
            .collect();
        let keys: Vec<String> = parsed.iter().map(|(f, m)| dedupe_key(&f.raw, m)).collect();

        let txn = self.fence.begin(&self.db).await?;
        let known: HashMap<String, String> = message::Entity::find()
            .filter(message::Column::DedupeKey.is_in(keys.clone()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|m| (m.dedupe_key, m.id))
            .collect();
        let wanted_refs: HashSet<String> = parsed
            .iter()
            .filter_map(|(_, m)| m.as_ref().ok())
            .flat_map(|m| {
                m.replies_to
                    .iter()
                    .cloned()
                    .chain(m.message_id.clone())
                    .chain(
                        m.bounce
                            .iter()
                            .filter_map(|b| b.original_message_id.clone()),
                    )
            })
            .collect();
        let mut by_rfc: HashMap<String, message::Model> = HashMap::new();
        for chunk in wanted_refs.into_iter().collect::<Vec<_>>().chunks(500) {
            for m in message::Entity::find()
                .filter(message::Column::RfcId.is_in(chunk.to_vec()))
                .all(&txn)
                .await?
            {
                // One of our own messages wins over a copy of it that came back.
                if let Some(rfc) = m.rfc_id.clone()
                    && (m.direction == "outbound" || !by_rfc.contains_key(&rfc))
                {
                    by_rfc.insert(rfc, m);
                }
            }
        }
        let tokens: Vec<String> = parsed
            .iter()
            .filter_map(|(_, m)| m.as_ref().ok()?.token.clone())
            .collect();
        let mut threads: HashMap<String, thread::Model> = HashMap::new();
        let mut by_token: HashMap<String, String> = HashMap::new();
        let linked: Vec<String> = by_rfc
            .values()
            .filter_map(|m| m.interaction_id.clone())
            .collect();
        for t in thread::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(thread::Column::Token.is_in(tokens))
                    .add(thread::Column::InteractionId.is_in(linked)),
            )
            .all(&txn)
            .await?
        {
            by_token.insert(t.token.clone(), t.interaction_id.clone());
            threads.insert(t.interaction_id.clone(), t);
        }

        let mut plan = Plan::default();
        if self.config.ack.is_some() {
            let candidates: Vec<String> = parsed
                .iter()
                .filter_map(|(_, m)| m.as_ref().ok()?.reply_to.clone())
                .collect();
            for chunk in candidates.chunks(500) {
                let recent = outbound::Entity::find()
                    .filter(outbound::Column::Kind.eq("ack"))
                    .filter(outbound::Column::Recipient.is_in(chunk.to_vec()))
                    .filter(outbound::Column::CreatedAt.gt(now - ACK_EVERY_MS))
                    .all(&txn)
                    .await?;
                plan.acked
                    .extend(recent.into_iter().map(|o| o.recipient.to_ascii_lowercase()));
            }
        }
        let mut seen_keys: HashMap<String, String> = known;
        for ((fetched, understood), key) in parsed.into_iter().zip(keys) {
            if fetched.headers_only {
                // Only its headers were imported: it stays unread (and in
                // place) on the server, for the people who read that mailbox.
                plan.left_alone.insert(fetched.uid);
            }
            if let Some(existing) = seen_keys.get(&key) {
                plan.uids.push((fetched.uid, existing.clone()));
                continue;
            }
            let id = uuid::Uuid::now_v7().to_string();
            seen_keys.insert(key.clone(), id.clone());
            plan.uids.push((fetched.uid, id.clone()));
            self.decide(
                &mut plan,
                Decision {
                    id,
                    key,
                    fetched,
                    understood,
                    now,
                },
                &mut by_rfc,
                &mut threads,
                &by_token,
            );
        }

        // Writes, in dependency order.
        for chunk in centralino_store::chunks::by_size(&plan.messages, 200, |m| {
            m.raw.as_ref().map_or(0, Vec::len) + 600
        }) {
            message::Entity::insert_many(chunk.iter().map(|m| message::ActiveModel {
                id: Set(m.id.clone()),
                dedupe_key: Set(m.dedupe_key.clone()),
                interaction_id: Set(m.interaction_id.clone()),
                direction: Set(m.direction.clone()),
                mailbox: Set(m.mailbox.clone()),
                rfc_id: Set(m.rfc_id.clone()),
                outcome: Set(m.outcome.clone()),
                detail: Set(m.detail.clone()),
                size: Set(m.size),
                raw: Set(m.raw.clone()),
                created_at: Set(m.created_at),
            }))
            .exec_without_returning(&txn)
            .await?;
        }
        for chunk in centralino_store::chunks::by_size(&plan.attachments, 100, |a| {
            a.content.len() + a.name.len() + 200
        }) {
            attachment::Entity::insert_many(chunk.iter().map(|a| attachment::ActiveModel {
                message_id: Set(a.message_id.clone()),
                position: Set(a.position),
                name: Set(a.name.clone()),
                content_type: Set(a.content_type.clone()),
                size: Set(a.size),
                content: Set(a.content.clone()),
            }))
            .exec_without_returning(&txn)
            .await?;
        }
        for t in plan.threads_changed.iter().filter_map(|i| threads.get(i)) {
            thread::Entity::insert(thread::ActiveModel {
                interaction_id: Set(t.interaction_id.clone()),
                token: Set(t.token.clone()),
                mailbox: Set(t.mailbox.clone()),
                customer: Set(t.customer.clone()),
                subject: Set(t.subject.clone()),
                refs: Set(t.refs.clone()),
                last_inbound: Set(t.last_inbound.clone()),
                created_at: Set(t.created_at),
            })
            .on_conflict(
                OnConflict::column(thread::Column::InteractionId)
                    .update_columns([thread::Column::Refs, thread::Column::LastInbound])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        for o in &plan.outbound {
            outbound::Entity::insert(o.clone())
                .exec_without_returning(&txn)
                .await?;
        }
        centralino_store::outbox::enqueue_many(&txn, SERVICE, &plan.events).await?;
        let mark = centralino_store::outbox::mark(&txn, SERVICE).await?;
        for chunk in plan.uids.chunks(500) {
            uid::Entity::insert_many(chunk.iter().map(|(u, message_id)| uid::ActiveModel {
                mailbox: Set(self.mailbox.name.clone()),
                uidvalidity: Set(i64::from(validity)),
                uid: Set(i64::from(*u)),
                message_id: Set(message_id.clone()),
                outbox_mark: Set(mark),
                // `flagged`: nothing more to do on the server for this UID.
                flagged: Set(plan.left_alone.contains(u)),
            }))
            .on_conflict(
                OnConflict::columns([
                    uid::Column::Mailbox,
                    uid::Column::Uidvalidity,
                    uid::Column::Uid,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        save_position(&txn, &self.mailbox.name, &self.source(), validity, last).await?;
        txn.commit().await?;
        if !plan.outbound.is_empty() {
            self.send_wake.notify_one();
        }
        tracing::debug!(mailbox = %self.mailbox.name, messages = plan.messages.len(), last_uid = last, "email: batch imported");
        Ok(last)
    }

    /// What one new message becomes.
    fn decide(
        &self,
        plan: &mut Plan,
        d: Decision,
        by_rfc: &mut HashMap<String, message::Model>,
        threads: &mut HashMap<String, thread::Model>,
        by_token: &HashMap<String, String>,
    ) {
        let mailbox = &self.mailbox;
        let mut row = message::Model {
            id: d.id.clone(),
            dedupe_key: d.key,
            interaction_id: None,
            direction: "inbound".into(),
            mailbox: mailbox.name.clone(),
            rfc_id: None,
            outcome: String::new(),
            detail: None,
            size: i64::try_from(d.fetched.size).unwrap_or(i64::MAX),
            raw: Some(d.fetched.raw),
            created_at: d.now,
        };
        let mut attributes: HashMap<String, String> =
            HashMap::from([("email.mailbox".to_owned(), mailbox.name.clone())]);
        let inbound = match d.understood {
            Ok(m) => m,
            Err(why) => {
                // Unreadable: still a conversation an agent sees, with the raw kept.
                row.outcome = "malformed".into();
                row.detail = Some(why.as_str().to_owned());
                attributes.insert("email.malformed".into(), why.as_str().into());
                let inbound = Inbound {
                    subject: "(unreadable message)".into(),
                    text: "This message could not be read; it is kept as received.".into(),
                    ..Inbound::default()
                };
                self.open(plan, &mut row, &inbound, attributes, d.now, threads, false);
                plan.messages.push(row);
                return;
            }
        };
        row.rfc_id = inbound.message_id.clone();
        if d.fetched.headers_only {
            row.outcome = "oversized".into();
            row.detail = Some(format!(
                "{} bytes, above the {}-byte limit; only the headers were imported and the message stays on the server",
                d.fetched.size, self.config.max_message_bytes
            ));
            attributes.insert("email.oversized".into(), d.fetched.size.to_string());
        }
        if let Some(bounce) = &inbound.bounce {
            // A delivery failure: it marks what bounced, it opens nothing.
            row.outcome = "bounce".into();
            let failed = bounce
                .original_message_id
                .as_ref()
                .and_then(|rfc| by_rfc.get(rfc))
                .filter(|m| m.direction == "outbound");
            match failed {
                Some(original) if bounce.failed() || bounce.delivered() => {
                    row.interaction_id = original.interaction_id.clone();
                    let (status, error) = if bounce.delivered() {
                        ("delivered", String::new())
                    } else {
                        let code = bounce.status.as_ref().map(|s| format!(" ({s})"));
                        ("failed", format!("bounced{}", code.unwrap_or_default()))
                    };
                    plan.event(
                        keys::Interaction::MessageStatus,
                        &v1::MessageStatusChanged {
                            message_id: original.id.clone(),
                            interaction_id: original.interaction_id.clone().unwrap_or_default(),
                            channel: v1::Channel::Email as i32,
                            status: status.into(),
                            error,
                            at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
                        },
                    );
                }
                Some(original) => {
                    // A delay warning: still trying; nothing to report yet.
                    row.interaction_id = original.interaction_id.clone();
                    row.detail = Some(format!(
                        "delivery report ({}), not a failure",
                        bounce.action.as_deref().unwrap_or("no action")
                    ));
                }
                None => {
                    // Not ours (sent from another program, or from before):
                    // someone should see it, so it opens a conversation like
                    // any mail, in the mailbox's queue, without acknowledgement.
                    tracing::info!(mailbox = %self.mailbox.name, "email: a delivery report for a message we do not know; opened as a conversation");
                    row.detail = Some("a bounce for a message we do not know".into());
                    attributes.insert("email.bounce".into(), "unknown-message".into());
                    self.open(plan, &mut row, &inbound, attributes, d.now, threads, false);
                }
            }
            plan.messages.push(row);
            return;
        }
        if let Some(ours) = inbound
            .message_id
            .as_ref()
            .and_then(|rfc| by_rfc.get(rfc))
            .filter(|m| m.direction == "outbound")
        {
            // Our own message delivered back to us (a forward, a loop): kept, not
            // a new message of the conversation.
            row.outcome = "own".into();
            row.interaction_id = ours.interaction_id.clone();
            plan.messages.push(row);
            return;
        }
        for (position, a) in inbound.attachments.iter().enumerate() {
            plan.attachments.push(attachment::Model {
                message_id: d.id.clone(),
                position: i32::try_from(position).unwrap_or(i32::MAX),
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.content.len() as i64,
                content: a.content.clone(),
            });
        }
        if !inbound.attachments.is_empty() {
            attributes.insert(
                "email.attachments".into(),
                inbound.attachments.len().to_string(),
            );
        }
        if let Some(why) = inbound.automatic {
            attributes.insert("email.automatic".into(), why.as_str().into());
        }
        let conversation = inbound
            .replies_to
            .iter()
            .filter_map(|r| by_rfc.get(r)?.interaction_id.clone())
            .find(|i| threads.contains_key(i))
            .or_else(|| {
                inbound
                    .token
                    .as_ref()
                    .and_then(|t| by_token.get(t).cloned())
            });
        match conversation {
            Some(interaction) => {
                if row.outcome.is_empty() {
                    row.outcome = "follow-up".into();
                }
                row.interaction_id = Some(interaction.clone());
                if let (Some(t), Some(rfc)) = (threads.get_mut(&interaction), &inbound.message_id) {
                    t.refs = append_ref(&t.refs, rfc);
                    t.last_inbound = Some(rfc.clone());
                    plan.threads_changed.insert(interaction.clone());
                }
                plan.event(
                    keys::Interaction::Message,
                    &self.recorded(&d.id, &interaction, &inbound, attributes),
                );
            }
            None => {
                if row.outcome.is_empty() {
                    row.outcome = "new".into();
                }
                // History names a new customer after it (`Nicolò Bianchi`).
                if let Some(name) = inbound
                    .from_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                {
                    attributes.insert(
                        "customer_name".into(),
                        name.chars().take(MAX_NAME_CHARS).collect(),
                    );
                }
                // RFC 3834: only a person's mail, not ours, not old mail (a
                // first import of a folder with years in it), at most one per
                // address per ACK_EVERY.
                let recent = inbound
                    .date
                    .is_none_or(|secs| d.now / 1000 - secs < ACK_MAX_AGE_SECS);
                let ack = inbound.automatic.is_none()
                    && recent
                    && inbound.reply_to.as_deref().is_some_and(|a| {
                        !self.is_ours(a) && !plan.acked.contains(&a.to_ascii_lowercase())
                    });
                self.open(plan, &mut row, &inbound, attributes, d.now, threads, ack);
            }
        }
        if let Some(rfc) = &row.rfc_id {
            // Later messages of the same batch may answer this one.
            let light = message::Model {
                raw: None,
                ..row.clone()
            };
            by_rfc.entry(rfc.clone()).or_insert(light);
        }
        plan.messages.push(row);
    }

    /// Opens a conversation for `row` (which the caller then writes): the
    /// interaction, its thread, the message event, and the acknowledgement when `ack`.
    #[allow(clippy::too_many_arguments)]
    fn open(
        &self,
        plan: &mut Plan,
        row: &mut message::Model,
        inbound: &Inbound,
        attributes: HashMap<String, String>,
        now: i64,
        threads: &mut HashMap<String, thread::Model>,
        ack: bool,
    ) {
        let interaction = uuid::Uuid::now_v7().to_string();
        let token = centralino_mime::token_from(uuid::Uuid::new_v4().as_u64_pair().0);
        row.interaction_id = Some(interaction.clone());
        let identifiers: Vec<v1::CustomerIdentifier> = inbound
            .from
            .iter()
            .map(|a| v1::CustomerIdentifier {
                kind: v1::customer_identifier::Kind::Email as i32,
                value: a.clone(),
            })
            .collect();
        plan.event(
            keys::Interaction::Created,
            &v1::InteractionCreated {
                interaction: Some(v1::Interaction {
                    id: interaction.clone(),
                    channel: v1::Channel::Email as i32,
                    direction: v1::Direction::Inbound as i32,
                    identifiers: identifiers.clone(),
                    queue_hint: self.mailbox.queue.clone(),
                    priority: self.mailbox.priority,
                    // One thread is one interaction: the conversation is
                    // named by its id (a UUID, as on every channel); the
                    // short token that threads replies stays in the adapter.
                    conversation_id: interaction.clone(),
                    subject: inbound.subject.clone(),
                    created_at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
                    attributes: attributes.clone(),
                }),
            },
        );
        let mut recorded = self.recorded(&row.id, &interaction, inbound, attributes);
        recorded.identifiers = identifiers;
        plan.event(keys::Interaction::Message, &recorded);
        let mut refs = String::new();
        if let Some(rfc) = &inbound.message_id {
            refs = append_ref(&refs, rfc);
        }
        let mut t = thread::Model {
            interaction_id: interaction.clone(),
            token: token.clone(),
            mailbox: self.mailbox.name.clone(),
            customer: inbound.reply_to.clone(),
            subject: inbound.subject.clone(),
            refs,
            last_inbound: inbound.message_id.clone(),
            created_at: now,
        };
        if let (true, Some(template), Some(to)) = (ack, &self.config.ack, &inbound.reply_to) {
            self.acknowledge(plan, &mut t, template, to, now);
        }
        plan.threads_changed.insert(interaction.clone());
        threads.insert(interaction, t);
    }

    fn acknowledge(
        &self,
        plan: &mut Plan,
        t: &mut thread::Model,
        template: &crate::AckTemplate,
        to: &str,
        now: i64,
    ) {
        plan.acked.insert(to.to_ascii_lowercase());
        let id = uuid::Uuid::now_v7();
        let rfc_id = compose::new_rfc_id(&id, &self.mailbox.address);
        let subject = centralino_mime::with_token(
            &compose::fill(&template.subject, &t.subject, &t.token),
            &t.token,
        );
        let body = compose::fill(&template.body, &t.subject, &t.token);
        let refs: Vec<String> = t.refs.split_whitespace().map(str::to_owned).collect();
        let raw = match compose::build(&compose::Draft {
            from_address: &self.mailbox.address,
            from_name: &self.mailbox.display_name,
            to,
            subject: &subject,
            rfc_id: &rfc_id,
            references: &refs,
            in_reply_to: t.last_inbound.as_deref(),
            body: &body,
            attachments: &[],
            automatic: true,
        }) {
            Ok(raw) => raw,
            Err(e) => {
                tracing::warn!(mailbox = %self.mailbox.name, error = %e, "email: acknowledgement not built");
                return;
            }
        };
        let id = id.to_string();
        t.refs = append_ref(&t.refs, &rfc_id);
        plan.messages.push(message::Model {
            id: id.clone(),
            dedupe_key: format!("out:{id}"),
            interaction_id: Some(t.interaction_id.clone()),
            direction: "outbound".into(),
            mailbox: self.mailbox.name.clone(),
            rfc_id: Some(rfc_id),
            outcome: "ack".into(),
            detail: None,
            size: raw.len() as i64,
            raw: None,
            created_at: now,
        });
        plan.event(
            keys::Interaction::Message,
            &v1::MessageRecorded {
                message_id: id.clone(),
                interaction_id: t.interaction_id.clone(),
                channel: v1::Channel::Email as i32,
                direction: v1::Direction::Outbound as i32,
                identifiers: Vec::new(),
                subject,
                body,
                sender: self.mailbox.address.clone(),
                recipient: to.to_owned(),
                at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
                attributes: HashMap::from([("email.kind".to_owned(), "ack".to_owned())]),
            },
        );
        plan.outbound.push(outbound::ActiveModel {
            id: Set(id),
            interaction_id: Set(t.interaction_id.clone()),
            mailbox: Set(self.mailbox.name.clone()),
            kind: Set("ack".into()),
            sender: Set(self.mailbox.address.clone()),
            recipient: Set(to.to_owned()),
            raw: Set(raw),
            status: Set("queued".into()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
        });
    }

    fn recorded(
        &self,
        id: &str,
        interaction: &str,
        inbound: &Inbound,
        mut attributes: HashMap<String, String>,
    ) -> v1::MessageRecorded {
        if inbound.text_cut {
            attributes.insert("email.text_cut".into(), "true".into());
        }
        v1::MessageRecorded {
            message_id: id.to_owned(),
            interaction_id: interaction.to_owned(),
            channel: v1::Channel::Email as i32,
            direction: v1::Direction::Inbound as i32,
            identifiers: Vec::new(),
            subject: inbound.subject.clone(),
            body: inbound.text.clone(),
            sender: inbound.from.clone().unwrap_or_default(),
            recipient: self.mailbox.address.clone(),
            at: Some(centralino_proto::timestamp_from_chrono(chrono::Utc::now())),
            attributes,
        }
    }

    /// Whether `address` is one of our own mailboxes (never acknowledged: a loop).
    fn is_ours(&self, address: &str) -> bool {
        self.config
            .mailboxes
            .iter()
            .any(|m| m.address.eq_ignore_ascii_case(address))
    }

    /// Flags (or moves) every imported UID whose events the broker confirmed.
    /// Returns true when some are still waiting for their events.
    async fn settle_published(
        &self,
        session: &mut ImapSession,
        validity: u32,
        how: &imap::Settle,
    ) -> Result<bool, SessionError> {
        let unflagged = uid::Entity::find()
            .filter(uid::Column::Mailbox.eq(self.mailbox.name.clone()))
            .filter(uid::Column::Uidvalidity.eq(i64::from(validity)))
            .filter(uid::Column::Flagged.eq(false))
            .all(&self.db)
            .await?;
        if unflagged.is_empty() {
            return Ok(false);
        }
        let pending = centralino_store::outbox::oldest_pending(&self.db, SERVICE).await?;
        let (ready, waiting): (Vec<_>, Vec<_>) = unflagged
            .into_iter()
            .partition(|u| pending.is_none_or(|p| u.outbox_mark < p));
        if !ready.is_empty() {
            let mut uids: Vec<u32> = ready
                .iter()
                .filter_map(|u| u32::try_from(u.uid).ok())
                .collect();
            uids.sort_unstable();
            for chunk in uids.chunks(500) {
                imap::settle(session, chunk, how, self.config.io_timeout).await?;
                let values: Vec<i64> = chunk.iter().map(|u| i64::from(*u)).collect();
                let txn = self.fence.begin(&self.db).await?;
                uid::Entity::update_many()
                    .col_expr(uid::Column::Flagged, sea_orm::sea_query::Expr::value(true))
                    .filter(uid::Column::Mailbox.eq(self.mailbox.name.clone()))
                    .filter(uid::Column::Uidvalidity.eq(i64::from(validity)))
                    .filter(uid::Column::Uid.is_in(values))
                    .exec(&txn)
                    .await?;
                txn.commit().await?;
            }
        }
        Ok(!waiting.is_empty())
    }
}

/// Drains what the server announced in passing; true if the folder changed.
fn mailbox_changed(session: &ImapSession) -> bool {
    let mut changed = false;
    while let Ok(news) = session.unsolicited_responses.try_recv() {
        changed |= matches!(
            news,
            async_imap::types::UnsolicitedResponse::Exists(_)
                | async_imap::types::UnsolicitedResponse::Recent(_)
        );
    }
    changed
}

/// Longest sender's name passed on to history.
const MAX_NAME_CHARS: usize = 200;

/// No acknowledgement for mail dated more than a day ago.
const ACK_MAX_AGE_SECS: i64 = 24 * 3600;
/// At most one acknowledgement per address per hour.
const ACK_EVERY_MS: i64 = 3_600 * 1000;

/// About this many bytes of mail are fetched and committed together.
const BATCH_BYTES: u64 = 32 * 1024 * 1024;

struct Decision {
    id: String,
    key: String,
    fetched: Fetched,
    understood: Result<Inbound, Malformed>,
    now: i64,
}

/// Everything one batch writes.
#[derive(Default)]
struct Plan {
    uids: Vec<(u32, String)>,
    /// UIDs never to flag or move (oversized: only their headers were imported).
    left_alone: HashSet<u32>,
    messages: Vec<message::Model>,
    attachments: Vec<attachment::Model>,
    threads_changed: HashSet<String>,
    outbound: Vec<outbound::ActiveModel>,
    /// Addresses acknowledged within [`ACK_EVERY_MS`] (lowercase).
    acked: HashSet<String>,
    events: Vec<(centralino_bus::Key, Envelope)>,
}

impl Plan {
    /// An email interaction event (`interaction.email.<what>`).
    fn event<P: centralino_bus::TypedPayload>(&mut self, what: keys::Interaction, payload: &P) {
        let key = keys::interaction(v1::Channel::Email, what);
        self.events.push((key, new_envelope(SERVICE, payload)));
    }
}

/// One email is one message: by Message-ID and sender, or by its bytes when it
/// has no Message-ID (or cannot be read).
fn dedupe_key(raw: &[u8], understood: &Result<Inbound, Malformed>) -> String {
    match understood {
        Ok(Inbound {
            message_id: Some(id),
            from,
            ..
        }) => {
            let key = format!(
                "mid:{id}|{}",
                from.as_deref().unwrap_or("").to_ascii_lowercase()
            );
            if key.len() <= 400 {
                return key;
            }
            format!("midh:{:x}", sha2::Sha256::digest(key.as_bytes()))
        }
        _ => format!("sha:{:x}", sha2::Sha256::digest(raw)),
    }
}

/// `refs` plus `rfc`, space-separated, oldest first, bounded.
fn append_ref(refs: &str, rfc: &str) -> String {
    let mut list: Vec<String> = refs.split_whitespace().map(str::to_owned).collect();
    if !list.iter().any(|r| r == rfc) {
        list.push(rfc.to_owned());
    }
    compose::kept_refs(&list).join(" ")
}

async fn save_position(
    db: &impl ConnectionTrait,
    mailbox: &str,
    source: &str,
    validity: u32,
    last_uid: u32,
) -> Result<(), StoreError> {
    position::Entity::insert(position::ActiveModel {
        mailbox: Set(mailbox.to_owned()),
        source: Set(source.to_owned()),
        uidvalidity: Set(i64::from(validity)),
        last_uid: Set(i64::from(last_uid)),
        updated_at: Set(now_ms()),
    })
    .on_conflict(
        OnConflict::column(position::Column::Mailbox)
            .update_columns([
                position::Column::Source,
                position::Column::Uidvalidity,
                position::Column::LastUid,
                position::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}
