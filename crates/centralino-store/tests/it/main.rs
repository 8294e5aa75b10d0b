//! Integration tests of centralino-store: one suite run against SQLite and real
//! PostgreSQL, plus the inbox absorbing redeliveries from real RabbitMQ and the
//! outbox relay through a long broker outage.

mod contract;
mod leader;
mod outage;
mod redelivery;
