//! Projects and their keys: a new project with its first key, and a key
//! revoked.

use super::orgs::ORG;
use super::{Caller, State};
use crate::domain::access::Action;
use crate::domain::{Project, ProjectWithKey};
use crate::error::Error;
use crate::services::{CreateProjectWithKey, ListApiKeys, RevokeApiKey};
use serde::Deserialize;
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

/// Revokes `key_id` if it is one of `project`'s keys: a key id is no
/// licence to revoke another project's key. `NotFound { "api key" }`
/// otherwise. The caller has checked that it may manage `project`'s keys.
pub async fn revoke_key(state: &State, project: &Project, key_id: Uuid) -> Result<(), Error> {
    let keys = state
        .projects
        .send(ListApiKeys {
            project_id: project.id.to_string(),
        })
        .await??;
    if !keys.iter().any(|k| k.id == key_id) {
        return Err(Error::NotFound { entity: "api key" });
    }
    state
        .projects
        .send(RevokeApiKey {
            key_id: key_id.to_string(),
        })
        .await??;
    Ok(())
}
