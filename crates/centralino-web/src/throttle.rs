//! Login throttling, with no IO and no clock (the time is an input).
//!
//! Two limits, so that neither a guessing script nor a user who forgot their
//! password can burn the server's CPU (every attempt costs an argon2id hash)
//! or go on guessing:
//! - per user: [`LOCK_AFTER`] bad passwords in a row lock the user for
//!   [`LOCK_FOR_MS`] (an admin re-enabling the user clears it); a good
//!   password clears the count;
//! - per client address: at most [`PER_ADDRESS`] attempts in a
//!   [`WINDOW_MS`] window, whatever the user names.

use std::collections::HashMap;
use std::net::IpAddr;

/// Bad passwords in a row that lock a user.
pub const LOCK_AFTER: i32 = 10;
/// How long a lock lasts.
pub const LOCK_FOR_MS: i64 = 15 * 60 * 1000;
/// Attempts one address may make per window.
pub const PER_ADDRESS: u32 = 30;
/// The per-address window.
pub const WINDOW_MS: i64 = 60 * 1000;

/// A user's login record: bad passwords in a row, and the lock's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    pub failures: i32,
    pub locked_until: Option<i64>,
}

impl Attempts {
    /// The end of a lock in force at `now`.
    pub fn locked(&self, now: i64) -> Option<i64> {
        self.locked_until.filter(|until| *until > now)
    }

    /// After a bad password at `now`: one more failure, and a lock once
    /// they reach [`LOCK_AFTER`].
    pub fn failed(self, now: i64) -> Self {
        let failures = if self.locked_until.is_some_and(|u| u <= now) {
            1
        } else {
            self.failures.saturating_add(1)
        };
        if failures >= LOCK_AFTER {
            Attempts {
                failures,
                locked_until: Some(now + LOCK_FOR_MS),
            }
        } else {
            Attempts {
                failures,
                locked_until: None,
            }
        }
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy,
/// the nearest address in `X-Forwarded-For` that is not one (a client can
/// put anything at the start of the header, not after its own proxy).
/// `forwarded_for` holds every `X-Forwarded-For` header in order (a proxy
/// may add its own header line instead of appending). An entry that is not
/// an address stops the walk: what lies before it is the client's to write.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops = forwarded_for.iter().rev().flat_map(|h| h.rsplit(','));
    for hop in hops {
        match hop.trim().parse::<IpAddr>().map(|a| a.to_canonical()) {
            Ok(a) if trusted.contains(&a) => continue,
            Ok(a) => return a,
            Err(_) => break,
        }
    }
    peer
}

/// What attempts are counted under: the address, or an IPv6 address's /64
/// (one subscriber's whole network).
fn key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            IpAddr::V6(o.into())
        }
        v4 => v4,
    }
}

/// Attempts per client address, in fixed windows.
#[derive(Debug, Default)]
pub struct AddressThrottle {
    windows: HashMap<IpAddr, (i64, u32)>,
}

impl AddressThrottle {
    /// Counts an attempt from `address` at `now`: `Err(retry_at)` when the
    /// address is over its limit.
    pub fn attempt(&mut self, address: IpAddr, now: i64) -> Result<(), i64> {
        // Forget finished windows now and then, so the map stays small.
        if self.windows.len() > 10_000 {
            self.windows
                .retain(|_, (start, _)| now - *start < WINDOW_MS);
        }
        let entry = self.windows.entry(key(address)).or_insert((now, 0));
        if now - entry.0 >= WINDOW_MS {
            *entry = (now, 0);
        }
        if entry.1 >= PER_ADDRESS {
            return Err(entry.0 + WINDOW_MS);
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenth_bad_password_locks_and_the_lock_runs_out() {
        let mut a = Attempts::default();
        for n in 1..LOCK_AFTER {
            a = a.failed(n as i64);
            assert_eq!(a.locked(n as i64), None, "failure {n}");
        }
        let a = a.failed(100);
        assert_eq!(a.locked(100), Some(100 + LOCK_FOR_MS));
        assert_eq!(a.locked(100 + LOCK_FOR_MS), None, "over at its end");
        // A bad password after the lock ran out starts counting again.
        let b = a.failed(100 + LOCK_FOR_MS + 1);
        assert_eq!(b.failures, 1);
        assert_eq!(b.locked(100 + LOCK_FOR_MS + 1), None);
    }

    #[test]
    fn the_client_is_found_behind_trusted_proxies_only() {
        let proxy: IpAddr = [10, 0, 0, 9].into();
        let client: IpAddr = [203, 0, 113, 7].into();
        let trusted = [proxy];
        assert_eq!(
            client_address(proxy, &["198.51.100.1, 203.0.113.7"], &trusted),
            client,
            "the nearest untrusted hop, not what the client wrote first"
        );
        assert_eq!(
            client_address(proxy, &["198.51.100.1", "203.0.113.7"], &trusted),
            client,
            "the proxy's own header line comes last"
        );
        assert_eq!(
            client_address(client, &["198.51.100.1"], &trusted),
            client,
            "an untrusted peer's header is ignored"
        );
        assert_eq!(client_address(proxy, &[], &trusted), proxy);
        assert_eq!(
            client_address(proxy, &["198.51.100.1, 203.0.113.7:5000"], &trusted),
            proxy,
            "an entry that is no address stops the walk before what the client wrote"
        );
        let mapped: IpAddr = "::ffff:10.0.0.9".parse().expect("v4-mapped");
        assert_eq!(
            client_address(mapped, &["203.0.113.7"], &trusted),
            client,
            "an IPv4 client of a dual-stack listener is an IPv4 address"
        );
    }

    #[test]
    fn an_ipv6_network_shares_its_attempts() {
        let mut t = AddressThrottle::default();
        for n in 0..PER_ADDRESS {
            let a: IpAddr = format!("2001:db8::{:x}", n + 1).parse().expect("v6");
            assert!(t.attempt(a, 5).is_ok());
        }
        let other_host: IpAddr = "2001:db8::ffff".parse().expect("v6");
        assert!(
            t.attempt(other_host, 5).is_err(),
            "the /64 is one subscriber"
        );
    }

    #[test]
    fn an_address_gets_its_attempts_per_window() {
        let mut t = AddressThrottle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..PER_ADDRESS {
            assert!(t.attempt(ip, 5).is_ok());
        }
        assert_eq!(t.attempt(ip, 6), Err(5 + WINDOW_MS));
        assert!(
            t.attempt(other, 6).is_ok(),
            "another address is not limited"
        );
        assert!(t.attempt(ip, 5 + WINDOW_MS).is_ok(), "a new window");
    }
}
