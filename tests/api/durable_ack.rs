//! "200 means on disk" (`MESHER_ACK=durable`): the `mesher` process killed
//! with SIGKILL in the middle of a steady stream of envelopes, with and
//! without PostgreSQL cut at the same moment; a full acknowledgement log;
//! a torn tail. After a restart every event answered 200 is in the table
//! exactly once, and the restarted process's books balance against the
//! rows it added.

use crate::binary::{free_port, log_lines, mesher as mesher_binary, wait_for_line};
use crate::common::outcomes::Metrics;
use crate::common::proxy::Proxy;
use crate::common::{TestDb, wait_until};
use crate::helpers::Services;
use mesher::domain::{NewApiKey, Project};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::rc::Rc;
use std::sync::mpsc::Receiver;
use std::time::Duration;
use uuid::Uuid;

/// One SDK-shaped envelope holding one event with the id `id`.
fn envelope(id: Uuid, dsn: &str, n: usize) -> String {
    let header = json!({ "event_id": id.simple().to_string(), "dsn": dsn });
    let event = json!({
        "event_id": id.simple().to_string(),
        "message": format!("steady event {n}"),
        "level": "error",
        "platform": "rust",
    });
    format!("{header}\n{{\"type\":\"event\"}}\n{event}\n")
}

/// Posts one envelope; the status, and `Retry-After` if any; `None` when
/// no answer came (the process was killed under it).
async fn post_envelope(
    client: &awc::Client,
    url: &str,
    key: &str,
    body: String,
) -> Option<(u16, Option<String>)> {
    let mut response = client
        .post(url)
        .insert_header((
            "X-Sentry-Auth",
            format!("Sentry sentry_key={key}, sentry_version=7"),
        ))
        .send_body(body)
        .await
        .ok()?;
    let _ = response.body().await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    Some((response.status().as_u16(), retry_after))
}

/// A project with a key, made through the services (not through the
/// process under test, which is killed).
async fn project(t: &TestDb) -> (Project, NewApiKey) {
    let services = Services::start(t);
    let org = services.org("Org", "org").await;
    let project = services.project(&org, "app").await;
    let key = services.key(&project, "sdk").await;
    (project, key)
}

/// The `mesher` binary on `addr`, with the test's spool directory,
/// connecting through `proxy`, acknowledging as `ack` says; started, with
/// its log lines up to "ready" and the channel of those to come.
fn run(
    t: &TestDb,
    proxy: &Proxy,
    addr: &str,
    ack: &str,
    env: &[(&str, &str)],
) -> (Child, Vec<String>, Receiver<String>) {
    let mut command = mesher_binary(&proxy.url(&t.url));
    command
        .env("MESHER_HTTP_ADDR", addr)
        .env("MESHER_SPOOL_DIR", t.spool_dir())
        .env("MESHER_ACK", ack)
        .env("MESHER_WRITER_RETRY_MS", "100,500,2000,5000");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("start mesher");
    let lines = log_lines(&mut child);
    let mut seen = Vec::new();
    while !seen
        .last()
        .is_some_and(|l: &String| l.contains("ready: listening"))
    {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("mesher logs that it is ready");
        seen.push(line);
    }
    (child, seen, lines)
}

fn kill_9(child: &mut Child) {
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}

fn sigterm(child: &mut Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
}

async fn scrape(addr: &str) -> Metrics {
    let body = awc::Client::default()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    Metrics::parse(std::str::from_utf8(&body).unwrap())
}

/// How many rows of `events` have one of `ids`.
async fn stored_of(t: &TestDb, ids: &[Uuid]) -> i64 {
    let client = t.pool.get().await.unwrap();
    let ids = ids.to_vec();
    client
        .query_one("SELECT count(*) FROM events WHERE id = ANY($1)", &[&ids])
        .await
        .unwrap()
        .get(0)
}

/// Every row a distinct event, and the issues count exactly the rows.
async fn assert_no_duplicates(t: &TestDb) {
    let rows = t.count("SELECT count(*) FROM events").await;
    assert_eq!(
        t.count("SELECT count(DISTINCT id) FROM events").await,
        rows,
        "no event stored twice"
    );
    assert_eq!(
        t.count("SELECT coalesce(sum(event_count), 0)::bigint FROM issues")
            .await,
        rows
    );
}

/// What one SIGKILL mid-stream did.
struct Killed {
    /// Events answered 200 before the kill.
    acknowledged: usize,
    /// Of those, not in the table after the restart settled.
    lost: i64,
    /// Events the restarted process read back from the log.
    replayed_from_log: u64,
    /// Events the restarted process replayed from the spool.
    replayed_from_spool: u64,
}

/// When PostgreSQL is cut off from the first process.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cut {
    Never,
    /// At the moment of the SIGKILL.
    AtTheKill,
    /// Before it, which waits until the process has spooled some of what
    /// it accepts meanwhile: it is killed with those events both in its
    /// spool and in its log.
    UntilSpooled,
}

/// Envelopes from `CLIENTS` clients, each one every `PACE` (about 800
/// events a second in all), until the process is killed with SIGKILL once
/// `KILL_AFTER` have been answered 200 (PostgreSQL cut as `cut` says);
/// then a restart on the same spool directory, acknowledging by
/// `restart_ack`.
/// Waits until the restarted process has settled everything, checks that
/// nothing is stored twice and that its books balance against the rows it
/// added, and reports how many events answered 200 are missing.
async fn kill_mid_stream(ack: &str, restart_ack: &str, cut: Cut) -> Killed {
    const CLIENTS: usize = 8;
    const PACE: Duration = Duration::from_millis(10);
    const KILL_AFTER: usize = 1_000;
    let t = TestDb::new().await;
    let proxy = Proxy::start(&t.url);
    let (project, key) = project(&t).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/{}/envelope/", project.public_id);
    let dsn = format!("http://{}@{addr}/{}", key.key.expose(), project.public_id);
    let (mut first, _, _lines) = run(&t, &proxy, &addr, ack, &[]);

    let acknowledged = Rc::new(RefCell::new(Vec::new()));
    let stop = Rc::new(Cell::new(false));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        let (url, dsn, key) = (url.clone(), dsn.clone(), key.key.expose().to_owned());
        clients.push(actix_rt::spawn(async move {
            let http = awc::Client::builder()
                .timeout(Duration::from_secs(10))
                .finish();
            let mut pace = tokio::time::interval(PACE);
            let mut n = client;
            while !stop.get() {
                pace.tick().await;
                let id = Uuid::now_v7();
                let answer = post_envelope(&http, &url, &key, envelope(id, &dsn, n)).await;
                if let Some((200, _)) = answer {
                    acknowledged.borrow_mut().push(id);
                }
                n += CLIENTS;
            }
        }));
    }
    wait_until("enough events are answered 200", async || {
        acknowledged.borrow().len() >= KILL_AFTER
    })
    .await;
    match cut {
        Cut::Never => {}
        Cut::AtTheKill => proxy.cut(),
        Cut::UntilSpooled => {
            proxy.cut();
            wait_until("the outage has events spooled", async || {
                scrape(&addr).await.gauge("spool_events") > 0
            })
            .await;
        }
    }
    kill_9(&mut first);
    stop.set(true);
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.take();
    let rows_before = t.count("SELECT count(*) FROM events").await;
    proxy.restore();

    let (mut second, _, _lines) = run(&t, &proxy, &addr, restart_ack, &[]);
    let settled = async || {
        let m = scrape(&addr).await;
        m.gauge("events_in_flight") == 0
            && m.gauge("events_buffered") == 0
            && m.gauge("spool_events") == 0
            && m.gauge("ack_log_bytes") <= 8
    };
    wait_until(
        "the restarted process has settled what it read back",
        settled,
    )
    .await;
    let metrics = scrape(&addr).await;
    metrics.assert_balanced();
    let rows_after = t.count("SELECT count(*) FROM events").await;
    assert_eq!(
        rows_after - rows_before,
        metrics.counter("events_stored") as i64,
        "the restarted process's stored events are the rows it added"
    );
    assert_no_duplicates(&t).await;
    let lost = acknowledged.len() as i64 - stored_of(&t, &acknowledged).await;
    let replayed_from_log = metrics.counter_with("events_replayed", "from", "ack_log");
    let replayed_from_spool = metrics.counter_with("events_replayed", "from", "spool");
    eprintln!(
        "MESHER_ACK={ack}, PostgreSQL cut {cut:?}: {} events answered 200 before SIGKILL, \
         {rows_before} rows then; {replayed_from_log} read back from the log and \
         {replayed_from_spool} from the spool at restart; {lost} lost",
        acknowledged.len()
    );
    sigterm(&mut second);
    Killed {
        acknowledged: acknowledged.len(),
        lost,
        replayed_from_log,
        replayed_from_spool,
    }
}

#[actix::test]
async fn sigkill_mid_stream_loses_no_event_answered_200() {
    let killed = kill_mid_stream("durable", "durable", Cut::Never).await;
    assert!(killed.acknowledged >= 1_000);
    assert_eq!(killed.lost, 0, "every event answered 200 is stored");
    assert!(
        killed.replayed_from_log > 0,
        "the kill left accepted events unsettled, which the log kept"
    );
}

#[actix::test]
async fn sigkill_with_postgresql_cut_at_the_same_moment_loses_no_event_answered_200() {
    let killed = kill_mid_stream("durable", "durable", Cut::AtTheKill).await;
    assert_eq!(killed.lost, 0, "every event answered 200 is stored");
}

/// Killed during an outage, the process leaves the events it
/// accepted meanwhile both in its spool and in its log. The restart
/// replays both copies and stores each event once, and counts as stored
/// only the rows it adds, whichever copy lands first (`kill_mid_stream`
/// checks the books).
#[actix::test]
async fn sigkill_during_an_outage_replays_the_spool_and_the_log_and_counts_each_event_once() {
    let killed = kill_mid_stream("durable", "durable", Cut::UntilSpooled).await;
    assert_eq!(killed.lost, 0, "every event answered 200 is stored");
    assert!(
        killed.replayed_from_spool > 0,
        "the outage filled the spool"
    );
    assert!(killed.replayed_from_log > 0, "the log was read back");
}

/// Switching to memory acknowledgement after a crash still stores what
/// the durable run answered 200: the log it left is replayed.
#[actix::test]
async fn a_restart_with_memory_acknowledgement_replays_what_the_durable_run_left() {
    let killed = kill_mid_stream("durable", "memory", Cut::Never).await;
    assert!(killed.replayed_from_log > 0, "the log was read back");
    assert_eq!(killed.lost, 0, "every event answered 200 is stored");
}

/// Not a test of Mesher but the figure the README quotes: what
/// `MESHER_ACK=memory` loses to a SIGKILL under the same load (events
/// answered 200 from a writer's buffer).
#[actix::test]
#[ignore = "a measurement: run with --ignored to see what memory acknowledgement loses"]
async fn sigkill_mid_stream_with_memory_acknowledgement() {
    let killed = kill_mid_stream("memory", "memory", Cut::Never).await;
    assert_eq!(killed.replayed_from_log, 0, "no log in memory mode");
    eprintln!(
        "memory acknowledgement lost {} of {} events answered 200",
        killed.lost, killed.acknowledged
    );
}

/// The newest segment of the acknowledgement log in `spool`.
fn newest_segment(spool: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(spool.join("ack-log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

#[actix::test]
async fn a_torn_tail_is_cut_off_and_the_records_before_it_replayed() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&t.url);
    let (project, key) = project(&t).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/{}/envelope/", project.public_id);
    let dsn = format!("http://{}@{addr}/{}", key.key.expose(), project.public_id);
    // Events wait in the writer's buffer (no flush before the kill): only
    // the log has them.
    let hold = [("MESHER_WRITER_FLUSH_MS", "600000")];
    let (mut first, _, _lines) = run(&t, &proxy, &addr, "durable", &hold);
    let http = awc::Client::default();
    let mut acknowledged = Vec::new();
    for n in 0..30 {
        let id = Uuid::now_v7();
        let answer = post_envelope(&http, &url, key.key.expose(), envelope(id, &dsn, n)).await;
        assert_eq!(answer.map(|a| a.0), Some(200));
        acknowledged.push(id);
    }
    kill_9(&mut first);
    assert_eq!(t.count("SELECT count(*) FROM events").await, 0);

    // A crash in the middle of the next append: a header announcing 300
    // bytes, and 5 of them.
    let segment = newest_segment(&t.spool_dir());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&segment)
        .unwrap();
    file.write_all(&300u32.to_le_bytes()).unwrap();
    file.write_all(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
    file.write_all(b"torn!").unwrap();
    drop(file);

    let (mut second, seen, lines) = run(&t, &proxy, &addr, "durable", &[]);
    if !seen.iter().any(|l| l.contains("cut off 13 bytes")) {
        wait_for_line(&lines, "cut off 13 bytes");
    }
    wait_until("the acknowledged events are stored", async || {
        stored_of(&t, &acknowledged).await == 30
    })
    .await;
    wait_until("the segment is settled and deleted", async || {
        !segment.exists()
    })
    .await;
    let metrics = scrape(&addr).await;
    assert_eq!(
        metrics.counter_with("events_replayed", "from", "ack_log"),
        30
    );
    assert_eq!(metrics.counter("events_stored"), 30);
    metrics.assert_balanced();
    assert_no_duplicates(&t).await;
    sigterm(&mut second);
}

#[actix::test]
async fn a_full_log_refuses_with_retry_after_and_loses_nothing_it_accepted() {
    let t = TestDb::new().await;
    let mesher = t
        .start_with(|c| {
            c.ack.max_bytes = 16 * 1024;
            c.writer.flush_interval = Duration::from_millis(20);
        })
        .await;
    let (project, key) = project(&t).await;
    let addr = mesher.http_addr.to_string();
    let url = format!("http://{addr}/api/{}/envelope/", project.public_id);
    let dsn = format!("http://{}@{addr}/{}", key.key.expose(), project.public_id);
    let http = awc::Client::default();

    // Every event of this project goes to one issue, whose row the test
    // holds locked: batches wait mid-statement, unsettled, and the log
    // fills with the events they hold.
    let first = Uuid::now_v7();
    let answer = post_envelope(&http, &url, key.key.expose(), envelope(first, &dsn, 0)).await;
    assert_eq!(answer.map(|a| a.0), Some(200));
    wait_until("the first event is stored", async || {
        stored_of(&t, &[first]).await == 1
    })
    .await;
    let mut holder = t.pool.get().await.unwrap();
    let hold = holder.transaction().await.unwrap();
    hold.execute("SELECT 1 FROM issues FOR UPDATE", &[])
        .await
        .unwrap();

    let mut acknowledged = vec![first];
    let mut refused = None;
    for n in 1..2_000 {
        let id = Uuid::now_v7();
        match post_envelope(&http, &url, key.key.expose(), envelope(id, &dsn, n)).await {
            Some((200, _)) => acknowledged.push(id),
            other => {
                refused = other;
                break;
            }
        }
    }
    // Refused as the log is full (a wait like an outage's), not as a busy
    // writer (one second).
    assert_eq!(refused, Some((429, Some("10".to_owned()))));
    let metrics = Metrics::of(&mesher.metrics);
    assert!(metrics.gauge("ack_log_bytes") > 0);
    assert_eq!(
        metrics.counter_with("events_refused", "reason", "overloaded"),
        1
    );

    hold.rollback().await.unwrap();
    drop(holder);
    wait_until("every event answered 200 is stored", async || {
        stored_of(&t, &acknowledged).await == acknowledged.len() as i64
    })
    .await;
    wait_until("nothing is left in flight", async || {
        let m = Metrics::of(&mesher.metrics);
        m.gauge("events_in_flight") == 0 && m.gauge("events_buffered") == 0
    })
    .await;
    assert_no_duplicates(&t).await;
    assert_eq!(
        t.count("SELECT count(*) FROM events").await,
        acknowledged.len() as i64
    );
    Metrics::of(&mesher.metrics)
        .assert_settled_and_equal_to_rows(&t)
        .await;
    // Room again once settled.
    let later = Uuid::now_v7();
    let answer = post_envelope(&http, &url, key.key.expose(), envelope(later, &dsn, 0)).await;
    assert_eq!(answer.map(|a| a.0), Some(200));
    mesher.shutdown().await.unwrap();
}

/// A log a crashed run left is for the database that run wrote to: a
/// process started on another database with the same directory refuses
/// to start, naming both, rather than replaying the events there (where
/// their project does not exist, so they would be refused and the log
/// deleted); started on its own database again, it stores them.
#[actix::test]
async fn a_log_left_for_one_database_is_replayed_into_it_and_no_other() {
    let (a, b) = (TestDb::new().await, TestDb::new().await);
    let proxy = Proxy::start(&a.url);
    let (project, key) = project(&a).await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/{}/envelope/", project.public_id);
    let dsn = format!("http://{}@{addr}/{}", key.key.expose(), project.public_id);
    let (mut first, _, _lines) = run(&a, &proxy, &addr, "durable", &[]);

    // Writes to A wait on a held lock: the events answered 200 are in the
    // log only when the process is killed.
    let mut holder = a.pool.get().await.unwrap();
    let hold = holder.transaction().await.unwrap();
    hold.batch_execute("LOCK TABLE issues IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let http = awc::Client::default();
    let ids: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    for (n, id) in ids.iter().enumerate() {
        let answer = post_envelope(&http, &url, key.key.expose(), envelope(*id, &dsn, n)).await;
        assert_eq!(answer.map(|(status, _)| status), Some(200));
    }
    kill_9(&mut first);
    // The killed process's statements go with their connections.
    hold.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    hold.rollback().await.unwrap();
    drop(holder);
    assert_eq!(a.count("SELECT count(*) FROM events").await, 0);

    // B on A's directory.
    let mut on_b = mesher_binary(&b.url)
        .env("MESHER_HTTP_ADDR", &addr)
        .env("MESHER_SPOOL_DIR", a.spool_dir())
        .env("MESHER_ACK", "durable")
        .spawn()
        .expect("start mesher");
    let lines = log_lines(&mut on_b);
    let refusal = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("mesher on B says why it does not start");
        if line.contains("segment(s) of acknowledgement log") {
            break line;
        }
    };
    assert!(!on_b.wait().unwrap().success(), "B does not start");
    for t in [&a, &b] {
        let name = t.url.rsplit('/').next().unwrap();
        assert!(
            refusal.contains(&format!("database \"{name}\"")),
            "{refusal}"
        );
    }
    assert_eq!(b.count("SELECT count(*) FROM events").await, 0);

    // A again: every event answered 200 is stored.
    let (mut again, _, _lines) = run(&a, &proxy, &addr, "durable", &[]);
    wait_until("the log is replayed into A", async || {
        stored_of(&a, &ids).await == ids.len() as i64
    })
    .await;
    assert_no_duplicates(&a).await;
    sigterm(&mut again);
}
