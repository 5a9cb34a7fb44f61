//! Organizations and their members: mine, a new one with its creator as
//! owner, a member added by email, a role changed or a member removed.

use super::{Caller, State};
use crate::domain::access::Action;
use crate::domain::{OrgMembership, Organization, Role};
use crate::error::Error;
use crate::services::{AddMemberByEmail, ChangeMember, CreateOrgAsOwner, GetRole, GetUserOrgs};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an outsider is told is missing.
pub const ORG: &str = "organization";

/// An organization with the caller's role in it.
#[derive(Serialize)]
pub struct MyOrg {
    #[serde(flatten)]
    pub org: Organization,
    pub role: Role,
}

/// The organizations the caller belongs to, with their roles.
pub async fn mine(state: &State, caller: &Caller) -> Result<Vec<MyOrg>, Error> {
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

/// A new organization, as the API's JSON and the page's form give it.
#[derive(Deserialize)]
pub struct NewOrg {
    pub name: String,
    pub slug: String,
}

/// Creates an organization with the caller as its owner, both or neither.
pub async fn create(state: &State, caller: &Caller, new: NewOrg) -> Result<MyOrg, Error> {
    let NewOrg { name, slug } = new;
    let org = state
        .orgs
        .send(CreateOrgAsOwner {
            name,
            slug,
            owner_id: caller.user_id,
        })
        .await??;
    Ok(MyOrg {
        org,
        role: Role::Owner,
    })
}

/// A member to add: a registered user's email, and a role.
#[derive(Deserialize)]
pub struct NewMember {
    pub email: String,
    pub role: String,
}

/// Adds a registered user by email: admins add members and admins, owners
/// also owners.
pub async fn add_member(
    state: &State,
    caller: &Caller,
    org_id: Uuid,
    new: NewMember,
) -> Result<OrgMembership, Error> {
    let NewMember { email, role } = new;
    let needed = match role.parse::<Role>()? {
        Role::Owner => Action::ManageOwners,
        _ => Action::ManageMembers,
    };
    caller.require(state, org_id, needed, ORG).await?;
    state
        .users
        .send(AddMemberByEmail {
            org_id,
            email,
            role,
        })
        .await?
}

/// Gives `user_id` another `role` in `org_id`, or removes them with
/// `None`: anything touching an owner is an owner's to do, the rest an
/// admin's, and leaving anyone's. An organization never loses its last
/// owner (`Conflict`).
pub async fn change_member(
    state: &State,
    caller: &Caller,
    org_id: Uuid,
    user_id: Uuid,
    role: Option<Role>,
) -> Result<(), Error> {
    // Membership first: an outsider must not learn who is a member.
    caller.require(state, org_id, Action::Read, ORG).await?;
    let needed = if role.is_none() && user_id == caller.user_id {
        Action::Read
    } else {
        let current = state.users.send(GetRole { user_id, org_id }).await??;
        if current == Some(Role::Owner) || role == Some(Role::Owner) {
            Action::ManageOwners
        } else {
            Action::ManageMembers
        }
    };
    caller.require(state, org_id, needed, ORG).await?;
    state
        .users
        .send(ChangeMember {
            org_id,
            user_id,
            role: role.map(|r| r.as_str().to_owned()),
        })
        .await?
}
