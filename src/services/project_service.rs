//! ProjectService: projects and their `mshr_` API keys.

use crate::db::{self, Pool};
use crate::domain::{ApiKey, ApiKeyInfo, Name, NewApiKey, Project, parse_id};
use crate::error::Result;
use actix::prelude::*;

/// Creates and reads projects; issues, resolves and revokes API keys.
pub struct ProjectService {
    /// Shared connection pool; each request borrows a connection briefly.
    pool: Pool,
}

impl ProjectService {
    pub fn new(pool: Pool) -> Self {
        ProjectService { pool }
    }
}

impl Actor for ProjectService {
    type Context = Context<Self>;
}

/// Creates a project in an organization. Errors: `InvalidInput` (org_id,
/// name, platform), `NotFound { "organization" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Project>")]
pub struct CreateProject {
    pub org_id: String,
    pub name: String,
    pub platform: Option<String>,
}

/// Reads one project. Errors: `InvalidInput` (id), `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Project>")]
pub struct GetProject {
    pub id: String,
}

/// An organization's projects, oldest first. Errors: `InvalidInput`
/// (org_id), `NotFound { "organization" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<Project>>")]
pub struct ListProjectsByOrg {
    pub org_id: String,
}

/// Issues a new key; the reply holds the key in clear, the only time it
/// exists outside the client. `label` defaults to "default". Errors:
/// `InvalidInput` (project_id, label), `NotFound { "project" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<NewApiKey>")]
pub struct CreateApiKey {
    pub project_id: String,
    pub label: Option<String>,
}

/// Resolves an ingest key to its project. Errors: `InvalidInput`
/// (api_key: malformed), `InvalidCredentials` (unknown or revoked).
#[derive(Message)]
#[rtype(result = "Result<Project>")]
pub struct GetProjectByApiKey {
    pub key: String,
}

/// Revokes a key; it stops resolving before this call returns. Revoking
/// twice keeps the first date. Errors: `InvalidInput` (key_id), `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ApiKeyInfo>")]
pub struct RevokeApiKey {
    pub key_id: String,
}

/// A project's keys (prefix, label, dates; never the key). Errors:
/// `InvalidInput` (project_id), `NotFound { "project" }`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<ApiKeyInfo>>")]
pub struct ListApiKeys {
    pub project_id: String,
}

impl Handler<CreateProject> for ProjectService {
    type Result = ResponseFuture<Result<Project>>;

    fn handle(&mut self, msg: CreateProject, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let org_id = parse_id("org_id", &msg.org_id)?;
            let name = Name::parse("name", &msg.name)?;
            let platform = msg
                .platform
                .as_deref()
                .map(|p| Name::parse("platform", p))
                .transpose()?;
            db::projects::insert(&pool, org_id, &name, platform.as_ref()).await
        })
    }
}

impl Handler<GetProject> for ProjectService {
    type Result = ResponseFuture<Result<Project>>;

    fn handle(&mut self, msg: GetProject, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::projects::get(&pool, parse_id("id", &msg.id)?).await })
    }
}

impl Handler<ListProjectsByOrg> for ProjectService {
    type Result = ResponseFuture<Result<Vec<Project>>>;

    fn handle(&mut self, msg: ListProjectsByOrg, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(
            async move { db::projects::list_by_org(&pool, parse_id("org_id", &msg.org_id)?).await },
        )
    }
}

impl Handler<CreateApiKey> for ProjectService {
    type Result = ResponseFuture<Result<NewApiKey>>;

    fn handle(&mut self, msg: CreateApiKey, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let label = Name::parse("label", msg.label.as_deref().unwrap_or("default"))?;
            let key = ApiKey::generate()?;
            let info = db::api_keys::insert(&pool, project_id, &key, &label).await?;
            Ok(NewApiKey { key, info })
        })
    }
}

impl Handler<GetProjectByApiKey> for ProjectService {
    type Result = ResponseFuture<Result<Project>>;

    fn handle(&mut self, msg: GetProjectByApiKey, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(
            async move { db::api_keys::project_by_key(&pool, &ApiKey::parse(&msg.key)?).await },
        )
    }
}

impl Handler<RevokeApiKey> for ProjectService {
    type Result = ResponseFuture<Result<ApiKeyInfo>>;

    fn handle(&mut self, msg: RevokeApiKey, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::api_keys::revoke(&pool, parse_id("key_id", &msg.key_id)?).await })
    }
}

impl Handler<ListApiKeys> for ProjectService {
    type Result = ResponseFuture<Result<Vec<ApiKeyInfo>>>;

    fn handle(&mut self, msg: ListApiKeys, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            db::api_keys::list_by_project(&pool, parse_id("project_id", &msg.project_id)?).await
        })
    }
}
