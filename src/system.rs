//! The wiring: every actor started in one place, in one actix System.
//!
//! Both the binary and embedders call [`start`] (or [`run`], which adds
//! waiting for a shutdown signal). It must be called from inside a running
//! actix System, e.g. under `#[actix::main]` or `System::new().block_on`.
//!
//! # Threads
//!
//! Each busy path gets a thread of its own, so that one cannot hold up the
//! others:
//!
//! | thread | what runs there |
//! |---|---|
//! | the System's | [`OrgService`], [`UserService`] (bcrypt on tokio's blocking pool), [`OrgTokenService`], [`PartitionManager`] |
//! | `lookups` | [`ProjectService`]: ingest keys the [`KeyCache`] missed, projects and keys |
//! | `dashboard` | [`IssueService`]: the reads behind the API and the pages |
//! | `maps` | [`SourceMapService`]: the source maps ingest resolves frames with (parsing on tokio's blocking pool), uploads |
//! | `intake` | [`WriterRegistry`]: starting, retiring and draining writers; the embedding API's `Store` |
//! | `writers` | every [`StorageWriter`](crate::services::StorageWriter) |
//! | `storage` | [`Committer`] and [`SpoolReplayer`], the only users of the event pool |
//! | `notifier` | [`Notifier`]: alert deliveries to webhooks and email |
//! | the spool's | [`SpoolStore`]'s file (a `SyncArbiter`: every call blocks on disk) |
//! | `ack-log` | the [`AckLog`]'s appends and fsyncs (a plain thread; `MESHER_ACK=durable`) |
//! | HTTP workers | actix-web's, one per core; body decoding and large events go to the blocking pool |
//!
//! An envelope's way from the socket to a commit: an HTTP worker reads,
//! decodes and parses it and resolves its key (from the [`KeyCache`]),
//! waits for the [`AckLog`] to have its events on disk, then puts them in
//! its project's inbox (found in the registry's directory) on its own
//! thread; the writer hears of the inbox by one `Wake` per full batch (or
//! its timer), and its batch goes to the committer in one `Commit`, which
//! answers when PostgreSQL (or the spool) has it.

use crate::app;
use crate::config::{Ack, Config, WriterConfig};
use crate::db::{self, EventPool, Pool};
use crate::domain::PublicUrl;
use crate::error::Result;
use crate::http;
use crate::metrics::Metrics;
use crate::services::{
    AckLog, Committer, DrainAll, EnsurePartitions, Intake, IssueService, KeyCache, Notifier,
    OrgService, OrgTokenService, PartitionManager, ProjectService, RegistryStats, SourceMapService,
    Spool, SpoolReplayer, SpoolStore, UserService, WriterRegistry,
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
    /// The path HTTP requests take into the writers (see [`Intake`]).
    pub intake: Intake,
    /// Ingest keys resolved lately, which the HTTP layer reads.
    pub keys: KeyCache,
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
    /// The threads started here, stopped after the last drain.
    threads: Vec<Arbiter>,
    /// Closed at shutdown, letting its directory go for the next process.
    spool: Option<Spool>,
    /// Closed at shutdown, after the drain (`MESHER_ACK=durable`).
    ack_log: Option<AckLog>,
}

/// The storage side, started by [`start_storage`].
pub struct Storage {
    /// Starts, retires and drains the writers; takes `Store`.
    pub registry: Addr<WriterRegistry>,
    /// The path a request's events take (see [`Intake`]).
    pub intake: Intake,
    /// Lands the writers' batches (and a crashed run's, replayed).
    pub committer: Addr<Committer>,
    /// The threads it runs on (intake, writers, storage I/O), to stop once
    /// the registry has drained.
    pub threads: Vec<Arbiter>,
}

/// Starts the storage side on threads of its own: the committer and, with
/// a spool, its store and replayer; the registry; and the intake in front
/// of them. The event pool is the committer's and the replayer's alone:
/// give it `config.concurrent_writes + 1` connections (see
/// [`db::event_pool`]). `projects` answers the registry's question whether
/// a project that `Store` names exists.
pub fn start_storage(
    pool: EventPool,
    projects: Addr<ProjectService>,
    config: WriterConfig,
    metrics: Metrics,
    spool: Option<Spool>,
) -> Storage {
    let (io, intake, writers) = (Arbiter::new(), Arbiter::new(), Arbiter::new());
    let committer = Committer::new(
        pool.clone(),
        spool.clone(),
        metrics.clone(),
        config.concurrent_writes,
    );
    let committer = Committer::start_in_arbiter(&io.handle(), move |_| committer);
    let committer_addr = committer.clone();
    if let Some(spool) = &spool {
        let replayer = SpoolReplayer::new(spool.clone(), pool, metrics.clone());
        SpoolReplayer::start_in_arbiter(&io.handle(), move |_| replayer);
    }
    let registry = WriterRegistry::new(
        committer,
        projects,
        config,
        writers.handle(),
        metrics,
        spool,
    );
    let directory = registry.directory();
    let registry = WriterRegistry::start_in_arbiter(&intake.handle(), move |_| registry);
    Storage {
        intake: Intake::new(registry.clone(), directory),
        committer: committer_addr,
        registry,
        threads: vec![intake, writers, io],
    }
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

    let metrics = Metrics::default();
    let partitions = PartitionManager::new(pool.clone(), config.partitions.clone())
        .with_metrics(metrics.clone())
        .start();
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

    let (lookups, dashboard) = (Arbiter::new(), Arbiter::new());
    let project_service = ProjectService::new(pool.clone(), public_url.clone());
    let keys: KeyCache = project_service.key_cache();
    let projects = ProjectService::start_in_arbiter(&lookups.handle(), move |_| project_service);
    let issue_service = IssueService::new(pool.clone()).counting(metrics.clone());
    let issues = IssueService::start_in_arbiter(&dashboard.handle(), move |_| issue_service);
    let users = UserService::new(pool.clone(), config.users.clone()).start();
    let notifying = Arbiter::new();
    let notifier = Notifier::new(
        pool.clone(),
        config.notifier.clone(),
        public_url.clone(),
        metrics.clone(),
        config.database_url.clone(),
    )?;
    Notifier::start_in_arbiter(&notifying.handle(), move |_| notifier);
    let orgs = OrgService::new(pool.clone()).start();
    let tokens = OrgTokenService::new(pool.clone()).start();
    let maps = Arbiter::new();
    let (maps_pool, maps_config) = (pool.clone(), config.source_maps.clone());
    let source_maps = SourceMapService::start_in_arbiter(&maps.handle(), move |_| {
        SourceMapService::new(maps_pool, maps_config)
    });

    let reachability = db::Reachability::default();
    let event_pool = db::event_pool(
        &config.database_url,
        config.writer.event_pool_size(),
        config.storage_synchronous_commit,
        reachability.clone(),
        config.partitions.lock_timeout,
    )?;
    let spool = SpoolStore::open(&config.spool, &pool, metrics.clone())
        .await?
        .map(|store| Spool::start(store, reachability));
    let replay_pool = event_pool.clone();
    let mut storage = start_storage(
        event_pool,
        projects.clone(),
        config.writer.clone(),
        metrics.clone(),
        spool.clone(),
    );
    // A log is opened in durable mode, and in memory mode when an earlier
    // durable run left one: its events were answered 200, so they are
    // replayed whatever this run acknowledges by.
    let ack_dir = config
        .spool
        .dir
        .as_ref()
        .map(|dir| dir.join(crate::services::ACK_LOG_DIR));
    let ack_log = match (config.ack.mode, ack_dir) {
        (mode, Some(dir)) if mode == Ack::Durable || dir.exists() => {
            let (max, log_metrics) = (config.ack.max_bytes, metrics.clone());
            let (log, leftovers) =
                tokio::task::spawn_blocking(move || AckLog::open(&dir, max, log_metrics))
                    .await
                    .map_err(|e| {
                        crate::Error::internal_from("opening the acknowledgement log", e)
                    })??;
            // Alongside new traffic: what the earlier run left is bounded
            // by the log, and its segments stay until it is settled.
            if leftovers.is_empty() {
                if let Some(spool) = &spool {
                    spool.log_replayed();
                }
            } else {
                let replay = crate::services::Replay {
                    committer: storage.committer.clone(),
                    pool: replay_pool,
                    spool: spool.clone(),
                    metrics: metrics.clone(),
                    retry_backoff: config.writer.retry_backoff.clone(),
                };
                actix_rt::spawn(crate::services::replay_leftovers(leftovers, replay));
            }
            if mode == Ack::Durable {
                storage.intake = storage.intake.durable(log.clone());
            }
            Some(log)
        }
        // Config::validate refuses durable acknowledgement without a
        // directory.
        _ => None,
    };

    let state_keys = keys.clone();
    let state = app::State {
        projects: projects.clone(),
        keys,
        users: users.clone(),
        orgs: orgs.clone(),
        issues: issues.clone(),
        dashboard: app::Dashboard {
            allow_registration: config.http.allow_registration,
            secure_cookies: public_url.is_https(),
            logins: Default::default(),
        },
        intake: storage.intake.clone(),
        writers: storage.registry.clone(),
        tokens: tokens.clone(),
        source_maps: source_maps.clone(),
        source_map_config: config.source_maps.clone(),
        pool: pool.clone(),
        metrics: metrics.clone(),
        body_timeout: config.http.client_timeout,
        retention_days: config.partitions.retention_days,
        limits: Default::default(),
        body_memory: Arc::new(Semaphore::new(http::BODY_MEMORY_KIB)),
        alerts: app::AlertSettings {
            email: config.notifier.smtp_url.is_some(),
            allow_private_webhooks: config.notifier.allow_private_webhooks,
        },
        public_url: config.http.public_url.clone(),
    };
    let server = http::server::serve(state, listener, &config.http)?;
    let http = server.handle();
    actix_rt::spawn(server);

    let mut threads = storage.threads;
    threads.extend([lookups, dashboard, maps, notifying]);
    Ok(Mesher {
        orgs,
        projects,
        users,
        issues,
        writers: storage.registry,
        intake: storage.intake,
        keys: state_keys,
        tokens,
        source_maps,
        partitions,
        pool,
        metrics,
        http_addr,
        public_url,
        http,
        threads,
        spool,
        ack_log,
    })
}

impl Mesher {
    /// Stops the HTTP server (no new connections; requests in progress
    /// finish within `http.shutdown_timeout`), then stops taking events,
    /// writes every buffered one, closes the spool, and stops the threads
    /// the services ran on. Returns the writers' final counters.
    pub async fn shutdown(self) -> Result<RegistryStats> {
        self.http.stop(true).await;
        let stats = self.writers.send(DrainAll).await?;
        if let Some(log) = &self.ack_log {
            log.close().await;
        }
        if let Some(spool) = &self.spool {
            spool.close().await;
        }
        log::info!(
            "drained {} storage writer(s): {} events stored, {} spooled, {} dropped on overflow, {} dropped after retries; the spool holds {} events",
            stats.writers,
            stats.totals.stored,
            stats.totals.spooled,
            stats.totals.dropped_overflow,
            stats.totals.dropped_after_retries,
            stats.spool.events
        );
        for thread in &self.threads {
            thread.stop();
        }
        Ok(stats)
    }
}

/// Starts Mesher, logs "ready", runs until `shutdown` completes, then
/// drains every writer. A shutdown during start-up (say, while waiting for
/// PostgreSQL) returns at once with empty counters: nothing was buffered.
/// The caller decides what shutdown means (a signal for the binary,
/// anything for an embedder or a test).
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
