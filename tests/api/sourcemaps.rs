//! JavaScript source maps with the real clients: a small app bundled and
//! minified by esbuild, its maps injected and uploaded by the official
//! sentry-cli (3.x, and 2.x through the `accept` path), the bundle run
//! under Node with @sentry/node so that it throws, and the stored event
//! read back through the API. `scripts/test.sh` installs the clients
//! (`tests/js`, `npm ci`). Then what a bad upload gets.

use crate::common::{TestDb, wait_until};
use crate::dashboard::{Auth, Dash};
use actix_web::http::{Method, StatusCode};
use mesher::domain::PublicUrl;
use mesher::services::{CreateOrgToken, RevokeOrgToken};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the JavaScript clients are installed.
fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// A program installed in `tests/js/node_modules`.
fn js_bin(relative: &str) -> PathBuf {
    let path = js_dir().join("node_modules").join(relative);
    assert!(
        path.exists(),
        "{} is missing: scripts/test.sh installs the JavaScript clients (npm ci in tests/js)",
        path.display()
    );
    path
}

/// Runs `command` off the test's thread (Mesher answers on it); panics
/// with its output unless it succeeds. Its standard output.
async fn run(what: &'static str, mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// An owner, an organization `acme`, a project, its DSN and an
/// organization token.
struct Setup {
    owner: String,
    project: String,
    public_id: i64,
    dsn: String,
    token: String,
}

impl Setup {
    /// The project's ingest key, as its DSN holds it.
    fn key(&self) -> &str {
        self.dsn
            .split("//")
            .nth(1)
            .and_then(|rest| rest.split('@').next())
            .expect("a DSN names its key")
    }
}

/// The set-up, with the token from `mesher token create --org acme
/// --json`, as an operator makes one.
async fn setup(t: &TestDb, dash: &Dash) -> Setup {
    let owner = dash.user("owner@example.org").await;
    let org_id = dash.org(&owner, "Acme", "acme").await;
    let made = dash
        .project(
            &owner,
            &org_id,
            json!({"name": "Web Shop", "platform": "javascript"}),
        )
        .await;
    let project = made.id;
    let public_id = dash
        .get(&format!("/api/v1/projects/{project}"), &owner)
        .await
        .body["public_id"]
        .as_i64()
        .unwrap();
    let mut create = crate::binary::mesher(&t.url);
    create
        .args(["token", "create", "--org", "acme", "--json"])
        .stdout(std::process::Stdio::piped());
    let printed: Value = serde_json::from_str(&run("mesher token create", create).await).unwrap();
    let token = printed["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("sntrys_"), "{printed}");
    Setup {
        owner,
        project,
        public_id,
        dsn: made.dsn,
        token,
    }
}

/// A build of the app in a directory of its own: `entry` bundled and
/// minified with a source map into `dist/app.js`.
struct Build {
    dir: PathBuf,
}

impl Build {
    async fn new(entry: &str) -> Build {
        let dir = std::env::temp_dir().join(format!("mesher-js-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(dir.join("src")).unwrap();
        for file in std::fs::read_dir(js_dir().join("app/src")).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), dir.join("src").join(file.file_name())).unwrap();
        }
        let mut esbuild = Command::new(js_bin(".bin/esbuild"));
        esbuild.current_dir(&dir).args([
            &format!("src/{entry}"),
            "--bundle",
            "--minify",
            "--sourcemap",
            "--platform=node",
            "--format=cjs",
            "--outfile=dist/app.js",
            "--log-level=warning",
        ]);
        run("esbuild", esbuild).await;
        Build { dir }
    }

    fn dist(&self) -> PathBuf {
        self.dir.join("dist")
    }

    /// `sentry-cli sourcemaps inject` then `upload`, with `cli` (a
    /// sentry-cli launcher) against `dash`, as a build pipeline runs them.
    async fn upload(&self, cli: &Path, dash: &Dash, s: &Setup) {
        let sentry_cli = |args: &[&str]| {
            let mut command = Command::new("node");
            command
                .arg(cli)
                .args(args)
                .env("SENTRY_URL", dash.url(""))
                .env("SENTRY_AUTH_TOKEN", &s.token)
                // No network beyond this machine: no update check.
                .env("SENTRY_DISABLE_UPDATE_CHECK", "true")
                .env_remove("SENTRY_ORG")
                .env_remove("SENTRY_PROJECT")
                .env_remove("SENTRY_RELEASE")
                .current_dir(&self.dir);
            command
        };
        let dist = self.dist();
        let dist = dist.to_str().unwrap();
        run(
            "sentry-cli sourcemaps inject",
            sentry_cli(&["sourcemaps", "inject", dist]),
        )
        .await;
        let project = s.public_id.to_string();
        let upload = sentry_cli(&[
            "sourcemaps",
            "upload",
            "--org",
            "acme",
            "--project",
            &project,
            dist,
        ]);
        let out = run("sentry-cli sourcemaps upload", upload).await;
        assert!(out.contains("acme"), "{out}");
    }

    /// Runs the bundle under @sentry/node pointed at the DSN: it throws,
    /// the SDK sends the error; the event's id.
    async fn throw(&self, dsn: &str) -> String {
        let mut node = Command::new("node");
        node.arg(js_dir().join("app/run.js"))
            .arg(self.dist().join("app.js"))
            .env("SENTRY_DSN", dsn)
            .current_dir(&self.dir);
        run("node app.js", node).await.trim().to_owned()
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The stored event `id` as the API shows it, once stored.
async fn stored_event(dash: &Dash, s: &Setup, id: &str) -> Value {
    let path = format!("/api/v1/projects/{}/events/{id}", s.project);
    wait_until("the event is stored", async || {
        dash.get(&path, &s.owner).await.status == StatusCode::OK
    })
    .await;
    dash.get(&path, &s.owner).await.body
}

/// Sends `event` (with a fresh `event_id`) to the native endpoint with the
/// project's key, and returns its raised exception as the API shows it
/// once stored.
async fn send_event(dash: &Dash, s: &Setup, mut event: Value) -> Value {
    let key = s.key();
    let event_id = uuid::Uuid::now_v7().simple().to_string();
    event["event_id"] = json!(event_id);
    let sent = dash
        .call(
            Method::POST,
            "/api/v1/events",
            Auth::Bearer(key),
            Some(event),
        )
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    raised(&stored_event(dash, s, &event_id).await).clone()
}

/// The set-up's project, as the services know it.
async fn project_of(dash: &Dash, s: &Setup) -> mesher::domain::Project {
    dash.mesher
        .projects
        .send(mesher::services::GetProject {
            id: s.project.clone(),
        })
        .await
        .unwrap()
        .unwrap()
}

/// The raised exception of an event from the API.
fn raised(event: &Value) -> &Value {
    event["exception"]["values"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
}

fn top_frame(frames: &Value) -> &Value {
    frames["frames"].as_array().unwrap().last().unwrap()
}

/// The stored event's top frame names the original file, line, function
/// and context lines; the minified frames are kept beside them.
fn assert_resolved(event: &Value) {
    let exception = raised(event);
    let top = top_frame(&exception["stacktrace"]);
    assert!(
        top["filename"]
            .as_str()
            .unwrap()
            .ends_with("src/checkout.js"),
        "{top}"
    );
    assert!(
        top["abs_path"]
            .as_str()
            .unwrap()
            .ends_with("/src/checkout.js"),
        "{top}"
    );
    assert_eq!(top["function"], "chargeCard", "{top}");
    assert_eq!(
        (&top["lineno"], &top["colno"]),
        (&json!(4), &json!(11)),
        "{top}"
    );
    assert_eq!(
        top["context_line"],
        "    throw new Error(`card declined for order ${order.id}`);"
    );
    assert_eq!(top["pre_context"][1], "export function chargeCard(order) {");
    assert_eq!(top["post_context"][1], "  return order.total;");
    let caller = &exception["stacktrace"]["frames"].as_array().unwrap();
    let caller = &caller[caller.len() - 2];
    assert_eq!(
        (&caller["function"], &caller["lineno"]),
        (&json!("processOrder"), &json!(10)),
        "{caller}"
    );
    let raw = top_frame(&exception["raw_stacktrace"]);
    assert!(
        raw["filename"].as_str().unwrap().ends_with("dist/app.js"),
        "{raw}"
    );
    // One long line (after the snippet `inject` puts first).
    assert!(raw["colno"].as_u64().unwrap() > 400, "{raw}");
    assert_ne!(
        raw["function"], "chargeCard",
        "the raw frame is the minified one"
    );
}

#[actix::test]
async fn sentry_cli_3_uploads_and_a_node_error_reads_as_the_source() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = setup(&t, &dash).await;
    let build = Build::new("main.js").await;
    let cli = js_bin("@sentry/cli/bin/sentry-cli");

    // An event that arrives before its map stays minified, with a note.
    run("sentry-cli sourcemaps inject", {
        let mut c = Command::new("node");
        c.arg(&cli)
            .args(["sourcemaps", "inject", build.dist().to_str().unwrap()])
            .env("SENTRY_DISABLE_UPDATE_CHECK", "true");
        c
    })
    .await;
    let early = stored_event(&dash, &s, &build.throw(&s.dsn).await).await;
    let top = top_frame(&raised(&early)["stacktrace"]);
    assert!(
        top["filename"].as_str().unwrap().ends_with("dist/app.js"),
        "{top}"
    );
    assert!(
        top["data"]["sourcemap_error"]
            .as_str()
            .unwrap()
            .starts_with("no source map uploaded for debug id"),
        "{top}"
    );
    assert!(raised(&early).get("raw_stacktrace").is_none());

    build.upload(&cli, &dash, &s).await;
    let stored = t
        .count("SELECT count(*) FROM artifact_files WHERE file_type IN ('source_map', 'minified_source')")
        .await;
    assert_eq!(stored, 2, "the bundle's map and minified file");
    assert_eq!(
        t.count("SELECT count(*) FROM upload_chunks").await,
        0,
        "chunks go once assembled"
    );

    let event = stored_event(&dash, &s, &build.throw(&s.dsn).await).await;
    assert_resolved(&event);
}

#[actix::test]
async fn sentry_cli_2_uploads_through_the_accept_path() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = setup(&t, &dash).await;
    let build = Build::new("main.js").await;
    build
        .upload(&js_bin("sentry-cli-2/bin/sentry-cli"), &dash, &s)
        .await;
    let event = stored_event(&dash, &s, &build.throw(&s.dsn).await).await;
    assert_resolved(&event);
}

#[actix::test]
async fn two_builds_of_the_same_code_group_into_one_issue() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = setup(&t, &dash).await;
    let cli = js_bin("@sentry/cli/bin/sentry-cli");
    let mut minified = Vec::new();
    let mut issues = Vec::new();
    for entry in ["main.js", "main_padded.js"] {
        let build = Build::new(entry).await;
        build.upload(&cli, &dash, &s).await;
        let event = stored_event(&dash, &s, &build.throw(&s.dsn).await).await;
        assert_resolved(&event);
        minified.push(top_frame(&raised(&event)["raw_stacktrace"])["function"].clone());
        issues.push(event["issue_id"].clone());
    }
    assert_ne!(
        minified[0], minified[1],
        "the builds name the function differently"
    );
    assert_eq!(issues[0], issues[1], "one bug, one issue");
    let list = dash
        .get(&format!("/api/v1/projects/{}/issues", s.project), &s.owner)
        .await;
    let issues = list.body["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{}", list.body);
    assert_eq!(issues[0]["event_count"], 2);
    assert!(
        issues[0]["culprit"]
            .as_str()
            .unwrap()
            .contains("chargeCard"),
        "{}",
        issues[0]
    );
}

/// A raw call to the upload API with `token`.
async fn call(
    dash: &Dash,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let reply = dash.call(method, path, Auth::Bearer(token), body).await;
    (reply.status, reply.body)
}

/// A multipart body of chunks named by `names`.
fn multipart(chunks: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "mesher-test-boundary";
    let mut body = Vec::new();
    for (name, data) in chunks {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_chunks(dash: &Dash, token: &str, chunks: &[(&str, &[u8])]) -> (StatusCode, Value) {
    let (content_type, body) = multipart(chunks);
    let mut response = awc::Client::new()
        .post(dash.url("/api/0/organizations/acme/chunk-upload/"))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", content_type))
        .send_body(body)
        .await
        .unwrap();
    let body = response.body().await.unwrap();
    (
        response.status(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

fn sha1(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// Uploads `bundle` as one chunk and assembles it for the project.
async fn upload_bundle(dash: &Dash, s: &Setup, bundle: &[u8]) -> Value {
    let name = sha1(bundle);
    let (status, body) = post_chunks(dash, &s.token, &[(&name, bundle)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        dash,
        Method::POST,
        "/api/0/organizations/acme/artifactbundle/assemble/",
        &s.token,
        Some(json!({"checksum": name, "chunks": [name], "projects": ["web-shop"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[actix::test]
async fn bad_uploads_are_refused_with_the_reason_and_store_nothing() {
    let t = TestDb::new().await;
    let dash = Dash::start_with(&t, |c| {
        c.source_maps.bundle.max_file_bytes = 1024 * 1024;
    })
    .await;
    let s = setup(&t, &dash).await;
    let files = || {
        t.count(
            "SELECT (SELECT count(*) FROM artifact_files) + (SELECT count(*) FROM upload_chunks)",
        )
    };

    // The options, as sentry-cli reads them.
    let (status, options) = call(
        &dash,
        Method::GET,
        "/api/0/organizations/acme/chunk-upload/",
        &s.token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert_eq!(options["hashAlgorithm"], "sha1");
    assert_eq!(options["compression"], json!(["gzip"]));
    assert!(options["chunkSize"].as_u64().unwrap().is_power_of_two());
    assert_eq!(
        options["accept"],
        json!(["release_files", "artifact_bundles_v2"])
    );
    let (status, info) = call(&dash, Method::GET, "/api/0/", &s.token, None).await;
    assert_eq!(
        (status, &info["auth"]["scopes"]),
        (StatusCode::OK, &json!(["org:ci"]))
    );

    // A chunk whose name is not its SHA-1.
    let (status, body) = post_chunks(&dash, &s.token, &[(&sha1(b"other"), b"chunk")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("does not match its SHA-1"),
        "{body}"
    );
    assert_eq!(files().await, 0);

    // Chunks not uploaded are listed as missing, as sentry-cli 3.x asks.
    let missing = sha1(b"never sent");
    let (status, body) = call(
        &dash,
        Method::POST,
        "/api/0/organizations/acme/artifactbundle/assemble/",
        &s.token,
        Some(json!({"checksum": missing, "chunks": [missing], "projects": [s.public_id.to_string()]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"state": "not_found", "missingChunks": [missing]})
    );

    // A path escaping the bundle, and a zip bomb.
    let manifest =
        |path: &str| json!({"files": {path: {"type": "minified_source", "url": "~/a.js"}}});
    let escaping = mesher::sourcemaps::bundle::write(
        &manifest("../../etc/passwd"),
        &[("../../etc/passwd", b"root:x:0:0")],
    );
    let body = upload_bundle(&dash, &s, &escaping).await;
    assert_eq!(body["state"], "error");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("leaves the bundle"),
        "{body}"
    );
    let zeros = vec![0u8; 16 * 1024 * 1024];
    let bomb = mesher::sourcemaps::bundle::write(&manifest("bomb.js"), &[("bomb.js", &zeros)]);
    drop(zeros);
    let body = upload_bundle(&dash, &s, &bomb).await;
    assert_eq!(body["state"], "error");
    assert!(
        body["detail"].as_str().unwrap().contains("uncompressed"),
        "{body}"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM artifact_files").await,
        0,
        "a refused bundle stores no file"
    );

    // A method a route does not serve, and an assemble request larger
    // than any bundle's list of chunks: each its status, and the
    // `{"detail"}` sentry-cli prints, and nothing stored.
    let stored = files().await;
    for (method, path) in [
        (Method::DELETE, "/api/0/organizations/acme/chunk-upload/"),
        (
            Method::PUT,
            "/api/0/organizations/acme/artifactbundle/assemble/",
        ),
        (
            Method::GET,
            "/api/0/organizations/acme/artifactbundle/assemble/",
        ),
        (Method::POST, "/api/0/"),
    ] {
        let (status, body) = call(&dash, method.clone(), path, &s.token, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            body["detail"].as_str().unwrap().contains("not allowed"),
            "{method} {path}: {body}"
        );
    }
    // 300 KiB of chunk names: past actix's default limit for a body too.
    let chunks: Vec<String> = (0..7_000u32).map(|i| sha1(&i.to_le_bytes())).collect();
    let (status, body) = call(
        &dash,
        Method::POST,
        "/api/0/organizations/acme/artifactbundle/assemble/",
        &s.token,
        Some(json!({"checksum": missing, "chunks": chunks, "projects": ["web-shop"]})),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("larger than"),
        "{body}"
    );
    assert_eq!(files().await, stored);

    // Who may upload: no token, a revoked one, another organization's,
    // an organization that does not exist.
    let anonymous = dash
        .call(
            Method::GET,
            "/api/0/organizations/acme/chunk-upload/",
            Auth::None,
            None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let other_org = dash.org(&s.owner, "Other", "other").await;
    let other = dash
        .mesher
        .tokens
        .send(CreateOrgToken {
            org_id: other_org.parse().unwrap(),
            label: None,
            created_by: None,
        })
        .await
        .unwrap()
        .unwrap();
    let (status, body) = call(
        &dash,
        Method::GET,
        "/api/0/organizations/acme/chunk-upload/",
        other.token.expose(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = call(
        &dash,
        Method::GET,
        "/api/0/organizations/nope/chunk-upload/",
        &s.token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not found"));
    let (status, body) = call(
        &dash,
        Method::POST,
        "/api/0/organizations/acme/artifactbundle/assemble/",
        &s.token,
        Some(json!({"checksum": missing, "chunks": [missing], "projects": ["no-such-project"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    dash.mesher
        .tokens
        .send(RevokeOrgToken {
            org_id: other_org.parse().unwrap(),
            token_id: other.info.id,
        })
        .await
        .unwrap()
        .unwrap();
    let (status, _) = call(
        &dash,
        Method::GET,
        "/api/0/organizations/other/chunk-upload/",
        other.token.expose(),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token is refused at once"
    );
}

#[actix::test]
async fn admins_make_and_revoke_tokens_on_the_tokens_page() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let owner = dash.user("owner@example.org").await;
    let org = dash.org(&owner, "Acme", "acme").await;
    let member = dash.user("member@example.org").await;
    dash.post(
        &format!("/api/v1/orgs/{org}/members"),
        &owner,
        json!({"email": "member@example.org", "role": "member"}),
    )
    .await;
    let outsider = dash.user("outsider@example.org").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let origin = format!("http://{}", dash.mesher.http_addr);
    let page = format!("/orgs/{org}/tokens");
    let get = async |session: &str| {
        let mut res = client
            .get(dash.url(&page))
            .insert_header(("Cookie", format!("mesher_session={session}")))
            .send()
            .await
            .unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let post = async |path: &str, form: &[(&str, &str)]| {
        let mut res = client
            .post(dash.url(path))
            .insert_header(("Cookie", format!("mesher_session={owner}")))
            .insert_header(("Origin", origin.as_str()))
            .send_form(&form)
            .await
            .unwrap();
        let body = res.body().limit(1 << 22).await.unwrap();
        (
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    assert_eq!(get(&outsider).await.0, 404);
    assert_eq!(get(&member).await.0, 403);
    let (status, body) = get(&owner).await;
    assert_eq!(status, 200);
    assert!(body.contains("no tokens yet"), "{body}");

    // A new token is shown once, with the commands that use it, and works.
    let (status, body) = post(&page, &[("label", "ci")]).await;
    assert_eq!(status, 201);
    let token = body
        .split("value=\"")
        .find_map(|s| s.split('"').next().filter(|v| v.starts_with("sntrys_")))
        .expect("the token is shown")
        .to_owned();
    assert!(
        body.contains(&format!("export SENTRY_URL={origin}")),
        "{body}"
    );
    assert!(body.contains("sourcemaps upload --org acme"));
    let (status, _) = call(
        &dash,
        Method::GET,
        "/api/0/organizations/acme/chunk-upload/",
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = get(&owner).await;
    assert!(!listed.contains(&token), "never shown again");
    assert!(listed.contains(&format!("…{}", &token[token.len() - 4..])));
    assert_eq!(
        crate::helpers::count_with(
            &t,
            "SELECT count(*) FROM org_tokens WHERE token_hint = $1",
            &token[token.len() - 4..]
        )
        .await,
        1
    );

    // Revoked on the page, refused at once.
    let id: String = t
        .pool
        .get()
        .await
        .unwrap()
        .query_one("SELECT id::text FROM org_tokens", &[])
        .await
        .unwrap()
        .get(0);
    let (status, _) = post(&format!("{page}/{id}/revoke"), &[]).await;
    assert_eq!(status, 303);
    let (status, _) = call(
        &dash,
        Method::GET,
        "/api/0/organizations/acme/chunk-upload/",
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(get(&owner).await.1.contains("revoked"));
}

/// A client over its rate limit is refused before its event's maps are
/// looked up: the lookups are work anyone with the DSN could otherwise
/// make Mesher do for events it will not take.
#[actix::test]
async fn an_event_over_the_rate_limit_costs_no_map_lookup() {
    use mesher::services::GetSourceMapStats;
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = setup(&t, &dash).await;
    let limited = dash
        .call(
            Method::PATCH,
            &format!("/api/v1/projects/{}", s.project),
            Auth::Bearer(&s.owner),
            Some(json!({"rate_limit_per_minute": 1})),
        )
        .await;
    assert_eq!(limited.status, StatusCode::OK, "{}", limited.body);
    let key = s.key();
    // An event whose one frame names a map by a debug id of its own.
    let send = async || {
        let id = uuid::Uuid::now_v7();
        let event = json!({
            "exception": {"values": [{"type": "Error", "value": "card declined",
                "stacktrace": {"frames": [{"filename": "/srv/app.js", "function": "m",
                                           "lineno": 1, "colno": 498}]}}]},
            "debug_meta": {"images": [{"type": "sourcemap", "code_file": "/srv/app.js", "debug_id": id}]},
        });
        dash.call(
            Method::POST,
            "/api/v1/events",
            Auth::Bearer(key),
            Some(event),
        )
        .await
        .status
    };
    let loads = async || {
        dash.mesher
            .source_maps
            .send(GetSourceMapStats)
            .await
            .unwrap()
            .loads
    };

    assert_eq!(send().await, StatusCode::OK);
    assert_eq!(loads().await, 1);
    assert_eq!(send().await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        loads().await,
        1,
        "the refused event's map was not looked up"
    );
}

/// Behind a proxy the browser may reach Mesher at an address build
/// machines cannot: a configured public URL is the one a new token's
/// commands name.
#[actix::test]
async fn a_new_tokens_commands_name_the_configured_public_url() {
    let t = TestDb::new().await;
    let dash = Dash::start_with(&t, |c| {
        c.http.public_url = Some(PublicUrl::parse("https://errors.example.com").unwrap());
    })
    .await;
    let owner = dash.user("owner@example.org").await;
    let org = dash.org(&owner, "Acme", "acme").await;
    let mut res = awc::Client::new()
        .post(dash.url(&format!("/orgs/{org}/tokens")))
        .insert_header(("Cookie", format!("mesher_session={owner}")))
        .insert_header(("Origin", format!("http://{}", dash.mesher.http_addr)))
        .send_form(&[("label", "ci")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(
        body.contains("export SENTRY_URL=https://errors.example.com\n"),
        "{body}"
    );
}

#[actix::test]
async fn a_burst_of_events_from_one_build_reads_its_map_once() {
    use mesher::services::{GetSourceMapStats, LoadMaps};
    use mesher::sourcemaps::resolve::{Lookup, MapKey};
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = setup(&t, &dash).await;
    let id = uuid::Uuid::now_v7();
    let bundle = fixture_bundle(id);
    assert_eq!(upload_bundle(&dash, &s, &bundle).await["state"], "ok");
    let project = project_of(&dash, &s).await;
    let load = || {
        dash.mesher.source_maps.send(LoadMaps {
            org_id: project.org_id,
            project_id: project.id,
            keys: vec![MapKey::DebugId(id)],
        })
    };
    let burst = futures_util::future::join_all((0..20).map(|_| load())).await;
    for found in burst {
        assert!(matches!(
            found.unwrap()[&MapKey::DebugId(id)],
            Lookup::Found(_)
        ));
    }
    let stats = dash
        .mesher
        .source_maps
        .send(GetSourceMapStats)
        .await
        .unwrap();
    assert_eq!(stats.loads, 1, "twenty events, one read");
    assert_eq!(stats.cache.entries, 1);
    assert!(stats.cache.bytes > 0 && stats.cache.bytes <= stats.cache.max_bytes);
    load().await.unwrap();
    assert_eq!(
        dash.mesher
            .source_maps
            .send(GetSourceMapStats)
            .await
            .unwrap()
            .loads,
        1,
        "then from the cache"
    );
}

/// An event that stops waiting for a slow map is stored unresolved, but
/// the read goes on and its map is cached: the next event resolves without
/// reading it again (a map slower than the timeout would otherwise be read,
/// and dropped, for every event).
#[actix::test]
async fn a_map_read_after_its_event_stopped_waiting_serves_the_next_events() {
    use mesher::services::{GetSourceMapStats, LoadMaps};
    use mesher::sourcemaps::resolve::{Lookup, MapKey};
    let t = TestDb::new().await;
    let dash = Dash::start_with(&t, |c| {
        c.source_maps.load_timeout = std::time::Duration::from_nanos(1);
    })
    .await;
    let s = setup(&t, &dash).await;
    let id = uuid::Uuid::now_v7();
    assert_eq!(
        upload_bundle(&dash, &s, &fixture_bundle(id)).await["state"],
        "ok"
    );
    let project = project_of(&dash, &s).await;
    let load = async || {
        let mut found = dash
            .mesher
            .source_maps
            .send(LoadMaps {
                org_id: project.org_id,
                project_id: project.id,
                keys: vec![MapKey::DebugId(id)],
            })
            .await
            .unwrap();
        found.remove(&MapKey::DebugId(id)).unwrap()
    };
    let stats = async || {
        dash.mesher
            .source_maps
            .send(GetSourceMapStats)
            .await
            .unwrap()
    };

    assert!(
        matches!(load().await, Lookup::Unavailable),
        "not waited for"
    );
    wait_until("the read finished and was cached", async || {
        stats().await.cache.entries == 1
    })
    .await;
    assert!(matches!(load().await, Lookup::Found(_)));
    assert_eq!(stats().await.loads, 1, "read once");
}

/// A bundle of the unit tests' fixture (esbuild's `app.js`, not injected,
/// and its map), both with debug id `id`.
fn fixture_bundle(id: uuid::Uuid) -> Vec<u8> {
    let headers = json!({"debug-id": id});
    mesher::sourcemaps::bundle::write(
        &json!({"files": {
            "files/_/_/app.js": {"type": "minified_source", "url": "~/app.js", "headers": headers},
            "files/_/_/app.js.map": {"type": "source_map", "url": "~/app.js.map", "headers": headers},
        }}),
        &[
            (
                "files/_/_/app.js",
                include_bytes!("../../src/sourcemaps/fixtures/app.js"),
            ),
            (
                "files/_/_/app.js.map",
                include_bytes!("../../src/sourcemaps/fixtures/app.js.map"),
            ),
        ],
    )
}

#[actix::test]
async fn an_event_that_resolving_would_take_past_the_size_limit_is_stored_as_sent() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = setup(&t, &dash).await;
    let id = uuid::Uuid::now_v7();
    assert_eq!(
        upload_bundle(&dash, &s, &fixture_bundle(id)).await["state"],
        "ok"
    );
    // An event whose frame holds `vars`: 600 KB of local variables are
    // within the limit as sent, past it once the resolved frame and the
    // minified one both carry them.
    let send = async |vars: Value| {
        let frame = json!({"filename": "/srv/app.js", "function": "m", "lineno": 1,
                           "colno": 498, "vars": vars});
        let event = json!({
            "exception": {"values": [{"type": "Error", "value": "card declined",
                                       "stacktrace": {"frames": [frame]}}]},
            "debug_meta": {"images": [{"type": "sourcemap", "code_file": "/srv/app.js", "debug_id": id}]},
        });
        send_event(&dash, &s, event).await
    };
    let small = send(json!({"order": 17})).await;
    assert_eq!(
        top_frame(&small["stacktrace"])["function"],
        "chargeCard",
        "the map resolves the frame"
    );
    let large = send(json!({"blob": "x".repeat(600 * 1024)})).await;
    let top = top_frame(&large["stacktrace"]);
    assert_eq!(
        (&top["function"], &top["colno"]),
        (&json!("m"), &json!(498)),
        "as sent"
    );
    assert!(large.get("raw_stacktrace").is_none());
}

/// Files without debug ids are found by the event's release and the
/// frame's URL, as sentry-cli uploads them with `--release`: the minified
/// file under `~/app.js`, its map under `~/app.js.map`, and the minified
/// file's `Sourcemap` header an absolute URL on the CDN, which matches the
/// map's `~/` path as the frame's URL matches the file's.
#[actix::test]
async fn a_release_finds_its_maps_by_url_when_the_files_carry_no_debug_id() {
    let t = TestDb::new().await;
    let dash = Dash::start(&t).await;
    let s = setup(&t, &dash).await;
    let bundle = mesher::sourcemaps::bundle::write(
        &json!({"release": "shop@1.0", "files": {
            "files/_/_/app.js": {"type": "minified_source", "url": "~/js/app.js",
                "headers": {"Sourcemap": "https://cdn.example.com/js/app.js.map"}},
            "files/_/_/app.js.map": {"type": "source_map", "url": "~/js/app.js.map"},
        }}),
        &[
            (
                "files/_/_/app.js",
                include_bytes!("../../src/sourcemaps/fixtures/app.js"),
            ),
            (
                "files/_/_/app.js.map",
                include_bytes!("../../src/sourcemaps/fixtures/app.js.map"),
            ),
        ],
    );
    assert_eq!(upload_bundle(&dash, &s, &bundle).await["state"], "ok");
    let send = async |release: &str| {
        let frame = json!({"abs_path": "https://cdn.example.com/js/app.js?v=3",
                           "filename": "/js/app.js", "function": "m", "lineno": 1, "colno": 498});
        let event = json!({
            "release": release,
            "exception": {"values": [{"type": "Error", "value": "card declined",
                                       "stacktrace": {"frames": [frame]}}]},
        });
        send_event(&dash, &s, event).await
    };

    let resolved = send("shop@1.0").await;
    let top = top_frame(&resolved["stacktrace"]);
    assert_eq!(top["function"], "chargeCard", "{top}");
    assert_eq!(top["lineno"], 4, "{top}");
    assert!(resolved.get("raw_stacktrace").is_some());
    // Another release has no uploads: its frames stay as sent, unnoted.
    let other = send("shop@2.0").await;
    let top = top_frame(&other["stacktrace"]);
    assert_eq!(
        (&top["function"], &top["colno"]),
        (&json!("m"), &json!(498))
    );
    assert!(top.get("data").is_none(), "{top}");
}
