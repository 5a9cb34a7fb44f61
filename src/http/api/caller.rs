//! The API's session extractor: [`Caller`] as a handler argument, made by
//! the application layer's [`session::caller`].
//!
//! A browser sends the session cookie with any request to Mesher,
//! including a form another site posts; so a state-changing request
//! authenticated by the cookie alone must carry a JSON content type, which
//! a cross-site form cannot set without a CORS preflight that Mesher never
//! grants. (SameSite=Lax on the cookie stops most of these already; this
//! covers browsers and same-site subdomains it does not.)

use crate::app::{Caller, State, session};
use crate::error::Error;
use crate::http::error::{ApiError, Problem};
use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{FromRequest, HttpRequest, web};
use std::future::Future;
use std::pin::Pin;

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The caller of `req`: its session checked. 401 without a valid one; 415
/// for a state-changing request authenticated by the cookie alone without
/// a JSON content type (see the module documentation).
async fn caller_of(req: &HttpRequest) -> Result<Caller, ApiError> {
    let cookie_only = session::presented(req).is_some_and(|p| p.cookie_only);
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if cookie_only && !safe && !is_json(req) {
        return Err(ApiError(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "json_required",
            "a request authenticated by the session cookie must send Content-Type: application/json",
        )));
    }
    let state = req
        .app_data::<web::Data<State>>()
        .ok_or_else(|| Error::internal("no state"))?;
    Ok(session::caller(req, state).await?)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Caller, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { caller_of(&req).await })
    }
}
