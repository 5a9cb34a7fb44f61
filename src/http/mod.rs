//! The HTTP layer: Sentry-compatible ingestion, health and metrics.
//!
//! Handlers are thin (extract, send a message, map the reply to a status);
//! the wire formats they read are pure functions in their own files.

pub mod body;
pub mod envelope;
pub mod sentry_auth;
