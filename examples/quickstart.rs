//! Embedding Mesher: start it, create an organization, a project and an API
//! key, register a user and log in, store 1000 events, shut down, and print
//! what was made as one JSON object on stdout (logs go to stderr).
//!
//! ```sh
//! env "$(scripts/pg.sh)" cargo run --example quickstart
//! ```

use mesher::domain::{Event, EventPayload, ExceptionInfo};
use mesher::services::{
    CreateApiKey, CreateOrg, CreateProject, GetProjectByApiKey, Login, Register, Store, TotalStats,
    ValidateSession,
};
use mesher::{Config, Error, Mesher};
use std::collections::BTreeMap;
use std::time::Duration;

const EVENTS: usize = 1000;

#[actix::main]
async fn main() -> Result<(), Error> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mesher = mesher::start(&Config::from_env()?).await?;

    // A suffix keeps the slug and email unique, so the example can run
    // again on the same database.
    let suffix = &mesher::domain::new_id().simple().to_string()[24..];
    let org = mesher
        .orgs
        .send(CreateOrg {
            name: "Quickstart Inc.".into(),
            slug: format!("quickstart-{suffix}"),
        })
        .await??;
    let project = mesher
        .projects
        .send(CreateProject {
            org_id: org.id.to_string(),
            name: "Web".into(),
            platform: Some("rust".into()),
        })
        .await??;
    let key = mesher
        .projects
        .send(CreateApiKey {
            project_id: project.id.to_string(),
            label: Some("quickstart".into()),
        })
        .await??;
    // What an ingest endpoint would do with the key a client presents.
    let resolved = mesher
        .projects
        .send(GetProjectByApiKey {
            key: key.key.expose().into(),
        })
        .await??;
    assert_eq!(resolved.project.id, project.id);

    let user = mesher
        .users
        .send(Register {
            email: format!("dev-{suffix}@example.org"),
            password: "correct horse battery staple".into(),
            display_name: "Quickstart Dev".into(),
        })
        .await??;
    let login = mesher
        .users
        .send(Login {
            email: user.email.clone(),
            password: "correct horse battery staple".into(),
        })
        .await??;
    let session = mesher
        .users
        .send(ValidateSession {
            token: login.token.expose().into(),
        })
        .await??;
    assert_eq!(session.user_id, user.id);

    for i in 0..EVENTS {
        // A writer buffers at most 500 events and drops the oldest past
        // that; a producer faster than PostgreSQL should pace itself, as
        // here: every 250 events, wait for the writer to catch up.
        if i % 250 == 0 {
            wait_until_written(&mesher).await?;
        }
        let payload = EventPayload {
            message: Some(format!("quickstart event {i}")),
            level: Some("warning".into()),
            exception: Some(vec![ExceptionInfo::new("DemoError", format!("number {i}"))]),
            tags: BTreeMap::from([("source".into(), "quickstart".into())]),
            ..Default::default()
        };
        mesher
            .writers
            .do_send(Store(Event::from_payload(project.id, payload)?));
    }

    let stats = mesher.shutdown().await?;
    if stats.totals.stored != EVENTS as u64 {
        log::error!(
            "only {} of {EVENTS} events were stored: {stats:?}",
            stats.totals.stored
        );
    }
    let summary = serde_json::json!({
        "org_id": org.id,
        "project_id": project.id,
        "api_key": key.key.expose(),
        "user_id": user.id,
        "session_token": login.token.expose(),
        "events_stored": stats.totals.stored,
    });
    println!("{summary}");
    Ok(())
}

/// Waits until no event is waiting for its project's lookup, buffered or
/// being written.
async fn wait_until_written(mesher: &Mesher) -> Result<(), Error> {
    loop {
        let stats = mesher.writers.send(TotalStats).await?;
        if stats.pending + stats.totals.buffered + stats.totals.in_flight == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
