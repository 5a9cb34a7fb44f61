//! A project's keys (admins): listed, made (the DSN shown once), limited,
//! revoked.

use super::settings::number;
use super::{Reader, error_page, page_or_error, see_other};
use crate::app::projects::KeySettings;
use crate::app::{State, projects};
use crate::domain::access::Action;
use crate::error::Error;
use crate::services::{CreateApiKey, ListApiKeys};
use crate::web::format::{RelTime, Setup};
use crate::web::pages::{KeyRow, KeysPage, Layout};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

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
            rate_limit: k
                .rate_limit_per_minute
                .map(|n| n.to_string())
                .unwrap_or_default(),
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

/// `GET /projects/{id}/keys` (admins).
pub async fn list(
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
pub async fn create(
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
pub async fn revoke(
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
        projects::revoke_key(&state, &project, key_id).await?;
        let back = format!("/projects/{}/keys", project.id);
        Ok::<_, Error>(back)
    };
    match done.await {
        Ok(back) => see_other(&back),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct LimitForm {
    #[serde(default)]
    rate_limit_per_minute: String,
}

/// `POST /projects/{id}/keys/{key_id}/limit`: the key's own events per
/// minute, or none when empty.
pub async fn limit(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, Uuid)>,
    form: web::Form<LimitForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, key_id) = path.into_inner();
    let done = async {
        let (project, _) = reader
            .project(&state, &project_id, Action::ManageKeys)
            .await?;
        let per_minute = number("rate_limit_per_minute", &form.rate_limit_per_minute)?;
        let settings = KeySettings {
            rate_limit_per_minute: Some(per_minute),
        };
        projects::set_key_settings(&state, &project, key_id, settings).await?;
        Ok::<_, Error>(format!("/projects/{}/keys", project.id))
    };
    match done.await {
        Ok(back) => see_other(&back),
        Err(e @ Error::InvalidInput { .. }) => {
            let page = keys_page(&state, &reader, &project_id, None, Some(e.to_string())).await;
            page_or_error(page, StatusCode::BAD_REQUEST, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}
