//! `upload_chunks`, `artifact_bundles` and `artifact_files`: what
//! sentry-cli uploads, and the lookups ingest makes to resolve minified
//! frames.

use super::Pool;
use crate::domain::{ArtifactType, new_id};
use crate::error::Result;
use crate::sourcemaps::bundle::Bundle;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Stores chunks (SHA-1 and bytes, checked by the caller); a chunk the
/// organization already has is kept as it is.
pub async fn store_chunks(pool: &Pool, org_id: Uuid, chunks: &[([u8; 20], Vec<u8>)]) -> Result<()> {
    let client = pool.get().await?;
    let statement = client
        .prepare(
            "INSERT INTO upload_chunks (org_id, sha1, data) VALUES ($1, $2, $3)
             ON CONFLICT (org_id, sha1) DO NOTHING",
        )
        .await?;
    for (sha1, data) in chunks {
        client
            .execute(&statement, &[&org_id, &sha1.as_slice(), data])
            .await?;
    }
    Ok(())
}

/// Which of `chunks` the organization has not uploaded, in their order.
pub async fn missing_chunks(
    pool: &Pool,
    org_id: Uuid,
    chunks: &[[u8; 20]],
) -> Result<Vec<[u8; 20]>> {
    let wanted: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    let rows = pool
        .get()
        .await?
        .query(
            "SELECT sha1 FROM upload_chunks WHERE org_id = $1 AND sha1 = ANY($2)",
            &[&org_id, &wanted],
        )
        .await?;
    let present: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
    Ok(chunks
        .iter()
        .filter(|c| !present.iter().any(|p| p.as_slice() == c.as_slice()))
        .copied()
        .collect())
}

/// The bytes of `chunks`, concatenated in their order; `None` when one is
/// gone (assembled by another request meanwhile, or stale).
pub async fn chunk_data(pool: &Pool, org_id: Uuid, chunks: &[[u8; 20]]) -> Result<Option<Vec<u8>>> {
    let client = pool.get().await?;
    let statement = client
        .prepare("SELECT data FROM upload_chunks WHERE org_id = $1 AND sha1 = $2")
        .await?;
    let mut out = Vec::new();
    for sha1 in chunks {
        match client
            .query_opt(&statement, &[&org_id, &sha1.as_slice()])
            .await?
        {
            Some(row) => out.extend_from_slice(row.get::<_, &[u8]>(0)),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The projects of `project_ids` that do not have the bundle `checksum`
/// yet. Those that have it count it as used now: a build pipeline
/// uploading the same bundle again is shipping that release again, so
/// retention must not take its maps for unused.
pub async fn projects_without(
    pool: &Pool,
    project_ids: &[Uuid],
    checksum: &[u8; 20],
) -> Result<Vec<Uuid>> {
    let rows = pool
        .get()
        .await?
        .query(
            "WITH used AS (
                 UPDATE artifact_bundles SET used_at = now()
                 WHERE project_id = ANY($1) AND checksum = $2
             )
             SELECT p FROM unnest($1::uuid[]) AS p
             WHERE NOT EXISTS (SELECT 1 FROM artifact_bundles b
                               WHERE b.project_id = p AND b.checksum = $2)",
            &[&project_ids, &checksum.as_slice()],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Stores `bundle` for each of `project_ids` (a project that has it
/// already keeps it) and deletes its chunks and any chunks left stale, in
/// one transaction.
pub async fn insert_bundle(
    pool: &Pool,
    org_id: Uuid,
    project_ids: &[Uuid],
    checksum: &[u8; 20],
    chunks: &[[u8; 20]],
    bundle: &Bundle,
) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let insert_file = tx
        .prepare(
            "INSERT INTO artifact_files
                 (id, bundle_id, org_id, project_id, file_type, url, debug_id, sourcemap,
                  release, dist, content)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .await?;
    for project_id in project_ids {
        let inserted = tx
            .query_opt(
                "INSERT INTO artifact_bundles
                     (id, org_id, project_id, checksum, debug_id, release, dist, file_count, bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (project_id, checksum) DO NOTHING
                 RETURNING id",
                &[
                    &new_id(),
                    &org_id,
                    project_id,
                    &checksum.as_slice(),
                    &bundle.debug_id,
                    &bundle.release,
                    &bundle.dist,
                    &(bundle.files.len() as i32),
                    &(bundle.bytes() as i64),
                ],
            )
            .await?;
        let Some(row) = inserted else { continue };
        let bundle_id: Uuid = row.get(0);
        for file in &bundle.files {
            tx.execute(
                &insert_file,
                &[
                    &new_id(),
                    &bundle_id,
                    &org_id,
                    project_id,
                    &file.kind.as_str(),
                    &file.url,
                    &file.debug_id,
                    &file.sourcemap,
                    &bundle.release,
                    &bundle.dist,
                    &file.content,
                ],
            )
            .await?;
        }
    }
    let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
    tx.execute(
        "DELETE FROM upload_chunks WHERE org_id = $1 AND sha1 = ANY($2)",
        &[&org_id, &chunks],
    )
    .await?;
    tx.execute(DELETE_STALE_CHUNKS, &[]).await?;
    tx.commit().await?;
    Ok(())
}

/// How long chunks of a bundle never assembled are kept.
const DELETE_STALE_CHUNKS: &str =
    "DELETE FROM upload_chunks WHERE created_at < now() - interval '1 day'";

/// Deletes the chunks uploaded over a day ago that no assembly used: a
/// refused bundle's, or a build that stopped between upload and assembly.
/// The number deleted.
pub async fn delete_stale_chunks(pool: &Pool) -> Result<u64> {
    Ok(pool.get().await?.execute(DELETE_STALE_CHUNKS, &[]).await?)
}

/// The newest source map with `debug_id` in the organization, and the
/// newest minified file with it (it names the enclosing functions). Their
/// bundles count as used (see [`delete_unused_bundles`]).
pub async fn map_by_debug_id(
    pool: &Pool,
    org_id: Uuid,
    debug_id: Uuid,
) -> Result<Option<(Vec<u8>, Option<Vec<u8>>)>> {
    let rows = pool
        .get()
        .await?
        .query(
            "WITH found AS (
                 SELECT DISTINCT ON (file_type) file_type, content, bundle_id FROM artifact_files
                 WHERE org_id = $1 AND debug_id = $2
                     AND file_type IN ('source_map', 'minified_source')
                 ORDER BY file_type, id DESC
             ),
             used AS (
                 UPDATE artifact_bundles b SET used_at = now() FROM found f
                 WHERE b.id = f.bundle_id AND b.used_at < now() - interval '1 hour'
             )
             SELECT file_type, content FROM found",
            &[&org_id, &debug_id],
        )
        .await?;
    let of = |kind: ArtifactType| {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == kind.as_str())
            .map(|r| r.get::<_, Vec<u8>>(1))
    };
    Ok(of(ArtifactType::SourceMap).map(|map| (map, of(ArtifactType::MinifiedSource))))
}

/// A file of the project's bundles for `release` and `dist`: the newest
/// of `kind` whose URL is one of `urls` (tried in their order). Its URL,
/// its source map reference and its bytes. Its bundle counts as used.
pub async fn file_by_url(
    pool: &Pool,
    project_id: Uuid,
    release: &str,
    dist: Option<&str>,
    urls: &[String],
    kind: ArtifactType,
) -> Result<Option<(String, Option<String>, Vec<u8>)>> {
    let row = pool
        .get()
        .await?
        .query_opt(
            "WITH found AS (
                 SELECT url, sourcemap, content, bundle_id FROM artifact_files
                 WHERE project_id = $1 AND release = $2 AND dist IS NOT DISTINCT FROM $3
                   AND url = ANY($4) AND file_type = $5
                 ORDER BY array_position($4, url), id DESC LIMIT 1
             ),
             used AS (
                 UPDATE artifact_bundles b SET used_at = now() FROM found f
                 WHERE b.id = f.bundle_id AND b.used_at < now() - interval '1 hour'
             )
             SELECT url, sourcemap, content FROM found",
            &[&project_id, &release, &dist, &urls, &kind.as_str()],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1), r.get(2))))
}

/// Bundles a retention check deletes at most per statement: a bundle may
/// hold up to `MESHER_SOURCEMAP_MAX_BUNDLE_MB` of files.
const DELETE_BUNDLES: i64 = 20;

/// Deletes the artifact bundles (with their files) of `project_id`, or of
/// every project, that neither an upload nor an event has used since
/// before `before`, in bounded statements. A release still
/// reporting keeps its maps however old they are. Returns how many went.
pub async fn delete_unused_bundles(
    pool: &Pool,
    project_id: Option<Uuid>,
    before: DateTime<Utc>,
) -> Result<u64> {
    let mut deleted = 0;
    loop {
        let n = pool
            .get()
            .await?
            .execute(
                "DELETE FROM artifact_bundles WHERE id IN (
                     SELECT id FROM artifact_bundles
                     WHERE used_at < $1 AND ($2::uuid IS NULL OR project_id = $2) LIMIT $3
                 ) AND used_at < $1",
                &[&before, &project_id, &DELETE_BUNDLES],
            )
            .await?;
        deleted += n;
        if n < DELETE_BUNDLES as u64 {
            return Ok(deleted);
        }
    }
}
