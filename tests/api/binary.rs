//! The `mesher` binary, run as an operator would.

use crate::common::TestDb;
use chrono::Utc;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Generous bound on start-up (cold PostgreSQL caches, a loaded machine).
const STARTUP_BOUND: Duration = Duration::from_secs(60);

/// The binary with a test's settings. A test that starts a server gives it
/// a spool directory of its own (`MESHER_SPOOL_DIR`, say
/// [`TestDb::spool_dir`]): the default, under the working directory, is
/// one for every test, and a spool refuses a second process.
pub(crate) fn mesher(database_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mesher"));
    cmd.env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .env("MESHER_BCRYPT_COST", "4")
        // Each test's server on a port of its own.
        .env("MESHER_HTTP_ADDR", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Forwards the child's log lines to a channel, so the test can wait for
/// one with a bound instead of blocking forever on a silent child.
pub(crate) fn log_lines(child: &mut Child) -> mpsc::Receiver<String> {
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

pub(crate) fn wait_for_line(lines: &mpsc::Receiver<String>, needle: &str) {
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
    let mut child = mesher(&t.url)
        .env("MESHER_SPOOL_DIR", t.spool_dir())
        .spawn()
        .expect("start mesher");
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

/// A port nothing listens on right now, for a server the test starts.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a set-up subcommand with `--json` and returns what it printed.
fn admin(database_url: &str, http_addr: &str, args: &[&str], stdin: &str) -> serde_json::Value {
    let mut child = mesher(database_url)
        .env("MESHER_HTTP_ADDR", http_addr)
        .args(args)
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run mesher");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "mesher {args:?} failed");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "mesher {args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn a_fresh_install_is_set_up_from_the_command_line_and_stores_what_an_sdk_sends_until_sigterm() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(TestDb::empty());
    let addr = format!("127.0.0.1:{}", free_port());

    let org = admin(
        &t.url,
        &addr,
        &["org", "create", "--slug", "acme", "--name", "Acme"],
        "",
    );
    assert_eq!(org["slug"], "acme");
    assert_eq!(org["name"], "Acme");
    let project = admin(
        &t.url,
        &addr,
        &[
            "project",
            "create",
            "--org",
            "acme",
            "--name",
            "Web",
            "--platform",
            "python",
        ],
        "",
    );
    let public_id = project["public_id"].as_i64().expect("a numeric public id");
    let key = project["key"].as_str().unwrap();
    assert_eq!(
        project["dsn"].as_str().unwrap(),
        format!("http://{key}@{addr}/{public_id}")
    );
    let second = admin(
        &t.url,
        &addr,
        &["key", "create", "--project", &public_id.to_string()],
        "",
    );
    assert_ne!(second["key"], project["key"]);
    let keys = admin(
        &t.url,
        &addr,
        &["key", "list", "--project", &public_id.to_string()],
        "",
    );
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    assert!(
        !keys.to_string().contains(key),
        "a listing never shows a key"
    );
    let user = admin(
        &t.url,
        &addr,
        &[
            "user",
            "create",
            "--email",
            "Ann@Example.org",
            "--org",
            "acme",
            "--role",
            "admin",
        ],
        "correct horse battery\n",
    );
    assert_eq!(user["email"], "ann@example.org");
    assert_eq!(
        rt.block_on(t.count("SELECT count(*) FROM org_memberships WHERE role = 'admin'")),
        1
    );

    let mut child = mesher(&t.url)
        .env("MESHER_HTTP_ADDR", &addr)
        .env("MESHER_SPOOL_DIR", t.spool_dir())
        .spawn()
        .expect("start mesher");
    let lines = log_lines(&mut child);
    wait_for_line(&lines, &format!("listening on http://{addr}"));

    // Sent with the default 5 s flush interval, so they are still buffered
    // when SIGTERM arrives.
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(project["dsn"].as_str().unwrap().parse().unwrap());
    let client = std::sync::Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
    let hub = sentry::Hub::new(Some(client.clone()), Default::default());
    let ids: Vec<_> = (0..10)
        .map(|i| hub.capture_message(&format!("event {i}"), sentry::Level::Error))
        .collect();
    assert!(client.flush(Some(Duration::from_secs(10))));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "mesher exited with {exit}");
    for id in ids {
        let stored =
            rt.block_on(t.count(&format!("SELECT count(*) FROM events WHERE id = '{id}'")));
        assert_eq!(
            stored, 1,
            "event {id} was accepted before SIGTERM and is stored"
        );
    }
}
