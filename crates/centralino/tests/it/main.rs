//! Integration tests of the centralino binary crate: the running process seen from
//! a Python grpcio client, the CLI, and the docker-compose file checked against
//! the code.

mod cli;
mod compose;
mod email;
mod python;
mod sms;
