//! The spool's ownership and replay, with real spool files and real
//! databases: one process and one database per spool directory; a row that
//! does not decode is set aside, counted and skipped; a replayed batch that
//! cannot be removed is never replayed or counted again.

use crate::binary::{free_port, log_lines, mesher as mesher_binary, wait_for_line};
use crate::common::outcomes;
use crate::common::{TestDb, wait_until};
use mesher::db::Reachability;
use mesher::db::spool::FILE_NAME;
use mesher::domain::Event;
use mesher::metrics::Metrics;
use mesher::services::{Batch, MemoryBudget, Spool, SpoolStore, TotalStats};
use mesher::{Config, Error, Mesher};
use rusqlite::Connection;
use serde_json::json;
use std::path::Path;
use uuid::Uuid;

fn config(t: &TestDb) -> Config {
    let mut config = t.config();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config
}

async fn start(config: &Config) -> Mesher {
    mesher::start(config).await.expect("start mesher")
}

/// Why `mesher::start` refused `config`, which it must, as a setup error.
async fn refusal(config: &Config) -> String {
    match mesher::start(config).await {
        Err(Error::Setup { reason }) => reason,
        Err(other) => panic!("expected a Setup error, got {}", other.report()),
        Ok(_) => panic!("started"),
    }
}

fn events(project: Uuid, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let payload = json!({
                "event_id": Uuid::now_v7().simple().to_string(),
                "message": format!("spooled {i}"),
                "fingerprint": ["spooled"],
            });
            Event::from_json(project, payload.to_string().as_bytes()).unwrap()
        })
        .collect()
}

/// Writes batches of `sizes` events of `project` into `t`'s spool, as
/// writers do during an outage, and closes it; returns their row ids.
async fn spool_batches(t: &TestDb, project: Uuid, sizes: &[usize]) -> Vec<i64> {
    let metrics = Metrics::default();
    let store = SpoolStore::open(&t.config().spool, &t.pool, metrics.clone())
        .await
        .unwrap()
        .expect("a spool is configured");
    let spool = Spool::start(store, Reachability::default());
    for &n in sizes {
        metrics.events_accepted(n as u64);
        let budget = MemoryBudget::new(1 << 30);
        let batch = Batch::take(project, events(project, n), metrics.clone(), budget);
        spool.put(batch).await.unwrap();
    }
    spool.close().await;
    let ids = rows(&t.spool_dir(), "SELECT id FROM batches ORDER BY id");
    assert_eq!(ids.len(), sizes.len());
    ids
}

/// The spool file, opened beside Mesher as an operator's sqlite3 would.
fn spool_file(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join(FILE_NAME)).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// The first column of every row of `sql` on the spool file.
fn rows(dir: &Path, sql: &str) -> Vec<i64> {
    let conn = spool_file(dir);
    let mut statement = conn.prepare(sql).unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The value of the sample `name` (labels included) in `metrics`; 0 when
/// absent.
async fn stored(t: &TestDb) -> i64 {
    t.count("SELECT count(*) FROM events").await
}

async fn spool_empty(mesher: &Mesher) -> bool {
    mesher.writers.send(TotalStats).await.unwrap().spool.batches == 0
}

#[actix::test]
async fn a_second_mesher_on_one_spool_directory_refuses_to_start_until_the_first_stops() {
    let t = TestDb::new().await;
    let first = start(&config(&t)).await;

    let reason = refusal(&config(&t)).await;
    let dir = t.spool_dir().display().to_string();
    assert!(
        reason.contains(&format!(
            "spool directory {dir} is in use by another Mesher"
        )),
        "{reason}"
    );
    assert!(reason.contains("MESHER_SPOOL_DIR"), "{reason}");

    first.shutdown().await.unwrap();
    let second = start(&config(&t)).await;
    second.shutdown().await.unwrap();
}

/// What an operator sees: the second process exits, saying why and which
/// process has the directory.
#[test]
fn a_second_process_on_one_spool_directory_exits_naming_the_first() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(TestDb::new());
    let spawn = || {
        mesher_binary(&t.url)
            .env("MESHER_HTTP_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("MESHER_SPOOL_DIR", t.spool_dir())
            .spawn()
            .expect("start mesher")
    };
    let mut first = spawn();
    let first_lines = log_lines(&mut first);
    wait_for_line(&first_lines, "ready: listening");

    let mut second = spawn();
    let second_lines = log_lines(&mut second);
    wait_for_line(
        &second_lines,
        &format!(
            "spool directory {} is in use by another Mesher (process {})",
            t.spool_dir().display(),
            first.id()
        ),
    );
    assert!(!second.wait().unwrap().success());

    first.kill().unwrap();
    first.wait().unwrap();
}

/// The name and oid PostgreSQL gives `t`'s database.
async fn identity(t: &TestDb) -> (String, u32) {
    let row = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT datname::text, oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[actix::test]
async fn a_spool_holding_one_databases_batches_refuses_another_and_loses_nothing() {
    let (a, b) = (TestDb::new().await, TestDb::new().await);
    let project = a.new_project().await;
    spool_batches(&a, project, &[3]).await;

    // B started on A's spool.
    let mut on_a_spool = config(&b);
    on_a_spool.spool.dir = Some(a.spool_dir());
    let reason = refusal(&on_a_spool).await;
    for (name, oid) in [identity(&a).await, identity(&b).await] {
        assert!(
            reason.contains(&format!("database \"{name}\" (oid {oid})")),
            "{reason} should name {name}"
        );
    }
    assert!(reason.contains("holds 3 events"), "{reason}");
    assert_eq!(rows(&a.spool_dir(), "SELECT events FROM batches"), [3]);

    // A replays its events.
    let mesher = start(&config(&a)).await;
    wait_until("A's events are replayed", async || {
        stored(&a).await == 3 && spool_empty(&mesher).await
    })
    .await;
    mesher.shutdown().await.unwrap();
    assert_eq!(stored(&b).await, 0);

    // Empty, the spool may be taken over.
    let mesher = start(&on_a_spool).await;
    mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_corrupt_spooled_batch_is_set_aside_and_counted_and_replay_goes_on() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let ids = spool_batches(&t, project, &[3, 2, 4]).await;
    let garbage: &[u8] = b"[{\"id\": \x00\xff truncated";
    spool_file(&t.spool_dir())
        .execute(
            "UPDATE batches SET body = ?1 WHERE id = ?2",
            rusqlite::params![garbage, ids[1]],
        )
        .unwrap();

    let mesher = start(&config(&t)).await;
    wait_until("the spool is worked through", async || {
        spool_empty(&mesher).await
    })
    .await;
    assert_eq!(stored(&t).await, 7, "the batches on both sides are stored");
    // Every spooled event was taken out again: 7 stored, 2 dropped.
    let metrics = outcomes::Metrics::of(&mesher.metrics);
    assert_eq!(metrics.counter("events_replayed"), 9);
    assert_eq!(metrics.counter("events_stored"), 7);
    assert_eq!(
        metrics.counter_with("events_dropped", "reason", "spool_corrupt"),
        2
    );
    // Set aside whole, for an operator.
    let conn = spool_file(&t.spool_dir());
    let (id, events, body, reason): (i64, i64, Vec<u8>, String) = conn
        .query_row(
            "SELECT id, events, body, reason FROM quarantine",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!((id, events, body.as_slice()), (ids[1], 2, garbage));
    assert!(reason.contains("decoding a spooled batch"), "{reason}");
    assert!(rows(&t.spool_dir(), "SELECT id FROM batches").is_empty());
    mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_replayed_batch_that_cannot_be_removed_is_not_replayed_again() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let ids = spool_batches(&t, project, &[3, 2]).await;
    // The file refuses to delete the first batch, as a full disk or a
    // failing one would, until the test lets it.
    spool_file(&t.spool_dir())
        .execute_batch(&format!(
            "CREATE TRIGGER keep_first BEFORE DELETE ON batches WHEN old.id = {}
             BEGIN SELECT RAISE(ABORT, 'the disk refuses'); END;",
            ids[0]
        ))
        .unwrap();

    let mesher = start(&config(&t)).await;
    // The second batch comes after the first one's failed removal.
    wait_until("the second batch is replayed and removed", async || {
        rows(&t.spool_dir(), "SELECT id FROM batches") == [ids[0]]
    })
    .await;
    assert_eq!(stored(&t).await, 5);
    assert_eq!(
        outcomes::Metrics::of(&mesher.metrics).counter("events_replayed"),
        5
    );

    spool_file(&t.spool_dir())
        .execute_batch("DROP TRIGGER keep_first")
        .unwrap();
    wait_until("the first batch is removed", async || {
        spool_empty(&mesher).await
    })
    .await;
    assert!(rows(&t.spool_dir(), "SELECT id FROM batches").is_empty());
    assert_eq!(
        outcomes::Metrics::of(&mesher.metrics).counter("events_replayed"),
        5
    );
    assert_eq!(stored(&t).await, 5);
    assert_eq!(
        t.count("SELECT sum(event_count)::bigint FROM issues").await,
        5
    );
    mesher.shutdown().await.unwrap();
}
