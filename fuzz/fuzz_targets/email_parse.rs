//! The inbound email path never panics, whatever the bytes: the whole-message
//! parse, the headers-only parse (oversized mail), and the threading helpers
//! on whatever subject comes out.
//!
//! `cargo +nightly fuzz run email_parse` (from this directory's parent).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for parsed in [
        centralino_mime::parse(data),
        centralino_mime::parse_headers(data),
    ] {
        if let Ok(m) = parsed {
            assert!(m.text.chars().count() <= centralino_mime::MAX_TEXT_CHARS);
            assert!(m.subject.chars().count() <= centralino_mime::MAX_SUBJECT_CHARS);
            let _ = centralino_mime::token_in(&m.subject);
            let _ = centralino_mime::reply_subject(&m.subject);
        }
    }
});
