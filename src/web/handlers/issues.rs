//! A project's issues, one issue with one of its events, and triage.

use super::{Reader, error_page, see_other};
use crate::app::State;
use crate::app::issues::{self, Triage};
use crate::domain::EventNeighbours;
use crate::domain::access::Action;
use crate::error::Error;
use crate::services::{
    GetEvent, GetEventNeighbours, GetIssue, GetIssueActivity, ListIssues, ListMembers,
    UpdateIssueStatus,
};
use crate::web::alerts::AlertRow;
use crate::web::event::EventView;
use crate::web::format::{RelTime, Sparkline};
use crate::web::pages::{
    Assignee, IssueFilters, IssuePage, IssueRow, IssuesPage, Layout, MemberChoice,
};
use crate::web::render;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

/// `GET /projects/{id}/issues`.
pub async fn list(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    filters: web::Query<IssueFilters>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let filters = filters.into_inner();
    let page = async {
        let (project, header) = reader.project(&state, &project_id, Action::Read).await?;
        let layout = Layout::new(
            format!("Issues · {}", project.name),
            Some(reader.nav.clone()),
        );
        let listed = state
            .issues
            .send(ListIssues {
                project_id: project.id.to_string(),
                status: filters.status().map(str::to_owned),
                environment: filters.environment().map(str::to_owned),
                release: filters.release().map(str::to_owned),
                query: filters.query().map(str::to_owned),
                sort: filters.sort().map(str::to_owned),
                cursor: filters.cursor().map(str::to_owned),
                limit: None,
                me: Some(reader.caller.user_id),
            })
            .await?;
        // A search that cannot be read is shown under the search box.
        let page = match listed {
            Ok(page) => page,
            Err(e @ Error::InvalidSearch { .. }) => {
                let mut page = IssuesPage::new(layout, header, filters.clone(), Vec::new(), None);
                page.search_error = Some(e.to_string());
                return Ok((StatusCode::BAD_REQUEST, page));
            }
            Err(e) => return Err(e),
        };
        let activity = state
            .issues
            .send(GetIssueActivity {
                project_id: project.id.to_string(),
                issue_ids: page.issues.iter().map(|i| i.id).collect(),
            })
            .await??;
        let rows = IssueRow::page(&page.issues, &activity, Utc::now());
        Ok::<_, Error>((
            StatusCode::OK,
            IssuesPage::new(layout, header, filters.clone(), rows, page.next.as_deref()),
        ))
    };
    match page.await {
        Ok((status, page)) => render(status, &page),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `POST /projects/{id}/issues/resolve`: the checked issues (`issue`
/// repeated) resolved.
pub async fn resolve_selected(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let done = async {
        let (project, _) = reader.project(&state, &project_id, Action::Triage).await?;
        for (_, issue_id) in form.iter().filter(|(k, _)| k == "issue") {
            state
                .issues
                .send(UpdateIssueStatus::to(
                    project.id.to_string(),
                    issue_id.clone(),
                    "resolved",
                    reader.caller.user_id,
                ))
                .await??;
        }
        Ok::<_, Error>(project)
    };
    match done.await {
        Ok(project) => see_other(&format!("/projects/{}/issues", project.id)),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct EventChoice {
    /// The event to show; the latest when absent.
    event: Option<String>,
}

/// `GET /projects/{id}/issues/{issue_id}[?event=<id>]`: the issue and one
/// of its events (the latest unless asked), with links to the events just
/// newer and older.
pub async fn issue(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    choice: web::Query<EventChoice>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, issue_id) = path.into_inner();
    let page = async {
        let (project, header) = reader.project(&state, &project_id, Action::Read).await?;
        let detail = state
            .issues
            .send(GetIssue {
                project_id: project.id.to_string(),
                issue_id: issue_id.clone(),
            })
            .await??;
        // The neighbours' query also checks that the event is this issue's.
        let shown = choice
            .event
            .clone()
            .or_else(|| detail.latest_event.as_ref().map(|e| e.id.to_string()));
        let neighbours = match &shown {
            Some(event_id) => {
                state
                    .issues
                    .send(GetEventNeighbours {
                        project_id: project.id.to_string(),
                        issue_id,
                        event_id: event_id.clone(),
                    })
                    .await??
            }
            None => EventNeighbours::default(),
        };
        let event = match &choice.event {
            Some(event_id) => Some(
                state
                    .issues
                    .send(GetEvent {
                        project_id: project.id.to_string(),
                        event_id: event_id.clone(),
                    })
                    .await??,
            ),
            None => detail.latest_event.clone(),
        };
        let (newer_event, older_event) = IssuePage::event_links(&neighbours);
        let triage = crate::web::triage::IssueTriage::load(&state, &project, &detail.issue).await?;
        let issue_id = detail.issue.id.to_string();
        let alerts = crate::app::alerts::history(&state, &project, Some(&issue_id), None, Some(10))
            .await?
            .alerts;
        let members = state
            .users
            .send(ListMembers {
                org_id: project.org_id,
            })
            .await??;
        let now = Utc::now();
        let assigned = detail.issue.assigned_to;
        let assignee = Assignee {
            current: members
                .iter()
                .find(|m| Some(m.user_id) == assigned)
                .map(|m| m.display_name.clone()),
            choices: members
                .iter()
                .map(|m| MemberChoice {
                    user_id: m.user_id.to_string(),
                    label: format!("{} <{}>", m.display_name, m.email),
                    selected: Some(m.user_id) == assigned,
                })
                .collect(),
        };
        Ok::<_, Error>(IssuePage {
            layout: Layout::new(detail.issue.title.clone(), Some(reader.nav.clone())),
            project: header,
            issue: IssueRow::of_detail(&detail, now),
            stored_events: detail.stored_events,
            sparkline: Sparkline::new(&detail.daily_counts),
            resolved: detail.issue.resolved_at.map(|at| RelTime::new(at, now)),
            assignee,
            event: event.as_ref().map(|e| EventView::new(e, now)),
            newer_event,
            older_event,
            triage,
            alerts: alerts
                .iter()
                .map(|a| AlertRow::of(a, &project.id.to_string(), now))
                .collect(),
        })
    };
    match page.await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `POST /projects/{id}/issues/{issue_id}/status`.
pub async fn set_status(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<crate::web::triage::StatusForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, issue_id) = path.into_inner();
    let done = async {
        let (project, _) = reader.project(&state, &project_id, Action::Triage).await?;
        let change = form.into_inner().change(reader.caller.user_id)?;
        issues::triage(&state, &project, issue_id.clone(), change).await?;
        Ok::<_, Error>(format!("/projects/{}/issues/{issue_id}", project.id))
    };
    match done.await {
        Ok(back) => see_other(&back),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct AssigneeForm {
    #[serde(default)]
    user_id: String,
}

/// `POST /projects/{id}/issues/{issue_id}/assignee` (empty: nobody).
pub async fn set_assignee(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<AssigneeForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, issue_id) = path.into_inner();
    let user = Some(form.into_inner().user_id).filter(|u| !u.is_empty());
    let done = async {
        let (project, _) = reader.project(&state, &project_id, Action::Triage).await?;
        let user = user
            .map(|u| u.parse::<Uuid>())
            .transpose()
            .map_err(|_| Error::invalid("user_id", "must be a UUID"))?;
        let change = Triage {
            status: None,
            archive: None,
            resolved_in: None,
            assignee: Some(user),
            assignee_field: "user_id",
            actor: reader.caller.user_id,
        };
        issues::triage(&state, &project, issue_id.clone(), change).await?;
        Ok::<_, Error>(format!("/projects/{}/issues/{issue_id}", project.id))
    };
    match done.await {
        Ok(back) => see_other(&back),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}
