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
//! The file belongs to one process and one database:
//! - an exclusive lock on [`LOCK_FILE_NAME`] beside it is held for as long
//!   as the file is open, so a second process given the same directory
//!   refuses to start instead of sharing the file. A lock, unlike a pid
//!   file, goes with the process that held it: one that crashed leaves
//!   nothing to clean up.
//! - the file records which PostgreSQL database its batches are for
//!   ([`DatabaseIdentity`]), and refuses to open for another while it holds
//!   batches. An empty spool is taken over by whichever database opens it.
//!
//! A row that no longer decodes is moved, bytes and all, to the
//! `quarantine` table of the same file, for an operator to look at.
//!
//! Everything here but [`database_identity`] blocks on disk: call it only
//! from the spool's own thread (or a blocking one).

use super::Pool;
use crate::domain::Event;
use crate::error::{Error, Result};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::Path;
use uuid::Uuid;

/// The file's name inside `MESHER_SPOOL_DIR`.
pub const FILE_NAME: &str = "spool.sqlite3";

/// The lock file's name inside `MESHER_SPOOL_DIR`. It holds the pid of the
/// process that has the spool open, for people; the lock on it, not its
/// contents, is what keeps a second process out.
pub const LOCK_FILE_NAME: &str = "spool.lock";

/// Which PostgreSQL database a spool's batches are for.
///
/// The cluster's `system_identifier` and the database's oid, rather than
/// the URL (one database has many URLs) or a mark of Mesher's own in the
/// database (a dump restored elsewhere, a staging copy of production,
/// would carry it too). A physical standby promoted by a failover keeps
/// both, so a spool replays into it; a dump restored into another cluster,
/// or a major-version upgrade with `pg_upgrade`, gets a new
/// `system_identifier`, so a spool holding batches then refuses to open
/// and the operator decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseIdentity {
    /// `pg_control_system()`'s, made by `initdb`: tells clusters apart.
    pub system_identifier: i64,
    /// Tells the databases of one cluster apart, and a database dropped
    /// and made again under its old name from the old one.
    pub oid: u32,
    /// For people reading a refusal; a renamed database is the same one.
    pub name: String,
}

impl DatabaseIdentity {
    /// Whether both name the same database, whatever it is called now.
    pub fn same_database(&self, other: &DatabaseIdentity) -> bool {
        self.system_identifier == other.system_identifier && self.oid == other.oid
    }
}

impl fmt::Display for DatabaseIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "database \"{}\" (oid {}) of the PostgreSQL cluster with system identifier {}",
            self.name, self.oid, self.system_identifier
        )
    }
}

/// The identity of the database `pool` connects to. `pg_control_system()`
/// is executable by every role in PostgreSQL 15 (no grant needed).
pub async fn database_identity(pool: &Pool) -> Result<DatabaseIdentity> {
    let row = pool
        .get()
        .await?
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), d.oid, d.datname
             FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await?;
    Ok(DatabaseIdentity {
        system_identifier: row.get(0),
        oid: row.get(1),
        name: row.get(2),
    })
}

/// The open spool file.
pub struct SpoolFile {
    conn: Connection,
    /// The lock file, locked for as long as this is open. Declared after
    /// `conn`, so the connection closes before the lock is let go.
    _lock: File,
}

/// One spooled batch, as read back for replay.
#[derive(Debug)]
pub struct SpooledBatch {
    /// Its row, to delete once replayed.
    pub id: i64,
    /// The batch's size on disk, for the spool's bound (0 if the row does
    /// not say).
    pub bytes: u64,
    /// How many events the row says it holds, for counting even when
    /// `contents` does not decode (0 if the row does not say).
    pub count: u64,
    /// The batch's project and its events; `Err` when the row no longer
    /// decodes (a corrupt file, a foreign one): the caller sets it aside,
    /// counted, rather than replaying it forever or stalling behind it.
    pub contents: Result<(Uuid, Vec<Event>)>,
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
    /// Opens (creating if needed) the spool in `dir` for the database
    /// `owner`. Fails with [`Error::Setup`] when another process has the
    /// directory, or when the spool holds batches of another database, or
    /// the directory `log_segments` segments of acknowledgement log (see
    /// [`crate::services::AckLog`]) written for another database: what the
    /// directory holds is for the database the file records.
    pub fn open(dir: &Path, owner: &DatabaseIdentity, log_segments: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::internal_from(
                format!("cannot create spool directory {}", dir.display()),
                e,
            )
        })?;
        // Before touching the file: a second process must not so much as
        // change its journal mode.
        let lock = lock(dir)?;
        let path = dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(|e| {
            Error::internal_from(format!("cannot open spool file {}", path.display()), e)
        })?;
        // WAL: a reader (replay) and the writer (spooling) do not block
        // each other. FULL: a commit is on disk before it returns. The busy
        // timeout covers a tool (sqlite3, say) reading the file meanwhile.
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
                     );
                     -- One row: the database the batches are for.
                     CREATE TABLE IF NOT EXISTS owner (
                         id INTEGER PRIMARY KEY CHECK (id = 1),
                         system_identifier INTEGER NOT NULL,
                         database_oid INTEGER NOT NULL,
                         database_name TEXT NOT NULL
                     );
                     -- Rows of batches that did not decode, as they were
                     -- (no types or NOT NULL: whatever was there is kept).
                     CREATE TABLE IF NOT EXISTS quarantine (
                         id INTEGER PRIMARY KEY,
                         project_id,
                         events,
                         bytes,
                         body,
                         reason TEXT NOT NULL,
                         set_aside_at TEXT NOT NULL
                             DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
                     );",
                )
            })
            .map_err(sqlite)?;
        let mut file = SpoolFile { conn, _lock: lock };
        file.claim(dir, owner, log_segments)?;
        Ok(file)
    }

    /// Records `owner` as the database the spool is for, unless it holds
    /// batches (or the directory log segments) of another.
    fn claim(&mut self, dir: &Path, owner: &DatabaseIdentity, log_segments: usize) -> Result<()> {
        let tx = self.conn.transaction().map_err(sqlite)?;
        let recorded = tx
            .query_row(
                "SELECT system_identifier, database_oid, database_name FROM owner",
                [],
                |row| {
                    Ok(DatabaseIdentity {
                        system_identifier: row.get(0)?,
                        oid: row.get(1)?,
                        name: row.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(sqlite)?;
        let (batches, events): (i64, i64) = tx
            .query_row(
                "SELECT count(*), coalesce(sum(events), 0) FROM batches",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(sqlite)?;
        if batches > 0 || log_segments > 0 {
            let held = if log_segments == 0 {
                format!("{events} events spooled")
            } else {
                format!(
                    "{events} events spooled and {log_segments} segment(s) of acknowledgement log"
                )
            };
            match recorded {
                Some(recorded) if !recorded.same_database(owner) => {
                    return Err(Error::Setup {
                        reason: format!(
                            "spool directory {} holds {held} for {recorded}, \
                             but DATABASE_URL names {owner}; replaying them there would store them \
                             in the wrong database. To replay them, start Mesher on that database \
                             again; otherwise move the directory away (keeping its events) or set \
                             MESHER_SPOOL_DIR to another one",
                            dir.display()
                        ),
                    });
                }
                Some(_) => {}
                // Spooled by a Mesher that did not record its database yet:
                // the database it is started on is the best guess there is.
                None => log::warn!(
                    "spool {} holds {held} that do not say which database they are for; replaying them into {owner}",
                    dir.display()
                ),
            }
        }
        tx.execute(
            "INSERT INTO owner (id, system_identifier, database_oid, database_name)
             VALUES (1, ?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET system_identifier = excluded.system_identifier,
                 database_oid = excluded.database_oid, database_name = excluded.database_name",
            params![owner.system_identifier, owner.oid, owner.name],
        )
        .map_err(sqlite)?;
        tx.commit().map_err(sqlite)
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

    /// The batch spooled first among those after row `after`, if any. Row
    /// ids only grow (`AUTOINCREMENT` never reuses one), so a caller that
    /// passes the last row it dealt with walks the spool oldest first, past
    /// rows it could not remove.
    pub fn oldest_after(&self, after: i64) -> Result<Option<SpooledBatch>> {
        self.conn
            .query_row(
                "SELECT id, project_id, events, bytes, body FROM batches
                 WHERE id > ?1 ORDER BY id LIMIT 1",
                [after],
                SpooledBatch::read,
            )
            .optional()
            .map_err(sqlite)
    }

    /// Deletes a replayed batch.
    pub fn remove(&self, id: i64) -> Result<()> {
        self.conn
            .execute("DELETE FROM batches WHERE id = ?1", [id])
            .map_err(sqlite)?;
        Ok(())
    }

    /// Moves a batch that does not decode to the `quarantine` table, bytes
    /// unchanged, with why.
    pub fn set_aside(&mut self, id: i64, reason: &str) -> Result<()> {
        let tx = self.conn.transaction().map_err(sqlite)?;
        tx.execute(
            "INSERT INTO quarantine (id, project_id, events, bytes, body, reason)
             SELECT id, project_id, events, bytes, body, ?2 FROM batches WHERE id = ?1",
            params![id, reason],
        )
        .and_then(|_| tx.execute("DELETE FROM batches WHERE id = ?1", [id]))
        .map_err(sqlite)?;
        tx.commit().map_err(sqlite)
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

    /// The id of the last batch spooled, 0 for none: at open, the batches
    /// up to it are an earlier run's.
    pub fn last_id(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT coalesce(max(id), 0) FROM batches", [], |row| {
                row.get(0)
            })
            .map_err(sqlite)
    }

    /// How many batches were set aside, for a reminder at start.
    pub fn quarantined(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM quarantine", [], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(sqlite)
    }
}

/// Takes the directory's lock, or says who has it.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE_NAME);
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::internal_from(format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|pid| pid.trim().parse::<u32>().ok())
                .map(|pid| format!(" (process {pid})"))
                .unwrap_or_default();
            return Err(Error::Setup {
                reason: format!(
                    "spool directory {} is in use by another Mesher{holder}: each Mesher needs a \
                     MESHER_SPOOL_DIR of its own",
                    dir.display()
                ),
            });
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::internal_from(
                format!("cannot lock {}", path.display()),
                e,
            ));
        }
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .map_err(|e| Error::internal_from(format!("cannot write {}", path.display()), e))?;
    Ok(file)
}

impl SpooledBatch {
    /// A row of `batches`, read without trusting it: a column of the wrong
    /// type or an undecodable body makes `contents` an error, not the read.
    fn read(row: &Row<'_>) -> rusqlite::Result<SpooledBatch> {
        let number = |i| match row.get_ref(i) {
            Ok(ValueRef::Integer(n)) => u64::try_from(n).ok(),
            _ => None,
        };
        Ok(SpooledBatch {
            id: row.get(0)?,
            count: number(2).unwrap_or(0),
            bytes: number(3).unwrap_or(0),
            contents: decode(row.get_ref(1)?, row.get_ref(4)?),
        })
    }
}

fn decode(project: ValueRef<'_>, body: ValueRef<'_>) -> Result<(Uuid, Vec<Event>)> {
    let ValueRef::Blob(project) = project else {
        return Err(Error::internal("its project id is not a blob"));
    };
    let project_id = Uuid::from_slice(project)
        .map_err(|e| Error::internal_from("its project id is not a UUID", e))?;
    let ValueRef::Blob(body) = body else {
        return Err(Error::internal("its body is not a blob"));
    };
    Ok((project_id, Event::decode_batch(project_id, body)?))
}

#[cfg(test)]
mod tests;
