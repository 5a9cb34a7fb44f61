//! `org_memberships`.

use super::{Pool, exists};
use crate::domain::{OrgMembership, Organization, Role, new_id};
use crate::error::{Error, Result};
use tokio_postgres::Row;
use uuid::Uuid;

fn from_row(row: &Row) -> Result<OrgMembership> {
    Ok(OrgMembership {
        id: row.get("id"),
        user_id: row.get("user_id"),
        org_id: row.get("org_id"),
        role: row.get::<_, &str>("role").parse()?,
        joined_at: row.get("joined_at"),
    })
}

/// `NotFound` for an unknown user or organization (via the foreign keys),
/// `AlreadyExists { "membership" }` when the user is already a member.
pub async fn insert(pool: &Pool, user_id: Uuid, org_id: Uuid, role: Role) -> Result<OrgMembership> {
    let row = pool
        .get()
        .await?
        .query_one(
            "INSERT INTO org_memberships (id, user_id, org_id, role) VALUES ($1, $2, $3, $4)
             RETURNING id, user_id, org_id, role, joined_at",
            &[&new_id(), &user_id, &org_id, &role.as_str()],
        )
        .await?;
    from_row(&row)
}

/// An organization's members, in the order they joined.
pub async fn list_by_org(pool: &Pool, org_id: Uuid) -> Result<Vec<OrgMembership>> {
    let client = pool.get().await?;
    if !exists(&client, "organizations", org_id).await? {
        return Err(Error::NotFound {
            entity: "organization",
        });
    }
    client
        .query(
            "SELECT id, user_id, org_id, role, joined_at FROM org_memberships
             WHERE org_id = $1 ORDER BY id",
            &[&org_id],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// The organizations a user belongs to, in the order they joined.
pub async fn orgs_of_user(pool: &Pool, user_id: Uuid) -> Result<Vec<Organization>> {
    let client = pool.get().await?;
    if !exists(&client, "users", user_id).await? {
        return Err(Error::NotFound { entity: "user" });
    }
    let rows = client
        .query(
            "SELECT o.id, o.name, o.slug, o.created_at
             FROM org_memberships m JOIN organizations o ON o.id = m.org_id
             WHERE m.user_id = $1 ORDER BY m.id",
            &[&user_id],
        )
        .await?;
    Ok(rows.iter().map(super::orgs::from_row).collect())
}
