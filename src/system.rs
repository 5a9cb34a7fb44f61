//! The wiring: every actor started in one place, in one actix System.
//!
//! Both the binary and embedders call [`start`] (or [`run`], which adds
//! waiting for a shutdown signal). It must be called from inside a running
//! actix System, e.g. under `#[actix::main]` or `System::new().block_on`.

use crate::config::Config;
use crate::db::{self, Pool};
use crate::domain::PublicUrl;
use crate::error::Result;
use crate::http;
use crate::metrics::Metrics;
use crate::services::{
    DrainAll, EnsurePartitions, IssueService, OrgService, OrgTokenService, PartitionManager,
    ProjectService, RegistryStats, SourceMapService, Spool, UserService, WriterRegistry,
};
use actix::prelude::*;
use actix_web::dev::ServerHandle;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// A running Mesher: the address of every service.
pub struct Mesher {
    /// The pool the tenancy services share, for embedders that need SQL of
    /// their own.
    pub pool: Pool,
    pub orgs: Addr<OrgService>,
    pub projects: Addr<ProjectService>,
    pub users: Addr<UserService>,
    /// Send events here (`Store`); it routes them to per-project writers.
    pub writers: Addr<WriterRegistry>,
    pub partitions: Addr<PartitionManager>,
    /// Issues and their events: listing, reading, triage.
    pub issues: Addr<IssueService>,
    /// Organization tokens (sentry-cli's).
    pub tokens: Addr<OrgTokenService>,
    /// Uploaded source maps and the cache of parsed ones.
    pub source_maps: Addr<SourceMapService>,
    /// What is counted, as `/metrics` serves it.
    pub metrics: Metrics,
    /// Where the HTTP server listens (the port actually bound).
    pub http_addr: SocketAddr,
    /// What DSNs point at.
    pub public_url: PublicUrl,
    /// Stops the HTTP server (see [`Mesher::shutdown`]).
    http: ServerHandle,
}

/// Checks the configuration ([`Config::validate`]), connects (waiting up to
/// `config.database_wait` for PostgreSQL), applies the schema, ensures
/// today's and the coming days' partitions, and starts every service and
/// the HTTP server.
pub async fn start(config: &Config) -> Result<Mesher> {
    config.validate()?;
    db::wait_for_database(&config.database_url, config.database_wait).await?;
    let pool = db::pool(&config.database_url, config.pool_size)?;
    db::apply_schema(&pool).await?;

    let partitions = PartitionManager::new(pool.clone(), config.partitions.clone()).start();
    // The manager's own start-up check runs concurrently; asking once more
    // means partitions certainly exist when `start` returns.
    partitions.send(EnsurePartitions).await??;

    // Listening before the services start tells which port a configured
    // port 0 became, which the default public URL, and so every DSN, names.
    let listener = http::server::listen(config.http.addr)?;
    let http_addr = listener
        .local_addr()
        .map_err(|e| crate::Error::internal_from("listening socket", e))?;
    let public_url = config.http.public_url(http_addr)?;

    let metrics = Metrics::default();
    let reachability = db::Reachability::default();
    let spool = Spool::open(&config.spool, reachability.clone(), metrics.clone())?;
    let projects = ProjectService::new(pool.clone(), public_url.clone()).start();
    let writers = WriterRegistry::start_on_own_thread(
        db::event_pool(
            &config.database_url,
            config.storage_pool_size,
            config.storage_synchronous_commit,
            reachability,
        )?,
        config.writer.clone(),
        metrics.clone(),
        spool,
    );
    let users = UserService::new(pool.clone(), config.users.clone()).start();
    let orgs = OrgService::new(pool.clone()).start();
    let issues = IssueService::new(pool.clone()).start();
    let tokens = OrgTokenService::new(pool.clone()).start();
    let source_maps = SourceMapService::new(pool.clone(), config.source_maps.clone()).start();
    let state = http::State {
        projects: projects.clone(),
        users: users.clone(),
        orgs: orgs.clone(),
        issues: issues.clone(),
        dashboard: http::api::Dashboard {
            allow_registration: config.http.allow_registration,
            secure_cookies: public_url.is_https(),
            logins: Default::default(),
        },
        writers: writers.clone(),
        tokens: tokens.clone(),
        source_maps: source_maps.clone(),
        source_map_config: config.source_maps.clone(),
        pool: pool.clone(),
        metrics: metrics.clone(),
        body_timeout: config.http.client_timeout,
        body_memory: Arc::new(Semaphore::new(http::BODY_MEMORY_KIB)),
    };
    let server = http::server::serve(state, listener, &config.http)?;
    let http = server.handle();
    actix_rt::spawn(server);

    Ok(Mesher {
        orgs,
        projects,
        users,
        issues,
        tokens,
        source_maps,
        writers,
        partitions,
        pool,
        metrics,
        http_addr,
        public_url,
        http,
    })
}

impl Mesher {
    /// Stops the HTTP server (no new connections; requests in progress
    /// finish within `http.shutdown_timeout`), then stops taking events and
    /// writes every buffered one. Returns the writers' final counters.
    pub async fn shutdown(self) -> Result<RegistryStats> {
        self.http.stop(true).await;
        let stats = self.writers.send(DrainAll).await?;
        log::info!(
            "drained {} storage writer(s): {} events stored, {} spooled, {} dropped on overflow, {} dropped after retries; the spool holds {} events",
            stats.writers,
            stats.totals.stored,
            stats.totals.spooled,
            stats.totals.dropped_overflow,
            stats.totals.dropped_after_retries,
            stats.spool.events
        );
        Ok(stats)
    }
}

/// Starts Mesher, logs "ready", runs until `shutdown` completes, then
/// drains every writer. A shutdown during start-up (say, while waiting for
/// PostgreSQL) returns at once with empty counters: nothing was buffered. The caller decides what shutdown means (a signal
/// for the binary, anything for an embedder or a test).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<RegistryStats> {
    let mut shutdown = std::pin::pin!(shutdown);
    // A signal while still waiting for PostgreSQL ends the wait: there is
    // nothing to drain yet.
    let mesher = tokio::select! {
        started = start(&config) => started?,
        () = &mut shutdown => {
            log::info!("stopped before start-up finished");
            return Ok(RegistryStats::default());
        }
    };
    log::info!("ready: listening on http://{}", mesher.http_addr);
    shutdown.await;
    log::info!("shutting down");
    mesher.shutdown().await
}

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => log::info!("received SIGINT"),
                _ = term.recv() => log::info!("received SIGTERM"),
            }
        }
        _ => {
            log::error!("could not install signal handlers; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
