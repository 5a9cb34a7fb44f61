//! What retention deletes row by row, and what it measures: issues whose
//! events are all gone, the events of projects keeping less than the
//! server, expired sessions, and each project's share of the disk. (Whole
//! days go by dropping partitions: see [`super::partitions::drop_before`].)
//!
//! Every deletion is in bounded batches, each its own statement and
//! transaction, so that none holds many row locks or a long snapshot, and
//! ingestion (which never waits for these rows, except an issue's) goes on
//! meanwhile.

use super::Pool;
use crate::error::Result;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use std::collections::HashMap;
use uuid::Uuid;

/// Rows one deleting statement takes at most.
pub const DELETE_BATCH: i64 = 5_000;

/// The first moment kept by a retention of `days` days on `today`: the
/// start (UTC) of the day `days` days before it. Events received before
/// it are in days wholly older than the retention.
pub fn first_kept(today: NaiveDate, days: u32) -> NaiveDate {
    today
        .checked_sub_days(Days::new(days.into()))
        .unwrap_or(NaiveDate::MIN)
}

/// The first moment (UTC) of `day`.
pub fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(NaiveTime::MIN).and_utc()
}

/// Deletes the issues last seen before `day` began, of `project_id` or of
/// every project: their events are all past the retention. Their triage
/// rows (activity, tag counts, users) go in the same statement, so none is
/// left pointing at an issue that no longer exists. An issue that an event
/// reaches meanwhile is kept (the condition is checked again on each row).
/// Returns how many were deleted.
pub async fn delete_stale_issues(
    pool: &Pool,
    project_id: Option<Uuid>,
    day: NaiveDate,
) -> Result<u64> {
    let before = start_of(day);
    // One scan finds them (issues have no index on last_seen: every
    // stored event changes it); the deletes then go by key.
    let stale: Vec<(Uuid, Uuid)> = pool
        .get()
        .await?
        .query(
            "SELECT project_id, id FROM issues
             WHERE last_seen < $1 AND ($2::uuid IS NULL OR project_id = $2)",
            &[&before, &project_id],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut deleted = 0;
    for chunk in stale.chunks(DELETE_BATCH as usize) {
        let (projects, ids): (Vec<Uuid>, Vec<Uuid>) = chunk.iter().copied().unzip();
        let row = pool
            .get()
            .await?
            .query_one(
                "WITH gone AS (
                     DELETE FROM issues i USING unnest($1::uuid[], $2::uuid[]) AS s(project_id, id)
                     WHERE i.project_id = s.project_id AND i.id = s.id AND i.last_seen < $3
                     RETURNING i.project_id, i.id
                 ),
                 activity AS (
                     DELETE FROM issue_activity a USING gone g
                     WHERE a.project_id = g.project_id AND a.issue_id = g.id
                 ),
                 tag_values AS (
                     DELETE FROM issue_tag_values v USING gone g
                     WHERE v.project_id = g.project_id AND v.issue_id = g.id
                 ),
                 quiet AS (
                     DELETE FROM alert_rule_issues q USING gone g WHERE q.issue_id = g.id
                 ),
                 alert_users AS (
                     DELETE FROM alert_issue_users a USING gone g
                     WHERE a.project_id = g.project_id AND a.issue_id = g.id
                 ),
                 users AS (
                     DELETE FROM issue_users u USING gone g
                     WHERE u.project_id = g.project_id AND u.issue_id = g.id
                 )
                 SELECT count(*) FROM gone",
                &[&projects, &ids, &before],
            )
            .await?;
        deleted += row.get::<_, i64>(0) as u64;
    }
    Ok(deleted)
}

/// What [`expire_project_events`] deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ProjectsExpired {
    pub events: u64,
    pub issues: u64,
    /// Artifact bundles unused for longer than the project keeps events.
    pub bundles: u64,
}

/// For each project whose own retention is shorter than the server's
/// (`server_days`, 0 for none), deletes its events received before its
/// first kept day, then its issues last seen before it, and the triage
/// counts of the days it no longer keeps. The events'
/// primary key leads with the project and partitions are bounded by
/// receipt, so each statement reads only that project's rows in the
/// partitions past its retention.
pub async fn expire_project_events(
    pool: &Pool,
    today: NaiveDate,
    server_days: u32,
) -> Result<ProjectsExpired> {
    let projects: Vec<(Uuid, i32)> = pool
        .get()
        .await?
        .query(
            "SELECT id, retention_days FROM projects
             WHERE retention_days IS NOT NULL AND ($1 = 0 OR retention_days < $1)",
            &[&(server_days as i32)],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut expired = ProjectsExpired::default();
    for (project_id, days) in projects {
        let day = first_kept(today, days.unsigned_abs());
        let before = start_of(day);
        loop {
            let n = pool
                .get()
                .await?
                .execute(
                    "DELETE FROM events e USING (
                         SELECT project_id, id, received_at FROM events
                         WHERE project_id = $1 AND received_at < $2 LIMIT $3
                     ) old
                     WHERE e.project_id = old.project_id AND e.id = old.id
                         AND e.received_at = old.received_at AND e.received_at < $2",
                    &[&project_id, &before, &DELETE_BATCH],
                )
                .await?;
            expired.events += n;
            if n < DELETE_BATCH as u64 {
                break;
            }
        }
        expired.issues += delete_stale_issues(pool, Some(project_id), day).await?;
        super::triage::forget_days_before(pool, Some(project_id), day).await?;
        expired.bundles +=
            super::artifacts::delete_unused_bundles(pool, Some(project_id), before).await?;
    }
    if expired.events > 0 || expired.issues > 0 || expired.bundles > 0 {
        log::info!(
            "deleted {} event(s), {} issue(s) and {} artifact bundle(s) past their project's retention",
            expired.events,
            expired.issues,
            expired.bundles
        );
    }
    Ok(expired)
}

/// A project's events stored and the disk they take, approximately.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Rows in `events`.
    pub events: i64,
    /// The project's share of each partition's size (table, TOAST and
    /// indexes), by its share of the partition's rows.
    pub bytes: i64,
}

/// The [`Usage`] of each of `project_ids` (absent: no events stored). The
/// events are counted through the primary key (which leads with the
/// project) in every partition; each partition's size is shared out by
/// rows, its row count taken from the planner's statistics once
/// PostgreSQL has gathered them (autovacuum does), else from the rows
/// counted here.
pub async fn usage(pool: &Pool, project_ids: &[Uuid]) -> Result<HashMap<Uuid, Usage>> {
    let rows = pool
        .get()
        .await?
        .query(
            "WITH counted AS (
                 SELECT project_id, tableoid, count(*) AS n FROM events
                 WHERE project_id = ANY($1) GROUP BY project_id, tableoid
             ),
             parts AS (
                 SELECT c.oid, pg_total_relation_size(c.oid)::float8 AS bytes,
                     greatest(c.reltuples::float8, (SELECT sum(n) FROM counted
                         WHERE counted.tableoid = c.oid)::float8, 1) AS rows
                 FROM pg_class c WHERE c.oid IN (SELECT tableoid FROM counted)
             )
             SELECT project_id, sum(n)::bigint, sum(n * p.bytes / p.rows)::bigint
             FROM counted JOIN parts p ON p.oid = counted.tableoid
             GROUP BY project_id",
            &[&project_ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let usage = Usage {
                events: r.get(1),
                bytes: r.get(2),
            };
            (r.get(0), usage)
        })
        .collect())
}

/// Every project's id, for the usage metrics.
pub async fn all_projects(pool: &Pool) -> Result<Vec<Uuid>> {
    Ok(pool
        .get()
        .await?
        .query("SELECT id FROM projects ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_kept_day_is_the_retention_before_today() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        for (today, days, kept) in [
            (day(2024, 3, 1), 1, day(2024, 2, 29)),
            (day(2024, 3, 1), 90, day(2023, 12, 2)),
            (day(2024, 1, 1), 7, day(2023, 12, 25)),
        ] {
            assert_eq!(first_kept(today, days), kept, "{today} {days}");
        }
        assert_eq!(
            start_of(day(2024, 2, 29)).to_rfc3339(),
            "2024-02-29T00:00:00+00:00"
        );
    }
}
