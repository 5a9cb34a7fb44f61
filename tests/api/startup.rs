//! `mesher::start` refuses a configuration that cannot work, whoever built
//! it, before it touches the database.

use mesher::{Config, Error};
use std::time::Duration;

/// Makes one setting of a configuration unworkable.
type Spoil = fn(&mut Config);

#[actix::test]
async fn start_refuses_settings_that_cannot_work_naming_the_variable() {
    // Nothing listens on port 9 and start-up would not wait for it: were
    // the configuration not checked first, this would be
    // DatabaseUnavailable instead.
    let base = || {
        let mut c = Config::new("postgres://postgres@127.0.0.1:9/postgres");
        c.database_wait = Duration::ZERO;
        c
    };
    let cases: [(&str, Spoil); 4] = [
        ("MESHER_WRITER_FLUSH_MS", |c| {
            c.writer.flush_interval = Duration::ZERO
        }),
        ("MESHER_WRITER_BATCH", |c| {
            c.writer.batch_size = c.writer.buffer_capacity + 1
        }),
        ("MESHER_PARTITION_CHECK_SECS", |c| {
            c.partitions.check_interval = Duration::ZERO
        }),
        ("MESHER_POOL_SIZE", |c| c.pool_size = 0),
    ];
    for (variable, spoil) in cases {
        let mut config = base();
        spoil(&mut config);
        match mesher::start(&config).await {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, variable),
            Err(other) => panic!("{variable}: expected InvalidInput, got {other}"),
            Ok(_) => panic!("{variable}: started"),
        }
    }
    // The same configuration unspoilt gets as far as the database.
    match mesher::start(&base()).await {
        // With why, kept as its source.
        Err(Error::DatabaseUnavailable {
            source: Some(_), ..
        }) => {}
        Err(other) => panic!("expected DatabaseUnavailable, got {other}"),
        Ok(_) => panic!("started without a database"),
    }
}
