//! The SMPP 3.4 transport: one transceiver bind kept up by a task (enquire_link
//! keep-alive, reconnect with backoff 1 s doubling to 5 s), outbound messages
//! cut into exact segments (GSM 03.38 or UCS-2, concatenated with an 8-bit
//! reference UDH), at most `window` submits outstanding, inbound messages
//! reassembled from their parts and answered (`deliver_sm_resp`) only once the
//! caller says they are handled, and delivery receipts correlated by the SMSC's
//! message id.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use centralino_gsm::Encoding;
use futures::StreamExt as _;
use rusmpp::pdus::{BindTransceiver, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::TlvValue;
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, MessageState, Npi, RegisteredDelivery, ServiceType, Ton,
};
use rusmpp::{CommandId, CommandStatus, Pdu};
use rusmppc::{Client, ConnectionBuilder, Event};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::{Delivered, Incoming};

#[derive(Debug, Clone)]
pub struct SmppConfig {
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: String,
    /// Our sender address (a short code or number) for outbound messages.
    pub source_addr: String,
    pub enquire_link: Duration,
    pub response_timeout: Duration,
    /// Most submits awaiting their response at once.
    pub window: usize,
    /// Most parts submitted per second (the account's throughput at the
    /// SMSC); 0: no limit.
    pub max_per_second: u32,
    /// A multipart message still missing parts after this long is handed over
    /// with what arrived (a missing part shows as `…`), so its parts are
    /// answered before the SMSC gives up on them.
    pub parts_timeout: Duration,
}

impl Default for SmppConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 2775,
            system_id: String::new(),
            password: String::new(),
            source_addr: String::new(),
            enquire_link: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            window: 10,
            max_per_second: 0,
            parts_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a message was not submitted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Not bound, or the connection broke: the peer is away; try again
    /// within seconds of its return, however long it was away.
    #[error("the SMSC is not reachable now: {0}")]
    Unreachable(String),
    /// The SMSC (or provider) answered "not now" for this message
    /// (throttling, a full queue, a system error): try later, with backoff.
    #[error("the SMSC cannot take the message now: {0}")]
    Unavailable(String),
    /// The SMSC refused this message (bad destination, say): do not retry.
    #[error("the SMSC refused the message: {0}")]
    Refused(String),
}

/// What one message became at the SMSC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub encoding: Encoding,
    /// The SMSC's id of each part, in order (receipts name them).
    pub part_ids: Vec<String>,
}

struct Request {
    from: Option<String>,
    to: String,
    text: String,
    reply: oneshot::Sender<Result<Submitted, SendError>>,
}

/// A handle on the transport task.
#[derive(Clone)]
pub struct Smpp {
    requests: mpsc::Sender<Request>,
    bound: watch::Receiver<bool>,
}

impl Smpp {
    /// Starts the transport; it runs until `stop` turns true.
    pub fn start(
        config: SmppConfig,
        incoming: mpsc::Sender<Incoming>,
        stop: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (requests, rx) = mpsc::channel(1_024);
        let (bound_tx, bound) = watch::channel(false);
        let task = tokio::spawn(run(config, rx, incoming, bound_tx, stop));
        (Self { requests, bound }, task)
    }

    /// Whether a bind is up now.
    pub fn bound(&self) -> watch::Receiver<bool> {
        self.bound.clone()
    }

    /// Submits `text` to `to` (digits, optionally with `+`), asking for a
    /// receipt, from the configured `source_addr`.
    pub async fn send(&self, to: &str, text: &str) -> Result<Submitted, SendError> {
        self.send_from(None, to, text).await
    }

    /// [`Smpp::send`] from `from` (one of our numbers) instead of `source_addr`.
    pub async fn send_from(
        &self,
        from: Option<&str>,
        to: &str,
        text: &str,
    ) -> Result<Submitted, SendError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                from: from.filter(|f| !f.is_empty()).map(str::to_owned),
                to: to.to_owned(),
                text: text.to_owned(),
                reply,
            })
            .await
            .map_err(|_| SendError::Unreachable("the transport stopped".into()))?;
        answer
            .await
            .unwrap_or_else(|_| Err(SendError::Unreachable("the connection ended".into())))
    }
}

async fn run(
    config: SmppConfig,
    mut requests: mpsc::Receiver<Request>,
    incoming: mpsc::Sender<Incoming>,
    bound: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = centralino_bus::Backoff::peer();
    let window = Arc::new(Semaphore::new(config.window.max(1)));
    let pace = Arc::new(Pace::new(config.max_per_second));
    let mut reference: u8 = 0;
    loop {
        if stopping(&stop) {
            return;
        }
        let session = match connect(&config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    smsc = %format!("{}:{}", config.host, config.port),
                    error = %e,
                    retry_in_ms = backoff.peek().as_millis() as u64,
                    "sms: SMPP bind failed; retrying"
                );
                // Refuse what waits meanwhile rather than hold callers forever.
                while let Ok(r) = requests.try_recv() {
                    let _ = r
                        .reply
                        .send(Err(SendError::Unreachable("not bound".into())));
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_wait()) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                continue;
            }
        };
        backoff.reset();
        let (client, mut events) = session;
        let _ = bound.send(true);
        tracing::info!(smsc = %format!("{}:{}", config.host, config.port), "sms: bound to the SMSC as a transceiver");
        let mut parts: Parts = HashMap::new();
        let mut sweep = tokio::time::interval(Duration::from_secs(1));
        // Why the connection ended, for the line that says so.
        let mut last_error: Option<String> = None;
        let ended = loop {
            tokio::select! {
                _ = sweep.tick() => {
                    flush_stale(&client, &incoming, &mut parts, config.parts_timeout).await;
                }
                r = requests.recv() => {
                    let Some(r) = r else { break true };
                    reference = reference.wrapping_add(1);
                    let client = client.clone();
                    let (window, pace) = (window.clone(), pace.clone());
                    let source = r.from.clone().unwrap_or_else(|| config.source_addr.clone());
                    tokio::spawn(async move {
                        let answer = submit(&client, &window, &pace, &source, &r.to, &r.text, reference).await;
                        let _ = r.reply.send(answer);
                    });
                }
                e = events.next() => match e {
                    Some(Event::Incoming(command)) => {
                        on_command(&client, &incoming, &mut parts, command).await;
                    }
                    Some(Event::Error(e)) => {
                        last_error = Some(e.to_string());
                    }
                    None => break false,
                },
                changed = stop.changed() => {
                    if changed.is_err() || stopping(&stop) {
                        let _ = client.unbind().await;
                        let _ = client.close().await;
                        break true;
                    }
                }
            }
        };
        let _ = bound.send(false);
        if ended {
            return;
        }
        tracing::warn!(
            smsc = %format!("{}:{}", config.host, config.port),
            error = last_error.as_deref().unwrap_or("closed by the SMSC"),
            "sms: SMPP connection lost; binding again at once, then with backoff; \
             messages wait in their queue meanwhile"
        );
    }
}

fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

async fn connect(
    config: &SmppConfig,
) -> Result<(Client, impl futures::Stream<Item = Event> + Unpin), String> {
    let (client, events, connection) = ConnectionBuilder::new()
        .enquire_link_interval(config.enquire_link)
        .response_timeout(config.response_timeout)
        .no_spawn()
        .connect(format!("smpp://{}:{}", config.host, config.port))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(Driven::new(connection));
    let system_id = COctetString::from_str(&config.system_id).map_err(|e| e.to_string())?;
    let password = COctetString::from_str(&config.password).map_err(|e| e.to_string())?;
    client
        .bind_transceiver(
            BindTransceiver::builder()
                .system_id(system_id)
                .password(password)
                .system_type(COctetString::empty())
                .addr_ton(Ton::Unknown)
                .addr_npi(Npi::Unknown)
                .address_range(COctetString::empty())
                .build(),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok((client, Box::pin(events)))
}

/// Drives rusmppc's connection future. rusmppc 0.4 handles at most five
/// queued requests per poll and, when it stops at that limit, does not wake
/// itself: the rest wait for the next socket event or timer (the
/// enquire_link, seconds later), and a burst of submits and answers stalls
/// (seen: 64 submits held for 30 s). This polls it a few times per wake and
/// at least every 10 ms.
struct Driven<F> {
    inner: std::pin::Pin<Box<F>>,
    tick: tokio::time::Interval,
}

impl<F: Future<Output = ()>> Driven<F> {
    fn new(inner: F) -> Self {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Self {
            inner: Box::pin(inner),
            tick,
        }
    }
}

impl<F: Future<Output = ()>> Future for Driven<F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.get_mut();
        // A future may be polled again at any time; each poll takes up to
        // five more of its queued requests.
        for _ in 0..8 {
            if this.inner.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        // Registers the next tick's wake-up.
        while this.tick.poll_tick(cx).is_ready() {}
        std::task::Poll::Pending
    }
}

/// `esm_class` of a normal message: default messaging mode, default type.
const ESM_NORMAL: u8 = 0x00;
/// `esm_class` bit 6: the short message starts with a user data header.
const ESM_UDHI: u8 = 0x40;

/// Submits every segment of `text`; the answer names each part's SMSC id.
#[allow(clippy::too_many_arguments)]
async fn submit(
    client: &Client,
    window: &Semaphore,
    pace: &Pace,
    source_raw: &str,
    to: &str,
    text: &str,
    reference: u8,
) -> Result<Submitted, SendError> {
    let address = |s: &str| {
        COctetString::<1, 21>::from_str(s.trim_start_matches('+'))
            // Not the value: it is a phone number.
            .map_err(|_| SendError::Refused("an address is not a valid SMPP address".into()))
    };
    let (source, destination) = (address(source_raw)?, address(to)?);
    // E.164 ('+…') is an international ISDN number, a name (`ACME`) an
    // alphanumeric sender; anything else is left to the SMSC.
    let numbering = |s: &str| {
        if s.starts_with('+') {
            (Ton::International, Npi::Isdn)
        } else if s.bytes().any(|b| b.is_ascii_alphabetic()) {
            (Ton::Alphanumeric, Npi::Unknown)
        } else {
            (Ton::Unknown, Npi::Unknown)
        }
    };
    let (source_ton, source_npi) = numbering(source_raw);
    let (dest_ton, dest_npi) = numbering(to);
    let encoded = centralino_gsm::encode(text);
    let total = u8::try_from(encoded.segments.len())
        .map_err(|_| SendError::Refused("longer than 255 parts".into()))?;
    let coding = match encoded.encoding {
        Encoding::Gsm7 => DataCoding::McSpecific,
        Encoding::Ucs2 => DataCoding::Ucs2,
    };
    let mut part_ids = Vec::with_capacity(encoded.segments.len());
    for (i, segment) in encoded.segments.iter().enumerate() {
        let mut payload = Vec::with_capacity(segment.len() + 6);
        // A normal message in the SMSC's default mode (SMPP 3.4 §5.2.12):
        // 0x00, or 0x40 with the UDH indicator. Not `EsmClass::default()`,
        // which in rusmpp-core 0.4 is 0x08, "ESME delivery acknowledgement".
        let mut esm = EsmClass::from(ESM_NORMAL);
        if total > 1 {
            let seq = u8::try_from(i + 1).unwrap_or(u8::MAX);
            payload.extend_from_slice(&centralino_gsm::udh(reference, total, seq));
            esm = EsmClass::from(ESM_NORMAL | ESM_UDHI);
        }
        payload.extend_from_slice(segment);
        let short_message = OctetString::<0, 255>::from_vec(payload)
            .map_err(|e| SendError::Refused(format!("segment too long: {e}")))?;
        let pdu = SubmitSm::builder()
            .service_type(ServiceType::default())
            .source_addr_ton(source_ton)
            .source_addr_npi(source_npi)
            .source_addr(source.clone())
            .dest_addr_ton(dest_ton)
            .dest_addr_npi(dest_npi)
            .destination_addr(destination.clone())
            .esm_class(esm)
            // The final outcome only: intermediate notifications and SME
            // acknowledgements are not asked for.
            .registered_delivery(RegisteredDelivery::from(0x01))
            .data_coding(coding)
            .short_message(short_message)
            .build();
        let _permit = window
            .acquire()
            .await
            .map_err(|_| SendError::Unreachable("the transport stopped".into()))?;
        pace.wait().await;
        match client.submit_sm(pdu).await {
            Ok(resp) => part_ids.push(resp.message_id().to_string()),
            // Some parts are with the customer already: sending the whole
            // message again would repeat them, so it is given up.
            Err(e) if !part_ids.is_empty() => {
                return Err(SendError::Refused(format!(
                    "only {} of {total} parts accepted: {}",
                    part_ids.len(),
                    classify(&e)
                )));
            }
            Err(e) => return Err(classify(&e)),
        }
    }
    Ok(Submitted {
        encoding: encoded.encoding,
        part_ids,
    })
}

/// A refusal that is about the message is final; the rest (connection,
/// timeout, throttling, queue full, system error) may heal.
fn classify(e: &rusmppc::error::Error) -> SendError {
    let text = e.to_string();
    match e {
        rusmppc::error::Error::UnexpectedResponse { response } => {
            let status = response.status();
            let temporary = matches!(
                status,
                CommandStatus::EsmeRthrottled
                    | CommandStatus::EsmeRmsgqful
                    | CommandStatus::EsmeRsyserr
                    | CommandStatus::EsmeRinvbndsts
                    | CommandStatus::EsmeRsubmitfail
                    | CommandStatus::EsmeRxTAppn
            );
            if temporary {
                SendError::Unavailable(text)
            } else {
                SendError::Refused(text)
            }
        }
        _ => SendError::Unreachable(text),
    }
}

/// Hands over every multipart message that waited longer than `timeout` for
/// its missing parts, with `…` in their place.
async fn flush_stale(
    client: &Client,
    incoming: &mpsc::Sender<Incoming>,
    parts: &mut Parts,
    timeout: Duration,
) {
    let stale: Vec<(String, u8)> = parts
        .iter()
        .filter(|(_, p)| p.first_seen.elapsed() >= timeout)
        .map(|(k, _)| k.clone())
        .collect();
    for key in stale {
        let Some(p) = parts.remove(&key) else {
            continue;
        };
        tracing::warn!(
            missing = usize::from(p.total).saturating_sub(p.texts.len()),
            "sms: a multipart message is missing parts; handed over incomplete"
        );
        let text: String = (1..=p.total)
            .map(|i| p.texts.get(&i).cloned().unwrap_or_else(|| "…".to_owned()))
            .collect();
        let what = Delivered::Message {
            id: None,
            from: key.0,
            to: p.to,
            text,
        };
        hand_over(client, incoming, what, p.sequences).await;
    }
}

/// Spaces submits to at most `per_second` (none when 0).
struct Pace {
    gap: Option<Duration>,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pace {
    fn new(per_second: u32) -> Self {
        Self {
            gap: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Waits for the next free slot.
    async fn wait(&self) {
        let Some(gap) = self.gap else { return };
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(tokio::time::Instant::now());
            *next = slot + gap;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// Parts of multipart messages waiting for the rest: (from, reference) → the
/// parts by number, the total, and the sequence numbers to answer.
type Parts = HashMap<(String, u8), Partial>;

struct Partial {
    first_seen: tokio::time::Instant,
    to: String,
    total: u8,
    texts: HashMap<u8, String>,
    sequences: Vec<u32>,
}

async fn on_command(
    client: &Client,
    incoming: &mpsc::Sender<Incoming>,
    parts: &mut Parts,
    command: rusmpp::Command,
) {
    if command.id() == CommandId::Unbind {
        // The SMSC is going away (maintenance): answer; it closes the
        // connection and the bind is made again with backoff.
        tracing::info!("sms: the SMSC unbinds; binding again");
        let _ = client.clone().unbind_resp(command.sequence_number()).await;
        return;
    }
    if command.id() != CommandId::DeliverSm {
        return;
    }
    let sequence = command.sequence_number();
    let Some(Pdu::DeliverSm(deliver)) = command.pdu() else {
        return;
    };
    let esm = u8::from(deliver.esm_class);
    let coding = u8::from(deliver.data_coding);
    // SMSCs put long texts (and some all texts) in `message_payload` instead.
    let short: &[u8] = deliver.short_message().as_ref();
    let payload = if short.is_empty() {
        deliver.tlvs().iter().find_map(|t| match t.value() {
            Some(TlvValue::MessagePayload(p)) => Some(p.value.as_ref().to_vec()),
            _ => None,
        })
    } else {
        None
    };
    let bytes: &[u8] = payload.as_deref().unwrap_or(short);
    // An international number comes without its '+': put it back, so it
    // normalizes to E.164 whatever the default region.
    let from = match (deliver.source_addr_ton, deliver.source_addr.to_string()) {
        (Ton::International, a) if !a.starts_with('+') => format!("+{a}"),
        (_, a) => a,
    };
    let to = match (deliver.dest_addr_ton, deliver.destination_addr.to_string()) {
        (Ton::International, a) if !a.starts_with('+') => format!("+{a}"),
        (_, a) => a,
    };
    let (udh, body) = centralino_gsm::split_udh(bytes, esm & 0x40 != 0);
    let text = centralino_gsm::decode(body, coding);
    // Message type (esm_class bits 2–5): 0 a customer's message, 0x04 a
    // delivery receipt, 0x20 an intermediate notification (read like a
    // receipt); anything else (SME acknowledgements) is answered and dropped.
    let kind = esm & 0x3C;
    if !matches!(kind, 0x00 | 0x04 | 0x20) {
        let _ = client
            .deliver_sm_resp(sequence, DeliverSmResp::default())
            .await;
        return;
    }
    let (what, sequences) = if kind != 0 {
        match centralino_gsm::receipt(&text).or_else(|| tlv_receipt(deliver.tlvs())) {
            Some(r) => (Delivered::Receipt(r), vec![sequence]),
            None => {
                // A receipt we cannot read: answer it, or it comes back forever.
                tracing::warn!(
                    "sms: a delivery receipt without id or stat; acknowledged and dropped"
                );
                let _ = client
                    .deliver_sm_resp(sequence, DeliverSmResp::default())
                    .await;
                return;
            }
        }
    } else if let Some((reference, total, seq)) = udh.filter(|(_, total, _)| *total > 1) {
        let entry = parts
            .entry((from.clone(), reference))
            .or_insert_with(|| Partial {
                first_seen: tokio::time::Instant::now(),
                to: to.clone(),
                total,
                texts: HashMap::new(),
                sequences: Vec::new(),
            });
        entry.texts.insert(seq, text);
        entry.sequences.push(sequence);
        if entry.texts.len() < usize::from(entry.total) {
            return;
        }
        let Some(done) = parts.remove(&(from.clone(), reference)) else {
            return;
        };
        let text: String = (1..=done.total)
            .filter_map(|i| done.texts.get(&i).cloned())
            .collect();
        (
            Delivered::Message {
                id: None,
                from,
                to,
                text,
            },
            done.sequences,
        )
    } else {
        (
            Delivered::Message {
                id: None,
                from,
                to,
                text,
            },
            vec![sequence],
        )
    };
    hand_over(client, incoming, what, sequences).await;
}

/// A receipt from the `receipted_message_id` and `message_state` TLVs, for an
/// SMSC whose receipt text is empty or unreadable.
fn tlv_receipt(tlvs: &[rusmpp::tlvs::Tlv]) -> Option<centralino_gsm::Receipt> {
    let mut id = None;
    let mut state = None;
    for t in tlvs {
        match t.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => id = Some(v.to_string()),
            Some(TlvValue::MessageState(s)) => state = Some(*s),
            _ => {}
        }
    }
    let stat = match state? {
        MessageState::Delivered => "DELIVRD",
        MessageState::Expired => "EXPIRED",
        MessageState::Deleted => "DELETED",
        MessageState::Undeliverable => "UNDELIV",
        MessageState::Accepted => "ACCEPTD",
        MessageState::Rejected => "REJECTD",
        MessageState::Unknown => "UNKNOWN",
        _ => "ENROUTE",
    };
    Some(centralino_gsm::Receipt {
        id: id.filter(|i| !i.is_empty())?,
        stat: stat.into(),
        err: "000".into(),
    })
}

/// Hands `what` to the adapter; answers its `deliver_sm`s once it is handled.
async fn hand_over(
    client: &Client,
    incoming: &mpsc::Sender<Incoming>,
    what: Delivered,
    sequences: Vec<u32>,
) {
    let (handled, answer) = oneshot::channel();
    if incoming.send(Incoming { what, handled }).await.is_err() {
        return;
    }
    let client = client.clone();
    tokio::spawn(async move {
        let ok = answer.await.unwrap_or(false);
        for seq in sequences {
            let result = if ok {
                client.deliver_sm_resp(seq, DeliverSmResp::default()).await
            } else {
                client
                    .status(CommandStatus::EsmeRxTAppn)
                    .deliver_sm_resp(seq, DeliverSmResp::default())
                    .await
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "sms: deliver_sm_resp not sent; the SMSC will deliver again");
            }
        }
    });
}
