//! The spool's file: batches of events kept on local disk, in SQLite,
//! while PostgreSQL cannot take them (see [`crate::services::Spool`]).
//!
//! SQLite rather than a file format of our own, as Sentry's Relay does: a
//! batch is written in one transaction, so a crash mid-write leaves the
//! batch whole or absent, never torn; `synchronous = FULL` makes each
//! commit durable before the writer counts the batch as spooled; and
//! reading the oldest batch and deleting it after replay are plain
//! statements, not offsets to keep consistent by hand.
//!
//! Everything here blocks on disk: call it only from the spool's own
//! thread.

use crate::domain::Event;
use crate::error::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use uuid::Uuid;

/// The file's name inside `MESHER_SPOOL_DIR`.
pub const FILE_NAME: &str = "spool.sqlite3";

/// The open spool file.
pub struct SpoolFile {
    conn: Connection,
}

/// One spooled batch, as read back for replay.
#[derive(Debug)]
pub struct SpooledBatch {
    /// Its row, to delete once replayed.
    pub id: i64,
    pub project_id: Uuid,
    /// The batch's size on disk, for the spool's bound.
    pub bytes: u64,
    /// `Err` when the row no longer decodes into events (a corrupt or
    /// foreign file); the caller drops it, counted, rather than replaying it
    /// forever.
    pub events: Result<Vec<Event>>,
    /// How many events the row says it holds, for counting even when
    /// `events` does not decode.
    pub count: u64,
}

/// What the spool holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub batches: u64,
    pub events: u64,
    pub bytes: u64,
}

fn sqlite(e: rusqlite::Error) -> Error {
    Error::internal_from("spool file", e)
}

impl SpoolFile {
    /// Opens (creating if needed) the spool in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::internal_from(
                format!("cannot create spool directory {}", dir.display()),
                e,
            )
        })?;
        let path = dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(|e| {
            Error::internal_from(format!("cannot open spool file {}", path.display()), e)
        })?;
        // WAL: a reader (replay) and the writer (spooling) do not block
        // each other. FULL: a commit is on disk before it returns. The busy
        // timeout covers a second process sharing the directory.
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
            .and_then(|()| {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS batches (
                         id INTEGER PRIMARY KEY AUTOINCREMENT,
                         project_id BLOB NOT NULL,
                         events INTEGER NOT NULL,
                         bytes INTEGER NOT NULL,
                         body BLOB NOT NULL
                     )",
                )
            })
            .map_err(sqlite)?;
        Ok(SpoolFile { conn })
    }

    /// Appends a batch of `count` events of one project, encoded by
    /// `Event::encode_batch`; durable when this returns.
    pub fn put(&self, project_id: Uuid, count: usize, body: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO batches (project_id, events, bytes, body) VALUES (?1, ?2, ?3, ?4)",
                params![project_id.as_bytes(), count as i64, body.len() as i64, body],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    /// The batch spooled first, if any.
    pub fn oldest(&self) -> Result<Option<SpooledBatch>> {
        self.conn
            .query_row(
                "SELECT id, project_id, events, bytes, body FROM batches ORDER BY id LIMIT 1",
                [],
                |row| {
                    let project: Vec<u8> = row.get(1)?;
                    let body: Vec<u8> = row.get(4)?;
                    Ok((row.get(0)?, project, row.get(2)?, row.get(3)?, body))
                },
            )
            .optional()
            .map_err(sqlite)
            .map(|row| {
                row.map(|(id, project, count, bytes, body): (i64, _, i64, i64, _)| {
                    let project_id = Uuid::from_slice(&project).unwrap_or_default();
                    SpooledBatch {
                        id,
                        project_id,
                        bytes: bytes as u64,
                        count: count as u64,
                        events: Event::decode_batch(project_id, &body),
                    }
                })
            })
    }

    /// Deletes a replayed (or undecodable) batch.
    pub fn remove(&self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM batches WHERE id = ?1", [id])
            .map_err(sqlite)?;
        Ok(())
    }

    /// What the file holds now.
    pub fn usage(&self) -> Result<Usage> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(events), 0), coalesce(sum(bytes), 0) FROM batches",
                [],
                |row| {
                    Ok(Usage {
                        batches: row.get::<_, i64>(0)? as u64,
                        events: row.get::<_, i64>(1)? as u64,
                        bytes: row.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .map_err(sqlite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventPayload;

    fn event(project_id: Uuid, message: &str) -> Event {
        let payload: EventPayload =
            serde_json::from_value(serde_json::json!({ "message": message })).unwrap();
        Event::from_payload(project_id, payload).unwrap()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mesher-spool-unit-{name}-{}", Uuid::now_v7()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn batches_come_back_oldest_first_and_survive_reopening() {
        let dir = temp_dir("order");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let first = vec![event(a, "one"), event(a, "two")];
        let second = vec![event(b, "three")];
        {
            let file = SpoolFile::open(&dir).unwrap();
            for (project, batch) in [(a, &first), (b, &second)] {
                let body = Event::encode_batch(batch).unwrap();
                file.put(project, batch.len(), &body).unwrap();
            }
        }
        let file = SpoolFile::open(&dir).unwrap();
        let usage = file.usage().unwrap();
        assert_eq!((usage.batches, usage.events), (2, 3));
        assert!(usage.bytes > 0);

        let oldest = file.oldest().unwrap().unwrap();
        assert_eq!(oldest.project_id, a);
        assert_eq!(oldest.count, 2);
        assert_eq!(oldest.events.unwrap(), first);
        file.remove(oldest.id).unwrap();

        let next = file.oldest().unwrap().unwrap();
        assert_eq!(next.events.unwrap(), second);
        file.remove(next.id).unwrap();
        assert!(file.oldest().unwrap().is_none());
        assert_eq!(file.usage().unwrap(), Usage::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_row_that_does_not_decode_is_reported_not_replayed() {
        let dir = temp_dir("corrupt");
        let file = SpoolFile::open(&dir).unwrap();
        file.conn
            .execute(
                "INSERT INTO batches (project_id, events, bytes, body) VALUES (?1, 1, 3, x'7b7b7b')",
                [Uuid::now_v7().as_bytes()],
            )
            .unwrap();
        let batch = file.oldest().unwrap().unwrap();
        assert_eq!(batch.count, 1);
        assert!(batch.events.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
