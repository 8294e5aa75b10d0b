use super::*;
use proptest::prelude::*;

const PLAIN: &str = "From: Maria Rossi <maria@example.test>\r\n\
To: support@acme.test\r\n\
Subject: Fattura sbagliata\r\n\
Message-ID: <m1@example.test>\r\n\
Date: Sat, 28 Nov 2026 10:00:00 +0100\r\n\
\r\n\
Buongiorno,\r\nla fattura \u{202E}non\u{202C} torna.\r\n";

#[test]
fn a_plain_message_is_understood() {
    let m = parse(PLAIN.as_bytes()).expect("parses");
    assert_eq!(m.message_id.as_deref(), Some("m1@example.test"));
    assert_eq!(m.from.as_deref(), Some("maria@example.test"));
    assert_eq!(m.from_name.as_deref(), Some("Maria Rossi"));
    assert_eq!(m.reply_to.as_deref(), Some("maria@example.test"));
    assert_eq!(m.subject, "Fattura sbagliata");
    assert_eq!(m.text, "Buongiorno,\nla fattura non torna.");
    assert_eq!(m.date, Some(1_795_856_400));
    assert!(m.automatic.is_none() && m.bounce.is_none() && m.token.is_none());
}

#[test]
fn html_becomes_text_and_attachments_are_kept() {
    let raw = "From: a@example.test\r\nMessage-ID: <h@x>\r\nSubject: =?UTF-8?Q?Caff=C3=A8?=\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n\
--B\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
<p>Perch=E9 <b>no</b>?</p><script>alert(1)</script>\r\n\
--B\r\nContent-Type: application/pdf; name=\"../../etc/f.pdf\"\r\nContent-Disposition: attachment; filename=\"../../etc/f.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n";
    let m = parse(raw.as_bytes()).expect("parses");
    assert_eq!(m.subject, "Caffè");
    assert!(m.text.contains("Perché"), "{}", m.text);
    assert!(!m.text.contains('<'), "{}", m.text);
    assert_eq!(m.attachments.len(), 1);
    assert_eq!(m.attachments[0].name, ".._.._etc_f.pdf");
    assert_eq!(m.attachments[0].content_type, "application/pdf");
    assert_eq!(m.attachments[0].content, b"%PDF-1.4\n");
}

#[test]
fn replies_name_what_they_answer_newest_first() {
    let raw = "From: a@example.test\r\nMessage-ID: <r@x>\r\nIn-Reply-To: <b@x>\r\n\
References: <a@x> <b@x>\r\nSubject: Re: help [#cn-7k2m9qx4tb]\r\n\r\nok\r\n";
    let m = parse(raw.as_bytes()).expect("parses");
    assert_eq!(m.replies_to, vec!["b@x".to_owned(), "a@x".to_owned()]);
    assert_eq!(m.token.as_deref(), Some("7K2M9QX4TB"));
}

#[test]
fn automatic_mail_is_recognised() {
    let cases = [
        (
            "Auto-Submitted: auto-replied\r\n",
            Some(Automatic::AutoSubmitted),
        ),
        (
            "Auto-Submitted: auto-generated (vacation)\r\n",
            Some(Automatic::AutoSubmitted),
        ),
        ("Auto-Submitted: no\r\n", None),
        ("Precedence: bulk\r\n", Some(Automatic::Bulk)),
        ("Precedence: List\r\n", Some(Automatic::Bulk)),
        ("Precedence: first-class\r\n", None),
        ("List-Id: <news.example.test>\r\n", Some(Automatic::Bulk)),
        (
            "X-Auto-Response-Suppress: All\r\n",
            Some(Automatic::Suppressed),
        ),
        ("Return-Path: <>\r\n", Some(Automatic::NullSender)),
        ("Return-Path: <a@example.test>\r\n", None),
    ];
    for (header, expected) in cases {
        let raw = format!("{header}From: a@example.test\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n");
        let m = parse(raw.as_bytes()).expect("parses");
        assert_eq!(m.automatic, expected, "{header}");
    }
}

#[test]
fn a_delivery_report_names_the_failed_message() {
    let raw = "Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.test>\r\n\
Message-ID: <dsn@mx.test>\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n\
--R\r\nContent-Type: text/plain\r\n\r\nI could not deliver it.\r\n\
--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test\r\n\r\n\
Final-Recipient: rfc822; nobody@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n\
--R\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: support@acme.test\r\n\
Message-ID: <out-1@acme.test>\r\nSubject: Re: help\r\n\r\n--R--\r\n";
    let m = parse(raw.as_bytes()).expect("parses");
    assert_eq!(m.automatic, Some(Automatic::NullSender));
    let bounce = m.bounce.expect("a bounce");
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("out-1@acme.test")
    );
    assert_eq!(bounce.status.as_deref(), Some("5.1.1"));
    assert_eq!(bounce.action.as_deref(), Some("failed"));
    assert!(bounce.failed() && !bounce.delivered());
}

#[test]
fn a_delay_warning_is_not_a_failure_and_plain_notifications_are_not_bounces() {
    let delayed = "Return-Path: <>\r\nFrom: MAILER-DAEMON@mx.test\r\nMessage-ID: <w@mx>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=R\r\n\r\n\
--R\r\nContent-Type: message/delivery-status\r\n\r\nAction: delayed\r\nStatus: 4.4.7 (timeout)\r\n\r\n--R--\r\n";
    let bounce = parse(delayed.as_bytes())
        .expect("parses")
        .bounce
        .expect("a report");
    assert_eq!(bounce.status.as_deref(), Some("4.4.7"));
    assert!(!bounce.failed() && !bounce.delivered());
    // A vacation reply from a null sender, and a person writing from postmaster@.
    let vacation = "Return-Path: <>\r\nFrom: a@example.test\r\nMessage-ID: <v@x>\r\nIn-Reply-To: <out@acme>\r\n\r\naway\r\n";
    let m = parse(vacation.as_bytes()).expect("parses");
    assert_eq!((m.automatic, m.bounce), (Some(Automatic::NullSender), None));
    let person = "From: postmaster@example.test\r\nMessage-ID: <p@x>\r\n\r\nhello\r\n";
    assert_eq!(parse(person.as_bytes()).expect("parses").bounce, None);
}

#[test]
fn addresses_with_control_characters_are_dropped() {
    let raw = b"From: <a\x00b@example.test>\r\nTo: <ok@x.test>, <bad\x01@x.test>\r\nMessage-ID: <n@x>\r\n\r\nx";
    let m = parse(raw).expect("parses");
    assert_eq!(m.from, None);
    assert_eq!(m.to, vec!["ok@x.test".to_owned()]);
    assert_eq!(clean_address(" a@b "), Some("a@b".to_owned()));
    assert_eq!(clean_address("a b@c"), None);
    assert_eq!(clean_address("nobody"), None);
}

#[test]
fn a_bounce_carrying_the_whole_message_is_linked() {
    let raw = "From: MAILER-DAEMON@mx.test\r\nMessage-ID: <d2@mx.test>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=Q\r\n\r\n--Q\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
--Q\r\nContent-Type: message/rfc822\r\n\r\nFrom: support@acme.test\r\nMessage-ID: <out-2@acme.test>\r\n\r\nbody\r\n--Q--\r\n";
    let bounce = parse(raw.as_bytes())
        .expect("parses")
        .bounce
        .expect("a bounce");
    assert_eq!(
        bounce.original_message_id.as_deref(),
        Some("out-2@acme.test")
    );
}

#[test]
fn unreadable_bytes_are_malformed() {
    assert_eq!(parse(b""), Err(Malformed::NoHeaders));
    assert!(parse(b"\x00\x01\x02 garbage without any header\xff\xfe").is_err());
    assert_eq!(
        parse(b"X-Whatever: 1\r\n\r\nbody"),
        Err(Malformed::NoSenderOrId)
    );
}

#[test]
fn headers_only_parse_reads_no_body() {
    let m = parse_headers(PLAIN.as_bytes()).expect("parses");
    assert_eq!(m.subject, "Fattura sbagliata");
    assert!(m.text.is_empty());
}

#[test]
fn tokens_round_trip_and_reject_lookalikes() {
    let token = token_from(0x3_1234_5678_9abc);
    assert_eq!(token.len(), 10);
    let subject = with_token("Fattura", &token);
    assert_eq!(token_in(&subject).as_deref(), Some(token.as_str()));
    assert_eq!(with_token(&subject, &token), subject, "not appended twice");
    assert_eq!(token_in("[#CN-7K2M9QX4T]"), None, "too short");
    assert_eq!(token_in("[#CN-7K2M9QX4TBX]"), None, "too long");
    assert_eq!(token_in("[#CN-7K2M9QX4TU]"), None, "U is not Crockford");
    assert_eq!(
        token_in("[#CN-x] [#CN-0000000001]").as_deref(),
        Some("0000000001")
    );
    assert_eq!(reply_subject("Re: x"), "Re: x");
    assert_eq!(reply_subject("x"), "Re: x");
}

#[test]
fn safe_text_strips_controls_and_blank_runs() {
    assert_eq!(
        safe_text("a\r\n\r\n\r\n\r\n\r\nb\u{0007}\u{202E}c"),
        "a\n\n\nbc"
    );
    assert_eq!(cut_chars("àèì", 2), ("àè".to_owned(), true));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&bytes);
        let _ = parse_headers(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(cut in 0usize..600, flip in 0usize..600, byte in any::<u8>()) {
        let mut raw = PLAIN.as_bytes().to_vec();
        raw.extend_from_slice(b"--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y\r\n\r\n");
        if flip < raw.len() { raw[flip] = byte; }
        raw.truncate(cut.max(1));
        if let Ok(m) = parse(&raw) {
            prop_assert!(m.text.chars().count() <= MAX_TEXT_CHARS);
            prop_assert!(m.subject.chars().count() <= MAX_SUBJECT_CHARS);
        }
    }
}
