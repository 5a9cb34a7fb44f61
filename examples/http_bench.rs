//! End-to-end benchmark: Sentry envelopes over HTTP, as an SDK sends them,
//! against a `mesher` process started for the run; the knee for 1, 100 and
//! 10,000 projects, compared with a sustained COPY ceiling measured in the
//! same run.
//!
//! Run it with `scripts/bench-http.sh` (a fresh database, a release build).
//! Steps:
//! 1. set-up: the schema, one organization, 10,000 projects with a key each
//!    (through the library's query layer, as the `mesher project create`
//!    command does, minus a process per project);
//! 2. ceiling: the same events written by binary COPY in batches of 5,000
//!    over one connection for `BENCH_HTTP_CEILING_SECS` (10), fed by a
//!    producer thread that parses them as Mesher would;
//! 3. the `mesher` binary next to this example, started as a child
//!    process with default settings, so that its CPU time and memory can
//!    be read from `/proc/<pid>` apart from the load generator's;
//! 4. for each project count (`BENCH_HTTP_PROJECTS`, "1,100,10000"): one
//!    event per project as a warm-up (keys cached, writers started), then
//!    the knee search: open-loop load paced at an offered rate for
//!    `BENCH_HTTP_STEP_SECS` (10), starting at `BENCH_HTTP_START` (a
//!    quarter of the ceiling), doubling while a step passes, then
//!    `BENCH_HTTP_REFINE` (3) bisections between the last rate that passed
//!    and the first that failed. A step passes with every answer a 200, no
//!    event dropped or refused (Mesher's `/metrics`), every accepted event
//!    stored (rows counted) within 7 s of the load's end (storage kept up)
//!    and p99 latency under 50 ms;
//! 5. the summary line the issue asks for.
//!
//! Requests: one event per `POST /api/<id>/envelope/`, gzip, with
//! `X-Sentry-Auth`, spread round-robin over the projects, over
//! `BENCH_HTTP_CONNECTIONS` (64) keep-alive connections driven by
//! `BENCH_HTTP_THREADS` (2) threads. Events are realistic (an exception
//! with 15 to 30 frames, breadcrumbs, tags, contexts, request, user; 2 to
//! 3 KB of JSON) and each has an id of its own. Compressing every body on
//! the fly would make the generator compete for the cores far more than an
//! application does, so each of a few dozen templates is compressed once
//! and a request's gzip stream is its varying head (envelope header and
//! event id) in a stored block followed by the template's deflated rest;
//! any gzip decoder reads it (checked at start).
//!
//! Latency is measured from the moment a request was due, not from when it
//! went out (wrk2's way): a server that stalls makes requests queue in the
//! generator, and that wait counts. The generator's own lag (due to sent)
//! is printed too, to tell a slow generator from a slow server.
//!
//! Between steps every writer is left to flush (the last events of a
//! project wait for its 5 s timer) and the event tables are emptied, so
//! every step starts alike; the issues too, unless
//! `BENCH_HTTP_KEEP_ISSUES=1` (then events recur in known issues).
//!
//! With `BENCH_HTTP_ALERTS=1`, each project count's knee is found twice
//! in the same run: without alert rules, then with a new-issue rule and a
//! frequency rule on every project, both notifying a webhook this process
//! receives; and at the end, at rest, the time from an event's arrival to
//! its webhook (p50, p99) is measured over 50 events of new issues.

use actix_web::http::header::HeaderValue;
use flate2::Compression;
use flate2::write::DeflateEncoder;
use futures_util::StreamExt;
use mesher::db::{self, EventPool, Pool};
use mesher::domain::{ApiKey, Event, Name, Slug};
use mesher::http::envelope::{self, ItemType};
use mesher::{Error, Result};
use mimalloc::MiMalloc;
use serde_json::{Value, json};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

// The same allocator as the `mesher` binary (see src/main.rs).
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

const CEILING_BATCH: usize = 5_000;

/// Distinct event templates; prime, so that round-robin over any project
/// count still gives every project every template.
const TEMPLATES: usize = 61;

/// A step fails when its p99 latency reaches this.
const P99_LIMIT_MS: f64 = 50.0;

/// How long the benchmark waits for a step's accepted events to be stored
/// once the load has stopped, before it counts the rest as lost.
const SETTLE_BOUND: Duration = Duration::from_secs(60);

/// A step passes only if its last event was stored within this long after
/// the load: a writer's flush interval (5 s by default) and 2 s more.
/// Later means storage fell behind the offered rate and the writers'
/// buffers (500 events per project) carried the step, which a longer step
/// would overflow: that rate is not sustained.
const KEEP_UP_BOUND: Duration = Duration::from_secs(7);

/// The warm-up's rate: one event per project, 10,000 in 5 s.
const WARM_UP_RATE: f64 = 2_000.0;

fn env_or(key: &str, default: f64) -> f64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's settings, from `BENCH_HTTP_*` (see the module documentation
/// and scripts/bench-http.sh).
struct Knobs {
    ceiling_secs: f64,
    step_secs: f64,
    projects: Vec<usize>,
    connections: usize,
    threads: usize,
    /// Offered rate of the first step; 0 means a quarter of the ceiling.
    start: f64,
    refine: usize,
    /// Steps at most per project count, whatever the search still wants.
    max_steps: usize,
    /// `BENCH_HTTP_ALERTS=1`: each knee is measured twice, without alert
    /// rules and then with a new-issue rule and a frequency rule on every
    /// project (both notifying a webhook this process receives), and the
    /// time from an event's arrival to its webhook is measured at rest.
    alerts: bool,
    /// `BENCH_HTTP_KEEP_ISSUES=1`: steps empty the event tables but keep
    /// the issues, so that after the warm-up events mostly recur in known
    /// issues (an application's usual traffic) instead of every step
    /// making each template's issue anew in every project (with a
    /// new-issue rule, an alert per new issue).
    keep_issues: bool,
}

impl Knobs {
    fn from_env() -> Result<Knobs> {
        let projects = std::env::var("BENCH_HTTP_PROJECTS")
            .unwrap_or_else(|_| "1,100,10000".into())
            .split(',')
            .map(|p| p.trim().parse::<usize>().ok().filter(|&n| n > 0))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::invalid(
                    "BENCH_HTTP_PROJECTS",
                    "must be positive numbers, comma-separated",
                )
            })?;
        let threads = (env_or("BENCH_HTTP_THREADS", 2.0) as usize).max(1);
        Ok(Knobs {
            ceiling_secs: env_or("BENCH_HTTP_CEILING_SECS", 10.0),
            step_secs: env_or("BENCH_HTTP_STEP_SECS", 10.0),
            projects,
            connections: (env_or("BENCH_HTTP_CONNECTIONS", 64.0) as usize).max(threads),
            threads,
            start: env_or("BENCH_HTTP_START", 0.0),
            refine: env_or("BENCH_HTTP_REFINE", 3.0) as usize,
            max_steps: env_or("BENCH_HTTP_MAX_STEPS", 12.0) as usize,
            alerts: env_or("BENCH_HTTP_ALERTS", 0.0) > 0.0,
            keep_issues: env_or("BENCH_HTTP_KEEP_ISSUES", 0.0) > 0.0,
        })
    }
}

/// A realistic event, as the Python SDK sends one, without its
/// `event_id`: an exception with 15 to 30 frames, breadcrumbs, tags,
/// contexts, the request and the user.
fn event_template(k: usize, timestamp: f64) -> Value {
    let kinds = [
        ("KeyError", "'sku_{}'", "builtins"),
        (
            "ValueError",
            "invalid literal for int() with base 10: '{}x'",
            "builtins",
        ),
        (
            "OperationalError",
            "could not obtain lock on row {}",
            "psycopg2",
        ),
        (
            "TimeoutError",
            "upstream did not answer within {} ms",
            "asyncio",
        ),
        (
            "AttributeError",
            "'NoneType' object has no attribute 'id' ({})",
            "builtins",
        ),
    ];
    let (kind, value, module) = kinds[k % kinds.len()];
    let modules = ["orders", "cart", "billing", "catalog", "users", "search"];
    let frames: Vec<Value> = (0..15 + k % 16)
        .map(|f| {
            let m = modules[(k + f) % modules.len()];
            let in_app = f % 3 != 0;
            let file = if in_app {
                format!("app/{m}.py")
            } else {
                format!("django/core/h{f}.py")
            };
            json!({
                "filename": file,
                "function": format!("{m}_{}", f % 7),
                "lineno": 20 + (k * 7 + f * 13) % 400,
                "in_app": in_app,
            })
        })
        .collect();
    let breadcrumbs: Vec<Value> = (0..3)
        .map(|b| {
            json!({
                "timestamp": timestamp - 1.0 + b as f64 * 0.1,
                "category": "httplib",
                "data": {"method": "GET", "url": format!("/items/{b}"), "status_code": 200},
            })
        })
        .collect();
    json!({
        "timestamp": timestamp,
        "platform": "python",
        "level": "error",
        "logger": "django.request",
        "server_name": format!("web-{}", k % 12),
        "release": "shop@2.4.1",
        "environment": "production",
        "transaction": format!("/api/{}/{{id}}", modules[k % modules.len()]),
        "exception": {"values": [{
            "type": kind,
            "value": value.replace("{}", &(k * 37).to_string()),
            "module": module,
            "mechanism": {"type": "django", "handled": false},
            "stacktrace": {"frames": frames},
        }]},
        "breadcrumbs": {"values": breadcrumbs},
        "tags": {"browser": "Firefox 133", "os": "Windows 11", "customer_tier": "gold", "url": "/api/orders/17"},
        "contexts": {
            "os": {"name": "Linux", "version": "6.8.0"},
            "runtime": {"name": "CPython", "version": "3.12.7"},
            "trace": {"trace_id": format!("{:032x}", k * 7919 + 1), "span_id": format!("{:016x}", k + 1), "op": "http.server"},
        },
        "request": {"url": "https://shop.example.com/api/orders/17", "method": "POST", "headers": {"User-Agent": "Mozilla/5.0"}},
        "user": {"id": format!("{}", k * 101), "ip_address": "203.0.113.7"},
        "sdk": {"name": "sentry.python.django", "version": "2.19.0"},
    })
}

/// One template, ready to become request bodies.
struct Template {
    /// The event JSON after `{"event_id":"<id>",`.
    rest: Vec<u8>,
    /// `rest` as a raw deflate stream (ending with the final block).
    rest_deflated: Vec<u8>,
    /// CRC-32 of `rest`, combined into each body's.
    rest_crc: flate2::Crc,
}

impl Template {
    fn new(event: &Value) -> Result<Template> {
        let json = serde_json::to_vec(event).map_err(|e| Error::internal_from("template", e))?;
        let rest = json[1..].to_vec();
        let mut deflate = DeflateEncoder::new(Vec::new(), Compression::default());
        let deflated = deflate.write_all(&rest).and_then(|()| deflate.finish());
        let rest_deflated = deflated.map_err(|e| Error::internal_from("deflating", e))?;
        let mut rest_crc = flate2::Crc::new();
        rest_crc.update(&rest);
        Ok(Template {
            rest,
            rest_deflated,
            rest_crc,
        })
    }

    fn head(id: &str) -> String {
        format!("{{\"event_id\":\"{id}\",")
    }

    /// The event's JSON with `id`, as the ceiling's producer parses it.
    fn event_json(&self, id: &str) -> Vec<u8> {
        [Self::head(id).as_bytes(), &self.rest].concat()
    }

    /// What the envelope holds before the template's rest.
    fn envelope_head(&self, id: &str) -> String {
        let event_head = Self::head(id);
        format!(
            "{{\"event_id\":\"{id}\",\"sdk\":{{\"name\":\"sentry.python.django\",\"version\":\"2.19.0\"}}}}\n\
             {{\"type\":\"event\",\"length\":{}}}\n{event_head}",
            event_head.len() + self.rest.len()
        )
    }

    /// A gzip envelope holding the event with `id`: a stored block with
    /// the head, then the pre-compressed rest (see the module docs).
    fn envelope_gzip(&self, id: &str) -> Vec<u8> {
        let head = self.envelope_head(id);
        let mut crc = flate2::Crc::new();
        crc.update(head.as_bytes());
        crc.combine(&self.rest_crc);
        let len = head.len() as u16;
        let mut out = Vec::with_capacity(32 + head.len() + self.rest_deflated.len());
        // Magic, deflate, no flags, no time, no extra flags, unknown OS.
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        // A stored block, not the last: BFINAL 0, BTYPE 00, byte-aligned.
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.rest_deflated);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&crc.amount().to_le_bytes());
        out
    }

    /// The uncompressed envelope, to check [`Template::envelope_gzip`].
    fn envelope_plain(&self, id: &str) -> Vec<u8> {
        [self.envelope_head(id).as_bytes(), &self.rest].concat()
    }
}

fn templates() -> Result<Vec<Template>> {
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    (0..TEMPLATES)
        .map(|k| Template::new(&event_template(k, now)))
        .collect()
}

/// Event ids: the run's nonce (the high half of a UUIDv7, so runs differ)
/// and a sequence number.
struct Ids {
    nonce: u64,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Ids {
        Ids {
            nonce: Uuid::now_v7().as_u64_pair().0,
            next: AtomicU64::new(1),
        }
    }

    /// Reserves `n` ids; returns the first sequence number.
    fn reserve(&self, n: u64) -> u64 {
        self.next.fetch_add(n, Ordering::Relaxed)
    }

    fn hex(nonce: u64, seq: u64) -> String {
        Uuid::from_u64_pair(nonce, seq).simple().to_string()
    }
}

/// Checks that every template makes a body Mesher takes: the gzip stream
/// decodes to the envelope, whose event parses. Returns the mean sizes of
/// the event JSON and of the compressed body.
fn check_templates(templates: &[Template], project: Uuid) -> Result<(usize, usize, usize, usize)> {
    let (mut json_total, mut gz_total, mut min, mut max) = (0, 0, usize::MAX, 0);
    for t in templates {
        let id = Ids::hex(1, 1);
        let gz = t.envelope_gzip(&id);
        let decoded =
            mesher::http::body::decode(mesher::http::body::ContentEncoding::Gzip, &gz, usize::MAX)
                .map_err(|e| Error::internal(format!("a crafted body does not decode: {e}")))?;
        if decoded != t.envelope_plain(&id) {
            return Err(Error::internal("a crafted body decodes to something else"));
        }
        let envelope = envelope::parse(&decoded)
            .map_err(|e| Error::internal(format!("a crafted envelope does not parse: {e}")))?;
        let [item] = envelope.items.as_slice() else {
            return Err(Error::internal("a crafted envelope has not one item"));
        };
        if item.kind != ItemType::Event {
            return Err(Error::internal("a crafted envelope's item is no event"));
        }
        Event::from_json(project, item.payload)?;
        json_total += item.payload.len();
        gz_total += gz.len();
        min = min.min(item.payload.len());
        max = max.max(item.payload.len());
    }
    let n = templates.len();
    Ok((json_total / n, min, max, gz_total / n))
}

/// A project as the load generator addresses it.
#[derive(Clone)]
struct Target {
    id: Uuid,
    public_id: i64,
    /// `Sentry sentry_key=..., sentry_version=7, ...`.
    auth: HeaderValue,
}

async fn make_projects(pool: &Pool, n: usize) -> Result<Vec<Target>> {
    let org =
        db::orgs::insert(pool, &Name::parse("name", "Bench")?, &Slug::parse("bench")?).await?;
    let label = Name::parse("label", "bench")?;
    let made = futures_util::stream::iter(0..n)
        .map(|i| {
            let label = &label;
            async move {
                let name = Name::parse("name", &format!("p{i}"))?;
                let project = db::projects::insert(pool, org.id, &name, None).await?;
                let key = ApiKey::generate()?;
                db::api_keys::insert(pool, project.id, &key, label).await?;
                let auth = format!(
                    "Sentry sentry_key={}, sentry_version=7, sentry_client=sentry.python/2.19.0",
                    key.expose()
                );
                Ok(Target {
                    id: project.id,
                    public_id: project.public_id,
                    auth: HeaderValue::from_str(&auth)
                        .map_err(|e| Error::internal_from("auth header", e))?,
                })
            }
        })
        .buffered(8)
        .collect::<Vec<Result<Target>>>()
        .await;
    made.into_iter().collect()
}

async fn sql(pool: &Pool, statement: &str) -> Result<()> {
    pool.get().await?.batch_execute(statement).await?;
    Ok(())
}

async fn stored_rows(pool: &Pool) -> Result<u64> {
    let n: i64 = pool
        .get()
        .await?
        .query_one("SELECT count(*) FROM events", &[])
        .await?
        .get(0);
    Ok(n as u64)
}

/// Every step starts on empty event tables (and issues, unless
/// `keep_issues`).
async fn empty_tables(pool: &Pool, keep_issues: bool) -> Result<()> {
    match keep_issues {
        true => sql(pool, "TRUNCATE events, event_ids; CHECKPOINT").await,
        false => sql(pool, "TRUNCATE events, event_ids, issues; CHECKPOINT").await,
    }
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

/// Binary COPY in batches of 5,000 over one connection for `secs`, fed by
/// a producer thread that parses the events from JSON (what Mesher does
/// before its writers see them). Returns events/s and the share of the
/// time the COPY loop waited for the producer (which would make the
/// ceiling the producer's).
async fn ceiling(
    url: &str,
    project: Uuid,
    templates: Arc<Vec<Template>>,
    ids: Arc<Ids>,
    secs: f64,
) -> Result<(f64, f64)> {
    let pool = event_pool(url)?;
    // Open the connection before the clock starts, as the writers' are.
    drop(pool.get().await?);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Event>>(2);
    let producer = std::thread::spawn(move || -> Result<()> {
        loop {
            let first = ids.reserve(CEILING_BATCH as u64);
            let batch = (0..CEILING_BATCH as u64)
                .map(|n| {
                    let seq = first + n;
                    let json = templates[seq as usize % templates.len()]
                        .event_json(&Ids::hex(ids.nonce, seq));
                    Event::from_json(project, &json)
                })
                .collect::<Result<Vec<_>>>()?;
            if tx.blocking_send(batch).is_err() {
                return Ok(());
            }
        }
    });
    let mut batch = rx.recv().await;
    let (mut stored, mut starved) = (0usize, Duration::ZERO);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let Some(events) = batch else { break };
        db::events::insert_batch(&pool, &events).await?;
        stored += events.len();
        let waited = Instant::now();
        batch = rx.recv().await;
        starved += waited.elapsed();
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(rx);
    producer
        .join()
        .map_err(|_| Error::internal("producer panicked"))??;
    Ok((stored as f64 / elapsed, starved.as_secs_f64() / elapsed))
}

/// The raw durable-write ceiling: binary COPY of the run's events as
/// compressed blobs (as Mesher stores their bodies) into a table with only
/// a primary key, in batches of 5,000 over one connection with synchronous
/// commit, for `secs`; the blobs are made by a producer thread ahead of
/// the clock's needs. What the disk and PostgreSQL can take at all:
/// rows/s.
async fn raw_ceiling(
    pool: &Pool,
    project: Uuid,
    templates: Arc<Vec<Template>>,
    ids: Arc<Ids>,
    secs: f64,
) -> Result<f64> {
    sql(
        pool,
        "DROP TABLE IF EXISTS raw_ceiling;
         CREATE TABLE raw_ceiling (id uuid PRIMARY KEY, body bytea NOT NULL);
         ALTER TABLE raw_ceiling ALTER COLUMN body SET STORAGE EXTERNAL",
    )
    .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(Uuid, Vec<u8>)>>(2);
    let producer = std::thread::spawn(move || -> Result<()> {
        loop {
            let first = ids.reserve(CEILING_BATCH as u64);
            let batch = (0..CEILING_BATCH as u64)
                .map(|n| {
                    let seq = first + n;
                    let json = templates[seq as usize % templates.len()]
                        .event_json(&Ids::hex(ids.nonce, seq));
                    let event = Event::from_json(project, &json)?;
                    Ok((event.id(), event.body().as_bytes().to_vec()))
                })
                .collect::<Result<Vec<_>>>()?;
            if tx.blocking_send(batch).is_err() {
                return Ok(());
            }
        }
    });
    let client = pool.get().await?;
    let types = [
        tokio_postgres::types::Type::UUID,
        tokio_postgres::types::Type::BYTEA,
    ];
    let mut batch = rx.recv().await;
    let mut stored = 0usize;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let Some(rows) = batch else { break };
        let sink = client
            .copy_in("COPY raw_ceiling (id, body) FROM STDIN (FORMAT binary)")
            .await?;
        let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
        futures_util::pin_mut!(writer);
        for (id, body) in &rows {
            writer.as_mut().write(&[id, &body.as_slice()]).await?;
        }
        writer.finish().await?;
        stored += rows.len();
        batch = rx.recv().await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(rx);
    drop(client);
    producer
        .join()
        .map_err(|_| Error::internal("producer panicked"))??;
    sql(pool, "DROP TABLE raw_ceiling").await?;
    Ok(stored as f64 / elapsed)
}

/// The CPU time of every PostgreSQL process on the machine (the server's
/// backends, its writer and WAL writer, ...), from `/proc`: what storing
/// the events cost PostgreSQL. (Run the benchmark with nothing else using
/// PostgreSQL.)
fn postgres_cpu(ticks: f64) -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .map(|pid| proc_stats(&pid, ticks).cpu)
        .sum()
}

/// On-disk bytes per stored event: the `events` partitions' tables, TOAST
/// and indexes, over their rows.
async fn bytes_per_event(pool: &Pool) -> Result<f64> {
    let row = pool
        .get()
        .await?
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::float8,
                 (SELECT count(*) FROM events)::float8
             FROM pg_inherits WHERE inhparent = 'events'::regclass",
            &[],
        )
        .await?;
    let (bytes, rows): (f64, f64) = (row.get(0), row.get(1));
    Ok(bytes / rows.max(1.0))
}

/// The `mesher` process under test. Killed if the run ends early.
struct Mesher {
    child: Child,
    addr: String,
    /// Warnings and errors Mesher logged.
    complaints: Arc<AtomicU64>,
    log_path: std::path::PathBuf,
}

impl Mesher {
    /// Starts the `mesher` binary built next to this example, listening on
    /// a free port, and waits for its "ready" line.
    fn start(database_url: &str) -> Result<Mesher> {
        let exe = std::env::current_exe().map_err(|e| Error::internal_from("current exe", e))?;
        // <target>/<profile>/examples/http_bench -> <target>/<profile>/mesher
        let bin = exe
            .parent()
            .and_then(|examples| examples.parent())
            .map(|profile| profile.join("mesher"))
            .filter(|bin| bin.exists())
            .ok_or_else(|| {
                Error::internal("no mesher binary next to the example; build it with --bins")
            })?;
        let log_path =
            std::env::temp_dir().join(format!("mesher-http-bench-{}.log", std::process::id()));
        let mut log = std::fs::File::create(&log_path)
            .map_err(|e| Error::internal_from("creating the log file", e))?;
        // A spool of this run's own: one left by another run would be
        // replayed into this run's database.
        let spool = std::env::temp_dir().join(format!(
            "mesher-http-bench-spool-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_micros()
        ));
        let _ = std::fs::remove_dir_all(&spool);
        let mut child = Command::new(&bin)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("MESHER_HTTP_ADDR", "127.0.0.1:0")
            .env("MESHER_SPOOL_DIR", &spool)
            // The alert rules' webhook is this process, on loopback.
            .env("MESHER_WEBHOOK_ALLOW_PRIVATE", "true")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::internal_from(format!("starting {}", bin.display()), e))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error::internal("no stderr"))?;
        let complaints = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        {
            let complaints = complaints.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                    if let Some(addr) = line.split("ready: listening on http://").nth(1) {
                        let _ = ready_tx.send(addr.trim().to_owned());
                    }
                    if line.contains(" WARN ") || line.contains(" ERROR ") {
                        complaints.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = writeln!(log, "{line}");
                }
            });
        }
        let mut mesher = Mesher {
            child,
            addr: String::new(),
            complaints,
            log_path,
        };
        mesher.addr = ready_rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| {
                Error::internal(format!(
                    "mesher did not become ready; see {}",
                    mesher.log_path.display()
                ))
            })?;
        Ok(mesher)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, as an operator stops it; it drains its writers and exits.
    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < SETTLE_BOUND {
            if let Ok(Some(status)) = self.child.try_wait() {
                return if status.success() {
                    Ok(())
                } else {
                    Err(Error::internal(format!("mesher exited with {status}")))
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(Error::internal("mesher did not stop within the bound"))
    }
}

impl Drop for Mesher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the kernel says about a process.
struct ProcStats {
    /// User plus system CPU time.
    cpu: Duration,
    rss_mb: f64,
    peak_rss_mb: f64,
}

/// Clock ticks per second, for /proc/<pid>/stat.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_stats(pid: &str, ticks: f64) -> ProcStats {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from the 3rd.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 here.
    let cpu = Duration::from_secs_f64((tick(11) + tick(12)) / ticks);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    ProcStats {
        cpu,
        rss_mb: kb("VmRSS:"),
        peak_rss_mb: kb("VmHWM:"),
    }
}

/// Mesher's counters that judge a step, from `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    stored: f64,
    /// Batches written, and the seconds they took in all: what a writer
    /// that falls behind (and so answers 429) was waiting for.
    batches: f64,
    batch_secs: f64,
    dropped: f64,
    refused: f64,
}

/// The sum of every series of `name` (all its labels) in Prometheus text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn counters(client: &awc::Client, addr: &str) -> Result<Counters> {
    let mut res = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .map_err(|e| Error::internal(format!("reading /metrics: {e}")))?;
    let body = res
        .body()
        .await
        .map_err(|e| Error::internal(format!("reading /metrics: {e}")))?;
    let text = String::from_utf8_lossy(&body);
    Ok(Counters {
        stored: metric_sum(&text, "mesher_events_stored_total"),
        batches: metric_sum(&text, "mesher_batches_total"),
        batch_secs: metric_sum(&text, "mesher_batch_duration_seconds_sum"),
        dropped: metric_sum(&text, "mesher_events_dropped_total"),
        refused: metric_sum(&text, "mesher_events_refused_total"),
    })
}

/// What one load thread saw.
#[derive(Default)]
struct Seen {
    /// Due to answered, microseconds.
    latencies: Vec<u32>,
    /// Due to sent, microseconds.
    lags: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    first_error: Option<String>,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.latencies.extend(other.latencies);
        self.lags.extend(other.lags);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }

    fn ok(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
    }
}

/// One load thread's share of a step: requests `k`, `k + threads`, ...
/// of `total`, request `i` due at `start + i / rate`.
#[allow(clippy::too_many_arguments)]
fn load_thread(
    k: usize,
    threads: usize,
    connections: usize,
    total: u64,
    rate: f64,
    start: Instant,
    addr: Arc<str>,
    targets: Arc<Vec<Target>>,
    templates: Arc<Vec<Template>>,
    (nonce, first_seq): (u64, u64),
) -> Seen {
    actix_rt::System::new().block_on(async move {
        let client = awc::Client::builder()
            .connector(awc::Connector::new().limit(connections))
            .timeout(Duration::from_secs(30))
            .disable_redirects()
            .finish();
        let client = Rc::new(client);
        let next = Rc::new(Cell::new(0u64));
        let urls: Rc<Vec<String>> = Rc::new(
            targets
                .iter()
                .map(|t| format!("http://{addr}/api/{}/envelope/", t.public_id))
                .collect(),
        );
        let tasks = (0..connections).map(|_| {
            let (client, next, urls) = (client.clone(), next.clone(), urls.clone());
            let (targets, templates) = (targets.clone(), templates.clone());
            async move {
                let mut seen = Seen::default();
                loop {
                    let j = next.get();
                    next.set(j + 1);
                    let i = k as u64 + j * threads as u64;
                    if i >= total {
                        return seen;
                    }
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    actix_rt::time::sleep_until(due.into()).await;
                    let p = i as usize % targets.len();
                    let body = templates[i as usize % templates.len()]
                        .envelope_gzip(&Ids::hex(nonce, first_seq + i));
                    let sent = Instant::now();
                    let res = client
                        .post(&urls[p])
                        .insert_header(("x-sentry-auth", targets[p].auth.clone()))
                        .insert_header(("content-encoding", "gzip"))
                        .send_body(body)
                        .await;
                    match res {
                        Ok(mut res) => {
                            let status = res.status().as_u16();
                            let body = res.body().await;
                            *seen.statuses.entry(status).or_default() += 1;
                            if status != 200 && seen.first_error.is_none() {
                                seen.first_error = Some(format!(
                                    "{status}: {}",
                                    body.map(|b| String::from_utf8_lossy(&b).into_owned())
                                        .unwrap_or_default()
                                ));
                            }
                        }
                        Err(e) => {
                            seen.errors += 1;
                            seen.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                    let micros = |d: Duration| d.as_micros().min(u32::MAX as u128) as u32;
                    seen.latencies.push(micros(due.elapsed()));
                    seen.lags.push(micros(sent - due));
                }
            }
        });
        let mut seen = Seen::default();
        for s in futures_util::future::join_all(tasks.map(actix_rt::spawn)).await {
            match s {
                Ok(s) => seen.merge(s),
                Err(e) => {
                    seen.errors += 1;
                    seen.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        seen
    })
}

/// The `p`-quantile of `values` in milliseconds (sorts them).
fn quantile_ms(values: &mut [u32], p: f64) -> f64 {
    values.sort_unstable();
    let i = ((values.len() as f64 * p) as usize).min(values.len().saturating_sub(1));
    values.get(i).map_or(f64::NAN, |&us| us as f64 / 1000.0)
}

/// Everything the run shares between steps.
struct Bench {
    knobs: Knobs,
    pool: Pool,
    client: awc::Client,
    mesher: Mesher,
    ticks: f64,
    targets: Arc<Vec<Target>>,
    templates: Arc<Vec<Template>>,
    ids: Arc<Ids>,
}

/// One step's result.
struct Step {
    rate: f64,
    pass: bool,
    p99_ms: f64,
    cpu_ms_per_1k: f64,
    /// PostgreSQL's CPU per stored event, microseconds.
    pg_us_per_event: f64,
    /// On-disk bytes per stored event (see [`bytes_per_event`]).
    bytes_per_event: f64,
}

impl Bench {
    /// Offers `rate` events/s for `secs` round-robin over the first
    /// `projects` projects, waits for every accepted event to be stored,
    /// prints the step's line (after `label`) and empties the tables.
    async fn step(&self, label: &str, projects: usize, rate: f64, secs: f64) -> Result<Step> {
        let total = ((rate * secs).round() as u64).max(1);
        let targets = Arc::new(self.targets[..projects].to_vec());
        let first_seq = self.ids.reserve(total);
        let before = counters(&self.client, &self.mesher.addr).await?;
        let pid = self.mesher.pid().to_string();
        let cpu_before = proc_stats(&pid, self.ticks).cpu;
        let pg_before = postgres_cpu(self.ticks);
        let me_before = proc_stats("self", self.ticks).cpu;
        // A moment for the threads to connect before the first is due.
        let start = Instant::now() + Duration::from_millis(200);
        let threads = self.knobs.threads;
        let per_thread = self.knobs.connections.div_ceil(threads);
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let addr: Arc<str> = self.mesher.addr.as_str().into();
                let (targets, templates) = (targets.clone(), self.templates.clone());
                let nonce = self.ids.nonce;
                std::thread::spawn(move || {
                    load_thread(
                        k,
                        threads,
                        per_thread,
                        total,
                        rate,
                        start,
                        addr,
                        targets,
                        templates,
                        (nonce, first_seq),
                    )
                })
            })
            .collect();
        let mut seen = actix_rt::task::spawn_blocking(move || {
            let mut seen = Seen::default();
            for h in handles {
                match h.join() {
                    Ok(s) => seen.merge(s),
                    Err(_) => seen.errors += 1,
                }
            }
            seen
        })
        .await
        .map_err(|e| Error::internal_from("load threads", e))?;
        let load_secs = start.elapsed().as_secs_f64();
        let me_cpu = proc_stats("self", self.ticks).cpu - me_before;

        // Every accepted event must be stored: wait for the rows.
        let ok = seen.ok();
        let settle = Instant::now();
        let mut rows = stored_rows(&self.pool).await?;
        while rows < ok && settle.elapsed() < SETTLE_BOUND {
            tokio::time::sleep(Duration::from_millis(100)).await;
            rows = stored_rows(&self.pool).await?;
        }
        let settled_secs = settle.elapsed().as_secs_f64();
        // Counting rows and sizes costs PostgreSQL too: read its CPU first.
        let pg_cpu = postgres_cpu(self.ticks).saturating_sub(pg_before);
        let bytes_per_event = bytes_per_event(&self.pool).await?;
        let after = counters(&self.client, &self.mesher.addr).await?;
        let proc = proc_stats(&pid, self.ticks);
        let cpu = proc.cpu - cpu_before;
        let dropped = after.dropped - before.dropped;
        let refused = after.refused - before.refused;
        let p50 = quantile_ms(&mut seen.latencies, 0.50);
        let p99 = quantile_ms(&mut seen.latencies, 0.99);
        let lag99 = quantile_ms(&mut seen.lags, 0.99);
        let other: u64 = seen
            .statuses
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum();
        let pass = other == 0
            && seen.errors == 0
            && dropped == 0.0
            && refused == 0.0
            && rows == ok
            && ok == total
            && p99 < P99_LIMIT_MS
            && settled_secs <= KEEP_UP_BOUND.as_secs_f64();
        let cpu_ms_per_1k = cpu.as_secs_f64() * 1000.0 / (ok.max(1) as f64 / 1000.0);
        let pg_us_per_event = pg_cpu.as_secs_f64() * 1e6 / rows.max(1) as f64;
        let batches = (after.batches - before.batches).max(1.0);
        let batch_size = (after.stored - before.stored) / batches;
        let batch_ms = (after.batch_secs - before.batch_secs) * 1000.0 / batches;
        println!(
            "{label}: offered {rate:.0} ev/s for {secs} s: {ok}/{total} answered 200 ({:.0}/s), other {other}, errors {}, dropped {dropped}, refused {refused}, stored {rows}; latency p50 {p50:.1} ms p99 {p99:.1} ms (generator lag p99 {lag99:.1} ms); batches of {batch_size:.0} in {batch_ms:.0} ms on average, the last stored {settled_secs:.1} s after the load; mesher {cpu_ms_per_1k:.0} CPU ms/1k ev, postgres {pg_us_per_event:.0} CPU us/ev, {bytes_per_event:.0} bytes/ev on disk, rss {:.0} MiB; generator {:.0}% CPU; load {}: {}",
            ok as f64 / load_secs,
            seen.errors,
            proc.rss_mb,
            me_cpu.as_secs_f64() / load_secs * 100.0,
            load_average(),
            if pass { "pass" } else { "FAIL" },
        );
        if let Some(e) = &seen.first_error {
            println!(
                "    first failure: {}",
                e.chars().take(200).collect::<String>()
            );
        }
        if rows == ok && settled_secs > KEEP_UP_BOUND.as_secs_f64() {
            println!(
                "    storage fell behind: the last event was stored {settled_secs:.1} s after the load (at most {KEEP_UP_BOUND:?})"
            );
        }
        if rows < ok {
            println!(
                "    {} accepted events not stored within {SETTLE_BOUND:?} (mesher stored {} by its count)",
                ok - rows,
                after.stored - before.stored
            );
        }
        empty_tables(&self.pool, self.knobs.keep_issues).await?;
        Ok(Step {
            rate,
            pass,
            p99_ms: p99,
            cpu_ms_per_1k,
            pg_us_per_event,
            bytes_per_event,
        })
    }

    /// The highest offered rate that passes for `projects` projects; None
    /// when none tried did.
    async fn knee(&self, projects: usize, ceiling: f64) -> Result<Option<Step>> {
        let label = |n: usize| format!("knee {projects} project(s), step {n}");
        self.step(
            &format!("warm-up {projects} project(s), one event each"),
            projects,
            WARM_UP_RATE.min(projects as f64),
            (projects as f64 / WARM_UP_RATE).max(1.0),
        )
        .await?;
        let (step_secs, growth) = (self.knobs.step_secs, 2.0);
        let mut rate = if self.knobs.start > 0.0 {
            self.knobs.start
        } else {
            (ceiling / 4.0).max(10.0)
        };
        if self.knobs.alerts {
            // Two knees are compared: neither may pay for a cold process
            // (its first seconds of load fail on latency alone).
            self.step(
                &format!("warm-up {projects} project(s), at the first rate"),
                projects,
                rate,
                5.0,
            )
            .await?;
        }
        let (mut best, mut failed): (Option<Step>, Option<f64>) = (None, None);
        let mut n = 0;
        // Up until a step fails (or down until one passes).
        while n < self.knobs.max_steps {
            n += 1;
            let s = self.step(&label(n), projects, rate, step_secs).await?;
            if s.pass {
                best = Some(s);
                if failed.is_some() {
                    break;
                }
                rate *= growth;
            } else {
                failed = Some(rate);
                if best.is_some() {
                    break;
                }
                rate /= growth;
                if rate < 10.0 {
                    return Ok(None);
                }
            }
        }
        // Then bisect between the best pass and the lowest failure.
        let Some(mut high) = failed else {
            return Ok(best);
        };
        for _ in 0..self.knobs.refine {
            let Some(low) = best.as_ref().map(|b| b.rate) else {
                break;
            };
            if n >= self.knobs.max_steps {
                break;
            }
            n += 1;
            let s = self
                .step(&label(n), projects, (low + high) / 2.0, step_secs)
                .await?;
            if s.pass {
                best = Some(s);
            } else {
                high = s.rate;
            }
        }
        Ok(best)
    }
}

/// Removes every alert rule and channel (and so their alerts).
const NO_RULES: &str = "DELETE FROM alert_rules; DELETE FROM notification_channels; \
     UPDATE alert_rules_version SET version = version + 1";

/// On every project: a webhook channel to `url`, a new-issue rule and a
/// frequency rule (more than 1000 events in a minute), both notifying it.
/// One statement, as a bulk set-up; Mesher picks the rules up through
/// their version, as it does rules made through the API.
async fn alert_rules(pool: &Pool, url: &str) -> Result<()> {
    pool.get()
        .await?
        .execute(
            "WITH ch AS (
                 INSERT INTO notification_channels (id, project_id, kind, name, config)
                 SELECT gen_random_uuid(), id, 'webhook', 'bench', jsonb_build_object('url', $1::text)
                 FROM projects RETURNING id, project_id
             ), rules AS (
                 INSERT INTO alert_rules (id, project_id, name, condition_json, action_json)
                 SELECT gen_random_uuid(), ch.project_id, r.name, r.condition,
                     jsonb_build_object('channels', jsonb_build_array(ch.id),
                         'action_interval_minutes', 30)
                 FROM ch CROSS JOIN (VALUES
                     ('new issue', '{\"type\": \"new_issue\"}'::jsonb),
                     ('busy', '{\"type\": \"event_frequency\", \"count\": 1000, \"window_minutes\": 1}'::jsonb)
                 ) AS r(name, condition)
             )
             UPDATE alert_rules_version SET version = version + 1",
            &[&url],
        )
        .await?;
    Ok(())
}

/// The webhook receiver of the alert rules: answers 200 to every request
/// and notes when each `latency probe` arrived.
struct Hooks {
    port: u16,
    count: Arc<AtomicU64>,
    probes: Arc<std::sync::Mutex<BTreeMap<String, Instant>>>,
}

impl Hooks {
    async fn start() -> Result<Hooks> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::internal_from("webhook receiver", e))?;
        let hooks = Hooks {
            port: listener
                .local_addr()
                .map_err(|e| Error::internal_from("webhook receiver", e))?
                .port(),
            count: Default::default(),
            probes: Default::default(),
        };
        let (count, probes) = (hooks.count.clone(), hooks.probes.clone());
        actix_rt::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (count, probes) = (count.clone(), probes.clone());
                actix_rt::spawn(async move {
                    if let Some(body) = receive(socket).await {
                        count.fetch_add(1, Ordering::Relaxed);
                        let title = serde_json::from_slice::<Value>(&body)
                            .ok()
                            .and_then(|v| v["issue"]["title"].as_str().map(str::to_owned));
                        if let Some(title) = title.filter(|t| t.starts_with("latency probe")) {
                            probes.lock().unwrap().insert(title, Instant::now());
                        }
                    }
                });
            }
        });
        Ok(hooks)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn received(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Reads one request's body and answers 200.
async fn receive(mut socket: tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    let (head_end, length) = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..i]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0usize);
            break (i + 4, length);
        }
    };
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let _ = socket
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
    Some(data[head_end..head_end + length].to_vec())
}

impl Bench {
    /// At rest (no other load), `PROBES` events of new issues, one every
    /// 200 ms, to a project with the alert rules: the time from sending
    /// each to its webhook's arrival, p50 and p99.
    async fn notification_latency(&self, hooks: &Hooks) -> Result<()> {
        const PROBES: usize = 50;
        alert_rules(&self.pool, &hooks.url()).await?;
        let target = &self.targets[0];
        let url = format!(
            "http://{}/api/{}/store/",
            self.mesher.addr, target.public_id
        );
        let run = Uuid::now_v7().simple().to_string();
        let mut sent = BTreeMap::new();
        for i in 0..PROBES {
            let title = format!("latency probe {i} {run}");
            let body = json!({"event_id": Uuid::now_v7().simple().to_string(),
                "message": title, "fingerprint": [title]});
            sent.insert(title, Instant::now());
            let status = self
                .client
                .post(&url)
                .insert_header(("X-Sentry-Auth", target.auth.clone()))
                .send_json(&body)
                .await
                .map_err(|e| Error::internal(format!("probe: {e}")))?
                .status();
            if !status.is_success() {
                return Err(Error::internal(format!("probe answered {status}")));
            }
            actix_rt::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = Instant::now() + SETTLE_BOUND;
        while hooks.probes.lock().unwrap().len() < PROBES && Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let arrived = hooks.probes.lock().unwrap().clone();
        let mut ms: Vec<u32> = sent
            .iter()
            .filter_map(|(title, at)| {
                arrived
                    .get(title)
                    .map(|got| (*got - *at).as_millis() as u32)
            })
            .collect();
        let got = ms.len();
        println!(
            "notification latency at rest: {got}/{PROBES} webhooks; event to webhook p50={:.0} ms p99={:.0} ms",
            quantile_ms(&mut ms, 0.50),
            quantile_ms(&mut ms, 0.99)
        );
        sql(&self.pool, NO_RULES).await
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn announce(mesher: &Mesher, knobs: &Knobs) {
    println!(
        "mesher: pid {} on {}, log {}; load generator: {} connections on {} threads",
        mesher.pid(),
        mesher.addr,
        mesher.log_path.display(),
        knobs.connections,
        knobs.threads
    );
}

#[actix::main]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let url =
        std::env::var("DATABASE_URL").map_err(|_| Error::invalid("DATABASE_URL", "must be set"))?;
    let knobs = Knobs::from_env()?;
    let most = knobs.projects.iter().copied().max().unwrap_or(1);

    let pool = db::pool(&url, 16)?;
    db::apply_schema(&pool).await?;
    let today = chrono::Utc::now().date_naive();
    db::partitions::ensure_range(
        &pool,
        today,
        mesher::config::PartitionConfig::default().days_ahead,
        mesher::config::PartitionConfig::default().lock_timeout,
    )
    .await?;
    let made = Instant::now();
    let targets = Arc::new(make_projects(&pool, most).await?);
    println!(
        "set-up: {most} projects with a key each in {:.1} s",
        made.elapsed().as_secs_f64()
    );
    // A rate limit on every project (events per minute), to measure what
    // checking one costs: set high enough, it never refuses.
    if let Ok(limit) = std::env::var("BENCH_HTTP_RATE_LIMIT") {
        let limit: i32 = limit
            .parse()
            .map_err(|_| Error::invalid("BENCH_HTTP_RATE_LIMIT", "must be a number"))?;
        pool.get()
            .await?
            .execute("UPDATE projects SET rate_limit_per_minute = $1", &[&limit])
            .await?;
        println!("set-up: every project limited to {limit} events a minute");
    }

    let templates = Arc::new(templates()?);
    let (json, min, max, gz) = check_templates(&templates, targets[0].id)?;
    println!(
        "events: {TEMPLATES} templates, {json} bytes of JSON on average ({min} to {max}), {gz} bytes gzipped per request"
    );

    let ids = Arc::new(Ids::new());
    let (ceiling, starved) = ceiling(
        &url,
        targets[0].id,
        templates.clone(),
        ids.clone(),
        knobs.ceiling_secs,
    )
    .await?;
    println!(
        "ceiling: binary COPY x{CEILING_BATCH}, one connection, {} s: {ceiling:.0} events/s (waited for the producer {:.0}% of the time); load {}",
        knobs.ceiling_secs,
        starved * 100.0,
        load_average()
    );
    empty_tables(&pool, false).await?;
    let raw_ceiling = raw_ceiling(
        &pool,
        targets[0].id,
        templates.clone(),
        ids.clone(),
        knobs.ceiling_secs,
    )
    .await?;
    println!(
        "raw ceiling: binary COPY x{CEILING_BATCH} of compressed bodies into a table with only a primary key, synchronous commit, {} s: {raw_ceiling:.0} events/s; load {}",
        knobs.ceiling_secs,
        load_average()
    );

    let mesher = Mesher::start(&url)?;
    announce(&mesher, &knobs);
    let mut bench = Bench {
        pool,
        client: awc::Client::default(),
        mesher,
        ticks: clock_ticks(),
        targets,
        templates,
        ids,
        knobs,
    };

    let mut knees: BTreeMap<usize, Option<Step>> = BTreeMap::new();
    let mut knees_with_rules: BTreeMap<usize, Option<Step>> = BTreeMap::new();
    let hooks = match bench.knobs.alerts {
        true => Some(Hooks::start().await?),
        false => None,
    };
    let (mut rss_most, mut peak, mut complaints) = (f64::NAN, 0f64, 0);
    let project_counts = bench.knobs.projects.clone();
    for (i, &projects) in project_counts.iter().enumerate() {
        // Each project count on a fresh process, as a user running that
        // many projects has: memory a previous phase left to the allocator
        // must not count against the next.
        if i > 0 {
            peak = peak.max(proc_stats(&bench.mesher.pid().to_string(), bench.ticks).peak_rss_mb);
            complaints += bench.mesher.complaints.load(Ordering::Relaxed);
            let fresh = Mesher::start(&url)?;
            announce(&fresh, &bench.knobs);
            std::mem::replace(&mut bench.mesher, fresh).stop()?;
        }
        let knee = bench.knee(projects, ceiling).await?;
        match &knee {
            Some(s) => println!("knee {projects} project(s): {:.0} events/s", s.rate),
            None => println!("knee {projects} project(s): none found"),
        }
        if let Some(hooks) = &hooks {
            alert_rules(&bench.pool, &hooks.url()).await?;
            let with = bench.knee(projects, ceiling).await?;
            let rate = |k: &Option<Step>| k.as_ref().map_or(f64::NAN, |s| s.rate);
            println!(
                "knee {projects} project(s) with alert rules: {:.0} events/s ({:.1}% of the knee without; {} webhooks received so far)",
                rate(&with),
                100.0 * rate(&with) / rate(&knee),
                hooks.received()
            );
            sql(&bench.pool, NO_RULES).await?;
            knees_with_rules.insert(projects, with);
        }
        knees.insert(projects, knee);
        if projects == most {
            // Every project has sent events, and every writer has flushed.
            rss_most = proc_stats(&bench.mesher.pid().to_string(), bench.ticks).rss_mb;
        }
    }
    if let Some(hooks) = &hooks {
        bench.notification_latency(hooks).await?;
    }
    let peak = peak.max(proc_stats(&bench.mesher.pid().to_string(), bench.ticks).peak_rss_mb);
    let complaints = complaints + bench.mesher.complaints.load(Ordering::Relaxed);
    let log_path = bench.mesher.log_path.clone();
    bench.mesher.stop()?;
    println!(
        "mesher logged {complaints} warning(s)/error(s) (see {}); rss with {most} projects (writers idle): {rss_most:.0} MiB; peak {peak:.0} MiB",
        log_path.display()
    );

    let rate = |n: usize| {
        knees
            .get(&n)
            .and_then(|k| k.as_ref())
            .map_or(f64::NAN, |s| s.rate)
    };
    if hooks.is_some() {
        let with = |n: usize| {
            knees_with_rules
                .get(&n)
                .and_then(|k| k.as_ref())
                .map_or(f64::NAN, |s| s.rate)
        };
        println!(
            "alerts: knee_1_rules={:.0} knee_100_rules={:.0} knee_10000_rules={:.0} cost_1={:.1}% cost_100={:.1}% cost_10000={:.1}%",
            with(1),
            with(100),
            with(10_000),
            100.0 * (1.0 - with(1) / rate(1)),
            100.0 * (1.0 - with(100) / rate(100)),
            100.0 * (1.0 - with(10_000) / rate(10_000)),
        );
    }
    let knee_1 = knees.get(&1).and_then(|k| k.as_ref());
    println!(
        "ceiling={ceiling:.0} knee_1={:.0} knee_100={:.0} knee_10000={:.0} ratio_1={:.2} ratio_100={:.2} ratio_10000={:.2} cpu_ms_per_1k={:.1} p99_ms={:.1} rss_mb={peak:.0} rss_10000_mb={rss_most:.0} raw_ceiling={raw_ceiling:.0} raw_ratio_1={:.2} raw_ratio_100={:.2} raw_ratio_10000={:.2} mesher_us_per_event={:.0} pg_us_per_event={:.0} bytes_per_event={:.0}",
        rate(1),
        rate(100),
        rate(10_000),
        rate(1) / ceiling,
        rate(100) / ceiling,
        rate(10_000) / ceiling,
        knee_1.map_or(f64::NAN, |s| s.cpu_ms_per_1k),
        knee_1.map_or(f64::NAN, |s| s.p99_ms),
        rate(1) / raw_ceiling,
        rate(100) / raw_ceiling,
        rate(10_000) / raw_ceiling,
        knee_1.map_or(f64::NAN, |s| s.cpu_ms_per_1k),
        knee_1.map_or(f64::NAN, |s| s.pg_us_per_event),
        knee_1.map_or(f64::NAN, |s| s.bytes_per_event),
    );
    Ok(())
}
