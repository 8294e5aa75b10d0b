//! Booked slots checking in at the kiosk. Times are milliseconds since the
//! epoch.

/// How early and how late a booked customer may check in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckInRules {
    /// Checking in more than this long before the slot is refused.
    pub early_ms: i64,
    /// Checking in up to this long after the slot started still counts.
    pub grace_ms: i64,
}

impl Default for CheckInRules {
    fn default() -> Self {
        Self {
            early_ms: 30 * 60 * 1000,
            grace_ms: 10 * 60 * 1000,
        }
    }
}

/// A booked slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub starts_at: i64,
    pub ends_at: i64,
}

/// Why a check-in was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckInError {
    #[error("too early: check in from {minutes} minute(s) before the appointment")]
    TooEarly { minutes: i64 },
    #[error("the appointment's time has passed: take a ticket instead")]
    Missed,
}

/// Whether the slot may check in at `now`. Accepted check-ins wait with the
/// appointment priority; the ticket's place counts from the slot's start
/// (an early customer is not served before their time).
pub fn check_in(slot: &Slot, rules: &CheckInRules, now: i64) -> Result<i64, CheckInError> {
    if now < slot.starts_at.saturating_sub(rules.early_ms) {
        return Err(CheckInError::TooEarly {
            minutes: rules.early_ms / 60_000,
        });
    }
    if now
        > slot
            .starts_at
            .saturating_add(rules.grace_ms)
            .min(slot.ends_at.max(slot.starts_at))
    {
        return Err(CheckInError::Missed);
    }
    Ok(now.max(slot.starts_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn the_check_in_window() {
        let slot = Slot {
            starts_at: 100 * MIN,
            ends_at: 120 * MIN,
        };
        let rules = CheckInRules {
            early_ms: 30 * MIN,
            grace_ms: 10 * MIN,
        };
        assert_eq!(
            check_in(&slot, &rules, 69 * MIN),
            Err(CheckInError::TooEarly { minutes: 30 })
        );
        assert_eq!(
            check_in(&slot, &rules, 70 * MIN),
            Ok(100 * MIN),
            "early: placed at its time"
        );
        assert_eq!(check_in(&slot, &rules, 105 * MIN), Ok(105 * MIN));
        assert_eq!(check_in(&slot, &rules, 110 * MIN), Ok(110 * MIN));
        assert_eq!(
            check_in(&slot, &rules, 111 * MIN),
            Err(CheckInError::Missed)
        );
        let short = Slot {
            starts_at: 100 * MIN,
            ends_at: 105 * MIN,
        };
        assert_eq!(
            check_in(&short, &rules, 106 * MIN),
            Err(CheckInError::Missed),
            "never after the slot's end"
        );
    }
}
