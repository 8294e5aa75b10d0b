//! SMS adapter tests against real peers: the SMPP SMSC simulator of
//! `tests/node/smsc.js` (npm `smpp`, installed by `.ci/run`).

mod smpp;
