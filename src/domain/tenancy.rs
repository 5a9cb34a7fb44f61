//! Organizations, their projects, and the projects' API keys.

use super::ApiKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant: owns projects and has members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
}

/// An application whose errors are collected; events belong to a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    /// The SDK platform (e.g. "rust", "python"), when the user said.
    pub platform: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An API key as listed: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub project_id: Uuid,
    /// `mshr_` and the first hex digits, so people can tell keys apart.
    pub prefix: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A freshly created key: the only moment the key exists in clear.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewApiKey {
    pub key: ApiKey,
    pub info: ApiKeyInfo,
}
