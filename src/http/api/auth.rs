//! `/api/v1/auth`: registration, login, logout, and who I am.

use super::caller::{Caller, SESSION_COOKIE};
use super::orgs::my_orgs;
use crate::domain::NewSession;
use crate::error::Error;
use crate::http::State;
use crate::http::error::{ApiError, Problem};
use crate::services::{GetUser, Login, Logout, Register};
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Deserialize)]
pub struct Registration {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

#[derive(Deserialize)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

pub async fn register(
    state: web::Data<State>,
    body: web::Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    if !state.dashboard.allow_registration {
        return Err(ApiError(Problem::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "registration is switched off here; ask an administrator for an account",
        )));
    }
    let Registration {
        email,
        password,
        display_name,
    } = body.into_inner();
    let user = state
        .users
        .send(Register {
            email,
            password,
            display_name,
        })
        .await??;
    Ok(HttpResponse::Created().json(user))
}

/// Logs in: the token in the body and as an HttpOnly cookie. Failures are
/// limited per account and per client address (see
/// [`super::limiter::LoginLimiter`]); the address is the TCP peer's, so
/// behind a reverse proxy every client shares the proxy's.
pub async fn login(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { email, password } = body.into_inner();
    let (new, cookie) = open_session(&req, &state, email, password)
        .await
        .map_err(|refused| match refused {
            LoginRefused::Limited(wait) => ApiError(
                Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_logins",
                    "too many failed logins; wait before trying again",
                )
                .retry_after(wait),
            ),
            LoginRefused::Failed(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().cookie(cookie).json(json!({
        "token": new.token.expose(),
        "user_id": new.session.user_id,
        "expires_at": new.session.expires_at,
    })))
}

/// Why [`open_session`] opened none.
pub enum LoginRefused {
    /// Too many failed logins lately; try again after this long.
    Limited(Duration),
    /// The login itself failed (wrong credentials, bad input, overload).
    Failed(Error),
}

/// Logs in, applying the failed-login limits, and makes the session
/// cookie: what the API's and the web UI's login share.
pub async fn open_session(
    req: &HttpRequest,
    state: &State,
    email: String,
    password: String,
) -> Result<(NewSession, Cookie<'static>), LoginRefused> {
    let account = email.trim().to_lowercase();
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let logins = &state.dashboard.logins;
    if let Some(wait) = logins.blocked(&account, &address, Instant::now()) {
        return Err(LoginRefused::Limited(wait));
    }
    let new = match state.users.send(Login { email, password }).await {
        Ok(Ok(new)) => new,
        Ok(Err(e @ Error::InvalidCredentials)) => {
            logins.failed(&account, &address, Instant::now());
            return Err(LoginRefused::Failed(e));
        }
        Ok(Err(e)) => return Err(LoginRefused::Failed(e)),
        Err(e) => return Err(LoginRefused::Failed(e.into())),
    };
    logins.succeeded(&account);
    let lifetime = (new.session.expires_at - chrono::Utc::now()).num_seconds();
    let cookie = Cookie::build(SESSION_COOKIE, new.token.expose().to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.dashboard.secure_cookies)
        .max_age(time::Duration::seconds(lifetime.max(0)))
        .finish();
    Ok((new, cookie))
}

/// The cookie that ends the session cookie in the browser.
pub fn removal_cookie() -> Cookie<'static> {
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    gone
}

/// Ends the caller's session and clears the cookie.
pub async fn logout(state: web::Data<State>, caller: Caller) -> Result<HttpResponse, ApiError> {
    state
        .users
        .send(Logout {
            token: caller.token,
        })
        .await??;
    Ok(HttpResponse::NoContent().cookie(removal_cookie()).finish())
}

/// The caller and the organizations they belong to, with their roles.
pub async fn me(state: web::Data<State>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = state
        .users
        .send(GetUser {
            id: caller.user_id.to_string(),
        })
        .await??;
    let organizations = my_orgs(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": user, "organizations": organizations })))
}
