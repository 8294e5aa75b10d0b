//! Reads: straight from the database, never through the writer.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use centralino_proto::v1;
use centralino_server::ApiError;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult,
    Iterable, QueryFilter, QueryOrder, QuerySelect,
};

use crate::entities::{
    audit, consent, customer, identifier, interaction, message, step, suppression,
};
use crate::migrations::{INTERACTION_TSV, MESSAGE_TSV};
use crate::{parse_list, parse_map, ts};

/// Largest page any list returns.
pub(crate) const MAX_PAGE: u32 = 200;
const DEFAULT_PAGE: u32 = 50;
/// Messages shown per interaction in a timeline page.
const MESSAGES_PER_ENTRY: usize = 20;
/// Messages and steps returned with one interaction.
const MESSAGES_PER_INTERACTION: u64 = 500;

pub(crate) fn store(e: DbErr) -> ApiError {
    tracing::warn!(error = %e, "history read failed");
    ApiError::Unavailable("history store".into())
}

pub(crate) fn page_size(raw: u32) -> Result<u64, ApiError> {
    match raw {
        0 => Ok(u64::from(DEFAULT_PAGE)),
        n if n > MAX_PAGE => Err(ApiError::invalid(
            "page_size",
            format!("must be at most {MAX_PAGE}"),
        )),
        n => Ok(u64::from(n)),
    }
}

/// A cursor: the sort key and id of the last item returned.
pub(crate) fn token(key: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{key}\u{1f}{id}"))
}

pub(crate) fn untoken(raw: &str) -> Result<Option<(String, String)>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    let bytes = URL_SAFE_NO_PAD.decode(raw).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (k, i) = text.split_once('\u{1f}').ok_or_else(bad)?;
    Ok(Some((k.to_owned(), i.to_owned())))
}

fn time_cursor(raw: &str) -> Result<Option<(i64, String)>, ApiError> {
    match untoken(raw)? {
        None => Ok(None),
        Some((k, i)) => k
            .parse::<i64>()
            .map(|k| Some((k, i)))
            .map_err(|_| ApiError::invalid("page_token", "is not a token this service issued")),
    }
}

pub(crate) fn identifier_wire(i: &identifier::Model) -> v1::CustomerIdentifier {
    use v1::customer_identifier::Kind;
    let kind = match i.kind.as_str() {
        "phone" => Kind::Phone,
        "email" => Kind::Email,
        "codice_fiscale" => Kind::CodiceFiscale,
        "loyalty_card" => Kind::LoyaltyCard,
        "external_id" => Kind::ExternalId,
        _ => Kind::Unspecified,
    };
    v1::CustomerIdentifier {
        kind: kind.into(),
        value: i.value.clone(),
    }
}

fn channel_wire(name: &str) -> i32 {
    name.parse::<centralino_domain::Channel>()
        .map(|c| v1::Channel::from(c).into())
        .unwrap_or(0)
}

fn direction_wire(name: &str) -> i32 {
    match name {
        "outbound" => v1::Direction::Outbound.into(),
        _ => v1::Direction::Inbound.into(),
    }
}

pub(crate) fn consent_record(c: &consent::Model) -> v1::ConsentRecord {
    v1::ConsentRecord {
        channel: channel_wire(&c.channel),
        purpose: c.purpose.clone(),
        state: if c.state == "granted" {
            v1::ConsentState::Granted
        } else {
            v1::ConsentState::Revoked
        }
        .into(),
        source: c.source.clone(),
        note: c.note.clone(),
        at: Some(ts(c.at)),
        recorded_by: c.recorded_by.clone(),
    }
}

fn customer_wire(c: customer::Model, ids: &[identifier::Model]) -> v1::Customer {
    v1::Customer {
        identifiers: ids.iter().map(identifier_wire).collect(),
        attributes: parse_map(&c.attributes).into_iter().collect(),
        created_at: Some(ts(c.created_at)),
        updated_at: Some(ts(c.updated_at)),
        merged_into: c.merged_into.unwrap_or_default(),
        erased: c.erased_at.is_some(),
        id: c.id,
        display_name: c.display_name,
    }
}

/// One customer with its identifiers.
pub(crate) async fn customer(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<v1::Customer>, DbErr> {
    let Some(c) = customer::Entity::find_by_id(id.to_owned()).one(db).await? else {
        return Ok(None);
    };
    let ids = identifier::Entity::find()
        .filter(identifier::Column::CustomerId.eq(id))
        .order_by_asc(identifier::Column::Kind)
        .order_by_asc(identifier::Column::Value)
        .all(db)
        .await?;
    Ok(Some(customer_wire(c, &ids)))
}

/// Several customers with their identifiers, in the given order.
async fn customers(
    db: &impl ConnectionTrait,
    rows: Vec<customer::Model>,
) -> Result<Vec<v1::Customer>, DbErr> {
    let ids: Vec<String> = rows.iter().map(|c| c.id.clone()).collect();
    let mut by: HashMap<String, Vec<identifier::Model>> = HashMap::new();
    for i in identifier::Entity::find()
        .filter(identifier::Column::CustomerId.is_in(ids))
        .all(db)
        .await?
    {
        by.entry(i.customer_id.clone()).or_default().push(i);
    }
    Ok(rows
        .into_iter()
        .map(|c| {
            let ids = by.remove(&c.id).unwrap_or_default();
            customer_wire(c, &ids)
        })
        .collect())
}

/// The live record a customer id stands for (following merges).
pub(crate) async fn follow(db: &impl ConnectionTrait, id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::invalid("customer_id", "is not a UUID"))?;
    let mut current = id.to_owned();
    for _ in 0..16 {
        let c = customer::Entity::find_by_id(current.clone())
            .one(db)
            .await
            .map_err(store)?
            .ok_or_else(|| ApiError::NotFound(format!("customer {id}")))?;
        match c.merged_into {
            Some(next) => current = next,
            None => return Ok(current),
        }
    }
    Err(ApiError::Internal("merge chain too long".into()))
}

pub(crate) async fn find_by_identifier(
    db: &impl ConnectionTrait,
    kind: &str,
    value: &str,
) -> Result<Vec<v1::Customer>, ApiError> {
    use sea_orm::sea_query::{Alias, ExprTrait as _, JoinType};
    // One round trip: the owner, and every identifier of the owner.
    let (i, c, all) = (Alias::new("i"), Alias::new("c"), Alias::new("all_ids"));
    let mut q = Query::select();
    q.columns(customer::Column::iter().map(|col| (c.clone(), col)))
        .expr_as(
            Expr::col((all.clone(), identifier::Column::Kind)),
            Alias::new("id_kind"),
        )
        .expr_as(
            Expr::col((all.clone(), identifier::Column::Value)),
            Alias::new("id_value"),
        )
        .from_as(identifier::Entity, i.clone())
        .join_as(
            JoinType::InnerJoin,
            customer::Entity,
            c.clone(),
            Expr::col((c.clone(), customer::Column::Id))
                .equals((i.clone(), identifier::Column::CustomerId)),
        )
        .join_as(
            JoinType::LeftJoin,
            identifier::Entity,
            all.clone(),
            Expr::col((all.clone(), identifier::Column::CustomerId))
                .equals((c.clone(), customer::Column::Id)),
        )
        .and_where(Expr::col((i.clone(), identifier::Column::Kind)).eq(kind))
        .and_where(Expr::col((i, identifier::Column::Value)).eq(value))
        .order_by((all.clone(), identifier::Column::Kind), sea_orm::Order::Asc)
        .order_by((all, identifier::Column::Value), sea_orm::Order::Asc);
    let rows = db
        .query_all_raw(db.get_database_backend().build(&q))
        .await
        .map_err(store)?;
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let found = customer::Model::from_query_result(first, "").map_err(store)?;
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: Option<String> = row.try_get("", "id_kind").map_err(store)?;
        let value: Option<String> = row.try_get("", "id_value").map_err(store)?;
        if let (Some(kind), Some(value)) = (kind, value) {
            ids.push(identifier::Model {
                kind,
                value,
                customer_id: found.id.clone(),
                added_at: 0,
            });
        }
    }
    Ok(vec![customer_wire(found, &ids)])
}

pub(crate) async fn find_by_name(
    db: &impl ConnectionTrait,
    prefix: &str,
    size: u64,
    page_token: &str,
) -> Result<v1::FindCustomersResponse, ApiError> {
    let key = prefix.to_lowercase();
    // Every key that starts with `key` sorts between `key` and `key` + the last code point.
    let upper = format!("{key}\u{10ffff}");
    let mut q = customer::Entity::find()
        .filter(customer::Column::NameKey.gte(key.clone()))
        .filter(customer::Column::NameKey.lt(upper))
        .filter(customer::Column::MergedInto.is_null())
        .filter(customer::Column::ErasedAt.is_null());
    if let Some((k, id)) = untoken(page_token)? {
        q = q.filter(
            Condition::any()
                .add(customer::Column::NameKey.gt(k.clone()))
                .add(
                    Condition::all()
                        .add(customer::Column::NameKey.eq(k))
                        .add(customer::Column::Id.gt(id)),
                ),
        );
    }
    let mut rows = q
        .order_by_asc(customer::Column::NameKey)
        .order_by_asc(customer::Column::Id)
        .limit(size + 1)
        .all(db)
        .await
        .map_err(store)?;
    let more = rows.len() as u64 > size;
    rows.truncate(size as usize);
    let next = if more {
        rows.last()
            .map(|c| token(&c.name_key, &c.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::FindCustomersResponse {
        customers: customers(db, rows).await.map_err(store)?,
        next_page_token: next,
    })
}

fn record(r: interaction::Model) -> v1::InteractionRecord {
    v1::InteractionRecord {
        channel: channel_wire(&r.channel),
        direction: direction_wire(&r.direction),
        created_at: Some(ts(r.created_at)),
        assigned_at: r.assigned_at.map(ts),
        ended_at: r.ended_at.map(ts),
        duration_ms: u64::try_from(r.duration_ms).unwrap_or(0),
        ivr_path: parse_list(&r.ivr_path),
        attributes: parse_map(&r.attributes).into_iter().collect(),
        customer_id: r.customer_id.unwrap_or_default(),
        id: r.id,
        queue: r.queue,
        agent: r.agent,
        status: r.status,
        disposition: r.disposition,
        wrap_up_notes: r.notes,
        subject: r.subject,
        conversation_id: r.conversation_id,
        outcome: r.outcome,
        recording_ref: r.recording_ref,
        messages: Vec::new(),
        steps: Vec::new(),
    }
}

fn message_wire(m: message::Model) -> v1::MessageRecord {
    v1::MessageRecord {
        channel: channel_wire(&m.channel),
        direction: direction_wire(&m.direction),
        at: Some(ts(m.at)),
        attributes: parse_map(&m.attributes).into_iter().collect(),
        id: m.id,
        interaction_id: m.interaction_id,
        subject: m.subject,
        body: m.body,
        sender: m.sender,
        recipient: m.recipient,
        status: m.status,
        error: m.error,
    }
}

/// Filters of a timeline page.
pub(crate) struct TimelineQuery {
    pub customer: String,
    pub channels: Vec<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub size: u64,
    pub page_token: String,
    pub include_messages: bool,
}

pub(crate) async fn timeline(
    db: &impl ConnectionTrait,
    q: &TimelineQuery,
) -> Result<v1::ListTimelineResponse, ApiError> {
    let mut find =
        interaction::Entity::find().filter(interaction::Column::CustomerId.eq(q.customer.clone()));
    if !q.channels.is_empty() {
        find = find.filter(interaction::Column::Channel.is_in(q.channels.clone()));
    }
    if let Some(s) = q.since {
        find = find.filter(interaction::Column::CreatedAt.gte(s));
    }
    if let Some(u) = q.until {
        find = find.filter(interaction::Column::CreatedAt.lt(u));
    }
    let rows = page(find, &q.page_token, q.size, db).await?;
    finish(db, rows, q.size, q.include_messages).await
}

async fn page(
    mut find: sea_orm::Select<interaction::Entity>,
    page_token: &str,
    size: u64,
    db: &impl ConnectionTrait,
) -> Result<Vec<interaction::Model>, ApiError> {
    if let Some((at, id)) = time_cursor(page_token)? {
        find = find.filter(
            Condition::any()
                .add(interaction::Column::CreatedAt.lt(at))
                .add(
                    Condition::all()
                        .add(interaction::Column::CreatedAt.eq(at))
                        .add(interaction::Column::Id.lt(id)),
                ),
        );
    }
    find.order_by_desc(interaction::Column::CreatedAt)
        .order_by_desc(interaction::Column::Id)
        .limit(size + 1)
        .all(db)
        .await
        .map_err(store)
}

async fn finish(
    db: &impl ConnectionTrait,
    mut rows: Vec<interaction::Model>,
    size: u64,
    include_messages: bool,
) -> Result<v1::ListTimelineResponse, ApiError> {
    let more = rows.len() as u64 > size;
    rows.truncate(size as usize);
    let next = if more {
        rows.last()
            .map(|r| token(&r.created_at.to_string(), &r.id))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut records: Vec<v1::InteractionRecord> = rows.into_iter().map(record).collect();
    if include_messages && !records.is_empty() {
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut by: HashMap<String, Vec<v1::MessageRecord>> = HashMap::new();
        for m in message::Entity::find()
            .filter(message::Column::InteractionId.is_in(ids))
            .order_by_desc(message::Column::At)
            .all(db)
            .await
            .map_err(store)?
        {
            let list = by.entry(m.interaction_id.clone()).or_default();
            if list.len() < MESSAGES_PER_ENTRY {
                list.push(message_wire(m));
            }
        }
        for r in &mut records {
            r.messages = by.remove(&r.id).unwrap_or_default();
        }
    }
    Ok(v1::ListTimelineResponse {
        interactions: records,
        next_page_token: next,
    })
}

pub(crate) async fn interaction(
    db: &impl ConnectionTrait,
    id: &str,
) -> Result<v1::InteractionRecord, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| ApiError::invalid("interaction_id", "is not a UUID"))?;
    let row = interaction::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .map_err(store)?
        .ok_or_else(|| ApiError::NotFound(format!("interaction {id}")))?;
    let mut r = record(row);
    r.messages = message::Entity::find()
        .filter(message::Column::InteractionId.eq(id))
        .order_by_asc(message::Column::At)
        .limit(MESSAGES_PER_INTERACTION)
        .all(db)
        .await
        .map_err(store)?
        .into_iter()
        .map(message_wire)
        .collect();
    r.steps = step::Entity::find()
        .filter(step::Column::InteractionId.eq(id))
        .order_by_asc(step::Column::At)
        .limit(MESSAGES_PER_INTERACTION)
        .all(db)
        .await
        .map_err(store)?
        .into_iter()
        .map(|s| v1::InteractionStep {
            kind: s.kind,
            queue: s.queue,
            agent: s.agent,
            reason: s.reason,
            at: Some(ts(s.at)),
        })
        .collect();
    Ok(r)
}

/// Full-text search: PostgreSQL's text search on its indexes; SQLite matches
/// the phrase as a case-insensitive substring.
pub(crate) async fn search(
    db: &impl ConnectionTrait,
    text: &str,
    customer: Option<String>,
    size: u64,
    page_token: &str,
) -> Result<v1::ListTimelineResponse, ApiError> {
    let mut sub = Query::select();
    sub.column(message::Column::InteractionId)
        .from(message::Entity);
    let own = match db.get_database_backend() {
        DbBackend::Postgres => {
            sub.and_where(Expr::cust_with_values(
                format!("{MESSAGE_TSV} @@ plainto_tsquery('simple', $1)"),
                [text.to_owned()],
            ));
            Expr::cust_with_values(
                format!("{INTERACTION_TSV} @@ plainto_tsquery('simple', $1)"),
                [text.to_owned()],
            )
        }
        _ => {
            let like = format!(
                "%{}%",
                // SQLite's lower() folds ASCII only: fold the query the same way.
                text.to_ascii_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            sub.and_where(Expr::cust_with_values(
                "(lower(subject) LIKE ? ESCAPE '\\' OR lower(body) LIKE ? ESCAPE '\\')",
                [like.clone(), like.clone()],
            ));
            Expr::cust_with_values(
                "(lower(subject) LIKE ? ESCAPE '\\' OR lower(notes) LIKE ? ESCAPE '\\')",
                [like.clone(), like],
            )
        }
    };
    let mut find = interaction::Entity::find().filter(
        Condition::any()
            .add(own)
            .add(interaction::Column::Id.in_subquery(sub)),
    );
    if let Some(c) = customer {
        find = find.filter(interaction::Column::CustomerId.eq(c));
    } else {
        find = find.filter(interaction::Column::CustomerId.is_not_null());
    }
    let rows = page(find, page_token, size, db).await?;
    finish(db, rows, size, false).await
}

/// The current consent per channel and purpose, and optionally the ledger.
pub(crate) async fn consents(
    db: &impl ConnectionTrait,
    customer: &str,
    channel: Option<&str>,
    purpose: Option<&str>,
) -> Result<Vec<consent::Model>, ApiError> {
    let mut q = consent::Entity::find().filter(consent::Column::CustomerId.eq(customer));
    if let Some(c) = channel {
        q = q.filter(consent::Column::Channel.eq(c));
    }
    if let Some(p) = purpose {
        q = q.filter(consent::Column::Purpose.eq(p));
    }
    q.order_by_asc(consent::Column::At)
        .order_by_asc(consent::Column::Id)
        .all(db)
        .await
        .map_err(store)
}

/// A customer's identifiers, as stored.
pub(crate) async fn identifiers(
    db: &impl ConnectionTrait,
    customer: &str,
) -> Result<Vec<identifier::Model>, ApiError> {
    identifier::Entity::find()
        .filter(identifier::Column::CustomerId.eq(customer))
        .all(db)
        .await
        .map_err(store)
}

/// Opt-outs kept from erased customers, for these identifier hashes.
pub(crate) async fn suppressions(
    db: &impl ConnectionTrait,
    hashes: &[String],
) -> Result<Vec<suppression::Model>, ApiError> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    suppression::Entity::find()
        .filter(suppression::Column::IdentifierHash.is_in(hashes.iter().cloned()))
        .all(db)
        .await
        .map_err(store)
}

/// The latest record of each channel and purpose in a ledger (oldest first).
pub(crate) fn current(ledger: &[consent::Model]) -> Vec<v1::ConsentRecord> {
    let mut latest: Vec<&consent::Model> = Vec::new();
    for row in ledger {
        match latest
            .iter_mut()
            .find(|l| l.channel == row.channel && l.purpose == row.purpose)
        {
            Some(slot) => *slot = row,
            None => latest.push(row),
        }
    }
    latest.into_iter().map(consent_record).collect()
}

pub(crate) async fn audit(
    db: &impl ConnectionTrait,
    customer: &str,
    size: u64,
    page_token: &str,
) -> Result<v1::ListAuditResponse, ApiError> {
    let mut q = audit::Entity::find().filter(audit::Column::CustomerId.eq(customer));
    if let Some((_, id)) = untoken(page_token)? {
        q = q.filter(audit::Column::Id.gt(id));
    }
    let mut rows = q
        .order_by_asc(audit::Column::Id)
        .limit(size + 1)
        .all(db)
        .await
        .map_err(store)?;
    let more = rows.len() as u64 > size;
    rows.truncate(size as usize);
    let next = if more {
        rows.last().map(|a| token("", &a.id)).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(v1::ListAuditResponse {
        entries: rows.into_iter().map(audit_wire).collect(),
        next_page_token: next,
    })
}

pub(crate) fn audit_wire(a: audit::Model) -> v1::AuditEntry {
    v1::AuditEntry {
        at: Some(ts(a.at)),
        id: a.id,
        customer_id: a.customer_id,
        action: a.action,
        actor: a.actor,
        reason: a.reason,
        detail: a.detail,
    }
}

/// Every interaction of a customer, oldest first, in pages (for export).
pub(crate) async fn all_interactions(
    db: &impl ConnectionTrait,
    customer: &str,
    after: Option<(i64, String)>,
    size: u64,
) -> Result<Vec<interaction::Model>, ApiError> {
    let mut q = interaction::Entity::find().filter(interaction::Column::CustomerId.eq(customer));
    if let Some((at, id)) = after {
        q = q.filter(
            Condition::any()
                .add(interaction::Column::CreatedAt.gt(at))
                .add(
                    Condition::all()
                        .add(interaction::Column::CreatedAt.eq(at))
                        .add(interaction::Column::Id.gt(id)),
                ),
        );
    }
    q.order_by_asc(interaction::Column::CreatedAt)
        .order_by_asc(interaction::Column::Id)
        .limit(size)
        .all(db)
        .await
        .map_err(store)
}

/// The full record of a stored interaction (for export).
pub(crate) async fn full(
    db: &impl ConnectionTrait,
    row: interaction::Model,
) -> Result<v1::InteractionRecord, ApiError> {
    let id = row.id.clone();
    let mut r = interaction(db, &id).await?;
    r.customer_id = row.customer_id.unwrap_or_default();
    Ok(r)
}
