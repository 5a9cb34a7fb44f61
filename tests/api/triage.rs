//! Triage through the real write path: events stored by the batch
//! statement (or sent over HTTP by SDKs), then searched, broken down by
//! tag, archived until a condition and resolved in a release.

use crate::common::{TestDb, wait_until};
use crate::dashboard::Dash;
use actix::prelude::*;
use actix_web::http::Method;
use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use mesher::db;
use mesher::domain::{ArchiveUntil, Event, EventPayload, ResolveIn};
use mesher::services::{
    GetIssue, GetIssueHistory, GetIssueTags, IssueService, UpdateIssueStatus, WakeArchivedIssues,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use uuid::Uuid;

fn fixture(name: &str) -> Value {
    let text = match name {
        "python_exception" => include_str!("../../src/domain/event/fixtures/python_exception.json"),
        "python_message" => include_str!("../../src/domain/event/fixtures/python_message.json"),
        "javascript_exception" => {
            include_str!("../../src/domain/event/fixtures/javascript_exception.json")
        }
        "rust_error" => include_str!("../../src/domain/event/fixtures/rust_error.json"),
        _ => panic!("no fixture {name}"),
    };
    serde_json::from_str(text).unwrap()
}

/// `json` as a fresh event (its own id), with `changes` merged in.
fn event_json(mut json: Value, changes: Value) -> Value {
    json["event_id"] = json!(Uuid::now_v7().simple().to_string());
    for (k, v) in changes.as_object().unwrap() {
        json[k] = v.clone();
    }
    json
}

fn event(project: Uuid, json: &Value, at: DateTime<Utc>) -> Event {
    let payload = EventPayload::from_json(json.to_string().as_bytes()).unwrap();
    Event::from_payload_received_at(project, payload, at).unwrap()
}

async fn store(t: &TestDb, events: &[Event]) {
    let stored = db::events::store_batch(&t.events, events).await.unwrap();
    assert!(stored.refused.is_empty());
}

async fn issue_of(t: &TestDb, event: &Event) -> Uuid {
    t.pool
        .get()
        .await
        .unwrap()
        .query_one(
            "SELECT issue_id FROM events WHERE project_id = $1 AND id = $2",
            &[&event.project_id(), &event.id()],
        )
        .await
        .unwrap()
        .get(0)
}

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// Counts every tag of `events` by key and value.
fn expected_counts(events: &[&Event]) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for e in events {
        for tag in e.indexed_tags() {
            *counts
                .entry(tag.key.clone())
                .or_default()
                .entry(tag.value.clone())
                .or_default() += 1;
        }
    }
    counts
}

async fn breakdown_counts(
    addr: &Addr<IssueService>,
    project: Uuid,
    issue: Uuid,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    let tags = addr
        .send(GetIssueTags {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    tags.into_iter()
        .map(|b| {
            let values: BTreeMap<_, _> = b.top.iter().map(|c| (c.value.clone(), c.count)).collect();
            assert_eq!(b.total, values.values().sum::<i64>() + b.other, "{}", b.key);
            assert_eq!(b.distinct as usize, values.len(), "{}", b.key);
            (b.key, values)
        })
        .collect()
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_utc()
}

#[actix::test]
async fn tag_counts_equal_the_stored_events_also_after_retention() {
    let t = TestDb::new().await;
    let today = Utc::now().date_naive();
    let first = today - Days::new(2);
    db::partitions::ensure_range(&t.pool, first, 3, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let project = t.new_project().await;

    // One issue (one fingerprint), events over three days with a few
    // releases, browsers, users and SDK tags; a second issue beside it.
    let mut events = Vec::new();
    for i in 0..60u32 {
        let day = first + Days::new(u64::from(i % 3));
        let at = day_start(day) + Duration::seconds(i64::from(i) + 60);
        let changes = json!({
            "release": format!("web@{}", i % 4),
            "user": {"id": format!("u{}", i % 7)},
            "tags": {"shard": format!("{}", i % 5)},
            "request": {"url": "https://shop.example/cart?x=1",
                        "headers": {"User-Agent": if i % 2 == 0 { CHROME } else { "curl/8.0" }}},
        });
        events.push(event(
            project,
            &event_json(fixture("javascript_exception"), changes),
            at,
        ));
    }
    let other = event(
        project,
        &event_json(fixture("python_exception"), json!({})),
        day_start(today) + Duration::seconds(5),
    );
    events.push(other.clone());
    store(&t, &events).await;
    // A retried batch stores nothing again, and counts nothing again.
    store(&t, &events).await;

    let issue = issue_of(&t, &events[0]).await;
    let addr = IssueService::new(t.pool.clone()).start();
    let stored: Vec<&Event> = events[..60].iter().collect();
    let counts = breakdown_counts(&addr, project, issue).await;
    assert_eq!(counts, expected_counts(&stored));
    assert_eq!(counts["browser.name"]["Chrome"], 30);
    assert_eq!(counts["release"].len(), 4);
    assert_eq!(counts["url"]["https://shop.example/cart"], 60);
    // And what PostgreSQL counts over the stored rows agrees.
    let rows = t
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT release, count(*) FROM events WHERE issue_id = $1 GROUP BY release",
            &[&issue],
        )
        .await
        .unwrap();
    let by_release: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(counts["release"], by_release);
    let other_issue = issue_of(&t, &other).await;
    assert_eq!(
        breakdown_counts(&addr, project, other_issue).await,
        expected_counts(&[&other])
    );

    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.issue.users, 7);
    assert_eq!(detail.issue.first_release.as_deref(), Some("web@0"));

    // Retention drops the oldest day: the counts are those of the events
    // left, users seen only that day are gone.
    t.execute(&format!("DROP TABLE events_{}", first.format("%Y%m%d")))
        .await;
    db::triage::forget_days_before(&t.pool, None, first + Days::new(1))
        .await
        .unwrap();
    let left: Vec<&Event> = events[..60]
        .iter()
        .filter(|e| e.received_at().date_naive() > first)
        .collect();
    assert_eq!(left.len(), 40);
    assert_eq!(
        breakdown_counts(&addr, project, issue).await,
        expected_counts(&left)
    );
    let users: BTreeSet<&str> = left.iter().filter_map(|e| e.user_key()).collect();
    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.issue.users, users.len() as i64);
    assert_eq!(
        detail.issue.users,
        t.count(&format!(
            "SELECT count(*) FROM issue_users WHERE issue_id = '{issue}'"
        ))
        .await
    );
}

#[actix::test]
async fn values_past_the_bound_are_counted_as_other() {
    let t = TestDb::new().await;
    let today = Utc::now().date_naive();
    db::partitions::ensure_range(&t.pool, today, 1, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let project = t.new_project().await;
    let bound = db::triage::MAX_TAG_VALUES as usize;
    let at = day_start(today) + Duration::seconds(1);
    let events: Vec<Event> = (0..bound + 5)
        .map(|i| {
            let changes = json!({"tags": {"request_id": format!("r{i}")}});
            event(project, &event_json(fixture("rust_error"), changes), at)
        })
        .collect();
    // Two batches: the bound holds across them.
    store(&t, &events[..bound - 3]).await;
    store(&t, &events[bound - 3..]).await;
    let issue = issue_of(&t, &events[0]).await;
    let tags = IssueService::new(t.pool.clone())
        .start()
        .send(GetIssueTags {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    let request_id = tags.iter().find(|b| b.key == "request_id").unwrap();
    assert_eq!(request_id.total, (bound + 5) as i64);
    assert_eq!(request_id.distinct, bound as i64);
    assert_eq!(request_id.other, 5);
    assert_eq!(request_id.top.len(), mesher::domain::TOP_TAG_VALUES);
}

/// A service whose clock the test moves.
fn service_with_clock(t: &TestDb) -> (Addr<IssueService>, Arc<AtomicI64>) {
    let offset = Arc::new(AtomicI64::new(0));
    let clock = offset.clone();
    let addr = IssueService::with_clock(t.pool.clone(), move || {
        Utc::now() + Duration::seconds(clock.load(Ordering::Relaxed))
    })
    .start();
    (addr, offset)
}

async fn set_status(
    addr: &Addr<IssueService>,
    project: Uuid,
    issue: Uuid,
    status: &str,
    archive: Option<ArchiveUntil>,
    resolved_in: Option<ResolveIn>,
) -> mesher::Result<mesher::domain::Issue> {
    addr.send(UpdateIssueStatus {
        project_id: project.to_string(),
        issue_id: issue.to_string(),
        status: status.into(),
        archive,
        resolved_in,
        actor: None,
    })
    .await
    .unwrap()
}

async fn status_of(t: &TestDb, issue: Uuid) -> String {
    t.pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT status FROM issues WHERE id = $1", &[&issue])
        .await
        .unwrap()
        .get(0)
}

async fn history(addr: &Addr<IssueService>, project: Uuid, issue: Uuid) -> Vec<(String, Value)> {
    let mut entries = addr
        .send(GetIssueHistory {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    entries.reverse();
    entries.into_iter().map(|a| (a.kind, a.data)).collect()
}

/// Stores one event of the Rust fixture's issue with `changes`, now.
async fn one_more(t: &TestDb, project: Uuid, changes: Value) -> Event {
    let e = event(
        project,
        &event_json(fixture("rust_error"), changes),
        Utc::now(),
    );
    store(t, std::slice::from_ref(&e)).await;
    e
}

#[actix::test]
async fn archived_until_five_more_events_comes_back_with_the_fifth_once() {
    let t = TestDb::new().await;
    db::partitions::ensure_range(
        &t.pool,
        Utc::now().date_naive(),
        1,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let project = t.new_project().await;
    let first = one_more(&t, project, json!({})).await;
    let issue = issue_of(&t, &first).await;
    let (addr, _) = service_with_clock(&t);
    let archived = set_status(
        &addr,
        project,
        issue,
        "archived",
        Some(ArchiveUntil::Events(5)),
        None,
    )
    .await
    .unwrap();
    assert_eq!(archived.archived_until_events, Some(6));
    for _ in 0..4 {
        one_more(&t, project, json!({})).await;
        assert_eq!(status_of(&t, issue).await, "archived");
    }
    one_more(&t, project, json!({})).await;
    assert_eq!(status_of(&t, issue).await, "unresolved");
    for _ in 0..3 {
        one_more(&t, project, json!({})).await;
    }
    assert_eq!(
        history(&addr, project, issue).await,
        [
            ("archived".to_owned(), json!({"until": {"count": 5}})),
            ("unarchived".to_owned(), json!({"reason": "events"})),
        ]
    );
}

#[actix::test]
async fn archived_until_more_users_or_for_a_while() {
    let t = TestDb::new().await;
    db::partitions::ensure_range(
        &t.pool,
        Utc::now().date_naive(),
        1,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let project = t.new_project().await;
    let first = one_more(&t, project, json!({"user": {"id": "ann"}})).await;
    let issue = issue_of(&t, &first).await;
    let (addr, clock) = service_with_clock(&t);
    set_status(
        &addr,
        project,
        issue,
        "archived",
        Some(ArchiveUntil::Users(2)),
        None,
    )
    .await
    .unwrap();
    // Ann again, and events naming nobody, bring nobody new.
    one_more(&t, project, json!({"user": {"id": "ann"}})).await;
    one_more(&t, project, json!({})).await;
    one_more(&t, project, json!({"user": {"id": "bo"}})).await;
    assert_eq!(status_of(&t, issue).await, "archived");
    one_more(&t, project, json!({"user": {"email": "cy@example.org"}})).await;
    assert_eq!(status_of(&t, issue).await, "unresolved");

    // For ten minutes: the sweep leaves it until they are over.
    set_status(
        &addr,
        project,
        issue,
        "archived",
        Some(ArchiveUntil::Minutes(10)),
        None,
    )
    .await
    .unwrap();
    clock.store(9 * 60, Ordering::Relaxed);
    assert_eq!(addr.send(WakeArchivedIssues).await.unwrap().unwrap(), 0);
    assert_eq!(status_of(&t, issue).await, "archived");
    clock.store(11 * 60, Ordering::Relaxed);
    assert_eq!(addr.send(WakeArchivedIssues).await.unwrap().unwrap(), 1);
    assert_eq!(status_of(&t, issue).await, "unresolved");
    let kinds: Vec<_> = history(&addr, project, issue).await;
    assert_eq!(
        kinds,
        [
            ("archived".to_owned(), json!({"until": {"users": 2}})),
            ("unarchived".to_owned(), json!({"reason": "users"})),
            ("archived".to_owned(), json!({"until": {"minutes": 10}})),
            ("unarchived".to_owned(), json!({"reason": "time"})),
        ]
    );
}

#[actix::test]
async fn resolved_in_the_next_release_or_in_a_release() {
    let t = TestDb::new().await;
    db::partitions::ensure_range(
        &t.pool,
        Utc::now().date_naive(),
        1,
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    let project = t.new_project().await;
    // The project sees v0 first (another issue's event), then v1.
    store(
        &t,
        &[event(
            project,
            &event_json(fixture("python_exception"), json!({"release": "v0"})),
            Utc::now(),
        )],
    )
    .await;
    let first = one_more(&t, project, json!({"release": "v1"})).await;
    let issue = issue_of(&t, &first).await;
    let (addr, _) = service_with_clock(&t);

    // Never seen in a release: no next release to resolve in.
    let lone = event(
        project,
        &event_json(fixture("python_message"), json!({"release": null})),
        Utc::now(),
    );
    store(&t, std::slice::from_ref(&lone)).await;
    let lone_issue = issue_of(&t, &lone).await;
    assert!(matches!(
        set_status(
            &addr,
            project,
            lone_issue,
            "resolved",
            None,
            Some(ResolveIn::NextRelease)
        )
        .await,
        Err(mesher::Error::Conflict { .. })
    ));

    let resolved = set_status(
        &addr,
        project,
        issue,
        "resolved",
        None,
        Some(ResolveIn::NextRelease),
    )
    .await
    .unwrap();
    assert_eq!(resolved.resolved_after_release.as_deref(), Some("v1"));
    // The release it was last seen in, an older one, and none keep it
    // resolved.
    for release in [json!("v1"), json!("v0"), json!(null)] {
        one_more(&t, project, json!({"release": release})).await;
        assert_eq!(status_of(&t, issue).await, "resolved", "{release}");
    }
    // A newer release reopens it, as a regression, at PostgreSQL's time of
    // storing it.
    let clock = async || -> chrono::DateTime<Utc> {
        t.pool
            .get()
            .await
            .unwrap()
            .query_one("SELECT clock_timestamp()", &[])
            .await
            .unwrap()
            .get(0)
    };
    let before = clock().await;
    one_more(&t, project, json!({"release": "v2"})).await;
    let after = clock().await;
    assert_eq!(status_of(&t, issue).await, "unresolved");
    let detail = addr
        .send(GetIssue {
            project_id: project.to_string(),
            issue_id: issue.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    let regressed_at = detail.issue.regressed_at.expect("a regression");
    assert!(before <= regressed_at && regressed_at <= after);
    assert_eq!(detail.issue.last_release.as_deref(), Some("v2"));
    assert_eq!(detail.issue.first_release.as_deref(), Some("v1"));

    // Resolved in v3, not yet released: v2 keeps it resolved, v3 reopens.
    set_status(
        &addr,
        project,
        issue,
        "resolved",
        None,
        Some(ResolveIn::Release("v3".into())),
    )
    .await
    .unwrap();
    one_more(&t, project, json!({"release": "v2"})).await;
    assert_eq!(status_of(&t, issue).await, "resolved");
    one_more(&t, project, json!({"release": "v3"})).await;
    assert_eq!(status_of(&t, issue).await, "unresolved");

    let kinds: Vec<String> = history(&addr, project, issue)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["resolved", "regression", "resolved", "regression"]);
}

/// An owner, a project and the ingest URL of its key.
struct Api {
    dash: Dash,
    owner: String,
    project: String,
    store_url: String,
    dsn: String,
}

async fn api(t: &TestDb) -> Api {
    let dash = Dash::start(t).await;
    let owner = dash.user("owner@example.org").await;
    let org = dash.org(&owner, "Acme", "acme").await;
    let made = dash
        .project(&owner, &org, json!({"name": "shop", "platform": "python"}))
        .await;
    let public_id = made.dsn.rsplit('/').next().unwrap();
    let store_url = format!("/api/{public_id}/store/?sentry_key={}", made.key);
    Api {
        dash,
        owner,
        project: made.id,
        store_url,
        dsn: made.dsn,
    }
}

impl Api {
    async fn send(&self, json: Value) {
        let reply = self
            .dash
            .call(
                Method::POST,
                &self.store_url,
                crate::dashboard::Auth::None,
                Some(json),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    async fn titles(&self, query: &str) -> BTreeSet<String> {
        let reply = self.search(query).await;
        assert_eq!(reply.status, 200, "{query}: {}", reply.body);
        reply.body["issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn search(&self, query: &str) -> crate::dashboard::Reply {
        let q = serde_urlencoded::to_string([("query", query)]).unwrap();
        self.dash
            .get(
                &format!("/api/v1/projects/{}/issues?{q}", self.project),
                &self.owner,
            )
            .await
    }
}

#[actix::test]
async fn search_finds_what_the_sdks_sent() {
    let t = TestDb::new().await;
    let a = api(&t).await;

    // What the Python SDK sent (its fixtures, fresh ids).
    a.send(event_json(
        fixture("python_exception"),
        json!({"user": {"id": "u1"}}),
    ))
    .await;
    a.send(event_json(fixture("python_message"), json!({})))
        .await;
    // The browser SDK's error from Chrome, for twelve users.
    for i in 1..=12 {
        let mut js = fixture("javascript_exception");
        js["request"]["headers"]["User-Agent"] = json!(CHROME);
        a.send(event_json(js, json!({"user": {"id": format!("u{i}")}})))
            .await;
    }
    // The Rust SDK itself, with its real contexts (OS, rustc, device).
    let dsn = a.dsn.clone();
    tokio::task::spawn_blocking(move || {
        let mut options = sentry::ClientOptions::default();
        options.dsn = Some(dsn.parse().unwrap());
        options.release = Some("billing@0.3.0".into());
        options.environment = Some("staging".into());
        options.server_name = Some("billing-1".into());
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
        let error = "seventeen".parse::<u32>().unwrap_err();
        hub.capture_event(sentry::event_from_error(&error));
        assert!(client.flush(Some(std::time::Duration::from_secs(10))));
    })
    .await
    .unwrap();
    wait_until("the events are stored", async || {
        t.count("SELECT count(*) FROM events").await == 15
    })
    .await;

    let key_error = "KeyError: 17";
    let message = "user 17 not found";
    let type_error = "TypeError: Cannot read properties of undefined (reading 'items')";
    let parse = "ParseIntError: invalid digit found in string";
    let set = |titles: &[&str]| {
        titles
            .iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<_>>()
    };
    let table: [(&str, &[&str]); 18] = [
        ("", &[key_error, message, type_error, parse]),
        ("runtime.name:CPython", &[key_error, message]),
        ("runtime.name:rustc", &[parse]),
        ("os.name:Linux", &[parse]),
        ("browser.name:Chrome", &[type_error]),
        ("!browser.name:Chrome", &[key_error, message, parse]),
        ("users:>10", &[type_error]),
        ("users:1", &[key_error]),
        ("has:user", &[key_error, type_error]),
        ("!has:user level:error", &[parse]),
        ("release:shop@1.2.3 level:info", &[message]),
        ("environment:staging", &[parse]),
        ("is:unresolved release:web@4.5.6", &[type_error]),
        ("server_name:vm", &[key_error, message]),
        ("times_seen:>10", &[type_error]),
        (
            "firstSeen:-1h lastSeen:-1h",
            &[key_error, message, type_error, parse],
        ),
        ("lastSeen:+1d", &[]),
        (r#"KeyError is:unresolved"#, &[key_error]),
    ];
    for (query, want) in table {
        assert_eq!(a.titles(query).await, set(want), "{query}");
    }

    for (query, token, position) in [
        ("is:bogus", "is:bogus", 1),
        ("level:error release:", "release:", 13),
    ] {
        let reply = a.search(query).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.body["error"]["code"], "invalid_search");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(token) && message.contains(&format!("position {position}")),
            "{message}"
        );
    }
}

#[actix::test]
async fn the_api_archives_resolves_and_shows_tags_and_activity() {
    let t = TestDb::new().await;
    let a = api(&t).await;
    for i in 0..3 {
        a.send(event_json(
            fixture("python_exception"),
            json!({"user": {"id": format!("u{}", i % 2)}}),
        ))
        .await;
    }
    wait_until("the events are stored", async || {
        t.count("SELECT count(*) FROM events").await == 3
    })
    .await;
    let list = a.search("").await;
    let issue = &list.body["issues"][0];
    assert_eq!(issue["users"], 2);
    assert_eq!(issue["first_release"], "shop@1.2.3");
    assert_eq!(issue["last_release"], "shop@1.2.3");
    let path = format!(
        "/api/v1/projects/{}/issues/{}",
        a.project,
        issue["id"].as_str().unwrap()
    );

    let tags = a.dash.get(&format!("{path}/tags"), &a.owner).await;
    assert_eq!(tags.status, 200);
    let release = tags.body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["key"] == "release")
        .unwrap();
    assert_eq!(
        release,
        &json!({"key": "release", "total": 3, "distinct": 1, "other": 0,
                "top": [{"value": "shop@1.2.3", "count": 3}]})
    );

    let patch = |body: Value| {
        a.dash.call(
            Method::PATCH,
            &path,
            crate::dashboard::Auth::Bearer(&a.owner),
            Some(body),
        )
    };
    let archived = patch(json!({"status": "archived", "archive": {"count": 5}})).await;
    assert_eq!(archived.status, 200, "{}", archived.body);
    assert_eq!(archived.body["status"], "archived");
    assert_eq!(archived.body["archived_until_events"], 8);
    assert_eq!(a.titles("is:ignored").await.len(), 1);
    assert!(a.titles("is:unresolved").await.is_empty());

    for bad in [
        json!({"status": "archived", "archive": {"count": 0}}),
        json!({"status": "resolved", "archive": {}}),
        json!({"archive": {}}),
        json!({"status": "resolved", "resolved_in": {"next": true}}),
    ] {
        assert_eq!(patch(bad.clone()).await.status, 400, "{bad}");
    }
    let resolved =
        patch(json!({"status": "resolved", "resolved_in": {"next_release": true}})).await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(resolved.body["resolved_after_release"], "shop@1.2.3");

    let activity = a.dash.get(&format!("{path}/activity"), &a.owner).await;
    let kinds: Vec<&str> = activity.body["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["resolved", "archived"]);
    assert_eq!(activity.body["activity"][0]["user_name"], "Someone");
}

#[actix::test]
async fn an_upgraded_database_counts_the_users_and_levels_of_its_stored_events() {
    let t = TestDb::empty().await;
    t.execute(include_str!("../fixtures/schema-first.sql"))
        .await;
    let today = Utc::now().date_naive();
    let (project, issue) = (Uuid::now_v7(), Uuid::now_v7());
    t.execute(&format!(
        "CREATE TABLE events_{day} PARTITION OF events FOR VALUES FROM ('{today}') TO ('{tomorrow}');
         INSERT INTO organizations (id, name, slug) VALUES ('{project}', 'Old', 'old');
         INSERT INTO projects (id, org_id, name) VALUES ('{project}', '{project}', 'p');
         INSERT INTO issues (id, project_id, fingerprint, title, level, event_count)
             VALUES ('{issue}', '{project}', 'fp', 'boom', 'error', 3);
         INSERT INTO events (id, project_id, issue_id, level, message, fingerprint, user_context, received_at)
             VALUES (gen_random_uuid(), '{project}', '{issue}', 'error', 'boom', 'fp', '{{\"id\": 7}}', now()),
                    (gen_random_uuid(), '{project}', '{issue}', 'error', 'boom', 'fp', '{{\"id\": \"7\"}}', now()),
                    (gen_random_uuid(), '{project}', '{issue}', 'warning', 'boom', 'fp', '{{\"email\": \"a@b.c\"}}', now());",
        day = today.format("%Y%m%d"),
        tomorrow = today + Days::new(1),
    ))
    .await;
    db::apply_schema(&t.pool).await.unwrap();
    // Applying it again changes nothing.
    db::apply_schema(&t.pool).await.unwrap();
    let addr = IssueService::new(t.pool.clone()).start();
    let counts = breakdown_counts(&addr, project, issue).await;
    assert_eq!(
        counts["level"],
        BTreeMap::from([("error".into(), 2), ("warning".into(), 1)])
    );
    assert_eq!(
        counts["user"],
        BTreeMap::from([("id:7".into(), 2), ("email:a@b.c".into(), 1)])
    );
    assert_eq!(
        t.count(&format!(
            "SELECT user_count FROM issues WHERE id = '{issue}'"
        ))
        .await,
        2
    );
}
