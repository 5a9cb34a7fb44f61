//! The parsed source maps ingest reuses, least recently used first out,
//! bounded by the bytes they hold: a burst of events from one build parses
//! its map once, and the cache never outgrows its bound.

use super::resolve::{Lookup, MapKey};
use hashlink::LinkedHashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a map that was not found (or not read) is remembered: the
/// next events of a build without uploads skip the database, and an upload
/// to another process is seen within this time. An upload to this process
/// forgets them at once ([`MapCache::forget_misses`]).
pub const MISS_TTL: Duration = Duration::from_secs(30);

/// How long a map found by release and URL is kept: a release's files can
/// be uploaded again (a map found by debug id cannot change).
pub const RELEASE_TTL: Duration = Duration::from_secs(300);

/// How long a map found by debug id is kept, though it cannot change: read
/// again hourly, its bundle's use is recorded (retention keeps the maps of
/// builds still reporting, see [`crate::db::artifacts::delete_unused_bundles`])
/// and a bundle deleted meanwhile is not served for long.
pub const DEBUG_ID_TTL: Duration = Duration::from_secs(3600);

/// The weight counted for an entry without a map.
const MISS_WEIGHT: usize = 256;

/// A map's place: the organization for a debug id, the project for a
/// release's URL.
pub type CacheKey = (Uuid, MapKey);

struct Entry {
    lookup: Lookup,
    weight: usize,
    expires: Instant,
}

/// What the cache holds now, for metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: usize,
    /// The weights of the entries: approximate bytes held.
    pub bytes: usize,
    pub max_bytes: usize,
}

/// A least-recently-used map of parsed source maps and misses, bounded in
/// bytes.
pub struct MapCache {
    entries: LinkedHashMap<CacheKey, Entry>,
    bytes: usize,
    max_bytes: usize,
}

impl MapCache {
    pub fn new(max_bytes: usize) -> Self {
        MapCache {
            entries: LinkedHashMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// The entry for `key`, now the most recently used; `None` when absent
    /// or expired.
    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Lookup> {
        let expired = self.entries.get(key)?.expires <= now;
        if expired {
            self.remove(key);
            return None;
        }
        let entry = self.entries.to_back(key)?;
        Some(entry.lookup.clone())
    }

    /// Remembers `lookup` for `key`, dropping the least recently used
    /// entries past the bound. A map heavier than the whole bound is not
    /// kept. [`Lookup::Unavailable`] is never kept: it says nothing about
    /// the map.
    pub fn insert(&mut self, key: CacheKey, lookup: Lookup, now: Instant) {
        let (weight, ttl) = match (&lookup, &key.1) {
            (Lookup::Unavailable, _) => return,
            (Lookup::Found(map), MapKey::DebugId(_)) => (map.weight(), DEBUG_ID_TTL),
            (Lookup::Found(map), MapKey::Release { .. }) => (map.weight(), RELEASE_TTL),
            (Lookup::Missing | Lookup::Broken(_), _) => (MISS_WEIGHT, MISS_TTL),
        };
        self.remove(&key);
        if weight > self.max_bytes {
            return;
        }
        self.bytes += weight;
        self.entries.insert(
            key,
            Entry {
                lookup,
                weight,
                expires: now + ttl,
            },
        );
        while self.bytes > self.max_bytes {
            match self.entries.pop_front() {
                Some((_, evicted)) => self.bytes -= evicted.weight,
                None => break,
            }
        }
    }

    /// Forgets every map not found and not read: after an upload, the
    /// next event looks again.
    pub fn forget_misses(&mut self) {
        let misses: Vec<CacheKey> = self
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.lookup, Lookup::Found(_)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in misses {
            self.remove(&key);
        }
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(entry) = self.entries.remove(key) {
            self.bytes -= entry.weight;
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            bytes: self.bytes,
            max_bytes: self.max_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sourcemaps::resolve::ParsedMap;
    use std::sync::Arc;

    const MAP: &[u8] = include_bytes!("fixtures/app.js.map");

    fn key(n: u128) -> CacheKey {
        (Uuid::nil(), MapKey::DebugId(Uuid::from_u128(n)))
    }

    fn found() -> Lookup {
        Lookup::Found(Arc::new(ParsedMap::parse(MAP, None).unwrap()))
    }

    fn weight() -> usize {
        ParsedMap::parse(MAP, None).unwrap().weight()
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_bound_holds() {
        let now = Instant::now();
        let mut cache = MapCache::new(weight() * 3);
        for n in 1..=3 {
            cache.insert(key(n), found(), now);
        }
        assert_eq!(cache.stats().bytes, weight() * 3);
        // Reading 1 makes 2 the least recently used.
        assert!(cache.get(&key(1), now).is_some());
        cache.insert(key(4), found(), now);
        assert!(cache.get(&key(2), now).is_none());
        for n in [1, 3, 4] {
            assert!(cache.get(&key(n), now).is_some(), "{n}");
        }
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.bytes), (3, weight() * 3));
        assert!(stats.bytes <= stats.max_bytes);
        // Inserting a key again replaces it without counting it twice.
        cache.insert(key(4), found(), now);
        assert_eq!(cache.stats().bytes, weight() * 3);
    }

    #[test]
    fn misses_expire_and_are_forgotten_after_an_upload() {
        let now = Instant::now();
        let mut cache = MapCache::new(1 << 20);
        cache.insert(key(1), Lookup::Missing, now);
        cache.insert(key(2), Lookup::Broken("bad".into()), now);
        cache.insert(key(3), found(), now);
        cache.insert(key(4), Lookup::Unavailable, now);
        assert!(matches!(cache.get(&key(1), now), Some(Lookup::Missing)));
        assert!(
            cache.get(&key(4), now).is_none(),
            "unavailable is never kept"
        );
        let later = now + MISS_TTL;
        assert!(cache.get(&key(1), later).is_none(), "misses expire");
        assert!(
            cache.get(&key(3), later + RELEASE_TTL).is_some(),
            "a map found by debug id outlives a release's"
        );
        cache.forget_misses();
        assert!(cache.get(&key(2), now).is_none());
        assert_eq!(cache.stats().entries, 1);
        assert_eq!(cache.stats().bytes, weight());
    }

    #[test]
    fn a_map_found_by_debug_id_is_read_again_hourly_so_its_use_is_recorded() {
        let now = Instant::now();
        let mut cache = MapCache::new(1 << 20);
        cache.insert(key(1), found(), now);
        let almost = now + DEBUG_ID_TTL - Duration::from_secs(1);
        assert!(cache.get(&key(1), almost).is_some());
        assert!(cache.get(&key(1), now + DEBUG_ID_TTL).is_none());
        assert_eq!(cache.stats().bytes, 0, "its weight goes with it");
    }

    #[test]
    fn a_map_heavier_than_the_bound_is_not_kept() {
        let now = Instant::now();
        let mut cache = MapCache::new(weight() - 1);
        cache.insert(key(1), found(), now);
        assert_eq!(
            cache.stats(),
            CacheStats {
                entries: 0,
                bytes: 0,
                max_bytes: weight() - 1
            }
        );
    }
}
