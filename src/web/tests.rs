//! Every page rendered from a sample view model: the content a reader
//! needs is there, hostile text is escaped, and each input has its label.
//! Plus the routes served without a session.

use super::event::EventView;
use super::event::tests::{now, sample_event};
use super::format::{RelTime, Setup, Sparkline};
use super::pages::*;
use super::render;
use crate::domain::{Issue, IssueStatus, Severity, StoredEvent};
use actix_web::body::to_bytes;
use actix_web::http::{StatusCode, header};
use askama::Template;
use serde_json::json;
use uuid::Uuid;

const HOSTILE: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&#60;script&#62;alert(1)&#60;/script&#62;";

fn nav() -> Option<Nav> {
    Some(Nav {
        display_name: "Ann".into(),
        email: "ann@example.org".into(),
    })
}

fn layout(title: &str) -> Layout {
    Layout::new(title, nav())
}

/// Renders `page`, checking what every page must hold: no raw hostile
/// text, every `<input>`/`<select>` that is not hidden or a checkbox
/// labelled through a `for` that names its id.
fn html(page: &impl Template) -> String {
    let out = page.render().expect("renders");
    assert!(!out.contains(HOSTILE), "unescaped hostile text in:\n{out}");
    for tag in ["<input ", "<select "] {
        for piece in out.split(tag).skip(1) {
            let element = &piece[..piece.find('>').unwrap()];
            let id = element
                .split("id=\"")
                .nth(1)
                .map(|rest| &rest[..rest.find('"').unwrap()])
                .unwrap_or_else(|| panic!("{tag} without id: {element}"));
            assert!(
                out.contains(&format!("for=\"{id}\"")),
                "no label for #{id} in:\n{out}"
            );
        }
    }
    out
}

fn project() -> ProjectHeader {
    ProjectHeader {
        id: "p1".into(),
        name: format!("shop {HOSTILE}"),
        org_id: "o1".into(),
        org_name: "Acme".into(),
        can_admin: true,
    }
}

fn issue() -> Issue {
    Issue {
        id: Uuid::nil(),
        project_id: Uuid::nil(),
        fingerprint: "f".into(),
        title: format!("KeyError: {HOSTILE}"),
        culprit: Some("app.views in load_user".into()),
        level: Severity::Error,
        status: IssueStatus::Unresolved,
        event_count: 1234,
        first_seen: now() - chrono::Duration::days(2),
        last_seen: now() - chrono::Duration::minutes(3),
        resolved_at: None,
        regressed_at: None,
        assigned_to: None,
        users: 0,
        first_release: None,
        last_release: None,
        resolved_in_release: None,
        resolved_after_release: None,
        archived_until: None,
        archived_until_events: None,
        archived_until_users: None,
    }
}

fn setup() -> Setup {
    Setup::new("http://mshr_abc@127.0.0.1:8000/42")
}

#[test]
fn login_and_register_pages() {
    let login = html(&LoginPage {
        layout: Layout::new("Log in", None),
        email: HOSTILE.into(),
        error: Some(format!("wrong password for {HOSTILE}")),
        registration_open: true,
    });
    assert!(login.contains("<h1>Log in</h1>"));
    assert!(login.contains(&format!("value=\"{ESCAPED}\"")));
    assert!(login.contains("role=\"alert\""));
    assert!(login.contains("href=\"/register\""));
    assert!(login.contains("action=\"/login\""));
    assert!(!login.contains("Log out"), "no session, no logout");

    let closed = html(&closed_register());
    assert!(closed.contains("Registration is switched off"));
    assert!(!closed.contains("<form"));
    let open = html(&RegisterPage {
        registration_open: true,
        ..closed_register()
    });
    assert!(open.contains("autocomplete=\"new-password\""));
}

fn closed_register() -> RegisterPage {
    RegisterPage {
        layout: Layout::new("Create an account", None),
        email: String::new(),
        display_name: String::new(),
        error: None,
        registration_open: false,
    }
}

#[test]
fn projects_page_with_counts_and_empty_states() {
    let org = |can_admin| OrgHeader {
        id: "o1".into(),
        name: format!("Acme {HOSTILE}"),
        slug: "acme".into(),
        role: if can_admin { "admin" } else { "member" },
        can_admin,
    };
    let page = html(&ProjectsPage {
        layout: layout("Projects"),
        orgs: vec![OrgProjects {
            org: org(true),
            projects: vec![ProjectRow {
                id: "p1".into(),
                name: "shop".into(),
                platform: Some("python".into()),
                unresolved_issues: 7,
                total_issues: 31,
                stored_events: 1200,
                stored_bytes: "1.5 MB".into(),
            }],
        }],
    });
    assert!(page.contains("<strong>7</strong> unresolved · 31 issues"));
    assert!(page.contains("1200 events stored · 1.5 MB"));
    assert!(page.contains("href=\"/projects/p1/issues\""));
    assert!(page.contains("href=\"/projects/new\""));
    assert!(page.contains("Log out"));

    let member = html(&ProjectsPage {
        layout: layout("Projects"),
        orgs: vec![OrgProjects {
            org: org(false),
            projects: vec![],
        }],
    });
    assert!(member.contains("No projects yet."));
    assert!(!member.contains("/projects/new"), "members cannot create");
    let nobody = html(&ProjectsPage {
        layout: layout("Projects"),
        orgs: vec![],
    });
    assert!(nobody.contains("You do not belong to any organization yet."));
}

#[test]
fn creating_a_project_shows_the_dsn_once_with_snippets() {
    let form = html(&NewProjectPage {
        layout: layout("New project"),
        orgs: vec![
            OrgOption {
                id: "o1".into(),
                name: "Acme".into(),
            },
            OrgOption {
                id: "o2".into(),
                name: HOSTILE.into(),
            },
        ],
        org_id: "o2".into(),
        name: HOSTILE.into(),
        platform: String::new(),
        error: None,
    });
    assert!(form.contains("<option value=\"o2\" selected>"));
    assert!(form.contains("action=\"/projects/new\""));

    let created = html(&ProjectCreatedPage {
        layout: layout("Project created"),
        project: project(),
        setup: setup(),
    });
    assert!(created.contains("value=\"http://mshr_abc@127.0.0.1:8000/42\""));
    for lang in ["Python", "JavaScript", "Rust"] {
        assert!(
            created.contains(&format!("<summary>{lang}</summary>")),
            "{lang}"
        );
    }
    assert!(created.contains("sentry_sdk.init(dsn=&#34;http://mshr_abc@127.0.0.1:8000/42&#34;)"));
    assert!(created.contains("data-copy=\"dsn\""));
}

fn rows() -> Vec<IssueRow> {
    let mut row = IssueRow::new(&issue(), now());
    row.users = Some(3);
    row.sparkline = Some(Sparkline::new(&[(now().date_naive(), 4)]));
    vec![row]
}

#[test]
fn issue_list_with_filters_pages_and_bulk_resolve() {
    let filters = IssueFilters {
        status: Some("resolved".into()),
        query: Some("a&b=\"c\"".into()),
        sort: Some("event_count".into()),
        cursor: Some("abc".into()),
        ..Default::default()
    };
    let page = html(&IssuesPage::new(
        layout("Issues"),
        project(),
        filters,
        rows(),
        Some("def"),
    ));
    assert!(page.contains(&format!("KeyError: {ESCAPED}")));
    assert!(page.contains("app.views in load_user"));
    assert!(page.contains("3 minutes ago"));
    assert!(page.contains("2 days ago"));
    assert!(page.contains(">1234<"));
    assert!(page.contains(">3<"), "users affected");
    assert!(page.contains("<svg class=\"spark\""));
    assert!(page.contains("<option value=\"resolved\" selected>"));
    assert!(page.contains("<option value=\"event_count\" selected>"));
    assert!(page.contains("value=\"a&#38;b=&#34;c&#34;\""));
    assert!(page.contains("action=\"/projects/p1/issues/resolve\""));
    assert!(page.contains(&format!("name=\"issue\" value=\"{}\"", Uuid::nil())));
    // The next page keeps the filters; the first page drops the cursor.
    assert!(page.contains(
        "href=\"?status=resolved&#38;query=a%26b%3D%22c%22&#38;sort=event_count&#38;cursor=def\""
    ));
    assert!(
        page.contains("href=\"?status=resolved&#38;query=a%26b%3D%22c%22&#38;sort=event_count\"")
    );

    let empty = html(&IssuesPage::new(
        layout("Issues"),
        project(),
        IssueFilters::default(),
        vec![],
        None,
    ));
    assert!(empty.contains("Events will appear here"));
    assert!(empty.contains("href=\"/projects/p1/keys\""));
    assert!(!empty.contains("Resolve selected"));
    assert!(!empty.contains("Next page"));
    let filtered = html(&IssuesPage::new(
        layout("Issues"),
        project(),
        IssueFilters {
            release: Some("1.0".into()),
            ..Default::default()
        },
        vec![],
        None,
    ));
    assert!(filtered.contains("No issues match these filters."));
}

#[test]
fn issue_filters_defaults_and_query_strings() {
    let none = IssueFilters::default();
    assert_eq!(none.status(), Some("unresolved"));
    assert!(!none.narrowed());
    assert_eq!(none.query_string(None), "");
    let all = IssueFilters {
        status: Some("all".into()),
        environment: Some(String::new()),
        ..Default::default()
    };
    assert_eq!(all.status(), None);
    assert_eq!(all.status_choice(), "all");
    assert!(all.narrowed());
    assert_eq!(all.environment(), None, "an empty field is no filter");
    assert_eq!(all.query_string(Some("c")), "status=all&cursor=c");
    assert_eq!(none.sort_choice(), "last_seen");
}

fn issue_page(event: Option<StoredEvent>) -> IssuePage {
    let days: Vec<_> = (0..14)
        .map(|i| (now().date_naive() - chrono::Days::new(13 - i), i as i64))
        .collect();
    IssuePage {
        layout: layout("Issue"),
        project: project(),
        issue: IssueRow::new(&issue(), now()),
        stored_events: issue().event_count,
        sparkline: Sparkline::new(&days),
        resolved: None,
        assignee: Assignee {
            current: Some("Ann".into()),
            choices: vec![
                MemberChoice {
                    user_id: "u1".into(),
                    label: "Ann".into(),
                    selected: true,
                },
                MemberChoice {
                    user_id: "u2".into(),
                    label: HOSTILE.into(),
                    selected: false,
                },
            ],
        },
        event: event.map(|e| EventView::new(&e, now())),
        newer_event: None,
        older_event: Some("?event=older".into()),
        alerts: vec![],
        triage: crate::web::triage::IssueTriage {
            tags: crate::web::triage::TagView::of(
                Uuid::nil(),
                &[crate::domain::TagBreakdown {
                    key: "browser.name".into(),
                    total: 3,
                    distinct: 2,
                    other: 0,
                    top: vec![crate::domain::TagCount {
                        value: HOSTILE.into(),
                        count: 2,
                    }],
                }],
            ),
            history: Vec::new(),
            first_release: Some(HOSTILE.into()),
            last_release: Some("v2".into()),
            note: None,
        },
    }
}

#[test]
fn issue_page_shows_the_trace_breadcrumbs_and_context() {
    let mut event = sample_event();
    event.message = HOSTILE.into();
    event.tags = json!({"hostile": HOSTILE});
    event.breadcrumbs = Some(json!([
        {"timestamp": "2026-03-15T11:59:58.5Z", "message": HOSTILE, "category": "ui.click"}
    ]));
    let page = html(&issue_page(Some(event)));
    // The frame names, in-app open and highlighted, the library one shut.
    assert!(page.contains("<span class=\"fn\">load_user</span>"));
    assert!(page.contains("<span class=\"fn\">dispatch</span>"));
    assert!(page.contains("<li class=\"frame in-app\">\n    <details open>"));
    assert!(page.contains("<li class=\"frame\">\n    <details>"));
    assert!(page.contains(
        "<span class=\"line current\"><span class=\"ln\">17</span>    return users[key]</span>"
    ));
    assert!(page.contains("<span class=\"exc-type\">KeyError</span>"));
    assert!(page.contains("caused the exception above"));
    // Breadcrumbs, tables, facts, raw JSON.
    assert!(page.contains("<ol class=\"timeline\">"));
    assert!(page.contains("11:59:58.500"));
    assert!(page.contains("<caption>Tags</caption>"));
    assert!(page.contains("<caption>User</caption>"));
    assert!(page.contains("<caption>Request</caption>"));
    assert!(page.contains("<caption>runtime</caption>"));
    assert!(page.contains("https://app.example.org/users/7"));
    assert!(page.contains("sentry.python 2.1.0"));
    assert!(page.contains("app@1.2.3"));
    assert!(page.contains("<summary>Raw JSON</summary>"));
    // Hostile text from the event, everywhere it shows, is escaped.
    assert!(page.matches(ESCAPED).count() >= 4, "{page}");
    // Controls and navigation.
    assert!(page.contains("name=\"status\" value=\"resolved\""));
    assert!(!page.contains("value=\"unresolved\""), "already unresolved");
    assert!(page.contains("<option value=\"u1\" selected>Ann</option>"));
    assert!(page.contains("href=\"?event=older\""));
    assert!(page.contains("Newest event"));
    assert!(page.contains("91 events in the last 14 days"));
}

#[test]
fn issue_page_without_event_says_why() {
    let page = html(&issue_page(None));
    assert!(page.contains("stored events are gone"));
    assert!(!page.contains("Stack trace"));
}

#[test]
fn keys_page_lists_keys_and_shows_a_new_dsn_once() {
    let created = RelTime::new(now() - chrono::Duration::days(1), now());
    let page = html(&KeysPage {
        layout: layout("Keys"),
        project: project(),
        keys: vec![
            KeyRow {
                id: "k1".into(),
                label: HOSTILE.into(),
                prefix: "mshr_ab12".into(),
                created: created.clone(),
                revoked: None,
                rate_limit: "600".into(),
            },
            KeyRow {
                id: "k2".into(),
                label: "old".into(),
                prefix: "mshr_cd34".into(),
                created: created.clone(),
                revoked: Some(created),
                rate_limit: String::new(),
            },
        ],
        created: Some(setup()),
        error: None,
    });
    assert!(page.contains("mshr_ab12…"));
    assert!(page.contains("action=\"/projects/p1/keys/k1/revoke\""));
    assert!(
        !page.contains("/keys/k2/revoke"),
        "revoked keys stay revoked"
    );
    // An active key's limit can be changed, a revoked one's not.
    assert!(page.contains("action=\"/projects/p1/keys/k1/limit\""));
    assert!(page.contains("value=\"600\""));
    assert!(!page.contains("/keys/k2/limit"));
    assert!(page.contains("revoked <time"));
    assert!(page.contains("value=\"http://mshr_abc@127.0.0.1:8000/42\""));
    let later = html(&KeysPage {
        layout: layout("Keys"),
        project: project(),
        keys: vec![],
        created: None,
        error: None,
    });
    assert!(!later.contains("mshr_abc@"), "the DSN is shown only once");
    assert!(later.contains("This project has no keys"));
}

#[test]
fn members_page_with_role_controls() {
    let joined = RelTime::new(now() - chrono::Duration::days(40), now());
    let member = |id: &str, role, editable| MemberRow {
        user_id: id.into(),
        display_name: HOSTILE.into(),
        email: format!("{id}@example.org"),
        role,
        joined: joined.clone(),
        editable,
    };
    let page = html(&MembersPage {
        layout: layout("Members"),
        org: OrgHeader {
            id: "o1".into(),
            name: "Acme".into(),
            slug: "acme".into(),
            role: "admin",
            can_admin: true,
        },
        members: vec![member("u1", "owner", false), member("u2", "member", true)],
        roles: vec!["member", "admin"],
        email: String::new(),
        error: Some("no user with that email".into()),
    });
    assert!(page.contains("action=\"/orgs/o1/members/u2/role\""));
    assert!(!page.contains("/members/u1/role"), "admins leave owners be");
    assert!(page.contains("<option value=\"member\" selected>member</option>"));
    assert!(page.contains("action=\"/orgs/o1/members\""));
    assert!(page.contains("no user with that email"));
    assert!(page.contains("1 month ago"));
}

#[actix_web::test]
async fn the_404_page_reveals_nothing_and_carries_the_headers() {
    let res = render(StatusCode::NOT_FOUND, &ErrorPage::not_found(None));
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let headers = res.headers().clone();
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "text/html; charset=utf-8"
    );
    assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    assert!(
        headers
            .get(header::CONTENT_SECURITY_POLICY)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let body = to_bytes(res.into_body()).await.unwrap();
    let body = std::str::from_utf8(&body).unwrap();
    assert!(body.contains("<h1>Page not found</h1>"));
    assert!(body.contains("or you do not have access to it"));
}

#[test]
fn issue_page_shows_resolved_frames_with_the_minified_ones_behind_a_toggle() {
    let mut event = sample_event();
    event.exception = Some(json!({"values": [{
        "type": "Error", "value": "card declined",
        "stacktrace": {"frames": [
            {"filename": "/srv/dist/app.js", "function": "o", "lineno": 1, "colno": 9,
             "data": {"sourcemap_error": "no source map uploaded for debug id 7"}},
            {"filename": "../src/checkout.js", "function": "chargeCard", "lineno": 4, "colno": 5,
             "in_app": true, "context_line": "    throw new Error('card declined');"}
        ]},
        "raw_stacktrace": {"frames": [
            {"filename": "/srv/dist/app.js", "function": "o", "lineno": 1, "colno": 9},
            {"filename": "/srv/dist/app.js", "function": "s", "lineno": 1, "colno": 498}
        ]}
    }]}));
    let page = html(&issue_page(Some(event)));
    let resolved = page.find("<span class=\"fn\">chargeCard</span>").unwrap();
    let toggle = page
        .find("<summary>Minified frames, as sent</summary>")
        .unwrap();
    let minified = page.find("<span class=\"fn\">s</span>").unwrap();
    assert!(resolved < toggle && toggle < minified, "{page}");
    assert!(page.contains("../src/checkout.js:4:5"));
    assert!(page.contains("/srv/dist/app.js:1:498"));
    assert!(page.contains(
        "<p class=\"note\">Not resolved through a source map: no source map uploaded for debug id 7.</p>"
    ));
}
