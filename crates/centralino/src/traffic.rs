//! `centralino demo`: traffic on a running contact center, so a newcomer
//! sees queues fill and drain. Customers arrive through the adapters' own
//! inbound paths (walk-ins through the kiosk API, SMS through the
//! provider's signed webhook, callers through the IVR with a SIP phone of
//! our own) and as an integrator's tasks (`InteractionService.CreateTask`);
//! the agents' phones (their `[voice.agents]` addresses on this machine)
//! answer the calls routing gives them; simulated agents log in over `AgentService`
//! (the same stream a desktop uses), accept what they are offered, handle it
//! for a random time and complete it. Email is not generated: the demo has
//! no mailbox.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use centralino_auth::Role;
use centralino_proto::v1;
use tokio::sync::{mpsc, watch};

use centralino_voice::softphone::{Softphone, TalkTime};

use crate::{Config, RunError};

/// What the demo did, counted as it happens.
#[derive(Debug, Default)]
pub struct Counts {
    /// Customers who arrived (the adapter accepted them).
    pub created: AtomicU64,
    /// Of those, walk-ins, texts and tasks.
    pub walk_ins: AtomicU64,
    pub texts: AtomicU64,
    pub tasks: AtomicU64,
    pub calls: AtomicU64,
    /// Arrivals the adapter refused or that did not reach it.
    pub refused: AtomicU64,
    pub offered: AtomicU64,
    pub completed: AtomicU64,
}

/// Where the running services listen (from `Running`).
pub struct Targets {
    pub grpc: SocketAddr,
    pub desk: Option<SocketAddr>,
    pub sms_webhook: Option<SocketAddr>,
    pub voice_sip: Option<SocketAddr>,
}

/// The demo's SIP phones: the callers' and the agents'.
struct Phones {
    caller: Softphone,
    agents: Vec<Softphone>,
    /// The number callers dial, at the adapter's address.
    target: String,
}

/// A caller's phone and a phone per agent whose `[voice.agents]` address is
/// on this machine; `None` without voice.
async fn phones(config: &Config, voice: Option<SocketAddr>) -> Option<Phones> {
    let voice = voice?;
    let number = &config.voice.numbers.first()?.number;
    let host = if voice.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        voice.ip()
    };
    let target = format!("sip:{number}@{}", SocketAddr::new(host, voice.port()));
    let caller = match Softphone::start(SocketAddr::new(host, 0), None).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("demo: no SIP phone for the callers ({e}); no calls");
            return None;
        }
    };
    let mut agents = Vec::new();
    for (agent, uri) in &config.voice.agents {
        let Some(addr) = local_sip_address(uri) else {
            continue;
        };
        // Each call talks 5–20 s, then the agent hangs up.
        let talk: TalkTime = Arc::new(|| {
            let r = uuid::Uuid::new_v4().as_u128();
            Duration::from_secs(5 + u64::try_from(r % 16).unwrap_or(0))
        });
        match Softphone::start(addr, Some(talk)).await {
            Ok(p) => agents.push(p),
            Err(e) => eprintln!(
                "demo: {agent}'s phone cannot listen on {addr} ({e}); their calls go unanswered"
            ),
        }
    }
    Some(Phones {
        caller,
        agents,
        target,
    })
}

/// The address of a `sip:user@ip:port` URI on this machine, if it is one.
fn local_sip_address(uri: &str) -> Option<SocketAddr> {
    let rest = uri.strip_prefix("sip:")?;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split(';').next()?;
    let addr: SocketAddr = host.parse().ok()?;
    addr.ip().is_loopback().then_some(addr)
}

/// A caller dials the IVR and, once it answers, stays on the line (pressing
/// 1 or 3, waiting, talking to the agent, at most two minutes), all in the
/// background: counted when the IVR answers (or refused when it does not).
/// `None` without phones.
fn call(
    phones: Option<&Arc<Phones>>,
    calls: &mut tokio::task::JoinSet<()>,
    dice: &mut Dice,
    counts: &Arc<Counts>,
    stop: &watch::Receiver<bool>,
) -> Option<bool> {
    let phones = phones?.clone();
    let from = format!("+39347{:07}", dice.between(0, 9_999_999));
    let key = if dice.between(0, 1) == 0 { "1" } else { "3" };
    let counts = counts.clone();
    let (mut dialling, mut leaving) = (stop.clone(), stop.clone());
    calls.spawn(async move {
        let dialled = tokio::select! {
            r = phones.caller.dial(&phones.target, &from, Duration::from_secs(10)) => r,
            _ = dialling.wait_for(|s| *s) => return,
        };
        match dialled {
            Ok(active) => {
                counts.created.fetch_add(1, Ordering::Relaxed);
                counts.calls.fetch_add(1, Ordering::Relaxed);
                // At the end of the demo the caller hangs up (while the
                // services still run, so every leg ends cleanly).
                let leave = async move {
                    let _ = leaving.wait_for(|s| *s).await;
                };
                let _ = active
                    .stay_until(
                        key,
                        Duration::from_millis(1_500),
                        Duration::from_secs(120),
                        leave,
                    )
                    .await;
            }
            Err(end) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(?end, "demo: the IVR did not answer a call");
            }
        }
    });
    None
}

/// A small deterministic generator (xorshift), so the demo needs no
/// randomness crate; seeded from the clock.
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or(1)
}

/// Runs the simulated agents and the arrivals (`per_minute` customers a
/// minute over the configured channels) until `stop` turns true.
pub async fn run(
    config: &Config,
    targets: Targets,
    per_minute: u32,
    counts: Arc<Counts>,
    stop: watch::Receiver<bool>,
) -> Result<(), RunError> {
    let key = crate::token_key(config)?;
    let now = chrono::Utc::now().timestamp();
    let mut tasks = Vec::new();
    // Agents take the first site's counters in turn (walk-ins are called to
    // a counter); one without a counter still takes the other channels.
    let site = config.desk.sites.first();
    for (i, agent) in config.routing.agents.iter().enumerate() {
        let token = key.mint(&agent.name, Role::Agent, now, 86_400)?;
        let counter = site.and_then(|s| Some((s.id.clone(), s.counters.get(i)?.clone())));
        tasks.push(tokio::spawn(agent_loop(
            targets.grpc,
            agent.name.clone(),
            token,
            counter,
            counts.clone(),
            stop.clone(),
        )));
    }
    let kiosk = if config.desk.kiosk_auth {
        Some(key.mint("demo-kiosk", Role::Kiosk, now, 86_400)?)
    } else {
        None
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| RunError::Io(format!("demo: HTTP client: {e}")))?;
    let integrator = key.mint("demo-integrator", Role::Integrator, now, 86_400)?;
    // Tasks go to the first queue that takes them.
    let task_queue = config
        .routing
        .queues
        .iter()
        .find(|q| q.channels.iter().any(|c| c == "task"))
        .map(|q| q.name.clone());
    let phones = phones(config, targets.voice_sip).await.map(Arc::new);
    let mut calls = tokio::task::JoinSet::new();
    let mut dice = Dice::new(seed());
    let pause = Duration::from_millis(60_000 / u64::from(per_minute.max(1)));
    let mut stop_arrivals = stop.clone();
    let mut n: u64 = 0;
    // Message ids unique across runs (the webhook drops a repeated one).
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    loop {
        n += 1;
        // In turn, so a short run sees every channel.
        let (arrived, kind) = match n % 4 {
            3 => (
                call(phones.as_ref(), &mut calls, &mut dice, &counts, &stop),
                &counts.calls,
            ),
            2 => (
                task(targets.grpc, &integrator, task_queue.as_deref(), &mut dice).await,
                &counts.tasks,
            ),
            0 => (
                walk_in(config, targets.desk, &http, kiosk.as_deref(), &mut dice).await,
                &counts.walk_ins,
            ),
            _ => (
                text(config, targets.sms_webhook, &http, &run_id, n, &mut dice).await,
                &counts.texts,
            ),
        };
        if arrived == Some(true) {
            kind.fetch_add(1, Ordering::Relaxed);
        }
        match arrived {
            Some(true) => counts.created.fetch_add(1, Ordering::Relaxed),
            Some(false) => counts.refused.fetch_add(1, Ordering::Relaxed),
            None => 0,
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop_arrivals.wait_for(|s| *s) => break,
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    while calls.join_next().await.is_some() {}
    if let Some(phones) = phones.and_then(|p| Arc::try_unwrap(p).ok()) {
        phones.caller.stop().await;
        for p in phones.agents {
            p.stop().await;
        }
    }
    Ok(())
}

/// A walk-in takes a ticket at the first site's kiosk; `None` when there is
/// no desk.
async fn walk_in(
    config: &Config,
    desk: Option<SocketAddr>,
    http: &reqwest::Client,
    token: Option<&str>,
    dice: &mut Dice,
) -> Option<bool> {
    let desk = desk?;
    let site = config.desk.sites.first()?;
    let services = &config.desk.services;
    let last = u64::try_from(services.len().checked_sub(1)?).ok()?;
    let service = services.get(usize::try_from(dice.between(0, last)).ok()?)?;
    let mut request = http
        .post(format!("http://{desk}/api/sites/{}/tickets", site.id))
        .json(&serde_json::json!({ "service": service.code }));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    Some(accepted("kiosk", request.send().await))
}

/// Whether the adapter took the arrival; what refused it is logged (no
/// content: only the status).
fn accepted(what: &str, response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) if r.status().is_success() => true,
        Ok(r) => {
            tracing::warn!(
                what,
                status = r.status().as_u16(),
                "demo: an arrival was refused"
            );
            false
        }
        Err(e) => {
            tracing::warn!(what, error = %e, "demo: an arrival did not reach the adapter");
            false
        }
    }
}

/// A customer texts one of the numbers, through the provider's webhook,
/// signed as the provider signs; `None` without webhooks.
async fn text(
    config: &Config,
    webhook: Option<SocketAddr>,
    http: &reqwest::Client,
    run_id: &str,
    n: u64,
    dice: &mut Dice,
) -> Option<bool> {
    let addr = webhook?;
    let hook = config.sms.webhook.as_ref()?;
    let to = config.sms.numbers.first()?.number.clone();
    // Italian mobile numbers of the test range, one per customer.
    let from = format!("+39347{:07}", dice.between(0, 9_999_999));
    let params = vec![
        ("MessageSid".to_owned(), format!("SM{run_id}{n:08}")),
        ("From".to_owned(), from),
        ("To".to_owned(), to),
        (
            "Body".to_owned(),
            [
                "Buongiorno, vorrei informazioni",
                "Hello, I need help with my bill",
                "Quando riaprite?",
            ][usize::try_from(dice.between(0, 2)).unwrap_or(0)]
            .to_owned(),
        ),
    ];
    let path = hook.path.trim_end_matches('/');
    let signed_url = format!(
        "{}{path}/inbound",
        hook.public_base_url.trim_end_matches('/')
    );
    let signature =
        centralino_gsm::twilio::signature(hook.auth_token.as_bytes(), &signed_url, &params);
    let response = http
        .post(format!("http://{addr}{path}/inbound"))
        .header("x-twilio-signature", signature)
        .form(&params)
        .send()
        .await;
    Some(accepted("sms webhook", response))
}

/// An integrator's task (a callback request from the website); `None`
/// when no queue takes tasks.
async fn task(grpc: SocketAddr, token: &str, queue: Option<&str>, dice: &mut Dice) -> Option<bool> {
    let queue = queue?;
    let created = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        let mut client = v1::interaction_service_client::InteractionServiceClient::new(channel);
        let (title, description) = [
            (
                "Richiamare il cliente",
                "Ha chiesto di essere richiamato dal sito.",
            ),
            (
                "Call back about an invoice",
                "Asked through the website's contact form.",
            ),
            (
                "Verificare un reclamo",
                "Reclamo aperto nel CRM, da verificare.",
            ),
        ][usize::try_from(dice.between(0, 2)).unwrap_or(0)];
        let mut request = tonic::Request::new(v1::CreateTaskRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            title: title.into(),
            description: description.into(),
            identifiers: vec![v1::CustomerIdentifier {
                kind: v1::customer_identifier::Kind::Phone as i32,
                value: format!("+39347{:07}", dice.between(0, 9_999_999)),
            }],
            queue: queue.to_owned(),
            priority: 20,
            ..Default::default()
        });
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| "the token is not a header value".to_owned())?;
        request.metadata_mut().insert("authorization", bearer);
        client
            .create_task(request)
            .await
            .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
    };
    match created.await {
        Ok(_) => Some(true),
        Err(e) => {
            tracing::warn!(error = %e, "demo: a task was not created");
            Some(false)
        }
    }
}

/// One simulated agent: logs in, becomes available, accepts every offer,
/// handles each for 5–20 s and completes it; logs in again if the session
/// ends. When `stop` turns true it completes what it holds, then leaves.
async fn agent_loop(
    grpc: SocketAddr,
    name: String,
    token: String,
    counter: Option<(String, String)>,
    counts: Arc<Counts>,
    mut stop: watch::Receiver<bool>,
) {
    let mut dice = Dice::new(
        seed()
            ^ name
                .bytes()
                .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))),
    );
    while !*stop.borrow() {
        if let Err(e) = session(
            grpc,
            &token,
            counter.as_ref(),
            &counts,
            &mut dice,
            &mut stop,
        )
        .await
        {
            tracing::debug!(agent = %name, error = %e, "demo agent: session ended");
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn request(action: v1::agent_request::Action) -> v1::AgentRequest {
    v1::AgentRequest {
        request_id: uuid::Uuid::now_v7().to_string(),
        action: Some(action),
    }
}

fn available() -> v1::agent_request::Action {
    v1::agent_request::Action::SetPresence(v1::SetPresence {
        presence: v1::AgentPresence::Available as i32,
        reason: String::new(),
    })
}

async fn session(
    grpc: SocketAddr,
    token: &str,
    counter: Option<&(String, String)>,
    counts: &Counts,
    dice: &mut Dice,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    use std::collections::{HashMap, HashSet};
    use v1::agent_request::Action;
    use v1::agent_update::Update;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| e.to_string())?;
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .map_err(|_| "the token is not a header value".to_owned())?;
    if let Some((site, counter)) = counter {
        let mut desk = v1::desk_service_client::DeskServiceClient::new(channel.clone());
        let mut open = tonic::Request::new(v1::OpenCounterRequest {
            site: site.clone(),
            counter: counter.clone(),
        });
        open.metadata_mut().insert("authorization", bearer.clone());
        desk.open_counter(open)
            .await
            .map_err(|s| format!("counter {counter}: {}", s.message()))?;
    }
    let mut client = v1::agent_service_client::AgentServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<v1::AgentRequest>(64);
    let mut call = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    call.metadata_mut().insert("authorization", bearer);
    let mut updates = client
        .session(call)
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    let send = |r: v1::AgentRequest| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(r).await;
        }
    };
    send(request(available())).await;
    // What this agent holds, and the completions it awaits answers to.
    let mut held: HashSet<String> = HashSet::new();
    let mut completing: HashMap<String, String> = HashMap::new();
    // Completions come back to the session loop when their handle time is up.
    let (done_tx, mut done_rx) = mpsc::channel::<String>(64);
    let handle = |id: String, dice: &mut Dice| {
        let wait = Duration::from_secs(dice.between(5, 20));
        let done = done_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let _ = done.send(id).await;
        });
    };
    let mut leaving = false;
    // How long a leaving agent waits for its last completions' answers.
    let mut deadline = tokio::time::Instant::now();
    loop {
        if leaving && completing.is_empty() {
            return Ok(());
        }
        tokio::select! {
            update = updates.message() => {
                let Some(update) = update.map_err(|s| s.message().to_owned())? else {
                    return Ok(());
                };
                let (offers, assigned) = match update.update {
                    // What the agent had when it (re)connected: offers to
                    // answer, work to finish.
                    Some(Update::Snapshot(snap)) => (snap.offers, snap.assigned),
                    Some(Update::Offer(o)) => (vec![o], Vec::new()),
                    Some(Update::Assigned(a)) => (Vec::new(), vec![a]),
                    Some(Update::Result(r)) => {
                        if let Some(id) = completing.remove(&r.request_id) {
                            held.remove(&id);
                            if r.ok {
                                counts.completed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        (Vec::new(), Vec::new())
                    }
                    // Paused by routing (a phone that did not answer, a
                    // walk-in with no counter): back to work shortly, as a
                    // real agent would after a look at the desktop.
                    Some(Update::Status(st)) if st.status == "not-ready" && !leaving => {
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(3)).await;
                            let _ = tx.send(request(available())).await;
                        });
                        (Vec::new(), Vec::new())
                    }
                    _ => (Vec::new(), Vec::new()),
                };
                if leaving {
                    continue;
                }
                for o in offers {
                    counts.offered.fetch_add(1, Ordering::Relaxed);
                    send(request(Action::Accept(v1::OfferAnswer {
                        interaction_id: o.interaction_id,
                    })))
                    .await;
                }
                for a in assigned {
                    if held.insert(a.interaction_id.clone()) {
                        handle(a.interaction_id, dice);
                    }
                }
            }
            Some(id) = done_rx.recv(), if !leaving => {
                let r = request(Action::Complete(v1::CompleteInteraction {
                    interaction_id: id.clone(),
                    disposition: "resolved".into(),
                    wrap_up_notes: String::new(),
                    wrap_up_ms: Some(2_000),
                }));
                completing.insert(r.request_id.clone(), id);
                send(r).await;
            }
            () = tokio::time::sleep_until(deadline), if leaving => return Ok(()),
            () = async { let _ = stop.wait_for(|s| *s).await; }, if !leaving => {
                // The demo ends: finish what is held now, so nothing is left
                // assigned to an agent who is gone.
                leaving = true;
                deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                let unfinished: Vec<String> = held
                    .iter()
                    .filter(|id| !completing.values().any(|c| c == *id))
                    .cloned()
                    .collect();
                for id in unfinished {
                    let r = request(Action::Complete(v1::CompleteInteraction {
                        interaction_id: id.clone(),
                        disposition: "resolved".into(),
                        wrap_up_notes: String::new(),
                        wrap_up_ms: Some(0),
                    }));
                    completing.insert(r.request_id.clone(), id.clone());
                    send(r).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dice_stay_in_their_range_and_vary() {
        let mut d = Dice::new(42);
        let rolls: Vec<u64> = (0..1_000).map(|_| d.between(5, 20)).collect();
        assert!(rolls.iter().all(|r| (5..=20).contains(r)));
        assert!(rolls.contains(&5) && rolls.contains(&20));
    }
}
