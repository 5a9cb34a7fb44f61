//! RateLimiter: the events per minute each limited project may send,
//! checked by the ingestion routes before anything is admitted.
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

/// See the module documentation; cheap to clone (shared inside).
#[derive(Clone)]
pub struct RateLimiter(Arc<Mutex<LruCache<Uuid, Bucket>>>);

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter(Arc::new(Mutex::new(LruCache::new(BUCKETS))))
    }
}

impl RateLimiter {
    /// Takes `n` events from `project`'s limit of `per_minute`, all or
    /// none: `Err` tells how long until they would pass.
    pub fn admit(&self, project: Uuid, per_minute: u32, n: u32) -> Result<(), Duration> {
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        // A panic while the lock was held left a bucket at worst stale.
        let mut buckets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.get_or_insert_mut(project, || Bucket::full(per_minute, now));
        bucket.check(per_minute, n, now)?;
        bucket.take(per_minute, n, now);
        Ok(())
    }

    /// Returns `n` events [`RateLimiter::admit`] let through that storage
    /// then refused (overloaded, shutting down): a client told to retry
    /// is not charged twice for the same events.
    pub fn give_back(&self, project: Uuid, per_minute: u32, n: u32) {
        let mut buckets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = buckets.get_mut(&project) {
            bucket.give_back(per_minute, n, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_count_apart_and_a_refusal_takes_nothing() {
        let limiter = RateLimiter::default();
        let (one, two) = (Uuid::nil(), Uuid::max());
        assert_eq!(limiter.admit(one, 4, 3), Ok(()));
        // One left: two are refused, and take nothing.
        let wait = limiter.admit(one, 4, 2).unwrap_err();
        assert!(wait > Duration::from_secs(10), "{wait:?}");
        assert_eq!(limiter.admit(one, 4, 1), Ok(()));
        assert!(limiter.admit(one, 4, 1).is_err());
        // Another project has its own bucket.
        assert_eq!(limiter.admit(two, 4, 4), Ok(()));
    }

    #[test]
    fn events_given_back_pass_again_and_never_past_a_full_bucket() {
        let limiter = RateLimiter::default();
        let project = Uuid::nil();
        assert_eq!(limiter.admit(project, 4, 4), Ok(()));
        assert!(limiter.admit(project, 4, 3).is_err());
        limiter.give_back(project, 4, 3);
        assert_eq!(limiter.admit(project, 4, 3), Ok(()));
        // Given back more than was taken: a minute's worth, no more.
        limiter.give_back(project, 4, 100);
        assert_eq!(limiter.admit(project, 4, 4), Ok(()));
        assert!(limiter.admit(project, 4, 1).is_err());
    }
}
