//! The pages behind a session: thin handlers that ask the services, apply
//! the dashboard's one access check ([`Caller::require`]), and render a
//! view model.
//!
//! Sessions are the dashboard API's cookie. Forms post
//! `application/x-www-form-urlencoded`, so instead of the API's JSON rule
//! every POST here must come from this origin ([`same_origin`]); with the
//! cookie's SameSite=Lax, another site can neither read a page nor submit
//! a form with the user's session.

use super::format::RelTime;
use super::format::Setup;
use super::pages::*;
use super::render;
use crate::domain::access::Action;
use crate::domain::{EventNeighbours, Project, Role};
use crate::error::Error;
use crate::http::State;
use crate::http::api::Caller;
use crate::http::api::auth::{LoginRefused, open_session, removal_cookie};
use crate::http::api::issues::check_assignee;
use crate::http::api::orgs::{NewOrg, change_needs, my_orgs};
use crate::http::api::projects::revoke_project_key;
use crate::services::{
    AddMemberByEmail, AssignIssue, ChangeMember, CountIssues, CreateApiKey, CreateOrgAsOwner,
    CreateProject, GetEvent, GetEventNeighbours, GetIssue, GetIssueActivity, GetOrg, GetUser,
    ListApiKeys, ListIssues, ListMembers, ListProjectsByOrg, Register, UpdateIssueStatus,
};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

/// Where a page sends the reader: `303 See Other`, so a reload does not
/// post the form again.
fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// Whether a POST comes from a page of this origin: its `Origin` header
/// (every current browser sends one with a form post), else its `Referer`,
/// names the host the request was sent to.
fn same_origin(req: &HttpRequest) -> bool {
    let info = req.connection_info();
    let origin = format!("{}://{}", info.scheme(), info.host());
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match (header(header::ORIGIN), header(header::REFERER)) {
        (Some(o), _) => o == origin,
        (None, Some(r)) => r == origin || r.starts_with(&format!("{origin}/")),
        (None, None) => false,
    }
}

/// A failure as a page: outsiders and missing things get the one 404 page,
/// a bad form its message.
fn error_page(e: Error, nav: Option<Nav>) -> HttpResponse {
    let (status, heading) = match &e {
        Error::NotFound { .. } => return render(StatusCode::NOT_FOUND, &ErrorPage::not_found(nav)),
        Error::Forbidden { .. } => (StatusCode::FORBIDDEN, "Not allowed"),
        Error::InvalidInput { .. } | Error::Conflict { .. } | Error::AlreadyExists { .. } => {
            (StatusCode::BAD_REQUEST, "That did not work")
        }
        Error::Overloaded { .. } | Error::DatabaseUnavailable { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "Try again in a moment")
        }
        _ => {
            log::error!("a page failed: {}", e.report());
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
        }
    };
    let message = match status {
        StatusCode::INTERNAL_SERVER_ERROR => "The error is in Mesher's log.".to_owned(),
        _ => e.to_string(),
    };
    let page = ErrorPage {
        layout: Layout::new(heading, nav),
        status: status.as_u16(),
        heading: heading.into(),
        message,
    };
    render(status, &page)
}

/// The logged-in reader of a page, or the response that sends them to log
/// in (or refuses a cross-origin post).
struct Reader {
    caller: Caller,
    nav: Nav,
}

impl Reader {
    async fn of(req: &HttpRequest, state: &State) -> Result<Reader, HttpResponse> {
        if req.method() == actix_web::http::Method::POST && !same_origin(req) {
            return Err(error_page(
                Error::Forbidden {
                    action: "post this form from another site",
                },
                None,
            ));
        }
        let caller = Caller::session(req)
            .await
            .map_err(|_| see_other("/login"))?;
        let user = state
            .users
            .send(GetUser {
                id: caller.user_id.to_string(),
            })
            .await
            .map_err(Error::from)
            .and_then(|r| r)
            .map_err(|e| error_page(e, None))?;
        Ok(Reader {
            caller,
            nav: Nav {
                display_name: user.display_name,
                email: user.email,
            },
        })
    }

    /// The project, if this reader may do `action` in it, as a page heading.
    async fn project(
        &self,
        state: &State,
        id: &str,
        action: Action,
    ) -> Result<(Project, ProjectHeader), Error> {
        let project = self.caller.project(state, id, action).await?;
        let role = self
            .caller
            .require(state, project.org_id, Action::Read, "project")
            .await?;
        let org = state
            .orgs
            .send(GetOrg {
                id: project.org_id.to_string(),
            })
            .await??;
        let header = ProjectHeader {
            id: project.id.to_string(),
            name: project.name.clone(),
            org_id: org.id.to_string(),
            org_name: org.name,
            can_admin: role.may(Action::ManageKeys),
        };
        Ok((project, header))
    }
}

/// Unwraps a page's reader or returns the redirect or refusal.
macro_rules! reader {
    ($req:expr, $state:expr) => {
        match Reader::of(&$req, &$state).await {
            Ok(reader) => reader,
            Err(response) => return response,
        }
    };
}

// After the macro: the child module uses `reader!`.
mod tokens;
pub use tokens::{create_token, revoke_token, tokens};

/// `GET /`: the projects, or the login page.
pub async fn home(req: HttpRequest) -> HttpResponse {
    match Caller::session(&req).await {
        Ok(_) => see_other("/projects"),
        Err(_) => see_other("/login"),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

/// Logs in as the API does (same limits, same cookie), then goes to the
/// projects; or the status and message for the form.
async fn log_in(
    req: &HttpRequest,
    state: &State,
    email: String,
    password: String,
) -> Result<HttpResponse, (StatusCode, String)> {
    match open_session(req, state, email, password).await {
        Ok((_, cookie)) => {
            let mut response = see_other("/projects");
            response
                .add_cookie(&cookie)
                .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "cookie".to_owned()))?;
            Ok(response)
        }
        Err(LoginRefused::Limited(_)) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed logins; wait a few minutes before trying again.".into(),
        )),
        Err(LoginRefused::Failed(Error::InvalidCredentials)) => {
            Err((StatusCode::UNAUTHORIZED, "Wrong email or password.".into()))
        }
        Err(LoginRefused::Failed(e @ Error::InvalidInput { .. })) => {
            Err((StatusCode::BAD_REQUEST, e.to_string()))
        }
        Err(LoginRefused::Failed(_)) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment.".into(),
        )),
    }
}

/// `POST /login`.
pub async fn login(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if !same_origin(&req) {
        return error_page(
            Error::Forbidden {
                action: "log in from another site",
            },
            None,
        );
    }
    let LoginForm { email, password } = form.into_inner();
    match log_in(&req, &state, email.clone(), password).await {
        Ok(response) => response,
        Err((status, message)) => render(
            status,
            &LoginPage {
                layout: Layout::new("Log in", None),
                email,
                error: Some(message),
                registration_open: state.dashboard.allow_registration,
            },
        ),
    }
}

#[derive(Deserialize)]
pub struct RegisterForm {
    email: String,
    display_name: String,
    password: String,
}

/// `POST /register`: the account, then a session.
pub async fn register(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<RegisterForm>,
) -> HttpResponse {
    if !same_origin(&req) {
        return error_page(
            Error::Forbidden {
                action: "register from another site",
            },
            None,
        );
    }
    let RegisterForm {
        email,
        display_name,
        password,
    } = form.into_inner();
    let refused = |status, message: String| {
        render(
            status,
            &RegisterPage {
                layout: Layout::new("Create an account", None),
                email: email.clone(),
                display_name: display_name.clone(),
                error: Some(message),
                registration_open: state.dashboard.allow_registration,
            },
        )
    };
    if !state.dashboard.allow_registration {
        return refused(
            StatusCode::FORBIDDEN,
            "Registration is switched off here.".into(),
        );
    }
    let registered = state
        .users
        .send(Register {
            email: email.clone(),
            password: password.clone(),
            display_name: display_name.clone(),
        })
        .await;
    match registered {
        Ok(Ok(_)) => match log_in(&req, &state, email.clone(), password).await {
            Ok(response) => response,
            Err((status, message)) => refused(status, message),
        },
        Ok(Err(e)) => refused(StatusCode::BAD_REQUEST, e.to_string()),
        Err(_) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment.".into(),
        ),
    }
}

/// `POST /logout`.
pub async fn logout(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let reader = reader!(req, state);
    let _ = state
        .users
        .send(crate::services::Logout {
            token: reader.caller.token,
        })
        .await;
    let mut response = see_other("/login");
    let _ = response.add_cookie(&removal_cookie());
    response
}

/// `GET /projects`: my organizations and their projects with issue counts.
pub async fn projects(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let reader = reader!(req, state);
    let page = async {
        let mut orgs = Vec::new();
        for mine in my_orgs(&state, &reader.caller).await? {
            let listed = state
                .projects
                .send(ListProjectsByOrg {
                    org_id: mine.org.id.to_string(),
                })
                .await??;
            let counts = state
                .issues
                .send(CountIssues {
                    project_ids: listed.iter().map(|p| p.id).collect(),
                })
                .await??;
            let projects = listed
                .iter()
                .zip(&counts)
                .map(|(p, c)| ProjectRow::new(p, c))
                .collect();
            orgs.push(OrgProjects {
                org: OrgHeader {
                    id: mine.org.id.to_string(),
                    name: mine.org.name,
                    slug: mine.org.slug,
                    role: mine.role.as_str(),
                    can_admin: mine.role.may(Action::ManageProjects),
                },
                projects,
            });
        }
        Ok::<_, Error>(ProjectsPage {
            layout: Layout::new("Projects", Some(reader.nav.clone())),
            orgs,
        })
    };
    match page.await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// The organizations where the reader may create projects.
async fn admin_orgs(state: &State, caller: &Caller) -> Result<Vec<OrgOption>, Error> {
    Ok(my_orgs(state, caller)
        .await?
        .into_iter()
        .filter(|m| m.role.may(Action::ManageProjects))
        .map(|m| OrgOption {
            id: m.org.id.to_string(),
            name: m.org.name,
        })
        .collect())
}

/// `GET /orgs/new`.
pub async fn new_org(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let reader = reader!(req, state);
    render(
        StatusCode::OK,
        &NewOrgPage {
            layout: Layout::new("New organization", Some(reader.nav)),
            name: String::new(),
            slug: String::new(),
            error: None,
        },
    )
}

/// `POST /orgs/new` (the API's `NewOrg` fields, as a form): the
/// organization, with me as its owner; then the projects page, where it is
/// listed.
pub async fn create_org(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<NewOrg>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let NewOrg { name, slug } = form.into_inner();
    let created = async {
        state
            .orgs
            .send(CreateOrgAsOwner {
                name: name.clone(),
                slug: slug.clone(),
                owner_id: reader.caller.user_id,
            })
            .await?
    };
    match created.await {
        Ok(_) => see_other("/projects"),
        Err(e @ (Error::InvalidInput { .. } | Error::AlreadyExists { .. })) => render(
            StatusCode::BAD_REQUEST,
            &NewOrgPage {
                layout: Layout::new("New organization", Some(reader.nav)),
                name,
                slug,
                error: Some(e.to_string()),
            },
        ),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `GET /projects/new`.
pub async fn new_project(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let reader = reader!(req, state);
    match admin_orgs(&state, &reader.caller).await {
        Ok(orgs) => render(
            StatusCode::OK,
            &NewProjectPage {
                layout: Layout::new("New project", Some(reader.nav)),
                org_id: orgs.first().map(|o| o.id.clone()).unwrap_or_default(),
                orgs,
                name: String::new(),
                platform: String::new(),
                error: None,
            },
        ),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct NewProjectForm {
    org_id: String,
    name: String,
    #[serde(default)]
    platform: String,
}

/// `POST /projects/new`: the project and its first key, whose DSN is shown
/// this once.
pub async fn create_project(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<NewProjectForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let form = form.into_inner();
    let created = async {
        let org_id: Uuid = form
            .org_id
            .parse()
            .map_err(|_| Error::invalid("org_id", "must be a UUID"))?;
        reader
            .caller
            .require(&state, org_id, Action::ManageProjects, "organization")
            .await?;
        let platform = Some(form.platform.trim().to_owned()).filter(|p| !p.is_empty());
        let project = state
            .projects
            .send(CreateProject {
                org_id: form.org_id.clone(),
                name: form.name.clone(),
                platform,
            })
            .await??;
        let key = state
            .projects
            .send(CreateApiKey {
                project_id: project.id.to_string(),
                label: Some("default".into()),
            })
            .await??;
        Ok::<_, Error>((project, key))
    };
    match created.await {
        Ok((project, key)) => {
            let header = match reader
                .project(&state, &project.id.to_string(), Action::Read)
                .await
            {
                Ok((_, header)) => header,
                Err(e) => return error_page(e, Some(reader.nav)),
            };
            render(
                StatusCode::CREATED,
                &ProjectCreatedPage {
                    layout: Layout::new(format!("{} is ready", project.name), Some(reader.nav)),
                    project: header,
                    setup: Setup::new(&key.dsn),
                },
            )
        }
        Err(e @ (Error::InvalidInput { .. } | Error::AlreadyExists { .. })) => {
            let orgs = admin_orgs(&state, &reader.caller).await.unwrap_or_default();
            render(
                StatusCode::BAD_REQUEST,
                &NewProjectPage {
                    layout: Layout::new("New project", Some(reader.nav)),
                    orgs,
                    org_id: form.org_id,
                    name: form.name,
                    platform: form.platform,
                    error: Some(e.to_string()),
                },
            )
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `GET /projects/{id}/issues`.
pub async fn issues(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    filters: web::Query<IssueFilters>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let filters = filters.into_inner();
    let page = async {
        let (project, header) = reader.project(&state, &project_id, Action::Read).await?;
        let page = state
            .issues
            .send(ListIssues {
                project_id: project.id.to_string(),
                status: filters.status().map(str::to_owned),
                environment: filters.environment().map(str::to_owned),
                release: filters.release().map(str::to_owned),
                query: filters.query().map(str::to_owned),
                sort: filters.sort().map(str::to_owned),
                cursor: filters.cursor().map(str::to_owned),
                limit: None,
            })
            .await??;
        let activity = state
            .issues
            .send(GetIssueActivity {
                project_id: project.id.to_string(),
                issue_ids: page.issues.iter().map(|i| i.id).collect(),
            })
            .await??;
        let rows = IssueRow::page(&page.issues, &activity, Utc::now());
        Ok::<_, Error>(IssuesPage::new(
            Layout::new(
                format!("Issues · {}", project.name),
                Some(reader.nav.clone()),
            ),
            header,
            filters.clone(),
            rows,
            page.next.as_deref(),
        ))
    };
    match page.await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `POST /projects/{id}/issues/resolve`: the checked issues (`issue`
/// repeated) resolved.
pub async fn resolve_selected(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let done = async {
        let (project, _) = reader.project(&state, &project_id, Action::Triage).await?;
        for (_, issue_id) in form.iter().filter(|(k, _)| k == "issue") {
            state
                .issues
                .send(UpdateIssueStatus {
                    project_id: project.id.to_string(),
                    issue_id: issue_id.clone(),
                    status: "resolved".into(),
                })
                .await??;
        }
        Ok::<_, Error>(project)
    };
    match done.await {
        Ok(project) => see_other(&format!("/projects/{}/issues", project.id)),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct EventChoice {
    /// The event to show; the latest when absent.
    event: Option<String>,
}

/// `GET /projects/{id}/issues/{issue_id}[?event=<id>]`: the issue and one
/// of its events (the latest unless asked), with links to the events just
/// newer and older.
pub async fn issue(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    choice: web::Query<EventChoice>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, issue_id) = path.into_inner();
    let page = async {
        let (project, header) = reader.project(&state, &project_id, Action::Read).await?;
        let detail = state
            .issues
            .send(GetIssue {
                project_id: project.id.to_string(),
                issue_id: issue_id.clone(),
            })
            .await??;
        // The neighbours' query also checks that the event is this issue's.
        let shown = choice
            .event
            .clone()
            .or_else(|| detail.latest_event.as_ref().map(|e| e.id.to_string()));
        let neighbours = match &shown {
            Some(event_id) => {
                state
                    .issues
                    .send(GetEventNeighbours {
                        project_id: project.id.to_string(),
                        issue_id,
                        event_id: event_id.clone(),
                    })
                    .await??
            }
            None => EventNeighbours::default(),
        };
        let event = match &choice.event {
            Some(event_id) => Some(
                state
                    .issues
                    .send(GetEvent {
                        project_id: project.id.to_string(),
                        event_id: event_id.clone(),
                    })
                    .await??,
            ),
            None => detail.latest_event.clone(),
        };
        let (newer_event, older_event) = IssuePage::event_links(&neighbours);
        let members = state
            .users
            .send(ListMembers {
                org_id: project.org_id,
            })
            .await??;
        let now = Utc::now();
        let assigned = detail.issue.assigned_to;
        let assignee = Assignee {
            current: members
                .iter()
                .find(|m| Some(m.user_id) == assigned)
                .map(|m| m.display_name.clone()),
            choices: members
                .iter()
                .map(|m| MemberChoice {
                    user_id: m.user_id.to_string(),
                    label: format!("{} <{}>", m.display_name, m.email),
                    selected: Some(m.user_id) == assigned,
                })
                .collect(),
        };
        Ok::<_, Error>(IssuePage {
            layout: Layout::new(detail.issue.title.clone(), Some(reader.nav.clone())),
            project: header,
            issue: IssueRow::of_detail(&detail, now),
            sparkline: super::format::Sparkline::new(&detail.daily_counts),
            resolved: detail
                .issue
                .resolved_at
                .map(|at| super::format::RelTime::new(at, now)),
            assignee,
            event: event.as_ref().map(|e| super::event::EventView::new(e, now)),
            newer_event,
            older_event,
        })
    };
    match page.await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

/// `POST /projects/{id}/issues/{issue_id}/status`.
pub async fn set_status(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<StatusForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, issue_id) = path.into_inner();
    let done = async {
        let (project, _) = reader.project(&state, &project_id, Action::Triage).await?;
        state
            .issues
            .send(UpdateIssueStatus {
                project_id: project.id.to_string(),
                issue_id: issue_id.clone(),
                status: form.into_inner().status,
            })
            .await??;
        Ok::<_, Error>(format!("/projects/{}/issues/{issue_id}", project.id))
    };
    match done.await {
        Ok(back) => see_other(&back),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct AssigneeForm {
    #[serde(default)]
    user_id: String,
}

/// `POST /projects/{id}/issues/{issue_id}/assignee` (empty: nobody).
pub async fn set_assignee(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<AssigneeForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, issue_id) = path.into_inner();
    let user = Some(form.into_inner().user_id).filter(|u| !u.is_empty());
    let done = async {
        let (project, _) = reader.project(&state, &project_id, Action::Triage).await?;
        if let Some(user) = &user {
            let user_id: Uuid = user
                .parse()
                .map_err(|_| Error::invalid("user_id", "must be a UUID"))?;
            check_assignee(&state, project.org_id, user_id, "user_id").await?;
        }
        state
            .issues
            .send(AssignIssue {
                project_id: project.id.to_string(),
                issue_id: issue_id.clone(),
                user_id: user,
            })
            .await??;
        Ok::<_, Error>(format!("/projects/{}/issues/{issue_id}", project.id))
    };
    match done.await {
        Ok(back) => see_other(&back),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// The keys page of a project, after an action's `created` key or `error`.
async fn keys_page(
    state: &State,
    reader: &Reader,
    project_id: &str,
    created: Option<Setup>,
    error: Option<String>,
) -> Result<KeysPage, Error> {
    let (project, header) = reader
        .project(state, project_id, Action::ManageKeys)
        .await?;
    let now = Utc::now();
    let keys = state
        .projects
        .send(ListApiKeys {
            project_id: project.id.to_string(),
        })
        .await??
        .into_iter()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            label: k.label,
            prefix: k.prefix,
            created: RelTime::new(k.created_at, now),
            revoked: k.revoked_at.map(|at| RelTime::new(at, now)),
        })
        .collect();
    Ok(KeysPage {
        layout: Layout::new(format!("Keys · {}", project.name), Some(reader.nav.clone())),
        project: header,
        keys,
        created,
        error,
    })
}

fn page_or_error(
    page: Result<impl askama::Template, Error>,
    status: StatusCode,
    nav: Nav,
) -> HttpResponse {
    match page {
        Ok(page) => render(status, &page),
        Err(e) => error_page(e, Some(nav)),
    }
}

/// `GET /projects/{id}/keys` (admins).
pub async fn keys(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let page = keys_page(&state, &reader, &project_id, None, None).await;
    page_or_error(page, StatusCode::OK, reader.nav)
}

#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    label: String,
}

/// `POST /projects/{id}/keys`: a new key, its DSN shown this once.
pub async fn create_key(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    form: web::Form<KeyForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let created = async {
        let (project, _) = reader
            .project(&state, &project_id, Action::ManageKeys)
            .await?;
        let label = Some(form.into_inner().label.trim().to_owned()).filter(|l| !l.is_empty());
        state
            .projects
            .send(CreateApiKey {
                project_id: project.id.to_string(),
                label,
            })
            .await?
    };
    let (setup, error, status) = match created.await {
        Ok(key) => (Some(Setup::new(&key.dsn)), None, StatusCode::CREATED),
        Err(e @ Error::InvalidInput { .. }) => (None, Some(e.to_string()), StatusCode::BAD_REQUEST),
        Err(e) => return error_page(e, Some(reader.nav)),
    };
    let page = keys_page(&state, &reader, &project_id, setup, error).await;
    page_or_error(page, status, reader.nav)
}

/// `POST /projects/{id}/keys/{key_id}/revoke`.
pub async fn revoke_key(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, Uuid)>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, key_id) = path.into_inner();
    let done = async {
        let (project, _) = reader
            .project(&state, &project_id, Action::ManageKeys)
            .await?;
        let back = format!("/projects/{}/keys", project.id);
        revoke_project_key(&state, project, key_id).await?;
        Ok::<_, Error>(back)
    };
    match done.await {
        Ok(back) => see_other(&back),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// The members page of an organization (admins), after an action's
/// refusal.
async fn members_page(
    state: &State,
    reader: &Reader,
    org_id: Uuid,
    email: String,
    error: Option<String>,
) -> Result<MembersPage, Error> {
    let role = reader
        .caller
        .require(state, org_id, Action::ManageMembers, "organization")
        .await?;
    let org = state
        .orgs
        .send(GetOrg {
            id: org_id.to_string(),
        })
        .await??;
    let now = Utc::now();
    let owner = role.may(Action::ManageOwners);
    let members = state
        .users
        .send(ListMembers { org_id })
        .await??
        .into_iter()
        .map(|m| MemberRow {
            user_id: m.user_id.to_string(),
            display_name: m.display_name,
            email: m.email,
            role: m.role.as_str(),
            joined: RelTime::new(m.joined_at, now),
            editable: owner || m.role != Role::Owner,
        })
        .collect();
    Ok(MembersPage {
        layout: Layout::new(format!("Members · {}", org.name), Some(reader.nav.clone())),
        org: OrgHeader {
            id: org.id.to_string(),
            name: org.name,
            slug: org.slug,
            role: role.as_str(),
            can_admin: true,
        },
        members,
        roles: if owner {
            vec!["member", "admin", "owner"]
        } else {
            vec!["member", "admin"]
        },
        email,
        error,
    })
}

/// `GET /orgs/{org_id}/members` (admins).
pub async fn members(
    req: HttpRequest,
    state: web::Data<State>,
    org_id: web::Path<Uuid>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let page = members_page(&state, &reader, *org_id, String::new(), None).await;
    page_or_error(page, StatusCode::OK, reader.nav)
}

#[derive(Deserialize)]
pub struct MemberForm {
    email: String,
    role: String,
}

/// `POST /orgs/{org_id}/members`: adds a registered user by email.
pub async fn add_member(
    req: HttpRequest,
    state: web::Data<State>,
    org_id: web::Path<Uuid>,
    form: web::Form<MemberForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let org_id = org_id.into_inner();
    let MemberForm { email, role } = form.into_inner();
    let added = async {
        let needed = match role.parse::<Role>()? {
            Role::Owner => Action::ManageOwners,
            _ => Action::ManageMembers,
        };
        reader
            .caller
            .require(&state, org_id, needed, "organization")
            .await?;
        state
            .users
            .send(AddMemberByEmail {
                org_id,
                email: email.clone(),
                role: role.clone(),
            })
            .await??;
        Ok::<_, Error>(())
    };
    match added.await {
        Ok(()) => see_other(&format!("/orgs/{org_id}/members")),
        Err(
            e @ (Error::InvalidInput { .. }
            | Error::AlreadyExists { .. }
            | Error::NotFound { entity: "user" }),
        ) => {
            let page = members_page(&state, &reader, org_id, email, Some(e.to_string())).await;
            page_or_error(page, StatusCode::BAD_REQUEST, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

/// `POST /orgs/{org_id}/members/{user_id}/role`.
pub async fn change_role(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(Uuid, Uuid)>,
    form: web::Form<RoleForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (org_id, user_id) = path.into_inner();
    let changed = async {
        let role: Role = form.into_inner().role.parse()?;
        reader
            .caller
            .require(&state, org_id, Action::ManageMembers, "organization")
            .await?;
        let needed = change_needs(&state, &reader.caller, org_id, user_id, Some(role)).await?;
        reader
            .caller
            .require(&state, org_id, needed, "organization")
            .await?;
        state
            .users
            .send(ChangeMember {
                org_id,
                user_id,
                role: Some(role.as_str().to_owned()),
            })
            .await??;
        Ok::<_, Error>(())
    };
    match changed.await {
        Ok(()) => see_other(&format!("/orgs/{org_id}/members")),
        Err(e @ (Error::Conflict { .. } | Error::InvalidInput { .. })) => {
            let page =
                members_page(&state, &reader, org_id, String::new(), Some(e.to_string())).await;
            page_or_error(page, StatusCode::CONFLICT, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}
