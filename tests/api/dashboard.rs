//! The dashboard API over a real socket: sessions, the access matrix,
//! members, keys, and issues read and triaged.

use crate::common::TestDb;
use actix_web::http::{Method, StatusCode};
use mesher::{Config, Mesher};
use serde_json::{Value, json};
use std::time::Duration;

/// A running Mesher and a client for its dashboard API.
pub struct Dash {
    pub mesher: Mesher,
    client: awc::Client,
}

/// A project made through the API: its id, and its first key and DSN
/// (shown this once).
pub struct NewProject {
    pub id: String,
    pub key: String,
    pub dsn: String,
}

/// A user's session, their organization, and its project.
pub struct Owned {
    pub owner: String,
    pub org: String,
    pub project: NewProject,
}

/// What a request got back.
pub struct Reply {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// The session cookie, with a JSON content type.
    Cookie(&'a str),
    /// The session cookie and a form's content type, as a cross-site form
    /// would send.
    CookieForm(&'a str),
}

impl Dash {
    pub async fn start(t: &TestDb) -> Dash {
        Self::start_with(t, |_| {}).await
    }

    pub async fn start_with(t: &TestDb, tune: impl FnOnce(&mut Config)) -> Dash {
        Dash {
            mesher: t.start_with(tune).await,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(30))
                .finish(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.mesher.http_addr)
    }

    /// The HTTP client, for requests of other shapes.
    pub fn client(&self) -> &awc::Client {
        &self.client
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        let mut form = false;
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.insert_header(("Authorization", format!("Bearer {token}")))
            }
            Auth::Cookie(token) => {
                request = request.insert_header(("Cookie", format!("mesher_session={token}")))
            }
            Auth::CookieForm(token) => {
                form = true;
                request = request.insert_header(("Cookie", format!("mesher_session={token}")))
            }
        }
        let sent = match (body, form) {
            (Some(body), false) => request.send_json(&body).await,
            (Some(body), true) => {
                request
                    .insert_header(("Content-Type", "application/x-www-form-urlencoded"))
                    .send_body(body.to_string())
                    .await
            }
            (None, _) => request.send().await,
        };
        let mut response = sent.expect("request");
        let bytes = response.body().limit(1 << 22).await.expect("body");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&bytes)))
            },
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Auth::Bearer(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Auth::Bearer(token), Some(body))
            .await
    }

    /// Registers `email` and logs in; the session token.
    pub async fn user(&self, email: &str) -> String {
        let registered = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                Auth::None,
                Some(
                    json!({"email": email, "password": "correct horse", "display_name": "Someone"}),
                ),
            )
            .await;
        assert_eq!(
            registered.status,
            StatusCode::CREATED,
            "{}",
            registered.body
        );
        self.login(email, "correct horse").await.body["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            Auth::None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    /// A new organization owned by `token`'s user; its id.
    pub async fn org(&self, token: &str, name: &str, slug: &str) -> String {
        let made = self
            .post("/api/v1/orgs", token, json!({"name": name, "slug": slug}))
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        made.body["id"].as_str().unwrap().to_owned()
    }

    /// A new project of `org`, with its first key.
    pub async fn project(&self, token: &str, org: &str, body: Value) -> NewProject {
        let made = self
            .post(&format!("/api/v1/orgs/{org}/projects"), token, body)
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        let text = |v: &Value| v.as_str().unwrap().to_owned();
        NewProject {
            id: text(&made.body["id"]),
            key: text(&made.body["key"]["key"]),
            dsn: text(&made.body["key"]["dsn"]),
        }
    }

    /// A registered user owning an organization with one project: what
    /// most tests start from.
    pub async fn owner_with_project(&self, email: &str, project: &str) -> Owned {
        let owner = self.user(email).await;
        let org = self.org(&owner, "Acme", "acme").await;
        let project = self
            .project(&owner, &org, json!({"name": project, "platform": "rust"}))
            .await;
        Owned {
            owner,
            org,
            project,
        }
    }

    pub async fn user_id(&self, token: &str) -> String {
        self.get("/api/v1/auth/me", token).await.body["user"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

#[actix::test]
async fn a_session_from_login_works_as_bearer_and_as_cookie_until_logout() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    dash.user("ann@example.org").await;

    let login = dash.login("Ann@Example.org", "correct horse").await;
    assert_eq!(login.status, StatusCode::OK);
    let token = login.body["token"].as_str().unwrap().to_owned();
    let cookie = login.headers.get("set-cookie").unwrap().to_str().unwrap();
    for part in ["mesher_session=", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");

    for auth in [Auth::Bearer(&token), Auth::Cookie(&token)] {
        let me = dash.call(Method::GET, "/api/v1/auth/me", auth, None).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.body["user"]["email"], "ann@example.org");
        assert_eq!(me.body["organizations"], json!([]));
    }

    // A cross-site form cannot use the cookie to change anything.
    let forged = dash
        .call(
            Method::POST,
            "/api/v1/orgs",
            Auth::CookieForm(&token),
            Some(json!({"name": "Evil", "slug": "evil"})),
        )
        .await;
    assert_eq!(forged.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(forged.body["error"]["code"], "json_required");
    let made = dash
        .call(
            Method::POST,
            "/api/v1/orgs",
            Auth::Cookie(&token),
            Some(json!({"name": "Acme", "slug": "acme"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    assert_eq!(
        t.count("SELECT count(*) FROM organizations WHERE slug = 'evil'")
            .await,
        0
    );

    let out = dash
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            Auth::Bearer(&token),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("mesher_session=;")
    );
    let after = dash.get("/api/v1/auth/me", &token).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.body["error"]["code"], "unauthenticated");
}

#[actix::test]
async fn registration_can_be_switched_off() {
    let t = TestDb::new().await;
    let dash = Dash::start_with(&t, |c| c.http.allow_registration = false).await;
    let reply = dash
        .call(
            Method::POST,
            "/api/v1/auth/register",
            Auth::None,
            Some(
                json!({"email": "a@example.org", "password": "correct horse", "display_name": "A"}),
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.body["error"]["code"], "registration_closed");
    assert_eq!(t.count("SELECT count(*) FROM users").await, 0);
}

#[actix::test]
async fn failed_logins_are_limited_per_account_with_retry_after() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    dash.user("ann@example.org").await;
    for _ in 0..10 {
        let wrong = dash.login("ann@example.org", "wrong password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    // Now even the right password waits: the guesser cannot tell.
    let limited = dash.login("ann@example.org", "correct horse").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["error"]["code"], "too_many_logins");
    let wait: u64 = limited
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
}

/// Guesses sent at once are checked against the limit before any of them
/// is answered: with bcrypt slow enough that each wave's guesses all
/// arrive before the first is counted, a limit that checked first and
/// counted later would let every guess of the second wave through.
#[actix::test]
async fn concurrent_wrong_passwords_never_pass_the_account_limit() {
    use mesher::app::limiter::PER_ACCOUNT;
    use mesher::services::BCRYPT_SLOTS;
    let t = TestDb::new().await;
    let dash = Dash::start_with(&t, |c| c.users.bcrypt_cost = 8).await;
    dash.user("ann@example.org").await;
    let mut answers = Vec::new();
    // Waves of as many guesses as bcrypt takes at once, so that none is
    // refused for overload instead.
    for _ in 0..3 {
        let wave = (0..BCRYPT_SLOTS).map(|_| dash.login("ann@example.org", "wrong password"));
        for reply in futures_util::future::join_all(wave).await {
            let code = reply.body["error"]["code"].as_str().unwrap().to_owned();
            answers.push((reply.status.as_u16(), code));
        }
    }
    let checked = answers.iter().filter(|(status, _)| *status == 401).count();
    assert_eq!(checked, PER_ACCOUNT as usize, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, code)| *status == 401 || (*status == 429 && code == "too_many_logins")),
        "{answers:?}"
    );
}

#[actix::test]
async fn bad_bodies_get_typed_errors_naming_the_field() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let token = dash.user("ann@example.org").await;
    let cases = [
        (
            json!({"name": "Acme", "slug": "Not A Slug"}),
            StatusCode::BAD_REQUEST,
            "slug",
        ),
        (
            json!({"name": "", "slug": "acme"}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (json!({"slug": "acme"}), StatusCode::BAD_REQUEST, "name"),
    ];
    for (body, status, field) in cases {
        let reply = dash.post("/api/v1/orgs", &token, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let first = dash
        .post(
            "/api/v1/orgs",
            &token,
            json!({"name": "Acme", "slug": "acme"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = dash
        .post(
            "/api/v1/orgs",
            &token,
            json!({"name": "Acme", "slug": "acme"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let bad_id = dash.get("/api/v1/orgs/not-a-uuid", &token).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    let unknown = dash
        .get(&format!("/api/v1/orgs/{}", uuid::Uuid::now_v7()), &token)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[actix::test]
async fn an_organization_never_loses_its_last_owner() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let owner = dash.user("owner@example.org").await;
    let owner_id = dash.user_id(&owner).await;
    let org = dash
        .post(
            "/api/v1/orgs",
            &owner,
            json!({"name": "Acme", "slug": "acme"}),
        )
        .await;
    let org_id = org.body["id"].as_str().unwrap().to_owned();
    let me = format!("/api/v1/orgs/{org_id}/members/{owner_id}");

    let demote = dash
        .call(
            Method::PATCH,
            &me,
            Auth::Bearer(&owner),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(demote.status, StatusCode::CONFLICT, "{}", demote.body);
    let leave = dash
        .call(Method::DELETE, &me, Auth::Bearer(&owner), None)
        .await;
    assert_eq!(leave.status, StatusCode::CONFLICT);

    // With a second owner, the first may step down.
    let second = dash.user("second@example.org").await;
    let added = dash
        .post(
            &format!("/api/v1/orgs/{org_id}/members"),
            &owner,
            json!({"email": "second@example.org", "role": "owner"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let demote = dash
        .call(
            Method::PATCH,
            &me,
            Auth::Bearer(&owner),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(demote.status, StatusCode::NO_CONTENT);
    let members = dash
        .get(&format!("/api/v1/orgs/{org_id}/members"), &second)
        .await;
    let roles: Vec<&str> = members
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["admin", "owner"]);
}
