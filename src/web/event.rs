//! One stored event as the issue page shows it: the exception chain with
//! its frames, breadcrumbs, and the context tables, read from the JSON
//! columns of a [`StoredEvent`].
//!
//! The columns hold what the lenient payload readers accepted, so they are
//! read back with the same types ([`ExceptionInfo`], [`Stacktrace`],
//! [`Breadcrumb`]). A part that still does not read (a row written by an
//! older version, say) is left out of the structured view rather than
//! failing the page: the raw JSON, always shown, still holds it.

use super::format::{Field, RelTime, fields, json_pretty, json_text};
use crate::domain::{Breadcrumb, ExceptionInfo, StackFrame, Stacktrace, StoredEvent};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Everything the issue page shows about one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    pub id: String,
    pub level: &'static str,
    pub message: String,
    /// When the SDK says it happened, else when Mesher received it.
    pub occurred: RelTime,
    pub received: RelTime,
    /// The chain with the raised exception first, then its causes.
    pub exceptions: Vec<ExceptionView>,
    /// The event's own stack trace (a message event with the thread's
    /// trace), when it has no exception to carry one.
    pub stacktrace: Option<Vec<FrameView>>,
    /// Oldest first, ending where the error happened.
    pub breadcrumbs: Vec<CrumbView>,
    pub tags: Vec<Field>,
    pub user: Vec<Field>,
    pub request: Option<RequestView>,
    pub contexts: Vec<ContextView>,
    /// Release, environment, platform, transaction, SDK: the short facts.
    pub facts: Vec<Field>,
    pub extra: Vec<Field>,
    /// The whole stored event, indented.
    pub raw_json: String,
}

/// One exception of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionView {
    /// The type, or "Error" for a synthetic or untyped one.
    pub kind: String,
    pub value: Option<String>,
    pub module: Option<String>,
    /// `handled` / `unhandled` and the mechanism's type, when the SDK said.
    pub mechanism: Option<String>,
    /// Innermost call first: where it was raised heads the list.
    pub frames: Vec<FrameView>,
    /// The frames as the SDK sent them (minified JavaScript), when source
    /// maps resolved `frames`; the page offers them behind a toggle.
    pub raw_frames: Option<Vec<FrameView>>,
}

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameView {
    /// The function, or `<unknown>`.
    pub function: String,
    /// `file:line:column`, as much of it as is known.
    pub location: String,
    pub module: Option<String>,
    /// The application's own code: highlighted.
    pub in_app: bool,
    /// Shown open with its context lines; the others are collapsed.
    pub expanded: bool,
    pub context: Vec<ContextLine>,
    /// Local variables, indented JSON.
    pub vars: Option<String>,
    /// Why a minified frame could not be resolved through its source map.
    pub note: Option<String>,
}

/// A line of source around a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextLine {
    pub lineno: Option<u64>,
    pub text: String,
    /// The frame's own line.
    pub current: bool,
}

/// One breadcrumb on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrumbView {
    /// `HH:MM:SS.mmm` UTC, empty when the SDK sent no time.
    pub time: String,
    /// The full timestamp, for `<time datetime>`.
    pub iso: Option<String>,
    /// Category, else type, else "default".
    pub category: String,
    /// The level as sent, for the marker's color; "info" when absent.
    pub level: String,
    pub message: Option<String>,
    /// Its data, compact JSON.
    pub data: Option<String>,
}

/// The HTTP request the event happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    pub method: Option<String>,
    pub url: Option<String>,
    pub headers: Vec<Field>,
    /// Everything else (query string, data, cookies, env).
    pub other: Vec<Field>,
}

/// One context (device, os, runtime, browser, trace...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextView {
    pub name: String,
    pub fields: Vec<Field>,
}

/// Lines of context a frame shows at most on either side: SDKs send about
/// five; a hostile one could send thousands.
const MAX_CONTEXT_LINES: usize = 10;

impl EventView {
    /// The view of `event`, with times relative to `now`.
    pub fn new(event: &StoredEvent, now: DateTime<Utc>) -> Self {
        let exceptions = read_exceptions(event.exception.as_ref());
        let stacktrace = match exceptions.is_empty() {
            true => event
                .stacktrace
                .as_ref()
                .and_then(|v| Stacktrace::deserialize(v).ok())
                .filter(|s| !s.frames.is_empty())
                .map(|s| frame_views(&s.frames)),
            false => None,
        };
        let sdk = match (&event.sdk_name, &event.sdk_version) {
            (Some(n), Some(v)) => Some(format!("{n} {v}")),
            (Some(n), None) => Some(n.clone()),
            _ => None,
        };
        let facts = [
            ("release", event.release.clone()),
            ("environment", event.environment.clone()),
            ("platform", event.platform.clone()),
            ("transaction", event.transaction.clone()),
            ("sdk", sdk),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| Field::new(k, v)))
        .collect();
        EventView {
            id: event.id.to_string(),
            level: event.level.as_str(),
            message: event.message.clone(),
            occurred: RelTime::new(event.occurred_at.unwrap_or(event.received_at), now),
            received: RelTime::new(event.received_at, now),
            exceptions,
            stacktrace,
            breadcrumbs: read_breadcrumbs(event.breadcrumbs.as_ref()),
            tags: fields(Some(&event.tags)),
            user: fields(event.user_context.as_ref()),
            request: event.request.as_ref().and_then(request_view),
            contexts: context_views(event.contexts.as_ref()),
            facts,
            extra: fields(Some(&event.extra)),
            raw_json: json_pretty(event),
        }
    }

    /// Whether there is any stack trace to show.
    pub fn has_trace(&self) -> bool {
        !self.exceptions.is_empty() || self.stacktrace.is_some()
    }
}

/// The chain stored as `{"values": [...]}`, raised exception first.
fn read_exceptions(value: Option<&Value>) -> Vec<ExceptionView> {
    let values = value
        .and_then(|v| v.get("values"))
        .and_then(|v| Vec::<ExceptionInfo>::deserialize(v).ok())
        .unwrap_or_default();
    values
        .iter()
        .rev()
        .map(|e| {
            let kind = match (&e.kind, e.is_synthetic()) {
                (Some(kind), false) => kind.clone(),
                _ => "Error".to_owned(),
            };
            let mechanism = e.mechanism.as_ref().and_then(|m| {
                let handled = m.handled.map(|h| if h { "handled" } else { "unhandled" });
                match (handled, m.kind.as_deref()) {
                    (Some(h), Some(k)) => Some(format!("{h} ({k})")),
                    (Some(h), None) => Some(h.to_owned()),
                    (None, Some(k)) => Some(k.to_owned()),
                    (None, None) => None,
                }
            });
            ExceptionView {
                kind,
                value: e.value.clone(),
                module: e.module.clone(),
                mechanism,
                frames: frame_views(e.frames()),
                raw_frames: e.raw_stacktrace.as_ref().map(|s| frame_views(&s.frames)),
            }
        })
        .collect()
}

/// Frames innermost first. In-app frames are open; when the SDK marked
/// none in-app, the innermost frame is, so a trace never shows all shut.
fn frame_views(frames: &[StackFrame]) -> Vec<FrameView> {
    let any_in_app = frames.iter().any(StackFrame::is_in_app);
    frames
        .iter()
        .rev()
        .enumerate()
        .map(|(i, f)| FrameView {
            function: f.function.clone().unwrap_or_else(|| "<unknown>".to_owned()),
            location: location(f),
            module: f.module.clone(),
            in_app: f.is_in_app(),
            expanded: f.is_in_app() || (!any_in_app && i == 0),
            context: context_lines(f),
            vars: f.vars.as_ref().map(json_pretty),
            note: f
                .other
                .get("data")
                .and_then(|d| d.get("sourcemap_error"))
                .and_then(Value::as_str)
                .map(|why| format!("Not resolved through a source map: {why}.")),
        })
        .collect()
}

/// `file:line:column`, from the filename, else the absolute path, else the
/// module; empty when the SDK sent none of them.
fn location(f: &StackFrame) -> String {
    let file = f
        .filename
        .as_deref()
        .or(f.abs_path.as_deref())
        .or(f.module.as_deref())
        .unwrap_or_default();
    let mut out = file.to_owned();
    if let Some(line) = f.lineno {
        out.push_str(&format!(":{line}"));
        if let Some(col) = f.colno {
            out.push_str(&format!(":{col}"));
        }
    }
    out
}

/// The frame's source lines, numbered from its line when known, at most
/// [`MAX_CONTEXT_LINES`] on either side of it.
fn context_lines(f: &StackFrame) -> Vec<ContextLine> {
    let Some(current) = &f.context_line else {
        return Vec::new();
    };
    let pre = f.pre_context.as_deref().unwrap_or_default();
    let pre = &pre[pre.len().saturating_sub(MAX_CONTEXT_LINES)..];
    let post = f.post_context.as_deref().unwrap_or_default();
    let post = &post[..post.len().min(MAX_CONTEXT_LINES)];
    let number = |offset: i64| {
        f.lineno
            .and_then(|l| l.checked_add_signed(offset))
            .filter(|n| *n > 0)
    };
    let pre = pre.iter().enumerate().map(|(i, text)| ContextLine {
        lineno: number(i as i64 - pre.len() as i64),
        text: text.clone(),
        current: false,
    });
    let this = std::iter::once(ContextLine {
        lineno: f.lineno,
        text: current.clone(),
        current: true,
    });
    let post = post.iter().enumerate().map(|(i, text)| ContextLine {
        lineno: number(i as i64 + 1),
        text: text.clone(),
        current: false,
    });
    pre.chain(this).chain(post).collect()
}

/// Breadcrumbs as stored (a list; `{"values": [...]}` read as well).
fn read_breadcrumbs(value: Option<&Value>) -> Vec<CrumbView> {
    let list = match value {
        Some(Value::Object(o)) => o.get("values"),
        other => other,
    };
    let crumbs = list
        .and_then(|v| Vec::<Breadcrumb>::deserialize(v).ok())
        .unwrap_or_default();
    crumbs
        .into_iter()
        .map(|b| CrumbView {
            time: b
                .timestamp
                .map(|t| t.format("%H:%M:%S%.3f").to_string())
                .unwrap_or_default(),
            iso: b
                .timestamp
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            category: b
                .category
                .or(b.kind)
                .unwrap_or_else(|| "default".to_owned()),
            level: b.level.unwrap_or_else(|| "info".to_owned()),
            message: b.message,
            data: b.data.filter(|d| !d.is_null()).map(|d| json_text(&d)),
        })
        .collect()
}

fn request_view(value: &Value) -> Option<RequestView> {
    let Value::Object(map) = value else {
        return None;
    };
    let text = |key: &str| map.get(key).filter(|v| !v.is_null()).map(json_text);
    // Sentry sends headers as an object or as a list of [name, value].
    let headers = match map.get("headers") {
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|p| match p.as_array().map(Vec::as_slice) {
                Some([k, v]) => Some(Field::new(json_text(k), json_text(v))),
                _ => None,
            })
            .collect(),
        other => fields(other),
    };
    let other = map
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "method" | "url" | "headers") && !v.is_null())
        .map(|(k, v)| Field::new(k, json_text(v)))
        .collect();
    Some(RequestView {
        method: text("method"),
        url: text("url"),
        headers,
        other,
    })
}

fn context_views(value: Option<&Value>) -> Vec<ContextView> {
    let Some(Value::Object(map)) = value else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, ctx)| ContextView {
            name: name.clone(),
            fields: match ctx {
                Value::Object(_) => fields(Some(ctx))
                    .into_iter()
                    // `type` repeats the context's name.
                    .filter(|f| f.key != "type")
                    .collect(),
                other => vec![Field::new("value", json_text(other))],
            },
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::Severity;
    use serde_json::json;
    use uuid::Uuid;

    pub(crate) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-15T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// A Python-like event: a chained exception, in-app and library frames,
    /// breadcrumbs, and every context table.
    pub(crate) fn sample_event() -> StoredEvent {
        StoredEvent {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            issue_id: None,
            level: Severity::Error,
            message: "KeyError: 'user'".into(),
            fingerprint: "f".into(),
            exception: Some(json!({"values": [
                {"type": "LookupError", "value": "cause", "stacktrace": {"frames": [
                    {"function": "lookup", "filename": "lib.py", "lineno": 3}
                ]}},
                {"type": "KeyError", "value": "'user'", "module": "builtins",
                 "mechanism": {"type": "django", "handled": false},
                 "stacktrace": {"frames": [
                    {"function": "dispatch", "filename": "django/core/handlers.py", "lineno": 47, "in_app": false},
                    {"function": "load_user", "filename": "app/views.py", "lineno": 17, "colno": 5,
                     "in_app": true, "context_line": "    return users[key]",
                     "pre_context": ["def load_user(key):", "    users = cache()"],
                     "post_context": ["", "def other():"], "vars": {"key": "user"}}
                ]}}
            ]})),
            stacktrace: None,
            breadcrumbs: Some(json!([
                {"timestamp": "2026-03-15T11:59:58.5Z", "category": "query", "message": "SELECT 1", "level": "info"},
                {"type": "http", "data": {"url": "/x", "status_code": 500}}
            ])),
            tags: json!({"browser": "Firefox", "server": "web-1"}),
            extra: json!({}),
            user_context: Some(json!({"id": "42", "email": "ann@example.org"})),
            sdk_name: Some("sentry.python".into()),
            sdk_version: Some("2.1.0".into()),
            received_at: now() - chrono::Duration::minutes(3),
            occurred_at: Some(now() - chrono::Duration::minutes(4)),
            platform: Some("python".into()),
            release: Some("app@1.2.3".into()),
            environment: Some("production".into()),
            transaction: Some("/users/{id}".into()),
            contexts: Some(
                json!({"os": {"type": "os", "name": "Linux"}, "runtime": {"name": "CPython", "version": "3.12"}}),
            ),
            request: Some(
                json!({"method": "GET", "url": "https://app.example.org/users/7",
                "headers": [["Accept", "text/html"], ["Host", "app.example.org"]], "query_string": "a=1"}),
            ),
            other: None,
        }
    }

    #[test]
    fn the_chain_is_raised_first_with_frames_innermost_first() {
        let view = EventView::new(&sample_event(), now());
        let kinds: Vec<_> = view.exceptions.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["KeyError", "LookupError"]);
        let raised = &view.exceptions[0];
        assert_eq!(raised.mechanism.as_deref(), Some("unhandled (django)"));
        let names: Vec<_> = raised.frames.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, ["load_user", "dispatch"]);
        let top = &raised.frames[0];
        assert!(top.in_app && top.expanded);
        assert_eq!(top.location, "app/views.py:17:5");
        let lines: Vec<_> = top
            .context
            .iter()
            .map(|l| (l.lineno, l.text.as_str(), l.current))
            .collect();
        assert_eq!(
            lines,
            [
                (Some(15), "def load_user(key):", false),
                (Some(16), "    users = cache()", false),
                (Some(17), "    return users[key]", true),
                (Some(18), "", false),
                (Some(19), "def other():", false),
            ]
        );
        assert!(top.vars.as_deref().unwrap().contains("\"key\": \"user\""));
        let library = &raised.frames[1];
        assert!(!library.in_app && !library.expanded);
        // No frame of the cause is in-app: its innermost one opens.
        assert!(view.exceptions[1].frames[0].expanded);
        assert!(view.stacktrace.is_none());
        assert_eq!(view.occurred.text, "4 minutes ago");
    }

    #[test]
    fn breadcrumbs_request_contexts_and_facts() {
        let view = EventView::new(&sample_event(), now());
        let crumbs: Vec<_> = view
            .breadcrumbs
            .iter()
            .map(|c| (c.time.as_str(), c.category.as_str(), c.level.as_str()))
            .collect();
        assert_eq!(
            crumbs,
            [("11:59:58.500", "query", "info"), ("", "http", "info")]
        );
        assert_eq!(
            view.breadcrumbs[1].data.as_deref(),
            Some(r#"{"status_code":500,"url":"/x"}"#)
        );
        let request = view.request.as_ref().unwrap();
        assert_eq!(request.method.as_deref(), Some("GET"));
        assert_eq!(request.headers[1], Field::new("Host", "app.example.org"));
        assert_eq!(request.other, [Field::new("query_string", "a=1")]);
        assert_eq!(view.contexts[0].name, "os");
        assert_eq!(view.contexts[0].fields, [Field::new("name", "Linux")]);
        let facts: Vec<_> = view.facts.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            facts,
            ["release", "environment", "platform", "transaction", "sdk"]
        );
        assert_eq!(view.facts[4].value, "sentry.python 2.1.0");
        assert_eq!(view.user[0], Field::new("email", "ann@example.org"));
        assert!(view.raw_json.contains("\"fingerprint\": \"f\""));
    }

    #[test]
    fn an_event_without_exception_shows_its_own_trace() {
        let event = StoredEvent {
            exception: None,
            stacktrace: Some(json!({"frames": [{"function": "main"}, {"function": "run"}]})),
            ..sample_event()
        };
        let view = EventView::new(&event, now());
        let frames = view.stacktrace.as_ref().unwrap();
        assert_eq!(frames[0].function, "run");
        assert!(frames[0].expanded && !frames[1].expanded);
        assert!(view.has_trace());
    }

    #[test]
    fn parts_that_do_not_read_are_left_out() {
        let event = StoredEvent {
            exception: Some(json!({"values": "nonsense"})),
            breadcrumbs: Some(json!(17)),
            request: Some(json!([1])),
            contexts: Some(json!({"weird": 5})),
            ..sample_event()
        };
        let view = EventView::new(&event, now());
        assert!(view.exceptions.is_empty());
        assert!(view.breadcrumbs.is_empty());
        assert!(view.request.is_none());
        assert_eq!(view.contexts[0].fields, [Field::new("value", "5")]);
        assert!(view.raw_json.contains("nonsense"));
    }

    #[test]
    fn context_lines_are_bounded_and_never_numbered_below_one() {
        let frame = StackFrame {
            lineno: Some(2),
            context_line: Some("x".into()),
            pre_context: Some(vec!["l".into(); 50]),
            post_context: Some(vec!["l".into(); 50]),
            ..Default::default()
        };
        let lines = context_lines(&frame);
        assert_eq!(lines.len(), 2 * MAX_CONTEXT_LINES + 1);
        assert_eq!(lines[MAX_CONTEXT_LINES - 1].lineno, Some(1));
        assert_eq!(lines[0].lineno, None);
        assert!(lines[MAX_CONTEXT_LINES].current);
        assert_eq!(location(&StackFrame::default()), "");
    }
}
