//! One retry schedule for every outside peer (IMAP, SMTP, the SMSC, the SMS
//! provider's API, RabbitMQ, PostgreSQL): waits double from a first step up to
//! a ceiling low enough that a service is back within 10 s of its peer's
//! return, however long the outage lasted. Pure: it only says how long to wait.

use std::time::Duration;

/// The ceiling for peers: the longest wait between two tries, so a peer that
/// comes back is tried again within this long.
pub const PEER_MAX: Duration = Duration::from_secs(5);

/// Doubling waits between `first` and `max`; [`Backoff::reset`] after a
/// success, so the next failure starts small again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        let max = max.max(first);
        Self {
            first,
            max,
            next: first,
        }
    }

    /// 1 s doubling up to [`PEER_MAX`]: for reconnecting to an outside peer.
    pub fn peer() -> Self {
        Self::new(Duration::from_secs(1), PEER_MAX)
    }

    /// The wait before the next try; the one after is twice as long, up to the ceiling.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        wait
    }

    /// The wait the next failure would get, without counting it.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_ceiling_and_start_over_after_a_success() {
        let mut b = Backoff::peer();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5, 5, 5, 5]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_secs(1));
        // However long the outage, no wait passes the ceiling.
        let mut b = Backoff::peer();
        assert!((0..10_000).all(|_| b.next_wait() <= PEER_MAX));
        let mut tiny = Backoff::new(Duration::from_millis(100), Duration::from_millis(10));
        assert_eq!(
            tiny.next_wait(),
            Duration::from_millis(100),
            "max below first"
        );
        assert_eq!(tiny.next_wait(), Duration::from_millis(100));
    }
}
