//! Tenancy through the actors: OrgService, ProjectService and UserService
//! driven with `addr.send(...)` against a real PostgreSQL, one fresh
//! database per test.
//!
//! Every check here is one a caller could make: the typed error a message
//! gets, what a later message sees, and what ends up in the tables.

mod common;

use actix::dev::ToEnvelope;
use actix::prelude::*;
use common::TestDb;
use futures_util::future::{Either, join_all, select};
use mesher::Error;
use mesher::config::UserConfig;
use mesher::domain::{NewApiKey, Organization, Project, Role, User};
use mesher::services::{
    AddMember, CreateApiKey, CreateOrg, CreateProject, GetMembers, GetOrg, GetProject,
    GetProjectByApiKey, GetUser, GetUserOrgs, ListApiKeys, ListOrgs, ListProjectsByOrg, Login,
    Logout, OrgService, ProjectService, Register, RevokeApiKey, UserService, ValidateSession,
};
use std::cell::Cell;
use std::pin::pin;
use std::rc::Rc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";
const WRONG_PASSWORD: &str = "correct horse stapler";

/// Asserts that `result` is an `Err` matching `pattern`, showing what came
/// instead when it is not.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(,)?) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected Err({}), got {:?}", stringify!($pattern), other),
        }
    };
}

/// The three tenancy services, sharing the test database's pool the way
/// `mesher::start` wires them.
struct Services {
    orgs: Addr<OrgService>,
    projects: Addr<ProjectService>,
    users: Addr<UserService>,
}

fn start_with(t: &TestDb, users: UserConfig) -> Services {
    Services {
        orgs: OrgService::new(t.pool.clone()).start(),
        projects: ProjectService::new(t.pool.clone()).start(),
        users: UserService::new(t.pool.clone(), users).start(),
    }
}

/// The services with the test configuration (bcrypt cost 4).
fn start(t: &TestDb) -> Services {
    start_with(t, t.config().users)
}

/// Sends `msg` and waits for the reply. A mailbox error means an actor
/// died, which no test here expects.
async fn call<A, M>(addr: &Addr<A>, msg: M) -> M::Result
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    addr.send(msg).await.expect("actor is alive")
}

async fn create_org(s: &Services, name: &str, slug: &str) -> Organization {
    call(
        &s.orgs,
        CreateOrg {
            name: name.into(),
            slug: slug.into(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create org {slug}: {e}"))
}

async fn create_project(s: &Services, org: &Organization, name: &str) -> Project {
    call(
        &s.projects,
        CreateProject {
            org_id: org.id.to_string(),
            name: name.into(),
            platform: Some("rust".into()),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create project {name}: {e}"))
}

async fn create_key(s: &Services, project: &Project, label: &str) -> NewApiKey {
    call(
        &s.projects,
        CreateApiKey {
            project_id: project.id.to_string(),
            label: Some(label.into()),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("create key {label}: {e}"))
}

async fn register(s: &Services, email: &str, password: &str) -> User {
    call(
        &s.users,
        Register {
            email: email.into(),
            password: password.into(),
            display_name: "Ann".into(),
        },
    )
    .await
    .unwrap_or_else(|e| panic!("register {email}: {e}"))
}

fn login(email: &str, password: &str) -> Login {
    Login {
        email: email.into(),
        password: password.into(),
    }
}

/// Rows in every tenancy table, to show a rejected message wrote nothing.
async fn row_counts(t: &TestDb) -> [(&'static str, i64); 6] {
    let mut out = [
        ("organizations", 0),
        ("projects", 0),
        ("api_keys", 0),
        ("users", 0),
        ("org_memberships", 0),
        ("sessions", 0),
    ];
    for (table, n) in &mut out {
        *n = t.count(&format!("SELECT count(*) FROM {table}")).await;
    }
    out
}

/// `count(*)` of a query taking one text parameter (the secrets checked
/// below go in as bound values, never spliced into SQL).
async fn count_with(t: &TestDb, sql: &str, param: &str) -> i64 {
    t.pool
        .get()
        .await
        .expect("connection")
        .query_one(sql, &[&param])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

// ---------------------------------------------------------------------------
// bcrypt and logins

#[actix::test]
async fn logins_at_default_bcrypt_cost_do_not_stall_other_actors() {
    let t = TestDb::new().await;
    let config = UserConfig {
        bcrypt_cost: 12,
        ..t.config().users
    };
    let s = start_with(&t, config);
    let org = create_org(&s, "Acme", "acme").await;
    register(&s, "ann@example.org", PASSWORD).await;
    // The real default cost, not the cheap test one: otherwise the test
    // would prove nothing about a quarter-second hash.
    assert_eq!(
        t.count("SELECT count(*) FROM users WHERE password_hash LIKE '$2b$12$%'")
            .await,
        1
    );

    // All 20 logins are in flight before the GetOrg is sent. The test
    // runs in one System on one thread, the same thread every actor here
    // uses: had a hash run on it, the GetOrg could not be answered until
    // that hash (and those queued before it) had finished.
    let completed = Rc::new(Cell::new(0usize));
    let started = Instant::now();
    let logins = join_all((0..20).map(|_| {
        let reply = s.users.send(login("ann@example.org", PASSWORD));
        let completed = completed.clone();
        async move {
            let r = reply.await.expect("actor is alive");
            completed.set(completed.get() + 1);
            r
        }
    }));
    let get = s.orgs.send(GetOrg {
        id: org.id.to_string(),
    });
    let logins = pin!(logins);
    let (got, pending_logins) = match select(pin!(get), logins).await {
        Either::Left((got, pending)) => (got, pending),
        Either::Right(_) => panic!("all 20 logins finished before GetOrg was answered"),
    };
    let get_latency = started.elapsed();
    let completed_at_get = completed.get();
    eprintln!("GetOrg answered after {get_latency:?}, with {completed_at_get}/20 logins done");
    // Every login needs a whole cost-12 hash before it can reply, GetOrg
    // only one query: unless something stalled it, GetOrg wins outright.
    // "Fewer than 20" alone would not do: with the hash moved onto the
    // actor's thread, GetOrg came after 8 to 15 of the 20 and passed it.
    assert_eq!(
        completed_at_get, 0,
        "GetOrg was answered only after {completed_at_get} of 20 logins"
    );
    assert_eq!(got.expect("actor is alive").unwrap(), org);

    let results = pending_logins.await;
    eprintln!("all 20 cost-12 logins took {:?}", started.elapsed());
    for r in results {
        r.unwrap();
    }
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 20);
}

#[actix::test]
async fn unknown_email_and_wrong_password_get_the_same_error() {
    let t = TestDb::new().await;
    // A cost high enough for the printed timings to mean something, low
    // enough to keep the test quick.
    let s = start_with(
        &t,
        UserConfig {
            bcrypt_cost: 10,
            ..t.config().users
        },
    );
    register(&s, "ann@example.org", PASSWORD).await;

    let t0 = Instant::now();
    let wrong = call(&s.users, login("ann@example.org", WRONG_PASSWORD)).await;
    let wrong_time = t0.elapsed();
    let t1 = Instant::now();
    let unknown = call(&s.users, login("nobody@example.org", PASSWORD)).await;
    let unknown_time = t1.elapsed();
    eprintln!("cost-10 login: wrong password {wrong_time:?}, unknown email {unknown_time:?}");

    assert_err!(wrong, Error::InvalidCredentials);
    assert_err!(unknown, Error::InvalidCredentials);
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 0);
    // The right password still works, so the failures were about the input.
    call(&s.users, login("ann@example.org", PASSWORD))
        .await
        .unwrap();
}

#[actix::test]
async fn emails_match_in_any_letter_case() {
    let t = TestDb::new().await;
    let s = start(&t);
    let ann = register(&s, "Ann@Example.org", PASSWORD).await;
    assert_eq!(ann.email, "ann@example.org");

    let session = call(&s.users, login("ANN@example.ORG", PASSWORD))
        .await
        .unwrap();
    assert_eq!(session.session.user_id, ann.id);

    assert_err!(
        call(
            &s.users,
            Register {
                email: "ann@EXAMPLE.org".into(),
                password: "another good password".into(),
                display_name: "Impostor".into(),
            },
        )
        .await,
        Error::AlreadyExists { entity: "user" },
    );
    assert_eq!(t.count("SELECT count(*) FROM users").await, 1);
}

#[actix::test]
async fn passwords_over_72_bytes_are_refused_not_truncated() {
    let t = TestDb::new().await;
    let s = start(&t);
    let max = "x".repeat(72);
    register(&s, "max@example.org", &max).await;
    call(&s.users, login("max@example.org", &max))
        .await
        .unwrap();

    // bcrypt ignores byte 73 onwards: accepting it would let a 72-byte
    // prefix log in as the longer password.
    assert_err!(
        call(
            &s.users,
            Register {
                email: "long@example.org".into(),
                password: "x".repeat(73),
                display_name: "Long".into(),
            },
        )
        .await,
        Error::InvalidInput {
            field: "password",
            ..
        },
    );
    // Bytes, not characters: 24 emoji are 96 bytes.
    assert_err!(
        call(
            &s.users,
            Register {
                email: "emoji@example.org".into(),
                password: "🔒".repeat(24),
                display_name: "Emoji".into(),
            },
        )
        .await,
        Error::InvalidInput {
            field: "password",
            ..
        },
    );
    assert_eq!(t.count("SELECT count(*) FROM users").await, 1);
}

// ---------------------------------------------------------------------------
// Organizations

#[actix::test]
async fn concurrent_creates_with_one_slug_store_exactly_one_org() {
    let t = TestDb::new().await;
    let s = start(&t);
    let attempts = (0..10).map(|i| {
        s.orgs.send(CreateOrg {
            name: format!("Acme {i}"),
            slug: "acme".into(),
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("actor is alive"))
        .collect();

    let winners: Vec<&Organization> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if r.is_err() {
            assert_err!(
                r,
                Error::AlreadyExists {
                    entity: "organization"
                }
            );
        }
    }
    assert_eq!(t.count("SELECT count(*) FROM organizations").await, 1);
    let listed = call(&s.orgs, ListOrgs).await.unwrap();
    assert_eq!(listed, vec![winners[0].clone()]);
}

#[actix::test]
async fn bad_org_names_and_slugs_are_rejected_without_a_row() {
    let t = TestDb::new().await;
    let s = start(&t);
    create_org(&s, "Acme", "acme").await;
    let before = row_counts(&t).await;

    let bad_slugs = [
        "",
        "Acme",
        "acme corp",
        "acme_corp",
        "acme;drop",
        "ácme",
        "-acme",
        "acme-",
        "12345",
    ];
    for slug in bad_slugs {
        let r = call(
            &s.orgs,
            CreateOrg {
                name: "Fine Name".into(),
                slug: slug.into(),
            },
        )
        .await;
        assert_err!(r, Error::InvalidInput { field: "slug", .. });
    }
    let long_slug = "a".repeat(65);
    assert_err!(
        call(
            &s.orgs,
            CreateOrg {
                name: "Fine Name".into(),
                slug: long_slug,
            },
        )
        .await,
        Error::InvalidInput { field: "slug", .. },
    );
    for name in [String::new(), "   ".into(), "a".repeat(201)] {
        let r = call(
            &s.orgs,
            CreateOrg {
                name,
                slug: "fine-slug".into(),
            },
        )
        .await;
        assert_err!(r, Error::InvalidInput { field: "name", .. });
    }
    assert_err!(
        call(
            &s.orgs,
            CreateOrg {
                name: "Other".into(),
                slug: "acme".into(),
            },
        )
        .await,
        Error::AlreadyExists {
            entity: "organization"
        },
    );
    assert_eq!(row_counts(&t).await, before);

    // The limit is 200 characters, not bytes: 200 CJK characters fit.
    let wide = "漢".repeat(200);
    assert_eq!(create_org(&s, &wide, "wide").await.name, wide);
}

// ---------------------------------------------------------------------------
// Bad input across the services

#[actix::test]
async fn malformed_ids_are_invalid_input_naming_the_field() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let user = register(&s, "ann@example.org", PASSWORD).await;
    let before = row_counts(&t).await;
    let bad = "not-a-uuid";

    assert_err!(
        call(&s.orgs, GetOrg { id: bad.into() }).await,
        Error::InvalidInput { field: "id", .. },
    );
    assert_err!(
        call(&s.projects, GetProject { id: bad.into() }).await,
        Error::InvalidInput { field: "id", .. },
    );
    assert_err!(
        call(&s.users, GetUser { id: bad.into() }).await,
        Error::InvalidInput { field: "id", .. },
    );
    assert_err!(
        call(&s.projects, ListProjectsByOrg { org_id: bad.into() }).await,
        Error::InvalidInput {
            field: "org_id",
            ..
        },
    );
    assert_err!(
        call(
            &s.projects,
            CreateProject {
                org_id: bad.into(),
                name: "Web".into(),
                platform: None,
            },
        )
        .await,
        Error::InvalidInput {
            field: "org_id",
            ..
        },
    );
    assert_err!(
        call(
            &s.projects,
            CreateApiKey {
                project_id: bad.into(),
                label: None,
            },
        )
        .await,
        Error::InvalidInput {
            field: "project_id",
            ..
        },
    );
    assert_err!(
        call(
            &s.projects,
            ListApiKeys {
                project_id: bad.into(),
            },
        )
        .await,
        Error::InvalidInput {
            field: "project_id",
            ..
        },
    );
    assert_err!(
        call(&s.projects, RevokeApiKey { key_id: bad.into() }).await,
        Error::InvalidInput {
            field: "key_id",
            ..
        },
    );
    assert_err!(
        call(
            &s.users,
            AddMember {
                user_id: bad.into(),
                org_id: org.id.to_string(),
                role: "member".into(),
            },
        )
        .await,
        Error::InvalidInput {
            field: "user_id",
            ..
        },
    );
    assert_err!(
        call(
            &s.users,
            AddMember {
                user_id: user.id.to_string(),
                org_id: "'; DROP TABLE org_memberships; --".into(),
                role: "member".into(),
            },
        )
        .await,
        Error::InvalidInput {
            field: "org_id",
            ..
        },
    );
    assert_err!(
        call(&s.users, GetMembers { org_id: bad.into() }).await,
        Error::InvalidInput {
            field: "org_id",
            ..
        },
    );
    assert_err!(
        call(
            &s.users,
            GetUserOrgs {
                user_id: bad.into()
            }
        )
        .await,
        Error::InvalidInput {
            field: "user_id",
            ..
        },
    );
    assert_eq!(row_counts(&t).await, before);
}

#[actix::test]
async fn unknown_ids_are_not_found_for_the_right_entity() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let user = register(&s, "ann@example.org", PASSWORD).await;
    let before = row_counts(&t).await;
    // Well-formed ids of the kind Mesher issues, that name nothing.
    let unknown = || Uuid::now_v7().to_string();

    assert_err!(
        call(&s.orgs, GetOrg { id: unknown() }).await,
        Error::NotFound {
            entity: "organization"
        },
    );
    assert_err!(
        call(&s.projects, GetProject { id: unknown() }).await,
        Error::NotFound { entity: "project" },
    );
    assert_err!(
        call(&s.users, GetUser { id: unknown() }).await,
        Error::NotFound { entity: "user" },
    );
    assert_err!(
        call(&s.projects, ListProjectsByOrg { org_id: unknown() }).await,
        Error::NotFound {
            entity: "organization"
        },
    );
    assert_err!(
        call(
            &s.projects,
            CreateProject {
                org_id: unknown(),
                name: "Orphan".into(),
                platform: None,
            },
        )
        .await,
        Error::NotFound {
            entity: "organization"
        },
    );
    assert_err!(
        call(
            &s.projects,
            CreateApiKey {
                project_id: unknown(),
                label: None,
            },
        )
        .await,
        Error::NotFound { entity: "project" },
    );
    assert_err!(
        call(
            &s.projects,
            ListApiKeys {
                project_id: unknown(),
            },
        )
        .await,
        Error::NotFound { entity: "project" },
    );
    assert_err!(
        call(&s.projects, RevokeApiKey { key_id: unknown() }).await,
        Error::NotFound { entity: "api key" },
    );
    assert_err!(
        call(
            &s.users,
            AddMember {
                user_id: unknown(),
                org_id: org.id.to_string(),
                role: "member".into(),
            },
        )
        .await,
        Error::NotFound { entity: "user" },
    );
    assert_err!(
        call(
            &s.users,
            AddMember {
                user_id: user.id.to_string(),
                org_id: unknown(),
                role: "member".into(),
            },
        )
        .await,
        Error::NotFound {
            entity: "organization"
        },
    );
    assert_err!(
        call(&s.users, GetMembers { org_id: unknown() }).await,
        Error::NotFound {
            entity: "organization"
        },
    );
    assert_err!(
        call(&s.users, GetUserOrgs { user_id: unknown() }).await,
        Error::NotFound { entity: "user" },
    );
    assert_eq!(row_counts(&t).await, before);
}

#[actix::test]
async fn bad_registrations_are_rejected_without_a_row() {
    let t = TestDb::new().await;
    let s = start(&t);
    register(&s, "ann@example.org", PASSWORD).await;
    let before = row_counts(&t).await;
    let attempt = |email: &str, password: &str, display_name: &str| Register {
        email: email.into(),
        password: password.into(),
        display_name: display_name.into(),
    };

    for email in [
        "",
        "plain",
        "@example.org",
        "ann@",
        "ann@localhost",
        "a@b@example.org",
        "ann lee@example.org",
        "ann@example..org",
    ] {
        let r = call(&s.users, attempt(email, PASSWORD, "Ann")).await;
        assert_err!(r, Error::InvalidInput { field: "email", .. });
    }
    let seventy_three = "p".repeat(73);
    for password in ["", "short", "1234567", seventy_three.as_str()] {
        let r = call(&s.users, attempt("bob@example.org", password, "Bob")).await;
        assert_err!(
            r,
            Error::InvalidInput {
                field: "password",
                ..
            }
        );
    }
    let too_long = "b".repeat(201);
    for name in ["", "  ", too_long.as_str()] {
        let r = call(&s.users, attempt("bob@example.org", PASSWORD, name)).await;
        assert_err!(
            r,
            Error::InvalidInput {
                field: "display_name",
                ..
            }
        );
    }
    assert_err!(
        call(&s.users, attempt("ANN@Example.Org", PASSWORD, "Ann again")).await,
        Error::AlreadyExists { entity: "user" },
    );
    assert_eq!(row_counts(&t).await, before);
}

#[actix::test]
async fn bad_project_input_is_rejected_without_a_row() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let project = create_project(&s, &org, "Web").await;
    let before = row_counts(&t).await;

    let too_long = "w".repeat(201);
    for name in ["", "   ", too_long.as_str()] {
        let r = call(
            &s.projects,
            CreateProject {
                org_id: org.id.to_string(),
                name: name.into(),
                platform: None,
            },
        )
        .await;
        assert_err!(r, Error::InvalidInput { field: "name", .. });
    }
    assert_err!(
        call(
            &s.projects,
            CreateProject {
                org_id: org.id.to_string(),
                name: "Api".into(),
                platform: Some(String::new()),
            },
        )
        .await,
        Error::InvalidInput {
            field: "platform",
            ..
        },
    );
    assert_err!(
        call(
            &s.projects,
            CreateApiKey {
                project_id: project.id.to_string(),
                label: Some(too_long.clone()),
            },
        )
        .await,
        Error::InvalidInput { field: "label", .. },
    );
    assert_eq!(row_counts(&t).await, before);
}

#[actix::test]
async fn unknown_roles_and_duplicate_memberships_are_rejected() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let user = register(&s, "ann@example.org", PASSWORD).await;
    let add = |role: &str| AddMember {
        user_id: user.id.to_string(),
        org_id: org.id.to_string(),
        role: role.into(),
    };

    for role in ["superuser", "Owner", "", "member "] {
        assert_err!(
            call(&s.users, add(role)).await,
            Error::InvalidInput { field: "role", .. }
        );
    }
    assert_eq!(t.count("SELECT count(*) FROM org_memberships").await, 0);

    let first = call(&s.users, add("admin")).await.unwrap();
    // A second membership, even with another role, must not replace or
    // duplicate the first.
    assert_err!(
        call(&s.users, add("owner")).await,
        Error::AlreadyExists {
            entity: "membership"
        },
    );
    let members = call(
        &s.users,
        GetMembers {
            org_id: org.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(members, vec![first]);
}

#[actix::test]
async fn hostile_and_non_ascii_text_is_stored_verbatim() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org_name = "Robert'); DROP TABLE organizations; -- \"quoted\" \\ 💥 Ünïcödé 漢字";
    let project_name = "'; DELETE FROM projects WHERE ''=' 🚀 プロジェクト";
    let platform = "rust; --";
    let display_name = "李小龍 O'Brien\"; TRUNCATE users; -- 🐉";

    let org = create_org(&s, org_name, "bobby").await;
    assert_eq!(org.name, org_name);
    let project = call(
        &s.projects,
        CreateProject {
            org_id: org.id.to_string(),
            name: project_name.into(),
            platform: Some(platform.into()),
        },
    )
    .await
    .unwrap();
    let user = call(
        &s.users,
        Register {
            email: "O'Brien@Example.org".into(),
            password: "pässwörd; DROP TABLE users; --".into(),
            display_name: display_name.into(),
        },
    )
    .await
    .unwrap();

    // Read back through the actors...
    let org_back = call(
        &s.orgs,
        GetOrg {
            id: org.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(org_back.name, org_name);
    let project_back = call(
        &s.projects,
        GetProject {
            id: project.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(project_back.name, project_name);
    assert_eq!(project_back.platform.as_deref(), Some(platform));
    let user_back = call(
        &s.users,
        GetUser {
            id: user.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(user_back.display_name, display_name);
    assert_eq!(user_back.email, "o'brien@example.org");
    call(
        &s.users,
        login("o'brien@example.org", "pässwörd; DROP TABLE users; --"),
    )
    .await
    .unwrap();

    // ...and at the database level, compared as bound parameters.
    assert_eq!(
        count_with(
            &t,
            "SELECT count(*) FROM organizations WHERE name = $1",
            org_name
        )
        .await,
        1
    );
    assert_eq!(
        count_with(
            &t,
            "SELECT count(*) FROM projects WHERE name = $1",
            project_name
        )
        .await,
        1
    );
    assert_eq!(
        count_with(
            &t,
            "SELECT count(*) FROM users WHERE display_name = $1",
            display_name
        )
        .await,
        1
    );
}

// ---------------------------------------------------------------------------
// API keys

#[actix::test]
async fn api_keys_are_random_mshr_keys_that_resolve_to_their_project() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let web = create_project(&s, &org, "Web").await;
    let api = create_project(&s, &org, "Api").await;

    let a = create_key(&s, &web, "ci").await;
    let b = create_key(&s, &web, "ci").await;
    let c = create_key(&s, &api, "prod").await;
    for k in [&a, &b, &c] {
        let key = k.key.expose();
        // `mshr_` and 64 hex digits: 256 random bits.
        assert!(key.starts_with("mshr_"), "{key}");
        assert_eq!(key.len(), 69);
        assert!(
            key[5..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }
    assert_ne!(a.key.expose(), b.key.expose());
    assert_ne!(a.key.expose()[5..], b.key.expose()[5..]);

    for (k, project) in [(&a, &web), (&b, &web), (&c, &api)] {
        let found = call(
            &s.projects,
            GetProjectByApiKey {
                key: k.key.expose().into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(&found, project);
    }
    // Well-formed but never issued.
    let forged = format!("mshr_{}", "0".repeat(64));
    assert_err!(
        call(&s.projects, GetProjectByApiKey { key: forged }).await,
        Error::InvalidCredentials,
    );
    let default_label = call(
        &s.projects,
        CreateApiKey {
            project_id: api.id.to_string(),
            label: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(default_label.info.label, "default");
}

#[actix::test]
async fn malformed_api_keys_are_invalid_input() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let project = create_project(&s, &org, "Web").await;
    let good = create_key(&s, &project, "ci").await.key.expose().to_owned();

    for bad in [
        String::new(),
        "mshr_".into(),
        good[..good.len() - 1].into(),
        good.to_uppercase(),
        good.replacen("mshr_", "msh_", 1),
        format!("{good}0"),
        format!("{good}' OR '1'='1"),
    ] {
        let r = call(&s.projects, GetProjectByApiKey { key: bad }).await;
        assert_err!(
            r,
            Error::InvalidInput {
                field: "api_key",
                ..
            }
        );
    }
}

#[actix::test]
async fn api_keys_are_never_listed_or_stored_in_clear() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let project = create_project(&s, &org, "Web").await;
    let new = create_key(&s, &project, "ci").await;
    let key = new.key.expose();
    // The part of the key after its displayed prefix: the actual secret.
    let secret = &key[13..];

    let listed = call(
        &s.projects,
        ListApiKeys {
            project_id: project.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(listed, vec![new.info.clone()]);
    assert_eq!(listed[0].prefix, key[..13]);
    assert_eq!(listed[0].label, "ci");
    let json = serde_json::to_string(&listed).unwrap();
    assert!(!json.contains(key), "{json}");
    assert!(!json.contains(secret), "{json}");

    // Every column of the row, as text: neither the key nor its hex part
    // (as it would appear were the key's bytes stored raw).
    let whole_row = "SELECT count(*) FROM api_keys k WHERE strpos(row_to_json(k)::text, $1) > 0";
    assert_eq!(count_with(&t, whole_row, key).await, 0);
    assert_eq!(count_with(&t, whole_row, secret).await, 0);
    // What is stored is the key's SHA-256.
    assert_eq!(
        count_with(
            &t,
            "SELECT count(*) FROM api_keys WHERE key_hash = sha256(convert_to($1, 'UTF8'))",
            key
        )
        .await,
        1
    );
}

#[actix::test]
async fn revoked_api_key_stops_resolving_at_once() {
    let t = TestDb::new().await;
    let s = start(&t);
    let org = create_org(&s, "Acme", "acme").await;
    let project = create_project(&s, &org, "Web").await;
    let doomed = create_key(&s, &project, "old").await;
    let kept = create_key(&s, &project, "new").await;
    let resolve = |k: &NewApiKey| GetProjectByApiKey {
        key: k.key.expose().into(),
    };
    call(&s.projects, resolve(&doomed)).await.unwrap();

    let revoked = call(
        &s.projects,
        RevokeApiKey {
            key_id: doomed.info.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert!(revoked.revoked_at.is_some());
    // No sleep, no retry: the very next lookup must already fail.
    assert_err!(
        call(&s.projects, resolve(&doomed)).await,
        Error::InvalidCredentials
    );
    assert_eq!(
        call(&s.projects, resolve(&kept)).await.unwrap(),
        project,
        "revoking one key must leave the others working"
    );
    let listed = call(
        &s.projects,
        ListApiKeys {
            project_id: project.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(listed, vec![revoked, kept.info]);
}

// ---------------------------------------------------------------------------
// Sessions

#[actix::test]
async fn sessions_validate_until_logout() {
    let t = TestDb::new().await;
    let config = t.config().users;
    let ttl = chrono::Duration::from_std(config.session_ttl).unwrap();
    let s = start_with(&t, config);
    let ann = register(&s, "ann@example.org", PASSWORD).await;

    let first = call(&s.users, login("ann@example.org", PASSWORD))
        .await
        .unwrap();
    let second = call(&s.users, login("ann@example.org", PASSWORD))
        .await
        .unwrap();
    assert_ne!(first.token.expose(), second.token.expose());
    assert_eq!(first.session.user_id, ann.id);
    assert_eq!(first.session.expires_at - first.session.created_at, ttl);
    let validate = |token: &str| ValidateSession {
        token: token.into(),
    };

    let valid = call(&s.users, validate(first.token.expose()))
        .await
        .unwrap();
    assert_eq!(valid, first.session);

    call(
        &s.users,
        Logout {
            token: first.token.expose().into(),
        },
    )
    .await
    .unwrap();
    assert_err!(
        call(&s.users, validate(first.token.expose())).await,
        Error::InvalidCredentials,
    );
    // Logging out again is harmless; the other session is untouched.
    call(
        &s.users,
        Logout {
            token: first.token.expose().into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        call(&s.users, validate(second.token.expose()))
            .await
            .unwrap()
            .user_id,
        ann.id
    );

    // Never issued, and not a token at all.
    assert_err!(
        call(&s.users, validate(&"ab".repeat(32))).await,
        Error::InvalidCredentials,
    );
    assert_err!(
        call(&s.users, validate("not-a-token")).await,
        Error::InvalidInput {
            field: "session_token",
            ..
        },
    );
}

#[actix::test]
async fn sessions_expire_after_their_ttl() {
    let t = TestDb::new().await;
    // Short, yet long enough that the first check cannot miss it even when
    // the cost-12 test beside this one starves the runtime of CPU.
    let ttl = Duration::from_secs(1);
    let s = start_with(
        &t,
        UserConfig {
            session_ttl: ttl,
            ..t.config().users
        },
    );
    register(&s, "ann@example.org", PASSWORD).await;
    let new = call(&s.users, login("ann@example.org", PASSWORD))
        .await
        .unwrap();
    assert_eq!(
        new.session.expires_at - new.session.created_at,
        chrono::Duration::from_std(ttl).unwrap()
    );
    let validate = || ValidateSession {
        token: new.token.expose().into(),
    };
    call(&s.users, validate()).await.unwrap();

    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    // Expired is told apart from unknown, so a client can ask to log in
    // again rather than report an attack.
    assert_err!(call(&s.users, validate()).await, Error::SessionExpired);
}

#[actix::test]
async fn session_tokens_are_stored_only_as_hashes() {
    let t = TestDb::new().await;
    let s = start(&t);
    register(&s, "ann@example.org", PASSWORD).await;
    let new = call(&s.users, login("ann@example.org", PASSWORD))
        .await
        .unwrap();
    let token = new.token.expose();
    assert_eq!(token.len(), 64);

    let whole_row = "SELECT count(*) FROM sessions s WHERE strpos(row_to_json(s)::text, $1) > 0";
    assert_eq!(count_with(&t, whole_row, token).await, 0);
    assert_eq!(
        count_with(
            &t,
            "SELECT count(*) FROM sessions WHERE token_hash = sha256(convert_to($1, 'UTF8'))",
            token
        )
        .await,
        1
    );
}

// ---------------------------------------------------------------------------
// Users and memberships

#[actix::test]
async fn users_never_carry_the_password_hash() {
    let t = TestDb::new().await;
    let s = start(&t);
    let registered = register(&s, "ann@example.org", PASSWORD).await;
    let fetched = call(
        &s.users,
        GetUser {
            id: registered.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(fetched, registered);
    // The hash does exist, in the table only.
    assert_eq!(
        t.count("SELECT count(*) FROM users WHERE password_hash LIKE '$2b$04$%'")
            .await,
        1
    );

    for user in [&registered, &fetched] {
        let json = serde_json::to_string(user).unwrap();
        assert!(!json.contains("$2"), "{json}");
        assert!(!json.contains("password"), "{json}");
        assert!(!json.contains(PASSWORD), "{json}");
        let fields: Vec<String> = serde_json::to_value(user)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(fields, ["created_at", "display_name", "email", "id"]);
    }
}

#[actix::test]
async fn memberships_record_roles_and_list_both_ways() {
    let t = TestDb::new().await;
    let s = start(&t);
    let acme = create_org(&s, "Acme", "acme").await;
    let beta = create_org(&s, "Beta", "beta").await;
    let ann = register(&s, "ann@example.org", PASSWORD).await;
    let bob = register(&s, "bob@example.org", PASSWORD).await;
    let cy = register(&s, "cy@example.org", PASSWORD).await;
    let add = |user: &User, org: &Organization, role: &str| AddMember {
        user_id: user.id.to_string(),
        org_id: org.id.to_string(),
        role: role.into(),
    };

    let mut added = Vec::new();
    for (user, role, expected) in [
        (&ann, "owner", Role::Owner),
        (&bob, "admin", Role::Admin),
        (&cy, "member", Role::Member),
    ] {
        let m = call(&s.users, add(user, &acme, role)).await.unwrap();
        assert_eq!((m.user_id, m.org_id, m.role), (user.id, acme.id, expected));
        added.push(m);
    }
    call(&s.users, add(&ann, &beta, "member")).await.unwrap();

    let members = call(
        &s.users,
        GetMembers {
            org_id: acme.id.to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(members, added);
    let orgs_of = |user: &User| GetUserOrgs {
        user_id: user.id.to_string(),
    };
    assert_eq!(
        call(&s.users, orgs_of(&ann)).await.unwrap(),
        vec![acme.clone(), beta.clone()]
    );
    assert_eq!(call(&s.users, orgs_of(&bob)).await.unwrap(), vec![acme]);
    // A user with no membership is known, so an empty list, not NotFound.
    let dan = register(&s, "dan@example.org", PASSWORD).await;
    assert_eq!(call(&s.users, orgs_of(&dan)).await.unwrap(), vec![]);
}

#[actix::test]
async fn deleting_an_org_cascades_to_projects_keys_and_memberships() {
    let t = TestDb::new().await;
    let s = start(&t);
    let doomed = create_org(&s, "Doomed", "doomed").await;
    let survivor = create_org(&s, "Survivor", "survivor").await;
    let ann = register(&s, "ann@example.org", PASSWORD).await;
    let bob = register(&s, "bob@example.org", PASSWORD).await;

    let web = create_project(&s, &doomed, "Web").await;
    let api = create_project(&s, &doomed, "Api").await;
    let doomed_key = create_key(&s, &web, "a").await;
    create_key(&s, &web, "b").await;
    create_key(&s, &api, "c").await;
    let kept_project = create_project(&s, &survivor, "Kept").await;
    let kept_key = create_key(&s, &kept_project, "kept").await;
    for (user, org) in [(&ann, &doomed), (&bob, &doomed), (&ann, &survivor)] {
        call(
            &s.users,
            AddMember {
                user_id: user.id.to_string(),
                org_id: org.id.to_string(),
                role: "member".into(),
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(
        row_counts(&t).await,
        [
            ("organizations", 2),
            ("projects", 3),
            ("api_keys", 4),
            ("users", 2),
            ("org_memberships", 3),
            ("sessions", 0),
        ]
    );

    t.pool
        .get()
        .await
        .unwrap()
        .execute("DELETE FROM organizations WHERE id = $1", &[&doomed.id])
        .await
        .unwrap();

    // Only the deleted organization's rows go; users are not owned by it.
    assert_eq!(
        row_counts(&t).await,
        [
            ("organizations", 1),
            ("projects", 1),
            ("api_keys", 1),
            ("users", 2),
            ("org_memberships", 1),
            ("sessions", 0),
        ]
    );
    assert_err!(
        call(
            &s.projects,
            GetProject {
                id: web.id.to_string(),
            },
        )
        .await,
        Error::NotFound { entity: "project" },
    );
    assert_err!(
        call(
            &s.projects,
            GetProjectByApiKey {
                key: doomed_key.key.expose().into(),
            },
        )
        .await,
        Error::InvalidCredentials,
    );
    assert_eq!(
        call(
            &s.projects,
            GetProjectByApiKey {
                key: kept_key.key.expose().into(),
            },
        )
        .await
        .unwrap(),
        kept_project
    );
    assert_eq!(
        call(
            &s.users,
            GetUserOrgs {
                user_id: ann.id.to_string(),
            },
        )
        .await
        .unwrap(),
        vec![survivor]
    );
}
