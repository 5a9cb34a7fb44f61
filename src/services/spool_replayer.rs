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
//! crash, and so still in the spool, is harmless to replay. A batch an
//! earlier run spooled waits until that run's acknowledgement log is
//! replayed, and its events already stored then (by that run, or by the
//! log's replay) are counted as duplicates: this run counts as stored only
//! the rows it adds.
//!
//! Each batch is settled once: replayed and counted, or, when its row no
//! longer decodes, set aside in the spool's quarantine table and counted
//! as dropped (`spool_corrupt`). Should removing a settled row from the
//! spool fail, the replayer remembers the row and retries only the
//! removal, going on with the batches after it meanwhile: a settled batch
//! is never replayed or counted again by this process, and a bad row never
//! stalls the ones behind it.
//!
//! It runs on the registry's I/O thread, like every use of the event pool.

use super::spool::{Spool, Spooled};
use crate::db::{self, EventPool};
use crate::domain::Event;
use crate::error::Error;
use crate::metrics::Metrics;
use actix::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// How often the spool and PostgreSQL are looked at when there is nothing
/// to replay or PostgreSQL is away: well under the one second within which
/// writers must be back after an outage.
const TICK: Duration = Duration::from_millis(200);

/// The longest wait after a batch failed for a reason other than the
/// connection (say, a revoked grant), or while a settled batch cannot be
/// removed, so that a fault an operator is fixing is retried promptly once
/// fixed, without a log line every tick.
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
    /// What has been settled; handed to each step and back, so that a
    /// step is the only one to touch it.
    progress: Option<Progress>,
}

/// How far replay has got.
#[derive(Debug, Default)]
struct Progress {
    /// The last row settled. Rows only get larger ids, so the next batch
    /// to replay is the first after this one.
    settled: i64,
    /// Settled rows whose removal failed, oldest first, with how to remove
    /// them: retried at each step, never replayed or counted again.
    unremoved: BTreeMap<i64, (Spooled, Removal)>,
    /// For the earlier run's batch being replayed: its events stored
    /// before this run first sent it, asked once (see
    /// [`db::events::stored_ids`]) and kept across its retries.
    known: Option<(i64, HashSet<Uuid>)>,
}

/// How a settled row leaves the spool's batches.
#[derive(Debug, Clone)]
enum Removal {
    /// Replayed: deleted.
    Delete,
    /// Undecodable: moved to the quarantine table, with why.
    SetAside(String),
}

impl Removal {
    async fn apply(&self, spool: &Spool, batch: Spooled) -> crate::Result<()> {
        match self {
            Removal::Delete => spool.remove(batch).await,
            Removal::SetAside(reason) => spool.set_aside(batch, reason.clone()).await,
        }
    }
}

impl Progress {
    /// Records `batch` as settled (already counted), then removes it; a
    /// removal that fails is kept for [`Progress::retry_removals`].
    async fn settle(&mut self, spool: &Spool, batch: Spooled, removal: Removal) {
        self.settled = batch.id;
        self.known = None;
        if let Err(e) = removal.apply(spool, batch).await {
            log::error!(
                "spooled batch {} is settled but could not be removed from the spool; \
                 retrying the removal, not the batch: {}",
                batch.id,
                e.report()
            );
            self.unremoved.insert(batch.id, (batch, removal));
        }
    }

    /// Retries the removals that failed, oldest first; `false` when one
    /// still fails.
    async fn retry_removals(&mut self, spool: &Spool) -> bool {
        while let Some(entry) = self.unremoved.first_entry() {
            let (batch, removal) = entry.get().clone();
            if let Err(e) = removal.apply(spool, batch).await {
                log::debug!(
                    "removing settled batch {} from the spool failed again: {}",
                    batch.id,
                    e.report()
                );
                return false;
            }
            log::info!("removed settled batch {} from the spool", batch.id);
            entry.remove();
        }
        true
    }
}

impl SpoolReplayer {
    pub fn new(spool: Spool, pool: EventPool, metrics: Metrics) -> Self {
        SpoolReplayer {
            spool,
            pool,
            metrics,
            backoff: TICK,
            progress: Some(Progress::default()),
        }
    }

    /// Does one step and re-arms for the next.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let progress = self.progress.take().unwrap_or_default();
        let step = step(
            self.spool.clone(),
            self.pool.clone(),
            self.metrics.clone(),
            progress,
        );
        ctx.spawn(step.into_actor(self).map(|(next, progress), act, ctx| {
            act.progress = Some(progress);
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
    /// At once: a batch was settled, or PostgreSQL just answered.
    Now,
    /// After a [`TICK`]: nothing to do, or PostgreSQL is away.
    Tick,
    /// After the growing backoff: the oldest batch failed for another
    /// reason, or nothing is left but removals that keep failing.
    Backoff,
}

async fn step(
    spool: Spool,
    pool: EventPool,
    metrics: Metrics,
    mut progress: Progress,
) -> (Next, Progress) {
    let next = replay_next(&spool, &pool, &metrics, &mut progress).await;
    (next, progress)
}

async fn replay_next(
    spool: &Spool,
    pool: &EventPool,
    metrics: &Metrics,
    progress: &mut Progress,
) -> Next {
    // Needs no PostgreSQL; a removal still failing holds up no batch.
    let removed = progress.retry_removals(spool).await;
    let idle = if removed { Next::Tick } else { Next::Backoff };
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
    let batch = match spool.oldest_after(progress.settled).await {
        Ok(Some(batch)) => batch,
        Ok(None) => return idle,
        Err(e) => {
            log::error!("reading the spool failed: {}", e.report());
            return Next::Backoff;
        }
    };
    let spooled = Spooled::of(&batch);
    let (project_id, events) = match batch.contents {
        Ok(contents) => contents,
        Err(e) => {
            // Replaying it again would fail again; keeping it in the way
            // would stall every batch behind it. Its bytes are kept for an
            // operator.
            let reason = e.report().to_string();
            log::error!(
                "spooled batch {} ({} events) does not decode; set aside in the spool's \
                 quarantine table and counted as dropped: {reason}",
                spooled.id,
                spooled.events
            );
            metrics.events_replayed(spooled.events);
            metrics.events_dropped("spool_corrupt", spooled.events);
            progress
                .settle(spool, spooled, Removal::SetAside(reason))
                .await;
            return Next::Now;
        }
    };
    // An earlier run's batch waits for the replay of that run's log, then
    // leaves out the events stored before this run first sends it: the
    // earlier run's (a commit whose answer it lost) or the log replay's.
    // They are duplicates to this run, which did not add their rows.
    let replayed = events.len() as u64;
    let events = if spool.inherited(spooled.id) {
        if spool.log_pending() {
            return Next::Tick;
        }
        let known = match progress.known.take() {
            Some((id, known)) if id == spooled.id => known,
            _ => {
                let ids: Vec<Uuid> = events.iter().map(Event::id).collect();
                match db::events::stored_ids(pool, project_id, &ids).await {
                    Ok(known) => known,
                    Err(e @ Error::DatabaseUnavailable { .. }) => {
                        log::warn!("replaying the spool paused: {}", e.report());
                        return Next::Tick;
                    }
                    Err(e) => {
                        log::warn!(
                            "which events of spooled batch {} are stored is unknown; will retry: {}",
                            spooled.id,
                            e.report()
                        );
                        return Next::Backoff;
                    }
                }
            }
        };
        let fresh = events
            .into_iter()
            .filter(|e| !known.contains(&e.id()))
            .collect();
        progress.known = Some((spooled.id, known));
        fresh
    } else {
        events
    };
    let earlier = replayed - events.len() as u64;
    match db::events::store_batch(pool, &events).await {
        Ok(db::events::Stored {
            stored,
            duplicate,
            refused,
            fired,
        }) => {
            metrics.events_replayed(replayed);
            metrics.events_inserted(stored, duplicate + earlier, refused.len() as u64);
            metrics.alerts_fired(&fired);
            if !refused.is_empty() {
                let refused: Vec<_> = refused.iter().map(|&i| events[i].id()).collect();
                log::error!(
                    "project {project_id}: PostgreSQL refused {} replayed event(s), stored the other {stored}: {refused:?}",
                    refused.len()
                );
            }
            progress.settle(spool, spooled, Removal::Delete).await;
            Next::Now
        }
        Err(e @ Error::DatabaseUnavailable { .. }) => {
            log::warn!("replaying the spool paused: {}", e.report());
            Next::Tick
        }
        Err(e) => {
            log::warn!(
                "replaying spooled batch {} ({} events of project {project_id}) failed; will retry: {}",
                spooled.id,
                spooled.events,
                e.report()
            );
            Next::Backoff
        }
    }
}
