//! WAV prompt files: RIFF/WAVE with 16-bit PCM, A-law or μ-law samples at
//! 8000 Hz mono, to linear samples; and 16-bit PCM WAV writing.

use crate::g711;

/// `WAVE_FORMAT_PCM`.
const PCM: u16 = 1;
/// `WAVE_FORMAT_ALAW`.
const ALAW: u16 = 6;
/// `WAVE_FORMAT_MULAW`.
const MULAW: u16 = 7;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is the sub-format GUID's first two bytes.
const EXTENSIBLE: u16 = 0xFFFE;
/// The sub-format GUID after its first two bytes (`xxxx0000-0000-0010-8000-00aa00389b71`).
const GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Why a WAV file cannot be played as a prompt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The file does not start with `RIFF....WAVE`.
    #[error("not a WAV file (no RIFF/WAVE header)")]
    NotWav,
    /// A chunk's declared size runs past the end of the file.
    #[error(
        "truncated WAV file: chunk {id:?} at byte {offset} declares {size} bytes, {available} remain"
    )]
    Truncated {
        /// The chunk id, such as `data`.
        id: String,
        /// Where the chunk header starts.
        offset: usize,
        /// The declared size.
        size: u32,
        /// The bytes left after the chunk header.
        available: usize,
    },
    /// A required chunk (`fmt ` or `data`) is absent.
    #[error("WAV file has no {0:?} chunk")]
    MissingChunk(&'static str),
    /// The `fmt ` chunk is too short for what it declares.
    #[error("WAV fmt chunk too short ({0} bytes)")]
    BadFmt(usize),
    /// A sample format other than 16-bit PCM, 8-bit A-law or 8-bit μ-law.
    #[error(
        "unsupported WAV format {format:#06x} with {bits} bits per sample; prompts must be 16-bit PCM, A-law or μ-law"
    )]
    UnsupportedFormat {
        /// The format tag (the sub-format for `WAVE_FORMAT_EXTENSIBLE`).
        format: u16,
        /// Bits per sample.
        bits: u16,
    },
    /// Not 8000 Hz mono.
    #[error("prompts must be 8000 Hz mono, found {rate} Hz {channels} channel{}", if *.channels == 1 { "" } else { "s" })]
    NotNarrowbandMono {
        /// Sample rate found.
        rate: u32,
        /// Channel count found.
        channels: u16,
    },
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The samples of a prompt file: 8000 Hz mono, 16-bit PCM (format 1), A-law
/// (6), μ-law (7), or `WAVE_FORMAT_EXTENSIBLE` with one of those sub-formats.
/// Unknown chunks (`LIST`, `fact`, ...) are skipped.
pub fn parse(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWav);
    }
    let mut fmt = None;
    let mut data = None;
    let mut at = 12;
    while fmt.is_none() || data.is_none() {
        let (Some(id), Some(size)) = (bytes.get(at..at + 4), u32_at(bytes, at + 4)) else {
            break;
        };
        let body = at + 8;
        let available = bytes.len() - body;
        let Some(chunk) = bytes.get(body..).and_then(|rest| rest.get(..size as usize)) else {
            return Err(WavError::Truncated {
                id: String::from_utf8_lossy(id).into_owned(),
                offset: at,
                size,
                available,
            });
        };
        match id {
            b"fmt " => fmt = Some(chunk),
            b"data" => data = Some(chunk),
            _ => {}
        }
        // Chunks are word aligned: an odd size is followed by a pad byte.
        at = body + size as usize + (size as usize & 1);
    }
    let fmt = fmt.ok_or(WavError::MissingChunk("fmt "))?;
    let data = data.ok_or(WavError::MissingChunk("data"))?;

    let field = |at| u16_at(fmt, at).ok_or(WavError::BadFmt(fmt.len()));
    let mut format = field(0)?;
    let channels = field(2)?;
    let rate = u32_at(fmt, 4).ok_or(WavError::BadFmt(fmt.len()))?;
    let bits = field(14)?;
    if format == EXTENSIBLE {
        let guid = fmt.get(24..40).ok_or(WavError::BadFmt(fmt.len()))?;
        format = match u16_at(guid, 0) {
            Some(sub) if guid[2..] == GUID_TAIL => sub,
            _ => EXTENSIBLE,
        };
    }
    let decode: fn(&[u8]) -> Vec<i16> = match (format, bits) {
        (PCM, 16) => |d| {
            d.chunks_exact(2)
                .map(|s| i16::from_le_bytes([s[0], s[1]]))
                .collect()
        },
        (ALAW, 8) => |d| d.iter().map(|&b| g711::alaw_decode(b)).collect(),
        (MULAW, 8) => |d| d.iter().map(|&b| g711::ulaw_decode(b)).collect(),
        _ => return Err(WavError::UnsupportedFormat { format, bits }),
    };
    if rate != 8000 || channels != 1 {
        return Err(WavError::NotNarrowbandMono { rate, channels });
    }
    Ok(decode(data))
}

/// A mono 16-bit PCM WAV file of `samples` at `rate` Hz.
pub fn write_pcm16(samples: &[i16], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&PCM.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // channels
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A WAV file of the given chunks (id, body), pad bytes added.
    fn riff(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
        let mut body = b"WAVE".to_vec();
        for (id, data) in chunks {
            body.extend_from_slice(*id);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend(body);
        out
    }

    fn fmt(format: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let block = channels * bits / 8;
        let mut f = Vec::new();
        f.extend_from_slice(&format.to_le_bytes());
        f.extend_from_slice(&channels.to_le_bytes());
        f.extend_from_slice(&rate.to_le_bytes());
        f.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        f.extend_from_slice(&block.to_le_bytes());
        f.extend_from_slice(&bits.to_le_bytes());
        f
    }

    #[test]
    fn reads_back_what_write_pcm16_wrote() {
        let samples = [0, 1, -1, 1000, i16::MIN, i16::MAX];
        let file = write_pcm16(&samples, 8000);
        assert_eq!(file.len(), 44 + 12);
        assert_eq!(parse(&file), Ok(samples.to_vec()));
    }

    #[test]
    fn reads_ulaw_and_alaw_with_a_list_chunk_and_odd_padding() {
        let codes = vec![0xFF, 0x80, 0x00];
        let list = b"INFOISFT\x03\x00\x00\x00sox".to_vec(); // odd size: padded
        for (format, decode) in [
            (MULAW, g711::ulaw_decode as fn(u8) -> i16),
            (ALAW, g711::alaw_decode),
        ] {
            let file = riff(&[
                (b"LIST", list.clone()),
                (b"fmt ", fmt(format, 1, 8000, 8)),
                (b"fact", 3u32.to_le_bytes().to_vec()),
                (b"data", codes.clone()),
            ]);
            let expected: Vec<i16> = codes.iter().map(|&c| decode(c)).collect();
            assert_eq!(parse(&file), Ok(expected), "format {format}");
        }
    }

    #[test]
    fn reads_extensible_pcm() {
        let mut f = fmt(EXTENSIBLE, 1, 8000, 16);
        f.extend_from_slice(&22u16.to_le_bytes()); // cbSize
        f.extend_from_slice(&16u16.to_le_bytes()); // valid bits
        f.extend_from_slice(&4u32.to_le_bytes()); // channel mask
        f.extend_from_slice(&PCM.to_le_bytes());
        f.extend_from_slice(&GUID_TAIL);
        let file = riff(&[(b"fmt ", f.clone()), (b"data", vec![0x10, 0x27])]);
        assert_eq!(parse(&file), Ok(vec![10000]));

        f[24] = 3; // IEEE float
        let file = riff(&[(b"fmt ", f), (b"data", vec![0; 4])]);
        assert_eq!(
            parse(&file),
            Err(WavError::UnsupportedFormat {
                format: 3,
                bits: 16
            })
        );
    }

    #[test]
    fn refuses_other_rates_channels_and_formats() {
        let err = parse(&riff(&[
            (b"fmt ", fmt(PCM, 2, 44100, 16)),
            (b"data", vec![0; 8]),
        ]))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "prompts must be 8000 Hz mono, found 44100 Hz 2 channels"
        );
        let err = parse(&write_pcm16(&[0], 16000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "prompts must be 8000 Hz mono, found 16000 Hz 1 channel"
        );
        assert_eq!(
            parse(&riff(&[
                (b"fmt ", fmt(PCM, 1, 8000, 8)),
                (b"data", vec![0])
            ])),
            Err(WavError::UnsupportedFormat {
                format: PCM,
                bits: 8
            })
        );
    }

    #[test]
    fn refuses_broken_files() {
        assert_eq!(parse(b""), Err(WavError::NotWav));
        assert_eq!(parse(b"RIFX\0\0\0\0WAVEfmt "), Err(WavError::NotWav));
        assert_eq!(parse(&b"ID3\x04".repeat(20)), Err(WavError::NotWav));

        let file = write_pcm16(&[1, 2, 3, 4], 8000);
        let err = parse(&file[..file.len() - 1]).unwrap_err();
        assert_eq!(
            err,
            WavError::Truncated {
                id: "data".into(),
                offset: 36,
                size: 8,
                available: 7
            }
        );
        assert!(
            err.to_string()
                .starts_with("truncated WAV file: chunk \"data\"")
        );
        // Cut inside the fmt chunk's header, and the data chunk missing.
        assert_eq!(parse(&file[..38]), Err(WavError::MissingChunk("data")));
        assert_eq!(parse(&file[..14]), Err(WavError::MissingChunk("fmt ")));
        assert_eq!(
            parse(&riff(&[(b"fmt ", vec![1, 0, 1, 0]), (b"data", vec![])])),
            Err(WavError::BadFmt(4))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            edits in proptest::collection::vec((0usize..64, any::<u8>()), 0..8),
        ) {
            let _ = parse(&bytes);
            let mut file = b"RIFF\0\0\0\0WAVE".to_vec();
            file.extend_from_slice(&bytes);
            let _ = parse(&file);
            // A valid file with a few bytes changed, to reach past the headers.
            let mut file = write_pcm16(&[1, -2, 3], 8000);
            for (at, byte) in edits {
                if let Some(b) = file.get_mut(at) {
                    *b = byte;
                }
            }
            let _ = parse(&file);
        }
    }
}
