//! Error events: what a client sends ([`EventPayload`]) and what Mesher
//! stores ([`Event`]).
//!
//! A payload is read as the Sentry SDKs send it (Python, JavaScript, Rust
//! and the rest speak one protocol, each with its habits):
//!
//! - `event_id` as 32 hex digits or a hyphenated UUID; `timestamp` as RFC
//!   3339 text or Unix seconds; `level` in any case, with relay's aliases;
//! - `message` as text or `{message, params, formatted}`, and `logentry`;
//! - `exception`, `threads` and `breadcrumbs` as a bare list or as
//!   `{"values": [...]}`; stack traces as `{"frames": [...]}`, frames
//!   oldest first;
//! - `tags` as an object or a list of `[key, value]` pairs, values of any
//!   kind stringified; `fingerprint` as a list of text;
//! - `null` wherever a value may be absent, and every field Mesher does not
//!   know kept as it came.
//!
//! The files split the model by concern: [`EventPayload`] and its parts
//! (exceptions, stack traces, breadcrumbs, messages), the lenient readers
//! they share, [`Severity`], [`RawJson`], and [`Event`] itself. Grouping
//! lives in [`crate::domain::grouping`].

mod breadcrumb;
mod exception;
mod lenient;
mod message;
mod payload;
mod raw_json;
mod severity;
mod stacktrace;
mod stored;

pub use breadcrumb::Breadcrumb;
pub use exception::{ExceptionInfo, Mechanism};
pub use message::{ClientSdk, LogEntry};
pub use payload::EventPayload;
pub use raw_json::RawJson;
pub use severity::Severity;
pub(crate) use stacktrace::base_name;
pub use stacktrace::{StackFrame, Stacktrace, Thread};
pub use stored::{Event, MAX_CLOCK_DRIFT};

/// The largest event accepted: its JSON as sent, and its text and JSON
/// parts as stored.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
