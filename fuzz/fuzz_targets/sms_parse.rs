//! The SMS inbound paths never panic, whatever the bytes: SMPP PDUs as the
//! transport's codec reads them off the wire, the short message's UDH and
//! text, delivery receipt text, and a webhook's form body with its signature
//! check.
//!
//! `cargo +nightly fuzz run sms_parse` (from this directory's parent).

#![no_main]

use tokio_util::codec::Decoder as _;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut codec = rusmpp::tokio_codec::CommandCodec::new();
    let mut buffer = bytes::BytesMut::from(data);
    while let Ok(Some(_)) = codec.decode(&mut buffer) {}

    let coding = data.first().copied().unwrap_or(0);
    for udhi in [false, true] {
        let (_, body) = centralino_gsm::split_udh(data, udhi);
        let _ = centralino_gsm::decode(body, coding);
    }
    let text = String::from_utf8_lossy(data);
    let _ = centralino_gsm::receipt(&text);
    let _ = centralino_gsm::keyword(&text);
    let _ = centralino_gsm::encode(&text);

    let params: Vec<(String, String)> = form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let _ = centralino_gsm::twilio::verify(b"token", "https://x.test/sms/inbound", &params, &text);
});
