//! StorageWriter: one per project, batching events into PostgreSQL.
//!
//! Events wait in a bounded buffer and go to the database in batches, one
//! statement per batch, with at most one batch in flight. A flush starts
//! when `batch_size` events are waiting or every `flush_interval`, and takes
//! everything buffered: under load the buffer refills while a batch is
//! written, so batches grow towards `buffer_capacity` and the per-statement
//! cost is spread over more rows. A failed batch is retried after each
//! `retry_backoff` delay, then dropped and counted.

use crate::config::WriterConfig;
use crate::db::{self, Pool};
use crate::domain::Event;
use crate::error::{Error, Result};
use actix::prelude::*;
use serde::Serialize;
use std::collections::VecDeque;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Buffers and stores one project's events.
pub struct StorageWriter {
    /// Whose events these are; named in every log line.
    project_id: Uuid,
    /// Shared connection pool; a flush holds one connection.
    pool: Pool,
    /// Buffer size, flush triggers and retry delays.
    config: WriterConfig,
    /// Events waiting for the next flush, oldest first.
    buffer: VecDeque<Event>,
    /// Events in the batch being written or waiting for a retry; 0 when
    /// none. Nonzero blocks further flushes: one batch in flight.
    in_flight: usize,
    /// Counters reported by [`Stats`].
    stats: WriterStats,
    /// Callers of [`Drain`] waiting for the buffer to empty.
    drain_waiters: Vec<oneshot::Sender<WriterStats>>,
}

/// What a writer has done since it started. Every event received is in
/// exactly one place: `received = stored + dropped_overflow +
/// dropped_after_retries + buffered + in_flight`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriterStats {
    pub received: u64,
    pub buffered: u64,
    pub in_flight: u64,
    pub stored: u64,
    /// Oldest events pushed out of a full buffer.
    pub dropped_overflow: u64,
    /// Events of batches that still failed after the last retry.
    pub dropped_after_retries: u64,
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
        self.retries += other.retries;
    }
}

impl StorageWriter {
    pub fn new(project_id: Uuid, pool: Pool, config: WriterConfig) -> Self {
        StorageWriter {
            project_id,
            pool,
            buffer: VecDeque::with_capacity(config.buffer_capacity),
            config,
            in_flight: 0,
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
            let batch: Vec<Event> = self.buffer.drain(..).collect();
            self.write(batch, 0, ctx);
        }
    }

    /// Writes `batch`; `attempt` counts the retries already made.
    fn write(&mut self, batch: Vec<Event>, attempt: usize, ctx: &mut Context<Self>) {
        self.in_flight = batch.len();
        let pool = self.pool.clone();
        let insert = async move {
            let result = db::events::insert_batch(&pool, &batch).await;
            (batch, result)
        };
        // `spawn`, not `wait`: the mailbox keeps taking events meanwhile.
        ctx.spawn(
            insert
                .into_actor(self)
                .map(move |(batch, result), act, ctx| act.written(batch, attempt, result, ctx)),
        );
    }

    fn written(
        &mut self,
        batch: Vec<Event>,
        attempt: usize,
        result: Result<u64>,
        ctx: &mut Context<Self>,
    ) {
        match result {
            Ok(_) => self.stats.stored += batch.len() as u64,
            Err(e) => {
                if let Some(&delay) = self.config.retry_backoff.get(attempt) {
                    self.stats.retries += 1;
                    log::warn!(
                        "project {}: writing {} events failed ({e}); retry {} in {delay:?}",
                        self.project_id,
                        batch.len(),
                        attempt + 1
                    );
                    ctx.run_later(delay, move |act, ctx| act.write(batch, attempt + 1, ctx));
                    return;
                }
                self.stats.dropped_after_retries += batch.len() as u64;
                log::error!(
                    "project {}: dropped a batch of {} events after {attempt} retries: {e}",
                    self.project_id,
                    batch.len()
                );
            }
        }
        self.in_flight = 0;
        let draining = !self.drain_waiters.is_empty();
        if self.buffer.len() >= self.config.batch_size || (draining && !self.buffer.is_empty()) {
            self.flush(ctx);
        } else if draining && self.buffer.is_empty() {
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
        ctx.run_interval(self.config.flush_interval, |act, ctx| act.flush(ctx));
    }
}

/// Buffers an event (cast). When the buffer is full the oldest event is
/// dropped and counted.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Store(pub Event);

/// Starts a flush now, whatever the buffer holds (cast).
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
        self.stats.received += 1;
        self.buffer.push_back(event);
        if self.buffer.len() > self.config.buffer_capacity {
            self.buffer.pop_front();
            self.stats.dropped_overflow += 1;
        }
        if self.buffer.len() >= self.config.batch_size {
            self.flush(ctx);
        }
    }
}

impl Handler<Flush> for StorageWriter {
    type Result = ();

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) {
        self.flush(ctx);
    }
}

impl Handler<Stats> for StorageWriter {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

impl Handler<Drain> for StorageWriter {
    type Result = ResponseFuture<Result<WriterStats>>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        if self.in_flight == 0 && self.buffer.is_empty() {
            self.finish_drain(ctx);
        } else {
            self.flush(ctx);
        }
        let project_id = self.project_id;
        Box::pin(async move {
            rx.await.map_err(|_| {
                Error::Internal(format!(
                    "writer for project {project_id} stopped before draining"
                ))
            })
        })
    }
}
