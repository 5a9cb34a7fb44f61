use super::*;
use crate::domain::grouping::tests::fixture;
use serde_json::json;
use std::collections::BTreeMap;

const FIXTURES: [&str; 8] = [
    "python_exception",
    "python_message",
    "python_logging",
    "javascript_exception",
    "javascript_message",
    "rust_error",
    "rust_message",
    "rust_panic",
];

fn payload(message: &str) -> EventPayload {
    EventPayload {
        message: Some(message.into()),
        ..Default::default()
    }
}

fn from_json(json: &Value) -> Result<Event> {
    Event::from_json(Uuid::now_v7(), json.to_string().as_bytes())
}

/// What an event page shows of `e`, read back from its stored body.
fn parts(e: &Event) -> EventParts {
    e.parts().unwrap()
}

fn decode(raw: Option<&RawJson>) -> Value {
    raw.map(|r| r.decode().unwrap()).unwrap_or(Value::Null)
}

/// `json` without its `null` object fields, which stored parts leave out.
fn without_nulls(json: &Value) -> Value {
    match json {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn is_invalid(result: Result<Event>, want: &str) -> bool {
    matches!(result, Err(Error::InvalidInput { field, .. }) if field == want)
}

#[test]
fn ids_come_from_the_sdk_or_are_assigned() {
    let project = Uuid::now_v7();
    let sent = from_json(&json!({"event_id": "fc6d8c0c43fc4630ad850ee518f1b9d0"})).unwrap();
    assert_eq!(
        sent.id().simple().to_string(),
        "fc6d8c0c43fc4630ad850ee518f1b9d0"
    );
    let hyphenated =
        from_json(&json!({"event_id": "fc6d8c0c-43fc-4630-ad85-0ee518f1b9d0"})).unwrap();
    assert_eq!(hyphenated.id(), sent.id());
    let assigned = Event::from_payload(project, payload("boom")).unwrap();
    assert_eq!(assigned.id().get_version_num(), 7);
    assert_eq!(assigned.project_id(), project);
    let nil = from_json(&json!({"event_id": "00000000000000000000000000000000"})).unwrap();
    assert_eq!(nil.id().get_version_num(), 7);
    assert!(is_invalid(
        from_json(&json!({"event_id": "12"})),
        "event_id"
    ));
}

#[test]
fn levels_default_to_error_and_unknown_ones_are_refused() {
    let level = |l: Value| from_json(&json!({"level": l}));
    assert_eq!(from_json(&json!({})).unwrap().level(), Severity::Error);
    assert_eq!(level(json!("warn")).unwrap().level(), Severity::Warning);
    assert_eq!(level(json!("CRITICAL")).unwrap().level(), Severity::Fatal);
    assert_eq!(level(json!(null)).unwrap().level(), Severity::Error);
    assert!(is_invalid(level(json!("severe")), "level"));
    assert!(is_invalid(level(json!({})), "level"));
}

#[test]
fn occurrence_times() {
    let received = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .to_utc();
    let at = |timestamp: Value| {
        let p = EventPayload::from_json(json!({"timestamp": timestamp}).to_string().as_bytes())
            .unwrap();
        Event::from_payload_received_at(Uuid::now_v7(), p, received)
            .unwrap()
            .occurred_at()
    };
    assert_eq!(
        at(json!("2026-03-01T11:00:00Z")).to_rfc3339(),
        "2026-03-01T11:00:00+00:00"
    );
    assert_eq!(at(json!(1772362800.5)).timestamp_subsec_millis(), 500);
    assert_eq!(at(json!(null)), received);
    assert_eq!(
        at(json!("2026-03-01T12:00:59Z")).timestamp(),
        received.timestamp() + 59
    );
    assert_eq!(at(json!("2026-03-01T12:05:00Z")), received, "a clock ahead");
    let e = Event::from_payload_received_at(Uuid::now_v7(), payload("x"), received).unwrap();
    assert_eq!(e.received_at(), received);
}

#[test]
fn messages_titles_and_events_with_neither() {
    let exception =
        from_json(&json!({"exception": [{"type": "TypeError", "value": "x is undefined"}]}))
            .unwrap();
    assert_eq!(parts(&exception).message(), "TypeError: x is undefined");
    assert_eq!(exception.title(), "TypeError: x is undefined");
    let neither = from_json(&json!({"level": "info"})).unwrap();
    assert_eq!(parts(&neither).message(), "<unlabeled event>");
    assert_eq!(neither.title(), "<unlabeled event>");
    assert_eq!(neither.fingerprint().len(), 64);
    let both = from_json(&json!({
        "message": "checkout failed\nfor cart 17",
        "exception": [{"type": "E", "value": "v"}],
    }))
    .unwrap();
    assert_eq!(parts(&both).message(), "checkout failed\nfor cart 17");
    assert_eq!(both.title(), "E: v");
}

#[test]
fn json_parts_are_normalized() {
    let e = from_json(&json!({
        "exception": [{"type": "E", "value": "v", "stacktrace": {"frames": [{"function": "f", "lineno": 3}]}}],
        "threads": {"values": [{"id": 1, "crashed": true, "stacktrace": [{"function": "t"}]}]},
        "breadcrumbs": {"values": [{"timestamp": 1304358096, "message": "b"}]},
        "tags": [["env", "prod"], ["n", 5]],
        "extra": {"k": [1, 2]},
        "user": {"id": 42, "ip_address": "{{auto}}"},
        "contexts": {"os": {"name": "Linux"}},
        "request": {"url": "http://x/"},
        "sdk": {"name": "sentry.python", "version": "2.75.0", "integrations": ["logging"]},
        "logentry": {"message": "a %s", "params": ["b"]},
        "server_name": "web-1", "dist": "7", "logger": "app", "modules": {"django": "5.0"},
        "fingerprint": ["{{ default }}", "x"],
        "release": " shop@1.2.3 ", "environment": "", "platform": "python",
        "transaction": "/checkout",
        "_meta": {"x": {"": {"rem": []}}},
    }))
    .unwrap();
    let exception = decode(parts(&e).exception());
    assert_eq!(
        exception["values"][0]["stacktrace"]["frames"][0]["lineno"],
        3
    );
    assert_eq!(
        decode(parts(&e).stacktrace()),
        json!({"frames": [{"function": "t"}]})
    );
    assert_eq!(decode(parts(&e).breadcrumbs())[0]["message"], "b");
    assert_eq!(
        decode(parts(&e).breadcrumbs())[0]["timestamp"],
        "2011-05-02T17:41:36Z"
    );
    let tags: BTreeMap<String, String> = parts(&e).tags().decode().unwrap();
    assert_eq!(tags["n"], "5");
    assert_eq!(decode(Some(parts(&e).extra())), json!({"k": [1, 2]}));
    assert_eq!(decode(parts(&e).user())["id"], 42);
    assert_eq!(decode(parts(&e).contexts())["os"]["name"], "Linux");
    assert_eq!(decode(parts(&e).request())["url"], "http://x/");
    assert_eq!(parts(&e).sdk_name(), Some("sentry.python"));
    assert_eq!(parts(&e).sdk_version(), Some("2.75.0"));
    assert_eq!(e.release(), Some("shop@1.2.3"));
    assert_eq!(e.environment(), None);
    assert_eq!(parts(&e).platform(), Some("python"));
    assert_eq!(parts(&e).transaction(), Some("/checkout"));
    let other = decode(parts(&e).other());
    for key in [
        "logentry",
        "threads",
        "server_name",
        "dist",
        "logger",
        "modules",
        "_meta",
    ] {
        assert!(other.get(key).is_some(), "{key} kept in other: {other}");
    }
    assert_eq!(other["fingerprint"], json!(["{{ default }}", "x"]));
    assert_eq!(other["sdk"]["integrations"], json!(["logging"]));
    assert_eq!(other["threads"]["values"][0]["id"], 1);
    for key in [
        "exception",
        "tags",
        "extra",
        "user",
        "release",
        "event_id",
        "level",
    ] {
        assert!(other.get(key).is_none(), "{key} has its own getter");
    }
}

#[test]
fn the_first_native_api_shapes_still_read() {
    let e = from_json(&json!({
        "message": "Ошибка 💥 ' ; --", "level": "warning", "tags": {"env": "prod"},
        "exception": {"type": "E", "value": "v"},
        "stacktrace": [{"filename": "a.py", "function": "f", "lineno": 3, "in_app": true}],
    }))
    .unwrap();
    assert_eq!(parts(&e).message(), "Ошибка 💥 ' ; --");
    assert_eq!(e.title(), "E: v");
    assert_eq!(e.culprit(), Some("a.py in f"));
    assert_eq!(decode(parts(&e).exception())["values"][0]["value"], "v");
    assert_eq!(decode(parts(&e).stacktrace())["frames"][0]["lineno"], 3);
}

#[test]
fn empty_parts() {
    let e = from_json(&json!({"message": "m", "breadcrumbs": {"values": []}, "exception": []}))
        .unwrap();
    assert_eq!(parts(&e).tags().get(), "{}");
    assert_eq!(parts(&e).extra().get(), "{}");
    assert!(parts(&e).breadcrumbs().is_none());
    assert!(parts(&e).exception().is_none());
    assert!(parts(&e).stacktrace().is_none());
    assert!(parts(&e).other().is_none());
    assert!(parts(&e).user().is_none());
    assert!(e.culprit().is_none());
    let sdk_only = from_json(&json!({"sdk": {"name": "n", "version": "1"}})).unwrap();
    assert!(
        parts(&sdk_only).other().is_none(),
        "name and version have getters"
    );
}

#[test]
fn events_over_one_mebibyte_are_refused() {
    let big = payload(&"x".repeat(MAX_EVENT_BYTES));
    assert!(matches!(
        Event::from_payload(Uuid::now_v7(), big),
        Err(Error::InvalidInput {
            field: "event",
            rule: "must be at most 1 MiB"
        })
    ));
    assert!(
        Event::from_payload(
            Uuid::now_v7(),
            payload(&"x".repeat(MAX_EVENT_BYTES / 2 - 1000))
        )
        .is_ok()
    );
    let raw = vec![b' '; MAX_EVENT_BYTES + 1];
    assert!(matches!(
        Event::from_json(Uuid::now_v7(), &raw),
        Err(Error::InvalidInput { field: "event", .. })
    ));
    assert!(matches!(
        Event::from_json(Uuid::now_v7(), b"{not json"),
        Err(Error::InvalidInput { field: "event", .. })
    ));
}

#[test]
fn nul_characters_are_refused_in_columns_and_kept_in_the_body() {
    let refused = [
        (r#"{"message": "a\u0000b"}"#, "event"),
        (r#"{"exception": [{"type": "E\u0000"}]}"#, "event"),
        (r#"{"release": "1\u0000"}"#, "release"),
        (r#"{"environment": "\u0000"}"#, "environment"),
    ];
    for (json, field) in refused {
        assert!(
            is_invalid(Event::from_json(Uuid::now_v7(), json.as_bytes()), field),
            "{json}"
        );
    }
    assert!(is_invalid(
        Event::from_payload(Uuid::now_v7(), payload("nul\0here")),
        "event"
    ));
    // Where no column holds it, the body keeps it as sent.
    let kept = [
        r#"{"message": "m", "extra": {"k\u0000": 1}}"#,
        r#"{"message": "m", "tags": {"k": "a\u0000b"}}"#,
        r#"{"message": "m", "unknown": ["\u0000"]}"#,
        r#"{"message": "m", "breadcrumbs": [{"message": "\u0000"}]}"#,
    ];
    for json in kept {
        let e = Event::from_json(Uuid::now_v7(), json.as_bytes()).unwrap();
        let parts = parts(&e);
        let all = [parts.extra().get(), parts.tags().get()]
            .into_iter()
            .chain(parts.other().map(RawJson::get))
            .chain(parts.breadcrumbs().map(RawJson::get))
            .collect::<String>();
        assert!(all.contains("\\u0000"), "{json}: {all}");
    }
    // A tag value that cannot be one is left out of the tags, as Sentry
    // does: the event is kept, and its user still reads in the body.
    let nameless = Event::from_json(Uuid::now_v7(), br#"{"user": {"id": "\u0000"}}"#).unwrap();
    assert_eq!(nameless.user_key(), None);
    assert!(parts(&nameless).user().is_some());
    let literal = r"C:\path\u0000 is text, not NUL";
    let e = Event::from_payload(Uuid::now_v7(), payload(literal)).unwrap();
    assert_eq!(parts(&e).message(), literal);
    let sql = "'; DROP TABLE events; -- Ошибка 💥";
    let e = Event::from_payload(Uuid::now_v7(), payload(sql)).unwrap();
    assert_eq!(parts(&e).message(), sql);
}

#[test]
fn sdk_events_become_events() {
    let cases = [
        (
            "python_exception",
            Severity::Error,
            "KeyError: 17",
            Some("__main__ in load_user"),
            "sentry.python",
        ),
        (
            "python_message",
            Severity::Info,
            "user 17 not found",
            Some("__main__ in <module>"),
            "sentry.python",
        ),
        (
            "python_logging",
            Severity::Error,
            "user 4 not found",
            Some("__main__ in <module>"),
            "sentry.python",
        ),
        (
            "javascript_exception",
            Severity::Error,
            "TypeError: Cannot read properties of undefined (reading 'items')",
            Some("app.js in renderCart"),
            "sentry.javascript.browser",
        ),
        (
            "javascript_message",
            Severity::Info,
            "user 17 not found",
            Some("app.js in reportMissingUser"),
            "sentry.javascript.browser",
        ),
        (
            "rust_error",
            Severity::Error,
            "ParseIntError: invalid digit found in string",
            None,
            "sentry.rust",
        ),
        (
            "rust_message",
            Severity::Warning,
            "user 17 not found",
            None,
            "sentry.rust",
        ),
        (
            "rust_panic",
            Severity::Fatal,
            "panic: index out of bounds: the len is 0 but the index is 3",
            None,
            "sentry.rust",
        ),
    ];
    for (name, level, title, culprit, sdk) in cases {
        let json = fixture(name);
        let e = from_json(&json).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(e.id().simple().to_string(), json["event_id"], "{name}");
        assert_eq!(e.level(), level, "{name}");
        assert_eq!(e.title(), title, "{name}");
        if culprit.is_some() {
            assert_eq!(e.culprit(), culprit, "{name}");
        }
        assert_eq!(parts(&e).sdk_name(), Some(sdk), "{name}");
        assert!(
            e.release().is_some() && e.environment() == Some("production"),
            "{name}"
        );
        assert!(e.occurred_at() <= e.received_at(), "{name}");
        assert!(parts(&e).contexts().is_some(), "{name}");
        let has_exception = json.get("exception").is_some();
        assert_eq!(parts(&e).exception().is_some(), has_exception, "{name}");
        // What came in is what an event page gets back (nulls aside).
        if has_exception {
            let values = &decode(parts(&e).exception())["values"];
            assert_eq!(
                values,
                &without_nulls(&json["exception"]["values"]),
                "{name}"
            );
        }
    }
    let crumbs = from_json(&fixture("javascript_message")).unwrap();
    assert_eq!(
        decode(parts(&crumbs).breadcrumbs())[1]["event_id"],
        "5be2ec156db8440a82d73a8196544f8c"
    );
    let rust = from_json(&fixture("rust_message")).unwrap();
    assert!(
        decode(parts(&rust).stacktrace())["frames"]
            .as_array()
            .unwrap()
            .len()
            > 10
    );
}

#[test]
fn a_spooled_batch_reads_back_as_it_was() {
    let project = Uuid::now_v7();
    let events: Vec<Event> = FIXTURES
        .iter()
        .map(|name| Event::from_json(project, fixture(name).to_string().as_bytes()).unwrap())
        .collect();
    let bytes = Event::encode_batch(&events).unwrap();
    assert_eq!(Event::decode_batch(project, &bytes).unwrap(), events);
    assert!(
        Event::decode_batch(Uuid::now_v7(), &bytes).is_err(),
        "another project's"
    );
    assert!(Event::decode_batch(project, &bytes[..bytes.len() / 2]).is_err());
}

/// A batch an earlier release spooled (JSON, every part of an event its
/// own JSON; this one written by the release before bodies) is replayed
/// with the same event: its id, times, grouping and parts.
#[test]
fn a_batch_spooled_by_an_earlier_release_reads_back() {
    let legacy = include_bytes!("../fixtures/spooled_batch_before_bodies.json");
    let project: Uuid = "019ae5e4-1e4c-7d23-9f7b-3c1d6f0a2b11".parse().unwrap();
    let events = Event::decode_batch(project, legacy).unwrap();
    let expected =
        Event::from_json(project, fixture("python_exception").to_string().as_bytes()).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.id(), expected.id());
    assert_eq!(e.fingerprint(), expected.fingerprint());
    assert_eq!(e.title(), expected.title());
    assert_eq!(e.release(), expected.release());
    let (got, want) = (parts(e), parts(&expected));
    assert_eq!(got.message(), want.message());
    assert_eq!(got.exception(), want.exception());
    assert_eq!(got.tags(), want.tags());
    assert_eq!(got.contexts(), want.contexts());
    assert_eq!(got.sdk_name(), want.sdk_name());
}

#[test]
fn no_input_panics() {
    // Every prefix of real events, and each with bytes swapped for the
    // characters that change JSON's structure: errors, never panics.
    for name in FIXTURES {
        let text = fixture(name).to_string();
        let bytes = text.as_bytes();
        let step = (bytes.len() / 80).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let _ = Event::from_json(Uuid::now_v7(), &bytes[..cut]);
            for b in [b'"', b'{', b'[', b'0', b'\\', b'n', b':', b',', 0xff] {
                let mut broken = bytes.to_vec();
                broken[cut] = b;
                let _ = Event::from_json(Uuid::now_v7(), &broken);
            }
        }
    }
    let deep = "[".repeat(100_000);
    assert!(Event::from_json(Uuid::now_v7(), format!(r#"{{"extra": {deep}"#).as_bytes()).is_err());
    let deep_values = r#"{"values": "#.repeat(5_000);
    assert!(
        Event::from_json(
            Uuid::now_v7(),
            format!(r#"{{"exception": {deep_values}"#).as_bytes()
        )
        .is_err()
    );
}

/// Hands each event the sentry crate sends to the test, as the JSON an
/// envelope carries.
struct Capture(std::sync::Mutex<Vec<String>>);

impl sentry::Transport for Capture {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        if let Some(event) = envelope.event() {
            let json = serde_json::to_string(event).unwrap();
            self.0.lock().unwrap().push(json);
        }
    }
}

#[test]
fn the_sentry_crate_as_it_is_today() {
    // The fixtures are one version of each SDK; this one follows the
    // version in Cargo.toml, so an upgrade that changes its shapes shows.
    use std::sync::Arc;
    let capture = Arc::new(Capture(Default::default()));
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some("http://public@127.0.0.1:9/1".parse().unwrap());
    options.transport = Some(Arc::new(capture.clone()));
    options.attach_stacktrace = true;
    options.release = Some("billing@1.0.0".into());
    let client = Arc::new(sentry::Client::from(sentry::apply_defaults(options)));
    let hub = sentry::Hub::new(Some(client.clone()), Default::default());
    let error = "80a".parse::<u16>().unwrap_err();
    let error_id = hub.capture_error(&error);
    let first = hub.capture_message("user 17 not found", sentry::Level::Warning);
    let second = hub.capture_message("user 4 not found", sentry::Level::Warning);
    client.flush(None);

    let sent = capture.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 3);
    let events: Vec<Event> = sent
        .iter()
        .map(|json| Event::from_json(Uuid::now_v7(), json.as_bytes()).unwrap())
        .collect();
    assert_eq!(events[0].id(), error_id);
    assert_eq!(events[0].level(), Severity::Error);
    assert_eq!(
        events[0].title(),
        "ParseIntError: invalid digit found in string"
    );
    assert_eq!(events[0].release(), Some("billing@1.0.0"));
    assert_eq!(parts(&events[0]).sdk_name(), Some("sentry.rust"));
    assert_eq!(events[1].id(), first);
    assert_eq!(events[2].id(), second);
    assert_eq!(events[1].level(), Severity::Warning);
    assert!(
        parts(&events[1]).stacktrace().is_some(),
        "attach_stacktrace"
    );
    assert_eq!(events[1].fingerprint(), events[2].fingerprint());
    assert_ne!(events[0].fingerprint(), events[1].fingerprint());
}
