//! Triage: an issue's status and assignee, with the rule on who may be
//! assigned.

use super::State;
use crate::domain::{ArchiveUntil, Issue, Project, ResolveIn};
use crate::error::Error;
use crate::services::{AssignIssue, GetRole, UpdateIssueStatus};
use uuid::Uuid;

/// A change to an issue: a status, an assignee, or both.
pub struct Triage {
    /// `resolved`, `unresolved` or `archived` (checked by the issue
    /// service).
    pub status: Option<String>,
    /// With `archived`: until when (forever when absent).
    pub archive: Option<ArchiveUntil>,
    /// With `resolved`: in which release (now when absent).
    pub resolved_in: Option<ResolveIn>,
    /// A member of the project's organization, or nobody (`Some(None)`).
    pub assignee: Option<Option<Uuid>>,
    /// What the surface calls the assignee's field, so that the error
    /// refusing one names what the caller sent.
    pub assignee_field: &'static str,
    /// Who makes the change, for the issue's activity.
    pub actor: Uuid,
}

/// Applies `change` to `issue_id` of `project` (whose triage the caller
/// may do): the issue as it is afterwards. The assignee is checked before
/// anything changes, so a refused one changes nothing.
pub async fn triage(
    state: &State,
    project: &Project,
    issue_id: String,
    change: Triage,
) -> Result<Issue, Error> {
    let Triage {
        status,
        archive,
        resolved_in,
        assignee,
        assignee_field,
        actor,
    } = change;
    if status.is_none() && (archive.is_some() || resolved_in.is_some()) {
        return Err(Error::invalid(
            "status",
            "must be given with archive or resolved_in",
        ));
    }
    if let Some(Some(user_id)) = assignee {
        let member = state
            .users
            .send(GetRole {
                user_id,
                org_id: project.org_id,
            })
            .await??;
        if member.is_none() {
            return Err(Error::invalid(
                assignee_field,
                "must be a member of the project's organization",
            ));
        }
    }
    let project_id = project.id.to_string();
    let mut issue = None;
    if let Some(status) = status {
        let msg = UpdateIssueStatus {
            project_id: project_id.clone(),
            issue_id: issue_id.clone(),
            status,
            archive,
            resolved_in,
            actor: Some(actor),
        };
        issue = Some(state.issues.send(msg).await??);
    }
    if let Some(user) = assignee {
        let msg = AssignIssue {
            project_id,
            issue_id,
            user_id: user.map(|u| u.to_string()),
            actor: Some(actor),
        };
        issue = Some(state.issues.send(msg).await??);
    }
    issue.ok_or(Error::invalid("body", "must set a status or an assignee"))
}
