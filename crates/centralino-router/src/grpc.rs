//! The gRPC side: agent sessions, supervisor boards and administration. Every
//! call becomes a command for the actor; answers and errors come back through
//! `ApiError`, the one error table.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use centralino_proto::v1;
use centralino_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use centralino_proto::v1::routing_admin_service_server::{
    RoutingAdminService, RoutingAdminServiceServer,
};
use centralino_proto::v1::supervisor_service_server::{SupervisorService, SupervisorServiceServer};
use centralino_server::{ApiError, StreamAuth};
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use centralino_proto::v1::agent_desk_service_server::{AgentDeskService, AgentDeskServiceServer};

use crate::actor::{AdminOp, AdminReply, Command, FEED_KEPT, Kick, Numbered, now_ms, ts};

pub type AgentServer = AgentServiceServer<AgentApi>;
pub type SupervisorServer = SupervisorServiceServer<SupervisorApi>;
pub type AdminServer = RoutingAdminServiceServer<AdminApi>;

/// Updates a desktop may fall behind by before its session is closed.
const SESSION_BUFFER: usize = 256;
const MAX_REQUEST_ID: usize = 64;

async fn ask<T>(
    tx: &mpsc::Sender<Command>,
    make: impl FnOnce(oneshot::Sender<Result<T, ApiError>>) -> Command,
) -> Result<T, Status> {
    let (reply, answer) = oneshot::channel();
    tx.send(make(reply))
        .await
        .map_err(|_| ApiError::Unavailable("routing".into()))?;
    Ok(answer
        .await
        .map_err(|_| ApiError::Unavailable("routing".into()))??)
}

fn subject<T>(request: &Request<T>) -> Result<String, Status> {
    Ok(centralino_server::claims(request)?.sub.clone())
}

/// Resolves when the service stops; long-lived streams end with it, so a
/// graceful shutdown does not wait for desktops to hang up.
#[derive(Clone)]
pub(crate) struct Stop(pub(crate) tokio::sync::watch::Receiver<bool>);

impl Stop {
    async fn wait(mut self) {
        let _ = self.0.wait_for(|s| *s).await;
    }
}

pub(crate) fn agent_server(
    tx: mpsc::Sender<Command>,
    sessions: Arc<AtomicU64>,
    stop: Stop,
    max: usize,
) -> AgentServer {
    AgentServiceServer::new(AgentApi { tx, sessions, stop })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

pub(crate) fn supervisor_server(
    tx: mpsc::Sender<Command>,
    stop: Stop,
    max: usize,
) -> SupervisorServer {
    SupervisorServiceServer::new(SupervisorApi { tx, stop })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

pub(crate) fn admin_server(tx: mpsc::Sender<Command>, max: usize) -> AdminServer {
    RoutingAdminServiceServer::new(AdminApi { tx })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

pub struct AgentApi {
    tx: mpsc::Sender<Command>,
    sessions: Arc<AtomicU64>,
    stop: Stop,
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<v1::AgentUpdate, Status>> + Send>>;

fn bad_request(request_id: &str, field: &str, message: &str) -> v1::RequestResult {
    v1::RequestResult {
        request_id: request_id.chars().take(MAX_REQUEST_ID).collect(),
        ok: false,
        code: tonic::Code::InvalidArgument as i32,
        message: format!("{field}: {message}"),
        field: field.to_owned(),
    }
}

#[tonic::async_trait]
impl AgentService for AgentApi {
    type SessionStream = UpdateStream;

    async fn session(
        &self,
        request: Request<Streaming<v1::AgentRequest>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let agent = subject(&request)?;
        let session = self.sessions.fetch_add(1, Ordering::Relaxed);
        let (updates, rx) = mpsc::channel(SESSION_BUFFER + FEED_KEPT);
        let (kick, kicked) = tokio::sync::watch::channel(Kick::Live);
        let a = agent.clone();
        let u = updates.clone();
        // The actor puts the snapshot in the stream before any update.
        ask(&self.tx, move |reply| Command::Connect {
            agent: a,
            session,
            updates: u,
            kick,
            resume: None,
            reply,
        })
        .await?;
        // The stream ends when the service stops or the actor drops the session.
        let ended = {
            let stop = self.stop.clone();
            let kicked = kicked.clone();
            async move {
                tokio::select! {
                    () = stop.wait() => {}
                    _ = kicked_out(kicked) => {}
                }
            }
        };
        tracing::info!(agent = %agent, session, "agent session opened");
        let mut inbound = request.into_inner();
        let tx = self.tx.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let stopped = async move {
                tokio::select! {
                    () = stop.wait() => {}
                    _ = kicked_out(kicked) => {}
                }
            };
            tokio::pin!(stopped);
            loop {
                let next = tokio::select! {
                    n = inbound.next() => n,
                    () = updates.closed() => None,
                    () = &mut stopped => None,
                };
                let Some(Ok(req)) = next else { break };
                let Some(result) = act(&tx, &agent, req).await else {
                    break;
                };
                let answer = Numbered {
                    seq: 0,
                    update: v1::AgentUpdate {
                        update: Some(v1::agent_update::Update::Result(result)),
                    },
                };
                if updates.send(answer).await.is_err() {
                    break;
                }
            }
            let _ = tx
                .send(Command::Disconnect {
                    agent: agent.clone(),
                    session,
                })
                .await;
            tracing::info!(agent = %agent, session, "agent session closed");
        });
        let stream = futures::StreamExt::take_until(
            ReceiverStream::new(rx).map(|n: Numbered| Ok(n.update)),
            ended,
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One agent request, checked and applied: its result, or `None` when
/// routing is gone (stopping).
async fn act(
    tx: &mpsc::Sender<Command>,
    agent: &str,
    req: v1::AgentRequest,
) -> Option<v1::RequestResult> {
    if req.request_id.is_empty() || req.request_id.len() > MAX_REQUEST_ID {
        return Some(bad_request(
            &req.request_id,
            "request_id",
            "1 to 64 characters",
        ));
    }
    let Some(action) = req.action else {
        return Some(bad_request(&req.request_id, "action", "is required"));
    };
    let (reply, result) = oneshot::channel();
    let cmd = Command::Agent {
        agent: agent.to_owned(),
        request_id: req.request_id,
        action,
        reply,
    };
    tx.send(cmd).await.ok()?;
    result.await.ok()
}

/// Resolves when the actor ends a session's stream, with why.
async fn kicked_out(mut kicked: tokio::sync::watch::Receiver<Kick>) -> Kick {
    match kicked.wait_for(|k| *k != Kick::Live).await {
        Ok(k) => *k,
        Err(_) => Kick::Ended,
    }
}

/// How often a browser desktop's stream carries a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(15);

pub(crate) fn desk_server(
    tx: mpsc::Sender<Command>,
    sessions: Arc<AtomicU64>,
    stop: Stop,
    max: usize,
) -> DeskServer {
    AgentDeskServiceServer::new(AgentDeskApi { tx, sessions, stop })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

pub type DeskServer = AgentDeskServiceServer<AgentDeskApi>;

/// The agent session for browsers (gRPC-web has no client streams): one
/// server stream of numbered events, and unary commands. Same actor, same
/// session and lease as [`AgentApi`].
pub struct AgentDeskApi {
    tx: mpsc::Sender<Command>,
    sessions: Arc<AtomicU64>,
    stop: Stop,
}

type DeskStream = Pin<Box<dyn Stream<Item = Result<v1::DeskEvent, Status>> + Send>>;

#[tonic::async_trait]
impl AgentDeskService for AgentDeskApi {
    type EventsStream = DeskStream;

    async fn events(
        &self,
        request: Request<v1::DeskEventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let agent = subject(&request)?;
        let auth = StreamAuth::of(&request)?;
        let req = request.into_inner();
        if req.epoch.len() > 64 {
            return Err(ApiError::invalid("epoch", "at most 64 characters").into());
        }
        let resume = (!req.epoch.is_empty()).then_some((req.epoch, req.after_seq));
        let session = self.sessions.fetch_add(1, Ordering::Relaxed);
        let (updates, mut rx) = mpsc::channel(SESSION_BUFFER + FEED_KEPT);
        let (kick, kicked) = tokio::sync::watch::channel(Kick::Live);
        let a = agent.clone();
        let epoch = ask(&self.tx, move |reply| Command::Connect {
            agent: a,
            session,
            updates,
            kick,
            resume,
            reply,
        })
        .await?;
        tracing::info!(agent = %agent, session, "browser desktop connected");
        let (out, events) = mpsc::channel::<Result<v1::DeskEvent, Status>>(SESSION_BUFFER);
        let tx = self.tx.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut last = 0;
            let mut heartbeat =
                tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
            let ended = async move {
                tokio::select! {
                    () = stop.wait() => Kick::Ended,
                    k = kicked_out(kicked) => k,
                }
            };
            tokio::pin!(ended);
            loop {
                let event = tokio::select! {
                    // The actor drops a replaced session's sender as it says
                    // why: the why must win over the channel's end.
                    biased;
                    kick = &mut ended => {
                        if kick == Kick::Replaced {
                            let _ = out
                                .send(Err(Status::aborted(
                                    "the desktop was opened in another tab or device; this one \
                                     gets no more work until it is used again",
                                )))
                                .await;
                        }
                        break;
                    }
                    n = rx.recv() => match n {
                        Some(n) => {
                            last = n.seq;
                            v1::desk_event::Event::Update(n.update)
                        }
                        None => break,
                    },
                    _ = heartbeat.tick() => {
                        // Each heartbeat also checks the login still holds.
                        if let Err(status) = auth.check().await {
                            let _ = out.send(Err(status)).await;
                            break;
                        }
                        v1::desk_event::Event::Heartbeat(v1::DeskHeartbeat {
                            at: Some(ts(now_ms())),
                        })
                    }
                    () = out.closed() => break,
                };
                let event = v1::DeskEvent {
                    epoch: epoch.clone(),
                    seq: last,
                    event: Some(event),
                };
                if out.send(Ok(event)).await.is_err() {
                    break;
                }
            }
            // The lease: without a stream the agent goes offline after the grace.
            let _ = tx
                .send(Command::Disconnect {
                    agent: agent.clone(),
                    session,
                })
                .await;
            tracing::info!(agent = %agent, session, "browser desktop disconnected");
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(events))))
    }

    async fn act(
        &self,
        request: Request<v1::AgentRequest>,
    ) -> Result<Response<v1::RequestResult>, Status> {
        let agent = subject(&request)?;
        act(&self.tx, &agent, request.into_inner())
            .await
            .map(Response::new)
            .ok_or_else(|| ApiError::Unavailable("routing".into()).into())
    }
}

pub struct SupervisorApi {
    tx: mpsc::Sender<Command>,
    stop: Stop,
}

type BoardStream = Pin<Box<dyn Stream<Item = Result<v1::QueueBoard, Status>> + Send>>;

#[tonic::async_trait]
impl SupervisorService for SupervisorApi {
    type WatchQueuesStream = BoardStream;

    async fn watch_queues(
        &self,
        request: Request<v1::WatchQueuesRequest>,
    ) -> Result<Response<Self::WatchQueuesStream>, Status> {
        let auth = StreamAuth::of(&request)?;
        let req = request.into_inner();
        let interval = match req.interval_ms {
            0 => 1_000,
            n @ 250..=60_000 => n,
            _ => {
                return Err(
                    ApiError::invalid("interval_ms", "must be 250 to 60000 (0 = 1000)").into(),
                );
            }
        };
        if req.queues.len() > 500 {
            return Err(ApiError::invalid("queues", "at most 500 queues").into());
        }
        // The first board answers now, so an unknown queue fails the call itself.
        let queues = req.queues.clone();
        let first = ask(&self.tx, |reply| Command::Board { queues, reply }).await?;
        let (out, rx) = mpsc::channel(4);
        let tx = self.tx.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            let mut board = first;
            let mut checked = tokio::time::Instant::now();
            loop {
                if out.send(Ok(board)).await.is_err() {
                    return;
                }
                // The login still holds (checked as often as a desktop's heartbeat).
                if checked.elapsed() >= HEARTBEAT {
                    checked = tokio::time::Instant::now();
                    if let Err(status) = auth.check().await {
                        let _ = out.send(Err(status)).await;
                        return;
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(u64::from(interval))) => {}
                    () = out.closed() => return,
                    () = stop.clone().wait() => return,
                }
                let queues = req.queues.clone();
                board = match ask(&tx, |reply| Command::Board { queues, reply }).await {
                    Ok(b) => b,
                    Err(status) => {
                        let _ = out.send(Err(status)).await;
                        return;
                    }
                };
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_waiting(
        &self,
        request: Request<v1::ListWaitingRequest>,
    ) -> Result<Response<v1::ListWaitingResponse>, Status> {
        let queue = request.into_inner().queue;
        if queue.is_empty() {
            return Err(ApiError::invalid("queue", "is required").into());
        }
        Ok(Response::new(
            ask(&self.tx, |reply| Command::Waiting { queue, reply }).await?,
        ))
    }

    async fn set_agent_presence(
        &self,
        request: Request<v1::SetAgentPresenceRequest>,
    ) -> Result<Response<v1::RequestResult>, Status> {
        let supervisor = subject(&request)?;
        let req = request.into_inner();
        if req.agent.is_empty() || req.agent.len() > 64 {
            return Err(ApiError::invalid("agent", "1 to 64 characters").into());
        }
        if req.request_id.is_empty() || req.request_id.len() > 48 {
            return Err(ApiError::invalid("request_id", "1 to 48 characters").into());
        }
        let Some(presence) = req.presence else {
            return Err(ApiError::invalid("presence", "is required").into());
        };
        // Only the agent makes themselves available: a supervisor may stop
        // their work, not start it.
        if !matches!(
            presence.presence(),
            v1::AgentPresence::NotReady | v1::AgentPresence::Offline
        ) {
            return Err(ApiError::invalid(
                "presence.presence",
                "a supervisor sets NOT_READY (with a reason) or OFFLINE",
            )
            .into());
        }
        tracing::info!(supervisor = %supervisor, agent = %req.agent, presence = presence.presence, "supervisor sets an agent's presence");
        // Kept apart from the agent's own request ids.
        let request_id = format!("supervisor:{}", req.request_id);
        let mut result = act(
            &self.tx,
            &req.agent,
            v1::AgentRequest {
                request_id,
                action: Some(v1::agent_request::Action::SetPresence(presence)),
            },
        )
        .await
        .ok_or_else(|| Status::from(ApiError::Unavailable("routing".into())))?;
        result.request_id = req.request_id;
        Ok(Response::new(result))
    }
}

pub struct AdminApi {
    tx: mpsc::Sender<Command>,
}

impl AdminApi {
    async fn run(&self, op: AdminOp) -> Result<AdminReply, Status> {
        ask(&self.tx, |reply| Command::Admin { op, reply }).await
    }
}

fn unexpected() -> Status {
    ApiError::Internal("routing answered an admin call with the wrong kind of reply".into()).into()
}

#[tonic::async_trait]
impl RoutingAdminService for AdminApi {
    async fn upsert_skill(&self, r: Request<v1::Skill>) -> Result<Response<v1::Skill>, Status> {
        match self.run(AdminOp::UpsertSkill(r.into_inner())).await? {
            AdminReply::Skill(s) => Ok(Response::new(s)),
            _ => Err(unexpected()),
        }
    }

    async fn delete_skill(
        &self,
        r: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        self.run(AdminOp::DeleteSkill(r.into_inner().name)).await?;
        Ok(Response::new(v1::DeleteResponse {}))
    }

    async fn list_skills(
        &self,
        _r: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListSkillsResponse>, Status> {
        match self.run(AdminOp::ListSkills).await? {
            AdminReply::Skills(skills) => Ok(Response::new(v1::ListSkillsResponse { skills })),
            _ => Err(unexpected()),
        }
    }

    async fn upsert_queue(
        &self,
        r: Request<v1::QueueDefinition>,
    ) -> Result<Response<v1::QueueDefinition>, Status> {
        match self.run(AdminOp::UpsertQueue(r.into_inner())).await? {
            AdminReply::Queue(q) => Ok(Response::new(q)),
            _ => Err(unexpected()),
        }
    }

    async fn delete_queue(
        &self,
        r: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        self.run(AdminOp::DeleteQueue(r.into_inner().name)).await?;
        Ok(Response::new(v1::DeleteResponse {}))
    }

    async fn list_queues(
        &self,
        _r: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListQueuesResponse>, Status> {
        match self.run(AdminOp::ListQueues).await? {
            AdminReply::Queues(queues) => Ok(Response::new(v1::ListQueuesResponse { queues })),
            _ => Err(unexpected()),
        }
    }

    async fn upsert_agent(
        &self,
        r: Request<v1::AgentDefinition>,
    ) -> Result<Response<v1::AgentDefinition>, Status> {
        match self.run(AdminOp::UpsertAgent(r.into_inner())).await? {
            AdminReply::Agent(a) => Ok(Response::new(a)),
            _ => Err(unexpected()),
        }
    }

    async fn delete_agent(
        &self,
        r: Request<v1::DeleteRequest>,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        self.run(AdminOp::DeleteAgent(r.into_inner().name)).await?;
        Ok(Response::new(v1::DeleteResponse {}))
    }

    async fn list_agents(
        &self,
        _r: Request<v1::ListRequest>,
    ) -> Result<Response<v1::ListAgentsResponse>, Status> {
        match self.run(AdminOp::ListAgents).await? {
            AdminReply::Agents(agents) => Ok(Response::new(v1::ListAgentsResponse { agents })),
            _ => Err(unexpected()),
        }
    }
}
