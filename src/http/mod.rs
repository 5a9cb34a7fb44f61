//! The HTTP layer: Sentry-compatible ingestion, health and metrics.
//!
//! - [`server`]: starting and stopping the actix-web server, and the
//!   routes.
//! - [`ingest`]: the ingestion handlers (`/api/<id>/envelope/`,
//!   `/api/<id>/store/`, `/api/v1/events`).
//! - [`api`]: the dashboard API under `/api/v1` (sessions, organizations,
//!   projects, keys, issues), over the application layer ([`crate::app`])
//!   it shares with the web pages.
//! - [`sentry_api`]: the part of Sentry's `/api/0/` that `sentry-cli
//!   sourcemaps upload` calls.
//! - [`health`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`error`]: the one mapping from errors to statuses and bodies.
//! - The wire formats, pure functions with their tests: [`body`]
//!   (content encodings, size limits), [`envelope`] (Sentry envelopes),
//!   [`sentry_auth`] (where a request carries its key).
//!
//! Handlers are thin: extract, send a message to an actor (or call the
//! application layer), map the reply.

pub mod api;
pub mod body;
pub mod envelope;
pub mod error;
pub mod health;
pub mod ingest;
pub mod sentry_api;
pub mod sentry_auth;
pub mod server;

/// 256 MiB for request bodies in all, a dozen envelopes at the largest.
pub const BODY_MEMORY_KIB: usize = 256 * 1024;
