//! Projects and their keys: a new project with its first key, a key
//! limited or revoked.

use super::orgs::ORG;
use super::{Caller, State};
use crate::db::retention::Usage;
use crate::domain::access::Action;
use crate::domain::{ApiKeyInfo, Project, ProjectSettings, ProjectWithKey, check_rate_limit};
use crate::error::Error;
use crate::services::{
    CreateProjectWithKey, ListApiKeys, ProjectUsage, RevokeApiKey, SetKeyRateLimit,
    UpdateProjectSettings,
};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

/// A new project, as the API's JSON and the page's form give it.
#[derive(Deserialize)]
pub struct NewProject {
    pub name: String,
    pub platform: Option<String>,
}

/// Creates a project in `org_id` (an admin's to do) with its first key,
/// labelled "default", in one transaction: a failure leaves neither. The
/// reply holds the key in clear with its DSN, this once.
pub async fn create(
    state: &State,
    caller: &Caller,
    org_id: Uuid,
    new: NewProject,
) -> Result<ProjectWithKey, Error> {
    caller
        .require(state, org_id, Action::ManageProjects, ORG)
        .await?;
    let NewProject { name, platform } = new;
    state
        .projects
        .send(CreateProjectWithKey {
            org_id: org_id.to_string(),
            name,
            platform,
            label: None,
        })
        .await?
}

/// `key_id` as listed, if it is one of `project`'s keys; `NotFound {
/// "api key" }` otherwise: a key id is no licence to change another
/// project's key.
async fn own_key(state: &State, project: &Project, key_id: Uuid) -> Result<ApiKeyInfo, Error> {
    let keys = state
        .projects
        .send(ListApiKeys {
            project_id: project.id.to_string(),
        })
        .await??;
    keys.into_iter()
        .find(|k| k.id == key_id)
        .ok_or(Error::NotFound { entity: "api key" })
}

/// Revokes `key_id` if it is one of `project`'s keys. The caller has
/// checked that it may manage `project`'s keys.
pub async fn revoke_key(state: &State, project: &Project, key_id: Uuid) -> Result<(), Error> {
    own_key(state, project, key_id).await?;
    state
        .projects
        .send(RevokeApiKey {
            key_id: key_id.to_string(),
        })
        .await??;
    Ok(())
}

/// A key's settings, as the API's JSON and the page's form give them.
/// A field left out stays as it is, `null` removes it.
#[derive(Debug, Default, Deserialize)]
pub struct KeySettings {
    /// Events per minute, or `null` for no limit of the key's own.
    #[serde(default, deserialize_with = "given")]
    pub rate_limit_per_minute: Option<Option<u32>>,
}

/// Sets or removes the rate limit of `key_id`, one of `project`'s keys.
/// The caller has checked that it may manage `project`'s keys.
pub async fn set_key_settings(
    state: &State,
    project: &Project,
    key_id: Uuid,
    settings: KeySettings,
) -> Result<ApiKeyInfo, Error> {
    let change = settings
        .rate_limit_per_minute
        .map(check_rate_limit)
        .transpose()?;
    let key = own_key(state, project, key_id).await?;
    match change {
        Some(per_minute) => {
            state
                .projects
                .send(SetKeyRateLimit {
                    project_id: project.id,
                    key_id,
                    per_minute,
                })
                .await?
        }
        None => Ok(key),
    }
}

/// A change to a project's settings, as the API's JSON and the page's form
/// give it: a field left out stays as it is, `null` removes it.
#[derive(Debug, Default, Deserialize)]
pub struct SettingsChange {
    #[serde(default, deserialize_with = "given")]
    pub retention_days: Option<Option<u32>>,
    #[serde(default, deserialize_with = "given")]
    pub rate_limit_per_minute: Option<Option<u32>>,
}

/// A field that is present, `null` or not: `Some`, told apart from one
/// left out (`None`, by `#[serde(default)]`).
fn given<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

/// Changes `project`'s retention and rate limit (an admin's to do),
/// checked against the server's retention. The caller has found the
/// project; the role is checked here.
pub async fn update_settings(
    state: &State,
    caller: &Caller,
    project: &Project,
    change: SettingsChange,
) -> Result<Project, Error> {
    caller
        .require(state, project.org_id, Action::ManageProjects, "project")
        .await?;
    let change = ProjectSettings::parse(
        change.retention_days,
        change.rate_limit_per_minute,
        state.retention_days,
    )?;
    state
        .projects
        .send(UpdateProjectSettings {
            project_id: project.id,
            change,
        })
        .await?
}

/// What `project` stores: its events and their approximate bytes.
pub async fn usage(state: &State, project: &Project) -> Result<Usage, Error> {
    let usage = state
        .projects
        .send(ProjectUsage {
            project_ids: vec![project.id],
        })
        .await??;
    Ok(usage.get(&project.id).copied().unwrap_or_default())
}
