//! RateLimiter: the events per minute each limited project, and each
//! limited key, may send, checked by the ingestion routes before anything
//! is admitted.
//!
//! Not an actor: every request reads and updates it under a short mutex
//! (one map lookup and a little arithmetic), from the HTTP workers'
//! threads, without a message. It counts per process: with several Mesher
//! processes behind a load balancer, a project may send up to its limit
//! to each (see the README).

use crate::domain::rate_limit::Bucket;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Buckets kept: a limited project that has not sent for long enough to
/// be pushed out starts again with a full bucket, which it would have had
/// anyway after a minute.
const BUCKETS: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");

/// One limit a request is checked against: the bucket it draws from (a
/// project's or a key's id; both are UUIDv7, so they never collide) and
/// its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bucket: Uuid,
    pub per_minute: u32,
}

/// See the module documentation; cheap to clone (shared inside).
#[derive(Clone)]
pub struct RateLimiter(Arc<Mutex<LruCache<Uuid, Bucket>>>);

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter(Arc::new(Mutex::new(LruCache::new(BUCKETS))))
    }
}

impl RateLimiter {
    /// Takes `n` events from every one of `limits`, all or none: when any
    /// cannot pass them, nothing is taken from any, and `Err` tells the one
    /// that holds them longest (its index in `limits`) and how long until
    /// all would pass.
    pub fn admit(&self, limits: &[Limit], n: u32) -> Result<(), (usize, Duration)> {
        self.pass(limits, n, true)
    }

    /// Whether [`RateLimiter::admit`] would let `n` events through now,
    /// taking nothing: work done before the events are admitted (resolving
    /// source maps) is spared for a client that would be refused.
    pub fn check(&self, limits: &[Limit], n: u32) -> Result<(), (usize, Duration)> {
        self.pass(limits, n, false)
    }

    fn pass(&self, limits: &[Limit], n: u32, take: bool) -> Result<(), (usize, Duration)> {
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        // A panic while the lock was held left a bucket at worst stale.
        let mut buckets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut longest: Option<(usize, Duration)> = None;
        for (i, limit) in limits.iter().enumerate() {
            let bucket =
                buckets.get_or_insert_mut(limit.bucket, || Bucket::full(limit.per_minute, now));
            if let Err(wait) = bucket.check(limit.per_minute, n, now)
                && longest.is_none_or(|(_, longest)| wait > longest)
            {
                longest = Some((i, wait));
            }
        }
        if let Some(refused) = longest {
            return Err(refused);
        }
        if !take {
            return Ok(());
        }
        for limit in limits {
            if let Some(bucket) = buckets.get_mut(&limit.bucket) {
                bucket.take(limit.per_minute, n, now);
            }
        }
        Ok(())
    }

    /// Returns `n` events [`RateLimiter::admit`] let through that storage
    /// then refused (overloaded, shutting down): a client told to retry
    /// is not charged twice for the same events.
    pub fn give_back(&self, limits: &[Limit], n: u32) {
        let now = Instant::now();
        let mut buckets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for limit in limits {
            if let Some(bucket) = buckets.get_mut(&limit.bucket) {
                bucket.give_back(limit.per_minute, n, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(bucket: Uuid, per_minute: u32) -> [Limit; 1] {
        [Limit { bucket, per_minute }]
    }

    #[test]
    fn projects_count_apart_and_a_refusal_takes_nothing() {
        let limiter = RateLimiter::default();
        let (one, two) = (limit(Uuid::nil(), 4), limit(Uuid::max(), 4));
        assert_eq!(limiter.admit(&one, 3), Ok(()));
        // One left: two are refused, and take nothing.
        let (which, wait) = limiter.admit(&one, 2).unwrap_err();
        assert_eq!(which, 0);
        assert!(wait > Duration::from_secs(10), "{wait:?}");
        assert_eq!(limiter.admit(&one, 1), Ok(()));
        assert!(limiter.admit(&one, 1).is_err());
        // Another project has its own bucket.
        assert_eq!(limiter.admit(&two, 4), Ok(()));
    }

    #[test]
    fn a_check_answers_as_admit_would_and_takes_nothing() {
        let limiter = RateLimiter::default();
        let project = limit(Uuid::nil(), 2);
        for _ in 0..5 {
            assert_eq!(limiter.check(&project, 2), Ok(()));
        }
        assert!(limiter.check(&project, 3).is_err());
        assert_eq!(limiter.admit(&project, 2), Ok(()));
        assert_eq!(limiter.check(&project, 1).unwrap_err().0, 0);
    }

    #[test]
    fn events_given_back_pass_again_and_never_past_a_full_bucket() {
        let limiter = RateLimiter::default();
        let project = limit(Uuid::nil(), 4);
        assert_eq!(limiter.admit(&project, 4), Ok(()));
        assert!(limiter.admit(&project, 3).is_err());
        limiter.give_back(&project, 3);
        assert_eq!(limiter.admit(&project, 3), Ok(()));
        // Given back more than was taken: a minute's worth, no more.
        limiter.give_back(&project, 100);
        assert_eq!(limiter.admit(&project, 4), Ok(()));
        assert!(limiter.admit(&project, 1).is_err());
    }

    #[test]
    fn a_key_and_its_project_pass_together_or_neither_is_charged() {
        let limiter = RateLimiter::default();
        let project = Limit {
            bucket: Uuid::from_u128(1),
            per_minute: 10,
        };
        let (key_a, key_b) = (
            Limit {
                bucket: Uuid::from_u128(2),
                per_minute: 3,
            },
            Limit {
                bucket: Uuid::from_u128(3),
                per_minute: 100,
            },
        );
        // (key, events, passes or which limit refused)
        let table: [(Limit, u32, Result<(), usize>); 5] = [
            (key_a, 3, Ok(())),
            // Key a's limit refuses; the project is not charged for it.
            (key_a, 1, Err(0)),
            (key_b, 7, Ok(())),
            // The project's limit refuses; key b keeps its tokens.
            (key_b, 1, Err(1)),
            (key_b, 0, Ok(())),
        ];
        for (key, n, expected) in table {
            let got = limiter.admit(&[key, project], n).map_err(|(i, _)| i);
            assert_eq!(got, expected, "{n} through {key:?}");
        }
        // The project got its ten; key b still has 93 of its own.
        limiter.give_back(&[project], 5);
        assert_eq!(limiter.admit(&[key_b, project], 5), Ok(()));
    }

    #[test]
    fn when_both_refuse_the_wait_is_the_longer_one() {
        let limiter = RateLimiter::default();
        // A key with a second's wait left, a project with a minute's.
        let key = Limit {
            bucket: Uuid::from_u128(1),
            per_minute: 60,
        };
        let project = Limit {
            bucket: Uuid::from_u128(2),
            per_minute: 1,
        };
        assert_eq!(limiter.admit(&[key, project], 1), Ok(()));
        limiter.admit(&[key], 59).unwrap();
        let (which, wait) = limiter.admit(&[key, project], 1).unwrap_err();
        assert_eq!(which, 1, "the project's limit holds it longer");
        assert!(wait > Duration::from_secs(50), "{wait:?}");
    }
}
