//! Ingestion: where applications send their events.
//!
//! - `POST /api/<public id>/envelope/`: what every current Sentry SDK sends.
//! - `POST /api/<public id>/store/`: one event as JSON (older SDKs).
//! - `POST /api/v1/events`: Mesher's own, for clients without an SDK; one
//!   event or an array of up to [`MAX_NATIVE_EVENTS`], with
//!   `Authorization: Bearer mshr_...`.
//!
//! Each request is read (bounded in time and size), decoded, authenticated
//! and parsed before anything is handed on; its events are then admitted
//! all together or not at all (see [`Intake::admit`]), so a 200 means every event
//! in it was taken, and a 429 that none was.

use super::body::{self, ContentEncoding};
use super::envelope::{self, ItemType};
use super::error::{ApiError, Problem, SentryError};
use super::sentry_auth;
use crate::app::State;
use crate::domain::rate_limit::LimitScope;
use crate::domain::{Event, MAX_EVENT_BYTES, ResolvedKey};
use crate::error::Error;
#[cfg(doc)]
use crate::services::Intake;
use crate::services::{Limit, resolve_key};
use crate::sourcemaps::{self, Parsed};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CONTENT_ENCODING, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::{json, value::RawValue};
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;

/// How long a client refused for want of memory is asked to wait.
const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The largest envelope, after decompression.
pub const MAX_ENVELOPE_BYTES: usize = 20 * 1024 * 1024;

/// The most events one `POST /api/v1/events` may carry.
pub const MAX_NATIVE_EVENTS: usize = 100;

/// `POST /api/<public id>/envelope/`.
pub async fn envelope(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, SentryError> {
    // A request refused before its events are read counts as one.
    let mut held = 1;
    let outcome = async {
        let public_id = public_id(&path)?;
        let mut keys = sentry_keys(&req)?;
        // A key in the headers or the query is checked before the body is
        // read, so that a client without one cannot make Mesher read and
        // decompress anything; only a key in the envelope needs the body.
        let checked = if keys.is_empty() {
            None
        } else {
            Some(authenticate(&state, keys.clone(), Some(public_id)).await?)
        };
        let body = read_body(&state, req.headers(), payload, MAX_ENVELOPE_BYTES).await?;
        let envelope = envelope::parse(&body)?;
        if let Some(dsn) = &envelope.header.dsn {
            keys.push(sentry_auth::key_from_dsn(dsn)?);
        }
        let key = match checked {
            Some(key) => {
                // The envelope's key must agree with the one checked.
                sentry_auth::one_key(keys)?;
                key
            }
            None => authenticate(&state, keys, Some(public_id)).await?,
        };
        // An SDK that puts the id only in the envelope's header retries
        // with the same header: the event keeps that id, so the retry is
        // known for one.
        let header_id = envelope
            .header
            .event_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok());
        held = envelope
            .items
            .iter()
            .filter(|i| i.kind == ItemType::Event)
            .count();
        let mut events = Vec::with_capacity(held);
        for item in &envelope.items {
            match &item.kind {
                ItemType::Event => {
                    events.push(parse_event(&state, &key, item.payload, header_id).await?)
                }
                other => state.metrics.item_ignored(other.as_str()),
            }
        }
        // The events own their data; the body's memory goes back now, not
        // after the writer has answered.
        drop(envelope);
        drop(body);
        // An envelope without an event (sessions, client reports...) is
        // answered `{}`, as relay does.
        let body = match events.first() {
            Some(event) => json!({ "id": event.id().simple().to_string() }),
            None => json!({}),
        };
        admit(&state, &key, events).await?;
        Ok(body)
    };
    let outcome = outcome.await;
    respond(&state, outcome, held).map_err(SentryError)
}

/// `POST /api/<public id>/store/`.
pub async fn store(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, SentryError> {
    let outcome = async {
        let public_id = public_id(&path)?;
        let key = authenticate(&state, sentry_keys(&req)?, Some(public_id)).await?;
        let body = read_body(&state, req.headers(), payload, MAX_EVENT_BYTES).await?;
        let event = parse_event(&state, &key, &body, None).await?;
        drop(body);
        let id = event.id().simple().to_string();
        admit(&state, &key, vec![event]).await?;
        Ok(json!({ "id": id }))
    };
    respond(&state, outcome.await, 1).map_err(SentryError)
}

/// `POST /api/v1/events`: one event object, or an array of them.
pub async fn native(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let mut held = 1;
    let outcome = async {
        let key = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(sentry_auth::bearer_token)
            .map(str::to_owned);
        let key = authenticate(&state, key.into_iter().collect(), None).await?;
        let body = read_body(&state, req.headers(), payload, MAX_ENVELOPE_BYTES).await?;
        let (events, is_array) = native_events(&state, &key, &body).await?;
        drop(body);
        held = events.len();
        let ids: Vec<String> = events.iter().map(|e| e.id().simple().to_string()).collect();
        admit(&state, &key, events).await?;
        let body = if is_array {
            json!({ "ids": ids })
        } else {
            json!({ "id": ids.first() })
        };
        Ok(body)
    };
    let outcome = outcome.await;
    respond(&state, outcome, held).map_err(ApiError)
}

/// The events of a native request: one object, or an array of at most
/// [`MAX_NATIVE_EVENTS`]; and whether it was an array.
async fn native_events(
    state: &State,
    key: &ResolvedKey,
    body: &[u8],
) -> Result<(Vec<Event>, bool), Problem> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'[') {
        return Ok((vec![parse_event(state, key, body, None).await?], false));
    }
    let payloads: Vec<&RawValue> = serde_json::from_slice(body)
        .map_err(|_| Error::invalid("events", "must be a JSON event or an array of events"))?;
    if payloads.len() > MAX_NATIVE_EVENTS {
        return Err(Error::invalid("events", "must hold at most 100 events").into());
    }
    let mut events = Vec::with_capacity(payloads.len());
    for raw in payloads {
        events.push(parse_event(state, key, raw.get().as_bytes(), None).await?);
    }
    Ok((events, true))
}

/// Builds the 200, or counts the request's `held` events as refused.
/// (Accepted events are counted by the writer that took them.)
fn respond(
    state: &State,
    outcome: Result<serde_json::Value, Problem>,
    held: usize,
) -> Result<HttpResponse, Problem> {
    match outcome {
        Ok(body) => Ok(HttpResponse::Ok().json(body)),
        Err(problem) => {
            state.metrics.events_refused(problem.code, held as u64);
            Err(problem)
        }
    }
}

/// The project id of a DSN: a number.
fn public_id(path: &str) -> Result<i64, Problem> {
    path.parse().map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_project_id",
            "the project id in the URL must be a number",
        )
    })
}

/// A body read into memory, with its share of [`State::body_memory`],
/// given back when the request is done with it.
pub(super) struct Body {
    bytes: Vec<u8>,
    _memory: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Takes `kib` more KiB of the memory all bodies share into `held`, or
/// refuses the request: past that budget the server is busy, and waiting
/// would hold connections and their buffers just the same.
pub(super) fn reserve(
    state: &State,
    held: &mut Option<OwnedSemaphorePermit>,
    bytes: usize,
) -> Result<(), Problem> {
    let wanted = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
    let more = wanted.saturating_sub(held.as_ref().map_or(0, |p| p.num_permits() as u32));
    if more == 0 {
        return Ok(());
    }
    let permit = state
        .body_memory
        .clone()
        .try_acquire_many_owned(more)
        .map_err(|_| {
            Problem::from(Error::Overloaded {
                retry_after: BUSY_RETRY_AFTER,
            })
        })?;
    match held {
        Some(h) => h.merge(permit),
        None => *held = Some(permit),
    }
    Ok(())
}

/// Reads the body, at most `limit` bytes before and after decompression,
/// within the configured client timeout and the memory all bodies share.
pub(super) async fn read_body(
    state: &State,
    headers: &HeaderMap,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Body, Problem> {
    let encoding = ContentEncoding::from_header(
        headers
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("\u{fffd}")),
    )?;
    let too_large = || Problem::from(body::BodyError::TooLarge { limit });
    let mut memory = None;
    let read = async {
        let mut raw = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| body::BodyError::Malformed(e.to_string()))?;
            if raw.len() + chunk.len() > limit {
                return Err(too_large());
            }
            reserve(state, &mut memory, raw.len() + chunk.len())?;
            raw.extend_from_slice(&chunk);
        }
        Ok(raw)
    };
    let raw = tokio::time::timeout(state.body_timeout, read)
        .await
        .map_err(|_| {
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request body did not arrive in time",
            )
        })??;
    if encoding == ContentEncoding::Identity {
        return Ok(Body {
            bytes: raw.into(),
            _memory: memory,
        });
    }
    // While it is decoded, the body may take up to `limit` more; after,
    // only what it decoded to. Reserving the whole limit for every body
    // would let a dozen envelopes decoding at once exhaust the budget and
    // refuse the rest (seen in the HTTP benchmark: 429s at a few thousand
    // requests a second), while nearly all decode to a few kilobytes. So a
    // body is first decoded within FIRST_DECODE_BYTES, and only one that
    // expands past that is decoded again with the whole limit reserved.
    let raw = raw.freeze();
    let first = limit.min(FIRST_DECODE_BYTES);
    reserve(state, &mut memory, raw.len() + first)?;
    let bytes = match decode(encoding, raw.clone(), first).await? {
        Err(body::BodyError::TooLarge { .. }) if first < limit => {
            reserve(state, &mut memory, raw.len() + limit)?;
            decode(encoding, raw, limit).await?
        }
        decoded => decoded,
    }?;
    if let Some(held) = memory.as_mut() {
        let keep = u32::try_from(bytes.len().div_ceil(1024)).unwrap_or(u32::MAX);
        let excess = (held.num_permits() as u32).saturating_sub(keep);
        drop(held.split(excess as usize));
    }
    Ok(Body {
        bytes,
        _memory: memory,
    })
}

/// How much a body may decode to before it needs the memory of its whole
/// limit (see [`read_body`]): an envelope with one event of the largest
/// size fits.
const FIRST_DECODE_BYTES: usize = MAX_EVENT_BYTES;

/// Compressed bodies up to this size are decoded on the HTTP worker: an
/// SDK's envelope is a few kilobytes, and handing it to another thread and
/// back cost more than decoding it (two thread wake-ups per request, a
/// tenth of Mesher's CPU in the HTTP benchmark's profile). Even one that
/// expands to the first decode's whole megabyte takes about a millisecond.
const DECODE_ON_WORKER_BYTES: usize = 16 * 1024;

/// Decodes `raw` within `limit`; decompressing a large body is CPU work,
/// so off the worker's thread.
async fn decode(
    encoding: ContentEncoding,
    raw: bytes::Bytes,
    limit: usize,
) -> Result<Result<Vec<u8>, body::BodyError>, Problem> {
    if raw.len() <= DECODE_ON_WORKER_BYTES && limit <= FIRST_DECODE_BYTES {
        return Ok(body::decode(encoding, &raw, limit));
    }
    web::block(move || body::decode(encoding, &raw, limit))
        .await
        .map_err(|e| Error::internal_from("decompressing a body", e).into())
}

/// Every key the request carries in Sentry's places: `X-Sentry-Auth`,
/// `Authorization: Sentry ...` and the `sentry_key` query parameter.
fn sentry_keys(req: &HttpRequest) -> Result<Vec<String>, Problem> {
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}"))
    };
    let mut keys = Vec::new();
    if let Some(value) = header("x-sentry-auth") {
        keys.extend(sentry_auth::key_from_sentry_header(value)?);
    }
    // Another scheme in Authorization is another client's business (relay
    // ignores it too); only a Sentry one names a key.
    if let Some(value) = header("authorization") {
        match sentry_auth::key_from_sentry_header(value) {
            Ok(key) => keys.extend(key),
            Err(sentry_auth::AuthError::NotSentry) => {}
            Err(e) => return Err(e.into()),
        }
    }
    keys.extend(sentry_auth::key_from_query(req.query_string())?);
    Ok(keys)
}

/// The one key presented, resolved to its project; 403 when `public_id`
/// names another project than the key's.
async fn authenticate(
    state: &State,
    keys: Vec<String>,
    public_id: Option<i64>,
) -> Result<ResolvedKey, Problem> {
    let key = sentry_auth::one_key(keys)?;
    let key = resolve_key(&state.keys, &state.projects, key).await?;
    match public_id {
        Some(id) if id != key.project.public_id => Err(Problem::new(
            StatusCode::FORBIDDEN,
            "wrong_project",
            "this key belongs to another project",
        )),
        _ => Ok(key),
    }
}

/// Payloads larger than this are parsed on the blocking pool rather than
/// on the HTTP worker: parsing a large event takes long enough to hold up
/// the other requests of the worker's connections, while for the usual
/// few kilobytes the hand-over would cost more than the parse.
const PARSE_OFF_WORKER_BYTES: usize = 64 * 1024;

/// One event payload sent with `key`; 413 past [`MAX_EVENT_BYTES`].
/// `fallback_id` (the envelope header's `event_id`) is the event's id when
/// the payload names none. Minified frames are resolved through the
/// project's source maps before the event is built (see
/// [`sourcemaps::symbolicate`]), unless the key's limits would refuse it
/// anyway: a client over its limit costs no map lookups.
async fn parse_event(
    state: &State,
    key: &ResolvedKey,
    payload: &[u8],
    fallback_id: Option<Uuid>,
) -> Result<Event, Problem> {
    let project = &key.project;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "an event must be at most 1 MiB",
        ));
    }
    let project_id = project.id;
    let parse = move |bytes: &[u8]| Parsed::from_json(project_id, bytes, fallback_id);
    let parsed = if payload.len() <= PARSE_OFF_WORKER_BYTES {
        parse(payload)?
    } else {
        let owned = payload.to_vec();
        web::block(move || parse(&owned))
            .await
            .map_err(|e| Error::internal_from("parsing an event", e))??
    };
    match parsed {
        Parsed::Event(event) => Ok(event),
        Parsed::Minified { payload: p, maps } => {
            let (limits, scopes) = limits_of(key);
            if let Err((which, retry_after)) = state.limits.check(&limits, 1) {
                let scope = scopes[which];
                return Err(Error::RateLimited { retry_after, scope }.into());
            }
            let sent = payload.to_vec();
            Ok(sourcemaps::symbolicate(&state.source_maps, project, *p, maps, sent).await?)
        }
    }
}

/// The limits a request sent with `key` draws from (the key's, then its
/// project's, those that are set), and each one's scope.
fn limits_of(key: &ResolvedKey) -> (Vec<Limit>, Vec<LimitScope>) {
    [
        (key.key_id, key.rate_limit_per_minute, LimitScope::Key),
        (
            key.project.id,
            key.project.rate_limit_per_minute,
            LimitScope::Project,
        ),
    ]
    .into_iter()
    .filter_map(|(bucket, per_minute, scope)| {
        per_minute.map(|per_minute| (Limit { bucket, per_minute }, scope))
    })
    .unzip()
}

/// Hands a request's events to their writer, all or none, once they are
/// within the key's rate limit and its project's (before: a request over
/// either is refused, never accepted and then dropped).
async fn admit(state: &State, key: &ResolvedKey, events: Vec<Event>) -> Result<(), Problem> {
    let project = &key.project;
    let (limits, scopes) = limits_of(key);
    if limits.is_empty() {
        return Ok(state.intake.admit(project.id, events).await?);
    }
    let n = u32::try_from(events.len()).unwrap_or(u32::MAX);
    if let Err((which, retry_after)) = state.limits.admit(&limits, n) {
        let scope = scopes[which];
        return Err(Error::RateLimited { retry_after, scope }.into());
    }
    // Refused by storage, none of them got in: the limits count only
    // events accepted.
    state.intake.admit(project.id, events).await.map_err(|e| {
        state.limits.give_back(&limits, n);
        e.into()
    })
}
