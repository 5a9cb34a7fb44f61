//! Events per minute: a token bucket per project (or key), the rule a
//! rate limit applies.
//!
//! A bucket holds up to a minute's worth of events (`per_minute`) and
//! refills continuously at `per_minute / 60` a second: a project may send
//! its minute's events in a burst, then as fast as they refill. A request
//! takes as many tokens as it carries events, all or none, and when it
//! cannot, it is told how long until it could.

use std::time::{Duration, Instant};

/// Whose limit refused a request, as `X-Sentry-Rate-Limits` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    Project,
    Key,
}

impl LimitScope {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Project => "project",
            LimitScope::Key => "key",
        }
    }
}

/// One bucket; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens left as of `at`.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl Bucket {
    /// A full bucket of `per_minute` tokens, as of `now`.
    pub fn full(per_minute: u32, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(per_minute),
            at: now,
        }
    }

    /// The tokens there are at `now` under `per_minute`.
    fn refilled(&self, per_minute: u32, now: Instant) -> f64 {
        let rate = f64::from(per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * rate).min(f64::from(per_minute))
    }

    /// Whether `n` events may pass at `now` under `per_minute`: `Ok`, or
    /// how long until they could (a request of more events than a
    /// minute's is told a minute: split, it will pass). Takes nothing.
    pub fn check(&self, per_minute: u32, n: u32, now: Instant) -> Result<(), Duration> {
        if n > per_minute {
            return Err(Duration::from_secs(60));
        }
        let (tokens, wanted) = (self.refilled(per_minute, now), f64::from(n));
        if tokens >= wanted {
            return Ok(());
        }
        let rate = f64::from(per_minute) / 60.0;
        Err(Duration::from_secs_f64((wanted - tokens) / rate))
    }

    /// Takes `n` tokens at `now` (after a [`Bucket::check`] that passed).
    pub fn take(&mut self, per_minute: u32, n: u32, now: Instant) {
        self.tokens = (self.refilled(per_minute, now) - f64::from(n)).max(0.0);
        self.at = now;
    }

    /// Gives back `n` tokens taken for events that were then not accepted
    /// after all (storage refused them): the limit counts what got in.
    pub fn give_back(&mut self, per_minute: u32, n: u32, now: Instant) {
        self.tokens = (self.refilled(per_minute, now) + f64::from(n)).min(f64::from(per_minute));
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minutes_worth_passes_at_once_then_as_it_refills() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut bucket = Bucket::full(60, t0);
        // (time in ms, events, passes, or the wait in ms it is told)
        let table: [(u64, u32, Result<(), u64>); 7] = [
            (0, 50, Ok(())),
            (0, 10, Ok(())),
            (0, 1, Err(1000)),
            (500, 1, Err(500)),
            (1000, 1, Ok(())),
            (1000, 3, Err(3000)),
            (61_000, 61, Err(60_000)),
        ];
        for (ms, n, expected) in table {
            let got = bucket
                .check(60, n, at(ms))
                .map_err(|d| d.as_millis() as u64);
            assert_eq!(got, expected, "{n} at {ms} ms");
            if got.is_ok() {
                bucket.take(60, n, at(ms));
            }
        }
        // A full minute later the bucket is full again, never fuller.
        assert_eq!(bucket.check(60, 60, at(200_000)), Ok(()));
    }

    #[test]
    fn a_slow_limit_waits_long() {
        let t0 = Instant::now();
        let mut bucket = Bucket::full(2, t0);
        bucket.take(2, 2, t0);
        assert_eq!(bucket.check(2, 1, t0), Err(Duration::from_secs(30)));
    }
}
