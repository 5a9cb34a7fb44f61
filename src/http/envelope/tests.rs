use super::*;

const ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

/// What a parsed envelope should be, in a form tables can spell.
struct Expected {
    event_id: Option<&'static str>,
    dsn: Option<&'static str>,
    /// (the `type` as sent, payload)
    items: &'static [(&'static str, &'static [u8])],
}

fn check(name: &str, body: &[u8], expected: &Expected) {
    let envelope = match parse(body) {
        Ok(e) => e,
        Err(e) => panic!("{name}: {e}"),
    };
    assert_eq!(
        envelope.header.event_id.as_deref(),
        expected.event_id,
        "{name}"
    );
    assert_eq!(envelope.header.dsn.as_deref(), expected.dsn, "{name}");
    let items: Vec<(ItemType, &[u8])> = envelope
        .items
        .iter()
        .map(|i| (i.kind.clone(), i.payload))
        .collect();
    let wanted: Vec<(ItemType, &[u8])> = expected
        .items
        .iter()
        .map(|(kind, payload)| (ItemType::from_name(kind), *payload))
        .collect();
    assert_eq!(items, wanted, "{name}");
    // Payloads are slices of the body itself.
    for item in &envelope.items {
        let body_range = body.as_ptr_range();
        assert!(
            item.payload.is_empty() || body_range.contains(&item.payload.as_ptr()),
            "{name}: payload copied"
        );
    }
}

const EVENT_41: &[u8] = br#"{"message":"hello world","level":"error"}"#;

#[test]
fn as_sdks_send_them() {
    let cases: [(&str, &[u8], Expected); 9] = [
        (
            // sentry-python: compact JSON, every item with content_type
            // and length (last), a final newline.
            "python event",
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2024-06-10T12:00:00.123456Z\",\"trace\":{\"trace_id\":\"335e53d614474acc9f89e632b776cc28\",\"environment\":\"production\",\"public_key\":\"mshr_ab\"}}\n\
              {\"type\":\"event\",\"content_type\":\"application/json\",\"length\":41}\n\
              {\"message\":\"hello world\",\"level\":\"error\"}\n",
            Expected { event_id: Some(ID), dsn: None, items: &[("event", EVENT_41)] },
        ),
        (
            "python event and attachment",
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2024-06-10T12:00:00.123456Z\"}\n\
              {\"type\":\"event\",\"content_type\":\"application/json\",\"length\":41}\n\
              {\"message\":\"hello world\",\"level\":\"error\"}\n\
              {\"filename\":\"log.txt\",\"type\":\"attachment\",\"content_type\":\"text/plain\",\"length\":13}\n\
              line 1\nline 2\n",
            Expected {
                event_id: Some(ID),
                dsn: None,
                items: &[("event", EVENT_41), ("attachment", b"line 1\nline 2")],
            },
        ),
        (
            "python session",
            b"{\"sent_at\":\"2024-06-10T12:00:00.123456Z\"}\n\
              {\"type\":\"session\",\"content_type\":\"application/json\",\"length\":27}\n\
              {\"sid\":\"abc\",\"status\":\"ok\"}\n",
            Expected {
                event_id: None,
                dsn: None,
                items: &[("session", b"{\"sid\":\"abc\",\"status\":\"ok\"}")],
            },
        ),
        (
            // sentry-javascript: no length on JSON items, no final
            // newline.
            "javascript event",
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2024-06-10T12:00:00.123Z\",\"sdk\":{\"name\":\"sentry.javascript.browser\",\"version\":\"8.55.0\"}}\n\
              {\"type\":\"event\"}\n\
              {\"message\":\"hello world\",\"level\":\"error\"}",
            Expected { event_id: Some(ID), dsn: None, items: &[("event", EVENT_41)] },
        ),
        (
            // Through a tunnel the header carries the DSN; attachments
            // have a length.
            "javascript tunnel event and attachment",
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"2024-06-10T12:00:00.123Z\",\"dsn\":\"https://mshr_ab@errors.example.com/42\"}\n\
              {\"type\":\"event\"}\n\
              {\"message\":\"hello world\",\"level\":\"error\"}\n\
              {\"type\":\"attachment\",\"length\":3,\"filename\":\"a.bin\"}\n\
              \x00\n\xff",
            Expected {
                event_id: Some(ID),
                dsn: Some("https://mshr_ab@errors.example.com/42"),
                items: &[("event", EVENT_41), ("attachment", b"\x00\n\xff")],
            },
        ),
        (
            "javascript client report",
            b"{}\n{\"type\":\"client_report\"}\n{\"timestamp\":1718000000.123,\"discarded_events\":[{\"reason\":\"before_send\",\"category\":\"error\",\"quantity\":1}]}",
            Expected {
                event_id: None,
                dsn: None,
                items: &[(
                    "client_report",
                    b"{\"timestamp\":1718000000.123,\"discarded_events\":[{\"reason\":\"before_send\",\"category\":\"error\",\"quantity\":1}]}",
                )],
            },
        ),
        (
            // sentry-rust (its own serialization tests): a hyphenated
            // event_id in the header, `{"type":..,"length":..}` items.
            "rust event",
            b"{\"event_id\":\"22d00b3f-d1b1-4b5d-8d20-49d138cd8a9c\"}\n\
              {\"type\":\"event\",\"length\":74}\n\
              {\"event_id\":\"22d00b3fd1b14b5d8d2049d138cd8a9c\",\"timestamp\":1595256674.296}\n",
            Expected {
                event_id: Some("22d00b3f-d1b1-4b5d-8d20-49d138cd8a9c"),
                dsn: None,
                items: &[(
                    "event",
                    b"{\"event_id\":\"22d00b3fd1b14b5d8d2049d138cd8a9c\",\"timestamp\":1595256674.296}",
                )],
            },
        ),
        (
            "rust event and attachment",
            b"{\"event_id\":\"22d00b3f-d1b1-4b5d-8d20-49d138cd8a9c\"}\n\
              {\"type\":\"event\",\"length\":74}\n\
              {\"event_id\":\"22d00b3fd1b14b5d8d2049d138cd8a9c\",\"timestamp\":1595256674.296}\n\
              {\"type\":\"attachment\",\"length\":12,\"filename\":\"file.txt\",\"attachment_type\":\"event.attachment\",\"content_type\":\"application/octet-stream\"}\n\
              some content\n",
            Expected {
                event_id: Some("22d00b3f-d1b1-4b5d-8d20-49d138cd8a9c"),
                dsn: None,
                items: &[
                    (
                        "event",
                        b"{\"event_id\":\"22d00b3fd1b14b5d8d2049d138cd8a9c\",\"timestamp\":1595256674.296}",
                    ),
                    ("attachment", b"some content"),
                ],
            },
        ),
        (
            // sentry-rust log containers carry item_count, no length.
            "rust session and logs",
            b"{}\n\
              {\"type\":\"session\",\"length\":17}\n\
              {\"sid\":\"x\",\"a\":1}\n\
              {\"type\":\"log\",\"item_count\":1,\"content_type\":\"application/vnd.sentry.items.log+json\"}\n\
              {\"items\":[{\"body\":\"hi\"}]}\n",
            Expected {
                event_id: None,
                dsn: None,
                items: &[
                    ("session", b"{\"sid\":\"x\",\"a\":1}"),
                    ("log", b"{\"items\":[{\"body\":\"hi\"}]}"),
                ],
            },
        ),
    ];
    for (name, body, expected) in &cases {
        check(name, body, expected);
    }
}

#[test]
fn edge_cases_accepted() {
    let cases: [(&str, &[u8], Expected); 16] = [
        ("header only", b"{}", Expected { event_id: None, dsn: None, items: &[] }),
        ("header only, newline", b"{}\n", Expected { event_id: None, dsn: None, items: &[] }),
        (
            "header with ignored fields",
            b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"sent_at\":\"x\",\"sdk\":{\"name\":\"a\"},\"other\":[1,2]}",
            Expected { event_id: Some(ID), dsn: None, items: &[] },
        ),
        (
            "null event_id and dsn",
            b"{\"event_id\":null,\"dsn\":null}\n",
            Expected { event_id: None, dsn: None, items: &[] },
        ),
        (
            "leading whitespace",
            b" \n\t{}\n{\"type\":\"event\"}\n{}",
            Expected { event_id: None, dsn: None, items: &[("event", b"{}")] },
        ),
        (
            "blank lines before an item header",
            b"{}\n\n\n{\"type\":\"event\"}\n{}",
            Expected { event_id: None, dsn: None, items: &[("event", b"{}")] },
        ),
        (
            "item header at the end, no newline",
            b"{}\n{\"type\":\"attachment\"}",
            Expected { event_id: None, dsn: None, items: &[("attachment", b"")] },
        ),
        (
            "item header at the end, length 0",
            b"{}\n{\"type\":\"attachment\",\"length\":0}",
            Expected { event_id: None, dsn: None, items: &[("attachment", b"")] },
        ),
        (
            "empty payloads, sized and not",
            b"{}\n{\"type\":\"attachment\",\"length\":0}\n\n{\"type\":\"event\"}\n\n{\"type\":\"session\"}\n",
            Expected {
                event_id: None,
                dsn: None,
                items: &[("attachment", b""), ("event", b""), ("session", b"")],
            },
        ),
        (
            "sized payload at the end without a newline",
            b"{}\n{\"type\":\"event\",\"length\":2}\n{}",
            Expected { event_id: None, dsn: None, items: &[("event", b"{}")] },
        ),
        (
            // Only \n separates: a \r before it is data.
            "crlf inside payloads",
            b"{}\n{\"type\":\"event\"}\n{}\r\n{\"type\":\"attachment\",\"length\":7}\nHello\r\n\n",
            Expected {
                event_id: None,
                dsn: None,
                items: &[("event", b"{}\r"), ("attachment", b"Hello\r\n")],
            },
        ),
        (
            "unsized payload runs to the newline",
            b"{}\n{\"type\":\"event\"}\n{\"a\":1}\n{\"type\":\"event\"}\n{\"b\":2}",
            Expected {
                event_id: None,
                dsn: None,
                items: &[("event", b"{\"a\":1}"), ("event", b"{\"b\":2}")],
            },
        ),
        (
            "unknown and null-length items",
            b"{}\n{\"type\":\"invalid_unknown\",\"length\":null}\nhelloworld\n",
            Expected {
                event_id: None,
                dsn: None,
                items: &[("invalid_unknown", b"helloworld")],
            },
        ),
        (
            "escaped type",
            b"{}\n{\"type\":\"\\u0065vent\"}\n{}",
            Expected { event_id: None, dsn: None, items: &[("event", b"{}")] },
        ),
        (
            // A header may span lines, as relay's streaming parser allows.
            "header over two lines",
            b"{\n\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n",
            Expected { event_id: Some(ID), dsn: None, items: &[] },
        ),
        (
            "payload that is not JSON",
            b"{}\n{\"type\":\"statsd\"}\nfoo:1|c",
            Expected { event_id: None, dsn: None, items: &[("statsd", b"foo:1|c")] },
        ),
    ];
    for (name, body, expected) in &cases {
        check(name, body, expected);
    }
}

#[test]
fn malformed() {
    use EnvelopeError as E;
    type Check = fn(&EnvelopeError) -> bool;
    let cases: [(&str, &[u8], Check); 27] = [
        ("empty", b"", |e| *e == E::MissingHeader),
        ("whitespace", b" \n\r\n\t", |e| *e == E::MissingHeader),
        ("header not JSON", b"hello\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header array", b"[]\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header array of strings", b"[\"x\",\"y\"]\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header string", b"\"x\"\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header number", b"1\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header null", b"null\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header unterminated", b"{\"event_id\":\"x\"\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header event_id a number", b"{\"event_id\":5}\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header dsn an object", b"{\"dsn\":{}}\n", |e| {
            matches!(e, E::InvalidHeader(_))
        }),
        ("header with crlf", b"{}\r\n{\"type\":\"event\"}\n{}", |e| {
            *e == E::MissingNewline(Place::Header)
        }),
        ("header then junk", b"{} x\n", |e| {
            *e == E::MissingNewline(Place::Header)
        }),
        ("blank line after header", b"{}\n\n", |e| {
            *e == E::UnexpectedEof { item: 1 }
        }),
        (
            "blank lines after last item",
            b"{}\n{\"type\":\"event\"}\n{}\n\n",
            |e| *e == E::UnexpectedEof { item: 2 },
        ),
        ("item header not JSON", b"{}\n{type: event}\n{}", |e| {
            matches!(e, E::InvalidItemHeader { item: 1, .. })
        }),
        ("item header array", b"{}\n[\"event\"]\n{}", |e| {
            matches!(e, E::InvalidItemHeader { item: 1, .. })
        }),
        (
            "item without type",
            b"{}\n{\"length\":2}\n{}",
            |e| matches!(e, E::InvalidItemHeader { item: 1, reason } if reason.contains("type")),
        ),
        ("item type not a string", b"{}\n{\"type\":1}\n{}", |e| {
            matches!(e, E::InvalidItemHeader { item: 1, .. })
        }),
        (
            "negative length",
            b"{}\n{\"type\":\"event\",\"length\":-1}\n{}",
            |e| matches!(e, E::InvalidItemHeader { item: 1, .. }),
        ),
        (
            "fractional length",
            b"{}\n{\"type\":\"event\",\"length\":1.5}\n{}",
            |e| matches!(e, E::InvalidItemHeader { item: 1, .. }),
        ),
        (
            "length past u32",
            b"{}\n{\"type\":\"event\",\"length\":4294967296}\n{}",
            |e| matches!(e, E::InvalidItemHeader { item: 1, .. }),
        ),
        (
            "length past the end",
            b"{}\n{\"type\":\"event\",\"length\":41}\n{}\n",
            |e| {
                *e == E::LengthPastEnd {
                    item: 1,
                    length: 41,
                    available: 3,
                }
            },
        ),
        (
            "length on a header at the end",
            b"{}\n{\"type\":\"event\",\"length\":1}",
            |e| {
                *e == E::LengthPastEnd {
                    item: 1,
                    length: 1,
                    available: 0,
                }
            },
        ),
        (
            "length too short",
            b"{}\n{\"type\":\"event\",\"length\":1}\n{}\n",
            |e| *e == E::MissingNewline(Place::Payload(1)),
        ),
        (
            "item header then junk",
            b"{}\n{\"type\":\"event\"}x\n{}",
            |e| *e == E::MissingNewline(Place::ItemHeader(1)),
        ),
        (
            "second item broken",
            b"{}\n{\"type\":\"event\"}\n{}\n{\"type\":\n",
            |e| matches!(e, E::InvalidItemHeader { item: 2, .. }),
        ),
    ];
    for (name, body, expected) in cases {
        match parse(body) {
            Ok(envelope) => panic!("{name}: accepted {envelope:?}"),
            Err(e) => assert!(expected(&e), "{name}: {e:?}"),
        }
    }
}

#[test]
fn the_rust_sdk_envelope() {
    // Serialized by the real sentry crate rather than copied from it.
    use sentry::protocol::{Attachment, Event};
    let event_id = "22d00b3f-d1b1-4b5d-8d20-49d138cd8a9c".parse().unwrap();
    let event = Event {
        event_id,
        message: Some("line 1\nline 2".into()),
        ..Default::default()
    };
    let event_json = serde_json::to_vec(&event).unwrap();
    let mut envelope = sentry::Envelope::from(event);
    envelope.add_item(Attachment {
        buffer: b"a\nb\r\n".to_vec(),
        filename: "log.txt".into(),
        content_type: None,
        ty: None,
    });
    let mut body = Vec::new();
    envelope.to_writer(&mut body).unwrap();

    let parsed = parse(&body).unwrap();
    assert_eq!(
        parsed.header.event_id.as_deref(),
        Some("22d00b3f-d1b1-4b5d-8d20-49d138cd8a9c")
    );
    let items: Vec<(&str, &[u8])> = parsed
        .items
        .iter()
        .map(|i| (i.kind.as_str(), i.payload))
        .collect();
    assert_eq!(
        items,
        [("event", &event_json[..]), ("attachment", b"a\nb\r\n")]
    );
}

#[test]
fn no_panic_on_any_input() {
    let samples: [&[u8]; 3] = [
        b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}\n{\"type\":\"event\",\"length\":7}\n{\"a\":1}\n{\"type\":\"attachment\"}\nxyz",
        b"{}\n\n{\"type\":\"\\u0065vent\",\"length\":0}\n\n{\"type\":\"session\",\"length\":4294967295}\n",
        b" {\"dsn\":\"\xff\"}\r\n[\"\xc3\xa9\"]",
    ];
    for sample in samples {
        for end in 0..=sample.len() {
            // Every prefix, and every prefix with one byte changed.
            let prefix = &sample[..end];
            let _ = parse(prefix);
            for replacement in [b'\n', b'{', b'}', b'"', b'0', 0xff] {
                let mut changed = prefix.to_vec();
                if let Some(b) = changed.last_mut() {
                    *b = replacement;
                }
                let _ = parse(&changed);
            }
        }
    }
}

#[test]
fn item_count_is_bounded() {
    let item = b"{\"type\":\"client_report\"}\n{}\n";
    let at_max = [&b"{}\n"[..], &item.repeat(MAX_ITEMS)].concat();
    assert_eq!(parse(&at_max).map(|e| e.items.len()), Ok(MAX_ITEMS));
    let over = [&b"{}\n"[..], &item.repeat(MAX_ITEMS + 1)].concat();
    assert_eq!(
        parse(&over),
        Err(EnvelopeError::TooManyItems { max: MAX_ITEMS })
    );
}

#[test]
fn messages_are_bounded() {
    // serde_json quotes a mistyped string whole; the message must not.
    let long = "x".repeat(100_000);
    let body = format!("{{}}\n{{\"type\":\"event\",\"length\":\"{long}\"}}\n");
    let err = parse(body.as_bytes()).unwrap_err();
    assert!(
        err.to_string().len() < 300,
        "{} bytes",
        err.to_string().len()
    );
}

#[test]
fn messages() {
    let cases = [
        (
            EnvelopeError::MissingHeader,
            "empty envelope: expected a JSON header line",
        ),
        (
            EnvelopeError::MissingNewline(Place::Header),
            "missing newline after the envelope header",
        ),
        (
            EnvelopeError::MissingNewline(Place::Payload(2)),
            "missing newline after the payload of item 2 (as long as its length says)",
        ),
        (
            EnvelopeError::LengthPastEnd {
                item: 1,
                length: 41,
                available: 3,
            },
            "item 1 declares a length of 41 bytes but only 3 follow its header",
        ),
        (
            EnvelopeError::UnexpectedEof { item: 2 },
            "unexpected end of envelope: expected item 2's header",
        ),
        (
            EnvelopeError::TooManyItems { max: 1000 },
            "envelope has more than 1000 items",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

#[test]
fn type_names() {
    let known = [
        ("event", ItemType::Event),
        ("transaction", ItemType::Transaction),
        ("security", ItemType::Security),
        ("raw_security", ItemType::RawSecurity),
        ("nel", ItemType::Nel),
        ("attachment", ItemType::Attachment),
        ("form_data", ItemType::FormData),
        ("unreal_report", ItemType::UnrealReport),
        ("user_report", ItemType::UserReport),
        ("feedback", ItemType::Feedback),
        ("session", ItemType::Session),
        ("sessions", ItemType::Sessions),
        ("statsd", ItemType::Statsd),
        ("metric_buckets", ItemType::MetricBuckets),
        ("client_report", ItemType::ClientReport),
        ("profile", ItemType::Profile),
        ("profile_chunk", ItemType::ProfileChunk),
        ("replay_event", ItemType::ReplayEvent),
        ("replay_recording", ItemType::ReplayRecording),
        ("replay_video", ItemType::ReplayVideo),
        ("check_in", ItemType::CheckIn),
        ("log", ItemType::Log),
        ("span", ItemType::Span),
        ("otel_span", ItemType::OtelSpan),
        ("trace_metric", ItemType::TraceMetric),
    ];
    let known_count = known.len();
    for (name, kind) in known {
        assert_eq!(ItemType::from_name(name), kind);
        assert_eq!(kind.as_str(), name);
    }
    let others = [
        ("profile_chunk_ui", ItemType::ProfileChunk, "profile_chunk"),
        ("Event", ItemType::Other("Event".into()), "unknown"),
        ("", ItemType::Other(String::new()), "unknown"),
        (
            "a_new_type",
            ItemType::Other("a_new_type".into()),
            "unknown",
        ),
    ];
    for (name, kind, label) in others {
        assert_eq!(ItemType::from_name(name), kind);
        assert_eq!(kind.as_str(), label);
    }
    // A name twice in the table would make its second variant unreachable.
    let mut names: Vec<&str> = ITEM_TYPES.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ITEM_TYPES.len());
    assert_eq!(names.len(), known_count + 1, "every name tested, one alias");
}
