//! Integration tests of centralino-store: one suite run against SQLite and real
//! PostgreSQL, plus the inbox absorbing redeliveries from real RabbitMQ.

mod contract;
mod redelivery;
