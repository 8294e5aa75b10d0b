//! Desk adapter tests: kiosks, counters and boards over HTTP and gRPC, with
//! the real router, RabbitMQ and PostgreSQL (and headless Chromium for the
//! board page).

mod counters;
mod kiosk;
mod support;
