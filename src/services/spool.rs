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
//! The spool belongs to one process and one database (see
//! [`crate::db::spool`]): [`SpoolStore::open`] fails with a message saying so
//! when another process has the directory, or when it holds batches of
//! another database; [`Spool::close`] lets the directory go at shutdown.
//!
//! [`SpoolReplayer`]: super::SpoolReplayer

use super::batch::Batch;
use crate::config::SpoolConfig;
use crate::db::spool::{SpoolFile, SpooledBatch, Usage};
use crate::db::{self, Pool, Reachability};
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
    /// The batches with ids up to this one were spooled by an earlier
    /// run (set at open).
    inherited_through: i64,
    /// Set at open while an earlier run's acknowledgement log waits to be
    /// replayed; cleared by [`Spool::log_replayed`].
    log_pending: AtomicBool,
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

    /// The batch spooled first after row `after`, if any, for replay (see
    /// [`SpoolFile::oldest_after`]).
    pub(crate) async fn oldest_after(&self, after: i64) -> Result<Option<SpooledBatch>> {
        self.store.send(OldestAfter(after)).await?
    }

    /// Forgets a batch that was replayed.
    pub(crate) async fn remove(&self, batch: Spooled) -> Result<()> {
        self.store.send(Remove(batch)).await?
    }

    /// Moves a batch that does not decode out of the way of replay, into
    /// the file's quarantine table, with `reason`.
    pub(crate) async fn set_aside(&self, batch: Spooled, reason: String) -> Result<()> {
        self.store.send(SetAside { batch, reason }).await?
    }

    /// Whether batch `id` was spooled by an earlier run: its events may
    /// have been stored by that run, or by the replay of its log.
    pub(crate) fn inherited(&self, id: i64) -> bool {
        id <= self.shared.inherited_through
    }

    /// Whether an earlier run's acknowledgement log is still being
    /// replayed: until it is, that run's batches wait, so that an event in
    /// both is stored by the log's replay and found stored by the spool's,
    /// never the other way round concurrently.
    pub(crate) fn log_pending(&self) -> bool {
        self.shared.log_pending.load(Ordering::Acquire)
    }

    /// Says that the earlier run's log is replayed (or that there is none
    /// to replay).
    pub fn log_replayed(&self) {
        self.shared.log_pending.store(false, Ordering::Release);
    }

    /// Closes the file and lets the directory go, for the next process.
    /// Batches put after this are refused as [`Error::ShuttingDown`]; what
    /// the spool held stays on disk for the next start.
    pub async fn close(&self) {
        // A store already gone has let the directory go with it.
        let _ = self.store.send(Close).await;
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
    /// `None` once closed ([`Spool::close`]).
    file: Option<SpoolFile>,
    shared: Arc<Shared>,
    /// Events spooled, and what the spool holds, are counted here.
    metrics: Metrics,
    /// What the file holds: read once at open, then kept by each put and
    /// remove (a scan per change would grow with the spool).
    usage: Usage,
}

impl SpoolStore {
    /// Opens the spool `config` names for the database `pool` connects
    /// to, or `None` when it is turned off. Fails when the directory or
    /// file cannot be opened, with [`Error::Setup`] when another process
    /// has the directory or the spool holds another database's batches:
    /// an operator who asked for a spool must not silently run without
    /// one, nor have its events replayed into the wrong database.
    pub async fn open(
        config: &SpoolConfig,
        pool: &Pool,
        metrics: Metrics,
    ) -> Result<Option<SpoolStore>> {
        let Some(dir) = config.dir.clone() else {
            return Ok(None);
        };
        let owner = db::spool::database_identity(pool).await?;
        let (file, usage, inherited_through, log_segments) = tokio::task::spawn_blocking(move || {
            let log_segments = super::ack_log::leftover_segments(&dir.join(super::ack_log::DIR_NAME))
                .map_err(|e| Error::internal_from("reading the acknowledgement log", e))?;
            let file = SpoolFile::open(&dir, &owner, log_segments)?;
            let (usage, quarantined) = (file.usage()?, file.quarantined()?);
            let inherited_through = file.last_id()?;
            if usage.batches > 0 {
                log::info!(
                    "spool {} holds {} events from an earlier run; replaying them",
                    dir.display(),
                    usage.events
                );
            }
            if quarantined > 0 {
                log::warn!(
                    "spool {} holds {quarantined} batch(es) set aside as undecodable, in its quarantine table",
                    dir.display()
                );
            }
            Ok::<_, Error>((file, usage, inherited_through, log_segments))
        })
        .await
        .map_err(|e| Error::internal_from("opening the spool", e))??;
        let shared = Arc::new(Shared {
            max_bytes: config.max_bytes,
            bytes: AtomicU64::new(0),
            events: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            full: AtomicBool::new(false),
            inherited_through,
            log_pending: AtomicBool::new(log_segments > 0),
        });
        let store = SpoolStore {
            file: Some(file),
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

    fn file(&mut self) -> Result<&mut SpoolFile> {
        self.file.as_mut().ok_or(Error::ShuttingDown)
    }

    /// Counts `batch` as gone from the file.
    fn forget(&mut self, batch: Spooled) {
        self.shared.full.store(false, Ordering::Relaxed);
        self.usage.batches = self.usage.batches.saturating_sub(1);
        self.usage.events = self.usage.events.saturating_sub(batch.events);
        self.usage.bytes = self.usage.bytes.saturating_sub(batch.bytes);
        self.publish();
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
        let put = self
            .file()
            .and_then(|file| file.put(batch.project_id(), count, &body));
        if let Err(error) = put {
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
struct OldestAfter(i64);

impl Handler<OldestAfter> for SpoolStore {
    type Result = Result<Option<SpooledBatch>>;

    fn handle(&mut self, OldestAfter(after): OldestAfter, _: &mut Self::Context) -> Self::Result {
        match &self.file {
            Some(file) => file.oldest_after(after),
            // Closed: nothing more to replay in this process.
            None => Ok(None),
        }
    }
}

#[derive(Message)]
#[rtype(result = "Result<()>")]
struct Remove(Spooled);

impl Handler<Remove> for SpoolStore {
    type Result = Result<()>;

    fn handle(&mut self, Remove(batch): Remove, _: &mut Self::Context) -> Self::Result {
        self.file()?.remove(batch.id)?;
        self.forget(batch);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "Result<()>")]
struct SetAside {
    batch: Spooled,
    reason: String,
}

impl Handler<SetAside> for SpoolStore {
    type Result = Result<()>;

    fn handle(
        &mut self,
        SetAside { batch, reason }: SetAside,
        _: &mut Self::Context,
    ) -> Self::Result {
        self.file()?.set_aside(batch.id, &reason)?;
        self.forget(batch);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Close;

impl Handler<Close> for SpoolStore {
    type Result = ();

    fn handle(&mut self, _: Close, _: &mut Self::Context) {
        // Dropping the file closes SQLite, then releases the lock.
        self.file = None;
    }
}
