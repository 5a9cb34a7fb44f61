//! SourceMapService: the artifact bundles sentry-cli uploads (chunks, then
//! the bundle assembled from them), and the parsed source maps ingest
//! resolves frames with, cached and bounded in bytes.
//!
//! Database reads run on the pool; unzipping, hashing and parsing maps on
//! tokio's blocking pool; the actor itself only moves cache entries. A map
//! that several events want at once is read and parsed once: the first
//! request starts the load, the others wait for the same one.

use crate::db::{self, Pool};
use crate::domain::{ArtifactType, Project};
use crate::error::{Error, Result};
use crate::sourcemaps::SourceMapConfig;
use crate::sourcemaps::bundle;
use crate::sourcemaps::cache::{CacheKey, CacheStats, MapCache};
use crate::sourcemaps::resolve::{self, Lookup, MapKey, ParsedMap};
use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::{LocalBoxFuture, Shared};
use serde::Serialize;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// Stores uploads and serves parsed maps.
pub struct SourceMapService {
    /// The tenancy pool: uploads and map loads are rare next to events.
    pool: Pool,
    config: SourceMapConfig,
    cache: MapCache,
    /// Loads in progress, so a burst of events from one build parses its
    /// map once.
    loading: HashMap<CacheKey, Shared<LocalBoxFuture<'static, Lookup>>>,
    /// One assembly at a time: each holds a whole bundle and its files in
    /// memory.
    assembling: Arc<Semaphore>,
    /// Map loads running at once: the pool they read from is the one
    /// logins and pages use, and events (anyone with a DSN) choose which
    /// debug ids and URLs they name.
    reading: Arc<Semaphore>,
    /// Maps read from the database so far (found or not): what the cache
    /// and the sharing of loads in progress save.
    loads: u64,
}

impl SourceMapService {
    pub fn new(pool: Pool, config: SourceMapConfig) -> Self {
        SourceMapService {
            pool,
            cache: MapCache::new(config.cache_bytes),
            config,
            loading: HashMap::new(),
            assembling: Arc::new(Semaphore::new(1)),
            reading: Arc::new(Semaphore::new(READS_AT_ONCE)),
            loads: 0,
        }
    }
}

/// At most this many maps are read and parsed at once; the others wait
/// their turn (their events stop waiting at the load timeout).
const READS_AT_ONCE: usize = 2;

impl Actor for SourceMapService {
    type Context = Context<Self>;
}

/// Stores uploaded chunks, each already checked against its SHA-1.
#[derive(Debug, Message)]
#[rtype(result = "Result<()>")]
pub struct StoreChunks {
    pub org_id: Uuid,
    pub chunks: Vec<([u8; 20], Vec<u8>)>,
}

/// Assembles the bundle `checksum` from `chunks` for `projects` (of
/// `org_id`), as sentry-cli's assemble call asks; answers what the CLI
/// reads (see [`Assembled`]).
#[derive(Debug, Message)]
#[rtype(result = "Result<Assembled>")]
pub struct AssembleBundle {
    pub org_id: Uuid,
    pub projects: Vec<Project>,
    pub checksum: [u8; 20],
    pub chunks: Vec<[u8; 20]>,
}

/// Where an assembly stands, in sentry-cli's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssembleState {
    /// Chunks are missing: upload them, then ask again.
    NotFound,
    /// Stored; events can use it.
    Ok,
    /// Refused; `detail` says why.
    Error,
}

/// The assemble call's answer: `{"state", "missingChunks", "detail"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assembled {
    pub state: AssembleState,
    /// The SHA-1s (hex) still to upload; sentry-cli 3.x uploads only these.
    pub missing_chunks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Assembled {
    fn ok() -> Self {
        Assembled {
            state: AssembleState::Ok,
            missing_chunks: Vec::new(),
            detail: None,
        }
    }

    fn error(detail: impl Into<String>) -> Self {
        Assembled {
            state: AssembleState::Error,
            missing_chunks: Vec::new(),
            detail: Some(detail.into()),
        }
    }
}

/// The maps `keys` name, for an event of `project_id` in `org_id`; each
/// from the cache when it is there.
#[derive(Debug, Message)]
#[rtype(result = "HashMap<MapKey, Lookup>")]
pub struct LoadMaps {
    pub org_id: Uuid,
    pub project_id: Uuid,
    pub keys: Vec<MapKey>,
}

/// What the cache holds now, and how many maps were read.
#[derive(Debug, Message)]
#[rtype(result = "SourceMapStats")]
pub struct GetSourceMapStats;

/// The answer to [`GetSourceMapStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceMapStats {
    pub cache: CacheStats,
    /// Maps read from the database (and parsed, when found) so far.
    pub loads: u64,
}

impl Handler<StoreChunks> for SourceMapService {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: StoreChunks, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::artifacts::store_chunks(&pool, msg.org_id, &msg.chunks).await })
    }
}

impl Handler<AssembleBundle> for SourceMapService {
    type Result = ResponseActFuture<Self, Result<Assembled>>;

    fn handle(&mut self, msg: AssembleBundle, _: &mut Self::Context) -> Self::Result {
        let (pool, config, gate) = (
            self.pool.clone(),
            self.config.clone(),
            self.assembling.clone(),
        );
        let work = async move {
            let _turn = gate
                .acquire_owned()
                .await
                .map_err(|e| Error::internal_from("the assembly gate closed", e))?;
            assemble(&pool, &config, msg).await
        };
        Box::pin(work.into_actor(self).map(|outcome, act, _| {
            if matches!(&outcome, Ok(a) if a.state == AssembleState::Ok) {
                // Events that found no map may find one now.
                act.cache.forget_misses();
            }
            outcome
        }))
    }
}

async fn assemble(pool: &Pool, config: &SourceMapConfig, msg: AssembleBundle) -> Result<Assembled> {
    let AssembleBundle {
        org_id,
        projects,
        checksum,
        chunks,
    } = msg;
    let project_ids: Vec<Uuid> = projects.iter().map(|p| p.id).collect();
    let lacking = db::artifacts::projects_without(pool, &project_ids, &checksum).await?;
    if lacking.is_empty() {
        return Ok(Assembled::ok());
    }
    if chunks.is_empty() {
        return Ok(Assembled::error("the bundle has no chunks"));
    }
    if chunks.len().saturating_mul(config.chunk_size) > config.max_bundle_bytes + config.chunk_size
    {
        return Ok(Assembled::error(format!(
            "the bundle is over {} MiB; upload fewer files at once",
            config.max_bundle_bytes >> 20
        )));
    }
    let missing = db::artifacts::missing_chunks(pool, org_id, &chunks).await?;
    if !missing.is_empty() {
        return Ok(Assembled {
            state: AssembleState::NotFound,
            missing_chunks: missing.iter().map(hex::encode).collect(),
            detail: None,
        });
    }
    let Some(bytes) = db::artifacts::chunk_data(pool, org_id, &chunks).await? else {
        // Another request assembled (and deleted) them meanwhile.
        let lacking = db::artifacts::projects_without(pool, &project_ids, &checksum).await?;
        return Ok(match lacking.is_empty() {
            true => Assembled::ok(),
            false => Assembled::error("the bundle's chunks are gone; upload again"),
        });
    };
    if bytes.len() > config.max_bundle_bytes {
        return Ok(Assembled::error(format!(
            "the bundle is over {} MiB; upload fewer files at once",
            config.max_bundle_bytes >> 20
        )));
    }
    let limits = config.bundle;
    let parsed = blocking(move || {
        if Sha1::digest(&bytes).as_slice() != checksum {
            return Err("the uploaded chunks do not make up the bundle's checksum".to_owned());
        }
        bundle::parse(&bytes, &limits).map_err(|e| e.to_string())
    })
    .await?;
    let bundle = match parsed {
        Ok(bundle) => bundle,
        Err(detail) => return Ok(Assembled::error(detail)),
    };
    db::artifacts::insert_bundle(pool, org_id, &lacking, &checksum, &chunks, &bundle).await?;
    log::info!(
        "stored an artifact bundle of {} files ({} bytes) for {} project(s)",
        bundle.files.len(),
        bundle.bytes(),
        lacking.len()
    );
    Ok(Assembled::ok())
}

impl Handler<LoadMaps> for SourceMapService {
    type Result = ResponseActFuture<Self, HashMap<MapKey, Lookup>>;

    fn handle(&mut self, msg: LoadMaps, ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let mut ready = HashMap::new();
        let mut pending = Vec::new();
        for key in msg.keys {
            let scope = match key {
                MapKey::DebugId(_) => msg.org_id,
                MapKey::Release { .. } => msg.project_id,
            };
            let cache_key = (scope, key.clone());
            if let Some(hit) = self.cache.get(&cache_key, now) {
                ready.insert(key, hit);
                continue;
            }
            let load = match self.loading.get(&cache_key) {
                Some(load) => load.clone(),
                None => {
                    self.loads += 1;
                    let load = load_map(
                        self.pool.clone(),
                        Arc::clone(&self.reading),
                        cache_key.clone(),
                    )
                    .boxed_local()
                    .shared();
                    self.loading.insert(cache_key.clone(), load.clone());
                    ctx.spawn(load.clone().into_actor(self).map(move |lookup, act, _| {
                        act.loading.remove(&cache_key);
                        act.cache.insert(cache_key, lookup, Instant::now());
                    }));
                    load
                }
            };
            pending.push((key, load));
        }
        // The event waits for its maps until the load timeout; a load
        // still running then goes on (the task spawned above caches its
        // map), so a map slow to read is not read again by every event.
        let waited = self.config.load_timeout;
        Box::pin(
            async move {
                let all =
                    futures_util::future::join_all(pending.into_iter().map(async |(key, load)| {
                        let lookup = tokio::time::timeout(waited, load).await;
                        (key, lookup.unwrap_or(Lookup::Unavailable))
                    }));
                ready.extend(all.await);
                ready
            }
            .into_actor(self),
        )
    }
}

impl Handler<GetSourceMapStats> for SourceMapService {
    type Result = MessageResult<GetSourceMapStats>;

    fn handle(&mut self, _: GetSourceMapStats, _: &mut Self::Context) -> Self::Result {
        MessageResult(SourceMapStats {
            cache: self.cache.stats(),
            loads: self.loads,
        })
    }
}

/// A load that takes longer than this is given up, so that a database
/// that never answers does not keep a load (and its place among the
/// reads) forever. Events stop waiting far sooner
/// ([`SourceMapConfig::load_timeout`]).
const LOAD_LIMIT: Duration = Duration::from_secs(60);

/// Reads and parses the map `key` names once `reading` lets it.
async fn load_map(pool: Pool, reading: Arc<Semaphore>, key: CacheKey) -> Lookup {
    let what = format!("{:?}", key.1);
    let read = async {
        let _turn = reading
            .acquire()
            .await
            .map_err(|e| Error::internal_from("waiting to read a source map", e))?;
        read_map(&pool, key).await
    };
    match tokio::time::timeout(LOAD_LIMIT, read).await {
        Ok(Ok(lookup)) => lookup,
        Ok(Err(e)) => {
            log::warn!("cannot read the source map for {what}: {}", e.report());
            Lookup::Unavailable
        }
        Err(_) => {
            log::warn!("reading the source map for {what} took over {LOAD_LIMIT:?}");
            Lookup::Unavailable
        }
    }
}

async fn read_map(pool: &Pool, (scope, key): CacheKey) -> Result<Lookup> {
    let (map, minified) = match key {
        MapKey::DebugId(id) => match db::artifacts::map_by_debug_id(pool, scope, id).await? {
            Some(found) => found,
            None => return Ok(Lookup::Missing),
        },
        MapKey::Release { release, dist, url } => {
            let urls = resolve::url_candidates(&url);
            let dist = dist.as_deref();
            let found = db::artifacts::file_by_url(
                pool,
                scope,
                &release,
                dist,
                &urls,
                ArtifactType::MinifiedSource,
            )
            .await?;
            let Some((found_url, reference, minified)) = found else {
                return Ok(Lookup::Missing);
            };
            let reference =
                reference.or_else(|| {
                    match sourcemap::locate_sourcemap_reference_slice(&minified) {
                        Ok(Some(r)) => Some(r.get_url().to_owned()),
                        _ => None,
                    }
                });
            let Some(reference) = reference else {
                return Ok(Lookup::Missing);
            };
            let map_url = resolve::join_url(&found_url, &reference);
            let found = db::artifacts::file_by_url(
                pool,
                scope,
                &release,
                dist,
                // An absolute reference may have been uploaded as `~/path`.
                &resolve::url_candidates(&map_url),
                ArtifactType::SourceMap,
            )
            .await?;
            match found {
                Some((_, _, map)) => (map, Some(minified)),
                None => return Ok(Lookup::Missing),
            }
        }
    };
    let parsed = blocking(move || ParsedMap::parse(&map, minified)).await?;
    Ok(match parsed {
        Ok(map) => Lookup::Found(Arc::new(map)),
        Err(why) => Lookup::Broken(why),
    })
}

/// Runs CPU work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal_from("a blocking task failed", e))
}
