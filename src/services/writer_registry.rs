//! WriterRegistry: routes each event to its project's StorageWriter.
//!
//! It starts a project's writer on the project's first event, after
//! checking that the project exists (events for unknown projects are
//! refused, logged and counted), and supervises it: a writer found stopped,
//! for whatever reason, panics included, is replaced on the next event for
//! its project. At shutdown [`DrainAll`] drains every writer.

use super::storage_writer::{Drain, Stats, StorageWriter, Store, WriterStats};
use crate::config::WriterConfig;
use crate::db::{self, Pool};
use crate::domain::Event;
use actix::prelude::*;
use futures_util::future::join_all;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// Owns one [`StorageWriter`] per project that has sent events.
pub struct WriterRegistry {
    /// Handed to each writer it starts.
    pool: Pool,
    /// Handed to each writer it starts.
    config: WriterConfig,
    /// The running writers by project.
    writers: HashMap<Uuid, Addr<StorageWriter>>,
    /// Events for projects whose existence is being checked, held (up to a
    /// writer's buffer capacity, oldest dropped) until the check answers.
    pending: HashMap<Uuid, Vec<Event>>,
    /// Events refused because their project does not exist (or could not
    /// be checked).
    rejected: u64,
    /// Events dropped from `pending` because a check took too long.
    dropped_pending: u64,
    /// Set by [`DrainAll`]: the system is shutting down, so new events are
    /// refused instead of starting writers that nobody will drain.
    closed: bool,
}

impl WriterRegistry {
    pub fn new(pool: Pool, config: WriterConfig) -> Self {
        WriterRegistry {
            pool,
            config,
            writers: HashMap::new(),
            pending: HashMap::new(),
            rejected: 0,
            dropped_pending: 0,
            closed: false,
        }
    }

    fn start_writer(&mut self, project_id: Uuid) -> &Addr<StorageWriter> {
        let writer = StorageWriter::new(project_id, self.pool.clone(), self.config.clone()).start();
        self.writers
            .entry(project_id)
            .insert_entry(writer)
            .into_mut()
    }

    /// Checks that `project_id` exists, then starts its writer and hands it
    /// the events that arrived meanwhile.
    fn check_project(&mut self, project_id: Uuid, ctx: &mut Context<Self>) {
        let pool = self.pool.clone();
        let check = async move { db::projects::exists_by_id(&pool, project_id).await };
        ctx.spawn(check.into_actor(self).map(move |exists, act, _| {
            let events = act.pending.remove(&project_id).unwrap_or_default();
            match exists {
                Ok(true) if !act.closed => {
                    let writer = act.start_writer(project_id);
                    for event in events {
                        writer.do_send(Store(event));
                    }
                }
                Ok(true) => act.reject(project_id, events.len(), "the system is shutting down"),
                Ok(false) => act.reject(project_id, events.len(), "no such project"),
                Err(e) => act.reject(
                    project_id,
                    events.len(),
                    &format!("checking the project failed: {e}"),
                ),
            }
        }));
    }

    fn reject(&mut self, project_id: Uuid, count: usize, why: &str) {
        self.rejected += count as u64;
        log::warn!("refused {count} event(s) for project {project_id}: {why}");
    }
}

impl Actor for WriterRegistry {
    type Context = Context<Self>;
}

impl Handler<Store> for WriterRegistry {
    type Result = ();

    fn handle(&mut self, Store(event): Store, ctx: &mut Self::Context) {
        let project_id = event.project_id;
        if self.closed {
            return self.reject(project_id, 1, "the system is shutting down");
        }
        if let Some(writer) = self.writers.get(&project_id) {
            if writer.connected() {
                return writer.do_send(Store(event));
            }
            log::warn!(
                "storage writer for project {project_id} had stopped; started a replacement"
            );
            return self.start_writer(project_id).do_send(Store(event));
        }
        if let Some(waiting) = self.pending.get_mut(&project_id) {
            if waiting.len() >= self.config.buffer_capacity {
                waiting.remove(0);
                self.dropped_pending += 1;
            }
            return waiting.push(event);
        }
        self.pending.insert(project_id, vec![event]);
        self.check_project(project_id, ctx);
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
    /// Events waiting for their project to be checked.
    pub pending: u64,
    pub rejected: u64,
    pub dropped_pending: u64,
    /// Sum of the writers' counters.
    pub totals: WriterStats,
}

impl WriterRegistry {
    fn registry_stats(&self, writers: usize, totals: WriterStats) -> RegistryStats {
        RegistryStats {
            writers,
            pending: self.pending.values().map(|v| v.len() as u64).sum(),
            rejected: self.rejected,
            dropped_pending: self.dropped_pending,
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

/// Refuses new events, drains every writer and reports the final totals
/// (call). Used at shutdown.
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
            act.registry_stats(count, totals)
        }))
    }
}
