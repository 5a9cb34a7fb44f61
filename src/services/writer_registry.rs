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
//! (see [`StorageWriter`]).
//!
//! The existence check holds the registry's mailbox (`ctx.wait`): it is one
//! indexed lookup per project per process, and it keeps a project's events
//! and a later `DrainAll` in order. The price: while PostgreSQL is
//! unreachable, the first event of a new project holds routing for every
//! project for up to the pool's connection timeout (10 s).

use super::storage_writer::{Drain, Stats, StorageWriter, Store, WriterStats};
use crate::config::WriterConfig;
use crate::db::{self, Pool};
use crate::domain::Event;
use crate::error::Error;
use actix::prelude::*;
use futures_util::future::join_all;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use tokio::sync::oneshot;
use uuid::Uuid;

/// How many unknown project ids are remembered; past that the set starts
/// over, which only costs a repeated lookup.
const MAX_UNKNOWN_REMEMBERED: usize = 10_000;

/// Owns one [`StorageWriter`] per project that has sent events.
pub struct WriterRegistry {
    /// Handed to each writer it starts.
    pool: Pool,
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
    /// Events refused: unknown project, failed lookup, or shutting down.
    rejected: u64,
    /// Set by [`DrainAll`]: the system is shutting down, so new events are
    /// refused instead of starting writers that nobody will drain.
    closed: bool,
}

impl WriterRegistry {
    /// A registry whose writers use `pool` with `config`. Give it a pool of
    /// its own: a pooled connection drives its socket on the thread that
    /// opened it, and the registry uses its pool only from its I/O thread,
    /// so that no burst of events on the actors' thread can stall a write.
    pub fn new(pool: Pool, config: WriterConfig) -> Self {
        WriterRegistry {
            pool,
            config,
            io: Arbiter::new(),
            intake: None,
            writers: HashMap::new(),
            unknown: HashSet::new(),
            rejected: 0,
            closed: false,
        }
    }

    /// Starts a registry on a thread of its own, as the wiring does: a burst
    /// of events then occupies that thread, not the one the other services
    /// answer on. The thread ends when the registry stops.
    pub fn start_on_own_thread(pool: Pool, config: WriterConfig) -> Addr<Self> {
        let intake = Arbiter::new();
        let handle = intake.handle();
        WriterRegistry::start_in_arbiter(&handle, move |_| WriterRegistry {
            intake: Some(intake),
            ..WriterRegistry::new(pool, config)
        })
    }

    fn start_writer(&mut self, project_id: Uuid) -> &Addr<StorageWriter> {
        let writer = StorageWriter::new(
            project_id,
            self.pool.clone(),
            self.config.clone(),
            self.io.handle(),
        )
        .start();
        self.writers
            .entry(project_id)
            .insert_entry(writer)
            .into_mut()
    }

    /// Checks that the event's project exists, then starts its writer and
    /// hands it the event. `ctx.wait` holds the mailbox meanwhile (once per
    /// project, a single indexed lookup), so later events for the project
    /// find its writer, and a `DrainAll` cannot overtake the check.
    fn start_writer_for(&mut self, event: Event, ctx: &mut Context<Self>) {
        let (pool, project_id) = (self.pool.clone(), event.project_id);
        let (tx, rx) = oneshot::channel();
        // On the I/O thread, like every use of this pool (see `new`).
        self.io.spawn(async move {
            let _ = tx.send(db::projects::exists_by_id(&pool, project_id).await);
        });
        let check = async move {
            rx.await
                .unwrap_or_else(|_| Err(Error::Internal("storage I/O stopped".into())))
        };
        ctx.wait(
            check
                .into_actor(self)
                .map(move |exists, act, _| match exists {
                    Ok(true) => act.start_writer(project_id).do_send(Store(event)),
                    Ok(false) => {
                        if act.unknown.len() >= MAX_UNKNOWN_REMEMBERED {
                            act.unknown.clear();
                        }
                        act.unknown.insert(project_id);
                        act.reject(project_id, "no such project");
                    }
                    Err(e) => act.reject(project_id, &format!("checking the project failed: {e}")),
                }),
        );
    }

    fn reject(&mut self, project_id: Uuid, why: &str) {
        self.rejected += 1;
        log::warn!("refused an event for project {project_id}: {why}");
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
        let project_id = event.project_id;
        if self.closed {
            return self.reject(project_id, "the system is shutting down");
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
                self.reject(project_id, "no such project")
            }
            None => self.start_writer_for(event, ctx),
        }
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
    /// Sum of the writers' counters.
    pub totals: WriterStats,
}

impl WriterRegistry {
    fn registry_stats(&self, writers: usize, totals: WriterStats) -> RegistryStats {
        RegistryStats {
            writers,
            rejected: self.rejected,
            totals,
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
        let drains = join_all(self.writers.drain().map(|(_, w)| w.send(Drain)));
        Box::pin(drains.into_actor(self).map(|replies, act, _| {
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
