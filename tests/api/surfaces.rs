//! The dashboard API and the web pages over their one application layer,
//! on a real socket: a project made from either is the same project with
//! its first key (or, on a failure, nothing), and both answer a stopped
//! service with 503 and overload with 429, each with `Retry-After`.

use crate::common::{TestDb, wait_until};
use crate::dashboard::{Auth, Dash};
use actix::prelude::*;
use actix_web::http::Method;
use futures_util::future::{join, join_all};
use mesher::app::limiter::PER_ACCOUNT;
use mesher::app::{Dashboard, State};
use mesher::http::BODY_MEMORY_KIB;
use mesher::http::server::{listen, serve};
use mesher::services::IssueService;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A browser with `token`'s session, posting forms from Mesher's own pages.
struct Browser {
    client: awc::Client,
    base: String,
    token: String,
}

/// What a page request got back.
struct Page {
    status: u16,
    retry_after: Option<u64>,
    html: String,
}

impl Browser {
    /// A browser sending `token` as its session cookie (none when empty).
    fn with_session(addr: SocketAddr, token: &str) -> Browser {
        Browser {
            client: awc::Client::builder().disable_redirects().finish(),
            base: format!("http://{addr}"),
            token: token.to_owned(),
        }
    }

    async fn get(&self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.read(request, None).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .insert_header(("Origin", self.base.as_str()));
        self.read(request, Some(form)).await
    }

    async fn read(&self, mut request: awc::ClientRequest, form: Option<&[(&str, &str)]>) -> Page {
        if !self.token.is_empty() {
            request = request.insert_header(("Cookie", format!("mesher_session={}", self.token)));
        }
        let mut res = match form {
            Some(form) => request.send_form(&form).await,
            None => request.send().await,
        }
        .expect("request");
        let body = res.body().limit(1 << 22).await.expect("body");
        Page {
            status: res.status().as_u16(),
            retry_after: retry_after(res.headers()),
            html: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

fn retry_after(headers: &awc::http::header::HeaderMap) -> Option<u64> {
    headers
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("whole seconds"))
}

/// The DSN a page shows: `http://mshr_...@host/<public id>`.
fn dsn_on(html: &str) -> String {
    let key_at = html.find("mshr_").expect("a key on the page");
    let start = html[..key_at].rfind("http://").expect("a DSN");
    let end = html[start..]
        .find(|c: char| c == '<' || c == '"' || c == '\'' || c.is_whitespace())
        .map_or(html.len(), |i| start + i);
    html[start..end].to_owned()
}

#[actix::test]
async fn the_api_and_the_form_make_the_same_project_with_its_first_key_or_nothing() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let owner = dash.user("owner@example.org").await;
    let org = dash.org(&owner, "Acme", "acme").await;
    let browser = Browser::with_session(dash.mesher.http_addr, &owner);
    let projects = format!("/api/v1/orgs/{org}/projects");

    let api = dash
        .post(
            &projects,
            &owner,
            json!({"name": "api-made", "platform": "rust"}),
        )
        .await;
    assert_eq!(api.status, 201, "{}", api.body);
    let form = browser
        .post(
            "/projects/new",
            &[
                ("org_id", org.as_str()),
                ("name", "form-made"),
                ("platform", "rust"),
            ],
        )
        .await;
    assert_eq!(form.status, 201, "{}", form.html);

    // Each, as the API lists it: one active key labelled "default", whose
    // DSN (in the API's reply, on the form's page) names the project and
    // delivers events.
    let listed = dash.get(&projects, &owner).await;
    let made = [
        (
            "api-made",
            api.body["key"]["dsn"].as_str().unwrap().to_owned(),
        ),
        ("form-made", dsn_on(&form.html)),
    ];
    for (name, dsn) in made {
        let project = listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed: {}", listed.body));
        assert_eq!(project["platform"], "rust", "{name}");
        let keys = project["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{name}: {keys:?}");
        assert_eq!(keys[0]["label"], "default", "{name}");
        assert_eq!(keys[0]["revoked_at"], Value::Null, "{name}");
        assert!(
            dsn.ends_with(&format!("/{}", project["public_id"])),
            "{name}: {dsn}"
        );
        let key = dsn.trim_start_matches("http://").split('@').next().unwrap();
        assert!(
            key.starts_with(keys[0]["prefix"].as_str().unwrap()),
            "{name}"
        );
        let sent = dash
            .call(
                Method::POST,
                "/api/v1/events",
                Auth::Bearer(key),
                Some(json!({"message": format!("hello from {name}")})),
            )
            .await;
        assert_eq!(sent.status, 200, "{name}: {}", sent.body);
    }
    assert_eq!(
        api.body["keys"],
        Value::Array(vec![api.body["key"]["info"].clone()]),
        "the reply lists the key it shows"
    );

    // A failure after the project's row, before its key's (the keys'
    // table is away), leaves no project, from either surface.
    t.execute("ALTER TABLE api_keys RENAME TO api_keys_away")
        .await;
    let api = dash
        .post(&projects, &owner, json!({"name": "doomed"}))
        .await;
    let form = browser
        .post(
            "/projects/new",
            &[("org_id", org.as_str()), ("name", "doomed")],
        )
        .await;
    t.execute("ALTER TABLE api_keys_away RENAME TO api_keys")
        .await;
    assert_eq!(api.status, 500, "{}", api.body);
    assert_eq!(form.status, 500, "{}", form.html);
    assert_eq!(t.count("SELECT count(*) FROM projects").await, 2);
    assert_eq!(t.count("SELECT count(*) FROM api_keys").await, 2);
}

#[actix::test]
async fn a_stopped_service_is_503_with_retry_after_in_the_api_and_the_pages() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let made = dash.owner_with_project("owner@example.org", "web").await;

    // An issue service whose actor has stopped: started on an arbiter of
    // its own, which is then stopped, closing its mailbox.
    let arbiter = Arbiter::new();
    let pool = t.pool.clone();
    let issues =
        IssueService::start_in_arbiter(&arbiter.handle(), move |_| IssueService::new(pool));
    arbiter.stop();
    arbiter.join().expect("the arbiter's thread ends");
    wait_until("the stopped service's mailbox is closed", async || {
        !issues.connected()
    })
    .await;
    // The running Mesher's services, served again with that one instead of
    // its own issue service.
    let m = &dash.mesher;
    let state = State {
        projects: m.projects.clone(),
        users: m.users.clone(),
        orgs: m.orgs.clone(),
        issues,
        dashboard: Dashboard::default(),
        keys: m.keys.clone(),
        intake: m.intake.clone(),
        writers: m.writers.clone(),
        tokens: m.tokens.clone(),
        source_maps: m.source_maps.clone(),
        source_map_config: Default::default(),
        pool: m.pool.clone(),
        metrics: m.metrics.clone(),
        body_timeout: Duration::from_secs(5),
        body_memory: Arc::new(tokio::sync::Semaphore::new(BODY_MEMORY_KIB)),
        alerts: Default::default(),
        public_url: None,
        retention_days: 90,
        limits: Default::default(),
    };
    let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(state, listener, &t.config().http).unwrap();
    let server_handle = server.handle();
    actix_rt::spawn(server);

    let issues = format!("/projects/{}/issues", made.project.id);
    let mut api_res = awc::Client::default()
        .get(format!("http://{addr}/api/v1{issues}"))
        .insert_header(("Authorization", format!("Bearer {}", made.owner)))
        .send()
        .await
        .unwrap();
    let body: Value = api_res.json().await.unwrap();
    assert_eq!(api_res.status().as_u16(), 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(retry_after(api_res.headers()).is_some_and(|s| s >= 1));

    let page = Browser::with_session(addr, &made.owner).get(&issues).await;
    assert_eq!(page.status, 503, "{}", page.html);
    assert!(page.retry_after.is_some_and(|s| s >= 1));
    assert!(page.html.contains("Try again in a moment"), "{}", page.html);

    // A page that does not need the stopped service still works.
    let keys = Browser::with_session(addr, &made.owner)
        .get(&format!("/projects/{}/keys", made.project.id))
        .await;
    assert_eq!(keys.status, 200, "{}", keys.html);
    server_handle.stop(true).await;
}

#[actix::test]
async fn overload_is_429_with_retry_after_in_the_api_and_the_pages() {
    let t = TestDb::new().await;
    // bcrypt slow enough that more logins at once than it has slots for
    // overlap.
    let dash = Dash::start_with(&t, |c| c.users.bcrypt_cost = 10).await;
    dash.user("api@example.org").await;
    dash.user("page@example.org").await;
    let anonymous = Browser::with_session(dash.mesher.http_addr, "");
    let form = [("email", "page@example.org"), ("password", "correct horse")];

    // Waves of right passwords, one account's allowance of attempts in
    // flight through each surface, until each surface has been refused
    // for overload at least once.
    let (mut api_refused, mut page_refused) = (None, None);
    wait_until("a login refused for overload by each surface", async || {
        let api = (0..PER_ACCOUNT).map(|_| dash.login("api@example.org", "correct horse"));
        let pages = (0..PER_ACCOUNT).map(|_| anonymous.post("/login", &form));
        let (api, pages) = join(join_all(api), join_all(pages)).await;
        api_refused = api_refused
            .take()
            .or(api.into_iter().find(|r| r.status == 429));
        page_refused = page_refused
            .take()
            .or(pages.into_iter().find(|p| p.status == 429));
        api_refused.is_some() && page_refused.is_some()
    })
    .await;

    let api = api_refused.unwrap();
    assert_eq!(api.body["error"]["code"], "overloaded", "{}", api.body);
    assert!(retry_after(&api.headers).is_some_and(|s| s >= 1));
    let page = page_refused.unwrap();
    assert!(page.retry_after.is_some_and(|s| s >= 1));
    assert!(
        page.html.contains("Try again in a moment."),
        "{}",
        page.html
    );
}
