//! `/api/v1/projects/{id}/alert-rules`, `/channels` and `/alerts`: a
//! project's alert rules and notification channels (members read, admins
//! write), a channel's test notification, and the alert history.

use crate::app::{Caller, State, alerts};
use crate::domain::access::Action;
use crate::domain::{ChannelPatch, NewChannel, NewRule, RulePatch};
use crate::http::error::ApiError;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

pub async fn rules(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rules = alerts::rules(&state, &caller, &project_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "rules": rules })))
}

pub async fn create_rule(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
    body: web::Json<NewRule>,
) -> Result<HttpResponse, ApiError> {
    let rule = alerts::create_rule(&state, &caller, &project_id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(rule))
}

pub async fn update_rule(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<RulePatch>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, rule_id) = path.into_inner();
    let rule =
        alerts::update_rule(&state, &caller, &project_id, &rule_id, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(rule))
}

pub async fn delete_rule(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, rule_id) = path.into_inner();
    alerts::delete_rule(&state, &caller, &project_id, &rule_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn channels(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let channels = alerts::channels(&state, &caller, &project_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "channels": channels })))
}

/// Makes a channel; a generic webhook's reply holds its secret, this once.
pub async fn create_channel(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
    body: web::Json<NewChannel>,
) -> Result<HttpResponse, ApiError> {
    let made = alerts::create_channel(&state, &caller, &project_id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(made))
}

pub async fn update_channel(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
    body: web::Json<ChannelPatch>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, channel_id) = path.into_inner();
    let channel =
        alerts::update_channel(&state, &caller, &project_id, &channel_id, body.into_inner())
            .await?;
    Ok(HttpResponse::Ok().json(channel))
}

pub async fn delete_channel(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, channel_id) = path.into_inner();
    alerts::delete_channel(&state, &caller, &project_id, &channel_id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Queues a test notification: 202 with the alert and delivery ids, to
/// follow in the history.
pub async fn test_channel(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_id, channel_id) = path.into_inner();
    let (alert, delivery) = alerts::test_channel(&state, &caller, &project_id, &channel_id).await?;
    Ok(HttpResponse::Accepted().json(json!({ "alert_id": alert, "delivery_id": delivery })))
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    /// Only this issue's alerts.
    pub issue: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// `GET .../alerts`: `{"alerts": [...], "next"}`, newest first.
pub async fn history(
    state: web::Data<State>,
    caller: Caller,
    project_id: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, _) = caller.project(&state, &project_id, Action::Read).await?;
    let HistoryQuery {
        issue,
        cursor,
        limit,
    } = query.into_inner();
    let page =
        alerts::history(&state, &project, issue.as_deref(), cursor.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(page))
}
