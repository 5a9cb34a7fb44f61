//! What a request that fails gets: the one place errors become statuses.
//!
//! Sentry's SDKs read `{"detail": "..."}` and the rate-limit headers; the
//! `/api/v1` routes answer `{"error": {"code": "...", "message": "..."}}`.
//! Both come from one [`Problem`], built from [`crate::Error`] or from the
//! wire formats' errors.

use super::body::BodyError;
use super::envelope::EnvelopeError;
use super::sentry_auth::AuthError;
use crate::domain::rate_limit::LimitScope;
use crate::error::Error;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use std::fmt;
use std::time::Duration;

/// How long a client is asked to wait when the database is unreachable or
/// a service is not answering.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A failed request: its status, a machine-readable code, a message for
/// people, and, for 429 and 503, how long to wait before trying again.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// What a 429 tells Sentry's SDKs after the seconds in
    /// `X-Sentry-Rate-Limits` (`categories:scope[:reason]`): every
    /// category of the whole project unless said otherwise.
    pub sentry_limit: &'static str,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            message: message.into(),
            retry_after: None,
            sentry_limit: ":project",
        }
    }

    pub(crate) fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The value of `Retry-After`: whole seconds, at least one. The web
    /// pages send it too.
    pub(crate) fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .map(|s| s.max(1))
    }

    fn response(&self, body: serde_json::Value, sentry: bool) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after_secs() {
            response.insert_header((header::RETRY_AFTER, secs));
            if sentry && self.status == StatusCode::TOO_MANY_REQUESTS {
                // SDKs stop sending to this project for that long.
                response.insert_header((
                    "X-Sentry-Rate-Limits",
                    format!("{secs}:{}", self.sentry_limit),
                ));
            }
        }
        response.json(body)
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        match e {
            Error::NotFound { .. } => Problem::new(S::NOT_FOUND, "not_found", e.to_string()),
            Error::AlreadyExists { .. } => {
                Problem::new(S::CONFLICT, "already_exists", e.to_string())
            }
            Error::InvalidInput { .. } => {
                Problem::new(S::BAD_REQUEST, "invalid_input", e.to_string())
            }
            Error::InvalidSearch { .. } => {
                Problem::new(S::BAD_REQUEST, "invalid_search", e.to_string())
            }
            Error::InvalidCredentials => {
                Problem::new(S::UNAUTHORIZED, "invalid_credentials", e.to_string())
            }
            Error::SessionExpired => {
                Problem::new(S::UNAUTHORIZED, "session_expired", e.to_string())
            }
            Error::Unauthenticated => Problem::new(
                S::UNAUTHORIZED,
                "unauthenticated",
                "log in first: send the session token as a Bearer token or cookie",
            ),
            // Storage cannot take more for now (a full buffer, a full
            // spool, no memory left for bodies): not a rate limit of the
            // client's, which has its own code.
            Error::Overloaded { retry_after } => Problem::new(
                S::TOO_MANY_REQUESTS,
                "overloaded",
                "too many requests; retry later",
            )
            .retry_after(retry_after),
            // The client's own limit: SDKs stop sending errors (`error`,
            // and `default` for older ones) for that long.
            Error::RateLimited { retry_after, scope } => Problem {
                sentry_limit: match scope {
                    LimitScope::Project => "error;default:project:rate_limited",
                    LimitScope::Key => "error;default:key:rate_limited",
                },
                ..Problem::new(S::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
                    .retry_after(retry_after)
            },
            Error::Forbidden { .. } => Problem::new(S::FORBIDDEN, "forbidden", e.to_string()),
            Error::Conflict { .. } => Problem::new(S::CONFLICT, "conflict", e.to_string()),
            Error::ShuttingDown => {
                Problem::new(S::SERVICE_UNAVAILABLE, "shutting_down", e.to_string())
                    .retry_after(UNAVAILABLE_RETRY_AFTER)
            }
            Error::DatabaseUnavailable { .. } => {
                log::warn!("answering 503: {}", e.report());
                Problem::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "database unavailable",
                )
                .retry_after(UNAVAILABLE_RETRY_AFTER)
            }
            Error::ServiceUnavailable { .. } => {
                log::warn!("answering 503: {}", e.report());
                Problem::new(S::SERVICE_UNAVAILABLE, "unavailable", e.to_string())
                    .retry_after(UNAVAILABLE_RETRY_AFTER)
            }
            // Details stay in the log: they may name tables or values.
            Error::Database(_) | Error::Internal { .. } | Error::Setup { .. } => {
                log::error!("answering 500: {}", e.report());
                Problem::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

/// An actor that is gone: a service unavailable, as [`Error`] maps it.
impl From<actix::MailboxError> for Problem {
    fn from(e: actix::MailboxError) -> Self {
        Error::from(e).into()
    }
}

impl From<BodyError> for Problem {
    fn from(e: BodyError) -> Self {
        let status = match e {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
        };
        Problem::new(status, "invalid_body", e.to_string())
    }
}

impl From<EnvelopeError> for Problem {
    fn from(e: EnvelopeError) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid_envelope", e.to_string())
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            e.to_string(),
        )
    }
}

/// A [`Problem`] in the shape Sentry's SDKs read: `{"detail": "..."}`.
#[derive(Debug)]
pub struct SentryError(pub Problem);

impl<E: Into<Problem>> From<E> for SentryError {
    fn from(e: E) -> Self {
        SentryError(e.into())
    }
}

impl fmt::Display for SentryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl ResponseError for SentryError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        self.0.response(json!({ "detail": self.0.message }), true)
    }
}

/// A [`Problem`] in the shape of the `/api/v1` routes:
/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError(pub Problem);

impl<E: Into<Problem>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        let body = json!({ "error": { "code": self.0.code, "message": self.0.message } });
        self.0.response(body, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_gets_the_status_a_client_can_act_on() {
        use StatusCode as S;
        let cases = [
            (Error::NotFound { entity: "project" }, S::NOT_FOUND),
            (Error::AlreadyExists { entity: "user" }, S::CONFLICT),
            (Error::invalid("level", "bad"), S::BAD_REQUEST),
            (Error::InvalidCredentials, S::UNAUTHORIZED),
            (Error::SessionExpired, S::UNAUTHORIZED),
            (Error::Unauthenticated, S::UNAUTHORIZED),
            (
                Error::Overloaded {
                    retry_after: Duration::from_millis(1500),
                },
                S::TOO_MANY_REQUESTS,
            ),
            (Error::ShuttingDown, S::SERVICE_UNAVAILABLE),
            (
                Error::unavailable("down", std::io::Error::other("refused")),
                S::SERVICE_UNAVAILABLE,
            ),
            (
                Error::from(actix::MailboxError::Closed),
                S::SERVICE_UNAVAILABLE,
            ),
            (Error::internal("bug"), S::INTERNAL_SERVER_ERROR),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            let problem = Problem::from(error);
            assert_eq!(problem.status, status, "{text}");
            // Whoever is told to wait is told how long.
            let waits = [S::TOO_MANY_REQUESTS, S::SERVICE_UNAVAILABLE].contains(&status);
            assert_eq!(problem.retry_after.is_some(), waits, "{text}");
        }
    }

    #[test]
    fn a_rate_limit_names_its_categories_its_scope_and_the_reason_for_the_sdks() {
        let table = [
            (LimitScope::Project, "13:error;default:project:rate_limited"),
            (LimitScope::Key, "13:error;default:key:rate_limited"),
        ];
        for (scope, header) in table {
            let p = Problem::from(Error::RateLimited {
                retry_after: Duration::from_millis(12_100),
                scope,
            });
            assert_eq!(
                (p.status, p.code),
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            );
            let r = SentryError(p).error_response();
            assert_eq!(r.headers().get("retry-after").unwrap(), "13");
            assert_eq!(r.headers().get("x-sentry-rate-limits").unwrap(), header);
        }
    }

    #[test]
    fn waits_are_whole_seconds_rounded_up() {
        let p = Problem::from(Error::Overloaded {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(p.retry_after_secs(), Some(2));
        let r = SentryError(p).error_response();
        assert_eq!(r.headers().get("retry-after").unwrap(), "2");
        assert_eq!(
            r.headers().get("x-sentry-rate-limits").unwrap(),
            "2::project"
        );
    }
}
