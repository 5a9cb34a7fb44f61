//! ProjectService: projects and their `mshr_` API keys.
//!
//! Every ingested event presents a key, so resolved keys are cached here,
//! known and unknown alike, for [`KEY_CACHE_TTL`]: revoking a key through
//! this service forgets it at once, and another process that cached it
//! stops accepting it within that time.

use crate::db::{self, Pool};
use crate::domain::{
    ApiKey, ApiKeyInfo, Name, NewApiKey, Project, ProjectWithKey, PublicUrl, parse_id,
};
use crate::error::{Error, Result};
use actix::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a resolved key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(60);

/// Keys remembered, of each kind. Known and unknown keys are bounded
/// apart, so a flood of made-up keys cannot push out the real ones.
const KEY_CACHE_CAPACITY: usize = 10_000;

/// Creates and reads projects; issues, resolves and revokes API keys.
pub struct ProjectService {
    /// Shared connection pool; each request borrows a connection briefly.
    pool: Pool,
    /// Where DSNs point (see [`PublicUrl::dsn`]).
    public_url: PublicUrl,
    /// Recently resolved keys (see the module documentation).
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
}

/// Key hashes resolved recently, with when they were.
#[derive(Default)]
struct KeyCache {
    known: HashMap<Vec<u8>, (Project, Instant)>,
    unknown: HashMap<Vec<u8>, Instant>,
    /// Counts revocations, so that a lookup that started before one does
    /// not put a key it just revoked back in the cache.
    revocations: u64,
}

impl KeyCache {
    /// `Some(Ok)` for a fresh known key, `Some(Err)` for a fresh unknown
    /// one, `None` when the database must be asked.
    fn get(&self, hash: &[u8]) -> Option<Result<Project>> {
        let fresh = |at: &Instant| at.elapsed() < KEY_CACHE_TTL;
        if let Some((project, _)) = self.known.get(hash).filter(|(_, at)| fresh(at)) {
            return Some(Ok(project.clone()));
        }
        self.unknown
            .get(hash)
            .filter(|at| fresh(at))
            .map(|_| Err(Error::InvalidCredentials))
    }

    fn remember(&mut self, hash: Vec<u8>, resolved: &Result<Project>) {
        let now = Instant::now();
        match resolved {
            Ok(project) => {
                bound(&mut self.known, |(_, at)| at);
                self.known.insert(hash, (project.clone(), now));
            }
            Err(Error::InvalidCredentials) => {
                bound(&mut self.unknown, |at| at);
                self.unknown.insert(hash, now);
            }
            // Not an answer about the key (say, the database is down).
            Err(_) => {}
        }
    }

    /// Forgets every key of a project, so a revoked one stops resolving.
    fn forget_project(&mut self, project_id: Uuid) {
        self.revocations += 1;
        self.known.retain(|_, (p, _)| p.id != project_id);
    }
}

/// Makes room for one more entry: drops the stale ones, and everything when
/// all are fresh (rare, and costing only repeated lookups).
fn bound<V>(map: &mut HashMap<Vec<u8>, V>, at: impl Fn(&V) -> &Instant) {
    if map.len() >= KEY_CACHE_CAPACITY {
        map.retain(|_, v| at(v).elapsed() < KEY_CACHE_TTL);
        if map.len() >= KEY_CACHE_CAPACITY {
            map.clear();
        }
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
    type Result = ResponseActFuture<Self, Result<Project>>;

    fn handle(&mut self, msg: GetProjectByApiKey, _: &mut Self::Context) -> Self::Result {
        let key = match ApiKey::parse(&msg.key) {
            Ok(key) => key,
            Err(e) => return Box::pin(fut::ready(Err(e))),
        };
        let hash = key.hash();
        if let Some(cached) = self.keys.get(&hash) {
            return Box::pin(fut::ready(cached));
        }
        let (pool, revocations) = (self.pool.clone(), self.keys.revocations);
        let lookup = async move { db::api_keys::project_by_key(&pool, &key).await };
        Box::pin(lookup.into_actor(self).map(move |resolved, act, _| {
            if act.keys.revocations == revocations {
                act.keys.remember(hash, &resolved);
            }
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

impl Handler<ListApiKeys> for ProjectService {
    type Result = ResponseFuture<Result<Vec<ApiKeyInfo>>>;

    fn handle(&mut self, msg: ListApiKeys, _: &mut Self::Context) -> Self::Result {
        let pool = self.pool.clone();
        Box::pin(async move {
            db::api_keys::list_by_project(&pool, parse_id("project_id", &msg.project_id)?).await
        })
    }
}
