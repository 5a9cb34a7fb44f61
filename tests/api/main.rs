//! The integration tests, one binary: each module is an area, and the
//! helpers in `common` (a fresh database per test) and `helpers` (the
//! tenancy services and message builders) are compiled once for all.

#[path = "../common/mod.rs"]
mod common;
mod helpers;
// The headless Chromium the web UI's tests drive.
mod browser;

// Tenancy through the actors, driven with `addr.send(...)`: every check is
// one a caller could make (the typed error a message gets, what a later
// message sees) plus what ends up in the tables.
mod bad_input;
mod memberships;
mod orgs;
mod projects;
mod sessions;
mod sourcemaps;
mod users;

mod alerts;
mod binary;
mod dashboard;
mod dashboard_access;
mod dashboard_issues;
mod durable_ack;
mod grouping;
mod ingest;
mod issue_activity;
mod issues;
mod limits;
mod outages;
mod partitions;
mod queries;
mod retention;
mod spool;
mod startup;
mod storage;
mod surfaces;
mod triage;
mod web;
