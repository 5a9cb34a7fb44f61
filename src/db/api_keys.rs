//! `api_keys`: only a key's SHA-256 and display prefix are stored.

use super::{Pool, exists};
use crate::domain::{ApiKey, ApiKeyInfo, Name, ResolvedKey, new_id};
use crate::error::{Error, Result};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

const INFO_COLUMNS: &str =
    "id, project_id, key_prefix, label, created_at, revoked_at, rate_limit_per_minute";

fn info_from_row(row: &Row) -> ApiKeyInfo {
    ApiKeyInfo {
        id: row.get("id"),
        project_id: row.get("project_id"),
        prefix: row.get("key_prefix"),
        label: row.get("label"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
        // Positive by the table's check.
        rate_limit_per_minute: row
            .get::<_, Option<i32>>("rate_limit_per_minute")
            .map(i32::unsigned_abs),
    }
}

/// Stores `key` (as its hash) for the project; `NotFound { "project" }`
/// when the project does not exist.
pub async fn insert(
    pool: &Pool,
    project_id: Uuid,
    key: &ApiKey,
    label: &Name,
) -> Result<ApiKeyInfo> {
    insert_on(&*pool.get().await?, project_id, key, label).await
}

/// [`insert`] on `client`, which may be a transaction under way.
pub(super) async fn insert_on(
    client: &impl GenericClient,
    project_id: Uuid,
    key: &ApiKey,
    label: &Name,
) -> Result<ApiKeyInfo> {
    let sql = format!(
        "INSERT INTO api_keys (id, project_id, key_hash, key_prefix, label) VALUES ($1, $2, $3, $4, $5)
         RETURNING {INFO_COLUMNS}"
    );
    let row = client
        .query_one(
            &sql,
            &[
                &new_id(),
                &project_id,
                &key.hash(),
                &key.display_prefix(),
                &label.as_str(),
            ],
        )
        .await?;
    Ok(info_from_row(&row))
}

/// The project an active key belongs to, with the key's own limit.
/// Unknown and revoked keys alike give `InvalidCredentials`, so a probe
/// learns nothing.
pub async fn project_by_key(pool: &Pool, key: &ApiKey) -> Result<ResolvedKey> {
    pool.get()
        .await?
        .query_opt(
            "SELECT p.id, p.public_id, p.org_id, p.name, p.platform, p.created_at,
                 p.retention_days, p.rate_limit_per_minute,
                 k.id AS key_id, k.rate_limit_per_minute AS key_rate_limit_per_minute
             FROM api_keys k JOIN projects p ON p.id = k.project_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
            &[&key.hash()],
        )
        .await?
        .map(|r| ResolvedKey {
            project: super::projects::from_row(&r),
            key_id: r.get("key_id"),
            rate_limit_per_minute: r
                .get::<_, Option<i32>>("key_rate_limit_per_minute")
                .map(i32::unsigned_abs),
        })
        .ok_or(Error::InvalidCredentials)
}

/// Sets or removes (`None`) the rate limit of `project_id`'s key `key_id`,
/// checked by the caller. `NotFound` for a key id of no key of the project.
pub async fn set_rate_limit(
    pool: &Pool,
    project_id: Uuid,
    key_id: Uuid,
    per_minute: Option<u32>,
) -> Result<ApiKeyInfo> {
    let sql = format!(
        "UPDATE api_keys SET rate_limit_per_minute = $3 WHERE project_id = $1 AND id = $2
         RETURNING {INFO_COLUMNS}"
    );
    let per_minute = per_minute.map(|n| n as i32);
    pool.get()
        .await?
        .query_opt(&sql, &[&project_id, &key_id, &per_minute])
        .await?
        .map(|r| info_from_row(&r))
        .ok_or(Error::NotFound { entity: "api key" })
}

/// Revokes a key; revoking it again is a no-op that keeps the first
/// revocation time. `NotFound` for an unknown key id.
pub async fn revoke(pool: &Pool, key_id: Uuid) -> Result<ApiKeyInfo> {
    let sql = format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING {INFO_COLUMNS}"
    );
    pool.get()
        .await?
        .query_opt(&sql, &[&key_id])
        .await?
        .map(|r| info_from_row(&r))
        .ok_or(Error::NotFound { entity: "api key" })
}

/// A project's keys, oldest first, revoked ones included (with their date).
pub async fn list_by_project(pool: &Pool, project_id: Uuid) -> Result<Vec<ApiKeyInfo>> {
    let client = pool.get().await?;
    if !exists(&client, "projects", project_id).await? {
        return Err(Error::NotFound { entity: "project" });
    }
    let sql = format!("SELECT {INFO_COLUMNS} FROM api_keys WHERE project_id = $1 ORDER BY id");
    let rows = client.query(&sql, &[&project_id]).await?;
    Ok(rows.iter().map(info_from_row).collect())
}
