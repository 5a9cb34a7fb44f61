//! Alerts end to end, with real parts: events sent by the `sentry` crate
//! over HTTP, a real HTTP listener that records the webhooks it gets (and
//! answers 500, or stops listening, when a test says so), and Debian's
//! `aiosmtpd` as the SMTP server. Rules and channels are made through the
//! dashboard API, as a user would.

use crate::common::outcomes::Metrics;
use crate::common::{TestDb, wait_until};
use crate::dashboard::{Dash, Owned};
use actix_web::http::{Method, StatusCode};
use mesher::Config;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

/// How a [`Receiver`] answers.
pub const ANSWER_OK: u8 = 0;
pub const ANSWER_500: u8 = 1;
/// Reads the request, records it, and never answers.
pub const ANSWER_NEVER: u8 = 2;

/// A webhook receiver: a real HTTP/1.1 listener on loopback that records
/// every request whole, then answers as `answer` says.
#[derive(Clone)]
pub struct Receiver {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub answer: Arc<AtomicU8>,
    /// Stops the listener (its port then refuses connections).
    stop: Arc<tokio::sync::Notify>,
}

impl Receiver {
    /// Listens on a free port.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            port: listener.local_addr().unwrap().port(),
            received: Default::default(),
            answer: Default::default(),
            stop: Default::default(),
        };
        receiver.serve(listener);
        receiver
    }

    /// Listens again on the same port, after [`Receiver::stop`].
    pub async fn restart(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    /// Closes the listener: connections are refused until a restart.
    pub fn stop(&self) {
        self.stop.notify_waiters();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn serve(&self, listener: TcpListener) {
        let (received, answer, stop) = (
            self.received.clone(),
            self.answer.clone(),
            self.stop.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(_) => return,
                    },
                    () = stop.notified() => return,
                };
                let (received, answer) = (received.clone(), answer.clone());
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut socket).await else {
                        return;
                    };
                    received.lock().unwrap().push(request);
                    let status = match answer.load(Ordering::SeqCst) {
                        ANSWER_OK => "200 OK",
                        ANSWER_500 => "500 Internal Server Error",
                        _ => {
                            // Holds the connection open without a word.
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                    };
                    let body = "receiver says hello";
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
    }
}

/// Reads one request: its head, then `Content-Length` bytes of body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(Received {
        headers,
        body: data[head_end..head_end + length].to_vec(),
    })
}

/// Debian's `aiosmtpd` on a free port (`scripts/test.sh` installs it),
/// printing each message it takes; the messages, as text.
pub struct Smtp {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl Smtp {
    pub fn start() -> Smtp {
        let port = crate::binary::free_port();
        let mut child = Command::new("/usr/bin/python3")
            .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd (apt-get install python3-aiosmtpd)");
        let messages: Arc<Mutex<Vec<String>>> = Default::default();
        let stdout = child.stdout.take().unwrap();
        let collected = messages.clone();
        std::thread::spawn(move || {
            let mut current: Option<String> = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("---------- MESSAGE FOLLOWS") {
                    current = Some(String::new());
                } else if line.starts_with("------------ END MESSAGE") {
                    if let Some(message) = current.take() {
                        collected.lock().unwrap().push(message);
                    }
                } else if let Some(message) = &mut current {
                    message.push_str(&line);
                    message.push('\n');
                }
            }
        });
        // Listening once a connection is taken.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "aiosmtpd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Smtp {
            port,
            messages,
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Test settings: private webhook targets allowed (the receiver is on
/// loopback), quick polls and retries.
pub fn tune(c: &mut Config) {
    c.notifier.allow_private_webhooks = true;
    c.notifier.poll_interval = Duration::from_millis(100);
    c.notifier.retry_first = Duration::from_millis(100);
    c.notifier.retry_max = Duration::from_millis(400);
}

/// An event as the tests send it.
#[derive(Clone)]
pub struct Sent {
    pub message: String,
    pub level: sentry::Level,
    pub environment: Option<&'static str>,
    pub tags: Vec<(&'static str, &'static str)>,
    /// Who it happened to (the SDK's `user.id`), if anyone.
    pub user: Option<&'static str>,
}

pub fn error(message: &str) -> Sent {
    Sent {
        message: message.to_owned(),
        level: sentry::Level::Error,
        environment: Some("production"),
        tags: vec![],
        user: None,
    }
}

/// Sends `events` with the `sentry` crate to `dsn`, flushing every few so
/// that the SDK's queue never drops one; their ids.
pub async fn send(dsn: &str, events: Vec<Sent>) -> Vec<uuid::Uuid> {
    let dsn = dsn.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut options = sentry::ClientOptions::default();
        options.dsn = Some(dsn.parse().expect("a DSN"));
        let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
        let hub = sentry::Hub::new(Some(client.clone()), Arc::new(sentry::Scope::default()));
        let mut ids = Vec::new();
        for (i, sent) in events.into_iter().enumerate() {
            let event = sentry::protocol::Event {
                message: Some(sent.message),
                level: sent.level,
                environment: sent.environment.map(Into::into),
                tags: sent
                    .tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                user: sent.user.map(|id| sentry::User {
                    id: Some(id.into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            ids.push(hub.capture_event(event));
            if i % 20 == 19 {
                assert!(client.flush(Some(Duration::from_secs(30))), "sent");
            }
        }
        assert!(client.flush(Some(Duration::from_secs(30))), "sent");
        ids
    })
    .await
    .unwrap()
}

/// A project's admin with a rule and channels, on a running Mesher.
pub struct Setup {
    pub dash: Dash,
    pub owned: Owned,
}

impl Setup {
    pub async fn start(t: &TestDb, more: impl FnOnce(&mut Config)) -> Setup {
        let dash = Dash::start_with(t, |c| {
            tune(c);
            more(c);
        })
        .await;
        let owned = dash.owner_with_project("ann@example.org", "web").await;
        Setup { dash, owned }
    }

    /// [`Setup::start`] with email channels on, sending through a real
    /// SMTP server of its own (returned with it: it runs while it lives).
    pub async fn with_email(t: &TestDb) -> (Smtp, Setup) {
        let smtp = Smtp::start();
        let smtp_url = smtp.url();
        let setup = Setup::start(t, |c| {
            c.notifier.smtp_url = Some(smtp_url);
            c.notifier.email_from = Some("Mesher <alerts@example.org>".into());
        })
        .await;
        (smtp, setup)
    }

    /// The issue of one event `message` (the project's only issue),
    /// archived `until` (the API's `archive` object); its id.
    pub async fn archived_issue(&self, t: &TestDb, message: &str, until: Value) -> String {
        send(&self.owned.project.dsn, vec![error(message)]).await;
        wait_until("the issue exists", async || {
            t.count("SELECT count(*) FROM issues").await == 1
        })
        .await;
        let issue: String = t
            .pool
            .get()
            .await
            .unwrap()
            .query_one("SELECT id::text FROM issues", &[])
            .await
            .unwrap()
            .get(0);
        let archived = self
            .dash
            .call(
                Method::PATCH,
                &self.path(&format!("/issues/{issue}")),
                crate::dashboard::Auth::Bearer(&self.owned.owner),
                Some(json!({"status": "archived", "archive": until})),
            )
            .await;
        assert_eq!(archived.status, StatusCode::OK, "{}", archived.body);
        issue
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/projects/{}{rest}", self.owned.project.id)
    }

    /// A channel; its id and (webhooks) secret.
    pub async fn channel(&self, body: Value) -> (String, Option<String>) {
        let made = self
            .dash
            .post(&self.path("/channels"), &self.owned.owner, body)
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        (
            made.body["id"].as_str().unwrap().to_owned(),
            made.body["secret"].as_str().map(str::to_owned),
        )
    }

    pub async fn webhook(&self, receiver: &Receiver) -> (String, String) {
        let (id, secret) = self
            .channel(json!({"kind": "webhook", "name": "Receiver", "url": receiver.url("/hook")}))
            .await;
        (id, secret.expect("a webhook's secret, shown once"))
    }

    pub async fn rule(&self, body: Value) -> String {
        let made = self
            .dash
            .post(&self.path("/alert-rules"), &self.owned.owner, body)
            .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        made.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn history(&self) -> Vec<Value> {
        let page = self
            .dash
            .get(&self.path("/alerts"), &self.owned.owner)
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        page.body["alerts"].as_array().unwrap().clone()
    }

    /// Waits until every delivery in the history is settled (delivered or
    /// failed) and returns the history.
    pub async fn settled(&self, alerts: usize) -> Vec<Value> {
        wait_until(
            &format!("{alerts} alert(s) with every delivery settled"),
            async || {
                let history = self.history().await;
                history.len() == alerts
                    && history.iter().all(|a| {
                        a["deliveries"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|d| d["state"] != "pending")
                    })
            },
        )
        .await;
        self.history().await
    }

    pub fn metrics(&self) -> Metrics {
        Metrics::of(&self.dash.mesher.metrics)
    }

    /// Adds the registered user `email` to the organization as a member,
    /// as its owner does.
    pub async fn add_member(&self, email: &str) {
        let added = self
            .dash
            .post(
                &format!("/api/v1/orgs/{}/members", self.owned.org),
                &self.owned.owner,
                json!({"email": email, "role": "member"}),
            )
            .await;
        assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    }

    /// A page of the web UI as `token`'s session gets it: its status and
    /// HTML.
    pub async fn page(&self, path: &str, token: &str) -> (StatusCode, String) {
        self.web(Method::GET, path, token, None).await
    }

    /// `form` posted with `token`'s session as the web UI's own pages post
    /// it: the status and HTML.
    pub async fn form(
        &self,
        path: &str,
        token: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String) {
        self.web(Method::POST, path, token, Some(form)).await
    }

    /// [`Setup::page`] and [`Setup::form`].
    async fn web(
        &self,
        method: Method,
        path: &str,
        token: &str,
        form: Option<&[(&str, &str)]>,
    ) -> (StatusCode, String) {
        // A form's 303 is what a test looks at: redirects are not followed.
        let client = awc::Client::builder().disable_redirects().finish();
        let request = client
            .request(method, self.dash.url(path))
            .insert_header(("Cookie", format!("mesher_session={token}")));
        let sent = match form {
            // From this origin, as the web UI accepts a form.
            Some(form) => {
                let origin = format!("http://{}", self.dash.mesher.http_addr);
                request
                    .insert_header(("Origin", origin))
                    .send_form(&form)
                    .await
            }
            None => request.send().await,
        };
        let mut response = sent.expect("the web UI answers");
        let body = response.body().limit(1 << 22).await.expect("a body");
        (
            response.status(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }
}

/// The `value` of the form field named `name` in `html` (the first such
/// field, whose tag names it before its value).
fn field_value<'a>(html: &'a str, name: &str) -> &'a str {
    let tag = html
        .find(&format!(r#"name="{name}""#))
        .map(|at| &html[at..at + html[at..].find('>').expect("a whole tag")])
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let value = tag
        .split_once(r#"value=""#)
        .unwrap_or_else(|| panic!("no value in {tag}"))
        .1;
    &value[..value.find('"').expect("a quoted value")]
}

/// The outbox is empty: nothing more will be sent.
async fn outbox_empty(t: &TestDb) -> bool {
    t.count("SELECT count(*) FROM alert_deliveries WHERE state = 'pending'")
        .await
        == 0
}

#[actix::test]
async fn a_thousand_events_of_one_new_issue_send_one_email_and_one_webhook() {
    let t = TestDb::new().await;
    let (smtp, s) = Setup::with_email(&t).await;
    let receiver = Receiver::start().await;
    let (webhook, secret) = s.webhook(&receiver).await;
    let (email, none) = s
        .channel(json!({"kind": "email", "name": "Team", "addresses": ["dev@example.org"]}))
        .await;
    assert_eq!(none, None, "only a generic webhook has a secret");
    let rule = s
        .rule(
            json!({"name": "New errors", "condition": {"type": "new_issue"},
            "channels": [webhook, email]}),
        )
        .await;

    let ids = send(
        &s.owned.project.dsn,
        (0..1000).map(|_| error("KeyError: 'c'")).collect(),
    )
    .await;
    wait_until("all 1000 events are stored", async || {
        t.count("SELECT count(*) FROM events").await == 1000
    })
    .await;
    let history = s.settled(1).await;
    wait_until("the outbox is empty", async || outbox_empty(&t).await).await;

    assert_eq!(receiver.requests().len(), 1, "one webhook");
    wait_until("the email arrived", async || smtp.messages().len() == 1).await;
    assert_eq!(smtp.messages().len(), 1, "one email");

    // The history: the rule, the reason, both deliveries delivered.
    let alert = &history[0];
    assert_eq!(alert["rule_id"], rule.as_str());
    assert_eq!(alert["reason"], "new_issue");
    let issue_id = alert["issue_id"].as_str().unwrap();
    let deliveries = alert["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(
        deliveries
            .iter()
            .all(|d| d["state"] == "delivered" && d["attempts"] == 1)
    );
    let to_webhook = deliveries
        .iter()
        .find(|d| d["channel_id"] == webhook.as_str())
        .unwrap();

    // The webhook: signed with the channel's secret, named by the
    // delivery's id, in the spec's shape.
    let request = &receiver.requests()[0];
    assert_eq!(request.header("x-mesher-delivery"), to_webhook["id"]);
    assert_eq!(
        request.header("x-mesher-signature"),
        mesher::domain::notice::signature(&secret, &request.body)
    );
    let payload = request.json();
    assert_eq!(payload["delivery_id"], to_webhook["id"]);
    assert_eq!(payload["rule"], json!({"id": rule, "name": "New errors"}));
    assert_eq!(payload["reason"], "new_issue");
    assert_eq!(payload["project"]["name"], "web");
    assert_eq!(payload["issue"]["id"], issue_id);
    assert_eq!(payload["issue"]["title"], "KeyError: 'c'");
    let url = payload["issue"]["url"].as_str().unwrap();
    assert!(
        url.ends_with(&format!(
            "/projects/{}/issues/{issue_id}",
            s.owned.project.id
        )),
        "{url}"
    );
    assert!(
        ids.iter()
            .any(|id| payload["event"]["id"] == id.to_string())
    );
    assert_eq!(payload["event"]["environment"], "production");

    // The email: the subject, both parts, the link.
    let message = &smtp.messages()[0];
    assert!(
        message.contains("Subject: [Mesher] New issue in web: KeyError: 'c'"),
        "{message}"
    );
    assert!(message.contains("To: dev@example.org"), "{message}");
    assert!(message.contains("text/plain") && message.contains("text/html"));
    let unfolded = message.replace("=\n", "");
    assert!(
        unfolded.contains(issue_id),
        "a link to the issue: {message}"
    );

    let m = s.metrics();
    assert_eq!(m.counter_with("alerts_fired", "condition", "new_issue"), 1);
    assert_eq!(
        m.value(
            "mesher_notifications",
            &[("channel", "webhook"), ("outcome", "delivered")]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "mesher_notifications",
            &[("channel", "email"), ("outcome", "delivered")]
        ),
        1.0
    );
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_frequency_rule_fires_once_when_crossed_and_a_regression_once() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    let frequent = s
        .rule(json!({"name": "Busy", "channels": [webhook],
            "condition": {"type": "event_frequency", "count": 50, "window_minutes": 1}}))
        .await;
    s.rule(
        json!({"name": "Back again", "condition": {"type": "regression"},
        "channels": [webhook]}),
    )
    .await;
    let dsn = &s.owned.project.dsn;

    send(dsn, (0..40).map(|_| error("Timeout")).collect()).await;
    wait_until("40 stored", async || {
        t.count("SELECT count(*) FROM events").await == 40
    })
    .await;
    assert_eq!(s.history().await.len(), 0, "40 is not more than 50");
    send(dsn, (0..30).map(|_| error("Timeout")).collect()).await;
    let history = s.settled(1).await;
    assert_eq!(history[0]["reason"], "event_frequency");
    assert_eq!(history[0]["message"], "More than 50 events in 1 minute");
    send(dsn, (0..60).map(|_| error("Timeout")).collect()).await;
    wait_until("130 stored", async || {
        t.count("SELECT count(*) FROM events").await == 130
    })
    .await;
    assert_eq!(s.settled(1).await.len(), 1, "quiet within its interval");

    // Resolved, then an event: one regression, and the frequency rule
    // still quiet.
    let issue = history[0]["issue_id"].as_str().unwrap();
    let resolved = s
        .dash
        .call(
            Method::PATCH,
            &s.path(&format!("/issues/{issue}")),
            crate::dashboard::Auth::Bearer(&s.owned.owner),
            Some(json!({"status": "resolved"})),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    send(dsn, vec![error("Timeout")]).await;
    let history = s.settled(2).await;
    assert_eq!(history[0]["reason"], "regression");

    // Its interval over (the data says so), the next burst fires again.
    t.execute(&format!(
        "UPDATE alert_rule_issues SET quiet_until = now() - interval '1 second'
         WHERE rule_id = '{frequent}'"
    ))
    .await;
    send(dsn, (0..60).map(|_| error("Timeout")).collect()).await;
    let history = s.settled(3).await;
    assert_eq!(history[0]["reason"], "event_frequency");
    wait_until("the outbox is empty", async || outbox_empty(&t).await).await;
    assert_eq!(receiver.requests().len(), 3);
    let reasons: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        ["event_frequency", "regression", "event_frequency"]
    );
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_user_frequency_rule_counts_distinct_users_and_fires_once() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(json!({"name": "Spreading", "channels": [webhook],
        "condition": {"type": "user_frequency", "count": 2, "window_minutes": 5}}))
        .await;
    let dsn = &s.owned.project.dsn;
    let by = |user: &'static str| Sent {
        user: Some(user),
        ..error("Checkout fails")
    };

    // Many events, but of two users (and some of nobody): not more than 2.
    let mut events: Vec<Sent> = (0..30).map(|_| by("ann")).collect();
    events.extend((0..30).map(|_| by("bob")));
    events.extend((0..10).map(|_| error("Checkout fails")));
    send(dsn, events).await;
    wait_until("70 stored", async || {
        t.count("SELECT count(*) FROM events").await == 70
    })
    .await;
    assert!(
        s.history().await.is_empty(),
        "two users are not more than 2"
    );

    // A third user crosses it; a fourth, within the interval, does not
    // fire again.
    send(dsn, vec![by("cat")]).await;
    let history = s.settled(1).await;
    assert_eq!(history[0]["reason"], "user_frequency");
    assert_eq!(history[0]["message"], "More than 2 users in 5 minutes");
    send(dsn, vec![by("dan"), by("eve")]).await;
    wait_until("73 stored", async || {
        t.count("SELECT count(*) FROM events").await == 73
    })
    .await;
    assert_eq!(s.settled(1).await.len(), 1, "quiet within its interval");
    wait_until("the outbox is empty", async || outbox_empty(&t).await).await;
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].json()["reason"], "user_frequency");
    assert_eq!(
        s.metrics()
            .counter_with("alerts_fired", "condition", "user_frequency"),
        1
    );
    s.dash.mesher.shutdown().await.unwrap();
}

/// A user-frequency rule with an environments filter counts the users of
/// those environments only, and a user seen in several once.
#[actix::test]
async fn a_user_frequency_rule_counts_only_the_users_of_its_environments() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(
        json!({"name": "Spreading in production", "channels": [webhook],
        "condition": {"type": "user_frequency", "count": 2, "window_minutes": 5},
        "filters": {"environments": ["production"]}}),
    )
    .await;
    let dsn = &s.owned.project.dsn;
    let by = |user: &'static str, environment: &'static str| Sent {
        user: Some(user),
        environment: Some(environment),
        ..error("Checkout fails")
    };

    // Four users, two of them in production.
    send(
        dsn,
        vec![
            by("ann", "production"),
            by("bob", "production"),
            by("bob", "staging"),
            by("cat", "staging"),
            by("dan", "staging"),
        ],
    )
    .await;
    wait_until("5 stored", async || {
        t.count("SELECT count(*) FROM events").await == 5
    })
    .await;
    assert!(
        s.history().await.is_empty(),
        "two users in production are not more than 2"
    );
    // A third in production crosses it.
    send(dsn, vec![by("eve", "production")]).await;
    let history = s.settled(1).await;
    assert_eq!(history[0]["reason"], "user_frequency");
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn filters_by_environment_level_and_tag_hold() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(
        json!({"name": "Checkout in production", "condition": {"type": "new_issue"},
        "channels": [webhook],
        "filters": {"environments": ["production"], "min_level": "error",
            "tag": {"key": "area", "value": "checkout"}}}),
    )
    .await;
    let checkout = vec![("area", "checkout")];
    let sent = vec![
        Sent {
            level: sentry::Level::Warning,
            tags: checkout.clone(),
            ..error("a warning")
        },
        Sent {
            environment: Some("staging"),
            tags: checkout.clone(),
            ..error("in staging")
        },
        Sent {
            environment: None,
            tags: checkout.clone(),
            ..error("no environment")
        },
        error("untagged"),
        Sent {
            tags: vec![("area", "search")],
            ..error("another area")
        },
        Sent {
            tags: checkout.clone(),
            ..error("an error that counts")
        },
        Sent {
            level: sentry::Level::Fatal,
            tags: checkout.clone(),
            ..error("a fatal that counts")
        },
    ];
    send(&s.owned.project.dsn, sent).await;
    wait_until("7 issues", async || {
        t.count("SELECT count(*) FROM issues").await == 7
    })
    .await;
    s.settled(2).await;
    let mut titles: Vec<String> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["issue"]["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    assert_eq!(titles, ["a fatal that counts", "an error that counts"]);
    s.dash.mesher.shutdown().await.unwrap();
}

/// Slack- and Discord-compatible channels get their incoming-webhook
/// formats, through the same delivery path as a webhook: Slack's `text`
/// and `blocks`, Discord's `content` and `embeds` with mentions off, each
/// linking the issue.
#[actix::test]
async fn slack_and_discord_channels_get_their_own_message_formats() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (slack, _) = s
        .channel(json!({"kind": "slack", "name": "Slack", "url": receiver.url("/slack")}))
        .await;
    let (discord, _) = s
        .channel(json!({"kind": "discord", "name": "Discord", "url": receiver.url("/discord")}))
        .await;
    s.rule(json!({"name": "New", "condition": {"type": "new_issue"},
        "channels": [slack, discord]}))
        .await;
    send(&s.owned.project.dsn, vec![error("KeyError: 'c'")]).await;
    wait_until("both messages arrived", async || {
        receiver.requests().len() == 2
    })
    .await;

    let bodies: Vec<Value> = receiver.requests().iter().map(Received::json).collect();
    let slack = bodies
        .iter()
        .find(|b| b.get("blocks").is_some())
        .expect("a Slack message");
    let discord = bodies
        .iter()
        .find(|b| b.get("embeds").is_some())
        .expect("a Discord message");
    let link = format!("/projects/{}/issues/", s.owned.project.id);
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .starts_with("New issue in web: KeyError"),
        "{slack}"
    );
    let section = slack["blocks"][0]["text"]["text"].as_str().unwrap();
    assert!(section.contains(&link), "{slack}");
    assert_eq!(discord["content"], "New issue in web");
    assert!(
        discord["embeds"][0]["title"]
            .as_str()
            .unwrap()
            .contains("KeyError")
    );
    assert!(
        discord["embeds"][0]["url"]
            .as_str()
            .unwrap()
            .contains(&link),
        "{discord}"
    );
    assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
    wait_until("both are counted as delivered", async || {
        let m = s.metrics();
        ["slack", "discord"].iter().all(|channel| {
            m.value(
                "mesher_notifications",
                &[("channel", channel), ("outcome", "delivered")],
            ) == 1.0
        })
    })
    .await;
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_receiver_that_fails_then_refuses_gets_the_same_delivery_once_it_recovers() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    receiver.answer.store(ANSWER_500, Ordering::SeqCst);
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(json!({"name": "New", "condition": {"type": "new_issue"}, "channels": [webhook]}))
        .await;
    send(&s.owned.project.dsn, vec![error("Flaky")]).await;

    wait_until("the receiver answered 500 twice", async || {
        receiver.requests().len() >= 2
    })
    .await;
    receiver.stop();
    let attempts = async || {
        t.count("SELECT coalesce(max(attempts), 0)::bigint FROM alert_deliveries")
            .await
    };
    let before = attempts().await;
    wait_until("two more attempts meet a closed port", async || {
        attempts().await >= before + 2
    })
    .await;
    let pending = s.history().await;
    let delivery = &pending[0]["deliveries"][0];
    assert_eq!(delivery["state"], "pending");
    assert!(
        delivery["last_error"].as_str().unwrap().contains("connect"),
        "{delivery}"
    );
    // The outbox's depth and age, as an operator's alert on them sees it
    // (kept by each of the notifier's passes).
    wait_until("the outbox gauges show the waiting delivery", async || {
        let m = s.metrics();
        m.gauge("outbox_pending") == 1 && m.value("mesher_outbox_oldest_seconds", &[]) >= 1.0
    })
    .await;

    receiver.answer.store(ANSWER_OK, Ordering::SeqCst);
    receiver.restart().await;
    let history = s.settled(1).await;
    let delivery = &history[0]["deliveries"][0];
    assert_eq!(delivery["state"], "delivered");
    assert!(delivery["attempts"].as_i64().unwrap() >= 4, "{delivery}");
    let requests = receiver.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-mesher-delivery") == delivery["id"]),
        "every attempt carries the same delivery id"
    );
    let m = s.metrics();
    assert!(
        m.value(
            "mesher_notifications",
            &[("channel", "webhook"), ("outcome", "retry")]
        ) >= 3.0
    );
    assert_eq!(m.gauge("outbox_pending"), 0);
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn a_delivery_retried_past_its_window_is_failed_and_shown() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |c| c.notifier.retry_for = Duration::from_millis(500)).await;
    let receiver = Receiver::start().await;
    receiver.answer.store(ANSWER_500, Ordering::SeqCst);
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(json!({"name": "New", "condition": {"type": "new_issue"}, "channels": [webhook]}))
        .await;
    send(&s.owned.project.dsn, vec![error("Doomed")]).await;
    let history = s.settled(1).await;
    let delivery = &history[0]["deliveries"][0];
    assert_eq!(delivery["state"], "failed");
    assert_eq!(
        delivery["last_error"],
        "HTTP 500 Internal Server Error: receiver says hello"
    );
    assert_eq!(
        s.metrics().value(
            "mesher_notifications",
            &[("channel", "webhook"), ("outcome", "failed")]
        ),
        1.0
    );
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn private_addresses_are_refused_without_the_setting() {
    let t = TestDb::new().await;
    let receiver = Receiver::start().await;
    // Made while allowed...
    let s = Setup::start(&t, |_| {}).await;
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(json!({"name": "New", "condition": {"type": "new_issue"}, "channels": [webhook]}))
        .await;
    let dsn = s.owned.project.dsn.clone();
    let (owner, project) = (s.owned.owner.clone(), s.owned.project.id.clone());
    let first_addr = s.dash.mesher.http_addr.to_string();
    s.dash.mesher.shutdown().await.unwrap();

    // ...then Mesher runs without the setting: creating such a channel is
    // refused, and the one made before is never sent to.
    let strict = Dash::start_with(&t, |c| {
        tune(c);
        c.notifier.allow_private_webhooks = false;
    })
    .await;
    for url in [
        receiver.url("/hook"),
        "http://localhost:9/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]:80/".to_owned(),
    ] {
        let refused = strict
            .post(
                &format!("/api/v1/projects/{project}/channels"),
                &owner,
                json!({"kind": "webhook", "name": "Internal", "url": url}),
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(refused.body["error"]["code"], "invalid_input");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid url"),
            "{}",
            refused.body
        );
    }
    let dsn = dsn.replace(&first_addr, &strict.mesher.http_addr.to_string());
    send(&dsn, vec![error("Probe")]).await;
    wait_until("the attempt is refused", async || {
        t.count(
            "SELECT count(*) FROM alert_deliveries
             WHERE attempts >= 1 AND last_error LIKE 'refused: 127.0.0.1 is not a public address%'",
        )
        .await
            == 1
    })
    .await;
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
    strict.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn two_processes_on_one_database_send_one_notification() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(json!({"name": "New", "condition": {"type": "new_issue"}, "channels": [webhook]}))
        .await;
    let second = t
        .start_with(|c| {
            tune(c);
            c.spool.dir = Some(t.spool_dir().join("second"));
        })
        .await;
    let first_dsn = s.owned.project.dsn.clone();
    let second_dsn = first_dsn.replace(
        &s.dash.mesher.http_addr.to_string(),
        &second.http_addr.to_string(),
    );
    let crash = || (0..100).map(|_| error("IndexError: list index out of range"));
    let (a, b) = futures_util::join!(
        send(&first_dsn, crash().collect()),
        send(&second_dsn, crash().collect())
    );
    assert_eq!(a.len() + b.len(), 200);
    wait_until("200 stored", async || {
        t.count("SELECT count(*) FROM events").await == 200
    })
    .await;
    s.settled(1).await;
    wait_until("the outbox is empty", async || outbox_empty(&t).await).await;
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(t.count("SELECT count(*) FROM alerts").await, 1);
    second.shutdown().await.unwrap();
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn rules_and_channels_are_read_by_members_written_by_admins_and_tested() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, secret) = s.webhook(&receiver).await;
    let admin = &s.owned.owner;

    // The secret is shown once: never in a listing.
    let listed = s.dash.get(&s.path("/channels"), admin).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["channels"][0]["id"], webhook.as_str());
    assert!(!listed.body.to_string().contains(&secret));

    // Bad input: a typed 400 or 404, nothing written.
    for (body, status, code) in [
        (
            json!({"name": "x", "condition": {"type": "new_issue"},
                "channels": [uuid::Uuid::now_v7()]}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            json!({"name": "x", "condition": {"type": "event_frequency", "count": 1,
                "window_minutes": 20000}}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"name": "x", "condition": {"type": "whenever"}}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
    ] {
        let refused = s.dash.post(&s.path("/alert-rules"), admin, body).await;
        assert_eq!(refused.status, status, "{}", refused.body);
        assert_eq!(refused.body["error"]["code"], code);
    }
    let email = s
        .dash
        .post(
            &s.path("/channels"),
            admin,
            json!({"kind": "email", "name": "Team", "addresses": ["a@example.org"]}),
        )
        .await;
    assert_eq!(email.status, StatusCode::BAD_REQUEST);
    assert!(
        email.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MESHER_SMTP_URL"),
        "{}",
        email.body
    );
    assert_eq!(t.count("SELECT count(*) FROM alert_rules").await, 0);

    let rule = s
        .rule(json!({"name": "New", "condition": {"type": "new_issue"}, "channels": [webhook]}))
        .await;
    // A member reads and may not write; an outsider sees nothing.
    let member = s.dash.user("bob@example.org").await;
    s.add_member("bob@example.org").await;
    assert_eq!(
        s.dash.get(&s.path("/alert-rules"), &member).await.body["rules"][0]["id"],
        rule.as_str()
    );
    // A webhook's path can be a credential (Slack's, Discord's): the admin
    // who manages the channel sees the URL whole, a member its origin.
    let url = listed.body["channels"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.ends_with("/hook"), "{url}");
    let seen = s.dash.get(&s.path("/channels"), &member).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(
        seen.body["channels"][0]["url"],
        format!("{}/…", url.trim_end_matches("/hook")).as_str()
    );
    let denied = s
        .dash
        .post(
            &s.path("/alert-rules"),
            &member,
            json!({"name": "Mine", "condition": {"type": "new_issue"}}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let outsider = s.dash.user("eve@example.org").await;
    for path in ["/alert-rules", "/channels", "/alerts"] {
        assert_eq!(
            s.dash.get(&s.path(path), &outsider).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }

    // Disabled, a rule stays and says so.
    let patched = s
        .dash
        .call(
            Method::PATCH,
            &s.path(&format!("/alert-rules/{rule}")),
            crate::dashboard::Auth::Bearer(admin),
            Some(json!({"enabled": false, "action_interval_minutes": 5})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["enabled"], false);
    assert_eq!(patched.body["action_interval_minutes"], 5);
    assert_eq!(patched.body["channels"], json!([webhook]));

    // A test notification goes through the outbox like any alert.
    let tested = s
        .dash
        .post(
            &s.path(&format!("/channels/{webhook}/test")),
            admin,
            json!({}),
        )
        .await;
    assert_eq!(tested.status, StatusCode::ACCEPTED, "{}", tested.body);
    let history = s.settled(1).await;
    assert_eq!(history[0]["reason"], "test");
    assert_eq!(
        history[0]["deliveries"][0]["id"],
        tested.body["delivery_id"]
    );
    let request = &receiver.requests()[0];
    assert_eq!(request.json()["reason"], "test");
    assert_eq!(
        request.header("x-mesher-signature"),
        mesher::domain::notice::signature(&secret, &request.body)
    );

    // A deleted channel leaves the rules that named it.
    let deleted = s
        .dash
        .call(
            Method::DELETE,
            &s.path(&format!("/channels/{webhook}")),
            crate::dashboard::Auth::Bearer(admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let rules = s.dash.get(&s.path("/alert-rules"), admin).await;
    assert_eq!(rules.body["rules"][0]["channels"], json!([]));
    s.dash.mesher.shutdown().await.unwrap();
}

/// The alerts page's channel forms as an admin posts them: an email
/// channel addressed to a ticked member and an address, whose test
/// notification reaches both through a real SMTP server; edited to the
/// address alone; and a member from outside the organization refused, the
/// form shown again as posted, nothing written.
#[actix::test]
async fn an_email_channel_made_on_the_page_reaches_the_members_ticked() {
    let t = TestDb::new().await;
    let (smtp, s) = Setup::with_email(&t).await;
    let admin = &s.owned.owner;
    let registered = s
        .dash
        .call(
            Method::POST,
            "/api/v1/auth/register",
            crate::dashboard::Auth::None,
            Some(
                json!({"email": "bob@example.org", "password": "correct horse",
                "display_name": "Bob Builder"}),
            ),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let bob_id = registered.body["id"].as_str().unwrap().to_owned();
    let bob = s.dash.login("bob@example.org", "correct horse").await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.add_member("bob@example.org").await;
    let outsider = s.dash.user("eve@example.org").await;
    let eve_id = s.dash.user_id(&outsider).await;

    let page = format!("/projects/{}/alerts", s.owned.project.id);
    let get = async |path: &str, token: &str| s.page(path, token).await;
    let post = async |path: &str, form: &[(&str, &str)]| s.form(path, admin, form).await;
    let channels = async || {
        let listed = s.dash.get(&s.path("/channels"), admin).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        listed.body["channels"].as_array().unwrap().clone()
    };
    let bob_box = format!(r#"name="member" value="{bob_id}""#);
    let bob_label = "Bob Builder &#60;bob@example.org&#62;";

    // The form offers the organization's members, by name and address.
    let (status, body) = get(&page, admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&bob_box), "{body}");
    assert!(body.contains(bob_label), "{body}");
    assert!(!body.contains(&eve_id), "an outsider is not offered");

    let (status, body) = post(
        &format!("{page}/channels"),
        &[
            ("kind", "email"),
            ("name", "Team"),
            ("target", "dev@example.org"),
            ("member", &bob_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let listed = channels().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["kind"], "email");
    assert_eq!(listed[0]["addresses"], json!(["dev@example.org"]));
    assert_eq!(listed[0]["members"], json!([bob_id]));
    let channel = listed[0]["id"].as_str().unwrap().to_owned();
    // The listing names the member, to the admin and to the member alike.
    for token in [admin, &bob] {
        let (_, body) = get(&page, token).await;
        assert!(
            body.contains(&format!("dev@example.org, {bob_label}")),
            "{body}"
        );
    }

    // A test notification reaches the member's address and the other.
    let (status, _) = post(&format!("{page}/channels/{channel}/test"), &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    wait_until("the test email arrived", async || {
        smtp.messages().len() == 1
    })
    .await;
    let message = &smtp.messages()[0];
    for to in ["dev@example.org", "bob@example.org"] {
        assert!(message.contains(to), "{to} in {message}");
    }
    assert_eq!(s.settled(1).await[0]["deliveries"][0]["state"], "delivered");

    // Refused: the form comes back as posted, with why; nothing written.
    for (form, why) in [
        (
            vec![
                ("kind", "email"),
                ("name", "Outsiders"),
                ("target", "ops@example.org"),
                ("member", eve_id.as_str()),
            ],
            "must be a member of this organization",
        ),
        (
            vec![
                ("kind", "email"),
                ("name", "Outsiders"),
                ("target", "ops@example.org"),
                ("member", "not-a-user"),
            ],
            "invalid member",
        ),
        (
            vec![("kind", "email"), ("name", "Outsiders"), ("target", "")],
            "an email channel needs an address or a member",
        ),
        (
            vec![
                ("kind", "webhook"),
                ("name", "Outsiders"),
                ("target", "https://example.org/hook"),
                ("member", bob_id.as_str()),
            ],
            "invalid members: are for email channels",
        ),
    ] {
        let (status, body) = post(&format!("{page}/channels"), &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
        assert!(body.contains(why), "{why}: {body}");
        let (kind, target) = (form[0].1, form[2].1);
        for value in ["Outsiders", target] {
            assert!(body.contains(&format!(r#"value="{value}""#)), "{body}");
        }
        assert!(
            body.contains(&format!(r#"value="{kind}" selected"#)),
            "{kind} kept: {body}"
        );
        let bob_ticked = form.iter().any(|(k, v)| *k == "member" && *v == bob_id);
        assert_eq!(
            body.contains(&format!("{bob_box} checked")),
            bob_ticked,
            "{body}"
        );
    }
    assert_eq!(
        t.count("SELECT count(*) FROM notification_channels").await,
        1
    );

    // The API refuses the same with a typed 400.
    let by_api = s
        .dash
        .post(
            &s.path("/channels"),
            admin,
            json!({"kind": "email", "name": "Eve's", "members": [eve_id]}),
        )
        .await;
    assert_eq!(by_api.status, StatusCode::BAD_REQUEST, "{}", by_api.body);
    assert_eq!(by_api.body["error"]["code"], "invalid_input");

    // The edit page ticks the channel's members. Without the address,
    // the member alone is left; then, unticked, the address alone.
    let edit = format!("{page}/channels/{channel}/edit");
    let (status, body) = get(&edit, admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("{bob_box} checked")), "{body}");
    let (status, body) = post(
        &format!("{page}/channels/{channel}"),
        &[("name", "Team"), ("target", ""), ("member", &bob_id)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let listed = channels().await;
    assert_eq!(listed[0].get("addresses"), None, "{}", listed[0]);
    assert_eq!(listed[0]["members"], json!([bob_id]));
    let (status, body) = post(
        &format!("{page}/channels/{channel}"),
        &[("name", "Team"), ("target", "dev@example.org")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let listed = channels().await;
    assert_eq!(listed[0]["addresses"], json!(["dev@example.org"]));
    assert_eq!(listed[0].get("members"), None, "{}", listed[0]);
    let (_, body) = get(&edit, admin).await;
    assert!(body.contains(&bob_box) && !body.contains(&format!("{bob_box} checked")));

    // An outsider ticked on the edit page: refused as posted, unchanged.
    let (status, body) = post(
        &format!("{page}/channels/{channel}"),
        &[
            ("name", "Renamed"),
            ("target", "dev@example.org"),
            ("member", &eve_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("must be a member of this organization"),
        "{body}"
    );
    assert!(body.contains(r#"value="Renamed""#), "{body}");
    let listed = channels().await;
    assert_eq!(listed[0]["name"], "Team");
    assert_eq!(listed[0].get("members"), None, "{}", listed[0]);

    // Bob ticked again, then gone from the organization: the channel no
    // longer emails him, and can still be turned off and renamed.
    let (status, body) = post(
        &format!("{page}/channels/{channel}"),
        &[
            ("name", "Team"),
            ("target", "dev@example.org"),
            ("member", &bob_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let removed = s
        .dash
        .call(
            Method::DELETE,
            &format!("/api/v1/orgs/{}/members/{bob_id}", s.owned.org),
            crate::dashboard::Auth::Bearer(admin),
            None,
        )
        .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT, "{}", removed.body);
    let (status, body) = post(
        &format!("{page}/channels/{channel}/enabled"),
        &[("enabled", "false")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let renamed = s
        .dash
        .call(
            Method::PATCH,
            &format!("/api/v1/projects/{}/channels/{channel}", s.owned.project.id),
            crate::dashboard::Auth::Bearer(admin),
            Some(json!({"name": "Team (old)"})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let listed = channels().await;
    assert_eq!(listed[0]["enabled"], false);
    assert_eq!(listed[0]["name"], "Team (old)");
    // Someone who left cannot be added back by id, though.
    let (status, body) = post(
        &format!("{page}/channels/{channel}"),
        &[("name", "Team"), ("target", ""), ("member", &eve_id)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    s.dash.mesher.shutdown().await.unwrap();
}

/// The alerts page's rule forms as an admin uses them, on a rule made
/// through the API: edited on its page, the API shows the new name,
/// filters and interval, and a bad interval is explained with the form as
/// posted and nothing changed; turned off, an event it would match fires
/// nothing, and turned on again the next new issue it matches fires it; a
/// member may change none of it; deleted, it is gone.
#[actix::test]
async fn a_rule_is_edited_turned_off_and_on_and_deleted_on_its_page_by_admins_only() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let admin = &s.owned.owner;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    let rule = s
        .rule(
            json!({"name": "New errors", "condition": {"type": "new_issue"},
            "channels": [webhook]}),
        )
        .await;
    let alerts = format!("/projects/{}/alerts", s.owned.project.id);
    let (edit, update) = (
        format!("{alerts}/rules/{rule}/edit"),
        format!("{alerts}/rules/{rule}"),
    );
    let (enabled, delete) = (format!("{update}/enabled"), format!("{update}/delete"));
    // The rule as the API lists it, if it does.
    let listed = async || {
        let rules = s.dash.get(&s.path("/alert-rules"), admin).await;
        assert_eq!(rules.status, StatusCode::OK, "{}", rules.body);
        let rules = rules.body["rules"].as_array().unwrap().clone();
        rules.into_iter().find(|r| r["id"] == rule.as_str())
    };

    // The edit page shows the rule as it is.
    let (status, body) = s.page(&edit, admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(field_value(&body, "name"), "New errors");
    assert_eq!(field_value(&body, "action_interval_minutes"), "30");
    assert!(
        body.contains(&format!(r#"value="{webhook}" checked"#)),
        "{body}"
    );

    // Renamed, narrowed to checkout's errors in production, and quieter,
    // with every field of the form posted as a browser posts it.
    let edited = [
        ("name", "Checkout errors"),
        ("condition", "new_issue"),
        ("count", "100"),
        ("window_minutes", "60"),
        ("environments", "production"),
        ("min_level", "error"),
        ("tag_key", "area"),
        ("tag_value", "checkout"),
        ("action_interval_minutes", "5"),
        ("channel", webhook.as_str()),
    ];
    let (status, body) = s.form(&update, admin, &edited).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let saved = listed().await.expect("the rule");
    assert_eq!(saved["name"], "Checkout errors");
    assert_eq!(saved["action_interval_minutes"], 5);
    assert_eq!(
        saved["filters"],
        json!({"environments": ["production"], "min_level": "error",
            "tag": {"key": "area", "value": "checkout"}})
    );
    assert_eq!(saved["channels"], json!([webhook]));
    assert_eq!(saved["enabled"], true);
    let (_, body) = s.page(&edit, admin).await;
    assert_eq!(field_value(&body, "name"), "Checkout errors");
    assert_eq!(field_value(&body, "action_interval_minutes"), "5");
    assert_eq!(field_value(&body, "tag_value"), "checkout");

    // A bad interval: the form again as posted, with why; nothing changed.
    let with_interval = |interval| {
        edited.map(|(key, value)| match key {
            "name" => (key, "Renamed again"),
            "action_interval_minutes" => (key, interval),
            _ => (key, value),
        })
    };
    for (interval, why) in [
        (
            "0",
            "invalid action_interval_minutes: must be from 1 minute to 30 days (43200)",
        ),
        (
            "soon",
            "invalid action_interval_minutes: must be a whole number",
        ),
    ] {
        let (status, body) = s.form(&update, admin, &with_interval(interval)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{interval}: {body}");
        assert!(body.contains(why), "{why}: {body}");
        assert_eq!(field_value(&body, "name"), "Renamed again");
        assert_eq!(field_value(&body, "action_interval_minutes"), interval);
        assert_eq!(listed().await.as_ref(), Some(&saved), "{interval}");
    }

    // As edited, it fires for checkout's new issue and not for another.
    let checkout = |message| Sent {
        tags: vec![("area", "checkout")],
        ..error(message)
    };
    let dsn = &s.owned.project.dsn;
    send(dsn, vec![error("Search fails"), checkout("Checkout fails")]).await;
    wait_until("two issues exist", async || {
        t.count("SELECT count(*) FROM issues").await == 2
    })
    .await;
    assert_eq!(s.settled(1).await[0]["rule_id"], rule.as_str());
    let notice = receiver.requests()[0].json();
    assert_eq!(notice["rule"]["name"], "Checkout errors");
    assert_eq!(notice["issue"]["title"], "Checkout fails");

    // Turned off, it fires nothing for a new issue it matches. The alerts a
    // new issue fires are written in the transaction that makes the issue:
    // once the issue exists, any alert would too.
    let (status, body) = s.form(&enabled, admin, &[("enabled", "false")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(listed().await.unwrap()["enabled"], false);
    send(dsn, vec![checkout("Checkout fails while off")]).await;
    wait_until("the third issue exists", async || {
        t.count("SELECT count(*) FROM issues").await == 3
    })
    .await;
    assert_eq!(s.history().await.len(), 1, "a rule turned off fired");

    // Turned on again, it fires for the next.
    let (status, body) = s.form(&enabled, admin, &[("enabled", "true")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(listed().await.unwrap()["enabled"], true);
    send(dsn, vec![checkout("Checkout fails again")]).await;
    s.settled(2).await;
    let titles: Vec<Value> = receiver
        .requests()
        .iter()
        .map(|r| r.json()["issue"]["title"].clone())
        .collect();
    assert_eq!(titles, ["Checkout fails", "Checkout fails again"]);

    // A member sees the alerts page but may not edit, turn off or delete a
    // rule, not even to be told what is wrong with a bad value.
    let member = s.dash.user("bob@example.org").await;
    s.add_member("bob@example.org").await;
    let before = listed().await;
    let (status, _) = s.page(&alerts, &member).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.page(&edit, &member).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (path, form) in [
        (&update, edited.to_vec()),
        (&update, with_interval("0").to_vec()),
        (&enabled, vec![("enabled", "false")]),
        (&delete, vec![]),
    ] {
        let (status, body) = s.form(path, &member, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} {form:?}: {body}");
    }
    assert_eq!(listed().await, before, "a member changed the rule");

    // Deleted, it is gone from the API and the page.
    let (status, body) = s.form(&delete, admin, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(listed().await, None);
    let patched = s
        .dash
        .call(
            Method::PATCH,
            &s.path(&format!("/alert-rules/{rule}")),
            crate::dashboard::Auth::Bearer(admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::NOT_FOUND, "{}", patched.body);
    let (status, body) = s.page(&alerts, admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("Checkout errors"), "{body}");
    assert_eq!(s.page(&edit, admin).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        s.form(&enabled, admin, &[("enabled", "true")]).await.0,
        StatusCode::NOT_FOUND
    );
    s.dash.mesher.shutdown().await.unwrap();
}

/// The real binary, killed with SIGKILL after it stored a new issue and
/// while its webhook was on the wire (the receiver held the request
/// unanswered): after a restart the notification goes out, with the same
/// delivery id, once its claim has run out.
#[test]
fn a_notification_cut_off_by_sigkill_goes_out_after_a_restart() {
    use crate::binary::{free_port, log_lines, mesher, wait_for_line};
    // The receiver runs on this runtime: it answers while the test waits
    // in `block_on`, and connections queue in its backlog meanwhile.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(TestDb::new());
    let receiver = rt.block_on(Receiver::start());
    receiver.answer.store(ANSWER_NEVER, Ordering::SeqCst);
    let addr = format!("127.0.0.1:{}", free_port());
    let start = || {
        let mut child = mesher(&t.url)
            .env("MESHER_HTTP_ADDR", &addr)
            .env("MESHER_SPOOL_DIR", t.spool_dir())
            .env("MESHER_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("MESHER_NOTIFIER_LEASE_SECS", "1")
            .env("MESHER_NOTIFIER_POLL_MS", "100")
            .env("MESHER_WRITER_FLUSH_MS", "100")
            .spawn()
            .expect("start mesher");
        let lines = log_lines(&mut child);
        wait_for_line(&lines, "ready");
        (child, lines)
    };
    let (mut first, _lines) = start();

    // An owner, a project, a webhook and a new-issue rule, through the API.
    // reqwest is built without a default TLS provider (Mesher gives it
    // its own configuration); this plain-HTTP client needs one to exist.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api/v1");
    let call = |path: String, token: Option<String>, body: Value| {
        let (http, base) = (http.clone(), base.clone());
        rt.block_on(async move {
            let mut request = http
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.expect("the API answers");
            assert!(
                response.status().is_success(),
                "{path}: {}",
                response.status()
            );
            serde_json::from_slice::<Value>(&response.bytes().await.expect("a body")).expect("JSON")
        })
    };
    call(
        "/auth/register".into(),
        None,
        json!({"email": "ops@example.org", "password": "correct horse", "display_name": "Ops"}),
    );
    let token = call(
        "/auth/login".into(),
        None,
        json!({"email": "ops@example.org", "password": "correct horse"}),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let org = call(
        "/orgs".into(),
        Some(token.clone()),
        json!({"name": "Acme", "slug": "acme"}),
    );
    let project = call(
        format!("/orgs/{}/projects", org["id"].as_str().unwrap()),
        Some(token.clone()),
        json!({"name": "web", "platform": "python"}),
    );
    let project_id = project["id"].as_str().unwrap();
    let channel = call(
        format!("/projects/{project_id}/channels"),
        Some(token.clone()),
        json!({"kind": "webhook", "name": "Receiver", "url": receiver.url("/hook")}),
    );
    call(
        format!("/projects/{project_id}/alert-rules"),
        Some(token.clone()),
        json!({"name": "New", "condition": {"type": "new_issue"}, "channels": [channel["id"]]}),
    );

    let dsn = project["key"]["dsn"].as_str().unwrap().to_owned();
    rt.block_on(send(&dsn, vec![error("Killed mid-send")]));
    rt.block_on(wait_until("the webhook is on the wire", async || {
        receiver.requests().len() == 1
    }));
    first.kill().expect("SIGKILL");
    first.wait().unwrap();
    assert_eq!(
        rt.block_on(t.count("SELECT count(*) FROM alert_deliveries WHERE state = 'pending'")),
        1,
        "the delivery outlived the process, unsent"
    );

    receiver.answer.store(ANSWER_OK, Ordering::SeqCst);
    let (mut second, _lines) = start();
    rt.block_on(wait_until("the webhook is sent again", async || {
        receiver.requests().len() == 2
    }));
    rt.block_on(wait_until("it is recorded as delivered", async || {
        t.count("SELECT count(*) FROM alert_deliveries WHERE state = 'delivered'")
            .await
            == 1
    }));
    let requests = receiver.requests();
    assert_eq!(
        requests[0].header("x-mesher-delivery"),
        requests[1].header("x-mesher-delivery"),
        "the same delivery id, for the receiver to drop a repeat"
    );
    assert_eq!(rt.block_on(t.count("SELECT count(*) FROM alerts")), 1);
    let status = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(second.wait().unwrap().success());
}

/// In a real headless Chromium: log in, add a webhook channel and a
/// new-issue rule through the alerts page's forms, send an error with the
/// `sentry` crate, and see the delivery in the history.
#[actix::test]
async fn a_rule_made_in_the_browser_notifies_and_the_history_shows_the_delivery() {
    use crate::browser::{Browser, DESKTOP, PHONE};
    use fantoccini::Locator;
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let base = format!("http://{}", s.dash.mesher.http_addr);
    let browser = Browser::start("alerts").await;
    let client = &browser.client;
    let fill = async |css: &str, text: &str| {
        client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    };
    let click = async |css: &str| {
        client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    };

    client.goto(&format!("{base}/login")).await.unwrap();
    fill("#email", "ann@example.org").await;
    fill("#password", "correct horse").await;
    click("main button[type=submit]").await;
    wait_until("the projects page", async || {
        client.title().await.unwrap().starts_with("Projects")
    })
    .await;
    let alerts = format!("{base}/projects/{}/alerts", s.owned.project.id);
    client.goto(&alerts).await.unwrap();
    assert!(client.title().await.unwrap().starts_with("Alerts"));

    fill("#channel-name", "Receiver").await;
    fill("#channel-target", &receiver.url("/hook")).await;
    click(".channel-form button[type=submit]").await;
    wait_until("the new webhook's secret is shown", async || {
        client
            .source()
            .await
            .unwrap()
            .contains("Signing secret of Receiver")
    })
    .await;
    let secret = client
        .find(Locator::Css("#secret"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .expect("the secret");
    assert!(secret.starts_with("whsec_"));

    fill("#rule-name", "New errors").await;
    click(".rule-form input[name=channel]").await;
    click(".rule-form button[type=submit]").await;
    wait_until("the rule is listed", async || {
        match client.find(Locator::Css("table.rules")).await {
            Ok(table) => table.text().await.unwrap().contains("New errors"),
            Err(_) => false,
        }
    })
    .await;

    send(
        &s.owned.project.dsn,
        vec![error("ZeroDivisionError: division by zero")],
    )
    .await;
    wait_until("the webhook arrived", async || {
        receiver.requests().len() == 1
    })
    .await;
    let request = &receiver.requests()[0];
    assert_eq!(
        request.header("x-mesher-signature"),
        mesher::domain::notice::signature(&secret, &request.body)
    );

    client.goto(&format!("{alerts}/history")).await.unwrap();
    wait_until("the history shows it delivered", async || {
        client.refresh().await.unwrap();
        match client.find(Locator::Css(".history .delivery-state")).await {
            Ok(state) => state.text().await.unwrap() == "delivered",
            Err(_) => false,
        }
    })
    .await;
    let row = client
        .find(Locator::Css(".history tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for shown in ["New errors", "New issue", "ZeroDivisionError", "Receiver"] {
        assert!(row.contains(shown), "{shown} in {row}");
    }
    for (size, name) in [(DESKTOP, "history-desktop"), (PHONE, "history-phone")] {
        browser.resize(size).await;
        assert!(
            !browser.overflows_horizontally().await,
            "the history is wider than {size:?}"
        );
        browser.screenshot(name).await;
    }
    // The issue's page lists the alert it caused.
    let issue = request.json()["issue"]["id"].as_str().unwrap().to_owned();
    client
        .goto(&format!(
            "{base}/projects/{}/issues/{issue}",
            s.owned.project.id
        ))
        .await
        .unwrap();
    let listed = client
        .find(Locator::Css("section.alerts"))
        .await
        .expect("the issue page's alerts")
        .text()
        .await
        .unwrap();
    for shown in ["New errors", "New issue", "Receiver delivered"] {
        assert!(listed.contains(shown), "{shown} in {listed}");
    }

    // The channel renamed on its edit page (its URL, left empty, stays),
    // then tested: the test goes out to the same receiver.
    client.goto(&alerts).await.unwrap();
    click("a[aria-label='Edit channel Receiver']").await;
    wait_until("the channel's edit page", async || {
        client.title().await.unwrap().starts_with("Edit Receiver")
    })
    .await;
    client
        .find(Locator::Css("#channel-name"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    fill("#channel-name", "Team hook").await;
    click(".channel-edit button[type=submit]").await;
    wait_until("the channel is listed renamed", async || {
        match client.find(Locator::Css("table.channels")).await {
            Ok(table) => table.text().await.unwrap().contains("Team hook"),
            Err(_) => false,
        }
    })
    .await;
    click("button[aria-label='Send a test notification to Team hook']").await;
    wait_until("the test arrived", async || receiver.requests().len() == 2).await;
    assert_eq!(receiver.requests()[1].json()["reason"], "test");

    client.goto(&alerts).await.unwrap();
    for (size, name) in [(DESKTOP, "alerts-desktop"), (PHONE, "alerts-phone")] {
        browser.resize(size).await;
        assert!(
            !browser.overflows_horizontally().await,
            "the alerts page is wider than {size:?}"
        );
        browser.screenshot(name).await;
    }
    browser.close().await;
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn an_archived_issue_that_comes_back_by_itself_fires_an_unarchived_rule() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(
        json!({"name": "It is back", "condition": {"type": "unarchived"},
        "channels": [webhook]}),
    )
    .await;
    let dsn = &s.owned.project.dsn;
    // Archived until 3 more events (its count is then 4).
    let issue = s
        .archived_issue(&t, "Quiet for now", json!({"count": 3}))
        .await;
    send(dsn, vec![error("Quiet for now")]).await;
    wait_until("2 events stored", async || {
        t.count("SELECT count(*) FROM events").await == 2
    })
    .await;
    assert!(s.history().await.is_empty(), "still archived");
    send(dsn, (0..3).map(|_| error("Quiet for now")).collect()).await;
    let history = s.settled(1).await;
    assert_eq!(history[0]["reason"], "unarchived");
    assert_eq!(history[0]["issue_id"], issue.as_str());
    assert_eq!(receiver.requests()[0].json()["reason"], "unarchived");
    s.dash.mesher.shutdown().await.unwrap();
}

#[actix::test]
async fn an_issue_archived_for_a_while_fires_the_unarchived_rule_when_its_time_has_passed() {
    let t = TestDb::new().await;
    let s = Setup::start(&t, |_| {}).await;
    let receiver = Receiver::start().await;
    let (webhook, _) = s.webhook(&receiver).await;
    s.rule(
        json!({"name": "Back in production", "condition": {"type": "unarchived"},
        "filters": {"environments": ["production"]}, "channels": [webhook]}),
    )
    .await;
    // Its filter holds: the issue's events are production's, not staging's.
    s.rule(
        json!({"name": "Back in staging", "condition": {"type": "unarchived"},
        "filters": {"environments": ["staging"]}, "channels": [webhook]}),
    )
    .await;
    let issue = s
        .archived_issue(&t, "Snoozed", json!({"minutes": 60}))
        .await;
    let woken = s
        .dash
        .mesher
        .issues
        .send(mesher::services::WakeArchivedIssues)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(woken, 0, "its hour has not passed");

    // The hour passes, with no event: the sweep brings it back, and that
    // is what the rule is about.
    t.execute("UPDATE issues SET archived_until = now() - interval '1 second'")
        .await;
    let woken = s
        .dash
        .mesher
        .issues
        .send(mesher::services::WakeArchivedIssues)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(woken, 1);
    let history = s.settled(1).await;
    assert_eq!(history[0]["reason"], "unarchived");
    assert_eq!(history[0]["issue_id"], issue.as_str());
    let sent = receiver.requests()[0].json();
    assert_eq!(sent["reason"], "unarchived");
    assert_eq!(sent["rule"]["name"], "Back in production");
    assert_eq!(sent["issue"]["status"], "unresolved");
    assert_eq!(
        s.metrics()
            .counter_with("alerts_fired", "condition", "unarchived"),
        1
    );
    s.dash.mesher.shutdown().await.unwrap();
}
