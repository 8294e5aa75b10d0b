//! Integration tests of centralino-bus: one contract suite run against the
//! in-process bus and against real RabbitMQ, plus RabbitMQ fault tests.

mod contract;
mod faults;
mod harness;
