//! `users`. The password hash is read only by [`credentials_by_email`] and
//! never leaves this layer inside a [`User`].

use super::Pool;
use crate::domain::{Email, Name, User, new_id};
use crate::error::{Error, Result};
use tokio_postgres::Row;
use uuid::Uuid;

fn from_row(row: &Row) -> User {
    User {
        id: row.get("id"),
        email: row.get("email"),
        display_name: row.get("display_name"),
        created_at: row.get("created_at"),
    }
}

/// `AlreadyExists { "user" }` when the email is taken in any letter case.
pub async fn insert(
    pool: &Pool,
    email: &Email,
    password_hash: &str,
    display_name: &Name,
) -> Result<User> {
    let row = pool
        .get()
        .await?
        .query_one(
            "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, $2, $3, $4)
             RETURNING id, email, display_name, created_at",
            &[
                &new_id(),
                &email.as_str(),
                &password_hash,
                &display_name.as_str(),
            ],
        )
        .await?;
    Ok(from_row(&row))
}

/// The user and bcrypt hash for a login attempt, if the email is known.
pub async fn credentials_by_email(pool: &Pool, email: &Email) -> Result<Option<(User, String)>> {
    let row = pool
        .get()
        .await?
        .query_opt(
            "SELECT id, email, display_name, created_at, password_hash FROM users WHERE lower(email) = $1",
            &[&email.as_str()],
        )
        .await?;
    Ok(row.map(|r| (from_row(&r), r.get("password_hash"))))
}

pub async fn get(pool: &Pool, id: Uuid) -> Result<User> {
    pool.get()
        .await?
        .query_opt(
            "SELECT id, email, display_name, created_at FROM users WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or(Error::NotFound { entity: "user" })
}
