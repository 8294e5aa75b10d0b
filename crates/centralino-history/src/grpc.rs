//! `HistoryService` over gRPC: validation at the edge, reads from the
//! database, changes through the writer; errors through `ApiError`.

use std::pin::Pin;

use centralino_proto::v1;
use centralino_proto::v1::history_service_server::{HistoryService, HistoryServiceServer};
use centralino_server::ApiError;
use futures::Stream;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::read::{self, TimelineQuery};
use crate::writer::{self, Change, Changed, Command, ConsentInput};
use crate::{HistoryConfig, ms_of, now_ms};

pub type HistoryServer = HistoryServiceServer<HistoryApi>;

pub(crate) const MAX_REQUEST_ID: usize = 64;
const MAX_TEXT: usize = 1_000;
pub(crate) const MAX_NAME: usize = 200;
const MAX_ATTRIBUTES: usize = 100;
const MAX_IDENTIFIERS: usize = 20;
const EXPORT_PAGE: u64 = 100;
/// Ledger records `GetConsent` returns at most (the export has them all).
const MAX_CONSENT_HISTORY: usize = 1_000;

pub(crate) fn server(
    cfg: HistoryConfig,
    suppression: crate::SuppressionKey,
    db: DatabaseConnection,
    tx: mpsc::Sender<Command>,
    max: usize,
) -> HistoryServer {
    HistoryServiceServer::new(HistoryApi {
        cfg,
        suppression,
        db,
        tx,
    })
    .max_decoding_message_size(max)
    .max_encoding_message_size(max)
}

pub struct HistoryApi {
    cfg: HistoryConfig,
    /// What erased customers' opt-outs are found by.
    suppression: crate::SuppressionKey,
    db: DatabaseConnection,
    tx: mpsc::Sender<Command>,
}

pub(crate) fn subject<T>(request: &Request<T>) -> Result<String, Status> {
    Ok(centralino_server::claims(request)?.sub.clone())
}

pub(crate) fn request_id(raw: &str) -> Result<String, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "request_id",
            "is required (a unique id per change, reused when retrying)",
        ));
    }
    if raw.len() > MAX_REQUEST_ID {
        return Err(ApiError::invalid(
            "request_id",
            format!("is longer than {MAX_REQUEST_ID} characters"),
        ));
    }
    Ok(raw.to_owned())
}

pub(crate) fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.contains('\0') {
        // PostgreSQL cannot store it in text: refused here, not by the database.
        return Err(ApiError::invalid(field, "must not contain a NUL character"));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// Lowercase letters, digits, `-` and `_`, 1–64 characters.
pub(crate) fn token_name(field: &'static str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 64 {
        return Err(ApiError::invalid(field, "must be 1 to 64 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(ApiError::invalid(
            field,
            "may contain only lowercase letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

fn channel_arg(raw: i32, field: &'static str) -> Result<&'static str, ApiError> {
    centralino_proto::channel_from_i32(raw)
        .map(|c| c.as_str())
        .map_err(|_| {
            ApiError::invalid(
                field,
                format!("must be a channel ({})", centralino_domain::Channel::NAMES),
            )
        })
}

/// An identifier a request names, normalized; `None` when it names none.
pub(crate) fn identifier_of(
    cfg: &HistoryConfig,
    raw: Option<&v1::CustomerIdentifier>,
    field: &'static str,
) -> Result<Option<centralino_domain::CustomerIdentifier>, ApiError> {
    match raw {
        Some(i) if i.kind != 0 || !i.value.is_empty() => {
            writer::normalize(&cfg.rules, i, field).map(Some)
        }
        _ => Ok(None),
    }
}

/// Validates a consent request (from gRPC or from the bus command
/// `history.record_consent`): its request id and the change to make.
pub(crate) async fn consent_input(
    cfg: &HistoryConfig,
    db: &DatabaseConnection,
    req: v1::RecordConsentRequest,
) -> Result<(String, ConsentInput), ApiError> {
    let rid = request_id(&req.request_id)?;
    let channel = channel_arg(req.channel, "channel")?;
    if channel == "task" {
        return Err(ApiError::invalid(
            "channel",
            "tasks reach no one: consent is for a channel that contacts the customer",
        ));
    }
    token_name("purpose", &req.purpose)?;
    token_name("source", &req.source)?;
    bounded("note", &req.note, MAX_TEXT)?;
    let granted = match v1::ConsentState::try_from(req.state) {
        Ok(v1::ConsentState::Granted) => true,
        Ok(v1::ConsentState::Revoked) => false,
        _ => return Err(ApiError::invalid("state", "must be GRANTED or REVOKED")),
    };
    let now = now_ms();
    let at = req.at.as_ref().map_or(now, ms_of);
    if at > now + 60_000 {
        return Err(ApiError::invalid("at", "is in the future"));
    }
    let identifier = identifier_of(cfg, req.identifier.as_ref(), "identifier")?;
    let customer = if req.customer_id.is_empty() {
        None
    } else {
        Some(read::follow(db, &req.customer_id).await?)
    };
    if customer.is_none() && identifier.is_none() {
        return Err(ApiError::invalid(
            "customer_id",
            "give a customer id or an identifier",
        ));
    }
    Ok((
        rid,
        ConsentInput {
            customer,
            identifier,
            channel,
            purpose: req.purpose,
            granted,
            source: req.source,
            note: req.note,
            at,
        },
    ))
}

/// Hands a change to the writer and waits for its answer.
pub(crate) async fn change(
    tx: &mpsc::Sender<Command>,
    actor: String,
    request_id: String,
    change: Change,
) -> Result<Changed, Status> {
    let (reply, answer) = oneshot::channel();
    tx.send(Command::Change {
        actor,
        request_id,
        change,
        reply,
    })
    .await
    .map_err(|_| ApiError::Unavailable("history".into()))?;
    Ok(answer
        .await
        .map_err(|_| ApiError::Unavailable("history".into()))??)
}

impl HistoryApi {
    async fn change(
        &self,
        actor: String,
        request_id: String,
        what: Change,
    ) -> Result<Changed, Status> {
        change(&self.tx, actor, request_id, what).await
    }

    /// An agent may merge two customers only when history suggested it
    /// (they shared an identifier on one interaction): PERMISSION_DENIED else.
    async fn suggested(&self, one: &str, other: &str) -> Result<(), ApiError> {
        use crate::entities::suggestion;
        use sea_orm::{ColumnTrait, Condition, QueryFilter};
        let pair = |a: &str, b: &str| {
            Condition::all()
                .add(suggestion::Column::CustomerA.eq(a))
                .add(suggestion::Column::CustomerB.eq(b))
        };
        let found = suggestion::Entity::find()
            .filter(Condition::any().add(pair(one, other)).add(pair(other, one)))
            .one(&self.db)
            .await
            .map_err(read::store)?;
        match found {
            Some(_) => Ok(()),
            None => Err(ApiError::PermissionDenied(
                "an agent may merge only customers that history suggested merging".into(),
            )),
        }
    }

    fn identifier(
        &self,
        raw: Option<&v1::CustomerIdentifier>,
        field: &'static str,
    ) -> Result<Option<centralino_domain::CustomerIdentifier>, ApiError> {
        identifier_of(&self.cfg, raw, field)
    }

    /// The customer a request names by id or identifier (`None` when an
    /// identifier is not known).
    async fn customer_of(
        &self,
        customer_id: &str,
        identifier: Option<&v1::CustomerIdentifier>,
    ) -> Result<Option<String>, ApiError> {
        if !customer_id.is_empty() {
            return read::follow(&self.db, customer_id).await.map(Some);
        }
        let Some(i) = self.identifier(identifier, "identifier")? else {
            return Err(ApiError::invalid(
                "customer_id",
                "give a customer id or an identifier",
            ));
        };
        Ok(
            read::find_by_identifier(&self.db, i.kind().as_str(), i.value())
                .await?
                .into_iter()
                .next()
                .map(|c| c.id),
        )
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<v1::ExportPart, Status>> + Send>>;

#[tonic::async_trait]
impl HistoryService for HistoryApi {
    type ExportCustomerStream = ExportStream;

    async fn get_customer(
        &self,
        request: Request<v1::GetCustomerRequest>,
    ) -> Result<Response<v1::Customer>, Status> {
        let req = request.into_inner();
        let id = read::follow(&self.db, &req.customer_id).await?;
        let c = read::customer(&self.db, &id)
            .await
            .map_err(read::store)?
            .ok_or_else(|| ApiError::NotFound(format!("customer {}", req.customer_id)))?;
        Ok(Response::new(c))
    }

    async fn find_customers(
        &self,
        request: Request<v1::FindCustomersRequest>,
    ) -> Result<Response<v1::FindCustomersResponse>, Status> {
        let req = request.into_inner();
        let size = read::page_size(req.page_size)?;
        if let Some(i) = self.identifier(req.identifier.as_ref(), "identifier")? {
            let customers =
                read::find_by_identifier(&self.db, i.kind().as_str(), i.value()).await?;
            return Ok(Response::new(v1::FindCustomersResponse {
                customers,
                next_page_token: String::new(),
            }));
        }
        if req.name_prefix.trim().is_empty() {
            return Err(
                ApiError::invalid("identifier", "give an identifier or a name_prefix").into(),
            );
        }
        bounded("name_prefix", &req.name_prefix, MAX_NAME)?;
        Ok(Response::new(
            read::find_by_name(&self.db, req.name_prefix.trim(), size, &req.page_token).await?,
        ))
    }

    async fn list_timeline(
        &self,
        request: Request<v1::ListTimelineRequest>,
    ) -> Result<Response<v1::ListTimelineResponse>, Status> {
        let req = request.into_inner();
        let size = read::page_size(req.page_size)?;
        if uuid::Uuid::parse_str(&req.customer_id).is_err() {
            return Err(ApiError::invalid("customer_id", "is not a UUID").into());
        }
        let channels = req
            .channels
            .iter()
            .map(|c| channel_arg(*c, "channels").map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        let since = req.since.as_ref().map(ms_of);
        let until = req.until.as_ref().map(ms_of);
        if let (Some(s), Some(u)) = (since, until)
            && s >= u
        {
            return Err(ApiError::invalid("until", "must be after since").into());
        }
        let mut query = TimelineQuery {
            customer: req.customer_id.clone(),
            channels,
            since,
            until,
            size,
            page_token: req.page_token,
            include_messages: req.include_messages,
        };
        // One round trip when the customer has interactions; only an empty
        // page asks whether the id exists or was merged into another.
        let page = read::timeline(&self.db, &query).await?;
        if !page.interactions.is_empty() {
            return Ok(Response::new(page));
        }
        let live = read::follow(&self.db, &req.customer_id).await?;
        if live == req.customer_id {
            return Ok(Response::new(page));
        }
        query.customer = live;
        Ok(Response::new(read::timeline(&self.db, &query).await?))
    }

    async fn get_interaction(
        &self,
        request: Request<v1::GetInteractionRequest>,
    ) -> Result<Response<v1::InteractionRecord>, Status> {
        let req = request.into_inner();
        Ok(Response::new(
            read::interaction(&self.db, &req.interaction_id).await?,
        ))
    }

    async fn search_interactions(
        &self,
        request: Request<v1::SearchInteractionsRequest>,
    ) -> Result<Response<v1::ListTimelineResponse>, Status> {
        let req = request.into_inner();
        let size = read::page_size(req.page_size)?;
        let text = req.query.trim();
        if text.is_empty() {
            return Err(ApiError::invalid("query", "is empty").into());
        }
        bounded("query", text, MAX_NAME)?;
        let customer = if req.customer_id.is_empty() {
            None
        } else {
            Some(read::follow(&self.db, &req.customer_id).await?)
        };
        Ok(Response::new(
            read::search(&self.db, text, customer, size, &req.page_token).await?,
        ))
    }

    async fn update_customer(
        &self,
        request: Request<v1::UpdateCustomerRequest>,
    ) -> Result<Response<v1::Customer>, Status> {
        let actor = subject(&request)?;
        let req = request.into_inner();
        let rid = request_id(&req.request_id)?;
        if let Some(name) = &req.display_name {
            bounded("display_name", name, MAX_NAME)?;
        }
        if req.attributes.len() > MAX_ATTRIBUTES {
            return Err(ApiError::invalid(
                "attributes",
                format!("at most {MAX_ATTRIBUTES} per request"),
            )
            .into());
        }
        for (k, v) in &req.attributes {
            token_name("attributes", k)?;
            bounded("attributes", v, MAX_TEXT)?;
        }
        if req.add_identifiers.len() + req.remove_identifiers.len() > MAX_IDENTIFIERS {
            return Err(ApiError::invalid(
                "add_identifiers",
                format!("at most {MAX_IDENTIFIERS} identifiers per request"),
            )
            .into());
        }
        for i in &req.add_identifiers {
            writer::normalize(&self.cfg.rules, i, "add_identifiers")?;
        }
        for i in &req.remove_identifiers {
            writer::normalize(&self.cfg.rules, i, "remove_identifiers")?;
        }
        match self.change(actor, rid, Change::Update(req)).await? {
            Changed::Customer(c) => Ok(Response::new(c)),
            _ => Err(ApiError::Internal("unexpected answer".into()).into()),
        }
    }

    async fn merge_customers(
        &self,
        request: Request<v1::MergeCustomersRequest>,
    ) -> Result<Response<v1::MergeResult>, Status> {
        let actor = subject(&request)?;
        let agent = centralino_server::claims(&request)?.role == centralino_auth::Role::Agent;
        let req = request.into_inner();
        let rid = request_id(&req.request_id)?;
        bounded("reason", &req.reason, MAX_TEXT)?;
        if agent {
            self.suggested(&req.survivor_id, &req.merged_id).await?;
        }
        let change = Change::Merge {
            survivor: req.survivor_id,
            merged: req.merged_id,
            reason: req.reason,
        };
        match self.change(actor, rid, change).await? {
            Changed::Merge(m) => Ok(Response::new(m)),
            _ => Err(ApiError::Internal("unexpected answer".into()).into()),
        }
    }

    async fn unmerge_customers(
        &self,
        request: Request<v1::UnmergeCustomersRequest>,
    ) -> Result<Response<v1::UnmergeResult>, Status> {
        let actor = subject(&request)?;
        let req = request.into_inner();
        let rid = request_id(&req.request_id)?;
        bounded("reason", &req.reason, MAX_TEXT)?;
        let change = Change::Unmerge {
            merge_id: req.merge_id,
            reason: req.reason,
        };
        match self.change(actor, rid, change).await? {
            Changed::Unmerge(u) => Ok(Response::new(u)),
            _ => Err(ApiError::Internal("unexpected answer".into()).into()),
        }
    }

    async fn list_merge_suggestions(
        &self,
        request: Request<v1::ListMergeSuggestionsRequest>,
    ) -> Result<Response<v1::ListMergeSuggestionsResponse>, Status> {
        use crate::entities::suggestion;
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
        let req = request.into_inner();
        let size = read::page_size(req.page_size)?;
        let mut q = suggestion::Entity::find();
        if let Some((_, id)) = read::untoken(&req.page_token)? {
            q = q.filter(suggestion::Column::Id.gt(id));
        }
        let mut rows = q
            .order_by_asc(suggestion::Column::Id)
            .limit(size + 1)
            .all(&self.db)
            .await
            .map_err(read::store)?;
        let more = rows.len() as u64 > size;
        rows.truncate(size as usize);
        let next = if more {
            rows.last()
                .map(|s| read::token("", &s.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        let suggestions = rows
            .into_iter()
            .map(|s| {
                let pairs: Vec<(i32, String)> =
                    serde_json::from_str(&s.identifiers).unwrap_or_default();
                v1::MergeSuggestion {
                    id: s.id,
                    customer_id: s.customer_a,
                    other_customer_id: s.customer_b,
                    identifiers: pairs
                        .into_iter()
                        .map(|(kind, value)| v1::CustomerIdentifier { kind, value })
                        .collect(),
                    interaction_id: s.interaction_id,
                    created_at: Some(crate::ts(s.created_at)),
                }
            })
            .collect();
        Ok(Response::new(v1::ListMergeSuggestionsResponse {
            suggestions,
            next_page_token: next,
        }))
    }

    async fn record_consent(
        &self,
        request: Request<v1::RecordConsentRequest>,
    ) -> Result<Response<v1::ConsentRecord>, Status> {
        let actor = subject(&request)?;
        let (rid, input) = consent_input(&self.cfg, &self.db, request.into_inner()).await?;
        match self.change(actor, rid, Change::Consent(input)).await? {
            Changed::Consent(c) => Ok(Response::new(c)),
            _ => Err(ApiError::Internal("unexpected answer".into()).into()),
        }
    }

    async fn get_consent(
        &self,
        request: Request<v1::GetConsentRequest>,
    ) -> Result<Response<v1::GetConsentResponse>, Status> {
        let req = request.into_inner();
        let channel = if req.channel == 0 {
            None
        } else {
            Some(channel_arg(req.channel, "channel")?)
        };
        let purpose = if req.purpose.is_empty() {
            None
        } else {
            token_name("purpose", &req.purpose)?;
            Some(req.purpose.as_str())
        };
        let named = self.identifier(req.identifier.as_ref(), "identifier")?;
        let customer = self
            .customer_of(&req.customer_id, req.identifier.as_ref())
            .await?;
        // Opt-outs kept from erased customers apply to their identifiers, for
        // whoever holds them now, until a later record says otherwise.
        let mut hashes: Vec<String> = Vec::new();
        if let Some(i) = &named {
            hashes.extend(writer::suppression_hashes(
                &self.suppression,
                i.kind().as_str(),
                i.value(),
            ));
        }
        let (ledger, customer_id) = match customer {
            Some(c) => {
                for i in read::identifiers(&self.db, &c).await? {
                    hashes.extend(writer::suppression_hashes(
                        &self.suppression,
                        &i.kind,
                        &i.value,
                    ));
                }
                (read::consents(&self.db, &c, channel, purpose).await?, c)
            }
            None => (Vec::new(), String::new()),
        };
        let mut current = read::current(&ledger);
        for s in read::suppressions(&self.db, &hashes).await? {
            if channel.is_some_and(|c| c != s.channel) || purpose.is_some_and(|p| p != s.purpose) {
                continue;
            }
            let wire_channel = s
                .channel
                .parse::<centralino_domain::Channel>()
                .map(|c| v1::Channel::from(c).into())
                .unwrap_or(0);
            let later = current.iter().any(|r| {
                r.channel == wire_channel
                    && r.purpose == s.purpose
                    && r.at.as_ref().is_some_and(|t| ms_of(t) >= s.at)
            });
            if later {
                continue;
            }
            current.retain(|r| !(r.channel == wire_channel && r.purpose == s.purpose));
            current.push(v1::ConsentRecord {
                channel: wire_channel,
                purpose: s.purpose,
                state: v1::ConsentState::Revoked.into(),
                source: "erased-customer".into(),
                note: String::new(),
                at: Some(crate::ts(s.at)),
                recorded_by: String::new(),
            });
        }
        Ok(Response::new(v1::GetConsentResponse {
            current,
            history: if req.include_history {
                // The newest records, oldest first, within a bound.
                let skip = ledger.len().saturating_sub(MAX_CONSENT_HISTORY);
                ledger[skip..].iter().map(read::consent_record).collect()
            } else {
                Vec::new()
            },
            customer_id,
        }))
    }

    async fn list_audit(
        &self,
        request: Request<v1::ListAuditRequest>,
    ) -> Result<Response<v1::ListAuditResponse>, Status> {
        let req = request.into_inner();
        let size = read::page_size(req.page_size)?;
        // The record's own trail (an erased or merged record keeps its own);
        // an id that never existed is NOT_FOUND.
        read::follow(&self.db, &req.customer_id).await?;
        Ok(Response::new(
            read::audit(&self.db, &req.customer_id, size, &req.page_token).await?,
        ))
    }

    async fn export_customer(
        &self,
        request: Request<v1::ExportCustomerRequest>,
    ) -> Result<Response<Self::ExportCustomerStream>, Status> {
        let actor = subject(&request)?;
        let req = request.into_inner();
        bounded("reason", &req.reason, MAX_TEXT)?;
        let id = read::follow(&self.db, &req.customer_id).await?;
        let customer = read::customer(&self.db, &id)
            .await
            .map_err(read::store)?
            .ok_or_else(|| ApiError::NotFound(format!("customer {}", req.customer_id)))?;
        // The export itself is audited before anything leaves.
        writer::audit_row(&self.db, &id, "export", &actor, &req.reason, "", now_ms())
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "export audit not written");
                ApiError::Unavailable("history store".into())
            })?;
        let (tx, rx) = mpsc::channel(16);
        let db = self.db.clone();
        tokio::spawn(async move {
            let send = |part: v1::export_part::Part| {
                let tx = tx.clone();
                async move {
                    tx.send(Ok(v1::ExportPart { part: Some(part) }))
                        .await
                        .is_ok()
                }
            };
            if !send(v1::export_part::Part::Customer(customer)).await {
                return;
            }
            let mut after = None;
            loop {
                let rows = match read::all_interactions(&db, &id, after.clone(), EXPORT_PAGE).await
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
                let Some(last) = rows.last() else { break };
                after = Some((last.created_at, last.id.clone()));
                for row in rows {
                    match read::full(&db, row).await {
                        Ok(r) => {
                            if !send(v1::export_part::Part::Interaction(r)).await {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e.into())).await;
                            return;
                        }
                    }
                }
            }
            match read::consents(&db, &id, None, None).await {
                Ok(ledger) => {
                    for c in &ledger {
                        if !send(v1::export_part::Part::Consent(read::consent_record(c))).await {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
            let mut token = String::new();
            loop {
                match read::audit(&db, &id, u64::from(read::MAX_PAGE), &token).await {
                    Ok(page) => {
                        for a in page.entries {
                            if !send(v1::export_part::Part::Audit(a)).await {
                                return;
                            }
                        }
                        if page.next_page_token.is_empty() {
                            break;
                        }
                        token = page.next_page_token;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn erase_customer(
        &self,
        request: Request<v1::EraseCustomerRequest>,
    ) -> Result<Response<v1::EraseResult>, Status> {
        let actor = subject(&request)?;
        let req = request.into_inner();
        let rid = request_id(&req.request_id)?;
        if req.reason.trim().is_empty() {
            return Err(ApiError::invalid("reason", "is required for an erasure").into());
        }
        bounded("reason", &req.reason, MAX_TEXT)?;
        let change = Change::Erase {
            customer: req.customer_id,
            reason: req.reason,
        };
        match self.change(actor, rid, change).await? {
            Changed::Erase(e) => Ok(Response::new(e)),
            _ => Err(ApiError::Internal("unexpected answer".into()).into()),
        }
    }
}
