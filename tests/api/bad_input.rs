//! Bad input across the tenancy services: malformed and unknown ids get a
//! typed error naming the field or entity and write nothing; hostile text
//! is stored verbatim.

use crate::common::TestDb;
use crate::helpers::*;
use mesher::Error;
use mesher::services::{
    AddMember, CreateApiKey, CreateProject, GetMembers, GetOrg, GetProject, GetUser, GetUserOrgs,
    ListApiKeys, ListProjectsByOrg, Register, RevokeApiKey,
};
use uuid::Uuid;

/// Asserts that `msg`, sent to `addr`, is refused as invalid input naming
/// `field`.
macro_rules! assert_invalid {
    ($addr:expr, $msg:expr, $field:literal) => {
        assert_err!(
            call($addr, $msg).await,
            Error::InvalidInput { field: $field, .. }
        )
    };
}

/// Asserts that `msg`, sent to `addr`, is refused as naming an unknown
/// `entity`.
macro_rules! assert_not_found {
    ($addr:expr, $msg:expr, $entity:literal) => {
        assert_err!(call($addr, $msg).await, Error::NotFound { entity: $entity })
    };
}

#[actix::test]
async fn malformed_ids_are_invalid_input_naming_the_field() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let user = s.user("ann@example.org").await;
    let project = s.project(&org, "Web").await;
    let before = row_counts(&t).await;
    let bad = || "not-a-uuid".to_owned();

    assert_invalid!(&s.orgs, GetOrg { id: bad() }, "id");
    assert_invalid!(&s.projects, GetProject { id: bad() }, "id");
    assert_invalid!(&s.users, GetUser { id: bad() }, "id");
    assert_invalid!(&s.projects, ListProjectsByOrg { org_id: bad() }, "org_id");
    let project_in_bad_org = CreateProject {
        org_id: bad(),
        platform: None,
        ..create_project(&org, "Web")
    };
    assert_invalid!(&s.projects, project_in_bad_org, "org_id");
    let key_of_bad_project = CreateApiKey {
        project_id: bad(),
        ..create_key(&project, None)
    };
    assert_invalid!(&s.projects, key_of_bad_project, "project_id");
    assert_invalid!(&s.projects, ListApiKeys { project_id: bad() }, "project_id");
    assert_invalid!(&s.projects, RevokeApiKey { key_id: bad() }, "key_id");
    let bad_user = AddMember {
        user_id: bad(),
        ..add_member(&user, &org, "member")
    };
    assert_invalid!(&s.users, bad_user, "user_id");
    let hostile_org = AddMember {
        org_id: "'; DROP TABLE org_memberships; --".into(),
        ..add_member(&user, &org, "member")
    };
    assert_invalid!(&s.users, hostile_org, "org_id");
    assert_invalid!(&s.users, GetMembers { org_id: bad() }, "org_id");
    assert_invalid!(&s.users, GetUserOrgs { user_id: bad() }, "user_id");
    assert_eq!(row_counts(&t).await, before);
}

#[actix::test]
async fn unknown_ids_are_not_found_for_the_right_entity() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let user = s.user("ann@example.org").await;
    let project = s.project(&org, "Web").await;
    let before = row_counts(&t).await;
    // Well-formed ids of the kind Mesher issues, that name nothing.
    let unknown = || Uuid::now_v7().to_string();

    assert_not_found!(&s.orgs, GetOrg { id: unknown() }, "organization");
    assert_not_found!(&s.projects, GetProject { id: unknown() }, "project");
    assert_not_found!(&s.users, GetUser { id: unknown() }, "user");
    assert_not_found!(
        &s.projects,
        ListProjectsByOrg { org_id: unknown() },
        "organization"
    );
    let orphan = CreateProject {
        org_id: unknown(),
        platform: None,
        ..create_project(&org, "Orphan")
    };
    assert_not_found!(&s.projects, orphan, "organization");
    let orphan_key = CreateApiKey {
        project_id: unknown(),
        ..create_key(&project, None)
    };
    assert_not_found!(&s.projects, orphan_key, "project");
    assert_not_found!(
        &s.projects,
        ListApiKeys {
            project_id: unknown()
        },
        "project"
    );
    assert_not_found!(&s.projects, RevokeApiKey { key_id: unknown() }, "api key");
    let unknown_user = AddMember {
        user_id: unknown(),
        ..add_member(&user, &org, "member")
    };
    assert_not_found!(&s.users, unknown_user, "user");
    let unknown_org = AddMember {
        org_id: unknown(),
        ..add_member(&user, &org, "member")
    };
    assert_not_found!(&s.users, unknown_org, "organization");
    assert_not_found!(&s.users, GetMembers { org_id: unknown() }, "organization");
    assert_not_found!(&s.users, GetUserOrgs { user_id: unknown() }, "user");
    assert_eq!(row_counts(&t).await, before);
}

#[actix::test]
async fn hostile_and_non_ascii_text_is_stored_verbatim() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org_name = "Robert'); DROP TABLE organizations; -- \"quoted\" \\ 💥 Ünïcödé 漢字";
    let project_name = "'; DELETE FROM projects WHERE ''=' 🚀 プロジェクト";
    let platform = "rust; --";
    let display_name = "李小龍 O'Brien\"; TRUNCATE users; -- 🐉";
    let password = "pässwörd; DROP TABLE users; --";

    let org = s.org(org_name, "bobby").await;
    assert_eq!(org.name, org_name);
    let project = call(
        &s.projects,
        CreateProject {
            platform: Some(platform.into()),
            ..create_project(&org, project_name)
        },
    )
    .await
    .unwrap();
    let user = s
        .register(Register {
            password: password.into(),
            display_name: display_name.into(),
            ..register("O'Brien@Example.org")
        })
        .await;

    // Read back through the actors...
    let org_back = call(&s.orgs, get_org(&org)).await.unwrap();
    assert_eq!(org_back.name, org_name);
    let project_back = call(&s.projects, get_project(&project)).await.unwrap();
    assert_eq!(project_back.name, project_name);
    assert_eq!(project_back.platform.as_deref(), Some(platform));
    let user_back = call(&s.users, get_user(&user)).await.unwrap();
    assert_eq!(user_back.display_name, display_name);
    assert_eq!(user_back.email, "o'brien@example.org");
    call(&s.users, login("o'brien@example.org", password))
        .await
        .unwrap();

    // ...and at the database level, compared as bound parameters.
    for (sql, value) in [
        (
            "SELECT count(*) FROM organizations WHERE name = $1",
            org_name,
        ),
        (
            "SELECT count(*) FROM projects WHERE name = $1",
            project_name,
        ),
        (
            "SELECT count(*) FROM users WHERE display_name = $1",
            display_name,
        ),
    ] {
        assert_eq!(count_with(&t, sql, value).await, 1, "{sql} {value:?}");
    }
}
