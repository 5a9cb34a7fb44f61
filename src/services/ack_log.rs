//! AckLog: the local log that makes a 200 mean "on disk"
//! (`MESHER_ACK=durable`, the default).
//!
//! A request's events are appended to the log and fsynced before they are
//! admitted to their writer's inbox, and the request is answered 200 only
//! then. From there on they go the usual way (a writer's batch, the
//! committer, PostgreSQL or the spool); each carries a [`Hold`] on the
//! log's segment that holds it, and a segment is deleted once every event
//! in it has been dropped: stored, spooled, or given up and counted. What
//! a killed process leaves in the log is what it had accepted and not yet
//! settled; the next start replays it through the committer
//! ([`replay_leftovers`]), alongside new traffic, and `event_ids` skips
//! whatever had committed already, so nothing is stored twice.
//!
//! # Why a log of its own, and group commit
//!
//! The spool's SQLite file would do, but a transaction there costs several
//! writes and fsyncs (WAL, checkpoint) and serializes on one connection,
//! while an append to a file of our own is one `write` and one
//! `fdatasync`. One thread ("ack-log") owns the segment files: requests
//! send it their record, encoded on their own thread, and wait on a
//! oneshot; the thread takes every record that is waiting, writes them
//! together and fsyncs once, then answers them all. Requests that arrive
//! while an fsync runs share the next one: the flush window is the
//! previous fsync, so a busy server pays one fsync per window, not per
//! request, and an idle one adds no delay on top of its one fsync. No HTTP
//! worker or actor ever waits on the disk itself.
//!
//! # What is acknowledged so
//!
//! Requests only (through [`super::Intake`]). The embedding API's `Store`
//! answers nothing a caller waits on, so it keeps acknowledging from
//! memory under drop-oldest, as before.
//!
//! # Format
//!
//! A segment is a file `<16 hex digits>.log` in `ack-log/` under the
//! spool's directory (which one process and one database own): [`MAGIC`],
//! then records, each `length: u32 LE | crc32: u32 LE | payload`, the
//! payload `project id: 16 bytes | events: u32 LE | the spool's batch
//! encoding` ([`Event::encode_batch`]). Reading stops at the first record
//! that is short or fails its checksum: a torn tail left by a crash
//! mid-write is cut off, never taken for data nor a reason to refuse to
//! start (see [`scan`]).
//!
//! # Bounds
//!
//! The log has a bound of its own rather than a share of the spool's: the
//! two fill at different times (the spool while PostgreSQL is away, when
//! the log empties into it; the log while PostgreSQL is slow but
//! reachable), and an operator sizes them apart. The segments together
//! are bounded by `MESHER_ACK_LOG_MAX_MB` (see
//! [`crate::config::AckConfig`]); a request that does not fit is refused
//! with `Overloaded` (429 with `Retry-After`), so nothing is accepted that
//! cannot be kept. Segments are rotated at an eighth of the bound (at
//! most [`MAX_SEGMENT_BYTES`]), so settled segments are deleted while the
//! current one fills.

use super::batch::{Batch, MemoryBudget};
use super::committer::{Commit, Committer, Landed};
use super::spool::Spool;
use crate::db::{self, EventPool};
use crate::domain::{Event, Hold};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use actix::Addr;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The first bytes of every segment: a stray file is never read as one.
pub const MAGIC: &[u8; 8] = b"MSHRACK1";

/// The largest segment before the next append rotates to a new one.
pub const MAX_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// A record longer than this is a corrupt length (an envelope is at most
/// 20 MiB, and its encoding smaller).
const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// How long a client refused because the log is full is asked to wait:
/// storage is not keeping up, which is not over in a second.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The most events one replayed batch carries.
const REPLAY_BATCH_EVENTS: usize = 1_000;

/// The header before a record's payload: length and checksum.
const HEADER: usize = 8;

/// A handle on the log; cheap to clone.
#[derive(Clone)]
pub struct AckLog {
    /// To the log's thread.
    ops: mpsc::Sender<Op>,
    /// Where the wait for an fsync is counted.
    metrics: Metrics,
}

/// A segment left by an earlier run, to replay ([`replay_leftovers`]).
pub struct Leftover {
    path: PathBuf,
    /// Deletes the segment once dropped and every replayed event with it.
    segment: Arc<Segment>,
}

/// What the log's thread is asked.
enum Op {
    Append {
        record: Vec<u8>,
        reply: oneshot::Sender<Result<Hold>>,
    },
    /// Every event of the segment is settled: delete it.
    Release(u64),
    Close(oneshot::Sender<()>),
}

/// A segment, alive while its events are unsettled; its drop asks the
/// log's thread to delete the file.
struct Segment {
    id: u64,
    ops: mpsc::Sender<Op>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        // After close, the file stays, to be replayed (its events as
        // duplicates) at the next start.
        let _ = self.ops.send(Op::Release(self.id));
    }
}

impl AckLog {
    /// Opens the log in `dir` (made if missing), bounded by `max_bytes`,
    /// and starts its thread; returns the segments an earlier run left,
    /// for [`replay_leftovers`]. Blocks on the disk: call it off the
    /// actors' threads.
    pub fn open(dir: &Path, max_bytes: u64, metrics: Metrics) -> Result<(AckLog, Vec<Leftover>)> {
        let io = |what: &str, e: std::io::Error| {
            Error::internal_from(format!("{what} {}", dir.display()), e)
        };
        std::fs::create_dir_all(dir).map_err(|e| io("creating the acknowledgement log", e))?;
        let (ops, inbox) = mpsc::channel();
        let mut sizes = BTreeMap::new();
        let mut leftovers = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| io("reading", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io("reading", e))?;
            let path = entry.path();
            let Some(id) = segment_id(&path) else {
                continue;
            };
            let size = entry.metadata().map_err(|e| io("reading", e))?.len();
            sizes.insert(id, size);
            leftovers.push(Leftover {
                path,
                segment: Arc::new(Segment {
                    id,
                    ops: ops.clone(),
                }),
            });
        }
        leftovers.sort_by_key(|l| l.segment.id);
        if !leftovers.is_empty() {
            log::info!(
                "acknowledgement log {} holds {} segment(s) ({} bytes) from an earlier run; replaying them",
                dir.display(),
                leftovers.len(),
                sizes.values().sum::<u64>()
            );
        }
        let thread = LogThread {
            dir: dir.to_owned(),
            next_id: sizes.keys().next_back().map_or(1, |id| id + 1),
            sizes,
            current: None,
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(4096, MAX_SEGMENT_BYTES),
            ops: ops.clone(),
            metrics: metrics.clone(),
        };
        thread.publish();
        std::thread::Builder::new()
            .name("ack-log".into())
            .spawn(move || thread.run(inbox))
            .map_err(|e| Error::internal_from("starting the acknowledgement log's thread", e))?;
        Ok((AckLog { ops, metrics }, leftovers))
    }

    /// Appends `events` (all of `project_id`) as one record and returns
    /// once it is on disk, each event then holding its segment. Encoding
    /// runs here, on the caller's thread; the write and the fsync on the
    /// log's. `Err(Overloaded)` when the log is full, `Err(ShuttingDown)`
    /// once it is closed.
    pub async fn append(&self, project_id: Uuid, events: &mut [Event]) -> Result<()> {
        let started = Instant::now();
        let record = record(&payload(project_id, events)?);
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(Op::Append { record, reply })
            .map_err(|_| Error::ShuttingDown)?;
        let hold = answer.await.map_err(|_| Error::ShuttingDown)??;
        for event in events {
            event.set_hold(hold.clone());
        }
        self.metrics.ack_waited(started.elapsed());
        Ok(())
    }

    /// Deletes the segments whose events are all settled and stops the
    /// thread; what is still held stays on disk for the next start. Call
    /// it after the writers have drained.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.ops.send(Op::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// The log's directory inside `MESHER_SPOOL_DIR`, whose owner record
/// (see [`crate::db::spool::SpoolFile::open`]) says which database its
/// segments are for.
pub const DIR_NAME: &str = "ack-log";

/// How many segments an earlier run left in `dir`: events answered 200,
/// perhaps not stored yet. 0 when there is no such directory.
pub(crate) fn leftover_segments(dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut segments = 0;
    for entry in entries {
        if segment_id(&entry?.path()).is_some() {
            segments += 1;
        }
    }
    Ok(segments)
}

/// The segment's id, when `path` names one.
fn segment_id(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?.strip_suffix(".log")?;
    (name.len() == 16)
        .then(|| u64::from_str_radix(name, 16).ok())
        .flatten()
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.log"))
}

/// The segment being appended to.
struct Current {
    segment: Arc<Segment>,
    file: File,
    len: u64,
}

/// The state of the log's thread (see the module documentation).
struct LogThread {
    dir: PathBuf,
    next_id: u64,
    /// Every segment on disk and its bytes.
    sizes: BTreeMap<u64, u64>,
    current: Option<Current>,
    max_bytes: u64,
    /// When the current segment is rotated.
    segment_bytes: u64,
    /// For the segments' own messages.
    ops: mpsc::Sender<Op>,
    metrics: Metrics,
}

impl LogThread {
    fn run(mut self, inbox: mpsc::Receiver<Op>) {
        while let Ok(first) = inbox.recv() {
            let mut appends = Vec::new();
            let mut close = None;
            for op in std::iter::once(first).chain(inbox.try_iter()) {
                match op {
                    Op::Append { record, reply } => appends.push((record, reply)),
                    Op::Release(id) => self.delete(id),
                    Op::Close(done) => close = Some(done),
                }
            }
            self.append(appends);
            if let Some(done) = close {
                // The current segment too, if nothing holds it.
                self.current = None;
                for op in inbox.try_iter() {
                    match op {
                        Op::Release(id) => self.delete(id),
                        Op::Append { reply, .. } => {
                            let _ = reply.send(Err(Error::ShuttingDown));
                        }
                        Op::Close(also) => {
                            let _ = also.send(());
                        }
                    }
                }
                if !self.sizes.is_empty() {
                    log::warn!(
                        "the acknowledgement log keeps {} segment(s) of unsettled events; the next start replays them",
                        self.sizes.len()
                    );
                }
                let _ = done.send(());
                return;
            }
        }
    }

    fn used(&self) -> u64 {
        self.sizes.values().sum()
    }

    fn publish(&self) {
        self.metrics.ack_log_bytes(self.used());
    }

    /// Writes the records that fit together, fsyncs once, answers all.
    fn append(&mut self, appends: Vec<(Vec<u8>, oneshot::Sender<Result<Hold>>)>) {
        if appends.is_empty() {
            return;
        }
        let mut used = self.used();
        let mut bytes = Vec::new();
        let mut waiting = Vec::with_capacity(appends.len());
        let mut refused = false;
        for (record, reply) in appends {
            // An empty log takes any one record, so that no request is
            // refused for ever.
            if used != 0 && used + record.len() as u64 > self.max_bytes {
                refused = true;
                let _ = reply.send(Err(Error::Overloaded {
                    retry_after: FULL_RETRY_AFTER,
                }));
                continue;
            }
            used += record.len() as u64;
            if bytes.is_empty() {
                bytes = record;
            } else {
                bytes.extend_from_slice(&record);
            }
            waiting.push(reply);
        }
        if refused {
            log::warn!(
                "the acknowledgement log is full ({used} bytes of {}); refusing requests until events are settled",
                self.max_bytes
            );
            // Settled events in the current segment free nothing while it
            // is current.
            if self
                .current
                .as_ref()
                .is_some_and(|c| c.len > MAGIC.len() as u64)
            {
                self.current = None;
            }
        }
        if waiting.is_empty() {
            return;
        }
        match self.write(&bytes) {
            Ok(segment) => {
                // One hold for the round's requests, each event a clone.
                let hold = Hold::new(segment);
                for reply in waiting {
                    let _ = reply.send(Ok(hold.clone()));
                }
            }
            Err(e) => {
                log::error!(
                    "appending to the acknowledgement log in {} failed: {e}",
                    self.dir.display()
                );
                for reply in waiting {
                    let _ = reply.send(Err(Error::internal_from(
                        "appending to the acknowledgement log",
                        std::io::Error::new(e.kind(), e.to_string()),
                    )));
                }
            }
        }
        self.publish();
    }

    /// Appends `bytes` to the current segment (rotating first when it is
    /// full) and fsyncs.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<Arc<Segment>> {
        if self
            .current
            .as_ref()
            .is_none_or(|c| c.len >= self.segment_bytes)
        {
            self.rotate()?;
        }
        let Some(current) = self.current.as_mut() else {
            unreachable!("rotate made a segment");
        };
        let written = current
            .file
            .write_all(bytes)
            .and_then(|()| current.file.sync_data());
        current.len += bytes.len() as u64;
        self.sizes.insert(current.segment.id, current.len);
        match written {
            Ok(()) => Ok(current.segment.clone()),
            Err(e) => {
                // What the file holds now is unknown: the next append
                // starts a new one; this one is deleted once nothing
                // holds it (and replayed, harmlessly, after a crash).
                self.current = None;
                Err(e)
            }
        }
    }

    /// Starts a new segment; the one before is deleted once its events
    /// are settled.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.current = None;
        let id = self.next_id;
        self.next_id += 1;
        let path = segment_path(&self.dir, id);
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        file.write_all(MAGIC)?;
        file.sync_data()?;
        // The new name itself must survive a crash.
        File::open(&self.dir)?.sync_all()?;
        self.sizes.insert(id, MAGIC.len() as u64);
        self.current = Some(Current {
            segment: Arc::new(Segment {
                id,
                ops: self.ops.clone(),
            }),
            file,
            len: MAGIC.len() as u64,
        });
        Ok(())
    }

    fn delete(&mut self, id: u64) {
        if self.sizes.remove(&id).is_none() {
            return;
        }
        let path = segment_path(&self.dir, id);
        if let Err(e) = std::fs::remove_file(&path) {
            log::error!(
                "deleting settled segment {} of the acknowledgement log failed (it will be replayed, as duplicates, at the next start): {e}",
                path.display()
            );
        }
        self.publish();
    }
}

/// A record around `payload`: its length, its checksum, itself.
pub fn record(payload: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(HEADER + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// What a segment's bytes hold: its records' payloads, and where and why
/// reading stopped early, if it did.
#[derive(Debug, PartialEq, Eq)]
pub struct Scan<'a> {
    pub payloads: Vec<&'a [u8]>,
    /// The offset of the first byte not read, and why.
    pub torn: Option<(usize, &'static str)>,
}

/// Reads a segment's bytes: the records up to the first that is short,
/// too long or fails its checksum (a torn tail, cut off there).
pub fn scan(bytes: &[u8]) -> Scan<'_> {
    let mut scan = Scan {
        payloads: Vec::new(),
        torn: None,
    };
    let Some(mut rest) = bytes.strip_prefix(MAGIC.as_slice()) else {
        scan.torn = Some((0, "no segment header"));
        return scan;
    };
    let mut offset = MAGIC.len();
    while !rest.is_empty() {
        let Some((header, body)) = rest.split_first_chunk::<HEADER>() else {
            scan.torn = Some((offset, "a partial record header"));
            break;
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD_BYTES {
            scan.torn = Some((offset, "an impossible record length"));
            break;
        }
        let Some(payload) = body.get(..len) else {
            scan.torn = Some((offset, "a partial record"));
            break;
        };
        if crc32fast::hash(payload) != crc {
            scan.torn = Some((offset, "a record failing its checksum"));
            break;
        }
        scan.payloads.push(payload);
        rest = &body[len..];
        offset += HEADER + len;
    }
    scan
}

/// A request's events as a record's payload.
fn payload(project_id: Uuid, events: &[Event]) -> Result<Vec<u8>> {
    let batch = Event::encode_batch(events)?;
    let mut payload = Vec::with_capacity(20 + batch.len());
    payload.extend_from_slice(project_id.as_bytes());
    payload.extend_from_slice(&(events.len() as u32).to_le_bytes());
    payload.extend_from_slice(&batch);
    Ok(payload)
}

/// A record's events, or how many it held and why they do not decode.
type Decoded = std::result::Result<Vec<Event>, (u64, Error)>;

/// A payload's project, and its events or, when they do not decode, how
/// many it held and why; `None` when even its header is short.
fn decode(payload: &[u8]) -> Option<(Uuid, Decoded)> {
    let (project, rest) = payload.split_first_chunk::<16>()?;
    let (count, batch) = rest.split_first_chunk::<4>()?;
    let project_id = Uuid::from_bytes(*project);
    let count = u32::from_le_bytes(*count) as u64;
    let events = Event::decode_batch(project_id, batch).map_err(|e| (count, e));
    Some((project_id, events))
}

/// How [`replay_leftovers`] lands what it reads back.
#[derive(Clone)]
pub struct Replay {
    /// Lands the batches, as the writers' (PostgreSQL, or the spool while
    /// it is away).
    pub committer: Addr<Committer>,
    /// Asked which events the crashed run had stored already.
    pub pool: EventPool,
    /// Told when the replay is over: the batches the crashed run spooled
    /// wait for it (see [`Spool::log_replayed`]).
    pub spool: Option<Spool>,
    pub metrics: Metrics,
    /// A writer's retry delays (`MESHER_WRITER_RETRY_MS`).
    pub retry_backoff: Vec<Duration>,
}

/// Replays the segments an earlier run left, oldest first, through the
/// committer, retrying a failed batch like a writer. Each event read back
/// is counted as replayed (`from="ack_log"`), then as a duplicate when the
/// crashed run had stored it, else as its batch's outcome: the restarted
/// process counts as stored exactly the rows it adds. A segment is deleted
/// once its events are settled. The batches the crashed run spooled are
/// replayed after this (see [`Spool::log_replayed`]): an event in both is
/// then found stored by the second, never taken for its own attempt.
pub async fn replay_leftovers(leftovers: Vec<Leftover>, replay: Replay) {
    let metrics = &replay.metrics;
    let budget = MemoryBudget::new(usize::MAX);
    for Leftover { path, segment } in leftovers {
        let read_path = path.clone();
        let bytes = match tokio::task::spawn_blocking(move || std::fs::read(read_path)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => {
                log::error!(
                    "reading {} failed; kept for the next start: {e}",
                    path.display()
                );
                std::mem::forget(segment);
                continue;
            }
            Err(e) => {
                log::error!(
                    "reading {} failed; kept for the next start: {e}",
                    path.display()
                );
                std::mem::forget(segment);
                continue;
            }
        };
        let scan = scan(&bytes);
        if let Some((offset, why)) = scan.torn {
            log::warn!(
                "acknowledgement log {}: cut off {} bytes at offset {offset} ({why}), a write the crash tore; replaying the {} record(s) before it",
                path.display(),
                bytes.len() - offset,
                scan.payloads.len()
            );
        }
        let hold = Hold::new(segment);
        let mut batch: Option<(Uuid, Vec<Event>)> = None;
        for payload in scan.payloads {
            let Some((project_id, events)) = decode(payload) else {
                log::error!(
                    "acknowledgement log {}: a record too short to name its project; skipped",
                    path.display()
                );
                continue;
            };
            let mut events = match events {
                Ok(events) => events,
                Err((count, e)) => {
                    log::error!(
                        "acknowledgement log {}: a record of {count} event(s) of project {project_id} does not decode; counted as dropped: {}",
                        path.display(),
                        e.report()
                    );
                    metrics.events_recovered(count);
                    metrics.in_flight_dropped("ack_log_corrupt", count);
                    continue;
                }
            };
            for event in &mut events {
                event.set_hold(hold.clone());
            }
            match &mut batch {
                Some((project, held))
                    if *project == project_id
                        && held.len() + events.len() <= REPLAY_BATCH_EVENTS =>
                {
                    held.extend(events)
                }
                _ => {
                    if let Some((project, held)) = batch.replace((project_id, events)) {
                        land(&replay, project, held, &budget).await;
                    }
                }
            }
        }
        if let Some((project, held)) = batch {
            land(&replay, project, held, &budget).await;
        }
    }
    if let Some(spool) = &replay.spool {
        spool.log_replayed();
    }
}

/// How often replay asks again which events are stored while PostgreSQL
/// does not answer.
const STORED_IDS_RETRY: Duration = Duration::from_secs(1);

/// Lands one replayed batch: what the crashed run had stored as
/// duplicates, the rest through the committer, retried as a writer does.
async fn land(replay: &Replay, project_id: Uuid, events: Vec<Event>, budget: &MemoryBudget) {
    let Replay {
        committer,
        pool,
        metrics,
        retry_backoff,
        ..
    } = replay;
    let ids: Vec<Uuid> = events.iter().map(Event::id).collect();
    // Asked before the first attempt, however long PostgreSQL takes to
    // answer (the events are in the log meanwhile): after it, an event
    // found stored may be this run's own attempt (see db::events::stored_ids).
    let mut waited = false;
    let known = loop {
        match db::events::stored_ids(pool, project_id, &ids).await {
            Ok(known) => break known,
            Err(e) => {
                if !waited {
                    log::warn!(
                        "replaying the acknowledgement log waits for PostgreSQL: {}",
                        e.report()
                    );
                    waited = true;
                }
                tokio::time::sleep(STORED_IDS_RETRY).await;
            }
        }
    };
    let (known, events): (Vec<Event>, Vec<Event>) =
        events.into_iter().partition(|e| known.contains(&e.id()));
    if !known.is_empty() {
        let count = known.len() as u64;
        Batch::recovered(project_id, known, metrics.clone(), budget.clone()).landed(0, count, 0);
    }
    if events.is_empty() {
        return;
    }
    let mut batch = Batch::recovered(project_id, events, metrics.clone(), budget.clone());
    let mut attempt = 0;
    loop {
        // Anything but a failure is settled and counted (a committer gone
        // took the batch with it, counted as lost).
        let Ok(Landed::Failed { batch: back, error }) = committer.send(Commit(batch)).await else {
            return;
        };
        let Some(&delay) = retry_backoff.get(attempt) else {
            log::error!(
                "project {project_id}: dropped a replayed batch of {} events after {attempt} retries: {}",
                back.len(),
                error.report()
            );
            let reason = match error {
                Error::Overloaded { .. } => "spool_full",
                _ => "failed_retries",
            };
            back.dropped(reason);
            return;
        };
        log::warn!(
            "project {project_id}: replaying {} events failed ({}); retry {} in {delay:?}",
            back.len(),
            error.report(),
            attempt + 1
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
        batch = back;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventPayload;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for p in payloads {
            bytes.extend(record(p));
        }
        bytes
    }

    #[test]
    fn a_segment_reads_back_to_its_last_whole_record() {
        let whole = segment(&[b"one", b"", b"three"]);
        let two = segment(&[b"one", b""]);
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let mut bad_crc = whole.clone();
        bad_crc[two.len() + 4] ^= 0xff;
        let mut huge = two.clone();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&[0; 4]);
        let mut stray = b"MSHRACK0".to_vec();
        stray.extend(record(b"one"));
        type Case<'a> = (&'a str, Vec<u8>, Vec<&'a [u8]>, Option<(usize, &'a str)>);
        let cases: Vec<Case> = vec![
            ("whole", whole.clone(), vec![b"one", b"", b"three"], None),
            ("header only", MAGIC.to_vec(), vec![], None),
            ("empty file", vec![], vec![], Some((0, "no segment header"))),
            (
                "half a header",
                MAGIC[..4].to_vec(),
                vec![],
                Some((0, "no segment header")),
            ),
            (
                "another file",
                stray,
                vec![],
                Some((0, "no segment header")),
            ),
            (
                "a partial record header",
                whole[..two.len() + 5].to_vec(),
                vec![b"one", b""],
                Some((two.len(), "a partial record header")),
            ),
            (
                "a partial payload",
                whole[..whole.len() - 1].to_vec(),
                vec![b"one", b""],
                Some((two.len(), "a partial record")),
            ),
            (
                "a flipped payload bit",
                flipped,
                vec![b"one", b""],
                Some((two.len(), "a record failing its checksum")),
            ),
            (
                "a flipped checksum",
                bad_crc,
                vec![b"one", b""],
                Some((two.len(), "a record failing its checksum")),
            ),
            (
                "an impossible length",
                huge,
                vec![b"one", b""],
                Some((two.len(), "an impossible record length")),
            ),
        ];
        for (name, bytes, payloads, torn) in cases {
            assert_eq!(scan(&bytes), Scan { payloads, torn }, "{name}");
        }
    }

    #[test]
    fn a_payload_carries_its_project_and_events() {
        let project = Uuid::now_v7();
        let events: Vec<Event> = (0..3)
            .map(|i| {
                let payload = EventPayload {
                    message: Some(format!("event {i}")),
                    ..Default::default()
                };
                Event::from_payload(project, payload).unwrap()
            })
            .collect();
        let bytes = payload(project, &events).unwrap();
        let (read, back) = decode(&bytes).unwrap();
        assert_eq!(read, project);
        assert_eq!(back.unwrap(), events);

        // A record whose batch does not decode still says how many events
        // it held, so that they are counted.
        let mut broken = bytes.clone();
        broken.truncate(24);
        let (_, back) = decode(&broken).unwrap();
        assert!(matches!(back, Err((3, _))));
        assert!(decode(&bytes[..19]).is_none(), "a header cut short");
    }

    #[test]
    fn segment_names_are_sixteen_hex_digits() {
        for (name, id) in [
            ("0000000000000001.log", Some(1)),
            ("00000000000000ff.log", Some(255)),
            ("1.log", None),
            ("0000000000000001.tmp", None),
            ("000000000000000g.log", None),
        ] {
            assert_eq!(segment_id(Path::new(name)), id, "{name}");
        }
        assert_eq!(
            segment_path(Path::new("d"), 255),
            Path::new("d/00000000000000ff.log")
        );
    }

    /// The log on a real directory: what is appended and still held is
    /// left for the next open, what was released is gone, and a full log
    /// refuses.
    #[actix::test]
    async fn held_segments_outlive_a_crash_and_released_ones_are_deleted() {
        let dir = std::env::temp_dir().join(format!("mesher-ack-log-{}", Uuid::now_v7()));
        let project = Uuid::now_v7();
        let event = |n: usize| {
            let payload = EventPayload {
                message: Some(format!("event {n}")),
                ..Default::default()
            };
            Event::from_payload(project, payload).unwrap()
        };
        let metrics = Metrics::default();
        let (log, leftovers) = AckLog::open(&dir, 1 << 20, metrics.clone()).unwrap();
        assert!(leftovers.is_empty());
        let mut kept = vec![event(0), event(1)];
        log.append(project, &mut kept).await.unwrap();
        let mut settled = vec![event(2)];
        log.append(project, &mut settled).await.unwrap();
        drop(settled);
        // A crash: the log is not closed, the events still held.
        std::mem::forget(kept);
        let (again, leftovers) = AckLog::open(&dir, 1 << 20, metrics).unwrap();
        assert_eq!(leftovers.len(), 1);
        let bytes = std::fs::read(&leftovers[0].path).unwrap();
        let read = scan(&bytes);
        assert_eq!(read.torn, None);
        let events: usize = read
            .payloads
            .iter()
            .map(|p| decode(p).unwrap().1.unwrap().len())
            .sum();
        assert_eq!(events, 3, "the held events and the settled one");
        drop(leftovers);
        again.close().await;
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(left.is_empty(), "released segments are deleted: {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
