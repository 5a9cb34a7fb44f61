//! Per-project settings and rate limits: changed by admins through the
//! API, obeyed by a real SDK, and a project's usage shown.

use crate::common::outcomes::Metrics;
use crate::common::{TestDb, wait_until};
use crate::dashboard::Dash;
use actix_web::http::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Requests the envelope route answered with `status`, as counted
/// (envelopes without events included: the SDK's client reports).
fn answered(metrics: &Metrics, status: &str) -> u64 {
    let route = ("route", "/api/{project_id}/envelope/");
    metrics.value("mesher_http_requests", &[route, ("status", status)]) as u64
}

async fn stored_of(t: &TestDb, project: &str) -> i64 {
    t.count(&format!(
        "SELECT count(*) FROM events WHERE project_id = '{project}'"
    ))
    .await
}

/// An SDK client for `dsn`, sending from its own thread.
fn client(dsn: &str) -> Arc<sentry::Client> {
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(dsn.parse().unwrap());
    Arc::new(sentry::Client::from(sentry::apply_defaults(options)))
}

fn capture(client: &Arc<sentry::Client>, message: &str) {
    let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
    hub.capture_message(message, sentry::Level::Error);
}

/// `n` events through each of two SDK clients in turn, each flushed
/// before the next is captured (the SDK's queue holds only 30): whether
/// every flush finished.
async fn capture_in_turn(dsns: [&str; 2], n: usize) -> bool {
    let clients = dsns.map(client);
    tokio::task::spawn_blocking(move || {
        (0..n).all(|i| {
            clients.iter().all(|sdk| {
                capture(sdk, &format!("event {i}"));
                sdk.flush(Some(Duration::from_secs(10)))
            })
        })
    })
    .await
    .unwrap()
}

#[actix::test]
async fn admins_set_a_projects_retention_and_limit_and_see_its_usage() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let owned = dash.owner_with_project("owner@example.com", "app").await;
    let path = format!("/api/v1/projects/{}", owned.project.id);
    let patch = |body| {
        dash.call(
            Method::PATCH,
            &path,
            crate::dashboard::Auth::Bearer(&owned.owner),
            Some(body),
        )
    };

    let shown = dash.get(&path, &owned.owner).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.body["retention_days"], json!(null));
    assert_eq!(shown.body["rate_limit_per_minute"], json!(null));
    assert_eq!(shown.body["usage"], json!({"events": 0, "bytes": 0}));

    let set = patch(json!({"retention_days": 7, "rate_limit_per_minute": 600})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["retention_days"], 7);
    assert_eq!(set.body["rate_limit_per_minute"], 600);
    // A field left out stays; null removes it.
    let cleared = patch(json!({"rate_limit_per_minute": null})).await;
    assert_eq!(cleared.body["retention_days"], 7);
    assert_eq!(cleared.body["rate_limit_per_minute"], json!(null));
    // Longer than the server's (90 days), or none at all: refused.
    for bad in [
        json!({"retention_days": 91}),
        json!({"retention_days": 0}),
        json!({"rate_limit_per_minute": 0}),
        json!({"rate_limit_per_minute": -5}),
    ] {
        let refused = patch(bad.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        dash.get(&path, &owned.owner).await.body["retention_days"],
        7
    );

    // A member reads the settings but may not change them; an outsider
    // does not see the project.
    let member = dash.user("member@example.com").await;
    let added = dash
        .post(
            &format!("/api/v1/orgs/{}/members", owned.org),
            &owned.owner,
            json!({"email": "member@example.com", "role": "member"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let by_member = dash
        .call(
            Method::PATCH,
            &path,
            crate::dashboard::Auth::Bearer(&member),
            Some(json!({"retention_days": 1})),
        )
        .await;
    assert_eq!(by_member.status, StatusCode::FORBIDDEN);
    let outsider = dash.user("outsider@example.com").await;
    let by_outsider = dash
        .call(
            Method::PATCH,
            &path,
            crate::dashboard::Auth::Bearer(&outsider),
            Some(json!({"retention_days": 1})),
        )
        .await;
    assert_eq!(by_outsider.status, StatusCode::NOT_FOUND);

    // Usage: what the project stores.
    let sdk = client(&owned.project.dsn);
    let sent = tokio::task::spawn_blocking(move || {
        for i in 0..3 {
            capture(&sdk, &format!("boom {i}"));
        }
        sdk.flush(Some(Duration::from_secs(10)))
    });
    assert!(sent.await.unwrap());
    wait_until("the events are stored", async || {
        stored_of(&t, &owned.project.id).await == 3
    })
    .await;
    let usage = &dash.get(&path, &owned.owner).await.body["usage"];
    assert_eq!(usage["events"], 3);
    assert!(usage["bytes"].as_i64().unwrap() > 0, "{usage}");
}

#[actix::test]
async fn a_project_over_its_limit_gets_429_and_the_sdk_backs_off() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let limited = dash.owner_with_project("owner@example.com", "noisy").await;
    let other = dash
        .project(&limited.owner, &limited.org, json!({"name": "quiet"}))
        .await;
    // 30 a minute: a burst of 30, then one every 2 s.
    let set = dash
        .call(
            Method::PATCH,
            &format!("/api/v1/projects/{}", limited.project.id),
            crate::dashboard::Auth::Bearer(&limited.owner),
            Some(json!({"rate_limit_per_minute": 30})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);

    assert!(capture_in_turn([&limited.project.dsn, &other.dsn], 40).await);
    wait_until("the quiet project's events are stored", async || {
        stored_of(&t, &other.id).await == 40
    })
    .await;
    let metrics = Metrics::of(&dash.mesher.metrics);
    // The burst passed; the 31st was refused, and the SDK sent none of the
    // 9 after it: it obeyed the header.
    assert_eq!(stored_of(&t, &limited.project.id).await, 30);
    assert_eq!(answered(&metrics, "429"), 1);
    assert_eq!(
        metrics.counter_with("events_refused", "reason", "rate_limited"),
        1
    );
    assert_eq!(metrics.counter("events_accepted"), 30 + 40);

    // What the SDK was told.
    let auth = format!(
        "Sentry sentry_key={}, sentry_version=7",
        limited.project.key
    );
    let public_id = limited.project.dsn.rsplit('/').next().unwrap().to_owned();
    let raw = dash
        .client()
        .post(dash.url(&format!("/api/{public_id}/store/")))
        .insert_header(("X-Sentry-Auth", auth))
        .send_body(r#"{"message": "one more"}"#)
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::TOO_MANY_REQUESTS);
    let header = |name| {
        raw.headers()
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let retry_after: u64 = header("retry-after").parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        header("x-sentry-rate-limits"),
        format!("{retry_after}:error;default:project:rate_limited")
    );

    // Once the wait is over the SDK sends again, and is taken.
    let resumed = Arc::new(AtomicBool::new(false));
    let noisy = client(&limited.project.dsn);
    let done = resumed.clone();
    let sending = tokio::task::spawn_blocking(move || {
        let mut i = 0;
        while !done.load(Ordering::Relaxed) {
            capture(&noisy, &format!("later {i}"));
            noisy.flush(Some(Duration::from_secs(10)));
            i += 1;
            // The pace of an application's errors, not a wait for a
            // condition (that is the wait_until below).
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    wait_until("an event after the wait is stored", async || {
        stored_of(&t, &limited.project.id).await > 30
    })
    .await;
    resumed.store(true, Ordering::Relaxed);
    sending.await.unwrap();
    let metrics = Metrics::of(&dash.mesher.metrics);
    // Every event answered 200 is stored: refused ones were never taken.
    metrics.assert_settled_and_equal_to_rows(&t).await;
}

#[actix::test]
async fn twelve_thousand_keys_used_in_turn_are_each_looked_up_once() {
    use mesher::domain::ApiKey;
    use mesher::services::resolve_key;
    let t = TestDb::new().await;
    let mesher = t.start().await;
    let project = crate::common::project_with_key(&mesher, "many keys").await;
    let keys: Vec<ApiKey> = (0..12_000).map(|_| ApiKey::generate().unwrap()).collect();
    let hashes: Vec<Vec<u8>> = keys.iter().map(ApiKey::hash).collect();
    let prefixes: Vec<&str> = keys.iter().map(ApiKey::display_prefix).collect();
    t.pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO api_keys (id, project_id, key_hash, key_prefix)
             SELECT gen_random_uuid(), $1, h, p FROM unnest($2::bytea[], $3::text[]) AS k(h, p)",
            &[&project.project.id, &hashes, &prefixes],
        )
        .await
        .unwrap();
    let before = mesher.keys.lookups();
    // Every key in turn, twice: a cache that emptied itself when full, or
    // kept fewer keys than are in use, would ask the database again.
    // (A few at once, as requests come: both rounds take far less than
    // the cache's 60 s lifetime.)
    for round in 0..2 {
        for chunk in keys.chunks(50) {
            let found =
                futures_util::future::join_all(chunk.iter().map(|key| {
                    resolve_key(&mesher.keys, &mesher.projects, key.expose().to_owned())
                }))
                .await;
            for project_of_key in found {
                assert_eq!(
                    project_of_key.unwrap().project.id,
                    project.project.id,
                    "round {round}"
                );
            }
        }
        assert_eq!(
            mesher.keys.lookups() - before,
            12_000,
            "after round {round}"
        );
    }
    mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_key_over_its_own_limit_gets_429_naming_the_key_and_the_projects_other_keys_go_on() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let owned = dash.owner_with_project("owner@example.com", "web").await;
    let keys_path = format!("/api/v1/projects/{}/keys", owned.project.id);
    // The project's first key, and a second one for another deployment.
    let listed = dash.get(&keys_path, &owned.owner).await;
    let noisy_id = listed.body[0]["id"].as_str().unwrap().to_owned();
    let second = dash
        .post(&keys_path, &owned.owner, json!({"label": "batch jobs"}))
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    let quiet_dsn = second.body["dsn"].as_str().unwrap().to_owned();

    let key_path = format!("{keys_path}/{noisy_id}");
    let patch = |path: String, token: String, body| {
        let dash = &dash;
        async move {
            dash.call(
                Method::PATCH,
                &path,
                crate::dashboard::Auth::Bearer(&token),
                Some(body),
            )
            .await
        }
    };
    for bad in [
        json!({"rate_limit_per_minute": 0}),
        json!({"rate_limit_per_minute": 10_000_001}),
        json!({"rate_limit_per_minute": "ten"}),
    ] {
        let refused = patch(key_path.clone(), owned.owner.clone(), bad.clone()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // A key is limited through its own project only.
    let elsewhere = dash
        .project(&owned.owner, &owned.org, json!({"name": "api"}))
        .await;
    let not_mine = patch(
        format!("/api/v1/projects/{}/keys/{noisy_id}", elsewhere.id),
        owned.owner.clone(),
        json!({"rate_limit_per_minute": 1}),
    )
    .await;
    assert_eq!(not_mine.status, StatusCode::NOT_FOUND, "{}", not_mine.body);
    // 20 a minute for this key alone.
    let set = patch(
        key_path.clone(),
        owned.owner.clone(),
        json!({"rate_limit_per_minute": 20}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["rate_limit_per_minute"], 20);
    // A field left out leaves the limit as it is.
    let unchanged = patch(key_path.clone(), owned.owner.clone(), json!({})).await;
    assert_eq!(unchanged.body["rate_limit_per_minute"], 20);
    let listed = dash.get(&keys_path, &owned.owner).await;
    assert_eq!(listed.body[0]["rate_limit_per_minute"], 20);
    assert_eq!(listed.body[1]["rate_limit_per_minute"], json!(null));

    assert!(capture_in_turn([&owned.project.dsn, &quiet_dsn], 25).await);
    // The limited key's burst and the other key's every event, in one
    // project with no limit of its own.
    wait_until("both keys' accepted events are stored", async || {
        stored_of(&t, &owned.project.id).await == 20 + 25
    })
    .await;
    let metrics = Metrics::of(&dash.mesher.metrics);
    assert_eq!(answered(&metrics, "429"), 1, "the SDK backed off after one");
    assert_eq!(
        metrics.counter_with("events_refused", "reason", "rate_limited"),
        1
    );

    // What the SDK was told: the key's limit, not the project's.
    let auth = format!("Sentry sentry_key={}, sentry_version=7", owned.project.key);
    let public_id = owned.project.dsn.rsplit('/').next().unwrap().to_owned();
    let raw = dash
        .client()
        .post(dash.url(&format!("/api/{public_id}/store/")))
        .insert_header(("X-Sentry-Auth", auth))
        .send_body(r#"{"message": "one more"}"#)
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::TOO_MANY_REQUESTS);
    let limits = raw.headers().get("x-sentry-rate-limits").unwrap();
    let limits = limits.to_str().unwrap();
    assert!(
        limits.ends_with(":error;default:key:rate_limited"),
        "{limits}"
    );

    // Lifted, the key sends again at once.
    let lifted = patch(
        key_path,
        owned.owner.clone(),
        json!({"rate_limit_per_minute": null}),
    )
    .await;
    assert_eq!(lifted.body["rate_limit_per_minute"], json!(null));
    let noisy = client(&owned.project.dsn);
    let sent = tokio::task::spawn_blocking(move || {
        capture(&noisy, "after the lift");
        noisy.flush(Some(Duration::from_secs(10)))
    });
    assert!(sent.await.unwrap());
    wait_until("the event after the lift is stored", async || {
        stored_of(&t, &owned.project.id).await == 20 + 25 + 1
    })
    .await;
    let metrics = Metrics::of(&dash.mesher.metrics);
    metrics.assert_settled_and_equal_to_rows(&t).await;
}
