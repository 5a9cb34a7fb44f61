//! My organizations' projects, and a new project with its first key.

use super::{Reader, error_page};
use crate::app::projects::{self, NewProject};
use crate::app::{Caller, State, orgs};
use crate::domain::access::Action;
use crate::error::Error;
use crate::services::{CountIssues, ListProjectsByOrg, ProjectUsage};
use crate::web::format::Setup;
use crate::web::pages::{
    Layout, NewProjectPage, OrgHeader, OrgOption, OrgProjects, ProjectCreatedPage, ProjectRow,
    ProjectsPage,
};
use crate::web::render;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

/// `GET /projects`: my organizations and their projects with issue counts.
pub async fn list(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let reader = reader!(req, state);
    let page = async {
        let mut listed_orgs = Vec::new();
        for mine in orgs::mine(&state, &reader.caller).await? {
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
            let usage = state
                .projects
                .send(ProjectUsage {
                    project_ids: listed.iter().map(|p| p.id).collect(),
                })
                .await??;
            let projects = listed
                .iter()
                .zip(&counts)
                .map(|(p, c)| ProjectRow::new(p, c, usage.get(&p.id).copied().unwrap_or_default()))
                .collect();
            listed_orgs.push(OrgProjects {
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
            orgs: listed_orgs,
        })
    };
    match page.await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// The organizations where the reader may create projects.
async fn admin_orgs(state: &State, caller: &Caller) -> Result<Vec<OrgOption>, Error> {
    Ok(orgs::mine(state, caller)
        .await?
        .into_iter()
        .filter(|m| m.role.may(Action::ManageProjects))
        .map(|m| OrgOption {
            id: m.org.id.to_string(),
            name: m.org.name,
        })
        .collect())
}

/// `GET /projects/new`.
pub async fn new(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
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

/// `POST /projects/new`: the project and its first key, as the API makes
/// them (one transaction); the key's DSN is shown this once.
pub async fn create(
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
        // An empty field is a platform not given.
        let platform = Some(form.platform.trim().to_owned()).filter(|p| !p.is_empty());
        let new = NewProject {
            name: form.name.clone(),
            platform,
        };
        let made = projects::create(&state, &reader.caller, org_id, new).await?;
        let (_, header) = reader
            .project(&state, &made.project.id.to_string(), Action::Read)
            .await?;
        Ok::<_, Error>((made, header))
    };
    match created.await {
        Ok((made, header)) => render(
            StatusCode::CREATED,
            &ProjectCreatedPage {
                layout: Layout::new(format!("{} is ready", made.project.name), Some(reader.nav)),
                project: header,
                setup: Setup::new(&made.key.dsn),
            },
        ),
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
