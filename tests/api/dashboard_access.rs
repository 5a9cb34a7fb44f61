//! The access matrix: every dashboard route, asked by nobody, by an expired
//! session, by an outsider, and by a member, an admin and an owner of the
//! organization; each cell's status asserted.

use crate::common::{TestDb, wait_until};
use crate::dashboard::{Auth, Dash};
use actix_web::http::Method;
use serde_json::{Value, json};

/// Who asks, in the matrix's column order.
const CALLERS: [&str; 6] = ["nobody", "expired", "outsider", "member", "admin", "owner"];

/// One route of the dashboard: how to ask it, and the status each caller
/// gets.
#[derive(Clone, Copy, Debug)]
enum Route {
    Me,
    Logout,
    ListOrgs,
    CreateOrg,
    GetOrg,
    ListMembers,
    AddMember,
    AddOwner,
    ChangeMember,
    MakeOwner,
    RemoveMember,
    CreateProject,
    ListProjects,
    GetProject,
    CreateKey,
    ListKeys,
    RevokeKey,
    ListIssues,
    GetIssue,
    TriageIssue,
    ListIssueEvents,
    GetEvent,
}

fn expected(route: Route) -> [u16; 6] {
    use Route::*;
    // nobody, expired, outsider, member, admin, owner
    match route {
        Me | ListOrgs => [401, 401, 200, 200, 200, 200],
        Logout => [401, 401, 204, 204, 204, 204],
        CreateOrg => [401, 401, 201, 201, 201, 201],
        GetOrg | ListMembers | ListProjects | GetProject | ListIssues | GetIssue
        | ListIssueEvents | GetEvent | TriageIssue => [401, 401, 404, 200, 200, 200],
        AddMember | CreateProject | CreateKey => [401, 401, 404, 403, 201, 201],
        ChangeMember | RemoveMember | RevokeKey => [401, 401, 404, 403, 204, 204],
        ListKeys => [401, 401, 404, 403, 200, 200],
        AddOwner => [401, 401, 404, 403, 403, 201],
        MakeOwner => [401, 401, 404, 403, 403, 204],
    }
}

const ROUTES: [Route; 22] = {
    use Route::*;
    [
        Me,
        Logout,
        ListOrgs,
        CreateOrg,
        GetOrg,
        ListMembers,
        AddMember,
        AddOwner,
        ChangeMember,
        MakeOwner,
        RemoveMember,
        CreateProject,
        ListProjects,
        GetProject,
        CreateKey,
        ListKeys,
        RevokeKey,
        ListIssues,
        GetIssue,
        TriageIssue,
        ListIssueEvents,
        GetEvent,
    ]
};

/// The organization under test and what lives in it.
struct World {
    owner: String,
    org: String,
    project: String,
    issue: String,
    event: String,
}

impl World {
    async fn new(dash: &Dash, t: &TestDb) -> World {
        let owner = dash.user("owner@example.org").await;
        let org = dash.org(&owner, "Acme", "acme").await;
        for (email, role) in [
            ("member@example.org", "member"),
            ("admin@example.org", "admin"),
        ] {
            dash.user(email).await;
            let added = dash
                .post(
                    &format!("/api/v1/orgs/{org}/members"),
                    &owner,
                    json!({"email": email, "role": role}),
                )
                .await;
            assert_eq!(added.status, 201, "{}", added.body);
        }
        // The outsider belongs to an organization of their own.
        let outsider = dash.user("outsider@example.org").await;
        dash.post(
            "/api/v1/orgs",
            &outsider,
            json!({"name": "Other", "slug": "other"}),
        )
        .await;
        // The expired caller is an owner, so only expiry can refuse them.
        dash.user("expired@example.org").await;
        dash.post(
            &format!("/api/v1/orgs/{org}/members"),
            &owner,
            json!({"email": "expired@example.org", "role": "owner"}),
        )
        .await;

        let made = dash
            .project(&owner, &org, json!({"name": "web", "platform": "python"}))
            .await;
        let (project, key) = (made.id, made.key);
        let event_id = uuid::Uuid::now_v7().simple().to_string();
        let sent = dash
            .call(
                Method::POST,
                "/api/v1/events",
                Auth::Bearer(&key),
                Some(json!({"event_id": event_id, "message": "boom"})),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.body);
        wait_until("the event is stored", async || {
            t.count("SELECT count(*) FROM events").await == 1
        })
        .await;
        let issues = dash
            .get(&format!("/api/v1/projects/{project}/issues"), &owner)
            .await;
        let issue = issues.body["issues"][0]["id"].as_str().unwrap().to_owned();
        World {
            owner,
            org,
            project,
            issue,
            event: event_id,
        }
    }

    /// A fresh registered user, added to the organization as a member when
    /// `member`; their id and email.
    async fn victim(&self, dash: &Dash, cell: usize, member: bool) -> (String, String) {
        let email = format!("victim{cell}@example.org");
        let token = dash.user(&email).await;
        if member {
            let added = dash
                .post(
                    &format!("/api/v1/orgs/{}/members", self.org),
                    &self.owner,
                    json!({"email": email, "role": "member"}),
                )
                .await;
            assert_eq!(added.status, 201);
        }
        (dash.user_id(&token).await, email)
    }

    /// How to ask `route`, setting up what the request acts on afresh for
    /// each cell, so that one cell's success cannot change another's.
    async fn request(
        &self,
        dash: &Dash,
        route: Route,
        cell: usize,
    ) -> (Method, String, Option<Value>) {
        use Route::*;
        let (org, project, issue) = (&self.org, &self.project, &self.issue);
        match route {
            Me => (Method::GET, "/api/v1/auth/me".into(), None),
            Logout => (Method::POST, "/api/v1/auth/logout".into(), None),
            ListOrgs => (Method::GET, "/api/v1/orgs".into(), None),
            CreateOrg => (
                Method::POST,
                "/api/v1/orgs".into(),
                Some(json!({"name": "New", "slug": format!("new-{cell}")})),
            ),
            GetOrg => (Method::GET, format!("/api/v1/orgs/{org}"), None),
            ListMembers => (Method::GET, format!("/api/v1/orgs/{org}/members"), None),
            AddMember | AddOwner => {
                let (_, email) = self.victim(dash, cell, false).await;
                let role = if matches!(route, AddOwner) {
                    "owner"
                } else {
                    "member"
                };
                (
                    Method::POST,
                    format!("/api/v1/orgs/{org}/members"),
                    Some(json!({"email": email, "role": role})),
                )
            }
            ChangeMember | MakeOwner => {
                let (id, _) = self.victim(dash, cell, true).await;
                let role = if matches!(route, MakeOwner) {
                    "owner"
                } else {
                    "admin"
                };
                (
                    Method::PATCH,
                    format!("/api/v1/orgs/{org}/members/{id}"),
                    Some(json!({"role": role})),
                )
            }
            RemoveMember => {
                let (id, _) = self.victim(dash, cell, true).await;
                (
                    Method::DELETE,
                    format!("/api/v1/orgs/{org}/members/{id}"),
                    None,
                )
            }
            CreateProject => (
                Method::POST,
                format!("/api/v1/orgs/{org}/projects"),
                Some(json!({"name": format!("p{cell}")})),
            ),
            ListProjects => (Method::GET, format!("/api/v1/orgs/{org}/projects"), None),
            GetProject => (Method::GET, format!("/api/v1/projects/{project}"), None),
            CreateKey => (
                Method::POST,
                format!("/api/v1/projects/{project}/keys"),
                Some(json!({"label": "ci"})),
            ),
            ListKeys => (
                Method::GET,
                format!("/api/v1/projects/{project}/keys"),
                None,
            ),
            RevokeKey => {
                let key = dash
                    .post(
                        &format!("/api/v1/projects/{project}/keys"),
                        &self.owner,
                        json!({}),
                    )
                    .await;
                let id = key.body["info"]["id"].as_str().unwrap().to_owned();
                (
                    Method::DELETE,
                    format!("/api/v1/projects/{project}/keys/{id}"),
                    None,
                )
            }
            ListIssues => (
                Method::GET,
                format!("/api/v1/projects/{project}/issues"),
                None,
            ),
            GetIssue => (
                Method::GET,
                format!("/api/v1/projects/{project}/issues/{issue}"),
                None,
            ),
            TriageIssue => (
                Method::PATCH,
                format!("/api/v1/projects/{project}/issues/{issue}"),
                Some(json!({"status": "resolved"})),
            ),
            ListIssueEvents => (
                Method::GET,
                format!("/api/v1/projects/{project}/issues/{issue}/events"),
                None,
            ),
            GetEvent => (
                Method::GET,
                format!("/api/v1/projects/{project}/events/{}", self.event),
                None,
            ),
        }
    }
}

/// A fresh session for the caller in column `column` (none for nobody; an
/// expired one for the expired caller).
async fn session(dash: &Dash, t: &TestDb, column: usize) -> Option<String> {
    let email = match CALLERS[column] {
        "nobody" => return None,
        who => format!("{who}@example.org"),
    };
    let login = dash.login(&email, "correct horse").await;
    let token = login.body["token"].as_str().unwrap().to_owned();
    if CALLERS[column] == "expired" {
        t.execute(
            "UPDATE sessions SET expires_at = now() - interval '1 second'
             WHERE user_id = (SELECT id FROM users WHERE email = 'expired@example.org')",
        )
        .await;
    }
    Some(token)
}

#[actix::test]
async fn every_route_answers_each_kind_of_caller_as_the_roles_say() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let world = World::new(&dash, &t).await;

    let mut wrong = Vec::new();
    let mut cells = 0;
    for route in ROUTES {
        for (column, &want) in expected(route).iter().enumerate() {
            let cell = cells;
            cells += 1;
            let token = session(&dash, &t, column).await;
            let (method, path, body) = world.request(&dash, route, cell).await;
            let auth = token.as_deref().map_or(Auth::None, Auth::Bearer);
            let reply = dash.call(method.clone(), &path, auth, body).await;
            if reply.status.as_u16() != want {
                wrong.push(format!(
                    "{route:?} by {}: {} {path} got {} (wanted {want}): {}",
                    CALLERS[column], method, reply.status, reply.body
                ));
            } else if want >= 400 {
                // Every refusal has the API's error shape.
                assert!(
                    reply.body["error"]["code"].is_string(),
                    "{route:?}: {}",
                    reply.body
                );
            }
        }
    }
    assert_eq!(cells, ROUTES.len() * CALLERS.len());
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
