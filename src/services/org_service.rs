//! OrgService: organizations, the tenants everything else belongs to.

use crate::db::{self, Pool};
use crate::domain::{Name, Organization, Slug, parse_id};
use crate::error::Result;
use actix::prelude::*;

/// Creates and reads organizations.
pub struct OrgService {
    /// Shared connection pool; each request borrows a connection briefly.
    pool: Pool,
}

impl OrgService {
    pub fn new(pool: Pool) -> Self {
        OrgService { pool }
    }
}

impl Actor for OrgService {
    type Context = Context<Self>;
}

/// Creates an organization. Errors: `InvalidInput` (name, slug),
/// `AlreadyExists { "organization" }` for a taken slug.
#[derive(Debug, Message)]
#[rtype(result = "Result<Organization>")]
pub struct CreateOrg {
    pub name: String,
    pub slug: String,
}

/// Creates an organization whose owner is `owner_id`, both or neither (the
/// dashboard's "create", where the creator becomes owner). Errors as
/// [`CreateOrg`], and `NotFound { "user" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Organization>")]
pub struct CreateOrgAsOwner {
    pub name: String,
    pub slug: String,
    pub owner_id: uuid::Uuid,
}

impl Handler<CreateOrgAsOwner> for OrgService {
    type Result = ResponseFuture<Result<Organization>>;

    fn handle(&mut self, msg: CreateOrgAsOwner, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let name = Name::parse("name", &msg.name)?;
            let slug = Slug::parse(&msg.slug)?;
            db::orgs::insert_with_owner(&pool, &name, &slug, msg.owner_id).await
        })
    }
}

/// Reads one organization. Errors: `InvalidInput` (id), `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Organization>")]
pub struct GetOrg {
    pub id: String,
}

/// Reads one organization by its slug. Errors: `InvalidInput` (slug),
/// `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Organization>")]
pub struct GetOrgBySlug {
    pub slug: String,
}

/// Lists every organization, oldest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Organization>>")]
pub struct ListOrgs;

impl Handler<CreateOrg> for OrgService {
    type Result = ResponseFuture<Result<Organization>>;

    fn handle(&mut self, msg: CreateOrg, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let name = Name::parse("name", &msg.name)?;
            let slug = Slug::parse(&msg.slug)?;
            db::orgs::insert(&pool, &name, &slug).await
        })
    }
}

impl Handler<GetOrg> for OrgService {
    type Result = ResponseFuture<Result<Organization>>;

    fn handle(&mut self, msg: GetOrg, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::orgs::get(&pool, parse_id("id", &msg.id)?).await })
    }
}

impl Handler<GetOrgBySlug> for OrgService {
    type Result = ResponseFuture<Result<Organization>>;

    fn handle(&mut self, msg: GetOrgBySlug, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::orgs::get_by_slug(&pool, &Slug::parse(&msg.slug)?).await })
    }
}

impl Handler<ListOrgs> for OrgService {
    type Result = ResponseFuture<Result<Vec<Organization>>>;

    fn handle(&mut self, _: ListOrgs, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::orgs::list(&pool).await })
    }
}
