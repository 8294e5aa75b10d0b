//! The voice channel adapter.
//!
//! **Calls.** The adapter is a SIP user agent (rsipstack: UDP and TCP,
//! transactions with retransmissions, dialogs). An INVITE to one of our
//! numbers is answered with G.711 (PCMU or PCMA) and RFC 4733
//! telephone-events on the payload type the caller offered; every call has
//! its own RTP port and task ([`call`]).
//!
//! **IVR.** Each number runs a flow of menus from the configuration
//! (`centralino_telephony::ivr`): prompts are WAV files played as 20 ms
//! G.711 packets, keys come from RFC 4733 events or SIP INFO
//! (`application/dtmf-relay`, `application/dtmf`), each key press counted
//! once. The queue chosen becomes an interaction (`interaction.voice.created`,
//! the caller's number as E.164, the keys and menu path as attributes),
//! written with the call's row in one transaction and published through the
//! outbox.
//!
//! **Waiting.** The caller hears a hold message, then music, and every
//! `announce_every` their position and estimated wait from routing's events
//! (`routing.voice.*`); optionally a key asks for a callback instead (virtual
//! hold: the wait is abandoned and an outbound callback interaction takes its
//! place). A caller who hangs up is `interaction.voice.abandoned`.
//!
//! **Agents.** When routing assigns the call, the adapter calls the agent's
//! SIP address and relays RTP both ways (transcoding PCMU/PCMA when the
//! phones differ). A phone that does not answer in `ring_timeout`, is busy or
//! unreachable hands the call back (`routing.agent_not_reached`) and the
//! caller keeps waiting. Every call that reached a queue ends with
//! `interaction.voice.ended` (outcome, duration, IVR path): its CDR.

#![forbid(unsafe_code)]

mod bridge;
pub mod call;
mod dial;
mod entities;
pub mod media;
mod migrations;
mod outbound;
mod prompts;
mod record;
mod sip;
pub mod softphone;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use centralino_bus::{Bus, BusError, ConsumerSpec};
use centralino_domain::IdentityRules;
use centralino_proto::v1;
use centralino_store::StoreError;
use centralino_store::outbox::OutboxRelay;
use centralino_telephony::ivr::Flow;
use rsipstack::dialog::dialog_layer::DialogLayer;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, mpsc, watch};

pub use migrations::VoiceMigrator;

/// The adapter's name: outbox source, consumer name, envelope source.
pub const SERVICE: &str = "voice";

/// One of our numbers (the user part callers dial) and its IVR flow.
#[derive(Debug, Clone)]
pub struct NumberConfig {
    pub number: String,
    pub flow: String,
}

/// What a waiting caller hears.
#[derive(Debug, Clone)]
pub struct HoldConfig {
    /// Played once on entering the queue.
    pub please_hold: Vec<String>,
    /// Looped between announcements.
    pub music: String,
    /// The first position announcement comes this long after entering the queue.
    pub first_announcement: Duration,
    /// Then one every this long.
    pub announce_every: Duration,
    /// A key that asks for a callback instead of waiting (virtual hold);
    /// offered only to callers whose number is known.
    pub callback_key: Option<char>,
    /// Appended to announcements when callbacks are offered.
    pub callback_prompt: Vec<String>,
    /// Played before hanging up on a callback request.
    pub callback_confirmed: Vec<String>,
    /// Played when routing closes the wait (or the call cannot be queued).
    pub closed_prompt: Vec<String>,
}

impl Default for HoldConfig {
    fn default() -> Self {
        Self {
            please_hold: vec!["queue/please-hold".into()],
            music: "moh/default".into(),
            first_announcement: Duration::from_secs(10),
            announce_every: Duration::from_secs(30),
            callback_key: None,
            callback_prompt: vec!["queue/press-1-callback".into()],
            callback_confirmed: vec!["queue/callback-confirmed".into()],
            closed_prompt: vec!["queue/closed".into()],
        }
    }
}

/// How an assigned caller reaches the agent's phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// The adapter calls the agent and relays the audio (it sees the whole
    /// call, its end and its duration).
    Bridge,
    /// The adapter asks the caller's side to call the agent (REFER, RFC
    /// 3515) and leaves the call once the agent answered; a REFER the
    /// caller's side refuses falls back to bridging.
    Refer,
}

#[derive(Debug, Clone)]
pub struct VoiceConfig {
    /// SIP over UDP and TCP on this address.
    pub listen: SocketAddr,
    /// What SDP announces for RTP (and SIP advertises); the SIP address's IP
    /// when `None` (which must then be a concrete address). RTP is bound on
    /// `listen`'s IP, so behind NAT or a published container port this can be
    /// the public address while the sockets stay local.
    pub media_ip: Option<IpAddr>,
    /// RTP ports (inclusive; the even ones are used), so a firewall or a port
    /// mapping can let exactly them through; any free port when `None`. A
    /// call that finds none free is refused with 503.
    pub rtp_ports: Option<std::ops::RangeInclusive<u16>>,
    /// Prompt files: `<dir>/<name>.wav`, 8 kHz mono; empty: the prompts
    /// built into the binary (those of `deploy/prompts`).
    pub prompts_dir: PathBuf,
    /// Dialled numbers and their flows.
    pub numbers: Vec<NumberConfig>,
    /// Flow for numbers not listed; such calls are refused (404) when `None`.
    pub default_flow: Option<String>,
    pub flows: BTreeMap<String, Flow>,
    pub hold: HoldConfig,
    /// Agent login → the SIP URI of their phone.
    pub agents: BTreeMap<String, String>,
    /// How long an agent's phone rings before the call goes back to routing.
    pub ring_timeout: Duration,
    /// How an assigned caller reaches the agent.
    pub transfer: Transfer,
    /// Where customers are called (callbacks): a SIP URI with `{number}`
    /// for their E.164 number, e.g. `sip:{number}@gateway.example.com:5060`.
    pub trunk: Option<String>,
    /// How callers' numbers are read (national numbers get this country).
    pub rules: IdentityRules,
    /// Calls at once; more are refused with 503.
    pub max_calls: usize,
    /// A party that sends no RTP for this long is gone (its phone or network
    /// died without a BYE): the call is ended. Zero never ends a call so.
    pub media_timeout: Duration,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5080)),
            media_ip: None,
            rtp_ports: None,
            prompts_dir: PathBuf::new(),
            numbers: Vec::new(),
            default_flow: None,
            flows: BTreeMap::new(),
            hold: HoldConfig::default(),
            agents: BTreeMap::new(),
            ring_timeout: Duration::from_secs(20),
            transfer: Transfer::Bridge,
            trunk: None,
            rules: IdentityRules::default(),
            max_calls: 500,
            media_timeout: Duration::from_secs(60),
        }
    }
}

impl VoiceConfig {
    /// Checks what the code relies on; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.media_ip.is_none() && self.listen.ip().is_unspecified() {
            return Err(
                "voice.media_ip is required when voice.listen is a wildcard address".into(),
            );
        }
        if let Some(r) = &self.rtp_ports {
            let even = (*r.start()..=*r.end()).filter(|p| p % 2 == 0).count();
            if *r.start() < 1024 || even < 2 {
                return Err(format!(
                    "voice.rtp_ports: {}-{} must be ports from 1024 holding at least 2 even \
                     ones (a bridged call takes two), e.g. 10000-10999",
                    r.start(),
                    r.end()
                ));
            }
        }
        if self.flows.is_empty() {
            return Err("voice.flows: define at least one IVR flow".into());
        }
        for (name, flow) in &self.flows {
            flow.validate()
                .map_err(|e| format!("voice.flows.{name}: {e}"))?;
        }
        if self.numbers.is_empty() && self.default_flow.is_none() {
            return Err(
                "voice.numbers: list at least one number (or set voice.default_flow)".into(),
            );
        }
        for (i, n) in self.numbers.iter().enumerate() {
            if n.number.is_empty() || n.number.len() > 64 {
                return Err(format!("voice.numbers[{i}].number must be 1–64 characters"));
            }
            if !self.flows.contains_key(&n.flow) {
                return Err(format!(
                    "voice.numbers[{i}].flow: `{}` is not a flow",
                    n.flow
                ));
            }
        }
        if let Some(f) = &self.default_flow
            && !self.flows.contains_key(f)
        {
            return Err(format!("voice.default_flow: `{f}` is not a flow"));
        }
        for (agent, uri) in &self.agents {
            if !sip_uri(uri) {
                return Err(format!(
                    "voice.agents.{agent}: `{uri}` is not a SIP URI like sip:{agent}@10.0.0.21:5060"
                ));
            }
        }
        if let Some(k) = self.hold.callback_key
            && centralino_telephony::dtmf::event_of(k).is_none()
        {
            return Err(format!(
                "voice.hold.callback_key: `{k}` is not a keypad key"
            ));
        }
        if let Some(t) = &self.trunk
            && (!t.contains("{number}") || !sip_uri(&t.replace("{number}", "+390000")))
        {
            return Err(format!(
                "voice.trunk: `{t}` must be a SIP URI with {{number}}, e.g. sip:{{number}}@gateway:5060"
            ));
        }
        if self.hold.callback_key.is_some() && self.trunk.is_none() {
            return Err(
                "voice.hold.callback_key needs voice.trunk (to call customers back)".into(),
            );
        }
        if self.hold.announce_every < Duration::from_secs(5) {
            return Err("voice.hold.announce_every must be at least 5 s".into());
        }
        if self.ring_timeout.is_zero() || self.ring_timeout > Duration::from_secs(300) {
            return Err("voice.ring_timeout must be 1 s to 5 min".into());
        }
        if self.max_calls == 0 {
            return Err("voice.max_calls must be at least 1".into());
        }
        Ok(())
    }

    /// Every prompt the configuration can play.
    fn prompt_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.flows.values().flat_map(Flow::prompt_names).collect();
        let h = &self.hold;
        names.extend(
            h.please_hold
                .iter()
                .chain(&h.callback_prompt)
                .chain(&h.callback_confirmed)
                .chain(&h.closed_prompt)
                .map(String::as_str),
        );
        names.push(&h.music);
        names.extend(centralino_telephony::announce::all_prompt_names());
        names
    }

    fn flow_for(&self, dialled: &str) -> Option<&str> {
        self.numbers
            .iter()
            .find(|n| n.number == dialled)
            .map(|n| n.flow.as_str())
            .or(self.default_flow.as_deref())
    }
}

/// `sip:` or `sips:`, a host, and what rsipstack can parse.
fn sip_uri(text: &str) -> bool {
    let rest = text
        .strip_prefix("sip:")
        .or_else(|| text.strip_prefix("sips:"))
        .unwrap_or_default();
    let host = rest.rsplit('@').next().unwrap_or_default();
    !host.is_empty()
        && !text.chars().any(char::is_whitespace)
        && rsipstack::sip::Uri::try_from(text).is_ok()
}

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("invalid voice configuration: {0}")]
    Config(String),
    #[error("voice: cannot listen for SIP on {0}: {1}")]
    Listen(SocketAddr, String),
}

/// The adapter's queue: routing's news about voice interactions.
pub fn consumer_spec() -> ConsumerSpec {
    ConsumerSpec::new(SERVICE)
        .bind_key(centralino_bus::keys::pattern::routing_of(
            v1::Channel::Voice,
        ))
        .prefetch(256)
}

/// The running adapter.
pub struct Voice {
    pub task: tokio::task::JoinHandle<()>,
    /// Turns `true` when the adapter lost its leadership and stopped (the
    /// embedding program starts it again to contend: `centralino::serve_contending`).
    pub lost: watch::Receiver<bool>,
    /// Where SIP listens (UDP and TCP).
    pub sip_addr: SocketAddr,
    /// Calls up now.
    pub active: Arc<std::sync::atomic::AtomicUsize>,
}

/// PostgreSQL advisory-lock key of the voice adapter ("cent.voi").
const LOCK_KEY: i64 = 0x6365_6e74_2e76_6f69;

/// What the call tasks share.
pub(crate) struct Shared {
    pub config: VoiceConfig,
    pub prompts: media::Prompts,
    pub db: DatabaseConnection,
    /// Every write transaction checks this instance still leads.
    pub fence: centralino_store::leader::Fence,
    /// Wakes the outbox relay.
    pub relay: Arc<Notify>,
    pub dialogs: Arc<DialogLayer>,
    /// Our Contact.
    pub contact: rsipstack::sip::Uri,
    /// Where each leg's RTP socket comes from.
    pub rtp: media::RtpPorts,
    /// Interaction id → its call task.
    calls: Mutex<HashMap<String, mpsc::Sender<v1::RoutingEvent>>>,
    pub active: Arc<std::sync::atomic::AtomicUsize>,
}

impl Shared {
    pub(crate) fn register(&self, interaction: &str, tx: mpsc::Sender<v1::RoutingEvent>) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(interaction.to_owned(), tx);
        }
    }

    pub(crate) fn forget(&self, interaction: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.remove(interaction);
        }
    }

    fn call(&self, interaction: &str) -> Option<mpsc::Sender<v1::RoutingEvent>> {
        self.calls.lock().ok()?.get(interaction).cloned()
    }

    pub(crate) fn agent_uri(&self, agent: &str) -> Option<rsipstack::sip::Uri> {
        let uri = self.config.agents.get(agent)?;
        rsipstack::sip::Uri::try_from(uri.as_str()).ok()
    }

    /// A customer's number through the trunk.
    pub(crate) fn trunk_uri(&self, number: &str) -> Option<rsipstack::sip::Uri> {
        let template = self.config.trunk.as_ref()?;
        rsipstack::sip::Uri::try_from(template.replace("{number}", number).as_str()).ok()
    }

    /// Who the agent's phone shows as calling: the caller's number at our host.
    pub(crate) fn caller_uri(&self, phone: Option<&str>) -> rsipstack::sip::Uri {
        let mut uri = self.contact.clone();
        uri.auth = Some(rsipstack::sip::Auth {
            user: phone.unwrap_or("anonymous").to_owned(),
            password: None,
        });
        uri
    }
}

/// Starts the SIP endpoint, the routing-event consumer and the outbox relay.
/// Run [`VoiceMigrator`] first.
pub async fn start(
    config: VoiceConfig,
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Voice, VoiceError> {
    config.validate().map_err(VoiceError::Config)?;
    let prompts = media::Prompts::load(&config.prompts_dir, config.prompt_names())
        .map_err(VoiceError::Config)?;
    let leadership = centralino_store::leader::acquire(&db, SERVICE, LOCK_KEY, || {
        tracing::info!("another voice adapter is active; standing by until it stops");
    })
    .await?;
    let lost = leadership.lost();
    let closed = record::close_lost_calls(&db, &leadership.fence(), now_ms()).await?;
    if closed > 0 {
        tracing::warn!(
            calls = closed,
            "voice: calls a previous run left open were closed"
        );
    }
    let relay = OutboxRelay::new(db.clone(), bus.clone(), SERVICE);
    let (stop_tx, stop_rx) = watch::channel(false);
    let endpoint = sip::Endpoint::bind(config.listen, config.media_ip)
        .await
        .map_err(|e| VoiceError::Listen(config.listen, e))?;
    let sip_addr = endpoint.addr;
    let media_ip = config.media_ip.unwrap_or(sip_addr.ip());
    // On the address SIP listens on (a wildcard one stays a wildcard: the
    // announced address may not be local, behind NAT or a port mapping).
    let rtp = media::RtpPorts::new(config.listen.ip(), media_ip, config.rtp_ports.clone());
    let ports = config
        .rtp_ports
        .as_ref()
        .map_or("any".to_owned(), |r| format!("{}-{}", r.start(), r.end()));
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let shared = Arc::new(Shared {
        prompts,
        db,
        fence: leadership.fence(),
        relay: relay.waker(),
        dialogs: endpoint.dialogs.clone(),
        contact: endpoint.contact.clone(),
        rtp,
        calls: Mutex::new(HashMap::new()),
        active: active.clone(),
        config,
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    let subscription = bus.subscribe(consumer_spec()).await?;
    let events = RoutingEvents {
        shared: shared.clone(),
        stop: stop_rx.clone(),
    };
    tasks.push(tokio::spawn(centralino_bus::Pipeline::new(SERVICE).run(
        subscription,
        events,
        stopped(stop_rx.clone()),
    )));
    tasks.push(tokio::spawn(relay.run(stopped(stop_rx.clone()))));
    tasks.push(tokio::spawn(endpoint.run(shared, stop_rx)));
    tracing::info!(sip = %sip_addr, media = %media_ip, rtp = %ports, "voice: SIP (UDP and TCP) listening");
    let task = leadership.supervise(shutdown, stop_tx, tasks);
    Ok(Voice {
        task,
        lost,
        sip_addr,
        active,
    })
}

/// Routing's events, handed to the call they are about (through the shared
/// pipeline). Calls live in this process only: an event for a call that is
/// gone is done with (its end was or will be published by the call itself or
/// by the next start). An event that does not decode is dead-lettered; a
/// callback whose row cannot be read now is held until the database answers.
struct RoutingEvents {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl centralino_bus::Handler for RoutingEvents {
    type Input = v1::RoutingEvent;

    fn parse(
        &self,
        delivery: &centralino_bus::Delivery,
    ) -> Result<Option<v1::RoutingEvent>, String> {
        use centralino_bus::{EnvelopeExt as _, TypedPayload as _};
        let env = &delivery.envelope;
        if env.event_type != v1::RoutingEvent::TYPE_NAME {
            return Ok(None);
        }
        env.decode().map(Some).map_err(|e| e.to_string())
    }

    async fn handle(
        &self,
        e: v1::RoutingEvent,
        _: &centralino_bus::Delivery,
    ) -> centralino_bus::Handled {
        use centralino_bus::Handled;
        if let Some(tx) = self.shared.call(&e.interaction_id) {
            let _ = tx.send(e).await;
            return Handled::Done;
        }
        if e.kind != v1::routing_event::Kind::Assigned as i32 {
            return Handled::Done;
        }
        match record::outbound(&self.shared.db, &e.interaction_id).await {
            Ok(Some(row)) => {
                // A leader paused past its lease may have a successor
                // dialling this callback: it steps down (the assignment is
                // held for whoever leads) rather than dial it too.
                if let Err(err) = self.shared.fence.check_lease() {
                    return Handled::Hold(err.to_string());
                }
                place_callback(&self.shared, row, &e, &self.stop);
                Handled::Done
            }
            Ok(None) => Handled::Done,
            Err(err) if err.is_transient() => Handled::Hold(err.to_string()),
            Err(err) => Handled::Retry(err.to_string()),
        }
    }
}

/// Routing assigned a callback waiting in `row`: dial it.
fn place_callback(
    shared: &Arc<Shared>,
    row: crate::entities::call::Model,
    e: &v1::RoutingEvent,
    stop: &watch::Receiver<bool>,
) {
    // Registered first, so a repeated assignment does not dial twice.
    let (tx, _rx) = mpsc::channel(1);
    shared.register(&e.interaction_id, tx);
    tracing::info!(interaction = %e.interaction_id, agent = %e.agent, "voice: placing a callback");
    tokio::spawn(outbound::callback(
        shared.clone(),
        row,
        e.agent.clone(),
        stop.clone(),
    ));
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use centralino_telephony::ivr::{Action, Menu};

    fn valid() -> VoiceConfig {
        let menu = Menu {
            prompt: vec!["menu/welcome".into()],
            options: BTreeMap::from([(
                '1',
                Action::Queue {
                    queue: "sales".into(),
                    priority: 0,
                },
            )]),
            timeout_ms: 5_000,
            retries: 1,
            invalid_prompt: vec![],
            no_input_prompt: vec![],
            default: Action::Hangup,
        };
        VoiceConfig {
            numbers: vec![NumberConfig {
                number: "100".into(),
                flow: "main".into(),
            }],
            flows: BTreeMap::from([(
                "main".into(),
                Flow {
                    start: "root".into(),
                    menus: BTreeMap::from([("root".into(), menu)]),
                    goodbye: vec![],
                },
            )]),
            agents: BTreeMap::from([("alice".into(), "sip:alice@10.0.0.21:5060".into())]),
            ..VoiceConfig::default()
        }
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        assert_eq!(valid().validate(), Ok(()));
        let bad = |f: &dyn Fn(&mut VoiceConfig), what: &str| {
            let mut c = valid();
            f(&mut c);
            let e = c.validate().expect_err(what);
            assert!(e.starts_with(what), "{e}");
        };
        bad(
            &|c| c.listen = "0.0.0.0:5060".parse().expect("addr"),
            "voice.media_ip",
        );
        bad(
            &|c| {
                c.agents.insert("bob".into(), "not a uri".into());
            },
            "voice.agents.bob",
        );
        bad(
            &|c| {
                c.agents.insert("bob".into(), "sip:".into());
            },
            "voice.agents.bob",
        );
        bad(
            &|c| c.trunk = Some("sip:gateway:5060".into()),
            "voice.trunk",
        );
        bad(
            &|c| c.hold.callback_key = Some('1'),
            "voice.hold.callback_key",
        );
        bad(
            &|c| c.hold.callback_key = Some('x'),
            "voice.hold.callback_key",
        );
        bad(
            &|c| c.numbers[0].flow = "other".into(),
            "voice.numbers[0].flow",
        );
        bad(&|c| c.ring_timeout = Duration::ZERO, "voice.ring_timeout");
        let mut c = valid();
        c.trunk = Some("sip:{number}@gateway.example.com:5060".into());
        c.hold.callback_key = Some('1');
        assert_eq!(c.validate(), Ok(()));
    }
}
