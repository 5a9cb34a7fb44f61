//! Sessions: opened by a login, validated, ended by logout or expiry.

use crate::common::TestDb;
use crate::helpers::*;
use mesher::Error;
use mesher::config::UserConfig;
use std::time::Duration;

#[actix::test]
async fn sessions_validate_until_logout() {
    let t = TestDb::new().await;
    let config = t.config().users;
    let ttl = chrono::Duration::from_std(config.session_ttl).unwrap();
    let s = Services::start_with(&t, config);
    let ann = s.user("ann@example.org").await;

    let first = s.login("ann@example.org").await;
    let second = s.login("ann@example.org").await;
    assert_ne!(first.token.expose(), second.token.expose());
    assert_eq!(first.session.user_id, ann.id);
    assert_eq!(first.session.expires_at - first.session.created_at, ttl);

    let valid = call(&s.users, validate(first.token.expose()))
        .await
        .unwrap();
    assert_eq!(valid, first.session);

    call(&s.users, logout(first.token.expose())).await.unwrap();
    assert_err!(
        call(&s.users, validate(first.token.expose())).await,
        Error::InvalidCredentials,
    );
    // Logging out again is harmless; the other session is untouched.
    call(&s.users, logout(first.token.expose())).await.unwrap();
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

/// Moves every session `by` into the past, as if it had been opened that
/// much earlier: time passing, without waiting for it.
async fn age_sessions(t: &TestDb, by: Duration) {
    t.pool
        .get()
        .await
        .expect("connection")
        .execute(
            "UPDATE sessions SET created_at = created_at - make_interval(secs => $1),
                                 expires_at = expires_at - make_interval(secs => $1)",
            &[&by.as_secs_f64()],
        )
        .await
        .expect("age the sessions");
}

#[actix::test]
async fn sessions_expire_after_their_ttl() {
    let t = TestDb::new().await;
    let ttl = Duration::from_secs(3600);
    let s = Services::start_with(
        &t,
        UserConfig {
            session_ttl: ttl,
            ..t.config().users
        },
    );
    s.user("ann@example.org").await;
    let new = s.login("ann@example.org").await;
    assert_eq!(
        new.session.expires_at - new.session.created_at,
        chrono::Duration::from_std(ttl).unwrap()
    );
    let token = new.token.expose();
    call(&s.users, validate(token)).await.unwrap();

    // A minute short of its lifetime, it is still good...
    let minute = Duration::from_secs(60);
    age_sessions(&t, ttl - minute).await;
    call(&s.users, validate(token)).await.unwrap();
    // ...and past it, expired. Expired is told apart from unknown, so a
    // client can ask to log in again rather than report an attack.
    age_sessions(&t, minute).await;
    assert_err!(call(&s.users, validate(token)).await, Error::SessionExpired);
}

#[actix::test]
async fn session_tokens_are_stored_only_as_hashes() {
    let t = TestDb::new().await;
    let s = Services::start(&t);
    s.user("ann@example.org").await;
    let new = s.login("ann@example.org").await;
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
