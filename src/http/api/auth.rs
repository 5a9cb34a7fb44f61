//! `/api/v1/auth`: registration, login, logout, and who I am.

use crate::app::session::{self, LoginRefused, RegisterRefused};
use crate::app::{Caller, State, orgs};
use crate::http::error::{ApiError, Problem};
use crate::services::GetUser;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

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
    let Registration {
        email,
        password,
        display_name,
    } = body.into_inner();
    match session::register(&state, email, password, display_name).await {
        Ok(user) => Ok(HttpResponse::Created().json(user)),
        Err(RegisterRefused::Closed) => Err(ApiError(Problem::new(
            StatusCode::FORBIDDEN,
            "registration_closed",
            "registration is switched off here; ask an administrator for an account",
        ))),
        Err(RegisterRefused::Failed(e)) => Err(e.into()),
    }
}

/// Logs in: the token in the body and as an HttpOnly cookie. Failures are
/// limited per account and per client address (see
/// [`crate::app::limiter`]).
pub async fn login(
    req: HttpRequest,
    state: web::Data<State>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let Credentials { email, password } = body.into_inner();
    let peer = req.peer_addr().map(|a| a.ip());
    let (new, cookie) = session::log_in(&state, peer, email, password)
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

/// Ends the caller's session and clears the cookie.
pub async fn logout(state: web::Data<State>, caller: Caller) -> Result<HttpResponse, ApiError> {
    session::log_out(&state, caller).await?;
    Ok(HttpResponse::NoContent()
        .cookie(session::removal_cookie())
        .finish())
}

/// The caller and the organizations they belong to, with their roles.
pub async fn me(state: web::Data<State>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = state
        .users
        .send(GetUser {
            id: caller.user_id.to_string(),
        })
        .await??;
    let organizations = orgs::mine(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(json!({ "user": user, "organizations": organizations })))
}
