//! Committer: lands the batches of all writers, in PostgreSQL or, while it
//! cannot take them, in the spool; batches that arrive at the same moment
//! go in one statement.
//!
//! With many projects each sending a little, every writer flushes a batch
//! of a few events on its timer, and a statement and a commit per tiny
//! batch would cap the whole process at the number of commits PostgreSQL
//! can make. The committer keeps a few writes running
//! (`WriterConfig::concurrent_writes`, two by default); batches that arrive
//! while all are busy wait, and the next write takes as many of them as
//! fit ([`MAX_COMBINED_EVENTS`], [`MAX_COMBINED_BYTES`], one batch per
//! project) in a single statement, as PostgreSQL's group commit does for
//! WAL flushes. A lone busy project is unaffected: its batch goes out as
//! it is.
//!
//! Why few writes: each one is a PostgreSQL backend using a core, and
//! writes that run together update many of the same issue rows, so they
//! wait on each other's commits. On a machine shared with PostgreSQL, eight
//! writes at once left the request threads waiting for a core (p99 of 50 to
//! 240 ms at 3,600 events/s over 100 projects, where two writes held it
//! under 20 ms, with PostgreSQL's CPU per event no higher).
//!
//! Each batch gets its own answer ([`Landed`]): stored (with the events
//! skipped as duplicates and those PostgreSQL refused), spooled, or failed
//! and handed back to its writer for a retry. The committer settles every
//! batch it lands (see [`Batch`]), so the outcome is counted even if the
//! writer that asked has gone. It runs on the storage I/O arbiter, the one
//! thread that uses the event pool's connections.

use super::batch::Batch;
use super::spool::Spool;
use crate::db::{self, EventPool};
use crate::domain::Event;
use crate::error::Error;
use crate::metrics::Metrics;
use actix::prelude::*;
use std::collections::{HashSet, VecDeque};
use std::time::Instant;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The most events one combined statement carries, so a statement stays
/// well under PostgreSQL's limits and a failure sends few events back.
pub const MAX_COMBINED_EVENTS: usize = 2_000;

/// The most bytes of events one combined statement carries: events may be
/// up to 1 MiB each, and a statement's parameters are held whole in memory
/// on both sides.
pub const MAX_COMBINED_BYTES: usize = 16 * 1024 * 1024;

/// Lands batches (see the module documentation).
pub struct Committer {
    /// The writers' pool; the committer holds at most `max_writes` of its
    /// connections, leaving the rest to the spool replayer.
    pool: EventPool,
    /// Where batches go while PostgreSQL is unreachable.
    spool: Option<Spool>,
    /// Batch latencies are counted here (outcomes by each [`Batch`]).
    metrics: Metrics,
    /// Writes allowed at once (`WriterConfig::concurrent_writes`).
    max_writes: usize,
    /// Writes running now.
    writing: usize,
    /// Batches waiting for a write, oldest first.
    waiting: VecDeque<Job>,
}

struct Job {
    batch: Batch,
    reply: oneshot::Sender<Landed>,
}

/// What became of a batch.
#[derive(Debug)]
pub enum Landed {
    /// In PostgreSQL: rows inserted, events skipped as already stored, and
    /// the ids of those PostgreSQL refused for their data.
    Stored {
        stored: u64,
        duplicate: u64,
        refused: Vec<Uuid>,
    },
    /// On disk in the spool, to be replayed.
    Spooled { count: usize },
    /// Neither: handed back, to be retried.
    Failed { batch: Batch, error: Error },
    /// Gone with a task that did not finish (counted as lost by its
    /// [`Batch`]).
    Lost { count: usize },
}

impl Committer {
    /// A committer running at most `max_writes` writes at once on `pool`.
    pub fn new(pool: EventPool, spool: Option<Spool>, metrics: Metrics, max_writes: usize) -> Self {
        Committer {
            pool,
            spool,
            metrics,
            max_writes: max_writes.max(1),
            writing: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Starts writes while slots are free and batches wait.
    fn start_writes(&mut self, ctx: &mut Context<Self>) {
        while self.writing < self.max_writes && !self.waiting.is_empty() {
            let jobs = self.next_statement();
            self.writing += 1;
            let write = write(
                self.pool.clone(),
                self.spool.clone(),
                self.metrics.clone(),
                jobs,
            );
            ctx.spawn(write.into_actor(self).map(|(), act, ctx| {
                act.writing -= 1;
                act.start_writes(ctx);
            }));
        }
    }

    /// The oldest waiting batch, and the waiting batches of other projects
    /// that fit beside it, oldest first; the rest keep their turn.
    fn next_statement(&mut self) -> Vec<Job> {
        let first = self.waiting.pop_front().expect("a batch waits");
        let (mut events, mut bytes) = (first.batch.len(), first.batch.bytes());
        let mut projects = HashSet::from([first.batch.project_id()]);
        let mut jobs = vec![first];
        let mut rest = VecDeque::with_capacity(self.waiting.len());
        while let Some(job) = self.waiting.pop_front() {
            let fits = events + job.batch.len() <= MAX_COMBINED_EVENTS
                && bytes + job.batch.bytes() <= MAX_COMBINED_BYTES
                // One batch per project: the statement counts rows per
                // project, and each batch needs its own count.
                && projects.insert(job.batch.project_id());
            if fits {
                events += job.batch.len();
                bytes += job.batch.bytes();
                jobs.push(job);
            } else {
                rest.push_back(job);
            }
        }
        self.waiting = rest;
        jobs
    }
}

impl Actor for Committer {
    type Context = Context<Self>;
}

/// Writes the jobs' batches as one statement and answers each. Should it
/// fail for anything but the connection (an event PostgreSQL refuses, a
/// lock timeout on one project's issue), each batch is written again
/// alone, where refused events are split out within their own batch: one
/// project's fault stays its own, and costs the others one statement.
async fn write(pool: EventPool, spool: Option<Spool>, metrics: Metrics, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        for job in jobs {
            write_alone(&pool, spool.as_ref(), &metrics, job).await;
        }
        return;
    }
    let started = Instant::now();
    let slices: Vec<&[Event]> = jobs.iter().map(|j| j.batch.events()).collect();
    let result = db::events::insert_batches(&pool, &slices).await;
    match result {
        Ok(inserted) => {
            metrics.batch_written(started.elapsed());
            metrics.alerts_fired(inserted.fired());
            for Job { batch, reply } in jobs {
                let stored = inserted.of(batch.project_id());
                let duplicate = batch.len() as u64 - stored;
                batch.landed(stored, duplicate, 0);
                let _ = reply.send(Landed::Stored {
                    stored,
                    duplicate,
                    refused: Vec::new(),
                });
            }
        }
        Err(Error::DatabaseUnavailable { reason, .. }) => {
            for job in jobs {
                // Each gets the failure; the cause, which only one could
                // own, is in the writers' log line through its reason.
                let error = Error::DatabaseUnavailable {
                    reason: reason.clone(),
                    source: None,
                };
                spool_or_hand_back(spool.as_ref(), job, error).await;
            }
        }
        Err(e) => {
            log::warn!(
                "a combined batch of {} writers failed ({}); writing each alone",
                jobs.len(),
                e.report()
            );
            for job in jobs {
                write_alone(&pool, spool.as_ref(), &metrics, job).await;
            }
        }
    }
}

/// Writes one job's batch alone, splitting out the events PostgreSQL
/// refuses, and answers it.
async fn write_alone(pool: &EventPool, spool: Option<&Spool>, metrics: &Metrics, job: Job) {
    let started = Instant::now();
    match db::events::store_batch(pool, job.batch.events()).await {
        Ok(db::events::Stored {
            stored,
            duplicate,
            refused,
            fired,
        }) => {
            metrics.batch_written(started.elapsed());
            metrics.alerts_fired(&fired);
            let Job { batch, reply } = job;
            let refused: Vec<Uuid> = refused.iter().map(|&i| batch.events()[i].id()).collect();
            if !refused.is_empty() {
                log::error!(
                    "project {}: PostgreSQL refused {} event(s), stored the other {stored}: {refused:?}",
                    batch.project_id(),
                    refused.len()
                );
            }
            batch.landed(stored, duplicate, refused.len() as u64);
            let _ = reply.send(Landed::Stored {
                stored,
                duplicate,
                refused,
            });
        }
        Err(error @ Error::DatabaseUnavailable { .. }) => {
            spool_or_hand_back(spool, job, error).await
        }
        Err(error) => {
            let _ = job.reply.send(Landed::Failed {
                batch: job.batch,
                error,
            });
        }
    }
}

/// A batch PostgreSQL could not take for want of a connection: to the
/// spool when there is one with room, else back to its writer.
async fn spool_or_hand_back(spool: Option<&Spool>, job: Job, error: Error) {
    let Job { batch, reply } = job;
    let Some(spool) = spool else {
        let _ = reply.send(Landed::Failed { batch, error });
        return;
    };
    let count = batch.len();
    let landed = match spool.put(batch).await {
        Ok(()) => Landed::Spooled { count },
        Err(refused) => Landed::Failed {
            batch: refused.batch,
            error: refused.error,
        },
    };
    let _ = reply.send(landed);
}

/// Lands `batch` (call), combined with others that wait at the same
/// moment. While PostgreSQL is unreachable it goes straight to the spool,
/// without waiting for a connection that will not come.
#[derive(Message)]
#[rtype(result = "Landed")]
pub struct Commit(pub Batch);

impl Handler<Commit> for Committer {
    type Result = ResponseFuture<Landed>;

    fn handle(&mut self, Commit(batch): Commit, ctx: &mut Self::Context) -> Self::Result {
        let count = batch.len();
        if let Some(spool) = self.spool.clone()
            && !spool.database_reachable()
        {
            return Box::pin(async move {
                match spool.put(batch).await {
                    Ok(()) => Landed::Spooled { count },
                    Err(refused) => Landed::Failed {
                        batch: refused.batch,
                        error: refused.error,
                    },
                }
            });
        }
        let (reply, answer) = oneshot::channel();
        self.waiting.push_back(Job { batch, reply });
        self.start_writes(ctx);
        Box::pin(async move {
            // A dropped sender means the write's task went away, and the
            // batch with it (counted by its Drop).
            answer.await.unwrap_or(Landed::Lost { count })
        })
    }
}
