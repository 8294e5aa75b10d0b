//! DTMF: RFC 4733 telephone events carried in RTP, the detector that turns
//! their retransmitted packets into one digit per key press, and SIP INFO
//! bodies (`application/dtmf-relay`, `application/dtmf`).

/// Why a DTMF payload or SIP INFO body gives no digit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    /// A telephone-event payload shorter than 4 bytes.
    #[error("telephone-event payload of {0} bytes, need 4")]
    TooShort(usize),
    /// A SIP INFO content type that carries no DTMF.
    #[error("unsupported DTMF content type {0:?}")]
    UnsupportedContentType(String),
    /// An `application/dtmf-relay` body without a `Signal=` line.
    #[error("dtmf-relay body has no Signal")]
    NoSignal,
    /// A signal that is not a DTMF key.
    #[error("bad DTMF signal {0:?}")]
    BadSignal(String),
}

/// One RFC 4733 telephone-event payload (§2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–15 are the DTMF keys (see [`digit_of`]).
    pub event: u8,
    /// The E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0 (0–63).
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Reads the first 4 bytes of an RTP payload (any further bytes, such as
    /// redundant events, are ignored).
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, DtmfError> {
        let [event, flags, d0, d1, ..] = *payload else {
            return Err(DtmfError::TooShort(payload.len()));
        };
        Ok(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// Appends the 4-byte payload to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.event);
        out.push(u8::from(self.end) << 7 | (self.volume & 0x3F));
        out.extend_from_slice(&self.duration.to_be_bytes());
    }
}

/// The key of a DTMF event code: 0–9, `*` (10), `#` (11), `A`–`D` (12–15).
pub fn digit_of(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a DTMF key (`a`–`d` as `A`–`D`).
pub fn event_of(digit: char) -> Option<u8> {
    (0..=15).find(|&e| digit_of(e) == Some(digit.to_ascii_uppercase()))
}

/// How many recent events [`EventDetector`] remembers.
const REMEMBERED: usize = 8;

/// Turns a stream of RFC 4733 packets into one digit per key press.
///
/// All packets of one event carry the event's start timestamp (RFC 4733
/// §2.5.1), so an event is its (timestamp, event code): the detector reports
/// a digit on the first packet of a new one and ignores the continuation and
/// retransmitted end packets, even late ones of one of the last few events.
/// Some senders (sipp without an audio stream) give every event the same
/// timestamp: a press of the same key after the previous one ended is then
/// told apart by its duration starting again from a smaller value.
#[derive(Clone, Debug, Default)]
pub struct EventDetector {
    recent: [Option<(u32, u8)>; REMEMBERED],
    next: usize,
    current: Option<Current>,
}

#[derive(Clone, Copy, Debug)]
struct Current {
    timestamp: u32,
    event: u8,
    ended: bool,
    longest: u16,
}

impl EventDetector {
    /// The digit this packet starts, if it is the first seen of a DTMF event.
    pub fn on_packet(&mut self, rtp_timestamp: u32, ev: &TelephoneEvent) -> Option<char> {
        let digit = digit_of(ev.event)?;
        if let Some(c) = &mut self.current
            && c.timestamp == rtp_timestamp
            && c.event == ev.event
        {
            if c.ended && !ev.end && ev.duration < c.longest {
                // The same key again, with the same timestamp.
                c.ended = false;
                c.longest = ev.duration;
                return Some(digit);
            }
            c.ended |= ev.end;
            c.longest = c.longest.max(ev.duration);
            return None;
        }
        if self.recent.contains(&Some((rtp_timestamp, ev.event))) {
            return None;
        }
        if let Some(c) = self.current.take() {
            self.recent[self.next] = Some((c.timestamp, c.event));
            self.next = (self.next + 1) % REMEMBERED;
        }
        self.current = Some(Current {
            timestamp: rtp_timestamp,
            event: ev.event,
            ended: ev.end,
            longest: ev.duration,
        });
        Some(digit)
    }
}

/// The digit of a SIP INFO request body: `application/dtmf-relay` (a
/// `Signal=` line) or `application/dtmf` (the key alone). Content type
/// parameters and case are ignored; a signal is a key (`0`–`9`, `*`, `#`,
/// `A`–`D`) or its event code (`10` for `*`, `11` for `#`, ...).
pub fn parse_info(content_type: &str, body: &str) -> Result<char, DtmfError> {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        let signal = body
            .lines()
            .filter_map(|line| line.split_once('='))
            .find(|(key, _)| key.trim().eq_ignore_ascii_case("signal"))
            .ok_or(DtmfError::NoSignal)?
            .1;
        parse_signal(signal)
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        parse_signal(body)
    } else {
        Err(DtmfError::UnsupportedContentType(clip(media_type)))
    }
}

fn parse_signal(signal: &str) -> Result<char, DtmfError> {
    let signal = signal.trim();
    let mut chars = signal.chars();
    let digit = match (chars.next(), chars.next()) {
        (Some(c), None) => event_of(c).and_then(digit_of),
        _ => signal.parse().ok().and_then(digit_of),
    };
    digit.ok_or_else(|| DtmfError::BadSignal(clip(signal)))
}

/// At most 32 characters of outside text, for an error message.
fn clip(text: &str) -> String {
    text.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn digits_and_events() {
        let keys = "0123456789*#ABCD";
        for (event, key) in (0u8..).zip(keys.chars()) {
            assert_eq!(digit_of(event), Some(key));
            assert_eq!(event_of(key), Some(event));
        }
        assert_eq!(event_of('c'), Some(14));
        for event in [16, 32, 255] {
            assert_eq!(digit_of(event), None);
        }
        for key in ['E', 'e', ' ', 'x'] {
            assert_eq!(event_of(key), None);
        }
    }

    #[test]
    fn payload_parse_and_write() {
        let ev = TelephoneEvent::parse(&[11, 0x8A, 0x03, 0x20, 0xFF]).expect("4 bytes");
        assert_eq!(
            ev,
            TelephoneEvent {
                event: 11,
                end: true,
                volume: 10,
                duration: 800
            }
        );
        let mut out = vec![];
        ev.write(&mut out);
        assert_eq!(out, [11, 0x8A, 0x03, 0x20]);
        // The reserved bit is ignored.
        let ev = TelephoneEvent::parse(&[5, 0x4A, 0, 160]).expect("4 bytes");
        assert_eq!((ev.end, ev.volume), (false, 10));
        assert_eq!(
            TelephoneEvent::parse(&[5, 0, 0]),
            Err(DtmfError::TooShort(3))
        );
    }

    /// The packets a phone sends for one key press: three start packets
    /// (marker on the first), growing durations, three end packets.
    fn key_press(event: u8) -> Vec<(bool, TelephoneEvent)> {
        let ev = |end, duration| TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        };
        let mut packets = vec![
            (true, ev(false, 0)),
            (false, ev(false, 0)),
            (false, ev(false, 0)),
        ];
        packets.extend((1..=5).map(|i| (false, ev(false, i * 160))));
        packets.extend([(false, ev(true, 960)); 3]);
        packets
    }

    fn run(
        detector: &mut EventDetector,
        timestamp: u32,
        packets: &[(bool, TelephoneEvent)],
    ) -> String {
        packets
            .iter()
            .filter_map(|(_, ev)| detector.on_packet(timestamp, ev))
            .collect()
    }

    #[test]
    fn one_digit_per_key_press() {
        let mut d = EventDetector::default();
        let five = key_press(5);
        assert_eq!(run(&mut d, 1000, &five), "5");
        // The same key again: a new event, a new timestamp.
        assert_eq!(run(&mut d, 3000, &five), "5");
        // A late retransmission of the first event's end.
        assert_eq!(d.on_packet(1000, &five[10].1), None);
        // Only the end packets arrived (start lost): still one digit.
        assert_eq!(run(&mut d, 5000, &five[8..]), "5");
        // Flash (16) and other non-DTMF events give nothing.
        assert_eq!(run(&mut d, 7000, &key_press(16)), "");
        // A key sequence across timestamp wrap-around.
        let keys: String = [(1, u32::MAX - 500), (2, 300), (11, 1300)]
            .iter()
            .map(|&(event, ts)| run(&mut d, ts, &key_press(event)))
            .collect();
        assert_eq!(keys, "12#");
    }

    #[test]
    fn senders_that_keep_one_timestamp_still_give_every_key() {
        // sipp's play_dtmf without an audio stream: every event at the same timestamp.
        let mut d = EventDetector::default();
        let keys: String = [7, 2, 1, 1]
            .iter()
            .map(|&event| run(&mut d, 5000, &key_press(event)))
            .collect();
        assert_eq!(keys, "7211");
    }

    #[test]
    fn detector_forgets_only_after_many_events() {
        let mut d = EventDetector::default();
        let press = key_press(7);
        for i in 0..REMEMBERED as u32 {
            assert_eq!(run(&mut d, i * 1000, &press), "7");
        }
        // The oldest event is still remembered as the newest fills the memory.
        assert_eq!(d.on_packet(0, &press[9].1), None);
        assert_eq!(run(&mut d, 99_000, &press), "7");
        assert_eq!(
            d.on_packet(0, &press[9].1),
            None,
            "the current one counts too"
        );
        assert_eq!(run(&mut d, 100_000, &press), "7");
        // Now the first has been forgotten.
        assert_eq!(d.on_packet(0, &press[9].1), Some('7'));
    }

    #[test]
    fn sip_info_bodies() {
        let relay = "application/dtmf-relay";
        // sipp
        assert_eq!(parse_info(relay, "Signal=1\r\nDuration=250\r\n"), Ok('1'));
        // pjsip, baresip, linphone variants
        assert_eq!(parse_info(relay, "Signal=5\r\nDuration=160\r\n"), Ok('5'));
        assert_eq!(
            parse_info("Application/DTMF-Relay", "signal= #\nduration = 100\n"),
            Ok('#')
        );
        assert_eq!(parse_info(relay, "Duration=160\r\nSignal = *\r\n"), Ok('*'));
        assert_eq!(parse_info(relay, "Signal=11\r\nDuration=160\r\n"), Ok('#'));
        assert_eq!(parse_info(relay, "Signal=10\r\n"), Ok('*'));
        assert_eq!(parse_info(relay, "Signal=d\r\n"), Ok('D'));
        assert_eq!(
            parse_info("application/dtmf-relay; charset=utf-8", "Signal=9"),
            Ok('9')
        );
        assert_eq!(parse_info("application/dtmf", "#"), Ok('#'));
        assert_eq!(parse_info("application/DTMF ;x=y", "11\r\n"), Ok('#'));
        assert_eq!(parse_info("application/dtmf", " 0 "), Ok('0'));

        assert_eq!(
            parse_info("text/plain", "Signal=1")
                .unwrap_err()
                .to_string(),
            "unsupported DTMF content type \"text/plain\""
        );
        assert_eq!(
            parse_info(relay, "Duration=160\r\n"),
            Err(DtmfError::NoSignal)
        );
        assert_eq!(parse_info(relay, ""), Err(DtmfError::NoSignal));
        assert_eq!(
            parse_info(relay, "Signal=16\r\n").unwrap_err().to_string(),
            "bad DTMF signal \"16\""
        );
        assert_eq!(
            parse_info(relay, "Signal=\r\n"),
            Err(DtmfError::BadSignal(String::new()))
        );
        assert_eq!(parse_info("application/dtmf", "12"), Ok('A'));
        assert_eq!(
            parse_info("application/dtmf", "E"),
            Err(DtmfError::BadSignal("E".into()))
        );
        assert_eq!(
            parse_info("application/dtmf", "1 2"),
            Err(DtmfError::BadSignal("1 2".into()))
        );
    }

    proptest! {
        #[test]
        fn telephone_event_parse_never_panics(
            packets in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..20)
        ) {
            let mut d = EventDetector::default();
            for (ts, payload) in packets {
                if let Ok(ev) = TelephoneEvent::parse(&payload) {
                    let mut out = Vec::new();
                    ev.write(&mut out);
                    prop_assert_eq!(TelephoneEvent::parse(&out), Ok(ev));
                    if let Some(digit) = d.on_packet(ts, &ev) {
                        prop_assert_eq!(d.on_packet(ts, &ev), None);
                        prop_assert_eq!(Some(digit), digit_of(ev.event));
                    }
                }
            }
        }

        #[test]
        fn parse_info_never_panics(content_type in "\\PC{0,40}", body in "\\PC{0,80}") {
            let _ = parse_info(&content_type, &body);
            let _ = parse_info("application/dtmf-relay", &body);
            let _ = parse_info("application/dtmf", &body);
        }
    }
}
