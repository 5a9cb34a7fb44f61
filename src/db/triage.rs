//! Triage's tables: tag counts per issue, users affected, releases in the
//! order a project saw them, and issue activity; aggregated as a batch is
//! stored ([`record_batch`]) and read by the issue page and search.
//!
//! # What the aggregates cover
//!
//! The tag counts and the users of an issue are those of its stored
//! events: they are kept per UTC day of receipt, and when retention drops
//! a day's events, [`forget_days_before`] drops that day's counts and the
//! users last seen before it. (`issues.event_count` stays a lifetime
//! count.) At most [`MAX_TAG_VALUES`] distinct values are kept per issue,
//! key and day; the events of further values are counted as `other`.

use super::Pool;
use crate::domain::{
    Activity, ArchiveUntil, Event, Issue, IssueStatus, ResolveIn, StatusChange, TOP_TAG_VALUES,
    TagBreakdown, TagCount, new_id,
};
use crate::error::{Error, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use tokio_postgres::{Error as PgError, Statement, Transaction};
use uuid::Uuid;

/// The most distinct values of one tag key kept per issue and day.
pub const MAX_TAG_VALUES: i32 = 100;

/// Aggregates a batch's new events (see [`record_batch`]): one statement.
///
/// The arrays, each aggregated from the batch's new events before they
/// are sent (a batch of one issue's events is then a few rows, however
/// many events it holds): `$1..$3` per issue (project, issue, last
/// receipt); `$4..$6` per issue and release it was seen in; `$7..$10` per
/// issue and user (with the last UTC day seen); `$11..$14` per project and
/// release (first and last receipt); `$15..$22` per issue, tag key, UTC
/// day and value (events, first and last receipt); `$23` the bound of
/// values per issue, key and day; `$24..$26` one activity id per issue of
/// the batch, for a regression or an archived issue coming back.
///
/// In order: tag counts, with the bound (a value not yet kept for its
/// issue, key and day is kept while fewer than `$23` are, the most
/// frequent first; the rest count in the key's `other`, the row whose
/// value is ''; values are only looked up one by one for a key without
/// room for all the batch brings); users, exactly, by
/// inserting (issue, user) pairs and counting those that were new;
/// releases (first sight exact, last sight at most a minute behind, so
/// that a project's batches do not all queue on its release's row); then
/// each issue's user count and status:
///
/// - a resolved issue reopens (a regression, with its time) for an event
///   stored after it was resolved, whenever it was received: both times
///   are PostgreSQL's (the issue's row lock orders this transaction after
///   the resolution it sees), since Mesher's `received_at` and the
///   database's `resolved_at` come from two clocks that may disagree by
///   more than an event waits in a buffer. When resolved in a release, only
///   for an event of that release or newer; when resolved in the next release, only for
///   a release newer than the one it was last seen in. Releases compare by
///   the project's first sight of them; one first seen in this batch is
///   newer than any before. An event without a release does not reopen an
///   issue resolved in a release;
/// - an archived issue comes back when `event_count` (already counting
///   this batch) reaches its target, `user_count` reaches its target, or
///   an event arrives after its time.
///
/// The issue rows were locked by the batch's issue upsert earlier in the
/// transaction, so what is read of them here is what is updated.
pub const RECORD_SQL: &str = "
WITH tagged AS (
    SELECT * FROM unnest($15::uuid[], $16::uuid[], $17::text[], $18::date[], $19::text[],
        $20::bigint[], $21::timestamptz[], $22::timestamptz[])
        AS t(project_id, issue_id, key, day, value, n, first_seen, last_seen)
),
-- Whether each value is kept already for its issue, key and day.
checked AS MATERIALIZED (
    SELECT t.*, EXISTS (
            SELECT FROM issue_tag_values v
            WHERE v.project_id = t.project_id AND v.issue_id = t.issue_id
                AND v.key = t.key AND v.day = t.day AND v.value = t.value
        ) AS present
    FROM tagged t
),
-- For a key and day bringing new values, how many are kept already
-- (counted up to one past the bound).
groups AS MATERIALIZED (
    SELECT c.project_id, c.issue_id, c.key, c.day, CASE WHEN bool_and(c.present) THEN 0 ELSE (
            SELECT count(*) FROM (
                SELECT FROM issue_tag_values v
                WHERE v.project_id = c.project_id AND v.issue_id = c.issue_id
                    AND v.key = c.key AND v.day = c.day AND v.value <> ''
                LIMIT $23::integer + 1) AS s
        ) END AS kept
    FROM checked c GROUP BY 1, 2, 3, 4
),
-- A value kept already keeps counting; new ones fill the room left, the
-- most frequent first.
ranked AS (
    SELECT c.*, c.present OR g.kept + row_number() OVER (
            PARTITION BY c.project_id, c.issue_id, c.key, c.day, c.present
            ORDER BY c.n DESC, c.value) <= $23::integer
        AS keep
    FROM checked c
    JOIN groups g ON g.project_id = c.project_id AND g.issue_id = c.issue_id
        AND g.key = c.key AND g.day = c.day
),
-- The kept values, and each key's other (the row whose value is '').
kept_values AS (
    INSERT INTO issue_tag_values AS v (project_id, issue_id, key, day, value, count, first_seen,
        last_seen)
    SELECT * FROM (
        SELECT project_id, issue_id, key, day, value, n, first_seen, last_seen
        FROM ranked WHERE keep
        UNION ALL
        SELECT project_id, issue_id, key, day, '', sum(n), min(first_seen), max(last_seen)
        FROM ranked WHERE NOT keep GROUP BY 1, 2, 3, 4
    ) AS counted
    ORDER BY project_id, issue_id, key, day, value
    ON CONFLICT (project_id, issue_id, key, day, value) DO UPDATE SET
        count = v.count + excluded.count,
        first_seen = least(v.first_seen, excluded.first_seen),
        last_seen = greatest(v.last_seen, excluded.last_seen)
),
seen_users AS (
    INSERT INTO issue_users AS u (project_id, issue_id, who, last_day)
    SELECT * FROM unnest($7::uuid[], $8::uuid[], $9::text[], $10::date[])
    ORDER BY 1, 2, 3
    ON CONFLICT (project_id, issue_id, who) DO UPDATE SET last_day = excluded.last_day
        WHERE u.last_day < excluded.last_day
    RETURNING u.project_id, u.issue_id, u.xmax = 0 AS inserted
),
new_users AS (
    SELECT project_id, issue_id, count(*) AS n FROM seen_users WHERE inserted GROUP BY 1, 2
),
batch_releases AS (
    SELECT * FROM unnest($11::uuid[], $12::text[], $13::timestamptz[], $14::timestamptz[])
        AS b(project_id, release, first_seen, last_seen)
),
new_releases AS (
    INSERT INTO releases (project_id, version, first_seen, last_seen)
    SELECT project_id, release, first_seen, last_seen FROM batch_releases ORDER BY 1, 2
    ON CONFLICT DO NOTHING
),
later_releases AS (
    UPDATE releases r SET
        first_seen = least(r.first_seen, b.first_seen),
        last_seen = greatest(r.last_seen, b.last_seen)
    FROM batch_releases b
    WHERE r.project_id = b.project_id AND r.version = b.release
      AND (b.first_seen < r.first_seen OR b.last_seen > r.last_seen + interval '1 minute')
),
release_order AS (
    SELECT b.project_id, b.release, coalesce(r.first_seen, b.first_seen) AS first_seen
    FROM batch_releases b
    LEFT JOIN releases r ON r.project_id = b.project_id AND r.version = b.release
),
per_issue AS (
    SELECT p.project_id, p.issue_id, p.last_seen, (
            SELECT max(o.first_seen)
            FROM unnest($4::uuid[], $5::uuid[], $6::text[]) AS r(project_id, issue_id, release)
            JOIN release_order o ON o.project_id = r.project_id AND o.release = r.release
            WHERE r.project_id = p.project_id AND r.issue_id = p.issue_id
        ) AS newest_release
    FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS p(project_id, issue_id, last_seen)
),
decided AS (
    SELECT i.project_id, i.id, coalesce(nu.n, 0) AS new_users, p.last_seen,
        coalesce(i.status = 'resolved' AND CASE
                WHEN i.resolved_in_release IS NOT NULL THEN p.newest_release >= coalesce(
                    (SELECT first_seen FROM release_order o
                     WHERE o.project_id = i.project_id AND o.release = i.resolved_in_release),
                    (SELECT first_seen FROM releases r
                     WHERE r.project_id = i.project_id AND r.version = i.resolved_in_release),
                    'infinity')
                WHEN i.resolved_after_release IS NOT NULL THEN p.newest_release > coalesce(
                    (SELECT first_seen FROM releases r
                     WHERE r.project_id = i.project_id AND r.version = i.resolved_after_release),
                    '-infinity')
                ELSE true
            END, false) AS reopened,
        CASE WHEN i.status <> 'archived' THEN NULL
            WHEN i.event_count >= i.archived_until_events THEN 'events'
            WHEN i.user_count + coalesce(nu.n, 0) >= i.archived_until_users THEN 'users'
            WHEN p.last_seen >= i.archived_until THEN 'time'
        END AS woke
    FROM per_issue p
    JOIN issues i ON i.project_id = p.project_id AND i.id = p.issue_id
    LEFT JOIN new_users nu ON nu.project_id = p.project_id AND nu.issue_id = p.issue_id
),
changed AS (
    UPDATE issues i SET
        user_count = i.user_count + d.new_users,
        status = CASE WHEN d.reopened OR d.woke IS NOT NULL THEN 'unresolved' ELSE i.status END,
        resolved_at = CASE WHEN d.reopened THEN NULL ELSE i.resolved_at END,
        regressed_at = CASE WHEN d.reopened THEN now() ELSE i.regressed_at END,
        resolved_in_release = CASE WHEN d.reopened THEN NULL ELSE i.resolved_in_release END,
        resolved_after_release = CASE WHEN d.reopened THEN NULL
            ELSE i.resolved_after_release END,
        archived_until = CASE WHEN d.woke IS NOT NULL THEN NULL ELSE i.archived_until END,
        archived_until_events = CASE WHEN d.woke IS NOT NULL THEN NULL
            ELSE i.archived_until_events END,
        archived_until_users = CASE WHEN d.woke IS NOT NULL THEN NULL
            ELSE i.archived_until_users END
    FROM decided d
    WHERE i.project_id = d.project_id AND i.id = d.id
      AND (d.new_users > 0 OR d.reopened OR d.woke IS NOT NULL)
    RETURNING i.project_id, i.id, d.reopened, d.woke, d.last_seen
)
INSERT INTO issue_activity (id, project_id, issue_id, at, kind, data)
SELECT a.id, c.project_id, c.id, c.last_seen,
    CASE WHEN c.reopened THEN 'regression' ELSE 'unarchived' END,
    CASE WHEN c.reopened THEN '{}'::jsonb ELSE jsonb_build_object('reason', c.woke) END
FROM changed c
JOIN unnest($24::uuid[], $25::uuid[], $26::uuid[]) AS a(project_id, issue_id, id)
    ON a.project_id = c.project_id AND a.issue_id = c.id
WHERE c.reopened OR c.woke IS NOT NULL
RETURNING issue_id, kind";

/// Aggregates the events a batch newly stored, each with its issue, in
/// the batch's transaction `tx` (after the events and their issues are
/// written), with `statement` prepared from [`RECORD_SQL`]: tag counts,
/// users, releases, and the issues' user counts, regressions and returns
/// from archive (see [`RECORD_SQL`]). One statement, whatever the number
/// of events. Events already stored before (duplicates) must not be
/// passed, or they would be counted twice. Returns the issues that
/// regressed or came back from archive, with that activity's kind
/// (`regression`, `unarchived`), for the alerts.
pub async fn record_batch(
    tx: &Transaction<'_>,
    statement: &Statement,
    new: &[(Uuid, &Event)],
) -> Result<Vec<(Uuid, String)>, PgError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    // The batch aggregated here, so the statement reads a row per issue,
    // user, release and tag value rather than per event.
    let day = |at: DateTime<Utc>| at.date_naive();
    let mut per_issue: BTreeMap<(Uuid, Uuid), DateTime<Utc>> = BTreeMap::new();
    let mut issue_releases: BTreeSet<(Uuid, Uuid, &str)> = BTreeSet::new();
    let mut users: BTreeMap<(Uuid, Uuid, &str), NaiveDate> = BTreeMap::new();
    /// First and last time seen.
    type Span = (DateTime<Utc>, DateTime<Utc>);
    type TagKey<'a> = (Uuid, Uuid, &'a str, NaiveDate, &'a str);
    let mut releases: BTreeMap<(Uuid, &str), Span> = BTreeMap::new();
    let mut tags: BTreeMap<TagKey<'_>, (i64, DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    for &(issue, event) in new {
        let (project, at) = (event.project_id(), event.received_at());
        per_issue
            .entry((project, issue))
            .and_modify(|last| *last = (*last).max(at))
            .or_insert(at);
        if let Some(release) = event.release() {
            issue_releases.insert((project, issue, release));
            releases
                .entry((project, release))
                .and_modify(|(first, last)| {
                    *first = (*first).min(at);
                    *last = (*last).max(at);
                })
                .or_insert((at, at));
        }
        if let Some(who) = event.user_key() {
            users
                .entry((project, issue, who))
                .and_modify(|d| *d = (*d).max(day(at)))
                .or_insert(day(at));
        }
        for tag in event.indexed_tags() {
            let key = (
                project,
                issue,
                tag.key.as_str(),
                day(at),
                tag.value.as_str(),
            );
            tags.entry(key)
                .and_modify(|(n, first, last)| {
                    *n += 1;
                    *first = (*first).min(at);
                    *last = (*last).max(at);
                })
                .or_insert((1, at, at));
        }
    }
    let (issue_projects, issue_ids, last_seen): (Vec<_>, Vec<_>, Vec<_>) =
        per_issue.iter().map(|(&(p, i), &at)| (p, i, at)).collect();
    let (ir_projects, ir_issues, ir_releases): (Vec<_>, Vec<_>, Vec<_>) =
        issue_releases.iter().copied().collect();
    let mut u = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (&(p, i, who), &d) in &users {
        u.0.push(p);
        u.1.push(i);
        u.2.push(who);
        u.3.push(d);
    }
    let mut r = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (&(p, release), &(first, last)) in &releases {
        r.0.push(p);
        r.1.push(release);
        r.2.push(first);
        r.3.push(last);
    }
    let mut t = (
        Vec::with_capacity(tags.len()),
        Vec::with_capacity(tags.len()),
        Vec::with_capacity(tags.len()),
        Vec::with_capacity(tags.len()),
        Vec::with_capacity(tags.len()),
        Vec::with_capacity(tags.len()),
        Vec::with_capacity(tags.len()),
        Vec::with_capacity(tags.len()),
    );
    for (&(p, i, key, d, value), &(n, first, last)) in &tags {
        t.0.push(p);
        t.1.push(i);
        t.2.push(key);
        t.3.push(d);
        t.4.push(value);
        t.5.push(n);
        t.6.push(first);
        t.7.push(last);
    }
    let touched: BTreeSet<(Uuid, Uuid)> = new.iter().map(|(i, e)| (e.project_id(), *i)).collect();
    let (mut activity_projects, mut activity_issues, mut activity_ids) = (
        Vec::with_capacity(touched.len()),
        Vec::with_capacity(touched.len()),
        Vec::with_capacity(touched.len()),
    );
    for (project, issue) in touched {
        activity_projects.push(project);
        activity_issues.push(issue);
        activity_ids.push(new_id());
    }
    let changed = tx
        .query(
            statement,
            &[
                &issue_projects,
                &issue_ids,
                &last_seen,
                &ir_projects,
                &ir_issues,
                &ir_releases,
                &u.0,
                &u.1,
                &u.2,
                &u.3,
                &r.0,
                &r.1,
                &r.2,
                &r.3,
                &t.0,
                &t.1,
                &t.2,
                &t.3,
                &t.4,
                &t.5,
                &t.6,
                &t.7,
                &MAX_TAG_VALUES,
                &activity_projects,
                &activity_issues,
                &activity_ids,
            ],
        )
        .await?;
    Ok(changed.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The issue's tags, by key: events, distinct values, and the
/// [`TOP_TAG_VALUES`] most frequent values, keys in alphabetical order.
/// `NotFound { "issue" }` when the project has no such issue.
pub async fn breakdown(pool: &Pool, project_id: Uuid, issue_id: Uuid) -> Result<Vec<TagBreakdown>> {
    let mut client = pool.get().await?;
    let tx = super::issues::snapshot(&mut client).await?;
    if !super::issues::issue_exists(&tx, project_id, issue_id).await? {
        return Err(Error::NotFound { entity: "issue" });
    }
    let values = tx
        .query(
            "SELECT key, value, sum(count)::bigint AS n FROM issue_tag_values
             WHERE project_id = $1 AND issue_id = $2 GROUP BY key, value",
            &[&project_id, &issue_id],
        )
        .await?;
    tx.commit().await?;

    let mut by_key: BTreeMap<String, TagBreakdown> = BTreeMap::new();
    for r in &values {
        let (key, value, count): (String, String, i64) = (r.get(0), r.get(1), r.get(2));
        let b = by_key.entry(key.clone()).or_insert_with(|| TagBreakdown {
            key,
            total: 0,
            distinct: 0,
            other: 0,
            top: Vec::new(),
        });
        b.total += count;
        // The row whose value is '' counts the values past the bound.
        if value.is_empty() {
            b.other += count;
        } else {
            b.distinct += 1;
            b.top.push(TagCount { value, count });
        }
    }
    Ok(by_key
        .into_values()
        .map(|mut b| {
            b.top
                .sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.value.cmp(&y.value)));
            b.top.truncate(TOP_TAG_VALUES);
            b
        })
        .collect())
}

/// The issue's activity, newest first, at most `limit` entries.
/// `NotFound { "issue" }` when the project has no such issue.
pub async fn activity(
    pool: &Pool,
    project_id: Uuid,
    issue_id: Uuid,
    limit: i64,
) -> Result<Vec<Activity>> {
    let mut client = pool.get().await?;
    let tx = super::issues::snapshot(&mut client).await?;
    if !super::issues::issue_exists(&tx, project_id, issue_id).await? {
        return Err(Error::NotFound { entity: "issue" });
    }
    let rows = tx
        .query(
            "SELECT a.id, a.at, a.user_id, u.display_name, a.kind, a.data
             FROM issue_activity a LEFT JOIN users u ON u.id = a.user_id
             WHERE a.project_id = $1 AND a.issue_id = $2
             ORDER BY a.at DESC, a.id DESC LIMIT $3",
            &[&project_id, &issue_id, &limit],
        )
        .await?;
    tx.commit().await?;
    Ok(rows
        .iter()
        .map(|r| Activity {
            id: r.get(0),
            at: r.get(1),
            user_id: r.get(2),
            user_name: r.get(3),
            kind: r.get(4),
            data: r.get(5),
        })
        .collect())
}

/// Changes the issue's status as `change` says, by `actor` (recorded in
/// its activity), at `now`, in one transaction:
///
/// - resolving stamps `resolved_at` (resolving again keeps the first
///   stamp); in the next release, it records the release the issue was
///   last seen in (`Conflict` when it was never seen in one); in release
///   X, X itself;
/// - archiving records its condition: a time `now` + minutes, or targets
///   of the current `event_count` / `users` plus N;
/// - any change clears what the previous status had recorded.
pub async fn change_status(
    pool: &Pool,
    project_id: Uuid,
    id: Uuid,
    change: &StatusChange,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Issue> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let current = tx
        .query_opt(
            "SELECT event_count, user_count FROM issues WHERE project_id = $1 AND id = $2
             FOR UPDATE",
            &[&project_id, &id],
        )
        .await?
        .ok_or(Error::NotFound { entity: "issue" })?;
    let (events, users): (i64, i64) = (current.get(0), current.get(1));
    let (status, data) = match change {
        StatusChange::Unresolve => (IssueStatus::Unresolved, json!({})),
        StatusChange::Resolve(None) => (IssueStatus::Resolved, json!({})),
        StatusChange::Resolve(Some(ResolveIn::Release(release))) => {
            (IssueStatus::Resolved, json!({ "in_release": release }))
        }
        StatusChange::Resolve(Some(ResolveIn::NextRelease)) => {
            let last: Option<String> = tx
                .query_opt(
                    "SELECT value FROM issue_tag_values
                     WHERE project_id = $1 AND issue_id = $2 AND key = 'release' AND value <> ''
                     ORDER BY last_seen DESC LIMIT 1",
                    &[&project_id, &id],
                )
                .await?
                .map(|r| r.get(0));
            let Some(last) = last else {
                return Err(Error::Conflict {
                    rule: "the issue was never seen in a release, so it has no next release",
                });
            };
            (IssueStatus::Resolved, json!({ "after_release": last }))
        }
        StatusChange::Archive(until) => {
            let until = match *until {
                ArchiveUntil::Forever => json!({}),
                ArchiveUntil::Minutes(n) => json!({ "minutes": n }),
                ArchiveUntil::Events(n) => json!({ "count": n }),
                ArchiveUntil::Users(n) => json!({ "users": n }),
            };
            (IssueStatus::Archived, json!({ "until": until }))
        }
    };
    let (archived_until, until_events, until_users) = match change {
        StatusChange::Archive(ArchiveUntil::Minutes(n)) => {
            (Some(now + chrono::Duration::minutes(*n)), None, None)
        }
        StatusChange::Archive(ArchiveUntil::Events(n)) => (None, Some(events + n), None),
        StatusChange::Archive(ArchiveUntil::Users(n)) => (None, None, Some(users + n)),
        _ => (None, None, None),
    };
    let in_release = data.get("in_release").and_then(Value::as_str);
    let after_release = data.get("after_release").and_then(Value::as_str);
    let row = tx
        .query_one(
            &format!(
                "UPDATE issues SET
                     status = $3,
                     resolved_at = CASE
                         WHEN $3 <> 'resolved' THEN NULL
                         WHEN status = 'resolved' THEN coalesce(resolved_at, $4)
                         ELSE $4
                     END,
                     resolved_in_release = $5,
                     resolved_after_release = $6,
                     archived_until = $7,
                     archived_until_events = $8,
                     archived_until_users = $9
                 WHERE project_id = $1 AND id = $2
                 RETURNING {}",
                super::issues::ISSUE_COLUMNS
            ),
            &[
                &project_id,
                &id,
                &status.as_str(),
                &now,
                &in_release,
                &after_release,
                &archived_until,
                &until_events,
                &until_users,
            ],
        )
        .await?;
    record(&tx, project_id, id, actor, now, status.as_str(), data).await?;
    let issue = super::issues::issue_from_row(&row)?;
    tx.commit().await?;
    Ok(issue)
}

/// Assigns the issue to `user_id`, or to nobody, by `actor`, recorded in
/// its activity. An unknown user is `NotFound { "user" }`, through the
/// foreign key.
pub async fn assign(
    pool: &Pool,
    project_id: Uuid,
    id: Uuid,
    user_id: Option<Uuid>,
    actor: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Issue> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            &format!(
                "UPDATE issues SET assigned_to = $3 WHERE project_id = $1 AND id = $2
                 RETURNING {}",
                super::issues::ISSUE_COLUMNS
            ),
            &[&project_id, &id, &user_id],
        )
        .await?
        .ok_or(Error::NotFound { entity: "issue" })?;
    let (kind, data) = match user_id {
        Some(user) => ("assigned", json!({ "assignee_id": user })),
        None => ("unassigned", json!({})),
    };
    record(&tx, project_id, id, actor, now, kind, data).await?;
    let issue = super::issues::issue_from_row(&row)?;
    tx.commit().await?;
    Ok(issue)
}

async fn record(
    tx: &Transaction<'_>,
    project_id: Uuid,
    issue_id: Uuid,
    actor: Option<Uuid>,
    at: DateTime<Utc>,
    kind: &str,
    data: Value,
) -> Result<()> {
    tx.execute(
        "INSERT INTO issue_activity (id, project_id, issue_id, at, user_id, kind, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&new_id(), &project_id, &issue_id, &at, &actor, &kind, &data],
    )
    .await?;
    Ok(())
}

/// Brings back the issues archived until a time that `now` has passed,
/// each with an `unarchived` activity (reason `time`), and fires the
/// `unarchived` alert rules about them in the same transaction. Returns
/// how many came back, and the alerts fired. Issues another caller holds
/// locked are left for the next sweep.
pub async fn wake_archived(pool: &Pool, now: DateTime<Utc>) -> Result<(u64, super::alerts::Fired)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let due = tx
        .query(
            "SELECT project_id, id FROM issues
             WHERE archived_until <= $1 AND status = 'archived'
             FOR UPDATE SKIP LOCKED",
            &[&now],
        )
        .await?;
    if due.is_empty() {
        return Ok((0, Default::default()));
    }
    let projects: Vec<Uuid> = due.iter().map(|r| r.get(0)).collect();
    let ids: Vec<Uuid> = due.iter().map(|r| r.get(1)).collect();
    let activity_ids: Vec<Uuid> = ids.iter().map(|_| new_id()).collect();
    tx.execute(
        "WITH woke AS (
             UPDATE issues i SET status = 'unresolved', archived_until = NULL
             FROM unnest($1::uuid[], $2::uuid[]) AS d(project_id, id)
             WHERE i.project_id = d.project_id AND i.id = d.id
         )
         INSERT INTO issue_activity (id, project_id, issue_id, at, kind, data)
         SELECT a, p, i, $4::timestamptz, 'unarchived', '{\"reason\": \"time\"}'
         FROM unnest($3::uuid[], $1::uuid[], $2::uuid[]) AS w(a, p, i)",
        &[&projects, &ids, &activity_ids, &now],
    )
    .await?;
    let woken: Vec<(Uuid, Uuid)> = projects.iter().copied().zip(ids.iter().copied()).collect();
    let fired = super::alerts::record_woken(&tx, &woken).await?;
    tx.commit().await?;
    Ok((ids.len() as u64, fired))
}

/// Forgets what retention dropped: the tag counts of days before `day`,
/// and the users whose last event was received before it (each issue's
/// user count lowered to match), of `project_id` or of every project.
/// Called after the events of those days are dropped.
pub async fn forget_days_before(
    pool: &Pool,
    project_id: Option<Uuid>,
    day: NaiveDate,
) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        "DELETE FROM issue_tag_values WHERE day < $1 AND ($2::uuid IS NULL OR project_id = $2)",
        &[&day, &project_id],
    )
    .await?;
    tx.execute(
        "WITH gone AS (
             DELETE FROM issue_users WHERE last_day < $1 AND ($2::uuid IS NULL OR project_id = $2)
             RETURNING project_id, issue_id
         )
         UPDATE issues i SET user_count = i.user_count - g.n
         FROM (SELECT project_id, issue_id, count(*) AS n FROM gone GROUP BY 1, 2) g
         WHERE i.project_id = g.project_id AND i.id = g.issue_id",
        &[&day, &project_id],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
