//! A project's settings (admins): its retention and its rate limit.

use super::{Reader, error_page, page_or_error};
use crate::app::State;
use crate::app::projects::{self, SettingsChange};
use crate::domain::Project;
use crate::domain::access::Action;
use crate::error::Error;
use crate::web::pages::{Layout, ProjectHeader, SettingsPage};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

fn page(
    state: &State,
    reader: &Reader,
    project: &Project,
    header: ProjectHeader,
    form: (String, String),
    saved: bool,
    error: Option<String>,
) -> SettingsPage {
    SettingsPage {
        layout: Layout::new(
            format!("Settings · {}", project.name),
            Some(reader.nav.clone()),
        ),
        project: header,
        retention_days: form.0,
        rate_limit_per_minute: form.1,
        server_retention_days: state.retention_days,
        saved,
        error,
    }
}

/// The form's values for `project`'s settings.
fn values(project: &Project) -> (String, String) {
    let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    (
        text(project.retention_days),
        text(project.rate_limit_per_minute),
    )
}

/// `GET /projects/{id}/settings` (admins).
pub async fn show(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let shown = async {
        let (project, header) = reader
            .project(&state, &project_id, Action::ManageProjects)
            .await?;
        let form = values(&project);
        Ok::<_, Error>(page(&state, &reader, &project, header, form, false, None))
    };
    page_or_error(shown.await, StatusCode::OK, reader.nav)
}

/// The form as sent: each field a number, or empty for none.
#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    retention_days: String,
    #[serde(default)]
    rate_limit_per_minute: String,
}

/// An empty field is no setting; anything else must be a whole number.
pub(super) fn number(field: &'static str, text: &str) -> Result<Option<u32>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, "must be a whole number of at least 1"))
}

/// `POST /projects/{id}/settings`: both settings at once, as the form
/// shows them.
pub async fn update(
    req: HttpRequest,
    state: web::Data<State>,
    project_id: web::Path<String>,
    form: web::Form<SettingsForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let form = form.into_inner();
    let (project, header) = match reader
        .project(&state, &project_id, Action::ManageProjects)
        .await
    {
        Ok(found) => found,
        Err(e) => return error_page(e, Some(reader.nav)),
    };
    let sent = (
        form.retention_days.clone(),
        form.rate_limit_per_minute.clone(),
    );
    let saved = async {
        let change = SettingsChange {
            retention_days: Some(number("retention_days", &form.retention_days)?),
            rate_limit_per_minute: Some(number(
                "rate_limit_per_minute",
                &form.rate_limit_per_minute,
            )?),
        };
        projects::update_settings(&state, &reader.caller, &project, change).await
    };
    match saved.await {
        Ok(project) => {
            let form = values(&project);
            let shown = page(&state, &reader, &project, header, form, true, None);
            page_or_error(Ok(shown), StatusCode::OK, reader.nav)
        }
        Err(e @ Error::InvalidInput { .. }) => {
            let shown = page(
                &state,
                &reader,
                &project,
                header,
                sent,
                false,
                Some(e.to_string()),
            );
            page_or_error(Ok(shown), StatusCode::BAD_REQUEST, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}
