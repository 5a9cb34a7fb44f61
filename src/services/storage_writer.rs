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
//! The database work of a flush (encoding the batch and the COPY) runs on
//! an I/O arbiter, a thread the registry shares among all writers, not on
//! the writer's own thread. Two reasons, both seen in the ingest benchmark:
//! actix drains a mailbox completely before it polls the actor's spawned
//! futures, so under a burst a flush future on the writer's thread would
//! not progress until the burst was consumed (mostly into drops); and
//! encoding would compete with event intake for the same core. The writer
//! learns the outcome through a oneshot channel that it checks on every
//! `Store`, and on the wake-up message the I/O task sends when done, so a
//! finished flush is noticed even in the middle of a burst.

use crate::config::WriterConfig;
use crate::db::{self, EventPool};
use crate::domain::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
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
    /// Shared connection pool; a flush holds one connection.
    pool: EventPool,
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
}

/// What a writer has done since it started. Every event received is in
/// exactly one place: `received = stored + dropped_overflow +
/// dropped_after_retries + refused_by_database + buffered + in_flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    pub received: u64,
    pub buffered: u64,
    pub in_flight: u64,
    pub stored: u64,
    /// Oldest events pushed out of a full buffer.
    pub dropped_overflow: u64,
    /// Events of batches given up: still failing after the last retry, or
    /// lost with the I/O arbiter at shutdown.
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
        self.dropped_overflow += other.dropped_overflow;
        self.dropped_after_retries += other.dropped_after_retries;
        self.refused_by_database += other.refused_by_database;
        self.retries += other.retries;
    }
}

/// What a write on the I/O arbiter hands back: the batch (kept for a
/// retry), which attempt it was, and how it went.
struct Outcome {
    batch: Vec<Event>,
    attempt: usize,
    result: Result<db::events::Stored>,
    took: Duration,
}

impl StorageWriter {
    /// A writer for `project_id` whose flushes run on `io` (the current
    /// arbiter will do for a writer that sees no bursts, as in tests).
    pub fn new(
        project_id: Uuid,
        pool: EventPool,
        config: WriterConfig,
        io: ArbiterHandle,
        metrics: Metrics,
    ) -> Self {
        StorageWriter {
            metrics,
            project_id,
            pool,
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
            in_flight: self.in_flight as u64,
            ..self.stats
        }
    }

    /// Starts writing everything buffered, unless a batch is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight == 0 && !self.buffer.is_empty() {
            self.flush_requested = false;
            let batch: Vec<Event> = self.buffer.drain(..).collect();
            self.write(batch, 0, ctx);
        }
    }

    /// Writes `batch` on the I/O arbiter; `attempt` counts the retries
    /// already made.
    fn write(&mut self, batch: Vec<Event>, attempt: usize, ctx: &mut Context<Self>) {
        self.in_flight = batch.len();
        let (tx, rx) = oneshot::channel();
        self.outcome = Some(rx);
        let (pool, me) = (self.pool.clone(), ctx.address());
        let spawned = self.io.spawn(async move {
            let start = Instant::now();
            let result = db::events::store_batch(&pool, &batch).await;
            let _ = tx.send(Outcome {
                batch,
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
            batch,
            attempt,
            result,
            took,
        }: Outcome,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok(db::events::Stored { refused }) => {
                let stored = (batch.len() - refused.len()) as u64;
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
            Err(e) => {
                if let Some(&delay) = self.config.retry_backoff.get(attempt) {
                    self.stats.retries += 1;
                    log::warn!(
                        "project {}: writing {} events failed ({}); retry {} in {delay:?}",
                        self.project_id,
                        batch.len(),
                        e.report(),
                        attempt + 1
                    );
                    ctx.run_later(delay, move |act, ctx| act.write(batch, attempt + 1, ctx));
                    return;
                }
                self.stats.dropped_after_retries += batch.len() as u64;
                self.metrics
                    .events_dropped("failed_retries", batch.len() as u64);
                log::error!(
                    "project {}: dropped a batch of {} events after {attempt} retries: {}",
                    self.project_id,
                    batch.len(),
                    e.report()
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
        if draining && self.in_flight == 0 && self.buffer.is_empty() {
            self.finish_drain(ctx);
        }
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
        let unwritten = self.buffer.len() + self.in_flight;
        if unwritten > 0 {
            log::error!(
                "project {}: writer stopped with {unwritten} events unwritten",
                self.project_id
            );
        }
    }
}

/// Buffers an event (cast). When the buffer is full the oldest event is
/// dropped and counted.
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
        if self.buffer.len() > self.config.buffer_capacity {
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
        let room = self
            .config
            .buffer_capacity
            .saturating_sub(self.buffer.len());
        if events.len() > room && !self.buffer.is_empty() {
            return Err(Error::Overloaded {
                retry_after: ADMIT_RETRY_AFTER,
            });
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
        if self.in_flight == 0 && self.buffer.is_empty() {
            self.finish_drain(ctx);
        } else {
            self.flush(ctx);
        }
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
