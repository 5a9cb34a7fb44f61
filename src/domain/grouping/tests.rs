use super::*;
use serde_json::{Value, json};

/// Events exactly as the SDKs sent them, captured from sentry-python
/// 2.75 (`capture_exception`, `capture_message`, a `logging` error),
/// @sentry/browser 11.12 (`captureException`, `captureMessage` with its
/// synthetic stack trace) and the sentry crate 0.49 (`capture_error`,
/// `capture_message`, a panic).
pub(crate) fn fixture(name: &str) -> Value {
    let text = match name {
        "python_exception" => include_str!("../event/fixtures/python_exception.json"),
        "python_message" => include_str!("../event/fixtures/python_message.json"),
        "python_logging" => include_str!("../event/fixtures/python_logging.json"),
        "javascript_exception" => include_str!("../event/fixtures/javascript_exception.json"),
        "javascript_message" => include_str!("../event/fixtures/javascript_message.json"),
        "rust_error" => include_str!("../event/fixtures/rust_error.json"),
        "rust_message" => include_str!("../event/fixtures/rust_message.json"),
        "rust_panic" => include_str!("../event/fixtures/rust_panic.json"),
        _ => panic!("no fixture {name}"),
    };
    serde_json::from_str(text).unwrap()
}

fn payload(json: &Value) -> EventPayload {
    EventPayload::from_json(json.to_string().as_bytes()).unwrap()
}

fn fp(json: &Value) -> String {
    fingerprint(&payload(json))
}

fn frame(place: &str, function: &str) -> Component {
    Component::Frame {
        place: place.into(),
        function: function.into(),
    }
}

fn ty(kind: &str) -> Component {
    Component::ExceptionType(kind.into())
}

fn msg(text: &str) -> Component {
    Component::Message(text.into())
}

/// The frames of the raised exception of a fixture, to edit.
fn frames_mut(event: &mut Value) -> &mut Vec<Value> {
    let values = event["exception"]["values"].as_array_mut().unwrap();
    values.last_mut().unwrap()["stacktrace"]["frames"]
        .as_array_mut()
        .unwrap()
}

#[test]
fn precedence_levels() {
    let trace = json!({"frames": [
        {"module": "django.core", "function": "dispatch", "lineno": 1, "in_app": false},
        {"filename": "/srv/app/views.py", "function": "checkout", "lineno": 40, "in_app": true},
        {"module": "app.cart", "function": "total", "lineno": 9, "in_app": true},
    ]});
    let cases: Vec<(&str, Value, Vec<Component>)> = vec![
        (
            "own fingerprint",
            json!({"fingerprint": ["checkout", 42], "message": "m"}),
            vec![
                Component::Custom("checkout".into()),
                Component::Custom("42".into()),
            ],
        ),
        (
            "{{ default }} expands to the default",
            json!({"fingerprint": ["{{ default }}", "eu"], "message": "user 4 not found"}),
            vec![msg("user <int> not found"), Component::Custom("eu".into())],
        ),
        (
            "{{default}} too",
            json!({"fingerprint": ["{{default}}"], "message": "m"}),
            vec![msg("m")],
        ),
        (
            "an empty fingerprint is none",
            json!({"fingerprint": [], "message": "m"}),
            vec![msg("m")],
        ),
        (
            "stack trace: in-app frames only, module or base name, never lines",
            json!({"exception": [{"type": "ZeroDivisionError", "value": "x", "stacktrace": trace}]}),
            vec![
                ty("ZeroDivisionError"),
                frame("views.py", "checkout"),
                frame("app.cart", "total"),
            ],
        ),
        (
            "stack trace: every frame when none is in-app",
            json!({"exception": [{"type": "E", "stacktrace": {"frames": [
                {"module": "a", "function": "f", "in_app": false},
                {"abs_path": "C:\\src\\b.cs", "function": "g"},
                {"lineno": 3},
            ]}}]}),
            vec![ty("E"), frame("a", "f"), frame("b.cs", "g")],
        ),
        (
            "the raised exception is the last of the chain",
            json!({"exception": {"values": [
                {"type": "IOError", "stacktrace": {"frames": [{"function": "read"}]}},
                {"type": "ConfigError", "stacktrace": {"frames": [{"function": "load"}]}},
            ]}}),
            vec![ty("ConfigError"), frame("", "load")],
        ),
        (
            "a synthetic exception groups by its trace, not its type",
            json!({"message": "user 17 not found", "exception": [{"type": "Error", "value": "user 17 not found",
                "mechanism": {"synthetic": true}, "stacktrace": {"frames": [{"filename": "app.js", "function": "report"}]}}]}),
            vec![ty(""), frame("app.js", "report")],
        ),
        (
            "exception without frames: type and normalized value",
            json!({"exception": [{"type": "KeyError", "value": "'user-17'"}], "message": "ignored"}),
            vec![
                ty("KeyError"),
                Component::ExceptionValue("'user-<int>'".into()),
            ],
        ),
        (
            "exception with only a value",
            json!({"exception": [{"value": "timeout after 30s"}]}),
            vec![
                ty(""),
                Component::ExceptionValue("timeout after <int>s".into()),
            ],
        ),
        (
            "message: the template before the formatted text",
            json!({"logentry": {"message": "user %s not found", "formatted": "user 4 not found"}}),
            vec![msg("user %s not found")],
        ),
        (
            "message: the text, normalized",
            json!({"message": "user 17 not found"}),
            vec![msg("user <int> not found")],
        ),
        (
            "a synthetic exception without frames falls back to the message",
            json!({"message": "m", "exception": [{"value": "m", "mechanism": {"synthetic": true}}]}),
            vec![msg("m")],
        ),
        (
            "nothing",
            json!({"level": "info"}),
            vec![Component::Nothing],
        ),
        (
            "an empty exception list",
            json!({"exception": {"values": []}}),
            vec![Component::Nothing],
        ),
    ];
    for (name, json, want) in cases {
        assert_eq!(components(&payload(&json)), want, "{name}");
    }
}

#[test]
fn normalization() {
    let cases = [
        ("user 17 not found", "user <int> not found"),
        ("user 4 not found", "user <int> not found"),
        (
            "balance -12 after 3.50 and 1e-3",
            "balance <int> after <float> and <float>",
        ),
        (
            "user17 and utf8 and x86_64 stay",
            "user17 and utf8 and x86_64 stay",
        ),
        ("order-17 failed (id=42).", "order-<int> failed (id=<int>)."),
        (
            "took 1500ms, retrying in 2s",
            "took <int>ms, retrying in <int>s",
        ),
        ("ptr 0x7ff7742fe305 freed", "ptr <hex> freed"),
        ("commit a853d337cf8a4263 broke it", "commit <hex> broke it"),
        (
            "deadbeef and facade are words",
            "deadbeef and facade are words",
        ),
        (
            "id fc6d8c0c-43fc-4630-ad85-0ee518f1b9d0 gone",
            "id <uuid> gone",
        ),
        ("id {FC6D8C0C-43FC-4630-AD85-0EE518F1B9D0}", "id {<uuid>}"),
        ("mail bob.smith+tag@example.co.uk now", "mail <email> now"),
        ("not@mail and @handle", "not@mail and @handle"),
        ("connect 10.0.0.12:5432 refused", "connect <ip> refused"),
        ("from 192.168.1.1.", "from <ip>."),
        (
            "ipv6 fe80::1ff:fe23:4567:890a and ::1",
            "ipv6 <ip> and <ip>",
        ),
        ("std::io::Error stays", "std::io::Error stays"),
        ("version 999.1.2.3", "version <int>.<int>.<int>.<int>"),
        (
            "at 2024-01-31T12:00:00.123+02:00 exactly",
            "at <date> exactly",
        ),
        ("on 2024-01-31 at 09:15:02Z", "on <date> at <date>"),
        ("meet at 9:30.", "meet at <date>."),
        ("ratio 3:2", "ratio <int>:<int>"),
        (
            "GET https://api.example.com/v1/users/17?x=1 failed.",
            "GET <url> failed.",
        ),
        ("see (http://x.io/a).", "see (<url>)."),
        (
            "'http://a/b' and \"s3://bucket/key\"",
            "'<url>' and \"<url>\"",
        ),
        (
            "no scheme: //path and http: words",
            "no scheme: //path and http: words",
        ),
        (
            "Ошибка 17: пользователь не найден",
            "Ошибка <int>: пользователь не найден",
        ),
        ("50% done, +5 more", "<int>% done, +<int> more"),
        ("user %s not found", "user %s not found"),
        ("KeyError: '17'", "KeyError: '<int>'"),
        ("", ""),
        ("...", "..."),
        ("-", "-"),
    ];
    for (input, want) in cases {
        assert_eq!(normalize_message(input), want, "{input:?}");
    }
}

#[test]
fn normalization_is_linear_on_hostile_input() {
    // Inputs that make a backtracking matcher quadratic or worse; each is
    // a quarter MiB, so anything worse than linear would not finish.
    let size = 1 << 18;
    let hostile = [
        "1.".repeat(size / 2),
        "a@".repeat(size / 2),
        "::".repeat(size / 2),
        "http://".repeat(size / 7),
        "2024-01-".repeat(size / 8),
        "0x".repeat(size / 2),
        "a".repeat(size),
        "1".repeat(size),
        "é1".repeat(size / 3),
    ];
    for input in hostile {
        let out = normalize_message(&input);
        assert!(out.len() <= input.len() * 5, "bounded output");
    }
}

#[test]
fn hashing_separates_parts() {
    let h = |c: Vec<Component>| hash(&c);
    let custom = |parts: &[&str]| {
        h(parts
            .iter()
            .map(|p| Component::Custom((*p).into()))
            .collect())
    };
    assert_eq!(custom(&["a"]).len(), 64);
    assert_ne!(custom(&["ab", "c"]), custom(&["a", "bc"]));
    assert_ne!(custom(&["a", ""]), custom(&["a"]));
    assert_ne!(custom(&["x"]), h(vec![msg("x")]));
    assert_ne!(h(vec![frame("a", "b")]), h(vec![frame("ab", "")]));
    assert_eq!(custom(&["a"]), custom(&["a"]));
}

#[test]
fn titles() {
    let cases = [
        (
            json!({"exception": [{"type": "KeyError", "value": "'17'"}]}),
            "KeyError: '17'",
        ),
        (
            json!({"exception": [{"type": "KeyError", "value": ""}]}),
            "KeyError",
        ),
        (json!({"exception": [{"type": "E"}], "message": "m"}), "E"),
        (
            json!({"exception": [{"type": "E", "value": "\n  first\nsecond"}]}),
            "E: first",
        ),
        (
            json!({"exception": [{"type": "Cause", "value": "c"}, {"type": "Raised", "value": "r"}]}),
            "Raised: r",
        ),
        (
            json!({"message": "user 17 not found", "exception": [{"value": "user 17 not found",
                "mechanism": {"synthetic": true}, "type": "Error"}]}),
            "user 17 not found",
        ),
        (
            json!({"exception": [{"value": "only a value"}]}),
            "only a value",
        ),
        (
            json!({"logentry": {"message": "user %s", "formatted": "user 4"}}),
            "user 4",
        ),
        (json!({"message": "line one\nline two"}), "line one"),
        (json!({}), "<unlabeled event>"),
        (json!({"message": "   "}), "<unlabeled event>"),
    ];
    for (json, want) in cases {
        assert_eq!(title(&payload(&json)), want, "{json}");
    }
    let long = title(&payload(&json!({"message": "é".repeat(500)})));
    assert_eq!(long.chars().count(), MAX_TITLE_CHARS);
    assert!(long.ends_with('…'));
}

#[test]
fn truncation_keeps_char_boundaries() {
    assert_eq!(truncate("abc".into(), 3), "abc");
    assert_eq!(truncate("abcd".into(), 3), "ab…");
    assert_eq!(truncate("💥💥💥💥".into(), 2), "💥…");
    assert_eq!(truncate("".into(), 0), "");
    assert_eq!(truncate("a".into(), 0), "…");
}

#[test]
fn culprits() {
    let cases = [
        (
            json!({"exception": [{"type": "E", "stacktrace": {"frames": [
                {"module": "app.views", "function": "checkout", "in_app": true},
                {"module": "app.cart", "function": "total", "in_app": true},
                {"module": "decimal", "function": "div", "in_app": false},
            ]}}]}),
            Some("app.cart in total"),
        ),
        (
            json!({"exception": [{"type": "E", "stacktrace": {"frames": [
                {"filename": "http://x/static/app.js?v=1", "function": "render"},
                {"filename": "vendor.js", "function": "h"},
            ]}}], "transaction": "/checkout"}),
            Some("vendor.js in h"),
        ),
        (
            json!({"exception": [{"type": "E"}], "transaction": " /checkout "}),
            Some("/checkout"),
        ),
        (
            json!({"message": "m", "threads": [{"current": true, "stacktrace": {"frames": [
                {"module": "__main__", "function": "<module>", "in_app": true}]}}]}),
            Some("__main__ in <module>"),
        ),
        (
            json!({"exception": [{"type": "E", "stacktrace": {"frames": [{"module": "m"}]}}]}),
            Some("m"),
        ),
        (
            json!({"exception": [{"type": "E", "stacktrace": {"frames": [{"lineno": 1}]}}]}),
            None,
        ),
        (json!({"message": "m"}), None),
    ];
    for (json, want) in cases {
        assert_eq!(culprit(&payload(&json)).as_deref(), want, "{json}");
    }
}

#[test]
fn python_sdk_events() {
    let crash = fixture("python_exception");
    let p = payload(&crash);
    assert_eq!(title(&p), "KeyError: 17");
    assert_eq!(culprit(&p).as_deref(), Some("__main__ in load_user"));
    assert_eq!(
        components(&p),
        vec![
            ty("KeyError"),
            frame("__main__", "<module>"),
            frame("__main__", "handler"),
            frame("__main__", "load_user"),
        ]
    );

    // The same crash after an edit moved every line.
    let mut moved = crash.clone();
    for f in frames_mut(&mut moved) {
        f["lineno"] = json!(f["lineno"].as_u64().unwrap() + 7);
        f["context_line"] = json!("    # moved");
    }
    moved["exception"]["values"][0]["value"] = json!("4");
    assert_eq!(fp(&moved), fp(&crash));

    // Raised from another function: another issue.
    let mut elsewhere = crash.clone();
    frames_mut(&mut elsewhere).last_mut().unwrap()["function"] = json!("load_account");
    assert_ne!(fp(&elsewhere), fp(&crash));

    // capture_message: the text is the template; numbers do not split.
    let message = fixture("python_message");
    let mut other_user = message.clone();
    other_user["message"] = json!("user 4 not found");
    assert_eq!(fp(&other_user), fp(&message));
    let mut other_text = message.clone();
    other_text["message"] = json!("user 4 was deleted");
    assert_ne!(fp(&other_text), fp(&message));
    assert_eq!(title(&payload(&message)), "user 17 not found");

    // A logging error: the template groups, whatever the parameters.
    let logged = fixture("python_logging");
    let mut other_param = logged.clone();
    other_param["logentry"]["formatted"] = json!("user 99 not found");
    other_param["logentry"]["params"] = json!([99]);
    assert_eq!(fp(&other_param), fp(&logged));
    assert_eq!(title(&payload(&logged)), "user 4 not found");
    assert_eq!(
        components(&payload(&logged)),
        vec![msg("user %s not found")]
    );
}

#[test]
fn javascript_sdk_events() {
    let crash = fixture("javascript_exception");
    let p = payload(&crash);
    assert_eq!(
        title(&p),
        "TypeError: Cannot read properties of undefined (reading 'items')"
    );
    assert_eq!(culprit(&p).as_deref(), Some("app.js in renderCart"));
    assert_eq!(
        components(&p),
        vec![
            ty("TypeError"),
            frame("app.js", "onCheckoutClick"),
            frame("app.js", "renderCart"),
        ]
    );
    let mut rebuilt = crash.clone();
    for f in frames_mut(&mut rebuilt) {
        f["lineno"] = json!(f["lineno"].as_u64().unwrap() + 120);
        f["colno"] = json!(1);
    }
    assert_eq!(fp(&rebuilt), fp(&crash));
    let mut other = crash.clone();
    frames_mut(&mut other)[0]["function"] = json!("onPayClick");
    assert_ne!(fp(&other), fp(&crash));

    // captureMessage with its synthetic stack trace: titled by the text,
    // grouped by where it was sent from.
    let message = fixture("javascript_message");
    assert_eq!(title(&payload(&message)), "user 17 not found");
    let mut other_user = message.clone();
    other_user["message"] = json!("user 4 not found");
    other_user["exception"]["values"][0]["value"] = json!("user 4 not found");
    assert_eq!(fp(&other_user), fp(&message));
    // Without the trace, the message template groups.
    let mut bare = message.clone();
    bare.as_object_mut().unwrap().remove("exception");
    let mut bare_other = other_user.clone();
    bare_other.as_object_mut().unwrap().remove("exception");
    assert_eq!(fp(&bare), fp(&bare_other));
}

#[test]
fn rust_sdk_events() {
    // capture_error sends no frames on the exception: type and value.
    let error = fixture("rust_error");
    let p = payload(&error);
    assert_eq!(title(&p), "ParseIntError: invalid digit found in string");
    assert_eq!(
        components(&p),
        vec![
            ty("ParseIntError"),
            Component::ExceptionValue("invalid digit found in string".into()),
        ]
    );
    let message = fixture("rust_message");
    let mut other_user = message.clone();
    other_user["message"] = json!("user 4 not found");
    assert_eq!(fp(&other_user), fp(&message));
    assert_ne!(fp(&message), fp(&error));

    // A panic: the in-app frames of its trace, line numbers aside.
    let panic = fixture("rust_panic");
    let p = payload(&panic);
    assert_eq!(
        title(&p),
        "panic: index out of bounds: the len is 0 but the index is 3"
    );
    assert!(components(&p).contains(&frame("main.rs", "billing::main::{{closure}}")));
    let mut moved = panic.clone();
    for f in frames_mut(&mut moved) {
        if let Some(line) = f["lineno"].as_u64() {
            f["lineno"] = json!(line + 1);
        }
    }
    assert_eq!(fp(&moved), fp(&panic));
}

#[test]
fn custom_fingerprints_with_default() {
    for name in ["python_exception", "javascript_exception", "rust_message"] {
        let event = fixture(name);
        let mut custom = event.clone();
        custom["fingerprint"] = json!(["{{ default }}", "x"]);
        let mut spaced = event.clone();
        spaced["fingerprint"] = json!(["{{default}}", "x"]);
        let mut only_default = event.clone();
        only_default["fingerprint"] = json!(["{{ default }}"]);
        assert_ne!(fp(&custom), fp(&event), "{name}");
        assert_eq!(fp(&custom), fp(&custom.clone()), "{name}");
        assert_eq!(fp(&custom), fp(&spaced), "{name}");
        assert_eq!(fp(&only_default), fp(&event), "{name}");
        // Still the default inside: another crash gives another issue.
        let mut other = custom.clone();
        other["exception"] = json!([{"type": "Other", "value": "v"}]);
        other.as_object_mut().unwrap().remove("message");
        assert_ne!(fp(&other), fp(&custom), "{name}");
    }
}
