//! Triage beyond a status: archiving until a condition, resolving in a
//! release, an issue's tag breakdown and its activity.

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The largest count or duration an archive condition takes (events,
/// users, minutes): about 19 years in minutes, and more events than any
/// issue will see.
pub const MAX_ARCHIVE_AMOUNT: i64 = 10_000_000;

/// How long an issue stays archived (Sentry's "archive", once "ignore").
/// When the condition is met it comes back by itself, unresolved, with an
/// `unarchived` activity naming why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveUntil {
    /// Until someone changes it.
    Forever,
    /// For this many minutes.
    Minutes(i64),
    /// Until this many more events arrive.
    Events(i64),
    /// Until this many more users are affected.
    Users(i64),
}

impl ArchiveUntil {
    /// The request body's `archive` object: `{}` (forever), or one of
    /// `{"count": N}`, `{"minutes": N}`, `{"users": N}`, N from 1 to
    /// [`MAX_ARCHIVE_AMOUNT`].
    pub fn from_json(value: &Value) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                "archive",
                "must be {}, {\"count\": N}, {\"minutes\": N} or {\"users\": N}, N from 1 to 10000000",
            )
        };
        let Value::Object(fields) = value else {
            return Err(invalid());
        };
        let mut fields = fields.iter();
        let (first, rest) = (fields.next(), fields.next());
        let Some((name, n)) = first else {
            return Ok(ArchiveUntil::Forever);
        };
        if rest.is_some() {
            return Err(invalid());
        }
        let n = n
            .as_i64()
            .filter(|n| (1..=MAX_ARCHIVE_AMOUNT).contains(n))
            .ok_or_else(invalid)?;
        match name.as_str() {
            "count" => Ok(ArchiveUntil::Events(n)),
            "minutes" => Ok(ArchiveUntil::Minutes(n)),
            "users" => Ok(ArchiveUntil::Users(n)),
            _ => Err(invalid()),
        }
    }
}

/// Which releases keep a resolved issue resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveIn {
    /// The release the issue was last seen in and older ones: an event of
    /// a newer release (by the project's first sight of it) reopens it.
    NextRelease,
    /// Releases older than this one: an event of it or of a newer one
    /// reopens the issue.
    Release(String),
}

impl ResolveIn {
    /// The request body's `resolved_in` object: `{"next_release": true}`
    /// or `{"release": "X"}`.
    pub fn from_json(value: &Value) -> Result<Self> {
        let invalid = || {
            Error::invalid(
                "resolved_in",
                "must be {\"next_release\": true} or {\"release\": \"<version>\"}",
            )
        };
        let Value::Object(fields) = value else {
            return Err(invalid());
        };
        if fields.len() != 1 {
            return Err(invalid());
        }
        match (fields.get("next_release"), fields.get("release")) {
            (Some(Value::Bool(true)), None) => Ok(ResolveIn::NextRelease),
            (None, Some(Value::String(release))) => {
                let release = release.trim();
                if release.is_empty() || release.chars().count() > 200 || release.contains('\0') {
                    return Err(Error::invalid(
                        "resolved_in",
                        "a release is 1 to 200 characters",
                    ));
                }
                Ok(ResolveIn::Release(release.to_owned()))
            }
            _ => Err(invalid()),
        }
    }
}

/// A status change, with what comes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    Unresolve,
    /// Resolved for good (a later event reopens it), or in a release.
    Resolve(Option<ResolveIn>),
    Archive(ArchiveUntil),
}

/// One tag key of an issue's events: how many events carried it, how many
/// distinct values, and the most frequent ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagBreakdown {
    pub key: String,
    /// Events that carried the key (with any value).
    pub total: i64,
    /// Distinct values kept; when `other` is not zero there were more.
    pub distinct: i64,
    /// Events whose value was past the bound of values kept per issue, key
    /// and day, so not counted by value.
    pub other: i64,
    /// The most frequent values, most events first.
    pub top: Vec<TagCount>,
}

/// A tag value and its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCount {
    pub value: String,
    pub count: i64,
}

/// How many values [`TagBreakdown::top`] lists.
pub const TOP_TAG_VALUES: usize = 10;

/// Something that happened to an issue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// Who did it; `None` for Mesher itself (a regression, an archived
    /// issue coming back).
    pub user_id: Option<Uuid>,
    /// Their name, when the user still exists.
    pub user_name: Option<String>,
    /// `resolved`, `unresolved`, `archived`, `assigned`, `unassigned`,
    /// `regression` or `unarchived`.
    pub kind: String,
    /// The details: `{"in_release": "X"}`, `{"after_release": "R"}`,
    /// `{"until": {"count": 5}}`, `{"reason": "events"}`,
    /// `{"assignee_id": ...}`...
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn archive_conditions_read_from_json() {
        let table = [
            (json!({}), Some(ArchiveUntil::Forever)),
            (json!({"count": 5}), Some(ArchiveUntil::Events(5))),
            (json!({"minutes": 60}), Some(ArchiveUntil::Minutes(60))),
            (json!({"users": 10}), Some(ArchiveUntil::Users(10))),
            (json!({"count": 0}), None),
            (json!({"count": -3}), None),
            (json!({"count": 1.5}), None),
            (json!({"count": "5"}), None),
            (json!({"count": MAX_ARCHIVE_AMOUNT + 1}), None),
            (json!({"count": 1, "users": 1}), None),
            (json!({"hours": 1}), None),
            (json!(null), None),
            (json!([]), None),
        ];
        for (json, want) in table {
            assert_eq!(ArchiveUntil::from_json(&json).ok(), want, "{json}");
        }
    }

    #[test]
    fn release_resolutions_read_from_json() {
        let table = [
            (json!({"next_release": true}), Some(ResolveIn::NextRelease)),
            (
                json!({"release": " api@2.0 "}),
                Some(ResolveIn::Release("api@2.0".into())),
            ),
            (json!({"next_release": false}), None),
            (json!({"release": ""}), None),
            (json!({"release": "x".repeat(201)}), None),
            (json!({"release": "a", "next_release": true}), None),
            (json!({}), None),
            (json!("next"), None),
        ];
        for (json, want) in table {
            assert_eq!(ResolveIn::from_json(&json).ok(), want, "{json}");
        }
    }
}
