//! The SMS channel adapter.
//!
//! So far: [`smpp`], the SMPP 3.4 transport (bind transceiver, keep-alive,
//! reconnect with backoff, exact segments with concatenation headers, inbound
//! messages reassembled and acknowledged only once handled, delivery receipts).
//! The bus, store, consent and webhook sides follow.

#![forbid(unsafe_code)]

pub mod smpp;
