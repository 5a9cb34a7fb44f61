use super::*;
use crate::domain::EventPayload;

fn event(project_id: Uuid, message: &str) -> Event {
    let payload: EventPayload =
        serde_json::from_value(serde_json::json!({ "message": message })).unwrap();
    Event::from_payload(project_id, payload).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mesher-spool-unit-{name}-{}", Uuid::now_v7()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn database(system_identifier: i64, oid: u32, name: &str) -> DatabaseIdentity {
    DatabaseIdentity {
        system_identifier,
        oid,
        name: name.to_owned(),
    }
}

fn ours() -> DatabaseIdentity {
    database(7_000_000_000_000_000_001, 16_384, "mesher")
}

fn put(file: &SpoolFile, project: Uuid, batch: &[Event]) {
    let body = Event::encode_batch(batch).unwrap();
    file.put(project, batch.len(), &body).unwrap();
}

/// The reason of a refusal to open, which must be `Setup`.
fn refusal(opened: Result<SpoolFile>) -> String {
    match opened {
        Err(Error::Setup { reason }) => reason,
        Err(other) => panic!("expected a Setup error, got {other}"),
        Ok(_) => panic!("opened"),
    }
}

#[test]
fn batches_come_back_oldest_first_and_survive_reopening() {
    let dir = temp_dir("order");
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let first = vec![event(a, "one"), event(a, "two")];
    let second = vec![event(b, "three")];
    {
        let file = SpoolFile::open(&dir, &ours(), 0).unwrap();
        put(&file, a, &first);
        put(&file, b, &second);
    }
    let file = SpoolFile::open(&dir, &ours(), 0).unwrap();
    let usage = file.usage().unwrap();
    assert_eq!((usage.batches, usage.events), (2, 3));
    assert!(usage.bytes > 0);

    let oldest = file.oldest_after(0).unwrap().unwrap();
    assert_eq!(oldest.count, 2);
    assert_eq!(oldest.contents.unwrap(), (a, first));
    // Past a row not yet removed, the next one.
    let next = file.oldest_after(oldest.id).unwrap().unwrap();
    assert_eq!(next.contents.unwrap(), (b, second));
    assert!(file.oldest_after(next.id).unwrap().is_none());
    file.remove(oldest.id).unwrap();
    file.remove(next.id).unwrap();
    assert!(file.oldest_after(0).unwrap().is_none());
    assert_eq!(file.usage().unwrap(), Usage::default());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rows_that_do_not_decode_are_reported_not_replayed() {
    let project = Uuid::now_v7();
    let good = Event::encode_batch(&[event(project, "fine")]).unwrap();
    let other_project = Event::encode_batch(&[event(Uuid::now_v7(), "elsewhere")]).unwrap();
    // (what is wrong, project_id, events, body, the count read back)
    type Row = (&'static str, rusqlite::types::Value, rusqlite::types::Value);
    use rusqlite::types::Value::{Blob, Integer, Text};
    let cases: [(Row, rusqlite::types::Value, u64); 6] = [
        (
            (
                "body not JSON",
                Blob(project.as_bytes().to_vec()),
                Integer(1),
            ),
            Blob(b"{{{".to_vec()),
            1,
        ),
        (
            (
                "body as text",
                Blob(project.as_bytes().to_vec()),
                Integer(1),
            ),
            Text("a batch written as text".into()),
            1,
        ),
        (
            ("project id too short", Blob(vec![1, 2, 3]), Integer(1)),
            Blob(good.clone()),
            1,
        ),
        (
            ("project id a number", Integer(7), Integer(1)),
            Blob(good.clone()),
            1,
        ),
        (
            (
                "events of another project",
                Blob(project.as_bytes().to_vec()),
                Integer(1),
            ),
            Blob(other_project),
            1,
        ),
        (
            (
                "count not a number",
                Blob(project.as_bytes().to_vec()),
                Text("one".into()),
            ),
            Blob(b"[".to_vec()),
            0,
        ),
    ];
    for ((what, project_id, events), body, count) in cases {
        let dir = temp_dir("corrupt");
        let file = SpoolFile::open(&dir, &ours(), 0).unwrap();
        file.conn
            .execute(
                "INSERT INTO batches (project_id, events, bytes, body) VALUES (?1, ?2, 3, ?3)",
                params![project_id, events, body],
            )
            .unwrap();
        let batch = file.oldest_after(0).unwrap().unwrap();
        assert_eq!(batch.count, count, "{what}");
        assert!(batch.contents.is_err(), "{what}: {:?}", batch.contents);
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn a_batch_set_aside_keeps_its_bytes_and_leaves_the_batches() {
    let dir = temp_dir("set-aside");
    let mut file = SpoolFile::open(&dir, &ours(), 0).unwrap();
    let project = Uuid::now_v7();
    put(&file, project, &[event(project, "before")]);
    let corrupt: &[u8] = b"\x00not json\xff";
    file.conn
        .execute(
            "INSERT INTO batches (project_id, events, bytes, body) VALUES (?1, 4, 11, ?2)",
            params![project.as_bytes(), corrupt],
        )
        .unwrap();
    put(&file, project, &[event(project, "after")]);
    let first = file.oldest_after(0).unwrap().unwrap();
    let bad = file.oldest_after(first.id).unwrap().unwrap();
    assert!(bad.contents.is_err());

    file.set_aside(bad.id, "it does not decode").unwrap();
    let (id, events, body, reason): (i64, i64, Vec<u8>, String) = file
        .conn
        .query_row(
            "SELECT id, events, body, reason FROM quarantine",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (id, events, body.as_slice(), reason.as_str()),
        (bad.id, 4, corrupt, "it does not decode")
    );
    assert_eq!(file.quarantined().unwrap(), 1);
    let usage = file.usage().unwrap();
    assert_eq!(
        (usage.batches, usage.events),
        (2, 2),
        "the good batches stay"
    );
    let next = file.oldest_after(first.id).unwrap().unwrap();
    assert_eq!(
        next.contents.unwrap().1[0].parts().unwrap().message(),
        "after"
    );
    drop(file);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_process_at_a_time_and_the_lock_goes_with_the_file() {
    let dir = temp_dir("lock");
    let first = SpoolFile::open(&dir, &ours(), 0).unwrap();
    let reason = refusal(SpoolFile::open(&dir, &ours(), 0));
    assert!(reason.contains(&dir.display().to_string()), "{reason}");
    assert!(
        reason.contains(&format!("(process {})", std::process::id())),
        "{reason}"
    );
    assert!(reason.contains("MESHER_SPOOL_DIR"), "{reason}");
    drop(first);
    let again = SpoolFile::open(&dir, &ours(), 0).unwrap();
    drop(again);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_lock_file_left_by_a_crashed_process_does_not_keep_the_spool_closed() {
    let dir = temp_dir("stale");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(LOCK_FILE_NAME), "4194304\n").unwrap();
    let file = SpoolFile::open(&dir, &ours(), 0).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join(LOCK_FILE_NAME)).unwrap(),
        format!("{}\n", std::process::id())
    );
    drop(file);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batches_of_one_database_are_never_opened_for_another() {
    let dir = temp_dir("owner");
    let project = Uuid::now_v7();
    let same_cluster = database(ours().system_identifier, 16_999, "other");
    let other_cluster = database(42, ours().oid, "mesher");
    let renamed = database(ours().system_identifier, ours().oid, "mesher_renamed");
    {
        let file = SpoolFile::open(&dir, &ours(), 0).unwrap();
        put(&file, project, &[event(project, "kept")]);
    }
    for other in [&same_cluster, &other_cluster] {
        let reason = refusal(SpoolFile::open(&dir, other, 0));
        for named in [ours().to_string(), other.to_string()] {
            assert!(reason.contains(&named), "{reason} should name {named}");
        }
        assert!(reason.contains("holds 1 events"), "{reason}");
    }
    // Nothing was lost to the refusals; a rename is the same database.
    let file = SpoolFile::open(&dir, &renamed, 0).unwrap();
    let batch = file.oldest_after(0).unwrap().unwrap();
    assert!(batch.contents.is_ok());

    // Emptied, the spool is taken over by whichever database opens it,
    // and then belongs to that one.
    file.remove(batch.id).unwrap();
    drop(file);
    let file = SpoolFile::open(&dir, &other_cluster, 0).unwrap();
    put(&file, project, &[event(project, "theirs")]);
    drop(file);
    let reason = refusal(SpoolFile::open(&dir, &ours(), 0));
    assert!(reason.contains(&other_cluster.to_string()), "{reason}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_acknowledgement_log_left_for_one_database_keeps_the_spool_from_another() {
    let dir = temp_dir("owner-log");
    let other = database(42, ours().oid, "mesher");
    // Empty of batches, but with two segments of a crashed run's log.
    drop(SpoolFile::open(&dir, &ours(), 0).unwrap());
    let reason = refusal(SpoolFile::open(&dir, &other, 2));
    for named in [ours().to_string(), other.to_string()] {
        assert!(reason.contains(&named), "{reason} should name {named}");
    }
    assert!(
        reason.contains("2 segment(s) of acknowledgement log"),
        "{reason}"
    );
    // Its own database opens it; once the log is settled, anyone may.
    drop(SpoolFile::open(&dir, &ours(), 2).unwrap());
    drop(SpoolFile::open(&dir, &other, 0).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn batches_spooled_before_owners_were_recorded_are_kept() {
    let dir = temp_dir("legacy");
    let project = Uuid::now_v7();
    {
        let file = SpoolFile::open(&dir, &ours(), 0).unwrap();
        put(&file, project, &[event(project, "old")]);
        // As a Mesher that did not record its database left it.
        file.conn.execute("DELETE FROM owner", []).unwrap();
    }
    let file = SpoolFile::open(&dir, &database(42, 1, "any"), 0).unwrap();
    assert_eq!(file.usage().unwrap().events, 1);
    drop(file);
    std::fs::remove_dir_all(&dir).unwrap();
}
