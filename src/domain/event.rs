//! Error events: what a client sends ([`EventPayload`]) and what Mesher
//! stores ([`Event`]).

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value, value::RawValue};
use sha2::{Digest, Sha256};
use std::{collections::BTreeMap, fmt, fmt::Write as _, str::FromStr};
use uuid::Uuid;

/// The largest event accepted: its text and JSON parts, as stored.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
const MAX_FINGERPRINT_CHARS: usize = 256;

/// How bad an event is, most severe first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    #[default]
    Error,
    Warning,
    Info,
    Debug,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }
}

impl FromStr for Severity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fatal" => Ok(Severity::Fatal),
            "error" => Ok(Severity::Error),
            "warning" => Ok(Severity::Warning),
            "info" => Ok(Severity::Info),
            "debug" => Ok(Severity::Debug),
            _ => Err(Error::invalid(
                "level",
                "must be one of fatal, error, warning, info, debug",
            )),
        }
    }
}

/// One frame of a stack trace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackFrame {
    pub filename: Option<String>,
    pub function: Option<String>,
    pub module: Option<String>,
    pub lineno: Option<u32>,
    pub colno: Option<u32>,
    pub context_line: Option<String>,
    /// Whether the frame is the application's own code (vs. a library).
    #[serde(default)]
    pub in_app: bool,
}

/// The exception an event reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    pub module: Option<String>,
}

/// Something that happened before the error, recorded by the SDK.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Breadcrumb {
    pub timestamp: Option<DateTime<Utc>>,
    pub category: Option<String>,
    pub message: Option<String>,
    pub level: Option<String>,
    pub data: Option<Value>,
}

/// An event as a client sends it: loosely typed, not yet trusted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventPayload {
    pub message: Option<String>,
    /// One of the [`Severity`] names; `error` when absent.
    pub level: Option<String>,
    /// Groups events into one issue; derived when absent (see
    /// [`Event::from_payload`]).
    pub fingerprint: Option<String>,
    pub exception: Option<ExceptionInfo>,
    pub stacktrace: Option<Vec<StackFrame>>,
    pub breadcrumbs: Option<Vec<Breadcrumb>>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub extra: Map<String, Value>,
    pub user_context: Option<Value>,
    pub sdk_name: Option<String>,
    pub sdk_version: Option<String>,
}

impl EventPayload {
    /// Parses a payload from the bytes a client sent, refusing anything over
    /// [`MAX_EVENT_BYTES`] before spending time on it.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(Error::invalid("event", "must be at most 1 MiB"));
        }
        serde_json::from_slice(bytes)
            .map_err(|_| Error::invalid("event", "must be a JSON event payload"))
    }
}

/// JSON text, encoded once when an event is built and written as-is into a
/// JSONB column. Holding text instead of a tree keeps an event at a handful
/// of allocations, so buffering, dropping and encoding a batch stay cheap;
/// [`RawJson::decode`] gives the typed value back.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    fn encode<T: Serialize>(value: &T) -> Result<Self> {
        serde_json::value::to_raw_value(value)
            .map(RawJson)
            .map_err(|_| Error::invalid("event", "must be encodable as JSON"))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parses the text back into `T` (e.g. [`ExceptionInfo`],
    /// `Vec<StackFrame>`, `BTreeMap<String, String>`).
    pub fn decode<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.get())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// A validated event, ready to store. Its JSON parts are kept encoded
/// (see [`RawJson`]); the getters' comments name the type each decodes to.
///
/// Fields are private: an event comes only from [`Event::from_payload`],
/// [`Event::from_payload_received_at`] or deserialization (which checks the
/// same rules), so a value that would sink a batch cannot be assigned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EventRecord")]
pub struct Event {
    /// Assigned once, on receipt, so a retried write can never store the
    /// event twice: the primary key (id, received_at) repeats.
    pub(crate) id: Uuid,
    pub(crate) project_id: Uuid,
    /// Set by grouping, a later layer; `None` when stored.
    pub(crate) issue_id: Option<Uuid>,
    pub(crate) level: Severity,
    pub(crate) message: String,
    pub(crate) fingerprint: String,
    pub(crate) exception: Option<RawJson>,
    pub(crate) stacktrace: Option<RawJson>,
    pub(crate) breadcrumbs: Option<RawJson>,
    pub(crate) tags: RawJson,
    pub(crate) extra: RawJson,
    pub(crate) user_context: Option<RawJson>,
    pub(crate) sdk_name: Option<String>,
    pub(crate) sdk_version: Option<String>,
    /// Picks the daily partition the event lands in (UTC).
    pub(crate) received_at: DateTime<Utc>,
}

/// An [`Event`] as serialized, before its rules are checked again.
#[derive(Deserialize)]
struct EventRecord {
    id: Uuid,
    project_id: Uuid,
    issue_id: Option<Uuid>,
    level: Severity,
    message: String,
    fingerprint: String,
    exception: Option<RawJson>,
    stacktrace: Option<RawJson>,
    breadcrumbs: Option<RawJson>,
    tags: RawJson,
    extra: RawJson,
    user_context: Option<RawJson>,
    sdk_name: Option<String>,
    sdk_version: Option<String>,
    received_at: DateTime<Utc>,
}

impl TryFrom<EventRecord> for Event {
    type Error = Error;

    fn try_from(r: EventRecord) -> Result<Self> {
        let event = Event {
            id: r.id,
            project_id: r.project_id,
            issue_id: r.issue_id,
            level: r.level,
            message: r.message,
            fingerprint: r.fingerprint,
            exception: r.exception,
            stacktrace: r.stacktrace,
            breadcrumbs: r.breadcrumbs,
            tags: r.tags,
            extra: r.extra,
            user_context: r.user_context,
            sdk_name: r.sdk_name,
            sdk_version: r.sdk_version,
            received_at: r.received_at,
        };
        event.check()?;
        // From a payload these shapes hold by construction; from JSON they
        // must be checked.
        let shape = |field, rule| Error::invalid(field, rule);
        event
            .tags
            .decode::<BTreeMap<String, String>>()
            .map_err(|_| shape("tags", "must map names to strings"))?;
        if !event.extra.get().starts_with('{') {
            return Err(shape("extra", "must be a JSON object"));
        }
        Ok(event)
    }
}

impl Event {
    /// Validates `payload` for `project_id` and stamps it with an id and the
    /// time of receipt.
    ///
    /// Rules: the payload's JSON encoding is at most 1 MiB; `level` is a
    /// [`Severity`] name; there is a message or an exception (the message
    /// defaults to `"Type: value"` of the exception); no text anywhere holds
    /// a NUL character (PostgreSQL cannot store one, and one such event would
    /// sink its whole batch); a given fingerprint is 1 to 256 characters.
    ///
    /// Without a fingerprint the event gets a deterministic one: the hex
    /// SHA-256 of the exception type followed by each frame's module (or
    /// file name) and function, so the same crash from the same code path
    /// groups together even when line numbers move. An exception without
    /// frames hashes its type and value; an event without an exception
    /// hashes its level and message.
    pub fn from_payload(project_id: Uuid, payload: EventPayload) -> Result<Event> {
        Self::from_payload_received_at(project_id, payload, Utc::now())
    }

    /// [`Event::from_payload`] for an event received at `received_at`
    /// rather than now: for replaying or importing events, whose day then
    /// picks their partition.
    pub fn from_payload_received_at(
        project_id: Uuid,
        payload: EventPayload,
        received_at: DateTime<Utc>,
    ) -> Result<Event> {
        let level = match payload.level.as_deref() {
            Some(l) => l.parse()?,
            None => Severity::default(),
        };
        let message = match (payload.message, &payload.exception) {
            (Some(m), _) if !m.trim().is_empty() => m,
            (_, Some(e)) => format!("{}: {}", e.kind, e.value),
            _ => {
                return Err(Error::invalid(
                    "message",
                    "an event needs a message or an exception",
                ));
            }
        };
        let fingerprint = match payload.fingerprint {
            Some(f) => f.trim().to_owned(),
            None => default_fingerprint(
                level,
                &message,
                payload.exception.as_ref(),
                payload.stacktrace.as_deref().unwrap_or_default(),
            ),
        };
        let event = Event {
            id: super::new_id(),
            project_id,
            issue_id: None,
            level,
            message,
            fingerprint,
            exception: payload
                .exception
                .as_ref()
                .map(RawJson::encode)
                .transpose()?,
            stacktrace: payload
                .stacktrace
                .as_ref()
                .map(RawJson::encode)
                .transpose()?,
            breadcrumbs: payload
                .breadcrumbs
                .as_ref()
                .map(RawJson::encode)
                .transpose()?,
            tags: RawJson::encode(&payload.tags)?,
            extra: RawJson::encode(&payload.extra)?,
            user_context: payload
                .user_context
                .as_ref()
                .map(RawJson::encode)
                .transpose()?,
            sdk_name: payload.sdk_name,
            sdk_version: payload.sdk_version,
            received_at,
        };
        event.check()?;
        Ok(event)
    }

    /// The rules every event obeys however it was made: a message, a
    /// fingerprint of 1 to 256 characters, at most 1 MiB in all, no NUL.
    fn check(&self) -> Result<()> {
        if self.message.trim().is_empty() {
            return Err(Error::invalid(
                "message",
                "an event needs a message or an exception",
            ));
        }
        let fingerprint = self.fingerprint.as_str();
        if fingerprint.trim().is_empty()
            || fingerprint.trim() != fingerprint
            || fingerprint.chars().count() > MAX_FINGERPRINT_CHARS
        {
            return Err(Error::invalid("fingerprint", "must be 1 to 256 characters"));
        }
        let texts = [
            Some(&self.message),
            Some(&self.fingerprint),
            self.sdk_name.as_ref(),
            self.sdk_version.as_ref(),
        ];
        let jsons = [
            self.exception.as_ref(),
            self.stacktrace.as_ref(),
            self.breadcrumbs.as_ref(),
            Some(&self.tags),
            Some(&self.extra),
            self.user_context.as_ref(),
        ];
        let texts = texts.into_iter().flatten().map(String::as_str);
        let jsons = jsons.into_iter().flatten().map(RawJson::get);
        let size: usize = texts.clone().chain(jsons.clone()).map(str::len).sum();
        if size > MAX_EVENT_BYTES {
            return Err(Error::invalid("event", "must be at most 1 MiB"));
        }
        if texts.clone().any(|t| t.contains('\0'))
            || jsons.clone().any(|j| json_has_nul(j.as_bytes()))
        {
            return Err(Error::invalid("event", "must not contain NUL characters"));
        }
        Ok(())
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    pub fn issue_id(&self) -> Option<Uuid> {
        self.issue_id
    }

    pub fn level(&self) -> Severity {
        self.level
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Decodes to [`ExceptionInfo`].
    pub fn exception(&self) -> Option<&RawJson> {
        self.exception.as_ref()
    }

    /// Decodes to `Vec<StackFrame>`.
    pub fn stacktrace(&self) -> Option<&RawJson> {
        self.stacktrace.as_ref()
    }

    /// Decodes to `Vec<Breadcrumb>`.
    pub fn breadcrumbs(&self) -> Option<&RawJson> {
        self.breadcrumbs.as_ref()
    }

    /// Decodes to `BTreeMap<String, String>`; `{}` when the payload had none.
    pub fn tags(&self) -> &RawJson {
        &self.tags
    }

    /// A JSON object; `{}` when the payload had none.
    pub fn extra(&self) -> &RawJson {
        &self.extra
    }

    /// Any JSON value describing the affected user.
    pub fn user_context(&self) -> Option<&RawJson> {
        self.user_context.as_ref()
    }

    pub fn sdk_name(&self) -> Option<&str> {
        self.sdk_name.as_deref()
    }

    pub fn sdk_version(&self) -> Option<&str> {
        self.sdk_version.as_deref()
    }

    pub fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }
}

fn default_fingerprint(
    level: Severity,
    message: &str,
    exception: Option<&ExceptionInfo>,
    frames: &[StackFrame],
) -> String {
    let mut h = Sha256::new();
    // Each part is followed by a NUL (which no part can contain) so that
    // ("ab", "c") and ("a", "bc") hash differently.
    let mut part = |s: &str| {
        h.update(s.as_bytes());
        h.update([0]);
    };
    match exception {
        Some(e) if !frames.is_empty() => {
            part(&e.kind);
            for f in frames {
                part(f.module.as_deref().or(f.filename.as_deref()).unwrap_or(""));
                part(f.function.as_deref().unwrap_or(""));
            }
        }
        Some(e) => {
            part(&e.kind);
            part(&e.value);
        }
        None => {
            part(level.as_str());
            part(message);
        }
    }
    let mut out = String::with_capacity(64);
    for b in h.finalize() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Whether serde_json output encodes a NUL character. In its output a
/// backslash always starts an escape, so walking escapes is exact: a
/// literal backslash followed by "u0000" is `\\u0000` and is skipped.
fn json_has_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(message: &str) -> EventPayload {
        EventPayload {
            message: Some(message.into()),
            ..Default::default()
        }
    }

    fn with_exception(frames: Vec<StackFrame>) -> EventPayload {
        EventPayload {
            exception: Some(ExceptionInfo {
                kind: "TypeError".into(),
                value: "x is undefined".into(),
                module: None,
            }),
            stacktrace: Some(frames),
            ..Default::default()
        }
    }

    fn frame(file: &str, func: &str, line: u32) -> StackFrame {
        StackFrame {
            filename: Some(file.into()),
            function: Some(func.into()),
            lineno: Some(line),
            ..Default::default()
        }
    }

    #[test]
    fn severity_parses_known_levels_only() {
        for s in ["fatal", "error", "warning", "info", "debug"] {
            assert_eq!(s.parse::<Severity>().unwrap().as_str(), s);
        }
        for bad in ["ERROR", "critical", "", "érror"] {
            assert!(matches!(
                bad.parse::<Severity>(),
                Err(Error::InvalidInput { field: "level", .. })
            ));
        }
    }

    #[test]
    fn an_event_gets_an_id_a_time_and_default_level() {
        let project = Uuid::now_v7();
        let e = Event::from_payload(project, payload("boom")).unwrap();
        assert_eq!(e.project_id, project);
        assert_eq!(e.level, Severity::Error);
        assert_eq!(e.id.get_version_num(), 7);
        assert!(e.issue_id.is_none());
        let mut p = payload("boom");
        p.level = Some("critical".into());
        assert!(matches!(
            Event::from_payload(project, p),
            Err(Error::InvalidInput { field: "level", .. })
        ));
    }

    #[test]
    fn message_defaults_to_the_exception() {
        let e = Event::from_payload(Uuid::now_v7(), with_exception(vec![])).unwrap();
        assert_eq!(e.message, "TypeError: x is undefined");
        assert!(matches!(
            Event::from_payload(Uuid::now_v7(), EventPayload::default()),
            Err(Error::InvalidInput {
                field: "message",
                ..
            })
        ));
    }

    #[test]
    fn default_fingerprint_is_deterministic_and_ignores_line_numbers() {
        let id = Uuid::now_v7();
        let a = Event::from_payload(id, with_exception(vec![frame("app.js", "main", 10)])).unwrap();
        let b = Event::from_payload(id, with_exception(vec![frame("app.js", "main", 99)])).unwrap();
        let c =
            Event::from_payload(id, with_exception(vec![frame("app.js", "other", 10)])).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
        assert_eq!(a.fingerprint.len(), 64);
        let m1 = Event::from_payload(id, payload("disk full")).unwrap();
        let m2 = Event::from_payload(id, payload("disk full")).unwrap();
        let m3 = Event::from_payload(id, payload("disk ful")).unwrap();
        assert_eq!(m1.fingerprint, m2.fingerprint);
        assert_ne!(m1.fingerprint, m3.fingerprint);
    }

    #[test]
    fn given_fingerprints_are_kept_and_bounded() {
        let mut p = payload("x");
        p.fingerprint = Some("  checkout-failure  ".into());
        assert_eq!(
            Event::from_payload(Uuid::now_v7(), p).unwrap().fingerprint,
            "checkout-failure"
        );
        let mut p = payload("x");
        p.fingerprint = Some("指".repeat(257));
        assert!(matches!(
            Event::from_payload(Uuid::now_v7(), p),
            Err(Error::InvalidInput {
                field: "fingerprint",
                ..
            })
        ));
    }

    #[test]
    fn events_over_one_mebibyte_are_rejected() {
        let big = payload(&"x".repeat(MAX_EVENT_BYTES));
        assert!(matches!(
            Event::from_payload(Uuid::now_v7(), big),
            Err(Error::InvalidInput {
                field: "event",
                rule: "must be at most 1 MiB"
            })
        ));
        assert!(
            Event::from_payload(Uuid::now_v7(), payload(&"x".repeat(MAX_EVENT_BYTES - 1000)))
                .is_ok()
        );
        let raw = vec![b' '; MAX_EVENT_BYTES + 1];
        assert!(matches!(
            EventPayload::from_json(&raw),
            Err(Error::InvalidInput { field: "event", .. })
        ));
    }

    #[test]
    fn nul_characters_are_rejected_anywhere_but_backslashes_are_fine() {
        let mut p = payload("ok");
        p.tags.insert("k".into(), "a\0b".into());
        assert!(Event::from_payload(Uuid::now_v7(), p).is_err());
        assert!(Event::from_payload(Uuid::now_v7(), payload("nul\0here")).is_err());
        let literal = r"C:\path\u0000 is text, not NUL";
        assert_eq!(
            Event::from_payload(Uuid::now_v7(), payload(literal))
                .unwrap()
                .message,
            literal
        );
    }

    #[test]
    fn deserializing_checks_the_same_rules() {
        let e = Event::from_payload(Uuid::now_v7(), payload("boom")).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), e);
        let nul = json.replace("boom", "bo\\u0000om");
        assert!(serde_json::from_str::<Event>(&nul).is_err());
        let long = json.replace(&e.fingerprint, &"f".repeat(257));
        assert!(serde_json::from_str::<Event>(&long).is_err());
        let blank = json.replace(&e.fingerprint, "   ");
        assert!(serde_json::from_str::<Event>(&blank).is_err());
        let tags = json.replace(r#""tags":{}"#, r#""tags":5"#);
        assert_ne!(tags, json);
        assert!(serde_json::from_str::<Event>(&tags).is_err());
    }

    #[test]
    fn payloads_parse_from_json_with_unicode() {
        let json = r#"{"message":"Ошибка 💥 ' ; --","level":"warning","tags":{"env":"prod"},
            "exception":{"type":"E","value":"v"},"stacktrace":[{"filename":"a.py","lineno":3,"in_app":true}]}"#;
        let p = EventPayload::from_json(json.as_bytes()).unwrap();
        let e = Event::from_payload(Uuid::now_v7(), p).unwrap();
        assert_eq!(e.message, "Ошибка 💥 ' ; --");
        assert_eq!(e.level, Severity::Warning);
        let tags: BTreeMap<String, String> = e.tags.decode().unwrap();
        assert_eq!(tags["env"], "prod");
        let frames: Vec<StackFrame> = e.stacktrace.as_ref().unwrap().decode().unwrap();
        assert_eq!(frames[0].lineno, Some(3));
        assert!(frames[0].in_app);
        assert!(matches!(
            EventPayload::from_json(b"{not json"),
            Err(Error::InvalidInput { field: "event", .. })
        ));
    }
}
