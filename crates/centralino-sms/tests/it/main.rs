//! SMS adapter tests against real peers: the SMPP SMSC simulator of
//! `tests/node/smsc.js` (npm `smpp`) and webhook requests signed by the
//! `twilio` Python package (both installed by `.ci/run`).

mod adapter;
mod smpp;
mod support;
mod webhook;
