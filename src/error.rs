//! The one error type every Mesher operation returns.
//!
//! Callers match on the variant; the `Display` text is for logs and people.
//! Database errors are translated here, once, so no service has to know
//! SQLSTATE codes.

use tokio_postgres::error::SqlState;

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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

    /// Wrong email/password, unknown session token or unknown/revoked API
    /// key. Deliberately does not say which part was wrong.
    #[error("invalid credentials")]
    InvalidCredentials,

    /// The session token was valid once but its expiry has passed.
    #[error("session expired")]
    SessionExpired,

    /// PostgreSQL could not be reached, or no pooled connection became free
    /// in time. Retrying later may succeed.
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(String),

    /// PostgreSQL rejected a statement for a reason not mapped above.
    #[error("database error: {0}")]
    Database(#[source] tokio_postgres::Error),

    /// A bug or a broken invariant inside Mesher (a panicked blocking task,
    /// an actor that is gone). Never caused by user input.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, rule: &'static str) -> Self {
        Error::InvalidInput { field, rule }
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
        c if c.ends_with("_project_id_fkey") => "project",
        c if c.ends_with("_rule_id_fkey") => "alert rule",
        _ => "record",
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(db) = e.as_db_error() else {
            // No server-side error: the connection broke or never opened.
            return Error::DatabaseUnavailable(e.to_string());
        };
        let entity = entity_of_constraint(db.constraint().unwrap_or(""));
        match *db.code() {
            SqlState::UNIQUE_VIOLATION => Error::AlreadyExists { entity },
            SqlState::FOREIGN_KEY_VIOLATION => Error::NotFound { entity },
            // Ids are parsed before any query; this catches text cast to a
            // uuid in SQL, and leaves other casts as database errors.
            SqlState::INVALID_TEXT_REPRESENTATION if db.message().contains("uuid") => {
                Error::invalid("id", "must be a UUID")
            }
            SqlState::ADMIN_SHUTDOWN
            | SqlState::CANNOT_CONNECT_NOW
            | SqlState::TOO_MANY_CONNECTIONS => {
                Error::DatabaseUnavailable(db.message().to_string())
            }
            _ => Error::Database(e),
        }
    }
}

impl From<bb8::RunError<tokio_postgres::Error>> for Error {
    fn from(e: bb8::RunError<tokio_postgres::Error>) -> Self {
        match e {
            bb8::RunError::User(e) => e.into(),
            bb8::RunError::TimedOut => {
                Error::DatabaseUnavailable("timed out waiting for a pooled connection".into())
            }
        }
    }
}

impl From<actix::MailboxError> for Error {
    fn from(e: actix::MailboxError) -> Self {
        Error::Internal(format!("actor unavailable: {e}"))
    }
}
