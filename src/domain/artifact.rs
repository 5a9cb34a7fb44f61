//! What sentry-cli uploads: organization tokens as listed, and the
//! artifact bundles of minified JavaScript and source maps.

use super::OrgToken;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An organization token as listed: everything but the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgTokenInfo {
    pub id: Uuid,
    pub org_id: Uuid,
    /// The token's last four characters, so people can tell tokens apart.
    pub hint: String,
    pub label: String,
    /// Who made it in the web UI; `None` from the command line.
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// When sentry-cli last authenticated with it: a token nobody uses is
    /// one to revoke.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A freshly created token: the only moment it exists in clear.
#[derive(Debug, Clone)]
pub struct NewOrgToken {
    pub token: OrgToken,
    pub info: OrgTokenInfo,
}

/// The kinds of file an artifact bundle's manifest names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactType {
    MinifiedSource,
    SourceMap,
    Source,
    IndexedRamBundle,
}

impl ArtifactType {
    /// The manifest's (and the database's) name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactType::MinifiedSource => "minified_source",
            ArtifactType::SourceMap => "source_map",
            ArtifactType::Source => "source",
            ArtifactType::IndexedRamBundle => "indexed_ram_bundle",
        }
    }
}
