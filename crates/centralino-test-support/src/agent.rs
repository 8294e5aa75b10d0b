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

/// Who holds an offer right now, across every agent of a floor, and every
/// time an interaction was offered to one agent while another still held
/// it (an offer belongs to a live session: a session that ends gives its
/// offers up).
#[derive(Default)]
pub struct OfferLedger {
    holding: std::sync::Mutex<std::collections::HashMap<String, String>>,
    violations: std::sync::Mutex<Vec<String>>,
}

impl OfferLedger {
    fn offered(&self, id: &str, agent: &str) {
        let Ok(mut h) = self.holding.lock() else {
            return;
        };
        if let Some(other) = h.get(id).filter(|o| *o != agent)
            && let Ok(mut v) = self.violations.lock()
        {
            v.push(format!("{id} offered to {agent} while {other} had it"));
        }
        h.insert(id.to_owned(), agent.to_owned());
    }

    fn released(&self, id: &str) {
        if let Ok(mut h) = self.holding.lock() {
            h.remove(id);
        }
    }

    fn session_ended(&self, agent: &str) {
        if let Ok(mut h) = self.holding.lock() {
            h.retain(|_, a| a != agent);
        }
    }

    /// Every offer made to a second agent while the first held it.
    pub fn violations(&self) -> Vec<String> {
        self.violations
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
}

/// How long an agent waits for a session to open, and for any update on an
/// open one, before it tries the next address: a server that is paused
/// (SIGSTOP) accepts connections and then says nothing.
const SESSION_SILENCE: Duration = Duration::from_secs(5);

/// An agent who accepts whatever they are offered and completes it after
/// `handle`, reconnecting whenever the session ends or falls silent, to the
/// next of the addresses `addrs` holds at the time (the instances that may
/// lead). Offers go through `ledger`.
pub fn spawn_worker(
    name: String,
    token: String,
    addrs: tokio::sync::watch::Receiver<Vec<SocketAddr>>,
    handle: Duration,
    ledger: std::sync::Arc<OfferLedger>,
) -> tokio::task::JoinHandle<()> {
    use v1::agent_request::Action;
    use v1::agent_update::Update;
    tokio::spawn(async move {
        let mut turn = 0usize;
        loop {
            let list = addrs.borrow().clone();
            let Some(addr) = list.get(turn % list.len().max(1)).copied() else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            turn += 1;
            let opened = tokio::time::timeout(SESSION_SILENCE, Desk::open(addr, &token)).await;
            let Ok(Ok((mut desk, snapshot))) = opened else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            desk.available().await;
            for o in &snapshot.offers {
                ledger.offered(&o.interaction_id, &name);
                desk.send(Action::Accept(v1::OfferAnswer {
                    interaction_id: o.interaction_id.clone(),
                }))
                .await;
            }
            for held in &snapshot.assigned {
                ledger.released(&held.interaction_id);
                desk.send(Action::Complete(v1::CompleteInteraction {
                    interaction_id: held.interaction_id.clone(),
                    disposition: "done".into(),
                    ..Default::default()
                }))
                .await;
            }
            loop {
                let update =
                    match tokio::time::timeout(SESSION_SILENCE, desk.updates.message()).await {
                        Ok(Ok(Some(u))) => u.update,
                        // Ended, failed, or silent: try the next address.
                        _ => break,
                    };
                match update {
                    Some(Update::Offer(o)) => {
                        ledger.offered(&o.interaction_id, &name);
                        desk.send(Action::Accept(v1::OfferAnswer {
                            interaction_id: o.interaction_id,
                        }))
                        .await;
                    }
                    Some(Update::OfferRevoked(r)) => ledger.released(&r.interaction_id),
                    Some(Update::Assigned(a)) => {
                        tokio::time::sleep(handle).await;
                        ledger.released(&a.interaction_id);
                        desk.send(Action::Complete(v1::CompleteInteraction {
                            interaction_id: a.interaction_id.clone(),
                            disposition: "done".into(),
                            ..Default::default()
                        }))
                        .await;
                    }
                    _ => {}
                }
            }
            ledger.session_ended(&name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}
