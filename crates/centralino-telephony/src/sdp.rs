//! SDP (RFC 4566) for audio calls: parsing what a peer sends, choosing the
//! codec, DTMF payload type and remote address of the first RTP audio stream
//! (RFC 3264 offer/answer), and writing our offers and answers.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::g711::Codec;

/// Why an SDP body cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line we read is malformed.
    #[error("sdp line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The body does not start with `v=0`.
    #[error("sdp does not start with v=0")]
    MissingVersion,
    /// No audio stream with a port and RTP/AVP (or RTP/AVPF).
    #[error("sdp has no active RTP/AVP audio stream")]
    NoAudio,
    /// The only audio streams are encrypted.
    #[error("SRTP not supported (audio stream offered as {0})")]
    Srtp(String),
    /// None of our codecs is in the audio stream.
    #[error("no common codec (offered: {offered})")]
    NoCommonCodec {
        /// The offered formats, as `name/rate` or bare payload types.
        offered: String,
    },
    /// Neither the audio stream nor the session has a `c=` line.
    #[error("audio stream has no connection address (c=)")]
    NoConnection,
}

/// A stream's direction attribute, from the point of view of whoever wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly` (the writer puts the other side on hold).
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction the other side answers with: send-only and receive-only swap.
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// The attribute name: `sendrecv`, `sendonly`, `recvonly` or `inactive`.
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.attribute() == name)
    }
}

/// A parsed session description: what calls need of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sdp {
    /// `o=` session id (empty without `o=`).
    pub origin_session_id: String,
    /// `o=` session version, bumped by the peer when the description changes
    /// (0 without `o=`).
    pub origin_version: u64,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute (`SendRecv` when absent).
    pub direction: Direction,
    /// The `m=` sections in order, of every kind.
    pub media: Vec<Media>,
}

/// One `m=` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// Media type: `audio`, `video`, `image`, ...
    pub kind: String,
    /// Transport port; 0 is a rejected or disabled stream.
    pub port: u16,
    /// Transport protocol, such as `RTP/AVP`.
    pub proto: String,
    /// The numeric formats (RTP payload types), in preference order.
    pub formats: Vec<u8>,
    /// Media-level `c=` address.
    pub connection: Option<IpAddr>,
    /// `a=rtpmap`: payload type, encoding name, clock rate.
    pub rtpmap: Vec<(u8, String, u32)>,
    /// `a=fmtp`: payload type, parameters.
    pub fmtp: Vec<(u8, String)>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// Media-level direction attribute.
    pub direction: Option<Direction>,
}

impl Media {
    /// The first `a=rtpmap` of a payload type.
    fn rtpmap_of(&self, pt: u8) -> Option<(&str, u32)> {
        self.rtpmap
            .iter()
            .find(|(p, _, _)| *p == pt)
            .map(|(_, name, rate)| (name.as_str(), *rate))
    }

    /// Whether format `pt` is `name`/8000: by its rtpmap, else by its static
    /// payload type.
    fn is(&self, pt: u8, name: &str, static_pt: Option<u8>) -> bool {
        match self.rtpmap_of(pt) {
            Some((n, rate)) => n.eq_ignore_ascii_case(name) && rate == 8000,
            None => static_pt == Some(pt),
        }
    }
}

/// Reads an SDP body (CRLF or LF lines). Unknown lines and attributes are
/// ignored; attributes of non-RTP streams are not read.
pub fn parse(text: &str) -> Result<Sdp, SdpError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty());
    if lines.next().map(|(_, line)| line) != Some("v=0") {
        return Err(SdpError::MissingVersion);
    }
    let mut sdp = Sdp {
        origin_session_id: String::new(),
        origin_version: 0,
        connection: None,
        direction: Direction::SendRecv,
        media: Vec::new(),
    };
    for (number, line) in lines {
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        let bad = || SdpError::BadLine {
            line: number,
            reason: format!("bad {kind}= line {:?}", clip(value)),
        };
        match kind {
            "o" => {
                let mut fields = value.split_whitespace().skip(1);
                let (Some(id), Some(Ok(version))) = (fields.next(), fields.next().map(str::parse))
                else {
                    return Err(bad());
                };
                sdp.origin_session_id = id.to_owned();
                sdp.origin_version = version;
            }
            "c" => {
                let address = connection(value).ok_or_else(bad)?;
                match sdp.media.last_mut() {
                    Some(media) => media.connection = Some(address),
                    None => sdp.connection = Some(address),
                }
            }
            "m" => sdp.media.push(media(value).ok_or_else(bad)?),
            "a" => {
                let (name, value) = value.split_once(':').unwrap_or((value, ""));
                let Some(media) = sdp.media.last_mut() else {
                    if let Some(direction) = Direction::from_attribute(name) {
                        sdp.direction = direction;
                    }
                    continue;
                };
                if !media.proto.to_ascii_uppercase().contains("RTP") {
                    continue;
                }
                media_attribute(media, name, value).ok_or_else(bad)?;
            }
            _ => {}
        }
    }
    Ok(sdp)
}

/// `IN IP4 192.0.2.1`, `IN IP6 2001:db8::1`, with an optional `/ttl` suffix.
fn connection(value: &str) -> Option<IpAddr> {
    let mut fields = value.split_whitespace();
    let (Some("IN"), Some(family), Some(address), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return None;
    };
    let address = address.split('/').next()?;
    match family {
        "IP4" => address.parse().ok().map(IpAddr::V4),
        "IP6" => address.parse().ok().map(IpAddr::V6),
        _ => None,
    }
}

/// `audio 49170[/2] RTP/AVP 0 8 101`; non-numeric formats are left out.
fn media(value: &str) -> Option<Media> {
    let mut fields = value.split_whitespace();
    let kind = fields.next()?.to_owned();
    let port = fields.next()?.split('/').next()?.parse().ok()?;
    let proto = fields.next()?.to_owned();
    Some(Media {
        kind,
        port,
        proto,
        formats: fields.filter_map(|f| f.parse().ok()).collect(),
        connection: None,
        rtpmap: Vec::new(),
        fmtp: Vec::new(),
        ptime: None,
        direction: None,
    })
}

/// Reads one attribute of an RTP stream; `None` if it is malformed.
fn media_attribute(media: &mut Media, name: &str, value: &str) -> Option<()> {
    match name {
        "rtpmap" => {
            // <pt> <encoding>/<clock rate>[/<channels>]
            let (pt, encoding) = value.split_once(' ')?;
            let mut parts = encoding.trim().split('/');
            let encoding = parts.next().filter(|e| !e.is_empty())?.to_owned();
            let rate = parts.next()?.parse().ok()?;
            media.rtpmap.push((pt.parse().ok()?, encoding, rate));
        }
        "fmtp" => {
            let (pt, params) = value.split_once(' ').unwrap_or((value, ""));
            media
                .fmtp
                .push((pt.parse().ok()?, params.trim().to_owned()));
        }
        "ptime" => media.ptime = Some(value.trim().parse().ok()?),
        _ => {
            if let Some(direction) = Direction::from_attribute(name) {
                media.direction = Some(direction);
            }
        }
    }
    Some(())
}

/// At most 60 characters of outside text, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(60).collect()
}

/// What a call's audio uses, agreed from the peer's offer or answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP (`0.0.0.0` is kept: the peer puts us on hold).
    pub remote: SocketAddr,
    /// The codec both sides use.
    pub codec: Codec,
    /// The RFC 4733 telephone-event/8000 payload type, if the peer has one.
    pub telephone_event: Option<u8>,
    /// Packet length the peer asks for, in ms (its `a=ptime` between 10 and
    /// 200, else 20).
    pub ptime: u32,
    /// The peer's direction for the stream (media level, else session level).
    pub direction: Direction,
}

/// The first audio stream with a port and RTP/AVP or RTP/AVPF, with its index.
fn audio_stream(sdp: &Sdp) -> Result<(usize, &Media), SdpError> {
    let mut srtp = None;
    for (index, media) in sdp.media.iter().enumerate() {
        if !media.kind.eq_ignore_ascii_case("audio") || media.port == 0 {
            continue;
        }
        let proto = media.proto.to_ascii_uppercase();
        if proto == "RTP/AVP" || proto == "RTP/AVPF" {
            return Ok((index, media));
        }
        if proto.contains("SAVP") && srtp.is_none() {
            srtp = Some(media.proto.clone());
        }
    }
    Err(srtp.map_or(SdpError::NoAudio, SdpError::Srtp))
}

/// Chooses what the call uses from the peer's SDP (an offer or an answer):
/// the first RTP audio stream, the first codec of `preferences` it carries,
/// its telephone-event/8000 payload type, its address and direction.
pub fn negotiate(sdp: &Sdp, preferences: &[Codec]) -> Result<Negotiated, SdpError> {
    let (_, media) = audio_stream(sdp)?;
    let codec = preferences
        .iter()
        .copied()
        .find(|&c| {
            media
                .formats
                .iter()
                .any(|&pt| media.is(pt, c.name(), Some(c.payload_type())))
        })
        .ok_or_else(|| SdpError::NoCommonCodec {
            offered: offered(media),
        })?;
    let telephone_event = media
        .formats
        .iter()
        .copied()
        .find(|&pt| media.is(pt, "telephone-event", None))
        // We answer with the codec's static type; a clash leaves no DTMF type.
        .filter(|&pt| pt != codec.payload_type());
    let address = media
        .connection
        .or(sdp.connection)
        .ok_or(SdpError::NoConnection)?;
    Ok(Negotiated {
        remote: SocketAddr::new(address, media.port),
        codec,
        telephone_event,
        ptime: media.ptime.filter(|p| (10..=200).contains(p)).unwrap_or(20),
        direction: media.direction.unwrap_or(sdp.direction),
    })
}

/// `PCMU/8000, 101 ...`: the formats of a stream, for an error message.
fn offered(media: &Media) -> String {
    let names: Vec<String> = media
        .formats
        .iter()
        .map(|&pt| match media.rtpmap_of(pt) {
            Some((name, rate)) => format!("{name}/{rate}"),
            None => pt.to_string(),
        })
        .collect();
    clip(&names.join(", "))
}

/// `v=`, `o=`, `s=`, `c=` and `t=` of our descriptions.
fn session(local: SocketAddr, session_id: u64, version: u64) -> String {
    let ip = local.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    format!(
        "v=0\r\no=- {session_id} {version} IN {family} {ip}\r\ns=centralino\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    )
}

/// Appends the `a=rtpmap` and `a=fmtp` lines of a telephone-event type.
fn telephone_event_lines(out: &mut String, pt: u8) {
    let _ = write!(
        out,
        "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-16\r\n"
    );
}

/// Appends our accepted audio section for `neg`, with the peer's `proto`.
fn answer_media(out: &mut String, neg: &Negotiated, port: u16, proto: &str) {
    let pt = neg.codec.payload_type();
    let _ = write!(out, "m=audio {port} {proto} {pt}");
    if let Some(te) = neg.telephone_event {
        let _ = write!(out, " {te}");
    }
    let _ = write!(out, "\r\na=rtpmap:{pt} {}/8000\r\n", neg.codec.name());
    if let Some(te) = neg.telephone_event {
        telephone_event_lines(out, te);
    }
    let _ = write!(
        out,
        "a=ptime:20\r\na={}\r\n",
        neg.direction.reversed().attribute()
    );
}

/// Our answer (CRLF lines) accepting `neg`, receiving at `local`, with a
/// single audio section. When the offer has other sections, use
/// [`answer_to`], which rejects them as RFC 3264 requires.
pub fn answer(neg: &Negotiated, local: SocketAddr, session_id: u64, version: u64) -> String {
    let mut out = session(local, session_id, version);
    answer_media(&mut out, neg, local.port(), "RTP/AVP");
    out
}

/// Our answer to `offer` (from which `neg` was negotiated): one section per
/// offered section, in order, as RFC 3264 §6 requires; the audio stream
/// [`negotiate`] chose is accepted as in [`answer`] (echoing RTP/AVPF if
/// offered), every other is rejected with port 0.
pub fn answer_to(
    offer: &Sdp,
    neg: &Negotiated,
    local: SocketAddr,
    session_id: u64,
    version: u64,
) -> String {
    let chosen = audio_stream(offer).ok().map(|(index, _)| index);
    let mut out = session(local, session_id, version);
    for (index, media) in offer.media.iter().enumerate() {
        if Some(index) == chosen {
            answer_media(&mut out, neg, local.port(), &media.proto);
            continue;
        }
        let formats: Vec<String> = media.formats.iter().map(u8::to_string).collect();
        let formats = if formats.is_empty() {
            "0".to_owned()
        } else {
            formats.join(" ")
        };
        let _ = write!(out, "m={} 0 {} {formats}\r\n", media.kind, media.proto);
    }
    if chosen.is_none() {
        answer_media(&mut out, neg, local.port(), "RTP/AVP");
    }
    out
}

/// Our offer (CRLF lines), receiving at `local`: PCMU, PCMA and
/// telephone-event/8000 on payload type `telephone_event` (normally 101;
/// not 0 or 8), 20 ms packets, sendrecv.
pub fn offer(local: SocketAddr, session_id: u64, version: u64, telephone_event: u8) -> String {
    let mut out = session(local, session_id, version);
    let _ = write!(
        out,
        "m=audio {} RTP/AVP 0 8 {telephone_event}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n",
        local.port()
    );
    telephone_event_lines(&mut out, telephone_event);
    out.push_str("a=ptime:20\r\na=sendrecv\r\n");
    out
}

#[cfg(test)]
mod tests;
