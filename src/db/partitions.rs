//! Daily partitions of `events`, named `events_YYYYMMDD`, each covering
//! `[day 00:00 UTC, next day 00:00 UTC)`, and of `event_ids`, named
//! `event_ids_YYYYMMDD`, holding the ids of the same day's events: made
//! together, dropped together.

use super::Pool;
use crate::error::Result;
use chrono::{Days, NaiveDate};
use std::time::Duration;
use tokio_postgres::Client;

/// The partition holding `day`'s events.
pub fn partition_name(day: NaiveDate) -> String {
    format!("events_{}", day.format("%Y%m%d"))
}

/// The partition holding the ids of `day`'s events.
pub fn ids_partition_name(day: NaiveDate) -> String {
    format!("event_ids_{}", day.format("%Y%m%d"))
}

/// The day of a partition of either table, from its name; `None` for any
/// other name.
pub fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name
        .strip_prefix("events_")
        .or_else(|| name.strip_prefix("event_ids_"))?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// Ensures partitions (of both tables) for `first` and the `days_ahead`
/// days after it, giving up on a lock after `lock_timeout` (the caller's
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
        let Some(next) = day.checked_add_days(Days::new(1)) else {
            continue;
        };
        // Identifiers and bounds cannot be bound parameters; both come from
        // a NaiveDate's formatting, never from input text. Creating the
        // table apart and then attaching it locks the parent only in SHARE
        // UPDATE EXCLUSIVE mode, which inserts and queries do not wait on;
        // CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE and
        // queue every writer behind any long query on it.
        let tables = [
            (
                partition_name(day),
                "events",
                format!("'{day} 00:00:00+00'"),
                format!("'{next} 00:00:00+00'"),
            ),
            (
                ids_partition_name(day),
                "event_ids",
                format!("'{day}'"),
                format!("'{next}'"),
            ),
        ];
        for (name, parent, from, to) in tables {
            let present: bool = tx
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await?
                .get(0);
            if present {
                continue;
            }
            // STORAGE: a body is zstd already; the parent's EXTERNAL keeps
            // PostgreSQL from compressing it again (ATTACH does not copy it).
            tx.batch_execute(&format!(
                "CREATE TABLE {name} (LIKE {parent}
                     INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE);
                 ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to})"
            ))
            .await?;
            created.push(name);
        }
    }
    tx.commit().await?;
    if !created.is_empty() {
        log::info!("created event partitions {}", created.join(", "));
    }
    Ok(created)
}

/// The advisory lock that makes dropping partitions take turns across
/// processes. Not the schema's: creating partitions (which ingestion may
/// wait for) must not queue behind a drop waiting for old snapshots.
const RETENTION_LOCK: &str = "SELECT pg_advisory_lock(hashtext('mesher-retention'))";

/// Drops the partitions of both tables for every day before `first_kept`
/// (detached first, then dropped), giving up on a lock after
/// `lock_timeout`; returns the names dropped, oldest first. Each is
/// detached `CONCURRENTLY`, so that neither writers nor readers of the
/// table ever wait for it (a plain DETACH, like a DROP of an attached
/// partition, takes ACCESS EXCLUSIVE on the whole table, queueing every
/// insert behind the longest query running). Left half done (a detach
/// interrupted, a table detached but not dropped), it is finished by the
/// next call. Callers in several processes take turns on an advisory lock,
/// each listing what is left once it holds it, so each partition is
/// dropped once. The turn is waited for without `lock_timeout` (the other
/// caller's detach of a large day may take longer, and is no error; its
/// own statements give up after `lock_timeout`). The lock is held by a
/// connection of its own, closed at the end, so that a call cancelled
/// halfway cannot leave it held by a pooled connection.
pub async fn drop_before(
    pool: &Pool,
    first_kept: NaiveDate,
    lock_timeout: Duration,
) -> Result<Vec<String>> {
    let client = pool.dedicated_connection().await?;
    client.batch_execute(RETENTION_LOCK).await?;
    let ms = lock_timeout.as_millis().max(1);
    client
        .batch_execute(&format!("SET lock_timeout = '{ms}ms'"))
        .await?;
    let rows = client
        .query(
            "SELECT c.relname::text, p.relname::text, coalesce(i.inhdetachpending, false)
             FROM pg_class c
             LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
             LEFT JOIN pg_class p ON p.oid = i.inhparent
             WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
               AND c.relname ~ '^(events|event_ids)_[0-9]{8}$'",
            &[],
        )
        .await?;
    let mut expired: Vec<(NaiveDate, String, Option<String>, bool)> = rows
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            let day = partition_day(&name).filter(|d| *d < first_kept)?;
            Some((day, name, r.get(1), r.get(2)))
        })
        .collect();
    expired.sort();
    let mut dropped = Vec::with_capacity(expired.len());
    for (_, name, parent, pending) in expired {
        // Each its own statement: DETACH CONCURRENTLY cannot run inside a
        // transaction block. Names come from the catalog and match the
        // pattern above.
        if let Some(parent) = parent {
            let how = if pending { "FINALIZE" } else { "CONCURRENTLY" };
            client
                .batch_execute(&format!(
                    "ALTER TABLE {parent} DETACH PARTITION {name} {how}"
                ))
                .await?;
        }
        client
            .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
            .await?;
        dropped.push(name);
    }
    if !dropped.is_empty() {
        log::info!(
            "dropped {} partition(s) of days before {first_kept}: {}",
            dropped.len(),
            dropped.join(", ")
        );
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_zero_padded_dates() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 7).unwrap();
        assert_eq!(partition_name(d), "events_20260307");
        assert_eq!(ids_partition_name(d), "event_ids_20260307");
    }

    #[test]
    fn only_partition_names_have_a_day() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29);
        for (name, day) in [
            ("events_20240229", d),
            ("event_ids_20240229", d),
            ("events_20240230", None),
            ("events_2024022", None),
            ("events_202402290", None),
            ("events_2024+229", None),
            ("event_ids", None),
            ("events", None),
            ("issues_20240229", None),
        ] {
            assert_eq!(partition_day(name), day, "{name}");
        }
    }
}
