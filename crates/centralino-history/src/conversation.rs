//! `ConversationService` (send a message on the customer's channel, read and
//! watch its status) and `InteractionService` (tasks) over gRPC: validation
//! at the edge, changes through the writer, reads from the database.

use std::pin::Pin;

use centralino_auth::Role;
use centralino_domain::IdentifierKind;
use centralino_proto::v1;
use centralino_proto::v1::conversation_service_server::{
    ConversationService, ConversationServiceServer,
};
use centralino_proto::v1::interaction_service_server::{
    InteractionService, InteractionServiceServer,
};
use centralino_server::ApiError;
use futures::Stream;
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::{Request, Response, Status};

use crate::entities::{interaction, message};
use crate::grpc::{MAX_NAME, bounded, change, identifier_of, request_id, subject, token_name};
use crate::writer::{Change, Changed, Command, SendInput, TaskInput, outbound_wire, task_wire};
use crate::{HistoryConfig, ms_of};

pub type ConversationServer = ConversationServiceServer<ConversationApi>;
pub type InteractionServer = InteractionServiceServer<InteractionApi>;

/// The longest email body accepted, in characters.
const MAX_EMAIL_BODY: usize = 100_000;
/// The longest SMS body accepted, in characters (the adapter sends at most
/// its `sms.max_segments`).
const MAX_SMS_BODY: usize = 10_000;
const MAX_SUBJECT: usize = 998;
const MAX_DESCRIPTION: usize = 10_000;
const MAX_ATTRIBUTES: usize = 50;
const MAX_ATTRIBUTE_KEY: usize = 64;
const MAX_ATTRIBUTE_VALUE: usize = 1_000;
const MAX_IDENTIFIERS: usize = 20;

/// What both services share: the writer's queue, the database, and the
/// writer's signal that message rows changed.
#[derive(Clone)]
struct Shared {
    cfg: HistoryConfig,
    db: DatabaseConnection,
    tx: mpsc::Sender<Command>,
    messages: watch::Receiver<u64>,
}

pub struct ConversationApi(Shared);
pub struct InteractionApi(Shared);

pub(crate) fn servers(
    cfg: HistoryConfig,
    db: DatabaseConnection,
    tx: mpsc::Sender<Command>,
    messages: watch::Receiver<u64>,
    max: usize,
) -> (ConversationServer, InteractionServer) {
    let shared = Shared {
        cfg,
        db,
        tx,
        messages,
    };
    (
        ConversationServiceServer::new(ConversationApi(shared.clone()))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
        InteractionServiceServer::new(InteractionApi(shared))
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
}

fn uuid_of(raw: &str, field: &'static str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::invalid(field, "is not a UUID"))
}

/// Checks a send request at the edge, as far as it can be without the store.
fn send_input(
    cfg: &HistoryConfig,
    claims: &centralino_auth::Claims,
    req: v1::SendMessageRequest,
) -> Result<SendInput, ApiError> {
    let mut command = req
        .message
        .ok_or_else(|| ApiError::invalid("message", "is required"))?;
    command.message_id = uuid_of(&command.message_id, "message.message_id")?;
    let channel = match v1::Channel::try_from(command.channel) {
        Ok(c @ (v1::Channel::Email | v1::Channel::Sms)) => c,
        _ => {
            return Err(ApiError::invalid(
                "message.channel",
                "must be EMAIL or SMS (the channels that send messages)",
            ));
        }
    };
    if command.body.trim().is_empty() {
        return Err(ApiError::invalid("message.body", "is empty"));
    }
    let max_body = if channel == v1::Channel::Email {
        MAX_EMAIL_BODY
    } else {
        MAX_SMS_BODY
    };
    bounded("message.body", &command.body, max_body)?;
    bounded("message.subject", &command.subject, MAX_SUBJECT)?;
    if command.subject.contains(['\r', '\n']) {
        return Err(ApiError::invalid("message.subject", "must be one line"));
    }
    if channel == v1::Channel::Sms && !command.subject.is_empty() {
        return Err(ApiError::invalid(
            "message.subject",
            "an SMS has no subject",
        ));
    }
    if !command.attachments.is_empty() {
        return Err(ApiError::invalid(
            "message.attachments",
            "are not sent through this API",
        ));
    }
    if !command.purpose.is_empty() {
        token_name("message.purpose", &command.purpose)?;
    }
    let agent = claims.role == Role::Agent;
    if agent && !command.purpose.is_empty() {
        // A purpose (even `transactional`) would pass an opt-out: agents reply.
        return Err(ApiError::PermissionDenied(
            "agents send replies (no purpose); notifications are sent by integrators".into(),
        ));
    }
    let recipient = if command.recipient.is_empty() {
        command.interaction_id = uuid_of(&command.interaction_id, "message.interaction_id")
            .map_err(|_| {
                ApiError::invalid(
                    "message.interaction_id",
                    "is not a UUID (a reply names its conversation; a notification names a recipient)",
                )
            })?;
        None
    } else {
        if !command.interaction_id.is_empty() {
            return Err(ApiError::invalid(
                "message.recipient",
                "give interaction_id (a reply) or recipient (a notification), not both",
            ));
        }
        if channel == v1::Channel::Email {
            return Err(ApiError::invalid(
                "message.recipient",
                "an email is sent only as a reply in its conversation (interaction_id)",
            ));
        }
        if agent {
            return Err(ApiError::PermissionDenied(
                "agents reply in conversations; notifications are sent by integrators".into(),
            ));
        }
        if command.purpose.is_empty() {
            return Err(ApiError::invalid(
                "message.purpose",
                "a notification names its purpose (`transactional` or a consent purpose)",
            ));
        }
        let phone = cfg
            .rules
            .normalize(IdentifierKind::Phone, &command.recipient)
            .map_err(|_| ApiError::invalid("message.recipient", "is not a phone number"))?;
        command.recipient = phone.value().to_owned();
        Some(phone)
    };
    let encoding = (channel == v1::Channel::Sms).then(|| {
        let encoded = centralino_gsm::encode(&command.body);
        (
            encoded.encoding.name(),
            u32::try_from(encoded.segment_count()).unwrap_or(u32::MAX),
        )
    });
    command.agent_id = claims.sub.chars().take(64).collect();
    Ok(SendInput {
        command,
        channel,
        agent_only: agent.then(|| claims.sub.clone()),
        recipient,
        encoding,
        validate_only: req.validate_only,
    })
}

async fn message_row(db: &DatabaseConnection, id: &str) -> Result<message::Model, ApiError> {
    let id = uuid_of(id, "message_id")?;
    message::Entity::find_by_id(id.clone())
        .one(db)
        .await
        .map_err(crate::read::store)?
        .filter(|m| m.direction == "outbound")
        .ok_or_else(|| ApiError::NotFound(format!("message {id}")))
}

/// Whether nothing more will change the message.
fn finished(m: &message::Model) -> bool {
    m.status == "failed" || m.status == "delivered" || (m.status == "sent" && m.channel == "email")
}

type MessageStream = Pin<Box<dyn Stream<Item = Result<v1::OutboundMessage, Status>> + Send>>;

#[tonic::async_trait]
impl ConversationService for ConversationApi {
    type WatchMessageStream = MessageStream;

    async fn send_message(
        &self,
        request: Request<v1::SendMessageRequest>,
    ) -> Result<Response<v1::OutboundMessage>, Status> {
        let claims = centralino_server::claims(&request)?.clone();
        let input = send_input(&self.0.cfg, &claims, request.into_inner())?;
        let (reply, answer) = oneshot::channel();
        self.0
            .tx
            .send(Command::Send { input, reply })
            .await
            .map_err(|_| ApiError::Unavailable("history".into()))?;
        let sent = answer
            .await
            .map_err(|_| ApiError::Unavailable("history".into()))??;
        Ok(Response::new(sent))
    }

    async fn get_message(
        &self,
        request: Request<v1::GetMessageRequest>,
    ) -> Result<Response<v1::OutboundMessage>, Status> {
        let req = request.into_inner();
        let row = message_row(&self.0.db, &req.message_id).await?;
        Ok(Response::new(outbound_wire(&row)))
    }

    async fn watch_message(
        &self,
        request: Request<v1::GetMessageRequest>,
    ) -> Result<Response<Self::WatchMessageStream>, Status> {
        let req = request.into_inner();
        // Subscribed before the first read: no change falls between the two.
        let mut changed = self.0.messages.clone();
        changed.mark_unchanged();
        let first = message_row(&self.0.db, &req.message_id).await?;
        let db = self.0.db.clone();
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(async move {
            let mut last = first;
            if tx.send(Ok(outbound_wire(&last))).await.is_err() {
                return;
            }
            while !finished(&last) {
                tokio::select! {
                    () = tx.closed() => return,
                    moved = changed.changed() => {
                        if moved.is_err() {
                            // The writer stopped (shutdown or lost leadership).
                            let _ = tx.send(Err(ApiError::Unavailable("history".into()).into())).await;
                            return;
                        }
                    }
                }
                let now = match message::Entity::find_by_id(last.id.clone()).one(&db).await {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(crate::read::store(e).into())).await;
                        return;
                    }
                };
                // What the caller sees changed (not the row's other columns).
                if outbound_wire(&now) != outbound_wire(&last)
                    && tx.send(Ok(outbound_wire(&now))).await.is_err()
                {
                    return;
                }
                last = now;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// Checks a task at the edge.
fn task_input(cfg: &HistoryConfig, req: v1::CreateTaskRequest) -> Result<TaskInput, ApiError> {
    let title = req.title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::invalid("title", "is required"));
    }
    bounded("title", &title, MAX_NAME)?;
    if title.contains(['\r', '\n']) {
        return Err(ApiError::invalid("title", "must be one line"));
    }
    bounded("description", &req.description, MAX_DESCRIPTION)?;
    let queue = req.queue.trim().to_owned();
    if queue.is_empty() {
        return Err(ApiError::invalid(
            "queue",
            "is required (the routing queue that works it)",
        ));
    }
    bounded("queue", &queue, 64)?;
    if req.priority > 100 {
        return Err(ApiError::invalid("priority", "must be 0 to 100"));
    }
    if req.identifiers.len() > MAX_IDENTIFIERS {
        return Err(ApiError::invalid(
            "identifiers",
            format!("at most {MAX_IDENTIFIERS}"),
        ));
    }
    let identifiers = req
        .identifiers
        .iter()
        .map(|i| identifier_of(cfg, Some(i), "identifiers").map(|n| n.into_iter()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    if req.attributes.len() > MAX_ATTRIBUTES {
        return Err(ApiError::invalid(
            "attributes",
            format!("at most {MAX_ATTRIBUTES}"),
        ));
    }
    for (k, v) in &req.attributes {
        if k.is_empty() {
            return Err(ApiError::invalid("attributes", "a key is empty"));
        }
        bounded("attributes", k, MAX_ATTRIBUTE_KEY)?;
        bounded("attributes", v, MAX_ATTRIBUTE_VALUE)?;
        if matches!(
            k.as_str(),
            "priority" | "created_by" | crate::writer::DUE_AT
        ) {
            return Err(ApiError::invalid(
                "attributes",
                format!("{k:?} is set by the service"),
            ));
        }
    }
    let due_at = match &req.due_at {
        Some(t) if !(0..=999_999_999).contains(&t.nanos) => {
            return Err(ApiError::invalid("due_at", "has nanos out of range"));
        }
        Some(t) => {
            let ms = ms_of(t);
            // Up to the end of year 9999, as RFC 3339 can write it.
            if !(1..253_402_300_800_000).contains(&ms) {
                return Err(ApiError::invalid("due_at", "is out of range"));
            }
            Some(ms)
        }
        None => None,
    };
    Ok(TaskInput {
        title,
        description: req.description,
        identifiers,
        queue,
        priority: req.priority,
        attributes: req.attributes.into_iter().collect(),
        due_at,
    })
}

fn task_of(changed: Changed) -> Result<v1::Task, Status> {
    match changed {
        Changed::Task(t) => Ok(t),
        _ => Err(ApiError::Internal("unexpected answer".into()).into()),
    }
}

#[tonic::async_trait]
impl InteractionService for InteractionApi {
    async fn create_task(
        &self,
        request: Request<v1::CreateTaskRequest>,
    ) -> Result<Response<v1::Task>, Status> {
        let actor = subject(&request)?;
        let req = request.into_inner();
        let rid = request_id(&req.request_id)?;
        let input = task_input(&self.0.cfg, req)?;
        let answer = change(&self.0.tx, actor, rid, Change::CreateTask(input)).await?;
        Ok(Response::new(task_of(answer)?))
    }

    async fn close_task(
        &self,
        request: Request<v1::CloseTaskRequest>,
    ) -> Result<Response<v1::Task>, Status> {
        let actor = subject(&request)?;
        let req = request.into_inner();
        let rid = request_id(&req.request_id)?;
        let task = uuid_of(&req.task_id, "task_id")?;
        let outcome = if req.outcome.is_empty() {
            "closed".to_owned()
        } else {
            token_name("outcome", &req.outcome)?;
            req.outcome
        };
        let answer = change(&self.0.tx, actor, rid, Change::CloseTask { task, outcome }).await?;
        Ok(Response::new(task_of(answer)?))
    }

    async fn get_task(
        &self,
        request: Request<v1::GetTaskRequest>,
    ) -> Result<Response<v1::Task>, Status> {
        let req = request.into_inner();
        let id = uuid_of(&req.task_id, "task_id")?;
        let row = interaction::Entity::find_by_id(id.clone())
            .one(&self.0.db)
            .await
            .map_err(crate::read::store)?
            .filter(|r| r.channel == "task")
            .ok_or_else(|| ApiError::NotFound(format!("task {id}")))?;
        Ok(Response::new(task_wire(&row)))
    }
}
