//! Breadcrumbs: what happened before the error, as the SDK recorded it.

use super::lenient::{self, Fields};
use chrono::{DateTime, Utc};
use serde::de::{Deserializer, MapAccess};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Something that happened before the error: a log line, a click, a
/// request. Its timestamp arrives as RFC 3339 text or Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breadcrumb {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// As the SDK wrote it (`info`, `warning`, `log`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Fields for Breadcrumb {
    const EXPECTING: &'static str = "a breadcrumb object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "timestamp" => self.timestamp = lenient::stamp(map)?,
            "type" => self.kind = lenient::text(map)?,
            "category" => self.category = lenient::text(map)?,
            "message" => self.message = lenient::text(map)?,
            "level" => self.level = lenient::text(map)?,
            "data" => self.data = lenient::any(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

impl<'de> Deserialize<'de> for Breadcrumb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::deserialize_fields(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breadcrumb_timestamps_as_text_or_seconds() {
        let text: Breadcrumb = serde_json::from_str(
            r#"{"timestamp": "2026-11-28T15:11:01.086273Z", "category": "query", "message": "SELECT 1", "level": "info", "event_id": null}"#,
        )
        .unwrap();
        let seconds: Breadcrumb = serde_json::from_str(
            r#"{"timestamp": 1795878723.651, "category": "ui.click", "message": "button#checkout"}"#,
        )
        .unwrap();
        assert_eq!(text.timestamp.unwrap().timestamp(), 1795878661);
        assert_eq!(seconds.timestamp.unwrap().timestamp_subsec_millis(), 651);
        assert!(text.other.contains_key("event_id"));
        assert!(serde_json::from_str::<Breadcrumb>(r#"{"timestamp": "soon"}"#).is_err());
    }
}
