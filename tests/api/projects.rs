//! ProjectService: projects and their `mshr_` API keys.

use crate::common::TestDb;
use crate::helpers::*;
use mesher::Error;
use mesher::services::{CreateProject, CreateProjectWithKey, GetProjectByApiKey, RevokeApiKey};

#[actix::test]
async fn bad_project_input_is_rejected_without_a_row() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let project = s.project(&org, "Web").await;
    let before = row_counts(&t).await;

    let too_long = "w".repeat(201);
    for name in ["", "   ", too_long.as_str()] {
        let r = call(
            &s.projects,
            CreateProject {
                platform: None,
                ..create_project(&org, name)
            },
        )
        .await;
        assert_err!(r, Error::InvalidInput { field: "name", .. });
    }
    assert_err!(
        call(
            &s.projects,
            CreateProject {
                platform: Some(String::new()),
                ..create_project(&org, "Api")
            },
        )
        .await,
        Error::InvalidInput {
            field: "platform",
            ..
        },
    );
    assert_err!(
        call(&s.projects, create_key(&project, Some(&too_long))).await,
        Error::InvalidInput { field: "label", .. },
    );
    assert_eq!(row_counts(&t).await, before);
}

#[actix::test]
async fn api_keys_are_random_mshr_keys_that_resolve_to_their_project() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let web = s.project(&org, "Web").await;
    let api = s.project(&org, "Api").await;

    let a = s.key(&web, "ci").await;
    let b = s.key(&web, "ci").await;
    let c = s.key(&api, "prod").await;
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
        let found = call(&s.projects, by_key(k)).await.unwrap();
        assert_eq!(&found.project, project);
        assert_eq!(found.key_id, k.info.id);
    }
    // Well-formed but never issued.
    let forged = format!("mshr_{}", "0".repeat(64));
    assert_err!(
        call(&s.projects, GetProjectByApiKey { key: forged }).await,
        Error::InvalidCredentials,
    );
    let default_label = call(&s.projects, create_key(&api, None)).await.unwrap();
    assert_eq!(default_label.info.label, "default");
}

#[actix::test]
async fn malformed_api_keys_are_invalid_input() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let project = s.project(&org, "Web").await;
    let good = s.key(&project, "ci").await.key.expose().to_owned();

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
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let project = s.project(&org, "Web").await;
    let new = s.key(&project, "ci").await;
    let key = new.key.expose();
    // The part of the key after its displayed prefix: the actual secret.
    let secret = &key[13..];

    let listed = call(&s.projects, keys_of(&project)).await.unwrap();
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
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let project = s.project(&org, "Web").await;
    let doomed = s.key(&project, "old").await;
    let kept = s.key(&project, "new").await;
    call(&s.projects, by_key(&doomed)).await.unwrap();

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
        call(&s.projects, by_key(&doomed)).await,
        Error::InvalidCredentials
    );
    assert_eq!(
        call(&s.projects, by_key(&kept)).await.unwrap().project,
        project,
        "revoking one key must leave the others working"
    );
    let listed = call(&s.projects, keys_of(&project)).await.unwrap();
    assert_eq!(listed, vec![revoked, kept.info]);
}

#[actix::test]
async fn a_project_made_with_its_first_key_has_both_or_neither() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let with_key = |name: &str, label: Option<&str>| CreateProjectWithKey {
        org_id: org.id.to_string(),
        name: name.into(),
        platform: Some("rust".into()),
        label: label.map(Into::into),
    };

    let made = call(&s.projects, with_key("Web", None)).await.unwrap();
    assert_eq!(made.project.name, "Web");
    assert_eq!(made.key.info.project_id, made.project.id);
    assert_eq!(made.key.info.label, "default");
    assert!(
        made.key
            .dsn
            .ends_with(&format!("/{}", made.project.public_id)),
        "{}",
        made.key.dsn
    );
    let resolved = call(&s.projects, by_key(&made.key)).await.unwrap();
    assert_eq!(resolved.project, made.project);
    let keys = call(&s.projects, keys_of(&made.project)).await.unwrap();
    assert_eq!(keys, std::slice::from_ref(&made.key.info));

    // Refused input writes nothing, whichever half it is in.
    let before = row_counts(&t).await;
    let too_long = "x".repeat(201);
    assert_err!(
        call(&s.projects, with_key("", None)).await,
        Error::InvalidInput { field: "name", .. },
    );
    assert_err!(
        call(&s.projects, with_key("Api", Some(&too_long))).await,
        Error::InvalidInput { field: "label", .. },
    );
    // A failure in the database after the project's row, before the key's
    // (the keys' table is away), leaves no project behind.
    t.execute("ALTER TABLE api_keys RENAME TO api_keys_away")
        .await;
    let failed = call(&s.projects, with_key("Api", None)).await;
    t.execute("ALTER TABLE api_keys_away RENAME TO api_keys")
        .await;
    assert_err!(failed, Error::Database(_));
    assert_eq!(row_counts(&t).await, before);
}
