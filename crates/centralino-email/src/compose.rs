//! Building outbound messages (replies and acknowledgements) once, as bytes.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

/// Most references carried in a reply (the first and the latest are kept).
const MAX_REFS: usize = 20;

/// `Auto-Submitted: auto-replied` (RFC 3834), on our automatic answers.
#[derive(Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-replied".to_owned())
    }
}

/// The domain of an address, if it looks like one (`a@b`).
pub(crate) fn domain_of(address: &str) -> Option<&str> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains(['<', '>', ' '])).then_some(domain)
}

/// A fresh Message-ID (without brackets) in the mailbox's domain.
pub(crate) fn new_rfc_id(id: &uuid::Uuid, mailbox_address: &str) -> String {
    format!(
        "{}@{}",
        id.simple(),
        domain_of(mailbox_address).unwrap_or("centralino.invalid")
    )
}

/// What a message to send says.
pub(crate) struct Draft<'a> {
    pub from_address: &'a str,
    pub from_name: &'a str,
    pub to: &'a str,
    pub subject: &'a str,
    pub rfc_id: &'a str,
    /// Message-IDs of the conversation, oldest first; the last one is answered.
    pub references: &'a [String],
    /// The message answered (the customer's latest); the last reference when unset.
    pub in_reply_to: Option<&'a str>,
    pub body: &'a str,
    pub attachments: &'a [centralino_proto::v1::Attachment],
    pub automatic: bool,
}

/// The message as bytes, or why it cannot be built (a bad address, say).
pub(crate) fn build(draft: &Draft<'_>) -> Result<Vec<u8>, String> {
    let from: Mailbox = format!("{} <{}>", quote(draft.from_name), draft.from_address)
        .parse()
        .or_else(|_| draft.from_address.parse())
        .map_err(|e| format!("sender address: {e}"))?;
    let to: Mailbox = draft
        .to
        .parse()
        .map_err(|e| format!("recipient address: {e}"))?;
    // No control characters (a CR/LF would start a header of its own).
    let subject: String = draft.subject.chars().filter(|c| !c.is_control()).collect();
    let mut builder = lettre::Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{}>", draft.rfc_id)))
        .date_now();
    if let Some(last) = draft
        .in_reply_to
        .or(draft.references.last().map(String::as_str))
    {
        builder = builder.in_reply_to(format!("<{last}>"));
    }
    if !draft.references.is_empty() {
        let refs = kept_refs(draft.references);
        builder = builder.references(
            refs.iter()
                .map(|r| format!("<{r}>"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    if draft.automatic {
        builder = builder.header(AutoSubmitted);
    }
    let text = SinglePart::plain(draft.body.to_owned());
    let message = if draft.attachments.is_empty() {
        builder.singlepart(text)
    } else {
        let mut parts = MultiPart::mixed().singlepart(text);
        for a in draft.attachments {
            let content_type = ContentType::parse(&a.content_type).unwrap_or(
                ContentType::parse("application/octet-stream").map_err(|e| e.to_string())?,
            );
            let name = if a.filename.is_empty() {
                "attachment".to_owned()
            } else {
                a.filename.clone()
            };
            parts = parts.singlepart(Attachment::new(name).body(a.content.clone(), content_type));
        }
        builder.multipart(parts)
    }
    .map_err(|e| e.to_string())?;
    Ok(message.formatted())
}

fn quote(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"')
        .collect();
    format!("\"{clean}\"")
}

/// The first reference and the latest ones, at most [`MAX_REFS`] (RFC 5322 §3.6.4
/// lets long chains be shortened this way).
pub(crate) fn kept_refs(refs: &[String]) -> Vec<String> {
    if refs.len() <= MAX_REFS {
        return refs.to_vec();
    }
    let mut kept = vec![refs[0].clone()];
    kept.extend_from_slice(&refs[refs.len() - (MAX_REFS - 1)..]);
    kept
}

/// `{subject}` and `{token}` filled in.
pub(crate) fn fill(template: &str, subject: &str, token: &str) -> String {
    template
        .replace("{subject}", subject)
        .replace("{token}", token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_threads_and_an_ack_says_it_is_automatic() {
        let refs = vec!["a@x".to_owned(), "b@x".to_owned()];
        let raw = build(&Draft {
            from_address: "support@acme.test",
            from_name: "ACME \"Support\"",
            to: "maria@example.test",
            subject: "Re: help [#CN-0000000001]",
            rfc_id: "r1@acme.test",
            references: &refs,
            in_reply_to: None,
            body: "Ciao",
            attachments: &[],
            automatic: true,
        })
        .expect("builds");
        let parsed = centralino_mime::parse(&raw).expect("parses back");
        assert_eq!(parsed.message_id.as_deref(), Some("r1@acme.test"));
        assert_eq!(parsed.replies_to, vec!["b@x".to_owned(), "a@x".to_owned()]);
        assert_eq!(parsed.from.as_deref(), Some("support@acme.test"));
        assert_eq!(
            parsed.automatic,
            Some(centralino_mime::Automatic::AutoSubmitted)
        );
        assert_eq!(parsed.token.as_deref(), Some("0000000001"));
    }

    #[test]
    fn long_reference_chains_keep_the_first_and_the_latest() {
        let refs: Vec<String> = (0..30).map(|i| format!("{i}@x")).collect();
        let kept = kept_refs(&refs);
        assert_eq!(kept.len(), MAX_REFS);
        assert_eq!(kept[0], "0@x");
        assert_eq!(kept.last().map(String::as_str), Some("29@x"));
    }

    #[test]
    fn a_bad_recipient_is_refused() {
        let err = build(&Draft {
            from_address: "support@acme.test",
            from_name: "",
            to: "not an address",
            subject: "x",
            rfc_id: "r@x",
            references: &[],
            in_reply_to: None,
            body: "",
            attachments: &[],
            automatic: false,
        });
        assert!(err.is_err());
    }
}
