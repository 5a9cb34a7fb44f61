//! The one error type every Mesher operation returns.
//!
//! Callers match on the variant; the `Display` text is for logs and people.
//! Database errors are translated here, once, so no service has to know
//! SQLSTATE codes.
//!
//! What caused an error underneath (a PostgreSQL error, a panicked task) is
//! its [`source`](std::error::Error::source), never repeated in its own
//! text, so that whoever walks the chain sees each cause once. Logs print
//! the whole chain with [`Error::report`].

use std::fmt;
use tokio_postgres::error::SqlState;

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause kept inside an error: whatever failed underneath.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in Mesher, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The entity the caller named does not exist (or is not visible).
    #[error("{entity} not found")]
    NotFound { entity: &'static str },

    /// A uniqueness rule was violated, e.g. a taken slug or email.
    #[error("{entity} already exists")]
    AlreadyExists { entity: &'static str },

    /// A value failed validation; nothing was written.
    #[error("invalid {field}: {rule}")]
    InvalidInput {
        field: &'static str,
        rule: &'static str,
    },

    /// A search could not be read: `token`, starting at character
    /// `position` (from 1), breaks `rule`. Nothing was run.
    #[error("invalid search: {rule} (`{token}` at position {position})")]
    InvalidSearch {
        position: usize,
        token: String,
        rule: &'static str,
    },

    /// Wrong email/password, unknown session token or unknown/revoked API
    /// key. Deliberately does not say which part was wrong.
    #[error("invalid credentials")]
    InvalidCredentials,

    /// The session token was valid once but its expiry has passed.
    #[error("session expired")]
    SessionExpired,

    /// The request carries no session token, or one Mesher does not know
    /// (malformed, made up, or logged out): the caller must log in.
    #[error("not logged in")]
    Unauthenticated,

    /// PostgreSQL could not be reached, or no pooled connection became free
    /// in time. Retrying later may succeed.
    #[error("database unavailable: {reason}")]
    DatabaseUnavailable {
        reason: String,
        #[source]
        source: Option<Cause>,
    },

    /// PostgreSQL rejected a statement for a reason not mapped above. The
    /// text gives the SQLSTATE; the source, PostgreSQL's own message.
    #[error("database error{}", sqlstate(.0))]
    Database(#[source] tokio_postgres::Error),

    /// The caller belongs to the organization but their role does not
    /// allow `action` (outsiders get `NotFound` instead: no existence
    /// leak).
    #[error("your role does not allow you to {action}")]
    Forbidden { action: &'static str },

    /// The change would break a rule about the current state, e.g. remove
    /// an organization's last owner.
    #[error("{rule}")]
    Conflict { rule: &'static str },

    /// Mesher cannot take more right now (a project's writer is full); the
    /// caller may try again after `retry_after`. Nothing was accepted.
    #[error("overloaded; retry after {}s", retry_after.as_secs())]
    Overloaded { retry_after: std::time::Duration },

    /// A client sent more events than its project's, or its key's, rate
    /// limit allows; it may send again after `retry_after`. Nothing was
    /// accepted.
    #[error("the {}'s rate limit is reached; retry after {}s", scope.as_str(), retry_after.as_secs())]
    RateLimited {
        retry_after: std::time::Duration,
        /// Whose limit: SDKs are told, in `X-Sentry-Rate-Limits`.
        scope: crate::domain::rate_limit::LimitScope,
    },

    /// Mesher is shutting down and accepts nothing new.
    #[error("shutting down")]
    ShuttingDown,

    /// Mesher cannot run as it was set up, and an operator must act: a
    /// spool directory another process holds, or a spool holding another
    /// database's events. Never caused by a request; start-up stops with
    /// it, and the text says what to do.
    #[error("{reason}")]
    Setup { reason: String },
    /// A service inside Mesher did not answer: its actor has stopped (its
    /// mailbox is closed) or did not reply in time. Nothing was done;
    /// retrying later may succeed, as with [`Error::DatabaseUnavailable`].
    #[error("service unavailable")]
    ServiceUnavailable {
        #[source]
        source: actix::MailboxError,
    },

    /// A bug or a broken invariant inside Mesher (a panicked blocking task,
    /// a corrupt row). Never caused by user input.
    #[error("internal error: {reason}")]
    Internal {
        reason: String,
        #[source]
        source: Option<Cause>,
    },
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code()
        .map(|c| format!(" (SQLSTATE {})", c.code()))
        .unwrap_or_default()
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, rule: &'static str) -> Self {
        Error::InvalidInput { field, rule }
    }

    /// [`Error::Internal`] with nothing underneath.
    pub fn internal(reason: impl Into<String>) -> Self {
        Error::Internal {
            reason: reason.into(),
            source: None,
        }
    }

    /// [`Error::Internal`] caused by `source`.
    pub fn internal_from(reason: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Internal {
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// [`Error::DatabaseUnavailable`] caused by `source`.
    pub fn unavailable(reason: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::DatabaseUnavailable {
            reason: reason.into(),
            source: Some(source.into()),
        }
    }

    /// This error and its causes, for a log line: `{}` of it prints
    /// `error: cause: cause`, where `{}` of the error alone prints only the
    /// first.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

/// An error with the chain of its causes (see [`Error::report`]). A cause
/// whose text the one before already ends with is not repeated:
/// tokio-postgres, for one, prints its cause in its own text too.
pub struct Report<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !shown.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            shown = text;
            next = cause.source();
        }
        Ok(())
    }
}

/// Which entity a constraint protects, by the constraint names in
/// `schema.sql`. Unique violations become `AlreadyExists` for the entity the
/// constraint is on; foreign-key violations become `NotFound` for the entity
/// referenced.
fn entity_of_constraint(constraint: &str) -> &'static str {
    match constraint {
        "organizations_slug_key" => "organization",
        "users_email_lower_key" => "user",
        "org_memberships_user_id_org_id_key" => "membership",
        "api_keys_key_hash_key" => "api key",
        "issues_project_id_fingerprint_key" => "issue",
        c if c.ends_with("_org_id_fkey") => "organization",
        c if c.ends_with("_user_id_fkey") => "user",
        c if c.ends_with("_assigned_to_fkey") => "user",
        c if c.ends_with("_project_id_fkey") => "project",
        c if c.ends_with("_rule_id_fkey") => "alert rule",
        _ => "record",
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No server-side error: the connection broke or never opened.
            return Error::unavailable("no connection to PostgreSQL", e);
        };
        let entity = entity_of_constraint(db.constraint().unwrap_or(""));
        match *db.code() {
            SqlState::UNIQUE_VIOLATION => Error::AlreadyExists { entity },
            SqlState::FOREIGN_KEY_VIOLATION => Error::NotFound { entity },
            // Ids are parsed before any query; this catches text cast to a
            // uuid in SQL, and leaves other casts as database errors. The
            // code says "bad text for its type"; which type, the function
            // that refused it (uuid_in's parser) says. Not the message:
            // that is in the server's language.
            SqlState::INVALID_TEXT_REPRESENTATION if db.routine() == Some("string_to_uuid") => {
                Error::invalid("id", "must be a UUID")
            }
            SqlState::ADMIN_SHUTDOWN => Error::unavailable("PostgreSQL is shutting down", e),
            SqlState::CRASH_SHUTDOWN => {
                Error::unavailable("PostgreSQL is restarting after a crash", e)
            }
            SqlState::CANNOT_CONNECT_NOW => {
                Error::unavailable("PostgreSQL is not accepting connections yet", e)
            }
            SqlState::TOO_MANY_CONNECTIONS => {
                Error::unavailable("PostgreSQL has too many connections", e)
            }
            _ => Error::Database(e),
        }
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for Error {
    fn from(e: bb8::RunError<tokio_postgres::Error>) -> Self {
        match e {
            bb8::RunError::User(e) => e.into(),
            // The pool logs why its connections fail (see db::LogErrors);
            // the wait itself has no cause to keep.
            bb8::RunError::TimedOut => Error::DatabaseUnavailable {
                reason: "timed out waiting for a pooled connection".into(),
                source: None,
            },
        }
    }
}

/// An actor that is gone is a service unavailable, not a bug: it answers
/// 503 with a wait, wherever it is met.
impl From<actix::MailboxError> for Error {
    fn from(source: actix::MailboxError) -> Self {
        Error::ServiceUnavailable { source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: inner")]
    struct RepeatsItsCause(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn causes_are_sources_and_reports_show_each_once() {
        let e = Error::internal_from("blocking task failed", Inner);
        assert_eq!(e.to_string(), "internal error: blocking task failed");
        assert_eq!(e.source().unwrap().to_string(), "inner");
        assert_eq!(
            e.report().to_string(),
            "internal error: blocking task failed: inner"
        );
        // A cause that already printed its own cause is not followed by it
        // again.
        let e = Error::internal_from("wrapped", RepeatsItsCause(Inner));
        assert_eq!(
            e.report().to_string(),
            "internal error: wrapped: outer: inner"
        );
        assert_eq!(
            Error::internal("no cause").report().to_string(),
            "internal error: no cause"
        );
    }

    #[test]
    fn mailbox_errors_are_an_unavailable_service_with_their_cause() {
        let e = Error::from(actix::MailboxError::Closed);
        assert!(matches!(e, Error::ServiceUnavailable { .. }));
        assert_eq!(
            e.report().to_string(),
            "service unavailable: Mailbox has closed"
        );
    }
}
