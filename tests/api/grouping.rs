//! Grouping into issues as PostgreSQL sees it: every stored event belongs
//! to an issue whose `event_count` equals `count(*)` of its events, after
//! retries, re-sent batches, events already stored, and two Mesher
//! instances writing the same fingerprint at once.

use crate::common::TestDb;
use chrono::{DateTime, Utc};
use mesher::db::{self, EventPool};
use mesher::domain::{Event, EventPayload};
use serde_json::{Value, json};
use uuid::Uuid;

/// A Python-style exception event raised at `line` in `function`.
fn crash(function: &str, line: u32) -> Value {
    json!({
        "event_id": Uuid::now_v7().simple().to_string(),
        "platform": "python",
        "exception": {"values": [{
            "type": "KeyError",
            "value": "'user'",
            "module": "builtins",
            "stacktrace": {"frames": [
                {"module": "app.main", "function": "main", "lineno": 10, "in_app": true,
                 "filename": "app/main.py"},
                {"module": "app.views", "function": function, "lineno": line, "in_app": true,
                 "filename": "app/views.py"},
            ]},
        }]},
    })
}

fn event(project: Uuid, payload: &Value) -> Event {
    Event::from_json(project, payload.to_string().as_bytes()).unwrap()
}

/// Each issue's `event_count` next to `count(*)` of its stored events.
async fn counts(t: &TestDb, project: Uuid) -> Vec<(i64, i64)> {
    t.pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT i.event_count, (SELECT count(*) FROM events e WHERE e.issue_id = i.id)
             FROM issues i WHERE i.project_id = $1 ORDER BY i.first_seen",
            &[&project],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[actix::test]
async fn the_same_crash_on_other_lines_is_one_issue_and_another_function_another() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let batch = vec![
        event(project, &crash("profile", 41)),
        event(project, &crash("profile", 42)),
        event(project, &crash("settings", 41)),
    ];
    db::events::insert_batch(&t.events, &batch).await.unwrap();
    assert_eq!(counts(&t, project).await, vec![(2, 2), (1, 1)]);
    let row = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT title, culprit, level, status FROM issues WHERE event_count = 2",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>("title"), "KeyError: 'user'");
    assert_eq!(
        row.get::<_, Option<String>>("culprit").as_deref(),
        Some("app.views in profile")
    );
    assert_eq!(row.get::<_, String>("level"), "error");
    assert_eq!(row.get::<_, String>("status"), "unresolved");
    assert_eq!(
        t.count("SELECT count(*) FROM events WHERE issue_id IS NULL")
            .await,
        0,
        "every stored event belongs to an issue"
    );
}

#[actix::test]
async fn a_batch_sent_again_and_events_already_stored_are_not_counted_twice() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let payloads: Vec<Value> = (0..5).map(|i| crash("profile", i)).collect();
    let first: Vec<Event> = payloads.iter().map(|p| event(project, p)).collect();
    let stored = async |batch: &[Event]| {
        db::events::insert_batch(&t.events, batch)
            .await
            .unwrap()
            .total()
    };
    assert_eq!(stored(&first).await, 5);
    // The same batch again, as after a commit whose reply was lost: its
    // events are stored (by the first attempt), once.
    assert_eq!(stored(&first).await, 5);
    assert_eq!(counts(&t, project).await, vec![(5, 5)]);
    // The same event ids received again (an SDK's retry): duplicates,
    // not stored.
    let retried: Vec<Event> = payloads.iter().map(|p| event(project, p)).collect();
    assert_eq!(stored(&retried).await, 0);
    // Three retried events with two new ones.
    let mut mixed = retried[..3].to_vec();
    mixed.extend((0..2).map(|i| event(project, &crash("profile", 100 + i))));
    assert_eq!(stored(&mixed).await, 2);
    assert_eq!(counts(&t, project).await, vec![(7, 7)]);
}

/// The issue's status, regression time and resolution time.
async fn resolution(t: &TestDb) -> (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let row = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT status, regressed_at, resolved_at FROM issues", &[])
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn database_now(t: &TestDb) -> DateTime<Utc> {
    let client = t.pool.get().await.unwrap();
    client
        .query_one("SELECT clock_timestamp()", &[])
        .await
        .unwrap()
        .get(0)
}

#[actix::test]
async fn a_resolved_issue_that_gets_an_event_is_unresolved_again_with_the_time() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    db::events::insert_batch(&t.events, &[event(project, &crash("profile", 1))])
        .await
        .unwrap();
    t.execute("UPDATE issues SET status = 'resolved', resolved_at = now()")
        .await;
    let (_, _, resolved_at) = resolution(&t).await;
    let again = event(project, &crash("profile", 2));
    db::events::insert_batch(&t.events, std::slice::from_ref(&again))
        .await
        .unwrap();
    let after = database_now(&t).await;
    let (status, regressed_at, still_resolved_at) = resolution(&t).await;
    assert_eq!(status, "unresolved");
    // PostgreSQL's clock, like the resolution's: after it, and by the time
    // the batch was stored.
    let regressed_at = regressed_at.expect("the regression's time is kept");
    assert!(
        resolved_at.unwrap() <= regressed_at && regressed_at <= after,
        "{resolved_at:?} <= {regressed_at} <= {after}"
    );
    assert_eq!(still_resolved_at, None);
    assert_eq!(counts(&t, project).await, vec![(2, 2)]);
}

/// Whether an event regresses an issue does not depend on Mesher's clock
/// agreeing with PostgreSQL's: an event stamped an hour before the
/// resolution (a host whose clock is behind, or an event that waited in a
/// buffer or the spool) but stored after it reopens the issue.
#[actix::test]
async fn an_event_stored_after_the_resolution_reopens_the_issue_whatever_its_clock_said() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    let late = Event::from_payload_received_at(
        project,
        EventPayload::from_json(crash("profile", 2).to_string().as_bytes()).unwrap(),
        an_hour_ago,
    )
    .unwrap();
    db::events::insert_batch(&t.events, &[event(project, &crash("profile", 1))])
        .await
        .unwrap();
    t.execute("UPDATE issues SET status = 'resolved', resolved_at = now()")
        .await;
    db::events::insert_batch(&t.events, std::slice::from_ref(&late))
        .await
        .unwrap();
    let (status, regressed_at, _) = resolution(&t).await;
    assert_eq!(status, "unresolved");
    assert!(regressed_at.is_some());
    assert_eq!(counts(&t, project).await, vec![(2, 2)]);
}

#[actix::test]
async fn two_writers_on_one_fingerprint_at_once_keep_the_count_exact() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    // Two pools: two sets of connections, as two Mesher processes have.
    let other: EventPool = db::event_pool(
        &t.url,
        4,
        false,
        Default::default(),
        t.config().partitions.lock_timeout,
    )
    .unwrap();
    let batches = |n: u32| -> Vec<Vec<Event>> {
        (0..n)
            .map(|b| {
                (0..20)
                    .map(|i| event(project, &crash("profile", b * 100 + i)))
                    .collect()
            })
            .collect()
    };
    let (ours, theirs) = (batches(20), batches(20));
    let write = |pool: EventPool, batches: Vec<Vec<Event>>| async move {
        for batch in batches {
            db::events::insert_batch(&pool, &batch).await.unwrap();
        }
    };
    // The first batch of each side repeats on the other: both try to store
    // the same events at the same moment.
    let mut theirs = theirs;
    theirs[0] = ours[0].clone();
    futures_util::future::join(write(t.events.clone(), ours), write(other, theirs)).await;
    assert_eq!(counts(&t, project).await, vec![(780, 780)]);
}

#[actix::test]
async fn a_batch_of_several_projects_keeps_each_projects_issues_apart() {
    let t = TestDb::new().await;
    let (a, b) = (t.new_project().await, t.new_project().await);
    // The same crash, and even the same event id, in two projects.
    let shared = crash("profile", 1);
    let batch = vec![
        event(a, &shared),
        event(b, &shared),
        event(b, &crash("profile", 2)),
        event(a, &crash("settings", 3)),
    ];
    let stored = db::events::insert_batch(&t.events, &batch).await.unwrap();
    assert_eq!((stored.of(a), stored.of(b)), (2, 2));
    assert_eq!(counts(&t, a).await, [(1, 1), (1, 1)]);
    assert_eq!(counts(&t, b).await, [(2, 2)]);
}

#[actix::test]
async fn events_of_a_deleted_project_are_refused_and_the_other_projects_stored() {
    let t = TestDb::new().await;
    let (kept, deleted) = (t.new_project().await, t.new_project().await);
    let batch = vec![
        event(kept, &crash("profile", 1)),
        event(deleted, &crash("profile", 1)),
        event(kept, &crash("profile", 2)),
    ];
    t.execute(&format!("DELETE FROM projects WHERE id = '{deleted}'"))
        .await;
    let stored = db::events::store_batch(&t.events, &batch).await.unwrap();
    assert_eq!(stored.refused, [1]);
    assert_eq!(counts(&t, kept).await, [(2, 2)]);
    assert_eq!(t.count("SELECT count(*) FROM events").await, 2);
}
