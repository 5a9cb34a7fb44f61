//! PartitionManager: keeps `events` partitions ahead of the clock.
//!
//! On start it ensures partitions for today and the next `days_ahead` days
//! (UTC), then re-arms itself with `run_later` to check again after
//! `check_interval`. "Today" comes from a clock the manager is given
//! ([`PartitionManager::with_clock`]; the system's by default), so tests
//! can fix the day. Creation takes an advisory lock, so managers in
//! several processes can run at once. Should it fall behind anyway, the
//! writer creates a missing partition on demand (see
//! [`crate::db::events::insert_batch`]).

use crate::config::PartitionConfig;
use crate::db::{self, Pool};
use crate::error::Result;
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
        }
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

    fn check_and_rearm(&mut self, ctx: &mut Context<Self>) {
        ctx.spawn(self.ensure().into_actor(self).map(|result, act, ctx| {
            let next = match result {
                Ok(_) => act.config.check_interval,
                Err(e) => {
                    log::error!("ensuring event partitions failed: {}", e.report());
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
