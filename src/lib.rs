//! Mesher: a self-hosted error-monitoring backend, in the family of Sentry
//! and GlitchTip.
//!
//! Applications send their errors with the Sentry SDK they already use;
//! Mesher takes them over HTTP, stores them through per-project batching
//! writers in a daily-partitioned PostgreSQL table, and groups them into
//! issues. Organizations own projects; projects own `mshr_` API keys (the
//! keys in their DSNs); users log in with a password and belong to
//! organizations. Every service is an [actix] actor, all running in one
//! `actix::System` with the HTTP server.
//!
//! # Map of the crate
//!
//! - [`system`]: the wiring. [`start`] brings everything up and returns a
//!   [`Mesher`] holding each actor's address; [`run`] adds the wait for a
//!   shutdown signal and the final drain. The `mesher` binary is a thin
//!   shell around [`run`] and the set-up commands in [`cli`].
//! - [`http`]: the actix-web server: Sentry-compatible ingestion, health
//!   and metrics, with the wire formats (envelopes, auth headers, body
//!   encodings) as pure functions, the dashboard API under `/api/v1`, and
//!   the part of Sentry's `/api/0/` that sentry-cli uploads source maps
//!   to.
//! - [`app`]: the application layer under both the dashboard API and the
//!   web UI: the handlers' [`app::State`], sessions and the login limiter,
//!   the one access check ([`app::Caller`]), and the flows both surfaces
//!   run (organizations and members, a project with its first key, key
//!   revocation, triage, organization tokens, alert rules and channels).
//!   Neither surface imports the other.
//! - [`services`]: the actors, one file each: [`services::OrgService`],
//!   [`services::ProjectService`] (with the ingest key cache),
//!   [`services::UserService`], [`services::IssueService`], the per-project
//!   [`services::StorageWriter`], the [`services::WriterRegistry`] that
//!   starts, retires and supervises them, the [`services::Intake`] through
//!   which every request's events reach them, the [`services::Committer`]
//!   that lands their batches, the
//!   [`services::Spool`] that keeps batches on local disk while PostgreSQL
//!   is unreachable and the [`services::SpoolReplayer`] that replays them,
//!   the [`services::AckLog`] that makes a 200 mean "on disk", the
//!   [`services::PartitionManager`], and the [`services::Notifier`]
//!   that sends alerts' deliveries (webhooks, Slack, Discord, email).
//! - [`sourcemaps`]: JavaScript source maps: the artifact bundles
//!   sentry-cli uploads, and minified frames resolved at ingest (stored
//!   by [`services::SourceMapService`]).
//! - [`db`]: the query layer, the only place SQL lives; async functions
//!   over a bb8 pool of tokio-postgres connections. [`db::events`] stores a
//!   batch and its issues in one statement; [`db::alerts`] fires alert
//!   rules in that batch's transaction and keeps the outbox the notifier
//!   drains; [`db::spool`] is the spool's SQLite file.
//! - [`domain`]: the values and their rules (slugs, emails, passwords,
//!   keys, events as the SDKs send them), checked once at construction, and
//!   [`domain::grouping`], Sentry's fingerprint precedence, and
//!   [`domain::notice`], what a notification says in each channel's format.
//! - [`web`]: the server-rendered web UI at `/`: askama templates, their
//!   view models, and the embedded stylesheet and script.
//! - [`metrics`]: what `/metrics` counts.
//! - [`config`]: every tunable with its default, and reading them from the
//!   environment.
//! - [`error`]: the one [`Error`] enum every operation returns.
//!
//! `schema.sql` at the top of the repository is the data model; it is
//! compiled in and applied at every start, upgrading older databases in
//! place.
//!
//! # Threads
//!
//! Each busy path has a thread of its own (the table is in [`system`]):
//! the tenancy services on the System's arbiter, key lookups and the
//! dashboard's reads on one each, the writer registry, the writers and the
//! storage I/O on three more, the spool's file on a fifth, the
//! acknowledgement log's appends and fsyncs on a sixth, and the HTTP
//! server on worker threads of its own. bcrypt, request-body decompression
//! and the parsing of large events run on tokio's blocking pool.
//!
//! # Embedding
//!
//! ```no_run
//! use mesher::services::{CreateOrg, Store};
//! use mesher::domain::{Event, EventPayload};
//!
//! #[actix::main]
//! async fn main() -> Result<(), mesher::Error> {
//!     let mesher = mesher::start(&mesher::Config::new("postgres://localhost/mesher")).await?;
//!     let org = mesher.orgs.send(CreateOrg { name: "Acme".into(), slug: "acme".into() }).await??;
//!     println!("created {}", org.id);
//!     # let project_id = uuid::Uuid::nil();
//!     let payload = EventPayload { message: Some("boom".into()), ..Default::default() };
//!     mesher.writers.do_send(Store(Event::from_payload(project_id, payload)?));
//!     mesher.shutdown().await?;
//!     Ok(())
//! }
//! ```

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod metrics;
pub mod services;
pub mod sourcemaps;
pub mod system;
pub mod web;

pub use config::Config;
pub use error::{Error, Result};
pub use system::{Mesher, run, shutdown_signal, start};
