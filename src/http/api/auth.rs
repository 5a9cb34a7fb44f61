//! `/api/v1/auth`: registration, login, logout, and who I am.

use super::caller::{Caller, SESSION_COOKIE};
use super::orgs::my_orgs;
use crate::error::Error;
use crate::http::State;
use crate::http::error::{ApiError, Problem};
use crate::services::{GetUser, Login, Logout, Register};
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use std::time::Instant;

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
    let account = email.trim().to_lowercase();
    let address = req
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    if let Some(wait) = state
        .dashboard
        .logins
        .blocked(&account, &address, Instant::now())
    {
        return Err(ApiError(
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_logins",
                "too many failed logins; wait before trying again",
            )
            .retry_after(wait),
        ));
    }
    let new = match state.users.send(Login { email, password }).await? {
        Ok(new) => new,
        Err(e @ Error::InvalidCredentials) => {
            state
                .dashboard
                .logins
                .failed(&account, &address, Instant::now());
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    state.dashboard.logins.succeeded(&account);
    let lifetime = (new.session.expires_at - chrono::Utc::now()).num_seconds();
    let cookie = Cookie::build(SESSION_COOKIE, new.token.expose().to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.dashboard.secure_cookies)
        .max_age(time::Duration::seconds(lifetime.max(0)))
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(json!({
        "token": new.token.expose(),
        "user_id": new.session.user_id,
        "expires_at": new.session.expires_at,
    })))
}

/// Ends the caller's session and clears the cookie.
pub async fn logout(state: web::Data<State>, caller: Caller) -> Result<HttpResponse, ApiError> {
    state
        .users
        .send(Logout {
            token: caller.token,
        })
        .await??;
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
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
