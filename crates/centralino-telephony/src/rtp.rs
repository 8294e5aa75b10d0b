//! RTP packets (RFC 3550): the fixed header, parsed and written, and a
//! [`Sender`] that numbers outgoing packets.

/// The fixed RTP header fields a voice call uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The marker bit: first packet of a talk spurt or of a telephone event.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Sequence number, +1 per packet, wrapping.
    pub sequence: u16,
    /// Sampling instant of the first sample (8000 per second for G.711).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
}

/// Why bytes are not an RTP packet we can use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than its headers say.
    #[error("rtp packet of {len} bytes is shorter than its {part} ({need} bytes)")]
    Truncated {
        /// The packet length.
        len: usize,
        /// What did not fit: `fixed header`, `CSRC list`, `header extension`.
        part: &'static str,
        /// Bytes needed up to the end of that part.
        need: usize,
    },
    /// The version bits are not 2.
    #[error("rtp version {0}, expected 2")]
    Version(u8),
    /// The padding count is 0 or larger than the payload.
    #[error("rtp padding of {padding} bytes with only {available} bytes after the header")]
    Padding {
        /// The padding count (the last byte).
        padding: u8,
        /// Bytes after the headers.
        available: usize,
    },
    /// An RTCP packet (packet type 200–204) multiplexed on the RTP port.
    #[error("rtcp packet on the rtp port")]
    Rtcp,
}

/// The header and payload of an RTP packet: version 2, CSRCs and header
/// extension skipped, padding removed.
pub fn parse(packet: &[u8]) -> Result<(Header, &[u8]), RtpError> {
    let len = packet.len();
    let truncated = |part, need| RtpError::Truncated { len, part, need };
    let [b0, b1, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3, ..] = *packet else {
        return Err(truncated("fixed header", 12));
    };
    if b0 >> 6 != 2 {
        return Err(RtpError::Version(b0 >> 6));
    }
    let header = Header {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7F,
        sequence: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
    };
    // RTCP sender/receiver reports, SDES, BYE and APP (200–204) read as
    // marker + payload type 72–76 (RFC 5761 §4).
    if header.marker && (72..=76).contains(&header.payload_type) {
        return Err(RtpError::Rtcp);
    }
    let mut start = 12 + 4 * usize::from(b0 & 0x0F);
    if len < start {
        return Err(truncated("CSRC list", start));
    }
    if b0 & 0x10 != 0 {
        let Some(&[_, _, w0, w1]) = packet.get(start..start + 4) else {
            return Err(truncated("header extension", start + 4));
        };
        start += 4 + 4 * usize::from(u16::from_be_bytes([w0, w1]));
        if len < start {
            return Err(truncated("header extension", start));
        }
    }
    let mut end = len;
    if b0 & 0x20 != 0 {
        let padding = packet[len - 1];
        let available = len - start;
        if padding == 0 || usize::from(padding) > available {
            return Err(RtpError::Padding { padding, available });
        }
        end -= usize::from(padding);
    }
    Ok((header, &packet[start..end]))
}

/// Appends a 12-byte header (version 2, no padding, extension or CSRC) and
/// `payload` to `out`.
pub fn write(h: &Header, payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(12 + payload.len());
    out.push(0x80);
    out.push(u8::from(h.marker) << 7 | (h.payload_type & 0x7F));
    out.extend_from_slice(&h.sequence.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&h.ssrc.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Numbers one outgoing stream: sequence +1 per packet, timestamp + samples
/// per audio packet, both wrapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
}

impl Sender {
    /// A stream starting at these (normally random) values.
    pub fn new(ssrc: u32, first_sequence: u16, first_timestamp: u32) -> Self {
        Self {
            ssrc,
            sequence: first_sequence,
            timestamp: first_timestamp,
        }
    }

    /// The header for the next audio packet, carrying `samples` samples;
    /// then the sequence advances by 1 and the timestamp by `samples`.
    pub fn packet(&mut self, payload_type: u8, marker: bool, samples: u32) -> Header {
        let h = self.header(payload_type, marker, self.timestamp);
        self.timestamp = self.timestamp.wrapping_add(samples);
        h
    }

    /// Advances the timestamp by `samples` not sent (silence suppressed, or
    /// the time a telephone event took).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    /// The header for the next RFC 4733 packet of an event that started at
    /// `event_timestamp`: the sequence advances, the timestamp does not (call
    /// [`Sender::skip`] for the event's duration once it ends).
    pub fn event_header(&mut self, payload_type: u8, marker: bool, event_timestamp: u32) -> Header {
        self.header(payload_type, marker, event_timestamp)
    }

    /// The timestamp the next audio packet will carry (an event starting now
    /// uses it as its `event_timestamp`).
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// The sequence number the next packet will carry.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    fn header(&mut self, payload_type: u8, marker: bool, timestamp: u32) -> Header {
        let h = Header {
            marker,
            payload_type,
            sequence: self.sequence,
            timestamp,
            ssrc: self.ssrc,
        };
        self.sequence = self.sequence.wrapping_add(1);
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: Header = Header {
        marker: true,
        payload_type: 8,
        sequence: 0xBEEF,
        timestamp: 0xDEAD_BEEF,
        ssrc: 0x1234_5678,
    };

    #[test]
    fn write_then_parse() {
        let mut out = vec![0xAA];
        write(&H, b"hello", &mut out);
        assert_eq!(
            &out[1..13],
            [
                0x80, 0x88, 0xBE, 0xEF, 0xDE, 0xAD, 0xBE, 0xEF, 0x12, 0x34, 0x56, 0x78
            ]
        );
        assert_eq!(parse(&out[1..]), Ok((H, &b"hello"[..])));
        let mut out = Vec::new();
        write(&Header { marker: false, ..H }, b"", &mut out);
        assert_eq!(parse(&out), Ok((Header { marker: false, ..H }, &b""[..])));
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        // V=2, P=1, X=1, CC=2; PT 0, no marker.
        let mut p = vec![0xB2, 0x00, 0x00, 0x07, 0, 0, 0, 160, 0, 0, 0, 9];
        p.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]); // CSRCs
        p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x02]); // extension, 2 words
        p.extend_from_slice(&[3; 8]);
        p.extend_from_slice(b"audio");
        p.extend_from_slice(&[0, 0, 3]); // 3 bytes of padding
        let (h, payload) = parse(&p).expect("valid packet");
        assert_eq!(
            h,
            Header {
                marker: false,
                payload_type: 0,
                sequence: 7,
                timestamp: 160,
                ssrc: 9
            }
        );
        assert_eq!(payload, b"audio");

        // The same, cut short at each part.
        let err = |p: &[u8]| parse(p).unwrap_err();
        assert_eq!(
            err(&p[..11]),
            RtpError::Truncated {
                len: 11,
                part: "fixed header",
                need: 12
            }
        );
        assert_eq!(
            err(&p[..19]),
            RtpError::Truncated {
                len: 19,
                part: "CSRC list",
                need: 20
            }
        );
        assert_eq!(
            err(&p[..22]),
            RtpError::Truncated {
                len: 22,
                part: "header extension",
                need: 24
            }
        );
        assert_eq!(
            err(&p[..31]),
            RtpError::Truncated {
                len: 31,
                part: "header extension",
                need: 32
            }
        );
        assert_eq!(
            err(&p[..32]).to_string(),
            "rtp padding of 3 bytes with only 0 bytes after the header"
        );
        let mut zero_pad = p.clone();
        *zero_pad.last_mut().expect("not empty") = 0;
        assert_eq!(
            err(&zero_pad),
            RtpError::Padding {
                padding: 0,
                available: 8
            }
        );
    }

    #[test]
    fn refuses_other_versions_and_rtcp() {
        let mut p = Vec::new();
        write(&H, b"x", &mut p);
        p[0] = 0x40;
        assert_eq!(parse(&p), Err(RtpError::Version(1)));
        // An RTCP receiver report: V=2, RC=0, PT=201.
        let rr = [0x80, 201, 0x00, 0x01, 0, 0, 0, 1];
        assert_eq!(parse(&[&rr[..], &[0; 4]].concat()), Err(RtpError::Rtcp));
        for pt in [200u8, 204] {
            assert_eq!(
                parse(&[0x81, pt, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]),
                Err(RtpError::Rtcp)
            );
        }
        // Payload type 72 without the marker is (odd but) RTP.
        assert!(parse(&[0x80, 72, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0]).is_ok());
    }

    #[test]
    fn sender_numbers_packets_and_wraps() {
        let mut s = Sender::new(42, u16::MAX - 1, u32::MAX - 159);
        let a = s.packet(0, true, 160);
        assert_eq!(
            (a.sequence, a.timestamp, a.marker, a.ssrc),
            (u16::MAX - 1, u32::MAX - 159, true, 42)
        );
        let b = s.packet(0, false, 160);
        assert_eq!((b.sequence, b.timestamp), (u16::MAX, 0));
        s.skip(320);
        let c = s.packet(0, false, 160);
        assert_eq!((c.sequence, c.timestamp), (0, 480));
        assert_eq!((s.sequence(), s.timestamp()), (1, 640));

        // An event: every packet keeps the start timestamp, sequence advances.
        let start = s.timestamp();
        let e1 = s.event_header(101, true, start);
        let e2 = s.event_header(101, false, start);
        assert_eq!((e1.sequence, e1.timestamp, e1.payload_type), (1, 640, 101));
        assert_eq!((e2.sequence, e2.timestamp, e2.marker), (2, 640, false));
        s.skip(800);
        let d = s.packet(0, true, 160);
        assert_eq!((d.sequence, d.timestamp), (3, 1440));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok((_, payload)) = parse(&bytes) {
                prop_assert!(payload.len() + 12 <= bytes.len());
            }
            // With version 2 and no marker, to get past the first checks.
            let mut p = bytes;
            if let Some(b) = p.get_mut(0) {
                *b = 0x80 | (*b & 0x3F);
            }
            let _ = parse(&p);
        }
    }
}
