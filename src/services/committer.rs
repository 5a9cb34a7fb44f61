//! Committer: writes the batches of all writers, combining those that
//! arrive at the same moment into one statement.
//!
//! With many projects each sending a little, every writer flushes a batch
//! of a few events on its timer, and a statement and a commit per tiny
//! batch would cap the whole process at the number of commits PostgreSQL
//! can make. The committer keeps a few writes running
//! (`WriterConfig::concurrent_writes`, two by default); batches that arrive
//! while all are busy wait, and the next write takes every one of them (up to [`MAX_COMBINED`] events) in a
//! single statement, as PostgreSQL's group commit does for WAL flushes. A
//! lone busy project is unaffected: its batch goes out as it is.
//!
//! Why few writes: each one is a PostgreSQL backend using a core, and
//! writes that run together update many of the same issue rows, so they
//! wait on each other's commits. On a machine shared with PostgreSQL, eight
//! writes at once left the request threads waiting for a core (p99 of 50 to
//! 240 ms at 3,600 events/s over 100 projects, where two writes held it
//! under 20 ms, with PostgreSQL's CPU per event no higher).
//!
//! Each writer still has one batch in flight and gets its own outcome: the
//! events PostgreSQL refused of its batch, or the failure, with its batch
//! handed back for a retry or the spool. It runs on the storage I/O
//! arbiter, where the pool is used.

use crate::db::{self, EventPool};
use crate::domain::Event;
use crate::error::{Error, Result};
use actix::prelude::*;
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// The most events one combined statement carries: four full writer
/// buffers, so a statement stays well under PostgreSQL's limits and a
/// failure sends few events back to be retried.
const MAX_COMBINED: usize = 2_000;

/// Combines and writes batches (see the module documentation).
pub struct Committer {
    pool: EventPool,
    /// Writes allowed at once (`WriterConfig::concurrent_writes`, at most
    /// the pool's size, so none waits for a connection while batches could
    /// have been combined instead).
    max_writes: usize,
    /// Writes running now.
    writing: usize,
    /// Batches waiting for a free connection, oldest first.
    waiting: VecDeque<Job>,
}

struct Job {
    batch: Vec<Event>,
    reply: oneshot::Sender<Committed>,
}

/// A batch handed back with what became of it.
pub struct Committed {
    pub batch: Vec<Event>,
    pub result: Result<db::events::Stored>,
}

impl Committer {
    /// A committer running at most `max_writes` writes at once on `pool`.
    pub fn new(pool: EventPool, max_writes: usize) -> Self {
        let max_writes = max_writes.clamp(1, pool.config().max_size as usize);
        Committer {
            pool,
            max_writes,
            writing: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Starts writes while connections are free and batches wait.
    fn start_writes(&mut self, ctx: &mut Context<Self>) {
        while self.writing < self.max_writes && !self.waiting.is_empty() {
            let mut jobs = vec![self.waiting.pop_front().expect("not empty")];
            let mut events = jobs[0].batch.len();
            while let Some(next) = self.waiting.front()
                && events + next.batch.len() <= MAX_COMBINED
            {
                events += next.batch.len();
                jobs.extend(self.waiting.pop_front());
            }
            self.writing += 1;
            let pool = self.pool.clone();
            ctx.spawn(write(pool, jobs).into_actor(self).map(|(), act, ctx| {
                act.writing -= 1;
                act.start_writes(ctx);
            }));
        }
    }
}

impl Actor for Committer {
    type Context = Context<Self>;
}

/// Writes one job's batch alone and answers it.
async fn write_alone(pool: &EventPool, job: Job) {
    let result = db::events::store_batch(pool, &job.batch).await;
    let _ = job.reply.send(Committed {
        batch: job.batch,
        result,
    });
}

/// Writes the jobs' batches as one statement and answers each. Should it
/// fail for anything but the connection (an event PostgreSQL refuses, a
/// lock timeout on one project's issue), each batch is written again
/// alone, where refused events are split out within their own batch: one
/// project's fault stays its own, and costs the others one statement.
async fn write(pool: EventPool, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        for job in jobs {
            write_alone(&pool, job).await;
        }
        return;
    }
    let sizes: Vec<usize> = jobs.iter().map(|j| j.batch.len()).collect();
    let mut replies = Vec::with_capacity(jobs.len());
    let mut combined = Vec::with_capacity(sizes.iter().sum());
    for job in jobs {
        combined.extend(job.batch);
        replies.push(job.reply);
    }
    let result = db::events::insert_batch(&pool, &combined).await;
    let mut rest = combined.into_iter();
    let mut batches = sizes
        .into_iter()
        .map(|size| rest.by_ref().take(size).collect::<Vec<_>>());
    match result {
        Ok(_) => {
            for (batch, reply) in batches.by_ref().zip(replies) {
                let result = Ok(db::events::Stored::default());
                let _ = reply.send(Committed { batch, result });
            }
        }
        Err(Error::DatabaseUnavailable { reason, .. }) => {
            for (batch, reply) in batches.by_ref().zip(replies) {
                // Each gets the failure; the cause, which only one could
                // own, is in the writers' log line through its reason.
                let result = Err(Error::DatabaseUnavailable {
                    reason: reason.clone(),
                    source: None,
                });
                let _ = reply.send(Committed { batch, result });
            }
        }
        Err(e) => {
            log::warn!(
                "a combined batch of {} writers failed ({}); writing each alone",
                replies.len(),
                e.report()
            );
            let alone: Vec<Job> = batches
                .by_ref()
                .zip(replies)
                .map(|(batch, reply)| Job { batch, reply })
                .collect();
            for job in alone {
                write_alone(&pool, job).await;
            }
        }
    }
}

/// Stores `batch` (call), combined with others that wait at the same
/// moment; the batch comes back with its outcome.
#[derive(Message)]
#[rtype(result = "Committed")]
pub struct Commit(pub Vec<Event>);

impl Handler<Commit> for Committer {
    type Result = ResponseFuture<Committed>;

    fn handle(&mut self, Commit(batch): Commit, ctx: &mut Self::Context) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.waiting.push_back(Job { batch, reply });
        self.start_writes(ctx);
        Box::pin(async move {
            answer.await.unwrap_or_else(|e| Committed {
                batch: Vec::new(),
                result: Err(Error::internal_from("the committer stopped", e)),
            })
        })
    }
}
