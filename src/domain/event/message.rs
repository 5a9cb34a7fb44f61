//! The message of an event, and the SDK that sent it.

use super::lenient::{self, Fields};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// A parameterized message: the template (`user %s not found`), its
/// parameters and the text they make. Sent as `logentry`, or by older
/// clients as an object in `message`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LogEntry {
    /// The template, before parameters are filled in: what grouping uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The text with parameters filled in: what people read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl LogEntry {
    /// The text people read: `formatted`, else the template.
    pub fn text(&self) -> Option<&str> {
        non_blank(self.formatted.as_deref()).or(non_blank(self.message.as_deref()))
    }
}

pub(super) fn non_blank(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

impl Fields for LogEntry {
    const EXPECTING: &'static str = "a log entry object or text";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "message" => self.message = lenient::text(map)?,
            "formatted" => self.formatted = lenient::text(map)?,
            "params" => self.params = lenient::any(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

/// Also takes bare text, as `formatted` (relay reads it so).
impl<'de> Deserialize<'de> for LogEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(MessageVisitor)? {
            MessageField::Text(text) => Ok(LogEntry {
                formatted: Some(text),
                ..Default::default()
            }),
            MessageField::Entry(entry) => Ok(entry),
        }
    }
}

/// The top-level `message`: text (what current SDKs send) or, from older
/// clients, a [`LogEntry`] object.
pub(super) enum MessageField {
    Text(String),
    Entry(LogEntry),
}

impl<'de> Deserialize<'de> for MessageField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = MessageField;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("text or an object with message, params and formatted")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MessageField, A::Error> {
        let mut entry = LogEntry::default();
        lenient::read_fields(map, &mut entry, |_| {})?;
        Ok(MessageField::Entry(entry))
    }

    fn visit_str<E>(self, v: &str) -> Result<MessageField, E> {
        Ok(MessageField::Text(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<MessageField, E> {
        Ok(MessageField::Text(v))
    }

    fn visit_bool<E>(self, v: bool) -> Result<MessageField, E> {
        Ok(MessageField::Text(v.to_string()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<MessageField, E> {
        Ok(MessageField::Text(v.to_string()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<MessageField, E> {
        Ok(MessageField::Text(v.to_string()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<MessageField, E> {
        Ok(MessageField::Text(Value::from(v).to_string()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<MessageField, A::Error> {
        // Old clients JSON-encoded whatever they were given; keep it as text.
        let list = Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(MessageField::Text(list.to_string()))
    }
}

/// The SDK that sent an event: `{"name": "sentry.python", "version":
/// "2.75.0", "integrations": [...], "packages": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientSdk {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ClientSdk {
    /// An SDK with a name and a version and nothing else.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        ClientSdk {
            name: Some(name.into()),
            version: Some(version.into()),
            other: Map::new(),
        }
    }
}

impl Fields for ClientSdk {
    const EXPECTING: &'static str = "an sdk object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "name" => self.name = lenient::text(map)?,
            "version" => self.version = lenient::text(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

impl<'de> Deserialize<'de> for ClientSdk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::deserialize_fields(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_from_objects_or_text() {
        let entry: LogEntry = serde_json::from_str(
            r#"{"message": "user %s not found", "formatted": "user 4 not found", "params": [4]}"#,
        )
        .unwrap();
        assert_eq!(entry.message.as_deref(), Some("user %s not found"));
        assert_eq!(entry.text(), Some("user 4 not found"));
        let text: LogEntry = serde_json::from_str(r#""hi""#).unwrap();
        assert_eq!(text.formatted.as_deref(), Some("hi"));
        let template_only: LogEntry =
            serde_json::from_str(r#"{"message": "Hello, %s!", "params": {"name": "World"}}"#)
                .unwrap();
        assert_eq!(template_only.text(), Some("Hello, %s!"));
        assert!(serde_json::from_str::<LogEntry>(r#"{"message": {"deep": 1}}"#).is_err());
    }

    #[test]
    fn the_message_field_takes_what_old_clients_sent() {
        let cases = [
            (r#""boom""#, "boom"),
            ("12", "12"),
            (r#"["a", 1]"#, r#"["a",1]"#),
        ];
        for (json, want) in cases {
            match serde_json::from_str::<MessageField>(json).unwrap() {
                MessageField::Text(t) => assert_eq!(t, want),
                MessageField::Entry(_) => panic!("{json} is text"),
            }
        }
        assert!(matches!(
            serde_json::from_str::<MessageField>(r#"{"message": "a %s", "params": ["b"]}"#),
            Ok(MessageField::Entry(_))
        ));
    }
}
