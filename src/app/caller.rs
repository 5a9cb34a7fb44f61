//! The one access check of the dashboard, the API's and the pages': who
//! is asking ([`Caller`], made by [`super::session::caller`]) and whether
//! they may ([`Caller::require`], applying [`crate::domain::access`]).

use super::State;
use crate::domain::access::Action;
use crate::domain::{Project, Role};
use crate::error::Error;
use crate::services::{GetProject, GetRole};
use uuid::Uuid;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Whose session it is: every access check asks about this user.
    pub user_id: Uuid,
    /// The token it came with, for logging out.
    pub token: String,
}

impl Caller {
    /// The caller's role in `org_id` if it allows `action`. An outsider gets
    /// `NotFound { entity }`, exactly what a missing `entity` gets, so no
    /// one learns what exists outside their organizations; a member whose
    /// role falls short gets `Forbidden`.
    pub async fn require(
        &self,
        state: &State,
        org_id: Uuid,
        action: Action,
        entity: &'static str,
    ) -> Result<Role, Error> {
        let role = state
            .users
            .send(GetRole {
                user_id: self.user_id,
                org_id,
            })
            .await??
            .ok_or(Error::NotFound { entity })?;
        if !role.may(action) {
            return Err(Error::Forbidden {
                action: action.as_str(),
            });
        }
        Ok(role)
    }

    /// The project `project_id` names, with the caller's role in its
    /// organization, if that role allows `action`; `NotFound { "project" }`
    /// for an outsider (see [`Caller::require`]).
    pub async fn project(
        &self,
        state: &State,
        project_id: &str,
        action: Action,
    ) -> Result<(Project, Role), Error> {
        // Only a UUID names a project here; the numeric public id is the
        // DSN's.
        let id: Uuid = project_id
            .parse()
            .map_err(|_| Error::invalid("project_id", "must be a UUID"))?;
        let project = state
            .projects
            .send(GetProject { id: id.to_string() })
            .await??;
        let role = self
            .require(state, project.org_id, action, "project")
            .await?;
        Ok((project, role))
    }
}
