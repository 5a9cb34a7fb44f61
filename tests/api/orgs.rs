//! OrgService: organizations, their slugs, and what deleting one takes
//! with it.

use crate::common::TestDb;
use crate::helpers::*;
use futures_util::future::join_all;
use mesher::Error;
use mesher::domain::Organization;
use mesher::services::{CreateOrg, ListOrgs};

#[actix::test]
async fn concurrent_creates_with_one_slug_store_exactly_one_org() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let attempts = (0..10).map(|i| s.orgs.send(create_org(&format!("Acme {i}"), "acme")));
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
    let s = Services::start(&t);
    s.org("Acme", "acme").await;
    let before = row_counts(&t).await;

    let long_slug = "a".repeat(65);
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
        &long_slug,
    ];
    for slug in bad_slugs {
        let r = call(&s.orgs, create_org("Fine Name", slug)).await;
        assert_err!(r, Error::InvalidInput { field: "slug", .. });
    }
    for name in [String::new(), "   ".into(), "a".repeat(201)] {
        let r = call(
            &s.orgs,
            CreateOrg {
                name,
                ..create_org("", "fine-slug")
            },
        )
        .await;
        assert_err!(r, Error::InvalidInput { field: "name", .. });
    }
    assert_err!(
        call(&s.orgs, create_org("Other", "acme")).await,
        Error::AlreadyExists {
            entity: "organization"
        },
    );
    assert_eq!(row_counts(&t).await, before);

    // The limit is 200 characters, not bytes: 200 CJK characters fit.
    let wide = "漢".repeat(200);
    assert_eq!(s.org(&wide, "wide").await.name, wide);
}

#[actix::test]
async fn deleting_an_org_cascades_to_projects_keys_and_memberships() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let doomed = s.org("Doomed", "doomed").await;
    let survivor = s.org("Survivor", "survivor").await;
    let ann = s.user("ann@example.org").await;
    let bob = s.user("bob@example.org").await;

    let web = s.project(&doomed, "Web").await;
    let api = s.project(&doomed, "Api").await;
    let doomed_key = s.key(&web, "a").await;
    s.key(&web, "b").await;
    s.key(&api, "c").await;
    let kept_project = s.project(&survivor, "Kept").await;
    let kept_key = s.key(&kept_project, "kept").await;
    for (user, org) in [(&ann, &doomed), (&bob, &doomed), (&ann, &survivor)] {
        s.member(user, org, "member").await;
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
        call(&s.projects, get_project(&web)).await,
        Error::NotFound { entity: "project" },
    );
    assert_err!(
        call(&s.projects, by_key(&doomed_key)).await,
        Error::InvalidCredentials,
    );
    assert_eq!(
        call(&s.projects, by_key(&kept_key)).await.unwrap().project,
        kept_project
    );
    assert_eq!(call(&s.users, orgs_of(&ann)).await.unwrap(), vec![survivor]);
}
