//! The integration tests, one binary: each module is an area, and the
//! helpers in `common` are compiled once for all of them.

#[path = "../common/mod.rs"]
mod common;

mod binary;
mod partitions;
mod queries;
mod storage;
