//! What an inbound email means, with no IO: [`parse`] turns raw RFC 5322 bytes
//! into an [`Inbound`] (safe text for agents, attachments, threading keys, the
//! conversation token in the subject, whether it was sent automatically, and
//! which message a bounce reports on). It never panics, whatever the bytes: the
//! fuzz target `fuzz/fuzz_targets/email_parse.rs` and a property test hold it to that.
//!
//! The rules for not answering automatically follow RFC 3834: no automatic reply
//! to a message that was itself sent automatically (`Auto-Submitted` other than
//! `no`), to list or bulk mail (`Precedence: bulk|list|junk`, `List-Id`), when the
//! sender asks for none (`X-Auto-Response-Suppress`), or to a null return path
//! (a bounce).

#![forbid(unsafe_code)]

use mail_parser::{Address, HeaderValue, Message, MessageParser, MimeHeaders as _, PartType};

/// Longest text kept for an agent; the rest is cut (the raw message stays whole).
pub const MAX_TEXT_CHARS: usize = 100_000;
/// Longest subject kept.
pub const MAX_SUBJECT_CHARS: usize = 500;
/// Longest Message-ID kept; a longer one is treated as missing.
pub const MAX_MESSAGE_ID: usize = 250;
/// At most this many references are followed.
pub const MAX_REFERENCES: usize = 50;

/// An inbound message, understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    /// The Message-ID without angle brackets.
    pub message_id: Option<String>,
    /// Message-IDs this one answers (In-Reply-To first, then References, newest first).
    pub replies_to: Vec<String>,
    pub subject: String,
    /// The sender's address (From, else Sender), as written.
    pub from: Option<String>,
    pub from_name: Option<String>,
    /// Where answers go (Reply-To, else From).
    pub reply_to: Option<String>,
    pub to: Vec<String>,
    /// Seconds since the epoch, from the Date header.
    pub date: Option<i64>,
    /// The body as safe plain text (HTML reduced to text).
    pub text: String,
    /// The text was cut at [`MAX_TEXT_CHARS`].
    pub text_cut: bool,
    pub attachments: Vec<Attachment>,
    /// Why this message must never get an automatic answer, if it must not.
    pub automatic: Option<Automatic>,
    /// Set when the message is a delivery failure report.
    pub bounce: Option<Bounce>,
    /// The conversation token found in the subject, uppercase.
    pub token: Option<String>,
}

/// A file carried by a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

/// Why a message must not be answered automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Automatic {
    /// `Auto-Submitted` other than `no`.
    AutoSubmitted,
    /// `Precedence: bulk`, `list` or `junk`, or a `List-Id`.
    Bulk,
    /// `X-Auto-Response-Suppress` (Microsoft's "do not answer").
    Suppressed,
    /// Empty return path (`Return-Path: <>`): a bounce or other notification.
    NullSender,
}

impl Automatic {
    pub fn as_str(self) -> &'static str {
        match self {
            Automatic::AutoSubmitted => "auto-submitted",
            Automatic::Bulk => "bulk",
            Automatic::Suppressed => "suppressed",
            Automatic::NullSender => "null-sender",
        }
    }
}

/// A delivery failure report (RFC 3464) or a bounce that looks like one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounce {
    /// Message-ID of the message that could not be delivered, when the report carries it.
    pub original_message_id: Option<String>,
    /// The enhanced status code (`5.1.1`), when given.
    pub status: Option<String>,
    /// The report's `Action` (`failed`, `delayed`, `delivered`, `relayed`,
    /// `expanded`), lowercase, when given.
    pub action: Option<String>,
}

impl Bounce {
    /// Whether the report says the message was not delivered and never will be.
    pub fn failed(&self) -> bool {
        match self.action.as_deref() {
            Some("failed") => true,
            Some(_) => false,
            // No Action: only a permanent status (5.x.x), or no status at all
            // (a bounce in prose), counts as a failure.
            None => self.status.as_deref().is_none_or(|s| s.starts_with('5')),
        }
    }

    /// Whether the report says the message was delivered (or handed on).
    pub fn delivered(&self) -> bool {
        matches!(
            self.action.as_deref(),
            Some("delivered" | "relayed" | "expanded")
        )
    }
}

/// Why raw bytes are not a usable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// No header block could be read.
    NoHeaders,
    /// Headers were read, but none says who sent it or which message it is.
    NoSenderOrId,
}

impl Malformed {
    pub fn as_str(&self) -> &'static str {
        match self {
            Malformed::NoHeaders => "no headers",
            Malformed::NoSenderOrId => "no sender and no message id",
        }
    }
}

/// Reads a whole message.
pub fn parse(raw: &[u8]) -> Result<Inbound, Malformed> {
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(Malformed::NoHeaders)?;
    understand(&message, true)
}

/// Reads only the header block (of a message too big to fetch whole).
pub fn parse_headers(raw: &[u8]) -> Result<Inbound, Malformed> {
    let message = MessageParser::default()
        .parse_headers(raw)
        .ok_or(Malformed::NoHeaders)?;
    understand(&message, false)
}

fn understand(message: &Message<'_>, with_body: bool) -> Result<Inbound, Malformed> {
    if message.headers().is_empty() {
        return Err(Malformed::NoHeaders);
    }
    let mut inbound = Inbound {
        message_id: message.message_id().and_then(clean_id),
        subject: message
            .subject()
            .map(|s| cut_chars(&safe_text(s).replace('\n', " "), MAX_SUBJECT_CHARS).0)
            .unwrap_or_default(),
        ..Inbound::default()
    };
    let (from, from_name) = first_address(message.from().or_else(|| message.sender()));
    inbound.from = from;
    inbound.from_name = from_name.map(|n| cut_chars(&safe_text(&n), 200).0);
    inbound.reply_to = first_address(message.reply_to()).0.or(inbound.from.clone());
    inbound.to = message
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address().and_then(clean_address))
                .take(50)
                .collect()
        })
        .unwrap_or_default();
    inbound.date = message.date().map(|d| d.to_timestamp());
    if inbound.from.is_none() && inbound.message_id.is_none() {
        return Err(Malformed::NoSenderOrId);
    }
    let mut replies = ids_of(message.in_reply_to());
    let mut references = ids_of(message.references());
    references.reverse();
    replies.extend(references);
    let mut seen = std::collections::HashSet::new();
    replies.retain(|id| seen.insert(id.clone()));
    replies.truncate(MAX_REFERENCES);
    inbound.replies_to = replies;
    inbound.token = token_in(&inbound.subject);
    inbound.automatic = automatic(message);
    inbound.bounce = bounce(message, inbound.automatic);
    if with_body {
        let text = message
            .body_text(0)
            .map(|t| safe_text(&t))
            .unwrap_or_default();
        let (text, cut) = cut_chars(&text, MAX_TEXT_CHARS);
        inbound.text = text;
        inbound.text_cut = cut;
        inbound.attachments = message
            .attachments()
            .enumerate()
            .map(|(i, part)| Attachment {
                name: part
                    .attachment_name()
                    .map(|n| cut_chars(&safe_text(n).replace(['/', '\\', '\n'], "_"), 200).0)
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| format!("attachment-{}", i + 1)),
                content_type: part
                    .content_type()
                    .map(|c| match c.subtype() {
                        Some(sub) => format!("{}/{}", c.ctype(), sub),
                        None => c.ctype().to_owned(),
                    })
                    .map(|c| {
                        let clean: String = c
                            .to_ascii_lowercase()
                            .chars()
                            .filter(|c| c.is_ascii_graphic())
                            .collect();
                        cut_chars(&clean, 100).0
                    })
                    .filter(|c| c.contains('/'))
                    .unwrap_or_else(|| "application/octet-stream".to_owned()),
                content: match &part.body {
                    PartType::Message(inner) => inner.raw_message().to_vec(),
                    _ => part.contents().to_vec(),
                },
            })
            .collect();
    }
    Ok(inbound)
}

fn first_address(address: Option<&Address<'_>>) -> (Option<String>, Option<String>) {
    match address.and_then(|a| a.first()) {
        Some(addr) => (
            addr.address().and_then(clean_address),
            addr.name().map(str::to_owned),
        ),
        None => (None, None),
    }
}

/// An address we can store and answer: `local@domain`, at most 320 bytes, no
/// control characters (a NUL would be refused by PostgreSQL), spaces or brackets.
pub fn clean_address(address: &str) -> Option<String> {
    let address = address.trim();
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty()
        && !domain.is_empty()
        && address.len() <= 320
        && !address
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';')))
    .then(|| address.to_owned())
}

/// A Message-ID without brackets or spaces, if it is a plausible one.
fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()
        && id.len() <= MAX_MESSAGE_ID
        && id
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '<' && c != '>'))
    .then(|| id.to_owned())
}

fn ids_of(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => t.split_whitespace().filter_map(clean_id).collect(),
        HeaderValue::TextList(list) => list
            .iter()
            .flat_map(|t| t.split_whitespace())
            .filter_map(clean_id)
            .collect(),
        _ => Vec::new(),
    }
}

fn raw_header<'a>(message: &'a Message<'_>, name: &str) -> Option<&'a str> {
    message
        .headers_raw()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn automatic(message: &Message<'_>) -> Option<Automatic> {
    if raw_header(message, "Return-Path")
        .is_some_and(|v| v.trim_matches(['<', '>', ' ']).is_empty())
    {
        return Some(Automatic::NullSender);
    }
    if raw_header(message, "Auto-Submitted").is_some_and(|v| {
        let keyword = v.split([';', '(']).next().unwrap_or("").trim();
        !keyword.eq_ignore_ascii_case("no")
    }) {
        return Some(Automatic::AutoSubmitted);
    }
    if raw_header(message, "Precedence").is_some_and(|v| {
        ["bulk", "list", "junk"]
            .iter()
            .any(|p| v.trim().eq_ignore_ascii_case(p))
    }) || raw_header(message, "List-Id").is_some()
    {
        return Some(Automatic::Bulk);
    }
    if raw_header(message, "X-Auto-Response-Suppress").is_some() {
        return Some(Automatic::Suppressed);
    }
    None
}

/// A bounce: a `multipart/report; report-type=delivery-status`, or a message from
/// a null sender or a mailer daemon that carries the failed message.
fn bounce(message: &Message<'_>, automatic: Option<Automatic>) -> Option<Bounce> {
    let root = message.root_part();
    let is_report = root.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart")
            && c.subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && c.attribute("report-type")
                .is_some_and(|r| r.eq_ignore_ascii_case("delivery-status"))
    });
    let daemon = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .is_some_and(|a| {
            let local = a.split('@').next().unwrap_or("").to_ascii_lowercase();
            local == "mailer-daemon" || local == "postmaster"
        });
    if !is_report && automatic != Some(Automatic::NullSender) && !daemon {
        return None;
    }
    let mut report = Bounce::default();
    for part in message.parts.iter().skip(1) {
        let Some(ctype) = part.content_type() else {
            continue;
        };
        let sub = ctype.subtype().unwrap_or("").to_ascii_lowercase();
        let main = ctype.ctype().to_ascii_lowercase();
        match (main.as_str(), sub.as_str()) {
            ("message", "delivery-status") => {
                let text = String::from_utf8_lossy(part.contents());
                let field = |name: &str| -> Option<String> {
                    text.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                        .map(|(_, v)| {
                            v.trim()
                                .chars()
                                .take_while(|c| !c.is_whitespace() && *c != '(')
                                .take(16)
                                .filter(char::is_ascii_graphic)
                                .collect::<String>()
                                .to_ascii_lowercase()
                        })
                        .filter(|v| !v.is_empty())
                };
                report.status = field("status");
                report.action = field("action");
            }
            ("message", "rfc822") | ("message", "global") => {
                if let PartType::Message(inner) = &part.body {
                    report.original_message_id = report
                        .original_message_id
                        .or(inner.message_id().and_then(clean_id));
                }
            }
            ("text", "rfc822-headers") | ("message", "rfc822-headers") => {
                if let Some(inner) = MessageParser::default().parse_headers(part.contents()) {
                    report.original_message_id = report
                        .original_message_id
                        .or(inner.message_id().and_then(clean_id));
                }
            }
            _ => {}
        }
    }
    // Without a delivery report, only a null-sender or mailer-daemon message
    // that carries the failed message is a bounce; other notifications (a
    // vacation reply, a read receipt, a person writing from postmaster@) are
    // just automatic or ordinary mail.
    (is_report || report.original_message_id.is_some()).then_some(report)
}

/// Text an agent can read safely: no control characters other than newline and
/// tab, no bidirectional overrides (which can disguise text), `\r\n` as `\n`, and
/// at most two blank lines in a row.
pub fn safe_text(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut newlines = 0;
    for c in input.chars() {
        let c = match c {
            '\r' => continue,
            '\n' | '\t' => c,
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' => {
                continue;
            }
            c if c.is_control() => continue,
            c => c,
        };
        if c == '\n' {
            newlines += 1;
            if newlines > 3 {
                continue;
            }
        } else if !c.is_whitespace() {
            newlines = 0;
        }
        out.push(c);
    }
    out.trim().to_owned()
}

/// `text` cut to at most `max` characters; whether anything was cut.
pub fn cut_chars(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (text[..end].to_owned(), true),
        None => (text.to_owned(), false),
    }
}

/// Conversation tokens look like `[#CN-7K2M9QX4TB]`: a prefix and ten Crockford
/// base-32 characters (50 random bits).
const TOKEN_PREFIX: &str = "[#CN-";
const TOKEN_LEN: usize = 10;
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A token from 50 random bits (the low bits of `random`).
pub fn token_from(random: u64) -> String {
    (0..TOKEN_LEN)
        .map(|i| CROCKFORD[((random >> (5 * (TOKEN_LEN - 1 - i))) & 31) as usize] as char)
        .collect()
}

/// The conversation token in `subject`, uppercase, if there is a well-formed one.
pub fn token_in(subject: &str) -> Option<String> {
    let upper = subject.to_ascii_uppercase();
    let mut rest = upper.as_str();
    while let Some(at) = rest.find(TOKEN_PREFIX) {
        let after = &rest[at + TOKEN_PREFIX.len()..];
        let token: String = after.chars().take(TOKEN_LEN).collect();
        if token.len() == TOKEN_LEN
            && token.bytes().all(|b| CROCKFORD.contains(&b))
            && after[TOKEN_LEN..].starts_with(']')
        {
            return Some(token);
        }
        rest = after;
    }
    None
}

/// `subject` with the conversation token appended (once).
pub fn with_token(subject: &str, token: &str) -> String {
    if token_in(subject).as_deref() == Some(token) {
        subject.to_owned()
    } else if subject.is_empty() {
        format!("{TOKEN_PREFIX}{token}]")
    } else {
        format!("{subject} {TOKEN_PREFIX}{token}]")
    }
}

/// `Re: subject`, without stacking prefixes.
pub fn reply_subject(subject: &str) -> String {
    let trimmed = subject.trim();
    let lower = trimmed.to_ascii_lowercase();
    if ["re:", "r:", "aw:", "sv:"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        trimmed.to_owned()
    } else {
        format!("Re: {trimmed}")
    }
}

#[cfg(test)]
mod tests;
