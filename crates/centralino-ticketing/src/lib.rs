//! Walk-in desk rules without IO (the desk adapter stores and publishes what
//! these decide):
//!
//! - [`numbering`]: services with a ticket prefix, ticket labels (`A007`),
//!   one counter per site and service that starts again at 1 each day at
//!   midnight in the site's time zone, and opening hours (read from `HH:MM`
//!   and IANA zone names by [`numbering::parse_time`] and
//!   [`numbering::parse_time_zone`]).
//! - [`ticket`]: a ticket's life at the counter: called, recalled, no-show
//!   after too many recalls or too long, served with a disposition, or
//!   transferred to another service keeping its place in line.
//! - [`appointment`]: whether a booked slot can check in now, and with what
//!   priority.

pub mod appointment;
pub mod numbering;
pub mod ticket;
