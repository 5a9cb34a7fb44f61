//! Failed logins, counted per account and per client address, so that
//! neither guessing one account's password from many addresses nor many
//! accounts' from one address goes fast.
//!
//! Counts live in process memory, in a fixed window per key; each map is
//! bounded, and when full it forgets the windows that ended (then, if
//! still full, all of them: a flood of distinct keys then costs only a
//! fresh start, never unbounded memory). Pure: the caller passes the time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per account within a window.
pub const PER_ACCOUNT: u32 = 10;
/// Failures allowed per client address within a window (an office behind
/// one address has several people).
pub const PER_ADDRESS: u32 = 50;
/// How long a window lasts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys remembered per map.
const MAX_KEYS: usize = 10_000;

#[derive(Default)]
pub struct LoginLimiter {
    accounts: Mutex<Windows>,
    addresses: Mutex<Windows>,
}

#[derive(Default)]
struct Windows(HashMap<String, (Instant, u32)>);

impl Windows {
    /// How long `key` must still wait, if it has used up `allowed`.
    fn blocked(&self, key: &str, allowed: u32, now: Instant) -> Option<Duration> {
        let &(start, failures) = self.0.get(key)?;
        let ends = start + WINDOW;
        (failures >= allowed && now < ends).then(|| ends - now)
    }

    fn fail(&mut self, key: &str, now: Instant) {
        if self.0.len() >= MAX_KEYS && !self.0.contains_key(key) {
            self.0.retain(|_, (start, _)| now < *start + WINDOW);
            if self.0.len() >= MAX_KEYS {
                self.0.clear();
            }
        }
        let entry = self.0.entry(key.to_owned()).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

impl LoginLimiter {
    /// How long a login for `account` from `address` must wait, if either
    /// has failed too often lately.
    pub fn blocked(&self, account: &str, address: &str, now: Instant) -> Option<Duration> {
        let by_account = lock(&self.accounts).blocked(account, PER_ACCOUNT, now);
        let by_address = lock(&self.addresses).blocked(address, PER_ADDRESS, now);
        by_account.max(by_address)
    }

    /// Counts a failed login.
    pub fn failed(&self, account: &str, address: &str, now: Instant) {
        lock(&self.accounts).fail(account, now);
        lock(&self.addresses).fail(address, now);
    }

    /// A successful login clears its account's failures (not its
    /// address's: one right password must not reopen a guessing address).
    pub fn succeeded(&self, account: &str) {
        lock(&self.accounts).0.remove(account);
    }
}

fn lock(m: &Mutex<Windows>) -> std::sync::MutexGuard<'_, Windows> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_or_an_address_is_blocked_after_its_failures_until_the_window_ends() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        for _ in 0..PER_ACCOUNT {
            assert_eq!(limiter.blocked("ann@x.org", "10.0.0.1", t0), None);
            limiter.failed("ann@x.org", "10.0.0.1", t0);
        }
        let cases = [
            // account, address, when, blocked for
            ("ann@x.org", "10.0.0.1", Duration::ZERO, Some(WINDOW)),
            ("ann@x.org", "10.0.0.2", Duration::ZERO, Some(WINDOW)),
            ("ann@x.org", "10.0.0.2", WINDOW / 3, Some(WINDOW * 2 / 3)),
            ("bob@x.org", "10.0.0.1", Duration::ZERO, None),
            ("ann@x.org", "10.0.0.1", WINDOW, None),
        ];
        for (account, address, after, expected) in cases {
            assert_eq!(
                limiter.blocked(account, address, t0 + after),
                expected,
                "{account} from {address} after {after:?}"
            );
        }
    }

    #[test]
    fn many_accounts_from_one_address_block_the_address() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        for i in 0..PER_ADDRESS {
            limiter.failed(&format!("user{i}@x.org"), "10.0.0.9", t0);
        }
        assert!(limiter.blocked("new@x.org", "10.0.0.9", t0).is_some());
        assert!(limiter.blocked("new@x.org", "10.0.0.8", t0).is_none());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        for _ in 0..PER_ADDRESS {
            limiter.failed("ann@x.org", "10.0.0.1", t0);
        }
        limiter.succeeded("ann@x.org");
        assert!(limiter.blocked("ann@x.org", "10.0.0.2", t0).is_none());
        assert!(limiter.blocked("ann@x.org", "10.0.0.1", t0).is_some());
    }

    #[test]
    fn the_maps_stay_bounded_under_a_flood_of_keys() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        for i in 0..(MAX_KEYS * 3) {
            limiter.failed(&format!("{i}@x.org"), &format!("addr{i}"), t0);
        }
        assert!(lock(&limiter.accounts).0.len() <= MAX_KEYS);
        assert!(lock(&limiter.addresses).0.len() <= MAX_KEYS);
    }
}
