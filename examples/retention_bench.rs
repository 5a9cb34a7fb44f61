//! What retention costs, measured against a `mesher` process started for
//! the run (issue 23). Two parts, chosen with `BENCH_RETENTION_PARTS`
//! ("idle,drop"):
//!
//! - **idle**: `BENCH_IDLE_PROJECTS` (10,000) projects each send one event,
//!   then nothing. Mesher is run twice, with idle writers retiring after
//!   5 s and with them never retiring (`MESHER_WRITER_IDLE_SECS` huge);
//!   once its writers are all stopped (or all running), its CPU time
//!   (utime + stime) and context switches (every thread's, voluntary and
//!   not: its wake-ups) are read from `/proc` over `BENCH_IDLE_SECS` (60).
//! - **drop**: one day's partition (ten days ago) is filled with
//!   `BENCH_DROP_EVENTS` (1,000,000) events, through the library's batch
//!   insert as a writer stores them; then, while an open-loop load of
//!   `BENCH_DROP_RATE` (1,000) events a second goes to Mesher over HTTP
//!   (store endpoint, 100 projects), the day is dropped as the partition
//!   manager drops it ([`mesher::db::partitions::drop_before`]). The same
//!   load runs first for `BENCH_DROP_BASE_SECS` (15) without a drop. It
//!   reports the drop's time, the heaviest lock modes held on `events`,
//!   `event_ids` and their partitions meanwhile (`pg_locks`, sampled every
//!   20 ms), the most sessions waiting on a lock at once, and the p99 and
//!   worst ingestion latency during the drop against the baseline, as a
//!   ratio. Latency is counted from when a request was due (wrk2's way).
//!
//! Run it with `scripts/bench-retention.sh` (a fresh database, a release
//! build); `MESHER_*` variables set there reach Mesher.

use awc::Client;
use chrono::{Days, NaiveTime, Utc};
use futures_util::StreamExt;
use mesher::db::{self, EventPool, Pool};
use mesher::domain::{ApiKey, Event, EventPayload, Name, Slug};
use mesher::{Error, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A project to send to: its DSN's number and its auth header.
#[derive(Clone)]
struct Target {
    id: Uuid,
    public_id: i64,
    auth: String,
}

fn knob<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| Error::invalid(name, "must be a number")),
        Err(_) => Ok(default),
    }
}

async fn make_projects(pool: &Pool, org: Uuid, from: usize, n: usize) -> Result<Vec<Target>> {
    let label = Name::parse("label", "bench")?;
    let made = futures_util::stream::iter(from..from + n)
        .map(|i| {
            let label = &label;
            async move {
                let name = Name::parse("name", &format!("p{i}"))?;
                let project = db::projects::insert(pool, org, &name, None).await?;
                let key = ApiKey::generate()?;
                db::api_keys::insert(pool, project.id, &key, label).await?;
                Ok(Target {
                    id: project.id,
                    public_id: project.public_id,
                    auth: format!(
                        "Sentry sentry_key={}, sentry_version=7, sentry_client=bench/1.0",
                        key.expose()
                    ),
                })
            }
        })
        .buffered(8)
        .collect::<Vec<Result<Target>>>()
        .await;
    made.into_iter().collect()
}

/// The `mesher` binary next to this example, running.
struct Mesher {
    child: Child,
    addr: String,
}

impl Mesher {
    fn start(database_url: &str, env: &[(&str, &str)]) -> Result<Mesher> {
        let exe = std::env::current_exe().map_err(|e| Error::internal_from("current exe", e))?;
        let bin = exe
            .parent()
            .and_then(|examples| examples.parent())
            .map(|profile| profile.join("mesher"))
            .filter(|bin| bin.exists())
            .ok_or_else(|| Error::internal("no mesher binary next to the example"))?;
        let spool = std::env::temp_dir().join(format!(
            "mesher-retention-bench-spool-{}-{}",
            std::process::id(),
            Utc::now().timestamp_micros()
        ));
        let mut command = Command::new(&bin);
        command
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("MESHER_HTTP_ADDR", "127.0.0.1:0")
            .env("MESHER_SPOOL_DIR", &spool)
            .env("RUST_LOG", "warn,mesher=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .map_err(|e| Error::internal_from("starting mesher", e))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("stderr"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Some(addr) = line.split("ready: listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
                if line.contains(" WARN ") || line.contains(" ERROR ") {
                    eprintln!("mesher: {line}");
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| Error::internal("mesher did not become ready"))?;
        Ok(Mesher { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn gauge(&self, client: &Client, name: &str) -> Result<f64> {
        let body = client
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .map_err(|e| Error::internal(format!("metrics: {e}")))?
            .body()
            .limit(64 << 20)
            .await
            .map_err(|e| Error::internal(format!("metrics: {e}")))?;
        let text = String::from_utf8_lossy(&body);
        let series = format!("mesher_{name} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<f64>().ok())
            .ok_or_else(|| Error::internal(format!("no {series}in /metrics")))
    }
}

impl Drop for Mesher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) and context switches of every thread.
fn cpu_and_switches(pid: u32) -> (f64, u64) {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let cpu = (tick(11) + tick(12)) / ticks;
    let mut switches = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                switches += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    (cpu, switches)
}

async fn send(client: &Client, addr: &str, target: &Target, message: &str) -> Result<u16> {
    let body = json!({
        "event_id": Uuid::now_v7().simple().to_string(),
        "message": message,
        "level": "error",
        "platform": "python",
    });
    let response = client
        .post(format!("http://{addr}/api/{}/store/", target.public_id))
        .insert_header(("X-Sentry-Auth", target.auth.as_str()))
        .send_json(&body)
        .await
        .map_err(|e| Error::internal(format!("request: {e}")))?;
    Ok(response.status().as_u16())
}

async fn wait_for(what: &str, mut done: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let start = Instant::now();
    while !done().await? {
        if start.elapsed() > Duration::from_secs(600) {
            return Err(Error::internal(format!("gave up waiting for {what}")));
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn idle(url: &str, pool: &Pool, org: Uuid) -> Result<()> {
    let projects: usize = knob("BENCH_IDLE_PROJECTS", 10_000)?;
    let secs: u64 = knob("BENCH_IDLE_SECS", 60)?;
    let targets = make_projects(pool, org, 0, projects).await?;
    let client = Client::default();
    for (label, idle_secs) in [
        ("idle writers retire after 5 s", "5"),
        (
            "idle writers never retire (idle_timeout a year)",
            "31536000",
        ),
    ] {
        let mesher = Mesher::start(url, &[("MESHER_WRITER_IDLE_SECS", idle_secs)])?;
        let sent = futures_util::stream::iter(&targets)
            .map(|t| send(&client, &mesher.addr, t, "idle"))
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        let ok = sent.iter().filter(|s| matches!(s, Ok(200))).count();
        if ok != targets.len() {
            return Err(Error::internal(format!(
                "{ok} of {} answered 200",
                targets.len()
            )));
        }
        let retiring = idle_secs == "5";
        wait_for("the writers to settle", async || {
            let running = mesher.gauge(&client, "writers_running").await?;
            Ok(if retiring {
                running == 0.0
            } else {
                running >= projects as f64
            })
        })
        .await?;
        // Settle a moment past the last retirement (or start).
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, sw0) = cpu_and_switches(mesher.pid());
        actix_rt::time::sleep(Duration::from_secs(secs)).await;
        let (cpu1, sw1) = cpu_and_switches(mesher.pid());
        println!(
            "idle, {projects} projects, {label}: CPU {:.2} s in {secs} s ({:.2} %), {:.1} context switches/s",
            cpu1 - cpu0,
            (cpu1 - cpu0) / secs as f64 * 100.0,
            (sw1 - sw0) as f64 / secs as f64
        );
        drop(mesher);
        sql(pool, "TRUNCATE events, event_ids").await?;
    }
    Ok(())
}

async fn sql(pool: &Pool, statement: &str) -> Result<()> {
    pool.get().await?.batch_execute(statement).await?;
    Ok(())
}

/// Fills `day` with `n` events of `projects`, 5,000 a batch, four
/// batches at once.
async fn fill_day(
    events: &EventPool,
    projects: &[Uuid],
    day: chrono::NaiveDate,
    n: usize,
) -> Result<()> {
    let start = day.and_time(NaiveTime::MIN).and_utc();
    let batch = 5_000;
    let made = futures_util::stream::iter((0..n).step_by(batch))
        .map(|first| async move {
            let events_: Vec<Event> = (first..(first + batch).min(n))
                .map(|i| {
                    let payload: EventPayload = serde_json::from_value(json!({
                        "message": format!("old failure {}", i % 50),
                        "level": "error",
                        "tags": {"shard": format!("s{}", i % 7)},
                        "user": {"id": i % 1000},
                    }))
                    .expect("a payload");
                    let at =
                        start + chrono::Duration::milliseconds((i as i64 * 86_000) % 86_400_000);
                    Event::from_payload_received_at(projects[i % projects.len()], payload, at)
                })
                .collect::<Result<_>>()?;
            db::events::insert_batch(events, &events_).await
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    for m in made {
        m?;
    }
    Ok(())
}

/// Requests sent at `rate` a second for `secs` seconds (or until `until`
/// says stop), each latency counted from when it was due, with the time
/// it was due.
async fn load(
    client: Client,
    addr: String,
    targets: Vec<Target>,
    rate: f64,
    stop: Arc<Mutex<bool>>,
) -> Result<Vec<(Instant, Duration, bool)>> {
    let lanes = 32;
    let period = Duration::from_secs_f64(lanes as f64 / rate);
    let start = Instant::now();
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut handles = Vec::new();
    for lane in 0..lanes {
        let (client, targets, out, stop, addr) = (
            client.clone(),
            targets.clone(),
            out.clone(),
            stop.clone(),
            addr.clone(),
        );
        handles.push(actix_rt::spawn(async move {
            let offset = period.mul_f64(lane as f64 / lanes as f64);
            for k in 0u32.. {
                if *stop.lock().expect("lock") {
                    break;
                }
                let due = start + offset + period * k;
                actix_rt::time::sleep_until(due.into()).await;
                let target = &targets[(k as usize * lanes + lane) % targets.len()];
                let status = send(&client, &addr, target, "live failure").await?;
                out.lock()
                    .expect("lock")
                    .push((due, due.elapsed(), status == 200));
            }
            Ok::<_, Error>(())
        }));
    }
    for h in handles {
        h.await
            .map_err(|e| Error::internal(format!("lane: {e}")))??;
    }
    let mut v = std::mem::take(&mut *out.lock().expect("lock"));
    v.sort();
    Ok(v)
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

async fn drop_day(url: &str, pool: &Pool, org: Uuid) -> Result<()> {
    let n: usize = knob("BENCH_DROP_EVENTS", 1_000_000)?;
    let rate: f64 = knob("BENCH_DROP_RATE", 1_000.0)?;
    let base_secs: u64 = knob("BENCH_DROP_BASE_SECS", 15)?;
    let today = Utc::now().date_naive();
    let day = today.checked_sub_days(Days::new(10)).expect("a day");
    db::partitions::ensure_range(pool, day, 0, Duration::from_secs(5)).await?;
    let c = mesher::Config::new(url);
    let events = db::event_pool(url, 4, true, Default::default(), c.partitions.lock_timeout)?;
    let targets = make_projects(pool, org, 100_000, 100).await?;
    let projects: Vec<Uuid> = targets.iter().map(|t| t.id).collect();
    let filled = Instant::now();
    fill_day(&events, &projects, day, n).await?;
    let stored: i64 = pool
        .get()
        .await?
        .query_one(
            &format!(
                "SELECT count(*) FROM {}",
                db::partitions::partition_name(day)
            ),
            &[],
        )
        .await?
        .get(0);
    println!(
        "drop: {stored} events on {day} in {:.1} s; partition {} MB, its ids {} MB",
        filled.elapsed().as_secs_f64(),
        size(pool, &db::partitions::partition_name(day)).await? / 1_000_000,
        size(pool, &db::partitions::ids_partition_name(day)).await? / 1_000_000,
    );
    sql(pool, "VACUUM ANALYZE").await?;

    // Retention 0: the manager leaves the day alone; this example drops it.
    let mesher = Mesher::start(url, &[("MESHER_RETENTION_DAYS", "0")])?;
    let client = Client::default();
    // Keys cached, writers started.
    for t in &targets {
        send(&client, &mesher.addr, t, "warm").await?;
    }

    let stop = Arc::new(Mutex::new(false));
    let timer = {
        let stop = stop.clone();
        actix_rt::spawn(async move {
            actix_rt::time::sleep(Duration::from_secs(base_secs)).await;
            *stop.lock().expect("lock") = true;
        })
    };
    let base = load(
        client.clone(),
        mesher.addr.clone(),
        targets.clone(),
        rate,
        stop,
    )
    .await?;
    timer.await.ok();
    let base_lat: Vec<Duration> = base.iter().map(|(_, l, _)| *l).collect();
    let base_refused = base.iter().filter(|(_, _, ok)| !ok).count();

    // The same load, with the drop two seconds in; pg_locks sampled
    // meanwhile from a connection of its own.
    let stop = Arc::new(Mutex::new(false));
    let during = actix_rt::spawn(load(
        client.clone(),
        mesher.addr.clone(),
        targets.clone(),
        rate,
        stop.clone(),
    ));
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let sampling = Arc::new(Mutex::new(true));
    let sampler = {
        let (pool, sampling) = (pool.clone(), sampling.clone());
        actix_rt::spawn(async move {
            let mut modes: BTreeMap<String, String> = BTreeMap::new();
            let mut most_waiting = 0i64;
            let conn = pool.get().await?;
            while *sampling.lock().expect("lock") {
                for row in conn
                    .query(
                        "SELECT c.relname::text, l.mode, l.granted FROM pg_locks l
                         JOIN pg_class c ON c.oid = l.relation
                         WHERE c.relname ~ '^(events|event_ids)(_[0-9]{8})?$'
                           AND l.pid <> pg_backend_pid()",
                        &[],
                    )
                    .await?
                {
                    let (rel, mode, granted): (String, String, bool) =
                        (row.get(0), row.get(1), row.get(2));
                    if mode.contains("Exclusive") && mode != "RowExclusiveLock" || !granted {
                        let entry = modes.entry(format!("{rel} {mode}")).or_default();
                        if !granted {
                            *entry = "waited for".into();
                        } else if entry.is_empty() {
                            *entry = "held".into();
                        }
                    }
                }
                let waiting: i64 = conn
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .await?
                    .get(0);
                most_waiting = most_waiting.max(waiting);
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, Error>((modes, most_waiting))
        })
    };
    let began = Instant::now();
    let first_kept = day.checked_add_days(Days::new(1)).expect("a day");
    let dropped = db::partitions::drop_before(pool, first_kept, c.partitions.lock_timeout).await?;
    let ended = Instant::now();
    *sampling.lock().expect("lock") = false;
    let (modes, most_waiting) = sampler
        .await
        .map_err(|e| Error::internal(format!("{e}")))??;
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    *stop.lock().expect("lock") = true;
    let with = during
        .await
        .map_err(|e| Error::internal(format!("{e}")))??;
    // The requests due while the drop ran.
    let in_drop: Vec<Duration> = with
        .iter()
        .filter(|(due, _, _)| *due >= began && *due <= ended)
        .map(|(_, l, _)| *l)
        .collect();
    let drop_refused = with
        .iter()
        .filter(|(due, _, ok)| *due >= began && *due <= ended && !ok)
        .count();
    let (p99_base, p99_drop) = (
        percentile(base_lat.clone(), 0.99),
        percentile(in_drop.clone(), 0.99),
    );
    let (max_base, max_drop) = (percentile(base_lat, 1.0), percentile(in_drop.clone(), 1.0));
    println!(
        "drop: {} dropped in {:.3} s ({} partitions)",
        dropped.join(", "),
        (ended - began).as_secs_f64(),
        dropped.len()
    );
    println!(
        "drop: locks seen (other than row-level): {modes:?}; at most {most_waiting} session(s) waiting on a lock at once"
    );
    println!(
        "drop: ingestion at {rate} events/s: p99 {:.1} ms during the drop ({} requests) vs {:.1} ms without ({:.2}x); worst {:.1} ms vs {:.1} ms; answered other than 200: {drop_refused} during, {base_refused} without",
        p99_drop.as_secs_f64() * 1e3,
        in_drop.len(),
        p99_base.as_secs_f64() * 1e3,
        p99_drop.as_secs_f64() / p99_base.as_secs_f64().max(1e-9),
        max_drop.as_secs_f64() * 1e3,
        max_base.as_secs_f64() * 1e3,
    );
    Ok(())
}

async fn size(pool: &Pool, table: &str) -> Result<i64> {
    Ok(pool
        .get()
        .await?
        .query_one(
            "SELECT pg_total_relation_size($1::text::regclass)",
            &[&table],
        )
        .await?
        .get(0))
}

#[actix::main]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let url =
        std::env::var("DATABASE_URL").map_err(|_| Error::invalid("DATABASE_URL", "must be set"))?;
    let parts = std::env::var("BENCH_RETENTION_PARTS").unwrap_or_else(|_| "idle,drop".into());
    let pool = db::pool(&url, 8)?;
    db::apply_schema(&pool).await?;
    db::partitions::ensure_range(&pool, Utc::now().date_naive(), 7, Duration::from_secs(5)).await?;
    let org = db::orgs::insert(
        &pool,
        &Name::parse("name", "Bench")?,
        &Slug::parse("bench")?,
    )
    .await?;
    println!(
        "load before the run: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    for part in parts.split(',') {
        match part.trim() {
            "idle" => idle(&url, &pool, org.id).await?,
            "drop" => drop_day(&url, &pool, org.id).await?,
            other => {
                return Err(Error::internal(format!(
                    "BENCH_RETENTION_PARTS: no part {other}"
                )));
            }
        }
    }
    Ok(())
}
