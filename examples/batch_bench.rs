//! The cost of storing one batch in PostgreSQL, without HTTP or actors:
//! `db::events::insert_batch` (the issue upsert, the COPY and the triage
//! aggregation in one transaction) for `N` (100) batches of `SIZE` (100)
//! events of `ISSUES` (61) issues, after 10 warm-up batches, on a fresh database at
//! `DATABASE_URL`. Each event carries about 12 indexed tags; with `LOW`
//! set, an issue's tags have one value each (as `http_bench`'s events),
//! otherwise `user`, `server_name` and `url` vary (500, 12 and 30
//! values). Prints the time per batch and per event; read
//! `pg_stat_statements` alongside for each statement's share.
//!
//! ```sh
//! createdb batch_bench
//! DATABASE_URL=postgres://localhost/batch_bench cargo run --release --example batch_bench
//! ```

use mesher::db;
use mesher::domain::{Event, Name, Slug};
use serde_json::json;
use std::time::Instant;

#[actix::main]
async fn main() {
    let url = std::env::var("DATABASE_URL").unwrap();
    let pool = db::pool(&url, 4).unwrap();
    db::apply_schema(&pool).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    db::partitions::ensure_range(&pool, today, 1, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let org = db::orgs::insert(
        &pool,
        &Name::parse("name", "B").unwrap(),
        &Slug::parse("b").unwrap(),
    )
    .await
    .unwrap();
    let project = db::projects::insert(&pool, org.id, &Name::parse("name", "p").unwrap(), None)
        .await
        .unwrap()
        .id;
    let events_pool = db::event_pool(
        &url,
        2,
        true,
        Default::default(),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let size: usize = std::env::var("SIZE")
        .unwrap_or("100".into())
        .parse()
        .unwrap();
    let n: usize = std::env::var("N").unwrap_or("100".into()).parse().unwrap();
    let mut total = std::time::Duration::ZERO;
    let mut seed = 12345u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    };
    let issues: usize = std::env::var("ISSUES")
        .unwrap_or("61".into())
        .parse()
        .unwrap();
    for b in 0..n + 10 {
        let batch: Vec<Event> = (0..size).map(|_| {
            let k = rnd() % issues;
            let low = std::env::var("LOW").is_ok();
            let u = if low { k * 101 } else { rnd() % 500 };
            let j = json!({"event_id": uuid::Uuid::now_v7().simple().to_string(), "level": "error", "release": "shop@2.4.1", "environment": "production",
              "server_name": format!("web-{}", if low { k % 12 } else { rnd() % 12 }),
              "exception": {"values": [{"type": "KeyError", "value": format!("'k{k}'"), "stacktrace": {"frames": [{"function": format!("f{k}"), "module": "app.views", "filename": "app/views.py", "lineno": 10, "in_app": true}]}}]},
              "tags": {"browser": "Firefox 133", "os": "Windows 11", "customer_tier": "gold", "url": format!("/api/orders/{}", if low { 17 } else { rnd() % 30 })},
              "user": {"id": format!("{u}"), "ip_address": "1.2.3.4"},
              "contexts": {"os": {"name": "Linux", "version": "6.8"}, "runtime": {"name": "CPython", "version": "3.12.7"}},
              "request": {"url": "https://x.example.com/a/b?c=d", "method": "GET"},
              "sdk": {"name": "sentry.python.django", "version": "2.19.0"}});
            Event::from_json(project, j.to_string().as_bytes()).unwrap()
        }).collect();
        let t = Instant::now();
        db::events::insert_batch(&events_pool, &batch)
            .await
            .unwrap();
        if b >= 10 {
            total += t.elapsed();
        }
    }
    println!(
        "size {size}: {:?} per batch, {:?} per event",
        total / n as u32,
        total / (n * size) as u32
    );
}
