//! Integration tests of the centralino binary crate: the running process seen from
//! a Python grpcio client, the CLI, the docker-compose file checked against the
//! code, and `up` with each channel adapter (email, SMS, voice, desk).

mod burst;
mod cli;
mod compose;
mod contract;
mod desk;
mod email;
mod outage;
mod python;
mod sms;
mod split_brain;
mod voice;
