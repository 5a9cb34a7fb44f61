//! [`Inbox`]: a project's buffer of events, shared by the threads that put
//! events in and the [`StorageWriter`] that takes batches out.
//!
//! A request's events go into its project's inbox on the HTTP worker that
//! read them, under a short lock: no message to another thread and no
//! wait for its answer. Two thread wake-ups per request were a sixth of
//! Mesher's CPU in the HTTP benchmark, more than parsing the event. The
//! writer hears of the inbox only when it holds a batch (`batch_size`
//! events) or must spill, by one [`Wake`] message, and otherwise on its
//! timer.
//!
//! Admission rules live here, in one place ([`Inbox::admit`]): a request's
//! events are taken all together or not at all, bounded by bytes and time
//! (see [`StorageWriter`]); the embedding API's drop-oldest keeps the
//! seed's bound of events. An inbox that is draining refuses; one whose
//! writer retired hands the events back, to go to the project's next
//! writer.

use super::batch::MemoryBudget;
use super::spool::Spool;
use super::storage_writer::{Overflow, StorageWriter};
use crate::config::WriterConfig;
use crate::domain::Event;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use actix::prelude::*;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a client refused by a full writer is asked to wait: about one
/// flush of a busy writer, rounded up to the whole second HTTP can say.
const ADMIT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// How long a client refused while PostgreSQL is away (the spool full) is
/// asked to wait: an outage is not over in a second.
const OUTAGE_RETRY_AFTER: Duration = Duration::from_secs(10);

/// See the module documentation; shared as `Arc<Inbox>`.
pub struct Inbox {
    /// Whose events; named in log lines.
    project_id: Uuid,
    /// The bounds and the batch trigger.
    config: WriterConfig,
    /// What every writer's events may hold in all.
    budget: MemoryBudget,
    /// Events accepted and dropped are counted here.
    metrics: Metrics,
    /// Whether PostgreSQL is reachable, and whether the spool has room:
    /// during an outage a full inbox spills rather than refuses.
    spool: Option<Spool>,
    /// The writer to wake; set once it has started.
    writer: OnceLock<Addr<StorageWriter>>,
    /// What the lock guards.
    state: Mutex<State>,
}

/// The inbox's contents.
pub(crate) struct State {
    /// Events waiting for a batch, oldest first.
    pub(crate) buffer: VecDeque<Event>,
    /// Their bytes (see [`Event::size`]).
    pub(crate) bytes: usize,
    /// When the oldest buffered event arrived, for `buffer_wait`.
    pub(crate) waiting_since: Instant,
    /// Events taken since the writer started.
    pub(crate) received: u64,
    /// Oldest events pushed out under drop-oldest.
    pub(crate) dropped_overflow: u64,
    /// Whether events may still come in.
    pub(crate) open: Open,
    /// A [`Wake`] is on its way; no need for another until it is handled.
    pub(crate) woken: bool,
}

/// Whether an inbox takes events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Open {
    Yes,
    /// Its writer drains for good (shutdown): refused.
    Draining,
    /// Its writer retired while it was empty: handed back, for the
    /// project's next writer.
    Retired,
}

/// What [`Inbox::admit`] did with a request's events.
#[derive(Debug)]
pub enum Admitted {
    Taken,
    /// The writer has retired; the events come back, to be admitted by
    /// the project's next writer.
    Retired(Vec<Event>),
}

impl Inbox {
    pub fn new(
        project_id: Uuid,
        config: WriterConfig,
        budget: MemoryBudget,
        metrics: Metrics,
        spool: Option<Spool>,
    ) -> Inbox {
        Inbox {
            project_id,
            config,
            budget,
            metrics,
            spool,
            writer: OnceLock::new(),
            state: Mutex::new(State {
                buffer: VecDeque::new(),
                bytes: 0,
                waiting_since: Instant::now(),
                received: 0,
                dropped_overflow: 0,
                open: Open::Yes,
                woken: false,
            }),
        }
    }

    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    /// Whether this inbox still has a running writer that takes events.
    pub fn is_live(&self) -> bool {
        self.writer.get().is_some_and(Addr::connected) && self.lock().open == Open::Yes
    }

    /// Tells the inbox its writer (once, when the writer starts).
    pub(crate) fn attach(&self, writer: Addr<StorageWriter>) {
        let _ = self.writer.set(writer);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every change under the lock is whole before the next line could
        // panic; a poisoned lock guards consistent contents.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// PostgreSQL is away and the spool can take what does not fit: spill
    /// rather than refuse or drop.
    fn may_spill(&self) -> bool {
        self.spool
            .as_ref()
            .is_some_and(|s| !s.database_reachable() && s.has_room())
    }

    /// Takes a request's events (all of `self`'s project) under `overflow`'s
    /// rule; see the module documentation. `Err(Overloaded)` when they do
    /// not fit, `Err(ShuttingDown)` once draining.
    pub fn admit(&self, events: Vec<Event>, overflow: Overflow) -> Result<Admitted> {
        if events.is_empty() {
            return Ok(Admitted::Taken);
        }
        let bytes: usize = events.iter().map(Event::size).sum();
        let mut state = self.lock();
        match state.open {
            Open::Yes => {}
            Open::Draining => return Err(Error::ShuttingDown),
            Open::Retired => return Ok(Admitted::Retired(events)),
        }
        let spill = match overflow {
            Overflow::Refuse => self.check_room(&state, bytes)?,
            Overflow::DropOldest => {
                self.budget.take(bytes);
                false
            }
        };
        let count = events.len();
        if state.buffer.is_empty() {
            state.waiting_since = Instant::now();
        }
        state.buffer.extend(events);
        state.bytes += bytes;
        state.received += count as u64;
        self.metrics.events_accepted(count as u64);
        let mut spill = spill;
        if overflow == Overflow::DropOldest {
            while state.buffer.len() > self.config.buffer_capacity {
                if self.may_spill() {
                    spill = true;
                    break;
                }
                let Some(oldest) = state.buffer.pop_front() else {
                    break;
                };
                state.bytes -= oldest.size();
                self.budget.give(oldest.size());
                state.dropped_overflow += 1;
                self.metrics.buffered_dropped("overflow", 1);
            }
        }
        let due = spill || state.buffer.len() >= self.config.batch_size;
        let wake = due && !state.woken;
        if wake {
            state.woken = true;
        }
        drop(state);
        if wake && let Some(writer) = self.writer.get() {
            writer.do_send(Wake { spill });
        }
        Ok(Admitted::Taken)
    }

    /// Whether `bytes` more fit (taking them from the budget when they
    /// do); `Ok(true)` when they fit only because PostgreSQL is away and
    /// the buffer is to spill to the spool.
    fn check_room(&self, state: &State, bytes: usize) -> Result<bool> {
        // While PostgreSQL is away a client is asked to wait longer.
        let outage = self.spool.as_ref().filter(|s| !s.database_reachable());
        let retry_after = match outage {
            Some(_) => OUTAGE_RETRY_AFTER,
            None => ADMIT_RETRY_AFTER,
        };
        // PostgreSQL away and the spool full: what is taken now could only
        // be dropped.
        if outage.is_some_and(|spool| !spool.has_room()) {
            return Err(Error::Overloaded { retry_after });
        }
        // An empty buffer takes any one request, even one larger than the
        // bound, so that no configuration refuses a request forever.
        let full = !state.buffer.is_empty()
            && (state.bytes + bytes > self.config.buffer_bytes
                || state.waiting_since.elapsed() > self.config.buffer_wait);
        let spill = full && self.may_spill();
        if full && !spill {
            return Err(Error::Overloaded { retry_after });
        }
        if !self.budget.try_take(bytes) {
            return Err(Error::Overloaded { retry_after });
        }
        Ok(spill)
    }
}

/// The inbox holds a batch, or must spill (cast, to its writer).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Wake {
    pub(crate) spill: bool,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("project_id", &self.project_id)
            .finish()
    }
}
