//! The voice inbound paths never panic, whatever the bytes: SDP parsing,
//! negotiation and our answer to it, RTP packets, RFC 4733 telephone events
//! through the digit detector, SIP INFO DTMF bodies, and WAV prompt files.
//! The first byte picks the parser, the rest is its input.
//!
//! `cargo +nightly fuzz run voice_parse` (from this directory's parent).

#![no_main]

use centralino_telephony::{dtmf, g711::Codec, rtp, sdp, wav};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            let text = String::from_utf8_lossy(input);
            if let Ok(offer) = sdp::parse(&text) {
                for preferences in [&[Codec::Pcmu, Codec::Pcma][..], &[Codec::Pcma][..]] {
                    if let Ok(neg) = sdp::negotiate(&offer, preferences) {
                        let local = "192.0.2.1:40000".parse().expect("address");
                        let answer = sdp::answer(&neg, local, 1, 1);
                        let _ = sdp::parse(&answer).map(|s| sdp::negotiate(&s, preferences));
                        let _ = sdp::answer_to(&offer, &neg, local, 1, 1);
                    }
                }
            }
        }
        1 => {
            if let Ok((header, payload)) = rtp::parse(input) {
                let mut out = Vec::new();
                rtp::write(&header, payload, &mut out);
            }
        }
        2 => {
            // Packets of 8 bytes: an RTP timestamp, then a payload.
            let mut detector = dtmf::EventDetector::default();
            for chunk in input.chunks(8) {
                let (timestamp, payload) = chunk.split_at(chunk.len().min(4));
                let mut ts = [0; 4];
                ts[..timestamp.len()].copy_from_slice(timestamp);
                if let Ok(ev) = dtmf::TelephoneEvent::parse(payload) {
                    let _ = detector.on_packet(u32::from_be_bytes(ts), &ev);
                }
            }
        }
        3 => {
            let text = String::from_utf8_lossy(input);
            let (content_type, body) = text.split_once('\n').unwrap_or(("", &*text));
            let _ = dtmf::parse_info(content_type, body);
            let _ = dtmf::parse_info("application/dtmf-relay", &text);
            let _ = dtmf::parse_info("application/dtmf", &text);
        }
        _ => {
            let _ = wav::parse(input);
        }
    }
});
