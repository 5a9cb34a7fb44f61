//! Server time of the web UI's heaviest pages, on a project holding
//! 100,000 events in 2,000 issues (half of them in one, 300 distinct
//! users, five releases, two environments, three browsers), through a
//! real socket with a session cookie:
//!
//! - the issue list: 25 issues with their users affected and 14-day
//!   counts, with no search, with `is:unresolved release:X`, with a tag
//!   search (`browser.name:Firefox`) and with `users:>10`;
//! - the issue page of an event with 50 frames and 100 breadcrumbs;
//! - the issue page of the issue with 50,000 events, with its tag
//!   breakdown and activity.
//!
//! The events go straight into the tables, and their triage aggregates
//! (tag counts, users, releases) are made from them with SQL, as the
//! write path would have left them.
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
                                 tags, extra, user_context, release, environment, received_at)
             SELECT gen_random_uuid(), $1, numbered.id, 'error', 'seeded event ' || g,
                    'seeded',
                    jsonb_build_object('browser.name', (ARRAY['Chrome', 'Firefox', 'Safari'])[1 + g % 3]),
                    '{}',
                    jsonb_build_object('id', 'user-' || (g % $3::bigint)),
                    'shop@1.' || (g % 5), CASE WHEN g % 4 = 0 THEN 'staging' ELSE 'production' END,
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
             CREATE TEMP TABLE seeded_tags AS
                 SELECT e.project_id, e.issue_id, t.key, (e.received_at AT TIME ZONE 'UTC')::date AS day,
                        t.value, count(*) AS n, min(e.received_at) AS first_seen,
                        max(e.received_at) AS last_seen
                 FROM events e, LATERAL (VALUES
                     ('level', e.level), ('release', e.release), ('environment', e.environment),
                     ('browser.name', e.tags ->> 'browser.name'),
                     ('user', 'id:' || (e.user_context ->> 'id'))) AS t(key, value)
                 WHERE e.project_id = '{project}' AND t.value IS NOT NULL
                 GROUP BY 1, 2, 3, 4, 5;
             INSERT INTO issue_tag_values (project_id, issue_id, key, day, value, count, first_seen, last_seen)
                 SELECT project_id, issue_id, key, day, value, n, first_seen, last_seen FROM seeded_tags;
             INSERT INTO issue_users (project_id, issue_id, who, last_day)
                 SELECT project_id, issue_id, value, max(day) FROM seeded_tags WHERE key = 'user'
                 GROUP BY 1, 2, 3;
             UPDATE issues i SET user_count = u.n
             FROM (SELECT issue_id, count(*) AS n FROM issue_users GROUP BY 1) u WHERE i.id = u.issue_id;
             INSERT INTO releases (project_id, version, first_seen, last_seen)
                 SELECT project_id, value, min(first_seen), max(last_seen) FROM seeded_tags
                 WHERE key = 'release' GROUP BY 1, 2;
             DROP TABLE seeded_tags;
             ANALYZE issues; ANALYZE events; ANALYZE issue_tag_values;"
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
    let list = |query: &str| {
        let q = serde_urlencoded::to_string([("status", "all"), ("query", query)])
            .expect("a query string");
        format!("/projects/{p}/issues?{q}")
    };
    let pages = [
        (
            "issue list (25 issues, users and 14 days)",
            format!("/projects/{p}/issues"),
        ),
        (
            "issue list, is:unresolved release:shop@1.3",
            list("is:unresolved release:shop@1.3"),
        ),
        (
            "issue list, browser.name:Firefox",
            list("browser.name:Firefox"),
        ),
        ("issue list, users:>10", list("users:>10")),
        (
            "issue page (50 frames, 100 breadcrumbs)",
            format!("/projects/{p}/issues/{big}"),
        ),
        (
            "issue page (50,000 events, tags and activity)",
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
        "list_p50_ms={:.1} list_p99_ms={:.1} release_p50_ms={:.1} release_p99_ms={:.1} \
         tag_p50_ms={:.1} tag_p99_ms={:.1} users_p50_ms={:.1} users_p99_ms={:.1} \
         issue_p50_ms={:.1} issue_p99_ms={:.1} big_issue_p50_ms={:.1} big_issue_p99_ms={:.1}",
        summary[0].0,
        summary[0].1,
        summary[1].0,
        summary[1].1,
        summary[2].0,
        summary[2].1,
        summary[3].0,
        summary[3].1,
        summary[4].0,
        summary[4].1,
        summary[5].0,
        summary[5].1
    );
    mesher.shutdown().await?;
    Ok(())
}
