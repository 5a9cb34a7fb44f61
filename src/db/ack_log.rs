//! What replaying a crashed run's acknowledgement log asks PostgreSQL (see
//! [`crate::services::AckLog`]).

use super::EventPool;
use crate::error::Result;
use std::collections::HashSet;
use uuid::Uuid;

/// Which of `ids` the project has stored already. A crashed run's log
/// holds events that run had stored as well as those it had not; the
/// first are duplicates of the rows it added, which the restarted process
/// did not add and so does not count as stored (the batch statement would:
/// to it, the same id received at the same moment is its own earlier
/// attempt, whose answer was lost).
pub async fn stored_ids(pool: &EventPool, project_id: Uuid, ids: &[Uuid]) -> Result<HashSet<Uuid>> {
    let conn = pool.get().await?;
    let rows = conn
        .query(
            "SELECT id FROM event_ids WHERE project_id = $1 AND id = ANY($2)",
            &[&project_id, &ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
