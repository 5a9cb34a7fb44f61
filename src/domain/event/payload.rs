//! [`EventPayload`]: an event as a client sends it, read leniently.

use super::lenient::{self, Fields, Tags};
use super::message::{ClientSdk, LogEntry, MessageField, non_blank};
use super::{Breadcrumb, ExceptionInfo, MAX_EVENT_BYTES, Stacktrace, Thread};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use uuid::Uuid;

/// An event as a client sends it, not yet trusted: the JSON of an
/// envelope's `event` item, of the `store` endpoint, or of Mesher's own
/// API. It reads the shapes the Sentry SDKs send (Python, JavaScript, Rust
/// and the rest speak one protocol, each with its habits):
///
/// - `event_id` as 32 hex digits or a hyphenated UUID; `timestamp` as RFC
///   3339 text or Unix seconds; `level` in any case, with relay's aliases;
/// - `message` as text or `{message, params, formatted}`, and `logentry`;
/// - `exception`, `threads` and `breadcrumbs` as a bare list or as
///   `{"values": [...]}`; stack traces as `{"frames": [...]}`, frames
///   oldest first;
/// - `tags` as an object or a list of `[key, value]` pairs, values of any
///   kind stringified; `fingerprint` as a list of text;
/// - numbers where text is expected (a numeric release) as text;
/// - `null` wherever a value may be absent, and every field Mesher does not
///   know kept in `other` as it came (here and inside exceptions, frames,
///   threads, breadcrumbs).
///
/// Build one in code with `..Default::default()`:
///
/// ```
/// use mesher::domain::{EventPayload, ExceptionInfo};
/// let payload = EventPayload {
///     message: Some("checkout failed".into()),
///     exception: Some(vec![ExceptionInfo::new("TimeoutError", "after 30 s")]),
///     ..Default::default()
/// };
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventPayload {
    /// The SDK's id for the event; Mesher assigns one when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// When the event happened; the time of receipt when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// A [`super::Severity`] name or alias; `error` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// The message as text. An object sent here (older clients) is read
    /// into `logentry`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A parameterized message: template, parameters, formatted text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logentry: Option<LogEntry>,
    /// The exception chain, the raised exception last.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_values")]
    pub exception: Option<Vec<ExceptionInfo>>,
    /// A stack trace outside any exception (older SDKs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<Stacktrace>,
    /// The process's threads; one may carry the stack trace of a message.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_values")]
    pub threads: Option<Vec<Thread>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breadcrumbs: Option<Vec<Breadcrumb>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Overrides grouping; `{{ default }}` stands for the default grouping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contexts: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sdk: Option<ClientSdk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dist: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logger: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Map<String, Value>>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn as_values<S: Serializer, T: Serialize>(
    values: &Option<Vec<T>>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Values<'a, T> {
        values: &'a [T],
    }
    match values {
        Some(values) => Values { values }.serialize(s),
        None => s.serialize_none(),
    }
}

/// The fields [`EventPayload`] reads; an error in one of their values is
/// reported under its name.
const FIELDS: [&str; 24] = [
    "event_id",
    "timestamp",
    "level",
    "message",
    "logentry",
    "exception",
    "stacktrace",
    "threads",
    "breadcrumbs",
    "tags",
    "fingerprint",
    "extra",
    "user",
    "contexts",
    "request",
    "sdk",
    "platform",
    "release",
    "environment",
    "transaction",
    "server_name",
    "dist",
    "logger",
    "modules",
];

impl Fields for EventPayload {
    const EXPECTING: &'static str = "an event object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        // Through the list, so that a field read here is always one an
        // error can name.
        let Some(field) = FIELDS.iter().find(|f| **f == key) else {
            return Ok(false);
        };
        match *field {
            "event_id" => self.event_id = map.next_value::<lenient::EventId>()?.0,
            "timestamp" => self.timestamp = lenient::stamp(map)?,
            "level" => self.level = lenient::text(map)?,
            "message" => match map.next_value::<Option<MessageField>>()? {
                None => self.message = None,
                Some(MessageField::Text(text)) => self.message = Some(text),
                // An explicit `logentry` wins over the legacy object.
                Some(MessageField::Entry(entry)) if self.logentry.is_none() => {
                    self.logentry = Some(entry)
                }
                Some(MessageField::Entry(entry)) => {
                    self.message = self.message.take().or(entry.text().map(str::to_owned))
                }
            },
            "logentry" => self.logentry = map.next_value()?,
            "exception" => self.exception = lenient::values(map)?,
            "stacktrace" => self.stacktrace = map.next_value()?,
            "threads" => self.threads = lenient::values(map)?,
            "breadcrumbs" => self.breadcrumbs = lenient::values(map)?,
            "tags" => self.tags = map.next_value::<Tags>()?.0,
            "fingerprint" => self.fingerprint = lenient::texts(map)?,
            "extra" => self.extra = lenient::object(map)?.unwrap_or_default(),
            "user" => self.user = lenient::object(map)?,
            "contexts" => self.contexts = lenient::object(map)?,
            "request" => self.request = lenient::object(map)?,
            "sdk" => self.sdk = map.next_value()?,
            "platform" => self.platform = lenient::text(map)?,
            "release" => self.release = lenient::text(map)?,
            "environment" => self.environment = lenient::text(map)?,
            "transaction" => self.transaction = lenient::text(map)?,
            "server_name" => self.server_name = lenient::text(map)?,
            "dist" => self.dist = lenient::text(map)?,
            "logger" => self.logger = lenient::text(map)?,
            "modules" => self.modules = lenient::object(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

/// Reads a payload, noting in `failed` the top-level field whose value
/// failed to read.
struct PayloadSeed<'a> {
    failed: &'a mut Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = EventPayload;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EventPayload, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PayloadSeed<'_> {
    type Value = EventPayload;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EventPayload::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EventPayload, A::Error> {
        let mut payload = EventPayload::default();
        lenient::read_fields(map, &mut payload, |key| {
            *self.failed = FIELDS.iter().find(|f| **f == key).copied();
        })?;
        Ok(payload)
    }
}

impl<'de> Deserialize<'de> for EventPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PayloadSeed { failed: &mut None }.deserialize(d)
    }
}

/// What a field's value must be, for the error that names it.
fn rule_for(field: &str) -> &'static str {
    match field {
        "event_id" => "must be 32 hex digits or a UUID",
        "timestamp" => "must be RFC 3339 text or Unix seconds, in years 1 to 9999",
        "tags" => "must be an object or a list of [key, value] pairs",
        "extra" | "user" | "contexts" | "request" | "modules" => "must be a JSON object",
        "fingerprint" => "must be a list of text",
        _ => "must have a shape the Sentry event protocol allows",
    }
}

impl EventPayload {
    /// Parses a payload from the bytes a client sent, refusing anything over
    /// [`MAX_EVENT_BYTES`] before spending time on it. A value of a shape no
    /// SDK sends is refused naming its top-level field (`exception`,
    /// `timestamp`, ...); JSON that does not parse, or is not an object, is
    /// refused as `event`.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_EVENT_BYTES {
            return Err(Error::invalid("event", "must be at most 1 MiB"));
        }
        let mut failed = None;
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let parsed = PayloadSeed {
            failed: &mut failed,
        }
        .deserialize(&mut de)
        .and_then(|payload| de.end().map(|()| payload));
        parsed.map_err(|e| match (e.classify(), failed) {
            (serde_json::error::Category::Data, Some(field)) => {
                Error::invalid(field, rule_for(field))
            }
            _ => Error::invalid("event", "must be a JSON object in the Sentry event format"),
        })
    }

    /// The exception raised: the last of the chain.
    pub fn raised_exception(&self) -> Option<&ExceptionInfo> {
        self.exception.as_deref()?.last()
    }

    /// The message people read: `logentry.formatted`, else `message`, else
    /// the template `logentry.message`. Blank text counts as none.
    pub fn message_text(&self) -> Option<&str> {
        let entry = self.logentry.as_ref();
        non_blank(entry.and_then(|e| e.formatted.as_deref()))
            .or(non_blank(self.message.as_deref()))
            .or(non_blank(entry.and_then(|e| e.message.as_deref())))
    }

    /// The message as grouping sees it: the template `logentry.message`
    /// (before parameters are filled in), else the text.
    pub fn message_template(&self) -> Option<&str> {
        non_blank(self.logentry.as_ref().and_then(|e| e.message.as_deref()))
            .or_else(|| self.message_text())
    }

    /// The stack trace outside the exception: the top-level one, else the
    /// crashed thread's, else the current thread's, else that of the only
    /// thread that has one.
    pub fn event_stacktrace(&self) -> Option<&Stacktrace> {
        if let Some(trace) = &self.stacktrace {
            return Some(trace);
        }
        let threads = self.threads.as_deref().unwrap_or_default();
        let with_trace = || threads.iter().filter(|t| t.stacktrace.is_some());
        let pick = with_trace()
            .find(|t| t.crashed == Some(true))
            .or_else(|| with_trace().find(|t| t.current == Some(true)))
            .or_else(|| {
                let mut all = with_trace();
                all.next().filter(|_| all.next().is_none())
            });
        pick.and_then(|t| t.stacktrace.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(json: Value) -> Result<EventPayload> {
        EventPayload::from_json(json.to_string().as_bytes())
    }

    #[test]
    fn bad_shapes_name_their_field() {
        let cases = [
            (json!({"event_id": "not-an-id"}), "event_id"),
            (json!({"event_id": 7}), "event_id"),
            (json!({"timestamp": "yesterday"}), "timestamp"),
            (json!({"timestamp": [1]}), "timestamp"),
            (json!({"exception": 5}), "exception"),
            (
                json!({"exception": {"values": [{"type": ["a"]}]}}),
                "exception",
            ),
            (
                json!({"exception": [{"stacktrace": {"frames": [{"lineno": "x"}]}}]}),
                "exception",
            ),
            (json!({"stacktrace": "main.rs"}), "stacktrace"),
            (
                json!({"threads": {"values": [{"crashed": "maybe"}]}}),
                "threads",
            ),
            (
                json!({"breadcrumbs": [{"timestamp": "soon"}]}),
                "breadcrumbs",
            ),
            (json!({"tags": "a=b"}), "tags"),
            (json!({"fingerprint": {"a": 1}}), "fingerprint"),
            (json!({"extra": [1]}), "extra"),
            (json!({"user": "bob"}), "user"),
            (json!({"contexts": 1}), "contexts"),
            (json!({"request": true}), "request"),
            (json!({"sdk": "python"}), "sdk"),
            (json!({"release": {"v": 1}}), "release"),
            (json!({"logentry": {"message": []}}), "logentry"),
            (json!({"message": {"formatted": {}}}), "message"),
            (json!({"modules": []}), "modules"),
            (json!({"level": []}), "level"),
        ];
        for (json, field) in cases {
            match read(json.clone()) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
        for bad in [
            &b"{not json"[..],
            b"[]",
            b"12",
            b"",
            b"{\"a\": 1} x",
            b"{\"a\": 1,}",
        ] {
            assert!(
                matches!(
                    EventPayload::from_json(bad),
                    Err(Error::InvalidInput { field: "event", .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn every_listed_field_is_read_and_every_field_read_is_listed() {
        // A field read but missing from FIELDS, or listed but not read,
        // would land in `other`.
        let json = json!({
            "event_id": "fc6d8c0c43fc4630ad850ee518f1b9d0", "timestamp": 1, "level": "info",
            "message": "m", "logentry": {"message": "m"}, "exception": [], "stacktrace": [],
            "threads": [], "breadcrumbs": [], "tags": {}, "fingerprint": [], "extra": {},
            "user": {}, "contexts": {}, "request": {}, "sdk": {}, "platform": "p",
            "release": "r", "environment": "e", "transaction": "t", "server_name": "s",
            "dist": "d", "logger": "l", "modules": {},
        });
        assert_eq!(json.as_object().unwrap().len(), FIELDS.len());
        let p = read(json).unwrap();
        assert!(p.other.is_empty(), "{:?}", p.other);
    }

    #[test]
    fn unknown_and_known_fields_round_trip() {
        let json = json!({
            "event_id": "fc6d8c0c43fc4630ad850ee518f1b9d0",
            "timestamp": 1304358096.5,
            "message": "boom",
            "exception": [{"type": "E", "value": "v"}],
            "threads": [{"id": 1, "current": true, "stacktrace": {"frames": [{"function": "f"}]}}],
            "tags": [["a", "b"]],
            "fingerprint": ["{{ default }}", 7],
            "_meta": {"x": 1},
            "type": "error",
            "server_name": "web-1",
        });
        let p = read(json).unwrap();
        assert_eq!(p.fingerprint.as_deref().unwrap(), ["{{ default }}", "7"]);
        assert_eq!(p.other["_meta"], json!({"x": 1}));
        assert_eq!(p.server_name.as_deref(), Some("web-1"));
        assert_eq!(
            p.event_stacktrace().unwrap().frames[0].function.as_deref(),
            Some("f")
        );
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["exception"]["values"][0]["type"], "E");
        assert_eq!(back["threads"]["values"][0]["id"], 1);
        assert_eq!(back["tags"], json!({"a": "b"}));
        assert_eq!(back["type"], "error");
        let again: EventPayload = serde_json::from_value(back).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn messages_as_text_objects_or_logentry() {
        let text = read(json!({"message": "user 17 not found"})).unwrap();
        assert_eq!(text.message_text(), Some("user 17 not found"));
        assert_eq!(text.message_template(), Some("user 17 not found"));
        let object = read(json!({"message": {"message": "user %s not found", "params": [4]}}));
        let object = object.unwrap();
        assert_eq!(object.message, None);
        assert_eq!(object.message_text(), Some("user %s not found"));
        let logentry = read(json!({"logentry": {
            "message": "user %s not found", "formatted": "user 4 not found", "params": [4]
        }}))
        .unwrap();
        assert_eq!(logentry.message_text(), Some("user 4 not found"));
        assert_eq!(logentry.message_template(), Some("user %s not found"));
        let blank = read(json!({"message": "  ", "logentry": {"formatted": ""}})).unwrap();
        assert_eq!(blank.message_text(), None);
        assert_eq!(read(json!({"message": null})).unwrap().message, None);
    }

    #[test]
    fn the_event_stacktrace_prefers_top_level_then_crashed_then_current() {
        let frames = |f: &str| json!({"frames": [{"function": f}]});
        let pick = |json: Value| {
            read(json)
                .unwrap()
                .event_stacktrace()
                .map(|s| s.frames[0].function.clone().unwrap())
        };
        let threads = json!([
            {"stacktrace": frames("other")},
            {"current": true, "stacktrace": frames("current")},
            {"crashed": true, "stacktrace": frames("crashed")},
        ]);
        assert_eq!(
            pick(json!({"stacktrace": frames("top"), "threads": threads})).as_deref(),
            Some("top")
        );
        assert_eq!(
            pick(json!({"threads": threads})).as_deref(),
            Some("crashed")
        );
        assert_eq!(
            pick(json!({"threads": {"values": [{"stacktrace": frames("only")}, {"id": 2}]}}))
                .as_deref(),
            Some("only")
        );
        assert_eq!(
            pick(json!({"threads": [{"stacktrace": frames("a")}, {"stacktrace": frames("b")}]})),
            None
        );
        assert_eq!(pick(json!({})), None);
    }
}
