//! WriterRegistry: starts, finds, retires and drains the per-project
//! StorageWriters.
//!
//! The running writers are listed in a [`Directory`] the registry alone
//! changes and the [`Intake`](super::Intake) reads, so that a request's
//! events go straight to their writer without passing through this actor;
//! the registry is asked only when a project has no running writer. It
//! supervises: a writer found stopped, for whatever reason, panics
//! included, is replaced on the next event for its project. A writer idle
//! for its `idle_timeout` is retired ([`Idle`]), and restarted on the
//! project's next event. At shutdown [`DrainAll`] drains every writer.
//!
//! The embedding API's [`Store`] comes here: the registry checks that the
//! project exists (events for unknown projects are refused, logged and
//! counted, never stored) and hands each event to its writer under
//! drop-oldest. While a project is being looked up (once per process),
//! its events wait here, bounded like a writer's buffer; other projects'
//! events flow on, even while PostgreSQL is unreachable and the lookup
//! waits for a connection. `DrainAll` lets lookups in progress finish
//! first, so no event that arrived before it is left behind.
//!
//! Threads: the wiring starts the registry on an arbiter of its own and
//! hands it another for the writers, so that a burst of `Store` casts
//! queued here never keeps the writers from flushing.

use super::batch::MemoryBudget;
use super::committer::Committer;
use super::inbox::{Admitted, Inbox};
use super::project_service::{GetProject, ProjectService};
use super::spool::Spool;
use super::storage_writer::{Drain, Idle, Overflow, Stats, StorageWriter, WriterStats};
use crate::config::WriterConfig;
use crate::db::spool::Usage;
use crate::domain::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use actix::prelude::*;
use futures_util::future::join_all;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::{Arc, RwLock};
use tokio::sync::oneshot;
use uuid::Uuid;

/// How many unknown project ids are remembered, least recently seen
/// forgotten first.
const MAX_UNKNOWN_REMEMBERED: NonZeroUsize = NonZeroUsize::new(10_000).expect("not zero");

/// A running writer and its inbox.
#[derive(Clone)]
struct Running {
    writer: Addr<StorageWriter>,
    inbox: Arc<Inbox>,
}

/// The running writers' inboxes by project: written by the registry, read
/// by the [`Intake`](super::Intake) on every request; cheap to clone.
#[derive(Clone, Default)]
pub struct Directory(Arc<RwLock<HashMap<Uuid, Running>>>);

impl Directory {
    /// The inbox of the project's writer, if one is running.
    pub fn get(&self, project_id: Uuid) -> Option<Arc<Inbox>> {
        self.read()
            .get(&project_id)
            .filter(|r| r.writer.connected())
            .map(|r| r.inbox.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Running>> {
        // A panic while the lock was held left the map whole (every change
        // is one insert or remove); the poison says nothing about it.
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Running>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Owns one [`StorageWriter`] per project that has sent events lately.
pub struct WriterRegistry {
    /// Lands every writer's batches; handed to each writer it starts.
    committer: Addr<Committer>,
    /// Tells whether a project that `Store` names exists.
    projects: Addr<ProjectService>,
    /// Handed to each writer it starts.
    config: WriterConfig,
    /// The thread the writers run on (see the module documentation).
    writers_thread: ArbiterHandle,
    /// The running writers by project.
    directory: Directory,
    /// Project ids found not to exist. Ids are random UUIDs assigned at
    /// creation, so an unknown id never becomes a known one: remembering
    /// it spares a lookup per event for a misdirected stream.
    unknown: lru::LruCache<Uuid, ()>,
    /// Events of projects being looked up, oldest first, held until the
    /// lookup answers; at most a writer's buffer capacity per project.
    pending: HashMap<Uuid, VecDeque<Event>>,
    /// `DrainAll` callers waiting for the lookups in progress.
    lookup_waiters: Vec<oneshot::Sender<()>>,
    /// Events `Store` refused: unknown project, failed lookup, or shutting
    /// down.
    rejected: u64,
    /// Oldest events pushed out of `pending` while their lookup was slow.
    dropped_pending: u64,
    /// Set by [`DrainAll`]: the system is shutting down, so new events are
    /// refused instead of starting writers that nobody will drain.
    closed: bool,
    /// Handed to each writer it starts; refusals are counted here too.
    metrics: Metrics,
    /// Handed to each writer it starts (see [`StorageWriter`]).
    spool: Option<Spool>,
    /// The bytes all its writers may hold, shared by them.
    budget: MemoryBudget,
}

impl WriterRegistry {
    /// A registry whose writers run on `writers_thread` and hand their
    /// batches to `committer`; `projects` answers whether a project exists.
    pub fn new(
        committer: Addr<Committer>,
        projects: Addr<ProjectService>,
        config: WriterConfig,
        writers_thread: ArbiterHandle,
        metrics: Metrics,
        spool: Option<Spool>,
    ) -> Self {
        WriterRegistry {
            budget: MemoryBudget::new(config.memory_bytes),
            committer,
            projects,
            config,
            writers_thread,
            directory: Directory::default(),
            unknown: lru::LruCache::new(MAX_UNKNOWN_REMEMBERED),
            pending: HashMap::new(),
            lookup_waiters: Vec::new(),
            rejected: 0,
            dropped_pending: 0,
            closed: false,
            metrics,
            spool,
        }
    }

    /// The list of running writers the [`Intake`](super::Intake) reads.
    pub fn directory(&self) -> Directory {
        self.directory.clone()
    }

    /// The project's running writer's inbox, or a new writer's
    /// (replacing one that stopped, or retired).
    fn writer(&mut self, project_id: Uuid, ctx: &mut Context<Self>) -> Arc<Inbox> {
        let mut writers = self.directory.write();
        if let Some(running) = writers.get(&project_id) {
            if running.writer.connected() && running.inbox.is_live() {
                return running.inbox.clone();
            }
            if !running.writer.connected() {
                log::warn!(
                    "storage writer for project {project_id} had stopped; started a replacement"
                );
            }
        }
        let writer = StorageWriter::new(
            project_id,
            self.committer.clone(),
            self.config.clone(),
            self.metrics.clone(),
            self.budget.clone(),
            self.spool.clone(),
        )
        .retired_by(ctx.address().recipient());
        let inbox = writer.inbox();
        let writer = StorageWriter::start_in_arbiter(&self.writers_thread, move |_| writer);
        // At once: the writer starts on its own thread a moment later, and
        // until the inbox knows it, it could neither wake it nor count as
        // having one.
        inbox.attach(writer.clone());
        writers.insert(
            project_id,
            Running {
                writer,
                inbox: inbox.clone(),
            },
        );
        inbox
    }

    /// Holds `event` while its project is looked up, starting the lookup if
    /// none is in progress for it.
    fn hold_for_lookup(&mut self, event: Event, ctx: &mut Context<Self>) {
        let project_id = event.project_id();
        if let Some(waiting) = self.pending.get_mut(&project_id) {
            waiting.push_back(event);
            if waiting.len() > self.config.buffer_capacity {
                waiting.pop_front();
                self.dropped_pending += 1;
                self.metrics.events_refused("lookup_overflow", 1);
            }
            return;
        }
        self.pending.insert(project_id, VecDeque::from([event]));
        let lookup = self.projects.send(GetProject {
            id: project_id.to_string(),
        });
        ctx.spawn(lookup.into_actor(self).map(move |found, act, ctx| {
            let exists = match found {
                Ok(Ok(_)) => Ok(true),
                Ok(Err(Error::NotFound { .. })) => Ok(false),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(e.into()),
            };
            act.looked_up(project_id, exists, ctx)
        }));
    }

    /// Hands the events held meanwhile to the writer of a project found to
    /// exist, or refuses them.
    fn looked_up(&mut self, project_id: Uuid, exists: Result<bool>, ctx: &mut Context<Self>) {
        let held: Vec<Event> = self.pending.remove(&project_id).unwrap_or_default().into();
        match exists {
            // Even when closed: these arrived before DrainAll, which waits
            // for this lookup and then drains the writer.
            Ok(true) => self.store(project_id, held, ctx),
            Ok(false) => {
                self.unknown.put(project_id, ());
                self.reject(project_id, held.len(), "no_such_project");
            }
            // PostgreSQL is away: take the events on trust rather than
            // refuse them, since the writer can spool them; should the
            // project not exist, the replay finds out and counts them.
            Err(Error::DatabaseUnavailable { .. }) if self.spool.is_some() => {
                self.store(project_id, held, ctx)
            }
            Err(e) => {
                log::warn!("checking project {project_id} failed: {}", e.report());
                self.reject(project_id, held.len(), "lookup_failed")
            }
        }
        if self.pending.is_empty() {
            for waiter in self.lookup_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn store(&mut self, project_id: Uuid, events: Vec<Event>, ctx: &mut Context<Self>) {
        let mut events = events;
        // A writer that retired just now hands the events back: the second
        // inbox is a new writer's.
        for _ in 0..2 {
            match self
                .writer(project_id, ctx)
                .admit(events, Overflow::DropOldest)
            {
                Ok(Admitted::Taken) => return,
                Ok(Admitted::Retired(back)) => events = back,
                Err(e) => {
                    log::warn!("project {project_id}: refused an event: {}", e.report());
                    return;
                }
            }
        }
        self.reject(project_id, events.len(), "no_writer");
    }

    fn reject(&mut self, project_id: Uuid, count: usize, reason: &'static str) {
        self.rejected += count as u64;
        self.metrics.events_refused(reason, count as u64);
        log::warn!("refused {count} event(s) for project {project_id}: {reason}");
    }
}

impl Actor for WriterRegistry {
    type Context = Context<Self>;
}

/// Buffers an event in its project's writer (cast): the embedding API.
/// When the writer's buffer is full, it spills to the spool while
/// PostgreSQL is unreachable; otherwise the oldest event is dropped and
/// counted. Events of unknown projects are refused and counted.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Store(pub Event);

impl Handler<Store> for WriterRegistry {
    type Result = ();

    fn handle(&mut self, Store(event): Store, ctx: &mut Self::Context) {
        let project_id = event.project_id();
        if self.closed {
            return self.reject(project_id, 1, "shutting_down");
        }
        if self.directory.get(project_id).is_some() {
            return self.store(project_id, vec![event], ctx);
        }
        if self.unknown.get(&project_id).is_some() {
            return self.reject(project_id, 1, "no_such_project");
        }
        self.hold_for_lookup(event, ctx)
    }
}

/// The inbox of the project's writer, started now if none runs (call). The caller
/// vouches that the project exists (the HTTP layer resolved it from its
/// key), so there is no lookup. `Err(ShuttingDown)` once draining.
#[derive(Debug, Message)]
#[rtype(result = "Result<Arc<Inbox>>")]
pub struct WriterFor(pub Uuid);

impl Handler<WriterFor> for WriterRegistry {
    type Result = Result<Arc<Inbox>>;

    fn handle(
        &mut self,
        WriterFor(project_id): WriterFor,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if self.closed {
            return Err(Error::ShuttingDown);
        }
        Ok(self.writer(project_id, ctx))
    }
}

/// Forgets a writer that retired for being idle (its inbox takes no more
/// events), so that the project's next event starts a new one.
impl Handler<Idle> for WriterRegistry {
    type Result = ();

    fn handle(&mut self, Idle { project_id, inbox }: Idle, _: &mut Self::Context) {
        let mut writers = self.directory.write();
        // A writer that was replaced meanwhile is no longer listed.
        if writers
            .get(&project_id)
            .is_some_and(|r| Arc::ptr_eq(&r.inbox, &inbox))
        {
            writers.remove(&project_id);
        }
    }
}

/// Whether the registry takes events, i.e. is not shut down (call); the
/// readiness check asks.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Accepting;

impl Handler<Accepting> for WriterRegistry {
    type Result = bool;

    fn handle(&mut self, _: Accepting, _: &mut Self::Context) -> bool {
        !self.closed
    }
}

/// The address of a project's writer, if one is running (call).
#[derive(Debug, Message)]
#[rtype(result = "Option<Addr<StorageWriter>>")]
pub struct GetWriter(pub Uuid);

impl Handler<GetWriter> for WriterRegistry {
    type Result = Option<Addr<StorageWriter>>;

    fn handle(&mut self, GetWriter(project_id): GetWriter, _: &mut Self::Context) -> Self::Result {
        self.directory
            .read()
            .get(&project_id)
            .filter(|r| r.writer.connected() && r.inbox.is_live())
            .map(|r| r.writer.clone())
    }
}

/// Counters of the registry and the sum over its running writers (call).
#[derive(Debug, Message)]
#[rtype(result = "RegistryStats")]
pub struct TotalStats;

/// What [`TotalStats`] and [`DrainAll`] report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RegistryStats {
    /// Running writers.
    pub writers: usize,
    /// Events `Store` refused (see [`WriterRegistry`]).
    pub rejected: u64,
    /// Events waiting for their project's lookup.
    pub pending: u64,
    /// Oldest events pushed out while waiting for a slow lookup.
    pub dropped_pending: u64,
    /// Sum of the running writers' counters.
    pub totals: WriterStats,
    /// What the spool holds (zero without one), an earlier run's batches
    /// included.
    pub spool: Usage,
}

impl WriterRegistry {
    fn registry_stats(&self, writers: usize, totals: WriterStats) -> RegistryStats {
        RegistryStats {
            writers,
            rejected: self.rejected,
            pending: self.pending.values().map(|v| v.len() as u64).sum(),
            dropped_pending: self.dropped_pending,
            totals,
            spool: self.spool.as_ref().map(Spool::usage).unwrap_or_default(),
        }
    }
}

impl Handler<TotalStats> for WriterRegistry {
    type Result = ResponseActFuture<Self, RegistryStats>;

    fn handle(&mut self, _: TotalStats, _: &mut Self::Context) -> Self::Result {
        let writers: Vec<_> = self
            .directory
            .read()
            .values()
            .map(|r| r.writer.clone())
            .collect();
        let asks = join_all(writers.iter().map(|w| w.send(Stats)));
        Box::pin(asks.into_actor(self).map(|replies, act, _| {
            let mut totals = WriterStats::default();
            let mut running = 0;
            for stats in replies.into_iter().flatten() {
                totals.add(&stats);
                running += 1;
            }
            act.registry_stats(running, totals)
        }))
    }
}

/// Refuses new events from now on, drains every writer and reports the
/// final totals (call). Used at shutdown.
#[derive(Debug, Message)]
#[rtype(result = "RegistryStats")]
pub struct DrainAll;

impl Handler<DrainAll> for WriterRegistry {
    type Result = ResponseActFuture<Self, RegistryStats>;

    fn handle(&mut self, _: DrainAll, _: &mut Self::Context) -> Self::Result {
        self.closed = true;
        let (tx, lookups_done) = oneshot::channel();
        if self.pending.is_empty() {
            let _ = tx.send(());
        } else {
            self.lookup_waiters.push(tx);
        }
        let drain = lookups_done.into_actor(self).then(|_, act, _| {
            let writers: Vec<_> = act
                .directory
                .write()
                .drain()
                .map(|(_, r)| r.writer)
                .collect();
            join_all(
                writers
                    .into_iter()
                    .map(|w| async move { w.send(Drain).await }),
            )
            .into_actor(act)
        });
        Box::pin(drain.map(|replies, act, _| {
            let mut totals = WriterStats::default();
            let count = replies.len();
            for reply in replies {
                // A writer that died before it could drain has nothing left
                // to write; its events are already counted as lost.
                if let Ok(Ok(stats)) = reply {
                    totals.add(&stats);
                }
            }
            act.registry_stats(count, totals)
        }))
    }
}
