//! The query layer: every SQL statement Mesher runs, as async functions
//! over a bb8 pool of tokio-postgres connections; and [`spool`], the
//! statements of the local SQLite spool.
//!
//! Services call these and nothing else touches SQL. Every value reaches
//! PostgreSQL as a bound parameter; the only SQL built from text is a
//! partition's name and bounds, formatted from a date.

pub mod alerts;
pub mod api_keys;
pub mod artifacts;
pub mod events;
pub mod issues;
pub mod memberships;
pub mod org_tokens;
pub mod orgs;
pub mod partitions;
pub mod projects;
pub mod retention;
pub mod sessions;
pub mod spool;
pub mod triage;
pub mod users;

use crate::error::{Error, Result};
use bb8_postgres::PostgresConnectionManager;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// A pool of PostgreSQL connections; cheap to clone (an `Arc` inside).
pub type Pool = bb8::Pool<PostgresConnectionManager<NoTls>>;

pub use events::EventPool;

/// The schema, compiled in so the binary needs no file beside it.
pub const SCHEMA_SQL: &str = include_str!("../../schema.sql");

/// How long a caller waits for a pooled connection before getting
/// [`Error::DatabaseUnavailable`].
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    url.parse()
        .map_err(|_| Error::invalid("DATABASE_URL", "must be a PostgreSQL connection URL"))
}

/// Builds a pool for `url`. Connections open lazily, so this succeeds even
/// while PostgreSQL is down; see [`wait_for_database`].
pub fn pool(url: &str, max_size: u32) -> Result<Pool> {
    let manager = PostgresConnectionManager::new(parse_url(url)?, NoTls);
    Ok(build_pool(manager, max_size))
}

/// A pool for writing event batches. By default (`synchronous_commit`
/// true) a batch commits durably: once a writer counts its events as
/// stored, a crash of PostgreSQL cannot take them back. With it false the
/// sessions commit without waiting for the WAL flush: a batch then costs no
/// fsync, and an fsync slowed by other writes no longer holds up the
/// writer. What that risks: on a crash of PostgreSQL itself (not of
/// Mesher), the events of the last moments before it (up to 3 x
/// `wal_writer_delay`, 600 ms by default) that Mesher had already counted
/// as stored and answered 200 for are lost; nothing is corrupted.
///
/// Its connections report to `reachability` whether PostgreSQL answers,
/// and wait `partition_lock_timeout` for a lock when a batch needs a
/// partition that does not exist yet (see
/// [`crate::config::PartitionConfig::lock_timeout`]).
pub fn event_pool(
    url: &str,
    max_size: u32,
    synchronous_commit: bool,
    reachability: Reachability,
    partition_lock_timeout: Duration,
) -> Result<EventPool> {
    let mut config = parse_url(url)?;
    // The batch statements are prepared once per connection and take
    // arrays, whose contents do not change the best plan: planning them
    // again for each batch (PostgreSQL's custom plans) cost a few
    // milliseconds of its CPU per batch, more than writing a small batch.
    let mut options = "-c plan_cache_mode=force_generic_plan".to_owned();
    if !synchronous_commit {
        options += " -c synchronous_commit=off";
    }
    let options = match config.get_options() {
        Some(given) => format!("{given} {options}"),
        None => options,
    };
    config.options(options);
    // A writer must learn quickly that PostgreSQL is gone, so that its
    // batch goes to the spool rather than waiting; and it must find it again
    // quickly, so no reconnect backoff in the pool: the spool replayer's
    // probe paces reconnecting during an outage.
    config.connect_timeout(EVENT_CONNECT_TIMEOUT);
    // A PostgreSQL that vanishes without a reset (a failover, a partition)
    // must fail the statements waiting on it in seconds, not after the
    // kernel's two-hour keepalive default: until they fail, their batches
    // can go neither to PostgreSQL nor to the spool.
    config
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(20));
    Ok(bb8::Pool::builder()
        .max_size(max_size)
        .connection_timeout(EVENT_CONNECTION_TIMEOUT)
        .retry_connection(false)
        .error_sink(Box::new(LogErrors))
        .build_unchecked(events::EventConnections::new(
            PostgresConnectionManager::new(config, NoTls),
            reachability,
            partition_lock_timeout,
        )))
}

/// Whether PostgreSQL answered the last attempt to connect to it; cheap to
/// clone (shared inside). An [`EventPool`] keeps it current: a failed
/// connect marks it unreachable at once, a successful one reachable again.
/// Writers read it before each batch, so that during an outage their
/// batches go to the spool instead of waiting for a connection.
#[derive(Clone, Debug)]
pub struct Reachability(Arc<AtomicBool>);

impl Default for Reachability {
    fn default() -> Self {
        Reachability(Arc::new(AtomicBool::new(true)))
    }
}

impl Reachability {
    pub fn is_reachable(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn lost(&self, e: &tokio_postgres::Error) {
        if self.0.swap(false, Ordering::Relaxed) {
            log::warn!("PostgreSQL is unreachable ({e}); event batches go to the spool, if any");
        }
    }

    pub(crate) fn found(&self) {
        if !self.0.swap(true, Ordering::Relaxed) {
            log::info!("PostgreSQL answers again");
        }
    }
}

/// How long opening an event connection may take.
const EVENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a writer waits for a pooled event connection: past it, its
/// batch is taken for one PostgreSQL could not take, and spooled.
const EVENT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3);

fn build_pool<M>(manager: M, max_size: u32) -> bb8::Pool<M>
where
    M: bb8::ManageConnection<Error = tokio_postgres::Error>,
{
    bb8::Pool::builder()
        .max_size(max_size)
        .connection_timeout(CONNECTION_TIMEOUT)
        .error_sink(Box::new(LogErrors))
        .build_unchecked(manager)
}

/// Logs why a pooled connection could not be opened; without it a caller
/// only learns that no connection became free in time.
#[derive(Debug, Clone, Copy)]
struct LogErrors;

impl bb8::ErrorSink<tokio_postgres::Error> for LogErrors {
    fn sink(&self, e: tokio_postgres::Error) {
        log::warn!("PostgreSQL connection failed: {e}");
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<tokio_postgres::Error>> {
        Box::new(*self)
    }
}

/// Retries connecting to `url` until it answers or `within` has passed,
/// logging each failure, so a process started beside a booting PostgreSQL
/// waits for it instead of failing at once.
pub async fn wait_for_database(url: &str, within: Duration) -> Result<()> {
    let config = parse_url(url)?;
    // A wait too long to represent is a wait without end.
    let deadline = Instant::now().checked_add(within);
    loop {
        let err = match config.connect(NoTls).await {
            Ok((client, connection)) => {
                drop(client);
                let _ = connection.await;
                return Ok(());
            }
            Err(e) => e,
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::unavailable(
                format!("PostgreSQL did not answer within {}s", within.as_secs()),
                err,
            ));
        }
        log::warn!("waiting for PostgreSQL ({err}); retrying until {within:?} have passed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Applies `schema.sql`; idempotent and safe against concurrent callers.
pub async fn apply_schema(pool: &Pool) -> Result<()> {
    let client = pool.get().await?;
    if let Err(e) = client.batch_execute(SCHEMA_SQL).await {
        // The script runs in one transaction; leave none open on a pooled
        // connection.
        if let Err(rollback) = client.batch_execute("ROLLBACK").await {
            log::warn!("rolling back the failed schema script failed too: {rollback}");
        }
        return Err(e.into());
    }
    Ok(())
}

/// Whether a row with `id` exists in `table` (a fixed name, never input).
async fn exists(client: &Client, table: &'static str, id: uuid::Uuid) -> Result<bool> {
    let sql = format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)");
    Ok(client.query_one(&sql, &[&id]).await?.get(0))
}
