//! PartitionManager and the daily partitions of `events`, against a real
//! PostgreSQL.
//!
//! The managers under test take "today" from a clock the test gives them,
//! fixed on a day of its choosing, so that no test depends on the date it
//! runs on or can fail across midnight UTC.

use crate::common::{TestDb, wait_until};
use actix::prelude::*;
use chrono::{Days, NaiveDate, Utc};
use mesher::config::PartitionConfig;
use mesher::db;
use mesher::domain::{Event, EventPayload};
use mesher::metrics::Metrics;
use mesher::services::{
    Admit, Committer, EnsurePartitions, MemoryBudget, PartitionManager, Stats, StorageWriter,
};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use uuid::Uuid;

/// The day the managers under test take for today: in the past, so that
/// "now" is never in its range, and days before February 29, so that the
/// range crosses a leap day and a month's end.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 2, 25).unwrap()
}

fn day_after(day: NaiveDate, n: u64) -> NaiveDate {
    day.checked_add_days(Days::new(n)).unwrap()
}

/// Every partition of `events`, by name, with its bounds as PostgreSQL
/// prints them. The bounds print in the session's time zone, so the session
/// is put in UTC to make the text exact (`SET LOCAL`, so the pooled
/// connection goes back as it was).
async fn partitions(t: &TestDb) -> BTreeMap<String, String> {
    let mut client = t.pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'")
        .await
        .unwrap();
    tx.query(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The partitions a check on `first` must leave: that day and the 7 after,
/// each covering one UTC day.
fn expected_partitions(first: NaiveDate) -> BTreeMap<String, String> {
    (0..=7)
        .map(|n| {
            let day = day_after(first, n);
            let bound = format!(
                "FOR VALUES FROM ('{day} 00:00:00+00') TO ('{} 00:00:00+00')",
                day_after(day, 1)
            );
            (db::partitions::partition_name(day), bound)
        })
        .collect()
}

/// The partitions a check on `first` creates in a fresh database, in the
/// order it creates them: each day's `events` partition, then that day's
/// `event_ids` one.
fn created_for(first: NaiveDate, days: u64) -> Vec<String> {
    (0..days)
        .flat_map(|n| {
            let day = day_after(first, n);
            [
                db::partitions::partition_name(day),
                db::partitions::ids_partition_name(day),
            ]
        })
        .collect()
}

async fn partition_exists(t: &TestDb, name: &str) -> bool {
    t.count(&format!(
        "SELECT count(*) FROM pg_class WHERE relname = '{name}'"
    ))
    .await
        == 1
}

fn start_manager(t: &TestDb) -> Addr<PartitionManager> {
    PartitionManager::with_clock(t.pool.clone(), t.config().partitions, today).start()
}

#[actix::test]
async fn the_manager_creates_today_and_the_next_seven_days() {
    let t = TestDb::new().await;
    assert!(partitions(&t).await.is_empty(), "a fresh database has none");
    let manager = start_manager(&t);

    manager.send(EnsurePartitions).await.unwrap().unwrap();
    assert_eq!(partitions(&t).await, expected_partitions(today()));
    // Each keeps the compressed bodies as Mesher wrote them: stored out of
    // line when large, never compressed again by PostgreSQL.
    let storage = t
        .count(
            "SELECT count(*) FROM pg_attribute a JOIN pg_inherits i ON i.inhrelid = a.attrelid
             WHERE i.inhparent = 'events'::regclass AND a.attname = 'body'
               AND a.attstorage <> 'e'",
        )
        .await;
    assert_eq!(
        storage, 0,
        "partitions whose body PostgreSQL would compress"
    );
}

#[actix::test]
async fn ensuring_the_range_reports_what_it_created_and_nothing_the_second_time() {
    let t = TestDb::new().await;
    let first = today();
    let created =
        db::partitions::ensure_range(&t.pool, first, 7, t.config().partitions.lock_timeout)
            .await
            .unwrap();
    assert_eq!(created, created_for(first, 8));

    let manager = start_manager(&t);
    assert_eq!(
        manager.send(EnsurePartitions).await.unwrap().unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(partitions(&t).await.len(), 8);
}

#[actix::test]
async fn a_second_check_creates_nothing() {
    let t = TestDb::new().await;
    let manager = start_manager(&t);
    // The first reply may or may not name the partitions: the check the
    // manager runs on start can have made them already.
    manager.send(EnsurePartitions).await.unwrap().unwrap();
    let again = manager.send(EnsurePartitions).await.unwrap().unwrap();
    assert!(again.is_empty(), "created {again:?} again");
    assert_eq!(partitions(&t).await, expected_partitions(today()));
}

#[actix::test]
async fn managers_running_at_once_do_not_fail() {
    let t = TestDb::new().await;
    let (one, two) = (start_manager(&t), start_manager(&t));
    let (a, b) = futures_util::join!(one.send(EnsurePartitions), two.send(EnsurePartitions));
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert!(
        a.iter().all(|name| !b.contains(name)),
        "both created some: {a:?} {b:?}"
    );
    assert_eq!(partitions(&t).await, expected_partitions(today()));
}

#[actix::test]
async fn concurrent_range_checks_create_each_partition_once() {
    let t = TestDb::new().await;
    let first = today();
    let runs = (0..4).map(|_| {
        db::partitions::ensure_range(&t.pool, first, 7, t.config().partitions.lock_timeout)
    });
    let mut created: Vec<String> = Vec::new();
    for result in futures_util::future::join_all(runs).await {
        created.extend(result.unwrap());
    }
    created.sort();
    let mut expected = created_for(first, 8);
    expected.sort();
    assert_eq!(created, expected, "each one created by exactly one call");
    assert_eq!(partitions(&t).await, expected_partitions(first));
}

#[actix::test]
async fn the_manager_checks_again_after_its_interval() {
    let t = TestDb::new().await;
    let mut config = t.config().partitions;
    config.check_interval = Duration::from_millis(100);
    let manager = PartitionManager::with_clock(t.pool.clone(), config, today).start();
    manager.send(EnsurePartitions).await.unwrap().unwrap();

    // Dropped behind its back, it comes back only if the manager re-arms
    // itself after each check, not just at start.
    let victim = db::partitions::partition_name(day_after(today(), 3));
    t.execute(&format!("DROP TABLE {victim}")).await;
    wait_until("the dropped partition is created again", async || {
        partition_exists(&t, &victim).await
    })
    .await;
    assert_eq!(partitions(&t).await, expected_partitions(today()));
}

#[actix::test]
async fn an_event_beyond_the_created_range_is_stored_in_a_new_partition() {
    let t = TestDb::new().await;
    start_manager(&t)
        .send(EnsurePartitions)
        .await
        .unwrap()
        .unwrap();
    let project = t.new_project().await;
    let payload = EventPayload {
        message: Some("from the future".into()),
        ..Default::default()
    };
    // At noon: an event received in the last hour of its day makes the
    // next day's partitions too (its id is recorded there as well).
    let in_30_days = (Utc::now() + chrono::Duration::days(30))
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let event = Event::from_payload_received_at(project, payload, in_30_days).unwrap();
    let day = event.received_at().date_naive();
    let name = db::partitions::partition_name(day);
    assert!(!partition_exists(&t, &name).await);

    let metrics = Metrics::default();
    let committer = Committer::new(t.events.clone(), None, metrics.clone(), 2).start();
    let config = t.config().writer;
    let budget = MemoryBudget::new(config.memory_bytes);
    let writer = StorageWriter::new(project, committer, config, metrics, budget, None).start();
    writer.do_send(Admit::all_or_none(vec![event.clone()]));
    wait_until("the event is stored", async || {
        writer.send(Stats).await.unwrap().stored == 1
    })
    .await;
    let s = writer.send(Stats).await.unwrap();
    assert_eq!((s.retries, s.dropped_after_retries), (0, 0), "{s:?}");

    let in_partition: Uuid = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one(&format!("SELECT id FROM {name}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_partition, event.id());
    let all = partitions(&t).await;
    assert_eq!(
        all[&name],
        format!(
            "FOR VALUES FROM ('{day} 00:00:00+00') TO ('{} 00:00:00+00')",
            day_after(day, 1)
        )
    );
    assert_eq!(all.len(), 9);
}

#[actix::test]
async fn the_manager_follows_its_clock_into_the_next_day() {
    let t = TestDb::new().await;
    let day = Rc::new(Cell::new(today()));
    let clock = day.clone();
    let manager =
        PartitionManager::with_clock(t.pool.clone(), t.config().partitions, move || clock.get())
            .start();
    manager.send(EnsurePartitions).await.unwrap().unwrap();
    assert_eq!(partitions(&t).await, expected_partitions(today()));

    // Midnight passes: the next check adds the one new day at the far end
    // and keeps the day that has just gone by.
    day.set(day_after(today(), 1));
    let created = manager.send(EnsurePartitions).await.unwrap().unwrap();
    assert_eq!(created, created_for(day_after(today(), 8), 1));
    let mut expected = expected_partitions(today());
    expected.extend(expected_partitions(day_after(today(), 1)));
    assert_eq!(partitions(&t).await, expected);
}

#[actix::test]
async fn creating_a_partition_gives_up_rather_than_queue_behind_a_lock() {
    // Another session holds a lock that ATTACH PARTITION must wait for (a
    // long VACUUM or ANALYZE would); the creation fails after its lock
    // timeout, to be retried, instead of hanging and holding the advisory
    // lock that every other creation waits on.
    let t = TestDb::new().await;
    let mut config = t.config().partitions;
    config.lock_timeout = Duration::from_millis(100);
    let far = day_after(today(), 100);
    let manager = PartitionManager::with_clock(t.pool.clone(), config, move || far);
    let mut holder = t.pool.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE events IN SHARE UPDATE EXCLUSIVE MODE")
        .await
        .unwrap();
    let manager = manager.start();
    // A liveness bound, far above the lock timeout: without the timeout
    // the call would wait for as long as the lock is held.
    let asked = std::time::Instant::now();
    let blocked = tokio::time::timeout(Duration::from_secs(60), manager.send(EnsurePartitions))
        .await
        .expect("the creation waited instead of giving up")
        .unwrap();
    assert!(blocked.is_err(), "{blocked:?}");
    // The configured timeout applied, not the default: 100 ms against 5 s
    // leaves a margin no scheduling delay comes near.
    let default = PartitionConfig::default().lock_timeout;
    assert!(
        asked.elapsed() < default,
        "gave up only after {:?}",
        asked.elapsed()
    );
    tx.rollback().await.unwrap();
    drop(holder);
    // Once the lock is gone, creating succeeds. (With the default lock
    // timeout: the manager's own start-up check, blocked until now too, may
    // hold the advisory lock for a moment, longer than 100 ms on a busy
    // machine; which of the two creates the partition does not matter.)
    db::partitions::ensure_range(&t.pool, far, 0, t.config().partitions.lock_timeout)
        .await
        .unwrap();
    let name = db::partitions::partition_name(far);
    assert!(partition_exists(&t, &name).await);
}
