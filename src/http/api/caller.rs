//! Who is asking, and whether they may: the one session extractor and the
//! one access check of the dashboard (the JSON API here, the web pages
//! too).
//!
//! A session token comes as `Authorization: Bearer <token>` or in the
//! [`SESSION_COOKIE`]. A browser sends the cookie with any request to
//! Mesher, including a form another site posts; so a state-changing
//! request authenticated by the cookie alone must carry a JSON content
//! type, which a cross-site form cannot set without a CORS preflight that
//! Mesher never grants. (SameSite=Lax on the cookie stops most of these
//! already; this covers browsers and same-site subdomains it does not.)

use crate::domain::access::Action;
use crate::domain::{Project, Role};
use crate::error::Error;
use crate::http::State;
use crate::http::error::{ApiError, Problem};
use crate::services::{GetProject, GetRole, ValidateSession};
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// The cookie a login sets.
pub const SESSION_COOKIE: &str = "mesher_session";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    /// The token it came with, for logging out.
    pub token: String,
}

/// Where a request's session token is, if anywhere: the bearer header
/// first, then the cookie; and whether the cookie was the only one.
fn token_of(req: &HttpRequest) -> Option<(String, bool)> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_owned());
    match bearer {
        Some(token) => Some((token, false)),
        None => req
            .cookie(SESSION_COOKIE)
            .map(|c| (c.value().to_owned(), true)),
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn unauthenticated() -> ApiError {
    ApiError(Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "log in first: send the session token as a Bearer token or cookie",
    ))
}

impl Caller {
    /// The caller of `req`: its session checked. 401 without a valid one;
    /// 415 for a state-changing request authenticated by the cookie alone
    /// without a JSON content type (see the module documentation).
    pub async fn of(req: &HttpRequest) -> Result<Caller, ApiError> {
        let cookie_only = token_of(req).is_some_and(|(_, cookie_only)| cookie_only);
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if cookie_only && !safe && !is_json(req) {
            return Err(ApiError(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "json_required",
                "a request authenticated by the session cookie must send Content-Type: application/json",
            )));
        }
        Caller::session(req).await
    }

    /// The caller of `req` by its session alone, without the API's
    /// content-type rule: for the web pages, whose forms are guarded by an
    /// origin check instead. 401 without a valid session.
    pub async fn session(req: &HttpRequest) -> Result<Caller, ApiError> {
        let state = req
            .app_data::<web::Data<State>>()
            .ok_or_else(|| ApiError::from(Error::internal("no state")))?;
        let (token, _) = token_of(req).ok_or_else(unauthenticated)?;
        let session = state
            .users
            .send(ValidateSession {
                token: token.clone(),
            })
            .await?
            .map_err(|e| match e {
                Error::InvalidInput { .. } | Error::InvalidCredentials => unauthenticated(),
                other => other.into(),
            })?;
        Ok(Caller {
            user_id: session.user_id,
            token,
        })
    }

    /// The caller's role in `org_id` if it allows `action`. An outsider gets
    /// `NotFound { entity }`, exactly what a missing `entity` gets, so no
    /// one learns what exists outside their organizations; a member whose
    /// role falls short gets `Forbidden`.
    pub async fn require(
        &self,
        state: &State,
        org_id: Uuid,
        action: Action,
        entity: &'static str,
    ) -> Result<Role, Error> {
        let role = state
            .users
            .send(GetRole {
                user_id: self.user_id,
                org_id,
            })
            .await??
            .ok_or(Error::NotFound { entity })?;
        if !role.may(action) {
            return Err(Error::Forbidden {
                action: action.as_str(),
            });
        }
        Ok(role)
    }

    /// The project `project_id` names, if the caller may do `action` in its
    /// organization; `NotFound { "project" }` otherwise (see
    /// [`Caller::require`]).
    pub async fn project(
        &self,
        state: &State,
        project_id: &str,
        action: Action,
    ) -> Result<Project, Error> {
        // Only a UUID names a project here; the numeric public id is the
        // DSN's.
        let id: Uuid = project_id
            .parse()
            .map_err(|_| Error::invalid("project_id", "must be a UUID"))?;
        let project = state
            .projects
            .send(GetProject { id: id.to_string() })
            .await??;
        self.require(state, project.org_id, action, "project")
            .await?;
        Ok(project)
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Caller::of(&req).await })
    }
}
