//! `org_tokens`: only a token's SHA-256 and its last four characters are
//! stored.

use super::{Pool, exists};
use crate::domain::{Name, OrgToken, OrgTokenInfo, Organization, new_id};
use crate::error::{Error, Result};
use tokio_postgres::Row;
use uuid::Uuid;

const INFO_COLUMNS: &str =
    "id, org_id, token_hint, label, created_by, created_at, last_used_at, revoked_at";

fn info_from_row(row: &Row) -> OrgTokenInfo {
    OrgTokenInfo {
        id: row.get("id"),
        org_id: row.get("org_id"),
        hint: row.get("token_hint"),
        label: row.get("label"),
        created_by: row.get("created_by"),
        created_at: row.get("created_at"),
        last_used_at: row.get("last_used_at"),
        revoked_at: row.get("revoked_at"),
    }
}

/// Stores `token` (as its hash) for the organization; `NotFound {
/// "organization" }` when it does not exist.
pub async fn insert(
    pool: &Pool,
    org_id: Uuid,
    token: &OrgToken,
    label: &Name,
    created_by: Option<Uuid>,
) -> Result<OrgTokenInfo> {
    let sql = format!(
        "INSERT INTO org_tokens (id, org_id, token_hash, token_hint, label, created_by)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {INFO_COLUMNS}"
    );
    let row = pool
        .get()
        .await?
        .query_one(
            &sql,
            &[
                &new_id(),
                &org_id,
                &token.hash(),
                &token.hint(),
                &label.as_str(),
                &created_by,
            ],
        )
        .await?;
    Ok(info_from_row(&row))
}

/// The organization an active token belongs to, noting that it was used.
/// Unknown and revoked tokens alike give `InvalidCredentials`.
pub async fn authenticate(pool: &Pool, token: &OrgToken) -> Result<Organization> {
    pool.get()
        .await?
        .query_opt(
            "WITH used AS (
                 UPDATE org_tokens SET last_used_at = now()
                 WHERE token_hash = $1 AND revoked_at IS NULL
                 RETURNING org_id
             )
             SELECT o.id, o.name, o.slug, o.created_at
             FROM used JOIN organizations o ON o.id = used.org_id",
            &[&token.hash()],
        )
        .await?
        .map(|r| super::orgs::from_row(&r))
        .ok_or(Error::InvalidCredentials)
}

/// An organization's tokens, oldest first, revoked ones included.
pub async fn list_by_org(pool: &Pool, org_id: Uuid) -> Result<Vec<OrgTokenInfo>> {
    let client = pool.get().await?;
    if !exists(&client, "organizations", org_id).await? {
        return Err(Error::NotFound {
            entity: "organization",
        });
    }
    let sql = format!("SELECT {INFO_COLUMNS} FROM org_tokens WHERE org_id = $1 ORDER BY id");
    let rows = client.query(&sql, &[&org_id]).await?;
    Ok(rows.iter().map(info_from_row).collect())
}

/// Revokes one of the organization's tokens; revoking it again keeps the
/// first time. `NotFound { "token" }` for a token of another organization.
pub async fn revoke(pool: &Pool, org_id: Uuid, token_id: Uuid) -> Result<OrgTokenInfo> {
    let sql = format!(
        "UPDATE org_tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND org_id = $2 RETURNING {INFO_COLUMNS}"
    );
    pool.get()
        .await?
        .query_opt(&sql, &[&token_id, &org_id])
        .await?
        .map(|r| info_from_row(&r))
        .ok_or(Error::NotFound { entity: "token" })
}
