//! PartitionManager: keeps `events` partitions ahead of the clock, and
//! everything older than the retention gone.
//!
//! On start it ensures partitions for today and the next `days_ahead` days
//! (UTC), then applies the retention ([`ApplyRetention`]), then re-arms
//! itself with `run_later` to check again after `check_interval`. "Today"
//! comes from a clock the manager is given
//! ([`PartitionManager::with_clock`]; the system's by default), so tests
//! can fix the day. Creation takes an advisory lock, so managers in
//! several processes can run at once. Should it fall behind anyway, the
//! writer creates a missing partition on demand (see
//! [`crate::db::events::insert_batch`]).
//!
//! The retention, housekeeping that runs by itself: the partitions of days
//! wholly older than `retention_days` are dropped (see
//! [`db::partitions::drop_before`]), with the issues last seen before
//! them and the triage counts of those days; a project keeping less has
//! its older events, issues and triage counts deleted in bounded batches;
//! artifact bundles no upload or event used within the retention are
//! deleted; expired sessions and upload chunks left unassembled for a day
//! are swept; and each project's usage is
//! measured for the metrics.

use crate::config::PartitionConfig;
use crate::db::{self, Pool};
use crate::error::Result;
use crate::metrics::Metrics;
use actix::prelude::*;
use chrono::{NaiveDate, Utc};
use std::time::Duration;

/// How soon a failed check is tried again, when that is sooner than the
/// regular interval: a day is too long to wait after a database hiccup.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// Pre-creates daily partitions of `events`.
pub struct PartitionManager {
    /// Shared connection pool; a check holds one connection briefly.
    pool: Pool,
    /// How far ahead, how often to look, how long to wait for a lock.
    config: PartitionConfig,
    /// Today's date in UTC.
    today: Box<dyn Fn() -> NaiveDate>,
    /// Where what retention removed, and each project's usage, are shown.
    metrics: Metrics,
}

impl PartitionManager {
    /// A manager that reads today's date from the system clock.
    pub fn new(pool: Pool, config: PartitionConfig) -> Self {
        Self::with_clock(pool, config, || Utc::now().date_naive())
    }

    /// A manager that takes today's date (UTC) from `today`, called once per
    /// check.
    pub fn with_clock(
        pool: Pool,
        config: PartitionConfig,
        today: impl Fn() -> NaiveDate + 'static,
    ) -> Self {
        PartitionManager {
            pool,
            config,
            today: Box::new(today),
            metrics: Metrics::default(),
        }
    }

    /// Counts into `metrics` (the system's) rather than counters of its own.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn ensure(&self) -> impl Future<Output = Result<Vec<String>>> + 'static {
        let (pool, first) = (self.pool.clone(), (self.today)());
        let PartitionConfig {
            days_ahead,
            lock_timeout,
            ..
        } = self.config;
        async move { db::partitions::ensure_range(&pool, first, days_ahead, lock_timeout).await }
    }

    fn retain(&self) -> impl Future<Output = Result<Retained>> + 'static {
        let (pool, today, metrics) = (self.pool.clone(), (self.today)(), self.metrics.clone());
        let PartitionConfig {
            retention_days,
            lock_timeout,
            ..
        } = self.config;
        async move {
            let mut done = Retained::default();
            if retention_days > 0 {
                let first_kept = db::retention::first_kept(today, retention_days);
                done.partitions =
                    db::partitions::drop_before(&pool, first_kept, lock_timeout).await?;
                done.issues = db::retention::delete_stale_issues(&pool, None, first_kept).await?;
                db::triage::forget_days_before(&pool, None, first_kept).await?;
                done.bundles = db::artifacts::delete_unused_bundles(
                    &pool,
                    None,
                    db::retention::start_of(first_kept),
                )
                .await?;
                if done.bundles > 0 {
                    log::info!(
                        "deleted {} artifact bundle(s) unused past the retention",
                        done.bundles
                    );
                }
            }
            let projects =
                db::retention::expire_project_events(&pool, today, retention_days).await?;
            done.events = projects.events;
            done.issues += projects.issues;
            done.bundles += projects.bundles;
            done.sessions = db::sessions::delete_expired(&pool).await?;
            done.chunks = db::artifacts::delete_stale_chunks(&pool).await?;
            metrics.retention(
                done.partitions.len() as u64,
                done.events,
                done.issues,
                done.sessions,
            );
            let ids = db::retention::all_projects(&pool).await?;
            let usage = db::retention::usage(&pool, &ids).await?;
            for id in ids {
                let u = usage.get(&id).copied().unwrap_or_default();
                metrics.project_usage(id, u.events, u.bytes);
            }
            Ok(done)
        }
    }

    fn check_and_rearm(&mut self, ctx: &mut Context<Self>) {
        let (ensure, retain) = (self.ensure(), self.retain());
        let check = async move {
            let ensured = ensure.await;
            // Retention runs even when creation failed: a day past the
            // retention goes even while a lock keeps tomorrow's partition
            // from being made (ingestion makes that one on demand).
            let retained = retain.await;
            ensured.map(drop).and(retained.map(drop))
        };
        ctx.spawn(check.into_actor(self).map(|result, act, ctx| {
            let next = match result {
                Ok(()) => act.config.check_interval,
                Err(e) => {
                    log::error!("checking event partitions failed: {}", e.report());
                    act.config.check_interval.min(RETRY_AFTER_FAILURE)
                }
            };
            ctx.run_later(next, |act, ctx| act.check_and_rearm(ctx));
        }));
    }
}

impl Actor for PartitionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.check_and_rearm(ctx);
    }
}

/// Ensures the partitions now (call); replies with the names it created.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<String>>")]
pub struct EnsurePartitions;

impl Handler<EnsurePartitions> for PartitionManager {
    type Result = ResponseFuture<Result<Vec<String>>>;

    fn handle(&mut self, _: EnsurePartitions, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.ensure())
    }
}

/// What one application of the retention removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Retained {
    /// The partitions dropped (both tables), oldest first.
    pub partitions: Vec<String>,
    /// Events deleted past their project's shorter retention.
    pub events: u64,
    /// Issues deleted, their events all gone.
    pub issues: u64,
    /// Expired sessions swept.
    pub sessions: u64,
    /// Artifact bundles (source maps) no upload or event used within the
    /// retention.
    pub bundles: u64,
    /// Uploaded chunks no assembly used within a day.
    pub chunks: u64,
}

/// Applies the retention now (call), as each check does after ensuring
/// the partitions; replies with what it removed.
#[derive(Debug, Message)]
#[rtype(result = "Result<Retained>")]
pub struct ApplyRetention;

impl Handler<ApplyRetention> for PartitionManager {
    type Result = ResponseFuture<Result<Retained>>;

    fn handle(&mut self, _: ApplyRetention, _: &mut Self::Context) -> Self::Result {
        Box::pin(self.retain())
    }
}
