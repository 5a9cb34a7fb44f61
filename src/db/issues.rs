//! `issues` and the events behind them, as the dashboard reads and triages
//! them. Grouping (creating issues and counting their events) is the
//! ingest path's; this module never inserts.
//!
//! Every function takes the project and finds rows only within it: an
//! issue or event of another project is `NotFound`, exactly like one that
//! does not exist.
//!
//! # Pagination
//!
//! Lists are keyset-paginated, never by OFFSET: a page asks for the rows
//! strictly after the last row of the page before, in the list's order
//! (`sort key DESC, id DESC`). `first_seen` has an index in that order;
//! `last_seen` and `event_count`, which every stored event changes, have
//! none, so that ingestion's issue updates stay HOT (see `schema.sql`),
//! and a page sorted by them sorts the project's issues of its status.
//! What a walk over the pages guarantees while events keep arriving:
//!
//! - a row whose sort key did not change during the walk is returned
//!   exactly once, in order among the other such rows;
//! - sort keys only grow (`last_seen` and `event_count` as events arrive;
//!   `first_seen` and an event's `received_at` never change), so a row that
//!   changed moves towards the front: if it was already returned it is not
//!   returned again; if it was not, it may jump over the cursor and be left
//!   out of this walk. It is then at the front of a fresh first page, which
//!   is where a reader looking for news looks;
//! - a row whose status changes during a walk filtered by status appears in
//!   or drops out of the walk according to its status when its page is read.

use super::Pool;
use crate::domain::search::{Assignee, Condition};
use crate::domain::{
    Cursor, DayWindow, EventBody, EventNeighbours, EventPage, EventParts, Issue, IssueActivity,
    IssueCounts, IssueDetail, IssuePage, IssueSort, RawJson, Search, Severity, StoredEvent,
    contains_pattern, grouping, read_payload,
};
use crate::error::{Error, Result};
use chrono::NaiveDate;
use std::collections::HashMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Row, Transaction};
use uuid::Uuid;

/// An issue's columns, with its first and last release from its tag
/// counts (a few rows of `issue_tag_values` per issue). The table must be
/// named `issues` in the statement.
pub(crate) const ISSUE_COLUMNS: &str = "id, project_id, fingerprint, title, culprit, level, status, \
     event_count, first_seen, last_seen, resolved_at, regressed_at, assigned_to, user_count, \
     resolved_in_release, resolved_after_release, archived_until, archived_until_events, \
     archived_until_users, \
     (SELECT value FROM issue_tag_values t WHERE t.project_id = issues.project_id \
          AND t.issue_id = issues.id AND t.key = 'release' AND t.value <> '' \
          ORDER BY first_seen, value LIMIT 1) AS first_release, \
     (SELECT value FROM issue_tag_values t WHERE t.project_id = issues.project_id \
          AND t.issue_id = issues.id AND t.key = 'release' AND t.value <> '' \
          ORDER BY last_seen DESC, value LIMIT 1) AS last_release";

/// An event's columns: `body` for the rows written since events are
/// stored as one compressed body, the JSON columns for older rows.
const EVENT_COLUMNS: &str = "id, project_id, issue_id, level, message, fingerprint, exception, \
     stacktrace, breadcrumbs, tags, extra, user_context, sdk_name, sdk_version, received_at, \
     occurred_at, platform, release, environment, \"transaction\", contexts, request, other, body";

/// A row that breaks the schema's rules (a level no writer would store) is
/// a bug or a corruption, not bad input: log it with the row, answer
/// `Internal`, and keep serving.
fn corrupt(table: &str, id: Uuid, column: &str, value: &str) -> Error {
    log::error!("corrupt row in {table}: {column} of {id} is {value:?}");
    Error::internal(format!("corrupt {column} in {table} row {id}"))
}

pub(crate) fn issue_from_row(row: &Row) -> Result<Issue> {
    let id: Uuid = row.get("id");
    let level: &str = row.get("level");
    let status: &str = row.get("status");
    Ok(Issue {
        id,
        project_id: row.get("project_id"),
        fingerprint: row.get("fingerprint"),
        title: row.get("title"),
        culprit: row.get("culprit"),
        level: level
            .parse()
            .map_err(|_| corrupt("issues", id, "level", level))?,
        status: status
            .parse()
            .map_err(|_| corrupt("issues", id, "status", status))?,
        event_count: row.get("event_count"),
        first_seen: row.get("first_seen"),
        last_seen: row.get("last_seen"),
        resolved_at: row.get("resolved_at"),
        regressed_at: row.get("regressed_at"),
        assigned_to: row.get("assigned_to"),
        users: row.get("user_count"),
        first_release: row.get("first_release"),
        last_release: row.get("last_release"),
        resolved_in_release: row.get("resolved_in_release"),
        resolved_after_release: row.get("resolved_after_release"),
        archived_until: row.get("archived_until"),
        archived_until_events: row.get("archived_until_events"),
        archived_until_users: row.get("archived_until_users"),
    })
}

fn event_from_row(row: &Row) -> Result<StoredEvent> {
    let id: Uuid = row.get("id");
    let level: &str = row.get("level");
    let level = level
        .parse()
        .map_err(|_| corrupt("events", id, "level", level))?;
    match row.get::<_, Option<Vec<u8>>>("body") {
        Some(body) => event_from_body(row, id, level, EventBody::from_stored(body)),
        None => Ok(StoredEvent {
            id,
            project_id: row.get("project_id"),
            issue_id: row.get("issue_id"),
            level,
            message: row.get::<_, Option<_>>("message").unwrap_or_default(),
            fingerprint: row.get::<_, Option<_>>("fingerprint").unwrap_or_default(),
            exception: row.get("exception"),
            stacktrace: row.get("stacktrace"),
            breadcrumbs: row.get("breadcrumbs"),
            // NOT NULL in the rows of releases that filled them.
            tags: row.get::<_, Option<_>>("tags").unwrap_or_else(empty_object),
            extra: row
                .get::<_, Option<_>>("extra")
                .unwrap_or_else(empty_object),
            user_context: row.get("user_context"),
            sdk_name: row.get("sdk_name"),
            sdk_version: row.get("sdk_version"),
            received_at: row.get("received_at"),
            occurred_at: row.get("occurred_at"),
            platform: row.get("platform"),
            release: row.get("release"),
            environment: row.get("environment"),
            transaction: row.get("transaction"),
            contexts: row.get("contexts"),
            request: row.get("request"),
            other: row.get("other"),
        }),
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// An event stored as one body: its parts built from the payload the body
/// holds, as when it was first received.
fn event_from_body(row: &Row, id: Uuid, level: Severity, body: EventBody) -> Result<StoredEvent> {
    let payload = read_payload(&body).inspect_err(|e| {
        log::error!(
            "corrupt row in events: the body of {id} does not read: {}",
            e.report()
        )
    })?;
    let parts = EventParts::of(&payload)?;
    let value = |raw: &RawJson| -> Result<serde_json::Value> {
        raw.decode()
            .map_err(|e| Error::internal_from("an event part", e))
    };
    let some = |raw: Option<&RawJson>| raw.map(value).transpose();
    Ok(StoredEvent {
        id,
        project_id: row.get("project_id"),
        issue_id: row.get("issue_id"),
        level,
        message: parts.message().to_owned(),
        fingerprint: grouping::fingerprint(&payload),
        exception: some(parts.exception())?,
        stacktrace: some(parts.stacktrace())?,
        breadcrumbs: some(parts.breadcrumbs())?,
        tags: value(parts.tags())?,
        extra: value(parts.extra())?,
        user_context: some(parts.user())?,
        sdk_name: parts.sdk_name().map(str::to_owned),
        sdk_version: parts.sdk_version().map(str::to_owned),
        received_at: row.get("received_at"),
        occurred_at: row.get("occurred_at"),
        platform: parts.platform().map(str::to_owned),
        release: row.get("release"),
        environment: row.get("environment"),
        transaction: parts.transaction().map(str::to_owned),
        contexts: some(parts.contexts())?,
        request: some(parts.request())?,
        other: some(parts.other())?,
    })
}

const ISSUE_NOT_FOUND: Error = Error::NotFound { entity: "issue" };

/// Parameters of a statement built clause by clause: each value bound is
/// named by its placeholder, so no value is ever formatted into SQL.
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn as_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A page of the project's issues matching `search`, in `sort` order,
/// after `after` (from the previous page's `next`), at most `limit` rows;
/// `me` is who `assigned:me` means. `NotFound { "project" }` for an
/// unknown project rather than an ambiguous empty page. See the module's
/// notes for what a walk over the pages guarantees.
///
/// Every filter reads the issue's row or the ingest-time aggregates
/// (`issue_tag_values`), never the events.
pub async fn list(
    pool: &Pool,
    project_id: Uuid,
    search: &Search,
    me: Option<Uuid>,
    sort: IssueSort,
    after: Option<Cursor>,
    limit: u32,
) -> Result<IssuePage> {
    let client = pool.get().await?;
    if !super::exists(&client, "projects", project_id).await? {
        return Err(Error::NotFound { entity: "project" });
    }

    let mut params = Params::default();
    let project = params.bind(project_id);
    let mut sql = format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE project_id = {project}");
    for filter in &search.filters {
        let clause = match &filter.condition {
            Condition::Status(status) => format!("status = {}", params.bind(status.as_str())),
            Condition::Assigned(Assignee::Me) => {
                let me = me.ok_or(Error::invalid(
                    "query",
                    "assigned:me needs a signed-in user",
                ))?;
                format!("assigned_to = {}", params.bind(me))
            }
            Condition::Assigned(Assignee::Nobody) => "assigned_to IS NULL".to_owned(),
            Condition::Assigned(Assignee::Anyone) => "assigned_to IS NOT NULL".to_owned(),
            Condition::Assigned(Assignee::Email(email)) => format!(
                "assigned_to IN (SELECT id FROM users WHERE lower(email) = lower({}))",
                params.bind(email.clone())
            ),
            Condition::Level(level) => format!("level = {}", params.bind(level.as_str())),
            // Through `issue_tag_values_tag_idx`: the issues with that
            // tag, whichever days.
            Condition::Tag { key, value } => format!(
                "id IN (SELECT issue_id FROM issue_tag_values \
                 WHERE project_id = {project} AND key || '=' || value = {})",
                params.bind(format!("{key}={value}"))
            ),
            Condition::Has { key } => format!(
                "EXISTS (SELECT 1 FROM issue_tag_values k WHERE k.project_id = issues.project_id \
                 AND k.issue_id = issues.id AND k.key = {})",
                params.bind(key.clone())
            ),
            Condition::TimesSeen(op, n) => {
                format!("event_count {} {}", op.as_sql(), params.bind(*n))
            }
            Condition::Users(op, n) => format!("user_count {} {}", op.as_sql(), params.bind(*n)),
            Condition::FirstSeen(op, at) => {
                format!("first_seen {} {}", op.as_sql(), params.bind(*at))
            }
            Condition::LastSeen(op, at) => {
                format!("last_seen {} {}", op.as_sql(), params.bind(*at))
            }
        };
        sql += &match filter.negated {
            // A NULL (an unassigned issue against `assigned:<email>`) is
            // not a match, so its negation is.
            true => format!(" AND NOT coalesce(({clause}), false)"),
            false => format!(" AND ({clause})"),
        };
    }
    if let Some(text) = &search.text {
        let pattern = params.bind(contains_pattern(text));
        sql += &format!(
            " AND (title ILIKE {pattern} ESCAPE '\\' OR culprit ILIKE {pattern} ESCAPE '\\')"
        );
    }
    let column = sort.as_str();
    if let Some(cursor) = after {
        let key = match sort {
            IssueSort::EventCount => params.bind(cursor.key),
            IssueSort::LastSeen | IssueSort::FirstSeen => params.bind(cursor.time()?),
        };
        sql += &format!(" AND ({column}, id) < ({key}, {})", params.bind(cursor.id));
    }
    // One row past the page tells whether another page follows, so the
    // last page carries no cursor to an empty one.
    sql += &format!(
        " ORDER BY {column} DESC, id DESC LIMIT {}",
        params.bind(i64::from(limit) + 1)
    );

    let rows = client.query(&sql, &params.as_refs()).await?;
    let mut issues = rows
        .iter()
        .map(issue_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if issues.len() > limit as usize {
        issues.truncate(limit as usize);
        issues
            .last()
            .map(|last| sort.cursor_after(last).encode(column))
    } else {
        None
    };
    Ok(IssuePage { issues, next })
}

/// Whether the project has the issue.
pub(crate) async fn issue_exists(tx: &Transaction<'_>, project_id: Uuid, id: Uuid) -> Result<bool> {
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM issues WHERE project_id = $1 AND id = $2)",
            &[&project_id, &id],
        )
        .await?
        .get(0))
}

/// One issue of the project.
pub async fn get(pool: &Pool, project_id: Uuid, id: Uuid) -> Result<Issue> {
    let row = pool
        .get()
        .await?
        .query_opt(
            &format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE project_id = $1 AND id = $2"),
            &[&project_id, &id],
        )
        .await?
        .ok_or(ISSUE_NOT_FOUND)?;
    issue_from_row(&row)
}

/// The events per issue of `ids` and UTC day of `window`, days without
/// events absent. Read from the tag counts aggregated at ingest, not the
/// events (a busy issue's page would count every event of the window):
/// every event has a `level` tag, so an issue's `level` rows of a day sum
/// to its stored events of that day.
async fn daily_counts(
    tx: &Transaction<'_>,
    project_id: Uuid,
    ids: &[Uuid],
    window: &DayWindow,
) -> Result<HashMap<(Uuid, NaiveDate), i64>> {
    let rows = tx
        .query(
            "SELECT issue_id, day, sum(count)::bigint
             FROM issue_tag_values
             WHERE project_id = $1 AND issue_id = ANY($2) AND key = 'level'
               AND day >= $3 AND day < $4
             GROUP BY issue_id, day",
            &[&project_id, &ids, &window.first, &window.end],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

fn window_ending(today: NaiveDate) -> Result<DayWindow> {
    DayWindow::ending(today)
        .ok_or_else(|| Error::internal(format!("no daily counts around {today}")))
}

/// A read-only transaction whose statements all see one snapshot, so that
/// what they read together agrees.
pub(crate) async fn snapshot(client: &mut Client) -> Result<Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// An issue with its newest event, its events per UTC day for the
/// [`DAILY_COUNT_DAYS`](crate::domain::DAILY_COUNT_DAYS) days ending with
/// `today`, its users and how many of its events are still stored, read
/// in one snapshot so they agree.
pub async fn detail(
    pool: &Pool,
    project_id: Uuid,
    id: Uuid,
    today: NaiveDate,
) -> Result<IssueDetail> {
    let window = window_ending(today)?;
    let mut client = pool.get().await?;
    let tx = snapshot(&mut client).await?;
    let issue = tx
        .query_opt(
            &format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE project_id = $1 AND id = $2"),
            &[&project_id, &id],
        )
        .await?
        .ok_or(ISSUE_NOT_FOUND)?;
    let issue = issue_from_row(&issue)?;
    let latest_event = tx
        .query_opt(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND issue_id = $2
                 ORDER BY received_at DESC, id DESC LIMIT 1"
            ),
            &[&project_id, &id],
        )
        .await?
        .as_ref()
        .map(event_from_row)
        .transpose()?;
    let counted = daily_counts(&tx, project_id, &[id], &window).await?;
    let stored_events: i64 = tx
        .query_one(
            "SELECT count(*) FROM events WHERE project_id = $1 AND issue_id = $2",
            &[&project_id, &id],
        )
        .await?
        .get(0);
    tx.commit().await?;

    Ok(IssueDetail {
        users: issue.users,
        stored_events,
        issue,
        latest_event,
        daily_counts: window.fill(|day| counted.get(&(id, day)).copied()),
    })
}

/// The daily counts (the days of [`DayWindow::ending`] `today`) and users
/// of each of `ids`, in their order, read in one snapshot: two statements
/// whatever the number of issues. `NotFound { "issue" }` when
/// one of them is not the project's.
pub async fn activity(
    pool: &Pool,
    project_id: Uuid,
    ids: &[Uuid],
    today: NaiveDate,
) -> Result<Vec<IssueActivity>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let window = window_ending(today)?;
    let mut client = pool.get().await?;
    let tx = snapshot(&mut client).await?;
    let users: HashMap<Uuid, i64> = tx
        .query(
            "SELECT id, user_count FROM issues WHERE project_id = $1 AND id = ANY($2)",
            &[&project_id, &ids],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    if ids.iter().any(|id| !users.contains_key(id)) {
        return Err(ISSUE_NOT_FOUND);
    }
    let counted = daily_counts(&tx, project_id, ids, &window).await?;
    tx.commit().await?;

    Ok(ids
        .iter()
        .map(|&id| IssueActivity {
            issue_id: id,
            daily_counts: window.fill(|day| counted.get(&(id, day)).copied()),
            users: users[&id],
        })
        .collect())
}

/// The unresolved and total issues of each of `project_ids`, in their
/// order, in one statement (counted through the `(project_id, status)`
/// index). `NotFound { "project" }` when one of them does not exist.
pub async fn count_by_project(pool: &Pool, project_ids: &[Uuid]) -> Result<Vec<IssueCounts>> {
    if project_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT p.id,
                 count(i.id) FILTER (WHERE i.status = 'unresolved'),
                 count(i.id)
             FROM projects p LEFT JOIN issues i ON i.project_id = p.id
             WHERE p.id = ANY($1)
             GROUP BY p.id",
            &[&project_ids],
        )
        .await?;
    let counts: HashMap<Uuid, IssueCounts> = rows
        .iter()
        .map(|r| {
            let project_id = r.get(0);
            let counts = IssueCounts {
                project_id,
                unresolved: r.get(1),
                total: r.get(2),
            };
            (project_id, counts)
        })
        .collect();
    project_ids
        .iter()
        .map(|id| {
            counts
                .get(id)
                .copied()
                .ok_or(Error::NotFound { entity: "project" })
        })
        .collect()
}

/// The events received just after and just before `event_id` among the
/// issue's events (by `received_at`, then id), in one statement.
/// `NotFound { "issue" }` when the project has no such issue,
/// `NotFound { "event" }` when the issue has no such event stored.
pub async fn neighbours(
    pool: &Pool,
    project_id: Uuid,
    issue_id: Uuid,
    event_id: Uuid,
) -> Result<EventNeighbours> {
    // Each neighbour is the first row of the issue's index on
    // (issue_id, received_at) past the event, in either direction.
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT e.id IS NOT NULL,
                 (SELECT n.id FROM events n
                  WHERE n.project_id = $1 AND n.issue_id = $2
                    AND n.received_at >= e.received_at
                    AND (n.received_at, n.id) > (e.received_at, e.id)
                  ORDER BY n.received_at, n.id LIMIT 1),
                 (SELECT n.id FROM events n
                  WHERE n.project_id = $1 AND n.issue_id = $2
                    AND n.received_at <= e.received_at
                    AND (n.received_at, n.id) < (e.received_at, e.id)
                  ORDER BY n.received_at DESC, n.id DESC LIMIT 1)
             FROM issues i
             LEFT JOIN LATERAL (
                 SELECT id, received_at FROM events
                 WHERE project_id = $1 AND issue_id = $2 AND id = $3
                 ORDER BY received_at DESC LIMIT 1
             ) e ON true
             WHERE i.project_id = $1 AND i.id = $2",
            &[&project_id, &issue_id, &event_id],
        )
        .await?
        .ok_or(ISSUE_NOT_FOUND)?;
    if !row.get::<_, bool>(0) {
        return Err(Error::NotFound { entity: "event" });
    }
    Ok(EventNeighbours {
        newer: row.get(1),
        older: row.get(2),
    })
}

/// A page of an issue's events, newest first (by `received_at`, then id),
/// after `after`, at most `limit` rows. `NotFound { "issue" }` when the
/// project has no such issue.
pub async fn list_events(
    pool: &Pool,
    project_id: Uuid,
    issue_id: Uuid,
    after: Option<Cursor>,
    limit: u32,
) -> Result<EventPage> {
    let client = pool.get().await?;
    let issue_exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM issues WHERE project_id = $1 AND id = $2)",
            &[&project_id, &issue_id],
        )
        .await?
        .get(0);
    if !issue_exists {
        return Err(ISSUE_NOT_FOUND);
    }
    let fetch = i64::from(limit) + 1;
    let rows = match after {
        None => {
            client
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND issue_id = $2
                         ORDER BY received_at DESC, id DESC LIMIT $3"
                    ),
                    &[&project_id, &issue_id, &fetch],
                )
                .await?
        }
        Some(cursor) => {
            client
                .query(
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND issue_id = $2
                             AND (received_at, id) < ($3, $4)
                         ORDER BY received_at DESC, id DESC LIMIT $5"
                    ),
                    &[&project_id, &issue_id, &cursor.time()?, &cursor.id, &fetch],
                )
                .await?
        }
    };
    let mut events = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events
            .last()
            .map(|last| Cursor::at_time(last.received_at, last.id).encode(Cursor::EVENTS))
    } else {
        None
    };
    Ok(EventPage { events, next })
}

/// One event of the project, by the id its SDK gave it.
pub async fn get_event(pool: &Pool, project_id: Uuid, event_id: Uuid) -> Result<StoredEvent> {
    // Found through the primary key (project_id, id, received_at), probed
    // in each partition: one lookup per day kept.
    let row = pool
        .get()
        .await?
        .query_opt(
            &format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE project_id = $1 AND id = $2
                 ORDER BY received_at DESC LIMIT 1"
            ),
            &[&project_id, &event_id],
        )
        .await?
        .ok_or(Error::NotFound { entity: "event" })?;
    event_from_row(&row)
}
