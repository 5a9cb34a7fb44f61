//! `org_memberships`.

use super::{Pool, exists};
use crate::domain::{Member, OrgMembership, Organization, Role, new_id};
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

/// The role `user_id` has in `org_id`, or `None` when they are not a member
/// (or either does not exist).
pub async fn role_of(pool: &Pool, user_id: Uuid, org_id: Uuid) -> Result<Option<Role>> {
    pool.get()
        .await?
        .query_opt(
            "SELECT role FROM org_memberships WHERE user_id = $1 AND org_id = $2",
            &[&user_id, &org_id],
        )
        .await?
        .map(|row| row.get::<_, &str>(0).parse())
        .transpose()
}

/// An organization's members with their names, in the order they joined.
pub async fn members(pool: &Pool, org_id: Uuid) -> Result<Vec<Member>> {
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT u.id, u.email, u.display_name, m.role, m.joined_at
             FROM org_memberships m JOIN users u ON u.id = m.user_id
             WHERE m.org_id = $1 ORDER BY m.id",
            &[&org_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Member {
                user_id: row.get(0),
                email: row.get(1),
                display_name: row.get(2),
                role: row.get::<_, &str>(3).parse()?,
                joined_at: row.get(4),
            })
        })
        .collect()
}

const LAST_OWNER: Error = Error::Conflict {
    rule: "an organization must keep at least one owner",
};

/// Gives a member another role (`role` `Some`) or removes them (`None`),
/// refusing to leave the organization without an owner. The organization's
/// row is locked for the check and the change, so two owners demoting each
/// other at once cannot both succeed. Errors: `NotFound { "membership" }`,
/// `Conflict` (the last owner).
pub async fn change(pool: &Pool, org_id: Uuid, user_id: Uuid, role: Option<Role>) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.query_opt(
        "SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE",
        &[&org_id],
    )
    .await?;
    let row = tx
        .query_opt(
            "SELECT role, (SELECT count(*) FROM org_memberships
                           WHERE org_id = $1 AND role = 'owner')
             FROM org_memberships WHERE org_id = $1 AND user_id = $2",
            &[&org_id, &user_id],
        )
        .await?
        .ok_or(Error::NotFound {
            entity: "membership",
        })?;
    let (current, owners): (Role, i64) = (row.get::<_, &str>(0).parse()?, row.get(1));
    if current == Role::Owner && role != Some(Role::Owner) && owners <= 1 {
        return Err(LAST_OWNER);
    }
    match role {
        Some(role) => {
            tx.execute(
                "UPDATE org_memberships SET role = $3 WHERE org_id = $1 AND user_id = $2",
                &[&org_id, &user_id, &role.as_str()],
            )
            .await?
        }
        None => {
            tx.execute(
                "DELETE FROM org_memberships WHERE org_id = $1 AND user_id = $2",
                &[&org_id, &user_id],
            )
            .await?
        }
    };
    tx.commit().await?;
    Ok(())
}
