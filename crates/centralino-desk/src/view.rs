//! What kiosks, displays and the gRPC API see: tickets, boards and sites as
//! plain data (JSON through serde). The actor builds them; the HTTP and gRPC
//! APIs hand them out.

use serde::{Deserialize, Serialize};

/// A ticket as kiosks, displays and the gRPC API see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TicketView {
    pub id: String,
    pub site: String,
    pub service: String,
    /// The number on the ticket, e.g. `A007`.
    pub label: String,
    /// waiting, called, serving, served, no-show, closed.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter: Option<String>,
    pub recalls: u32,
    /// 1-based place among the waiting tickets of its service (0 when not waiting).
    pub position: u64,
    /// From routing's latest estimate; absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_wait_secs: Option<u64>,
    /// RFC 3339.
    pub issued_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub disposition: String,
}

/// What a display shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Board {
    pub site: String,
    /// Today's latest calls, newest (or most recently recalled) first.
    pub called: Vec<BoardCall>,
    pub waiting: Vec<ServiceWaiting>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BoardCall {
    pub ticket: String,
    pub counter: String,
    pub service: String,
    /// called, serving or served.
    pub state: String,
    pub recalls: u32,
    /// RFC 3339, the last call.
    pub called_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServiceWaiting {
    pub service: String,
    pub name: String,
    pub waiting: u64,
}

/// What a kiosk shows before a ticket is taken.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SiteInfo {
    pub id: String,
    pub timezone: String,
    pub open: bool,
    /// `HH:MM`, local time.
    pub opens: String,
    pub closes: String,
    pub services: Vec<ServiceWaiting>,
}
