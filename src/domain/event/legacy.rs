//! Events as releases before the compressed body kept them: the spool's
//! batches they wrote were JSON arrays of these, with every part of the
//! event as its own JSON. A spool left by such a release is replayed by
//! this one, so its events are read here and given a body.

use super::body::EventBody;
use super::{Event, RawJson, Severity};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// One event of an earlier release's spooled batch.
#[derive(Deserialize)]
struct LegacyEvent {
    id: Uuid,
    project_id: Uuid,
    level: Severity,
    message: String,
    title: String,
    culprit: Option<String>,
    fingerprint: String,
    occurred_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    platform: Option<String>,
    release: Option<String>,
    environment: Option<String>,
    transaction: Option<String>,
    sdk_name: Option<String>,
    sdk_version: Option<String>,
    exception: Option<RawJson>,
    stacktrace: Option<RawJson>,
    breadcrumbs: Option<RawJson>,
    tags: RawJson,
    extra: RawJson,
    user: Option<RawJson>,
    contexts: Option<RawJson>,
    request: Option<RawJson>,
    other: Option<RawJson>,
}

/// The events of an earlier release's spooled batch (a JSON array).
pub(super) fn decode_batch(bytes: &[u8]) -> Result<Vec<Event>> {
    let legacy: Vec<LegacyEvent> = serde_json::from_slice(bytes)
        .map_err(|e| Error::internal_from("decoding a spooled batch", e))?;
    legacy.into_iter().map(LegacyEvent::into_event).collect()
}

impl LegacyEvent {
    /// The event, its parts put back together as the payload they came
    /// from: `other` held the payload's remaining fields at the top level.
    fn into_event(self) -> Result<Event> {
        let decode = |raw: RawJson| -> Result<Value> {
            raw.decode()
                .map_err(|e| Error::internal_from("a spooled event's part", e))
        };
        let mut payload = match self.other.map(decode).transpose()? {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                payload.insert(key.to_owned(), value);
            }
        };
        set("event_id", Some(self.id.simple().to_string().into()));
        set("timestamp", Some(self.occurred_at.to_rfc3339().into()));
        set("level", Some(self.level.as_str().into()));
        set("platform", self.platform.map(Value::from));
        set("release", self.release.clone().map(Value::from));
        set("environment", self.environment.clone().map(Value::from));
        set("transaction", self.transaction.map(Value::from));
        set("exception", self.exception.map(decode).transpose()?);
        set("stacktrace", self.stacktrace.map(decode).transpose()?);
        set("breadcrumbs", self.breadcrumbs.map(decode).transpose()?);
        set("tags", Some(decode(self.tags)?));
        set("extra", Some(decode(self.extra)?));
        set("user", self.user.map(decode).transpose()?);
        set("contexts", self.contexts.map(decode).transpose()?);
        set("request", self.request.map(decode).transpose()?);
        if !payload.contains_key("message") && !payload.contains_key("logentry") {
            payload.insert("message".into(), self.message.into());
        }
        // `other` keeps the whole sdk only when it says more than these.
        if !payload.contains_key("sdk") && (self.sdk_name.is_some() || self.sdk_version.is_some()) {
            let sdk = serde_json::json!({ "name": self.sdk_name, "version": self.sdk_version });
            payload.insert("sdk".into(), sdk);
        }
        let json = serde_json::to_vec(&Value::Object(payload))
            .map_err(|e| Error::internal_from("re-encoding a spooled event", e))?;
        let payload = super::EventPayload::from_json(&json)?;
        Ok(Event {
            id: self.id,
            project_id: self.project_id,
            level: self.level,
            title: self.title,
            culprit: self.culprit,
            fingerprint: self.fingerprint,
            occurred_at: self.occurred_at,
            received_at: self.received_at,
            release: self.release,
            environment: self.environment,
            indexed_tags: super::tags::event_tags(&payload, self.level),
            body: EventBody::compress(&json)?,
            hold: Default::default(),
        })
    }
}
