//! Failed logins, counted per account and per client address, so that
//! neither guessing one account's password from many addresses nor many
//! accounts' from one address goes fast.
//!
//! A login reserves its attempt before the password is checked
//! ([`LoginLimiter::reserve`]): in one step, under one lock, it checks that
//! neither the account nor the address has used up its allowance and
//! counts the attempt as a failure. Only then does bcrypt run, and the
//! outcome settles the reservation: a wrong password keeps it counted
//! ([`LoginLimiter::failed`]); a success ([`LoginLimiter::succeeded`]) or a
//! refusal that checked no password, such as bad input or overload
//! ([`LoginLimiter::give_back`]), returns it. So concurrent guesses cannot
//! all pass the check before any of them is counted: attempts in flight
//! use the allowance as failures do. An attempt never settled (its client
//! went away mid-login) stays counted.
//!
//! Counts live in process memory, in a fixed window per key. Each map is
//! bounded: a new key in a full map first clears the windows that ended,
//! then evicts the least recently used window that blocks nothing; only
//! when every window remembered is blocking does the one that ends soonest
//! go. So a flood of made-up accounts or addresses costs bounded memory
//! and never frees a blocked account or address (as forgetting everything
//! at once would). Pure: the caller passes the time.

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

/// The failed-login counts (see the module documentation).
pub struct LoginLimiter {
    /// Both maps under one lock, so that checking both and counting in
    /// both is one step.
    maps: Mutex<Maps>,
}

struct Maps {
    accounts: Windows,
    addresses: Windows,
}

/// A login attempt counted before its password was checked; settle it
/// with the outcome ([`LoginLimiter::succeeded`], [`LoginLimiter::failed`]
/// or [`LoginLimiter::give_back`]).
#[derive(Debug)]
#[must_use = "settle the attempt with the login's outcome"]
pub struct Attempt {
    account: String,
    address: String,
    /// When the windows it was counted in started: a reservation is given
    /// back only to the window that holds it, never to a later one.
    account_window: Instant,
    address_window: Instant,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::with_capacity(MAX_KEYS)
    }
}

impl LoginLimiter {
    /// A limiter remembering at most `capacity` keys per map.
    fn with_capacity(capacity: usize) -> Self {
        LoginLimiter {
            maps: Mutex::new(Maps {
                accounts: Windows::new(PER_ACCOUNT, capacity),
                addresses: Windows::new(PER_ADDRESS, capacity),
            }),
        }
    }

    /// Reserves a login attempt for `account` from `address`, counted as a
    /// failure until settled; or how long to wait, if either has used up
    /// its allowance.
    pub fn reserve(&self, account: &str, address: &str, now: Instant) -> Result<Attempt, Duration> {
        let mut maps = self.lock();
        let by_account = maps.accounts.blocked(account, now);
        let by_address = maps.addresses.blocked(address, now);
        if let Some(wait) = by_account.max(by_address) {
            return Err(wait);
        }
        Ok(Attempt {
            account_window: maps.accounts.count(account, now),
            address_window: maps.addresses.count(address, now),
            account: account.to_owned(),
            address: address.to_owned(),
        })
    }

    /// A wrong password: the attempt stays counted.
    pub fn failed(&self, attempt: Attempt) {
        drop(attempt);
    }

    /// A right password clears its account's failures, and gives back the
    /// attempt's count on the address (only its own: one right password
    /// must not reopen a guessing address).
    pub fn succeeded(&self, attempt: Attempt) {
        let mut maps = self.lock();
        maps.accounts.0.remove(&attempt.account);
        maps.addresses
            .give_back(&attempt.address, attempt.address_window);
    }

    /// An attempt that checked no password (bad input, overload, an
    /// outage): it counts for nothing.
    pub fn give_back(&self, attempt: Attempt) {
        let mut maps = self.lock();
        maps.accounts
            .give_back(&attempt.account, attempt.account_window);
        maps.addresses
            .give_back(&attempt.address, attempt.address_window);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        // The maps hold counts only; one left half-updated by a panic is
        // still a sound limit.
        self.maps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One key's window.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    /// Failures and attempts in flight.
    counted: u32,
    /// When it was last counted in, for eviction.
    used: Instant,
}

impl Window {
    fn ended(&self, now: Instant) -> bool {
        now >= self.start + WINDOW
    }

    /// How long it still blocks, if it has used up `allowed`.
    fn blocks(&self, allowed: u32, now: Instant) -> Option<Duration> {
        (self.counted >= allowed && !self.ended(now)).then(|| self.start + WINDOW - now)
    }
}

/// The windows of one kind of key, with its allowance and bound.
struct Windows(HashMap<String, Window>, Limits);

#[derive(Clone, Copy)]
struct Limits {
    allowed: u32,
    capacity: usize,
}

impl Windows {
    fn new(allowed: u32, capacity: usize) -> Self {
        Windows(HashMap::new(), Limits { allowed, capacity })
    }

    fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        self.0.get(key)?.blocks(self.1.allowed, now)
    }

    /// Counts one attempt for `key`; the start of the window it counts in.
    fn count(&mut self, key: &str, now: Instant) -> Instant {
        if !self.0.contains_key(key) && self.0.len() >= self.1.capacity {
            self.make_room(now);
        }
        let fresh = Window {
            start: now,
            counted: 0,
            used: now,
        };
        let window = self.0.entry(key.to_owned()).or_insert(fresh);
        if window.ended(now) {
            *window = fresh;
        }
        window.counted += 1;
        window.used = now;
        window.start
    }

    /// Uncounts one attempt of `key`, if the window it was counted in is
    /// still the key's.
    fn give_back(&mut self, key: &str, window_start: Instant) {
        if let Some(window) = self.0.get_mut(key).filter(|w| w.start == window_start) {
            window.counted = window.counted.saturating_sub(1);
        }
    }

    /// Frees one place: the ended windows, else the least recently used
    /// one that blocks nothing, else the one that ends soonest.
    fn make_room(&mut self, now: Instant) {
        self.0.retain(|_, w| !w.ended(now));
        if self.0.len() < self.1.capacity {
            return;
        }
        let allowed = self.1.allowed;
        let victim = self
            .0
            .iter()
            .filter(|(_, w)| w.blocks(allowed, now).is_none())
            .min_by_key(|(_, w)| w.used)
            .or_else(|| self.0.iter().min_by_key(|(_, w)| w.start))
            .map(|(key, _)| key.clone());
        if let Some(key) = victim {
            self.0.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// `n` wrong passwords for `account` from `address` at `now`.
    fn fail(limiter: &LoginLimiter, account: &str, address: &str, now: Instant, n: u32) {
        for i in 0..n {
            let attempt = limiter
                .reserve(account, address, now)
                .unwrap_or_else(|wait| panic!("attempt {i} refused for {wait:?}"));
            limiter.failed(attempt);
        }
    }

    fn blocked(limiter: &LoginLimiter, account: &str, address: &str, now: Instant) -> bool {
        match limiter.reserve(account, address, now) {
            Ok(attempt) => {
                limiter.give_back(attempt);
                false
            }
            Err(_) => true,
        }
    }

    #[test]
    fn an_account_or_an_address_is_blocked_after_its_failures_until_the_window_ends() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        fail(&limiter, "ann@x.org", "10.0.0.1", t0, PER_ACCOUNT);
        let cases = [
            // account, address, when, blocked for
            ("ann@x.org", "10.0.0.1", Duration::ZERO, Some(WINDOW)),
            ("ann@x.org", "10.0.0.2", Duration::ZERO, Some(WINDOW)),
            ("ann@x.org", "10.0.0.2", WINDOW / 3, Some(WINDOW * 2 / 3)),
            ("bob@x.org", "10.0.0.1", Duration::ZERO, None),
            ("ann@x.org", "10.0.0.1", WINDOW, None),
        ];
        for (account, address, after, expected) in cases {
            let got = limiter.reserve(account, address, t0 + after);
            assert_eq!(
                got.as_ref().err().copied(),
                expected,
                "{account} from {address} after {after:?}"
            );
            if let Ok(attempt) = got {
                limiter.give_back(attempt);
            }
        }
    }

    #[test]
    fn many_accounts_from_one_address_block_the_address() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        for i in 0..PER_ADDRESS {
            fail(&limiter, &format!("user{i}@x.org"), "10.0.0.9", t0, 1);
        }
        assert!(blocked(&limiter, "new@x.org", "10.0.0.9", t0));
        assert!(!blocked(&limiter, "new@x.org", "10.0.0.8", t0));
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        for i in 0..PER_ADDRESS - 1 {
            fail(&limiter, &format!("user{i}@x.org"), "10.0.0.1", t0, 1);
        }
        fail(&limiter, "ann@x.org", "10.0.0.2", t0, PER_ACCOUNT - 1);
        let right = limiter.reserve("ann@x.org", "10.0.0.1", t0).unwrap();
        limiter.succeeded(right);
        // Ann may fail again in full; the address keeps its 49 failures,
        // its one success not among them.
        fail(&limiter, "ann@x.org", "10.0.0.3", t0, PER_ACCOUNT);
        assert!(!blocked(&limiter, "bob@x.org", "10.0.0.1", t0));
        fail(&limiter, "bob@x.org", "10.0.0.1", t0, 1);
        assert!(blocked(&limiter, "carl@x.org", "10.0.0.1", t0));
    }

    #[test]
    fn attempts_in_flight_use_the_allowance_until_given_back() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        let in_flight: Vec<Attempt> = (0..PER_ACCOUNT)
            .map(|i| {
                limiter
                    .reserve("ann@x.org", &format!("10.0.0.{i}"), t0)
                    .unwrap()
            })
            .collect();
        assert!(blocked(&limiter, "ann@x.org", "10.0.1.1", t0));
        let mut in_flight = in_flight.into_iter();
        limiter.give_back(in_flight.next().unwrap());
        let again = limiter.reserve("ann@x.org", "10.0.1.1", t0).unwrap();
        assert!(blocked(&limiter, "ann@x.org", "10.0.1.2", t0));
        limiter.failed(again);
        in_flight.for_each(|a| limiter.failed(a));
        assert!(blocked(&limiter, "ann@x.org", "10.0.1.2", t0));
    }

    #[test]
    fn concurrent_guesses_never_pass_more_than_the_allowance() {
        let t0 = Instant::now();
        let limiter = Arc::new(LoginLimiter::default());
        let guessers = 64;
        let start = Arc::new(Barrier::new(guessers));
        let threads: Vec<_> = (0..guessers)
            .map(|i| {
                let (limiter, start) = (limiter.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let attempt = limiter.reserve("ann@x.org", &format!("10.0.{i}.1"), t0);
                    attempt.map(|a| limiter.failed(a)).is_ok()
                })
            })
            .collect();
        let passed = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|&passed| passed)
            .count();
        assert_eq!(passed, PER_ACCOUNT as usize);
    }

    #[test]
    fn an_attempt_counted_in_an_ended_window_is_not_given_back_to_the_next() {
        let t0 = Instant::now();
        let limiter = LoginLimiter::default();
        let old = limiter.reserve("ann@x.org", "10.0.0.1", t0).unwrap();
        let later = t0 + WINDOW;
        fail(&limiter, "ann@x.org", "10.0.0.2", later, PER_ACCOUNT);
        limiter.give_back(old);
        assert!(blocked(&limiter, "ann@x.org", "10.0.0.3", later));
    }

    #[test]
    fn a_flood_of_new_keys_stays_bounded_and_never_frees_a_blocked_key() {
        let t0 = Instant::now();
        let capacity = 100;
        let limiter = LoginLimiter::with_capacity(capacity);
        fail(&limiter, "ann@x.org", "10.0.0.1", t0, PER_ACCOUNT);
        for i in 0..PER_ADDRESS {
            fail(&limiter, &format!("guess{i}@x.org"), "10.6.6.6", t0, 1);
        }
        // Someone with many addresses tries many accounts, each once.
        for i in 0..capacity * 20 {
            fail(&limiter, &format!("{i}@x.org"), &format!("addr{i}"), t0, 1);
        }
        {
            let maps = limiter.lock();
            assert!(maps.accounts.0.len() <= capacity);
            assert!(maps.addresses.0.len() <= capacity);
        }
        assert!(blocked(&limiter, "ann@x.org", "10.0.0.2", t0), "ann freed");
        assert!(
            blocked(&limiter, "bob@x.org", "10.6.6.6", t0),
            "address freed"
        );

        // Even a map full of blocked keys stays bounded: the window that
        // ends soonest gives way.
        let limiter = LoginLimiter::with_capacity(3);
        for (i, account) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let at = t0 + Duration::from_secs(i as u64);
            fail(&limiter, account, &format!("10.0.0.{i}"), at, PER_ACCOUNT);
        }
        let now = t0 + Duration::from_secs(4);
        assert_eq!(limiter.lock().accounts.0.len(), 3);
        for account in ["b", "c", "d"] {
            assert!(blocked(&limiter, account, "10.1.0.0", now), "{account}");
        }
        assert!(!blocked(&limiter, "a", "10.1.0.0", now));
    }
}
