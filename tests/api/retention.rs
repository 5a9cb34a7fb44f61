//! Retention: old days dropped whole, stale issues deleted, a project's
//! own shorter retention, expired sessions swept, and `event_ids`
//! partitioned by day without losing an event's uniqueness.
//!
//! The managers take "today" from a clock the test fixes, on a day in the
//! past, so that no test depends on the date it runs on.

use crate::common::{TestDb, wait_until};
use actix::prelude::*;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use mesher::db;
use mesher::domain::{Event, EventPayload};
use mesher::services::{ApplyRetention, EnsurePartitions, PartitionManager};
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 2, 25).unwrap()
}

fn days_ago(n: u64) -> NaiveDate {
    today().checked_sub_days(Days::new(n)).unwrap()
}

/// Noon (UTC) of `day`, plus `minutes`.
fn at(day: NaiveDate, minutes: i64) -> DateTime<Utc> {
    day.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap())
        .and_utc()
        + chrono::Duration::minutes(minutes)
}

/// An event of `project` whose fingerprint is `issue`, received at `when`.
fn event(project: Uuid, issue: &str, when: DateTime<Utc>) -> Event {
    copy(project, issue, when, Uuid::now_v7())
}

/// The event `id` of `project`, received at `when`: an SDK's copy.
fn copy(project: Uuid, issue: &str, when: DateTime<Utc>, id: Uuid) -> Event {
    let payload: EventPayload = serde_json::from_value(json!({
        "event_id": id.simple().to_string(),
        "message": format!("{issue} happened"),
        "fingerprint": [issue],
    }))
    .unwrap();
    Event::from_payload_received_at(project, payload, when).unwrap()
}

fn manager(t: &TestDb, retention_days: u32) -> Addr<PartitionManager> {
    let mut config = t.config().partitions;
    config.retention_days = retention_days;
    PartitionManager::with_clock(t.pool.clone(), config, today).start()
}

/// The days that have a partition of `table`.
async fn partition_days(t: &TestDb, table: &str) -> BTreeSet<NaiveDate> {
    t.pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::text::regclass",
            &[&table],
        )
        .await
        .unwrap()
        .iter()
        .filter_map(|r| db::partitions::partition_day(r.get(0)))
        .collect()
}

/// `(event_count, stored events)` of the project's issue of `event`'s
/// fingerprint `name`, as the issue's page shows them, or `None` when it
/// has been deleted.
async fn issue(t: &TestDb, project: Uuid, name: &str) -> Option<(i64, i64)> {
    let row = t
        .pool
        .get()
        .await
        .unwrap()
        .query_opt(
            "SELECT id FROM issues WHERE project_id = $1 AND title = $2",
            &[&project, &format!("{name} happened")],
        )
        .await
        .unwrap()?;
    let detail = db::issues::detail(&t.pool, project, row.get(0), today())
        .await
        .unwrap();
    Some((detail.issue.event_count, detail.stored_events))
}

#[actix::test]
async fn days_past_the_retention_go_with_their_ids_and_stale_issues() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    // Every day of the last 100: "live" each day; "stale" only in the
    // first eight; "edge" last seen on the last day dropped; "kept" on
    // the first day kept.
    let mut events = Vec::new();
    for n in 0..100 {
        events.push(event(project, "live", at(days_ago(n), 0)));
        if n >= 92 {
            events.push(event(project, "stale", at(days_ago(n), 1)));
        }
    }
    events.push(event(project, "edge", at(days_ago(91), 2)));
    events.push(event(project, "kept", at(days_ago(90), -719)));
    db::events::insert_batch(&t.events, &events).await.unwrap();
    // Someone resolved the stale issue once: its activity goes with it.
    t.execute(
        "INSERT INTO issue_activity (id, project_id, issue_id, at, kind)
         SELECT gen_random_uuid(), project_id, id, now(), 'resolved' FROM issues
         WHERE title = 'stale happened'",
    )
    .await;
    let dropped_days = format!("day < '{}'", days_ago(90));
    let tag_counts =
        |table: &str, which: &str| format!("SELECT count(*) FROM {table} WHERE {which}");
    assert!(
        t.count(&tag_counts("issue_tag_values", &dropped_days))
            .await
            > 0
    );
    // Before the manager starts: its check at start applies the retention.
    let all: BTreeSet<NaiveDate> = (0..100).map(days_ago).collect();
    assert!(partition_days(&t, "events").await.is_superset(&all));
    let manager = manager(&t, 90);
    manager.send(EnsurePartitions).await.unwrap().unwrap();

    // The manager's own check at start may have done it already; either
    // way, once this one has replied it is done.
    manager.send(ApplyRetention).await.unwrap().unwrap();

    // Kept: the 90 days before today, today and the week ahead, of both
    // tables.
    let kept: BTreeSet<NaiveDate> = (0..=90)
        .map(days_ago)
        .chain((1..=7).map(|n| today().checked_add_days(Days::new(n)).unwrap()))
        .collect();
    assert_eq!(partition_days(&t, "events").await, kept);
    assert_eq!(partition_days(&t, "event_ids").await, kept);
    // No table of a dropped day is left behind, detached or not.
    assert_eq!(
        t.count("SELECT count(*) FROM pg_class WHERE relname ~ '^(events|event_ids)_2023111'")
            .await,
        0
    );

    assert_eq!(issue(&t, project, "stale").await, None);
    assert_eq!(issue(&t, project, "edge").await, None);
    // A live issue keeps its lifetime count, and says how many remain.
    assert_eq!(issue(&t, project, "live").await, Some((100, 91)));
    assert_eq!(issue(&t, project, "kept").await, Some((1, 1)));
    assert_eq!(
        t.count("SELECT count(*) FROM event_ids").await,
        t.count("SELECT count(*) FROM events").await,
        "the ids of the days kept, and only those"
    );
    // The tag counts of the days dropped are forgotten, those kept stay;
    // the deleted issues leave no triage rows behind.
    assert_eq!(
        t.count(&tag_counts("issue_tag_values", &dropped_days))
            .await,
        0
    );
    assert!(t.count(&tag_counts("issue_tag_values", "true")).await > 0);
    let orphans = "NOT EXISTS (SELECT 1 FROM issues i WHERE i.id = issue_id)";
    for table in ["issue_activity", "issue_tag_values", "issue_users"] {
        assert_eq!(t.count(&tag_counts(table, orphans)).await, 0, "{table}");
    }

    // A second check finds nothing more to do.
    let again = manager.send(ApplyRetention).await.unwrap().unwrap();
    assert!(
        again.partitions.is_empty() && again.issues == 0,
        "{again:?}"
    );
}

#[actix::test]
async fn no_retention_keeps_everything() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let events: Vec<Event> = (0..400)
        .step_by(40)
        .map(|n| event(project, "old", at(days_ago(n), 0)))
        .collect();
    db::events::insert_batch(&t.events, &events).await.unwrap();
    let done = manager(&t, 0).send(ApplyRetention).await.unwrap().unwrap();
    assert!(done.partitions.is_empty(), "{done:?}");
    assert_eq!(issue(&t, project, "old").await, Some((10, 10)));
}

#[actix::test]
async fn two_processes_at_once_drop_each_partition_once() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let events: Vec<Event> = (0..40)
        .map(|n| event(project, "x", at(days_ago(n), 0)))
        .collect();
    db::events::insert_batch(&t.events, &events).await.unwrap();
    // As two processes' managers would, each on connections of its own.
    let lock_timeout = t.config().partitions.lock_timeout;
    let other = db::pool(&t.url, 2).unwrap();
    let first_kept = days_ago(30);
    let (a, b) = futures_util::join!(
        db::partitions::drop_before(&t.pool, first_kept, lock_timeout),
        db::partitions::drop_before(&other, first_kept, lock_timeout)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut both: Vec<String> = a.iter().chain(&b).cloned().collect();
    both.sort();
    let mut expected: Vec<String> = (31..40)
        .flat_map(|n| {
            [
                db::partitions::partition_name(days_ago(n)),
                db::partitions::ids_partition_name(days_ago(n)),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(both, expected, "each dropped by exactly one of them");
    let kept: BTreeSet<NaiveDate> = (0..=30).map(days_ago).collect();
    assert_eq!(partition_days(&t, "events").await, kept);
    assert_eq!(partition_days(&t, "event_ids").await, kept);
    assert_eq!(t.count("SELECT count(*) FROM events").await, 31);

    // Two managers checking at once (each at start, and once more when
    // asked) neither fail nor leave anything behind.
    let events: Vec<Event> = (40..50)
        .map(|n| event(project, "x", at(days_ago(n), 0)))
        .collect();
    db::events::insert_batch(&t.events, &events).await.unwrap();
    let (one, two) = (manager(&t, 30), manager(&t, 30));
    let (a, b) = futures_util::join!(one.send(ApplyRetention), two.send(ApplyRetention));
    a.unwrap().unwrap();
    b.unwrap().unwrap();
    assert_eq!(
        partition_days(&t, "events").await.first(),
        Some(&days_ago(30))
    );
    assert_eq!(t.count("SELECT count(*) FROM events").await, 31);
}

#[actix::test]
async fn a_drop_waits_its_turn_behind_another_process_longer_than_the_lock_timeout() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let events: Vec<Event> = (0..35)
        .map(|n| event(project, "x", at(days_ago(n), 0)))
        .collect();
    db::events::insert_batch(&t.events, &events).await.unwrap();
    // Another process's turn (a large day being detached, say), held for
    // three lock timeouts.
    let lock_timeout = std::time::Duration::from_millis(300);
    let other = db::pool(&t.url, 1).unwrap();
    let holder = other.get().await.unwrap();
    holder
        .batch_execute("SELECT pg_advisory_lock(hashtext('mesher-retention'))")
        .await
        .unwrap();
    let release = async {
        actix::clock::sleep(lock_timeout * 3).await;
        holder
            .batch_execute("SELECT pg_advisory_unlock(hashtext('mesher-retention'))")
            .await
            .unwrap();
    };
    let (dropped, ()) = futures_util::join!(
        db::partitions::drop_before(&t.pool, days_ago(30), lock_timeout),
        release
    );
    assert_eq!(dropped.unwrap().len(), 2 * 4, "days 31 to 34, both tables");
    assert_eq!(t.count("SELECT count(*) FROM events").await, 31);
}

#[actix::test]
async fn a_project_keeping_seven_days_loses_only_its_own_older_events() {
    let t = TestDb::new().await;
    let (short, other) = (t.new_project().await, t.new_project().await);
    let mut events = Vec::new();
    for n in 0..20 {
        for project in [short, other] {
            events.push(event(project, "daily", at(days_ago(n), 0)));
        }
        events.push(event(short, "gone", at(days_ago(n + 8), 0)));
    }
    db::events::insert_batch(&t.events, &events).await.unwrap();
    t.execute(&format!(
        "UPDATE projects SET retention_days = 7 WHERE id = '{short}'"
    ))
    .await;

    manager(&t, 90).send(ApplyRetention).await.unwrap().unwrap();

    // Of the days before the 7th before today: 12 of "daily", all 20 of
    // "gone"; the server keeps 90 days of the rest.
    assert_eq!(t.count("SELECT count(*) FROM events").await, 20 + 8);
    assert_eq!(issue(&t, short, "daily").await, Some((20, 8)));
    assert_eq!(issue(&t, short, "gone").await, None);
    assert_eq!(issue(&t, other, "daily").await, Some((20, 20)));
    let oldest: DateTime<Utc> = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT min(received_at) FROM events WHERE project_id = $1",
            &[&short],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(oldest, at(days_ago(7), 0));
    // Its tag counts go back as far as its events, the other's further.
    let counted_days = |project: Uuid| {
        format!(
            "SELECT count(DISTINCT day) FROM issue_tag_values WHERE project_id = '{project}'
             AND key = 'level'"
        )
    };
    assert_eq!(t.count(&counted_days(short)).await, 8);
    assert_eq!(t.count(&counted_days(other)).await, 20);
}

#[actix::test]
async fn expired_sessions_are_swept() {
    let t = TestDb::new().await;
    t.execute(
        "INSERT INTO users (id, email, password_hash, display_name)
             VALUES ('00000000-0000-7000-8000-000000000001', 'a@example.com', 'x', 'A');
         INSERT INTO sessions (token_hash, user_id, expires_at) VALUES
             ('\\x01', '00000000-0000-7000-8000-000000000001', now() - interval '1 second'),
             ('\\x02', '00000000-0000-7000-8000-000000000001', now() + interval '1 day')",
    )
    .await;
    manager(&t, 90).send(ApplyRetention).await.unwrap().unwrap();
    assert_eq!(
        t.count("SELECT count(*) FROM sessions WHERE token_hash = '\\x02'")
            .await,
        1
    );
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 1);
}

#[actix::test]
async fn a_retry_received_after_midnight_is_stored_once() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    // 23:59 on the day before today, then 00:02 today.
    let first = event(project, "x", at(days_ago(1), 11 * 60 + 59));
    let again = copy(project, "x", at(today(), -718), first.id());
    assert_ne!(
        first.received_at().date_naive(),
        again.received_at().date_naive()
    );
    let stored = db::events::store_batch(&t.events, std::slice::from_ref(&first))
        .await
        .unwrap();
    assert_eq!(stored.stored, 1);
    let retried = db::events::store_batch(&t.events, std::slice::from_ref(&again))
        .await
        .unwrap();
    assert_eq!((retried.stored, retried.duplicate), (0, 1));
    // And copies written the other way round (the later received stored
    // first, as two processes or a spool replay may): still one.
    let other = event(project, "y", at(today(), -700));
    let earlier = copy(project, "y", at(days_ago(1), 11 * 60 + 40), other.id());
    db::events::store_batch(&t.events, &[other]).await.unwrap();
    let late = db::events::store_batch(&t.events, &[earlier])
        .await
        .unwrap();
    assert_eq!((late.stored, late.duplicate), (0, 1));
    assert_eq!(t.count("SELECT count(*) FROM events").await, 2);
    assert_eq!(
        t.count("SELECT sum(event_count)::bigint FROM issues").await,
        2
    );
}

#[actix::test]
async fn copies_either_side_of_midnight_written_at_once_are_stored_once() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let late = event(project, "x", at(days_ago(1), 11 * 60 + 59));
    let early = copy(project, "x", at(today(), -719), late.id());
    // Both days' partitions exist, as they would at midnight.
    db::partitions::ensure_range(&t.pool, days_ago(1), 1, t.config().partitions.lock_timeout)
        .await
        .unwrap();
    // One batch has recorded the copy of yesterday (on its day and, this
    // close to midnight, on today) and has not committed...
    let mut holder = t.pool.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    for day in [days_ago(1), today()] {
        tx.execute(
            "INSERT INTO event_ids (project_id, id, received_at, day) VALUES ($1, $2, $3, $4)",
            &[&project, &late.id(), &late.received_at(), &day],
        )
        .await
        .unwrap();
    }
    // ...while another writes today's copy: it must wait for the first.
    let events = t.events.clone();
    let writing = actix_rt::spawn(async move { db::events::store_batch(&events, &[early]).await });
    wait_until("today's copy waits for yesterday's batch", async || {
        t.count(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
            == 1
    })
    .await;
    tx.commit().await.unwrap();
    let written = writing.await.unwrap().unwrap();
    assert_eq!((written.stored, written.duplicate), (0, 1));
    assert_eq!(
        t.count("SELECT count(*) FROM event_ids").await,
        2,
        "only the first copy recorded"
    );
}

#[actix::test]
async fn an_unpartitioned_event_ids_is_moved_into_daily_partitions() {
    let old = TestDb::empty().await;
    old.execute(include_str!("../fixtures/schema-before-bodies.sql"))
        .await;
    old.execute(
        "INSERT INTO event_ids (project_id, id, received_at)
         SELECT '00000000-0000-7000-8000-000000000001', gen_random_uuid(),
             timestamptz '2024-02-20 23:30:00+00' + n * interval '20 minutes'
         FROM generate_series(0, 8) AS n",
    )
    .await;
    db::apply_schema(&old.pool).await.unwrap();
    let per_day = |day: &str| format!("SELECT count(*) FROM event_ids_{day}");
    // 23:30 and 23:50 on the 20th, each on the 21st too; seven on the 21st.
    assert_eq!(old.count(&per_day("20240220")).await, 2);
    assert_eq!(old.count(&per_day("20240221")).await, 9);
    let ids = "SELECT count(DISTINCT id) FROM event_ids";
    assert_eq!(old.count(ids).await, 9);
    // Applying it again changes nothing.
    db::apply_schema(&old.pool).await.unwrap();
    assert_eq!(old.count("SELECT count(*) FROM event_ids").await, 11);
    assert_eq!(old.count(ids).await, 9);
}

/// A bundle of one source map for `project`, with `debug_id`, last used at
/// `used_at`, made as an upload leaves it; its checksum is [`checksum`].
async fn bundle(t: &TestDb, project: Uuid, debug_id: Uuid, used_at: DateTime<Utc>) {
    let client = t.pool.get().await.unwrap();
    client
        .execute(
            "WITH b AS (
                 INSERT INTO artifact_bundles
                     (id, org_id, project_id, checksum, debug_id, file_count, bytes, used_at)
                 SELECT gen_random_uuid(), org_id, id, uuid_send($2) || '\\x00000000'::bytea, $2, 1, 2, $3
                 FROM projects WHERE id = $1
                 RETURNING id, org_id, project_id
             )
             INSERT INTO artifact_files
                 (id, bundle_id, org_id, project_id, file_type, url, debug_id, content)
             SELECT gen_random_uuid(), id, org_id, project_id, 'source_map', '~/app.js.map', $2,
                 '{}'::bytea
             FROM b",
            &[&project, &debug_id, &used_at],
        )
        .await
        .unwrap();
}

/// The (SHA-1 sized) checksum [`bundle`] gives the bundle of `debug_id`.
fn checksum(debug_id: Uuid) -> [u8; 20] {
    let mut sum = [0; 20];
    sum[..16].copy_from_slice(debug_id.as_bytes());
    sum
}

#[actix::test]
async fn source_maps_unused_past_the_retention_are_deleted_and_used_ones_stay() {
    let t = TestDb::new().await;
    let (project, short) = (t.new_project().await, t.new_project().await);
    t.execute(&format!(
        "UPDATE projects SET retention_days = 7 WHERE id = '{short}'"
    ))
    .await;
    let [unused, reporting, uploaded, recent, short_unused] = [(); 5].map(|_| Uuid::now_v7());
    bundle(&t, project, unused, at(days_ago(120), 0)).await;
    bundle(&t, project, reporting, at(days_ago(120), 0)).await;
    bundle(&t, project, uploaded, at(days_ago(120), 0)).await;
    bundle(&t, project, recent, at(days_ago(10), 0)).await;
    bundle(&t, short, short_unused, at(days_ago(10), 0)).await;
    // An event of the build still reporting needs its map now.
    let org: Uuid = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT org_id FROM projects WHERE id = $1", &[&project])
        .await
        .unwrap()
        .get(0);
    assert!(
        db::artifacts::map_by_debug_id(&t.pool, org, reporting)
            .await
            .unwrap()
            .is_some()
    );
    // The same bundle uploaded again: its assembly finds the project has
    // it, and that counts as a use.
    let lacking = db::artifacts::projects_without(&t.pool, &[project], &checksum(uploaded))
        .await
        .unwrap();
    assert!(lacking.is_empty(), "the project has that bundle already");

    let retained = manager(&t, 90).send(ApplyRetention).await.unwrap().unwrap();

    assert_eq!(retained.bundles, 2);
    let kept = |debug_id: Uuid| {
        format!(
            "SELECT count(*) FROM artifact_bundles b JOIN artifact_files f ON f.bundle_id = b.id
             WHERE b.debug_id = '{debug_id}'"
        )
    };
    assert_eq!(t.count(&kept(unused)).await, 0, "unused for 120 days");
    assert_eq!(t.count(&kept(reporting)).await, 1, "used just now");
    assert_eq!(t.count(&kept(uploaded)).await, 1, "uploaded again just now");
    assert_eq!(t.count(&kept(recent)).await, 1, "the server keeps 90 days");
    assert_eq!(t.count(&kept(short_unused)).await, 0, "its project keeps 7");
    assert_eq!(
        t.count("SELECT count(*) FROM artifact_files").await,
        3,
        "no file is left without its bundle"
    );
}

/// Chunks a build uploaded but never assembled (a refused bundle, a CI
/// job cancelled between the two calls) go a day later, with the check.
#[actix::test]
async fn upload_chunks_left_unassembled_for_a_day_are_swept() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    t.execute(&format!(
        "INSERT INTO upload_chunks (org_id, sha1, data, created_at)
         SELECT org_id, sha1, 'chunk'::bytea, now() - age
         FROM projects, (VALUES ('\\x01'::bytea, interval '25 hours'),
                                ('\\x02'::bytea, interval '1 hour')) AS c(sha1, age)
         WHERE id = '{project}'"
    ))
    .await;

    let retained = manager(&t, 90).send(ApplyRetention).await.unwrap().unwrap();

    assert_eq!(retained.chunks, 1);
    assert_eq!(
        t.count("SELECT count(*) FROM upload_chunks WHERE sha1 = '\\x02'")
            .await,
        1,
        "an hour-old chunk may still be assembled"
    );
    assert_eq!(t.count("SELECT count(*) FROM upload_chunks").await, 1);
}
