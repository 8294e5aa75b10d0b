//! Desk adapter tests: kiosks over HTTP, RabbitMQ and PostgreSQL.

mod kiosk;
