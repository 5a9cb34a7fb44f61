//! ProjectService: projects and their `mshr_` API keys.
//!
//! Every ingested event presents a key; resolved keys are kept in a
//! [`KeyCache`] the HTTP layer reads without a message, so this service
//! only sees the misses (see [`super::key_cache`]). Revoking a key here
//! forgets it there at once.

use super::key_cache::KeyCache;
use crate::db::retention::Usage;
use crate::db::{self, Pool};
use crate::domain::{
    ApiKey, ApiKeyInfo, Name, NewApiKey, Project, ProjectSettings, ProjectWithKey, PublicUrl,
    ResolvedKey, parse_id,
};
use crate::error::Result;
use actix::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// Creates and reads projects; issues, resolves and revokes API keys.
pub struct ProjectService {
    /// Shared connection pool; each request borrows a connection briefly.
    pool: Pool,
    /// Where DSNs point (see [`PublicUrl::dsn`]).
    public_url: PublicUrl,
    /// Recently resolved keys, shared with the HTTP layer.
    keys: KeyCache,
}

impl ProjectService {
    pub fn new(pool: Pool, public_url: PublicUrl) -> Self {
        ProjectService {
            pool,
            public_url,
            keys: KeyCache::default(),
        }
    }

    /// The cache this service fills, for the HTTP layer to read (see
    /// [`super::resolve_key`]).
    pub fn key_cache(&self) -> KeyCache {
        self.keys.clone()
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

/// Creates a project with its first key, both or neither (one
/// transaction): what the dashboard and the command line make, so that no
/// project is left without a key to send to it with. The reply holds the
/// key in clear with its DSN, the only time it exists outside the client.
/// `label` defaults to "default". Errors as [`CreateProject`] and
/// [`CreateApiKey`].
#[derive(Debug, Message)]
#[rtype(result = "Result<ProjectWithKey>")]
pub struct CreateProjectWithKey {
    pub org_id: String,
    pub name: String,
    pub platform: Option<String>,
    pub label: Option<String>,
}

/// Reads one project, by its id or by the numeric public id of its DSNs.
/// Errors: `InvalidInput` (id), `NotFound`.
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

/// Resolves an ingest key to its project, from the cache when it can (see
/// the module documentation). Errors: `InvalidInput` (api_key: malformed),
/// `InvalidCredentials` (unknown or revoked).
#[derive(Message)]
#[rtype(result = "Result<ResolvedKey>")]
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

/// A new project's fields, checked.
fn parse_project(
    org_id: &str,
    name: &str,
    platform: &Option<String>,
) -> Result<(Uuid, Name, Option<Name>)> {
    let org_id = parse_id("org_id", org_id)?;
    let name = Name::parse("name", name)?;
    let platform = platform
        .as_deref()
        .map(|p| Name::parse("platform", p))
        .transpose()?;
    Ok((org_id, name, platform))
}

impl Handler<CreateProject> for ProjectService {
    type Result = ResponseFuture<Result<Project>>;

    fn handle(&mut self, msg: CreateProject, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            let (org_id, name, platform) = parse_project(&msg.org_id, &msg.name, &msg.platform)?;
            db::projects::insert(&pool, org_id, &name, platform.as_ref()).await
        })
    }
}

impl Handler<CreateProjectWithKey> for ProjectService {
    type Result = ResponseFuture<Result<ProjectWithKey>>;

    fn handle(&mut self, msg: CreateProjectWithKey, _: &mut Self::Context) -> Self::Result {
        let (pool, public_url) = (self.pool.clone(), self.public_url.clone());
        Box::pin(async move {
            let (org_id, name, platform) = parse_project(&msg.org_id, &msg.name, &msg.platform)?;
            let label = Name::parse("label", msg.label.as_deref().unwrap_or("default"))?;
            let key = ApiKey::generate()?;
            let (project, info) = db::projects::insert_with_key(
                &pool,
                org_id,
                &name,
                platform.as_ref(),
                &key,
                &label,
            )
            .await?;
            let dsn = public_url.dsn(&key, project.public_id);
            Ok(ProjectWithKey {
                project,
                key: NewApiKey { key, dsn, info },
            })
        })
    }
}

impl Handler<GetProject> for ProjectService {
    type Result = ResponseFuture<Result<Project>>;

    fn handle(&mut self, msg: GetProject, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            match msg.id.trim().parse::<i64>() {
                Ok(public_id) => db::projects::get_by_public_id(&pool, public_id).await,
                Err(_) => db::projects::get(&pool, parse_id("id", &msg.id)?).await,
            }
        })
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
        let (pool, public_url) = (self.pool.clone(), self.public_url.clone());
        Box::pin(async move {
            let project_id = parse_id("project_id", &msg.project_id)?;
            let label = Name::parse("label", msg.label.as_deref().unwrap_or("default"))?;
            let key = ApiKey::generate()?;
            let info = db::api_keys::insert(&pool, project_id, &key, &label).await?;
            let project = db::projects::get(&pool, project_id).await?;
            let dsn = public_url.dsn(&key, project.public_id);
            Ok(NewApiKey { key, dsn, info })
        })
    }
}

impl Handler<GetProjectByApiKey> for ProjectService {
    type Result = ResponseActFuture<Self, Result<ResolvedKey>>;

    fn handle(&mut self, msg: GetProjectByApiKey, _: &mut Self::Context) -> Self::Result {
        let key = match ApiKey::parse(&msg.key) {
            Ok(key) => key,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let hash = key.hash();
        if let Some(cached) = self.keys.get(&hash) {
            return Box::pin(fut::ready(cached));
        }
        let (pool, keys) = (self.pool.clone(), self.keys.clone());
        let revocations = keys.revocations();
        Box::pin(fut::wrap_future(async move {
            let resolved = db::api_keys::project_by_key(&pool, &key).await;
            keys.remember(hash, &resolved, revocations);
            resolved
        }))
    }
}

impl Handler<RevokeApiKey> for ProjectService {
    type Result = ResponseActFuture<Self, Result<ApiKeyInfo>>;

    fn handle(&mut self, msg: RevokeApiKey, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let revoke =
            async move { db::api_keys::revoke(&pool, parse_id("key_id", &msg.key_id)?).await };
        Box::pin(revoke.into_actor(self).map(|revoked, act, _| {
            if let Ok(info) = &revoked {
                act.keys.forget_project(info.project_id);
            }
            revoked
        }))
    }
}

/// Sets or removes (`None`) a key's rate limit (checked by the caller);
/// it applies in this process at once, in others within the key cache's
/// TTL, as a project's does. Errors: `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<ApiKeyInfo>")]
pub struct SetKeyRateLimit {
    pub project_id: Uuid,
    pub key_id: Uuid,
    pub per_minute: Option<u32>,
}

impl Handler<SetKeyRateLimit> for ProjectService {
    type Result = ResponseActFuture<Self, Result<ApiKeyInfo>>;

    fn handle(&mut self, msg: SetKeyRateLimit, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let set = async move {
            db::api_keys::set_rate_limit(&pool, msg.project_id, msg.key_id, msg.per_minute).await
        };
        Box::pin(set.into_actor(self).map(|set, act, _| {
            if let Ok(info) = &set {
                act.keys.forget_project(info.project_id);
            }
            set
        }))
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

/// Changes a project's retention and rate limit (see [`ProjectSettings`]);
/// the new limit applies in this process at once (its keys are forgotten
/// by the cache), in others within the cache's TTL. Errors: `NotFound`.
#[derive(Debug, Message)]
#[rtype(result = "Result<Project>")]
pub struct UpdateProjectSettings {
    pub project_id: Uuid,
    pub change: ProjectSettings,
}

impl Handler<UpdateProjectSettings> for ProjectService {
    type Result = ResponseActFuture<Self, Result<Project>>;

    fn handle(&mut self, msg: UpdateProjectSettings, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        let update =
            async move { db::projects::update_settings(&pool, msg.project_id, &msg.change).await };
        Box::pin(update.into_actor(self).map(|updated, act, _| {
            if let Ok(project) = &updated {
                act.keys.forget_project(project.id);
            }
            updated
        }))
    }
}

/// The events stored and their approximate bytes, per project of
/// `project_ids` (see [`db::retention::usage`]); a project without events
/// is absent.
#[derive(Debug, Message)]
#[rtype(result = "Result<HashMap<Uuid, Usage>>")]
pub struct ProjectUsage {
    pub project_ids: Vec<Uuid>,
}

impl Handler<ProjectUsage> for ProjectService {
    type Result = ResponseFuture<Result<HashMap<Uuid, Usage>>>;

    fn handle(&mut self, msg: ProjectUsage, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move { db::retention::usage(&pool, &msg.project_ids).await })
    }
}
