//! The application layer: what the dashboard API (`/api/v1`,
//! [`crate::http::api`]) and the web pages ([`crate::web`]) both do,
//! written once. Neither surface imports the other; both import this.
//!
//! - [`State`]: what every handler may use (the services' addresses, the
//!   counters, the dashboard's settings).
//! - [`session`]: who is asking (the session token a request presents,
//!   checked), logging in (through the [`limiter`]) and out, and
//!   registering.
//! - [`caller`]: the [`Caller`] and the one access check, applying
//!   [`crate::domain::access`].
//! - [`orgs`]: my organizations, creating one with its creator as owner,
//!   adding a member by email, changing or removing a member's role.
//! - [`projects`]: creating a project with its first key (one
//!   transaction), revoking a key.
//! - [`issues`]: triage, with the rule on who may be assigned.
//! - [`tokens`]: organization tokens for sentry-cli.
//! - [`limiter`]: failed logins per account and per address.
//!
//! A flow takes the [`State`] and the [`Caller`], applies the access check,
//! sends the services their messages, and returns domain values or the one
//! [`crate::Error`]; a surface extracts its input, calls the flow (or, for
//! a plain read, sends the message itself) and maps the reply to JSON or to
//! a page. Someone outside an organization gets `NotFound` for everything
//! in it, as if it did not exist; a member whose role falls short gets
//! `Forbidden`.

pub mod alerts;
pub mod caller;
pub mod issues;
pub mod limiter;
pub mod orgs;
pub mod projects;
pub mod session;
pub mod tokens;

pub use caller::Caller;

use crate::db::Pool;
use crate::metrics::Metrics;
use crate::services::{
    Intake, IssueService, KeyCache, OrgService, OrgTokenService, ProjectService, SourceMapService,
    UserService, WriterRegistry,
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
    /// Organizations, for the dashboard.
    pub orgs: Addr<OrgService>,
    /// Issues and events, for the dashboard.
    pub issues: Addr<IssueService>,
    /// The dashboard's settings and login limiter.
    pub dashboard: Dashboard,
    /// Ingest keys resolved lately, read without a message (see
    /// [`crate::services::resolve_key`]).
    pub keys: KeyCache,
    /// Takes a request's events (see [`Intake::admit`]).
    pub intake: Intake,
    /// Organization tokens, for sentry-cli's `/api/0/` calls.
    pub tokens: Addr<OrgTokenService>,
    /// Uploaded source maps, and the parsed ones ingest resolves with.
    pub source_maps: Addr<SourceMapService>,
    /// The upload limits sentry-cli is told.
    pub source_map_config: crate::sourcemaps::SourceMapConfig,
    /// For the readiness check: whether the writers take events.
    pub writers: Addr<WriterRegistry>,
    /// For the readiness check.
    pub pool: Pool,
    /// What `/metrics` serves; ingestion counts into it.
    pub metrics: Metrics,
    /// How long a client may take to send a body.
    pub body_timeout: Duration,
    /// The server's retention in days (0: everything kept), which a
    /// project's may only shorten.
    pub retention_days: u32,
    /// Events per minute taken per project (see
    /// [`crate::services::RateLimiter`]).
    pub limits: crate::services::RateLimiter,
    /// The memory, in KiB, that request bodies being read and decoded may
    /// hold together ([`crate::http::BODY_MEMORY_KIB`]): each request is
    /// bounded, and this bounds them all, whatever the number of
    /// connections.
    pub body_memory: Arc<Semaphore>,
    /// What alert channels may be made here.
    pub alerts: AlertSettings,
    /// `MESHER_PUBLIC_URL` when it is set: the address pages tell build
    /// machines to use (`SENTRY_URL`); else they name the one the browser
    /// reached, which behind a proxy may be an internal one.
    pub public_url: Option<crate::domain::PublicUrl>,
}

/// What the notifier is set up for, which decides what channels are
/// accepted.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlertSettings {
    /// Whether SMTP is configured: email channels are refused without it.
    pub email: bool,
    /// Whether webhooks may point at non-public addresses
    /// (`MESHER_WEBHOOK_ALLOW_PRIVATE`).
    pub allow_private_webhooks: bool,
}

/// The dashboard's settings and shared state.
#[derive(Clone, Default)]
pub struct Dashboard {
    /// Whether registration is open (`MESHER_ALLOW_REGISTRATION`).
    pub allow_registration: bool,
    /// Whether the session cookie is marked `Secure` (the public URL is
    /// https).
    pub secure_cookies: bool,
    /// Failed logins per account and address.
    pub logins: Arc<limiter::LoginLimiter>,
}
