//! Shared by every integration test: a fresh PostgreSQL database per test.
//!
//! `DATABASE_URL` must name a server where the role may `CREATE DATABASE`
//! (`scripts/test.sh` provides one). Each [`TestDb`] creates its own
//! database with the schema applied and drops it when it goes out of
//! scope, so tests run in parallel without seeing each other.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod outcomes;
pub mod proxy;

use mesher::config::PartitionConfig;
use mesher::db::{self, EventPool, Pool};
use mesher::domain::{Name, ProjectWithKey, Slug};
use mesher::services::{CreateOrg, CreateProjectWithKey};
use mesher::{Config, Mesher};
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

pub struct TestDb {
    /// A pool on the test's own database.
    pub pool: Pool,
    /// A pool like the one the writers get in the binary (see
    /// [`db::event_pool`]), for the writers and batches under test.
    pub events: EventPool,
    /// The URL of the test's own database.
    pub url: String,
    /// Its name, for the drop.
    name: String,
    /// The server's URL as given, used to create and drop the database.
    admin_url: String,
}

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at PostgreSQL (run the tests with scripts/test.sh)")
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

async fn admin_execute(admin_url: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .expect("connect to DATABASE_URL");
    let conn = tokio::spawn(connection);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = conn.await;
}

impl TestDb {
    /// A new empty database with the schema applied.
    pub async fn new() -> TestDb {
        Self::create(true).await
    }

    /// A new database without the schema (for tests of schema application).
    pub async fn empty() -> TestDb {
        Self::create(false).await
    }

    async fn create(with_schema: bool) -> TestDb {
        let _ = env_logger::builder().is_test(true).try_init();
        let admin_url = admin_url();
        let name = format!("mesher_test_{}", uuid::Uuid::now_v7().simple());
        admin_execute(&admin_url, &format!("CREATE DATABASE {name}")).await;
        let url = with_database(&admin_url, &name);
        let pool = db::pool(&url, 8).expect("pool");
        let events = db::event_pool(
            &url,
            8,
            false,
            Default::default(),
            PartitionConfig::default().lock_timeout,
        )
        .expect("event pool");
        if with_schema {
            db::apply_schema(&pool).await.expect("apply schema");
        }
        TestDb {
            pool,
            events,
            url,
            name,
            admin_url,
        }
    }

    /// Defaults shortened for tests: cheap bcrypt, quick timers, and a
    /// free port to listen on.
    pub fn config(&self) -> Config {
        let mut c = Config::new(&self.url);
        c.http.addr = "127.0.0.1:0".parse().unwrap();
        c.pool_size = 8;
        c.database_wait = Duration::from_secs(5);
        c.users.bcrypt_cost = 4;
        c.writer.flush_interval = Duration::from_millis(100);
        c.writer.retry_backoff = [20, 40, 80].map(Duration::from_millis).to_vec();
        c.spool.dir = Some(self.spool_dir());
        c
    }

    /// Mesher on this database with [`TestDb::config`], listening on a
    /// free port (its `http_addr` says which).
    pub async fn start(&self) -> Mesher {
        self.start_with(|_| {}).await
    }

    /// [`TestDb::start`] with the configuration changed by `tune` first.
    pub async fn start_with(&self, tune: impl FnOnce(&mut Config)) -> Mesher {
        let mut config = self.config();
        tune(&mut config);
        mesher::start(&config).await.expect("start mesher")
    }

    /// The spool directory of [`TestDb::config`]: the test's own, removed
    /// with its database.
    pub fn spool_dir(&self) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("mesher-test-spool-{}", self.name))
    }

    /// Runs SQL on the test's database (for setup and fault injection).
    pub async fn execute(&self, sql: &str) {
        self.pool
            .get()
            .await
            .expect("connection")
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A new project in an organization of its own: the registry routes
    /// only the events of projects that exist, and issues, which every
    /// stored event belongs to, reference their project.
    pub async fn new_project(&self) -> uuid::Uuid {
        let slug = Slug::parse(&format!("org-{}", uuid::Uuid::now_v7().simple())).unwrap();
        let org = db::orgs::insert(&self.pool, &Name::parse("name", "Org").unwrap(), &slug)
            .await
            .expect("create an organization");
        db::projects::insert(
            &self.pool,
            org.id,
            &Name::parse("name", "App").unwrap(),
            None,
        )
        .await
        .expect("create a project")
        .id
    }

    /// The first column of the first row of `sql`, as an i64.
    pub async fn count(&self, sql: &str) -> i64 {
        self.pool
            .get()
            .await
            .expect("connection")
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }
}

/// A project named `name` with its first key (labelled "default"), in an
/// organization of its own, made through `mesher`'s services as the
/// dashboard makes them.
pub async fn project_with_key(mesher: &Mesher, name: &str) -> ProjectWithKey {
    let slug = format!("org-{}", uuid::Uuid::now_v7().simple());
    let org = mesher
        .orgs
        .send(CreateOrg {
            name: "Org".into(),
            slug,
        })
        .await
        .expect("the organization service is running")
        .expect("create an organization");
    mesher
        .projects
        .send(CreateProjectWithKey {
            org_id: org.id.to_string(),
            name: name.into(),
            platform: Some("rust".into()),
            label: None,
        })
        .await
        .expect("the project service is running")
        .unwrap_or_else(|e| panic!("create project {name}: {e}"))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on;
        // a short-lived thread with its own runtime does the async work.
        let _ = std::fs::remove_dir_all(self.spool_dir());
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(admin_execute(
                    &admin_url,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ))
        })
        .join();
    }
}

/// How long [`wait_until`] waits for something that must happen: far more
/// than any of it needs, so reaching it means it is not going to happen.
const LIVENESS_BOUND: Duration = Duration::from_secs(10);

/// Polls `check` until it holds; panics naming `what` once the liveness bound
/// has passed. A bound on liveness, not a timing assertion.
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + LIVENESS_BOUND;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "gave up after {LIVENESS_BOUND:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// Panics unless `result` is `InvalidInput` naming `field`.
#[track_caller]
pub fn assert_invalid<T: std::fmt::Debug>(result: Result<T, mesher::Error>, field: &str) {
    match result {
        Err(mesher::Error::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("expected InvalidInput {{ field: {field:?} }}, got {other:?}"),
    }
}

/// Panics unless `result` is `NotFound` naming `entity`.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, mesher::Error>, entity: &str) {
    match result {
        Err(mesher::Error::NotFound { entity: e }) if e == entity => {}
        other => panic!("expected NotFound {{ entity: {entity:?} }}, got {other:?}"),
    }
}
