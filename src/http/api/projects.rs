//! `/api/v1/projects/{id}`: one project and its ingest keys.

use crate::app::projects::{KeySettings, SettingsChange};
use crate::app::{Caller, State, projects};
use crate::db::retention::Usage;
use crate::domain::access::Action;
use crate::domain::{ApiKeyInfo, Project};
use crate::error::Error;
use crate::http::error::ApiError;
use crate::services::{CreateApiKey, ListApiKeys};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A project with its keys' prefixes (never the keys: those are shown
/// once, when made), its settings (in `project`) and what it stores.
#[derive(Serialize)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: Project,
    pub keys: Vec<ApiKeyInfo>,
    pub usage: Usage,
}

pub async fn with_keys(state: &State, project: Project) -> Result<ProjectView, Error> {
    let keys = state
        .projects
        .send(ListApiKeys {
            project_id: project.id.to_string(),
        })
        .await??;
    let usage = projects::usage(state, &project).await?;
    Ok(ProjectView {
        project,
        keys,
        usage,
    })
}

pub async fn get(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    Ok(HttpResponse::Ok().json(with_keys(&state, project).await?))
}

/// `PATCH`: `{"retention_days": N | null, "rate_limit_per_minute": N |
/// null}` (admins); replies with the project as `GET` does.
pub async fn update(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
    body: web::Json<SettingsChange>,
) -> Result<HttpResponse, ApiError> {
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let project = projects::update_settings(&state, &caller, &project, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(with_keys(&state, project).await?))
}

#[derive(Deserialize)]
pub struct NewKey {
    pub label: Option<String>,
}

/// Makes a key; the reply holds it in clear, with its DSN, this once.
pub async fn create_key(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
    body: web::Json<NewKey>,
) -> Result<HttpResponse, ApiError> {
    let (project, _) = caller
        .project(&state, &project_id, Action::ManageKeys)
        .await?;
    let key = state
        .projects
        .send(CreateApiKey {
            project_id: project.id.to_string(),
            label: body.into_inner().label,
        })
        .await??;
    Ok(HttpResponse::Created().json(key))
}

pub async fn keys(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (project, _) = caller
        .project(&state, &project_id, Action::ManageKeys)
        .await?;
    Ok(HttpResponse::Ok().json(with_keys(&state, project).await?.keys))
}

/// `PATCH /projects/{p}/keys/{key_id}`: `{"rate_limit_per_minute": N |
/// null}` (those who manage keys); replies with the key as listed.
pub async fn update_key(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, Uuid)>,
    body: web::Json<KeySettings>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, key_id) = path.into_inner();
    let (project, _) = caller
        .project(&state, &project_id, Action::ManageKeys)
        .await?;
    let key = projects::set_key_settings(&state, &project, key_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(key))
}

pub async fn revoke_key(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, key_id) = path.into_inner();
    let (project, _) = caller
        .project(&state, &project_id, Action::ManageKeys)
        .await?;
    projects::revoke_key(&state, &project, key_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
