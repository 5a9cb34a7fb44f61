//! IssueService against a real PostgreSQL: listing (filters, sorts, keyset
//! pages, also while events arrive), one issue with its daily counts,
//! triage, an issue's events, and one event as stored.
//!
//! Issues and events are inserted with plain SQL, as the ingest path would
//! leave them. Times are built from one fixed instant per test; the UTC day
//! of the daily counts comes from a clock the test injects, never from
//! racing midnight.

use crate::common::{TestDb, assert_invalid, assert_not_found};
use actix::prelude::*;
use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use mesher::Error;
use mesher::db;
use mesher::domain::{
    Email, Event, EventParts, EventPayload, Issue, IssueStatus, Name, RawJson, Severity,
};
use mesher::services::{
    AssignIssue, GetEvent, GetIssue, IssueService, ListIssueEvents, ListIssues, UpdateIssueStatus,
};
use serde_json::{Value, json};
use std::collections::HashSet;
use uuid::Uuid;

fn service(t: &TestDb) -> Addr<IssueService> {
    IssueService::new(t.pool.clone()).start()
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

/// Today (UTC) at 00:00, with partitions for today and tomorrow: events
/// received at `today_start + a few seconds` always have one.
async fn today_start(t: &TestDb) -> DateTime<Utc> {
    let today = Utc::now().date_naive();
    db::partitions::ensure_range(&t.pool, today, 1, t.config().partitions.lock_timeout)
        .await
        .unwrap();
    day_start(today)
}

/// An issue seen first and last at `seen`, with `count` events counted.
async fn insert_issue(
    t: &TestDb,
    project: Uuid,
    title: &str,
    seen: DateTime<Utc>,
    count: i64,
) -> Uuid {
    let id = Uuid::now_v7();
    t.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO issues (id, project_id, fingerprint, title, level, event_count, first_seen, last_seen)
             VALUES ($1, $2, $3, $4, 'error', $5, $6, $6)",
            &[&id, &project, &id.to_string(), &title, &count, &seen],
        )
        .await
        .unwrap();
    id
}

/// An event of `issue` received at `at`, in `environment` of `release`.
async fn insert_event(
    t: &TestDb,
    project: Uuid,
    issue: Uuid,
    at: DateTime<Utc>,
    environment: Option<&str>,
    release: Option<&str>,
) -> Uuid {
    let id = Uuid::now_v7();
    t.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO events (id, project_id, issue_id, level, message, fingerprint, received_at,
                                 environment, release)
             VALUES ($1, $2, $3, 'error', 'boom', 'fp', $4, $5, $6)",
            &[&id, &project, &issue, &at, &environment, &release],
        )
        .await
        .unwrap();
    id
}

async fn sql(t: &TestDb, statement: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) {
    t.pool
        .get()
        .await
        .unwrap()
        .execute(statement, params)
        .await
        .unwrap();
}

fn list(project: Uuid) -> ListIssues {
    ListIssues {
        project_id: project.to_string(),
        ..Default::default()
    }
}

fn ids(issues: &[Issue]) -> Vec<Uuid> {
    issues.iter().map(|i| i.id).collect()
}

async fn list_ids(addr: &Addr<IssueService>, msg: ListIssues) -> Vec<Uuid> {
    ids(&addr.send(msg).await.unwrap().unwrap().issues)
}

/// Every page of `msg`'s list, walked with its cursors.
async fn walk(addr: &Addr<IssueService>, msg: ListIssues) -> Vec<Vec<Uuid>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = addr
            .send(ListIssues {
                cursor: cursor.clone(),
                ..msg.clone()
            })
            .await
            .unwrap()
            .unwrap();
        pages.push(ids(&page.issues));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "the walk does not end");
    }
}

#[actix::test]
async fn sorts_are_descending_with_the_id_as_tie_breaker() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let base = Utc::now() - Duration::hours(1);
    // a: oldest, most events; b and c: seen at the same instant (c has the
    // larger id); d: newest, fewest events.
    let a = insert_issue(&t, project, "a", base, 50).await;
    let b = insert_issue(&t, project, "b", base + Duration::seconds(10), 5).await;
    let c = insert_issue(&t, project, "c", base + Duration::seconds(10), 5).await;
    let d = insert_issue(&t, project, "d", base + Duration::seconds(20), 1).await;
    // First seen in another order than last seen.
    sql(
        &t,
        "UPDATE issues SET first_seen = first_seen - make_interval(secs => $2) WHERE id = $1",
        &[&d, &100.0f64],
    )
    .await;
    let addr = service(&t);

    let by = |sort: Option<&str>| ListIssues {
        sort: sort.map(str::to_owned),
        ..list(project)
    };
    assert_eq!(list_ids(&addr, by(None)).await, [d, c, b, a]);
    assert_eq!(list_ids(&addr, by(Some("last_seen"))).await, [d, c, b, a]);
    assert_eq!(list_ids(&addr, by(Some("first_seen"))).await, [c, b, a, d]);
    assert_eq!(list_ids(&addr, by(Some("event_count"))).await, [a, c, b, d]);

    // The tie survives a page boundary: b follows c on the next page.
    for sort in ["last_seen", "event_count"] {
        let pages = walk(
            &addr,
            ListIssues {
                limit: Some(2),
                ..by(Some(sort))
            },
        )
        .await;
        let flat: Vec<Uuid> = pages.concat();
        assert_eq!(flat.len(), 4, "{sort}");
        let pos = |x| flat.iter().position(|&y| y == x).unwrap();
        assert_eq!(pos(b), pos(c) + 1, "{sort}");
    }
}

#[actix::test]
async fn issue_fields_come_back_as_stored() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let id = insert_issue(&t, project, "TypeError: x is undefined", Utc::now(), 3).await;
    sql(
        &t,
        "UPDATE issues SET culprit = 'app.views in index', level = 'warning',
                regressed_at = now() WHERE id = $1",
        &[&id],
    )
    .await;
    let page = service(&t).send(list(project)).await.unwrap().unwrap();
    let issue = &page.issues[0];
    assert_eq!(issue.id, id);
    assert_eq!(issue.project_id, project);
    assert_eq!(issue.title, "TypeError: x is undefined");
    assert_eq!(issue.culprit.as_deref(), Some("app.views in index"));
    assert_eq!(issue.level, Severity::Warning);
    assert_eq!(issue.status, IssueStatus::Unresolved);
    assert_eq!(issue.event_count, 3);
    assert!(issue.regressed_at.is_some());
    assert!(issue.resolved_at.is_none());
    assert!(issue.assigned_to.is_none());
    assert!(page.next.is_none());
}

#[actix::test]
async fn status_filter_keeps_that_status_only() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let now = Utc::now();
    let open = insert_issue(&t, project, "open", now, 1).await;
    let done = insert_issue(&t, project, "done", now, 1).await;
    let shelved = insert_issue(&t, project, "shelved", now, 1).await;
    sql(
        &t,
        "UPDATE issues SET status = 'resolved' WHERE id = $1",
        &[&done],
    )
    .await;
    sql(
        &t,
        "UPDATE issues SET status = 'archived' WHERE id = $1",
        &[&shelved],
    )
    .await;
    let addr = service(&t);
    for (status, expected) in [
        ("unresolved", open),
        ("resolved", done),
        ("archived", shelved),
    ] {
        let msg = ListIssues {
            status: Some(status.into()),
            ..list(project)
        };
        assert_eq!(list_ids(&addr, msg).await, [expected], "{status}");
    }
    assert_eq!(list_ids(&addr, list(project)).await.len(), 3);
}

/// Stores an event with `message` (which picks its issue) in
/// `environment` of `release`, received at `at`, through the batch
/// statement; its issue.
async fn store_event(
    t: &TestDb,
    project: Uuid,
    message: &str,
    at: DateTime<Utc>,
    environment: &str,
    release: &str,
) -> Uuid {
    let payload = EventPayload {
        message: Some(message.into()),
        environment: Some(environment.into()),
        release: Some(release.into()),
        ..Default::default()
    };
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
async fn environment_and_release_filters_look_at_the_issues_events() {
    let t = TestDb::new().await;
    let day = today_start(&t).await;
    let project = t.new_project().await;
    let other_project = t.new_project().await;
    let at = |s| day + Duration::seconds(s);
    let prod_v1 = store_event(&t, project, "prod v1", at(1), "production", "v1").await;
    let mixed = store_event(&t, project, "mixed", at(1), "production", "v2").await;
    store_event(&t, project, "mixed", at(2), "staging", "v1").await;
    let staging = store_event(&t, project, "staging v2", at(3), "staging", "v2").await;
    let no_events = insert_issue(&t, project, "none", at(4), 0).await;
    // Another project's events do not count.
    store_event(&t, other_project, "none", at(4), "production", "v3").await;
    let addr = service(&t);

    let filter = |env: Option<&str>, rel: Option<&str>| ListIssues {
        environment: env.map(str::to_owned),
        release: rel.map(str::to_owned),
        ..list(project)
    };
    assert_eq!(
        list_ids(&addr, filter(Some("production"), None)).await,
        [mixed, prod_v1]
    );
    assert_eq!(
        list_ids(&addr, filter(Some("staging"), None)).await,
        [staging, mixed]
    );
    assert_eq!(
        list_ids(&addr, filter(None, Some("v1"))).await,
        [mixed, prod_v1]
    );
    assert_eq!(
        list_ids(&addr, filter(None, Some("v2"))).await,
        [staging, mixed]
    );
    // Both: an issue with events in that environment and events of that
    // release (counted apart, as the search's `environment:` and
    // `release:` are).
    assert_eq!(
        list_ids(&addr, filter(Some("production"), Some("v1"))).await,
        [mixed, prod_v1]
    );
    assert_eq!(
        list_ids(&addr, filter(Some("staging"), Some("v2"))).await,
        [staging, mixed]
    );
    assert!(list_ids(&addr, filter(None, Some("v3"))).await.is_empty());
    assert!(
        list_ids(&addr, filter(Some("Production"), None))
            .await
            .is_empty()
    );
    assert!(list_ids(&addr, filter(Some("dev"), None)).await.is_empty());
    let all = list_ids(&addr, filter(None, None)).await;
    assert_eq!(all.len(), 4);
    assert!(all.contains(&no_events));
}

#[actix::test]
async fn text_search_ignores_case_and_matches_like_metacharacters_literally() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let base = Utc::now() - Duration::minutes(5);
    let mut n = 0;
    let mut issue = async |title: &str, culprit: Option<&str>| {
        n += 1;
        let id = insert_issue(&t, project, title, base + Duration::seconds(n), 1).await;
        sql(
            &t,
            "UPDATE issues SET culprit = $2 WHERE id = $1",
            &[&id, &culprit],
        )
        .await;
        id
    };
    let percent = issue("Discount 50% off", None).await;
    let fifty = issue("Discount 500 off", None).await;
    let underscore = issue("KeyError: user_id", None).await;
    let no_underscore = issue("KeyError: userXid", None).await;
    let backslash = issue(r"Path C:\temp not found", None).await;
    let in_culprit = issue("ValueError", Some("billing.Invoice in TOTAL")).await;
    let quote = issue("it's O'Reilly'; DROP TABLE issues; --", None).await;
    let unicode = issue("Fehler: Größe überschritten", None).await;
    let addr = service(&t);

    let search = |q: &str| ListIssues {
        query: Some(q.into()),
        ..list(project)
    };
    assert_eq!(list_ids(&addr, search("50%")).await, [percent]);
    assert_eq!(list_ids(&addr, search("user_id")).await, [underscore]);
    assert_eq!(list_ids(&addr, search("userxid")).await, [no_underscore]);
    // Quoted, since `c:` would be a filter on the tag `c`.
    assert_eq!(list_ids(&addr, search(r#""c:\TEMP""#)).await, [backslash]);
    assert_eq!(
        list_ids(&addr, search("invoice in total")).await,
        [in_culprit]
    );
    assert_eq!(list_ids(&addr, search("O'REILLY'; drop")).await, [quote]);
    assert_eq!(list_ids(&addr, search("größe")).await, [unicode]);
    // Letter case beyond ASCII folds as the database's LC_CTYPE does: with
    // C.UTF-8 it does, in a `--no-locale` cluster it does not.
    let folds: bool = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT lower('Ü') = 'ü'", &[])
        .await
        .unwrap()
        .get(0);
    if folds {
        assert_eq!(list_ids(&addr, search("ÜBERSCHRITTEN")).await, [unicode]);
    }
    assert_eq!(list_ids(&addr, search("discount")).await, [fifty, percent]);
    assert_eq!(list_ids(&addr, search("%")).await, [percent]);
    assert_eq!(list_ids(&addr, search("_")).await, [underscore]);
    assert_eq!(list_ids(&addr, search("\\")).await, [backslash]);
    // An empty search matches everything.
    assert_eq!(list_ids(&addr, search("")).await.len(), 8);
}

#[actix::test]
async fn pages_return_every_issue_exactly_once_in_order() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let base = Utc::now() - Duration::hours(2);
    let mut expected = Vec::new();
    for i in 0..60 {
        // Keys repeat in threes so that ties cross page boundaries.
        let id = insert_issue(
            &t,
            project,
            &format!("issue {i}"),
            base + Duration::seconds(i / 3),
            i / 3,
        )
        .await;
        expected.push(id);
    }
    let addr = service(&t);

    for sort in ["last_seen", "first_seen", "event_count"] {
        let all = list_ids(
            &addr,
            ListIssues {
                sort: Some(sort.into()),
                limit: Some(100),
                ..list(project)
            },
        )
        .await;
        // Keys and ids ascend together, so the order is the reverse.
        let mut newest_first = expected.clone();
        newest_first.reverse();
        assert_eq!(all, newest_first, "{sort}");

        let pages = walk(
            &addr,
            ListIssues {
                sort: Some(sort.into()),
                limit: Some(25),
                ..list(project)
            },
        )
        .await;
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [25, 25, 10], "{sort}");
        assert_eq!(pages.concat(), newest_first, "{sort}");
    }

    // The default page size is 25, and exactly 25 rows leave no next page.
    let page = addr.send(list(project)).await.unwrap().unwrap();
    assert_eq!(page.issues.len(), 25);
    let exact = addr
        .send(ListIssues {
            limit: Some(60),
            ..list(project)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exact.issues.len(), 60);
    assert!(exact.next.is_none());
}

/// 60 issues keyed 0..59, walked in pages of 25 while, between pages, an
/// issue already returned and one not yet returned get new events (their
/// key jumps past every other), and a new issue appears. Every issue that
/// did not move is returned exactly once, in order; the moved ones are not
/// repeated, and head a fresh first page.
#[actix::test]
async fn pages_neither_skip_nor_repeat_unmoved_issues_while_events_arrive() {
    for sort in ["last_seen", "event_count"] {
        let t = TestDb::new().await;
        let project = t.new_project().await;
        let base = Utc::now() - Duration::hours(2);
        let mut by_key = Vec::new();
        for i in 0..60 {
            by_key.push(
                insert_issue(
                    &t,
                    project,
                    &format!("issue {i}"),
                    base + Duration::seconds(i),
                    i,
                )
                .await,
            );
        }
        let addr = service(&t);
        let msg = ListIssues {
            sort: Some(sort.into()),
            limit: Some(25),
            ..list(project)
        };

        let first = addr.send(msg.clone()).await.unwrap().unwrap();
        let mut seen = ids(&first.issues);
        assert_eq!(seen, by_key[35..].iter().rev().copied().collect::<Vec<_>>());

        // New events for issue 50 (returned) and issue 10 (not yet), and a
        // new issue.
        let (returned, pending) = (by_key[50], by_key[10]);
        for (id, bump) in [(returned, 1000.0f64), (pending, 1001.0)] {
            sql(
                &t,
                "UPDATE issues SET last_seen = last_seen + make_interval(secs => $2),
                                   event_count = event_count + $2::bigint
                 WHERE id = $1",
                &[&id, &bump],
            )
            .await;
        }
        let newcomer = insert_issue(&t, project, "new", base + Duration::seconds(2000), 2000).await;

        let mut cursor = first.next;
        while let Some(c) = cursor {
            let page = addr
                .send(ListIssues {
                    cursor: Some(c),
                    ..msg.clone()
                })
                .await
                .unwrap()
                .unwrap();
            seen.extend(ids(&page.issues));
            cursor = page.next;
        }

        let unique: HashSet<Uuid> = seen.iter().copied().collect();
        assert_eq!(unique.len(), seen.len(), "{sort}: an issue was repeated");
        let unmoved: Vec<Uuid> = by_key
            .iter()
            .rev()
            .copied()
            .filter(|id| *id != returned && *id != pending)
            .collect();
        let seen_unmoved: Vec<Uuid> = seen
            .iter()
            .copied()
            .filter(|id| unmoved.contains(id))
            .collect();
        assert_eq!(
            seen_unmoved, unmoved,
            "{sort}: unmoved issues skipped or out of order"
        );
        assert!(seen.contains(&returned));
        assert!(!seen.contains(&newcomer));

        // A fresh first page shows what moved.
        let fresh = list_ids(&addr, msg.clone()).await;
        assert_eq!(fresh[..3], [newcomer, returned, pending], "{sort}");
    }
}

#[actix::test]
async fn bad_input_is_refused_naming_the_field() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "x", Utc::now(), 1).await;
    let addr = service(&t);
    let (p, i) = (project.to_string(), issue.to_string());

    let cases = [
        (
            ListIssues {
                project_id: "nope".into(),
                ..list(project)
            },
            "project_id",
        ),
        (
            ListIssues {
                status: Some("open".into()),
                ..list(project)
            },
            "status",
        ),
        (
            ListIssues {
                sort: Some("title".into()),
                ..list(project)
            },
            "sort",
        ),
        (
            ListIssues {
                sort: Some("LAST_SEEN".into()),
                ..list(project)
            },
            "sort",
        ),
        (
            ListIssues {
                limit: Some(0),
                ..list(project)
            },
            "limit",
        ),
        (
            ListIssues {
                limit: Some(101),
                ..list(project)
            },
            "limit",
        ),
        (
            ListIssues {
                cursor: Some("not a cursor".into()),
                ..list(project)
            },
            "cursor",
        ),
        (
            ListIssues {
                cursor: Some(String::new()),
                ..list(project)
            },
            "cursor",
        ),
        (
            ListIssues {
                cursor: Some("'; DROP TABLE issues; --".into()),
                ..list(project)
            },
            "cursor",
        ),
        (
            ListIssues {
                environment: Some("prod\0".into()),
                ..list(project)
            },
            "environment",
        ),
        (
            ListIssues {
                release: Some("v".repeat(300)),
                ..list(project)
            },
            "release",
        ),
    ];
    for (msg, field) in cases {
        assert_invalid(addr.send(msg).await.unwrap(), field);
    }
    for query in ["\0", "is:closed"] {
        assert!(matches!(
            addr.send(ListIssues {
                query: Some(query.into()),
                ..list(project)
            })
            .await
            .unwrap(),
            Err(Error::InvalidSearch { .. })
        ));
    }

    // A real cursor of one sort is refused by another.
    insert_issue(&t, project, "y", Utc::now(), 2).await;
    let page = addr
        .send(ListIssues {
            limit: Some(1),
            ..list(project)
        })
        .await
        .unwrap()
        .unwrap();
    let cursor = page.next.expect("a second page");
    assert_invalid(
        addr.send(ListIssues {
            sort: Some("event_count".into()),
            cursor: Some(cursor.clone()),
            ..list(project)
        })
        .await
        .unwrap(),
        "cursor",
    );
    assert_invalid(
        addr.send(ListIssueEvents {
            project_id: p.clone(),
            issue_id: i.clone(),
            cursor: Some(cursor),
            limit: None,
        })
        .await
        .unwrap(),
        "cursor",
    );

    assert_invalid(
        addr.send(GetIssue {
            project_id: p.clone(),
            issue_id: "12".into(),
        })
        .await
        .unwrap(),
        "issue_id",
    );
    assert_invalid(
        addr.send(GetIssue {
            project_id: "x".into(),
            issue_id: i.clone(),
        })
        .await
        .unwrap(),
        "project_id",
    );
    assert_invalid(
        addr.send(UpdateIssueStatus {
            project_id: p.clone(),
            issue_id: i.clone(),
            status: "closed".into(),
            archive: None,
            resolved_in: None,
            actor: None,
        })
        .await
        .unwrap(),
        "status",
    );
    assert_invalid(
        addr.send(AssignIssue {
            project_id: p.clone(),
            issue_id: i.clone(),
            user_id: Some("bob".into()),
            actor: None,
        })
        .await
        .unwrap(),
        "user_id",
    );
    for (cursor, limit, field) in [
        (Some("zz".to_owned()), None, "cursor"),
        (None, Some(0), "limit"),
        (None, Some(1000), "limit"),
    ] {
        assert_invalid(
            addr.send(ListIssueEvents {
                project_id: p.clone(),
                issue_id: i.clone(),
                cursor,
                limit,
            })
            .await
            .unwrap(),
            field,
        );
    }
    assert_invalid(
        addr.send(GetEvent {
            project_id: p.clone(),
            event_id: "ünïcödé".into(),
        })
        .await
        .unwrap(),
        "event_id",
    );

    // Nothing was changed by any of it.
    let issue_now = addr
        .send(GetIssue {
            project_id: p,
            issue_id: i,
        })
        .await
        .unwrap()
        .unwrap()
        .issue;
    assert_eq!(issue_now.status, IssueStatus::Unresolved);
    assert!(issue_now.assigned_to.is_none());
}

#[actix::test]
async fn another_projects_issues_and_events_are_not_found() {
    let t = TestDb::new().await;
    let day = today_start(&t).await;
    let mine = t.new_project().await;
    let theirs = t.new_project().await;
    let issue = insert_issue(&t, theirs, "theirs", day, 1).await;
    let event = insert_event(&t, theirs, issue, day, None, None).await;
    let addr = service(&t);
    let (p, i) = (mine.to_string(), issue.to_string());

    assert!(list_ids(&addr, list(mine)).await.is_empty());
    assert_not_found(
        addr.send(GetIssue {
            project_id: p.clone(),
            issue_id: i.clone(),
        })
        .await
        .unwrap(),
        "issue",
    );
    assert_not_found(
        addr.send(UpdateIssueStatus {
            project_id: p.clone(),
            issue_id: i.clone(),
            status: "resolved".into(),
            archive: None,
            resolved_in: None,
            actor: None,
        })
        .await
        .unwrap(),
        "issue",
    );
    assert_not_found(
        addr.send(AssignIssue {
            project_id: p.clone(),
            issue_id: i.clone(),
            user_id: None,
            actor: None,
        })
        .await
        .unwrap(),
        "issue",
    );
    assert_not_found(
        addr.send(ListIssueEvents {
            project_id: p.clone(),
            issue_id: i.clone(),
            cursor: None,
            limit: None,
        })
        .await
        .unwrap(),
        "issue",
    );
    assert_not_found(
        addr.send(GetEvent {
            project_id: p,
            event_id: event.to_string(),
        })
        .await
        .unwrap(),
        "event",
    );
    assert_not_found(addr.send(list(Uuid::now_v7())).await.unwrap(), "project");

    // Untouched, and found through its own project.
    let detail = addr
        .send(GetIssue {
            project_id: theirs.to_string(),
            issue_id: i,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.issue.status, IssueStatus::Unresolved);
    assert_eq!(detail.latest_event.unwrap().id, event);
}

#[actix::test]
async fn resolving_stamps_resolved_at_and_anything_else_clears_it() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "x", Utc::now(), 1).await;
    let addr = service(&t);
    let set = |status: &str| UpdateIssueStatus {
        project_id: project.to_string(),
        issue_id: issue.to_string(),
        status: status.into(),
        archive: None,
        resolved_in: None,
        actor: None,
    };

    let resolved = addr.send(set("resolved")).await.unwrap().unwrap();
    assert_eq!(resolved.status, IssueStatus::Resolved);
    let stamp = resolved.resolved_at.expect("resolved_at set");
    // Resolving again keeps the first stamp.
    let again = addr.send(set("resolved")).await.unwrap().unwrap();
    assert_eq!(again.resolved_at, Some(stamp));

    let reopened = addr.send(set("unresolved")).await.unwrap().unwrap();
    assert_eq!(reopened.status, IssueStatus::Unresolved);
    assert!(reopened.resolved_at.is_none());

    addr.send(set("resolved")).await.unwrap().unwrap();
    let archived = addr.send(set("archived")).await.unwrap().unwrap();
    assert_eq!(archived.status, IssueStatus::Archived);
    assert!(archived.resolved_at.is_none());

    // As stored, not only as replied.
    let stored = t
        .count(&format!(
            "SELECT count(*) FROM issues WHERE id = '{issue}' AND status = 'archived' AND resolved_at IS NULL"
        ))
        .await;
    assert_eq!(stored, 1);
}

#[actix::test]
async fn assigning_and_unassigning_and_unknown_users() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "x", Utc::now(), 1).await;
    let user = db::users::insert(
        &t.pool,
        &Email::parse("dev@example.com").unwrap(),
        "not-a-real-hash",
        &Name::parse("display_name", "Dev").unwrap(),
    )
    .await
    .unwrap();
    let addr = service(&t);
    let assign = |user_id: Option<String>| AssignIssue {
        project_id: project.to_string(),
        issue_id: issue.to_string(),
        user_id,
        actor: None,
    };

    let assigned = addr
        .send(assign(Some(user.id.to_string())))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(assigned.assigned_to, Some(user.id));

    assert_not_found(
        addr.send(assign(Some(Uuid::now_v7().to_string())))
            .await
            .unwrap(),
        "user",
    );
    // The failed assignment left the previous one in place.
    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.issue.assigned_to, Some(user.id));

    let unassigned = addr.send(assign(None)).await.unwrap().unwrap();
    assert_eq!(unassigned.assigned_to, None);
}

#[actix::test]
async fn daily_counts_cover_fourteen_utc_days_with_zeros() {
    let t = TestDb::new().await;
    let today = Utc::now().date_naive();
    let day = |back: u64| today.checked_sub_days(Days::new(back)).unwrap();
    db::partitions::ensure_range(&t.pool, day(15), 16, t.config().partitions.lock_timeout)
        .await
        .unwrap();
    let project = t.new_project().await;
    let at = |back: u64, secs: i64| day_start(day(back)) + Duration::seconds(secs);
    // Stored through the batch statement, as ingestion stores them (the
    // counts come from what it aggregates); the message picks the issue.
    let store = async |message: &str, at| {
        let payload = EventPayload {
            message: Some(message.into()),
            ..Default::default()
        };
        let event = Event::from_payload_received_at(project, payload, at).unwrap();
        db::events::store_batch(&t.events, std::slice::from_ref(&event))
            .await
            .unwrap();
        event.id()
    };

    // 13 days back is the first day counted; 14 back is outside. The last
    // second of a day counts for that day, not the next.
    for (back, secs) in [(14, 43_200), (13, 0), (13, 86_399), (5, 1), (5, 2), (5, 3)] {
        store("x", at(back, secs)).await;
    }
    let latest = store("x", at(0, 60)).await;
    store("x", at(0, 30)).await;
    store("y", at(0, 90)).await;
    let issue: Uuid = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT issue_id FROM events WHERE id = $1", &[&latest])
        .await
        .unwrap()
        .get(0);

    // The service's day is the test's, whatever the wall clock does now.
    let fixed = day_start(today) + Duration::hours(12);
    let addr = IssueService::with_clock(t.pool.clone(), move || fixed).start();
    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();

    assert_eq!(detail.issue.id, issue);
    assert_eq!(detail.latest_event.map(|e| e.id), Some(latest));
    assert_eq!(detail.daily_counts.len(), 14);
    let expected: Vec<(NaiveDate, i64)> = (0..14)
        .rev()
        .map(|back| {
            let n = match back {
                13 => 2,
                5 => 3,
                0 => 2,
                _ => 0,
            };
            (day(back), n)
        })
        .collect();
    assert_eq!(detail.daily_counts, expected);

    // An issue without events: fourteen zeros and no latest event.
    let quiet = insert_issue(&t, project, "quiet", day_start(today), 0).await;
    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: quiet.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert!(detail.latest_event.is_none());
    assert_eq!(detail.daily_counts.len(), 14);
    assert!(detail.daily_counts.iter().all(|&(_, n)| n == 0));
    assert_eq!(detail.daily_counts[13].0, today);
}

#[actix::test]
async fn an_issues_events_come_newest_first_in_pages() {
    let t = TestDb::new().await;
    let day = today_start(&t).await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "x", day, 0).await;
    let other = insert_issue(&t, project, "y", day, 0).await;
    let mut expected = Vec::new();
    for i in 0..30 {
        // Pairs share a received_at: the id breaks the tie.
        expected.push(
            insert_event(
                &t,
                project,
                issue,
                day + Duration::seconds(i / 2),
                None,
                None,
            )
            .await,
        );
    }
    insert_event(&t, project, other, day, None, None).await;
    expected.reverse();
    let addr = service(&t);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = addr
            .send(ListIssueEvents {
                project_id: project.to_string(),
                issue_id: issue.to_string(),
                cursor: cursor.take(),
                limit: Some(7),
            })
            .await
            .unwrap()
            .unwrap();
        sizes.push(page.events.len());
        seen.extend(page.events.iter().map(|e| e.id));
        // Events that arrive during the walk go to the front, not into it.
        insert_event(&t, project, issue, day + Duration::seconds(100), None, None).await;
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [7, 7, 7, 7, 2]);
    assert_eq!(seen, expected);

    let default = addr
        .send(ListIssueEvents {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
            cursor: None,
            limit: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(default.events.len(), 25);
}

#[actix::test]
async fn get_event_returns_every_column_intact() {
    let t = TestDb::new().await;
    let day = today_start(&t).await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "x", day, 1).await;
    let id = Uuid::now_v7();
    let nasty = "'; DROP TABLE events; -- \\ \" % _ ünïcödé 😀 中文";
    let exception = json!({"values": [{"type": "ValueError", "value": nasty,
        "stacktrace": {"frames": [{"function": "f", "lineno": 3, "in_app": true}]}}]});
    let stacktrace = json!({"frames": [{"module": "app", "function": "ø"}]});
    let breadcrumbs = json!([{"message": nasty, "level": "info", "data": {"n": 1.5}}]);
    let tags = json!({"browser": "Firefox", "quote'": "a\"b"});
    let extra = json!({"nested": {"list": [1, null, true, "x"]}, "empty": {}});
    let user = json!({"id": "42", "email": "ü@example.com"});
    let contexts = json!({"os": {"name": "Linux"}});
    let request = json!({"url": "https://example.com/?q=%27", "method": "POST"});
    let other = json!({"unknown_field": [nasty]});
    let received = day + Duration::seconds(5);
    let occurred = day + Duration::seconds(4);
    sql(
        &t,
        "INSERT INTO events (id, project_id, issue_id, level, message, fingerprint, exception,
             stacktrace, breadcrumbs, tags, extra, user_context, sdk_name, sdk_version,
             received_at, occurred_at, platform, release, environment, transaction, contexts,
             request, other)
         VALUES ($1, $2, $3, 'fatal', $4, $5, $6, $7, $8, $9, $10, $11, 'sentry.python', '2.0.0',
             $12, $13, 'python', 'app@1.0+ü', 'production', '/checkout', $14, $15, $16)",
        &[
            &id,
            &project,
            &issue,
            &nasty,
            &nasty,
            &exception,
            &stacktrace,
            &breadcrumbs,
            &tags,
            &extra,
            &user,
            &received,
            &occurred,
            &contexts,
            &request,
            &other,
        ],
    )
    .await;
    let addr = service(&t);

    let event = addr
        .send(GetEvent {
            project_id: project.to_string(),
            // As an SDK writes it: 32 hex digits.
            event_id: id.simple().to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.id, id);
    assert_eq!(event.project_id, project);
    assert_eq!(event.issue_id, Some(issue));
    assert_eq!(event.level, Severity::Fatal);
    assert_eq!(event.message, nasty);
    assert_eq!(event.fingerprint, nasty);
    assert_eq!(event.exception, Some(exception));
    assert_eq!(event.stacktrace, Some(stacktrace));
    assert_eq!(event.breadcrumbs, Some(breadcrumbs));
    assert_eq!(event.tags, tags);
    assert_eq!(event.extra, extra);
    assert_eq!(event.user_context, Some(user));
    assert_eq!(event.sdk_name.as_deref(), Some("sentry.python"));
    assert_eq!(event.sdk_version.as_deref(), Some("2.0.0"));
    assert_eq!(event.received_at, received);
    assert_eq!(event.occurred_at, Some(occurred));
    assert_eq!(event.platform.as_deref(), Some("python"));
    assert_eq!(event.release.as_deref(), Some("app@1.0+ü"));
    assert_eq!(event.environment.as_deref(), Some("production"));
    assert_eq!(event.transaction.as_deref(), Some("/checkout"));
    assert_eq!(event.contexts, Some(contexts));
    assert_eq!(event.request, Some(request));
    assert_eq!(event.other, Some(other));

    // It serializes with its JSON as JSON, not as strings.
    let wire: Value = serde_json::to_value(&event).unwrap();
    assert_eq!(wire["exception"]["values"][0]["value"], nasty);
    assert_eq!(wire["level"], "fatal");

    // Defaults and NULLs of a minimal row come back as such.
    let bare = insert_event(&t, project, issue, day, None, None).await;
    let event = addr
        .send(GetEvent {
            project_id: project.to_string(),
            event_id: bare.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.tags, json!({}));
    assert_eq!(event.extra, json!({}));
    assert!(event.exception.is_none() && event.other.is_none() && event.occurred_at.is_none());

    assert_not_found(
        addr.send(GetEvent {
            project_id: project.to_string(),
            event_id: Uuid::now_v7().to_string(),
        })
        .await
        .unwrap(),
        "event",
    );
}

#[actix::test]
async fn a_corrupt_stored_level_is_an_internal_error_not_a_panic() {
    let t = TestDb::new().await;
    let day = today_start(&t).await;
    let project = t.new_project().await;
    let issue = insert_issue(&t, project, "x", day, 1).await;
    sql(
        &t,
        "UPDATE issues SET level = 'catastrophic' WHERE id = $1",
        &[&issue],
    )
    .await;
    let addr = service(&t);

    let reply = addr.send(list(project)).await.unwrap();
    assert!(matches!(reply, Err(Error::Internal { .. })), "{reply:?}");
    let reply = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap();
    assert!(matches!(reply, Err(Error::Internal { .. })), "{reply:?}");

    // Likewise an event's.
    let fine = insert_issue(&t, project, "fine", day, 1).await;
    let event = insert_event(&t, project, fine, day, None, None).await;
    sql(
        &t,
        "UPDATE events SET level = 'catastrophic' WHERE id = $1",
        &[&event],
    )
    .await;
    let reply = addr
        .send(GetEvent {
            project_id: project.to_string(),
            event_id: event.to_string(),
        })
        .await
        .unwrap();
    assert!(matches!(reply, Err(Error::Internal { .. })), "{reply:?}");
    // The actor is still there.
    assert!(addr.send(list(Uuid::now_v7())).await.is_ok());
}

/// A database of the release before bodies (nine JSON columns per event)
/// upgrades in place: its events read back as they were, and events stored
/// afterwards, as bodies, join the same issue with exact counts.
#[actix::test]
async fn events_of_the_release_before_bodies_read_back_after_the_upgrade() {
    let t = TestDb::empty().await;
    t.execute(include_str!("../fixtures/schema-before-bodies.sql"))
        .await;
    // Made as that release made them: its code is not this one, whose
    // queries name columns added since.
    let (org, project) = (Uuid::now_v7(), Uuid::now_v7());
    sql(
        &t,
        "INSERT INTO organizations (id, name, slug) VALUES ($1, 'Org', 'org')",
        &[&org],
    )
    .await;
    sql(
        &t,
        "INSERT INTO projects (id, org_id, name) VALUES ($1, $2, 'App')",
        &[&project, &org],
    )
    .await;
    let new = |message: &str| {
        let payload = json!({"message": message, "tags": {"k": "v"}, "user": {"id": 7},
            "fingerprint": ["upgrade"]});
        Event::from_json(project, payload.to_string().as_bytes()).unwrap()
    };
    let template = new("from before");
    let (old_id, fingerprint) = (Uuid::now_v7(), template.fingerprint().to_owned());
    let issue = Uuid::now_v7();
    sql(
        &t,
        "INSERT INTO issues (id, project_id, fingerprint, title, level, event_count)
         VALUES ($1, $2, $3, 'from before', 'error', 1)",
        &[&issue, &project, &fingerprint],
    )
    .await;
    let received = Utc::now() - Duration::minutes(5);
    let day = received.date_naive();
    t.execute(&format!(
        "CREATE TABLE events_{} PARTITION OF events FOR VALUES FROM ('{day} 00:00:00+00') TO ('{} 00:00:00+00')",
        day.format("%Y%m%d"),
        day + Duration::days(1),
    ))
    .await;
    sql(
        &t,
        "INSERT INTO events (id, project_id, issue_id, level, message, fingerprint, tags,
             user_context, received_at)
         VALUES ($1, $2, $3, 'error', 'from before', $4, '{\"k\": \"v\"}', '{\"id\": 7}', $5)",
        &[&old_id, &project, &issue, &fingerprint, &received],
    )
    .await;
    db::apply_schema(&t.pool).await.unwrap();

    let after = new("from after");
    db::events::insert_batch(&t.events, std::slice::from_ref(&after))
        .await
        .unwrap();
    let read = |id| {
        let pool = t.pool.clone();
        async move { db::issues::get_event(&pool, project, id).await.unwrap() }
    };
    let (before, later) = (read(old_id).await, read(after.id()).await);
    assert_eq!(before.message, "from before");
    assert_eq!(later.message, "from after");
    for event in [&before, &later] {
        assert_eq!(event.issue_id, Some(issue), "one issue");
        assert_eq!(event.tags, json!({"k": "v"}));
        assert_eq!(event.user_context, Some(json!({"id": 7})));
    }
    assert_eq!(
        t.count("SELECT event_count FROM issues").await,
        t.count("SELECT count(*) FROM events").await,
        "the issue counts both"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM events WHERE body IS NULL")
            .await,
        1,
        "the old row keeps its columns; the new one is a body"
    );
}

/// What the event page and the API show of an SDK's event is the same
/// whether it is built from the payload as received or read back from the
/// stored body: every fixture round-trips through PostgreSQL.
#[actix::test]
async fn sdk_events_read_back_from_their_bodies_as_they_were_sent() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    for name in [
        "python_exception",
        "python_message",
        "python_logging",
        "javascript_exception",
        "javascript_message",
        "rust_error",
        "rust_message",
        "rust_panic",
    ] {
        let json = std::fs::read(format!(
            "{}/src/domain/event/fixtures/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let event = Event::from_json(project, &json).unwrap();
        db::events::insert_batch(&t.events, std::slice::from_ref(&event))
            .await
            .unwrap();
        let stored = db::issues::get_event(&t.pool, project, event.id())
            .await
            .unwrap();
        let parts = EventParts::of(&EventPayload::from_json(&json).unwrap()).unwrap();
        let value = |raw: Option<&RawJson>| raw.map(|r| r.decode::<Value>().unwrap());
        assert_eq!(stored.message, parts.message(), "{name}");
        assert_eq!(stored.exception, value(parts.exception()), "{name}");
        assert_eq!(stored.stacktrace, value(parts.stacktrace()), "{name}");
        assert_eq!(stored.breadcrumbs, value(parts.breadcrumbs()), "{name}");
        assert_eq!(Some(stored.tags), value(Some(parts.tags())), "{name}");
        assert_eq!(Some(stored.extra), value(Some(parts.extra())), "{name}");
        assert_eq!(stored.user_context, value(parts.user()), "{name}");
        assert_eq!(stored.contexts, value(parts.contexts()), "{name}");
        assert_eq!(stored.request, value(parts.request()), "{name}");
        assert_eq!(stored.other, value(parts.other()), "{name}");
        assert_eq!(stored.sdk_name.as_deref(), parts.sdk_name(), "{name}");
        assert_eq!(stored.platform.as_deref(), parts.platform(), "{name}");
        assert_eq!(stored.fingerprint, event.fingerprint(), "{name}");
        assert_eq!(stored.release.as_deref(), event.release(), "{name}");
    }
}
