//! `events`, `event_ids` and `issues`: a batch of events, of one project or
//! of many, is stored, and grouped into its issues, by one statement;
//! a second, in the same transaction, aggregates its new events for
//! triage (see [`super::triage::record_batch`]).
//!
//! The statement (`INSERT_SQL`) first records the batch's event ids
//! in `event_ids`, skipping those already there, so an event is stored
//! once whatever its day and however often it arrives (an SDK's retry, a
//! batch retried after its commit's reply was lost); then creates or
//! updates the issues of the events that are new, counting exactly those;
//! then inserts them with their issue. Concurrent batches meet on the
//! unique keys of `event_ids` and `issues`, where PostgreSQL makes one
//! wait for the other, so counts stay exact with several writers, in one
//! process or many.

use super::{partitions, triage};
use crate::domain::{Event, RawJson};
use crate::error::{Error, Result};
use bb8_postgres::PostgresConnectionManager;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Error as PgError, NoTls, Statement};
use uuid::Uuid;

/// Stores a batch of events and updates their issues.
///
/// The arrays `$1..$24` hold one element per event (`$1` its project),
/// `$25..$27` one new issue id per project and fingerprint in the batch
/// (used only for an issue that does not exist yet). Rows are taken in key
/// order so that
/// two batches sharing keys lock them in the same order and cannot
/// deadlock, and an event twice in one batch is taken once. An issue takes
/// its title, culprit and level from its latest event. Its status is not
/// touched here: whether an event reopens a resolved issue (a regression)
/// or brings back an archived one depends on releases and users, and is
/// decided in the same transaction by [`super::triage::record_batch`].
/// Returns each stored event's project, id and issue, for that call.
const INSERT_SQL: &str = "
WITH batch AS (
    SELECT DISTINCT ON (project_id, id) * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
        $6::text[], $7::text[], $8::jsonb[], $9::jsonb[], $10::jsonb[], $11::jsonb[],
        $12::jsonb[], $13::jsonb[], $14::jsonb[], $15::jsonb[], $16::jsonb[], $17::text[],
        $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::timestamptz[], $24::timestamptz[])
    AS b(project_id, id, level, message, fingerprint, title, culprit, exception, stacktrace, breadcrumbs,
        tags, extra, user_context, contexts, request, other, sdk_name, sdk_version, platform,
        release, environment, transaction, occurred_at, received_at)
    ORDER BY project_id, id
),
fresh AS (
    INSERT INTO event_ids (project_id, id, received_at)
    SELECT project_id, id, received_at FROM batch ORDER BY project_id, id
    ON CONFLICT DO NOTHING
    RETURNING project_id, id
),
new_events AS (
    SELECT batch.* FROM batch JOIN fresh USING (project_id, id)
),
counted AS (
    SELECT project_id, fingerprint, count(*) AS events, min(received_at) AS first_seen,
        max(received_at) AS last_seen,
        (array_agg(title ORDER BY received_at DESC, id DESC))[1] AS title,
        (array_agg(culprit ORDER BY received_at DESC, id DESC))[1] AS culprit,
        (array_agg(level ORDER BY received_at DESC, id DESC))[1] AS level
    FROM new_events GROUP BY project_id, fingerprint
),
grouped AS (
    INSERT INTO issues AS i (id, project_id, fingerprint, title, culprit, level, event_count,
        first_seen, last_seen)
    SELECT n.id, c.project_id, c.fingerprint, c.title, c.culprit, c.level, c.events,
        c.first_seen, c.last_seen
    FROM counted c
    JOIN unnest($25::uuid[], $26::uuid[], $27::text[]) AS n(id, project_id, fingerprint)
        USING (project_id, fingerprint)
    ORDER BY c.project_id, c.fingerprint
    ON CONFLICT (project_id, fingerprint) DO UPDATE SET
        event_count = i.event_count + excluded.event_count,
        first_seen = least(i.first_seen, excluded.first_seen),
        last_seen = greatest(i.last_seen, excluded.last_seen),
        title = CASE WHEN excluded.last_seen >= i.last_seen THEN excluded.title
            ELSE i.title END,
        culprit = CASE WHEN excluded.last_seen >= i.last_seen THEN excluded.culprit
            ELSE i.culprit END,
        level = CASE WHEN excluded.last_seen >= i.last_seen THEN excluded.level
            ELSE i.level END
    RETURNING i.id, i.project_id, i.fingerprint
)
INSERT INTO events (id, project_id, issue_id, level, message, fingerprint, exception, stacktrace,
    breadcrumbs, tags, extra, user_context, contexts, request, other, sdk_name, sdk_version,
    platform, release, environment, transaction, occurred_at, received_at)
SELECT e.id, e.project_id, g.id, e.level, e.message, e.fingerprint, e.exception, e.stacktrace,
    e.breadcrumbs, e.tags, e.extra, e.user_context, e.contexts, e.request, e.other, e.sdk_name,
    e.sdk_version, e.platform, e.release, e.environment, e.transaction, e.occurred_at,
    e.received_at
FROM new_events e JOIN grouped g USING (project_id, fingerprint)
RETURNING project_id, id, issue_id";

/// A pool of connections for writing events, made by
/// [`super::event_pool`]; cheap to clone.
pub type EventPool = bb8::Pool<EventConnections>;

/// Opens the connections of an [`EventPool`]. Each prepares `INSERT_SQL`
/// once, on its first batch: preparing it per batch costs a round trip
/// that small batches feel, and preparing it on connecting would make an
/// unusable `events` table (renamed, say) fail the connection rather than
/// the batch, which the writer retries.
#[derive(Debug)]
pub struct EventConnections {
    manager: PostgresConnectionManager<NoTls>,
    /// Told whether each attempt to connect succeeded.
    reachability: super::Reachability,
}

impl EventConnections {
    pub(super) fn new(
        manager: PostgresConnectionManager<NoTls>,
        reachability: super::Reachability,
    ) -> Self {
        EventConnections {
            manager,
            reachability,
        }
    }
}

/// A connection of an [`EventPool`]; usable as a [`Client`] for any query.
pub struct EventConnection {
    client: Client,
    /// [`INSERT_SQL`] and [`triage::RECORD_SQL`], once prepared on this
    /// connection.
    statements: Option<(Statement, Statement)>,
}

impl EventConnection {
    async fn statements(&mut self) -> Result<(Statement, Statement), PgError> {
        if let Some(statements) = &self.statements {
            return Ok(statements.clone());
        }
        let insert = self.client.prepare(INSERT_SQL).await?;
        let record = self.client.prepare(triage::RECORD_SQL).await?;
        Ok(self.statements.insert((insert, record)).clone())
    }
}

impl Deref for EventConnection {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for EventConnection {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl bb8::ManageConnection for EventConnections {
    type Connection = EventConnection;
    type Error = PgError;

    async fn connect(&self) -> Result<EventConnection, PgError> {
        let client = match self.manager.connect().await {
            Ok(client) => client,
            Err(e) => {
                self.reachability.lost(&e);
                return Err(e);
            }
        };
        self.reachability.found();
        Ok(EventConnection {
            client,
            statements: None,
        })
    }

    async fn is_valid(&self, conn: &mut EventConnection) -> Result<(), PgError> {
        self.manager.is_valid(&mut conn.client).await
    }

    fn has_broken(&self, conn: &mut EventConnection) -> bool {
        conn.client.is_closed()
    }
}

/// Stores a batch of events, of one project or several, in one transaction,
/// grouped into
/// their issues: all of it commits or none does, so a failed batch can be
/// retried whole, and an event already stored is skipped (and not counted
/// again). Returns the events newly stored.
///
/// A row whose day has no partition yet (the clock passed the pre-created
/// range, or the partition manager has not run) is repaired here: the
/// batch's days get partitions and the batch goes again, so no event is
/// lost to a missing partition.
pub async fn insert_batch(pool: &EventPool, events: &[Event]) -> Result<u64> {
    insert_piece(pool, events)
        .await
        .map_err(Failure::into_error)
}

/// Why [`insert_piece`] failed, told apart while PostgreSQL's SQLSTATE is
/// still at hand: converting to [`Error`] maps some codes a batch can be
/// refused with (a unique violation, say) to variants that no longer carry
/// it.
enum Failure {
    /// Refused for the values sent (see [`refused_for_data`]).
    Data(Error),
    /// Anything else: the connection, the pool, the server's state.
    Other(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Failure::Data(e) | Failure::Other(e) => e,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Other(e)
    }
}

impl From<bb8::RunError<PgError>> for Failure {
    fn from(e: bb8::RunError<PgError>) -> Self {
        Failure::Other(e.into())
    }
}

async fn insert_piece(pool: &EventPool, events: &[Event]) -> Result<u64, Failure> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut client = pool.get().await?;
    let mut partitions_ensured = false;
    loop {
        let err = match insert(&mut client, events).await {
            Ok(rows) => return Ok(rows),
            Err(err) => err,
        };
        match err.code() {
            // "No partition for row" is a check violation. Matching the code,
            // not the message (which follows the server's language): creating
            // existing partitions is a no-op, and a second failure surfaces.
            Some(&SqlState::CHECK_VIOLATION) if !partitions_ensured => {
                let days: BTreeSet<_> = events
                    .iter()
                    .map(|e| e.received_at().date_naive())
                    .collect();
                log::info!(
                    "creating event partitions for {} day(s) on demand",
                    days.len()
                );
                partitions::ensure_days(&mut client, days).await?;
                partitions_ensured = true;
            }
            Some(code) if refused_for_data(code) => return Err(Failure::Data(err.into())),
            _ => return Err(Failure::Other(err.into())),
        }
    }
}

/// What [`store_batch`] did with a batch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Events PostgreSQL refused for their data, by position in the batch
    /// (an id alone is ambiguous in a batch of several projects), in
    /// order; the rest of the batch is stored.
    pub refused: Vec<usize>,
}

/// Stores a batch like [`insert_batch`], except that a batch refused for
/// its data (see [`refused_for_data`]) is split in halves, again and again,
/// until the events PostgreSQL refuses are found: the others are stored
/// and the refused ones named in the reply. A failure of any other kind
/// (the connection, a lock, a missing table) fails the whole call, to be
/// retried whole; pieces stored before it are then skipped as already
/// stored, since each piece commits on its own and `event_ids` makes
/// sending an event again harmless.
pub async fn store_batch(pool: &EventPool, events: &[Event]) -> Result<Stored> {
    let mut refused = Vec::new();
    // Each piece with the position of its first event.
    let mut pieces = vec![(0, events)];
    while let Some((at, piece)) = pieces.pop() {
        match insert_piece(pool, piece).await {
            Ok(_) => {}
            Err(Failure::Data(e)) => match piece {
                [one] => {
                    log::warn!("PostgreSQL refused event {}: {}", one.id(), e.report());
                    refused.push(at);
                }
                _ => {
                    let half = piece.len() / 2;
                    let (left, right) = piece.split_at(half);
                    pieces.extend([(at + half, right), (at, left)]);
                }
            },
            Err(Failure::Other(e)) => return Err(e),
        }
    }
    Ok(Stored { refused })
}

/// Whether PostgreSQL refused a statement for the values in it rather than
/// for the state of the server or the connection: a data exception (class
/// 22), an integrity constraint (23), a program limit such as a row too
/// large to index (54), or an exception raised by a trigger or function
/// (P0). Retrying those cannot succeed; splitting the batch finds them. The
/// one foreign key the statement can break is `issues.project_id`: events
/// of a project deleted meanwhile, which splitting sets apart from the
/// other projects' events of a batch.
///
/// Everything else is retried whole, as are failures with no SQLSTATE (a
/// broken connection, a pool timeout): the connection (08), an
/// administrator's shutdown (57P01-57P03), exhausted resources (53), a
/// serialization failure or deadlock (40), and a missing table or
/// privilege (42), which is the operator's fault, not the events'.
pub fn refused_for_data(code: &SqlState) -> bool {
    ["22", "23", "54", "P0"]
        .iter()
        .any(|class| code.code().starts_with(class))
}

async fn insert(conn: &mut EventConnection, events: &[Event]) -> Result<u64, PgError> {
    fn column<'a, T>(events: &'a [Event], f: impl Fn(&'a Event) -> T) -> Vec<T> {
        events.iter().map(f).collect()
    }
    // One new id per project and fingerprint, for the issues this batch may
    // create.
    let issues: BTreeMap<(Uuid, &str), Uuid> = events
        .iter()
        .map(|e| ((e.project_id(), e.fingerprint()), crate::domain::new_id()))
        .collect();
    let mut issue_ids = Vec::with_capacity(issues.len());
    let mut issue_projects = Vec::with_capacity(issues.len());
    let mut issue_fingerprints = Vec::with_capacity(issues.len());
    for ((project_id, fingerprint), id) in issues {
        issue_ids.push(id);
        issue_projects.push(project_id);
        issue_fingerprints.push(fingerprint);
    }
    let (insert, record) = conn.statements().await?;
    // The events and their issues, then the triage aggregates over the
    // events that were new, commit together.
    let tx = conn.client.transaction().await?;
    let stored = tx
        .query(
            &insert,
            &[
                &column(events, Event::project_id),
                &column(events, Event::id),
                &column(events, |e| e.level().as_str()),
                &column(events, Event::message),
                &column(events, Event::fingerprint),
                &column(events, Event::title),
                &column(events, Event::culprit),
                &column(events, Event::exception),
                &column(events, Event::stacktrace),
                &column(events, Event::breadcrumbs),
                &column(events, Event::tags),
                &column(events, Event::extra),
                &column(events, Event::user),
                &column(events, Event::contexts),
                &column(events, Event::request),
                &column(events, Event::other),
                &column(events, Event::sdk_name),
                &column(events, Event::sdk_version),
                &column(events, Event::platform),
                &column(events, Event::release),
                &column(events, Event::environment),
                &column(events, Event::transaction),
                &column(events, Event::occurred_at),
                &column(events, Event::received_at),
                &issue_ids,
                &issue_projects,
                &issue_fingerprints,
            ],
        )
        .await?;
    let by_id: HashMap<(Uuid, Uuid), &Event> = events
        .iter()
        .map(|e| ((e.project_id(), e.id()), e))
        .collect();
    let new: Vec<(Uuid, &Event)> = stored
        .iter()
        .filter_map(|row| {
            let event = by_id.get(&(row.get(0), row.get(1)))?;
            Some((row.get(2), *event))
        })
        .collect();
    triage::record_batch(&tx, &record, &new).await?;
    tx.commit().await?;
    Ok(stored.len() as u64)
}

/// Already-encoded JSON goes out as it is: JSONB's binary format is a
/// version byte followed by the text.
impl ToSql for RawJson {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.get().as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_the_values_sent_split_a_batch() {
        let split = [
            "22001", // string_data_right_truncation
            "22021", // character_not_in_repertoire (a NUL byte in text)
            "22P02", // invalid_text_representation
            "22P05", // untranslatable_character (\u0000 in jsonb)
            "23502", // not_null_violation
            "23503", // foreign_key_violation: the event's project is gone
            "23505", // unique_violation: mapped to Error::AlreadyExists
            "23514", // check_violation (once partitions were ensured)
            "54000", // program_limit_exceeded (index row too large)
            "P0001", // raise_exception (a trigger)
        ];
        let retried = [
            "08000", "08003", "08006", // the connection
            "57P01", "57P02", "57P03", // an administrator's shutdown
            "53100", "53200", "53300", // disk full, out of memory, connections
            "40001", "40P01", // serialization failure, deadlock
            "42501", "42P01", // insufficient privilege, undefined table
            "55P03", "57014", "XX000", // lock, statement timeout, internal
        ];
        for code in split {
            assert!(refused_for_data(&SqlState::from_code(code)), "{code}");
        }
        for code in retried {
            assert!(!refused_for_data(&SqlState::from_code(code)), "{code}");
        }
    }
}
