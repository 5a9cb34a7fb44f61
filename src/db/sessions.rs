//! `sessions`: looked up by the SHA-256 of the token; the token itself is
//! never stored.

use super::Pool;
use crate::domain::{Session, SessionToken};
use crate::error::{Error, Result};
use std::time::Duration;
use uuid::Uuid;

/// Starts a session for `user_id` lasting `ttl`, timed by the database
/// clock (the same clock [`validate`] compares against).
pub async fn insert(
    pool: &Pool,
    token: &SessionToken,
    user_id: Uuid,
    ttl: Duration,
) -> Result<Session> {
    let ttl_secs = ttl.as_secs_f64();
    let row = pool
        .get()
        .await?
        .query_one(
            "INSERT INTO sessions (token_hash, user_id, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3))
             RETURNING user_id, created_at, expires_at",
            &[&token.hash(), &user_id, &ttl_secs],
        )
        .await?;
    Ok(Session {
        user_id: row.get(0),
        created_at: row.get(1),
        expires_at: row.get(2),
    })
}

/// The live session for `token`: `InvalidCredentials` when unknown (never
/// issued, or logged out), `SessionExpired` once past its expiry.
pub async fn validate(pool: &Pool, token: &SessionToken) -> Result<Session> {
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT user_id, created_at, expires_at, expires_at <= now() AS expired
             FROM sessions WHERE token_hash = $1",
            &[&token.hash()],
        )
        .await?
        .ok_or(Error::InvalidCredentials)?;
    if row.get::<_, bool>("expired") {
        return Err(Error::SessionExpired);
    }
    Ok(Session {
        user_id: row.get(0),
        created_at: row.get(1),
        expires_at: row.get(2),
    })
}

/// Ends a session. Returns whether one was there; logging out twice is not
/// an error.
pub async fn delete(pool: &Pool, token: &SessionToken) -> Result<bool> {
    let n = pool
        .get()
        .await?
        .execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&token.hash()],
        )
        .await?;
    Ok(n > 0)
}

/// Deletes the sessions that have expired (a logged-out one is deleted at
/// once); returns how many. Through `sessions_expires_idx`.
pub async fn delete_expired(pool: &Pool) -> Result<u64> {
    Ok(pool
        .get()
        .await?
        .execute("DELETE FROM sessions WHERE expires_at <= now()", &[])
        .await?)
}
