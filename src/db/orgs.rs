//! `organizations`.

use super::Pool;
use crate::domain::{Name, Organization, Slug, new_id};
use crate::error::{Error, Result};
use tokio_postgres::Row;
use uuid::Uuid;

pub(crate) fn from_row(row: &Row) -> Organization {
    Organization {
        id: row.get("id"),
        name: row.get("name"),
        slug: row.get("slug"),
        created_at: row.get("created_at"),
    }
}

pub async fn insert(pool: &Pool, name: &Name, slug: &Slug) -> Result<Organization> {
    let row = pool
        .get()
        .await?
        .query_one(
            "INSERT INTO organizations (id, name, slug) VALUES ($1, $2, $3)
             RETURNING id, name, slug, created_at",
            &[&new_id(), &name.as_str(), &slug.as_str()],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(pool: &Pool, id: Uuid) -> Result<Organization> {
    pool.get()
        .await?
        .query_opt(
            "SELECT id, name, slug, created_at FROM organizations WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or(Error::NotFound {
            entity: "organization",
        })
}

pub async fn get_by_slug(pool: &Pool, slug: &Slug) -> Result<Organization> {
    pool.get()
        .await?
        .query_opt(
            "SELECT id, name, slug, created_at FROM organizations WHERE slug = $1",
            &[&slug.as_str()],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or(Error::NotFound {
            entity: "organization",
        })
}

/// All organizations, oldest first.
pub async fn list(pool: &Pool) -> Result<Vec<Organization>> {
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT id, name, slug, created_at FROM organizations ORDER BY id",
            &[],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Creates an organization with `owner_id` as its owner, both or neither.
/// Errors: `AlreadyExists { "organization" }` (slug), `NotFound { "user" }`.
pub async fn insert_with_owner(
    pool: &Pool,
    name: &Name,
    slug: &Slug,
    owner_id: Uuid,
) -> Result<Organization> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "INSERT INTO organizations (id, name, slug) VALUES ($1, $2, $3)
             RETURNING id, name, slug, created_at",
            &[&new_id(), &name.as_str(), &slug.as_str()],
        )
        .await?;
    let org = from_row(&row);
    tx.execute(
        "INSERT INTO org_memberships (id, user_id, org_id, role) VALUES ($1, $2, $3, 'owner')",
        &[&new_id(), &owner_id, &org.id],
    )
    .await?;
    tx.commit().await?;
    Ok(org)
}
