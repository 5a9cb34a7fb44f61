//! SpoolReplayer: finds PostgreSQL again after an outage and replays the
//! spool into it.
//!
//! It wakes every [`TICK`] (re-arming itself with `run_later`). While
//! PostgreSQL is marked unreachable it opens a fresh connection as a probe,
//! so writers go back to PostgreSQL within a tick of it answering, instead
//! of waiting out a pool's reconnect backoff. While it is reachable and the
//! spool holds batches, it replays them one after another, oldest first,
//! each with the writers' own statement ([`db::events::store_batch`]),
//! which skips events already stored: a batch committed just before a
//! crash, and so still in the spool, is harmless to replay.
//!
//! It runs on the registry's I/O thread, like every use of the event pool.

use super::spool::{Spool, Spooled};
use crate::db::{self, EventPool};
use crate::error::Error;
use crate::metrics::Metrics;
use actix::prelude::*;
use std::time::Duration;

/// How often the spool and PostgreSQL are looked at when there is nothing
/// to replay or PostgreSQL is away: well under the one second within which
/// writers must be back after an outage.
const TICK: Duration = Duration::from_millis(200);

/// The longest wait after a batch failed for a reason other than the
/// connection (say, a revoked grant), so that a fault an operator is fixing
/// is retried promptly once fixed, without a log line every tick.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Replays the spool (see the module documentation).
pub struct SpoolReplayer {
    spool: Spool,
    /// The writers' pool (see [`crate::db::event_pool`]).
    pool: EventPool,
    /// Replayed events are counted as such, then as stored, duplicate or
    /// dropped.
    metrics: Metrics,
    /// The wait after a batch that failed for a reason other than the
    /// connection; doubles up to [`MAX_BACKOFF`], reset by a success.
    backoff: Duration,
}

impl SpoolReplayer {
    pub fn new(spool: Spool, pool: EventPool, metrics: Metrics) -> Self {
        SpoolReplayer {
            spool,
            pool,
            metrics,
            backoff: TICK,
        }
    }

    /// Does one step and re-arms for the next.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let step = step(self.spool.clone(), self.pool.clone(), self.metrics.clone());
        ctx.spawn(step.into_actor(self).map(|next, act, ctx| {
            let delay = match next {
                Next::Now => {
                    act.backoff = TICK;
                    Duration::ZERO
                }
                Next::Tick => TICK,
                Next::Backoff => {
                    let delay = act.backoff;
                    act.backoff = (act.backoff * 2).min(MAX_BACKOFF);
                    delay
                }
            };
            ctx.run_later(delay, |act, ctx| act.tick(ctx));
        }));
    }
}

impl Actor for SpoolReplayer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tick(ctx);
    }
}

/// When to take the next step.
enum Next {
    /// At once: a batch was replayed, or PostgreSQL just answered.
    Now,
    /// After a [`TICK`]: nothing to do, or PostgreSQL is away.
    Tick,
    /// After the growing backoff: the oldest batch failed for another
    /// reason.
    Backoff,
}

async fn step(spool: Spool, pool: EventPool, metrics: Metrics) -> Next {
    if !spool.database_reachable() {
        // A connection of the event pool marks PostgreSQL reachable again
        // as it opens.
        return match pool.dedicated_connection().await {
            Ok(_) => Next::Now,
            Err(_) => Next::Tick,
        };
    }
    if spool.usage().batches == 0 {
        return Next::Tick;
    }
    let batch = match spool.oldest().await {
        Ok(Some(batch)) => batch,
        Ok(None) => return Next::Tick,
        Err(e) => {
            log::error!("reading the spool failed: {}", e.report());
            return Next::Backoff;
        }
    };
    let (project_id, count, spooled) = (batch.project_id, batch.count, Spooled::of(&batch));
    let events = match batch.events {
        Ok(events) => events,
        Err(e) => {
            // Replaying it again would fail again; keeping it would stall
            // every batch behind it.
            log::error!(
                "dropped a spooled batch of {count} events of project {project_id}: it does not decode: {}",
                e.report()
            );
            metrics.events_replayed(count);
            metrics.events_dropped("spool_unreadable", count);
            return remove(&spool, spooled).await;
        }
    };
    match db::events::store_batch(&pool, &events).await {
        Ok(db::events::Stored {
            stored,
            duplicate,
            refused,
        }) => {
            metrics.events_replayed(events.len() as u64);
            metrics.events_inserted(stored, duplicate, refused.len() as u64);
            if !refused.is_empty() {
                let refused: Vec<_> = refused.iter().map(|&i| events[i].id()).collect();
                log::error!(
                    "project {project_id}: PostgreSQL refused {} replayed event(s), stored the other {stored}: {refused:?}",
                    refused.len()
                );
            }
            remove(&spool, spooled).await
        }
        Err(e @ Error::DatabaseUnavailable { .. }) => {
            log::warn!("replaying the spool paused: {}", e.report());
            Next::Tick
        }
        Err(e) => {
            log::warn!(
                "replaying a spooled batch of {count} events of project {project_id} failed; will retry: {}",
                e.report()
            );
            Next::Backoff
        }
    }
}

async fn remove(spool: &Spool, batch: Spooled) -> Next {
    match spool.remove(batch).await {
        Ok(()) => Next::Now,
        Err(e) => {
            log::error!(
                "removing a replayed batch from the spool failed: {}",
                e.report()
            );
            Next::Backoff
        }
    }
}
