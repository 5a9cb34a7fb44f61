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
    /// Pooled connections shared by the tenancy, dashboard and partition
    /// services (`MESHER_POOL_SIZE`). Storage has a pool of its own, sized
    /// by [`WriterConfig::event_pool_size`].
    pub pool_size: u32,
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
    pub ack: AckConfig,
    pub source_maps: crate::sourcemaps::SourceMapConfig,
    pub notifier: NotifierConfig,
}

/// Where notifications go out and how the
/// [`crate::services::Notifier`] retries them.
#[derive(Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    /// The SMTP server email goes through (`MESHER_SMTP_URL`):
    /// `smtps://user:pass@host:465` (TLS), `smtp://user:pass@host:587?tls=
    /// starttls` (or `tls=required`; `tls=opportunistic`), `smtp://host:25`
    /// (plain). Unset, email channels are refused when created. Holds a
    /// password: never logged.
    pub smtp_url: Option<String>,
    /// The sender of every email (`MESHER_EMAIL_FROM`, `Mesher
    /// <alerts@example.org>`); required with an SMTP URL.
    pub email_from: Option<String>,
    /// Whether webhooks may reach loopback, private, link-local and other
    /// non-public addresses (`MESHER_WEBHOOK_ALLOW_PRIVATE`, default off:
    /// such targets are how a webhook is turned against the network
    /// Mesher runs in).
    pub allow_private_webhooks: bool,
    /// How often the notifier looks for due deliveries when nothing wakes
    /// it (`MESHER_NOTIFIER_POLL_MS`): a batch that fires an alert wakes
    /// every process's notifier at once; this catches retries and a wake-up
    /// missed while reconnecting.
    pub poll_interval: Duration,
    /// The wait before the first retry (`MESHER_NOTIFIER_RETRY_MS`),
    /// doubling at each failure up to `retry_max`
    /// (`MESHER_NOTIFIER_RETRY_MAX_MS`).
    pub retry_first: Duration,
    pub retry_max: Duration,
    /// How long a delivery is retried before it is marked failed
    /// (`MESHER_NOTIFIER_RETRY_FOR_SECS`, a day).
    pub retry_for: Duration,
    /// How long a claimed delivery is the claiming process's alone
    /// (`MESHER_NOTIFIER_LEASE_SECS`): if that process dies mid-send,
    /// another sends it after this. Shorter than a send can take (10 s), a
    /// slow delivery may go out twice (receivers drop the repeat by its
    /// id).
    pub lease: Duration,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            smtp_url: None,
            email_from: None,
            allow_private_webhooks: false,
            poll_interval: Duration::from_secs(2),
            retry_first: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            retry_for: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for NotifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierConfig")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("email_from", &self.email_from)
            .field("allow_private_webhooks", &self.allow_private_webhooks)
            .field("poll_interval", &self.poll_interval)
            .field("retry_first", &self.retry_first)
            .field("retry_max", &self.retry_max)
            .field("retry_for", &self.retry_for)
            .field("lease", &self.lease)
            .finish()
    }
}

impl NotifierConfig {
    /// See [`Config::validate`].
    pub fn validate(&self) -> Result<()> {
        if let Some(url) = &self.smtp_url {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(Error::invalid(
                    "MESHER_SMTP_URL",
                    "must start with smtp:// or smtps://",
                ));
            }
            let Some(from) = &self.email_from else {
                return Err(Error::invalid(
                    "MESHER_EMAIL_FROM",
                    "must be set when MESHER_SMTP_URL is",
                ));
            };
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(Error::invalid(
                    "MESHER_EMAIL_FROM",
                    "must be an address, or a name and <address>",
                ));
            }
        }
        timer("MESHER_NOTIFIER_POLL_MS", self.poll_interval)?;
        timer("MESHER_NOTIFIER_RETRY_MS", self.retry_first)?;
        timer("MESHER_NOTIFIER_RETRY_MAX_MS", self.retry_max)?;
        if self.retry_max < self.retry_first {
            return Err(Error::invalid(
                "MESHER_NOTIFIER_RETRY_MAX_MS",
                "must not be less than MESHER_NOTIFIER_RETRY_MS",
            ));
        }
        at_most_a_year("MESHER_NOTIFIER_RETRY_FOR_SECS", self.retry_for)?;
        timer("MESHER_NOTIFIER_LEASE_SECS", self.lease)
    }
}

/// When an event is answered 200 (see [`crate::services::AckLog`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Once a request's events are on local disk (appended to the
    /// acknowledgement log and fsynced) or in PostgreSQL: a SIGKILL, an
    /// OOM kill or a power cut loses nothing answered 200. Costs a few
    /// milliseconds of latency per request (one fsync, shared by the
    /// requests that arrive meanwhile).
    Durable,
    /// Once a writer's buffer in memory holds them, as before the log:
    /// what was buffered or in flight when the process dies is lost.
    Memory,
}

/// How requests are acknowledged (`MESHER_ACK`) and the bound on the
/// log that durable acknowledgement keeps in the spool's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckConfig {
    /// `MESHER_ACK`: `durable` (the default) or `memory`.
    pub mode: Ack,
    /// The most the log's segments may take, in bytes
    /// (`MESHER_ACK_LOG_MAX_MB`, default 256 MiB): the events accepted and
    /// not yet settled in PostgreSQL or the spool. Past it, requests are
    /// refused (HTTP 429 with `Retry-After`), never accepted and dropped.
    pub max_bytes: u64,
}

impl Default for AckConfig {
    fn default() -> Self {
        AckConfig {
            mode: Ack::Durable,
            max_bytes: 256 * 1024 * 1024,
        }
    }
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
    /// Events held per project before the oldest is dropped, for the
    /// embedding API's `Store` (`MESHER_WRITER_BUFFER`): the seed's bound.
    pub buffer_capacity: usize,
    /// Bytes of events a project's writer holds for requests before it
    /// refuses more (`MESHER_WRITER_BUFFER_MB`): what a busy project may
    /// keep waiting while PostgreSQL is slow.
    pub buffer_bytes: usize,
    /// How long the oldest buffered event may wait for a batch of its own
    /// before requests are refused (`MESHER_WRITER_BUFFER_WAIT_MS`): past
    /// it, storage is not keeping up.
    pub buffer_wait: Duration,
    /// Bytes of events all writers together hold, buffered or in flight,
    /// before requests are refused (`MESHER_WRITER_MEMORY_MB`).
    pub memory_bytes: usize,
    /// Batches a writer writes at once (`MESHER_WRITER_BATCHES_IN_FLIGHT`):
    /// more than one, so that one busy project is not held to one commit
    /// at a time.
    pub batches_in_flight: usize,
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
    /// How long a writer with nothing buffered or in flight lives on
    /// (`MESHER_WRITER_IDLE_SECS`): past it, it stops, with its timer, and
    /// the project's next event starts a new one. Thousands of quiet
    /// projects then cost no wake-ups.
    pub idle_timeout: Duration,
}

impl WriterConfig {
    /// The storage pool's connections: one per concurrent write, for the
    /// committer, and one for the spool replayer, so that replaying after
    /// an outage never waits behind the writers nor they behind it.
    pub fn event_pool_size(&self) -> u32 {
        u32::try_from(self.concurrent_writes)
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }
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
    /// Days of events kept (`MESHER_RETENTION_DAYS`, default 90; 0 keeps
    /// everything): each check drops the partitions of the days wholly
    /// older than that, and the issues last seen before them.
    pub retention_days: u32,
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
            buffer_bytes: 16 * 1024 * 1024,
            buffer_wait: Duration::from_secs(5),
            memory_bytes: 256 * 1024 * 1024,
            batches_in_flight: 2,
            batch_size: 50,
            flush_interval: Duration::from_secs(5),
            retry_backoff: [100, 500, 2000].map(Duration::from_millis).to_vec(),
            concurrent_writes: 2,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            days_ahead: 7,
            check_interval: Duration::from_secs(24 * 3600),
            lock_timeout: Duration::from_secs(5),
            retention_days: 90,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"<redacted>")
            .field("pool_size", &self.pool_size)
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
            .field("ack", &self.ack)
            .field("source_maps", &self.source_maps)
            .field("notifier", &self.notifier)
            .finish()
    }
}

impl Config {
    /// The defaults, for the database at `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Config {
            database_url: database_url.into(),
            pool_size: 16,
            storage_synchronous_commit: true,
            database_wait: Duration::from_secs(30),
            users: UserConfig::default(),
            writer: WriterConfig::default(),
            partitions: PartitionConfig::default(),
            http: HttpConfig::default(),
            spool: SpoolConfig::default(),
            ack: AckConfig::default(),
            source_maps: Default::default(),
            notifier: NotifierConfig::default(),
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
        let switch = |key: &'static str| -> Result<Option<bool>> {
            get(key).map(|v| parse_switch(key, &v)).transpose()
        };
        let small = |key: &'static str, n: u64| {
            u32::try_from(n).map_err(|_| Error::invalid(key, "is too large"))
        };
        let size = |key: &'static str, n: u64| {
            usize::try_from(n).map_err(|_| Error::invalid(key, "is too large"))
        };
        let megabytes = |key: &'static str, n: u64| {
            n.checked_mul(1024 * 1024)
                .and_then(|b| usize::try_from(b).ok())
                .ok_or(Error::invalid(key, "is too large"))
        };
        if let Some(n) = num("MESHER_POOL_SIZE")? {
            c.pool_size = small("MESHER_POOL_SIZE", n)?;
        }
        if let Some(on) = switch("MESHER_STORAGE_SYNCHRONOUS_COMMIT")? {
            c.storage_synchronous_commit = on;
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
        if let Some(n) = num("MESHER_WRITER_BUFFER_MB")? {
            c.writer.buffer_bytes = megabytes("MESHER_WRITER_BUFFER_MB", n)?;
        }
        if let Some(n) = num("MESHER_WRITER_BUFFER_WAIT_MS")? {
            c.writer.buffer_wait = Duration::from_millis(n);
        }
        if let Some(n) = num("MESHER_WRITER_MEMORY_MB")? {
            c.writer.memory_bytes = megabytes("MESHER_WRITER_MEMORY_MB", n)?;
        }
        if let Some(n) = num("MESHER_WRITER_BATCHES_IN_FLIGHT")? {
            c.writer.batches_in_flight = size("MESHER_WRITER_BATCHES_IN_FLIGHT", n)?;
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
        if let Some(n) = num("MESHER_WRITER_IDLE_SECS")? {
            c.writer.idle_timeout = Duration::from_secs(n);
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
        if let Some(n) = num("MESHER_RETENTION_DAYS")? {
            c.partitions.retention_days = small("MESHER_RETENTION_DAYS", n)?;
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
        if let Some(on) = switch("MESHER_ALLOW_REGISTRATION")? {
            c.http.allow_registration = on;
        }
        if let Some(dir) = get("MESHER_SPOOL_DIR") {
            c.spool.dir = Some(PathBuf::from(dir)).filter(|d| !d.as_os_str().is_empty());
        }
        if let Some(n) = num("MESHER_SPOOL_MAX_MB")? {
            c.spool.max_bytes = n
                .checked_mul(1024 * 1024)
                .ok_or(Error::invalid("MESHER_SPOOL_MAX_MB", "is too large"))?;
        }
        if let Some(mode) = get("MESHER_ACK") {
            c.ack.mode = match mode.trim().to_ascii_lowercase().as_str() {
                "durable" => Ack::Durable,
                "memory" => Ack::Memory,
                _ => return Err(Error::invalid("MESHER_ACK", "must be durable or memory")),
            };
        }
        if let Some(n) = num("MESHER_ACK_LOG_MAX_MB")? {
            c.ack.max_bytes = n
                .checked_mul(1024 * 1024)
                .ok_or(Error::invalid("MESHER_ACK_LOG_MAX_MB", "is too large"))?;
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
        c.notifier.smtp_url = get("MESHER_SMTP_URL").filter(|u| !u.trim().is_empty());
        c.notifier.email_from = get("MESHER_EMAIL_FROM").filter(|f| !f.trim().is_empty());
        if let Some(on) = switch("MESHER_WEBHOOK_ALLOW_PRIVATE")? {
            c.notifier.allow_private_webhooks = on;
        }
        if let Some(n) = num("MESHER_NOTIFIER_POLL_MS")? {
            c.notifier.poll_interval = Duration::from_millis(n);
        }
        if let Some(n) = num("MESHER_NOTIFIER_RETRY_MS")? {
            c.notifier.retry_first = Duration::from_millis(n);
        }
        if let Some(n) = num("MESHER_NOTIFIER_RETRY_MAX_MS")? {
            c.notifier.retry_max = Duration::from_millis(n);
        }
        if let Some(n) = num("MESHER_NOTIFIER_RETRY_FOR_SECS")? {
            c.notifier.retry_for = Duration::from_secs(n);
        }
        if let Some(n) = num("MESHER_NOTIFIER_LEASE_SECS")? {
            c.notifier.lease = Duration::from_secs(n);
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
        // Zero is fine: one attempt, no waiting.
        at_most_a_year("MESHER_DB_WAIT_SECS", self.database_wait)?;
        self.users.validate()?;
        self.writer.validate()?;
        self.partitions.validate()?;
        positive("MESHER_SPOOL_MAX_MB", self.spool.max_bytes)?;
        positive("MESHER_ACK_LOG_MAX_MB", self.ack.max_bytes)?;
        // The log lives in the spool's directory, which one process owns
        // and one database.
        if self.ack.mode == Ack::Durable && self.spool.dir.is_none() {
            return Err(Error::invalid(
                "MESHER_SPOOL_DIR",
                "is where MESHER_ACK=durable keeps its log: set a directory, or MESHER_ACK=memory",
            ));
        }
        positive(
            "MESHER_SOURCEMAP_MAX_BUNDLE_MB",
            self.source_maps.max_bundle_bytes as u64,
        )?;
        self.notifier.validate()?;
        self.http.validate()
    }
}

/// A switch's value, read one way for every variable: on/off, true/false,
/// 1/0 or yes/no, in any case, spaces around it ignored.
fn parse_switch(key: &'static str, value: &str) -> Result<bool> {
    const ON: [&str; 4] = ["on", "true", "1", "yes"];
    const OFF: [&str; 4] = ["off", "false", "0", "no"];
    let value = value.trim();
    let is = |words: [&str; 4]| words.iter().any(|w| w.eq_ignore_ascii_case(value));
    if is(ON) {
        Ok(true)
    } else if is(OFF) {
        Ok(false)
    } else {
        Err(Error::invalid(
            key,
            "must be on or off (or true/false, 1/0, yes/no)",
        ))
    }
}

/// The longest retention, server-wide or a project's, in days.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

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
        positive("MESHER_WRITER_BUFFER_MB", self.buffer_bytes as u64)?;
        positive("MESHER_WRITER_MEMORY_MB", self.memory_bytes as u64)?;
        positive(
            "MESHER_WRITER_BATCHES_IN_FLIGHT",
            self.batches_in_flight as u64,
        )?;
        timer("MESHER_WRITER_BUFFER_WAIT_MS", self.buffer_wait)?;
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
        // Each write holds a connection of PostgreSQL's, whose default
        // max_connections is 100.
        if self.concurrent_writes > 64 {
            return Err(Error::invalid(
                "MESHER_WRITER_CONCURRENT_WRITES",
                "must be at most 64",
            ));
        }
        timer("MESHER_WRITER_IDLE_SECS", self.idle_timeout)?;
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
        // A century: past it, surely a typo (and date arithmetic stays far
        // from chrono's limits).
        if self.retention_days > MAX_RETENTION_DAYS {
            return Err(Error::invalid(
                "MESHER_RETENTION_DAYS",
                "must be at most 36500",
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
mod tests;
