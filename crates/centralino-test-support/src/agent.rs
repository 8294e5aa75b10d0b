//! An agent desktop for tests: a routing session over gRPC (the requests it
//! sends, the updates it gets), plus bearer-token requests.

use std::net::SocketAddr;
use std::time::Duration;

use centralino_proto::v1;
use centralino_proto::v1::agent_service_client::AgentServiceClient;
use centralino_proto::v1::routing_admin_service_client::RoutingAdminServiceClient;
use tokio::sync::mpsc;
use tonic::transport::Channel;

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect to the gRPC server")
}

pub fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    r
}

/// One agent desktop: a session stream, the requests it sends and what it got.
pub struct Desk {
    pub requests: mpsc::Sender<v1::AgentRequest>,
    pub updates: tonic::Streaming<v1::AgentUpdate>,
    next: u64,
}

impl Desk {
    pub async fn open(
        addr: SocketAddr,
        token: &str,
    ) -> Result<(Self, v1::AgentSnapshot), tonic::Status> {
        let (requests, rx) = mpsc::channel(64);
        let ch = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let mut client = AgentServiceClient::new(ch);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut updates = client.session(authed(stream, token)).await?.into_inner();
        let first = updates
            .message()
            .await?
            .ok_or_else(|| tonic::Status::unavailable("session ended"))?;
        let Some(v1::agent_update::Update::Snapshot(snapshot)) = first.update else {
            return Err(tonic::Status::internal("first update is not a snapshot"));
        };
        Ok((
            Self {
                requests,
                updates,
                next: 0,
            },
            snapshot,
        ))
    }

    pub async fn send(&mut self, action: v1::agent_request::Action) -> String {
        self.next += 1;
        let id = format!("r{}-{}", self.next, uuid::Uuid::new_v4().simple());
        // A closed session shows up as the end of `updates`; callers notice there.
        let _ = self
            .requests
            .send(v1::AgentRequest {
                request_id: id.clone(),
                action: Some(action),
            })
            .await;
        id
    }

    pub async fn available(&mut self) {
        self.send(v1::agent_request::Action::SetPresence(v1::SetPresence {
            presence: v1::AgentPresence::Available as i32,
            reason: String::new(),
        }))
        .await;
    }

    /// The next update, within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<v1::agent_update::Update> {
        match tokio::time::timeout(limit, self.updates.message()).await {
            Ok(Ok(Some(u))) => u.update,
            _ => None,
        }
    }

    /// Skips updates until one matches `pick`, within `limit`.
    pub async fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&v1::agent_update::Update) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let u = self.next(left).await?;
            if let Some(t) = pick(&u) {
                return Some(t);
            }
        }
    }
}

pub fn offer_id(u: &v1::agent_update::Update) -> Option<String> {
    match u {
        v1::agent_update::Update::Offer(o) => Some(o.interaction_id.clone()),
        _ => None,
    }
}

pub async fn admin(addr: SocketAddr) -> RoutingAdminServiceClient<Channel> {
    RoutingAdminServiceClient::new(channel(addr).await)
}

pub fn skill_level(skill: &str, level: u32) -> v1::SkillLevel {
    v1::SkillLevel {
        skill: skill.into(),
        level,
    }
}

/// Sets up skills, queues and agents through the admin API.
pub async fn configure(
    addr: SocketAddr,
    token: &str,
    skills: &[&str],
    queues: Vec<v1::QueueDefinition>,
    agents: Vec<v1::AgentDefinition>,
) {
    let mut admin = admin(addr).await;
    for s in skills {
        admin
            .upsert_skill(authed(
                v1::Skill {
                    name: (*s).into(),
                    description: String::new(),
                },
                token,
            ))
            .await
            .expect("skill");
    }
    for q in queues {
        admin.upsert_queue(authed(q, token)).await.expect("queue");
    }
    for a in agents {
        admin.upsert_agent(authed(a, token)).await.expect("agent");
    }
}
