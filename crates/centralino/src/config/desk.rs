//! The walk-in desk's section (`[desk]`): sites with their time zone, hours,
//! counters and printer, the services tickets are taken for, ticket and
//! check-in rules. Hours and time zones are read by ticketing's grammar
//! (`centralino_ticketing::numbering::parse_time`, `parse_time_zone`).

use std::net::SocketAddr;

use centralino_ticketing::numbering;
use serde::{Deserialize, Serialize};

use super::{IdentityConfig, number};

/// The walk-in desk: kiosks, counters and display boards. It runs when
/// `[[desk.sites]]` defines at least one site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeskSection {
    /// The HTTP API for kiosks and boards (the board page is `/sites/<id>/board`).
    pub listen: String,
    /// Digits of a ticket number (`A007`: 3).
    #[serde(deserialize_with = "number")]
    pub digits: usize,
    /// Recalls a counter may make; one more makes the ticket a no-show.
    #[serde(deserialize_with = "number")]
    pub max_recalls: u32,
    /// A called ticket not started within this long is a no-show.
    #[serde(deserialize_with = "number")]
    pub no_show_after_secs: u64,
    /// A booked customer may check in this long before the slot.
    #[serde(deserialize_with = "number")]
    pub check_in_early_mins: u64,
    /// …and up to this long after it started.
    #[serde(deserialize_with = "number")]
    pub check_in_grace_mins: u64,
    /// Added to the service's priority for a booked customer.
    #[serde(deserialize_with = "number")]
    pub appointment_priority: u32,
    /// Calls a board shows.
    #[serde(deserialize_with = "number")]
    pub board_size: usize,
    /// Text a customer who gave a phone once their ticket is at this place or
    /// nearer (through the SMS adapter). 0: never.
    #[serde(deserialize_with = "number")]
    pub notify_at_position: u64,
    /// The text; `{ticket}`, `{site}` and `{position}` are filled in.
    pub notify_text: String,
    /// Kiosks must send a bearer token (role integrator, from `centralino
    /// token`) to take tickets and check in. `false` only on a closed branch LAN.
    pub kiosk_auth: bool,
    pub sites: Vec<DeskSiteSection>,
    pub services: Vec<DeskServiceSection>,
}

impl Default for DeskSection {
    fn default() -> Self {
        let rules = centralino_ticketing::ticket::Rules::default();
        let check_in = centralino_ticketing::appointment::CheckInRules::default();
        Self {
            listen: "127.0.0.1:8090".into(),
            digits: 3,
            max_recalls: rules.max_recalls,
            no_show_after_secs: u64::try_from(rules.no_show_after_ms / 1_000).unwrap_or(300),
            check_in_early_mins: u64::try_from(check_in.early_ms / 60_000).unwrap_or(30),
            check_in_grace_mins: u64::try_from(check_in.grace_ms / 60_000).unwrap_or(10),
            appointment_priority: 50,
            board_size: 6,
            notify_at_position: 0,
            notify_text: "Ticket {ticket}: it is nearly your turn ({position} in line).".into(),
            kiosk_auth: true,
            sites: Vec::new(),
            services: Vec::new(),
        }
    }
}

/// A branch (`[[desk.sites]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskSiteSection {
    pub id: String,
    /// IANA time zone, e.g. `Europe/Rome`: numbering starts again at local midnight.
    pub timezone: String,
    /// `HH:MM`, local time.
    pub opens: String,
    /// `HH:MM`, local time; `24:00` for open until midnight.
    pub closes: String,
    /// Counter names, e.g. `["1", "2", "3"]`.
    #[serde(default)]
    pub counters: Vec<String>,
    /// The kiosk's ticket printer, ESC/POS over TCP: `host:port` (port 9100
    /// by default). Empty: no printer.
    #[serde(default)]
    pub printer: String,
}

/// A service tickets are taken for (`[[desk.services]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeskServiceSection {
    /// What kiosks send, e.g. `A`.
    pub code: String,
    pub name: String,
    /// Printed before the number; default: the code.
    #[serde(default)]
    pub prefix: String,
    /// Routing queue; `{site}` stands for the site's id.
    pub queue: String,
    #[serde(default)]
    pub priority: u32,
}

impl DeskSection {
    /// Whether the adapter has anything to run.
    pub fn configured(&self) -> bool {
        !self.sites.is_empty()
    }

    /// The adapter's settings (`None` when it is not configured), or the
    /// errors naming each bad key.
    pub fn desk_config(
        &self,
        identity: &IdentityConfig,
    ) -> Result<Option<centralino_desk::DeskConfig>, Vec<String>> {
        if !self.configured() {
            if !self.services.is_empty() {
                return Err(vec![
                    "desk: [[desk.sites]] is needed to issue tickets (see deploy/desk.toml)"
                        .to_owned(),
                ]);
            }
            return Ok(None);
        }
        let mut errors = Vec::new();
        let listen = self.listen.trim().parse().unwrap_or_else(|_| {
            errors.push(format!(
                "desk.listen: {:?} is not an address like 0.0.0.0:8090",
                self.listen
            ));
            SocketAddr::from(([127, 0, 0, 1], 8090))
        });
        let time = |errors: &mut Vec<String>, key: String, v: &str, closing: bool| {
            let parsed = if closing {
                numbering::parse_closing_time(v)
            } else {
                numbering::parse_time(v)
            };
            parsed.unwrap_or_else(|e| {
                errors.push(format!("{key}: {e}"));
                chrono::NaiveTime::MIN
            })
        };
        let mut sites = Vec::new();
        let mut counters = std::collections::HashMap::new();
        let mut printers = std::collections::HashMap::new();
        for (i, s) in self.sites.iter().enumerate() {
            let tz = numbering::parse_time_zone(&s.timezone).unwrap_or_else(|e| {
                errors.push(format!("desk.sites[{i}].timezone: {e}"));
                chrono_tz::UTC
            });
            let opens = time(
                &mut errors,
                format!("desk.sites[{i}].opens"),
                &s.opens,
                false,
            );
            let closes = time(
                &mut errors,
                format!("desk.sites[{i}].closes"),
                &s.closes,
                true,
            );
            sites.push(numbering::Site {
                id: s.id.trim().to_owned(),
                tz,
                opens,
                closes,
            });
            counters.insert(s.id.trim().to_owned(), s.counters.clone());
            let printer = s.printer.trim();
            if !printer.is_empty() {
                let with_port = if printer.contains(':') {
                    printer.to_owned()
                } else {
                    format!("{printer}:9100")
                };
                match with_port.parse::<SocketAddr>() {
                    Ok(a) => {
                        printers.insert(s.id.trim().to_owned(), a);
                    }
                    Err(_) => errors.push(format!(
                        "desk.sites[{i}].printer: {:?} is not an address like 10.0.0.5:9100",
                        s.printer
                    )),
                }
            }
        }
        let config = centralino_desk::DeskConfig {
            listen,
            sites,
            services: self
                .services
                .iter()
                .map(|s| centralino_desk::ServiceConfig {
                    code: s.code.trim().to_owned(),
                    name: s.name.clone(),
                    prefix: if s.prefix.is_empty() {
                        s.code.trim().to_owned()
                    } else {
                        s.prefix.clone()
                    },
                    queue: s.queue.trim().to_owned(),
                    priority: s.priority,
                })
                .collect(),
            digits: self.digits,
            rules: centralino_domain::IdentityRules::with_default_region(&identity.default_region)
                .unwrap_or_default(),
            counters,
            tickets: centralino_ticketing::ticket::Rules {
                max_recalls: self.max_recalls,
                no_show_after_ms: i64::try_from(self.no_show_after_secs.saturating_mul(1_000))
                    .unwrap_or(i64::MAX),
            },
            check_in: centralino_ticketing::appointment::CheckInRules {
                early_ms: i64::try_from(self.check_in_early_mins.saturating_mul(60_000))
                    .unwrap_or(i64::MAX),
                grace_ms: i64::try_from(self.check_in_grace_mins.saturating_mul(60_000))
                    .unwrap_or(i64::MAX),
            },
            appointment_priority: self.appointment_priority,
            board_size: self.board_size,
            notify: (self.notify_at_position > 0).then(|| centralino_desk::TurnNotice {
                at_position: self.notify_at_position,
                text: self.notify_text.clone(),
            }),
            printers,
            // Set by the caller, who holds the signing key, when `kiosk_auth`.
            kiosk_key: None,
            clock: std::sync::Arc::new(chrono::Utc::now),
        };
        if errors.is_empty()
            && let Err(e) = config.validate()
        {
            errors.push(e);
        }
        if errors.is_empty() {
            Ok(Some(config))
        } else {
            Err(errors)
        }
    }
}
