//! The pages' handlers, one file per area: each extracts, calls the
//! application layer ([`crate::app`]) or sends a message, and renders a
//! view model. What they share is here: the reader of a page (logged in,
//! or sent to log in), the redirect after a form, the origin check, and
//! the error page.
//!
//! - [`auth`]: log in and out, register.
//! - [`projects`]: my projects, and a new one with its first key.
//! - [`issues`]: a project's issues, one issue, and triage.
//! - [`keys`]: a project's keys (admins).
//! - [`alerts`]: a project's alert channels, rules and history.
//! - [`orgs`]: a new organization, and its members (admins).
//! - [`tokens`]: an organization's tokens for sentry-cli (admins).
//!
//! Sessions are the dashboard API's cookie. Forms post
//! `application/x-www-form-urlencoded`, so instead of the API's JSON rule
//! every POST here must come from this origin ([`same_origin`]); with the
//! cookie's SameSite=Lax, another site can neither read a page nor submit
//! a form with the user's session.

use super::pages::{ErrorPage, Layout, Nav, ProjectHeader};
use super::render;
use crate::app::{Caller, State, session};
use crate::domain::Project;
use crate::domain::access::Action;
use crate::error::Error;
use crate::http::error::Problem;
use crate::services::{GetOrg, GetUser};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

/// Unwraps a page's reader or returns the redirect or refusal. Defined
/// before the modules below, so that they can use it.
macro_rules! reader {
    ($req:expr, $state:expr) => {
        match Reader::of(&$req, &$state).await {
            Ok(reader) => reader,
            Err(response) => return response,
        }
    };
}

pub mod alerts;
pub mod auth;
pub mod issues;
pub mod keys;
pub mod orgs;
pub mod projects;
pub mod settings;
pub mod tokens;

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

/// The refusal of a form posted from another site.
fn cross_site(action: &'static str) -> HttpResponse {
    error_page(Error::Forbidden { action }, None)
}

/// `page` with `problem`'s status, and its `Retry-After` when it asks the
/// reader to wait (overload, an outage), as the API answers.
fn render_problem(problem: &Problem, page: &impl askama::Template) -> HttpResponse {
    let mut response = render(problem.status, page);
    if let Some(secs) = problem.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    response
}

/// A failure as a page, with the status and wait the API would answer
/// (one mapping: [`Problem`]'s). Outsiders and missing things get the one
/// 404 page; what went wrong inside Mesher stays in its log.
fn error_page(e: Error, nav: Option<Nav>) -> HttpResponse {
    if let Error::NotFound { .. } = e {
        return render(StatusCode::NOT_FOUND, &ErrorPage::not_found(nav));
    }
    let problem = Problem::from(e);
    let heading = match problem.status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => "Try again in a moment",
        s if s.is_client_error() => "That did not work",
        _ => "Something went wrong",
    };
    let message = if problem.status.is_server_error() && problem.retry_after.is_none() {
        "The error is in Mesher's log.".to_owned()
    } else {
        problem.message.clone()
    };
    let page = ErrorPage {
        layout: Layout::new(heading, nav),
        status: problem.status.as_u16(),
        heading: heading.into(),
        message,
    };
    render_problem(&problem, &page)
}

/// `page` with `status`, or the error page.
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

/// The logged-in reader of a page, or the response that sends them to log
/// in (or refuses a cross-origin post).
struct Reader {
    /// Whose session it is, for the access checks.
    caller: Caller,
    /// Who is shown as logged in.
    nav: Nav,
}

impl Reader {
    async fn of(req: &HttpRequest, state: &State) -> Result<Reader, HttpResponse> {
        if req.method() == Method::POST && !same_origin(req) {
            return Err(cross_site("post this form from another site"));
        }
        let caller = session::caller(req, state).await.map_err(|e| match e {
            Error::Unauthenticated | Error::SessionExpired => see_other("/login"),
            other => error_page(other, None),
        })?;
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
        let (project, role) = self.caller.project(state, id, action).await?;
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

/// `GET /`: the projects, or the login page.
pub async fn home(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    match session::caller(&req, &state).await {
        Ok(_) => see_other("/projects"),
        Err(Error::Unauthenticated | Error::SessionExpired) => see_other("/login"),
        Err(e) => error_page(e, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use std::time::Duration;

    #[actix_web::test]
    async fn an_error_page_has_the_status_and_wait_the_api_answers() {
        let cases = [
            // error, status, Retry-After, shown
            (
                Error::NotFound { entity: "issue" },
                404,
                None,
                "Page not found",
            ),
            (Error::Forbidden { action: "x" }, 403, None, "Not allowed"),
            (
                Error::invalid("name", "bad"),
                400,
                None,
                "invalid name: bad",
            ),
            (
                Error::Overloaded {
                    retry_after: Duration::from_millis(1500),
                },
                429,
                Some("2"),
                "Try again in a moment",
            ),
            (
                Error::from(actix::MailboxError::Closed),
                503,
                Some("5"),
                "Try again in a moment",
            ),
            (
                Error::unavailable("down", std::io::Error::other("refused")),
                503,
                Some("5"),
                "database unavailable",
            ),
            (
                Error::internal("secret detail"),
                500,
                None,
                "The error is in Mesher&#39;s log.",
            ),
        ];
        for (error, status, wait, shown) in cases {
            let text = error.to_string();
            let res = error_page(error, None);
            assert_eq!(res.status().as_u16(), status, "{text}");
            let waits = res.headers().get(header::RETRY_AFTER);
            assert_eq!(waits.map(|v| v.to_str().unwrap()), wait, "{text}");
            let body = to_bytes(res.into_body()).await.unwrap();
            let body = std::str::from_utf8(&body).unwrap();
            assert!(body.contains(shown), "{text}: {body}");
            assert!(!body.contains("secret detail"), "{text}");
        }
    }
}
