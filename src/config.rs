//! Configuration: every tunable with its default, read from the
//! environment by the binary and built in code by embedders and tests.

use crate::error::{Error, Result};
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
    /// (`MESHER_STORAGE_SYNCHRONOUS_COMMIT`, default off; see
    /// [`crate::db::event_pool`] for the trade-off).
    pub storage_synchronous_commit: bool,
    /// How long start-up waits for PostgreSQL to answer before giving up
    /// (`MESHER_DB_WAIT_SECS`).
    pub database_wait: Duration,
    pub users: UserConfig,
    pub writer: WriterConfig,
    pub partitions: PartitionConfig,
}

/// Tuning for [`crate::services::UserService`].
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// bcrypt work factor (`MESHER_BCRYPT_COST`). 12 takes ~250 ms per hash
    /// here: slow for an attacker, tolerable for a login. Tests lower it.
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
}

/// Tuning for [`crate::services::PartitionManager`].
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// Days after today to keep partitions for (`MESHER_PARTITION_DAYS_AHEAD`).
    pub days_ahead: u32,
    /// Time between checks (`MESHER_PARTITION_CHECK_SECS`).
    pub check_interval: Duration,
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
        }
    }
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            days_ahead: 7,
            check_interval: Duration::from_secs(24 * 3600),
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
            storage_synchronous_commit: false,
            database_wait: Duration::from_secs(30),
            users: UserConfig::default(),
            writer: WriterConfig::default(),
            partitions: PartitionConfig::default(),
        }
    }

    /// Reads `DATABASE_URL` (required) and the optional `MESHER_*`
    /// variables; an unparsable value is an error naming the variable.
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
        let positive = |key: &'static str| -> Result<Option<u64>> {
            match num(key)? {
                Some(0) => Err(Error::invalid(key, "must be greater than zero")),
                n => Ok(n),
            }
        };
        // Durations beyond a year are surely typos, and huge ones would
        // overflow the clock arithmetic of timers.
        let duration = |key: &'static str, n: u64, unit_secs: f64| -> Result<u64> {
            if n as f64 * unit_secs > 366.0 * 86_400.0 {
                return Err(Error::invalid(key, "must be at most a year"));
            }
            Ok(n)
        };
        let small = |key: &'static str, n: u64| {
            u32::try_from(n).map_err(|_| Error::invalid(key, "is too large"))
        };
        if let Some(n) = positive("MESHER_POOL_SIZE")? {
            c.pool_size = small("MESHER_POOL_SIZE", n)?;
        }
        if let Some(n) = positive("MESHER_STORAGE_POOL_SIZE")? {
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
            c.database_wait = Duration::from_secs(duration("MESHER_DB_WAIT_SECS", n, 1.0)?);
        }
        if let Some(n) = num("MESHER_BCRYPT_COST")? {
            if !(4..=31).contains(&n) {
                return Err(Error::invalid(
                    "MESHER_BCRYPT_COST",
                    "must be between 4 and 31",
                ));
            }
            c.users.bcrypt_cost = n as u32;
        }
        if let Some(n) = positive("MESHER_SESSION_TTL_SECS")? {
            c.users.session_ttl = Duration::from_secs(duration("MESHER_SESSION_TTL_SECS", n, 1.0)?);
        }
        if let Some(n) = positive("MESHER_WRITER_BUFFER")? {
            c.writer.buffer_capacity = n as usize;
        }
        if let Some(n) = positive("MESHER_WRITER_BATCH")? {
            c.writer.batch_size = n as usize;
        }
        if let Some(n) = positive("MESHER_WRITER_FLUSH_MS")? {
            c.writer.flush_interval =
                Duration::from_millis(duration("MESHER_WRITER_FLUSH_MS", n, 0.001)?);
        }
        if let Some(list) = get("MESHER_WRITER_RETRY_MS") {
            c.writer.retry_backoff = list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| {
                    let ms = s.trim().parse().map_err(|_| {
                        Error::invalid(
                            "MESHER_WRITER_RETRY_MS",
                            "must be comma-separated milliseconds",
                        )
                    })?;
                    Ok(Duration::from_millis(duration(
                        "MESHER_WRITER_RETRY_MS",
                        ms,
                        0.001,
                    )?))
                })
                .collect::<Result<_>>()?;
        }
        if let Some(n) = num("MESHER_PARTITION_DAYS_AHEAD")? {
            c.partitions.days_ahead = small("MESHER_PARTITION_DAYS_AHEAD", n)?;
        }
        if let Some(n) = positive("MESHER_PARTITION_CHECK_SECS")? {
            c.partitions.check_interval =
                Duration::from_secs(duration("MESHER_PARTITION_CHECK_SECS", n, 1.0)?);
        }
        if c.writer.batch_size > c.writer.buffer_capacity {
            return Err(Error::invalid(
                "MESHER_WRITER_BATCH",
                "must not exceed MESHER_WRITER_BUFFER",
            ));
        }
        Ok(c)
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
    }

    #[test]
    fn retry_delays_are_bounded_like_every_duration() {
        let huge = from(&[
            ("DATABASE_URL", "x"),
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
            from(&[("DATABASE_URL", "x"), ("MESHER_WRITER_BUFFER", "lots")]),
            Err(Error::InvalidInput {
                field: "MESHER_WRITER_BUFFER",
                ..
            })
        ));
        assert!(matches!(
            from(&[("DATABASE_URL", "x"), ("MESHER_BCRYPT_COST", "99")]),
            Err(Error::InvalidInput {
                field: "MESHER_BCRYPT_COST",
                ..
            })
        ));
        assert!(matches!(
            from(&[
                ("DATABASE_URL", "x"),
                ("MESHER_DB_WAIT_SECS", "18446744073709551615")
            ]),
            Err(Error::InvalidInput {
                field: "MESHER_DB_WAIT_SECS",
                ..
            })
        ));
        assert!(matches!(
            from(&[
                ("DATABASE_URL", "x"),
                ("MESHER_WRITER_RETRY_MS", "100,soon")
            ]),
            Err(Error::InvalidInput {
                field: "MESHER_WRITER_RETRY_MS",
                ..
            })
        ));
        assert!(matches!(
            from(&[("DATABASE_URL", "x"), ("MESHER_WRITER_BATCH", "600")]),
            Err(Error::InvalidInput {
                field: "MESHER_WRITER_BATCH",
                ..
            })
        ));
    }
}
