//! Intake: the one way a request's events enter storage.
//!
//! The HTTP layer (and the ingest benchmark, which measures the path
//! production takes) hands a request's events to [`Intake::admit`], which
//! finds the project's [`Inbox`](super::inbox::Inbox) in the registry's
//! [`Directory`] and puts them there on the request's own thread: no
//! message and no hop to the writers' thread. The [`WriterRegistry`] is
//! asked only when no writer runs for the project (its first event since
//! start, or since its writer retired). It holds no state of its own, so
//! it is a plain async function over the registry's directory rather than
//! an actor of its own.
//!
//! With durable acknowledgement (`MESHER_ACK=durable`, see [`AckLog`]) a
//! request's events are appended to the log and fsynced first, and
//! admitted only then: a 200 means they are on disk. Should the inbox
//! then refuse them (429), they are dropped at once and their record is
//! deleted with its segment; only a crash in between would replay them,
//! as the client's retry of the same ids would be: stored once.

use super::ack_log::AckLog;
use super::inbox::Admitted;
use super::storage_writer::Overflow;
use super::writer_registry::{Directory, WriterFor, WriterRegistry};
use crate::domain::Event;
use crate::error::{Error, Result};
use actix::Addr;
use uuid::Uuid;

/// Admits requests' events to their writers; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    /// Starts a project's writer when none runs.
    registry: Addr<WriterRegistry>,
    /// The running writers (see [`Directory`]).
    directory: Directory,
    /// Where events are made durable before they are admitted; `None`
    /// acknowledges from memory (`MESHER_ACK=memory`).
    ack_log: Option<AckLog>,
}

impl Intake {
    pub fn new(registry: Addr<WriterRegistry>, directory: Directory) -> Self {
        Intake {
            registry,
            directory,
            ack_log: None,
        }
    }

    /// This intake, admitting events only once `log` has them on disk.
    pub fn durable(self, log: AckLog) -> Self {
        Intake {
            ack_log: Some(log),
            ..self
        }
    }

    /// Buffers one request's events (all of `project_id`, which the caller
    /// vouches for) in the project's writer, all or none: `Ok` once the
    /// writer holds them (and, with an acknowledgement log, once they are
    /// on disk; `Err(Overloaded)` when it is full), `Err(Overloaded)` when they do not fit,
    /// `Err(ShuttingDown)` once the system drains. A writer that stopped
    /// just now (it retired, or failed) loses the message and the request
    /// gets an error it may retry; nothing was accepted.
    pub async fn admit(&self, project_id: Uuid, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut events = events;
        if let Some(log) = &self.ack_log {
            log.append(project_id, &mut events).await?;
        }
        // A writer that retired just now hands the events back: the second
        // inbox is a new writer's.
        for _ in 0..2 {
            let inbox = match self.directory.get(project_id) {
                Some(inbox) if inbox.is_live() => inbox,
                _ => self.registry.send(WriterFor(project_id)).await??,
            };
            match inbox.admit(events, Overflow::Refuse)? {
                Admitted::Taken => return Ok(()),
                Admitted::Retired(back) => events = back,
            }
        }
        Err(Error::Overloaded {
            retry_after: std::time::Duration::from_secs(1),
        })
    }
}
