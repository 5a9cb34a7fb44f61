//! PostgreSQL outages, made real with a TCP proxy between Mesher and
//! PostgreSQL that the test cuts (connections reset, new ones refused) and
//! restores: no event Mesher took may be lost or stored twice.

use crate::binary::{free_port, log_lines, mesher as mesher_binary, wait_for_line};
use crate::common::outcomes::Metrics;
use crate::common::proxy::Proxy;
use crate::common::{TestDb, wait_until};
use crate::helpers::Services;
use mesher::domain::Event;
use mesher::services::{Store, TotalStats};
use mesher::{Config, Mesher};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn event(project: Uuid, fingerprint: &str, n: usize) -> Event {
    let payload = json!({
        "event_id": Uuid::now_v7().simple().to_string(),
        "message": format!("outage event {n}"),
        "fingerprint": [fingerprint],
    });
    Event::from_json(project, payload.to_string().as_bytes()).unwrap()
}

/// A Mesher whose every connection to PostgreSQL goes through `proxy`.
async fn start_behind(t: &TestDb, proxy: &Proxy, tune: impl FnOnce(&mut Config)) -> Mesher {
    t.start_with(|config| {
        config.database_url = proxy.url(&t.url);
        tune(config);
    })
    .await
}

async fn stored(t: &TestDb) -> i64 {
    t.count("SELECT count(*) FROM events").await
}

/// Every event stored once, and the issues count exactly those.
async fn assert_each_stored_once(t: &TestDb, expected: i64) {
    assert_eq!(stored(t).await, expected);
    assert_eq!(
        t.count("SELECT count(DISTINCT id) FROM events").await,
        expected
    );
    assert_eq!(
        t.count("SELECT coalesce(sum(event_count), 0)::bigint FROM issues")
            .await,
        expected
    );
}

#[actix::test]
async fn a_three_second_outage_at_1000_events_a_second_loses_nothing() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&t.url);
    let mesher = start_behind(&t, &proxy, |_| {}).await;
    let project = t.new_project().await;

    // 1,000 events a second for 6 s through the embedding API, PostgreSQL
    // cut off from 1.5 s to 4.5 s.
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let (mut sent, mut restored_at, mut back_after) = (0, None, None);
    let mut stored_at_restore = 0;
    for tick in 0..600 {
        ticker.tick().await;
        for _ in 0..10 {
            mesher
                .writers
                .do_send(Store(event(project, "steady", sent)));
            sent += 1;
        }
        match tick {
            150 => proxy.cut(),
            450 => {
                proxy.restore();
                restored_at = Some(Instant::now());
                stored_at_restore = mesher.writers.send(TotalStats).await.unwrap().totals.stored;
            }
            _ => {}
        }
        if tick % 50 == 0 {
            // The accounting identity holds at any moment, outage or not.
            let s = mesher.writers.send(TotalStats).await.unwrap().totals;
            let placed = s.stored
                + s.duplicate
                + s.spooled
                + s.dropped_overflow
                + s.dropped_after_retries
                + s.refused_by_database
                + s.buffered
                + s.in_flight;
            assert_eq!(s.received, placed, "at tick {tick}: {s:?}");
            Metrics::of(&mesher.metrics).assert_balanced();
        }
        // How soon the writers store to PostgreSQL again (reported, not
        // asserted: no test times the machine).
        if let (Some(at), None) = (restored_at, back_after)
            && mesher.writers.send(TotalStats).await.unwrap().totals.stored > stored_at_restore
        {
            back_after = Some(at.elapsed());
        }
    }
    eprintln!("writers stored again {back_after:?} after PostgreSQL answered again");

    wait_until("every event is stored", async || {
        stored(&t).await == sent as i64
    })
    .await;
    wait_until("the spool is empty and the writers idle", async || {
        let s = mesher.writers.send(TotalStats).await.unwrap();
        s.spool.events == 0 && s.totals.buffered == 0 && s.totals.in_flight == 0
    })
    .await;
    assert_each_stored_once(&t, sent as i64).await;

    let stats = mesher.writers.send(TotalStats).await.unwrap();
    let totals = stats.totals;
    assert_eq!(totals.received, sent as u64);
    assert_eq!(
        (totals.dropped_overflow, totals.dropped_after_retries),
        (0, 0)
    );
    assert!(totals.spooled > 0, "the outage went through the spool");
    assert_eq!(totals.stored + totals.spooled, totals.received);
    let metrics = Metrics::of(&mesher.metrics);
    assert_eq!(metrics.counter("events_replayed"), totals.spooled);
    assert_eq!(
        metrics.counter("events_stored"),
        sent as u64,
        "stored counts the writers' and the replayed events"
    );
    metrics.assert_settled_and_equal_to_rows(&t).await;
    mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_spool_left_by_an_earlier_run_is_replayed_at_start() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&t.url);
    let first = start_behind(&t, &proxy, |_| {}).await;
    let project = t.new_project().await;

    proxy.cut();
    for n in 0..300 {
        first.writers.do_send(Store(event(project, "left", n)));
    }
    // Stopping drains the writers: with PostgreSQL away, into the spool.
    let stats = first.shutdown().await.unwrap();
    assert_eq!(stats.totals.spooled, 300);
    assert_eq!(stats.spool.events, 300);
    proxy.restore();
    assert_eq!(stored(&t).await, 0);

    let second = start_behind(&t, &proxy, |_| {}).await;
    wait_until("the earlier run's events are stored", async || {
        stored(&t).await == 300
    })
    .await;
    wait_until("the spool is empty", async || {
        second.writers.send(TotalStats).await.unwrap().spool.events == 0
    })
    .await;
    assert_each_stored_once(&t, 300).await;
    let metrics = Metrics::of(&second.metrics);
    assert_eq!(metrics.counter("events_replayed"), 300);
    metrics.assert_settled_and_equal_to_rows(&t).await;
    second.shutdown().await.unwrap();
}

/// What an SDK would post: `n` events to the native endpoint.
async fn post_events(url: &str, key: &str, events: &[serde_json::Value]) -> awc::http::StatusCode {
    post_events_with_headers(url, key, events).await.0
}

/// As [`post_events`], with the `Retry-After` header, if any.
async fn post_events_with_headers(
    url: &str,
    key: &str,
    events: &[serde_json::Value],
) -> (awc::http::StatusCode, Option<String>) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut response = client
        .post(url)
        .insert_header(("Authorization", format!("Bearer {key}")))
        .send_json(&events)
        .await
        .expect("request");
    let _ = response.body().await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status(), retry_after)
}

fn payloads(fingerprint: &str, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            json!({
                "event_id": Uuid::now_v7().simple().to_string(),
                "message": format!("{fingerprint} {i}"),
                "fingerprint": [fingerprint],
            })
        })
        .collect()
}

#[actix::test]
async fn a_full_spool_refuses_events_with_429_and_counts_what_it_could_not_keep() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&t.url);
    let mesher = start_behind(&t, &proxy, |c| c.spool.max_bytes = 64 * 1024).await;
    let services = Services::start(&t);
    let org = services.org("Org", "org").await;
    let project = services.project(&org, "app").await;
    let key = services.key(&project, "sdk").await;
    let url = format!("http://{}/api/v1/events", mesher.http_addr);
    // An application that reports all the time: its key is in Mesher's
    // cache when the outage begins (an unknown key cannot be checked
    // without PostgreSQL: 503).
    let warm = post_events(&url, key.key.expose(), &payloads("warm", 1)).await;
    assert_eq!(warm, awc::http::StatusCode::OK);
    wait_until("the first event is stored", async || stored(&t).await == 1).await;

    proxy.cut();
    let (mut accepted, mut refused) = (0u64, None);
    for _ in 0..200 {
        match post_events_with_headers(&url, key.key.expose(), &payloads("full", 20)).await {
            (awc::http::StatusCode::OK, _) => accepted += 20,
            other => {
                refused = Some(other);
                break;
            }
        }
    }
    // Refused as the spool is full (asked to wait out an outage), not as
    // a busy writer (one second).
    assert_eq!(
        refused,
        Some((awc::http::StatusCode::TOO_MANY_REQUESTS, Some("10".into()))),
        "a full spool refuses"
    );
    assert!(accepted > 0, "the spool took events until it was full");
    // The event sent before the outage.
    let accepted = accepted + 1;

    proxy.restore();
    let dropped =
        || Metrics::of(&mesher.metrics).counter_with("events_dropped", "reason", "spool_full");
    wait_until(
        "every accepted event is stored or counted as dropped",
        async || stored(&t).await as u64 + dropped() == accepted,
    )
    .await;
    assert_each_stored_once(&t, accepted as i64 - dropped() as i64).await;
    wait_until("nothing is in flight", async || {
        Metrics::of(&mesher.metrics).gauge("events_in_flight") == 0
    })
    .await;
    Metrics::of(&mesher.metrics)
        .assert_settled_and_equal_to_rows(&t)
        .await;
    mesher.shutdown().await.unwrap();
}

/// Mesher is killed (SIGKILL) while replaying: one spooled batch is
/// committed, the next is held mid-statement by a lock the test holds. The
/// next run replays what is left; nothing is lost or stored twice.
#[actix::test]
async fn mesher_killed_mid_replay_loses_nothing_and_stores_nothing_twice() {
    let t = TestDb::new().await;
    let proxy = Proxy::start(&t.url);
    let services = Services::start(&t);
    let org = services.org("Org", "org").await;
    let project = services.project(&org, "app").await;
    let key = services.key(&project, "sdk").await;
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{addr}/api/v1/events");
    let spool = t.spool_dir();
    let run = || {
        let mut child = mesher_binary(&proxy.url(&t.url))
            .env("MESHER_HTTP_ADDR", &addr)
            .env("MESHER_SPOOL_DIR", &spool)
            .env("MESHER_WRITER_FLUSH_MS", "50")
            .spawn()
            .expect("start mesher");
        let lines = log_lines(&mut child);
        wait_for_line(&lines, "ready: listening");
        (child, lines)
    };
    let spooled = async || {
        let body = awc::Client::default()
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
        Metrics::parse(std::str::from_utf8(&body).unwrap()).counter("events_spooled")
    };

    let (mut first, _lines) = run();
    // Warms the key cache (see the test of a full spool).
    let warm = post_events(&url, key.key.expose(), &payloads("warm", 1)).await;
    assert_eq!(warm, awc::http::StatusCode::OK);
    wait_until("the first event is stored", async || stored(&t).await == 1).await;
    proxy.cut();
    for fingerprint in ["first", "second"] {
        for _ in 0..2 {
            let status = post_events(&url, key.key.expose(), &payloads(fingerprint, 100)).await;
            assert_eq!(status, awc::http::StatusCode::OK);
        }
        // One spooled batch per fingerprint.
        let expected = if fingerprint == "first" { 200 } else { 400 };
        wait_until("the batch is spooled", async || spooled().await == expected).await;
    }

    // The second batch's issue row, inserted and not committed: its upsert
    // waits on this transaction.
    let fingerprint_of = |name| event(project.id, name, 0).fingerprint().to_owned();
    let mut holder = t.pool.get().await.unwrap();
    let hold = holder.transaction().await.unwrap();
    hold.execute(
        "INSERT INTO issues (id, project_id, fingerprint, title, level) \
         VALUES (gen_random_uuid(), $1, $2, 'held', 'error')",
        &[&project.id, &fingerprint_of("second")],
    )
    .await
    .unwrap();

    proxy.restore();
    wait_until("the first batch is replayed", async || {
        stored(&t).await == 201
    })
    .await;
    wait_until("the second batch waits on the held lock", async || {
        t.count(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
            == 1
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    hold.rollback().await.unwrap();
    drop(holder);

    let (mut second, _lines) = run();
    wait_until("the rest is replayed", async || stored(&t).await == 401).await;
    assert_each_stored_once(&t, 401).await;
    for fingerprint in ["first", "second"] {
        let count = crate::helpers::count_with(
            &t,
            "SELECT event_count FROM issues WHERE fingerprint = $1",
            &fingerprint_of(fingerprint),
        )
        .await;
        assert_eq!(count, 200, "{fingerprint}");
    }
    sigterm(&second);
    assert!(second.wait().unwrap().success());
}

fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
