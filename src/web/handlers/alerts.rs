//! A project's alerts: channels and rules (members read, admins make,
//! edit, turn on and off, delete and test), and the history.

use super::{Reader, error_page, page_or_error, see_other};
use crate::app::{State, alerts};
use crate::domain::access::Action;
use crate::domain::{ChannelKind, ChannelPatch, Member, Project, RulePatch};
use crate::error::Error;
use crate::services::ListMembers;
use crate::web::alerts::{
    AlertHistoryPage, AlertRow, AlertsPage, ChannelEditPage, ChannelForm, ChannelRow, RuleEditPage,
    RuleForm, RuleRow, channel_from_form, field, posted_member, recipient_choices, rule_from_form,
};
use crate::web::pages::Layout;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;

/// A refused form's fields, to show it again as it was posted.
#[derive(Clone, Copy)]
enum Posted<'a> {
    Nothing,
    Rule(&'a [(String, String)]),
    Channel(&'a [(String, String)]),
}

/// The members of `project`'s organization: whom an email channel may
/// address. The caller's access to the project was checked, and any
/// member may list them.
async fn org_members(state: &State, project: &Project) -> Result<Vec<Member>, Error> {
    state
        .users
        .send(ListMembers {
            org_id: project.org_id,
        })
        .await?
}

/// The alerts page, with what an action left to show: a new webhook's
/// secret, or a refusal (and the form as it was posted).
async fn alerts_page(
    state: &State,
    reader: &Reader,
    project_id: &str,
    secret: Option<(String, String)>,
    error: Option<String>,
    posted: Posted<'_>,
) -> Result<AlertsPage, Error> {
    let (project, header) = reader.project(state, project_id, Action::Read).await?;
    let id = project.id.to_string();
    let channels = alerts::channels(state, &reader.caller, &id).await?;
    let rules = alerts::rules(state, &reader.caller, &id).await?;
    let members = org_members(state, &project).await?;
    let mut form = RuleForm::new(&id, &channels);
    let mut channel_form = ChannelForm::new(&members);
    match posted {
        Posted::Nothing => {}
        Posted::Rule(posted) => form = form.refilled(posted),
        Posted::Channel(posted) => channel_form = channel_form.refilled(posted),
    }
    Ok(AlertsPage {
        layout: Layout::new(
            format!("Alerts · {}", project.name),
            Some(reader.nav.clone()),
        ),
        project: header,
        rules: rules.iter().map(|r| RuleRow::of(r, &channels)).collect(),
        channels: channels
            .iter()
            .map(|c| ChannelRow::of(c, &members))
            .collect(),
        form,
        channel_form,
        secret,
        email: state.alerts.email,
        error,
    })
}

/// A refusal shown on the alerts page (400), or the error page.
async fn refused(
    state: &State,
    reader: Reader,
    project_id: &str,
    e: Error,
    posted: Posted<'_>,
) -> HttpResponse {
    if let Error::InvalidInput { .. } | Error::NotFound { entity: "channel" } = e {
        let page = alerts_page(
            state,
            &reader,
            project_id,
            None,
            Some(e.to_string()),
            posted,
        )
        .await;
        return page_or_error(page, StatusCode::BAD_REQUEST, reader.nav);
    }
    error_page(e, Some(reader.nav))
}

/// `GET /projects/{id}/alerts`.
pub async fn list(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let page = alerts_page(&state, &reader, &project_id, None, None, Posted::Nothing).await;
    page_or_error(page, StatusCode::OK, reader.nav)
}

/// `POST /projects/{id}/alerts/channels`: a new channel from the channel
/// form (see [`channel_from_form`]; `kind` too); a webhook's secret is
/// shown this once.
pub async fn create_channel(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let made = async {
        let channel = channel_from_form(field(&form, "kind"), &form)?;
        alerts::create_channel(&state, &reader.caller, &project_id, channel).await
    };
    match made.await {
        Ok(made) => {
            let secret = made.secret.map(|s| (made.name, s.expose().to_owned()));
            let page =
                alerts_page(&state, &reader, &project_id, secret, None, Posted::Nothing).await;
            page_or_error(page, StatusCode::CREATED, reader.nav)
        }
        Err(e) => refused(&state, reader, &project_id, e, Posted::Channel(&form)).await,
    }
}

/// `GET /projects/{id}/alerts/channels/{channel_id}/edit` (admins).
pub async fn edit_channel(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, channel_id) = path.into_inner();
    let page = channel_edit_page(&state, &reader, &project_id, &channel_id, None, None).await;
    page_or_error(page, StatusCode::OK, reader.nav)
}

/// The channel's edit form, refilled with what was `posted` when it was
/// refused with `error`.
async fn channel_edit_page(
    state: &State,
    reader: &Reader,
    project_id: &str,
    channel_id: &str,
    error: Option<String>,
    posted: Option<&[(String, String)]>,
) -> Result<ChannelEditPage, Error> {
    let (project, header) = reader
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let id = crate::domain::parse_id("channel_id", channel_id)?;
    let channels = alerts::channels(state, &reader.caller, &project.id.to_string()).await?;
    let channel = channels
        .iter()
        .find(|c| c.id == id)
        .ok_or(Error::NotFound { entity: "channel" })?;
    let email = channel.kind == ChannelKind::Email;
    let members = if email {
        org_members(state, &project).await?
    } else {
        Vec::new()
    };
    let (name, target, ticked) = match posted {
        Some(posted) => {
            let ticked = recipient_choices(&members, |id| posted_member(posted, id));
            let get = |key| field(posted, key).to_owned();
            (get("name"), get("target"), ticked)
        }
        None => {
            let ticked = recipient_choices(&members, |id| {
                channel.members.iter().any(|m| m.to_string() == id)
            });
            (channel.name.clone(), channel.addresses.join(", "), ticked)
        }
    };
    Ok(ChannelEditPage {
        layout: Layout::new(format!("Edit {}", channel.name), Some(reader.nav.clone())),
        project: header,
        channel: ChannelRow::of(channel, &members),
        email,
        name,
        target: if email { target } else { String::new() },
        members: ticked,
        error,
    })
}

/// `POST /projects/{id}/alerts/channels/{channel_id}`: the edited name
/// and target: a webhook's new URL (empty: it stays), or an email
/// channel's addresses and ticked members, which replace its own (see
/// [`channel_from_form`]). Its kind, secret and on/off state stay.
pub async fn update_channel(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, channel_id) = path.into_inner();
    let saved = async {
        let (project, _) = reader
            .project(&state, &project_id, Action::ManageAlerts)
            .await?;
        let id = crate::domain::parse_id("channel_id", &channel_id)?;
        let channel = alerts::channels(&state, &reader.caller, &project.id.to_string())
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or(Error::NotFound { entity: "channel" })?;
        let edited = channel_from_form(channel.kind.as_str(), &form)?;
        let patch = ChannelPatch {
            name: Some(edited.name),
            url: edited.url.filter(|u| !u.trim().is_empty()),
            addresses: edited.addresses,
            members: edited.members,
            enabled: None,
        };
        alerts::update_channel(&state, &reader.caller, &project_id, &channel_id, patch).await
    };
    match saved.await {
        Ok(_) => see_other(&format!("/projects/{project_id}/alerts")),
        Err(e @ Error::InvalidInput { .. }) => {
            let page = channel_edit_page(
                &state,
                &reader,
                &project_id,
                &channel_id,
                Some(e.to_string()),
                Some(&form),
            )
            .await;
            page_or_error(page, StatusCode::BAD_REQUEST, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct EnabledForm {
    enabled: bool,
}

/// `POST /projects/{id}/alerts/channels/{channel_id}/enabled`.
pub async fn channel_enabled(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<EnabledForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, channel_id) = path.into_inner();
    let patch = ChannelPatch {
        enabled: Some(form.enabled),
        ..Default::default()
    };
    match alerts::update_channel(&state, &reader.caller, &project_id, &channel_id, patch).await {
        Ok(_) => see_other(&format!("/projects/{project_id}/alerts")),
        Err(e) => refused(&state, reader, &project_id, e, Posted::Nothing).await,
    }
}

/// `POST /projects/{id}/alerts/channels/{channel_id}/delete`.
pub async fn delete_channel(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, channel_id) = path.into_inner();
    match alerts::delete_channel(&state, &reader.caller, &project_id, &channel_id).await {
        Ok(()) => see_other(&format!("/projects/{project_id}/alerts")),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `POST /projects/{id}/alerts/channels/{channel_id}/test`: queued, then
/// the history shows how it went.
pub async fn test_channel(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, channel_id) = path.into_inner();
    match alerts::test_channel(&state, &reader.caller, &project_id, &channel_id).await {
        Ok(_) => see_other(&format!("/projects/{project_id}/alerts/history")),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `POST /projects/{id}/alerts/rules`: a new rule from the rule form.
pub async fn create_rule(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let made = async {
        let rule = rule_from_form(&form)?;
        alerts::create_rule(&state, &reader.caller, &project_id, rule).await
    };
    match made.await {
        Ok(_) => see_other(&format!("/projects/{project_id}/alerts")),
        Err(e) => refused(&state, reader, &project_id, e, Posted::Rule(&form)).await,
    }
}

/// `GET /projects/{id}/alerts/rules/{rule_id}/edit` (admins).
pub async fn edit_rule(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, rule_id) = path.into_inner();
    let page = rule_edit_page(&state, &reader, &project_id, &rule_id, None, None).await;
    page_or_error(page, StatusCode::OK, reader.nav)
}

async fn rule_edit_page(
    state: &State,
    reader: &Reader,
    project_id: &str,
    rule_id: &str,
    error: Option<String>,
    posted: Option<&[(String, String)]>,
) -> Result<RuleEditPage, Error> {
    let (project, header) = reader
        .project(state, project_id, Action::ManageAlerts)
        .await?;
    let id = project.id.to_string();
    let rule_id = crate::domain::parse_id("rule_id", rule_id)?;
    let rules = alerts::rules(state, &reader.caller, &id).await?;
    let rule = rules
        .iter()
        .find(|r| r.id == rule_id)
        .ok_or(Error::NotFound {
            entity: "alert rule",
        })?;
    let channels = alerts::channels(state, &reader.caller, &id).await?;
    let mut form = RuleForm::edit(rule, &channels);
    if let Some(posted) = posted {
        form = form.refilled(posted);
    }
    Ok(RuleEditPage {
        layout: Layout::new(format!("Edit {}", rule.name), Some(reader.nav.clone())),
        project: header,
        form,
        error,
    })
}

/// `POST /projects/{id}/alerts/rules/{rule_id}`: the edited rule (its
/// on/off state stays).
pub async fn update_rule(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, rule_id) = path.into_inner();
    let saved = async {
        let rule = rule_from_form(&form)?;
        let patch = RulePatch {
            name: Some(rule.name),
            condition: Some(rule.condition),
            filters: Some(rule.filters),
            channels: Some(rule.channels),
            action_interval_minutes: rule.action_interval_minutes,
            enabled: None,
        };
        alerts::update_rule(&state, &reader.caller, &project_id, &rule_id, patch).await
    };
    match saved.await {
        Ok(_) => see_other(&format!("/projects/{project_id}/alerts")),
        Err(e @ (Error::InvalidInput { .. } | Error::NotFound { entity: "channel" })) => {
            let page = rule_edit_page(
                &state,
                &reader,
                &project_id,
                &rule_id,
                Some(e.to_string()),
                Some(&form),
            )
            .await;
            page_or_error(page, StatusCode::BAD_REQUEST, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// `POST /projects/{id}/alerts/rules/{rule_id}/enabled`.
pub async fn rule_enabled(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
    form: web::Form<EnabledForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, rule_id) = path.into_inner();
    let patch = RulePatch {
        enabled: Some(form.enabled),
        ..Default::default()
    };
    match alerts::update_rule(&state, &reader.caller, &project_id, &rule_id, patch).await {
        Ok(_) => see_other(&format!("/projects/{project_id}/alerts")),
        Err(e) => refused(&state, reader, &project_id, e, Posted::Nothing).await,
    }
}

/// `POST /projects/{id}/alerts/rules/{rule_id}/delete`.
pub async fn delete_rule(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (project_id, rule_id) = path.into_inner();
    match alerts::delete_rule(&state, &reader.caller, &project_id, &rule_id).await {
        Ok(()) => see_other(&format!("/projects/{project_id}/alerts")),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    cursor: Option<String>,
}

/// `GET /projects/{id}/alerts/history` (query: `cursor`).
pub async fn history(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    query: web::Query<HistoryQuery>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let page = async {
        let (project, header) = reader.project(&state, &project_id, Action::Read).await?;
        let page = alerts::history(&state, &project, None, query.cursor.as_deref(), None).await?;
        let now = Utc::now();
        let id = project.id.to_string();
        Ok::<_, Error>(AlertHistoryPage {
            layout: Layout::new(
                format!("Alert history · {}", project.name),
                Some(reader.nav.clone()),
            ),
            project: header,
            alerts: page
                .alerts
                .iter()
                .map(|a| AlertRow::of(a, &id, now))
                .collect(),
            next: page
                .next
                .map(|c| format!("/projects/{id}/alerts/history?cursor={c}")),
        })
    };
    page_or_error(page.await, StatusCode::OK, reader.nav)
}
