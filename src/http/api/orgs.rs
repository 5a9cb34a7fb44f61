//! `/api/v1/orgs`: organizations, their members and their projects.

use super::projects::{ProjectView, with_keys};
use crate::app::orgs::{self, MyOrg, NewMember, NewOrg, ORG};
use crate::app::projects::{self, NewProject};
use crate::app::{Caller, State};
use crate::domain::access::Action;
use crate::domain::{NewApiKey, Role};
use crate::http::error::ApiError;
use crate::services::{GetOrg, ListMembers, ListProjectsByOrg};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Creates an organization; the caller becomes its owner.
pub async fn create(
    state: web::Data<State>,
    caller: Caller,
    body: web::Json<NewOrg>,
) -> Result<HttpResponse, ApiError> {
    let mine = orgs::create(&state, &caller, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(mine))
}

pub async fn list(state: web::Data<State>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(orgs::mine(&state, &caller).await?))
}

pub async fn get(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    let role = caller.require(&state, org_id, Action::Read, ORG).await?;
    let org = state
        .orgs
        .send(GetOrg {
            id: org_id.to_string(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(MyOrg { org, role }))
}

pub async fn members(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    caller.require(&state, org_id, Action::Read, ORG).await?;
    let members = state.users.send(ListMembers { org_id }).await??;
    Ok(HttpResponse::Ok().json(members))
}

/// Adds a registered user by email: admins add members and admins, owners
/// also owners.
pub async fn add_member(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
    body: web::Json<NewMember>,
) -> Result<HttpResponse, ApiError> {
    let membership =
        orgs::add_member(&state, &caller, org_id.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(membership))
}

#[derive(Deserialize)]
pub struct RoleChange {
    pub role: String,
}

pub async fn change_member(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<RoleChange>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    let role: Role = body.role.parse()?;
    orgs::change_member(&state, &caller, org_id, user_id, Some(role)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn remove_member(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    orgs::change_member(&state, &caller, org_id, user_id, None).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A project just made: as [`ProjectView`], and its first key in clear,
/// with its DSN, this once (as `POST /projects/{id}/keys` shows a key).
#[derive(Serialize)]
pub struct CreatedProject {
    #[serde(flatten)]
    pub view: ProjectView,
    /// Shown in clear this once.
    pub key: NewApiKey,
}

/// Creates a project with its first key (see [`projects::create`]).
pub async fn create_project(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
    body: web::Json<NewProject>,
) -> Result<HttpResponse, ApiError> {
    let made = projects::create(&state, &caller, org_id.into_inner(), body.into_inner()).await?;
    let view = ProjectView {
        project: made.project,
        keys: vec![made.key.info.clone()],
        // A new project stores nothing yet.
        usage: Default::default(),
    };
    Ok(HttpResponse::Created().json(CreatedProject {
        view,
        key: made.key,
    }))
}

pub async fn projects(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    caller.require(&state, org_id, Action::Read, ORG).await?;
    let projects = state
        .projects
        .send(ListProjectsByOrg {
            org_id: org_id.to_string(),
        })
        .await??;
    let mut listed = Vec::with_capacity(projects.len());
    for project in projects {
        listed.push(with_keys(&state, project).await?);
    }
    Ok(HttpResponse::Ok().json(listed))
}
