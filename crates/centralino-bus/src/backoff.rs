//! One retry schedule for every wait in the tree: reconnecting to an outside
//! peer (IMAP, SMTP, the SMSC, the SMS provider's API, RabbitMQ, PostgreSQL),
//! holding a delivery while the store is away, returning a failed one to the
//! broker. [`RetryParams`] says how the waits grow (doubling from a first step
//! to a ceiling, with jitter below it); [`Backoff`] is one running schedule.
//! The ceiling for peers is low enough that a service is back within 10 s of
//! its peer's return, however long the outage lasted. Pure: it only says how
//! long to wait; the waiting is tokio's, whose clock tests drive
//! (`tokio::time::pause`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The ceiling for peers: the longest wait between two tries, so a peer that
/// comes back is tried again within this long.
pub const PEER_MAX: Duration = Duration::from_secs(5);

/// How waits between tries grow: `first`, doubling up to `max`; each wait is
/// then shortened by a random fraction up to `jitter` (0 to 1), so instances
/// that failed together do not retry in step. Jitter only ever shortens a
/// wait: the ceiling holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryParams {
    pub first: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl RetryParams {
    /// Doubling from `first` to `max`, no jitter.
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max: max.max(first),
            jitter: 0.0,
        }
    }

    /// The same with up to `jitter` (clamped to 0..=1) of each wait taken off at random.
    pub fn with_jitter(self, jitter: f64) -> Self {
        Self {
            jitter: if jitter.is_nan() {
                0.0
            } else {
                jitter.clamp(0.0, 1.0)
            },
            ..self
        }
    }

    /// 1 s doubling up to [`PEER_MAX`]: reconnecting to an outside peer.
    pub fn peer() -> Self {
        Self::new(Duration::from_secs(1), PEER_MAX).with_jitter(0.2)
    }

    /// 200 ms doubling up to [`PEER_MAX`]: holding a delivery while the store
    /// (or another dependency of the handler) is unavailable.
    pub fn hold() -> Self {
        Self::new(Duration::from_millis(200), PEER_MAX).with_jitter(0.2)
    }

    /// 500 ms doubling up to 30 s by delivery count: how long a delivery that
    /// failed by itself waits before it goes back to the broker (and toward
    /// its delivery limit).
    pub fn redeliver() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30)).with_jitter(0.2)
    }

    /// The wait before try number `attempt` (0 for the first retry), given a
    /// `unit` in 0..1 for the jitter.
    pub fn wait(&self, attempt: u32, unit: f64) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max);
        let cut = (self.jitter * unit.clamp(0.0, 1.0)).clamp(0.0, 1.0);
        doubled.mul_f64(1.0 - cut)
    }

    /// A running schedule starting at `first`.
    pub fn backoff(self) -> Backoff {
        Backoff {
            params: self,
            attempt: 0,
        }
    }
}

/// One running schedule of [`RetryParams`]; [`Backoff::reset`] after a
/// success, so the next failure starts small again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    params: RetryParams,
    attempt: u32,
}

impl Backoff {
    /// Doubling waits between `first` and `max`, no jitter.
    pub fn new(first: Duration, max: Duration) -> Self {
        RetryParams::new(first, max).backoff()
    }

    /// [`RetryParams::peer`]: for reconnecting to an outside peer.
    pub fn peer() -> Self {
        RetryParams::peer().backoff()
    }

    /// The wait before the next try; the one after is twice as long, up to the ceiling.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.params.wait(self.attempt, random_unit());
        self.attempt = self.attempt.saturating_add(1);
        wait
    }

    /// The longest wait the next failure could get, without counting it.
    pub fn peek(&self) -> Duration {
        self.params.wait(self.attempt, 0.0)
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A number in 0..1, different on each call (for jitter; not for secrets).
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_ceiling_and_start_over_after_a_success() {
        let mut b = Backoff::new(Duration::from_secs(1), PEER_MAX);
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5, 5, 5, 5]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_secs(1));
        // However long the outage, no wait passes the ceiling, jitter or not.
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

    #[test]
    fn jitter_only_shortens_a_wait_and_by_at_most_its_fraction() {
        let p = RetryParams::new(Duration::from_secs(1), Duration::from_secs(8)).with_jitter(0.25);
        assert_eq!(p.wait(0, 0.0), Duration::from_secs(1));
        assert_eq!(p.wait(0, 1.0), Duration::from_millis(750));
        assert_eq!(p.wait(2, 0.5), Duration::from_millis(3_500));
        assert_eq!(p.wait(40, 0.0), Duration::from_secs(8), "no overflow");
        assert_eq!(p.wait(u32::MAX, 2.0), Duration::from_secs(6));
        let mut b = p.backoff();
        let waits: Vec<Duration> = (0..1000).map(|_| b.next_wait()).collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(8)));
        assert!(
            waits[10..].iter().any(|w| *w < Duration::from_secs(8)),
            "some jitter"
        );
        assert!(waits[10..].iter().all(|w| *w >= Duration::from_secs(6)));
        assert_eq!(RetryParams::peer().with_jitter(f64::NAN).jitter, 0.0);
        let u: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(u.windows(2).any(|w| w[0] != w[1]));
    }
}
