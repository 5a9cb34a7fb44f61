//! The spool's ownership, with real spool files and real databases: one
//! process and one database per spool directory.

use crate::binary::{free_port, log_lines, mesher as mesher_binary, wait_for_line};
use crate::common::{TestDb, wait_until};
use mesher::db::Reachability;
use mesher::db::spool::FILE_NAME;
use mesher::domain::Event;
use mesher::metrics::Metrics;
use mesher::services::{Spool, TotalStats};
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
    let spool = Spool::open(
        &t.config().spool,
        &t.pool,
        Reachability::default(),
        Metrics::default(),
    )
    .await
    .unwrap()
    .expect("a spool is configured");
    for &n in sizes {
        spool.put(project, events(project, n)).await.unwrap();
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
