//! Memberships: a user's role in an organization, listed both ways.

use crate::common::TestDb;
use crate::helpers::*;
use mesher::Error;
use mesher::domain::Role;

#[actix::test]
async fn memberships_record_roles_and_list_both_ways() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let acme = s.org("Acme", "acme").await;
    let beta = s.org("Beta", "beta").await;
    let ann = s.user("ann@example.org").await;
    let bob = s.user("bob@example.org").await;
    let cy = s.user("cy@example.org").await;

    let mut added = Vec::new();
    for (user, role, expected) in [
        (&ann, "owner", Role::Owner),
        (&bob, "admin", Role::Admin),
        (&cy, "member", Role::Member),
    ] {
        let m = s.member(user, &acme, role).await;
        assert_eq!((m.user_id, m.org_id, m.role), (user.id, acme.id, expected));
        added.push(m);
    }
    s.member(&ann, &beta, "member").await;

    let members = call(&s.users, members_of(&acme)).await.unwrap();
    assert_eq!(members, added);
    assert_eq!(
        call(&s.users, orgs_of(&ann)).await.unwrap(),
        vec![acme.clone(), beta.clone()]
    );
    assert_eq!(call(&s.users, orgs_of(&bob)).await.unwrap(), vec![acme]);
    // A user with no membership is known, so an empty list, not NotFound.
    let dan = s.user("dan@example.org").await;
    assert_eq!(call(&s.users, orgs_of(&dan)).await.unwrap(), vec![]);
}

#[actix::test]
async fn unknown_roles_and_duplicate_memberships_are_rejected() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    let org = s.org("Acme", "acme").await;
    let user = s.user("ann@example.org").await;

    for role in ["superuser", "Owner", "", "member "] {
        assert_err!(
            call(&s.users, add_member(&user, &org, role)).await,
            Error::InvalidInput { field: "role", .. }
        );
    }
    assert_eq!(t.count("SELECT count(*) FROM org_memberships").await, 0);

    let first = s.member(&user, &org, "admin").await;
    // A second membership, even with another role, must not replace or
    // duplicate the first.
    assert_err!(
        call(&s.users, add_member(&user, &org, "owner")).await,
        Error::AlreadyExists {
            entity: "membership"
        },
    );
    let members = call(&s.users, members_of(&org)).await.unwrap();
    assert_eq!(members, vec![first]);
}
