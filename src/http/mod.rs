//! The HTTP layer: Sentry-compatible ingestion, health and metrics.
//!
//! - [`server`]: starting and stopping the actix-web server, and the
//!   routes.
//! - [`ingest`]: the ingestion handlers (`/api/<id>/envelope/`,
//!   `/api/<id>/store/`, `/api/v1/events`).
//! - [`api`]: the dashboard API under `/api/v1` (sessions, organizations,
//!   projects, keys, issues), with the one access check.
//! - [`sentry_api`]: the part of Sentry's `/api/0/` that `sentry-cli
//!   sourcemaps upload` calls.
//! - [`health`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`error`]: the one mapping from errors to statuses and bodies.
//! - The wire formats, pure functions with their tests: [`body`]
//!   (content encodings, size limits), [`envelope`] (Sentry envelopes),
//!   [`sentry_auth`] (where a request carries its key).
//!
//! Handlers are thin: extract, send a message to an actor, map the reply.

pub mod api;
pub mod body;
pub mod envelope;
pub mod error;
pub mod health;
pub mod ingest;
pub mod sentry_api;
pub mod sentry_auth;
pub mod server;

use crate::db::Pool;
use crate::metrics::Metrics;
use crate::services::{
    IssueService, OrgService, OrgTokenService, ProjectService, SourceMapService, UserService,
    WriterRegistry,
};
use actix::Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What every handler may use: the actors it talks to and the counters.
#[derive(Clone)]
pub struct State {
    /// Resolves ingest keys (cached); projects and keys for the dashboard.
    pub projects: Addr<ProjectService>,
    /// Sessions and memberships, for the dashboard.
    pub users: Addr<UserService>,
    pub orgs: Addr<OrgService>,
    pub issues: Addr<IssueService>,
    /// The dashboard's settings and login limiter.
    pub dashboard: api::Dashboard,
    /// Takes events (see [`crate::services::Admit`]).
    pub writers: Addr<WriterRegistry>,
    /// Organization tokens, for sentry-cli's `/api/0/` calls.
    pub tokens: Addr<OrgTokenService>,
    /// Uploaded source maps, and the parsed ones ingest resolves with.
    pub source_maps: Addr<SourceMapService>,
    /// The upload limits sentry-cli is told.
    pub source_map_config: crate::sourcemaps::SourceMapConfig,
    /// For the readiness check.
    pub pool: Pool,
    pub metrics: Metrics,
    /// How long a client may take to send a body.
    pub body_timeout: Duration,
    /// The memory, in KiB, that request bodies being read and decoded may
    /// hold together ([`BODY_MEMORY_KIB`]): each request is bounded, and
    /// this bounds them all, whatever the number of connections.
    pub body_memory: Arc<Semaphore>,
}

/// 256 MiB for request bodies in all, a dozen envelopes at the largest.
pub const BODY_MEMORY_KIB: usize = 256 * 1024;
