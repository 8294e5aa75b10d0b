//! Audio: prompts loaded once, a player that turns them into 20 ms frames, and
//! one RTP leg per call party (its UDP socket, the negotiated codec, our
//! sequence numbers and timestamps, RFC 4733 key detection).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use centralino_telephony::dtmf::{EventDetector, TelephoneEvent};
use centralino_telephony::g711::Codec;
use centralino_telephony::rtp;
use centralino_telephony::sdp::Negotiated;
use tokio::net::UdpSocket;

/// Samples in one 20 ms packet at 8 kHz.
pub const FRAME: usize = 160;

/// Codecs we take, in order of preference.
pub(crate) const CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// Every prompt the configuration can play, decoded to 8 kHz samples.
#[derive(Debug, Default)]
pub struct Prompts {
    by_name: HashMap<String, Arc<[i16]>>,
}

impl Prompts {
    /// Loads `<dir>/<name>.wav` for every name, or the built-in prompt of
    /// that name when `dir` is empty; the error lists what is missing or
    /// unreadable.
    pub fn load<'a>(dir: &Path, names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let built_in = dir.as_os_str().is_empty();
        let mut by_name = HashMap::new();
        let mut problems = Vec::new();
        for name in names {
            if by_name.contains_key(name) {
                continue;
            }
            if name.is_empty()
                || name.contains("..")
                || name.starts_with('/')
                || name.contains('\\')
            {
                problems.push(format!("`{name}`: not a prompt name"));
                continue;
            }
            if built_in {
                match crate::prompts::built_in(name).map(centralino_telephony::wav::parse) {
                    Some(Ok(samples)) => {
                        by_name.insert(name.to_owned(), Arc::from(samples));
                    }
                    Some(Err(e)) => problems.push(format!("built-in {name}: {e}")),
                    None => problems.push(format!(
                        "`{name}` is not a built-in prompt (set voice.prompts_dir to a folder \
                         holding {name}.wav)"
                    )),
                }
                continue;
            }
            let path = dir.join(format!("{name}.wav"));
            match std::fs::read(&path) {
                Ok(bytes) => match centralino_telephony::wav::parse(&bytes) {
                    Ok(samples) => {
                        by_name.insert(name.to_owned(), Arc::from(samples));
                    }
                    Err(e) => problems.push(format!("{}: {e}", path.display())),
                },
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        if problems.is_empty() {
            Ok(Self { by_name })
        } else {
            Err(format!("voice prompts: {}", problems.join("; ")))
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<[i16]>> {
        self.by_name.get(name).cloned()
    }
}

/// What the caller hears: a queue of prompts, then (optionally) a loop.
#[derive(Debug, Default)]
pub struct Player {
    queue: VecDeque<Arc<[i16]>>,
    pos: usize,
    background: Option<(Arc<[i16]>, usize)>,
}

/// What [`Player::frame`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Audio was written.
    Audio,
    /// The prompt queue just ran out (the frame holds its last samples or
    /// silence); reported once.
    Finished,
    /// Nothing to play: silence.
    Silence,
}

impl Player {
    /// Replaces what is queued by `prompts` (missing names are skipped).
    pub fn play(&mut self, prompts: &Prompts, names: &[String]) {
        self.queue = names.iter().filter_map(|n| prompts.get(n)).collect();
        self.pos = 0;
    }

    /// Stops the prompts (the background loop, if any, goes on).
    pub fn stop(&mut self) {
        self.queue.clear();
        self.pos = 0;
    }

    /// Loops `audio` whenever no prompt plays (music on hold); `None` stops it.
    pub fn set_background(&mut self, audio: Option<Arc<[i16]>>) {
        self.background = audio.map(|a| (a, 0));
    }

    pub fn playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Fills `out` with the next 20 ms.
    pub fn frame(&mut self, out: &mut [i16; FRAME]) -> Frame {
        out.fill(0);
        if self.queue.is_empty() {
            return match &mut self.background {
                Some((audio, pos)) if !audio.is_empty() => {
                    for s in out.iter_mut() {
                        if *pos >= audio.len() {
                            *pos = 0;
                        }
                        *s = audio[*pos];
                        *pos += 1;
                    }
                    Frame::Audio
                }
                _ => Frame::Silence,
            };
        }
        let mut filled = 0;
        while filled < FRAME {
            let Some(current) = self.queue.front() else {
                break;
            };
            let take = (current.len() - self.pos.min(current.len())).min(FRAME - filled);
            out[filled..filled + take].copy_from_slice(&current[self.pos..self.pos + take]);
            filled += take;
            self.pos += take;
            if self.pos >= current.len() {
                self.queue.pop_front();
                self.pos = 0;
            }
        }
        if self.queue.is_empty() {
            Frame::Finished
        } else {
            Frame::Audio
        }
    }
}

/// Counters of one leg (tests and the call record read them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegStats {
    pub sent: u64,
    pub received: u64,
}

/// What arrived on a leg.
#[derive(Debug)]
pub enum Received<'a> {
    /// Audio in the leg's codec.
    Audio(&'a [u8]),
    /// A key (RFC 4733), reported once per key press.
    Key(char),
    /// Anything else (continuation of a key, comfort noise, a stranger's packet).
    Nothing,
}

/// Where RTP sockets are opened: the IP they bind, the IP our SDP announces
/// (they differ behind NAT or a published container port), and optionally
/// a range of ports, so a firewall or a port mapping can let exactly those
/// through. In a range only even ports are used (RFC 3550, 11), taken in
/// turn so a port just freed is not reused at once (late packets of the
/// call before).
#[derive(Debug)]
pub struct RtpPorts {
    bind: IpAddr,
    announce: IpAddr,
    /// The first even port and how many even ports there are.
    range: Option<(u16, u32)>,
    next: std::sync::atomic::AtomicU32,
}

impl RtpPorts {
    /// `range` must hold an even port (checked by the configuration).
    pub fn new(
        bind: IpAddr,
        announce: IpAddr,
        range: Option<std::ops::RangeInclusive<u16>>,
    ) -> Self {
        let range = range.map(|r| {
            let first = r.start().saturating_add(r.start() % 2);
            let count = if first > *r.end() {
                0
            } else {
                (u32::from(*r.end()) - u32::from(first)) / 2 + 1
            };
            (first, count)
        });
        Self {
            bind,
            announce,
            range,
            next: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A socket for one leg and the address our SDP gives for it. In a
    /// range, ports in use (by another call or another program) are skipped;
    /// when none is free the error says so.
    pub async fn open(&self) -> std::io::Result<(UdpSocket, SocketAddr)> {
        let Some((first, count)) = self.range else {
            let socket = UdpSocket::bind(SocketAddr::new(self.bind, 0)).await?;
            let port = socket.local_addr()?.port();
            return Ok((socket, SocketAddr::new(self.announce, port)));
        };
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..count {
            let offset = (start.wrapping_add(i) % count.max(1)) * 2;
            let Ok(port) = u16::try_from(u32::from(first) + offset) else {
                continue;
            };
            match UdpSocket::bind(SocketAddr::new(self.bind, port)).await {
                Ok(socket) => {
                    // Next time, start after this one.
                    self.next.store(
                        start.wrapping_add(i + 1),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    return Ok((socket, SocketAddr::new(self.announce, port)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
                Err(e) => return Err(e),
            }
        }
        let last = u32::from(first) + count.saturating_sub(1) * 2;
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("no free RTP port in {first}-{last} (voice.rtp_ports)"),
        ))
    }
}

/// One party's RTP stream.
pub struct Leg {
    pub socket: UdpSocket,
    /// What our SDP gives as this leg's address.
    pub announced: SocketAddr,
    pub remote: SocketAddr,
    pub codec: Codec,
    pub telephone_event: Option<u8>,
    sender: rtp::Sender,
    detector: EventDetector,
    latched: bool,
    /// When the party's last packet arrived (the leg's start until then).
    pub heard: std::time::Instant,
    /// Our SDP's `o=` session id and version (raised by every new answer).
    pub session: (u64, u64),
    pub stats: LegStats,
    out: Vec<u8>,
    payload: Vec<u8>,
    /// The RTP timestamp the key being pressed started at.
    key_start: u32,
}

impl Leg {
    /// A leg on a socket from [`RtpPorts::open`].
    pub fn new((socket, announced): (UdpSocket, SocketAddr), neg: &Negotiated) -> Self {
        let seed = uuid::Uuid::new_v4().as_u128();
        Leg {
            socket,
            announced,
            remote: neg.remote,
            codec: neg.codec,
            telephone_event: neg.telephone_event,
            sender: rtp::Sender::new(seed as u32, (seed >> 32) as u16, (seed >> 48) as u32),
            detector: EventDetector::default(),
            latched: false,
            heard: std::time::Instant::now(),
            session: (u64::from((seed >> 80) as u32), 1),
            stats: LegStats::default(),
            out: Vec::with_capacity(12 + FRAME),
            payload: Vec::with_capacity(FRAME),
            key_start: 0,
        }
    }

    /// Points the leg at what the party's answer said (its address, codec
    /// and key events); the address is learned again from its packets.
    pub fn retarget(&mut self, neg: &Negotiated) {
        self.remote = neg.remote;
        self.codec = neg.codec;
        self.telephone_event = neg.telephone_event;
        self.latched = false;
        self.heard = std::time::Instant::now();
    }

    /// Our answer to the party's new offer (a re-INVITE or UPDATE: hold,
    /// resume, a new address or codec); the leg follows it.
    pub fn answer_again(&mut self, offer: &str) -> Result<String, String> {
        let parsed = centralino_telephony::sdp::parse(offer).map_err(|e| e.to_string())?;
        let neg =
            centralino_telephony::sdp::negotiate(&parsed, &CODECS).map_err(|e| e.to_string())?;
        self.retarget(&neg);
        self.session.1 += 1;
        Ok(centralino_telephony::sdp::answer_to(
            &parsed,
            &neg,
            self.announced,
            self.session.0,
            self.session.1,
        ))
    }

    /// A fresh offer of ours (a re-INVITE without SDP asks for one).
    pub fn offer_again(&mut self) -> Result<String, String> {
        self.session.1 += 1;
        Ok(centralino_telephony::sdp::offer(
            self.announced,
            self.session.0,
            self.session.1,
            self.telephone_event.unwrap_or(101),
        ))
    }

    /// Whether the party has sent nothing for longer than `timeout` (zero:
    /// never): its phone or network is gone without a BYE.
    pub fn silent_for(&self, timeout: std::time::Duration) -> bool {
        !timeout.is_zero() && self.heard.elapsed() > timeout
    }

    /// Sends 20 ms of audio (encoded in the leg's codec).
    pub async fn send_samples(&mut self, samples: &[i16; FRAME]) {
        let mut payload = std::mem::take(&mut self.payload);
        payload.clear();
        self.codec.encode(samples, &mut payload);
        self.send_payload(&payload).await;
        self.payload = payload;
    }

    /// Sends an already encoded audio payload; its duration is its length
    /// (one byte per sample in G.711).
    pub async fn send_payload(&mut self, payload: &[u8]) {
        let header = self
            .sender
            .packet(self.codec.payload_type(), false, payload.len() as u32);
        self.out.clear();
        rtp::write(&header, payload, &mut self.out);
        if self.remote.ip().is_unspecified() || self.remote.port() == 0 {
            return; // the party holds the call (c=0.0.0.0): nothing to send to
        }
        if self.socket.send_to(&self.out, self.remote).await.is_ok() {
            self.stats.sent += 1;
        }
    }

    /// Sends packet `n` (from 0, one every 20 ms) of a 100 ms key press
    /// (RFC 4733): five packets of growing duration, the last one three
    /// times with the end bit. Returns whether the press is over (at once
    /// when the party takes no key events or `key` is not one).
    pub async fn send_key_packet(&mut self, key: char, n: u8) -> bool {
        const PACKETS: u8 = 5;
        const END_REPEATS: u8 = 3;
        let (Some(payload_type), Some(event)) = (
            self.telephone_event,
            centralino_telephony::dtmf::event_of(key),
        ) else {
            return true;
        };
        if n == 0 {
            self.key_start = self.sender.timestamp();
        }
        let step = n.min(PACKETS - 1);
        let samples = u16::try_from(FRAME).unwrap_or(160);
        let duration = u16::from(step + 1) * samples;
        let header = self
            .sender
            .event_header(payload_type, n == 0, self.key_start);
        let mut payload = Vec::with_capacity(4);
        TelephoneEvent {
            event,
            end: n + 1 >= PACKETS,
            volume: 10,
            duration,
        }
        .write(&mut payload);
        self.out.clear();
        rtp::write(&header, &payload, &mut self.out);
        if !(self.remote.ip().is_unspecified() || self.remote.port() == 0)
            && self.socket.send_to(&self.out, self.remote).await.is_ok()
        {
            self.stats.sent += 1;
        }
        let over = n + 1 >= PACKETS + END_REPEATS - 1;
        if over {
            // The press took this many 20 ms frames of the stream's time.
            self.sender.skip(u32::from(n + 1) * u32::from(samples));
        }
        over
    }

    /// Interprets a datagram from `from`. Packets from another address than
    /// the party's are ignored, except that the first one from the party's
    /// IP fixes the port (symmetric RTP, for phones behind NAT).
    pub fn receive<'a>(&mut self, packet: &'a [u8], from: SocketAddr) -> Received<'a> {
        if from != self.remote {
            if self.latched || from.ip() != self.remote.ip() {
                return Received::Nothing;
            }
            self.remote = from;
        }
        self.latched = true;
        let Ok((header, payload)) = rtp::parse(packet) else {
            return Received::Nothing;
        };
        self.stats.received += 1;
        self.heard = std::time::Instant::now();
        if Some(header.payload_type) == self.telephone_event {
            return match TelephoneEvent::parse(payload) {
                Ok(ev) => self
                    .detector
                    .on_packet(header.timestamp, &ev)
                    .map_or(Received::Nothing, Received::Key),
                Err(_) => Received::Nothing,
            };
        }
        if header.payload_type == self.codec.payload_type() {
            Received::Audio(payload)
        } else {
            Received::Nothing
        }
    }
}

/// Re-encodes a G.711 payload from one law to the other (same length).
pub fn transcode(from: Codec, to: Codec, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if from == to {
        out.extend_from_slice(payload);
        return;
    }
    let mut samples = Vec::with_capacity(payload.len());
    from.decode(payload, &mut samples);
    to.encode(&samples, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts() -> Prompts {
        let mut p = Prompts::default();
        p.by_name.insert("a".into(), Arc::from(vec![1i16; 200]));
        p.by_name.insert("b".into(), Arc::from(vec![2i16; 100]));
        p
    }

    #[test]
    fn the_player_chains_prompts_and_reports_the_end_once() {
        let p = prompts();
        let mut player = Player::default();
        let mut out = [0i16; FRAME];
        assert_eq!(player.frame(&mut out), Frame::Silence);
        player.play(&p, &["a".into(), "missing".into(), "b".into()]);
        assert_eq!(player.frame(&mut out), Frame::Audio);
        assert!(out.iter().all(|&s| s == 1));
        assert_eq!(player.frame(&mut out), Frame::Finished);
        assert!(out[..40].iter().all(|&s| s == 1));
        assert!(out[40..140].iter().all(|&s| s == 2));
        assert!(out[140..].iter().all(|&s| s == 0));
        assert_eq!(player.frame(&mut out), Frame::Silence);
        player.set_background(p.get("b"));
        assert_eq!(player.frame(&mut out), Frame::Audio);
        assert!(out.iter().all(|&s| s == 2), "the loop wraps around");
    }

    #[tokio::test]
    async fn packets_are_20_ms_of_g711_with_consecutive_numbers_and_timestamps() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.expect("peer");
        let neg = Negotiated {
            remote: peer.local_addr().expect("addr"),
            codec: Codec::Pcma,
            telephone_event: Some(101),
            ptime: 20,
            direction: centralino_telephony::sdp::Direction::SendRecv,
        };
        let localhost: IpAddr = "127.0.0.1".parse().expect("ip");
        let ports = RtpPorts::new(localhost, localhost, None);
        let mut leg = Leg::new(ports.open().await.expect("socket"), &neg);
        let mut samples = [0i16; FRAME];
        for _ in 0..5 {
            leg.send_samples(&samples).await;
            samples.fill(1000);
        }
        assert_eq!(leg.stats.sent, 5);
        let mut buf = [0u8; 512];
        let mut headers = Vec::new();
        for i in 0..5 {
            let (n, _) = peer.recv_from(&mut buf).await.expect("packet");
            let (h, payload) = rtp::parse(&buf[..n]).expect("RTP");
            assert_eq!(h.payload_type, 8, "PCMA");
            assert_eq!(payload.len(), FRAME, "20 ms at 8 kHz");
            if i == 0 {
                assert!(payload.iter().all(|&b| b == Codec::Pcma.silence()));
            }
            headers.push(h);
        }
        for w in headers.windows(2) {
            assert_eq!(w[1].sequence, w[0].sequence.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(FRAME as u32));
            assert_eq!(w[1].ssrc, w[0].ssrc);
        }
        // What the peer sends back is counted, and its keys are found.
        let mut key = Vec::new();
        rtp::write(
            &rtp::Header {
                marker: true,
                payload_type: 101,
                sequence: 1,
                timestamp: 8000,
                ssrc: 7,
            },
            &[5, 0x0a, 0, 160],
            &mut key,
        );
        let from = peer.local_addr().expect("addr");
        assert!(matches!(leg.receive(&key, from), Received::Key('5')));
        assert!(matches!(leg.receive(&key, from), Received::Nothing), "once");
        assert_eq!(leg.stats.received, 2);
        let stranger: SocketAddr = "127.0.0.2:4000".parse().expect("addr");
        assert!(matches!(leg.receive(&key, stranger), Received::Nothing));
        assert_eq!(
            leg.stats.received, 2,
            "a stranger's packet is not the party's"
        );
    }

    #[tokio::test]
    async fn rtp_ports_come_from_the_range_even_in_turn_skipping_busy_ones() {
        let any: IpAddr = "0.0.0.0".parse().expect("ip");
        let public: IpAddr = "203.0.113.5".parse().expect("ip");
        // A range nobody else uses, below the ephemeral ports other tests get.
        let base = loop {
            let p = 20_000 + (uuid::Uuid::new_v4().as_u128() % 5_000) as u16 * 2;
            if (0..8).all(|i| std::net::UdpSocket::bind(("0.0.0.0", p + i)).is_ok()) {
                break p;
            }
        };
        // Odd start: the first even port after it; 3 even ports in all.
        let ports = RtpPorts::new(any, public, Some(base + 1..=base + 6));
        let busy = std::net::UdpSocket::bind(("0.0.0.0", base + 4)).expect("busy");
        let (a, a_at) = ports.open().await.expect("a");
        let (b, b_at) = ports.open().await.expect("b");
        assert_eq!(
            a_at,
            SocketAddr::new(public, base + 2),
            "announced, not bound"
        );
        assert_eq!(b_at.port(), base + 6, "the busy port is skipped");
        assert_eq!(a.local_addr().expect("addr").ip(), any);
        let e = ports.open().await.expect_err("full");
        assert_eq!(
            e.to_string(),
            format!(
                "no free RTP port in {}-{} (voice.rtp_ports)",
                base + 2,
                base + 6
            )
        );
        // Freed ports come back, in turn: the last try began at base + 2.
        drop(busy);
        drop(a);
        let (_c, c_at) = ports.open().await.expect("c");
        assert_eq!(c_at.port(), base + 4);
        let (_d, d_at) = ports.open().await.expect("d");
        assert_eq!(d_at.port(), base + 2, "base + 6 is still b's");
        drop(b);
        // Without a range: any free port, still announced.
        let (_e, e_at) = RtpPorts::new(any, public, None).open().await.expect("e");
        assert_eq!(e_at.ip(), public);
    }

    #[test]
    fn prompt_names_cannot_leave_the_directory() {
        let dir = std::env::temp_dir();
        let e = Prompts::load(&dir, ["../etc/passwd"]).expect_err("refused");
        assert!(e.contains("not a prompt name"), "{e}");
        let e = Prompts::load(&dir, ["surely-not-here-4711"]).expect_err("missing");
        assert!(e.contains("surely-not-here-4711.wav"), "{e}");
    }
}
