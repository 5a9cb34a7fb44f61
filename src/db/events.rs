//! `events`, `event_ids` and `issues`: a batch of events, of one project or
//! of many, is stored and grouped into its issues in one transaction:
//! two statements and a third that aggregates the new events for triage
//! (see [`super::triage::record_batch`]).
//!
//! The first (`GROUP_SQL`) records the batch's event ids in `event_ids`,
//! skipping those already there, so an event is stored once however often
//! it arrives: a batch retried after its commit's reply was lost, or
//! replayed from the spool whenever that is (its copy has the same time of
//! receipt); an SDK's retry received the same UTC day, or within
//! [`RETRY_WINDOW`] across midnight (see `GROUP_SQL`). Then it creates
//! or updates the issues of the events that are new, counting exactly
//! those. The second is a binary
//! `COPY` of the new events, each a few columns and its compressed body,
//! into `events`. Concurrent batches meet on the unique keys of
//! `event_ids` and `issues`, where PostgreSQL makes one wait for the
//! other, so counts stay exact with several writers, in one process or
//! many.
//!
//! Why two statements: PostgreSQL takes rows fastest through binary COPY,
//! which cannot join, so the new events' issue ids come back from the
//! first statement to go into the second. What a row costs PostgreSQL is
//! then a few fixed-size columns, a blob it stores as it is, and two index
//! entries (`events_pkey`, for an event by id, and
//! `events_issue_received_idx`, for an issue's events by time).

use super::{alerts, partitions, triage};
use crate::domain::{Event, RawJson};
use crate::error::{Error, Result};
use bb8_postgres::PostgresConnectionManager;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::pin_mut;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Error as PgError, NoTls, Statement};
use uuid::Uuid;

/// How far apart two copies of an event received on either side of a UTC
/// midnight may be and still be recognised as one (copies received the
/// same UTC day always are). Sentry's own window for telling a repeated
/// event id is an hour. An event received this close to the end of its day
/// costs a second row in `event_ids` (see `GROUP_SQL`).
pub const RETRY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// The day after `received_at`'s (UTC) when it is within [`RETRY_WINDOW`]
/// of that day's end: its id is recorded on that day too.
pub fn next_day_recorded(received_at: DateTime<Utc>) -> Option<NaiveDate> {
    let day = received_at.date_naive();
    let later = received_at.checked_add_signed(RETRY_WINDOW)?.date_naive();
    (later != day).then_some(later)
}

/// Records a batch's event ids and groups its new events into issues.
///
/// The arrays `$1..$7` hold one element per event (project, id, received
/// at, fingerprint, title, culprit, level), `$8..$10` one new issue id per
/// project and fingerprint in the batch (used only for an issue that does
/// not exist yet), `$11` one per event: the next day its id is recorded
/// on too (see [`next_day_recorded`]), or NULL.
///
/// `event_ids` is partitioned by UTC day of receipt, so that its rows go
/// with their day's events when retention drops the day, and its key must
/// hold the partition key: `(project_id, id, day)`. Two copies received
/// the same day meet on it. So that copies received on either side of
/// midnight meet too, an event received within [`RETRY_WINDOW`] of its
/// day's end is recorded on the next day as well, where a copy received
/// after midnight lands on it (whichever is written first). The unique
/// key decides, as it does for any two copies: a batch waits for another
/// writing the same key to commit or roll back, in one process or many,
/// with no lock of Mesher's own. An event is new only when every row it
/// records is new; a copy whose next-day row alone went in (it met an
/// earlier copy on its own day) leaves that row behind, saying truly that
/// the id was seen then.
///
/// Rows are taken in key order so that two batches sharing
/// keys lock them in the same order and cannot deadlock, and an event twice
/// in one batch is taken once (its earliest receipt). An issue takes its
/// title, culprit and level from its latest event. Its status is not
/// touched here: whether an event reopens a resolved issue (a regression)
/// or brings back an archived one depends on releases and users, and is
/// decided later in the same transaction by [`super::triage::record_batch`],
/// while this statement's upsert holds the issue's row lock.
///
/// It returns a row per issue of the new events (`kind` 'new' for an issue
/// it created, else 'issue': project, issue id, fingerprint), and a row per
/// event of the batch that is not new: `kind` 'skipped' (project, event id)
/// when its own day's row was there already, `kind` 'duplicate' when only
/// its next day's was. A skipped event was stored by an earlier attempt at
/// the same batch (a commit whose answer was lost, a spooled batch that had
/// committed: the same event id received at the same moment, see
/// [`EARLIER_SQL`]), or else received before, separately: a duplicate.
const GROUP_SQL: &str = "
WITH batch AS (
    SELECT DISTINCT ON (project_id, id) *, (received_at AT TIME ZONE 'UTC')::date AS day
    FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
        $7::text[], $11::date[])
    AS b(project_id, id, received_at, fingerprint, title, culprit, level, next_day)
    ORDER BY project_id, id, received_at
),
recorded AS (
    INSERT INTO event_ids (project_id, id, received_at, day)
    SELECT b.project_id, b.id, b.received_at, r.day
    FROM batch b, LATERAL (VALUES (b.day), (b.next_day)) AS r(day)
    WHERE r.day IS NOT NULL
    ORDER BY b.project_id, b.id, r.day
    ON CONFLICT DO NOTHING
    RETURNING project_id, id, day
),
-- Whether each event is new is decided here, once (the EXISTS is hashed):
-- under the generic plans the events pool forces, a CTE's size is
-- unknown, and joining two CTEs of the batch for the duplicates was
-- planned as a nested loop, quadratic in the batch (1 s for 5,000 events).
own AS (
    SELECT b.*, b.next_day IS NULL OR EXISTS (SELECT 1 FROM recorded n
        WHERE n.project_id = b.project_id AND n.id = b.id AND n.day = b.next_day) AS new
    FROM batch b JOIN recorded r USING (project_id, id, day)
),
new_events AS (
    SELECT * FROM own WHERE new
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
    JOIN unnest($8::uuid[], $9::uuid[], $10::text[]) AS n(id, project_id, fingerprint)
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
    RETURNING i.id, i.project_id, i.fingerprint, i.xmax = 0 AS created
)
SELECT CASE WHEN created THEN 'new' ELSE 'issue' END AS kind, project_id, id, fingerprint
FROM grouped
UNION ALL
SELECT 'skipped', b.project_id, b.id, NULL FROM batch b
WHERE NOT EXISTS (SELECT 1 FROM own o WHERE o.project_id = b.project_id AND o.id = b.id)
UNION ALL
SELECT 'duplicate', project_id, id, NULL FROM own WHERE NOT new";

/// Of events the batch skipped (`$1..$4`: project, id, received at, UTC
/// day of receipt), those an earlier attempt at the same batch stored, per
/// project: their own day's row has the same time of receipt. A statement
/// of its own, run only when some were skipped: its snapshot sees what a
/// concurrent attempt committed while [`GROUP_SQL`] waited for it.
const EARLIER_SQL: &str = "
SELECT project_id, count(*) FROM event_ids
JOIN unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::date[])
    AS s(project_id, id, received_at, day)
    USING (project_id, id, received_at, day)
GROUP BY project_id";

/// The columns the COPY fills, in order, and their types.
const COPY_SQL: &str = "COPY events (project_id, id, received_at, issue_id, level, occurred_at, \
     release, environment, body) FROM STDIN (FORMAT binary)";

const COPY_TYPES: [Type; 9] = [
    Type::UUID,
    Type::UUID,
    Type::TIMESTAMPTZ,
    Type::UUID,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
];

/// A pool of connections for writing events, made by
/// [`super::event_pool`]; cheap to clone.
pub type EventPool = bb8::Pool<EventConnections>;

/// Opens the connections of an [`EventPool`]. Each prepares `GROUP_SQL`
/// once, on its first batch: preparing it per batch costs a round trip
/// that small batches feel, and preparing it on connecting would make an
/// unusable `events` table (renamed, say) fail the connection rather than
/// the batch, which the writer retries.
#[derive(Debug)]
pub struct EventConnections {
    manager: PostgresConnectionManager<NoTls>,
    /// Told whether each attempt to connect succeeded.
    reachability: super::Reachability,
    /// Handed to each connection (see [`EventConnection`]).
    partition_lock_timeout: Duration,
    /// The alert rules its batches fire, shared by its connections.
    rules: Arc<alerts::RuleCache>,
}

impl EventConnections {
    pub(super) fn new(
        manager: PostgresConnectionManager<NoTls>,
        reachability: super::Reachability,
        partition_lock_timeout: Duration,
    ) -> Self {
        EventConnections {
            manager,
            reachability,
            partition_lock_timeout,
            rules: Arc::default(),
        }
    }
}

/// A connection of an [`EventPool`]; usable as a [`Client`] for any query.
pub struct EventConnection {
    client: Client,
    /// `GROUP_SQL` and [`super::triage::RECORD_SQL`], once prepared on
    /// this connection.
    statements: Option<(Statement, Statement)>,
    /// How long creating a missing partition on demand waits for a lock:
    /// the configured [`crate::config::PartitionConfig::lock_timeout`],
    /// as the partition manager uses it.
    partition_lock_timeout: Duration,
    /// The pool's alert rules (see [`alerts::RuleCache`]).
    rules: Arc<alerts::RuleCache>,
}

impl EventConnection {
    async fn statements(&mut self) -> Result<(Statement, Statement), PgError> {
        if let Some(statements) = &self.statements {
            return Ok(statements.clone());
        }
        let group = self.client.prepare(GROUP_SQL).await?;
        let record = self.client.prepare(triage::RECORD_SQL).await?;
        Ok(self.statements.insert((group, record)).clone())
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
            partition_lock_timeout: self.partition_lock_timeout,
            rules: Arc::clone(&self.rules),
        })
    }

    async fn is_valid(&self, conn: &mut EventConnection) -> Result<(), PgError> {
        self.manager.is_valid(&mut conn.client).await
    }

    fn has_broken(&self, conn: &mut EventConnection) -> bool {
        conn.client.is_closed()
    }
}

/// A batch's events that are stored, by project: inserted by the
/// statement, or by an earlier attempt at the same batch (the same event
/// id received at the same moment). A project's events that are not counted here were
/// received before, separately: duplicates.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inserted(HashMap<Uuid, u64>, alerts::Fired);

impl Inserted {
    /// The events of `project_id` stored.
    pub fn of(&self, project_id: Uuid) -> u64 {
        self.0.get(&project_id).copied().unwrap_or(0)
    }

    /// The events stored in all.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The alerts the batch fired (see [`alerts::record_batch`]).
    pub fn fired(&self) -> &alerts::Fired {
        &self.1
    }
}

/// Stores a batch of events, of one project or several, in one statement,
/// grouped into their issues: all of it commits or none does, so a failed
/// batch can be retried whole, and an event already stored is skipped (and
/// not counted again). Returns the events stored per project (see
/// [`Inserted`]).
///
/// A row whose day has no partition yet (the clock passed the pre-created
/// range, the partition manager has not run, or a spooled batch of a day
/// an upgrade made no `event_ids` partition for) is repaired here: the
/// batch's days get partitions and the batch goes again, so no event is
/// lost to a missing partition.
pub async fn insert_batch(pool: &EventPool, events: &[Event]) -> Result<Inserted> {
    insert_batches(pool, &[events]).await
}

/// Stores several batches (of different projects, say) as one statement,
/// like [`insert_batch`].
pub async fn insert_batches(pool: &EventPool, batches: &[&[Event]]) -> Result<Inserted> {
    insert_piece(pool, batches)
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

async fn insert_piece(pool: &EventPool, batches: &[&[Event]]) -> Result<Inserted, Failure> {
    let events = || batches.iter().flat_map(|b| b.iter());
    if events().next().is_none() {
        return Ok(Inserted::default());
    }
    let mut client = pool.get().await?;
    let mut partitions_ensured = false;
    loop {
        let err = match insert(&mut client, batches).await {
            Ok(inserted) => return Ok(inserted),
            Err(err) => err,
        };
        match err.code() {
            // "No partition for row" is a check violation. Matching the code,
            // not the message (which follows the server's language): creating
            // existing partitions is a no-op, and a second failure surfaces.
            Some(&SqlState::CHECK_VIOLATION) if !partitions_ensured => {
                // Its days, and the next days its ids are recorded on.
                let days: BTreeSet<_> = events()
                    .flat_map(|e| {
                        let at = e.received_at();
                        [Some(at.date_naive()), next_day_recorded(at)]
                    })
                    .flatten()
                    .collect();
                log::info!(
                    "creating event partitions for {} day(s) on demand",
                    days.len()
                );
                let lock_timeout = client.partition_lock_timeout;
                partitions::ensure_days(&mut client, days, lock_timeout).await?;
                partitions_ensured = true;
            }
            Some(code) if refused_for_data(code) => return Err(Failure::Data(err.into())),
            _ => return Err(Failure::Other(err.into())),
        }
    }
}

/// What [`store_batch`] did with a batch of one project: every event is
/// in exactly one of `stored`, `duplicate` and `refused`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    /// Events stored (see [`Inserted`]).
    pub stored: u64,
    /// Events skipped because the project had stored their id from an
    /// earlier receipt.
    pub duplicate: u64,
    /// Events PostgreSQL refused for their data, by position in the batch,
    /// in order; the rest of the batch is stored.
    pub refused: Vec<usize>,
    /// The alerts the stored events fired.
    pub fired: alerts::Fired,
}

/// Stores one project's batch like [`insert_batch`], except that a batch
/// refused for its data (see [`refused_for_data`]) is split in halves,
/// again and again, until the events PostgreSQL refuses are found: the
/// others are stored and the refused ones named in the reply. A failure of
/// any other kind (the connection, a lock, a missing table) fails the whole
/// call, to be retried whole; pieces stored before it are then skipped as
/// already stored, since each piece commits on its own and `event_ids`
/// makes sending an event again harmless (the retry counts them as stored,
/// once: the failed call counted nothing).
pub async fn store_batch(pool: &EventPool, events: &[Event]) -> Result<Stored> {
    let mut refused = Vec::new();
    let mut stored = 0;
    let mut fired = alerts::Fired::default();
    // Each piece with the position of its first event.
    let mut pieces = vec![(0, events)];
    while let Some((at, piece)) = pieces.pop() {
        match insert_piece(pool, &[piece]).await {
            Ok(inserted) => {
                stored += inserted.total();
                fired.merge(inserted.fired());
            }
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
    refused.sort_unstable();
    let duplicate = (events.len() - refused.len()) as u64 - stored;
    Ok(Stored {
        stored,
        duplicate,
        refused,
        fired,
    })
}

/// Which of `ids` the project has stored already. An earlier run's events,
/// read back from its acknowledgement log or spool, may have been stored
/// by that run; those are duplicates to this one, which did not add their
/// rows. Asked once, before this run first sends them: after that, an
/// event found stored may be this run's own attempt whose answer was lost
/// (see [`store_batch`]).
pub async fn stored_ids(pool: &EventPool, project_id: Uuid, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id FROM event_ids WHERE project_id = $1 AND id = ANY($2)",
            &[&project_id, &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
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

/// One attempt at storing `batches` (see the module documentation).
async fn insert(conn: &mut EventConnection, batches: &[&[Event]]) -> Result<Inserted, PgError> {
    fn column<'a, T>(batches: &[&'a [Event]], f: impl Fn(&'a Event) -> T) -> Vec<T> {
        batches.iter().flat_map(|b| b.iter()).map(f).collect()
    }
    let events = || batches.iter().flat_map(|b| b.iter());
    // One new id per project and fingerprint, for the issues this batch may
    // create.
    let proposed: BTreeMap<(Uuid, &str), Uuid> = events()
        .map(|e| ((e.project_id(), e.fingerprint()), crate::domain::new_id()))
        .collect();
    let mut issue_ids = Vec::with_capacity(proposed.len());
    let mut issue_projects = Vec::with_capacity(proposed.len());
    let mut issue_fingerprints = Vec::with_capacity(proposed.len());
    for ((project_id, fingerprint), id) in &proposed {
        issue_ids.push(*id);
        issue_projects.push(*project_id);
        issue_fingerprints.push(*fingerprint);
    }
    let (group, record) = conn.statements().await?;
    let rule_cache = Arc::clone(&conn.rules);
    let tx = conn.client.transaction().await?;
    // The rules' version is read beside the first statement, pipelined:
    // no round trip of its own.
    let (projects, ids, received) = (
        column(batches, Event::project_id),
        column(batches, Event::id),
        column(batches, Event::received_at),
    );
    let (fingerprints, titles, culprits, levels) = (
        column(batches, Event::fingerprint),
        column(batches, Event::title),
        column(batches, Event::culprit),
        column(batches, |e| e.level().as_str()),
    );
    let next_days = column(batches, |e| next_day_recorded(e.received_at()));
    let params: [&(dyn ToSql + Sync); 11] = [
        &projects,
        &ids,
        &received,
        &fingerprints,
        &titles,
        &culprits,
        &levels,
        &issue_ids,
        &issue_projects,
        &issue_fingerprints,
        &next_days,
    ];
    let (rows, rules_version) =
        futures_util::try_join!(tx.query(&group, &params), alerts::version(&tx))?;
    let mut issues: HashMap<(Uuid, &str), Uuid> = HashMap::with_capacity(proposed.len());
    // Events not new: all of them are left out of the COPY; those whose
    // own day's row was there already may be an earlier attempt's.
    let mut skipped: HashSet<(Uuid, Uuid)> = HashSet::new();
    let mut earlier: HashSet<(Uuid, Uuid)> = HashSet::new();
    let mut created: HashSet<Uuid> = HashSet::new();
    for row in &rows {
        let (project_id, id): (Uuid, Uuid) = (row.get(1), row.get(2));
        match row.get::<_, &str>(0) {
            kind @ ("new" | "issue") => {
                if kind == "new" {
                    created.insert(id);
                }
                // The key of `proposed` that this row's fingerprint names.
                let fingerprint: &str = row.get(3);
                if let Some(((_, key), _)) = proposed.get_key_value(&(project_id, fingerprint)) {
                    issues.insert((project_id, key), id);
                }
            }
            "skipped" => {
                skipped.insert((project_id, id));
                earlier.insert((project_id, id));
            }
            _ => {
                skipped.insert((project_id, id));
            }
        }
    }
    let mut stored: HashMap<Uuid, u64> = HashMap::new();
    if !earlier.is_empty() {
        let (mut projects, mut ids, mut times, mut days) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for event in events().filter(|e| earlier.contains(&(e.project_id(), e.id()))) {
            projects.push(event.project_id());
            ids.push(event.id());
            times.push(event.received_at());
            days.push(event.received_at().date_naive());
        }
        for row in tx
            .query(EARLIER_SQL, &[&projects, &ids, &times, &days])
            .await?
        {
            stored.insert(row.get(0), row.get::<_, i64>(1) as u64);
        }
    }

    // The new events, each once (its earliest receipt, as GROUP_SQL took).
    let mut new: HashMap<(Uuid, Uuid), &Event> = HashMap::new();
    for event in events() {
        let key = (event.project_id(), event.id());
        if skipped.contains(&key) {
            continue;
        }
        new.entry(key)
            .and_modify(|kept| {
                if event.received_at() < kept.received_at() {
                    *kept = event;
                }
            })
            .or_insert(event);
    }
    let sink = tx.copy_in(COPY_SQL).await?;
    let writer = BinaryCopyInWriter::new(sink, &COPY_TYPES);
    pin_mut!(writer);
    let mut grouped: Vec<(Uuid, &Event)> = Vec::with_capacity(new.len());
    for event in new.into_values() {
        let issue = issues.get(&(event.project_id(), event.fingerprint()));
        if let Some(&issue) = issue {
            grouped.push((issue, event));
        }
        writer
            .as_mut()
            .write(&[
                &event.project_id(),
                &event.id(),
                &event.received_at(),
                &issue,
                &event.level().as_str(),
                &event.occurred_at(),
                &event.release(),
                &event.environment(),
                &event.body().as_bytes(),
            ])
            .await?;
        *stored.entry(event.project_id()).or_default() += 1;
    }
    writer.finish().await?;
    let activity = triage::record_batch(&tx, &record, &grouped).await?;
    let rules = rule_cache.current(&tx, rules_version).await?;
    let changes = alerts::changes(&created, &activity);
    let fired = alerts::record_batch(&tx, &rules, &grouped, &changes).await?;
    tx.commit().await?;
    Ok(Inserted(stored, fired))
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
    fn ids_received_within_the_window_of_midnight_are_recorded_on_the_next_day_too() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let day = |s: &str| Some(s.parse::<NaiveDate>().unwrap());
        for (received, next) in [
            ("2024-02-28T12:00:00Z", None),
            ("2024-02-28T22:59:59.999999Z", None),
            ("2024-02-28T23:00:00Z", day("2024-02-29")),
            ("2024-02-29T23:59:59.999999Z", day("2024-03-01")),
            ("2024-12-31T23:30:00Z", day("2025-01-01")),
            ("2025-01-01T00:00:00Z", None),
        ] {
            assert_eq!(next_day_recorded(at(received)), next, "{received}");
        }
    }

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
