//! Exceptions: one value of an event's exception chain, and how it was
//! caught.

use super::lenient::{self, Fields};
use super::stacktrace::Stacktrace;
use serde::de::{Deserializer, MapAccess};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One exception of an event's chain. In the chain the SDKs send, the
/// last value is the one raised; the ones before it are its causes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExceptionInfo {
    /// The exception's type (`KeyError`, `TypeError`); absent on the
    /// synthetic exception JavaScript builds to carry a message's trace.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<Mechanism>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<Stacktrace>,
    /// The frames as the SDK sent them, when source maps resolved
    /// `stacktrace` (minified JavaScript), as Sentry keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_stacktrace: Option<Stacktrace>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ExceptionInfo {
    /// An exception of type `kind` with message `value`.
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Self {
        ExceptionInfo {
            kind: Some(kind.into()),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Whether the SDK made this exception up to carry a stack trace (its
    /// type and value then say nothing about the error).
    pub fn is_synthetic(&self) -> bool {
        self.mechanism.as_ref().and_then(|m| m.synthetic) == Some(true)
    }

    /// The frames of its stack trace, oldest first; empty without one.
    pub fn frames(&self) -> &[super::StackFrame] {
        self.stacktrace.as_ref().map_or(&[], |s| &s.frames)
    }
}

impl Fields for ExceptionInfo {
    const EXPECTING: &'static str = "an exception object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "type" => self.kind = lenient::text(map)?,
            "value" => self.value = lenient::text(map)?,
            "module" => self.module = lenient::text(map)?,
            "mechanism" => self.mechanism = map.next_value()?,
            "stacktrace" => self.stacktrace = map.next_value()?,
            "raw_stacktrace" => self.raw_stacktrace = map.next_value()?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

impl<'de> Deserialize<'de> for ExceptionInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::deserialize_fields(d)
    }
}

/// How an exception was caught: `{"type": "generic", "handled": true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Mechanism {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<bool>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Fields for Mechanism {
    const EXPECTING: &'static str = "a mechanism object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "type" => self.kind = lenient::text(map)?,
            "handled" => self.handled = lenient::flag(map)?,
            "synthetic" => self.synthetic = lenient::flag(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

impl<'de> Deserialize<'de> for Mechanism {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::deserialize_fields(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exceptions_keep_every_field() {
        let json = json!({
            "type": "KeyError", "value": 17, "module": null,
            "mechanism": {"type": "generic", "handled": true, "meta": {"errno": {"number": 2}}},
            "stacktrace": {"frames": [{"function": "load_user", "lineno": 17}]},
            "thread_id": 3
        });
        let e: ExceptionInfo = serde_json::from_value(json).unwrap();
        assert_eq!(e.kind.as_deref(), Some("KeyError"));
        assert_eq!(e.value.as_deref(), Some("17"));
        assert_eq!(e.frames()[0].function.as_deref(), Some("load_user"));
        assert!(!e.is_synthetic());
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["thread_id"], 3);
        assert_eq!(back["mechanism"]["meta"]["errno"]["number"], 2);
        assert_eq!(back["type"], "KeyError");
    }

    #[test]
    fn a_synthetic_exception_is_recognized() {
        let e: ExceptionInfo = serde_json::from_str(
            r#"{"value": "user 17 not found", "mechanism": {"type": "generic", "handled": true, "synthetic": true}}"#,
        )
        .unwrap();
        assert!(e.is_synthetic());
        assert_eq!(e.kind, None);
    }
}
