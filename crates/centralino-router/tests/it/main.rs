//! Routing service tests through real RabbitMQ and PostgreSQL, with agents
//! connected over gRPC. `cargo xtask test` starts both services; run alone,
//! a missing service fails the test with how to start it.

mod routing;
mod support;
