//! The voice adapter's section (`[voice]`): SIP and RTP addresses, our
//! numbers, IVR flows and their menus, hold and virtual hold, agents' phones,
//! the trunk. Menu actions are read by telephony's grammar (`Action`'s
//! `FromStr`); this section adds routing's rule for queue names and checks
//! that menus exist.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use centralino_telephony::ivr::{Action, Flow, Menu, ParseActionError};
use serde::{Deserialize, Serialize};

use super::{IdentityConfig, number};

/// The voice adapter: a SIP user agent that answers our numbers with IVR
/// flows, holds callers in queues and bridges them to agents' phones. It runs
/// when `[voice.flows]` defines at least one flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSection {
    /// SIP over UDP and TCP on this address.
    pub listen: String,
    /// What SDP announces for RTP (and SIP advertises); empty: the address of
    /// `listen`, which must then not be a wildcard. RTP binds on `listen`'s IP,
    /// so behind NAT or a published container port this is the public address.
    pub media_ip: String,
    /// RTP ports, e.g. `10000-10999` (the even ones are used; a bridged call
    /// takes two): open exactly these in a firewall or a port mapping. Empty:
    /// any free port.
    pub rtp_ports: String,
    /// Prompt files, `<dir>/<name>.wav` (8 kHz mono); a relative path is
    /// relative to the working directory. Empty (the default): the prompts
    /// built into the binary, those of `deploy/prompts`.
    pub prompts_dir: PathBuf,
    /// Flow of numbers not in `[[voice.numbers]]` (empty: such calls get 404).
    pub default_flow: String,
    /// How long an agent's phone rings before the call goes back to routing.
    #[serde(deserialize_with = "number")]
    pub ring_timeout_secs: u64,
    /// How an assigned caller reaches the agent: `bridge` (the adapter calls
    /// the agent and relays the audio) or `refer` (the caller's side is asked
    /// to call the agent, RFC 3515; bridging when it refuses).
    pub transfer: String,
    /// Where customers are called back (virtual hold): a SIP URI with
    /// `{number}` for their E.164 number, e.g. `sip:{number}@gateway.example.com`.
    pub trunk: String,
    /// Calls at once; more are refused with 503.
    #[serde(deserialize_with = "number")]
    pub max_calls: usize,
    /// A party that sends no RTP for this many seconds is gone (no BYE came):
    /// the call is ended. 0: never.
    #[serde(deserialize_with = "number")]
    pub media_timeout_secs: u64,
    /// Our numbers (`[[voice.numbers]]`): the user part callers dial, and its flow.
    pub numbers: Vec<VoiceNumberSection>,
    pub hold: VoiceHoldSection,
    /// Agent login → the SIP URI of their phone (`[voice.agents]`).
    pub agents: BTreeMap<String, String>,
    /// IVR flows by name (`[voice.flows.<name>]`).
    pub flows: BTreeMap<String, VoiceFlowSection>,
}

impl Default for VoiceSection {
    fn default() -> Self {
        let d = centralino_voice::VoiceConfig::default();
        Self {
            listen: d.listen.to_string(),
            media_ip: String::new(),
            rtp_ports: String::new(),
            prompts_dir: d.prompts_dir,
            default_flow: String::new(),
            ring_timeout_secs: d.ring_timeout.as_secs(),
            transfer: "bridge".into(),
            trunk: d.trunk.unwrap_or_default(),
            max_calls: d.max_calls,
            media_timeout_secs: d.media_timeout.as_secs(),
            numbers: Vec::new(),
            hold: VoiceHoldSection::default(),
            agents: BTreeMap::new(),
            flows: BTreeMap::new(),
        }
    }
}

/// One of our numbers (`[[voice.numbers]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceNumberSection {
    pub number: String,
    pub flow: String,
}

/// What a waiting caller hears (`[voice.hold]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceHoldSection {
    /// Played once on entering the queue.
    pub please_hold: Vec<String>,
    /// Looped between announcements.
    pub music: String,
    /// The first position announcement, this long after entering the queue.
    #[serde(deserialize_with = "number")]
    pub first_announcement_secs: u64,
    /// Then one every this long (at least 5).
    #[serde(deserialize_with = "number")]
    pub announce_every_secs: u64,
    /// The key that asks for a callback instead of waiting (empty: no virtual hold).
    pub callback_key: String,
    pub callback_prompt: Vec<String>,
    pub callback_confirmed: Vec<String>,
    pub closed_prompt: Vec<String>,
}

impl Default for VoiceHoldSection {
    fn default() -> Self {
        let d = centralino_voice::HoldConfig::default();
        Self {
            please_hold: d.please_hold,
            music: d.music,
            first_announcement_secs: d.first_announcement.as_secs(),
            announce_every_secs: d.announce_every.as_secs(),
            callback_key: d.callback_key.map(String::from).unwrap_or_default(),
            callback_prompt: d.callback_prompt,
            callback_confirmed: d.callback_confirmed,
            closed_prompt: d.closed_prompt,
        }
    }
}

/// One IVR flow (`[voice.flows.<name>]`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceFlowSection {
    /// The first menu.
    pub start: String,
    /// Played before `hangup` hangs up.
    pub goodbye: Vec<String>,
    pub menus: BTreeMap<String, VoiceMenuSection>,
}

/// One menu (`[voice.flows.<flow>.menus.<menu>]`). Actions are `queue:NAME`,
/// `queue:NAME:PRIORITY` (0–100, default 0), `menu:NAME`, `repeat`, `hangup`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceMenuSection {
    /// Prompt names, played in order.
    pub prompt: Vec<String>,
    /// How long the caller has to press a key after the prompt.
    #[serde(deserialize_with = "number")]
    pub timeout_ms: u64,
    /// Times the menu is played again after a wrong key or silence.
    #[serde(deserialize_with = "number")]
    pub retries: u32,
    pub invalid_prompt: Vec<String>,
    pub no_input_prompt: Vec<String>,
    /// Taken when the retries are used up.
    pub default: String,
    /// Key (`0`–`9`, `*`, `#`, `A`–`D`) → action.
    pub options: BTreeMap<String, String>,
}

impl Default for VoiceMenuSection {
    fn default() -> Self {
        Self {
            prompt: Vec::new(),
            timeout_ms: 5_000,
            retries: 2,
            invalid_prompt: Vec::new(),
            no_input_prompt: Vec::new(),
            default: String::new(),
            options: BTreeMap::new(),
        }
    }
}

/// An IVR action written `queue:NAME[:PRIORITY]`, `menu:NAME`, `repeat` or
/// `hangup` (telephony's grammar, [`Action`]'s `FromStr`), whose queue is a
/// name routing accepts. The error names `key`.
fn voice_action(key: &str, text: &str) -> Result<Action, String> {
    let parsed = text.parse::<Action>();
    // Routing's rule for the name is checked before the priority.
    let queue = match &parsed {
        Ok(Action::Queue { queue, .. }) | Err(ParseActionError::BadPriority { queue, .. }) => {
            Some(queue.as_str())
        }
        _ => None,
    };
    if let Some(queue) = queue
        && centralino_routing::validate_name("queue", queue).is_err()
    {
        return Err(format!(
            "{key}: {queue:?} is not a queue name (letters, digits, '.', '_', '-', '@'; 1–64)"
        ));
    }
    parsed.map_err(|e| format!("{key}: {e}"))
}

impl VoiceFlowSection {
    /// The flow, with the errors naming each bad key under `at`
    /// (`voice.flows.<name>`) added to `errors`.
    fn flow(&self, at: &str, errors: &mut Vec<String>) -> Flow {
        if self.start.is_empty() {
            errors.push(format!("{at}.start: name the first menu"));
        } else if !self.menus.contains_key(&self.start) {
            errors.push(format!("{at}.start: menu {:?} is not defined", self.start));
        }
        let mut menus = BTreeMap::new();
        for (name, m) in &self.menus {
            let here = format!("{at}.menus.{name}");
            let mut options = BTreeMap::new();
            for (key, text) in &m.options {
                let at_key = format!("{here}.options.{key}");
                let mut chars = key.chars();
                match (chars.next(), chars.next()) {
                    (Some(k), None) if centralino_telephony::dtmf::event_of(k).is_some() => {
                        let action = self.action(at, &at_key, text, errors);
                        options.insert(k.to_ascii_uppercase(), action);
                    }
                    _ => errors.push(format!(
                        "{at_key}: {key:?} is not a keypad key (0-9, *, #, A-D)"
                    )),
                }
            }
            let default = if m.default.trim().is_empty() {
                errors.push(format!(
                    "{here}.default: say where callers go when the retries are used up \
                     (queue:NAME, menu:NAME or hangup)"
                ));
                Action::Hangup
            } else {
                self.action(at, &format!("{here}.default"), &m.default, errors)
            };
            menus.insert(
                name.clone(),
                Menu {
                    prompt: m.prompt.clone(),
                    options,
                    timeout_ms: m.timeout_ms,
                    retries: m.retries,
                    invalid_prompt: m.invalid_prompt.clone(),
                    no_input_prompt: m.no_input_prompt.clone(),
                    default,
                },
            );
        }
        Flow {
            start: self.start.clone(),
            menus,
            goodbye: self.goodbye.clone(),
        }
    }

    /// The action `text` at `key`; a bad one is reported and read as hangup.
    fn action(&self, at: &str, key: &str, text: &str, errors: &mut Vec<String>) -> Action {
        match voice_action(key, text) {
            Ok(Action::Menu(m)) if !self.menus.contains_key(&m) => {
                errors.push(format!("{key}: menu {m:?} is not defined in {at}.menus"));
                Action::Hangup
            }
            Ok(a) => a,
            Err(e) => {
                errors.push(e);
                Action::Hangup
            }
        }
    }
}

impl VoiceSection {
    /// Whether the adapter has anything to run.
    pub fn configured(&self) -> bool {
        !self.flows.is_empty()
    }

    /// The adapter's settings (`None` when it is not configured), or the
    /// errors naming each bad key.
    pub fn voice_config(
        &self,
        identity: &IdentityConfig,
    ) -> Result<Option<centralino_voice::VoiceConfig>, Vec<String>> {
        if !self.configured() {
            if !self.numbers.is_empty() || !self.agents.is_empty() || !self.default_flow.is_empty()
            {
                return Err(vec![
                    "voice: [voice.flows] is needed to answer calls (see deploy/voice.toml)"
                        .to_owned(),
                ]);
            }
            return Ok(None);
        }
        let mut errors = Vec::new();
        let defaults = centralino_voice::VoiceConfig::default();
        let listen = self
            .listen
            .trim()
            .parse()
            .map_err(|_| {
                errors.push(format!(
                    "voice.listen: {:?} is not an address like 0.0.0.0:5060",
                    self.listen
                ))
            })
            .unwrap_or(defaults.listen);
        let media_ip = match self.media_ip.trim() {
            "" => None,
            ip => ip
                .parse()
                .map_err(|_| {
                    errors.push(format!(
                        "voice.media_ip: {:?} is not an IP address like 10.0.0.5",
                        self.media_ip
                    ))
                })
                .ok(),
        };
        let rtp_ports = match self.rtp_ports.trim() {
            "" => None,
            range => range
                .split_once('-')
                .and_then(|(a, b)| Some(a.trim().parse::<u16>().ok()?..=b.trim().parse().ok()?))
                .filter(|r| !r.is_empty())
                .or_else(|| {
                    errors.push(format!(
                        "voice.rtp_ports: {:?} is not a port range like 10000-10999",
                        self.rtp_ports
                    ));
                    None
                }),
        };
        let transfer = match self.transfer.trim() {
            "bridge" | "" => centralino_voice::Transfer::Bridge,
            "refer" => centralino_voice::Transfer::Refer,
            other => {
                errors.push(format!(
                    "voice.transfer: {other:?} must be `bridge` or `refer`"
                ));
                centralino_voice::Transfer::Bridge
            }
        };
        if self.ring_timeout_secs == 0 || self.ring_timeout_secs > 300 {
            errors.push("voice.ring_timeout_secs: must be 1–300".to_owned());
        }
        let h = &self.hold;
        if h.announce_every_secs < 5 {
            errors.push("voice.hold.announce_every_secs: must be at least 5".to_owned());
        }
        let callback_key = {
            let mut chars = h.callback_key.trim().chars();
            match (chars.next(), chars.next()) {
                (None, _) => None,
                (Some(k), None) => Some(k.to_ascii_uppercase()),
                _ => {
                    errors.push(format!(
                        "voice.hold.callback_key: {:?} is not one key (0-9, *, #, A-D) or empty",
                        h.callback_key
                    ));
                    None
                }
            }
        };
        let flows: BTreeMap<String, Flow> = self
            .flows
            .iter()
            .map(|(name, f)| {
                (
                    name.clone(),
                    f.flow(&format!("voice.flows.{name}"), &mut errors),
                )
            })
            .collect();
        for (i, n) in self.numbers.iter().enumerate() {
            if !flows.contains_key(&n.flow) {
                errors.push(format!(
                    "voice.numbers[{i}].flow: {:?} is not one of [voice.flows]",
                    n.flow
                ));
            }
        }
        let default_flow = self.default_flow.trim();
        if !default_flow.is_empty() && !flows.contains_key(default_flow) {
            errors.push(format!(
                "voice.default_flow: {default_flow:?} is not one of [voice.flows]"
            ));
        }
        for (agent, uri) in &self.agents {
            // rsipstack's parser takes nearly any text as a host; ask for the
            // shape at least.
            let rest = uri
                .strip_prefix("sip:")
                .or_else(|| uri.strip_prefix("sips:"))
                .unwrap_or_default();
            let host = rest.rsplit('@').next().unwrap_or_default();
            if host.is_empty() || rest.chars().any(char::is_whitespace) {
                errors.push(format!(
                    "voice.agents.{agent}: {uri:?} is not a SIP URI like sip:{agent}@10.0.0.21:5060"
                ));
            }
        }
        let trunk = self.trunk.trim();
        if !trunk.is_empty()
            && (!(trunk.starts_with("sip:") || trunk.starts_with("sips:"))
                || !trunk.contains("{number}")
                || trunk.chars().any(char::is_whitespace))
        {
            errors.push(format!(
                "voice.trunk: {trunk:?} is not a SIP URI with {{number}}, like sip:{{number}}@gateway.example.com:5060"
            ));
        }
        if trunk.is_empty() && callback_key.is_some() {
            errors.push(
                "voice.trunk: required when voice.hold.callback_key offers callbacks \
                 (they are placed through it)"
                    .to_owned(),
            );
        }
        if media_ip.is_none() && listen.ip().is_unspecified() {
            errors.push(format!(
                "voice.media_ip: required when voice.listen ({listen}) is a wildcard address: \
                 the address phones send audio to"
            ));
        }
        let config = centralino_voice::VoiceConfig {
            listen,
            media_ip,
            rtp_ports,
            prompts_dir: self.prompts_dir.clone(),
            numbers: self
                .numbers
                .iter()
                .map(|n| centralino_voice::NumberConfig {
                    number: n.number.clone(),
                    flow: n.flow.clone(),
                })
                .collect(),
            default_flow: (!default_flow.is_empty()).then(|| default_flow.to_owned()),
            flows,
            hold: centralino_voice::HoldConfig {
                please_hold: h.please_hold.clone(),
                music: h.music.clone(),
                first_announcement: Duration::from_secs(h.first_announcement_secs),
                announce_every: Duration::from_secs(h.announce_every_secs),
                callback_key,
                callback_prompt: h.callback_prompt.clone(),
                callback_confirmed: h.callback_confirmed.clone(),
                closed_prompt: h.closed_prompt.clone(),
            },
            agents: self.agents.clone(),
            ring_timeout: Duration::from_secs(self.ring_timeout_secs),
            transfer,
            trunk: (!trunk.is_empty()).then(|| trunk.to_owned()),
            rules: centralino_domain::IdentityRules::with_default_region(&identity.default_region)
                .unwrap_or_default(),
            max_calls: self.max_calls,
            media_timeout: Duration::from_secs(self.media_timeout_secs),
        };
        // Then the adapter's own check (menus without a prompt, timeouts,
        // retries, number lengths, max_calls, ...): it names the key too, and
        // reports the first problem it finds.
        if errors.is_empty()
            && let Err(e) = config.validate()
        {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(Some(config))
        } else {
            Err(errors)
        }
    }
}
