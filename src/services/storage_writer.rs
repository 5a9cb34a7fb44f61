//! StorageWriter: one per project, batching events into PostgreSQL.
//!
//! Events wait in a bounded buffer and go to the database in batches, one
//! statement per batch, with at most one batch in flight. A flush starts
//! when `batch_size` events are waiting or every `flush_interval`, and takes
//! everything buffered: under load the buffer refills while a batch is
//! written, so batches grow towards `buffer_capacity` and the per-statement
//! cost is spread over more rows. For the same reason a flush due after a
//! `Store` waits until the writer has taken the events already in its
//! mailbox: a burst then goes as one batch, not in `batch_size` pieces
//! each holding a connection. A failed batch is retried after each
//! `retry_backoff` delay, then dropped and counted.
//!
//! With a [`Spool`], an outage loses nothing: a batch that finds
//! PostgreSQL unreachable goes to the spool at once (no retries: the
//! replayer's probe decides when PostgreSQL is back). A batch that fails
//! for another reason is retried as without a spool: replaying it would
//! fail again, and hold up the spool behind it. While PostgreSQL is
//! unreachable, a full buffer spills to the spool instead of pushing out
//! its oldest events. Only a full spool, or none, brings back drop-oldest.
//!
//! The database work of a flush (encoding the batch and the statement)
//! runs on an I/O arbiter, a thread the registry shares among all writers,
//! not on the writer's own thread, through the [`Committer`], which
//! combines batches that several writers flush at the same moment. Two reasons, both seen in the ingest benchmark:
//! actix drains a mailbox completely before it polls the actor's spawned
//! futures, so under a burst a flush future on the writer's thread would
//! not progress until the burst was consumed (mostly into drops); and
//! encoding would compete with event intake for the same core. The writer
//! learns the outcome through a oneshot channel that it checks on every
//! `Store`, and on the wake-up message the I/O task sends when done, so a
//! finished flush is noticed even in the middle of a burst.

use super::committer::{Commit, Committed, Committer};
use crate::config::WriterConfig;
use crate::db;
use crate::domain::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::services::Spool;
use actix::prelude::*;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::oneshot::{self, error::TryRecvError};
use uuid::Uuid;

/// Buffers and stores one project's events.
pub struct StorageWriter {
    /// Whose events these are; named in every log line.
    project_id: Uuid,
    /// Writes the batches of all writers (see [`Committer`]).
    committer: Addr<Committer>,
    /// Buffer size, flush triggers and retry delays.
    config: WriterConfig,
    /// Where flushes run (see the module documentation).
    io: ArbiterHandle,
    /// Events waiting for the next flush, oldest first.
    buffer: VecDeque<Event>,
    /// Events in the batch being written or waiting for a retry; 0 when
    /// none. Nonzero blocks further flushes: one batch in flight.
    in_flight: usize,
    /// Where the running write's outcome arrives.
    outcome: Option<oneshot::Receiver<Outcome>>,
    /// A [`Flush`] arrived while a batch was in flight; honoured as soon as
    /// that batch is settled.
    flush_requested: bool,
    /// A flush became due during a `Store` and is put off until the mailbox
    /// is empty (see the module documentation); one such wait at a time,
    /// not one per event past `batch_size`.
    flush_scheduled: bool,
    /// Counters reported by [`Stats`].
    stats: WriterStats,
    /// Callers of [`Drain`] waiting for the buffer to empty.
    drain_waiters: Vec<oneshot::Sender<WriterStats>>,
    /// Where stored and dropped events and batch latencies are counted.
    metrics: Metrics,
    /// Where batches go while PostgreSQL cannot take them; `None` when the
    /// spool is turned off.
    spool: Option<Spool>,
    /// Events on their way to the spool after a spill (see
    /// [`StorageWriter::spill`]), not yet known to be on disk.
    spilling: usize,
}

/// What a writer has done since it started. Every event received is in
/// exactly one place: `received = stored + spooled + dropped_overflow +
/// dropped_after_retries + refused_by_database + buffered + in_flight`.
/// (Spooled events are stored later by the replayer, which counts them.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    pub received: u64,
    pub buffered: u64,
    /// Events of the batch being written, or being spilled to the spool.
    pub in_flight: u64,
    pub stored: u64,
    /// Events handed to the spool, safe on local disk.
    pub spooled: u64,
    /// Oldest events pushed out of a full buffer, and events a full buffer
    /// spilled that the spool refused (full).
    pub dropped_overflow: u64,
    /// Events of batches given up: still failing after the last retry
    /// (the spool full or off, for a connection failure), or lost with the
    /// storage I/O at shutdown.
    pub dropped_after_retries: u64,
    /// Events PostgreSQL refused for their data (see
    /// [`db::events::store_batch`]); the rest of their batch was stored.
    pub refused_by_database: u64,
    /// Retry attempts made (not events).
    pub retries: u64,
}

impl WriterStats {
    /// Adds `other`'s counters to these (for totals across writers).
    pub fn add(&mut self, other: &WriterStats) {
        self.received += other.received;
        self.buffered += other.buffered;
        self.in_flight += other.in_flight;
        self.stored += other.stored;
        self.spooled += other.spooled;
        self.dropped_overflow += other.dropped_overflow;
        self.dropped_after_retries += other.dropped_after_retries;
        self.refused_by_database += other.refused_by_database;
        self.retries += other.retries;
    }
}

/// What a write on the I/O arbiter hands back: which attempt it was, and
/// where the batch landed or why it did not.
struct Outcome {
    attempt: usize,
    result: std::result::Result<Landed, Failed>,
    took: Duration,
}

/// Where a batch ended up.
enum Landed {
    /// In PostgreSQL, but for the events it refused for their data.
    Stored { count: usize, refused: Vec<Uuid> },
    /// On disk in the spool.
    Spooled { count: usize },
}

/// A batch that landed nowhere, kept for a retry.
struct Failed {
    batch: Vec<Event>,
    /// Its size, even when the batch itself was lost with the spool.
    count: usize,
    error: Error,
}

/// Writes `batch` to PostgreSQL, or to the spool when PostgreSQL is
/// unreachable.
async fn land(
    committer: &Addr<Committer>,
    spool: Option<&Spool>,
    mut batch: Vec<Event>,
) -> std::result::Result<Landed, Failed> {
    let count = batch.len();
    let spool = match spool {
        Some(spool) if !spool.database_reachable() => spool,
        _ => {
            let (back, result) = match committer.send(Commit(batch)).await {
                Ok(Committed { batch, result }) => (batch, result),
                Err(e) => (Vec::new(), Err(e.into())),
            };
            batch = back;
            let error = match result {
                Ok(db::events::Stored { refused }) => {
                    let refused = refused.iter().map(|&i| batch[i].id()).collect();
                    return Ok(Landed::Stored { count, refused });
                }
                Err(error) => error,
            };
            match spool {
                // The connection broke, or none came in time: spooled. (The
                // pool marks PostgreSQL unreachable when a connect fails.)
                Some(spool) if matches!(error, Error::DatabaseUnavailable { .. }) => spool,
                _ => {
                    return Err(Failed {
                        batch,
                        count,
                        error,
                    });
                }
            }
        }
    };
    let project_id = batch.first().map(Event::project_id).unwrap_or_default();
    match spool.put(project_id, batch).await {
        Ok(()) => Ok(Landed::Spooled { count }),
        Err(refused) => Err(Failed {
            batch: refused.events,
            count,
            error: refused.error,
        }),
    }
}

impl StorageWriter {
    /// A writer for `project_id` whose flushes run on `io` (the current
    /// arbiter will do for a writer that sees no bursts, as in tests).
    pub fn new(
        project_id: Uuid,
        committer: Addr<Committer>,
        config: WriterConfig,
        io: ArbiterHandle,
        metrics: Metrics,
        spool: Option<Spool>,
    ) -> Self {
        StorageWriter {
            metrics,
            spool,
            spilling: 0,
            project_id,
            committer,
            buffer: VecDeque::new(),
            config,
            io,
            in_flight: 0,
            outcome: None,
            flush_requested: false,
            flush_scheduled: false,
            stats: WriterStats::default(),
            drain_waiters: Vec::new(),
        }
    }

    fn stats(&self) -> WriterStats {
        WriterStats {
            buffered: self.buffer.len() as u64,
            in_flight: (self.in_flight + self.spilling) as u64,
            ..self.stats
        }
    }

    /// Starts writing everything buffered, unless a batch is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight == 0 && !self.buffer.is_empty() {
            self.flush_requested = false;
            // Taking the buffer whole moves it without a copy, and leaves an
            // empty one: an idle writer then holds no memory for the burst
            // it once buffered (thousands of idle writers add up).
            let batch: Vec<Event> = std::mem::take(&mut self.buffer).into();
            self.write(batch, 0, ctx);
        }
    }

    /// Writes `batch` on the I/O arbiter; `attempt` counts the retries
    /// already made.
    fn write(&mut self, batch: Vec<Event>, attempt: usize, ctx: &mut Context<Self>) {
        self.in_flight = batch.len();
        let (tx, rx) = oneshot::channel();
        self.outcome = Some(rx);
        let (committer, spool, me) = (self.committer.clone(), self.spool.clone(), ctx.address());
        let spawned = self.io.spawn(async move {
            let start = Instant::now();
            let result = land(&committer, spool.as_ref(), batch).await;
            let _ = tx.send(Outcome {
                attempt,
                result,
                took: start.elapsed(),
            });
            me.do_send(Written);
        });
        if !spawned {
            // The I/O arbiter is gone and took the batch with it; the closed
            // channel tells check_outcome so.
            self.check_outcome(ctx);
        }
    }

    /// Takes the running write's outcome, if it has arrived.
    fn check_outcome(&mut self, ctx: &mut Context<Self>) {
        let Some(rx) = self.outcome.as_mut() else {
            return;
        };
        match rx.try_recv() {
            Ok(outcome) => {
                self.outcome = None;
                self.written(outcome, ctx);
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Closed) => {
                // The I/O arbiter stopped (system shutdown) before the write
                // ran, or the write panicked: the batch went with it.
                self.outcome = None;
                self.stats.dropped_after_retries += self.in_flight as u64;
                self.metrics
                    .events_dropped("storage_stopped", self.in_flight as u64);
                log::error!(
                    "project {}: lost a batch of {} events: storage I/O stopped",
                    self.project_id,
                    self.in_flight
                );
                self.settle(ctx);
            }
        }
    }

    fn written(
        &mut self,
        Outcome {
            attempt,
            result,
            took,
        }: Outcome,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok(Landed::Spooled { count }) => self.stats.spooled += count as u64,
            Ok(Landed::Stored { count, refused }) => {
                let stored = (count - refused.len()) as u64;
                self.stats.stored += stored;
                self.metrics.events_stored(stored);
                self.metrics.batch_written(took);
                if !refused.is_empty() {
                    self.stats.refused_by_database += refused.len() as u64;
                    self.metrics
                        .events_dropped("refused_by_database", refused.len() as u64);
                    log::error!(
                        "project {}: PostgreSQL refused {} event(s), stored the other {stored}: {refused:?}",
                        self.project_id,
                        refused.len()
                    );
                }
            }
            Err(Failed {
                batch,
                count,
                error,
            }) => {
                if batch.len() < count {
                    // The committer or the spool's thread is gone (the
                    // system is stopping) and the batch with it.
                    return self.lost(count, &error, ctx);
                }
                if let Some(&delay) = self.config.retry_backoff.get(attempt) {
                    self.stats.retries += 1;
                    log::warn!(
                        "project {}: writing {count} events failed ({}); retry {} in {delay:?}",
                        self.project_id,
                        error.report(),
                        attempt + 1
                    );
                    ctx.run_later(delay, move |act, ctx| act.write(batch, attempt + 1, ctx));
                    return;
                }
                let reason = match error {
                    Error::Overloaded { .. } => "spool_full",
                    _ => "failed_retries",
                };
                self.stats.dropped_after_retries += count as u64;
                self.metrics.events_dropped(reason, count as u64);
                log::error!(
                    "project {}: dropped a batch of {count} events after {attempt} retries: {}",
                    self.project_id,
                    error.report()
                );
            }
        }
        self.settle(ctx);
    }

    /// The batch in flight is done with (stored or given up): start the
    /// next one if it is due, or answer a drain that has nothing left.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        self.in_flight = 0;
        let draining = !self.drain_waiters.is_empty();
        if self.buffer.len() >= self.config.batch_size || draining || self.flush_requested {
            self.flush(ctx);
        }
        self.finish_drain_when_empty(ctx);
    }

    /// A batch that went with the storage I/O it was handed to: counted as
    /// dropped, never retried empty.
    fn lost(&mut self, count: usize, error: &Error, ctx: &mut Context<Self>) {
        self.stats.dropped_after_retries += count as u64;
        self.metrics.events_dropped("storage_stopped", count as u64);
        log::error!(
            "project {}: lost a batch of {count} events: {}",
            self.project_id,
            error.report()
        );
        self.settle(ctx);
    }

    fn finish_drain_when_empty(&mut self, ctx: &mut Context<Self>) {
        let empty = self.in_flight == 0 && self.spilling == 0 && self.buffer.is_empty();
        if !self.drain_waiters.is_empty() && empty {
            self.finish_drain(ctx);
        }
    }

    /// Whether a full buffer should spill to the spool rather than refuse
    /// or drop: only while PostgreSQL is unreachable (when it is merely
    /// slow, the spool's replay would only compete with the writers), and
    /// one spill at a time, so that a spool slower than intake bounds the
    /// memory waiting for it instead of growing it.
    fn may_spill(&self) -> bool {
        self.spilling == 0
            && self
                .spool
                .as_ref()
                .is_some_and(|s| !s.database_reachable() && s.has_room())
    }

    /// Sends everything buffered to the spool, beside the batch in flight.
    fn spill(&mut self, ctx: &mut Context<Self>) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        let events: Vec<Event> = std::mem::take(&mut self.buffer).into();
        let count = events.len();
        self.spilling += count;
        let (project_id, me) = (self.project_id, ctx.address());
        let spawned = self.io.spawn(async move {
            let result = spool.put(project_id, events).await.map_err(|r| r.error);
            me.do_send(Spilled { count, result });
        });
        if !spawned {
            self.spilled(count, Err(Error::internal("storage I/O stopped")), ctx);
        }
    }

    fn spilled(&mut self, count: usize, result: Result<()>, ctx: &mut Context<Self>) {
        self.spilling -= count;
        match result {
            Ok(()) => self.stats.spooled += count as u64,
            Err(e) => {
                let reason = match e {
                    Error::Overloaded { .. } => "spool_full",
                    _ => "spool_failed",
                };
                self.stats.dropped_overflow += count as u64;
                self.metrics.events_dropped(reason, count as u64);
                log::error!(
                    "project {}: dropped {count} events a full buffer spilled: {}",
                    self.project_id,
                    e.report()
                );
            }
        }
        self.finish_drain_when_empty(ctx);
    }

    fn finish_drain(&mut self, ctx: &mut Context<Self>) {
        let stats = self.stats();
        for waiter in self.drain_waiters.drain(..) {
            let _ = waiter.send(stats);
        }
        ctx.stop();
    }
}

impl Actor for StorageWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.writer_started();
        ctx.run_interval(self.config.flush_interval, |act, ctx| act.flush(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.writer_stopped();
        let unwritten = self.buffer.len() + self.in_flight + self.spilling;
        if unwritten > 0 {
            log::error!(
                "project {}: writer stopped with {unwritten} events unwritten",
                self.project_id
            );
        }
    }
}

/// Buffers an event (cast). When the buffer is full, it spills to the spool
/// while PostgreSQL is unreachable; otherwise the oldest event is dropped
/// and counted.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Store(pub Event);

/// Buffers the events of one request, all or none (call): the HTTP path,
/// where a client can be told to come back later, so no accepted event is
/// ever pushed out. `Err(Overloaded)` when they do not fit. The events must
/// belong to one project.
#[derive(Debug, Message)]
#[rtype(result = "Result<()>")]
pub struct Admit(pub Vec<Event>);

/// How long a client refused by a full writer is asked to wait: about one
/// flush of a busy writer, rounded up to the whole second HTTP can say.
const ADMIT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a client is asked to wait when PostgreSQL is away and the
/// spool full: an outage is not over in a second.
const SPOOL_FULL_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Sent by the I/O task when a spill reached the spool, or did not.
#[derive(Message)]
#[rtype(result = "()")]
struct Spilled {
    count: usize,
    result: Result<()>,
}

impl Handler<Spilled> for StorageWriter {
    type Result = ();

    fn handle(&mut self, Spilled { count, result }: Spilled, ctx: &mut Self::Context) {
        self.spilled(count, result, ctx);
    }
}

/// Sent by the I/O task when a write is done, so the writer notices even
/// when no event arrives.
#[derive(Message)]
#[rtype(result = "()")]
struct Written;

impl Handler<Written> for StorageWriter {
    type Result = ();

    fn handle(&mut self, _: Written, ctx: &mut Self::Context) {
        self.check_outcome(ctx);
    }
}

/// Starts a flush now, whatever the buffer holds, or as soon as the batch
/// in flight is settled (cast).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// The writer's counters (call).
#[derive(Debug, Message)]
#[rtype(result = "WriterStats")]
pub struct Stats;

/// Writes everything buffered (retrying as usual), replies with the final
/// counters and stops the writer. Used at shutdown.
#[derive(Debug, Message)]
#[rtype(result = "Result<WriterStats>")]
pub struct Drain;

impl Handler<Store> for StorageWriter {
    type Result = ();

    fn handle(&mut self, Store(event): Store, ctx: &mut Self::Context) {
        self.check_outcome(ctx);
        self.stats.received += 1;
        self.buffer.push_back(event);
        if self.buffer.len() > self.config.buffer_capacity && self.may_spill() {
            self.spill(ctx);
        } else if self.buffer.len() > self.config.buffer_capacity {
            self.buffer.pop_front();
            self.stats.dropped_overflow += 1;
            self.metrics.events_dropped("overflow", 1);
        }
        self.flush_when_due(ctx);
    }
}

impl Handler<Admit> for StorageWriter {
    type Result = Result<()>;

    fn handle(&mut self, Admit(events): Admit, ctx: &mut Self::Context) -> Result<()> {
        self.check_outcome(ctx);
        // A draining writer is about to stop: what it took now could be
        // left unwritten.
        if !self.drain_waiters.is_empty() {
            return Err(Error::ShuttingDown);
        }
        // An empty buffer takes any one request, even one larger than the
        // buffer, so that no configuration refuses a request forever; it
        // then holds at most one request's events beyond its capacity.
        // PostgreSQL away and the spool full: what is taken now could only
        // be dropped.
        if let Some(spool) = &self.spool
            && !spool.database_reachable()
            && !spool.has_room()
        {
            return Err(Error::Overloaded {
                retry_after: SPOOL_FULL_RETRY_AFTER,
            });
        }
        let room = self
            .config
            .buffer_capacity
            .saturating_sub(self.buffer.len());
        if events.len() > room && !self.buffer.is_empty() {
            if !self.may_spill() {
                return Err(Error::Overloaded {
                    retry_after: ADMIT_RETRY_AFTER,
                });
            }
            self.spill(ctx);
        }
        self.stats.received += events.len() as u64;
        self.buffer.extend(events);
        self.flush_when_due(ctx);
        Ok(())
    }
}

impl StorageWriter {
    /// Starts a flush when the buffer is full, or schedules one when it
    /// holds a batch.
    fn flush_when_due(&mut self, ctx: &mut Context<Self>) {
        if self.buffer.len() >= self.config.buffer_capacity {
            // Waiting would only push older events out.
            self.flush(ctx);
        } else if self.buffer.len() >= self.config.batch_size && !self.flush_scheduled {
            // actix polls spawned futures only once it finds the mailbox
            // empty, so this runs after every event already queued is
            // buffered; a sender that never lets the mailbox empty meets the
            // full-buffer flush above instead.
            self.flush_scheduled = true;
            ctx.spawn(fut::ready(()).map(|_, act: &mut Self, ctx| {
                act.flush_scheduled = false;
                // A Flush or a settled write may have taken the batch since.
                if act.buffer.len() >= act.config.batch_size {
                    act.flush(ctx);
                }
            }));
        }
    }
}

impl Handler<Flush> for StorageWriter {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) {
        if self.in_flight > 0 {
            self.flush_requested = true;
        }
        self.flush(ctx);
    }
}

impl Handler<Stats> for StorageWriter {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, ctx: &mut Self::Context) -> Self::Result {
        self.check_outcome(ctx);
        MessageResult(self.stats())
    }
}

impl Handler<Drain> for StorageWriter {
    type Result = ResponseFuture<Result<WriterStats>>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.check_outcome(ctx);
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.flush(ctx);
        self.finish_drain_when_empty(ctx);
        let project_id = self.project_id;
        Box::pin(async move {
            rx.await.map_err(|e| {
                Error::internal_from(
                    format!("writer for project {project_id} stopped before draining"),
                    e,
                )
            })
        })
    }
}
