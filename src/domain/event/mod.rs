//! Error events: what a client sends ([`EventPayload`]), what Mesher
//! stores ([`Event`], its JSON an [`EventBody`]) and what a page shows of
//! it ([`EventParts`]).
//!
//! The files split the model by concern: the payload and its parts
//! (exceptions, stack traces, breadcrumbs, messages), the lenient readers
//! they share, [`Severity`], [`RawJson`], and [`Event`] itself. Grouping
//! lives in [`crate::domain::grouping`].

mod body;
mod breadcrumb;
mod exception;
mod legacy;
mod lenient;
mod message;
mod payload;
mod raw_json;
mod severity;
mod stacktrace;
mod stored;
pub mod tags;

pub use body::EventBody;
pub use breadcrumb::Breadcrumb;
pub use exception::{ExceptionInfo, Mechanism};
pub use message::{ClientSdk, LogEntry};
pub use payload::EventPayload;
pub use raw_json::RawJson;
pub use severity::Severity;
pub(crate) use stacktrace::base_name;
pub use stacktrace::{StackFrame, Stacktrace, Thread};
pub use stored::{Event, EventParts, Hold, MAX_CLOCK_DRIFT, read_payload};
pub use tags::Tag;

/// The largest event accepted: its JSON as sent, and its text and JSON
/// parts as stored.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
