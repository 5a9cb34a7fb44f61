//! Uploading artifact bundles: the options, the chunks, the assembly (see
//! the SPEC's "Source maps" for what sentry-cli 2.x and 3.x send).

use super::{organization, projects_named};
use crate::app::State;
use crate::http::api::MAX_JSON_BYTES;
use crate::http::body::{self, ContentEncoding};
use crate::http::error::{Problem, SentryError};
use crate::http::ingest::{read_body, reserve};
use crate::services::{AssembleBundle, StoreChunks};
use crate::sourcemaps::SourceMapConfig;
use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use sha1::{Digest, Sha1};

/// The upload options sentry-cli reads before anything else.
pub async fn options(
    req: HttpRequest,
    state: web::Data<State>,
    org: web::Path<String>,
) -> Result<HttpResponse, SentryError> {
    let org = organization(&state, &req, &org).await?;
    let c = &state.source_map_config;
    Ok(HttpResponse::Ok().json(json!({
        // Relative to `{SENTRY_URL}/api/0/`: the CLI reaches Mesher at the
        // URL it was given, whatever the public URL says.
        "url": format!("/api/0/organizations/{}/chunk-upload/", org.slug),
        "chunkSize": c.chunk_size,
        "chunksPerRequest": c.chunks_per_request,
        "maxRequestSize": c.max_request_bytes,
        "maxFileSize": c.max_bundle_bytes,
        "concurrency": 4,
        "maxWait": 60,
        "hashAlgorithm": "sha1",
        "compression": ["gzip"],
        // sentry-cli 2.x uploads bundles only to servers that accept
        // these; 3.x always does.
        "accept": ["release_files", "artifact_bundles_v2"],
    })))
}

/// A chunk's name: the SHA-1 of its uncompressed bytes, 40 hex digits.
pub fn parse_sha1(text: &str) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    hex::decode_to_slice(text.trim(), &mut out).ok()?;
    Some(out)
}

fn bad_request(code: &'static str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
}

/// `POST`: chunks as multipart parts named `file` (raw) or `file_gzip`,
/// each with its SHA-1 as the file name, checked against its bytes.
pub async fn upload_chunks(
    req: HttpRequest,
    state: web::Data<State>,
    org: web::Path<String>,
    mut form: Multipart,
) -> Result<HttpResponse, SentryError> {
    let org = organization(&state, &req, &org).await?;
    let c = state.source_map_config.clone();
    let mut memory = None;
    let mut parts = Vec::new();
    let mut sent = 0usize;
    let read = async {
        while let Some(field) = form.next().await {
            let mut field = field.map_err(|e| bad_request("invalid_body", e.to_string()))?;
            let disposition = field.content_disposition().cloned();
            let name = disposition
                .as_ref()
                .and_then(|d| d.get_name())
                .unwrap_or("");
            let gzip = match name {
                "file" => false,
                "file_gzip" => true,
                // Fields sentry-cli does not send are read past.
                _ => {
                    while field.next().await.is_some() {}
                    continue;
                }
            };
            let sha1 = disposition
                .as_ref()
                .and_then(|d| d.get_filename())
                .and_then(parse_sha1)
                .ok_or_else(|| {
                    bad_request("invalid_chunk", "each chunk's file name must be its SHA-1")
                })?;
            if parts.len() == c.chunks_per_request {
                return Err(bad_request(
                    "too_many_chunks",
                    format!("at most {} chunks per request", c.chunks_per_request),
                ));
            }
            let mut bytes = Vec::new();
            while let Some(piece) = field.next().await {
                let piece = piece.map_err(|e| bad_request("invalid_body", e.to_string()))?;
                sent += piece.len();
                if sent > c.max_request_bytes + c.chunk_size {
                    return Err(Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!(
                            "an upload request may carry at most {} bytes",
                            c.max_request_bytes
                        ),
                    ));
                }
                // The memory all request bodies share bounds the chunks too.
                reserve(&state, &mut memory, sent)?;
                bytes.extend_from_slice(&piece);
            }
            parts.push((sha1, gzip, bytes));
        }
        Ok(())
    };
    tokio::time::timeout(state.body_timeout * 6, read)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the chunks did not arrive in time",
            )
        })??;
    // Decompressing and hashing is CPU work: off the worker.
    let chunk_size = c.chunk_size;
    let checked = web::block(move || {
        parts
            .into_iter()
            .map(|(sha1, gzip, bytes)| {
                let data = match gzip {
                    true => {
                        body::decode(ContentEncoding::Gzip, &bytes, chunk_size).map_err(|e| {
                            bad_request(
                                "invalid_chunk",
                                format!("chunk {}: {e}", hex::encode(sha1)),
                            )
                        })?
                    }
                    false if bytes.len() > chunk_size => {
                        return Err(bad_request(
                            "invalid_chunk",
                            format!("a chunk may hold at most {chunk_size} bytes"),
                        ));
                    }
                    false => bytes,
                };
                if Sha1::digest(&data).as_slice() != sha1 {
                    return Err(bad_request(
                        "checksum_mismatch",
                        format!("chunk {} does not match its SHA-1", hex::encode(sha1)),
                    ));
                }
                Ok((sha1, data))
            })
            .collect::<Result<Vec<_>, Problem>>()
    })
    .await
    .map_err(|e| Problem::from(crate::error::Error::internal_from("checking chunks", e)))??;
    if checked.is_empty() {
        return Err(bad_request("no_chunks", "the request carries no chunk").into());
    }
    state
        .source_maps
        .send(StoreChunks {
            org_id: org.id,
            chunks: checked,
        })
        .await
        .map_err(Problem::from)?
        .map_err(Problem::from)?;
    drop(memory);
    Ok(HttpResponse::Ok().json(json!({})))
}

/// The largest assemble request. It is a small JSON (the bundle's
/// checksum, its chunks' SHA-1s, the projects): a few hundred bytes for a
/// bundle of the default 64 MiB, 8 chunks of 8 MiB. So the 64 KiB of the
/// dashboard's JSON bodies, and 64 bytes (a SHA-1 in quotes is 42) for
/// each chunk the largest bundle the configuration allows is cut into
/// (the assembly refuses more), so that no configuration makes a valid
/// request too large.
fn max_assemble_bytes(c: &SourceMapConfig) -> usize {
    let chunks = (c.max_bundle_bytes / c.chunk_size.max(1)).saturating_add(1);
    MAX_JSON_BYTES.saturating_add(chunks.saturating_mul(64))
}

/// What sentry-cli's assemble call sends.
#[derive(Deserialize)]
pub struct AssembleRequest {
    checksum: String,
    chunks: Vec<String>,
    #[serde(default)]
    projects: Vec<String>,
}

/// `POST .../artifactbundle/assemble/`: `{"state", "missingChunks",
/// "detail"?}`. Missing chunks are listed (sentry-cli 3.x asks before it
/// uploads, and uploads only those); once all are there, the bundle is
/// assembled and stored before the answer, which is then `ok`, or
/// `error` with the reason. The release and dist come from the bundle's
/// manifest, which sentry-cli writes from the same flags. The body is read
/// as ingestion reads one (bounded in size, time and shared memory; 413
/// past [`max_assemble_bytes`]), not by actix's extractor, whose refusals
/// are plain text.
pub async fn assemble(
    req: HttpRequest,
    state: web::Data<State>,
    org: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, SentryError> {
    let org = organization(&state, &req, &org).await?;
    let limit = max_assemble_bytes(&state.source_map_config);
    let body = read_body(&state, req.headers(), payload, limit).await?;
    let request: AssembleRequest = serde_json::from_slice(&body).map_err(|e| {
        bad_request(
            "invalid_json",
            format!("the assemble request is not valid: {e}"),
        )
    })?;
    let checksum = parse_sha1(&request.checksum).ok_or_else(|| {
        bad_request(
            "invalid_checksum",
            "checksum must be a SHA-1 (40 hex digits)",
        )
    })?;
    let chunks = request
        .chunks
        .iter()
        .map(|c| parse_sha1(c))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            bad_request(
                "invalid_chunk",
                "each chunk must be a SHA-1 (40 hex digits)",
            )
        })?;
    if request.projects.is_empty() {
        return Err(bad_request("invalid_project", "name the project with --project").into());
    }
    let projects = projects_named(&state, &org, &request.projects).await?;
    let assembled = state
        .source_maps
        .send(AssembleBundle {
            org_id: org.id,
            projects,
            checksum,
            chunks,
        })
        .await
        .map_err(Problem::from)?
        .map_err(Problem::from)?;
    Ok(HttpResponse::Ok().json(assembled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assemble_request_may_list_every_chunk_of_the_largest_bundle() {
        let default = SourceMapConfig::default();
        assert_eq!(max_assemble_bytes(&default), 64 * 1024 + 9 * 64);
        let large = SourceMapConfig {
            max_bundle_bytes: 1 << 36,
            ..SourceMapConfig::default()
        };
        let sha = "2ef7bde608ce5404e97d5f042f95f89f1c232871";
        let chunks = vec![sha; (1usize << 36) / large.chunk_size + 1];
        let request = json!({"checksum": sha, "chunks": chunks, "projects": ["web"]});
        assert!(request.to_string().len() <= max_assemble_bytes(&large));
        let broken = SourceMapConfig {
            chunk_size: 0,
            ..SourceMapConfig::default()
        };
        assert!(max_assemble_bytes(&broken) > 0, "no division by zero");
    }

    #[test]
    fn chunk_names_are_sha1_hex() {
        let sha = "2ef7bde608ce5404e97d5f042f95f89f1c232871";
        assert_eq!(hex::encode(parse_sha1(sha).unwrap()), sha);
        assert_eq!(parse_sha1(&sha.to_uppercase()), parse_sha1(sha));
        for bad in ["", "2ef7", &format!("{sha}00"), "zz".repeat(20).as_str()] {
            assert_eq!(parse_sha1(bad), None, "{bad}");
        }
    }
}
