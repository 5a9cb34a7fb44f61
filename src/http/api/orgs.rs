//! `/api/v1/orgs`: organizations, their members and their projects.

use super::caller::Caller;
use super::projects::with_keys;
use crate::domain::access::Action;
use crate::domain::{Organization, Role};
use crate::error::Error;
use crate::http::State;
use crate::http::error::ApiError;
use crate::services::{
    AddMemberByEmail, ChangeMember, CreateOrgAsOwner, CreateProject, GetOrg, GetRole, GetUserOrgs,
    ListMembers, ListProjectsByOrg,
};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An organization with the caller's role in it.
#[derive(Serialize)]
pub struct MyOrg {
    #[serde(flatten)]
    pub org: Organization,
    pub role: Role,
}

/// The organizations the caller belongs to, with their roles.
pub async fn my_orgs(state: &State, caller: &Caller) -> Result<Vec<MyOrg>, Error> {
    let orgs = state
        .users
        .send(GetUserOrgs {
            user_id: caller.user_id.to_string(),
        })
        .await??;
    let mut mine = Vec::with_capacity(orgs.len());
    for org in orgs {
        let role = state
            .users
            .send(GetRole {
                user_id: caller.user_id,
                org_id: org.id,
            })
            .await??;
        // A membership removed between the two reads: not mine any more.
        if let Some(role) = role {
            mine.push(MyOrg { org, role });
        }
    }
    Ok(mine)
}

#[derive(Deserialize)]
pub struct NewOrg {
    pub name: String,
    pub slug: String,
}

/// Creates an organization; the caller becomes its owner.
pub async fn create(
    state: web::Data<State>,
    caller: Caller,
    body: web::Json<NewOrg>,
) -> Result<HttpResponse, ApiError> {
    let NewOrg { name, slug } = body.into_inner();
    let org = state
        .orgs
        .send(CreateOrgAsOwner {
            name,
            slug,
            owner_id: caller.user_id,
        })
        .await??;
    Ok(HttpResponse::Created().json(MyOrg {
        org,
        role: Role::Owner,
    }))
}

pub async fn list(state: web::Data<State>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(my_orgs(&state, &caller).await?))
}

const ORG: &str = "organization";

pub async fn get(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    let role = caller.require(&state, org_id, Action::Read, ORG).await?;
    let org = state
        .orgs
        .send(GetOrg {
            id: org_id.to_string(),
        })
        .await??;
    Ok(HttpResponse::Ok().json(MyOrg { org, role }))
}

pub async fn members(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    caller.require(&state, org_id, Action::Read, ORG).await?;
    let members = state.users.send(ListMembers { org_id }).await??;
    Ok(HttpResponse::Ok().json(members))
}

#[derive(Deserialize)]
pub struct NewMember {
    pub email: String,
    pub role: String,
}

/// Adds a registered user by email: admins add members and admins, owners
/// also owners.
pub async fn add_member(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
    body: web::Json<NewMember>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    let NewMember { email, role } = body.into_inner();
    let needed = match role.parse::<Role>()? {
        Role::Owner => Action::ManageOwners,
        _ => Action::ManageMembers,
    };
    caller.require(&state, org_id, needed, ORG).await?;
    let membership = state
        .users
        .send(AddMemberByEmail {
            org_id,
            email,
            role,
        })
        .await??;
    Ok(HttpResponse::Created().json(membership))
}

#[derive(Deserialize)]
pub struct RoleChange {
    pub role: String,
}

/// What changing `user_id`'s membership to `role` (`None`: removing it)
/// asks of the caller: anything touching an owner is an owner's to do;
/// leaving is anyone's.
pub async fn change_needs(
    state: &State,
    caller: &Caller,
    org_id: Uuid,
    user_id: Uuid,
    role: Option<Role>,
) -> Result<Action, Error> {
    if role.is_none() && user_id == caller.user_id {
        return Ok(Action::Read);
    }
    let current = state.users.send(GetRole { user_id, org_id }).await??;
    Ok(
        if current == Some(Role::Owner) || role == Some(Role::Owner) {
            Action::ManageOwners
        } else {
            Action::ManageMembers
        },
    )
}

pub async fn change_member(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<RoleChange>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    let role: Role = body.role.parse()?;
    // Membership first: an outsider must not learn who is a member.
    caller.require(&state, org_id, Action::Read, ORG).await?;
    let needed = change_needs(&state, &caller, org_id, user_id, Some(role)).await?;
    caller.require(&state, org_id, needed, ORG).await?;
    state
        .users
        .send(ChangeMember {
            org_id,
            user_id,
            role: Some(role.as_str().to_owned()),
        })
        .await??;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn remove_member(
    state: web::Data<State>,
    caller: Caller,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, user_id) = path.into_inner();
    caller.require(&state, org_id, Action::Read, ORG).await?;
    let needed = change_needs(&state, &caller, org_id, user_id, None).await?;
    caller.require(&state, org_id, needed, ORG).await?;
    state
        .users
        .send(ChangeMember {
            org_id,
            user_id,
            role: None,
        })
        .await??;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
pub struct NewProject {
    pub name: String,
    pub platform: Option<String>,
}

pub async fn create_project(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
    body: web::Json<NewProject>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    caller
        .require(&state, org_id, Action::ManageProjects, ORG)
        .await?;
    let NewProject { name, platform } = body.into_inner();
    let project = state
        .projects
        .send(CreateProject {
            org_id: org_id.to_string(),
            name,
            platform,
        })
        .await??;
    Ok(HttpResponse::Created().json(with_keys(&state, project).await?))
}

pub async fn projects(
    state: web::Data<State>,
    caller: Caller,
    org_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = org_id.into_inner();
    caller.require(&state, org_id, Action::Read, ORG).await?;
    let projects = state
        .projects
        .send(ListProjectsByOrg {
            org_id: org_id.to_string(),
        })
        .await??;
    let mut listed = Vec::with_capacity(projects.len());
    for project in projects {
        listed.push(with_keys(&state, project).await?);
    }
    Ok(HttpResponse::Ok().json(listed))
}
