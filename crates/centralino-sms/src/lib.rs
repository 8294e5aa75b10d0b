//! The SMS channel adapter.
//!
//! So far, the two transports, which hand what they receive to the adapter as
//! [`Incoming`] and answer their peer only once it is handled:
//! - [`smpp`]: SMPP 3.4 (bind transceiver, keep-alive, reconnect with backoff,
//!   exact segments with concatenation headers, inbound messages reassembled,
//!   delivery receipts);
//! - [`webhook`]: Twilio-style HTTP callbacks (signature checked, inbound
//!   messages and status callbacks).
//!
//! The bus, store and consent sides follow.

#![forbid(unsafe_code)]

pub mod smpp;
pub mod webhook;

use centralino_gsm::Receipt;
use tokio::sync::oneshot;

/// Something a transport delivered. The transport answers its peer (SMPP
/// `deliver_sm_resp`, the webhook's HTTP status) when `handled` is answered: `true` (kept; it will not be sent again) or `false`
/// (a temporary failure; the peer delivers it again later).
#[derive(Debug)]
pub struct Incoming {
    pub what: Delivered,
    pub handled: oneshot::Sender<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// A customer's message (all its parts). `id` is the provider's id when it
    /// gives one (a webhook's `MessageSid`): the same id is the same message.
    Message {
        id: Option<String>,
        from: String,
        to: String,
        text: String,
    },
    /// A delivery receipt for a message we submitted over SMPP.
    Receipt(Receipt),
    /// A provider's status callback for a message we sent through its API:
    /// `status` is what history records (`sent`, `delivered`, `failed`).
    Status {
        id: String,
        status: String,
        error: String,
    },
}
