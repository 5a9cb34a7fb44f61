//! Configuration: every tunable with its default, read from the
//! environment by the binary and built in code by embedders and tests.

use crate::domain::PublicUrl;
use crate::error::{Error, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything [`crate::start`] needs. `Debug` leaves out the database URL,
/// which usually holds a password.
#[derive(Clone)]
pub struct Config {
    /// Where PostgreSQL is (`DATABASE_URL`).
    pub database_url: String,
    /// Pooled connections shared by the tenancy and partition services
    /// (`MESHER_POOL_SIZE`).
    pub pool_size: u32,
    /// Pooled connections the storage writers share, a pool of their own
    /// (`MESHER_STORAGE_POOL_SIZE`): each holds one while a batch is written.
    pub storage_pool_size: u32,
    /// Whether event batches wait for the WAL flush at commit
    /// (`MESHER_STORAGE_SYNCHRONOUS_COMMIT`, default on; see
    /// [`crate::db::event_pool`] for the trade-off).
    pub storage_synchronous_commit: bool,
    /// How long start-up waits for PostgreSQL to answer before giving up
    /// (`MESHER_DB_WAIT_SECS`).
    pub database_wait: Duration,
    pub users: UserConfig,
    pub writer: WriterConfig,
    pub partitions: PartitionConfig,
    pub http: HttpConfig,
    pub spool: SpoolConfig,
    pub source_maps: crate::sourcemaps::SourceMapConfig,
}

/// Where batches wait on local disk while PostgreSQL cannot take them
/// (see [`crate::services::Spool`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool's directory (`MESHER_SPOOL_DIR`, default `mesher-spool`
    /// under the working directory; empty turns the spool off, which
    /// brings back drop-oldest during outages). A spool left there by an
    /// earlier run is replayed at start.
    pub dir: Option<PathBuf>,
    /// The most the spooled batches may take, in bytes
    /// (`MESHER_SPOOL_MAX_MB`, default 1024 MiB); past it, events are
    /// refused (HTTP 429) or dropped and counted.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: Some(PathBuf::from("mesher-spool")),
            max_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Tuning for the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where the server listens (`MESHER_HTTP_ADDR`); port 0 picks a free
    /// port, which [`crate::Mesher::http_addr`] then reports.
    pub addr: SocketAddr,
    /// What DSNs point at (`MESHER_PUBLIC_URL`); `http://<addr>` when
    /// unset, with the port actually bound.
    pub public_url: Option<PublicUrl>,
    /// How long a shutdown lets requests in progress finish
    /// (`MESHER_HTTP_SHUTDOWN_SECS`).
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's head, and then its
    /// body (`MESHER_HTTP_CLIENT_TIMEOUT_MS`): a slow client is cut off
    /// instead of holding a connection and its buffer.
    pub client_timeout: Duration,
    /// Whether anyone may register an account through the dashboard
    /// (`MESHER_ALLOW_REGISTRATION`, default on); off, accounts are made
    /// with `mesher user create`.
    pub allow_registration: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            public_url: None,
            shutdown_timeout: Duration::from_secs(10),
            client_timeout: Duration::from_secs(10),
            allow_registration: true,
        }
    }
}

/// Tuning for [`crate::services::UserService`].
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// bcrypt work factor (`MESHER_BCRYPT_COST`); each step doubles the work.
    /// 12 is slow for an attacker, tolerable for a login. Tests lower it.
    pub bcrypt_cost: u32,
    /// Session lifetime (`MESHER_SESSION_TTL_SECS`).
    pub session_ttl: Duration,
}

/// Tuning for each [`crate::services::StorageWriter`].
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Events held per project before the oldest is dropped
    /// (`MESHER_WRITER_BUFFER`): bounds memory when PostgreSQL is slow.
    pub buffer_capacity: usize,
    /// Buffered events that trigger a flush (`MESHER_WRITER_BATCH`).
    pub batch_size: usize,
    /// Longest an event waits in a quiet buffer (`MESHER_WRITER_FLUSH_MS`).
    pub flush_interval: Duration,
    /// Wait before each retry of a failed flush; its length is the number
    /// of retries (`MESHER_WRITER_RETRY_MS`, comma-separated).
    pub retry_backoff: Vec<Duration>,
    /// Batch writes running at once, all writers together
    /// (`MESHER_WRITER_CONCURRENT_WRITES`, at most the storage pool's
    /// size). Batches that wait meanwhile are combined into the next
    /// statement, so a few writes carry any rate; more of them only
    /// compete for PostgreSQL's CPU and the same issue rows, and on a
    /// machine Mesher shares with PostgreSQL, for the cores that answer
    /// requests (see the README's benchmark section).
    pub concurrent_writes: usize,
}

/// Tuning for [`crate::services::PartitionManager`].
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// Days after today to keep partitions for (`MESHER_PARTITION_DAYS_AHEAD`).
    pub days_ahead: u32,
    /// Time between checks (`MESHER_PARTITION_CHECK_SECS`).
    pub check_interval: Duration,
    /// How long creating a partition waits for a lock before giving up, to
    /// be tried again (`MESHER_PARTITION_LOCK_TIMEOUT_MS`): a long query or
    /// VACUUM on `events` must not hold every creation up behind it.
    pub lock_timeout: Duration,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            bcrypt_cost: 12,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            buffer_capacity: 500,
            batch_size: 50,
            flush_interval: Duration::from_secs(5),
            retry_backoff: [100, 500, 2000].map(Duration::from_millis).to_vec(),
            concurrent_writes: 2,
        }
    }
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            days_ahead: 7,
            check_interval: Duration::from_secs(24 * 3600),
            lock_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("storage_pool_size", &self.storage_pool_size)
            .field(
                "storage_synchronous_commit",
                &self.storage_synchronous_commit,
            )
            .field("database_wait", &self.database_wait)
            .field("users", &self.users)
            .field("writer", &self.writer)
            .field("partitions", &self.partitions)
            .field("http", &self.http)
            .field("spool", &self.spool)
            .field("source_maps", &self.source_maps)
            .finish()
    }
}

impl Config {
    /// The defaults, for the database at `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Config {
            database_url: database_url.into(),
            pool_size: 16,
            storage_pool_size: 8,
            storage_synchronous_commit: true,
            database_wait: Duration::from_secs(30),
            users: UserConfig::default(),
            writer: WriterConfig::default(),
            partitions: PartitionConfig::default(),
            http: HttpConfig::default(),
            spool: SpoolConfig::default(),
            source_maps: Default::default(),
        }
    }

    /// Reads `DATABASE_URL` (required) and the optional `MESHER_*`
    /// variables; an unparsable value, or a configuration that cannot work
    /// (see [`Config::validate`]), is an error naming the variable.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let url = get("DATABASE_URL").ok_or(Error::invalid("DATABASE_URL", "must be set"))?;
        let mut c = Config::new(url);
        let num = |key: &'static str| -> Result<Option<u64>> {
            get(key)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| Error::invalid(key, "must be a whole number"))
                })
                .transpose()
        };
        let small = |key: &'static str, n: u64| {
            u32::try_from(n).map_err(|_| Error::invalid(key, "is too large"))
        };
        let size = |key: &'static str, n: u64| {
            usize::try_from(n).map_err(|_| Error::invalid(key, "is too large"))
        };
        if let Some(n) = num("MESHER_POOL_SIZE")? {
            c.pool_size = small("MESHER_POOL_SIZE", n)?;
        }
        if let Some(n) = num("MESHER_STORAGE_POOL_SIZE")? {
            c.storage_pool_size = small("MESHER_STORAGE_POOL_SIZE", n)?;
        }
        if let Some(v) = get("MESHER_STORAGE_SYNCHRONOUS_COMMIT") {
            c.storage_synchronous_commit = match v.trim() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => {
                    return Err(Error::invalid(
                        "MESHER_STORAGE_SYNCHRONOUS_COMMIT",
                        "must be on or off",
                    ));
                }
            };
        }
        if let Some(n) = num("MESHER_DB_WAIT_SECS")? {
            c.database_wait = Duration::from_secs(n);
        }
        if let Some(n) = num("MESHER_BCRYPT_COST")? {
            c.users.bcrypt_cost = small("MESHER_BCRYPT_COST", n)?;
        }
        if let Some(n) = num("MESHER_SESSION_TTL_SECS")? {
            c.users.session_ttl = Duration::from_secs(n);
        }
        if let Some(n) = num("MESHER_WRITER_BUFFER")? {
            c.writer.buffer_capacity = size("MESHER_WRITER_BUFFER", n)?;
        }
        if let Some(n) = num("MESHER_WRITER_CONCURRENT_WRITES")? {
            c.writer.concurrent_writes = size("MESHER_WRITER_CONCURRENT_WRITES", n)?;
        }
        if let Some(n) = num("MESHER_WRITER_BATCH")? {
            c.writer.batch_size = size("MESHER_WRITER_BATCH", n)?;
        }
        if let Some(n) = num("MESHER_WRITER_FLUSH_MS")? {
            c.writer.flush_interval = Duration::from_millis(n);
        }
        if let Some(list) = get("MESHER_WRITER_RETRY_MS") {
            c.writer.retry_backoff = list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    s.trim().parse().map(Duration::from_millis).map_err(|_| {
                        Error::invalid(
                            "MESHER_WRITER_RETRY_MS",
                            "must be comma-separated milliseconds",
                        )
                    })
                })
                .collect::<Result<_>>()?;
        }
        if let Some(n) = num("MESHER_PARTITION_DAYS_AHEAD")? {
            c.partitions.days_ahead = small("MESHER_PARTITION_DAYS_AHEAD", n)?;
        }
        if let Some(n) = num("MESHER_PARTITION_CHECK_SECS")? {
            c.partitions.check_interval = Duration::from_secs(n);
        }
        if let Some(n) = num("MESHER_PARTITION_LOCK_TIMEOUT_MS")? {
            c.partitions.lock_timeout = Duration::from_millis(n);
        }
        if let Some(addr) = get("MESHER_HTTP_ADDR") {
            c.http.addr = addr.trim().parse().map_err(|_| {
                Error::invalid("MESHER_HTTP_ADDR", "must be an address like 127.0.0.1:8000")
            })?;
        }
        if let Some(url) = get("MESHER_PUBLIC_URL") {
            c.http.public_url = Some(PublicUrl::parse(&url)?);
        }
        if let Some(n) = num("MESHER_HTTP_SHUTDOWN_SECS")? {
            c.http.shutdown_timeout = Duration::from_secs(n);
        }
        if let Some(n) = num("MESHER_HTTP_CLIENT_TIMEOUT_MS")? {
            c.http.client_timeout = Duration::from_millis(n);
        }
        if let Some(v) = get("MESHER_ALLOW_REGISTRATION") {
            c.http.allow_registration = match v.trim() {
                "1" | "true" | "on" | "yes" => true,
                "0" | "false" | "off" | "no" => false,
                _ => {
                    return Err(Error::invalid(
                        "MESHER_ALLOW_REGISTRATION",
                        "must be on or off",
                    ));
                }
            };
        }
        if let Some(dir) = get("MESHER_SPOOL_DIR") {
            c.spool.dir = Some(PathBuf::from(dir)).filter(|d| !d.as_os_str().is_empty());
        }
        if let Some(n) = num("MESHER_SPOOL_MAX_MB")? {
            c.spool.max_bytes = n
                .checked_mul(1024 * 1024)
                .ok_or(Error::invalid("MESHER_SPOOL_MAX_MB", "is too large"))?;
        }
        if let Some(n) = num("MESHER_SOURCEMAP_CACHE_MB")? {
            c.source_maps.cache_bytes = n
                .checked_mul(1024 * 1024)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(Error::invalid("MESHER_SOURCEMAP_CACHE_MB", "is too large"))?;
        }
        if let Some(n) = num("MESHER_SOURCEMAP_MAX_BUNDLE_MB")? {
            c.source_maps.max_bundle_bytes = n
                .checked_mul(1024 * 1024)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(Error::invalid(
                    "MESHER_SOURCEMAP_MAX_BUNDLE_MB",
                    "is too large",
                ))?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Refuses a configuration that cannot work, naming the environment
    /// variable of the first bad setting: the same rules whether the values
    /// came from the environment or were set in code. [`crate::start`]
    /// calls it before anything else.
    pub fn validate(&self) -> Result<()> {
        if self.database_url.parse::<tokio_postgres::Config>().is_err() {
            return Err(Error::invalid(
                "DATABASE_URL",
                "must be a PostgreSQL connection URL",
            ));
        }
        // bb8 panics on a pool of size zero.
        positive("MESHER_POOL_SIZE", self.pool_size.into())?;
        positive("MESHER_STORAGE_POOL_SIZE", self.storage_pool_size.into())?;
        // Each write holds a storage connection for its whole statement.
        if self.writer.concurrent_writes > self.storage_pool_size as usize {
            return Err(Error::invalid(
                "MESHER_WRITER_CONCURRENT_WRITES",
                "must not exceed MESHER_STORAGE_POOL_SIZE",
            ));
        }
        // Zero is fine: one attempt, no waiting.
        at_most_a_year("MESHER_DB_WAIT_SECS", self.database_wait)?;
        self.users.validate()?;
        self.writer.validate()?;
        self.partitions.validate()?;
        positive("MESHER_SPOOL_MAX_MB", self.spool.max_bytes)?;
        positive(
            "MESHER_SOURCEMAP_MAX_BUNDLE_MB",
            self.source_maps.max_bundle_bytes as u64,
        )?;
        self.http.validate()
    }
}

/// Past this, a duration is surely a typo, and a huge one would overflow
/// the clock arithmetic of timers or PostgreSQL's intervals.
const A_YEAR: Duration = Duration::from_secs(366 * 86_400);

fn positive(field: &'static str, n: u64) -> Result<()> {
    if n == 0 {
        return Err(Error::invalid(field, "must be greater than zero"));
    }
    Ok(())
}

fn at_most_a_year(field: &'static str, d: Duration) -> Result<()> {
    if d > A_YEAR {
        return Err(Error::invalid(field, "must be at most a year"));
    }
    Ok(())
}

/// A timer's period or delay: at least a millisecond, since timers count
/// whole milliseconds and a shorter period refires as fast as the event
/// loop turns, and at most a year.
fn timer(field: &'static str, d: Duration) -> Result<()> {
    if d < Duration::from_millis(1) {
        return Err(Error::invalid(field, "must be at least 1 ms"));
    }
    at_most_a_year(field, d)
}

impl UserConfig {
    /// See [`Config::validate`].
    pub fn validate(&self) -> Result<()> {
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(Error::invalid(
                "MESHER_BCRYPT_COST",
                "must be between 4 and 31",
            ));
        }
        // A zero lifetime would make every session expired at birth.
        if self.session_ttl.is_zero() {
            return Err(Error::invalid(
                "MESHER_SESSION_TTL_SECS",
                "must be greater than zero",
            ));
        }
        at_most_a_year("MESHER_SESSION_TTL_SECS", self.session_ttl)
    }
}

impl WriterConfig {
    /// See [`Config::validate`]. An empty retry list is fine: no retries.
    /// A zero retry delay is not: retrying at once meets the same fault
    /// again, so it spends the retry without giving the database any time
    /// to come back; it is far more likely a typo than a wish.
    pub fn validate(&self) -> Result<()> {
        positive("MESHER_WRITER_BUFFER", self.buffer_capacity as u64)?;
        positive("MESHER_WRITER_BATCH", self.batch_size as u64)?;
        // A batch that never fits in the buffer would never trigger a
        // flush: the buffer would drop events first.
        if self.batch_size > self.buffer_capacity {
            return Err(Error::invalid(
                "MESHER_WRITER_BATCH",
                "must not exceed MESHER_WRITER_BUFFER",
            ));
        }
        timer("MESHER_WRITER_FLUSH_MS", self.flush_interval)?;
        positive(
            "MESHER_WRITER_CONCURRENT_WRITES",
            self.concurrent_writes as u64,
        )?;
        for &delay in &self.retry_backoff {
            timer("MESHER_WRITER_RETRY_MS", delay)?;
        }
        Ok(())
    }
}

impl PartitionConfig {
    /// See [`Config::validate`].
    pub fn validate(&self) -> Result<()> {
        // Each check creates the missing partitions in one transaction;
        // years of them would hold thousands of locks at once.
        if self.days_ahead > 366 {
            return Err(Error::invalid(
                "MESHER_PARTITION_DAYS_AHEAD",
                "must be at most 366",
            ));
        }
        timer("MESHER_PARTITION_CHECK_SECS", self.check_interval)?;
        // PostgreSQL reads a lock_timeout of 0 as "wait forever", the very
        // thing the timeout prevents, and refuses more than i32::MAX ms.
        if self.lock_timeout < Duration::from_millis(1) {
            return Err(Error::invalid(
                "MESHER_PARTITION_LOCK_TIMEOUT_MS",
                "must be at least 1 ms",
            ));
        }
        if self.lock_timeout.as_millis() > i32::MAX as u128 {
            return Err(Error::invalid(
                "MESHER_PARTITION_LOCK_TIMEOUT_MS",
                "must be at most 2147483647 ms",
            ));
        }
        Ok(())
    }
}

impl HttpConfig {
    /// What DSNs point at when the server listens on `bound`: the
    /// configured public URL, else `http://<bound>`.
    pub fn public_url(&self, bound: SocketAddr) -> Result<PublicUrl> {
        match &self.public_url {
            Some(url) => Ok(url.clone()),
            None => PublicUrl::parse(&format!("http://{bound}")),
        }
    }

    /// See [`Config::validate`].
    pub fn validate(&self) -> Result<()> {
        at_most_a_year("MESHER_HTTP_SHUTDOWN_SECS", self.shutdown_timeout)?;
        timer("MESHER_HTTP_CLIENT_TIMEOUT_MS", self.client_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_specification() {
        let c = from(&[("DATABASE_URL", "postgres://x")]).unwrap();
        assert!(c.storage_synchronous_commit, "durable by default");
        assert_eq!(c.users.bcrypt_cost, 12);
        assert_eq!(c.users.session_ttl, Duration::from_secs(604_800));
        assert_eq!(c.writer.buffer_capacity, 500);
        assert_eq!(c.writer.batch_size, 50);
        assert_eq!(c.writer.flush_interval, Duration::from_secs(5));
        assert_eq!(
            c.writer.retry_backoff,
            [100, 500, 2000].map(Duration::from_millis)
        );
        assert_eq!(c.partitions.days_ahead, 7);
        assert_eq!(c.partitions.check_interval, Duration::from_secs(86_400));
        assert_eq!(c.partitions.lock_timeout, Duration::from_secs(5));
        assert_eq!(c.spool.dir, Some(PathBuf::from("mesher-spool")));
        assert_eq!(c.spool.max_bytes, 1 << 30);
        assert!(c.http.allow_registration);
        c.validate().unwrap();
    }

    #[test]
    fn the_spool_can_be_moved_bounded_or_turned_off() {
        let c = from(&[
            ("DATABASE_URL", "postgres://x"),
            ("MESHER_SPOOL_DIR", "/var/lib/mesher/spool"),
            ("MESHER_SPOOL_MAX_MB", "2"),
        ])
        .unwrap();
        assert_eq!(c.spool.dir, Some(PathBuf::from("/var/lib/mesher/spool")));
        assert_eq!(c.spool.max_bytes, 2 * 1024 * 1024);
        let off = from(&[("DATABASE_URL", "postgres://x"), ("MESHER_SPOOL_DIR", "")]).unwrap();
        assert_eq!(off.spool.dir, None);
        for bad in ["0", "18446744073709551615"] {
            let refused = from(&[
                ("DATABASE_URL", "postgres://x"),
                ("MESHER_SPOOL_MAX_MB", bad),
            ]);
            assert!(
                matches!(
                    refused,
                    Err(Error::InvalidInput {
                        field: "MESHER_SPOOL_MAX_MB",
                        ..
                    })
                ),
                "{bad}: {refused:?}"
            );
        }
    }

    #[test]
    fn retry_delays_are_bounded_like_every_duration() {
        let huge = from(&[
            ("DATABASE_URL", "postgres://x"),
            ("MESHER_WRITER_RETRY_MS", "100,5000000000000"),
        ]);
        assert!(matches!(
            huge,
            Err(Error::InvalidInput {
                field: "MESHER_WRITER_RETRY_MS",
                ..
            })
        ));
    }

    #[test]
    fn debug_output_hides_the_database_password() {
        let c = Config::new("postgres://mesher:s3cret@db/mesher");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn environment_overrides_and_bad_values_name_the_variable() {
        let c = from(&[
            ("DATABASE_URL", "postgres://x"),
            ("MESHER_BCRYPT_COST", "4"),
            ("MESHER_WRITER_RETRY_MS", "10, 20"),
        ])
        .unwrap();
        assert_eq!(c.users.bcrypt_cost, 4);
        assert_eq!(c.writer.retry_backoff, [10, 20].map(Duration::from_millis));
        assert!(matches!(
            from(&[]),
            Err(Error::InvalidInput {
                field: "DATABASE_URL",
                ..
            })
        ));
        assert!(matches!(
            from(&[
                ("DATABASE_URL", "postgres://x"),
                ("MESHER_WRITER_BUFFER", "lots")
            ]),
            Err(Error::InvalidInput {
                field: "MESHER_WRITER_BUFFER",
                ..
            })
        ));
        assert!(matches!(
            from(&[
                ("DATABASE_URL", "postgres://x"),
                ("MESHER_BCRYPT_COST", "99")
            ]),
            Err(Error::InvalidInput {
                field: "MESHER_BCRYPT_COST",
                ..
            })
        ));
        assert!(matches!(
            from(&[
                ("DATABASE_URL", "postgres://x"),
                ("MESHER_DB_WAIT_SECS", "18446744073709551615")
            ]),
            Err(Error::InvalidInput {
                field: "MESHER_DB_WAIT_SECS",
                ..
            })
        ));
        assert!(matches!(
            from(&[
                ("DATABASE_URL", "postgres://x"),
                ("MESHER_WRITER_RETRY_MS", "100,soon")
            ]),
            Err(Error::InvalidInput {
                field: "MESHER_WRITER_RETRY_MS",
                ..
            })
        ));
        assert!(matches!(
            from(&[
                ("DATABASE_URL", "postgres://x"),
                ("MESHER_WRITER_BATCH", "600")
            ]),
            Err(Error::InvalidInput {
                field: "MESHER_WRITER_BATCH",
                ..
            })
        ));
    }

    /// Makes one setting of a configuration unworkable.
    type Spoil = fn(&mut Config);

    /// The field named by the error of a configuration that must fail.
    fn refused(c: &Config) -> &'static str {
        match c.validate() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?} for {c:?}"),
        }
    }

    #[test]
    fn configurations_built_in_code_are_checked_like_the_environment() {
        let ms = Duration::from_millis;
        let cases: [(&str, Spoil); 22] = [
            ("DATABASE_URL", |c| c.database_url = "not a url".into()),
            ("MESHER_POOL_SIZE", |c| c.pool_size = 0),
            ("MESHER_STORAGE_POOL_SIZE", |c| c.storage_pool_size = 0),
            ("MESHER_DB_WAIT_SECS", |c| c.database_wait = Duration::MAX),
            ("MESHER_BCRYPT_COST", |c| c.users.bcrypt_cost = 3),
            ("MESHER_BCRYPT_COST", |c| c.users.bcrypt_cost = 32),
            ("MESHER_SESSION_TTL_SECS", |c| {
                c.users.session_ttl = Duration::ZERO
            }),
            ("MESHER_SESSION_TTL_SECS", |c| {
                c.users.session_ttl = Duration::from_secs(400 * 86_400)
            }),
            ("MESHER_WRITER_BUFFER", |c| c.writer.buffer_capacity = 0),
            ("MESHER_WRITER_BATCH", |c| c.writer.batch_size = 0),
            ("MESHER_WRITER_CONCURRENT_WRITES", |c| {
                c.writer.concurrent_writes = 0
            }),
            ("MESHER_WRITER_CONCURRENT_WRITES", |c| {
                c.writer.concurrent_writes = c.storage_pool_size as usize + 1
            }),
            ("MESHER_WRITER_BATCH", |c| c.writer.batch_size = 501),
            ("MESHER_WRITER_FLUSH_MS", |c| {
                c.writer.flush_interval = Duration::ZERO
            }),
            ("MESHER_WRITER_FLUSH_MS", |c| {
                c.writer.flush_interval = Duration::from_micros(999)
            }),
            ("MESHER_WRITER_RETRY_MS", |c| {
                c.writer.retry_backoff = vec![Duration::from_millis(100), Duration::ZERO]
            }),
            ("MESHER_WRITER_RETRY_MS", |c| {
                c.writer.retry_backoff = vec![Duration::from_secs(400 * 86_400)]
            }),
            ("MESHER_PARTITION_DAYS_AHEAD", |c| {
                c.partitions.days_ahead = 367
            }),
            ("MESHER_PARTITION_CHECK_SECS", |c| {
                c.partitions.check_interval = Duration::ZERO
            }),
            ("MESHER_PARTITION_LOCK_TIMEOUT_MS", |c| {
                c.partitions.lock_timeout = Duration::ZERO
            }),
            ("MESHER_PARTITION_LOCK_TIMEOUT_MS", |c| {
                c.partitions.lock_timeout = Duration::from_micros(500)
            }),
            ("MESHER_PARTITION_LOCK_TIMEOUT_MS", |c| {
                c.partitions.lock_timeout = Duration::from_millis(i32::MAX as u64 + 1)
            }),
        ];
        for (field, spoil) in cases {
            let mut c = Config::new("postgres://x");
            spoil(&mut c);
            assert_eq!(refused(&c), field, "{c:?}");
        }

        // The edges that still work.
        let mut c = Config::new("postgres://x");
        c.database_wait = Duration::ZERO;
        c.writer.batch_size = c.writer.buffer_capacity;
        c.writer.flush_interval = ms(1);
        c.writer.retry_backoff = Vec::new();
        c.partitions.days_ahead = 366;
        c.partitions.lock_timeout = ms(i32::MAX as u64);
        c.validate().unwrap();
    }

    #[test]
    fn zeros_from_the_environment_are_refused_where_they_cannot_work() {
        for key in [
            "MESHER_POOL_SIZE",
            "MESHER_STORAGE_POOL_SIZE",
            "MESHER_SESSION_TTL_SECS",
            "MESHER_WRITER_BUFFER",
            "MESHER_WRITER_BATCH",
            "MESHER_WRITER_CONCURRENT_WRITES",
            "MESHER_WRITER_FLUSH_MS",
            "MESHER_WRITER_RETRY_MS",
            "MESHER_PARTITION_CHECK_SECS",
            "MESHER_PARTITION_LOCK_TIMEOUT_MS",
        ] {
            match from(&[("DATABASE_URL", "postgres://x"), (key, "0")]) {
                Err(Error::InvalidInput { field, .. }) => assert_eq!(field, key),
                other => panic!("{key}=0 gave {other:?}"),
            }
        }
        let c = from(&[
            ("DATABASE_URL", "postgres://x"),
            ("MESHER_DB_WAIT_SECS", "0"),
            ("MESHER_PARTITION_DAYS_AHEAD", "0"),
            ("MESHER_WRITER_RETRY_MS", ""),
            ("MESHER_PARTITION_LOCK_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        assert_eq!(c.database_wait, Duration::ZERO);
        assert_eq!(c.partitions.days_ahead, 0);
        assert!(c.writer.retry_backoff.is_empty(), "no retries");
        assert_eq!(c.partitions.lock_timeout, Duration::from_millis(250));
    }
}
