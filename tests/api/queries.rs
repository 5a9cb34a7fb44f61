//! The query layer against a real PostgreSQL.

use crate::common::TestDb;
use mesher::Error;
use mesher::db;
use mesher::domain::{
    ApiKey, Email, Event, EventPayload, Name, Role, SessionToken, Slug, parse_id,
};
use std::time::Duration;
use uuid::Uuid;

fn name(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).unwrap()
}

#[actix::test]
async fn schema_applies_again_without_change() {
    let t = TestDb::new().await;
    let before = t
        .count("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")
        .await;
    db::apply_schema(&t.pool).await.unwrap();
    let after = t
        .count("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")
        .await;
    assert_eq!(before, after);
    let tables = t
        .count(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN
             ('organizations','users','org_memberships','sessions','projects','api_keys',
              'issues','events','alert_rules','alerts')",
        )
        .await;
    assert_eq!(tables, 10);
}

/// Every start applies the schema ([`db::apply_schema`] runs
/// [`db::SCHEMA_SQL`] as one batch); on a database that has it, each
/// `IF NOT EXISTS` would send a NOTICE that the log shows. None may come,
/// while a warning raised inside the script still does, and the quiet
/// ends with it.
#[actix::test]
async fn applying_the_schema_sends_no_notices_and_hides_no_warnings() {
    let t = TestDb::empty().await;
    let (client, mut connection) = tokio_postgres::connect(&t.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let messages = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
            if let tokio_postgres::AsyncMessage::Notice(notice) = message.unwrap() {
                seen.push(format!("{}: {}", notice.severity(), notice.message()));
            }
        }
        seen
    });
    // Once on the empty database, once more on the full one; then once
    // with a warning of its own just before the script commits.
    client.batch_execute(db::SCHEMA_SQL).await.unwrap();
    client.batch_execute(db::SCHEMA_SQL).await.unwrap();
    let (script, commit) = db::SCHEMA_SQL.rsplit_once("COMMIT;").unwrap();
    client
        .batch_execute(&format!(
            "{script} DO $$ BEGIN RAISE WARNING 'inside the script'; END $$; COMMIT;{commit}"
        ))
        .await
        .unwrap();
    client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'after the script'; END $$")
        .await
        .unwrap();
    drop(client);
    assert_eq!(
        messages.await.unwrap(),
        ["WARNING: inside the script", "NOTICE: after the script"]
    );
}

#[actix::test]
async fn concurrent_schema_application_succeeds() {
    let t = TestDb::empty().await;
    let runs = (0..4).map(|_| db::apply_schema(&t.pool));
    for result in futures_util::future::join_all(runs).await {
        result.unwrap();
    }
    assert_eq!(t.count("SELECT count(*) FROM organizations").await, 0);
}

#[actix::test]
async fn organizations_round_trip_and_slugs_are_unique() {
    let t = TestDb::new().await;
    let org = db::orgs::insert(&t.pool, &name("Acme"), &slug("acme"))
        .await
        .unwrap();
    assert_eq!(org.id.get_version_num(), 7);
    assert_eq!(db::orgs::get(&t.pool, org.id).await.unwrap(), org);
    let dup = db::orgs::insert(&t.pool, &name("Other"), &slug("acme")).await;
    assert!(
        matches!(
            dup,
            Err(Error::AlreadyExists {
                entity: "organization"
            })
        ),
        "{dup:?}"
    );
    let second = db::orgs::insert(&t.pool, &name("Beta"), &slug("beta"))
        .await
        .unwrap();
    assert_eq!(db::orgs::list(&t.pool).await.unwrap(), vec![org, second]);
    assert!(matches!(
        db::orgs::get(&t.pool, Uuid::now_v7()).await,
        Err(Error::NotFound {
            entity: "organization"
        })
    ));
}

#[actix::test]
async fn malformed_ids_give_a_typed_error() {
    assert!(matches!(
        parse_id("id", "42"),
        Err(Error::InvalidInput { field: "id", .. })
    ));
    // Even if malformed text reaches SQL, the mapping is typed, not a panic.
    let t = TestDb::new().await;
    let err = t
        .pool
        .get()
        .await
        .unwrap()
        .query("SELECT $1::text::uuid", &[&"nope"])
        .await
        .unwrap_err();
    assert!(matches!(
        Error::from(err),
        Error::InvalidInput { field: "id", .. }
    ));
}

#[actix::test]
async fn database_errors_keep_their_cause_and_print_it_once() {
    let t = TestDb::new().await;
    let pg = t
        .pool
        .get()
        .await
        .unwrap()
        .query("SELECT * FROM no_such_table", &[])
        .await
        .unwrap_err();
    let err = Error::from(pg);
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert_eq!(err.to_string(), "database error (SQLSTATE 42P01)");
    let report = err.report().to_string();
    assert_eq!(report.matches("no_such_table").count(), 1, "{report}");
    assert!(
        report.starts_with("database error (SQLSTATE 42P01): "),
        "{report}"
    );
}

#[actix::test]
async fn hostile_text_round_trips_verbatim() {
    let t = TestDb::new().await;
    let text = "Robert'); DROP TABLE organizations; -- \"quoted\" \\ 💥 Ünïcödé 漢字";
    let org = db::orgs::insert(&t.pool, &name(text), &slug("bobby"))
        .await
        .unwrap();
    assert_eq!(db::orgs::get(&t.pool, org.id).await.unwrap().name, text);
    assert_eq!(t.count("SELECT count(*) FROM organizations").await, 1);
}

#[actix::test]
async fn projects_belong_to_existing_organizations() {
    let t = TestDb::new().await;
    let org = db::orgs::insert(&t.pool, &name("Acme"), &slug("acme"))
        .await
        .unwrap();
    let p = db::projects::insert(&t.pool, org.id, &name("Web"), Some(&name("javascript")))
        .await
        .unwrap();
    assert_eq!(p.platform.as_deref(), Some("javascript"));
    assert_eq!(db::projects::get(&t.pool, p.id).await.unwrap(), p);
    assert_eq!(
        db::projects::list_by_org(&t.pool, org.id).await.unwrap(),
        vec![p]
    );
    assert!(matches!(
        db::projects::insert(&t.pool, Uuid::now_v7(), &name("Orphan"), None).await,
        Err(Error::NotFound {
            entity: "organization"
        })
    ));
    assert!(matches!(
        db::projects::list_by_org(&t.pool, Uuid::now_v7()).await,
        Err(Error::NotFound {
            entity: "organization"
        })
    ));
}

#[actix::test]
async fn api_keys_resolve_until_revoked_and_are_stored_hashed() {
    let t = TestDb::new().await;
    let org = db::orgs::insert(&t.pool, &name("Acme"), &slug("acme"))
        .await
        .unwrap();
    let project = db::projects::insert(&t.pool, org.id, &name("Web"), None)
        .await
        .unwrap();
    let key = ApiKey::generate().unwrap();
    let info = db::api_keys::insert(&t.pool, project.id, &key, &name("ci"))
        .await
        .unwrap();
    assert_eq!(info.prefix, key.display_prefix());
    assert_eq!(
        db::api_keys::project_by_key(&t.pool, &key)
            .await
            .unwrap()
            .project,
        project
    );

    // The key never reaches the database in clear.
    let clear = t
        .count(&format!(
            "SELECT count(*) FROM api_keys WHERE key_prefix = '{}' OR encode(key_hash, 'escape') LIKE '%{}%'",
            key.expose(),
            &key.expose()[5..]
        ))
        .await;
    assert_eq!(clear, 0);

    let revoked = db::api_keys::revoke(&t.pool, info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(matches!(
        db::api_keys::project_by_key(&t.pool, &key).await,
        Err(Error::InvalidCredentials)
    ));
    // Revoking again keeps the first date.
    assert_eq!(
        db::api_keys::revoke(&t.pool, info.id)
            .await
            .unwrap()
            .revoked_at,
        revoked.revoked_at
    );
    assert_eq!(
        db::api_keys::list_by_project(&t.pool, project.id)
            .await
            .unwrap(),
        vec![revoked]
    );
    let unknown = ApiKey::generate().unwrap();
    assert!(matches!(
        db::api_keys::project_by_key(&t.pool, &unknown).await,
        Err(Error::InvalidCredentials)
    ));
}

#[actix::test]
async fn emails_are_unique_in_any_letter_case() {
    let t = TestDb::new().await;
    let email = Email::parse("Ann@Example.org").unwrap();
    let user = db::users::insert(&t.pool, &email, "$2b$04$hash", &name("Ann"))
        .await
        .unwrap();
    assert_eq!(user.email, "ann@example.org");
    let again = db::users::insert(
        &t.pool,
        &Email::parse("ANN@EXAMPLE.ORG").unwrap(),
        "x",
        &name("A"),
    )
    .await;
    assert!(
        matches!(again, Err(Error::AlreadyExists { entity: "user" })),
        "{again:?}"
    );
    // Even a writer that skipped normalization is caught by the index.
    let raw = t
        .pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO users (id, email, password_hash, display_name) VALUES ($1, 'ANN@example.org', 'x', 'x')",
            &[&Uuid::now_v7()],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        Error::from(raw),
        Error::AlreadyExists { entity: "user" }
    ));
    let (found, hash) = db::users::credentials_by_email(&t.pool, &email)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found, hash.as_str()), (user.clone(), "$2b$04$hash"));
    assert_eq!(db::users::get(&t.pool, user.id).await.unwrap(), user);
}

#[actix::test]
async fn sessions_validate_until_expiry_or_deletion() {
    let t = TestDb::new().await;
    let user = db::users::insert(&t.pool, &Email::parse("a@b.co").unwrap(), "x", &name("A"))
        .await
        .unwrap();
    let token = SessionToken::generate().unwrap();
    let session = db::sessions::insert(&t.pool, &token, user.id, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        db::sessions::validate(&t.pool, &token).await.unwrap(),
        session
    );
    assert!(db::sessions::delete(&t.pool, &token).await.unwrap());
    assert!(matches!(
        db::sessions::validate(&t.pool, &token).await,
        Err(Error::InvalidCredentials)
    ));
    assert!(!db::sessions::delete(&t.pool, &token).await.unwrap());

    // Expiry is data: a session whose expiry has passed, made so by moving
    // it into the past rather than by waiting.
    let short = SessionToken::generate().unwrap();
    db::sessions::insert(&t.pool, &short, user.id, Duration::from_secs(60))
        .await
        .unwrap();
    t.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
        .await;
    assert!(matches!(
        db::sessions::validate(&t.pool, &short).await,
        Err(Error::SessionExpired)
    ));

    // Only the hash is stored.
    let stored = t
        .count(&format!(
            "SELECT count(*) FROM sessions WHERE encode(token_hash, 'hex') = '{}'",
            token.expose()
        ))
        .await;
    assert_eq!(stored, 0);
}

#[actix::test]
async fn memberships_link_users_and_orgs_once() {
    let t = TestDb::new().await;
    let org = db::orgs::insert(&t.pool, &name("Acme"), &slug("acme"))
        .await
        .unwrap();
    let user = db::users::insert(&t.pool, &Email::parse("a@b.co").unwrap(), "x", &name("A"))
        .await
        .unwrap();
    let m = db::memberships::insert(&t.pool, user.id, org.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(m.role, Role::Admin);
    assert!(matches!(
        db::memberships::insert(&t.pool, user.id, org.id, Role::Member).await,
        Err(Error::AlreadyExists {
            entity: "membership"
        })
    ));
    assert!(matches!(
        db::memberships::insert(&t.pool, Uuid::now_v7(), org.id, Role::Member).await,
        Err(Error::NotFound { entity: "user" })
    ));
    assert_eq!(
        db::memberships::list_by_org(&t.pool, org.id).await.unwrap(),
        vec![m]
    );
    assert_eq!(
        db::memberships::orgs_of_user(&t.pool, user.id)
            .await
            .unwrap(),
        vec![org]
    );
}

#[actix::test]
async fn event_connections_prepare_the_insert_once_and_keep_it() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    // One connection, so that every batch runs where the statement is seen.
    let events = db::event_pool(
        &t.url,
        1,
        false,
        Default::default(),
        t.config().partitions.lock_timeout,
    )
    .unwrap();
    let prepared_inserts = async || -> Vec<String> {
        events
            .get()
            .await
            .unwrap()
            .query(
                "SELECT prepare_time::text FROM pg_prepared_statements
                 WHERE statement LIKE '%INSERT INTO event_ids%'
                   AND statement NOT LIKE '%pg_prepared_statements%'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert_eq!(prepared_inserts().await.len(), 0, "prepared on first use");
    let mut before = Vec::new();
    for i in 0..3 {
        let p = EventPayload {
            message: Some(format!("batch {i}")),
            ..Default::default()
        };
        let batch = [Event::from_payload(project, p).unwrap()];
        db::events::insert_batch(&events, &batch).await.unwrap();
        if i == 0 {
            before = prepared_inserts().await;
            assert_eq!(before.len(), 1, "the first batch prepared it");
        }
    }
    assert_eq!(t.count("SELECT count(*) FROM events").await, 3);
    assert_eq!(prepared_inserts().await, before, "batches reuse it");
}

#[actix::test]
async fn event_batches_are_stored_in_one_statement_with_partitions_created_on_demand() {
    let t = TestDb::new().await;
    let project = t.new_project().await;
    let events: Vec<Event> = (0..3)
        .map(|i| {
            let p = EventPayload {
                message: Some(format!("boom {i} ' ; 💥")),
                ..Default::default()
            };
            Event::from_payload(project, p).unwrap()
        })
        .collect();
    // No partition exists yet: the insert creates today's and succeeds.
    assert_eq!(
        db::events::insert_batch(&t.events, &events)
            .await
            .unwrap()
            .total(),
        3
    );
    let today = db::partitions::partition_name(events[0].received_at().date_naive());
    assert_eq!(t.count(&format!("SELECT count(*) FROM {today}")).await, 3);
    let stored = db::issues::get_event(&t.pool, project, events[1].id())
        .await
        .unwrap();
    assert_eq!(stored.message, "boom 1 ' ; 💥");
    // Sent again (a retry after a lost commit reply), the batch adds only
    // what is missing: nothing twice, nothing new lost.
    let mut again = events.clone();
    again.push(
        Event::from_payload(
            project,
            EventPayload {
                message: Some("new".into()),
                ..Default::default()
            },
        )
        .unwrap(),
    );
    // The batch's events are all stored now, three of them by its first
    // attempt; only one row is new.
    assert_eq!(
        db::events::insert_batch(&t.events, &again)
            .await
            .unwrap()
            .total(),
        4
    );
    assert_eq!(t.count("SELECT count(*) FROM events").await, 4);
}
