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
    assert_eq!(c.partitions.retention_days, 90);
    assert_eq!(c.spool.dir, Some(PathBuf::from("mesher-spool")));
    assert_eq!(c.spool.max_bytes, 1 << 30);
    assert_eq!(c.ack.mode, Ack::Durable, "200 means on disk by default");
    assert_eq!(c.ack.max_bytes, 256 << 20);
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
    let off = from(&[
        ("DATABASE_URL", "postgres://x"),
        ("MESHER_SPOOL_DIR", ""),
        ("MESHER_ACK", "memory"),
    ])
    .unwrap();
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
fn retention_is_read_in_days_and_zero_keeps_everything() {
    for (given, days) in [("30", 30), ("0", 0), (" 365 ", 365)] {
        let c = from(&[
            ("DATABASE_URL", "postgres://x"),
            ("MESHER_RETENTION_DAYS", given),
        ])
        .unwrap();
        assert_eq!(c.partitions.retention_days, days, "{given:?}");
    }
    for bad in ["-1", "ninety", "36501"] {
        let refused = from(&[
            ("DATABASE_URL", "postgres://x"),
            ("MESHER_RETENTION_DAYS", bad),
        ]);
        assert!(
            matches!(
                refused,
                Err(Error::InvalidInput {
                    field: "MESHER_RETENTION_DAYS",
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
    let cases: [(&str, Spoil); 23] = [
        ("DATABASE_URL", |c| c.database_url = "not a url".into()),
        ("MESHER_POOL_SIZE", |c| c.pool_size = 0),
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
            c.writer.concurrent_writes = 65
        }),
        ("MESHER_WRITER_IDLE_SECS", |c| {
            c.writer.idle_timeout = Duration::ZERO
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
        ("MESHER_RETENTION_DAYS", |c| {
            c.partitions.retention_days = 36_501
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
        "MESHER_SESSION_TTL_SECS",
        "MESHER_WRITER_BUFFER",
        "MESHER_WRITER_BATCH",
        "MESHER_WRITER_CONCURRENT_WRITES",
        "MESHER_WRITER_FLUSH_MS",
        "MESHER_WRITER_IDLE_SECS",
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

#[test]
fn switches_read_one_set_of_words_for_every_variable() {
    let cases = [
        ("on", Some(true)),
        ("off", Some(false)),
        ("true", Some(true)),
        ("false", Some(false)),
        ("1", Some(true)),
        ("0", Some(false)),
        ("yes", Some(true)),
        ("no", Some(false)),
        ("ON", Some(true)),
        ("False", Some(false)),
        (" yes ", Some(true)),
        ("", None),
        ("2", None),
        ("enabled", None),
        ("y", None),
        ("o n", None),
    ];
    for key in [
        "MESHER_STORAGE_SYNCHRONOUS_COMMIT",
        "MESHER_ALLOW_REGISTRATION",
    ] {
        for (value, expected) in cases {
            let read = from(&[("DATABASE_URL", "postgres://x"), (key, value)]);
            match (expected, read) {
                (Some(on), Ok(c)) => {
                    let got = match key {
                        "MESHER_STORAGE_SYNCHRONOUS_COMMIT" => c.storage_synchronous_commit,
                        _ => c.http.allow_registration,
                    };
                    assert_eq!(got, on, "{key}={value:?}");
                }
                (None, Err(Error::InvalidInput { field, .. })) => {
                    assert_eq!(field, key, "{key}={value:?}")
                }
                (expected, read) => panic!("{key}={value:?}: expected {expected:?}, got {read:?}"),
            }
        }
    }
}

#[test]
fn acknowledgement_is_durable_or_from_memory_and_its_log_bounded() {
    /// The variables, and what they make: a mode and bound, or the
    /// variable an error names.
    type Case<'a> = (
        &'a [(&'a str, &'a str)],
        Option<(Ack, u64)>,
        Option<&'a str>,
    );
    let cases: &[Case] = &[
        (
            &[("MESHER_ACK", "memory")],
            Some((Ack::Memory, 256 << 20)),
            None,
        ),
        (
            &[("MESHER_ACK", " Durable ")],
            Some((Ack::Durable, 256 << 20)),
            None,
        ),
        (
            &[("MESHER_ACK_LOG_MAX_MB", "3")],
            Some((Ack::Durable, 3 << 20)),
            None,
        ),
        (&[("MESHER_ACK", "fsync")], None, Some("MESHER_ACK")),
        (&[("MESHER_ACK", "")], None, Some("MESHER_ACK")),
        (
            &[("MESHER_ACK_LOG_MAX_MB", "0")],
            None,
            Some("MESHER_ACK_LOG_MAX_MB"),
        ),
        (
            &[("MESHER_ACK_LOG_MAX_MB", "18446744073709551615")],
            None,
            Some("MESHER_ACK_LOG_MAX_MB"),
        ),
        // Durable acknowledgement keeps its log in the spool's directory.
        (&[("MESHER_SPOOL_DIR", "")], None, Some("MESHER_SPOOL_DIR")),
        (
            &[("MESHER_SPOOL_DIR", ""), ("MESHER_ACK", "durable")],
            None,
            Some("MESHER_SPOOL_DIR"),
        ),
    ];
    for (vars, expected, refused) in cases {
        let mut all = vec![("DATABASE_URL", "postgres://x")];
        all.extend_from_slice(vars);
        match (from(&all), expected, refused) {
            (Ok(c), Some((mode, max)), None) => {
                assert_eq!((c.ack.mode, c.ack.max_bytes), (*mode, *max), "{vars:?}")
            }
            (Err(Error::InvalidInput { field, .. }), None, Some(named)) => {
                assert_eq!(field, *named, "{vars:?}")
            }
            (other, _, _) => panic!("{vars:?}: {other:?}"),
        }
    }
}
