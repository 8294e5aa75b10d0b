//! Voice rules for the telephony adapter, with no IO (no sockets, no files,
//! no clocks): every function takes bytes or text and returns values, and
//! none panics on what the network sends.
//!
//! - [`g711`]: μ-law and A-law (ITU-T G.711) sample coding and the [`g711::Codec`]
//!   a call uses.
//! - [`wav`]: prompt files (8 kHz mono PCM, A-law or μ-law WAV) to samples, and
//!   16-bit PCM WAV writing for tools and tests.
//! - [`rtp`]: RTP header parsing and writing (RFC 3550) and a [`rtp::Sender`]
//!   keeping sequence numbers and timestamps.
//! - [`dtmf`]: RFC 4733 telephone events (one digit per key press, whatever
//!   the retransmissions) and SIP INFO DTMF bodies.
//! - [`sdp`]: SDP parsing (RFC 4566), audio offer/answer negotiation
//!   (RFC 3264), and the offers and answers we send.
//! - [`announce`]: prompt names for spoken numbers and queue position
//!   announcements.

#![forbid(unsafe_code)]

pub mod announce;
pub mod dtmf;
pub mod g711;
pub mod ivr;
pub mod rtp;
pub mod sdp;
pub mod wav;
