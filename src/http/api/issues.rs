//! `/api/v1/projects/{id}/issues` and `/events`: what broke, and triage.

use crate::app::issues::{self, Triage};
use crate::app::{Caller, State};
use crate::domain::access::Action;
use crate::domain::{ArchiveUntil, ResolveIn};
use crate::error::Error;
use crate::http::error::ApiError;
use crate::services::{
    GetEvent, GetIssue, GetIssueHistory, GetIssueTags, ListIssueEvents, ListIssues,
};
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The issue list's query string; each is checked by the issue service.
#[derive(Deserialize)]
pub struct IssueQuery {
    pub status: Option<String>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub query: Option<String>,
    pub sort: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

pub async fn list(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
    q: web::Query<IssueQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let q = q.into_inner();
    let page = state
        .issues
        .send(ListIssues {
            project_id: project.id.to_string(),
            status: q.status,
            environment: q.environment,
            release: q.release,
            query: q.query,
            sort: q.sort,
            cursor: q.cursor,
            limit: q.limit,
            me: Some(caller.user_id),
        })
        .await??;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn get(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, issue_id) = path.into_inner();
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let detail = state
        .issues
        .send(GetIssue {
            project_id: project.id.to_string(),
            issue_id,
        })
        .await??;
    Ok(HttpResponse::Ok().json(detail))
}

/// Triage: `{"status": "resolved"}`, `{"assignee_id": "<user id>"}` (a
/// member of the organization) or `{"assignee_id": null}`, or both. With
/// `"status": "archived"`, `"archive"`: `{}` (forever), `{"count": N}`,
/// `{"minutes": N}` or `{"users": N}`; with `"status": "resolved"`,
/// `"resolved_in"`: `{"next_release": true}` or `{"release": "X"}`.
pub async fn update(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, issue_id) = path.into_inner();
    let (project, _) = caller.project(&state, &project_id, Action::Triage).await?;
    let body = body.into_inner();
    let status = match body.get("status") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Error::invalid("status", "must be a string").into()),
    };
    let assignee = match body.get("assignee_id") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => {
            Some(Some(s.parse::<Uuid>().map_err(|_| {
                Error::invalid("assignee_id", "must be a user id or null")
            })?))
        }
        Some(_) => return Err(Error::invalid("assignee_id", "must be a user id or null").into()),
    };
    let archive = body
        .get("archive")
        .map(ArchiveUntil::from_json)
        .transpose()?;
    let resolved_in = body
        .get("resolved_in")
        .map(ResolveIn::from_json)
        .transpose()?;
    let change = Triage {
        status,
        archive,
        resolved_in,
        assignee,
        assignee_field: "assignee_id",
        actor: caller.user_id,
    };
    let issue = issues::triage(&state, &project, issue_id, change).await?;
    Ok(HttpResponse::Ok().json(issue))
}

#[derive(Deserialize)]
pub struct Page {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

pub async fn events(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, issue_id) = path.into_inner();
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let Page { cursor, limit } = page.into_inner();
    let events = state
        .issues
        .send(ListIssueEvents {
            project_id: project.id.to_string(),
            issue_id,
            cursor,
            limit,
        })
        .await??;
    Ok(HttpResponse::Ok().json(events))
}

pub async fn event(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, event_id) = path.into_inner();
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let event = state
        .issues
        .send(GetEvent {
            project_id: project.id.to_string(),
            event_id,
        })
        .await??;
    Ok(HttpResponse::Ok().json(event))
}

/// `GET .../issues/{issue_id}/tags`: `{"tags": [{"key", "total",
/// "distinct", "other", "top": [{"value", "count"}]}]}`, from the counts
/// kept as events are stored.
pub async fn tags(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, issue_id) = path.into_inner();
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let tags = state
        .issues
        .send(GetIssueTags {
            project_id: project.id.to_string(),
            issue_id,
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tags": tags })))
}

/// `GET .../issues/{issue_id}/activity`: `{"activity": [{"id", "at",
/// "user_id", "user_name", "kind", "data"}]}`, newest first.
pub async fn activity(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, issue_id) = path.into_inner();
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let activity = state
        .issues
        .send(GetIssueHistory {
            project_id: project.id.to_string(),
            issue_id,
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "activity": activity })))
}
