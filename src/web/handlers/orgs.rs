//! A new organization, and an organization's members (admins): listed,
//! added by email, given another role.

use super::{Reader, error_page, page_or_error, see_other};
use crate::app::State;
use crate::app::orgs::{self, NewMember, NewOrg, ORG};
use crate::domain::Role;
use crate::domain::access::Action;
use crate::error::Error;
use crate::services::{GetOrg, ListMembers};
use crate::web::format::RelTime;
use crate::web::pages::{Layout, MemberRow, MembersPage, NewOrgPage, OrgHeader};
use crate::web::render;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;

/// `GET /orgs/new`.
pub async fn new(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let reader = reader!(req, state);
    render(
        StatusCode::OK,
        &NewOrgPage {
            layout: Layout::new("New organization", Some(reader.nav)),
            name: String::new(),
            slug: String::new(),
            error: None,
        },
    )
}

/// `POST /orgs/new` (the API's `NewOrg` fields, as a form): the
/// organization, with me as its owner; then the projects page, where it is
/// listed.
pub async fn create(
    req: HttpRequest,
    state: web::Data<State>,
    form: web::Form<NewOrg>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let NewOrg { name, slug } = form.into_inner();
    let new = NewOrg {
        name: name.clone(),
        slug: slug.clone(),
    };
    match orgs::create(&state, &reader.caller, new).await {
        Ok(_) => see_other("/projects"),
        Err(e @ (Error::InvalidInput { .. } | Error::AlreadyExists { .. })) => render(
            StatusCode::BAD_REQUEST,
            &NewOrgPage {
                layout: Layout::new("New organization", Some(reader.nav)),
                name,
                slug,
                error: Some(e.to_string()),
            },
        ),
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

/// The members page of an organization (admins), after an action's
/// refusal.
async fn members_page(
    state: &State,
    reader: &Reader,
    org_id: Uuid,
    email: String,
    error: Option<String>,
) -> Result<MembersPage, Error> {
    let role = reader
        .caller
        .require(state, org_id, Action::ManageMembers, ORG)
        .await?;
    let org = state
        .orgs
        .send(GetOrg {
            id: org_id.to_string(),
        })
        .await??;
    let now = Utc::now();
    let owner = role.may(Action::ManageOwners);
    let members = state
        .users
        .send(ListMembers { org_id })
        .await??
        .into_iter()
        .map(|m| MemberRow {
            user_id: m.user_id.to_string(),
            display_name: m.display_name,
            email: m.email,
            role: m.role.as_str(),
            joined: RelTime::new(m.joined_at, now),
            editable: owner || m.role != Role::Owner,
        })
        .collect();
    Ok(MembersPage {
        layout: Layout::new(format!("Members · {}", org.name), Some(reader.nav.clone())),
        org: OrgHeader {
            id: org.id.to_string(),
            name: org.name,
            slug: org.slug,
            role: role.as_str(),
            can_admin: true,
        },
        members,
        roles: if owner {
            vec!["member", "admin", "owner"]
        } else {
            vec!["member", "admin"]
        },
        email,
        error,
    })
}

/// `GET /orgs/{org_id}/members` (admins).
pub async fn members(
    req: HttpRequest,
    state: web::Data<State>,
    org_id: web::Path<Uuid>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let page = members_page(&state, &reader, *org_id, String::new(), None).await;
    page_or_error(page, StatusCode::OK, reader.nav)
}

/// `POST /orgs/{org_id}/members` (the API's `NewMember` fields, as a
/// form): adds a registered user by email.
pub async fn add_member(
    req: HttpRequest,
    state: web::Data<State>,
    org_id: web::Path<Uuid>,
    form: web::Form<NewMember>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let org_id = org_id.into_inner();
    let NewMember { email, role } = form.into_inner();
    let new = NewMember {
        email: email.clone(),
        role,
    };
    match orgs::add_member(&state, &reader.caller, org_id, new).await {
        Ok(_) => see_other(&format!("/orgs/{org_id}/members")),
        Err(
            e @ (Error::InvalidInput { .. }
            | Error::AlreadyExists { .. }
            | Error::NotFound { entity: "user" }),
        ) => {
            let page = members_page(&state, &reader, org_id, email, Some(e.to_string())).await;
            page_or_error(page, StatusCode::BAD_REQUEST, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

/// `POST /orgs/{org_id}/members/{user_id}/role`.
pub async fn change_role(
    req: HttpRequest,
    state: web::Data<State>,
    path: web::Path<(Uuid, Uuid)>,
    form: web::Form<RoleForm>,
) -> HttpResponse {
    let reader = reader!(req, state);
    let (org_id, user_id) = path.into_inner();
    let changed = async {
        let role: Role = form.into_inner().role.parse()?;
        orgs::change_member(&state, &reader.caller, org_id, user_id, Some(role)).await
    };
    match changed.await {
        Ok(()) => see_other(&format!("/orgs/{org_id}/members")),
        Err(e @ (Error::Conflict { .. } | Error::InvalidInput { .. })) => {
            let page =
                members_page(&state, &reader, org_id, String::new(), Some(e.to_string())).await;
            page_or_error(page, StatusCode::CONFLICT, reader.nav)
        }
        Err(e) => error_page(e, Some(reader.nav)),
    }
}
