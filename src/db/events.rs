//! `events`: batch insert by binary COPY.

use super::{Pool, partitions};
use crate::domain::{Event, RawJson};
use crate::error::Result;
use futures_util::pin_mut;
use std::collections::BTreeSet;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Error as PgError};

const COPY_SQL: &str = "COPY events (id, project_id, issue_id, level, message, fingerprint,
    exception, stacktrace, breadcrumbs, tags, extra, user_context, sdk_name, sdk_version, received_at)
    FROM STDIN (FORMAT binary)";

const COLUMN_TYPES: [Type; 15] = [
    Type::UUID,
    Type::UUID,
    Type::UUID,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::JSONB,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
];

/// Stores a batch in one statement: all rows commit, or none do, so a
/// failed batch can be retried whole. Should a row's day have no partition
/// yet (the clock passed the pre-created range, or the partition manager
/// has not run), the partitions are created and the batch is sent again
/// once, so no event is lost to a missing partition.
pub async fn insert_batch(pool: &Pool, events: &[Event]) -> Result<u64> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut client = pool.get().await?;
    match copy(&client, events).await {
        Err(e) if is_missing_partition(&e) => {
            let days: BTreeSet<_> = events.iter().map(|e| e.received_at.date_naive()).collect();
            log::info!(
                "creating missing event partitions for {} day(s) on demand",
                days.len()
            );
            partitions::ensure_days(&mut client, days).await?;
            Ok(copy(&client, events).await?)
        }
        other => Ok(other?),
    }
}

async fn copy(client: &Client, events: &[Event]) -> Result<u64, PgError> {
    let sink = client.copy_in(COPY_SQL).await?;
    let writer = BinaryCopyInWriter::new(sink, &COLUMN_TYPES);
    pin_mut!(writer);
    for e in events {
        let level = e.level.as_str();
        let row: [&(dyn ToSql + Sync); 15] = [
            &e.id,
            &e.project_id,
            &e.issue_id,
            &level,
            &e.message,
            &e.fingerprint,
            &e.exception,
            &e.stacktrace,
            &e.breadcrumbs,
            &e.tags,
            &e.extra,
            &e.user_context,
            &e.sdk_name,
            &e.sdk_version,
            &e.received_at,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await
}

fn is_missing_partition(e: &PgError) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::CHECK_VIOLATION
            && db.message().starts_with("no partition of relation")
    })
}

/// Already-encoded JSON goes out as it is: JSONB's binary format is a
/// version byte followed by the text.
impl ToSql for RawJson {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *ty == Type::JSONB {
            out.extend_from_slice(&[1]);
        }
        out.extend_from_slice(self.get().as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::JSON | Type::JSONB)
    }

    to_sql_checked!();
}
