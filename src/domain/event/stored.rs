//! [`Event`]: a payload checked and grouped, ready to store; and
//! [`EventParts`], what an event page shows of it.
//!
//! An event is parsed once, when it arrives: the typed payload gives the
//! grouping fingerprint, the title and culprit, and the few columns
//! lists and filters read; the event's JSON itself goes to storage as one
//! compressed [`EventBody`], as the client sent it. Reading an event back
//! parses that JSON again into the same payload and builds its
//! [`EventParts`], which are what the API and the pages show.

use super::body::EventBody;
use super::message::ClientSdk;
use super::tags::{Tag, event_tags};
use super::{
    Breadcrumb, EventPayload, ExceptionInfo, LogEntry, MAX_EVENT_BYTES, RawJson, Severity, Thread,
};
use crate::domain::{grouping, new_id};
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

/// How far ahead of its receipt an event's own timestamp may be before it
/// is taken for a wrong clock and replaced by the time of receipt.
pub const MAX_CLOCK_DRIFT: Duration = Duration::minutes(1);

/// A validated event, ready to store: ids, times, the texts an issue list
/// shows (title, culprit), the grouping fingerprint, the filter columns,
/// and the event's JSON, compressed.
///
/// Fields are private: an event comes only from [`Event::from_payload`]
/// and its siblings, so a value that would sink a batch cannot be
/// assigned. Deserializing (the spool reads its batches back so) checks
/// the same rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// The derives become inherent functions, wrapped below so that
// deserializing cannot skip `check`.
#[serde(remote = "Self")]
pub struct Event {
    /// The SDK's `event_id`, or one Mesher assigned.
    pub(crate) id: Uuid,
    pub(crate) project_id: Uuid,
    pub(crate) level: Severity,
    /// The title, if this event is its latest.
    pub(crate) title: String,
    pub(crate) culprit: Option<String>,
    /// Which issue of its project the event belongs to.
    pub(crate) fingerprint: String,
    pub(crate) occurred_at: DateTime<Utc>,
    /// Picks the daily partition the event lands in (UTC).
    pub(crate) received_at: DateTime<Utc>,
    /// Filters of the issue list.
    pub(crate) release: Option<String>,
    pub(crate) environment: Option<String>,
    /// What the event is searched and broken down by (see [`super::tags`]),
    /// its user among them: derived once here, from the parsed payload,
    /// rather than by every reader.
    pub(crate) indexed_tags: Vec<Tag>,
    /// Everything else: the event's JSON.
    pub(crate) body: EventBody,
    /// Keeps the record that made the event durable (the acknowledgement
    /// log's segment) until the event is settled and dropped; never
    /// encoded.
    #[serde(skip)]
    pub(crate) hold: Hold,
}

/// Something that must stay alive as long as an event is unsettled: the
/// acknowledgement log's segment holding the event, deleted once every
/// event in it has been dropped (stored, spooled or given up, and
/// counted). Type-erased, so that the domain knows nothing of the log.
/// One pointer wide (an `Arc` of a box, not of the trait object), so that
/// events do not grow by more than a word.
#[derive(Clone, Default)]
pub struct Hold(Option<std::sync::Arc<Box<dyn std::any::Any + Send + Sync>>>);

impl Hold {
    pub fn new(held: impl std::any::Any + Send + Sync) -> Hold {
        Hold(Some(std::sync::Arc::new(Box::new(held))))
    }
}

/// Events are equal by what they say, whatever holds them.
impl PartialEq for Hold {
    fn eq(&self, _: &Hold) -> bool {
        true
    }
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Hold" } else { "NoHold" })
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        Event::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let event = Event::deserialize(deserializer)?;
        event.check().map_err(serde::de::Error::custom)?;
        Ok(event)
    }
}

/// The payload's fields that have no part of their own, encoded as one
/// object (see [`EventParts::other`]).
#[derive(Serialize)]
struct Other<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logentry: Option<&'a LogEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<ValuesRef<'a, Thread>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sdk: Option<&'a ClientSdk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dist: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logger: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    modules: Option<&'a Map<String, Value>>,
    #[serde(flatten)]
    rest: &'a Map<String, Value>,
}

impl Other<'_> {
    fn is_empty(&self) -> bool {
        let Other {
            message,
            logentry,
            threads,
            fingerprint,
            sdk,
            server_name,
            dist,
            logger,
            modules,
            rest,
        } = self;
        message.is_none()
            && logentry.is_none()
            && threads.is_none()
            && fingerprint.is_none()
            && sdk.is_none()
            && server_name.is_none()
            && dist.is_none()
            && logger.is_none()
            && modules.is_none()
            && rest.is_empty()
    }
}

/// A list encoded as `{"values": [...]}`, as Sentry writes chains.
#[derive(Serialize)]
struct ValuesRef<'a, T> {
    values: &'a [T],
}

/// Trimmed text, `None` when blank.
fn column(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn encode_some<T: Serialize + ?Sized>(value: Option<&T>) -> Result<Option<RawJson>> {
    value.map(RawJson::encode).transpose()
}

/// What an event page shows of an event: its message and its JSON parts,
/// each normalized (exceptions and threads as `{"values": [...]}`, stack
/// traces as `{"frames": [...]}`), built from the payload when the event is
/// read back (see [`Event::parts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct EventParts {
    pub(crate) message: String,
    pub(crate) platform: Option<String>,
    pub(crate) transaction: Option<String>,
    pub(crate) sdk_name: Option<String>,
    pub(crate) sdk_version: Option<String>,
    pub(crate) exception: Option<RawJson>,
    pub(crate) stacktrace: Option<RawJson>,
    pub(crate) breadcrumbs: Option<RawJson>,
    pub(crate) tags: RawJson,
    pub(crate) extra: RawJson,
    pub(crate) user: Option<RawJson>,
    pub(crate) contexts: Option<RawJson>,
    pub(crate) request: Option<RawJson>,
    pub(crate) other: Option<RawJson>,
}

impl EventParts {
    /// The parts of `payload`.
    pub fn of(p: &EventPayload) -> Result<EventParts> {
        let message = grouping::message(p);
        let exception = match p.exception.as_deref() {
            Some(values) if !values.is_empty() => {
                Some(RawJson::encode(&ValuesRef::<ExceptionInfo> { values })?)
            }
            _ => None,
        };
        let breadcrumbs: Option<&[Breadcrumb]> = p.breadcrumbs.as_deref().filter(|b| !b.is_empty());
        let sdk = p.sdk.as_ref();
        let other = Other {
            // The raw `message` when the formatted text shown is another.
            message: p.message.as_deref().filter(|m| *m != message),
            logentry: p.logentry.as_ref(),
            threads: p.threads.as_deref().map(|values| ValuesRef { values }),
            fingerprint: p.fingerprint.as_deref().filter(|f| !f.is_empty()),
            sdk: sdk.filter(|s| !s.other.is_empty()),
            server_name: p.server_name.as_deref(),
            dist: p.dist.as_deref(),
            logger: p.logger.as_deref(),
            modules: p.modules.as_ref(),
            rest: &p.other,
        };
        Ok(EventParts {
            platform: column(p.platform.as_deref()),
            transaction: column(p.transaction.as_deref()),
            sdk_name: column(sdk.and_then(|s| s.name.as_deref())),
            sdk_version: column(sdk.and_then(|s| s.version.as_deref())),
            exception,
            stacktrace: encode_some(p.event_stacktrace())?,
            breadcrumbs: encode_some(breadcrumbs)?,
            tags: RawJson::encode(&p.tags)?,
            extra: RawJson::encode(&p.extra)?,
            user: encode_some(p.user.as_ref())?,
            contexts: encode_some(p.contexts.as_ref())?,
            request: encode_some(p.request.as_ref())?,
            other: match other.is_empty() {
                true => None,
                false => Some(RawJson::encode(&other)?),
            },
            message,
        })
    }

    /// The formatted message, else `Type: value` of the raised exception,
    /// else `<unlabeled event>`.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn platform(&self) -> Option<&str> {
        self.platform.as_deref()
    }

    pub fn transaction(&self) -> Option<&str> {
        self.transaction.as_deref()
    }

    pub fn sdk_name(&self) -> Option<&str> {
        self.sdk_name.as_deref()
    }

    pub fn sdk_version(&self) -> Option<&str> {
        self.sdk_version.as_deref()
    }

    /// The whole exception chain, `{"values": [...]}` with every value's
    /// frames, the raised exception last.
    pub fn exception(&self) -> Option<&RawJson> {
        self.exception.as_ref()
    }

    /// `{"frames": [...]}`: the top-level stack trace, else the crashed
    /// (or current) thread's.
    pub fn stacktrace(&self) -> Option<&RawJson> {
        self.stacktrace.as_ref()
    }

    /// A list of breadcrumbs; `None` when the payload had none.
    pub fn breadcrumbs(&self) -> Option<&RawJson> {
        self.breadcrumbs.as_ref()
    }

    /// An object of text to text; `{}` when the payload had none.
    pub fn tags(&self) -> &RawJson {
        &self.tags
    }

    /// A JSON object; `{}` when the payload had none.
    pub fn extra(&self) -> &RawJson {
        &self.extra
    }

    /// The affected user, an object.
    pub fn user(&self) -> Option<&RawJson> {
        self.user.as_ref()
    }

    /// Device, OS, runtime, browser, trace...: an object of objects.
    pub fn contexts(&self) -> Option<&RawJson> {
        self.contexts.as_ref()
    }

    /// The HTTP request being served, an object.
    pub fn request(&self) -> Option<&RawJson> {
        self.request.as_ref()
    }

    /// An object of every payload field without a part above: logentry,
    /// threads, the custom fingerprint, the whole sdk (when it says more
    /// than name and version), server_name, dist, logger, modules, and
    /// fields Mesher does not know; `None` when there are none.
    pub fn other(&self) -> Option<&RawJson> {
        self.other.as_ref()
    }
}

impl Event {
    /// Validates `payload` for `project_id`, received now.
    /// See [`Event::from_payload_received_at`].
    pub fn from_payload(project_id: Uuid, payload: EventPayload) -> Result<Event> {
        Self::from_payload_received_at(project_id, payload, Utc::now())
    }

    /// Parses and validates an event sent as JSON (an envelope's `event`
    /// item, the `store` endpoint's body, Mesher's own API), received now.
    /// Bodies over [`MAX_EVENT_BYTES`] are refused before parsing;
    /// malformed JSON is `InvalidInput { field: "event" }`, a value of the
    /// wrong shape names its field (see [`EventPayload::from_json`]).
    pub fn from_json(project_id: Uuid, bytes: &[u8]) -> Result<Event> {
        Self::from_json_named(project_id, bytes, None)
    }

    /// As [`Event::from_json`]; `fallback_id` (an envelope header's
    /// `event_id`) is the event's id when the payload names none. The JSON
    /// is stored as sent: parsed once, never written out again.
    pub fn from_json_named(
        project_id: Uuid,
        bytes: &[u8],
        fallback_id: Option<Uuid>,
    ) -> Result<Event> {
        let mut payload = EventPayload::from_json(bytes)?;
        if payload.event_id.is_none() {
            payload.event_id = fallback_id;
        }
        Self::from_parsed_json(project_id, &payload, bytes)
    }

    /// As [`Event::from_json_named`], for a `payload` the caller parsed
    /// from `bytes` (and perhaps gave the fallback id) to look at first:
    /// the JSON is stored as sent, so the payload must be the one `bytes`
    /// hold.
    pub fn from_parsed_json(
        project_id: Uuid,
        payload: &EventPayload,
        bytes: &[u8],
    ) -> Result<Event> {
        Self::build(project_id, payload, Utc::now(), EventBody::compress(bytes)?)
    }

    /// Validates `payload` for `project_id`, received at `received_at`
    /// (replays and imports pass the original time, whose day picks the
    /// partition).
    ///
    /// - The id is the payload's `event_id`; Mesher assigns a UUIDv7 when
    ///   it is absent or nil.
    /// - `occurred_at` is the payload's `timestamp`, or `received_at` when
    ///   absent or more than [`MAX_CLOCK_DRIFT`] ahead of it.
    /// - `level` must name a [`Severity`]; `error` when absent.
    /// - Title, culprit and fingerprint come from
    ///   [`crate::domain::grouping`]. An event with neither message nor
    ///   exception is accepted, as Sentry accepts it.
    /// - At most [`MAX_EVENT_BYTES`] of JSON; no NUL character in what
    ///   becomes a text column (title, culprit, release, environment, user),
    ///   which PostgreSQL cannot store, and one such event would sink its
    ///   whole batch. The JSON itself may hold anything it can encode.
    pub fn from_payload_received_at(
        project_id: Uuid,
        payload: EventPayload,
        received_at: DateTime<Utc>,
    ) -> Result<Event> {
        let json = serde_json::to_vec(&payload)
            .map_err(|_| Error::invalid("event", "must be encodable as JSON"))?;
        if json.len() > MAX_EVENT_BYTES {
            return Err(Error::invalid("event", "must be at most 1 MiB"));
        }
        Self::build(
            project_id,
            &payload,
            received_at,
            EventBody::compress(&json)?,
        )
    }

    /// The event of `payload`, whose JSON `body` holds.
    fn build(
        project_id: Uuid,
        p: &EventPayload,
        received_at: DateTime<Utc>,
        body: EventBody,
    ) -> Result<Event> {
        let level = match p.level.as_deref() {
            Some(level) => level.parse()?,
            None => Severity::default(),
        };
        let id = match p.event_id {
            Some(id) if !id.is_nil() => id,
            _ => new_id(),
        };
        let occurred_at = match p.timestamp {
            Some(t) if t <= received_at + MAX_CLOCK_DRIFT => t,
            _ => received_at,
        };
        let event = Event {
            id,
            project_id,
            level,
            title: grouping::title(p),
            culprit: grouping::culprit(p),
            fingerprint: grouping::fingerprint(p),
            occurred_at,
            received_at,
            release: column(p.release.as_deref()),
            environment: column(p.environment.as_deref()),
            indexed_tags: event_tags(p, level),
            body,
            hold: Hold::default(),
        };
        event.check()?;
        Ok(event)
    }

    /// The payload the body holds, parsed again (for reading the event
    /// back: its parts, its frames).
    pub fn payload(&self) -> Result<EventPayload> {
        read_payload(&self.body)
    }

    /// Keeps `hold` alive until this event is dropped (see [`Hold`]).
    pub fn set_hold(&mut self, hold: Hold) {
        self.hold = hold;
    }

    /// What an event page shows of this event.
    pub fn parts(&self) -> Result<EventParts> {
        EventParts::of(&self.payload()?)
    }

    /// One project's batch as bytes for the spool (see
    /// [`crate::db::spool`]): a version byte, then the events in postcard,
    /// a compact binary form of their serde shape.
    pub(crate) fn encode_batch(events: &[Event]) -> Result<Vec<u8>> {
        let mut bytes = vec![BATCH_FORMAT];
        postcard::to_io(events, &mut bytes)
            .map_err(|e| Error::internal_from("encoding a batch for the spool", e))?;
        Ok(bytes)
    }

    /// A batch back from [`Event::encode_batch`]'s bytes (or from a spool
    /// an earlier release wrote, whose batches were JSON), each event
    /// checked again and required to belong to `project_id`.
    pub(crate) fn decode_batch(project_id: Uuid, bytes: &[u8]) -> Result<Vec<Event>> {
        let events: Vec<Event> = match bytes.split_first() {
            Some((&BATCH_FORMAT, rest)) => postcard::from_bytes(rest)
                .map_err(|e| Error::internal_from("decoding a spooled batch", e))?,
            _ => super::legacy::decode_batch(bytes)?,
        };
        if events.iter().any(|e| e.project_id != project_id) {
            return Err(Error::internal("a spooled batch mixes projects"));
        }
        Ok(events)
    }

    /// The event's text columns, each with the field a fault in it is
    /// reported under.
    fn texts(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("release", self.release.as_deref()),
            ("environment", self.environment.as_deref()),
            ("event", Some(self.title.as_str())),
            ("event", self.culprit.as_deref()),
            ("fingerprint", Some(self.fingerprint.as_str())),
        ]
    }

    /// Roughly the bytes the event takes in memory and in a statement: its
    /// compressed body, its text columns and its tags.
    pub fn size(&self) -> usize {
        let texts: usize = self
            .texts()
            .iter()
            .filter_map(|(_, t)| *t)
            .map(str::len)
            .sum();
        let tags: usize = self
            .indexed_tags
            .iter()
            .map(|t| t.key.len() + t.value.len())
            .sum();
        self.body.len() + texts + tags
    }

    /// The rule every event obeys: no NUL in a text column (PostgreSQL
    /// cannot store one), reported under the part that holds it.
    fn check(&self) -> Result<()> {
        if let Some((field, _)) = self
            .texts()
            .iter()
            .find(|(_, t)| t.is_some_and(|t| t.contains('\0')))
        {
            return Err(Error::invalid(field, "must not contain NUL characters"));
        }
        Ok(())
    }

    /// The SDK's `event_id` (what the application logged), or the UUIDv7
    /// Mesher assigned when it sent none.
    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn project_id(&self) -> Uuid {
        self.project_id
    }

    pub fn level(&self) -> Severity {
        self.level
    }

    /// The title of the event's issue: `Type: value` of the raised
    /// exception, else the message; one line, at most 200 characters.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Where it happened: `module in function` of the crashing frame, or
    /// the transaction.
    pub fn culprit(&self) -> Option<&str> {
        self.culprit.as_deref()
    }

    /// The hex SHA-256 of the grouping components: the key within
    /// its project.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// When the SDK says the event happened.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }

    /// When Mesher received it; picks its daily partition.
    pub fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }

    pub fn release(&self) -> Option<&str> {
        self.release.as_deref()
    }

    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The tags the event is searched and counted by, sorted by key: the
    /// SDK's and the ones derived from its fields (see [`super::tags`]).
    pub fn indexed_tags(&self) -> &[Tag] {
        &self.indexed_tags
    }

    /// Who it happened to, as its `user` tag (`id:42`, `email:...`), if
    /// it names anyone.
    pub fn user_key(&self) -> Option<&str> {
        self.indexed_tags
            .iter()
            .find(|t| t.key == "user")
            .map(|t| t.value.as_str())
    }

    /// The event's JSON, compressed.
    pub fn body(&self) -> &EventBody {
        &self.body
    }
}

/// The first byte of a spooled batch in the current format; an earlier
/// release's batches are JSON, and start with `[`.
const BATCH_FORMAT: u8 = 1;

/// The payload a stored body holds.
pub fn read_payload(body: &EventBody) -> Result<EventPayload> {
    let json = body.decompress()?;
    EventPayload::from_json(&json).map_err(|e| {
        Error::internal(format!(
            "a stored event body does not read as an event: {}",
            e.report()
        ))
    })
}

#[cfg(test)]
mod tests;
