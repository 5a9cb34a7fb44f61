//! The web UI over a real socket: the pages served without a session, the
//! HTML 404 outside `/api` (JSON within), and, in a real headless
//! Chromium, the login page at a laptop's and a phone's width.

use crate::browser::{Browser, DESKTOP, PHONE};
use crate::common::{TestDb, wait_until};
use actix_web::http::StatusCode;
use fantoccini::Locator;
use mesher::Mesher;

/// Status, content type and body of `GET path`.
async fn get(mesher: &Mesher, path: &str) -> (StatusCode, String, String) {
    let url = format!("http://{}{path}", mesher.http_addr);
    let mut res = awc::Client::default()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.body().await.expect("body");
    (
        res.status(),
        content_type,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

#[actix::test]
async fn pages_without_a_session_and_the_404_page() {
    let t = TestDb::new().await;
    let mesher = t.start().await;

    for (path, heading) in [
        ("/login", "<h1>Log in</h1>"),
        ("/register", "<h1>Create an account</h1>"),
    ] {
        let (status, content_type, body) = get(&mesher, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
        assert!(body.contains(heading), "{path}: {body}");
    }

    // People browsing get the 404 page; API clients keep their JSON.
    for path in ["/no-such-page", "/projects/%3Cscript%3E", "/apiary"] {
        let (status, content_type, body) = get(&mesher, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(content_type, "text/html; charset=utf-8", "{path}");
        assert!(body.contains("Page not found"), "{path}");
    }
    for path in ["/api", "/api/v1/nothing", "/api/1/nothing/"] {
        let (status, content_type, _) = get(&mesher, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(content_type, "application/json", "{path}");
    }

    // The stylesheet the pages link is served.
    let (_, _, login) = get(&mesher, "/login").await;
    let css = login
        .split("href=\"")
        .find_map(|s| s.split('"').next().filter(|h| h.ends_with("app.css")))
        .expect("a stylesheet link");
    let (status, content_type, _) = get(&mesher, css).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/css; charset=utf-8");

    mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn the_login_page_in_a_real_browser() {
    let t = TestDb::new().await;
    let mesher = t.start().await;
    let browser = Browser::start("login").await;
    let client = &browser.client;

    client
        .goto(&format!("http://{}/login", mesher.http_addr))
        .await
        .expect("open the login page");
    assert_eq!(client.title().await.unwrap(), "Log in · Mesher");
    let label = client
        .find(Locator::Css("label[for=email]"))
        .await
        .expect("the email field's label");
    assert_eq!(label.text().await.unwrap(), "Email");
    // The stylesheet applied (served, and allowed by the page's policy):
    // the primary button has the accent background, not the default.
    let styled = client
        .execute(
            "return getComputedStyle(document.querySelector('button.primary')).backgroundColor;",
            vec![],
        )
        .await
        .unwrap();
    assert_ne!(styled.as_str(), Some("rgba(0, 0, 0, 0)"), "unstyled page");

    for (size, name) in [(DESKTOP, "desktop"), (PHONE, "phone")] {
        browser.resize(size).await;
        assert!(
            !browser.overflows_horizontally().await,
            "the login page is wider than {size:?}"
        );
        let shot = browser.screenshot(name).await;
        assert!(std::fs::metadata(&shot).unwrap().len() > 0, "{shot:?}");
    }

    browser.close().await;
    mesher.shutdown().await.unwrap();
}

/// The flow the issue asks for, in a real headless Chromium: register, log
/// in, create a project, send an error with the `sentry` crate to the DSN
/// the page shows, find it in the issue list, read its stack trace, and
/// resolve it; screenshots of the list and the issue page.
#[actix::test]
async fn from_a_new_account_to_a_resolved_issue_in_a_real_browser() {
    let t = TestDb::new().await;
    let mesher = t.start().await;
    let base = format!("http://{}", mesher.http_addr);
    let browser = Browser::start("flow").await;
    let client = &browser.client;
    let fill = async |css: &str, text: &str| {
        client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    };
    let click = async |css: &str| {
        client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    };

    client.goto(&format!("{base}/register")).await.unwrap();
    fill("#email", "dev@example.org").await;
    fill("#display_name", "Dev").await;
    fill("#password", "correct horse battery").await;
    click("main button[type=submit]").await;
    wait_until("the projects page", async || {
        client.title().await.unwrap().starts_with("Projects")
    })
    .await;

    // Log out and in again through the forms.
    click("form.logout button").await;
    wait_until("the login page", async || {
        client.title().await.unwrap().starts_with("Log in")
    })
    .await;
    fill("#email", "dev@example.org").await;
    fill("#password", "correct horse battery").await;
    click("main button[type=submit]").await;
    wait_until("the projects page again", async || {
        client.title().await.unwrap().starts_with("Projects")
    })
    .await;

    // The organization, from the empty projects page's link.
    click("main .empty a[href='/orgs/new']").await;
    wait_until("the organization form", async || {
        client
            .title()
            .await
            .unwrap()
            .starts_with("New organization")
    })
    .await;
    fill("#name", "Acme").await;
    fill("#slug", "acme").await;
    click("main button[type=submit]").await;
    wait_until("the projects page listing it", async || {
        client.title().await.unwrap().starts_with("Projects")
            && client.source().await.unwrap().contains("acme · owner")
    })
    .await;

    client.goto(&format!("{base}/projects/new")).await.unwrap();
    fill("#name", "checkout").await;
    fill("#platform", "rust").await;
    click("main button[type=submit]").await;
    wait_until("the new project's page", async || {
        client
            .title()
            .await
            .unwrap()
            .starts_with("checkout is ready")
    })
    .await;
    let page = client.source().await.unwrap();
    let dsn = page
        .split(&format!("@{}/", mesher.http_addr))
        .next()
        .and_then(|before| before.rsplit("http://").next())
        .map(|key| format!("http://{key}@{}/", mesher.http_addr))
        .expect("the page shows the DSN");
    let public_id = t.count("SELECT public_id FROM projects").await;
    let dsn = format!("{dsn}{public_id}");

    let sent = tokio::task::spawn_blocking(move || {
        let mut options = sentry::ClientOptions::default();
        options.dsn = Some(dsn.parse().expect("the page's DSN parses"));
        let client = std::sync::Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = sentry::Hub::new(
            Some(client.clone()),
            std::sync::Arc::new(sentry::Scope::default()),
        );
        let error = "seventeen".parse::<u32>().unwrap_err();
        let mut event = sentry::event_from_error(&error);
        if let Some(raised) = event.exception.values.last_mut() {
            raised.stacktrace = sentry::integrations::backtrace::current_stacktrace();
        }
        hub.capture_event(event);
        client.flush(Some(std::time::Duration::from_secs(10)))
    });
    assert!(sent.await.unwrap(), "the SDK sent the event");
    wait_until("the event is stored", async || {
        t.count("SELECT count(*) FROM events").await == 1
    })
    .await;

    let project: uuid::Uuid = {
        let db = t.pool.get().await.unwrap();
        db.query_one("SELECT id FROM projects", &[])
            .await
            .unwrap()
            .get(0)
    };
    client
        .goto(&format!("{base}/projects/{project}/issues"))
        .await
        .unwrap();
    let title = "ParseIntError: invalid digit found in string";
    let link = client
        .find(Locator::LinkText(title))
        .await
        .expect("the issue is listed");
    for (size, name) in [(DESKTOP, "issues-desktop"), (PHONE, "issues-phone")] {
        browser.resize(size).await;
        browser.screenshot(name).await;
    }
    browser.resize(DESKTOP).await;
    link.click().await.unwrap();
    wait_until("the issue page", async || {
        client.title().await.unwrap().starts_with(title)
    })
    .await;
    let frames = client.source().await.unwrap();
    assert!(
        frames.contains("from_a_new_account_to_a_resolved_issue_in_a_real_browser"),
        "the stack trace shows the test's own frame"
    );
    for (size, name) in [(DESKTOP, "issue-desktop"), (PHONE, "issue-phone")] {
        browser.resize(size).await;
        assert!(
            !browser.overflows_horizontally().await,
            "issue page at {size:?}"
        );
        browser.screenshot(name).await;
    }
    browser.resize(DESKTOP).await;

    click("button[name=status][value=resolved]").await;
    wait_until("the issue is resolved", async || {
        t.count("SELECT count(*) FROM issues WHERE status = 'resolved'")
            .await
            == 1
    })
    .await;
    browser.close().await;
    mesher.shutdown().await.unwrap();
}

/// Each page's answer to each kind of visitor: the login page for no
/// session, the 404 page for an outsider, 403 for a member short of the
/// role, and no form accepted from another site.
#[actix::test]
async fn pages_answer_each_visitor_as_the_roles_say() {
    use crate::dashboard::Dash;
    use serde_json::json;
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let made = dash.owner_with_project("owner@example.org", "web").await;
    let (owner, org, project) = (made.owner, made.org, made.project.id);
    let member = dash.user("member@example.org").await;
    dash.post(
        &format!("/api/v1/orgs/{org}/members"),
        &owner,
        json!({"email": "member@example.org", "role": "member"}),
    )
    .await;
    let outsider = dash.user("outsider@example.org").await;

    let client = awc::Client::builder().disable_redirects().finish();
    let get = async |path: &str, token: Option<&str>| {
        let mut request = client.get(dash.url(path));
        if let Some(token) = token {
            request = request.insert_header(("Cookie", format!("mesher_session={token}")));
        }
        let mut res = request.send().await.unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            res.headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let pages = [
        format!("/projects/{project}/issues"),
        format!("/projects/{project}/keys"),
        format!("/orgs/{org}/members"),
    ];
    for page in &pages {
        let (status, location, _) = get(page, None).await;
        assert_eq!(
            (status, location.as_deref()),
            (303, Some("/login")),
            "{page}"
        );
        let (status, _, body) = get(page, Some(&outsider)).await;
        assert_eq!(status, 404, "{page}");
        assert!(body.contains("Page not found"), "{page}");
    }
    assert_eq!(get(&pages[0], Some(&member)).await.0, 200);
    assert_eq!(get(&pages[1], Some(&member)).await.0, 403);
    assert_eq!(get(&pages[2], Some(&member)).await.0, 403);
    assert_eq!(get(&pages[1], Some(&owner)).await.0, 200);
    assert_eq!(get(&pages[2], Some(&owner)).await.0, 200);

    // A key made on the keys page shows its DSN once; the same form posted
    // from another site is refused and makes nothing.
    let post = async |origin: &str| {
        let mut res = client
            .post(dash.url(&format!("/projects/{project}/keys")))
            .insert_header(("Cookie", format!("mesher_session={owner}")))
            .insert_header(("Origin", origin))
            .send_form(&[("label", "ci")])
            .await
            .unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let (status, body) = post("https://evil.example").await;
    assert_eq!(status, 403);
    assert!(!body.contains("mshr_"));
    let (status, body) = post(&format!("http://{}", dash.mesher.http_addr)).await;
    assert_eq!(status, 201);
    assert!(body.contains("mshr_"), "the new key's DSN is shown");
    assert_eq!(
        t.count("SELECT count(*) FROM api_keys WHERE label = 'ci'")
            .await,
        1
    );

    // Its own limit is set from the same page; a bad one is explained and
    // changes nothing.
    let key_id: uuid::Uuid = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT id FROM api_keys WHERE label = 'ci'", &[])
        .await
        .unwrap()
        .get(0);
    let limit = async |value: &str| {
        let mut res = client
            .post(dash.url(&format!("/projects/{project}/keys/{key_id}/limit")))
            .insert_header(("Cookie", format!("mesher_session={owner}")))
            .insert_header(("Origin", format!("http://{}", dash.mesher.http_addr)))
            .send_form(&[("rate_limit_per_minute", value)])
            .await
            .unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let limit_of_ci = async || {
        t.count(
            "SELECT coalesce(rate_limit_per_minute, -1)::bigint FROM api_keys WHERE label = 'ci'",
        )
        .await
    };
    assert_eq!(limit("120").await.0, 303);
    assert_eq!(limit_of_ci().await, 120);
    let (status, body) = limit("lots").await;
    assert_eq!(status, 400);
    assert!(body.contains("whole number"), "{body}");
    assert_eq!(limit_of_ci().await, 120);
    assert_eq!(limit("").await.0, 303);
    assert_eq!(limit_of_ci().await, -1, "an empty field lifts the limit");

    // The project's own settings: saved by an admin, a bad value explained
    // with nothing changed, and a member refused.
    let settings = async |who: &str, retention: &str, rate: &str| {
        let mut res = client
            .post(dash.url(&format!("/projects/{project}/settings")))
            .insert_header(("Cookie", format!("mesher_session={who}")))
            .insert_header(("Origin", format!("http://{}", dash.mesher.http_addr)))
            .send_form(&[
                ("retention_days", retention),
                ("rate_limit_per_minute", rate),
            ])
            .await
            .unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let saved = async || {
        t.count(&format!(
            "SELECT coalesce(retention_days, -1)::bigint * 1000000 \
                 + coalesce(rate_limit_per_minute, -1)::bigint \
             FROM projects WHERE id = '{project}'"
        ))
        .await
    };
    assert_eq!(settings(&owner, "7", "600").await.0, 200);
    assert_eq!(saved().await, 7_000_600);
    let (status, body) = settings(&owner, "7", "lots").await;
    assert_eq!(status, 400);
    assert!(body.contains("whole number"), "{body}");
    let (status, body) = settings(&owner, "400", "600").await;
    assert_eq!(status, 400);
    assert!(body.contains("retention"), "{body}");
    assert_eq!(saved().await, 7_000_600, "a refused form changes nothing");
    assert_eq!(settings(&member, "1", "").await.0, 403);
    assert_eq!(settings(&owner, "", "").await.0, 200);
    assert_eq!(saved().await, -1_000_001, "empty fields remove both");
}

/// The `href` of the link whose text is `text`, if the page has one.
fn link_to(body: &str, text: &str) -> Option<String> {
    let end = body.find(&format!(">{text}</a>"))?;
    let start = body[..end].rfind("href=\"")? + "href=\"".len();
    Some(body[start..end].split('"').next()?.replace("&#61;", "="))
}

/// The text of an HTML fragment that starts inside an opening tag: what
/// follows that tag, with the tags within left out and spaces collapsed.
fn text_of(fragment: &str) -> String {
    let content = fragment.split_once('>').map_or("", |(_, rest)| rest);
    let mut text = String::new();
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What `body` holds between `start` and `end`.
fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let from = body.find(start).unwrap_or_else(|| panic!("no {start}")) + start.len();
    let to = body[from..].find(end).unwrap_or_else(|| panic!("no {end}")) + from;
    &body[from..to]
}

/// The issue list's row for the issue titled `title`: each cell's text
/// under its column's heading, so that a number is read from its own
/// column and no other; and the row's HTML.
fn issue_row(list: &str, title: &str) -> (Vec<(String, String)>, String) {
    let headings = between(list, "<thead>", "</thead>")
        .split("<th")
        .skip(1)
        .map(text_of);
    let row = between(list, "<tbody>", "</tbody>")
        .split("<tr")
        .skip(1)
        .find(|tr| tr.contains(&format!(">{title}</a>")))
        .unwrap_or_else(|| panic!("no row for {title}"));
    let cells = row.split("<td").skip(1).map(text_of);
    (headings.zip(cells).collect(), row.to_owned())
}

/// The cell of `row` under `heading`.
fn cell<'a>(row: &'a [(String, String)], heading: &str) -> &'a str {
    row.iter()
        .find(|(h, _)| h == heading)
        .map(|(_, text)| text.as_str())
        .unwrap_or_else(|| panic!("no column {heading}"))
}

/// The issue page's figure for `term` (Events, Users, ...).
fn figure(page: &str, term: &str) -> String {
    text_of(between(page, &format!("<dt>{term}</dt>"), "</dd>"))
}

#[actix::test]
async fn the_issue_list_counts_users_and_days_and_the_issue_page_walks_the_events() {
    use crate::dashboard::Dash;
    use serde_json::json;
    use std::sync::Arc;
    use std::time::Duration;
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let made = dash.owner_with_project("owner@example.org", "shop").await;
    let (owner, project, dsn) = (made.owner, made.project.id, made.project.dsn);

    // One failure hitting alice, bob and alice again: one issue, three
    // events, two users.
    let sent = tokio::task::spawn_blocking(move || {
        let mut options = sentry::ClientOptions::default();
        options.dsn = Some(dsn.parse().unwrap());
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
        for who in ["alice", "bob", "alice"] {
            hub.capture_event(sentry::protocol::Event {
                message: Some("checkout failed".into()),
                level: sentry::Level::Error,
                user: Some(sentry::User {
                    id: Some(who.into()),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        client.flush(Some(Duration::from_secs(10)))
    });
    assert!(sent.await.unwrap(), "the SDK sent the events");
    wait_until("the three events are stored", async || {
        t.count("SELECT count(*) FROM events").await == 3
    })
    .await;
    // The order the pages must walk, newest first, from the stored data
    // (by the time Mesher received each, then by id), not from the order
    // they were sent in.
    let newest_first: Vec<String> = t
        .pool
        .get()
        .await
        .unwrap()
        .query(
            "SELECT id FROM events ORDER BY received_at DESC, id DESC",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, uuid::Uuid>(0).to_string())
        .collect();
    let issues = dash
        .get(&format!("/api/v1/projects/{project}/issues"), &owner)
        .await;
    let issue = issues.body["issues"][0]["id"].as_str().unwrap().to_owned();
    let detail = dash
        .get(
            &format!("/api/v1/projects/{project}/issues/{issue}"),
            &owner,
        )
        .await;
    assert_eq!(detail.body["users"], json!(2), "the API counts them too");

    let client = awc::Client::default();
    let page = async |path: &str| {
        let mut res = client
            .get(dash.url(path))
            .insert_header(("Cookie", format!("mesher_session={owner}")))
            .send()
            .await
            .unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };

    let (status, list) = page(&format!("/projects/{project}/issues")).await;
    assert_eq!(status, 200);
    let (row, html) = issue_row(&list, "checkout failed");
    assert_eq!(cell(&row, "Events"), "3", "{row:?}");
    assert_eq!(cell(&row, "Users"), "2", "{row:?}");
    assert!(
        html.contains(r#"aria-label="3 events in the last 14 days""#),
        "a sparkline of the three: {html}"
    );

    // The issue page opens on the newest event and walks back to the
    // oldest, then forward again.
    let issue_page = format!("/projects/{project}/issues/{issue}");
    let (_, newest) = page(&issue_page).await;
    assert!(
        newest.contains(&newest_first[0]),
        "the newest event is shown"
    );
    assert!(newest.contains("Newest event") && !newest.contains(">Newer event</a>"));
    assert_eq!(figure(&newest, "Events"), "3");
    assert_eq!(figure(&newest, "Users"), "2", "the issue's two users");
    let mut shown = vec![newest_first[0].clone()];
    let mut body = newest;
    while let Some(older) = link_to(&body, "Older event") {
        let (status, next) = page(&format!("{issue_page}{older}")).await;
        assert_eq!(status, 200);
        body = next;
        shown.push(older.trim_start_matches("?event=").to_owned());
        assert!(body.contains(&shown[shown.len() - 1]), "{older} is shown");
        assert!(shown.len() <= 3, "the walk ends");
    }
    assert_eq!(shown, newest_first);
    assert!(body.contains("Oldest event"));
    let newer = link_to(&body, "Newer event").expect("a newer link on the oldest");
    assert_eq!(newer, format!("?event={}", newest_first[1]));

    // An event that is not this issue's (or not anybody's) is the 404 page.
    assert_eq!(
        page(&format!("{issue_page}?event={}", uuid::Uuid::now_v7()))
            .await
            .0,
        404
    );
    assert_eq!(page(&format!("{issue_page}?event=nonsense")).await.0, 400);

    // The tag breakdown: alice had two of the three events; her value
    // links to the list searched by it, which holds the issue.
    let (_, with_tags) = page(&issue_page).await;
    assert!(with_tags.contains("<h2 id=\"tags-heading\">Tags</h2>"));
    let by_alice = link_to(&with_tags, "id:alice").expect("a link from the user tag");
    assert!(
        with_tags.contains(">id:alice</a></th><td class=\"num\">2</td><td class=\"num\">66%</td>")
    );
    let (status, searched) = page(&by_alice.replace("&amp;", "&")).await;
    assert_eq!(status, 200);
    assert!(searched.contains(&format!("/projects/{project}/issues/{issue}")));
    let (status, none) = page(&format!("/projects/{project}/issues?query=user:id:nobody")).await;
    assert_eq!(status, 200);
    assert!(!none.contains(&format!("/projects/{project}/issues/{issue}")));

    // The search's own `is:` wins over the status list, whose default is
    // unresolved.
    t.execute(&format!(
        "UPDATE issues SET status = 'resolved', resolved_at = now() WHERE id = '{issue}'"
    ))
    .await;
    let listed = |query: &str| {
        let path = format!("/projects/{project}/issues{query}");
        async move { page(&path).await }
    };
    let (status, resolved) = listed("?query=is:resolved").await;
    assert_eq!(status, 200);
    assert!(resolved.contains(&format!("/projects/{project}/issues/{issue}")));
    let (_, unresolved) = listed("").await;
    assert!(!unresolved.contains(&format!("/projects/{project}/issues/{issue}")));

    // A search that cannot be read is explained under the search box.
    let (status, refused) = page(&format!("/projects/{project}/issues?query=is:bogus")).await;
    assert_eq!(status, 400);
    assert!(refused.contains("id=\"f-query-error\""), "{refused}");
    assert!(refused.contains("`is:bogus` at position 1"), "{refused}");
}

#[actix::test]
async fn an_organization_made_from_its_form_is_mine_and_a_bad_one_is_explained() {
    use crate::dashboard::Dash;
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let me = dash.user("owner@example.org").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let origin = format!("http://{}", dash.mesher.http_addr);
    let post = async |origin: &str, name: &str, slug: &str| {
        let mut res = client
            .post(dash.url("/orgs/new"))
            .insert_header(("Cookie", format!("mesher_session={me}")))
            .insert_header(("Origin", origin))
            .send_form(&[("name", name), ("slug", slug)])
            .await
            .unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            res.headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned()),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };

    let (status, location, _) = post(&origin, "Acme", "acme").await;
    assert_eq!((status, location.as_deref()), (303, Some("/projects")));
    let orgs = dash.get("/api/v1/orgs", &me).await;
    assert_eq!(orgs.body[0]["slug"], "acme");
    assert_eq!(orgs.body[0]["role"], "owner");

    // Refusals re-show the form with what was typed and why.
    let (status, _, body) = post(&origin, "Acme again", "acme").await;
    assert_eq!(status, 400);
    assert!(body.contains("already exists"), "{body}");
    assert!(body.contains(r#"value="Acme again""#));
    let (status, _, body) = post(&origin, "Shouting", "ACME").await;
    assert_eq!(status, 400);
    assert!(body.contains("may only contain a-z, 0-9 and"), "{body}");

    // From another site: refused, nothing made.
    let (status, _, _) = post("https://evil.example", "Evil", "evil").await;
    assert_eq!(status, 403);
    assert_eq!(t.count("SELECT count(*) FROM organizations").await, 1);
}
