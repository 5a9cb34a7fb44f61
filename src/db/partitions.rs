//! Daily partitions of `events`, named `events_YYYYMMDD`, each covering
//! `[day 00:00 UTC, next day 00:00 UTC)`.

use super::Pool;
use crate::error::Result;
use chrono::{Days, NaiveDate};
use std::time::Duration;
use tokio_postgres::Client;

/// The partition holding `day`'s events.
pub fn partition_name(day: NaiveDate) -> String {
    format!("events_{}", day.format("%Y%m%d"))
}

/// Ensures partitions for `first` and the `days_ahead` days after it,
/// giving up on a lock after `lock_timeout` (the caller's
/// [`crate::config::PartitionConfig::lock_timeout`]). Returns the names of
/// the partitions this call created (empty when all existed).
pub async fn ensure_range(
    pool: &Pool,
    first: NaiveDate,
    days_ahead: u32,
    lock_timeout: Duration,
) -> Result<Vec<String>> {
    let days = (0..=u64::from(days_ahead)).filter_map(|d| first.checked_add_days(Days::new(d)));
    ensure_days(&mut *pool.get().await?, days, lock_timeout).await
}

/// Creates the missing partitions among `days`, in one transaction that
/// holds the schema's advisory lock, so that several processes doing this
/// at once take turns (two creating one table at once can otherwise fail
/// on a catalog unique index).
pub(crate) async fn ensure_days(
    client: &mut Client,
    days: impl IntoIterator<Item = NaiveDate>,
    lock_timeout: Duration,
) -> Result<Vec<String>> {
    // A Transaction rolls back on drop, so a cancelled call cannot hand a
    // connection with an open transaction back to the pool.
    let tx = client.transaction().await?;
    // Rather fail and be retried (the manager within a minute, a writer
    // with its backoff) than wait without bound for the advisory lock or
    // behind whoever holds a conflicting lock on `events`. Local to the
    // transaction, like SET LOCAL; at least 1 ms, as 0 would mean forever.
    let ms = lock_timeout.as_millis().max(1);
    tx.execute(
        "SELECT set_config('lock_timeout', $1, true)",
        &[&format!("{ms}ms")],
    )
    .await?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('mesher-schema'))",
        &[],
    )
    .await?;
    let mut created = Vec::new();
    for day in days {
        let name = partition_name(day);
        let present: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .await?
            .get(0);
        let Some(next) = day.checked_add_days(Days::new(1)) else {
            continue;
        };
        if present {
            continue;
        }
        // Identifiers and bounds cannot be bound parameters; both come from
        // a NaiveDate's formatting, never from input text. Creating the
        // table apart and then attaching it locks `events` only in SHARE
        // UPDATE EXCLUSIVE mode, which inserts and queries do not wait on;
        // CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE and
        // queue every writer behind any long query on `events`.
        tx.batch_execute(&format!(
            "CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
             ALTER TABLE events ATTACH PARTITION {name}
                 FOR VALUES FROM ('{day} 00:00:00+00') TO ('{next} 00:00:00+00')"
        ))
        .await?;
        created.push(name);
    }
    tx.commit().await?;
    if !created.is_empty() {
        log::info!("created event partitions {}", created.join(", "));
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_zero_padded_dates() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        assert_eq!(partition_name(d), "events_20260307");
    }
}
