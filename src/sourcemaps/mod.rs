//! JavaScript source maps: what `sentry-cli sourcemaps upload` sends, and
//! minified stack traces read as the source at ingest.
//!
//! - [`bundle`]: the artifact bundle format (a header, a zip and its
//!   manifest), read within limits.
//! - [`resolve`]: which map each frame needs, and the frames rewritten
//!   through the maps (pure; CPU work).
//! - [`cache`]: the parsed maps, bounded in bytes.
//! - [`Parsed::from_json`] and [`symbolicate`]: the steps ingest runs: an
//!   event is parsed, and one whose frames name source maps has them
//!   resolved before it is built (grouping must see the resolved frames);
//!   the maps come from [`crate::services::SourceMapService`], which also
//!   stores the uploads.

pub mod bundle;
pub mod cache;
pub mod resolve;

use crate::domain::{Event, EventPayload, Project};
use crate::error::{Error, Result};
use crate::services::{LoadMaps, SourceMapService};
use actix::Addr;
use resolve::{Lookup, MapKey};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

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
    /// ingestion). The read goes on, and its map is cached for the next
    /// events.
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

/// An event as ingest first reads it (see [`Parsed::from_json`]).
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the large variant is the common one: boxing it would cost nearly every event an allocation"
)]
pub enum Parsed {
    /// Built, its JSON stored as sent: no frame names a source map, as for
    /// nearly every event.
    Event(Event),
    /// Frames to resolve through these maps before the event is built
    /// (grouping must see the resolved frames): see [`symbolicate`].
    Minified {
        /// Boxed: the rare variant need not make the common one large.
        payload: Box<EventPayload>,
        maps: Vec<MapKey>,
    },
}

impl Parsed {
    /// Parses an event sent as JSON for `project_id` (see
    /// [`Event::from_json_named`]) and builds it at once unless a frame
    /// needs a source map, so that an event without one costs one parse
    /// and its JSON is never written out again. CPU work.
    pub fn from_json(project_id: Uuid, bytes: &[u8], fallback_id: Option<Uuid>) -> Result<Parsed> {
        let mut payload = EventPayload::from_json(bytes)?;
        if payload.event_id.is_none() {
            payload.event_id = fallback_id;
        }
        let maps = resolve::wanted(&payload);
        if maps.is_empty() {
            let event = Event::from_parsed_json(project_id, &payload, bytes)?;
            return Ok(Parsed::Event(event));
        }
        Ok(Parsed::Minified {
            payload: Box::new(payload),
            maps,
        })
    }
}

/// The event of `payload`, parsed from `sent` for `project`, with its
/// minified frames resolved through the source maps `keys` names (see
/// [`resolve`]): the maps are loaded (or taken from the cache) by `maps`,
/// the frames rewritten and the event built on the blocking pool. An
/// event whose maps are missing or broken keeps its frames, with a note;
/// one that resolving changed not at all is stored as sent; one that
/// resolving would make unstorable (past the size limit: resolved frames
/// carry their source lines, and the minified ones are kept beside them)
/// is stored as sent too. An event is never refused for its source maps:
/// this fails only as building the event as sent would, or when the
/// blocking pool cannot run the work (the runtime is shutting down).
pub async fn symbolicate(
    maps: &Addr<SourceMapService>,
    project: &Project,
    payload: EventPayload,
    keys: Vec<MapKey>,
    sent: Vec<u8>,
) -> Result<Event> {
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
            keys.into_iter().map(|k| (k, Lookup::Unavailable)).collect()
        }
    };
    let project_id = project.id;
    tokio::task::spawn_blocking(move || build(project_id, payload, &found, &sent))
        .await
        .map_err(|e| Error::internal_from("resolving an event's frames", e))?
}

/// What [`symbolicate`] runs on the blocking pool once the maps are
/// loaded: the frames of `payload` (parsed from `sent`) resolved through
/// `maps`, and the event built. CPU work.
pub fn build(
    project_id: Uuid,
    mut payload: EventPayload,
    maps: &HashMap<MapKey, Lookup>,
    sent: &[u8],
) -> Result<Event> {
    let fallback_id = payload.event_id;
    let as_sent = || Event::from_json_named(project_id, sent, fallback_id);
    // A bug in resolving must not lose the event: it is stored as sent.
    let changed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        resolve::apply(&mut payload, maps)
    }));
    match changed {
        Ok(false) => Event::from_parsed_json(project_id, &payload, sent),
        Ok(true) => Event::from_payload(project_id, payload).or_else(|e| {
            log::info!("an event is stored as sent: resolved, it is refused ({e})");
            as_sent()
        }),
        Err(_) => {
            log::error!("resolving an event's frames panicked; stored as sent");
            as_sent()
        }
    }
}

#[cfg(test)]
mod tests;
