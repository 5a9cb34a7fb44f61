//! Ingestion over HTTP: a real server on a real socket, fed by the real
//! Sentry SDK for Rust and by hand-made requests for every bad input.

use crate::common::outcomes::Metrics;
use crate::common::{TestDb, project_with_key, wait_until};
use actix_web::http::StatusCode;
use mesher::db;
use mesher::domain::{NewApiKey, Project, ProjectWithKey, Severity};
use mesher::services::RevokeApiKey;
use mesher::{Config, Mesher};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// A running Mesher with one project and its key.
struct Server {
    mesher: Mesher,
    project: Project,
    key: NewApiKey,
}

impl Server {
    async fn start(t: &TestDb) -> Server {
        Self::start_with(t, |_| {}).await
    }

    async fn start_with(t: &TestDb, tune: impl FnOnce(&mut Config)) -> Server {
        let mesher = t.start_with(tune).await;
        let ProjectWithKey { project, key } = project_with_key(&mesher, "app").await;
        Server {
            mesher,
            project,
            key,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.mesher.http_addr)
    }

    fn envelope_url(&self) -> String {
        self.url(&format!("/api/{}/envelope/", self.project.public_id))
    }

    fn store_url(&self) -> String {
        self.url(&format!("/api/{}/store/", self.project.public_id))
    }

    fn auth(&self) -> String {
        sentry_auth(self.key.key.expose())
    }
}

fn sentry_auth(key: &str) -> String {
    format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=sentry.rust/0.49.5")
}

/// An envelope holding one event with `payload`, with a length header.
fn envelope(payload: &Value) -> Vec<u8> {
    let body = payload.to_string();
    format!(
        "{{\"event_id\":\"{}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{body}\n",
        payload["event_id"].as_str().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

fn event(message: &str) -> Value {
    json!({
        "event_id": uuid::Uuid::now_v7().simple().to_string(),
        "message": message,
        "level": "error",
        "platform": "python",
    })
}

/// Request headers, by name.
type Headers<'a> = Vec<(&'a str, &'a str)>;

async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, awc::http::header::HeaderMap, Value) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut request = client.post(url);
    for (name, value) in headers {
        request = request.insert_header((*name, *value));
    }
    let mut response = request.send_body(body).await.expect("request");
    let body = response.body().limit(1 << 20).await.expect("body");
    let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{} answered a body that is not JSON: {:?}",
            response.status(),
            String::from_utf8_lossy(&body)
        )
    });
    (response.status(), response.headers().clone(), json)
}

async fn stored(t: &TestDb) -> i64 {
    t.count("SELECT count(*) FROM events").await
}

#[actix::test]
async fn events_sent_by_the_sentry_sdk_are_stored_with_their_ids_and_frames() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;

    let dsn = server.key.dsn.clone();
    // The SDK sends from its own thread and its flush blocks: run it off
    // this one, where the services the server asks run too.
    let sent = tokio::task::spawn_blocking(move || {
        let mut options = sentry::ClientOptions::default();
        options.dsn = Some(dsn.parse().expect("the DSN parses as the SDK reads it"));
        options.release = Some("app@1.2.3".into());
        options.environment = Some("staging".into());
        options.attach_stacktrace = true;
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
        // An error with the stack trace where it was caught, as
        // sentry-anyhow sends one.
        let error = "seventeen".parse::<u32>().unwrap_err();
        let mut event = sentry::event_from_error(&error);
        if let Some(raised) = event.exception.values.last_mut() {
            raised.stacktrace = sentry::integrations::backtrace::current_stacktrace();
        }
        let error_id = hub.capture_event(event);
        let message_id = hub.capture_message("user 17 not found", sentry::Level::Warning);
        assert!(
            client.flush(Some(Duration::from_secs(10))),
            "the SDK sent its events"
        );
        (error_id, message_id)
    });
    let (error_id, message_id) = sent.await.unwrap();

    wait_until("both events are stored", async || stored(&t).await == 2).await;
    let project = server.project.id;
    let error = db::issues::get_event(&t.pool, project, error_id)
        .await
        .expect("the error is stored under the SDK's event id");
    assert_eq!(error.level, Severity::Error);
    assert_eq!(error.release.as_deref(), Some("app@1.2.3"));
    assert_eq!(error.environment.as_deref(), Some("staging"));
    let exception = error.exception.expect("the exception is kept");
    let raised = exception["values"].as_array().unwrap().last().unwrap();
    assert_eq!(raised["type"], "ParseIntError");
    assert_eq!(raised["value"], "invalid digit found in string");
    let frames = raised["stacktrace"]["frames"]
        .as_array()
        .expect("frames kept");
    assert!(
        frames.iter().any(|f| f["function"]
            .as_str()
            .unwrap_or("")
            .contains("events_sent_by_the_sentry_sdk")),
        "the test's own frame is among {frames:?}"
    );

    let message = db::issues::get_event(&t.pool, project, message_id)
        .await
        .expect("the message is stored under the SDK's event id");
    assert_eq!(message.level, Severity::Warning);
    assert_eq!(message.message, "user 17 not found");
    server.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn the_same_event_id_sent_twice_is_answered_200_and_stored_once() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let payload = event("retried");
    for _ in 0..2 {
        let (status, _, body) = post(
            &server.envelope_url(),
            &[("X-Sentry-Auth", &server.auth())],
            envelope(&payload),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], payload["event_id"]);
    }
    let metrics = server.mesher.metrics.clone();
    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 1);
    let metrics = Metrics::of(&metrics);
    assert_eq!(
        (
            metrics.counter("events_accepted"),
            metrics.counter("events_stored"),
            metrics.counter("events_duplicate")
        ),
        (2, 1, 1),
        "the retry is counted as a duplicate, not as stored"
    );
    metrics.assert_settled_and_equal_to_rows(&t).await;
}

/// An SDK that names its event only in the envelope's header (the event
/// payload has no `event_id`) and retries: the retry is the same event.
#[actix::test]
async fn an_event_named_only_in_the_envelope_header_is_stored_once() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let body = format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{}\n",
        json!({ "message": "named in the header" })
    );
    for _ in 0..2 {
        let (status, _, answer) = post(
            &server.envelope_url(),
            &[("X-Sentry-Auth", &server.auth())],
            body.clone().into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["id"], id.as_str(), "the header's id is the event's");
    }
    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 1);
    assert_eq!(
        t.count(&format!("SELECT count(*) FROM events WHERE id = '{id}'"))
            .await,
        1
    );
}

/// `body` in the Content-Encoding `name`.
fn encode(name: &str, body: &[u8]) -> Vec<u8> {
    match name {
        "gzip" => {
            let mut gzip =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gzip.write_all(body).unwrap();
            gzip.finish().unwrap()
        }
        "deflate" => {
            let mut zlib =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            zlib.write_all(body).unwrap();
            zlib.finish().unwrap()
        }
        "br" => {
            let mut br = Vec::new();
            brotli::BrotliCompress(&mut &body[..], &mut br, &Default::default()).unwrap();
            br
        }
        "zstd" => zstd::encode_all(body, 3).unwrap(),
        _ => body.to_vec(),
    }
}

#[actix::test]
async fn every_content_encoding_an_sdk_uses_is_accepted() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let names = ["identity", "gzip", "deflate", "br", "zstd"];
    for name in names {
        // Each its own event: one id sent twice is stored once.
        let body = encode(name, &envelope(&event(&format!("compressed with {name}"))));
        let (status, _, answer) = post(
            &server.envelope_url(),
            &[
                ("X-Sentry-Auth", &server.auth()),
                ("Content-Encoding", name),
            ],
            body,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
    }
    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, names.len() as i64);
}

#[actix::test]
async fn every_place_an_sdk_puts_its_key_is_read() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let key = server.key.key.expose().to_owned();
    let auth = server.auth();
    let with_query = format!(
        "{}?sentry_key={key}&sentry_version=7",
        server.envelope_url()
    );
    let authorization = format!("Sentry sentry_key={key}, sentry_version=7");
    let cases: Vec<(&str, String, Headers, Vec<u8>)> = vec![
        (
            "X-Sentry-Auth",
            server.envelope_url(),
            vec![("X-Sentry-Auth", &auth)],
            envelope(&event("a")),
        ),
        (
            "Authorization: Sentry",
            server.envelope_url(),
            vec![("Authorization", &authorization)],
            envelope(&event("b")),
        ),
        ("query", with_query.clone(), vec![], envelope(&event("c"))),
        (
            "envelope dsn",
            server.envelope_url(),
            vec![],
            format!(
                "{{\"dsn\":\"{}\"}}\n{{\"type\":\"event\"}}\n{}\n",
                server.key.dsn,
                event("d")
            )
            .into_bytes(),
        ),
        (
            "store",
            server.store_url(),
            vec![("X-Sentry-Auth", &auth)],
            event("e").to_string().into_bytes(),
        ),
    ];
    for (place, url, headers, body) in cases {
        let (status, _, answer) = post(&url, &headers, body).await;
        assert_eq!(status, StatusCode::OK, "{place}: {answer}");
    }
    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 5);
}

#[actix::test]
async fn bad_requests_get_their_status_and_a_json_body() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let ProjectWithKey {
        project: other,
        key: other_key,
    } = project_with_key(&server.mesher, "other").await;
    let auth = server.auth();
    let other_auth = sentry_auth(other_key.key.expose());
    let unknown = sentry_auth(&format!("mshr_{}", "0".repeat(64)));
    let conflicting = format!(
        "{}?sentry_key={}",
        server.envelope_url(),
        other_key.key.expose()
    );
    let good = envelope(&event("fine"));
    let huge_event = json!({ "message": "x".repeat(1024 * 1024 + 1) });
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    bomb.write_all(&vec![b' '; 30 * 1024 * 1024]).unwrap();
    let bomb = bomb.finish().unwrap();
    let envelope_url = server.envelope_url();
    let other_url = server.url(&format!("/api/{}/envelope/", other.public_id));
    let native = server.url("/api/v1/events");
    let bearer = format!("Bearer {}", server.key.key.expose());
    let too_many = Value::Array((0..101).map(|i| event(&format!("n{i}"))).collect()).to_string();

    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Headers, Vec<u8>, StatusCode)> = vec![
        ("no key", &envelope_url, vec![], good.clone(), StatusCode::UNAUTHORIZED),
        ("unknown key", &envelope_url, vec![("X-Sentry-Auth", &unknown)], good.clone(), StatusCode::UNAUTHORIZED),
        ("malformed key", &envelope_url, vec![("X-Sentry-Auth", "Sentry sentry_key=nope")], good.clone(), StatusCode::UNAUTHORIZED),
        ("not a Sentry header", &envelope_url, vec![("X-Sentry-Auth", "Basic abc")], good.clone(), StatusCode::UNAUTHORIZED),
        ("keys that disagree", &conflicting, vec![("X-Sentry-Auth", &auth)], good.clone(), StatusCode::UNAUTHORIZED),
        ("another project's key", &envelope_url, vec![("X-Sentry-Auth", &other_auth)], good.clone(), StatusCode::FORBIDDEN),
        ("a key for the other URL", &other_url, vec![("X-Sentry-Auth", &auth)], good.clone(), StatusCode::FORBIDDEN),
        ("malformed envelope", &envelope_url, vec![("X-Sentry-Auth", &auth)], b"not json\n".to_vec(), StatusCode::BAD_REQUEST),
        ("malformed event", &envelope_url, vec![("X-Sentry-Auth", &auth)], b"{}\n{\"type\":\"event\"}\n{not json\n".to_vec(), StatusCode::BAD_REQUEST),
        ("unknown level", &envelope_url, vec![("X-Sentry-Auth", &auth)], envelope(&json!({"message": "m", "level": "loud"})), StatusCode::BAD_REQUEST),
        ("NUL in text", &envelope_url, vec![("X-Sentry-Auth", &auth)], envelope(&json!({"message": "a\u{0}b"})), StatusCode::BAD_REQUEST),
        ("unknown encoding", &envelope_url, vec![("X-Sentry-Auth", &auth), ("Content-Encoding", "lzma")], good.clone(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("corrupt gzip", &envelope_url, vec![("X-Sentry-Auth", &auth), ("Content-Encoding", "gzip")], good.clone(), StatusCode::BAD_REQUEST),
        ("event over 1 MiB", &envelope_url, vec![("X-Sentry-Auth", &auth)], envelope(&huge_event), StatusCode::PAYLOAD_TOO_LARGE),
        ("gzip expanding past 20 MiB", &envelope_url, vec![("X-Sentry-Auth", &auth), ("Content-Encoding", "gzip")], bomb, StatusCode::PAYLOAD_TOO_LARGE),
        ("project id not a number", "/api/abc/envelope/", vec![("X-Sentry-Auth", &auth)], good.clone(), StatusCode::BAD_REQUEST),
        ("unknown route", "/api/1/nothing/", vec![], vec![], StatusCode::NOT_FOUND),
        ("native without a key", &native, vec![], event("n").to_string().into_bytes(), StatusCode::UNAUTHORIZED),
        ("native with 101 events", &native, vec![("Authorization", &bearer)], too_many.into_bytes(), StatusCode::BAD_REQUEST),
        ("native malformed", &native, vec![("Authorization", &bearer)], b"[1,".to_vec(), StatusCode::BAD_REQUEST),
    ];
    for (what, url, headers, body, expected) in cases {
        let url = if url.starts_with('/') {
            server.url(url)
        } else {
            url.to_owned()
        };
        let (status, _, answer) = post(&url, &headers, body).await;
        assert_eq!(status, expected, "{what}: {answer}");
        let message = if url.contains("/api/v1/") {
            &answer["error"]["message"]
        } else {
            &answer["detail"]
        };
        assert!(
            message.as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {answer}"
        );
    }

    let client = awc::Client::default();
    let response = client.get(server.envelope_url()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 0, "no bad request stored anything");
}

#[actix::test]
async fn a_revoked_key_is_refused_at_once() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let send = async || {
        post(
            &server.envelope_url(),
            &[("X-Sentry-Auth", &server.auth())],
            envelope(&event("k")),
        )
        .await
        .0
    };
    assert_eq!(
        send().await,
        StatusCode::OK,
        "the key works and is now cached"
    );
    server
        .mesher
        .projects
        .send(RevokeApiKey {
            key_id: server.key.info.id.to_string(),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(send().await, StatusCode::UNAUTHORIZED);
    server.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn the_native_endpoint_takes_one_event_or_an_array() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let bearer = format!("Bearer {}", server.key.key.expose());
    let url = server.url("/api/v1/events");
    let (status, _, body) = post(
        &url,
        &[("Authorization", &bearer)],
        event("one").to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id"].is_string());
    let many = Value::Array((0..100).map(|i| event(&format!("many {i}"))).collect());
    let (status, _, body) = post(
        &url,
        &[("Authorization", &bearer)],
        many.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ids"].as_array().unwrap().len(), 100);
    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 101);
}

#[actix::test]
async fn items_that_are_not_events_are_accepted_and_counted() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let body = b"{}\n{\"type\":\"session\"}\n{\"sid\":\"x\",\"status\":\"ok\"}\n{\"type\":\"client_report\"}\n{}\n".to_vec();
    let (status, _, answer) = post(
        &server.envelope_url(),
        &[("X-Sentry-Auth", &server.auth())],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let metrics = awc::Client::default()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let metrics = Metrics::parse(std::str::from_utf8(&metrics).unwrap());
    for item_type in ["session", "client_report"] {
        assert_eq!(
            metrics.counter_with("envelope_items_ignored", "item_type", item_type),
            1,
            "{item_type}"
        );
    }
    assert_eq!(metrics.counter("events_received"), 0, "no event in it");
    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 0);
}

/// Most bodies are decoded within a small first reservation; one that
/// expands past it (here an attachment of a few MiB) is decoded again
/// within the envelope's whole limit, and taken.
#[actix::test]
async fn a_compressed_envelope_expanding_past_one_event_is_taken() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let attachment = vec![b'a'; 3 * 1024 * 1024];
    let mut body = envelope(&event("with a large attachment"));
    body.extend(
        format!(
            "{{\"type\":\"attachment\",\"length\":{},\"filename\":\"big.txt\"}}\n",
            attachment.len()
        )
        .into_bytes(),
    );
    body.extend(attachment);
    body.push(b'\n');
    let (status, _, answer) = post(
        &server.envelope_url(),
        &[
            ("X-Sentry-Auth", &server.auth()),
            ("Content-Encoding", "gzip"),
        ],
        encode("gzip", &body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 1);
}

#[actix::test]
async fn health_readiness_and_metrics_answer() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let client = awc::Client::default();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let (status, _, _) = post(
        &server.envelope_url(),
        &[("X-Sentry-Auth", &server.auth())],
        envelope(&event("m")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The rows are visible a moment before the writer counts them: wait for
    // the count, as a client reading /metrics would.
    let scrape = async || {
        let body = client
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .body()
            .await
            .unwrap();
        Metrics::parse(std::str::from_utf8(&body).unwrap())
    };
    wait_until("the event is counted as stored", async || {
        scrape().await.counter("events_stored") == 1
    })
    .await;
    let metrics = scrape().await;
    assert_eq!(metrics.counter("events_received"), 1);
    assert_eq!(metrics.counter("events_accepted"), 1);
    assert_eq!(metrics.gauge("writers_running"), 1);
    assert_eq!(metrics.counter("batches"), 1);
    assert_eq!(
        metrics.value(
            "mesher_http_requests",
            &[("route", "/api/{project_id}/envelope/"), ("status", "200")]
        ),
        1.0
    );
    metrics.assert_settled_and_equal_to_rows(&t).await;
    server.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_full_writer_answers_429_and_every_event_answered_200_is_stored() {
    let t = TestDb::new().await;
    let server = Server::start_with(&t, |c| {
        // A few small events' worth.
        c.writer.buffer_bytes = 2_000;
        c.writer.batch_size = 5;
    })
    .await;
    // PostgreSQL made slow for real: a lock held on `events` keeps every
    // batch waiting, so the writer's buffer fills.
    let locker = t.pool.get().await.unwrap();
    locker
        .batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let (mut accepted, mut refused) = (0, 0);
    for i in 0..40 {
        let (status, headers, body) = post(
            &server.envelope_url(),
            &[("X-Sentry-Auth", &server.auth())],
            envelope(&event(&format!("slow {i}"))),
        )
        .await;
        match status {
            StatusCode::OK => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                refused += 1;
                let retry: u64 = headers
                    .get("retry-after")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry >= 1);
                assert_eq!(
                    headers
                        .get("x-sentry-rate-limits")
                        .unwrap()
                        .to_str()
                        .unwrap(),
                    format!("{retry}::project")
                );
                assert!(body["detail"].is_string());
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(refused > 0, "a full writer refused some events");
    locker.batch_execute("COMMIT").await.unwrap();
    let metrics = server.mesher.metrics.clone();
    server.mesher.shutdown().await.unwrap();
    assert_eq!(
        stored(&t).await,
        accepted,
        "every event answered 200 is stored"
    );
    let metrics = Metrics::of(&metrics);
    assert_eq!(
        metrics.counter_with("events_refused", "reason", "overloaded"),
        refused as u64
    );
    assert_eq!(metrics.counter("events_accepted"), accepted as u64);
    metrics.assert_settled_and_equal_to_rows(&t).await;
}

#[actix::test]
async fn events_accepted_before_shutdown_are_stored() {
    let t = TestDb::new().await;
    let server = Server::start_with(&t, |c| {
        // Nothing would flush on its own before the shutdown does.
        c.writer.flush_interval = Duration::from_secs(3600);
        c.writer.batch_size = 500;
    })
    .await;
    for i in 0..20 {
        let (status, _, body) = post(
            &server.envelope_url(),
            &[("X-Sentry-Auth", &server.auth())],
            envelope(&event(&format!("last {i}"))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(stored(&t).await, 0, "still buffered");
    let addr = server.mesher.http_addr;
    let stats = server.mesher.shutdown().await.unwrap();
    assert_eq!(stats.totals.stored, 20);
    assert_eq!(stored(&t).await, 20);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the server no longer listens"
    );
}

/// `pg_dump --schema-only` of the database at `url`, without the lines
/// that differ between any two dumps (psql's random restrict keys).
fn schema_dump(url: &str) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", url])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[actix::test]
async fn a_database_made_by_the_first_schema_is_upgraded_in_place() {
    let old = TestDb::empty().await;
    // The schema.sql of the first release, as an operator applied it then.
    old.execute(include_str!("../fixtures/schema-first.sql"))
        .await;
    old.execute(
        "INSERT INTO organizations (id, name, slug) VALUES (gen_random_uuid(), 'Old', 'old');
         INSERT INTO projects (id, org_id, name) SELECT gen_random_uuid(), id, 'p' FROM organizations;",
    )
    .await;

    // Both started once, so both have the same partitions.
    let start = async |t: &TestDb| t.start().await.shutdown().await.unwrap();
    start(&old).await;
    let fresh = TestDb::empty().await;
    start(&fresh).await;
    assert_eq!(schema_dump(&old.url), schema_dump(&fresh.url));
    assert_eq!(
        old.count("SELECT count(*) FROM projects WHERE public_id IS NOT NULL")
            .await,
        1,
        "the existing project got a public id"
    );
}

/// Sends `head` and then `body` over a raw connection, and reads whatever
/// the server answers until it closes the connection.
async fn raw_exchange(addr: std::net::SocketAddr, head: String, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    // Bounded: the server's own timeout ends the exchange long before.
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer));
    read.await
        .expect("the server closed the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix::test]
async fn slow_clients_and_bodies_shorter_than_announced_are_cut_off() {
    let t = TestDb::new().await;
    let server =
        Server::start_with(&t, |c| c.http.client_timeout = Duration::from_millis(300)).await;
    let addr = server.mesher.http_addr;

    let head = format!(
        "POST /api/{}/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: {}\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n",
        server.project.public_id,
        server.auth()
    );
    let answer = raw_exchange(addr, head, b"{}\n{\"type\":\"event\"}\n").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"detail\""), "a JSON body: {answer}");

    // A head that never ends.
    let answer = raw_exchange(
        addr,
        "POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\n".into(),
        b"",
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    server.mesher.shutdown().await.unwrap();
    assert_eq!(stored(&t).await, 0);
}

#[actix::test]
async fn browsers_may_post_from_any_origin_and_read_the_rate_limits() {
    let t = TestDb::new().await;
    let server = Server::start(&t).await;
    let response = awc::Client::default()
        .request(awc::http::Method::OPTIONS, server.envelope_url())
        .insert_header(("Origin", "https://app.example.com"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .insert_header(("Access-Control-Request-Headers", "content-type"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let allowed = response
        .headers()
        .get("access-control-allow-origin")
        .unwrap();
    assert!(
        allowed == "*" || allowed == "https://app.example.com",
        "{allowed:?}"
    );

    let (status, headers, body) = post(
        &format!(
            "{}?sentry_key={}&sentry_version=7",
            server.envelope_url(),
            server.key.key.expose()
        ),
        &[
            ("Origin", "https://app.example.com"),
            ("Content-Type", "text/plain;charset=UTF-8"),
        ],
        envelope(&event("from a browser")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let exposed = headers
        .get("access-control-expose-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-sentry-rate-limits") && exposed.contains("retry-after"),
        "{exposed}"
    );
    server.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn two_mesher_instances_writing_one_fingerprint_keep_exact_counts() {
    let t = TestDb::new().await;
    let first = Server::start(&t).await;
    // A second instance on the same database: its own server, key cache,
    // writers, pools and spool, as a second process behind a load
    // balancer has.
    let second = t
        .start_with(|c| c.spool.dir = Some(t.spool_dir().join("second")))
        .await;
    let urls = [
        first.envelope_url(),
        format!(
            "http://{}/api/{}/envelope/",
            second.http_addr, first.project.public_id
        ),
    ];
    let auth = first.auth();
    // The same crash, 200 times, half through each instance; every tenth
    // event is sent to both, as an SDK retrying through the other route.
    let crash = |i: usize| {
        json!({
            "event_id": format!("{:032x}", i + 1),
            "exception": {"values": [{"type": "KeyError", "value": "'user'",
                "stacktrace": {"frames": [{"module": "app", "function": "view", "lineno": i}]}}]},
        })
    };
    let sends = (0..200).flat_map(|i| {
        let targets: Vec<&String> = if i % 10 == 0 {
            urls.iter().collect()
        } else {
            vec![&urls[i % 2]]
        };
        let (auth, body) = (auth.clone(), envelope(&crash(i)));
        targets.into_iter().map(move |url| {
            let (auth, body) = (auth.clone(), body.clone());
            async move { post(url, &[("X-Sentry-Auth", &auth)], body).await.0 }
        })
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    first.mesher.shutdown().await.unwrap();
    second.shutdown().await.unwrap();

    assert_eq!(t.count("SELECT count(*) FROM events").await, 200);
    assert_eq!(t.count("SELECT count(*) FROM issues").await, 1);
    assert_eq!(
        t.count("SELECT sum(event_count)::bigint FROM issues").await,
        200
    );
}
