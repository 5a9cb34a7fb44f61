//! Spool: batches kept on local disk while PostgreSQL cannot take them.
//!
//! When a writer finds PostgreSQL unreachable, it hands the batch to the
//! spool instead of retrying and then dropping it, and
//! while PostgreSQL stays unreachable a full buffer spills there instead of
//! pushing out its oldest events. [`SpoolReplayer`] probes PostgreSQL
//! meanwhile and, once it answers, replays the spool oldest first; at start
//! it replays what an earlier run left. A batch leaves the spool only after
//! PostgreSQL committed it; if Mesher dies between the two, the batch is
//! replayed again and its events, already in `event_ids`, are skipped, so
//! nothing is stored twice.
//!
//! The file is SQLite ([`crate::db::spool`]), owned by [`SpoolStore`], an
//! actor on a thread of its own ([`SyncArbiter`]), since every call blocks
//! on disk. Writers hold a [`Spool`]: the store's address, how full the
//! spool is (atomics the store keeps current) and whether PostgreSQL is
//! reachable ([`Reachability`], kept by the event pool), both of which a
//! writer reads on every event without a message.
//!
//! [`SpoolReplayer`]: super::SpoolReplayer

use super::batch::Batch;
use crate::config::SpoolConfig;
use crate::db::Reachability;
use crate::db::spool::{SpoolFile, SpooledBatch, Usage};
use crate::domain::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use actix::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A handle on the spool; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    store: Addr<SpoolStore>,
    shared: Arc<Shared>,
    /// While PostgreSQL is unreachable, batches go straight to the spool
    /// instead of waiting for a connection that will not come.
    reachability: Reachability,
}

/// What the store and every writer see alike.
struct Shared {
    /// The bound (`MESHER_SPOOL_MAX_MB`).
    max_bytes: u64,
    /// What the spool holds, kept by the store after every change.
    bytes: AtomicU64,
    events: AtomicU64,
    batches: AtomicU64,
    /// Set when a batch did not fit, cleared when a replay frees room: the
    /// spool counts as full from the first batch it refuses, not only once
    /// its bytes reach the bound exactly.
    full: AtomicBool,
}

/// A batch the spool would not take, handed back to its writer.
#[derive(Debug)]
pub struct Refused {
    pub batch: Batch,
    /// `Overloaded` when the spool is full; otherwise why the file refused.
    pub error: Error,
}

/// How long a client refused because the spool is full is asked to wait.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(10);

impl Spool {
    /// Starts `store` on a thread of its own (one thread, one connection:
    /// SQLite serializes writes anyway) and returns the handle writers
    /// hold; `reachability` is the event pool's.
    pub fn start(store: SpoolStore, reachability: Reachability) -> Spool {
        let shared = store.shared.clone();
        // The factory runs once (a SyncArbiter restarts an actor only if it
        // stops itself, which SpoolStore never does).
        let store = Mutex::new(Some(store));
        let store = SyncArbiter::start(1, move || {
            store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .expect("the spool store is created once")
        });
        Spool {
            store,
            shared,
            reachability,
        }
    }

    /// Whether writers should try PostgreSQL (see [`Reachability`]).
    pub fn database_reachable(&self) -> bool {
        self.reachability.is_reachable()
    }

    /// Whether the spool takes batches: it has not refused one since it
    /// last freed room.
    pub fn has_room(&self) -> bool {
        !self.shared.full.load(Ordering::Relaxed)
    }

    /// What the spool holds now.
    pub fn usage(&self) -> Usage {
        Usage {
            batches: self.shared.batches.load(Ordering::Relaxed),
            events: self.shared.events.load(Ordering::Relaxed),
            bytes: self.shared.bytes.load(Ordering::Relaxed),
        }
    }

    /// Writes one project's batch to disk, settling it as spooled; durable
    /// once this returns `Ok`.
    pub async fn put(&self, batch: Batch) -> std::result::Result<(), Refused> {
        // The store's thread gone (the system is stopping) takes the batch
        // with it, counted as lost by its Drop.
        self.store.send(Put(batch)).await.unwrap_or(Ok(()))
    }

    /// The batch spooled first, if any, for replay.
    pub(crate) async fn oldest(&self) -> Result<Option<SpooledBatch>> {
        self.store.send(Oldest).await?
    }

    /// Forgets a batch that was replayed (or cannot be).
    pub(crate) async fn remove(&self, batch: Spooled) -> Result<()> {
        self.store
            .send(Remove {
                id: batch.id,
                events: batch.events,
                bytes: batch.bytes,
            })
            .await?
    }
}

/// Which spooled batch, and its size, for removing it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spooled {
    pub id: i64,
    pub events: u64,
    pub bytes: u64,
}

impl Spooled {
    pub fn of(batch: &SpooledBatch) -> Spooled {
        Spooled {
            id: batch.id,
            events: batch.count,
            bytes: batch.bytes,
        }
    }
}

/// Owns the spool file (see the module documentation).
pub struct SpoolStore {
    file: SpoolFile,
    shared: Arc<Shared>,
    /// Events spooled, and what the spool holds, are counted here.
    metrics: Metrics,
    /// What the file holds: read once at open, then kept by each put and
    /// remove (a scan per change would grow with the spool).
    usage: Usage,
}

impl SpoolStore {
    /// Opens the spool `config` names, or `None` when it is turned off.
    /// Fails when the directory or file cannot be opened: an operator who
    /// asked for a spool must not silently run without one.
    pub fn open(config: &SpoolConfig, metrics: Metrics) -> Result<Option<SpoolStore>> {
        let Some(dir) = config.dir.clone() else {
            return Ok(None);
        };
        let file = SpoolFile::open(&dir)?;
        let usage = file.usage()?;
        if usage.batches > 0 {
            log::info!(
                "spool {} holds {} events from an earlier run; replaying them",
                dir.display(),
                usage.events
            );
        }
        let shared = Arc::new(Shared {
            max_bytes: config.max_bytes,
            bytes: AtomicU64::new(0),
            events: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            full: AtomicBool::new(false),
        });
        let store = SpoolStore {
            file,
            shared,
            metrics,
            usage,
        };
        store.publish();
        Ok(Some(store))
    }

    /// Makes the usage visible to writers and in the metrics.
    fn publish(&self) {
        let usage = self.usage;
        self.shared.bytes.store(usage.bytes, Ordering::Relaxed);
        self.shared.events.store(usage.events, Ordering::Relaxed);
        self.shared.batches.store(usage.batches, Ordering::Relaxed);
        self.metrics.spool_usage(usage.events, usage.bytes);
    }
}

impl Actor for SpoolStore {
    type Context = SyncContext<Self>;
}

#[derive(Message)]
#[rtype(result = "std::result::Result<(), Refused>")]
struct Put(Batch);

impl Handler<Put> for SpoolStore {
    type Result = std::result::Result<(), Refused>;

    fn handle(&mut self, Put(batch): Put, _: &mut Self::Context) -> Self::Result {
        let body = match Event::encode_batch(batch.events()) {
            Ok(body) => body,
            Err(error) => return Err(Refused { batch, error }),
        };
        let used = self.shared.bytes.load(Ordering::Relaxed);
        if used + body.len() as u64 > self.shared.max_bytes {
            self.shared.full.store(true, Ordering::Relaxed);
            return Err(Refused {
                batch,
                error: Error::Overloaded {
                    retry_after: FULL_RETRY_AFTER,
                },
            });
        }
        let count = batch.len();
        if let Err(error) = self.file.put(batch.project_id(), count, &body) {
            return Err(Refused { batch, error });
        }
        batch.spooled();
        self.usage.batches += 1;
        self.usage.events += count as u64;
        self.usage.bytes += body.len() as u64;
        self.publish();
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "Result<Option<SpooledBatch>>")]
struct Oldest;

impl Handler<Oldest> for SpoolStore {
    type Result = Result<Option<SpooledBatch>>;

    fn handle(&mut self, _: Oldest, _: &mut Self::Context) -> Self::Result {
        self.file.oldest()
    }
}

#[derive(Message)]
#[rtype(result = "Result<()>")]
struct Remove {
    id: i64,
    events: u64,
    bytes: u64,
}

impl Handler<Remove> for SpoolStore {
    type Result = Result<()>;

    fn handle(&mut self, msg: Remove, _: &mut Self::Context) -> Self::Result {
        self.file.remove(msg.id)?;
        self.shared.full.store(false, Ordering::Relaxed);
        self.usage.batches = self.usage.batches.saturating_sub(1);
        self.usage.events = self.usage.events.saturating_sub(msg.events);
        self.usage.bytes = self.usage.bytes.saturating_sub(msg.bytes);
        self.publish();
        Ok(())
    }
}
