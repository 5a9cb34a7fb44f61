//! Server time of the web UI's heaviest pages, on a project holding
//! 100,000 events in 2,000 issues (half of them in one, 300 distinct
//! users), through a real
//! socket with a session cookie:
//!
//! - the issue list: 25 issues with their users affected and 14-day
//!   counts (`GetIssueActivity` reads every stored event of each);
//! - the issue page of an event with 50 frames and 100 breadcrumbs;
//! - the issue page of the issue with 50,000 events (its users affected
//!   read every one).
//!
//! Run with `scripts/bench-pages.sh` (a fresh database, a release build).
//! Prints one line per page with p50 and p99 over `BENCH_PAGES_REQUESTS`
//! sequential requests (default 200), then a summary line.

use mesher::domain::Event;
use mesher::services::{CreateOrgAsOwner, CreateProject, Login, Register, Store};
use mesher::{Config, Error};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use uuid::Uuid;

const ISSUES: i64 = 2_000;
const EVENTS: i64 = 100_000;
const USERS: i64 = 300;

type Result<T> = std::result::Result<T, Error>;

fn failed(what: &str) -> impl FnOnce(String) -> Error + '_ {
    move |e| Error::internal(format!("{what}: {e}"))
}

/// 100,000 events in 2,000 issues, straight into the tables, half of them
/// in the first issue (as one failure often outnumbers all the others):
/// the pages read them, how they got there does not matter here. They are
/// received over the last 100 seconds of today (UTC), in today's
/// partition.
async fn seed(database_url: &str, project: Uuid) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    actix_rt::spawn(connection);
    client
        .execute(
            "INSERT INTO issues (id, project_id, fingerprint, title, level, event_count, first_seen, last_seen)
             SELECT gen_random_uuid(), $1, 'seeded-' || g, 'SeededError: number ' || g, 'error', 0, now(), now()
             FROM generate_series(1, $2::bigint) g",
            &[&project, &ISSUES],
        )
        .await?;
    client
        .execute(
            "WITH numbered AS (
                 SELECT id, row_number() OVER (ORDER BY fingerprint) - 1 AS n
                 FROM issues WHERE project_id = $1)
             INSERT INTO events (id, project_id, issue_id, level, message, fingerprint,
                                 tags, extra, user_context, received_at)
             SELECT gen_random_uuid(), $1, numbered.id, 'error', 'seeded event ' || g,
                    'seeded', '{\"env\": \"bench\"}', '{}',
                    jsonb_build_object('id', 'user-' || (g % $3::bigint)),
                    greatest(date_trunc('day', now()), now() - g * interval '1 ms')
             FROM generate_series(1, $2::bigint) g
             JOIN numbered ON numbered.n = CASE WHEN g % 2 = 0 THEN 0
                                                ELSE g % (SELECT count(*) FROM numbered) END",
            &[&project, &EVENTS, &USERS],
        )
        .await?;
    client
        .batch_execute(&format!(
            "UPDATE issues i SET event_count = c.n, last_seen = c.last
             FROM (SELECT issue_id, count(*) AS n, max(received_at) AS last
                   FROM events WHERE project_id = '{project}' GROUP BY issue_id) c
             WHERE i.id = c.issue_id;
             ANALYZE issues; ANALYZE events;"
        ))
        .await?;
    Ok(())
}

/// An error event with 50 frames and 100 breadcrumbs, as an SDK sends one.
fn big_event() -> Value {
    let frames: Vec<Value> = (0..50)
        .map(|i| {
            json!({
                "function": format!("app::handlers::step_{i}"),
                "module": "app::handlers",
                "filename": format!("src/handlers/step_{i}.rs"),
                "lineno": 10 + i,
                "in_app": i % 3 == 0,
                "pre_context": ["let order = load(id)?;", "let total = order.total();"],
                "context_line": "let paid = charge(&order, total)?;",
                "post_context": ["audit(&order);", "Ok(paid)"],
                "vars": {"id": i, "total": "19.99"}
            })
        })
        .collect();
    let crumbs: Vec<Value> = (0..100)
        .map(|i| {
            json!({
                "timestamp": 1_700_000_000 + i,
                "category": if i % 2 == 0 { "http" } else { "query" },
                "level": "info",
                "message": format!("step {i} of the checkout"),
                "data": {"url": format!("https://shop.example/api/{i}"), "status_code": 200}
            })
        })
        .collect();
    json!({
        "event_id": Uuid::now_v7().simple().to_string(),
        "level": "error",
        "platform": "rust",
        "release": "shop@1.4.2",
        "environment": "production",
        "exception": {"values": [{
            "type": "PaymentDeclined",
            "value": "card declined for order 1234",
            "stacktrace": {"frames": frames}
        }]},
        "breadcrumbs": {"values": crumbs},
        "tags": {"region": "eu", "shard": "7"},
        "user": {"id": "user-1", "email": "ann@example.org"},
        "request": {"method": "POST", "url": "https://shop.example/checkout"},
        "contexts": {"os": {"name": "Linux"}, "runtime": {"name": "rustc", "version": "1.89"}},
        "sdk": {"name": "sentry.rust", "version": "0.49.0"}
    })
}

/// p50 and p99 of `n` sequential GETs of `path`, in milliseconds; every
/// answer must be a 200.
async fn time_page(base: &str, cookie: &str, path: &str, n: usize) -> Result<(f64, f64)> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let started = Instant::now();
        let mut res = client
            .get(format!("{base}{path}"))
            .insert_header(("Cookie", cookie))
            .send()
            .await
            .map_err(|e| failed(path)(e.to_string()))?;
        let body = res
            .body()
            .limit(16 << 20)
            .await
            .map_err(|e| failed(path)(e.to_string()))?;
        if res.status() != 200 {
            return Err(failed(path)(format!(
                "{}: {}",
                res.status(),
                String::from_utf8_lossy(&body)
            )));
        }
        // The first few warm the caches and the pool.
        if i >= 10 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    Ok((at(0.50), at(0.99)))
}

/// The first issue whose title is like `title_like`.
async fn first_issue_with(database_url: &str, title_like: &str) -> Result<Uuid> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    actix_rt::spawn(connection);
    let row = client
        .query_one(
            "SELECT id FROM issues WHERE title LIKE $1 ORDER BY fingerprint LIMIT 1",
            &[&title_like],
        )
        .await?;
    Ok(row.get(0))
}

#[actix::main]
async fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let requests: usize = std::env::var("BENCH_PAGES_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut config = Config::from_env()?;
    config.http.addr = "127.0.0.1:0".parse().expect("an address");
    config.users.bcrypt_cost = 4;
    config.spool.dir = None;
    let mesher = mesher::start(&config).await?;
    let base = format!("http://{}", mesher.http_addr);

    let user = mesher
        .users
        .send(Register {
            email: "bench@example.org".into(),
            password: "correct horse battery staple".into(),
            display_name: "Bench".into(),
        })
        .await??;
    let login = mesher
        .users
        .send(Login {
            email: user.email.clone(),
            password: "correct horse battery staple".into(),
        })
        .await??;
    let cookie = format!("mesher_session={}", login.token.expose());
    let org = mesher
        .orgs
        .send(CreateOrgAsOwner {
            name: "Bench".into(),
            slug: "bench".into(),
            owner_id: user.id,
        })
        .await??;
    let project = mesher
        .projects
        .send(CreateProject {
            org_id: org.id.to_string(),
            name: "shop".into(),
            platform: Some("rust".into()),
        })
        .await??;

    let seeding = Instant::now();
    seed(&config.database_url, project.id).await?;
    let event = Event::from_json(project.id, big_event().to_string().as_bytes())?;
    mesher.writers.do_send(Store(event));
    // The writer flushes within its interval (5 s by default).
    let big = loop {
        if let Ok(id) = first_issue_with(&config.database_url, "%PaymentDeclined%").await {
            break id;
        }
        if seeding.elapsed() > Duration::from_secs(120) {
            return Err(Error::internal("the big event was not stored"));
        }
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    };
    let biggest = first_issue_with(&config.database_url, "SeededError%").await?;
    println!(
        "seeded {EVENTS} events in {ISSUES} issues ({USERS} users) and one event of 50 frames and 100 breadcrumbs in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let p = project.id;
    let pages = [
        (
            "issue list (25 issues, users and 14 days)",
            format!("/projects/{p}/issues"),
        ),
        (
            "issue page (50 frames, 100 breadcrumbs)",
            format!("/projects/{p}/issues/{big}"),
        ),
        (
            "issue page (50,000 events)",
            format!("/projects/{p}/issues/{biggest}"),
        ),
    ];
    let mut summary = Vec::new();
    for (name, path) in &pages {
        let (p50, p99) = time_page(&base, &cookie, path, requests).await?;
        println!("{name}: {requests} requests, p50 {p50:.1} ms, p99 {p99:.1} ms");
        summary.push((p50, p99));
    }
    println!(
        "list_p50_ms={:.1} list_p99_ms={:.1} issue_p50_ms={:.1} issue_p99_ms={:.1} big_issue_p50_ms={:.1} big_issue_p99_ms={:.1}",
        summary[0].0, summary[0].1, summary[1].0, summary[1].1, summary[2].0, summary[2].1
    );
    mesher.shutdown().await?;
    Ok(())
}
