//! One task per call: answers the INVITE, runs the IVR, keeps the caller
//! company while routing finds an agent, rings the agent's phone, bridges the
//! two RTP streams and records how it ended.

use std::sync::Arc;
use std::time::Duration;

use centralino_proto::v1;
use centralino_telephony::ivr::{Effect, Flow, Session};
use centralino_telephony::sdp;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, HeadersExt as _, Request, StatusCode};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::bridge;
use crate::dial::{self, Dialing};
use crate::media::{CODECS, FRAME, Frame, Leg, LegStats, Player, Received};
use crate::record::{self, Ended, Queued};
use crate::{Shared, now_ms};

/// What the call task is doing.
enum Phase {
    /// In the IVR.
    Ivr(Session),
    /// Waiting for an agent.
    Queued,
    /// The assigned agent's phone rings.
    Ringing(Box<Ringing>),
    /// Caller and agent talk.
    Bridged(Box<Bridge>),
    /// The caller's side was asked (REFER) to call the agent.
    Referred { agent: String, until: Instant },
    /// A last prompt plays, then the call ends with `outcome`.
    Closing { outcome: &'static str },
}

struct Ringing {
    agent: String,
    dialing: Dialing,
    until: Instant,
}

struct Bridge {
    agent: String,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    leg: Leg,
    /// The agent's dialog leaves the layer when the bridge ends.
    _forget: dial::ForgetDialog,
}

/// How the caller got to us.
pub(crate) struct Incoming {
    pub dialog: InviteDialog,
    pub states: DialogStateReceiver,
    pub invite: Request,
    pub flow: Arc<Flow>,
    pub dialled: String,
}

/// Routing's news about this call's interaction.
pub(crate) type RoutingRx = mpsc::Receiver<v1::RoutingEvent>;

struct Call {
    shared: Arc<Shared>,
    dialog: InviteDialog,
    states: DialogStateReceiver,
    flow: Arc<Flow>,
    caller: Leg,
    player: Player,
    phase: Phase,
    started_at: i64,
    sip_call_id: String,
    caller_raw: String,
    caller_e164: Option<String>,
    dialled: String,
    /// The queue the IVR chose.
    queue: String,
    /// Set once the IVR chose a queue.
    interaction: Option<String>,
    routing: Option<RoutingRx>,
    path: Vec<String>,
    position: u64,
    estimated_wait_ms: Option<u64>,
    next_announcement: Option<Instant>,
    /// The agent who talked with the caller, and their leg's counters.
    agent: Option<(String, LegStats)>,
    /// Handed to the agent by REFER (the adapter left the call).
    transferred: bool,
}

/// Answers and runs the call to its end.
pub(crate) async fn run(shared: Arc<Shared>, incoming: Incoming, stop: watch::Receiver<bool>) {
    let Incoming {
        dialog,
        states,
        invite,
        flow,
        dialled,
    } = incoming;
    let sip_call_id = invite
        .call_id_header()
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let offer = std::str::from_utf8(&invite.body)
        .map_err(|_| "the SDP offer is not UTF-8".to_owned())
        .and_then(|text| {
            if text.trim().is_empty() {
                return Err("no SDP offer (late offer is not supported)".to_owned());
            }
            let parsed = sdp::parse(text).map_err(|e| e.to_string())?;
            let neg = sdp::negotiate(&parsed, &CODECS).map_err(|e| e.to_string())?;
            Ok((parsed, neg))
        });
    let (offer, neg) = match offer {
        Ok(n) => n,
        Err(e) => {
            tracing::info!(call = %sip_call_id, error = %e, "voice: call refused (488)");
            // RFC 3326 Reason, so the caller's logs say why.
            let text: String = e.chars().filter(|c| *c != '"' && !c.is_control()).collect();
            let reason = format!("SIP;cause=488;text=\"{text}\"");
            let _ = dialog.reject(Some(StatusCode::NotAcceptableHere), Some(reason));
            return;
        }
    };
    let socket = match shared.rtp.open().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "voice: cannot open an RTP port; call refused (503)");
            let _ = dialog.reject(Some(StatusCode::ServiceUnavailable), None);
            return;
        }
    };
    let caller = Leg::new(socket, &neg);
    let answer = sdp::answer_to(
        &offer,
        &neg,
        caller.announced,
        caller.session.0,
        caller.session.1,
    );
    if let Err(e) = dialog.accept(
        Some(vec![Header::ContentType("application/sdp".into())]),
        Some(answer.into_bytes()),
    ) {
        tracing::warn!(call = %sip_call_id, error = %e, "voice: could not answer");
        return;
    }
    let caller_raw = caller_number(&invite);
    let caller_e164 = shared
        .config
        .rules
        .normalize(centralino_domain::IdentifierKind::Phone, &caller_raw)
        .ok()
        .map(|i| i.value().to_owned());
    let (session, effects) = Session::start(&flow);
    let mut call = Call {
        shared,
        dialog,
        states,
        flow,
        caller,
        player: Player::default(),
        phase: Phase::Ivr(session),
        started_at: now_ms(),
        sip_call_id,
        caller_raw,
        caller_e164,
        dialled,
        queue: String::new(),
        interaction: None,
        routing: None,
        path: Vec::new(),
        position: 0,
        estimated_wait_ms: None,
        next_announcement: None,
        agent: None,
        transferred: false,
    };
    tracing::info!(call = %call.sip_call_id, dialled = %call.dialled, codec = call.caller.codec.name(), "voice: call answered");
    call.effects(effects).await;
    call.run(stop).await;
}

/// The caller's number: the user part of P-Asserted-Identity, else of From.
fn caller_number(invite: &Request) -> String {
    let from_pai = invite
        .header_value("P-Asserted-Identity")
        .and_then(|v| user_part(&v));
    from_pai
        .or_else(|| invite.from_header().ok().and_then(|f| user_part(f.value())))
        .unwrap_or_default()
}

/// `"Name" <sip:+39...@host>;tag=x` → `+39...`; a URI without a user part → `None`.
fn user_part(header: &str) -> Option<String> {
    let start = header.find("sip:").or_else(|| header.find("tel:"))?;
    let scheme_tel = header[start..].starts_with("tel:");
    let rest = &header[start + 4..];
    let uri = &rest[..rest.find(['>', ';']).unwrap_or(rest.len())];
    let user = match uri.find('@') {
        Some(at) => &uri[..at],
        None if scheme_tel => uri,
        None => return None,
    };
    let user = user.trim();
    (!user.is_empty() && user.len() <= 64).then(|| user.to_owned())
}

/// The status a REFER's NOTIFY reports (`Event: refer`, a `message/sipfrag`
/// body starting `SIP/2.0 200 OK`).
fn refer_status(event: &str, body: &str) -> Option<u16> {
    let package = event.split(';').next()?.trim();
    if !package.eq_ignore_ascii_case("refer") {
        return None;
    }
    let line = body
        .lines()
        .find(|l| l.trim_start().starts_with("SIP/2.0"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Why a call task loop iteration woke.
enum Wake {
    Tick,
    CallerState(Option<DialogState>),
    CallerPacket(usize, std::net::SocketAddr),
    AgentPacket(usize, std::net::SocketAddr),
    AgentState(Option<DialogState>),
    AgentAnswer(Result<rsipstack::dialog::invitation::InviteAsyncResult, tokio::task::JoinError>),
    Routing(Option<v1::RoutingEvent>),
    Deadline,
    Stop,
}

impl Call {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut caller_buf = vec![0u8; 2048];
        let mut agent_buf = vec![0u8; 2048];
        let mut frame = [0i16; FRAME];
        loop {
            if matches!(self.phase, Phase::Bridged(_)) {
                self.talk(&mut stop).await;
                break;
            }
            let deadline = self.deadline();
            let wake = {
                let (agent_socket, agent_states, agent_answer) = match &mut self.phase {
                    Phase::Ringing(r) => {
                        let d = &mut r.dialing;
                        (
                            Some(&d.leg.socket),
                            Some(&mut d.states),
                            Some(&mut d.answer),
                        )
                    }
                    _ => (None, None, None),
                };
                tokio::select! {
                    _ = ticker.tick() => Wake::Tick,
                    s = self.states.recv() => Wake::CallerState(s),
                    r = self.caller.socket.recv_from(&mut caller_buf) => match r {
                        Ok((n, from)) => Wake::CallerPacket(n, from),
                        Err(_) => Wake::Tick,
                    },
                    r = async { agent_socket?.recv_from(&mut agent_buf).await.ok() }, if agent_socket.is_some() => match r {
                        Some((n, from)) => Wake::AgentPacket(n, from),
                        None => Wake::Tick,
                    },
                    s = async { agent_states?.recv().await }, if agent_states.is_some() => Wake::AgentState(s),
                    a = async { match agent_answer { Some(h) => h.await, None => std::future::pending().await } }, if agent_answer.is_some() => Wake::AgentAnswer(a),
                    e = async { match self.routing.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } }, if self.routing.is_some() => Wake::Routing(e),
                    () = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => Wake::Deadline,
                    _ = stop.wait_for(|s| *s) => Wake::Stop,
                }
            };
            let go_on = match wake {
                Wake::Tick => self.tick(&mut frame).await,
                Wake::CallerState(s) => self.caller_state(s).await,
                Wake::CallerPacket(n, from) => {
                    self.caller_packet(&caller_buf[..n.min(caller_buf.len())], from)
                        .await
                }
                Wake::AgentPacket(n, from) => {
                    self.agent_packet(&agent_buf[..n.min(agent_buf.len())], from)
                        .await;
                    true
                }
                Wake::AgentState(s) => self.agent_state(s).await,
                Wake::AgentAnswer(a) => self.agent_answered(a).await,
                Wake::Routing(Some(e)) => self.routing_event(e).await,
                Wake::Routing(None) => {
                    self.routing = None;
                    true
                }
                Wake::Deadline => self.deadline_passed().await,
                Wake::Stop => {
                    self.hang_up_all("failed", Some("adapter-stopped")).await;
                    false
                }
            };
            if !go_on {
                break;
            }
        }
        if let Some(id) = &self.interaction {
            self.shared.forget(id);
        }
    }

    /// The next timed thing: the IVR's timeout, the ring timeout, the next
    /// announcement.
    fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Ivr(s) => s.deadline().map(|ms| self.instant_of(ms)),
            Phase::Ringing(r) => Some(r.until),
            Phase::Referred { until, .. } => Some(*until),
            Phase::Queued => self.next_announcement,
            _ => None,
        }
    }

    fn ivr_now(&self) -> u64 {
        u64::try_from(now_ms().saturating_sub(self.started_at)).unwrap_or(0)
    }

    fn instant_of(&self, ivr_ms: u64) -> Instant {
        let now = self.ivr_now();
        Instant::now() + Duration::from_millis(ivr_ms.saturating_sub(now))
    }

    async fn tick(&mut self, frame: &mut [i16; FRAME]) -> bool {
        if self.caller.silent_for(self.shared.config.media_timeout) {
            tracing::info!(call = %self.sip_call_id, "voice: no RTP from the caller; hanging up");
            let reason = self.interaction.is_some().then_some("media-timeout");
            if let Phase::Ivr(s) = &self.phase {
                self.path = s.path().to_vec();
            }
            self.hang_up_all("abandoned", reason).await;
            return false;
        }
        // Silence is sent too: it keeps the stream (and NAT bindings) alive.
        let result = self.player.frame(frame);
        self.caller.send_samples(frame).await;
        if result == Frame::Finished {
            let now = self.ivr_now();
            match &mut self.phase {
                Phase::Ivr(session) => {
                    session.prompt_finished(&self.flow, now);
                }
                Phase::Closing { outcome } => {
                    let outcome = *outcome;
                    self.hang_up_all(outcome, None).await;
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    async fn caller_state(&mut self, state: Option<DialogState>) -> bool {
        match state {
            None | Some(DialogState::Terminated(..)) => {
                self.caller_left().await;
                false
            }
            Some(DialogState::Info(_, req, handle)) => {
                let content_type = req.header_value("Content-Type").unwrap_or_default();
                let body = String::from_utf8_lossy(&req.body).into_owned();
                match centralino_telephony::dtmf::parse_info(&content_type, &body) {
                    Ok(key) => {
                        let _ = handle.reply(StatusCode::OK).await;
                        self.key(key).await
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "voice: INFO without a key");
                        let _ = handle.reply(StatusCode::UnsupportedMediaType).await;
                        true
                    }
                }
            }
            Some(DialogState::Notify(_, req, handle))
                if matches!(self.phase, Phase::Referred { .. }) =>
            {
                let _ = handle.reply(StatusCode::OK).await;
                let event = req.header_value("Event").unwrap_or_default();
                match refer_status(&event, &String::from_utf8_lossy(&req.body)) {
                    Some(code) => self.refer_progress(code).await,
                    None => true,
                }
            }
            Some(DialogState::Updated(_, req, handle)) => {
                bridge::answer_update(&mut self.caller, &req, handle).await;
                true
            }
            other => bridge::still_up(other).await,
        }
    }

    async fn caller_packet(&mut self, packet: &[u8], from: std::net::SocketAddr) -> bool {
        match self.caller.receive(packet, from) {
            Received::Key(k) => self.key(k).await,
            Received::Audio(_) | Received::Nothing => true,
        }
    }

    /// The agent's phone is ringing: early media is not relayed.
    async fn agent_packet(&mut self, packet: &[u8], from: std::net::SocketAddr) {
        if let Phase::Ringing(r) = &mut self.phase {
            let _ = r.dialing.leg.receive(packet, from);
        }
    }

    /// Caller and agent talk until one hangs up (or the adapter stops); then
    /// the other is hung up on and the call recorded.
    async fn talk(&mut self, stop: &mut watch::Receiver<bool>) {
        let Phase::Bridged(b) = &mut self.phase else {
            return;
        };
        let b = &mut **b;
        let who = bridge::relay(
            &mut self.caller,
            &mut self.states,
            &mut b.leg,
            &mut b.states,
            self.shared.config.media_timeout,
            stop,
        )
        .await;
        // A dialog that has ended sends nothing more; one whose party went
        // silent (or the other, or both on a stop) gets its BYE.
        tracing::debug!(?who, "voice: conversation over");
        let _ = b.dialog.hangup().await;
        let _ = self.dialog.hangup().await;
        self.finish("answered", None).await;
    }

    async fn key(&mut self, key: char) -> bool {
        let now = self.ivr_now();
        match &mut self.phase {
            Phase::Ivr(session) => {
                let effects = session.key(&self.flow, key, now);
                self.effects(effects).await;
                true
            }
            Phase::Queued if Some(key) == self.shared.config.hold.callback_key => {
                self.callback().await;
                true
            }
            _ => true,
        }
    }

    async fn effects(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Play(names) => self.player.play(&self.shared.prompts, &names),
                Effect::Queue {
                    queue,
                    priority,
                    keys,
                    path,
                } => self.enter_queue(queue, priority, keys, path).await,
                Effect::Hangup { prompt, path } => {
                    self.path = path;
                    self.player.play(&self.shared.prompts, &prompt);
                    self.phase = Phase::Closing { outcome: "ivr" };
                }
            }
        }
    }

    async fn enter_queue(&mut self, queue: String, priority: u32, keys: String, path: Vec<String>) {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = mpsc::channel(64);
        // Registered before the event can be published, so nothing routing
        // says about it is missed.
        self.shared.register(&id, tx);
        let q = Queued {
            interaction_id: id.clone(),
            sip_call_id: self.sip_call_id.clone(),
            caller: self.caller_e164.clone(),
            caller_raw: self.caller_raw.clone(),
            dialled: self.dialled.clone(),
            queue: queue.clone(),
            priority,
            keys,
            path: path.clone(),
            started_at: self.started_at,
        };
        self.path = path;
        self.queue.clone_from(&queue);
        if let Err(e) = record::queued(&self.shared.db, &self.shared.fence, &q).await {
            tracing::error!(error = %e, "voice: could not record the call; it cannot be queued");
            self.shared.forget(&id);
            self.player
                .play(&self.shared.prompts, &self.shared.config.hold.closed_prompt);
            self.phase = Phase::Closing { outcome: "failed" };
            return;
        }
        self.shared.relay.notify_one();
        tracing::info!(interaction = %id, %queue, "voice: caller queued");
        self.interaction = Some(id);
        self.routing = Some(rx);
        let hold = &self.shared.config.hold;
        self.player.play(&self.shared.prompts, &hold.please_hold);
        self.player
            .set_background(self.shared.prompts.get(&hold.music));
        self.next_announcement = Some(Instant::now() + hold.first_announcement);
        self.phase = Phase::Queued;
    }

    async fn routing_event(&mut self, e: v1::RoutingEvent) -> bool {
        use v1::routing_event::Kind;
        let kind = Kind::try_from(e.kind).unwrap_or(Kind::Unspecified);
        match kind {
            Kind::Queued | Kind::Position | Kind::Requeued | Kind::Overflowed => {
                if e.position > 0 {
                    self.position = e.position;
                }
                self.estimated_wait_ms = e.estimated_wait_ms;
                if kind == Kind::Requeued
                    && let Phase::Ringing(r) = &self.phase
                    && (r.agent == e.agent || e.agent.is_empty())
                {
                    // Routing took it back (the agent went away): stop ringing.
                    let _ = r.dialing.dialog.hangup().await;
                }
                true
            }
            Kind::Assigned if matches!(self.phase, Phase::Queued) => {
                if self.shared.config.transfer == crate::Transfer::Refer {
                    self.refer_agent(&e.agent).await;
                } else {
                    self.ring_agent(&e.agent).await;
                }
                true
            }
            Kind::Closed if matches!(self.phase, Phase::Queued) => {
                self.player
                    .play(&self.shared.prompts, &self.shared.config.hold.closed_prompt);
                self.player.set_background(None);
                self.phase = Phase::Closing { outcome: "closed" };
                true
            }
            _ => true,
        }
    }

    /// This call's interaction and the agent's phone; without a phone the
    /// call goes back to routing.
    async fn agent_target(&mut self, agent: &str) -> Option<(String, rsipstack::sip::Uri)> {
        let id = self.interaction.clone()?;
        match self.shared.agent_uri(agent) {
            Some(target) => Some((id, target)),
            None => {
                tracing::warn!(%agent, "voice: no SIP address for the assigned agent");
                self.not_reached(&id, agent, "no-endpoint").await;
                None
            }
        }
    }

    /// Asks the caller's side to call the agent (REFER); bridges instead
    /// when it refuses.
    async fn refer_agent(&mut self, agent: &str) {
        let Some((id, target)) = self.agent_target(agent).await else {
            return;
        };
        match self.dialog.refer(format!("<{target}>"), None, None).await {
            Ok(Some(resp)) if (200..300).contains(&resp.status_code.code()) => {
                tracing::info!(interaction = %id, %agent, "voice: caller referred to the agent");
                self.phase = Phase::Referred {
                    agent: agent.to_owned(),
                    // The caller's side rings the agent, then reports.
                    until: Instant::now()
                        + self.shared.config.ring_timeout
                        + Duration::from_secs(5),
                };
            }
            other => {
                let code = other.ok().flatten().map(|r| r.status_code.code());
                tracing::info!(interaction = %id, ?code, "voice: REFER refused; bridging instead");
                self.ring_agent(agent).await;
            }
        }
    }

    /// The caller's side reports on the call to the agent (NOTIFY sipfrag).
    async fn refer_progress(&mut self, code: u16) -> bool {
        let Phase::Referred { agent, .. } = &self.phase else {
            return true;
        };
        let agent = agent.clone();
        let Some(id) = self.interaction.clone() else {
            return true;
        };
        match code {
            100..=199 => true,
            200..=299 => {
                if let Err(e) =
                    record::answered(&self.shared.db, &self.shared.fence, &id, &agent, now_ms())
                        .await
                {
                    tracing::warn!(error = %e, "voice: could not record the answer");
                }
                tracing::info!(interaction = %id, %agent, "voice: transferred to the agent");
                self.agent = Some((agent, LegStats::default()));
                self.transferred = true;
                let _ = self.dialog.hangup().await;
                self.finish("answered", None).await;
                false
            }
            _ => {
                let reason = match code {
                    486 | 600 | 603 => "busy",
                    408 | 480 | 487 => "no-answer",
                    _ => "unreachable",
                };
                self.not_reached(&id, &agent, reason).await;
                true
            }
        }
    }

    async fn ring_agent(&mut self, agent: &str) {
        let Some((id, target)) = self.agent_target(agent).await else {
            return;
        };
        match dial::start(
            &self.shared,
            target,
            self.caller_e164.as_deref(),
            self.caller.codec,
        )
        .await
        {
            Ok(dialing) => {
                tracing::info!(interaction = %id, %agent, "voice: ringing the agent");
                self.phase = Phase::Ringing(Box::new(Ringing {
                    agent: agent.to_owned(),
                    dialing,
                    until: Instant::now() + self.shared.config.ring_timeout,
                }));
            }
            Err(reason) => self.not_reached(&id, agent, reason).await,
        }
    }

    async fn agent_answered(
        &mut self,
        result: Result<rsipstack::dialog::invitation::InviteAsyncResult, tokio::task::JoinError>,
    ) -> bool {
        let Phase::Ringing(ringing) = std::mem::replace(&mut self.phase, Phase::Queued) else {
            return true;
        };
        let Some(id) = self.interaction.clone() else {
            return true;
        };
        let Ringing {
            agent, mut dialing, ..
        } = *ringing;
        if let Err(reason) = dial::answered(&mut dialing, result).await {
            tracing::info!(interaction = %id, %agent, reason, "voice: the agent's phone did not answer");
            self.not_reached(&id, &agent, reason).await;
            return true;
        }
        if let Err(e) =
            record::answered(&self.shared.db, &self.shared.fence, &id, &agent, now_ms()).await
        {
            tracing::warn!(error = %e, "voice: could not record the answer (the call goes on)");
        }
        tracing::info!(interaction = %id, %agent, "voice: caller and agent connected");
        self.player.stop();
        self.player.set_background(None);
        self.next_announcement = None;
        self.phase = Phase::Bridged(Box::new(Bridge {
            agent,
            dialog: dialing.dialog,
            states: dialing.states,
            leg: dialing.leg,
            _forget: dialing.forget,
        }));
        true
    }

    /// The ringing phone's dialog: its end shows in the INVITE's answer.
    async fn agent_state(&mut self, state: Option<DialogState>) -> bool {
        bridge::still_up(state).await;
        true
    }

    async fn deadline_passed(&mut self) -> bool {
        let now = self.ivr_now();
        match &mut self.phase {
            Phase::Ivr(session) => {
                let effects = session.tick(&self.flow, now);
                self.effects(effects).await;
            }
            Phase::Referred { agent, .. } => {
                let agent = agent.clone();
                if let Some(id) = self.interaction.clone() {
                    self.not_reached(&id, &agent, "no-answer").await;
                }
            }
            Phase::Ringing(r) => {
                // Ring timeout: CANCEL; the INVITE's answer (487) says no-answer.
                let _ = r.dialing.dialog.hangup().await;
                r.until = Instant::now() + Duration::from_secs(3600);
            }
            Phase::Queued => {
                let hold = &self.shared.config.hold;
                self.next_announcement = Some(Instant::now() + hold.announce_every);
                if !self.player.playing() && self.position > 0 {
                    let mut names = centralino_telephony::announce::position_announcement(
                        self.position,
                        self.estimated_wait_ms,
                    );
                    if hold.callback_key.is_some() && self.caller_e164.is_some() {
                        names.extend(hold.callback_prompt.iter().cloned());
                    }
                    self.player.play(&self.shared.prompts, &names);
                }
            }
            _ => {}
        }
        true
    }

    async fn not_reached(&mut self, id: &str, agent: &str, reason: &str) {
        self.phase = Phase::Queued;
        if let Err(e) =
            record::agent_not_reached(&self.shared.db, &self.shared.fence, id, agent, reason).await
        {
            tracing::error!(error = %e, "voice: could not hand the call back to routing");
        }
        self.shared.relay.notify_one();
    }

    /// Virtual hold: a callback interaction replaces the wait.
    async fn callback(&mut self) {
        let (Some(id), Some(phone)) = (self.interaction.clone(), self.caller_e164.clone()) else {
            return;
        };
        let q = Queued {
            interaction_id: uuid::Uuid::new_v4().to_string(),
            sip_call_id: format!("callback:{}", self.sip_call_id),
            caller: Some(phone.clone()),
            caller_raw: phone,
            dialled: self.dialled.clone(),
            queue: self.queue.clone(),
            priority: 0,
            keys: String::new(),
            path: self.path.clone(),
            started_at: now_ms(),
        };
        if let Err(e) = record::callback(&self.shared.db, &self.shared.fence, &id, &q).await {
            tracing::error!(error = %e, "voice: could not record the callback request");
            return;
        }
        self.shared.relay.notify_one();
        self.player.play(
            &self.shared.prompts,
            &self.shared.config.hold.callback_confirmed,
        );
        self.player.set_background(None);
        self.phase = Phase::Closing {
            outcome: "callback",
        };
    }

    /// The caller hung up (or the dialog died).
    async fn caller_left(&mut self) {
        let outcome = match &self.phase {
            Phase::Ringing(r) => {
                let _ = r.dialing.dialog.hangup().await;
                "abandoned"
            }
            // (A bridged call ends in `talk`.)
            Phase::Bridged(_) => "answered",
            // The caller's side took the call over once it accepted the
            // REFER (a blind transfer hangs up on us at once).
            Phase::Referred { agent, .. } => {
                self.agent = Some((agent.clone(), LegStats::default()));
                self.transferred = true;
                "answered"
            }
            Phase::Closing { outcome } => outcome,
            Phase::Ivr(s) => {
                self.path = s.path().to_vec();
                "abandoned"
            }
            Phase::Queued => "abandoned",
        };
        self.finish(
            outcome,
            (outcome == "abandoned").then_some("caller-hung-up"),
        )
        .await;
    }

    /// We end the call: BYE both parties and record it.
    async fn hang_up_all(&mut self, outcome: &'static str, reason: Option<&'static str>) {
        match &self.phase {
            Phase::Ringing(r) => {
                let _ = r.dialing.dialog.hangup().await;
            }
            Phase::Bridged(b) => {
                let _ = b.dialog.hangup().await;
            }
            _ => {}
        }
        let _ = self.dialog.hangup().await;
        let abandoned = match (&self.phase, outcome) {
            (Phase::Bridged(_), _) => None,
            (_, "failed") => reason.or(Some("adapter-stopped")),
            (_, "abandoned") => reason,
            _ => None,
        };
        self.finish(outcome, abandoned).await;
    }

    async fn finish(&mut self, outcome: &'static str, abandoned: Option<&'static str>) {
        let Some(id) = self.interaction.clone() else {
            tracing::info!(call = %self.sip_call_id, outcome, path = ?self.path, "voice: call ended in the IVR");
            return;
        };
        let (outcome, abandoned) = match outcome {
            // Closing after a callback or routing's close: routing already knows.
            "callback" => ("callback", None),
            "closed" => ("closed", None),
            o => (o, abandoned),
        };
        if let Phase::Bridged(b) = &self.phase {
            self.agent = Some((b.agent.clone(), b.leg.stats));
        }
        let mut attributes = std::collections::HashMap::from([
            (
                "rtp.caller.received".to_owned(),
                self.caller.stats.received.to_string(),
            ),
            (
                "rtp.caller.sent".to_owned(),
                self.caller.stats.sent.to_string(),
            ),
        ]);
        if self.transferred {
            attributes.insert("transfer".into(), "refer".into());
        }
        if let Some((agent, stats)) = &self.agent {
            attributes.insert("agent".into(), agent.clone());
            attributes.insert("rtp.agent.received".into(), stats.received.to_string());
            attributes.insert("rtp.agent.sent".into(), stats.sent.to_string());
        }
        let e = Ended {
            interaction_id: id.clone(),
            outcome,
            started_at: self.started_at,
            at: now_ms(),
            path: self.path.clone(),
            abandoned,
            attributes,
        };
        if let Err(err) = record::ended(&self.shared.db, &self.shared.fence, &e).await {
            tracing::error!(interaction = %id, error = %err, "voice: could not record the end of the call (it is closed at the next start)");
        }
        self.shared.relay.notify_one();
        tracing::info!(interaction = %id, outcome, "voice: call ended");
        self.phase = Phase::Closing { outcome };
    }
}

#[cfg(test)]
mod tests {
    use super::user_part;

    #[test]
    fn the_callers_number_comes_from_the_uri_user() {
        assert_eq!(
            user_part("\"Mario\" <sip:+393471234567@example.com>;tag=1").as_deref(),
            Some("+393471234567")
        );
        assert_eq!(
            user_part("<tel:+39061234567>").as_deref(),
            Some("+39061234567")
        );
        assert_eq!(
            user_part("sip:sipp@127.0.0.1:5061;tag=9").as_deref(),
            Some("sipp")
        );
        assert_eq!(user_part("<sip:127.0.0.1>"), None);
        assert_eq!(user_part("nothing here"), None);
    }

    #[test]
    fn a_refer_notify_says_how_the_transfer_went() {
        use super::refer_status;
        assert_eq!(refer_status("refer", "SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(refer_status("Refer;id=93", "SIP/2.0 100 Trying"), Some(100));
        assert_eq!(
            refer_status("refer", "SIP/2.0 486 Busy Here\r\n"),
            Some(486)
        );
        assert_eq!(refer_status("presence", "SIP/2.0 200 OK"), None);
        assert_eq!(refer_status("refer", "garbage"), None);
        assert_eq!(refer_status("refer", "SIP/2.0 abc"), None);
    }
}
