//! Ingest benchmark: storage throughput against the COPY ceiling,
//! measured in one run on the same generated events, through the path
//! production takes: each event admitted as one request's, through the
//! [`Intake`] the HTTP layer uses, into writers started as the binary
//! starts them.
//!
//! Run it with `scripts/bench.sh` (a fresh database, a release build).
//! Phases:
//! 1. ceiling: the events written in batches of 5,000 over one connection,
//!    with the writers' own statement;
//! 2. intake path, 1 project: [`CLIENTS`] concurrent clients admit events
//!    as fast as they can (a client refused because its writer is full
//!    tries again a millisecond later), timed until every event is stored;
//! 3. the same over 100 projects;
//! 4. paced at 80% of phase 2's (median) rate for at least 10 s: nothing
//!    should be refused; reports the delay from admission to commit;
//! 5. peak resident memory.
//!
//! Writers use the default configuration (batch trigger 50, buffer 500,
//! interval 5 s) on a pool of their own, as in the binary. Before phases 2
//! to 4 each project's writer is started and has stored one event, so the
//! clock does not include what a long-running process pays once (starting
//! a writer, opening connections). Once all of a phase's events have
//! arrived, each writer is asked to flush (see [`flush_all`]).
//!
//! A burst of phase 2 lasts a fraction of a second, a few flushes, so one
//! flush more or less moves its rate by a fifth. Phases 1 to 3 therefore
//! run `BENCH_ROUNDS` times (default 3), each round printed with its
//! writer rates compared with that round's ceiling, and the summary uses
//! the median ratios (and phase 2's median rate for phase 4).
//! `BENCH_EVENTS` sets the events per phase (default 100,000),
//! `BENCH_PACED_SECS` the paced run's length (default 10).

use actix::{Actor, Addr};
use mesher::config::{PartitionConfig, WriterConfig};
use mesher::db::{self, EventPool, Pool};
use mesher::domain::PublicUrl;
use mesher::domain::{
    Breadcrumb, ClientSdk, Event, EventPayload, ExceptionInfo, StackFrame, Stacktrace,
};
use mesher::metrics::Metrics;
use mesher::services::{
    DrainAll, Flush, GetWriter, Intake, ProjectService, Stats, TotalStats, WriterRegistry,
};
use mesher::{Error, Result};
use mimalloc::MiMalloc;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

// The same allocator as the `mesher` binary (see src/main.rs).
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

const CEILING_BATCH: usize = 5_000;

/// How long any wait for the writers may take before the run is declared
/// failed (the database went away, say) instead of waiting for ever.
const SETTLE_BOUND: Duration = Duration::from_secs(120);

fn within_bound(start: Instant, what: &str) -> Result<()> {
    if start.elapsed() > SETTLE_BOUND {
        return Err(Error::internal(format!(
            "{what} did not happen within {SETTLE_BOUND:?}"
        )));
    }
    Ok(())
}

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic event: an exception with a 10-frame stack trace, tags,
/// breadcrumbs and some context; about 2 KB of JSON.
fn payload(i: usize) -> EventPayload {
    let frames = (0..10)
        .map(|f| StackFrame {
            filename: Some(format!("src/app/module_{f}.rs")),
            function: Some(format!("handler_{}_{f}", i % 7)),
            lineno: Some(40 + f as u64 * 3),
            in_app: Some(f < 6),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let breadcrumbs = (0..4)
        .map(|b| Breadcrumb {
            category: Some("http".into()),
            message: Some(format!("GET /api/items/{b} -> 200")),
            level: Some("info".into()),
            data: Some(json!({ "duration_ms": 12 + b })),
            ..Default::default()
        })
        .collect();
    EventPayload {
        message: Some(format!(
            "ParseIntError: invalid digit found in string (request {i})"
        )),
        level: Some("error".into()),
        fingerprint: None,
        exception: Some(vec![ExceptionInfo {
            module: Some("core::num".into()),
            stacktrace: Some(Stacktrace::from(frames)),
            ..ExceptionInfo::new("ParseIntError", "invalid digit found in string")
        }]),
        breadcrumbs: Some(breadcrumbs),
        tags: BTreeMap::from([
            ("environment".into(), "production".into()),
            ("release".into(), "2.4.1".into()),
            ("server".into(), format!("web-{}", i % 12)),
            ("browser".into(), "Firefox 133".into()),
        ]),
        extra: json!({ "request_id": format!("req-{i}"), "retries": 0 })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        user: json!({ "id": i % 1000, "ip_address": "203.0.113.7" })
            .as_object()
            .cloned(),
        sdk: Some(ClientSdk::new("mesher.rust", "0.1.0")),
        ..Default::default()
    }
}

/// `n` events spread round-robin over `projects`.
fn events(n: usize, projects: &[Uuid]) -> Result<Vec<Event>> {
    (0..n)
        .map(|i| Event::from_payload(projects[i % projects.len()], payload(i)))
        .collect()
}

async fn make_projects(pool: &Pool, n: usize) -> Result<Vec<Uuid>> {
    use mesher::domain::{Name, Slug};
    let org = db::orgs::insert(
        pool,
        &Name::parse("name", "Bench")?,
        &Slug::parse(&format!("bench-{n}"))?,
    )
    .await?;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(
            db::projects::insert(pool, org.id, &Name::parse("name", &format!("p{i}"))?, None)
                .await?
                .id,
        );
    }
    Ok(ids)
}

async fn truncate(pool: &Pool) -> Result<()> {
    pool.get()
        .await?
        .batch_execute("TRUNCATE events; CHECKPOINT")
        .await?;
    Ok(())
}

async fn stored_rows(pool: &Pool) -> Result<i64> {
    Ok(pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0))
}

/// A pool made as the binary makes the writers' one, commit settings
/// included, so the ceiling and the writers are measured alike.
fn event_pool(url: &str) -> Result<EventPool> {
    let c = mesher::Config::new(url);
    db::event_pool(
        url,
        c.writer.event_pool_size(),
        c.storage_synchronous_commit,
        Default::default(),
        c.partitions.lock_timeout,
    )
}

/// Phase 1: binary COPY in batches of 5,000 over one connection.
async fn ceiling(url: &str, events: &[Event]) -> Result<f64> {
    let pool = event_pool(url)?;
    // Open the connection before the clock starts, as the writers' are.
    drop(pool.get().await?);
    let start = Instant::now();
    for batch in events.chunks(CEILING_BATCH) {
        db::events::insert_batch(&pool, batch).await?;
    }
    Ok(events.len() as f64 / start.elapsed().as_secs_f64())
}

struct WriterRun {
    stored: u64,
    /// Admissions refused (the writer was full) and tried again.
    refused: u64,
    rate: f64,
}

/// Concurrent requests the producer keeps going, as the HTTP benchmark's
/// keep-alive connections do.
const CLIENTS: usize = 64;

/// Storage started as the binary starts it, with one writer per project
/// already running and its connections open: the one-time costs of a
/// long-running process (starting writers, connecting) are paid before
/// any clock starts. Returns the intake and the registry (for the
/// counters), and the metrics they count into.
async fn warmed_storage(
    pool: &Pool,
    projects: &[Uuid],
) -> Result<(Intake, Addr<WriterRegistry>, Metrics)> {
    let url =
        std::env::var("DATABASE_URL").map_err(|_| Error::invalid("DATABASE_URL", "must be set"))?;
    let metrics = Metrics::default();
    let project_service =
        ProjectService::new(pool.clone(), PublicUrl::parse("http://127.0.0.1:8000")?).start();
    let storage = mesher::system::start_storage(
        event_pool(&url)?,
        project_service,
        WriterConfig::default(),
        metrics.clone(),
        None,
    );
    for (i, p) in projects.iter().enumerate() {
        storage
            .intake
            .admit(*p, vec![Event::from_payload(*p, payload(i))?])
            .await?;
    }
    let start = Instant::now();
    loop {
        let stats = storage.registry.send(TotalStats).await?;
        if stats.totals.stored == projects.len() as u64 {
            return Ok((storage.intake, storage.registry, metrics));
        }
        within_bound(start, "storing the warm-up events")?;
        flush_all(&storage.registry, projects).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Asks every project's writer to flush what it holds. The phases do this
/// once every event has arrived because they time throughput: a project's
/// last events, fewer than the batch trigger, would otherwise wait for the
/// 5 s flush timer (as they do in the binary, where nothing sends `Flush`),
/// and the clock would measure that timer instead of the writer.
async fn flush_all(registry: &Addr<WriterRegistry>, projects: &[Uuid]) -> Result<()> {
    for p in projects {
        if let Some(writer) = registry.send(GetWriter(*p)).await? {
            writer.do_send(Flush);
        }
    }
    Ok(())
}

/// Admits `event` as one request does, waiting a millisecond and trying
/// again while its writer is full (as a client told 429 comes back, but
/// without waiting out a whole Retry-After second, which would time the
/// wait instead of storage). Returns the refusals met.
async fn admit_until_taken(intake: &Intake, event: Event) -> Result<u64> {
    let mut refused = 0;
    loop {
        match intake.admit(event.project_id(), vec![event.clone()]).await {
            Ok(()) => return Ok(refused),
            Err(Error::Overloaded { .. }) => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A producer thread with [`CLIENTS`] concurrent clients admitting
/// `events`, each as fast as it can (`rate` None) or paced to `rate` events
/// per second in all; returns when each is taken, with the refusals met
/// and the moment each event was sent, in the order of `events`.
fn produce(
    intake: Intake,
    events: Vec<Event>,
    rate: Option<f64>,
) -> std::thread::JoinHandle<Result<(u64, Vec<Instant>)>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal_from("producer runtime", e))?;
        runtime.block_on(async move {
            let start = Instant::now();
            let total = events.len();
            let next = std::sync::Arc::new(std::sync::Mutex::new(events.into_iter().enumerate()));
            let clients = (0..CLIENTS).map(|_| {
                let (intake, next) = (intake.clone(), next.clone());
                async move {
                    let mut sent = Vec::new();
                    let mut refused = 0;
                    loop {
                        let Some((i, event)) = next.lock().expect("not poisoned").next() else {
                            return Ok::<_, Error>((refused, sent));
                        };
                        if let Some(rate) = rate {
                            let due = start + Duration::from_secs_f64(i as f64 / rate);
                            tokio::time::sleep_until(due.into()).await;
                        }
                        sent.push((i, Instant::now()));
                        refused += admit_until_taken(&intake, event).await?;
                    }
                }
            });
            let mut sent_at = vec![start; total];
            let mut refused = 0;
            for client in futures_util::future::join_all(clients).await {
                let (r, sent) = client?;
                refused += r;
                for (i, at) in sent {
                    sent_at[i] = at;
                }
            }
            Ok((refused, sent_at))
        })
    })
}

/// Phases 2 and 3: the producer admits every event as fast as it can; the
/// clock stops when every event is stored.
async fn writer_path(pool: &Pool, projects: &[Uuid], events: Vec<Event>) -> Result<WriterRun> {
    let (intake, registry, _) = warmed_storage(pool, projects).await?;
    let base = registry.send(TotalStats).await?;
    let total = events.len() as u64;
    let start = Instant::now();
    let producer = produce(intake, events, None);
    let mut flushed = false;
    let stats = loop {
        let s = registry.send(TotalStats).await?;
        let arrived = s.totals.received - base.totals.received == total;
        if arrived && s.totals.buffered + s.totals.in_flight == 0 {
            break s;
        }
        if arrived && !flushed {
            flush_all(&registry, projects).await?;
            flushed = true;
        }
        within_bound(start, "settling the writers")?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let elapsed = start.elapsed().as_secs_f64();
    let (refused, _) = producer
        .join()
        .map_err(|_| Error::internal("producer panicked"))??;
    registry.send(DrainAll).await?;
    let stored = stats.totals.stored - base.totals.stored;
    Ok(WriterRun {
        stored,
        refused,
        rate: stored as f64 / elapsed,
    })
}

struct PacedRun {
    sent: u64,
    refused: u64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Phase 4: one project at `rate` events/s for `secs`. A sampler reads the
/// writer's `stored` counter every millisecond; with one batch in flight a
/// writer stores in the order it took the events, so event i is committed
/// once `stored > i`, and its delay is that moment minus the moment it was
/// sent. (Clients that meet a refusal take their event later, which makes
/// the delay approximate; none is the target.)
async fn paced(pool: &Pool, project: Uuid, rate: f64, secs: u64) -> Result<PacedRun> {
    // Made before the clock, like the other phases' events, so that the
    // producer costs the database no CPU it would not cost in phase 2.
    let total = (rate * secs as f64) as usize;
    let events = events(total, &[project])?;
    let (intake, registry, _) = warmed_storage(pool, &[project]).await?;
    let writer = registry
        .send(GetWriter(project))
        .await?
        .ok_or_else(|| Error::internal("warmed writer is gone"))?;
    let base = writer.send(Stats).await?;
    let producer = produce(intake, events, Some(rate));

    let mut committed_at: Vec<Instant> = Vec::with_capacity(total);
    let start = Instant::now();
    let mut flushed = false;
    loop {
        let s = writer.send(Stats).await?;
        let now = Instant::now();
        while committed_at.len() < (s.stored - base.stored) as usize {
            committed_at.push(now);
        }
        let arrived = s.received - base.received == total as u64;
        if arrived && s.buffered + s.in_flight == 0 {
            break;
        }
        if arrived && !flushed {
            writer.do_send(Flush);
            flushed = true;
        }
        within_bound(start + Duration::from_secs(secs), "the paced run")?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (refused, mut sent_at) = producer
        .join()
        .map_err(|_| Error::internal("producer panicked"))??;
    registry.send(DrainAll).await?;

    // Taken in the order sent, near enough: compare the i-th sent with the
    // i-th committed.
    sent_at.sort();
    let mut delays: Vec<f64> = sent_at
        .iter()
        .zip(&committed_at)
        .map(|(s, c)| c.saturating_duration_since(*s).as_secs_f64() * 1000.0)
        .collect();
    delays.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        delays
            .get(((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1)))
            .copied()
    };
    Ok(PacedRun {
        sent: total as u64,
        refused,
        p50_ms: pct(0.50).unwrap_or(f64::NAN),
        p99_ms: pct(0.99).unwrap_or(f64::NAN),
    })
}

/// The middle value (the upper one of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Peak resident set size of this process, from the kernel.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[actix::main]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let url =
        std::env::var("DATABASE_URL").map_err(|_| Error::invalid("DATABASE_URL", "must be set"))?;
    let n = env_or("BENCH_EVENTS", 100_000) as usize;
    let paced_secs = env_or("BENCH_PACED_SECS", 10);
    let rounds = env_or("BENCH_ROUNDS", 3).max(1) as usize;

    let pool = db::pool(&url, 16)?;
    db::apply_schema(&pool).await?;
    let today = chrono::Utc::now().date_naive();
    let PartitionConfig {
        days_ahead,
        lock_timeout,
        ..
    } = PartitionConfig::default();
    db::partitions::ensure_range(&pool, today, days_ahead, lock_timeout).await?;
    let one = make_projects(&pool, 1).await?;
    let hundred = make_projects(&pool, 100).await?;

    let sample = events(n.min(1_000), &one)?;
    let bytes: usize = sample
        .iter()
        .map(|e| serde_json::to_vec(e).map_or(0, |v| v.len()))
        .sum();
    println!(
        "events: {n} per phase, {} bytes of JSON each on average; {rounds} round(s) of phases 1-3",
        bytes / sample.len()
    );
    drop(sample);

    // Each writer rate is compared with the ceiling of its own round: the
    // ceiling moves between rounds too.
    let mut ceilings = Vec::new();
    // (rate, ratio) of each round, for 1 project and for 100.
    let mut writer_runs: [Vec<(f64, f64)>; 2] = Default::default();
    for round in 1..=rounds {
        let tag = format!("(round {round}/{rounds})");
        truncate(&pool).await?;
        let ceiling_rate = ceiling(&url, &events(n, &one)?).await?;
        println!(
            "phase 1 ceiling {tag}: binary COPY x{CEILING_BATCH}, one connection: {ceiling_rate:.0} events/s"
        );
        ceilings.push(ceiling_rate);

        for (i, (phase, projects)) in [(2, &one), (3, &hundred)].into_iter().enumerate() {
            truncate(&pool).await?;
            let run = writer_path(&pool, projects, events(n, projects)?).await?;
            let ratio = run.rate / ceiling_rate;
            println!(
                "phase {phase} intake, {} {tag}: {} stored ({} rows with the warm-up), {} admissions refused and retried, {:.0} stored/s, ratio {ratio:.2}",
                if projects.len() == 1 {
                    "1 project".to_owned()
                } else {
                    format!("{} projects", projects.len())
                },
                run.stored,
                stored_rows(&pool).await?,
                run.refused,
                run.rate,
            );
            writer_runs[i].push((run.rate, ratio));
        }
    }
    let [one_runs, hundred_runs] = writer_runs;
    let medians = |runs: &[(f64, f64)]| {
        let (mut rates, mut ratios): (Vec<f64>, Vec<f64>) = runs.iter().copied().unzip();
        (median(&mut rates), median(&mut ratios))
    };
    let ((rate_1, ratio_1), (_, ratio_100)) = (medians(&one_runs), medians(&hundred_runs));
    println!(
        "phases 1-3, medians of {rounds} rounds: ceiling {:.0} events/s; 1 project {rate_1:.0} stored/s, ratio {ratio_1:.2}; 100 projects ratio {ratio_100:.2}",
        median(&mut ceilings)
    );

    truncate(&pool).await?;
    let rate = 0.8 * rate_1;
    let p = paced(&pool, one[0], rate, paced_secs).await?;
    println!(
        "phase 4 paced at {rate:.0} events/s for {paced_secs} s: {} sent, {} refused, delay p50 {:.1} ms, p99 {:.1} ms",
        p.sent, p.refused, p.p50_ms, p.p99_ms
    );

    let rss = peak_rss_mb();
    println!("phase 5 peak resident memory: {rss:.0} MiB");
    println!(
        "ratio_1={ratio_1:.2} ratio_100={ratio_100:.2} refused_paced={} p99_ms={:.1} rss_mb={rss:.0}",
        p.refused, p.p99_ms
    );
    Ok(())
}
