//! WriterRegistry: routes each event to its project's StorageWriter.
//!
//! It starts a project's writer on the project's first event, after
//! checking that the project exists (events for unknown projects are
//! refused, logged and counted, never stored), and supervises it: a writer
//! found stopped, for whatever reason, panics included, is replaced on the
//! next event for its project. At shutdown [`DrainAll`] drains every writer.
//!
//! Threads: the wiring starts the registry on an arbiter of its own, where
//! its writers run too; their database work runs on a second, I/O arbiter
//! (see [`StorageWriter`]), where the [`SpoolReplayer`] runs as well when
//! there is a spool.
//!
//! While a project is being looked up (once per process), its events wait
//! in the registry, bounded like a writer's buffer; other projects' events
//! flow on, even while PostgreSQL is unreachable and the lookup waits for
//! a connection. `DrainAll` lets lookups in progress finish first, so no
//! event that arrived before it is left behind.

use super::committer::Committer;
use super::spool::Spool;
use super::spool_replayer::SpoolReplayer;
use super::storage_writer::{Admit, Drain, Stats, StorageWriter, Store, WriterStats};
use crate::config::WriterConfig;
use crate::db::spool::Usage;
use crate::db::{self, EventPool};
use crate::domain::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use actix::prelude::*;
use futures_util::future::join_all;
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use tokio::sync::oneshot;
use uuid::Uuid;

/// How many unknown project ids are remembered; past that the set starts
/// over, which only costs a repeated lookup.
const MAX_UNKNOWN_REMEMBERED: usize = 10_000;

/// How many events the registry routes before it lets the other actors on
/// its thread (its writers) run. actix handles a whole mailbox before
/// anything else on the thread gets a turn, so under a steady stream the
/// writers would not buffer, let alone flush, until the stream paused. A
/// turn every 1,024 events costs little and keeps a burst's first flush
/// prompt.
const EVENTS_PER_TURN: u32 = 1_024;

/// Owns one [`StorageWriter`] per project that has sent events.
pub struct WriterRegistry {
    /// For project lookups.
    pool: EventPool,
    /// Writes every writer's batches, on the I/O thread.
    committer: Addr<Committer>,
    /// Handed to each writer it starts.
    config: WriterConfig,
    /// The thread all writers' flushes run on (see [`StorageWriter`]).
    io: Arbiter,
    /// The thread the registry and its writers run on, when it has one of
    /// its own (see [`WriterRegistry::start_on_own_thread`]).
    intake: Option<Arbiter>,
    /// The running writers by project.
    writers: HashMap<Uuid, Addr<StorageWriter>>,
    /// Project ids found not to exist. Ids are random UUIDs assigned at
    /// creation, so an unknown id never becomes a known one: remembering
    /// it spares a lookup per event for a misdirected stream.
    unknown: HashSet<Uuid>,
    /// Events of projects being looked up, oldest first, held until the
    /// lookup answers; at most a writer's buffer capacity per project.
    pending: HashMap<Uuid, VecDeque<Event>>,
    /// `DrainAll` callers waiting for the lookups in progress.
    lookup_waiters: Vec<oneshot::Sender<()>>,
    /// Events refused: unknown project, failed lookup, or shutting down.
    rejected: u64,
    /// Oldest events pushed out of `pending` while their lookup was slow.
    dropped_pending: u64,
    /// Set by [`DrainAll`]: the system is shutting down, so new events are
    /// refused instead of starting writers that nobody will drain.
    closed: bool,
    /// Events routed since the writers last had a turn (see
    /// [`EVENTS_PER_TURN`]).
    since_turn: u32,
    /// Handed to each writer it starts; refusals are counted here too.
    metrics: Metrics,
    /// Handed to each writer it starts (see [`StorageWriter`]).
    spool: Option<Spool>,
}

impl WriterRegistry {
    /// A registry whose writers use `pool` with `config`. Give it a pool of
    /// its own: a pooled connection drives its socket on the thread that
    /// opened it, and the registry uses its pool only from its I/O thread,
    /// so that no burst of events on the actors' thread can stall a write.
    ///
    /// With a `spool`, it also starts the [`SpoolReplayer`], which replays
    /// what the spool holds, an earlier run's batches included.
    pub fn new(
        pool: EventPool,
        config: WriterConfig,
        metrics: Metrics,
        spool: Option<Spool>,
    ) -> Self {
        let io = Arbiter::new();
        let committer = Committer::new(pool.clone(), config.concurrent_writes);
        let committer = Committer::start_in_arbiter(&io.handle(), move |_| committer);
        if let Some(spool) = &spool {
            let replayer = SpoolReplayer::new(spool.clone(), pool.clone(), metrics.clone());
            SpoolReplayer::start_in_arbiter(&io.handle(), move |_| replayer);
        }
        WriterRegistry {
            metrics,
            spool,
            committer,
            pool,
            config,
            io,
            intake: None,
            writers: HashMap::new(),
            unknown: HashSet::new(),
            pending: HashMap::new(),
            lookup_waiters: Vec::new(),
            rejected: 0,
            dropped_pending: 0,
            closed: false,
            since_turn: 0,
        }
    }

    /// Starts a registry on a thread of its own, as the wiring does: a burst
    /// of events then occupies that thread, not the one the other services
    /// answer on. The thread ends when the registry stops.
    pub fn start_on_own_thread(
        pool: EventPool,
        config: WriterConfig,
        metrics: Metrics,
        spool: Option<Spool>,
    ) -> Addr<Self> {
        let intake = Arbiter::new();
        let handle = intake.handle();
        WriterRegistry::start_in_arbiter(&handle, move |_| WriterRegistry {
            intake: Some(intake),
            ..WriterRegistry::new(pool, config, metrics, spool)
        })
    }

    fn start_writer(&mut self, project_id: Uuid) -> &Addr<StorageWriter> {
        let writer = StorageWriter::new(
            project_id,
            self.committer.clone(),
            self.config.clone(),
            self.io.handle(),
            self.metrics.clone(),
            self.spool.clone(),
        )
        .start();
        self.writers
            .entry(project_id)
            .insert_entry(writer)
            .into_mut()
    }

    /// Holds `event` while its project is looked up, starting the lookup if
    /// none is in progress for it.
    fn hold_for_lookup(&mut self, event: Event, ctx: &mut Context<Self>) {
        let project_id = event.project_id;
        if let Some(waiting) = self.pending.get_mut(&project_id) {
            waiting.push_back(event);
            if waiting.len() > self.config.buffer_capacity {
                waiting.pop_front();
                self.dropped_pending += 1;
            }
            return;
        }
        self.pending.insert(project_id, VecDeque::from([event]));
        let (pool, (tx, rx)) = (self.pool.clone(), oneshot::channel());
        // On the I/O thread, like every use of this pool (see `new`).
        self.io.spawn(async move {
            let _ = tx.send(db::projects::exists_by_id(&pool, project_id).await);
        });
        let lookup = async move {
            rx.await
                .unwrap_or_else(|e| Err(Error::internal_from("storage I/O stopped", e)))
        };
        ctx.spawn(
            lookup
                .into_actor(self)
                .map(move |exists, act, _| act.looked_up(project_id, exists)),
        );
    }

    /// Starts the writer of a project found to exist and hands it the
    /// events held meanwhile, or refuses them.
    fn looked_up(&mut self, project_id: Uuid, exists: crate::error::Result<bool>) {
        let held = self.pending.remove(&project_id).unwrap_or_default();
        match exists {
            // Even when closed: these arrived before DrainAll, which waits
            // for this lookup and then drains the writer.
            Ok(true) => {
                let writer = self.start_writer(project_id);
                for event in held {
                    writer.do_send(Store(event));
                }
            }
            Ok(false) => {
                if self.unknown.len() >= MAX_UNKNOWN_REMEMBERED {
                    self.unknown.clear();
                }
                self.unknown.insert(project_id);
                self.reject(project_id, held.len(), "no such project");
            }
            // PostgreSQL is away: take the events on trust rather than
            // refuse them, since the writer can spool them; should the
            // project not exist, the replay finds out and counts them.
            Err(Error::DatabaseUnavailable { .. }) if self.spool.is_some() => {
                let writer = self.start_writer(project_id);
                for event in held {
                    writer.do_send(Store(event));
                }
            }
            Err(e) => self.reject(
                project_id,
                held.len(),
                &format!("checking the project failed: {}", e.report()),
            ),
        }
        if self.pending.is_empty() {
            for waiter in self.lookup_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }

    fn reject(&mut self, project_id: Uuid, count: usize, why: &str) {
        self.rejected += count as u64;
        self.metrics
            .events_dropped("rejected_by_registry", count as u64);
        log::warn!("refused {count} event(s) for project {project_id}: {why}");
    }
}

impl Actor for WriterRegistry {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        self.io.stop();
        if let Some(intake) = &self.intake {
            intake.stop();
        }
    }
}

impl Handler<Store> for WriterRegistry {
    type Result = ();

    fn handle(&mut self, Store(event): Store, ctx: &mut Self::Context) {
        self.take_turns(ctx);
        let project_id = event.project_id;
        if self.closed {
            return self.reject(project_id, 1, "the system is shutting down");
        }
        match self.writers.get(&project_id) {
            Some(writer) if writer.connected() => writer.do_send(Store(event)),
            Some(_) => {
                log::warn!(
                    "storage writer for project {project_id} had stopped; started a replacement"
                );
                self.start_writer(project_id).do_send(Store(event));
            }
            None if self.unknown.contains(&project_id) => {
                self.reject(project_id, 1, "no such project")
            }
            None => self.hold_for_lookup(event, ctx),
        }
    }
}

impl WriterRegistry {
    /// Lets the writers on this thread run every [`EVENTS_PER_TURN`] events.
    fn take_turns(&mut self, ctx: &mut Context<Self>) {
        self.since_turn += 1;
        if self.since_turn >= EVENTS_PER_TURN {
            self.since_turn = 0;
            // Waiting on a future that is pending once pauses the mailbox
            // and hands the thread to the tasks that are ready.
            ctx.wait(tokio::task::yield_now().into_actor(self));
        }
    }
}

/// Hands events to their project's writer unless that writer is full or
/// the system is shutting down (call; see [`Admit`]). The caller vouches
/// that the project exists (the HTTP layer resolved it from its key), so
/// there is no lookup: the writer starts at once.
impl Handler<Admit> for WriterRegistry {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: Admit, ctx: &mut Self::Context) -> Self::Result {
        self.take_turns(ctx);
        if self.closed {
            return Box::pin(async { Err(Error::ShuttingDown) });
        }
        let Some(project_id) = msg.0.first().map(Event::project_id) else {
            return Box::pin(async { Ok(()) });
        };
        let writer = match self.writers.get(&project_id) {
            Some(writer) if writer.connected() => writer.clone(),
            Some(_) => {
                log::warn!(
                    "storage writer for project {project_id} had stopped; started a replacement"
                );
                self.start_writer(project_id).clone()
            }
            None => self.start_writer(project_id).clone(),
        };
        // Queued now (the writer's mailbox has room unless it is far
        // behind), so the Drain of a DrainAll handled after this message
        // reaches the writer after it too.
        let sent = writer.send(msg);
        Box::pin(async move { sent.await? })
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
        self.writers
            .get(&project_id)
            .filter(|w| w.connected())
            .cloned()
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
    /// Events refused (see [`WriterRegistry`]).
    pub rejected: u64,
    /// Events waiting for their project's lookup.
    pub pending: u64,
    /// Oldest events pushed out while waiting for a slow lookup.
    pub dropped_pending: u64,
    /// Sum of the writers' counters.
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
        let asks = join_all(self.writers.values().map(|w| w.send(Stats)));
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
            join_all(act.writers.drain().map(|(_, w)| w.send(Drain))).into_actor(act)
        });
        Box::pin(drain.map(|replies, act, _| {
            let mut totals = WriterStats::default();
            let count = replies.len();
            for reply in replies {
                // A writer that died before it could drain has nothing left
                // to write; its events are already counted as lost in the log.
                if let Ok(Ok(stats)) = reply {
                    totals.add(&stats);
                }
            }
            // The writers are gone; the registry stays, closed, so that a
            // late event is still refused and counted. It stops, with its
            // intake thread, when its last address is dropped.
            act.io.stop();
            act.registry_stats(count, totals)
        }))
    }
}
