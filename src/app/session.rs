//! Sessions: the token a request presents, checked into a [`Caller`];
//! logging in (limited by the [`LoginLimiter`](super::limiter::LoginLimiter))
//! and out; registering. HTTP-shaped where it must be: a token comes in a
//! header or a cookie, and a login sets the cookie.
//!
//! A session token comes as `Authorization: Bearer <token>` (the scheme in
//! any letter case, parsed by the one [`bearer_token`]) or in the
//! [`SESSION_COOKIE`]. Which one it came in matters to the surfaces: a
//! browser sends the cookie with any request to Mesher, including a form
//! another site posts, so each surface guards state-changing requests
//! authenticated by the cookie alone (the API by content type, the pages
//! by origin).

use super::{Caller, State};
use crate::domain::{NewSession, User};
use crate::error::Error;
use crate::http::sentry_auth::bearer_token;
use crate::services::{Login, Logout, Register, ValidateSession};
use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The cookie a login sets.
pub const SESSION_COOKIE: &str = "mesher_session";

/// A session token as a request presents it.
pub struct Presented {
    /// The token, unchecked.
    pub token: String,
    /// Whether it came in the cookie, with no `Authorization` header: what
    /// a cross-site form can make a browser send.
    pub cookie_only: bool,
}

/// The session token `req` presents, if any: the bearer header first,
/// then the cookie.
pub fn presented(req: &HttpRequest) -> Option<Presented> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match bearer {
        Some(token) => Some(Presented {
            token: token.to_owned(),
            cookie_only: false,
        }),
        None => req.cookie(SESSION_COOKIE).map(|c| Presented {
            token: c.value().to_owned(),
            cookie_only: true,
        }),
    }
}

/// The caller of `req`, its session checked: `Unauthenticated` without a
/// token or with one Mesher does not know, `SessionExpired` for an expired
/// one, and whatever else the user service answers (an outage).
pub async fn caller(req: &HttpRequest, state: &State) -> Result<Caller, Error> {
    let Presented { token, .. } = presented(req).ok_or(Error::Unauthenticated)?;
    let session = state
        .users
        .send(ValidateSession {
            token: token.clone(),
        })
        .await?
        .map_err(|e| match e {
            Error::InvalidInput { .. } | Error::InvalidCredentials => Error::Unauthenticated,
            other => other,
        })?;
    Ok(Caller {
        user_id: session.user_id,
        token,
    })
}

/// Why [`log_in`] opened no session.
#[derive(Debug)]
pub enum LoginRefused {
    /// Too many failed logins lately; try again after this long.
    Limited(Duration),
    /// The login itself failed (wrong credentials, bad input, overload).
    Failed(Error),
}

/// Logs in, within the failed-login limits, and makes the session cookie.
/// `peer` is the client's address as the socket saw it, so behind a
/// reverse proxy every client shares the proxy's.
pub async fn log_in(
    state: &State,
    peer: Option<IpAddr>,
    email: String,
    password: String,
) -> Result<(NewSession, Cookie<'static>), LoginRefused> {
    let account = email.trim().to_lowercase();
    let address = peer.map(|ip| ip.to_string()).unwrap_or_default();
    let logins = &state.dashboard.logins;
    let attempt = logins
        .reserve(&account, &address, Instant::now())
        .map_err(LoginRefused::Limited)?;
    let new = match state.users.send(Login { email, password }).await {
        Ok(Ok(new)) => new,
        Ok(Err(e @ Error::InvalidCredentials)) => {
            logins.failed(attempt);
            return Err(LoginRefused::Failed(e));
        }
        Ok(Err(e)) => {
            logins.give_back(attempt);
            return Err(LoginRefused::Failed(e));
        }
        Err(e) => {
            logins.give_back(attempt);
            return Err(LoginRefused::Failed(e.into()));
        }
    };
    logins.succeeded(attempt);
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

/// Ends the caller's session; the surface clears the cookie with
/// [`removal_cookie`].
pub async fn log_out(state: &State, caller: Caller) -> Result<(), Error> {
    state
        .users
        .send(Logout {
            token: caller.token,
        })
        .await?
}

/// The cookie that ends the session cookie in the browser.
pub fn removal_cookie() -> Cookie<'static> {
    let mut gone = Cookie::build(SESSION_COOKIE, "").path("/").finish();
    gone.make_removal();
    gone
}

/// Why [`register`] registered nobody.
#[derive(Debug)]
pub enum RegisterRefused {
    /// Registration is switched off here (`MESHER_ALLOW_REGISTRATION`).
    Closed,
    /// The registration itself failed (bad input, a taken email,
    /// overload).
    Failed(Error),
}

/// Creates an account, if registration is open.
pub async fn register(
    state: &State,
    email: String,
    password: String,
    display_name: String,
) -> Result<User, RegisterRefused> {
    if !state.dashboard.allow_registration {
        return Err(RegisterRefused::Closed);
    }
    let registered = state
        .users
        .send(Register {
            email,
            password,
            display_name,
        })
        .await;
    match registered {
        Ok(Ok(user)) => Ok(user),
        Ok(Err(e)) => Err(RegisterRefused::Failed(e)),
        Err(e) => Err(RegisterRefused::Failed(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// An `Authorization` header, a session cookie, and the token presented
    /// with whether it came in the cookie only.
    type Case = (
        Option<&'static str>,
        Option<&'static str>,
        Option<(&'static str, bool)>,
    );

    #[test]
    fn the_token_comes_from_a_bearer_header_in_any_case_else_the_cookie() {
        let cases: [Case; 8] = [
            // Authorization, cookie, presented (token, cookie only)
            (Some("Bearer abc"), None, Some(("abc", false))),
            (Some("bearer abc"), None, Some(("abc", false))),
            (Some("BEARER  abc "), None, Some(("abc", false))),
            (Some("Bearer abc"), Some("xyz"), Some(("abc", false))),
            (Some("Basic abc"), Some("xyz"), Some(("xyz", true))),
            (Some("Bearer"), Some("xyz"), Some(("xyz", true))),
            (None, Some("xyz"), Some(("xyz", true))),
            (Some("Bearerabc"), None, None),
        ];
        for (authorization, cookie, expected) in cases {
            let mut req = TestRequest::default();
            if let Some(value) = authorization {
                req = req.insert_header((header::AUTHORIZATION, value));
            }
            if let Some(value) = cookie {
                req = req.cookie(Cookie::new(SESSION_COOKIE, value));
            }
            let got = presented(&req.to_http_request());
            assert_eq!(
                got.as_ref().map(|p| (p.token.as_str(), p.cookie_only)),
                expected,
                "{authorization:?}, {cookie:?}"
            );
        }
    }
}
