//! `projects`.

use super::{EventPool, Pool, api_keys, exists};
use crate::domain::{ApiKey, ApiKeyInfo, Name, Project, ProjectSettings, new_id};
use crate::error::{Error, Result};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// The columns [`from_row`] reads, for every query returning projects.
pub(crate) const COLUMNS: &str =
    "id, public_id, org_id, name, platform, created_at, retention_days, rate_limit_per_minute";

pub(crate) fn from_row(row: &Row) -> Project {
    Project {
        id: row.get("id"),
        public_id: row.get("public_id"),
        org_id: row.get("org_id"),
        name: row.get("name"),
        platform: row.get("platform"),
        created_at: row.get("created_at"),
        // Positive by the table's checks.
        retention_days: row
            .get::<_, Option<i32>>("retention_days")
            .map(i32::unsigned_abs),
        rate_limit_per_minute: row
            .get::<_, Option<i32>>("rate_limit_per_minute")
            .map(i32::unsigned_abs),
    }
}

/// Fails with `NotFound { entity: "organization" }` (via the foreign key)
/// when the organization does not exist.
pub async fn insert(
    pool: &Pool,
    org_id: Uuid,
    name: &Name,
    platform: Option<&Name>,
) -> Result<Project> {
    insert_on(&*pool.get().await?, org_id, name, platform).await
}

/// A project and its first key, both or neither: a project is never left
/// without a key to send to it with. Errors as [`insert`] and
/// [`api_keys::insert`].
pub async fn insert_with_key(
    pool: &Pool,
    org_id: Uuid,
    name: &Name,
    platform: Option<&Name>,
    key: &ApiKey,
    label: &Name,
) -> Result<(Project, ApiKeyInfo)> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let project = insert_on(&tx, org_id, name, platform).await?;
    let info = api_keys::insert_on(&tx, project.id, key, label).await?;
    tx.commit().await?;
    Ok((project, info))
}

async fn insert_on(
    client: &impl GenericClient,
    org_id: Uuid,
    name: &Name,
    platform: Option<&Name>,
) -> Result<Project> {
    let sql = format!(
        "INSERT INTO projects (id, org_id, name, platform) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    );
    let row = client
        .query_one(
            &sql,
            &[
                &new_id(),
                &org_id,
                &name.as_str(),
                &platform.map(Name::as_str),
            ],
        )
        .await?;
    Ok(from_row(&row))
}

pub async fn get(pool: &Pool, id: Uuid) -> Result<Project> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE id = $1");
    pool.get()
        .await?
        .query_opt(&sql, &[&id])
        .await?
        .map(|r| from_row(&r))
        .ok_or(Error::NotFound { entity: "project" })
}

/// The project whose DSNs carry `public_id`.
pub async fn get_by_public_id(pool: &Pool, public_id: i64) -> Result<Project> {
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE public_id = $1");
    pool.get()
        .await?
        .query_opt(&sql, &[&public_id])
        .await?
        .map(|r| from_row(&r))
        .ok_or(Error::NotFound { entity: "project" })
}

/// Whether a project exists: the writer registry asks, on the pool its
/// writers use, before it starts a writer for events naming it.
pub async fn exists_by_id(pool: &EventPool, id: Uuid) -> Result<bool> {
    exists(&*pool.get().await?, "projects", id).await
}

/// An organization's projects, oldest first; `NotFound` for an unknown
/// organization rather than an ambiguous empty list.
pub async fn list_by_org(pool: &Pool, org_id: Uuid) -> Result<Vec<Project>> {
    let client = pool.get().await?;
    if !exists(&client, "organizations", org_id).await? {
        return Err(Error::NotFound {
            entity: "organization",
        });
    }
    let sql = format!("SELECT {COLUMNS} FROM projects WHERE org_id = $1 ORDER BY id");
    let rows = client.query(&sql, &[&org_id]).await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Changes a project's retention and rate limit (each left as it is when
/// not given); `NotFound` for an unknown project.
pub async fn update_settings(pool: &Pool, id: Uuid, change: &ProjectSettings) -> Result<Project> {
    let value = |v: Option<Option<u32>>| v.map(|v| v.map(|n| n as i32));
    let sql = format!(
        "UPDATE projects SET
             retention_days = CASE WHEN $2 THEN $3 ELSE retention_days END,
             rate_limit_per_minute = CASE WHEN $4 THEN $5 ELSE rate_limit_per_minute END
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let (retention, rate) = (
        value(change.retention_days),
        value(change.rate_limit_per_minute),
    );
    pool.get()
        .await?
        .query_opt(
            &sql,
            &[
                &id,
                &retention.is_some(),
                &retention.flatten(),
                &rate.is_some(),
                &rate.flatten(),
            ],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or(Error::NotFound { entity: "project" })
}
