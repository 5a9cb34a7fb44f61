//! The `mesher` binary, run as an operator would.

use crate::common::TestDb;
use chrono::Utc;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Generous bound on start-up (cold PostgreSQL caches, a loaded machine).
const STARTUP_BOUND: Duration = Duration::from_secs(60);

fn mesher(database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesher"));
    cmd.env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .env("MESHER_BCRYPT_COST", "4")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Forwards the child's log lines to a channel, so the test can wait for
/// one with a bound instead of blocking forever on a silent child.
fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("mesher: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) {
    loop {
        match lines.recv_timeout(STARTUP_BOUND) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => continue,
            Err(e) => panic!("no log line containing {needle:?}: {e}"),
        }
    }
}

#[test]
fn starts_on_an_empty_database_and_exits_cleanly_on_sigterm() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(TestDb::empty());
    let first_day = Utc::now().date_naive();
    let mut child = mesher(&t.url).spawn().expect("start mesher");
    let lines = log_lines(&mut child);
    wait_for_line(&lines, "ready");

    let tables = rt.block_on(t.count(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN
         ('organizations','users','org_memberships','sessions','projects','api_keys',
          'issues','events','alert_rules','alerts')",
    ));
    assert_eq!(tables, 10);
    let partitions = rt
        .block_on(t.count("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"));
    // Today and the 7 following days; one more for each midnight UTC
    // that passed while it started, as its checks may straddle it.
    let midnights = (Utc::now().date_naive() - first_day).num_days();
    assert!(
        (8..=8 + midnights).contains(&partitions),
        "{partitions} partitions, {midnights} midnight(s) passed"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for_line(&lines, "drained");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "mesher exited with {exit}");
}

#[test]
fn gives_up_with_a_clear_message_when_postgresql_never_answers() {
    // Port 9 (discard) on loopback: nothing listens there.
    let mut child = mesher("postgres://postgres@127.0.0.1:9/postgres")
        .env("MESHER_DB_WAIT_SECS", "1")
        .spawn()
        .expect("start mesher");
    let lines = log_lines(&mut child);
    wait_for_line(&lines, "waiting for PostgreSQL");
    wait_for_line(&lines, "PostgreSQL did not answer within 1s");
    let exit = child.wait().unwrap();
    assert!(!exit.success());
}

#[test]
fn a_signal_while_waiting_for_postgresql_stops_it_cleanly() {
    let mut child = mesher("postgres://postgres@127.0.0.1:9/postgres")
        .env("MESHER_DB_WAIT_SECS", "600")
        .spawn()
        .expect("start mesher");
    let lines = log_lines(&mut child);
    wait_for_line(&lines, "waiting for PostgreSQL");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "mesher exited with {exit}");
}
