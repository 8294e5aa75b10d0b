//! The voice inbound paths never panic, whatever the bytes: SDP parsing,
//! negotiation and our answer to it, RTP packets, RFC 4733 telephone events
//! through the digit detector, SIP INFO DTMF bodies, WAV prompt files, and
//! SIP messages as the adapter reads them (rsipstack's parser, then the
//! headers it looks at).
//! The first byte picks the parser, the rest is its input.
//!
//! `cargo +nightly fuzz run voice_parse` (from this directory's parent).

#![no_main]

use centralino_telephony::{dtmf, g711::Codec, rtp, sdp, wav};
use rsipstack::sip::{HeadersExt as _, SipMessage};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    match selector % 6 {
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
        4 => {
            let _ = wav::parse(input);
        }
        _ => {
            if let Ok(SipMessage::Request(req)) = SipMessage::try_from(input) {
                let _ = req.uri.auth.as_ref().map(|a| a.user.len());
                let _ = req.call_id_header().map(|c| c.value().len());
                let _ = req.from_header().map(|f| f.value().len());
                let _ = req.to_header().and_then(|t| t.uri()).map(|u| u.to_string());
                let _ = req.cseq_header().and_then(|c| c.seq());
                let content_type = req.header_value("Content-Type").unwrap_or_default();
                let body = String::from_utf8_lossy(&req.body);
                let _ = dtmf::parse_info(&content_type, &body);
                if let Ok(offer) = sdp::parse(&body) {
                    let _ = sdp::negotiate(&offer, &[Codec::Pcmu, Codec::Pcma]);
                }
            }
        }
    }
});
