//! Issues through the dashboard API: an SDK's event read back with its
//! stack trace, triage, and pages that neither skip nor repeat an issue
//! while events keep arriving.

use crate::common::{TestDb, wait_until};
use crate::dashboard::{Auth, Dash};
use actix_web::http::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

#[actix::test]
async fn an_error_sent_by_the_sentry_sdk_is_read_back_with_its_stack_trace_and_resolved() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = dash.owner_with_project("owner@example.org", "api").await;

    let dsn = s.project.dsn.clone();
    let event_id = tokio::task::spawn_blocking(move || {
        let mut options = sentry::ClientOptions::default();
        options.dsn = Some(dsn.parse().unwrap());
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
        let error = "seventeen".parse::<u32>().unwrap_err();
        let mut event = sentry::event_from_error(&error);
        if let Some(raised) = event.exception.values.last_mut() {
            raised.stacktrace = sentry::integrations::backtrace::current_stacktrace();
        }
        let id = hub.capture_event(event);
        assert!(client.flush(Some(Duration::from_secs(10))));
        id
    })
    .await
    .unwrap();
    wait_until("the event is stored", async || {
        t.count("SELECT count(*) FROM events").await == 1
    })
    .await;

    let issues = dash
        .get(
            &format!("/api/v1/projects/{}/issues", s.project.id),
            &s.owner,
        )
        .await;
    assert_eq!(issues.status, 200);
    let issue = &issues.body["issues"][0];
    assert_eq!(
        issue["title"],
        "ParseIntError: invalid digit found in string"
    );
    let issue_id = issue["id"].as_str().unwrap();

    let detail = dash
        .get(
            &format!("/api/v1/projects/{}/issues/{issue_id}", s.project.id),
            &s.owner,
        )
        .await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.body["daily_counts"].as_array().unwrap().len(), 14);
    let event = dash
        .get(
            &format!(
                "/api/v1/projects/{}/events/{}",
                s.project.id,
                event_id.simple()
            ),
            &s.owner,
        )
        .await;
    assert_eq!(event.status, 200, "{}", event.body);
    let raised = event.body["exception"]["values"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let frames = raised["stacktrace"]["frames"].as_array().unwrap();
    let functions: Vec<&str> = frames
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(
        functions.iter().any(|f| f.contains("dashboard_issues")),
        "the test's own frame is in the trace: {functions:?}"
    );

    let resolved = dash
        .call(
            Method::PATCH,
            &format!("/api/v1/projects/{}/issues/{issue_id}", s.project.id),
            Auth::Bearer(&s.owner),
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(resolved.body["status"], "resolved");
    let open = dash
        .get(
            &format!("/api/v1/projects/{}/issues?status=unresolved", s.project.id),
            &s.owner,
        )
        .await;
    assert_eq!(open.body["issues"], json!([]));

    // Only a member may be assigned.
    let stranger = dash.user("stranger@example.org").await;
    let stranger_id = dash.user_id(&stranger).await;
    let refused = dash
        .call(
            Method::PATCH,
            &format!("/api/v1/projects/{}/issues/{issue_id}", s.project.id),
            Auth::Bearer(&s.owner),
            Some(json!({"assignee_id": stranger_id})),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("assignee_id")
    );
}

/// Sends `n` events, each its own issue (its own fingerprint).
async fn send_issues(dash: &Dash, key: &str, from: usize, n: usize) {
    let events: Vec<Value> = (from..from + n)
        .map(|i| json!({"message": format!("issue {i}"), "fingerprint": [format!("issue-{i}")]}))
        .collect();
    let sent = dash
        .call(
            Method::POST,
            "/api/v1/events",
            Auth::Bearer(key),
            Some(Value::Array(events)),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
}

#[actix::test]
async fn pages_neither_skip_nor_repeat_an_issue_while_new_ones_arrive() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = dash.owner_with_project("owner@example.org", "api").await;
    send_issues(&dash, &s.project.key, 0, 60).await;
    wait_until("60 issues", async || {
        t.count("SELECT count(*) FROM issues").await == 60
    })
    .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/api/v1/projects/{}/issues?sort=first_seen&limit=7&cursor={c}",
                s.project.id
            ),
            None => format!(
                "/api/v1/projects/{}/issues?sort=first_seen&limit=7",
                s.project.id
            ),
        };
        let page = dash.get(&path, &s.owner).await;
        assert_eq!(page.status, 200, "{}", page.body);
        for issue in page.body["issues"].as_array().unwrap() {
            seen.push(issue["title"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if pages == 2 {
            // New issues arrive mid-walk; they head a fresh first page.
            send_issues(&dash, &s.project.key, 60, 5).await;
            wait_until("65 issues", async || {
                t.count("SELECT count(*) FROM issues").await == 65
            })
            .await;
        }
        match page.body["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no issue twice: {seen:?}");
    let expected: BTreeSet<String> = (0..60).map(|i| format!("issue {i}")).collect();
    let walked: BTreeSet<String> = seen.into_iter().filter(|t| expected.contains(t)).collect();
    assert_eq!(
        walked, expected,
        "every issue that existed at the start, once"
    );
}
