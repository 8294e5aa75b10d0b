//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA) between 16-bit linear samples
//! and 8-bit codes, with the standard segment tables (as in the reference
//! `g711.c`).

/// Upper ends of the eight μ-law segments, on the 14-bit magnitude plus bias.
const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Upper ends of the eight A-law segments, on the 13-bit magnitude.
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
/// μ-law bias, on the 16-bit scale.
const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude μ-law codes.
const ULAW_CLIP: i32 = 8159;

fn segment(value: i32, ends: &[i32; 8]) -> Option<i32> {
    ends.iter().position(|&end| value <= end).map(|s| s as i32)
}

/// A 16-bit linear sample to its μ-law code.
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 2;
    let mask = if value < 0 {
        value = -value;
        0x7F
    } else {
        0xFF
    };
    let value = value.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let code = match segment(value, &ULAW_SEGMENT_END) {
        Some(seg) => (seg << 4) | ((value >> (seg + 1)) & 0x0F),
        None => 0x7F,
    };
    (code ^ mask) as u8
}

/// A μ-law code to its 16-bit linear sample.
pub fn ulaw_decode(code: u8) -> i16 {
    let code = i32::from(!code);
    let magnitude = ((((code & 0x0F) << 3) + ULAW_BIAS) << ((code & 0x70) >> 4)) - ULAW_BIAS;
    (if code & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }) as i16
}

/// A 16-bit linear sample to its A-law code.
pub fn alaw_encode(sample: i16) -> u8 {
    let value = i32::from(sample) >> 3;
    let (value, mask) = if value >= 0 {
        (value, 0xD5)
    } else {
        (-value - 1, 0x55)
    };
    let code = match segment(value, &ALAW_SEGMENT_END) {
        Some(seg) => (seg << 4) | ((value >> seg.max(1)) & 0x0F),
        None => 0x7F,
    };
    (code ^ mask) as u8
}

/// An A-law code to its 16-bit linear sample.
pub fn alaw_decode(code: u8) -> i16 {
    let code = i32::from(code ^ 0x55);
    let quant = (code & 0x0F) << 4;
    let magnitude = match (code & 0x70) >> 4 {
        0 => quant + 8,
        seg => (quant + 0x108) << (seg - 1),
    };
    (if code & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }) as i16
}

/// The G.711 law a call's audio uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// μ-law, static RTP payload type 0.
    Pcmu,
    /// A-law, static RTP payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551): 0 or 8.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The encoding name in SDP `a=rtpmap`: `PCMU` or `PCMA`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Encodes `samples`, appending one byte per sample to `out`.
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        let encode = match self {
            Codec::Pcmu => ulaw_encode,
            Codec::Pcma => alaw_encode,
        };
        out.extend(samples.iter().map(|&s| encode(s)));
    }

    /// Decodes `bytes`, appending one sample per byte to `out`.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        let decode = match self {
            Codec::Pcmu => ulaw_decode,
            Codec::Pcma => alaw_decode,
        };
        out.extend(bytes.iter().map(|&b| decode(b)));
    }

    /// The code of a zero sample, to fill silence.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(0),
            Codec::Pcma => alaw_encode(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        // (sample, μ-law, A-law), checked against Python's audioop.
        let table: [(i16, u8, u8); 12] = [
            (1, 0xFF, 0xD5),
            (-1, 0x7E, 0x55),
            (8, 0xFE, 0xD5),
            (-8, 0x7E, 0x55),
            (100, 0xF2, 0xD3),
            (-100, 0x72, 0x53),
            (1000, 0xCE, 0xFA),
            (-1000, 0x4E, 0x7A),
            (5000, 0xAB, 0x86),
            (-5000, 0x2B, 0x06),
            (12345, 0x97, 0xBD),
            (-12345, 0x17, 0x3D),
        ];
        for (x, u, a) in table {
            assert_eq!((ulaw_encode(x), alaw_encode(x)), (u, a), "sample {x}");
        }

        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        // (code, μ-law, A-law), checked against Python's audioop.
        let table: [(u8, i16, i16); 6] = [
            (0x00, -32124, -5504),
            (0x0F, -16764, -6784),
            (0x55, -716, -8),
            (0x7E, -8, -880),
            (0xA5, 6652, 16896),
            (0xD4, 748, 24),
        ];
        for (code, u, a) in table {
            assert_eq!(
                (ulaw_decode(code), alaw_decode(code)),
                (u, a),
                "code {code:#04x}"
            );
        }
    }

    /// Every code decodes to a value that encodes back to the same code (but
    /// the two μ-law zeros, which both encode as 0xFF).
    #[test]
    fn decode_then_encode_is_identity() {
        for code in 0..=u8::MAX {
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(
                ulaw_encode(ulaw_decode(code)),
                expected,
                "μ-law {code:#04x}"
            );
        }
    }

    /// Quantisation step (16-bit scale) of a code's segment.
    fn step(segment: u8, first: i32) -> i32 {
        if segment == 0 {
            first
        } else {
            first << segment
        }
    }

    #[test]
    fn round_trip_stays_within_half_a_step() {
        for x in i16::MIN..=i16::MAX {
            let x32 = i32::from(x);
            // μ-law: 8 << segment; a 14-bit input loses 2 bits before rounding,
            // and codes clip at ±32124.
            let u = ulaw_encode(x);
            let half = step((!u >> 4) & 7, 8) / 2 + 4;
            let err = (i32::from(ulaw_decode(u)) - x32.clamp(-32124, 32124)).abs();
            assert!(err <= half, "μ-law {x}: error {err} > {half}");
            // A-law: 16 in segments 0 and 1, then doubling.
            let a = alaw_encode(x);
            let seg = ((a ^ 0x55) >> 4) & 7;
            let half = step(seg.saturating_sub(1), 16) / 2;
            let err = (i32::from(alaw_decode(a)) - x32.clamp(-32256, 32256)).abs();
            assert!(err <= half, "A-law {x}: error {err} > {half}");
        }
    }

    #[test]
    fn codec_encodes_decodes_and_names() {
        assert_eq!(
            (Codec::Pcmu.payload_type(), Codec::Pcma.payload_type()),
            (0, 8)
        );
        assert_eq!((Codec::Pcmu.name(), Codec::Pcma.name()), ("PCMU", "PCMA"));
        assert_eq!((Codec::Pcmu.silence(), Codec::Pcma.silence()), (0xFF, 0xD5));
        let mut bytes = vec![0x42];
        Codec::Pcma.encode(&[0, 1000, -1000], &mut bytes);
        assert_eq!(bytes, [0x42, 0xD5, 0xFA, 0x7A]);
        let mut samples = vec![7];
        Codec::Pcmu.decode(&[0xFF, 0x80], &mut samples);
        assert_eq!(samples, [7, 0, 32124]);
    }
}
