//! RateLimiter: the events per minute each limited project and key may
//! send, checked by the ingestion routes before anything is admitted.
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

/// Buckets kept: a limited project or key that has not sent for long
/// enough to be pushed out starts again with a full bucket, which it would
/// have had anyway after a minute.
const BUCKETS: NonZeroUsize = NonZeroUsize::new(100_000).expect("not zero");

/// What a limit is on, named in `X-Sentry-Rate-Limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Project(Uuid),
    Key(Uuid),
}

impl Scope {
    /// The scope's name in Sentry's header: `project` or `key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Project(_) => "project",
            Scope::Key(_) => "key",
        }
    }
}

/// See the module documentation; cheap to clone (shared inside).
#[derive(Clone)]
pub struct RateLimiter(Arc<Mutex<LruCache<Scope, Bucket>>>);

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter(Arc::new(Mutex::new(LruCache::new(BUCKETS))))
    }
}

impl RateLimiter {
    /// Takes `n` events from every limit of `limits` (scope and events per
    /// minute), all or none: `Err` names the first limit they would pass
    /// and how long until they would not.
    pub fn admit(&self, limits: &[(Scope, u32)], n: u32) -> Result<(), (Scope, Duration)> {
        if limits.is_empty() || n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        // A panic while the lock was held left a bucket at worst stale.
        let mut buckets = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for &(scope, per_minute) in limits {
            let bucket = buckets.get_or_insert(scope, || Bucket::full(per_minute, now));
            bucket
                .check(per_minute, n, now)
                .map_err(|wait| (scope, wait))?;
        }
        for &(scope, per_minute) in limits {
            if let Some(bucket) = buckets.get_mut(&scope) {
                bucket.take(per_minute, n, now);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_must_pass_and_a_refusal_takes_nothing() {
        let limiter = RateLimiter::default();
        let (project, key) = (Scope::Project(Uuid::nil()), Scope::Key(Uuid::max()));
        let both = [(project, 10), (key, 4)];
        assert_eq!(limiter.admit(&both, 3), Ok(()));
        // The key has 1 left: refused by the key, the project untouched.
        let (scope, wait) = limiter.admit(&both, 2).unwrap_err();
        assert_eq!(scope, key);
        assert!(wait > Duration::from_secs(10), "{wait:?}");
        assert_eq!(limiter.admit(&[(project, 10)], 7), Ok(()));
        assert_eq!(limiter.admit(&[(project, 10)], 1).unwrap_err().0, project);
        // No limit, nothing to check.
        assert_eq!(limiter.admit(&[], 1_000), Ok(()));
    }
}
