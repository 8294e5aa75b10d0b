//! SMS text rules, with no IO:
//!
//! - [`encode`]: the cheapest exact encoding of a text (GSM 03.38 7-bit with
//!   its extension table, else UCS-2 for the whole message as soon as one
//!   character is outside GSM) and its cut into segments: 160 septets in one
//!   SMS, 153 per part with a concatenation header; 70 UTF-16 units, 67 per
//!   part. An extension character (`€ [ ] { } \ ^ ~ |` and form feed) counts
//!   twice and is never split from its escape; an astral character (an emoji)
//!   counts two units and is never split between parts.
//! - [`decode_gsm`] / [`decode_ucs2`]: what a handset sent, back to text.
//! - [`udh`]: the 8-bit-reference concatenation header (IEI 0x00).
//! - [`keyword`]: STOP / START / HELP and their synonyms, as carriers and
//!   providers recognise them.
//! - [`receipt`]: the SMSC delivery receipt text (SMPP 3.4 appendix B).
//! - [`twilio`]: the `X-Twilio-Signature` of a webhook request.

#![forbid(unsafe_code)]

pub mod twilio;

/// How a message is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet (SMPP `data_coding` 0x00), one septet per
    /// character, two for the extension table.
    Gsm7,
    /// UCS-2 / UTF-16 big-endian (SMPP `data_coding` 0x08).
    Ucs2,
}

impl Encoding {
    /// How records and APIs name it: `gsm7` or `ucs2`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }

    /// SMPP `data_coding`.
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => 0x00,
            Encoding::Ucs2 => 0x08,
        }
    }

    /// Units (septets or UTF-16 units) in a single SMS, and per part of a
    /// concatenated one.
    pub fn limits(self) -> (usize, usize) {
        match self {
            Encoding::Gsm7 => (160, 153),
            Encoding::Ucs2 => (70, 67),
        }
    }
}

/// A message ready to send: its encoding and, per segment, the payload
/// (unpacked septets, one per byte, for GSM; UTF-16BE bytes for UCS-2)
/// without the concatenation header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub encoding: Encoding,
    /// Units the whole text takes (septets or UTF-16 units).
    pub units: usize,
    pub segments: Vec<Vec<u8>>,
}

impl Encoded {
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// The escape to the extension table.
const ESC: u8 = 0x1B;

/// GSM 03.38 basic table: the character of each septet (0x1B is the escape).
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// GSM 03.38 extension table (after an escape).
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

/// The septets of `c` in GSM 03.38: one from the basic table, or the escape
/// and one from the extension table; `None` if GSM cannot carry it.
pub fn gsm_septets(c: char) -> Option<&'static [u8]> {
    // Static slices of every possible septet and escape pair.
    const SINGLE: [u8; 128] = {
        let mut t = [0u8; 128];
        let mut i = 0;
        while i < 128 {
            t[i] = i as u8;
            i += 1;
        }
        t
    };
    const PAIRS: [[u8; 2]; 10] = [
        [ESC, 0x0A],
        [ESC, 0x14],
        [ESC, 0x28],
        [ESC, 0x29],
        [ESC, 0x2F],
        [ESC, 0x3C],
        [ESC, 0x3D],
        [ESC, 0x3E],
        [ESC, 0x40],
        [ESC, 0x65],
    ];
    if c != '\u{1B}'
        && let Some(i) = BASIC.iter().position(|b| *b == c)
    {
        return Some(&SINGLE[i..=i]);
    }
    EXTENSION
        .iter()
        .position(|(_, e)| *e == c)
        .map(|i| &PAIRS[i][..])
}

/// Whether every character of `text` fits GSM 03.38.
pub fn is_gsm(text: &str) -> bool {
    text.chars().all(|c| gsm_septets(c).is_some())
}

/// `text` encoded and cut into segments.
pub fn encode(text: &str) -> Encoded {
    match gsm(text) {
        Some(septets) => {
            let units = septets.len();
            Encoded {
                encoding: Encoding::Gsm7,
                units,
                segments: cut(septets, Encoding::Gsm7, |s, i| s[i] == ESC),
            }
        }
        None => {
            let utf16: Vec<u16> = text.encode_utf16().collect();
            let units = utf16.len();
            let bytes: Vec<u8> = utf16.iter().flat_map(|u| u.to_be_bytes()).collect();
            // Cut on units (2 bytes), never after a high surrogate.
            let segments = cut_units(&utf16, Encoding::Ucs2)
                .into_iter()
                .map(|(from, to)| bytes[from * 2..to * 2].to_vec())
                .collect();
            Encoded {
                encoding: Encoding::Ucs2,
                units,
                segments,
            }
        }
    }
}

fn gsm(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        out.extend_from_slice(gsm_septets(c)?);
    }
    Some(out)
}

/// Cuts `units` into segments; `binds(units, i)` says unit `i` must stay with
/// unit `i + 1` (an escape, a high surrogate).
fn cut(units: Vec<u8>, encoding: Encoding, binds: impl Fn(&[u8], usize) -> bool) -> Vec<Vec<u8>> {
    let (single, part) = encoding.limits();
    if units.len() <= single {
        return vec![units];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < units.len() {
        let mut end = (start + part).min(units.len());
        if end < units.len() && end > start + 1 && binds(&units, end - 1) {
            end -= 1;
        }
        out.push(units[start..end].to_vec());
        start = end;
    }
    out
}

fn cut_units(units: &[u16], encoding: Encoding) -> Vec<(usize, usize)> {
    let (single, part) = encoding.limits();
    if units.len() <= single {
        return vec![(0, units.len())];
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < units.len() {
        let mut end = (start + part).min(units.len());
        if end < units.len() && end > start + 1 && (0xD800..0xDC00).contains(&units[end - 1]) {
            end -= 1;
        }
        out.push((start, end));
        start = end;
    }
    out
}

/// Text of unpacked GSM septets (one per byte, as SMPP carries them with
/// `data_coding` 0); an unknown escape or septet becomes U+FFFD.
pub fn decode_gsm(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut escaped = false;
    for &s in septets {
        let s = s & 0x7F;
        if escaped {
            escaped = false;
            match EXTENSION.iter().find(|(code, _)| *code == s) {
                Some((_, c)) => out.push(*c),
                // An unknown extension shows the basic character (03.38 §6.2.1.1).
                None => out.push(BASIC[usize::from(s)]),
            }
        } else if s == ESC {
            escaped = true;
        } else {
            out.push(BASIC[usize::from(s)]);
        }
    }
    if escaped {
        out.push('\u{FFFD}');
    }
    out
}

/// Text of UTF-16BE bytes; a lone surrogate or odd byte becomes U+FFFD.
pub fn decode_ucs2(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| match c {
            [a, b] => u16::from_be_bytes([*a, *b]),
            _ => 0xFFFD,
        })
        .collect();
    String::from_utf16_lossy(&units)
}

/// The concatenation header (UDH) of part `seq` (1-based) of `total`, with an
/// 8-bit reference: `05 00 03 ref total seq`.
pub fn udh(reference: u8, total: u8, seq: u8) -> [u8; 6] {
    [0x05, 0x00, 0x03, reference, total, seq]
}

/// The concatenation header of a message with the UDH indicator set, as
/// (reference, total, number), and the text after the header. A 16-bit
/// reference is folded to 8 bits.
pub fn split_udh(bytes: &[u8], udhi: bool) -> (Option<(u8, u8, u8)>, &[u8]) {
    if !udhi || bytes.is_empty() {
        return (None, bytes);
    }
    let len = usize::from(bytes[0]);
    let Some(header) = bytes.get(1..=len) else {
        return (None, bytes);
    };
    let body = &bytes[len + 1..];
    let mut i = 0;
    while i + 1 < header.len() {
        let (iei, ielen) = (header[i], usize::from(header[i + 1]));
        let data = header.get(i + 2..i + 2 + ielen).unwrap_or(&[]);
        match (iei, data) {
            (0x00, [reference, total, seq]) => return (Some((*reference, *total, *seq)), body),
            (0x08, [hi, lo, total, seq]) => {
                // 16-bit reference: fold to 8 bits (unique enough per sender).
                return (Some((hi ^ lo, *total, *seq)), body);
            }
            _ => {}
        }
        i += 2 + ielen;
    }
    (None, body)
}

/// Text of a short message by its SMPP `data_coding` (GSM, IA5, Latin-1,
/// UCS-2; anything else read as UTF-8, lossily).
pub fn decode(bytes: &[u8], coding: u8) -> String {
    match coding & 0x0F {
        0x00 | 0x01 => decode_gsm(bytes),
        0x08 => decode_ucs2(bytes),
        0x03 => bytes.iter().map(|b| char::from(*b)).collect(),
        _ => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// What a short inbound message asks, when it is a keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT.
    OptOut,
    /// START, UNSTOP. (Not YES: in a conversation it is an answer, not a
    /// consent.)
    OptIn,
    /// HELP, INFO.
    Help,
}

/// The keyword a whole message is, ignoring case, surrounding whitespace and
/// a final `.` or `!`; `None` for any other text ("please stop calling me" is
/// a message, not a keyword).
pub fn keyword(body: &str) -> Option<Keyword> {
    let word = body
        .trim()
        .trim_end_matches(['.', '!'])
        .trim()
        .to_uppercase();
    match word.as_str() {
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE" | "OPTOUT" => {
            Some(Keyword::OptOut)
        }
        "START" | "UNSTOP" => Some(Keyword::OptIn),
        "HELP" | "INFO" => Some(Keyword::Help),
        _ => None,
    }
}

/// A delivery receipt, as an SMSC writes it in a `deliver_sm` with esm_class
/// 0x04: `id:… sub:… dlvr:… submit date:… done date:… stat:DELIVRD err:000 text:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The id the SMSC gave in `submit_sm_resp`.
    pub id: String,
    /// `DELIVRD`, `EXPIRED`, `DELETED`, `UNDELIV`, `ACCEPTD`, `UNKNOWN`, `REJECTD`, `ENROUTE`.
    pub stat: String,
    /// The network or SMSC error code, `000` when none.
    pub err: String,
}

impl Receipt {
    /// The message status history records: `delivered`, `failed`, or `sent`
    /// (still on its way).
    pub fn status(&self) -> &'static str {
        match self.stat.as_str() {
            "DELIVRD" => "delivered",
            "EXPIRED" | "DELETED" | "UNDELIV" | "REJECTD" | "UNKNOWN" => "failed",
            _ => "sent",
        }
    }
}

/// Reads a receipt's text; `None` when it has no `id:` or no `stat:`.
pub fn receipt(text: &str) -> Option<Receipt> {
    let field = |name: &str| -> Option<String> {
        let lower = text.to_ascii_lowercase();
        let at = lower.find(&format!("{name}:"))?;
        let rest = &text[at + name.len() + 1..];
        let value: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace())
            .take(64)
            .collect();
        (!value.is_empty()).then_some(value)
    };
    Some(Receipt {
        id: field("id")?,
        stat: field("stat")?.to_ascii_uppercase(),
        err: field("err").unwrap_or_else(|| "000".into()),
    })
}

#[cfg(test)]
mod tests;
