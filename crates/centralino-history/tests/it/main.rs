//! History service tests through real RabbitMQ and PostgreSQL (and the same
//! code on SQLite), read back over gRPC as an integrator would. `cargo xtask
//! test` starts both services; run alone, a missing service fails the test
//! with how to start it.

mod history;
mod support;
