//! StorageWriter and WriterRegistry against a real PostgreSQL.
//!
//! Faults are real: the test renames `events` away, or installs a trigger
//! that refuses some rows, in its own database. Timers are shortened through
//! the configuration; no assertion depends on how long something took. The
//! only time bound is the liveness bound of `common::wait_until`.

use crate::common::outcomes;
use crate::common::{TestDb, wait_until};
use actix::prelude::*;
use mesher::config::WriterConfig;
use mesher::db;
use mesher::domain::{Event, EventPayload, PublicUrl};
use mesher::metrics::Metrics;
use mesher::services::{
    Admit, Batch, Commit, Committer, Drain, DrainAll, Flush, GetWriter, Landed, MemoryBudget,
    Overflow, ProjectService, Stats, StorageWriter, Store, TotalStats, WriterRegistry, WriterStats,
};
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;

/// `n` distinct events for `project`, oldest first.
fn events(project: Uuid, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let payload = EventPayload {
                message: Some(format!("event {i}")),
                ..Default::default()
            };
            Event::from_payload(project, payload).unwrap()
        })
        .collect()
}

/// Rows stored for `project`.
async fn stored_count(t: &TestDb, project: Uuid) -> i64 {
    t.count(&format!(
        "SELECT count(*) FROM events WHERE project_id = '{project}'"
    ))
    .await
}

/// Ids of the rows stored for `project`.
async fn stored_ids(t: &TestDb, project: Uuid) -> BTreeSet<Uuid> {
    t.pool
        .get()
        .await
        .unwrap()
        .query("SELECT id FROM events WHERE project_id = $1", &[&project])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Writes fail while `events` does not exist under its name. The pool
/// connects as a superuser, so revoking INSERT would not bite; a rename does.
async fn break_events_table(t: &TestDb) {
    t.execute("ALTER TABLE events RENAME TO events_off").await;
}

async fn restore_events_table(t: &TestDb) {
    t.execute("ALTER TABLE events_off RENAME TO events").await;
}

/// A writer on its own, outside any registry, on the test's arbiter with a
/// committer of its own, counting into `metrics`.
fn start_writer_counting(
    t: &TestDb,
    project: Uuid,
    config: WriterConfig,
    metrics: &Metrics,
) -> Addr<StorageWriter> {
    let committer = Committer::new(t.events.clone(), None, metrics.clone(), 2).start();
    let budget = MemoryBudget::new(config.memory_bytes);
    StorageWriter::new(project, committer, config, metrics.clone(), budget, None).start()
}

fn start_writer(t: &TestDb, project: Uuid, config: WriterConfig) -> Addr<StorageWriter> {
    start_writer_counting(t, project, config, &Metrics::default())
}

/// A registry as the wiring starts it (writers on a thread of their own),
/// with a project service to look projects up.
fn start_registry(t: &TestDb, config: WriterConfig) -> Addr<WriterRegistry> {
    let projects = ProjectService::new(
        t.pool.clone(),
        PublicUrl::parse("http://127.0.0.1:8000").unwrap(),
    )
    .start();
    mesher::system::start_storage(t.events.clone(), projects, config, Metrics::default(), None)
        .registry
}

/// Each event admitted on its own under drop-oldest, as the embedding
/// API's `Store` admits them.
fn send_all(writer: &Addr<StorageWriter>, events: &[Event]) {
    for e in events {
        writer.do_send(Admit {
            events: vec![e.clone()],
            overflow: Overflow::DropOldest,
        });
    }
}

/// The writer's counters, checked against the rule that every event received
/// is in exactly one place.
async fn stats(writer: &Addr<StorageWriter>) -> WriterStats {
    let s = writer.send(Stats).await.unwrap();
    assert_eq!(
        s.received,
        s.stored
            + s.duplicate
            + s.spooled
            + s.dropped_overflow
            + s.dropped_after_retries
            + s.refused_by_database
            + s.buffered
            + s.in_flight,
        "counters do not add up: {s:?}"
    );
    s
}

/// A config whose timer never fires during a test, so only the size trigger
/// (or an explicit Flush/Drain) writes.
fn no_timer(mut c: WriterConfig) -> WriterConfig {
    c.flush_interval = Duration::from_secs(3600);
    c
}

#[actix::test]
async fn a_full_batch_is_flushed_without_waiting_for_the_timer() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = no_timer(t.config().writer);
    config.batch_size = 5;
    let writer = start_writer(&t, project, config);

    send_all(&writer, &events(project, 5));
    wait_until("the full batch is stored", async || {
        stored_count(&t, project).await == 5
    })
    .await;

    send_all(&writer, &events(project, 4));
    // Rows can be committed before the writer hears back; wait for that so
    // the 4 cannot have joined the first batch, nor be part of one in flight.
    wait_until("the first flush is complete", async || {
        let s = stats(&writer).await;
        s.stored == 5 && s.in_flight == 0
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!((s.received, s.buffered), (9, 4), "{s:?}");
    assert_eq!(
        stored_count(&t, project).await,
        5,
        "a partial batch was written"
    );

    writer.do_send(Flush);
    wait_until("Flush stores the rest", async || {
        stats(&writer).await.stored == 9
    })
    .await;
    assert_eq!(stored_count(&t, project).await, 9);
}

#[actix::test]
async fn with_one_batch_in_flight_events_that_arrive_meanwhile_go_in_the_next() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = no_timer(t.config().writer);
    config.batch_size = 5;
    config.batches_in_flight = 1;
    let writer = start_writer(&t, project, config);

    // The batch trigger fires on the fifth; the other 35 arrive while that
    // batch is in flight and go together once it is settled, not in
    // batches of 5.
    send_all(&writer, &events(project, 40));
    wait_until("the burst is stored", async || {
        stats(&writer).await.stored == 40
    })
    .await;
    // A batch is one transaction, so its rows share one xmin.
    let batches = t
        .count("SELECT count(DISTINCT xmin::text) FROM events")
        .await;
    assert_eq!(batches, 2, "the first 5, then the 35 that came meanwhile");
}

#[actix::test]
async fn a_partial_batch_is_flushed_by_the_timer() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = t.config().writer;
    config.buffer_capacity = 1000;
    config.batch_size = 1000;
    config.flush_interval = Duration::from_millis(100);
    let writer = start_writer(&t, project, config);

    send_all(&writer, &events(project, 3));
    // The writer hears of the commit a moment after the rows are visible.
    wait_until("the timer flushes 3 events", async || {
        stats(&writer).await.stored == 3
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!((s.stored, s.buffered, s.in_flight), (3, 0, 0), "{s:?}");
    assert_eq!(stored_count(&t, project).await, 3);
}

#[actix::test]
async fn a_full_buffer_drops_exactly_the_oldest_events() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    // Events pile up only while a batch is in flight, so the first batch is
    // made to fail and retry for as long as the table is away. Its retries
    // are many and short: it must still be in flight when the table comes
    // back (however slow the test machine), then succeed promptly.
    let mut config = no_timer(t.config().writer);
    config.buffer_capacity = 5;
    config.batch_size = 5;
    config.batches_in_flight = 1;
    config.retry_backoff = vec![Duration::from_millis(20); 500];
    let writer = start_writer(&t, project, config);
    let sent = events(project, 12);

    break_events_table(&t).await;
    // 0..5 form the first batch; 5..12 arrive while it is in flight and
    // overflow the 5-event buffer by two, pushing out 5 and 6.
    send_all(&writer, &sent);
    wait_until("the first batch has failed once", async || {
        stats(&writer).await.retries >= 1
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!(
        (s.received, s.in_flight, s.buffered, s.dropped_overflow),
        (12, 5, 5, 2),
        "{s:?}"
    );

    restore_events_table(&t).await;
    wait_until("both batches are stored", async || {
        stored_count(&t, project).await == 10
    })
    .await;
    let expected: BTreeSet<Uuid> = sent[..5].iter().chain(&sent[7..]).map(|e| e.id()).collect();
    assert_eq!(stored_ids(&t, project).await, expected);
    wait_until("the writer has counted the second batch", async || {
        stats(&writer).await.stored == 10
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!(
        (s.dropped_overflow, s.dropped_after_retries),
        (2, 0),
        "{s:?}"
    );
}

#[actix::test]
async fn stats_account_for_every_event_received() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = no_timer(t.config().writer);
    config.buffer_capacity = 5;
    config.batch_size = 5;
    config.batches_in_flight = 1;
    let writer = start_writer(&t, project, config);

    // While the table is away: batch 0..5 fails for good; 5..12 arrive
    // meanwhile, 5 and 6 overflow, and 7..12 then fail for good too.
    break_events_table(&t).await;
    send_all(&writer, &events(project, 12));
    wait_until("both batches are given up", async || {
        stats(&writer).await.dropped_after_retries == 10
    })
    .await;

    // Restored: one batch of 5 is stored, 3 stay buffered (no timer).
    restore_events_table(&t).await;
    send_all(&writer, &events(project, 8));
    wait_until("the new batch is stored", async || {
        let s = stats(&writer).await;
        s.stored == 5 && s.in_flight == 0
    })
    .await;

    let s = stats(&writer).await;
    assert_eq!(
        s,
        WriterStats {
            received: 20,
            buffered: 3,
            in_flight: 0,
            stored: 5,
            duplicate: 0,
            spooled: 0,
            dropped_overflow: 2,
            dropped_after_retries: 10,
            refused_by_database: 0,
            retries: 6,
        }
    );
    assert_eq!(stored_count(&t, project).await, s.stored as i64);
}

#[actix::test]
async fn a_failed_flush_is_retried_and_stores_each_event_once() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = t.config().writer;
    // The first retry comes soon so the test can see it; the later ones
    // leave ample time to restore the table before the batch is given up.
    config.retry_backoff = [20, 2000, 2000].map(Duration::from_millis).to_vec();
    let writer = start_writer(&t, project, config);
    let sent = events(project, 7);

    break_events_table(&t).await;
    send_all(&writer, &sent);
    wait_until("the flush has failed and is being retried", async || {
        stats(&writer).await.retries >= 1
    })
    .await;
    restore_events_table(&t).await;
    wait_until("the retried batch is stored", async || {
        stats(&writer).await.stored == 7
    })
    .await;

    let s = stats(&writer).await;
    assert!((1..=3).contains(&s.retries), "{s:?}");
    assert_eq!(s.dropped_after_retries, 0, "{s:?}");
    assert_eq!(
        stored_ids(&t, project).await,
        sent.iter().map(|e| e.id()).collect()
    );
}

#[actix::test]
async fn a_batch_that_keeps_failing_is_dropped_after_three_retries() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let writer = start_writer(&t, project, t.config().writer);

    break_events_table(&t).await;
    send_all(&writer, &events(project, 6));
    wait_until("the batch is given up", async || {
        stats(&writer).await.dropped_after_retries == 6
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!((s.retries, s.stored, s.in_flight), (3, 0, 0), "{s:?}");

    // The writer is not stuck on the lost batch.
    restore_events_table(&t).await;
    let later = events(project, 4);
    send_all(&writer, &later);
    wait_until("later events are stored", async || {
        stats(&writer).await.stored == 4
    })
    .await;
    assert_eq!(
        stored_ids(&t, project).await,
        later.iter().map(|e| e.id()).collect()
    );
}

#[actix::test]
async fn a_project_whose_writes_fail_does_not_hold_back_another() {
    let t = TestDb::new().await;
    let (a, b) = (t.new_project().await, t.new_project().await);
    // A fault of the server's state (a lock not had), which is retried,
    // not one of the data, which would be split out and refused. Make the
    // cloned trigger certain: a row trigger on the partitioned table is
    // cloned to partitions, existing or created later.
    db::partitions::ensure_range(
        &t.pool,
        chrono::Utc::now().date_naive(),
        1,
        t.config().partitions.lock_timeout,
    )
    .await
    .unwrap();
    t.execute(&format!(
        "CREATE FUNCTION refuse_project_a() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.project_id = '{a}' THEN
                 RAISE EXCEPTION 'injected fault for project %', NEW.project_id
                     USING ERRCODE = 'lock_not_available';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_project_a BEFORE INSERT ON events
             FOR EACH ROW EXECUTE FUNCTION refuse_project_a();"
    ))
    .await;
    let mut config = t.config().writer;
    // Project A retries for as long as the fault lasts (bounded well past
    // the liveness bound), so it is still failing when B is checked.
    config.retry_backoff = vec![Duration::from_millis(20); 1000];
    let registry = start_registry(&t, config);

    // A's events go first, so B's cannot simply be ahead of them.
    for e in events(a, 5).into_iter().chain(events(b, 5)) {
        registry.do_send(Store(e));
    }
    wait_until("both writers are running", async || {
        let w = registry.send(GetWriter(a)).await.unwrap();
        w.is_some() && registry.send(GetWriter(b)).await.unwrap().is_some()
    })
    .await;
    let writer_a = registry.send(GetWriter(a)).await.unwrap().unwrap();
    let writer_b = registry.send(GetWriter(b)).await.unwrap().unwrap();
    assert_ne!(writer_a, writer_b, "one writer per project");

    wait_until("B is stored while A has been retried", async || {
        stored_count(&t, b).await == 5 && stats(&writer_a).await.retries >= 1
    })
    .await;
    let sa = stats(&writer_a).await;
    assert_eq!(
        (sa.stored, sa.in_flight),
        (0, 5),
        "A must still be failing: {sa:?}"
    );
    assert_eq!(stored_count(&t, a).await, 0);

    // Once the fault is gone, A's retried batch goes through.
    // Replacing the function takes no lock on `events`, unlike DROP TRIGGER,
    // which could deadlock with A's retries taking their own locks.
    t.execute(
        "CREATE OR REPLACE FUNCTION refuse_project_a() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RETURN NEW; END $$",
    )
    .await;
    wait_until("A's batch is stored", async || {
        stored_count(&t, a).await == 5
    })
    .await;
}

#[actix::test]
async fn events_of_an_unknown_project_are_refused_and_counted() {
    let t = TestDb::new().await;
    let registry = start_registry(&t, t.config().writer);
    let unknown = Uuid::now_v7();

    for e in events(unknown, 4) {
        registry.do_send(Store(e));
    }
    wait_until("the events are refused", async || {
        registry.send(TotalStats).await.unwrap().rejected == 4
    })
    .await;
    let s = registry.send(TotalStats).await.unwrap();
    assert_eq!(s.writers, 0, "{s:?}");
    assert!(registry.send(GetWriter(unknown)).await.unwrap().is_none());
    assert_eq!(t.count("SELECT count(*) FROM events").await, 0);
}

#[actix::test]
async fn a_stopped_writer_is_replaced_on_the_next_event() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let registry = start_registry(&t, t.config().writer);

    let [first, second]: [Event; 2] = events(project, 2).try_into().unwrap();
    registry.do_send(Store(first));
    wait_until("the project's writer is running", async || {
        registry.send(GetWriter(project)).await.unwrap().is_some()
    })
    .await;
    let old = registry.send(GetWriter(project)).await.unwrap().unwrap();
    let drained = old.send(Drain).await.unwrap().unwrap();
    assert_eq!(drained.stored, 1, "{drained:?}");
    wait_until("the drained writer has stopped", async || !old.connected()).await;

    registry.do_send(Store(second));
    wait_until("the event reaches a new writer and is stored", async || {
        stored_count(&t, project).await == 2
    })
    .await;
    let new = registry.send(GetWriter(project)).await.unwrap().unwrap();
    assert_ne!(new, old);
    assert!(new.connected());
}

#[actix::test]
async fn draining_the_registry_stores_every_buffered_event() {
    let t = TestDb::new().await;
    let projects = [
        t.new_project().await,
        t.new_project().await,
        t.new_project().await,
    ];
    let mut config = no_timer(t.config().writer);
    config.buffer_capacity = 1000;
    config.batch_size = 1000;
    let registry = start_registry(&t, config);

    let sent: Vec<Event> = projects.iter().flat_map(|&p| events(p, 40)).collect();
    for e in &sent {
        registry.do_send(Store(e.clone()));
    }
    // Straight away, as at shutdown: nothing has been written yet.
    let s = registry.send(DrainAll).await.unwrap();
    assert_eq!(
        (s.totals.received, s.totals.stored, s.rejected),
        (120, 120, 0),
        "{s:?}"
    );
    for p in projects {
        assert_eq!(stored_count(&t, p).await, 40);
    }
    let mut in_db = BTreeSet::new();
    for p in projects {
        in_db.extend(stored_ids(&t, p).await);
    }
    assert_eq!(in_db, sent.iter().map(|e| e.id()).collect());
}

#[actix::test]
async fn an_event_is_not_lost_when_its_partition_is_missing() {
    let t = TestDb::new().await;
    let partitions = "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass";
    assert_eq!(t.count(partitions).await, 0, "a fresh database has none");
    let project = t.new_project().await;
    let writer = start_writer(&t, project, t.config().writer);

    // One receipt time for all, even if the test runs across midnight UTC.
    let now = chrono::Utc::now();
    let sent: Vec<Event> = (0..3)
        .map(|i| {
            let payload = EventPayload {
                message: Some(format!("event {i}")),
                ..Default::default()
            };
            Event::from_payload_received_at(project, payload, now).unwrap()
        })
        .collect();
    send_all(&writer, &sent);
    wait_until("the events are stored", async || {
        stats(&writer).await.stored == 3
    })
    .await;
    let today = db::partitions::partition_name(sent[0].received_at().date_naive());
    assert_eq!(t.count(&format!("SELECT count(*) FROM {today}")).await, 3);
    assert_eq!(
        stats(&writer).await.retries,
        0,
        "created on demand, not retried"
    );
}

#[actix::test]
async fn events_already_stored_are_skipped_not_dropped_with_their_batch() {
    // A retry after a commit whose reply was lost, or an event sent twice,
    // meets rows that are already there; the new events of the batch must
    // still be stored and nothing counted as lost.
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let batch = events(project, 10);
    db::events::insert_batch(&t.events, &batch[..4])
        .await
        .unwrap();
    let writer = start_writer(&t, project, no_timer(t.config().writer));
    send_all(&writer, &batch);
    writer.do_send(Flush);
    wait_until("the batch is written", async || {
        stats(&writer).await.in_flight + stats(&writer).await.buffered == 0
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!(
        (s.stored, s.duplicate, s.dropped_after_retries, s.retries),
        (10, 0, 0, 0),
        "the 4 the first attempt stored count once, now: {s:?}"
    );
    let expected: BTreeSet<Uuid> = batch.iter().map(|e| e.id()).collect();
    assert_eq!(stored_ids(&t, project).await, expected);
}

#[actix::test]
async fn a_flush_asked_for_during_a_write_happens_after_it() {
    // The timer never fires and the batch trigger is out of reach, so only
    // the Flush sent while the first batch was still failing can write the
    // second batch.
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = no_timer(t.config().writer);
    config.batch_size = 1000;
    config.buffer_capacity = 1000;
    config.batches_in_flight = 1;
    config.retry_backoff = vec![Duration::from_millis(50); 100];
    let writer = start_writer(&t, project, config);
    let (first, second) = (events(project, 3), events(project, 4));

    break_events_table(&t).await;
    send_all(&writer, &first);
    writer.do_send(Flush);
    wait_until("the first batch is failing", async || {
        stats(&writer).await.retries >= 1
    })
    .await;
    send_all(&writer, &second);
    writer.do_send(Flush);
    assert_eq!(
        stats(&writer).await.buffered,
        4,
        "held while a batch is in flight"
    );
    restore_events_table(&t).await;

    // The rows are visible at commit, a moment before the writer hears of
    // it: wait for the writer's count, then check the rows.
    wait_until("both batches are stored", async || {
        stats(&writer).await.stored == 7
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!((s.stored, s.buffered, s.in_flight), (7, 0, 0), "{s:?}");
    assert_eq!(stored_count(&t, project).await, 7);
}

#[actix::test]
async fn a_slow_project_lookup_holds_back_only_that_project() {
    let t = TestDb::new().await;
    let (a, b) = (t.new_project().await, t.new_project().await);
    let registry = start_registry(&t, t.config().writer);
    registry.do_send(Store(events(b, 1).remove(0)));
    wait_until("B's writer is running", async || {
        stored_count(&t, b).await == 1
    })
    .await;

    // Another session holds `projects` exclusively, so A's lookup waits for
    // it, as it would for a connection while PostgreSQL is unreachable.
    let mut holder = t.pool.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    for e in events(a, 3) {
        registry.do_send(Store(e));
    }
    for e in events(b, 4) {
        registry.do_send(Store(e));
    }
    wait_until("B's events are stored while A's wait", async || {
        let s = registry.send(TotalStats).await.unwrap();
        stored_count(&t, b).await == 5 && s.pending == 3
    })
    .await;

    // Shutdown waits for the lookup, then stores A's events too.
    let drain = actix_rt::spawn(registry.send(DrainAll));
    tx.rollback().await.unwrap();
    drop(holder);
    let s = drain.await.unwrap().unwrap();
    assert_eq!((s.totals.stored, s.pending, s.rejected), (8, 0, 0), "{s:?}");
    assert_eq!(stored_count(&t, a).await, 3);
}

/// Installs a row trigger on `events` (cloned to every partition, so today's
/// partition is made first) that raises `errcode` for the rows whose release
/// contains `poison`, and also `admin_shutdown` for every row while
/// `fault_on` has a row: a fault of the server, not of the data.
async fn install_poison_trigger(t: &TestDb, errcode: &str) {
    db::partitions::ensure_range(
        &t.pool,
        chrono::Utc::now().date_naive(),
        1,
        t.config().partitions.lock_timeout,
    )
    .await
    .unwrap();
    t.execute(&format!(
        "CREATE TABLE fault_on (on_ boolean);
         CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.release LIKE '%poison%' THEN
                 RAISE EXCEPTION 'refusing %', NEW.id USING ERRCODE = '{errcode}';
             END IF;
             IF EXISTS (SELECT FROM fault_on) THEN
                 RAISE EXCEPTION 'server going down' USING ERRCODE = 'admin_shutdown';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON events
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();"
    ))
    .await;
}

/// `n` events for `project`, those at `poison` carrying the word the trigger
/// refuses; and the ids of those.
fn events_with_poison(project: Uuid, n: usize, poison: &[usize]) -> (Vec<Event>, BTreeSet<Uuid>) {
    let mut sent = events(project, n);
    let ids = poison
        .iter()
        .map(|&i| {
            let payload = EventPayload {
                message: Some(format!("poison {i}")),
                release: Some("poison".into()),
                ..Default::default()
            };
            sent[i] = Event::from_payload(project, payload).unwrap();
            sent[i].id()
        })
        .collect();
    (sent, ids)
}

/// Every event of `sent` but the `refused` is stored, each once, and the
/// issues count exactly the rows.
async fn assert_stored_once_but(
    t: &TestDb,
    project: Uuid,
    sent: &[Event],
    refused: &BTreeSet<Uuid>,
) {
    let expected: BTreeSet<Uuid> = sent
        .iter()
        .map(|e| e.id())
        .filter(|id| !refused.contains(id))
        .collect();
    assert_eq!(stored_ids(t, project).await, expected);
    assert_eq!(
        stored_count(t, project).await,
        expected.len() as i64,
        "each once"
    );
    assert_eq!(
        t.count("SELECT coalesce(sum(event_count), 0)::bigint FROM issues")
            .await,
        expected.len() as i64,
        "the issues count exactly the events stored"
    );
}

/// A plain exception from a trigger, and a unique violation (which Mesher's
/// error mapping turns into `AlreadyExists`, so the split must look at the
/// SQLSTATE before that).
#[actix::test]
async fn events_postgresql_refuses_are_split_out_and_the_rest_stored() {
    for errcode in ["raise_exception", "unique_violation"] {
        let t = TestDb::new().await;
        let project = t.new_project().await;
        install_poison_trigger(&t, errcode).await;
        let mut config = no_timer(t.config().writer);
        config.batch_size = 20;
        let metrics = Metrics::default();
        let writer = start_writer_counting(&t, project, config, &metrics);
        let (sent, poison) = events_with_poison(project, 20, &[3, 17]);
        send_all(&writer, &sent);
        wait_until("the batch is settled", async || {
            let s = stats(&writer).await;
            s.buffered == 0 && s.in_flight == 0
        })
        .await;

        let s = stats(&writer).await;
        assert_eq!(
            (s.stored, s.refused_by_database),
            (18, 2),
            "{errcode}: {s:?}"
        );
        assert_eq!(
            (s.retries, s.dropped_after_retries),
            (0, 0),
            "{errcode}: {s:?}"
        );
        assert_stored_once_but(&t, project, &sent, &poison).await;
        let m = outcomes::Metrics::of(&metrics);
        assert_eq!(
            m.counter_with("events_dropped", "reason", "refused_by_database"),
            2
        );
        m.assert_settled_and_equal_to_rows(&t).await;
    }
}

/// A fault of the server met halfway through splitting a batch fails the
/// whole write, which is retried whole: the pieces committed before it are
/// skipped through `event_ids`, so every good event is stored once and every
/// refused one counted once.
#[actix::test]
async fn a_server_fault_while_splitting_retries_the_batch_whole() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    install_poison_trigger(&t, "raise_exception").await;
    let mut config = no_timer(t.config().writer);
    config.batch_size = 20;
    // Retried for as long as the fault lasts (bounded well past the
    // liveness bound).
    config.retry_backoff = vec![Duration::from_millis(20); 1000];
    let writer = start_writer(&t, project, config);

    // Some of the batch is committed before the fault begins.
    let (first, _) = events_with_poison(project, 4, &[]);
    db::events::insert_batch(&t.events, &first[..2])
        .await
        .unwrap();
    t.execute("INSERT INTO fault_on VALUES (true)").await;
    let (mut sent, poison) = events_with_poison(project, 16, &[5, 11]);
    sent.splice(0..0, first);
    send_all(&writer, &sent);
    wait_until(
        "the batch has failed whole and is being retried",
        async || stats(&writer).await.retries >= 2,
    )
    .await;
    let s = stats(&writer).await;
    assert_eq!(
        (s.stored, s.refused_by_database, s.in_flight),
        (0, 0, 20),
        "nothing split out for a fault of the server: {s:?}"
    );

    t.execute("DELETE FROM fault_on").await;
    wait_until("the batch is settled", async || {
        let s = stats(&writer).await;
        s.buffered == 0 && s.in_flight == 0
    })
    .await;
    let s = stats(&writer).await;
    assert_eq!(
        (
            s.stored,
            s.duplicate,
            s.refused_by_database,
            s.dropped_after_retries
        ),
        (18, 0, 2, 0),
        "the two stored before the fault count once: {s:?}"
    );
    assert_stored_once_but(&t, project, &sent, &poison).await;
}

#[actix::test]
async fn batches_that_wait_for_a_connection_together_go_in_one_statement() {
    let t = TestDb::new().await;
    let pool = db::event_pool(
        &t.url,
        1,
        false,
        Default::default(),
        t.config().partitions.lock_timeout,
    )
    .unwrap();
    let metrics = Metrics::default();
    let committer = Committer::new(pool, None, metrics.clone(), 1).start();
    let mut projects = Vec::new();
    for _ in 0..20 {
        projects.push(t.new_project().await);
    }
    // The first batch's statement waits on this lock while the others
    // queue behind it for the one connection.
    let mut holder = t.pool.get().await.unwrap();
    let hold = holder.transaction().await.unwrap();
    hold.batch_execute("LOCK TABLE event_ids IN SHARE MODE")
        .await
        .unwrap();
    let replies: Vec<_> = projects
        .iter()
        .map(|&p| {
            let budget = MemoryBudget::new(1 << 20);
            committer.send(Commit(Batch::take(
                p,
                events(p, 2),
                metrics.clone(),
                budget,
            )))
        })
        .collect();
    wait_until("the first statement waits on the lock", async || {
        t.count(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
            == 1
    })
    .await;
    hold.commit().await.unwrap();
    drop(holder);

    for reply in futures_util::future::join_all(replies).await {
        match reply.unwrap() {
            Landed::Stored {
                stored: 2,
                duplicate: 0,
                refused,
            } if refused.is_empty() => {}
            other => panic!("each batch is stored whole, got {other:?}"),
        }
    }
    assert_eq!(t.count("SELECT count(*) FROM events").await, 40);
    // One transaction for the first batch, one for the 19 combined.
    assert_eq!(
        t.count("SELECT count(DISTINCT xmin::text) FROM events")
            .await,
        2
    );
    for project in projects {
        assert_eq!(stored_count(&t, project).await, 2);
    }
}

#[actix::test]
async fn a_refused_event_in_a_combined_statement_is_split_out_within_its_own_batch() {
    let t = TestDb::new().await;
    install_poison_trigger(&t, "check_violation").await;
    let pool = db::event_pool(
        &t.url,
        1,
        false,
        Default::default(),
        t.config().partitions.lock_timeout,
    )
    .unwrap();
    let metrics = Metrics::default();
    let committer = Committer::new(pool, None, metrics.clone(), 1).start();
    let batch = |p: Uuid, events: Vec<Event>| {
        Commit(Batch::take(
            p,
            events,
            metrics.clone(),
            MemoryBudget::new(1 << 20),
        ))
    };
    let (first, second, third) = (
        t.new_project().await,
        t.new_project().await,
        t.new_project().await,
    );
    // Hold the first statement so that the next three wait and combine.
    let mut holder = t.pool.get().await.unwrap();
    let hold = holder.transaction().await.unwrap();
    hold.batch_execute("LOCK TABLE event_ids IN SHARE MODE")
        .await
        .unwrap();
    let opener = committer.send(batch(first, events(first, 1)));
    let (poisoned, poison) = events_with_poison(second, 4, &[2]);
    let replies = [
        committer.send(batch(first, events(first, 3))),
        committer.send(batch(second, poisoned)),
        committer.send(batch(third, events(third, 3))),
    ];
    wait_until("the first statement waits on the lock", async || {
        t.count(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
            == 1
    })
    .await;
    hold.commit().await.unwrap();
    drop(holder);

    assert!(matches!(
        opener.await.unwrap(),
        Landed::Stored { stored: 1, .. }
    ));
    let refused: Vec<BTreeSet<Uuid>> = futures_util::future::join_all(replies)
        .await
        .into_iter()
        .map(|reply| match reply.unwrap() {
            Landed::Stored { refused, .. } => refused.into_iter().collect(),
            other => panic!("expected the batch stored, got {other:?}"),
        })
        .collect();
    assert_eq!(
        refused,
        [BTreeSet::new(), poison, BTreeSet::new()],
        "each batch's own refusals"
    );
    assert_eq!(stored_count(&t, first).await, 4);
    assert_eq!(stored_count(&t, second).await, 3);
    assert_eq!(stored_count(&t, third).await, 3);
}

/// A writer with nothing to do retires after its idle timeout (its timer
/// with it), and the project's next event starts a new one: quiet projects
/// cost no wake-ups, and nothing sent afterwards is lost.
#[actix::test]
async fn an_idle_writer_retires_and_the_next_event_starts_another() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = t.config().writer;
    config.flush_interval = Duration::from_millis(20);
    config.idle_timeout = Duration::from_millis(100);
    let metrics = Metrics::default();
    let projects = ProjectService::new(
        t.pool.clone(),
        PublicUrl::parse("http://127.0.0.1:8000").unwrap(),
    )
    .start();
    let storage =
        mesher::system::start_storage(t.events.clone(), projects, config, metrics.clone(), None);
    let running = || outcomes::Metrics::of(&metrics).gauge("writers_running");

    let [first, second]: [Event; 2] = events(project, 2).try_into().unwrap();
    storage.intake.admit(project, vec![first]).await.unwrap();
    let writer = storage
        .registry
        .send(GetWriter(project))
        .await
        .unwrap()
        .expect("a writer runs");
    wait_until("the idle writer has retired", async || {
        !writer.connected() && running() == 0
    })
    .await;
    assert_eq!(
        stored_count(&t, project).await,
        1,
        "it wrote before it left"
    );
    assert!(
        storage
            .registry
            .send(GetWriter(project))
            .await
            .unwrap()
            .is_none()
    );

    storage.intake.admit(project, vec![second]).await.unwrap();
    let again = storage.registry.send(GetWriter(project)).await.unwrap();
    assert!(again.is_some_and(|w| w != writer), "a new writer took it");
    wait_until("the second event is stored", async || {
        stored_count(&t, project).await == 2
    })
    .await;
    wait_until("the new writer has counted it", async || {
        outcomes::Metrics::of(&metrics).counter("events_stored") == 2
    })
    .await;
    outcomes::Metrics::of(&metrics)
        .assert_settled_and_equal_to_rows(&t)
        .await;
}

/// A busy project is not held to one commit at a time: a second batch goes
/// out while the first still waits, and counts stay exact and nothing is
/// stored twice however their commits interleave.
#[actix::test]
async fn a_writer_writes_batches_side_by_side_with_exact_counts() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = no_timer(t.config().writer);
    config.batch_size = 5;
    config.batches_in_flight = 2;
    let metrics = Metrics::default();
    let writer = start_writer_counting(&t, project, config, &metrics);

    // Every statement waits on this lock: both batch slots fill, and what
    // comes next waits in the buffer.
    let mut holder = t.pool.get().await.unwrap();
    let hold = holder.transaction().await.unwrap();
    hold.batch_execute("LOCK TABLE event_ids IN SHARE MODE")
        .await
        .unwrap();
    let sent = events(project, 15);
    send_all(&writer, &sent[..5]);
    wait_until("the first batch is in flight", async || {
        stats(&writer).await.in_flight == 5
    })
    .await;
    send_all(&writer, &sent[5..10]);
    wait_until("the second goes beside it", async || {
        stats(&writer).await.in_flight == 10
    })
    .await;
    send_all(&writer, &sent[10..]);
    wait_until("the third waits for a slot", async || {
        stats(&writer).await.buffered == 5
    })
    .await;
    assert_eq!(stats(&writer).await.in_flight, 10);
    hold.commit().await.unwrap();
    drop(holder);

    wait_until("every batch is settled", async || {
        let s = stats(&writer).await;
        s.stored == 15 && s.in_flight + s.buffered == 0
    })
    .await;
    assert_eq!(
        stored_ids(&t, project).await,
        sent.iter().map(|e| e.id()).collect()
    );
    outcomes::Metrics::of(&metrics)
        .assert_settled_and_equal_to_rows(&t)
        .await;
}

/// What the HTTP path may buffer is bounded by bytes, not by the seed's
/// count of events: many small events fit where a few large ones do not.
#[actix::test]
async fn what_a_request_may_add_is_bounded_by_bytes() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let mut config = no_timer(t.config().writer);
    config.batch_size = 10_000;
    config.buffer_capacity = 5;
    let mut sent = events(project, 101);
    let last = sent.pop().unwrap();
    config.buffer_bytes = sent.iter().map(Event::size).sum();
    let writer = start_writer(&t, project, config);
    let admit = async |events: Vec<Event>| writer.send(Admit::all_or_none(events)).await.unwrap();

    for e in sent {
        admit(vec![e]).await.expect("100 small events fit");
    }
    let refused = admit(vec![last]).await;
    assert!(
        matches!(refused, Err(mesher::Error::Overloaded { .. })),
        "the 101st does not: {refused:?}"
    );
    assert_eq!(stats(&writer).await.buffered, 100);
    writer.do_send(Flush);
    wait_until("the buffer is written", async || {
        stats(&writer).await.stored == 100
    })
    .await;
    admit(events(project, 1)).await.expect("room again");
}
