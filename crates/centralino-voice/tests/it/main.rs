//! Voice adapter tests against real peers: `sipp` as the caller and
//! `baresip` as the agent's phone (both installed by `.ci/run`), RabbitMQ and
//! PostgreSQL.

mod agents;
mod calls;
mod support;
