//! StorageWriter: one per project, batching events into PostgreSQL.
//!
//! Events enter the writer's [`Inbox`] (from the request's own thread, or
//! by [`Admit`] from the embedding API and tests), a request's events all
//! together or not at all, and wait there; they go to the database in batches, one
//! statement per batch. A flush starts when `batch_size` events are
//! waiting or every `flush_interval`; up to `batches_in_flight` batches are
//! written at once (the table does not care about their order, and each
//! counts its own), and while they are, the buffer refills, so under load
//! batches grow and the per-statement cost is spread over more rows. A
//! failed batch is retried after each `retry_backoff` delay, then dropped
//! and counted.
//!
//! What a request may add is bounded by bytes and by time, not by a count
//! of events: the writer's `buffer_bytes`, the [`MemoryBudget`] all
//! writers share, and `buffer_wait` (when the oldest buffered event has
//! waited that long for a batch of its own, storage is not keeping up). A
//! request past them is refused with `Overloaded` (HTTP 429): storage truly
//! cannot keep up. The embedding API's drop-oldest path keeps the seed's
//! bound of `buffer_capacity` events.
//!
//! Batches are handed to the [`Committer`], which combines those that
//! several writers flush at the same moment into one statement and lands
//! each in PostgreSQL or, while it is unreachable, in the [`Spool`]: an
//! outage loses nothing. While PostgreSQL is unreachable, a full buffer
//! spills to the spool instead of refusing or pushing out its oldest
//! events. Only a full spool, or none, brings back refusals and
//! drop-oldest.
//!
//! A writer that has had nothing to do for `idle_timeout` asks its
//! registry to retire it, so that thousands of quiet projects cost no
//! timers; the registry starts a new one on the project's next event.

use super::batch::{Batch, MemoryBudget};
use super::committer::{Commit, Committer, Landed, MAX_COMBINED_BYTES, MAX_COMBINED_EVENTS};
use super::inbox::{Admitted, Inbox, Open, Wake};
use crate::config::WriterConfig;
use crate::domain::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::services::Spool;
use actix::prelude::*;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Buffers and stores one project's events.
pub struct StorageWriter {
    /// Whose events these are; named in every log line.
    project_id: Uuid,
    /// Lands the batches of all writers (see [`Committer`]).
    committer: Addr<Committer>,
    /// Flush triggers, retry delays, idle timeout.
    config: WriterConfig,
    /// Where the project's events wait (see [`Inbox`]).
    inbox: Arc<Inbox>,
    /// Events of the batches being written or waiting for a retry.
    in_flight: usize,
    /// Those batches; at most `batches_in_flight`.
    batches: usize,
    /// Every writer's buffered and in-flight bytes, bounded together;
    /// handed to each batch, which gives its bytes back when settled.
    budget: MemoryBudget,
    /// A [`Flush`] arrived while every batch slot was taken; honoured as
    /// soon as one is settled.
    flush_requested: bool,
    /// Counters reported by [`Stats`] (the inbox keeps those of intake).
    stats: WriterStats,
    /// Callers of [`Drain`] waiting for the buffer to empty.
    drain_waiters: Vec<oneshot::Sender<WriterStats>>,
    /// Told when this writer retires for being idle.
    registry: Option<Recipient<Idle>>,
    /// The inbox's count of events received when the writer last looked,
    /// and since when it has not changed: how long the writer has been
    /// idle.
    quiet: (u64, Instant),
    /// Where outcomes are counted (accepted by the inbox; stored and the
    /// rest by each [`Batch`]).
    metrics: Metrics,
    /// Where a full inbox spills while PostgreSQL is unreachable; `None`
    /// when the spool is turned off.
    spool: Option<Spool>,
    /// Events on their way to the spool after a spill, not yet known to
    /// be on disk.
    spilling: usize,
}

/// What a writer has done since it started. Every event received is in
/// exactly one place: `received = stored + duplicate + spooled +
/// dropped_overflow + dropped_after_retries + refused_by_database +
/// buffered + in_flight`. (Spooled events are stored later by the
/// replayer, which counts them.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    pub received: u64,
    pub buffered: u64,
    /// Events of the batch being written, or being spilled to the spool.
    pub in_flight: u64,
    /// Rows inserted.
    pub stored: u64,
    /// Events skipped because the project had stored their id already.
    pub duplicate: u64,
    /// Events handed to the spool, safe on local disk.
    pub spooled: u64,
    /// Oldest events pushed out of a full buffer (drop-oldest only), and
    /// events a full buffer spilled that the spool refused (full).
    pub dropped_overflow: u64,
    /// Events of batches given up: still failing after the last retry
    /// (the spool full or off, for a connection failure), or lost with a
    /// storage task.
    pub dropped_after_retries: u64,
    /// Events PostgreSQL refused for their data (see
    /// [`crate::db::events::store_batch`]); the rest of their batch was
    /// stored.
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
        self.duplicate += other.duplicate;
        self.spooled += other.spooled;
        self.dropped_overflow += other.dropped_overflow;
        self.dropped_after_retries += other.dropped_after_retries;
        self.refused_by_database += other.refused_by_database;
        self.retries += other.retries;
    }
}

impl StorageWriter {
    /// A writer for `project_id` whose batches `committer` lands, with an
    /// inbox of its own (see [`StorageWriter::inbox`]).
    pub fn new(
        project_id: Uuid,
        committer: Addr<Committer>,
        config: WriterConfig,
        metrics: Metrics,
        budget: MemoryBudget,
        spool: Option<Spool>,
    ) -> Self {
        let inbox = Arc::new(Inbox::new(
            project_id,
            config.clone(),
            budget.clone(),
            metrics.clone(),
            spool.clone(),
        ));
        StorageWriter {
            project_id,
            committer,
            config,
            inbox,
            in_flight: 0,
            batches: 0,
            budget,
            flush_requested: false,
            stats: WriterStats::default(),
            drain_waiters: Vec::new(),
            registry: None,
            quiet: (0, Instant::now()),
            metrics,
            spool,
            spilling: 0,
        }
    }

    /// Tells `registry` when this writer retires for being idle (see
    /// [`Idle`]); without one, a writer never retires.
    pub fn retired_by(mut self, registry: Recipient<Idle>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The inbox requests put this writer's events in.
    pub fn inbox(&self) -> Arc<Inbox> {
        self.inbox.clone()
    }

    fn stats(&self) -> WriterStats {
        let inbox = self.inbox.lock();
        WriterStats {
            received: inbox.received,
            buffered: inbox.buffer.len() as u64,
            in_flight: (self.in_flight + self.spilling) as u64,
            dropped_overflow: self.stats.dropped_overflow + inbox.dropped_overflow,
            ..self.stats
        }
    }

    /// Starts batches of what is buffered while batch slots are free.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.batches < self.config.batches_in_flight {
            let Some(batch) = self.take_batch() else {
                break;
            };
            self.flush_requested = false;
            self.in_flight += batch.len();
            self.batches += 1;
            self.write(batch, 0, ctx);
        }
    }

    /// The oldest buffered events, as many as one statement should carry;
    /// `None` when the inbox is empty.
    fn take_batch(&mut self) -> Option<Batch> {
        let mut inbox = self.inbox.lock();
        if inbox.buffer.is_empty() {
            return None;
        }
        let whole = inbox.buffer.len() <= MAX_COMBINED_EVENTS && inbox.bytes <= MAX_COMBINED_BYTES;
        let events: Vec<Event> = if whole {
            // Taking the buffer whole moves it without a copy, and leaves
            // an empty one: an idle writer then holds no memory for the
            // burst it once buffered (thousands of idle writers add up).
            inbox.bytes = 0;
            std::mem::take(&mut inbox.buffer).into()
        } else {
            let mut events = Vec::new();
            let mut bytes = 0;
            while let Some(event) = inbox.buffer.front()
                && (events.is_empty()
                    || (events.len() < MAX_COMBINED_EVENTS
                        && bytes + event.size() <= MAX_COMBINED_BYTES))
            {
                bytes += event.size();
                events.extend(inbox.buffer.pop_front());
            }
            inbox.bytes -= bytes;
            events
        };
        inbox.waiting_since = Instant::now();
        // What is left is not yet a batch, or waits for a slot, which a
        // settling batch will take: the inbox may wake the writer again.
        inbox.woken = false;
        drop(inbox);
        Some(Batch::take(
            self.project_id,
            events,
            self.metrics.clone(),
            self.budget.clone(),
        ))
    }

    /// Hands `batch` to the committer; `attempt` counts the retries already
    /// made.
    fn write(&mut self, batch: Batch, attempt: usize, ctx: &mut Context<Self>) {
        let count = batch.len();
        let commit = self.committer.send(Commit(batch));
        ctx.spawn(commit.into_actor(self).map(move |landed, act, ctx| {
            // A committer gone (the system stopping) took the batch with
            // it, and counted it as lost.
            let landed = landed.unwrap_or(Landed::Lost { count });
            act.landed(landed, count, attempt, ctx);
        }));
    }

    fn landed(&mut self, landed: Landed, count: usize, attempt: usize, ctx: &mut Context<Self>) {
        match landed {
            Landed::Stored {
                stored,
                duplicate,
                refused,
            } => {
                self.stats.stored += stored;
                self.stats.duplicate += duplicate;
                self.stats.refused_by_database += refused.len() as u64;
            }
            Landed::Spooled { count } => self.stats.spooled += count as u64,
            Landed::Lost { count } => self.stats.dropped_after_retries += count as u64,
            Landed::Failed { batch, error } => {
                if let Some(&delay) = self.config.retry_backoff.get(attempt) {
                    self.stats.retries += 1;
                    log::warn!(
                        "project {}: writing {} events failed ({}); retry {} in {delay:?}",
                        self.project_id,
                        batch.len(),
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
                log::error!(
                    "project {}: dropped a batch of {} events after {attempt} retries: {}",
                    self.project_id,
                    batch.len(),
                    error.report()
                );
                self.stats.dropped_after_retries += batch.len() as u64;
                batch.dropped(reason);
            }
        }
        self.settle(count, ctx);
    }

    /// A batch of `count` events is done with (stored or given up): start
    /// the next one if it is due, or stop if that was asked and nothing is
    /// left.
    fn settle(&mut self, count: usize, ctx: &mut Context<Self>) {
        self.in_flight -= count;
        self.batches -= 1;
        let due = self.inbox.lock().buffer.len() >= self.config.batch_size;
        if due || !self.drain_waiters.is_empty() || self.flush_requested {
            self.flush(ctx);
        }
        self.stop_when_empty(ctx);
    }

    fn is_empty(&self) -> bool {
        self.in_flight == 0 && self.spilling == 0 && self.inbox.lock().buffer.is_empty()
    }

    /// Answers the drains and stops, once a drain was asked and everything
    /// taken is written.
    fn stop_when_empty(&mut self, ctx: &mut Context<Self>) {
        if !self.drain_waiters.is_empty() && self.is_empty() {
            let stats = self.stats();
            for waiter in self.drain_waiters.drain(..) {
                let _ = waiter.send(stats);
            }
            ctx.stop();
        }
    }

    /// Whether a full inbox should spill to the spool rather than refuse
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

    /// Sends everything in the inbox to the spool, beside the batches in
    /// flight.
    fn spill(&mut self, ctx: &mut Context<Self>) {
        let Some(spool) = self.spool.clone() else {
            return;
        };
        let events: Vec<Event> = {
            let mut inbox = self.inbox.lock();
            inbox.bytes = 0;
            inbox.woken = false;
            std::mem::take(&mut inbox.buffer).into()
        };
        if events.is_empty() {
            return;
        }
        let count = events.len();
        self.spilling += count;
        let batch = Batch::take(
            self.project_id,
            events,
            self.metrics.clone(),
            self.budget.clone(),
        );
        let put = async move { spool.put(batch).await };
        ctx.spawn(
            put.into_actor(self)
                .map(move |result, act, ctx| act.spilled(count, result, ctx)),
        );
    }

    fn spilled(
        &mut self,
        count: usize,
        result: std::result::Result<(), super::spool::Refused>,
        ctx: &mut Context<Self>,
    ) {
        self.spilling -= count;
        match result {
            Ok(()) => self.stats.spooled += count as u64,
            Err(refused) => {
                let reason = match refused.error {
                    Error::Overloaded { .. } => "spool_full",
                    _ => "spool_failed",
                };
                log::error!(
                    "project {}: dropped {count} events a full buffer spilled: {}",
                    self.project_id,
                    refused.error.report()
                );
                self.stats.dropped_overflow += count as u64;
                refused.batch.dropped(reason);
            }
        }
        // What piled up meanwhile follows.
        let over = self.inbox.lock().buffer.len() > self.config.buffer_capacity;
        if over && self.may_spill() {
            self.spill(ctx);
        }
        self.flush(ctx);
        self.stop_when_empty(ctx);
    }

    /// Flushes on the timer, and retires when idle long enough.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.flush(ctx);
        let received = self.inbox.lock().received;
        if received != self.quiet.0 {
            self.quiet = (received, Instant::now());
            return;
        }
        let idle = self.in_flight == 0
            && self.spilling == 0
            && self.drain_waiters.is_empty()
            && self.quiet.1.elapsed() >= self.config.idle_timeout;
        let Some(registry) = self.registry.as_ref().filter(|_| idle) else {
            return;
        };
        // Closed only while empty, under the lock: nothing is left behind,
        // and events that come later go to the project's next writer.
        let mut inbox = self.inbox.lock();
        if inbox.buffer.is_empty() && inbox.open == Open::Yes {
            inbox.open = Open::Retired;
            drop(inbox);
            registry.do_send(Idle {
                project_id: self.project_id,
                inbox: self.inbox.clone(),
            });
            ctx.stop();
        }
    }
}

impl Actor for StorageWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.metrics.writer_started();
        // A registry attached it already; a writer started on its own has
        // not been.
        self.inbox.attach(ctx.address());
        ctx.run_interval(self.config.flush_interval, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.metrics.writer_stopped();
        // Batches in flight are counted by whoever holds them; only the
        // inbox is this writer's to account for. Closed first, so that
        // nothing comes in after the count.
        let mut inbox = self.inbox.lock();
        if inbox.open == Open::Yes {
            inbox.open = Open::Retired;
        }
        if !inbox.buffer.is_empty() {
            log::error!(
                "project {}: writer stopped with {} events buffered; they are lost",
                self.project_id,
                inbox.buffer.len()
            );
            self.metrics
                .buffered_dropped("writer_stopped", inbox.buffer.len() as u64);
            self.budget.give(inbox.bytes);
            inbox.buffer.clear();
            inbox.bytes = 0;
        }
    }
}

/// What a writer does when a request's events do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Take none of them and answer `Overloaded`: the HTTP path, where a
    /// client can be told to come back later, so no accepted event is ever
    /// pushed out.
    Refuse,
    /// Take them all and drop the oldest buffered events beyond the
    /// capacity, counted: the embedding API's `Store`, as the seed
    /// specified it.
    DropOldest,
}

/// Buffers the events of one request, all or none (call), through the
/// writer's inbox ([`Inbox::admit`], which requests reach without this
/// message). Under [`Overflow::Refuse`], `Err(Overloaded)` when they do
/// not fit; a writer shutting down answers `Err(ShuttingDown)`. The events
/// must belong to the writer's project.
#[derive(Debug, Message)]
#[rtype(result = "Result<()>")]
pub struct Admit {
    pub events: Vec<Event>,
    pub overflow: Overflow,
}

impl Admit {
    /// The HTTP path's admission: all or none, never pushing anything out.
    pub fn all_or_none(events: Vec<Event>) -> Admit {
        Admit {
            events,
            overflow: Overflow::Refuse,
        }
    }
}

impl Handler<Admit> for StorageWriter {
    type Result = Result<()>;

    fn handle(&mut self, Admit { events, overflow }: Admit, ctx: &mut Self::Context) -> Result<()> {
        match self.inbox.admit(events, overflow)? {
            Admitted::Taken => {
                // On the writer's own thread: flush now if due, rather than
                // after the messages queued behind this one.
                if self.inbox.lock().buffer.len() >= self.config.batch_size {
                    self.flush(ctx);
                }
                Ok(())
            }
            // A running writer's inbox is retired only as it stops.
            Admitted::Retired(_) => Err(Error::ShuttingDown),
        }
    }
}

impl Handler<Wake> for StorageWriter {
    type Result = ();

    fn handle(&mut self, Wake { spill }: Wake, ctx: &mut Self::Context) {
        if spill && self.may_spill() {
            self.spill(ctx);
        }
        self.flush(ctx);
    }
}

/// Starts a flush now, whatever the buffer holds, or as soon as the batch
/// in flight is settled (cast).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

impl Handler<Flush> for StorageWriter {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) {
        if self.batches >= self.config.batches_in_flight {
            self.flush_requested = true;
        }
        self.flush(ctx);
    }
}

/// The writer's counters (call).
#[derive(Debug, Message)]
#[rtype(result = "WriterStats")]
pub struct Stats;

impl Handler<Stats> for StorageWriter {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

/// Writes everything buffered (retrying as usual), replies with the final
/// counters and stops the writer. Used at shutdown.
#[derive(Debug, Message)]
#[rtype(result = "Result<WriterStats>")]
pub struct Drain;

impl Handler<Drain> for StorageWriter {
    type Result = ResponseFuture<Result<WriterStats>>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.inbox.lock().open = Open::Draining;
        self.flush_requested = true;
        self.flush(ctx);
        self.stop_when_empty(ctx);
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

/// A writer retired after being idle for its `idle_timeout` (cast, to the
/// registry that started it): its inbox takes no more events.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Idle {
    pub project_id: Uuid,
    pub inbox: Arc<Inbox>,
}
