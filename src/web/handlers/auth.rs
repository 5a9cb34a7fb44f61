//! Logging in and out, and registering: the API's flows
//! ([`crate::app::session`]), with the same limits and the same cookie.

use super::{Reader, cross_site, render_problem, same_origin, see_other};
use crate::app::State;
use crate::app::session::{self, LoginRefused, RegisterRefused};
use crate::error::Error;
use crate::http::error::Problem;
use crate::web::pages::{Layout, LoginPage, RegisterPage};
use crate::web::render;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

/// `GET /login`.
pub async fn login_page(state: web::Data<State>) -> HttpResponse {
    let page = LoginPage {
        layout: Layout::new("Log in", None),
        email: String::new(),
        error: None,
        registration_open: state.dashboard.allow_registration,
    };
    render(StatusCode::OK, &page)
}

/// `GET /register`.
pub async fn register_page(state: web::Data<State>) -> HttpResponse {
    let page = RegisterPage {
        layout: Layout::new("Create an account", None),
        email: String::new(),
        display_name: String::new(),
        error: None,
        registration_open: state.dashboard.allow_registration,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

/// A refused login or registration as its form shows it: the status (and
/// wait) the API would answer, and a message for people.
fn refusal(e: Error) -> (Problem, String) {
    let message = match &e {
        Error::InvalidCredentials => "Wrong email or password.".to_owned(),
        Error::InvalidInput { .. } | Error::AlreadyExists { .. } => e.to_string(),
        _ => "Try again in a moment.".to_owned(),
    };
    (Problem::from(e), message)
}

/// Logs in as the API does (same limits, same cookie), then goes to the
/// projects; or the refusal for the form.
async fn log_in(
    req: &HttpRequest,
    state: &State,
    email: String,
    password: String,
) -> Result<HttpResponse, (Problem, String)> {
    let peer = req.peer_addr().map(|a| a.ip());
    match session::log_in(state, peer, email, password).await {
        Ok((_, cookie)) => {
            let mut response = see_other("/projects");
            response
                .add_cookie(&cookie)
                .map_err(|e| refusal(Error::internal_from("session cookie", e)))?;
            Ok(response)
        }
        Err(LoginRefused::Limited(wait)) => Err((
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_logins",
                "too many failed logins",
            )
            .retry_after(wait),
            "Too many failed logins; wait a few minutes before trying again.".into(),
        )),
        Err(LoginRefused::Failed(e)) => Err(refusal(e)),
    }
}

/// `POST /login`.
pub async fn login(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<LoginForm>,
) -> HttpResponse {
    if !same_origin(&req) {
        return cross_site("log in from another site");
    }
    let LoginForm { email, password } = form.into_inner();
    match log_in(&req, &state, email.clone(), password).await {
        Ok(response) => response,
        Err((problem, message)) => render_problem(
            &problem,
            &LoginPage {
                layout: Layout::new("Log in", None),
                email,
                error: Some(message),
                registration_open: state.dashboard.allow_registration,
            },
        ),
    }
}

#[derive(Deserialize)]
pub struct RegisterForm {
    email: String,
    display_name: String,
    password: String,
}

/// `POST /register`: the account, then a session.
pub async fn register(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<RegisterForm>,
) -> HttpResponse {
    if !same_origin(&req) {
        return cross_site("register from another site");
    }
    let RegisterForm {
        email,
        display_name,
        password,
    } = form.into_inner();
    let registered = session::register(
        &state,
        email.clone(),
        password.clone(),
        display_name.clone(),
    )
    .await;
    let refused = match registered {
        Ok(_) => match log_in(&req, &state, email.clone(), password).await {
            Ok(response) => return response,
            Err(refused) => refused,
        },
        Err(RegisterRefused::Closed) => (
            Problem::new(StatusCode::FORBIDDEN, "registration_closed", "closed"),
            "Registration is switched off here.".into(),
        ),
        Err(RegisterRefused::Failed(e)) => refusal(e),
    };
    let (problem, message) = refused;
    render_problem(
        &problem,
        &RegisterPage {
            layout: Layout::new("Create an account", None),
            email,
            display_name,
            error: Some(message),
            registration_open: state.dashboard.allow_registration,
        },
    )
}

/// `POST /logout`.
pub async fn logout(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let reader = reader!(req, state);
    // Logged out or not, the cookie goes: the reader asked to leave.
    if let Err(e) = session::log_out(&state, reader.caller).await {
        log::warn!("logging out failed: {}", e.report());
    }
    let mut response = see_other("/login");
    let _ = response.add_cookie(&session::removal_cookie());
    response
}
