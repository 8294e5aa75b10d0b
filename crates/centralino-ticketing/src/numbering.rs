//! Ticket numbers and opening hours (and how a site's hours and time zone
//! are written in the configuration).

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

/// A branch: its time zone decides when the numbering starts again and
/// whether it is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    pub id: String,
    pub tz: Tz,
    /// Opening hours in local time (`opens < closes`).
    pub opens: NaiveTime,
    pub closes: NaiveTime,
}

impl Site {
    /// The site's calendar day at `at` (tickets are numbered per day).
    pub fn business_day(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    /// Whether the site takes tickets at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.tz).time();
        self.opens <= local && local < self.closes
    }
}

/// Why a site's opening hours or time zone could not be read. Each message
/// quotes what was written (the configuration puts the key in front).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    #[error("{0:?} is not a time like 08:30")]
    Time(String),
    #[error("{0:?} is not an IANA time zone like Europe/Rome")]
    TimeZone(String),
}

/// An opening or closing time as a site's hours are written: `HH:MM`,
/// 24-hour, local time (`08:30`, `17:00`), spaces around it ignored.
pub fn parse_time(text: &str) -> Result<NaiveTime, HoursError> {
    NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| HoursError::Time(text.into()))
}

/// A closing time: as [`parse_time`], and `24:00` for a site open until the
/// end of the day (the last instant of it, so `is_open` holds to midnight).
pub fn parse_closing_time(text: &str) -> Result<NaiveTime, HoursError> {
    if text.trim() == "24:00" {
        return NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999)
            .ok_or_else(|| HoursError::Time(text.into()));
    }
    parse_time(text)
}

/// A closing time as it is written: `HH:MM`, and `24:00` for midnight (what
/// [`parse_closing_time`] reads back).
pub fn format_closing_time(t: NaiveTime) -> String {
    match parse_closing_time("24:00") {
        Ok(midnight) if t == midnight => "24:00".to_owned(),
        _ => t.format("%H:%M").to_string(),
    }
}

/// A site's time zone: an IANA name (`Europe/Rome`, `UTC`), spaces around it
/// ignored.
pub fn parse_time_zone(text: &str) -> Result<Tz, HoursError> {
    text.trim()
        .parse::<Tz>()
        .map_err(|_| HoursError::TimeZone(text.into()))
}

/// A service's prefix: 1 to 3 ASCII capital letters (`A`, `B`, `PAY`).
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if (1..=3).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "ticket prefix `{prefix}` must be 1 to 3 capital letters"
        ))
    }
}

/// What a ticket shows: the prefix and the number with at least `digits`
/// digits (`A007`).
pub fn label(prefix: &str, number: u32, digits: usize) -> String {
    format!("{prefix}{number:0digits$}")
}

/// How many tickets a site and service gave out on which day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DailyCounter {
    pub day: Option<NaiveDate>,
    /// The day's last sequence number (1, 2, …; it does not wrap).
    pub last: u32,
}

impl DailyCounter {
    /// The next sequence number on `day`: 1 on a new day, then one more each
    /// time. What the ticket shows is [`shown`] of it.
    pub fn next(&mut self, day: NaiveDate) -> u32 {
        if self.day != Some(day) {
            self.day = Some(day);
            self.last = 0;
        }
        self.last = self.last.saturating_add(1);
        self.last
    }
}

/// The number printed for the day's `seq`-th ticket with `digits` digits:
/// 1 to 999 for three, then 1 again (the sequence itself stays unique).
pub fn shown(seq: u32, digits: usize) -> u32 {
    let max = 10u32.saturating_pow(u32::try_from(digits).unwrap_or(9).min(9)) - 1;
    (seq.max(1) - 1) % max.max(1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn rome() -> Site {
        Site {
            id: "roma-centro".into(),
            tz: chrono_tz::Europe::Rome,
            opens: NaiveTime::from_hms_opt(8, 30, 0).expect("time"),
            closes: NaiveTime::from_hms_opt(17, 0, 0).expect("time"),
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn the_day_turns_at_local_midnight() {
        let site = rome();
        // 23:30 UTC on 14 January is 00:30 on the 15th in Rome (UTC+1).
        assert_eq!(
            site.business_day(utc(2026, 1, 14, 22, 59)),
            NaiveDate::from_ymd_opt(2026, 1, 14).expect("date")
        );
        assert_eq!(
            site.business_day(utc(2026, 1, 14, 23, 30)),
            NaiveDate::from_ymd_opt(2026, 1, 15).expect("date")
        );
        // In summer Rome is UTC+2: 22:30 UTC is already the next day.
        assert_eq!(
            site.business_day(utc(2026, 7, 14, 22, 30)),
            NaiveDate::from_ymd_opt(2026, 7, 15).expect("date")
        );
        // Daylight saving starts on 29 March 2026: 08:30 local is 06:30 UTC.
        assert!(!site.is_open(utc(2026, 3, 30, 6, 29)));
        assert!(site.is_open(utc(2026, 3, 30, 6, 30)));
        assert!(
            site.is_open(utc(2026, 3, 27, 7, 30)),
            "08:30 in winter is 07:30 UTC"
        );
        assert!(
            !site.is_open(utc(2026, 3, 30, 15, 0)),
            "17:00 local is closed"
        );
    }

    #[test]
    fn a_site_may_close_at_midnight() {
        let close = parse_closing_time("24:00").expect("24:00 closes at midnight");
        let site = Site {
            id: "s".into(),
            tz: chrono_tz::UTC,
            opens: NaiveTime::MIN,
            closes: close,
        };
        let at = |h, m, s| {
            chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
                .and_then(|d| d.and_hms_opt(h, m, s))
                .expect("time")
                .and_utc()
        };
        assert!(site.is_open(at(23, 59, 59)));
        assert!(site.is_open(at(0, 0, 0)));
        assert_eq!(parse_closing_time("17:00"), parse_time("17:00"));
        assert_eq!(format_closing_time(close), "24:00");
        assert_eq!(
            format_closing_time(parse_time("17:05").expect("time")),
            "17:05"
        );
        assert!(parse_closing_time("24:01").is_err());
    }

    #[test]
    fn hours_are_read_as_local_hh_mm() {
        let hm = |h, m| NaiveTime::from_hms_opt(h, m, 0).expect("time");
        for (text, time) in [
            ("08:30", hm(8, 30)),
            ("17:00", hm(17, 0)),
            ("00:00", hm(0, 0)),
            ("23:59", hm(23, 59)),
            (" 09:15 ", hm(9, 15)),
            ("9:05", hm(9, 5)),
        ] {
            assert_eq!(parse_time(text), Ok(time), "{text:?}");
        }
        for text in [
            "", "24:00", "12:60", "8.30", "0830", "08:30:00", "08:30pm", "noon", "-1:00",
        ] {
            assert_eq!(
                parse_time(text),
                Err(HoursError::Time(text.into())),
                "{text:?}"
            );
        }
        assert_eq!(
            parse_time("8h30").map_err(|e| e.to_string()),
            Err(r#""8h30" is not a time like 08:30"#.to_owned())
        );
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(parse_time_zone("Europe/Rome"), Ok(chrono_tz::Europe::Rome));
        assert_eq!(parse_time_zone(" UTC "), Ok(chrono_tz::UTC));
        for text in ["", "CEST", "Europe/Milano", "+01:00"] {
            assert_eq!(
                parse_time_zone(text),
                Err(HoursError::TimeZone(text.into())),
                "{text:?}"
            );
        }
        assert_eq!(
            parse_time_zone("Rome").map_err(|e| e.to_string()),
            Err(r#""Rome" is not an IANA time zone like Europe/Rome"#.to_owned())
        );
    }

    #[test]
    fn numbers_start_again_each_day_and_wrap_after_the_last() {
        let mut c = DailyCounter::default();
        let d1 = NaiveDate::from_ymd_opt(2026, 1, 14).expect("date");
        let d2 = d1.succ_opt().expect("next day");
        assert_eq!((c.next(d1), c.next(d1), c.next(d1)), (1, 2, 3));
        assert_eq!(c.next(d2), 1, "a new day starts at 1");
        c.last = 999;
        assert_eq!(c.next(d2), 1000, "the sequence goes on");
        assert_eq!(shown(999, 3), 999);
        assert_eq!(shown(1000, 3), 1, "999 is followed by 1 on the ticket");
        assert_eq!(shown(1999, 3), 1);
        assert_eq!(shown(100, 2), 1);
        assert_eq!(label("A", 7, 3), "A007");
        assert_eq!(label("PAY", 1234, 3), "PAY1234");
        assert!(validate_prefix("B").is_ok());
        assert!(validate_prefix("b").is_err());
        assert!(validate_prefix("ABCD").is_err());
        assert!(validate_prefix("").is_err());
    }
}
