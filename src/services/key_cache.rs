//! KeyCache: ingest keys resolved recently, read by every request without
//! a message.
//!
//! Every ingested event presents a key. The HTTP layer looks it up here
//! first ([`resolve_key`]); only a miss goes to the [`ProjectService`],
//! which asks the database and fills the cache. Known and unknown keys are
//! both remembered for [`KEY_CACHE_TTL`], each kind bounded apart (so a
//! flood of made-up keys cannot push out the real ones), evicting the
//! least recently used when full: past its capacity the cache keeps the
//! active keys, it never empties itself. Revoking a key, or changing its
//! project's or its own rate limit, through the service forgets the
//! project's keys at once; another process that cached them sees the
//! change within the TTL.

use super::project_service::{GetProjectByApiKey, ProjectService};
use crate::domain::{ApiKey, ResolvedKey};
use crate::error::{Error, Result};
use actix::Addr;
use lru::LruCache;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a resolved key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Known keys remembered: well past the active keys of a large install
/// (each entry is a project and a hash, a few hundred bytes).
const KNOWN_CAPACITY: NonZeroUsize = NonZeroUsize::new(50_000).expect("not zero");

/// Unknown keys remembered, apart from the known ones.
const UNKNOWN_CAPACITY: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");

/// See the module documentation; cheap to clone (shared inside).
#[derive(Clone)]
pub struct KeyCache(Arc<Mutex<Keys>>);

struct Keys {
    known: LruCache<Vec<u8>, (ResolvedKey, Instant)>,
    unknown: LruCache<Vec<u8>, Instant>,
    /// Counts revocations (and limit changes), so that a lookup that
    /// started before one does not put back in the cache a key it just
    /// revoked, or its old limits.
    revocations: u64,
    /// Lookups the database answered (see [`KeyCache::lookups`]).
    lookups: u64,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache(Arc::new(Mutex::new(Keys {
            known: LruCache::new(KNOWN_CAPACITY),
            unknown: LruCache::new(UNKNOWN_CAPACITY),
            revocations: 0,
            lookups: 0,
        })))
    }
}

fn fresh(at: &Instant) -> bool {
    at.elapsed() < KEY_CACHE_TTL
}

impl KeyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        // Every change is a single insert or removal: a panic elsewhere
        // while the lock was held leaves the maps whole.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Some(Ok)` for a fresh known key, `Some(Err)` for a fresh unknown
    /// one, `None` when the database must be asked.
    pub fn get(&self, hash: &[u8]) -> Option<Result<ResolvedKey>> {
        let mut keys = self.lock();
        if let Some((project, _)) = keys.known.get(hash).filter(|(_, at)| fresh(at)) {
            return Some(Ok(project.clone()));
        }
        keys.unknown
            .get(hash)
            .filter(|at| fresh(at))
            .map(|_| Err(Error::InvalidCredentials))
    }

    /// How many revocations have happened; pass it back to
    /// [`KeyCache::remember`] with the answer of a lookup started now.
    pub(crate) fn revocations(&self) -> u64 {
        self.lock().revocations
    }

    /// Remembers what a lookup that started at `revocations` found, unless
    /// a revocation happened meanwhile.
    pub(crate) fn remember(&self, hash: Vec<u8>, resolved: &Result<ResolvedKey>, revocations: u64) {
        let mut keys = self.lock();
        keys.lookups += 1;
        if keys.revocations != revocations {
            return;
        }
        let now = Instant::now();
        match resolved {
            Ok(project) => {
                keys.known.put(hash, (project.clone(), now));
            }
            Err(Error::InvalidCredentials) => {
                keys.unknown.put(hash, now);
            }
            // Not an answer about the key (say, the database is down).
            Err(_) => {}
        }
    }

    /// How many lookups the database has answered: the cache's misses.
    pub fn lookups(&self) -> u64 {
        self.lock().lookups
    }

    /// Forgets every key of a project, so a revoked one stops resolving
    /// and a changed limit applies.
    pub(crate) fn forget_project(&self, project_id: Uuid) {
        let mut keys = self.lock();
        keys.revocations += 1;
        let gone: Vec<Vec<u8>> = keys
            .known
            .iter()
            .filter(|(_, (k, _))| k.project.id == project_id)
            .map(|(hash, _)| hash.clone())
            .collect();
        for hash in gone {
            keys.known.pop(&hash);
        }
    }
}

/// The project of an ingest key: from the cache, or from the
/// [`ProjectService`] (which fills it). `InvalidCredentials` for a key
/// that is unknown, revoked or not even shaped like one.
pub async fn resolve_key(
    cache: &KeyCache,
    projects: &Addr<ProjectService>,
    key: String,
) -> Result<ResolvedKey> {
    let hash = match ApiKey::parse(&key) {
        Ok(key) => key.hash(),
        Err(_) => return Err(Error::InvalidCredentials),
    };
    if let Some(cached) = cache.get(&hash) {
        return cached;
    }
    match projects.send(GetProjectByApiKey { key }).await? {
        Err(Error::InvalidInput { .. }) => Err(Error::InvalidCredentials),
        resolved => resolved,
    }
}
