//! The part of Sentry's web API (`/api/0/`) that `sentry-cli sourcemaps
//! upload` calls, so that the official CLI works against Mesher unchanged
//! (`SENTRY_URL` = Mesher's public URL, `SENTRY_AUTH_TOKEN` = an
//! organization token, `--org <slug> --project <project>`):
//!
//! - `GET /api/0/`: what `sentry-cli info` and `login` read.
//! - `GET /api/0/organizations/{org}/chunk-upload/`: the upload options.
//! - `POST /api/0/organizations/{org}/chunk-upload/`: chunks, multipart.
//! - `POST /api/0/organizations/{org}/artifactbundle/assemble/`: the
//!   chunks still missing, or the bundle assembled and stored.
//!
//! Every call but the first needs `Authorization: Bearer <token>`: 401
//! without a valid one, 404 for an organization that does not exist, 403
//! for one the token does not belong to (as Sentry answers; a token holder
//! is a build of some organization, and sentry-cli 2.x takes a 404 on the
//! options for "no chunk upload here" and falls back to an upload Mesher
//! does not serve, which would hide the real mistake). These are the one
//! [`Error`] mapping's (`InvalidCredentials`, `NotFound`, `Forbidden`);
//! only what is particular to uploads (a chunk that does not match its
//! name, a request too large) is a [`Problem`] of its own. Errors are
//! `{"detail": "..."}`, which sentry-cli prints.

mod uploads;

use super::error::{Problem, SentryError};
use super::sentry_auth;
use super::server::method_not_allowed;
use crate::app::State;
use crate::domain::{Organization, Project};
use crate::error::Error;
use crate::services::{AuthenticateOrgToken, GetOrgBySlug, ListProjectsByOrg};
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

/// The routes, under `/api/0/`; another method on one of them gets 405,
/// as everywhere else (the body too large for a request is its handler's
/// to refuse, in the same `{"detail"}` shape).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/0/")
            .get(info)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/0/organizations/{org}/chunk-upload/")
            .get(uploads::options)
            .post(uploads::upload_chunks)
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/0/organizations/{org}/artifactbundle/assemble/")
            .post(uploads::assemble)
            .default_service(web::to(method_not_allowed)),
    );
}

/// `GET /api/0/`: who the token is, as Sentry answers (and Bugsink does):
/// an organization token has no user.
async fn info(req: HttpRequest, state: web::Data<State>) -> Result<HttpResponse, SentryError> {
    let auth = match bearer(&req) {
        Some(token) => {
            authenticate(&state, token).await?;
            json!({ "scopes": ["org:ci"] })
        }
        None => serde_json::Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({ "version": "0", "auth": auth, "user": null })))
}

/// The token of `Authorization: Bearer <token>`, if any (the scheme in
/// any letter case, as everywhere else: [`sentry_auth::bearer_token`]).
fn bearer(req: &HttpRequest) -> Option<&str> {
    sentry_auth::bearer_token(req.headers().get(AUTHORIZATION)?.to_str().ok()?)
}

/// The organization `token` belongs to; `InvalidCredentials` (401) for a
/// malformed, unknown or revoked one.
async fn authenticate(state: &State, token: &str) -> Result<Organization, Error> {
    state
        .tokens
        .send(AuthenticateOrgToken {
            token: token.to_owned(),
        })
        .await?
}

/// The organization `slug` names, if the request's token belongs to it:
/// `InvalidCredentials` (401) without a valid token, `NotFound` (404) for
/// an organization that does not exist, `Forbidden` (403) for another
/// organization's (see the module documentation).
async fn organization(state: &State, req: &HttpRequest, slug: &str) -> Result<Organization, Error> {
    let token = bearer(req).ok_or(Error::InvalidCredentials)?;
    let org = authenticate(state, token).await?;
    if org.slug == slug {
        return Ok(org);
    }
    let other = state
        .orgs
        .send(GetOrgBySlug {
            slug: slug.to_owned(),
        })
        .await?;
    match other {
        Ok(_) => Err(Error::Forbidden {
            action: "upload here: the token belongs to another organization",
        }),
        // What is not even shaped like a slug names no organization.
        Err(Error::NotFound { .. } | Error::InvalidInput { .. }) => Err(Error::NotFound {
            entity: "organization",
        }),
        Err(e) => Err(e),
    }
}

/// A project as people name it on the command line: lowercase, each run
/// of other characters one dash (`My App` is `my-app`), as Sentry derives
/// a project's slug from its name.
fn slug_of(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_matches('-').to_owned()
}

/// The project `given` names among `projects`: its public id (the number
/// in its DSN), its UUID, or its name as a slug (see [`slug_of`]), which
/// must then name one project only.
fn find_project<'a>(projects: &'a [Project], given: &str) -> Result<&'a Project, String> {
    let given = given.trim();
    if let Some(p) = projects
        .iter()
        .find(|p| p.public_id.to_string() == given || p.id.to_string() == given)
    {
        return Ok(p);
    }
    let wanted = slug_of(given);
    let mut named = projects.iter().filter(|p| slug_of(&p.name) == wanted);
    match (named.next(), named.next()) {
        (Some(p), None) => Ok(p),
        (Some(_), Some(_)) => Err(format!(
            "several projects are named {given:?}; name it by its public id (the number in its DSN)"
        )),
        (None, _) => Err(format!("project {given:?} not found in this organization")),
    }
}

/// The organization's projects that `names` name, each once.
async fn projects_named(
    state: &State,
    org: &Organization,
    names: &[String],
) -> Result<Vec<Project>, Problem> {
    let all = state
        .projects
        .send(ListProjectsByOrg {
            org_id: org.id.to_string(),
        })
        .await??;
    let mut out: Vec<Project> = Vec::new();
    for name in names {
        let project = find_project(&all, name)
            .map_err(|detail| Problem::new(StatusCode::BAD_REQUEST, "invalid_project", detail))?;
        if !out.iter().any(|p| p.id == project.id) {
            out.push(project.clone());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn project(public_id: i64, name: &str) -> Project {
        Project {
            id: Uuid::now_v7(),
            public_id,
            org_id: Uuid::nil(),
            name: name.into(),
            platform: None,
            created_at: Utc::now(),
            retention_days: None,
            rate_limit_per_minute: None,
        }
    }

    #[test]
    fn project_names_as_slugs() {
        for (name, slug) in [
            ("App", "app"),
            ("My  App!", "my-app"),
            (" web-frontend ", "web-frontend"),
            ("Café au lait", "café-au-lait"),
            ("--x--", "x"),
        ] {
            assert_eq!(slug_of(name), slug, "{name}");
        }
    }

    #[test]
    fn a_project_is_named_by_public_id_uuid_or_slug() {
        let projects = [project(7, "Web App"), project(8, "API"), project(9, "api")];
        let uuid = projects[1].id.to_string();
        let cases = [
            ("7", Ok(7)),
            (uuid.as_str(), Ok(8)),
            ("web-app", Ok(7)),
            ("Web App", Ok(7)),
            ("api", Err("several projects")),
            ("nope", Err("not found")),
            ("70", Err("not found")),
        ];
        for (given, want) in cases {
            match (find_project(&projects, given), want) {
                (Ok(p), Ok(id)) => assert_eq!(p.public_id, id, "{given}"),
                (Err(e), Err(text)) => assert!(e.contains(text), "{given}: {e}"),
                (got, want) => panic!("{given}: got {got:?}, want {want:?}"),
            }
        }
    }
}
