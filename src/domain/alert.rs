//! Alert rules. Evaluated by a later layer; the types are defined now so
//! the stored JSON has one agreed shape.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// When a rule fires; stored as `alert_rules.condition_json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertCondition {
    /// More than `threshold` events in `window_secs`.
    EventCount { threshold: u64, window_secs: u64 },
    /// A fingerprint never seen before in the project.
    NewIssue,
    /// A resolved issue received a new event.
    Regression,
}

/// A project's alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub condition: AlertCondition,
    /// What to do when it fires (e.g. a webhook); its shape belongs to the
    /// notification layer, so it stays free-form JSON here.
    pub action: serde_json::Value,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}
