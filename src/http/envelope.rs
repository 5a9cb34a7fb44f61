//! Sentry envelopes, the body of `POST /api/<id>/envelope/`.
//!
//! An envelope is a header line, a JSON object (`event_id`, `dsn`,
//! `sent_at`, `sdk`, `trace`, ...), then items, each an item header line, a
//! JSON object with a `type` and an optional `length`, and a payload:
//!
//! ```text
//! {"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","sent_at":"2024-06-10T12:00:00Z"}
//! {"type":"event","length":41}
//! {"message":"hello world","level":"error"}
//! {"type":"attachment","length":6,"filename":"a.txt"}
//! Hello
//!
//! ```
//!
//! With `length` the payload is exactly that many bytes, newlines included,
//! and must be followed by `\n` or the end of the body; without it the
//! payload runs to the next `\n` or the end. Only `\n` separates: a `\r`
//! before it belongs to the data.
//!
//! Every edge case is decided as relay (Sentry's ingestion server) decides
//! it, so whatever Sentry accepts Mesher accepts too:
//!
//! | input                                          | outcome                 |
//! |------------------------------------------------|-------------------------|
//! | empty body, or only whitespace                 | [`EnvelopeError::MissingHeader`] |
//! | header that is not JSON, or not an object      | [`EnvelopeError::InvalidHeader`] |
//! | header line alone, with or without `\n`        | accepted, no items      |
//! | last payload without a final `\n`              | accepted                |
//! | a JSON line followed by `\r\n` or other bytes  | [`EnvelopeError::MissingNewline`] |
//! | blank lines before an item header              | skipped                 |
//! | blank lines after the last item                | [`EnvelopeError::UnexpectedEof`] |
//! | item header that is not an object, lacks a string `type`, or has a `length` that is not a 32-bit unsigned integer | [`EnvelopeError::InvalidItemHeader`] |
//! | `length` past the end of the body              | [`EnvelopeError::LengthPastEnd`] |
//! | unknown item `type`                            | accepted as [`ItemType::Other`] |
//!
//! One bound of Mesher's own: at most [`MAX_ITEMS`] items, so a flood of
//! empty items cannot grow the item list without bound (the body's size is
//! bounded by the caller, see [`crate::http::body`]).
//!
//! Parsing borrows: payloads are slices of the body, never copies.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use thiserror::Error;

/// The most items one envelope may hold. SDKs send a handful (an event and
/// its attachments, a session, a client report); without a bound, a body of
/// minimal items (`{"type":"x"}` and a newline, 13 bytes) would cost an
/// `Item` each, over a million for a 20 MiB body.
pub const MAX_ITEMS: usize = 1_000;

/// Why a body is not a valid envelope.
///
/// The Display text is meant for the HTTP response body. Items are
/// numbered from 1.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The body is empty or only whitespace.
    #[error("empty envelope: expected a JSON header line")]
    MissingHeader,
    /// The header line is not a JSON object of the expected shape.
    #[error("invalid envelope header: {0}")]
    InvalidHeader(String),
    /// An item header is not a JSON object with a string `type` and an
    /// optional non-negative integer `length`.
    #[error("invalid header for item {item}: {reason}")]
    InvalidItemHeader {
        /// Position of the item, from 1.
        item: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A header line or a sized payload is followed by something other
    /// than `\n` or the end of the body.
    #[error("missing newline after {0}")]
    MissingNewline(Place),
    /// Only whitespace follows the last item where another item header
    /// was expected.
    #[error("unexpected end of envelope: expected item {item}'s header")]
    UnexpectedEof {
        /// Position of the item expected, from 1.
        item: usize,
    },
    /// An item's `length` runs past the end of the body.
    #[error(
        "item {item} declares a length of {length} bytes but only {available} follow its header"
    )]
    LengthPastEnd {
        /// Position of the item, from 1.
        item: usize,
        /// The declared `length`.
        length: u32,
        /// How many bytes follow the item header.
        available: usize,
    },
    /// The envelope has more than [`MAX_ITEMS`] items.
    #[error("envelope has more than {max} items")]
    TooManyItems {
        /// The bound, [`MAX_ITEMS`].
        max: usize,
    },
}

/// A place in an envelope, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The envelope header line.
    Header,
    /// The header line of an item (its position, from 1).
    ItemHeader(usize),
    /// The payload of an item (its position, from 1).
    Payload(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => write!(f, "the envelope header"),
            Self::ItemHeader(n) => write!(f, "the header of item {n}"),
            Self::Payload(n) => write!(f, "the payload of item {n} (as long as its length says)"),
        }
    }
}

/// A parsed envelope; item payloads borrow from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The envelope header's fields Mesher uses.
    pub header: EnvelopeHeader,
    /// The items, in body order.
    pub items: Vec<Item<'a>>,
}

/// The envelope header's fields Mesher uses; the others (`sent_at`, `sdk`,
/// `trace`, ...) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EnvelopeHeader {
    /// The id of the event the envelope carries, as sent: 32 hex digits from
    /// most SDKs, a hyphenated UUID from sentry-rust. Not checked here.
    #[serde(default)]
    pub event_id: Option<String>,
    /// The DSN the SDK was configured with; JavaScript sends it when it
    /// goes through a tunnel, and then it is where the key is.
    #[serde(default)]
    pub dsn: Option<String>,
}

/// One envelope item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// The item's `type`.
    pub kind: ItemType,
    /// The payload, exactly as sent.
    pub payload: &'a [u8],
}

/// An item's `type`: the ones SDKs and relay know, and any other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemType {
    /// `event`: an error or message event, JSON.
    Event,
    /// `transaction`: a performance transaction, JSON.
    Transaction,
    /// `security`: a normalized security report.
    Security,
    /// `raw_security`: a CSP/HPKP/Expect-CT report as browsers send it.
    RawSecurity,
    /// `nel`: a Network Error Logging report.
    Nel,
    /// `attachment`: a file for an event.
    Attachment,
    /// `form_data`: multipart form fields (minidump uploads).
    FormData,
    /// `unreal_report`: an Unreal Engine crash report.
    UnrealReport,
    /// `user_report`: user feedback, the old form.
    UserReport,
    /// `feedback`: user feedback as an event.
    Feedback,
    /// `session`: a release-health session update.
    Session,
    /// `sessions`: aggregated sessions.
    Sessions,
    /// `statsd`: metrics in statsd text.
    Statsd,
    /// `metric_buckets`: pre-aggregated metrics.
    MetricBuckets,
    /// `client_report`: what the SDK dropped and why.
    ClientReport,
    /// `profile`: a transaction profile.
    Profile,
    /// `profile_chunk` (or `profile_chunk_ui`): a continuous-profiling chunk.
    ProfileChunk,
    /// `replay_event`: session replay metadata.
    ReplayEvent,
    /// `replay_recording`: session replay data.
    ReplayRecording,
    /// `replay_video`: session replay video.
    ReplayVideo,
    /// `check_in`: a cron monitor check-in.
    CheckIn,
    /// `log`: a container of log records.
    Log,
    /// `span`: a standalone span.
    Span,
    /// `otel_span`: an OpenTelemetry span.
    OtelSpan,
    /// `trace_metric`: a container of metrics.
    TraceMetric,
    /// Any other type, as sent.
    Other(String),
}

/// Every `type` Mesher knows, with its variant: parsing and
/// [`ItemType::as_str`] both read this one table. A variant's first entry
/// is its name; a later one is an alias parsing accepts.
const ITEM_TYPES: &[(&str, ItemType)] = &[
    ("event", ItemType::Event),
    ("transaction", ItemType::Transaction),
    ("security", ItemType::Security),
    ("raw_security", ItemType::RawSecurity),
    ("nel", ItemType::Nel),
    ("attachment", ItemType::Attachment),
    ("form_data", ItemType::FormData),
    ("unreal_report", ItemType::UnrealReport),
    ("user_report", ItemType::UserReport),
    ("feedback", ItemType::Feedback),
    ("session", ItemType::Session),
    ("sessions", ItemType::Sessions),
    ("statsd", ItemType::Statsd),
    ("metric_buckets", ItemType::MetricBuckets),
    ("client_report", ItemType::ClientReport),
    ("profile", ItemType::Profile),
    ("profile_chunk", ItemType::ProfileChunk),
    // Android SDK 8.10 and 8.11 send the `_ui` spelling; relay takes it as
    // an alias.
    ("profile_chunk_ui", ItemType::ProfileChunk),
    ("replay_event", ItemType::ReplayEvent),
    ("replay_recording", ItemType::ReplayRecording),
    ("replay_video", ItemType::ReplayVideo),
    ("check_in", ItemType::CheckIn),
    ("log", ItemType::Log),
    ("span", ItemType::Span),
    ("otel_span", ItemType::OtelSpan),
    ("trace_metric", ItemType::TraceMetric),
];

impl ItemType {
    /// The type for a `type` value; unknown names become [`ItemType::Other`].
    pub fn from_name(name: &str) -> Self {
        ITEM_TYPES
            .iter()
            .find(|(known, _)| *known == name)
            .map_or_else(|| Self::Other(name.to_owned()), |(_, kind)| kind.clone())
    }

    /// The type's name, fit for a metrics label: every [`ItemType::Other`]
    /// is `"unknown"`, so clients cannot grow the label set.
    pub fn as_str(&self) -> &'static str {
        ITEM_TYPES
            .iter()
            .find(|(_, kind)| kind == self)
            .map_or("unknown", |(name, _)| name)
    }
}

/// An item header's fields the parser needs; the rest are ignored.
#[derive(Deserialize)]
struct ItemHeader<'a> {
    // Borrowed when it has no escapes, which is always in practice.
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    // u32 as in relay: a length that does not fit is an invalid header.
    #[serde(default)]
    length: Option<u32>,
}

/// Parses an envelope, borrowing item payloads from `body`.
pub fn parse(body: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let start = skip_whitespace(body, 0);
    if start >= body.len() {
        return Err(EnvelopeError::MissingHeader);
    }
    let (header, header_end) =
        json_object::<EnvelopeHeader>(body, start).map_err(EnvelopeError::InvalidHeader)?;
    require_newline(body, header_end, Place::Header)?;

    let mut items = Vec::new();
    // Past the end when the header has no final newline: then no items.
    let mut offset = header_end.saturating_add(1);
    while offset < body.len() {
        if items.len() == MAX_ITEMS {
            return Err(EnvelopeError::TooManyItems { max: MAX_ITEMS });
        }
        let (item, next) = parse_item(body, offset, items.len() + 1)?;
        items.push(item);
        offset = next;
    }
    Ok(Envelope { header, items })
}

/// Parses the item numbered `number` whose header starts at or after
/// `offset` (blank lines before it are skipped), and returns it with the
/// offset just past its payload's newline (which may be past the end).
fn parse_item(
    body: &[u8],
    offset: usize,
    number: usize,
) -> Result<(Item<'_>, usize), EnvelopeError> {
    let start = skip_whitespace(body, offset);
    if start >= body.len() {
        return Err(EnvelopeError::UnexpectedEof { item: number });
    }
    let (header, header_end) = json_object::<ItemHeader<'_>>(body, start).map_err(|reason| {
        EnvelopeError::InvalidItemHeader {
            item: number,
            reason,
        }
    })?;
    require_newline(body, header_end, Place::ItemHeader(number))?;

    // The header may end the body without a newline: then the payload is
    // empty, or the length runs past the end.
    let payload_start = header_end.saturating_add(1).min(body.len());
    let available = body.len() - payload_start;
    let payload_end = match header.length {
        Some(length) => {
            let size = usize::try_from(length).unwrap_or(usize::MAX);
            if size > available {
                return Err(EnvelopeError::LengthPastEnd {
                    item: number,
                    length,
                    available,
                });
            }
            let end = payload_start + size;
            require_newline(body, end, Place::Payload(number))?;
            end
        }
        None => body
            .get(payload_start..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
            .map_or(body.len(), |n| payload_start + n),
    };
    let item = Item {
        kind: ItemType::from_name(&header.kind),
        payload: body.get(payload_start..payload_end).unwrap_or_default(),
    };
    Ok((item, payload_end.saturating_add(1)))
}

/// Reads one JSON object starting at `start` (which is not whitespace) and
/// returns it with the offset just past it.
fn json_object<'a, T: Deserialize<'a>>(body: &'a [u8], start: usize) -> Result<(T, usize), String> {
    let rest = body.get(start..).unwrap_or_default();
    // Checked first because serde reads a struct from a JSON array too, and
    // relay refuses anything but an object.
    if rest.first() != Some(&b'{') {
        return Err("expected a JSON object".to_owned());
    }
    // A stream, not `from_slice`: the object ends where its `}` is, and
    // what follows is the caller's to check.
    let mut stream = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
    match stream.next() {
        Some(Ok(value)) => Ok((value, start + stream.byte_offset())),
        Some(Err(e)) => Err(clip(&e.to_string())),
        None => Err("expected a JSON object".to_owned()),
    }
}

/// A header line or sized payload ending at `end` must be followed by a
/// newline or the end of the body.
fn require_newline(body: &[u8], end: usize, place: Place) -> Result<(), EnvelopeError> {
    match body.get(end) {
        None | Some(b'\n') => Ok(()),
        Some(_) => Err(EnvelopeError::MissingNewline(place)),
    }
}

/// The first offset at or after `from` that is not JSON whitespace.
fn skip_whitespace(body: &[u8], from: usize) -> usize {
    let rest = body.get(from..).unwrap_or_default();
    let blank = rest
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    from.saturating_add(blank)
}

/// Bounds a parser message, which can quote the client's input at length
/// (serde_json quotes a mistyped string whole).
fn clip(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
