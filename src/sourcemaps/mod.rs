//! JavaScript source maps: what `sentry-cli sourcemaps upload` sends, and
//! minified stack traces read as the source at ingest.
//!
//! - [`bundle`]: the artifact bundle format (a header, a zip and its
//!   manifest), read within limits.
//! - [`resolve`]: which map each frame needs, and the frames rewritten
//!   through the maps (pure; CPU work).
//! - [`cache`]: the parsed maps, bounded in bytes.
//! - [`symbolicate`]: the step ingest runs over a parsed payload, before
//!   the event is built (grouping must see the resolved frames); the maps
//!   come from [`crate::services::SourceMapService`], which also stores
//!   the uploads.

pub mod bundle;
pub mod cache;
pub mod resolve;

use crate::domain::{EventPayload, Project};
use crate::error::{Error, Result};
use crate::services::{LoadMaps, SourceMapService};
use actix::Addr;
use std::time::Duration;

/// Tuning for source maps: uploads and the cache.
#[derive(Debug, Clone)]
pub struct SourceMapConfig {
    /// The bytes parsed maps may hold in memory together
    /// (`MESHER_SOURCEMAP_CACHE_MB`, default 256 MiB).
    pub cache_bytes: usize,
    /// The size of the chunks sentry-cli cuts a bundle into (a power of
    /// two: sentry-cli 2.x up to 2.39 wants one).
    pub chunk_size: usize,
    /// Chunks one upload request may carry.
    pub chunks_per_request: usize,
    /// The largest upload request, as sent (chunks may come gzipped).
    pub max_request_bytes: usize,
    /// The largest bundle, as uploaded (`MESHER_SOURCEMAP_MAX_BUNDLE_MB`,
    /// default 64 MiB).
    pub max_bundle_bytes: usize,
    /// What a bundle may hold once unzipped.
    pub bundle: bundle::BundleLimits,
    /// How long ingest waits for maps to be read before it stores an event
    /// unresolved (a database that does not answer must not hold up
    /// ingestion).
    pub load_timeout: Duration,
}

impl Default for SourceMapConfig {
    fn default() -> Self {
        SourceMapConfig {
            cache_bytes: 256 * 1024 * 1024,
            chunk_size: 8 * 1024 * 1024,
            chunks_per_request: 4,
            max_request_bytes: 32 * 1024 * 1024,
            max_bundle_bytes: 64 * 1024 * 1024,
            bundle: bundle::BundleLimits::default(),
            load_timeout: Duration::from_secs(2),
        }
    }
}

/// Resolves `payload`'s minified frames through the source maps uploaded
/// for `project` (see [`resolve`]): the maps are loaded (or taken from the
/// cache) by `maps`, the frames rewritten on the blocking pool. An event
/// whose frames name no map costs nothing more; one whose maps are missing
/// or broken keeps its frames, with a note: an event is never refused
/// for its source maps. Fails only when the blocking pool cannot run the
/// work (the runtime is shutting down).
pub async fn symbolicate(
    maps: &Addr<SourceMapService>,
    project: &Project,
    mut payload: EventPayload,
) -> Result<EventPayload> {
    let keys = resolve::wanted(&payload);
    if keys.is_empty() {
        return Ok(payload);
    }
    let found = match maps
        .send(LoadMaps {
            org_id: project.org_id,
            project_id: project.id,
            keys: keys.clone(),
        })
        .await
    {
        Ok(found) => found,
        Err(e) => {
            log::error!("source maps unavailable: {e}");
            keys.into_iter()
                .map(|k| (k, resolve::Lookup::Unavailable))
                .collect()
        }
    };
    tokio::task::spawn_blocking(move || {
        // A bug in resolving must not lose the event: it keeps the frames
        // resolved so far (each frame is replaced whole, never half).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            resolve::apply(&mut payload, &found)
        }));
        if outcome.is_err() {
            log::error!("resolving an event's frames panicked; stored as it is");
        }
        payload
    })
    .await
    .map_err(|e| Error::internal_from("resolving an event's frames", e))
}
