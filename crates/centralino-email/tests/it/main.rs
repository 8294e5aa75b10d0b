//! Email adapter tests against a real Dovecot (IMAP), a real SMTP server
//! (aiosmtpd), RabbitMQ and PostgreSQL (and the same code on SQLite). `.ci/run`
//! installs Dovecot and aiosmtpd; a missing one fails the test with how to
//! install it.

mod email;
mod support;
