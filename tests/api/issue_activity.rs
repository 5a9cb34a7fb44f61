//! What the web pages read beside issues, against a real PostgreSQL:
//! issue counts per project, each listed issue's last 14 days and users
//! affected, and the newer/older navigation between an issue's events;
//! plus the page adapters that turn those replies into rows.
//!
//! Rows are inserted with plain SQL, as the ingest path would leave them.
//! The UTC day comes from a clock the test gives the service, never from
//! racing midnight.

use crate::common::{TestDb, assert_invalid, assert_not_found};
use actix::prelude::*;
use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use mesher::Error;
use mesher::db;
use mesher::domain::{Event, EventNeighbours, EventPayload, IssueActivity, IssueCounts};
use mesher::services::{
    CountIssues, GetEventNeighbours, GetIssue, GetIssueActivity, IssueService, ListIssues,
};
use mesher::web::pages::{IssuePage, IssueRow, ProjectRow};
use serde_json::{Value, json};
use uuid::Uuid;

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// Today (UTC), with partitions from 20 days back to tomorrow, and a
/// service whose "now" is noon today.
async fn setup(t: &TestDb) -> (NaiveDate, Addr<IssueService>) {
    let today = Utc::now().date_naive();
    db::partitions::ensure_range(
        &t.pool,
        today - Days::new(20),
        21,
        t.config().partitions.lock_timeout,
    )
    .await
    .unwrap();
    let noon = day_start(today) + Duration::hours(12);
    (
        today,
        IssueService::with_clock(t.pool.clone(), move || noon).start(),
    )
}

/// An issue of `project` with `status`.
async fn insert_issue(t: &TestDb, project: Uuid, status: &str) -> Uuid {
    let id = Uuid::now_v7();
    t.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO issues (id, project_id, fingerprint, title, level, status)
             VALUES ($1, $2, $3, 'Boom', 'error', $4)",
            &[&id, &project, &id.to_string(), &status],
        )
        .await
        .unwrap();
    id
}

/// An event of `issue` received at `at`, whose SDK sent `user`.
async fn insert_event(
    t: &TestDb,
    project: Uuid,
    issue: Uuid,
    at: DateTime<Utc>,
    user: Option<Value>,
) -> Uuid {
    let id = Uuid::now_v7();
    t.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO events (id, project_id, issue_id, level, message, fingerprint, received_at,
                                 user_context)
             VALUES ($1, $2, $3, 'error', 'boom', 'fp', $4, $5)",
            &[&id, &project, &issue, &at, &user],
        )
        .await
        .unwrap();
    id
}

async fn activity(
    addr: &Addr<IssueService>,
    project: Uuid,
    issues: &[Uuid],
) -> Result<Vec<IssueActivity>, Error> {
    addr.send(GetIssueActivity {
        project_id: project.to_string(),
        issue_ids: issues.to_vec(),
    })
    .await
    .unwrap()
}

async fn neighbours(
    addr: &Addr<IssueService>,
    project: Uuid,
    issue: Uuid,
    event: Uuid,
) -> Result<EventNeighbours, Error> {
    addr.send(GetEventNeighbours {
        project_id: project.to_string(),
        issue_id: issue.to_string(),
        event_id: event.to_string(),
    })
    .await
    .unwrap()
}

#[actix::test]
async fn issue_counts_per_project_split_unresolved_from_all() {
    let t = TestDb::new().await;
    let (_, addr) = setup(&t).await;
    let busy = t.new_project().await;
    let quiet = t.new_project().await;
    let other = t.new_project().await;
    for status in ["unresolved", "unresolved", "resolved", "archived"] {
        insert_issue(&t, busy, status).await;
    }
    insert_issue(&t, other, "resolved").await;
    let count = async |ids: Vec<Uuid>| addr.send(CountIssues { project_ids: ids }).await.unwrap();

    // In the order asked, a project without issues at zero.
    let counts = count(vec![quiet, busy, other]).await.unwrap();
    let expected = |project_id, unresolved, total| IssueCounts {
        project_id,
        unresolved,
        total,
    };
    assert_eq!(
        counts,
        [
            expected(quiet, 0, 0),
            expected(busy, 2, 4),
            expected(other, 0, 1)
        ]
    );
    assert_eq!(count(vec![]).await.unwrap(), []);
    assert_not_found(count(vec![busy, Uuid::now_v7()]).await, "project");

    // The projects page's row.
    let project = db::projects::get(&t.pool, busy).await.unwrap();
    let row = ProjectRow::new(&project, &counts[1], Default::default());
    assert_eq!(
        (row.id, row.unresolved_issues, row.total_issues),
        (busy.to_string(), 2, 4)
    );
}

#[actix::test]
async fn activity_counts_fourteen_utc_days_with_zeros_per_issue() {
    let t = TestDb::new().await;
    let (today, addr) = setup(&t).await;
    let day = |back: u64| today - Days::new(back);
    let at = |back: u64, secs: i64| day_start(day(back)) + Duration::seconds(secs);
    let project = t.new_project().await;
    // Stored through the batch statement, as ingestion stores them: the
    // counts come from what it aggregates.
    let store = |message: &'static str, at| store_with_user(&t, project, message, at, None);

    // 13 days back is the first day counted, 14 back is outside; the last
    // second of a day counts for that day.
    let mut a = None;
    for (back, secs) in [(14, 86_399), (13, 0), (13, 86_399), (5, 1), (0, 5)] {
        a = Some(store("A", at(back, secs)).await);
    }
    let mut b = None;
    for (back, secs) in [(20, 0), (1, 7), (1, 8), (1, 9)] {
        b = Some(store("B", at(back, secs)).await);
    }
    let (a, b) = (a.unwrap(), b.unwrap());
    let quiet = store("Quiet", at(20, 0)).await;
    t.pool
        .get()
        .await
        .unwrap()
        .execute("UPDATE issues SET status = 'resolved' WHERE id = $1", &[&b])
        .await
        .unwrap();
    // Another project's issue and events are not counted in.
    let elsewhere = t.new_project().await;
    store_with_user(&t, elsewhere, "A", at(0, 1), None).await;

    let reply = activity(&addr, project, &[quiet, a, b]).await.unwrap();
    assert_eq!(
        reply.iter().map(|r| r.issue_id).collect::<Vec<_>>(),
        [quiet, a, b],
        "in the order asked"
    );
    let expected = |counts: &[(u64, i64)]| -> Vec<(NaiveDate, i64)> {
        (0..14)
            .rev()
            .map(|back| {
                let n = counts.iter().find(|(d, _)| *d == back).map_or(0, |c| c.1);
                (day(back), n)
            })
            .collect()
    };
    assert_eq!(reply[0].daily_counts, expected(&[]));
    assert_eq!(reply[1].daily_counts, expected(&[(13, 2), (5, 1), (0, 1)]));
    assert_eq!(reply[2].daily_counts, expected(&[(1, 3)]));

    // The same days as the issue page's.
    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: a.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.daily_counts, reply[1].daily_counts);

    assert_eq!(activity(&addr, project, &[]).await.unwrap(), []);

    // A page of the list becomes rows with a sparkline each; no event
    // named a user, so the user count is unknown rather than zero.
    let page = addr
        .send(ListIssues {
            project_id: project.to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .unwrap();
    let rows = IssueRow::page(&page.issues, &reply, Utc::now());
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let spark = row.sparkline.as_ref().expect("a sparkline");
        assert_eq!(spark.bars.len(), 14);
        let expected_total = if row.id == a.to_string() {
            4
        } else if row.id == b.to_string() {
            3
        } else {
            0
        };
        assert_eq!(spark.total, expected_total, "{}", row.id);
        assert_eq!(row.users, None);
    }
}

/// Stores an event with `user` (and `message`, which picks its issue)
/// through the batch statement, received at `at`; its issue.
async fn store_with_user(
    t: &TestDb,
    project: Uuid,
    message: &str,
    at: DateTime<Utc>,
    user: Option<Value>,
) -> Uuid {
    let mut json = json!({"message": message});
    if let Some(user) = user {
        json["user"] = user;
    }
    let payload = EventPayload::from_json(json.to_string().as_bytes()).unwrap();
    let event = Event::from_payload_received_at(project, payload, at).unwrap();
    db::events::store_batch(&t.events, std::slice::from_ref(&event))
        .await
        .unwrap();
    t.pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT issue_id FROM events WHERE id = $1", &[&event.id()])
        .await
        .unwrap()
        .get(0)
}

#[actix::test]
async fn users_affected_are_distinct_people_named_by_their_events() {
    let t = TestDb::new().await;
    let (today, addr) = setup(&t).await;
    let project = t.new_project().await;
    let recent = day_start(today) + Duration::seconds(1);

    let users = [
        // One person by id, whether the SDK sent it as a number or text,
        // and whatever else it sent along.
        Some(json!({"id": 42})),
        Some(json!({"id": "42"})),
        Some(json!({"id": 42, "email": "ann@example.org"})),
        // By email when there is no id (null counts as none), twice.
        Some(json!({"email": "bob@example.org"})),
        Some(json!({"id": null, "email": "bob@example.org"})),
        // By username before email, as Sentry names users.
        Some(json!({"id": null, "email": "bob@example.org", "username": "bob"})),
        // An email spelled like an id is another person.
        Some(json!({"email": "42"})),
        // By address, then by username.
        Some(json!({"ip_address": "10.0.0.1"})),
        Some(json!({"username": "cy"})),
        // Nobody: the unfilled placeholder, empty text, no user at all.
        Some(json!({"ip_address": "{{auto}}"})),
        Some(json!({"id": "", "email": ""})),
        Some(json!({})),
        None,
    ];
    let mut issue = None;
    for user in users {
        issue = Some(store_with_user(&t, project, "boom", recent, user).await);
    }
    let issue = issue.unwrap();
    // Someone seen only before the 14 days still counts: users cover every
    // stored event.
    let long_ago = day_start(today - Days::new(15)) + Duration::hours(1);
    store_with_user(&t, project, "boom", long_ago, Some(json!({"id": "old"}))).await;
    // Another issue's users are its own.
    let other = store_with_user(&t, project, "other", recent, Some(json!({"id": 42}))).await;
    store_with_user(&t, project, "other", recent, Some(json!({"id": "x"}))).await;

    let reply = activity(&addr, project, &[issue, other]).await.unwrap();
    // 42, email:bob@, username:bob, email:42, 10.0.0.1, cy, old.
    assert_eq!(reply[0].users, 7);
    assert_eq!(reply[1].users, 2);

    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.users, 7);
    assert_eq!(IssueRow::of_detail(&detail, Utc::now()).users, Some(7));

    let quiet = insert_issue(&t, project, "unresolved").await;
    let reply = activity(&addr, project, &[quiet]).await.unwrap();
    assert_eq!(reply[0].users, 0);
    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: quiet.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.users, 0);
    assert_eq!(IssueRow::of_detail(&detail, Utc::now()).users, None);
}

#[actix::test]
async fn neighbours_walk_an_issues_events_in_received_order() {
    let t = TestDb::new().await;
    let (today, addr) = setup(&t).await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "unresolved").await;
    let other = insert_issue(&t, project, "unresolved").await;
    let at = |secs: i64| day_start(today) + Duration::seconds(secs);

    // Oldest first, over two days; the middle pair shares an instant (the
    // id breaks the tie, the later id being newer), and another issue's
    // events lie between them.
    let mut events = Vec::new();
    events.push(insert_event(&t, project, issue, at(-3_600), None).await);
    insert_event(&t, project, other, at(-1_800), None).await;
    events.push(insert_event(&t, project, issue, at(10), None).await);
    events.push(insert_event(&t, project, issue, at(10), None).await);
    insert_event(&t, project, other, at(15), None).await;
    events.push(insert_event(&t, project, issue, at(20), None).await);

    for (i, &event) in events.iter().enumerate() {
        let n = neighbours(&addr, project, issue, event).await.unwrap();
        assert_eq!(n.older, i.checked_sub(1).map(|j| events[j]), "older of {i}");
        assert_eq!(n.newer, events.get(i + 1).copied(), "newer of {i}");
    }
    // The issue page's links, for the oldest event: no older one.
    let n = neighbours(&addr, project, issue, events[0]).await.unwrap();
    assert_eq!(
        IssuePage::event_links(&n),
        (Some(format!("?event={}", events[1])), None)
    );

    // An issue with one event has no neighbours either way.
    let lone_issue = insert_issue(&t, project, "unresolved").await;
    let lone = insert_event(&t, project, lone_issue, at(5), None).await;
    assert_eq!(
        neighbours(&addr, project, lone_issue, lone).await.unwrap(),
        EventNeighbours::default()
    );
}

#[actix::test]
async fn bad_ids_are_refused_and_what_is_not_there_is_not_found() {
    let t = TestDb::new().await;
    let (today, addr) = setup(&t).await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "unresolved").await;
    let other = insert_issue(&t, project, "unresolved").await;
    let event = insert_event(&t, project, issue, day_start(today), None).await;
    let others_event = insert_event(&t, project, other, day_start(today), None).await;
    let elsewhere = t.new_project().await;
    let foreign_issue = insert_issue(&t, elsewhere, "unresolved").await;
    let foreign_event = insert_event(&t, elsewhere, foreign_issue, day_start(today), None).await;

    let nav = |project_id: &str, issue_id: &str, event_id: &str| GetEventNeighbours {
        project_id: project_id.into(),
        issue_id: issue_id.into(),
        event_id: event_id.into(),
    };
    let (p, i, e) = (project.to_string(), issue.to_string(), event.to_string());
    for (msg, field) in [
        (nav("42", &i, &e), "project_id"),
        (nav(&p, "not-a-uuid", &e), "issue_id"),
        (nav(&p, &i, "'; DROP TABLE events; --"), "event_id"),
    ] {
        assert_invalid(addr.send(msg).await.unwrap(), field);
    }
    assert_invalid(
        addr.send(GetIssueActivity {
            project_id: "x".into(),
            issue_ids: vec![issue],
        })
        .await
        .unwrap(),
        "project_id",
    );
    assert_invalid(activity(&addr, project, &[issue; 101]).await, "issue_ids");
    // 100, repeats included, is a page's worth.
    assert_eq!(
        activity(&addr, project, &[issue; 100]).await.unwrap().len(),
        100
    );

    // Unknown issues, and issues or events of another project or issue,
    // are not found.
    assert_not_found(
        neighbours(&addr, project, Uuid::now_v7(), event).await,
        "issue",
    );
    assert_not_found(
        neighbours(&addr, project, foreign_issue, foreign_event).await,
        "issue",
    );
    assert_not_found(
        neighbours(&addr, project, issue, Uuid::now_v7()).await,
        "event",
    );
    assert_not_found(
        neighbours(&addr, project, issue, others_event).await,
        "event",
    );
    assert_not_found(
        neighbours(&addr, project, issue, foreign_event).await,
        "event",
    );
    assert_not_found(
        activity(&addr, project, &[issue, Uuid::now_v7()]).await,
        "issue",
    );
    assert_not_found(
        activity(&addr, project, &[issue, foreign_issue]).await,
        "issue",
    );
    assert_not_found(activity(&addr, Uuid::now_v7(), &[issue]).await, "issue");
}
