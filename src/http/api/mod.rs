//! The dashboard API: JSON under `/api/v1` for the web UI and for scripts.
//! The handlers extract, call the application layer ([`crate::app`]) or
//! send a message, and map the reply.
//!
//! - [`caller`]: the session extractor, with the API's rule for requests
//!   authenticated by the cookie alone.
//! - [`auth`]: register, log in and out, who am I.
//! - [`orgs`]: organizations, members, and the projects of one.
//! - [`projects`]: one project and its keys.
//! - [`issues`]: a project's issues and events, and triage.
//! - [`alerts`]: a project's alert rules, channels and alert history.
//!
//! Someone outside an organization gets 404 for everything in it, as if it
//! did not exist; a member whose role falls short gets 403.

pub mod alerts;
pub mod auth;
pub mod caller;
pub mod issues;
pub mod orgs;
pub mod projects;

use super::error::{ApiError, Problem};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};

/// The largest JSON body a dashboard request may send.
pub(crate) const MAX_JSON_BYTES: usize = 64 * 1024;

fn json_error(e: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let problem = match e {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("a request body may hold at most {MAX_JSON_BYTES} bytes"),
            )
        }
        JsonPayloadError::ContentType => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "send Content-Type: application/json",
        ),
        other => Problem::new(StatusCode::BAD_REQUEST, "invalid_json", other.to_string()),
    };
    ApiError(problem).into()
}

fn path_error(e: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError(Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_input",
        format!("invalid id in the path: {e}"),
    ))
    .into()
}

fn query_error(e: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError(Problem::new(
        StatusCode::BAD_REQUEST,
        "invalid_input",
        e.to_string(),
    ))
    .into()
}

/// The dashboard's routes, under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, patch, post};
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_JSON_BYTES)
            .error_handler(json_error),
    )
    .app_data(web::PathConfig::default().error_handler(path_error))
    .app_data(web::QueryConfig::default().error_handler(query_error))
    .route("/auth/register", post().to(auth::register))
    .route("/auth/login", post().to(auth::login))
    .route("/auth/logout", post().to(auth::logout))
    .route("/auth/me", get().to(auth::me))
    .route("/orgs", post().to(orgs::create))
    .route("/orgs", get().to(orgs::list))
    .route("/orgs/{org_id}", get().to(orgs::get))
    .route("/orgs/{org_id}/members", get().to(orgs::members))
    .route("/orgs/{org_id}/members", post().to(orgs::add_member))
    .route(
        "/orgs/{org_id}/members/{user_id}",
        patch().to(orgs::change_member),
    )
    .route(
        "/orgs/{org_id}/members/{user_id}",
        delete().to(orgs::remove_member),
    )
    .route("/orgs/{org_id}/projects", post().to(orgs::create_project))
    .route("/orgs/{org_id}/projects", get().to(orgs::projects))
    .route("/projects/{project_id}", get().to(projects::get))
    .route("/projects/{project_id}", patch().to(projects::update))
    .route(
        "/projects/{project_id}/keys",
        post().to(projects::create_key),
    )
    .route("/projects/{project_id}/keys", get().to(projects::keys))
    .route(
        "/projects/{project_id}/keys/{key_id}",
        patch().to(projects::update_key),
    )
    .route(
        "/projects/{project_id}/keys/{key_id}",
        delete().to(projects::revoke_key),
    )
    .route("/projects/{project_id}/issues", get().to(issues::list))
    .route(
        "/projects/{project_id}/issues/{issue_id}",
        get().to(issues::get),
    )
    .route(
        "/projects/{project_id}/issues/{issue_id}",
        patch().to(issues::update),
    )
    .route(
        "/projects/{project_id}/issues/{issue_id}/events",
        get().to(issues::events),
    )
    .route(
        "/projects/{project_id}/issues/{issue_id}/tags",
        get().to(issues::tags),
    )
    .route(
        "/projects/{project_id}/issues/{issue_id}/activity",
        get().to(issues::activity),
    )
    .route(
        "/projects/{project_id}/events/{event_id}",
        get().to(issues::event),
    )
    .route(
        "/projects/{project_id}/alert-rules",
        get().to(alerts::rules),
    )
    .route(
        "/projects/{project_id}/alert-rules",
        post().to(alerts::create_rule),
    )
    .route(
        "/projects/{project_id}/alert-rules/{rule_id}",
        patch().to(alerts::update_rule),
    )
    .route(
        "/projects/{project_id}/alert-rules/{rule_id}",
        delete().to(alerts::delete_rule),
    )
    .route(
        "/projects/{project_id}/channels",
        get().to(alerts::channels),
    )
    .route(
        "/projects/{project_id}/channels",
        post().to(alerts::create_channel),
    )
    .route(
        "/projects/{project_id}/channels/{channel_id}",
        patch().to(alerts::update_channel),
    )
    .route(
        "/projects/{project_id}/channels/{channel_id}",
        delete().to(alerts::delete_channel),
    )
    .route(
        "/projects/{project_id}/channels/{channel_id}/test",
        post().to(alerts::test_channel),
    )
    .route("/projects/{project_id}/alerts", get().to(alerts::history));
}
