//! A bundle esbuild made (`fixtures/app.js` and its map, minified, from
//! `src/main.js` and `src/checkout.js`), resolved frame by frame.

use super::*;
use crate::domain::ExceptionInfo;

const MINIFIED: &[u8] = include_bytes!("../fixtures/app.js");
const MAP: &[u8] = include_bytes!("../fixtures/app.js.map");
const ID: &str = "7a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const FILE: &str = "/srv/shop/dist/app.js";

fn map() -> Arc<ParsedMap> {
    Arc::new(ParsedMap::parse(MAP, Some(MINIFIED.to_vec())).unwrap())
}

/// A frame of `app.js` as Node reports it.
fn frame(function: Option<&str>, colno: u64) -> StackFrame {
    StackFrame {
        filename: Some(FILE.into()),
        function: function.map(Into::into),
        module: Some("app".into()),
        lineno: Some(1),
        colno: Some(colno),
        in_app: Some(true),
        ..Default::default()
    }
}

/// The stack Node printed for the fixture (oldest first), with a frame of
/// Node's own at the bottom.
fn event(frames: Vec<StackFrame>, images: Value) -> EventPayload {
    let mut exception = ExceptionInfo::new("Error", "card declined for order 17");
    exception.stacktrace = Some(Stacktrace::from(frames));
    let mut payload = EventPayload {
        exception: Some(vec![exception]),
        ..Default::default()
    };
    payload
        .other
        .insert("debug_meta".into(), json!({ "images": images }));
    payload
}

fn node_stack() -> Vec<StackFrame> {
    vec![
        StackFrame {
            filename: Some("node:internal/modules/cjs/loader".into()),
            function: Some("Module._compile".into()),
            lineno: Some(1521),
            colno: Some(14),
            ..Default::default()
        },
        frame(Some("d"), 629),
        frame(Some("c"), 578),
        frame(Some("m"), 498),
    ]
}

fn images() -> Value {
    json!([{"type": "sourcemap", "code_file": FILE, "debug_id": ID}])
}

fn found() -> HashMap<MapKey, Lookup> {
    HashMap::from([(MapKey::DebugId(ID.parse().unwrap()), Lookup::Found(map()))])
}

fn frames(payload: &EventPayload) -> &[StackFrame] {
    payload.exception.as_ref().unwrap()[0].frames()
}

#[test]
fn frames_resolve_to_the_original_file_line_function_and_context() {
    let mut payload = event(node_stack(), images());
    assert_eq!(wanted(&payload), [MapKey::DebugId(ID.parse().unwrap())]);
    assert!(apply(&mut payload, &found()));
    let got = frames(&payload);
    let top = &got[3];
    assert_eq!(top.filename.as_deref(), Some("../src/checkout.js"));
    assert_eq!(top.abs_path.as_deref(), Some("/srv/shop/src/checkout.js"));
    assert_eq!(top.function.as_deref(), Some("chargeCard"));
    // V8 places a throw at its `new Error`, as the map does.
    assert_eq!((top.lineno, top.colno), (Some(4), Some(11)));
    assert_eq!(
        top.context_line.as_deref(),
        Some("    throw new Error(`card declined for order ${order.id}`);")
    );
    assert_eq!(
        top.pre_context.as_deref().unwrap(),
        [
            "// Checkout: where the order's card is charged.",
            "export function chargeCard(order) {",
            "  if (order.total > order.limit) {"
        ]
    );
    assert_eq!(
        top.post_context.as_deref().unwrap()[..2],
        ["  }", "  return order.total;"]
    );
    assert_eq!(top.module, None, "the minified file's module is dropped");
    assert_eq!(top.in_app, Some(true));
    assert_eq!(top.other["data"]["sourcemap"], FILE);

    let names: Vec<_> = got.iter().map(|f| f.function.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        ["Module._compile", "run", "processOrder", "chargeCard"]
    );
    assert_eq!(got[2].lineno, Some(10));
    assert_eq!(got[1].filename.as_deref(), Some("../src/main.js"));
    assert_eq!(
        got[0].filename.as_deref(),
        Some("node:internal/modules/cjs/loader")
    );

    let raw = payload.exception.as_ref().unwrap()[0]
        .raw_stacktrace
        .as_ref()
        .unwrap();
    assert_eq!(
        raw.frames,
        node_stack(),
        "the minified frames are kept as sent"
    );
}

#[test]
fn without_a_function_name_the_callers_call_site_names_the_frame() {
    let mut stack = node_stack();
    stack[3].function = None;
    stack[2].function = Some("<anonymous>".into());
    let mut payload = event(stack, images());
    apply(&mut payload, &found());
    let got = frames(&payload);
    assert_eq!(got[3].function.as_deref(), Some("chargeCard"));
    assert_eq!(got[2].function.as_deref(), Some("processOrder"));
}

#[test]
fn a_frame_that_cannot_be_resolved_keeps_its_place_and_says_why() {
    let id: Uuid = ID.parse().unwrap();
    let cases = [
        (
            Lookup::Missing,
            format!("no source map uploaded for debug id {id}"),
        ),
        (
            Lookup::Broken("expected value".into()),
            "the source map cannot be read: expected value".to_owned(),
        ),
        (
            Lookup::Unavailable,
            "source maps could not be read in time".to_owned(),
        ),
    ];
    for (lookup, why) in cases {
        let mut payload = event(node_stack(), images());
        let changed = apply(
            &mut payload,
            &HashMap::from([(MapKey::DebugId(id), lookup)]),
        );
        assert!(changed, "the note is a change: {why}");
        let got = frames(&payload);
        assert_eq!(got[3].function.as_deref(), Some("m"));
        assert_eq!(got[3].other["data"]["sourcemap_error"], why.as_str());
        assert!(
            got[0].other.get("data").is_none(),
            "Node's own frame needs no map"
        );
        assert!(
            payload.exception.as_ref().unwrap()[0]
                .raw_stacktrace
                .is_none()
        );
    }

    // A position the map does not cover, and a frame without a line.
    let mut stack = node_stack();
    stack[3].lineno = Some(7);
    stack[2].lineno = None;
    let mut payload = event(stack, images());
    apply(&mut payload, &found());
    let got = frames(&payload);
    assert_eq!(
        got[3].other["data"]["sourcemap_error"],
        "the frame's position is not in its source map"
    );
    assert_eq!(
        got[2].other["data"]["sourcemap_error"],
        "the frame has no line number"
    );
    assert_eq!(
        got[1].function.as_deref(),
        Some("run"),
        "the others still resolve"
    );
}

#[test]
fn without_a_debug_id_a_release_names_the_map_by_url() {
    let mut payload = event(node_stack(), json!([]));
    assert!(
        wanted(&payload).is_empty(),
        "no debug id and no release: nothing to look up"
    );
    payload.release = Some("shop@1.0".into());
    let key = MapKey::Release {
        release: "shop@1.0".into(),
        dist: None,
        url: FILE.into(),
    };
    assert_eq!(
        wanted(&payload),
        std::slice::from_ref(&key),
        "Node's own frames are not looked up"
    );
    // A release without uploads is no news on every frame: the event is
    // left as it was sent.
    let missing = HashMap::from([(key.clone(), Lookup::Missing)]);
    assert!(!apply(&mut payload, &missing));
    assert!(frames(&payload)[3].other.get("data").is_none());
    assert!(apply(
        &mut payload,
        &HashMap::from([(key, Lookup::Found(map()))])
    ));
    assert_eq!(frames(&payload)[3].function.as_deref(), Some("chargeCard"));
}

#[test]
fn an_event_naming_more_maps_than_the_bound_has_the_nearest_looked_up_and_the_rest_noted() {
    // Frames of 40 distinct files, each with its own debug id; the last
    // is where the error was raised.
    let ids: Vec<Uuid> = (0..40u128).map(Uuid::from_u128).collect();
    let files: Vec<String> = (0..40).map(|i| format!("/srv/shop/dist/{i}.js")).collect();
    let stack = files
        .iter()
        .map(|file| StackFrame {
            filename: Some(file.clone()),
            ..frame(Some("m"), 498)
        })
        .collect();
    let images: Vec<Value> = files
        .iter()
        .zip(&ids)
        .map(|(file, id)| json!({"type": "sourcemap", "code_file": file, "debug_id": id}))
        .collect();
    let mut payload = event(stack, Value::Array(images));

    let keys = wanted(&payload);
    assert_eq!(keys.len(), MAX_MAPS_PER_EVENT);
    assert_eq!(
        keys[0],
        MapKey::DebugId(ids[39]),
        "the raising frame's first"
    );
    assert!(
        !keys.contains(&MapKey::DebugId(ids[0])),
        "the oldest frames' left out"
    );

    let maps = keys.into_iter().map(|k| (k, Lookup::Missing)).collect();
    assert!(apply(&mut payload, &maps));
    let note = |i: usize| frames(&payload)[i].other["data"]["sourcemap_error"].clone();
    assert!(
        note(0).as_str().unwrap().starts_with("not looked up"),
        "{}",
        note(0)
    );
    assert!(
        note(39)
            .as_str()
            .unwrap()
            .starts_with("no source map uploaded")
    );
}

#[test]
fn url_candidates_match_sentry_clis_tilde_prefix() {
    let cases: [(&str, &[&str]); 4] = [
        (
            "https://cdn.example.com/js/app.js?v=3",
            &[
                "https://cdn.example.com/js/app.js",
                "~/js/app.js",
                "https://cdn.example.com/js/app.js?v=3",
            ],
        ),
        (
            "/srv/dist/app.js",
            &["/srv/dist/app.js", "~/srv/dist/app.js"],
        ),
        (
            "file:///srv/app.js",
            &["file:///srv/app.js", "~/srv/app.js"],
        ),
        ("~/app.js", &["~/app.js"]),
    ];
    for (path, want) in cases {
        assert_eq!(url_candidates(path), want, "{path}");
    }
}

#[test]
fn joining_paths_and_urls() {
    let cases = [
        ("/srv/dist/app.js", "../src/a.js", "/srv/src/a.js"),
        ("/srv/dist/app.js", "./a.js", "/srv/dist/a.js"),
        (
            "https://x.org/js/app.js",
            "../src/a.ts",
            "https://x.org/src/a.ts",
        ),
        ("https://x.org/app.js", "../../a.ts", "https://x.org/a.ts"),
        ("app.js", "a.js", "a.js"),
        ("/srv/app.js", "/abs/a.js", "/abs/a.js"),
    ];
    for (minified, source, want) in cases {
        assert_eq!(join_path(minified, source), want, "{minified} + {source}");
    }
    assert_eq!(join_url("~/js/app.js", "app.js.map"), "~/js/app.js.map");
    assert_eq!(
        join_url("~/js/app.js", "~/maps/app.js.map"),
        "~/maps/app.js.map"
    );
    assert_eq!(clean_source_name("webpack://shop/./src/a.js"), "./src/a.js");
    assert_eq!(clean_source_name("webpack:///src/a.js"), "src/a.js");
    assert_eq!(clean_source_name("../src/a.js"), "../src/a.js");
}

#[test]
fn long_lines_are_cut_around_the_column() {
    let long = "The public is more familiar with bad design than good design. It is, in effect, conditioned to prefer bad design, because that is what it lives with. The new becomes threatening, the old reassuring.";
    let cases = [
        ("foo", 0, "foo".to_owned()),
        (long, 0, format!("{} {{snip}}", &long[..140])),
        (long, 66, format!("{{snip}} {} {{snip}}", &long[6..146])),
        (
            long,
            9999,
            format!("{{snip}} {}", &long[long.len() - 140..]),
        ),
    ];
    for (line, column, want) in cases {
        assert_eq!(trim_line(line, column), want, "column {column}");
    }
    // 8 characters (❤️ is two), 20 to 28 bytes each.
    let unicode = ".❤️🧡💛💚💙💜";
    let short = unicode.repeat(10);
    assert_eq!(trim_line(&short, 70), short, "80 characters are not long");
    let cut = trim_line(&unicode.repeat(25), 100);
    assert!(
        cut.starts_with("{snip} ") && cut.ends_with(" {snip}"),
        "{cut}"
    );
    let kept = cut
        .trim_start_matches("{snip} ")
        .trim_end_matches(" {snip}");
    assert_eq!(kept.chars().count(), 140);
    assert_eq!(
        kept,
        unicode
            .repeat(25)
            .chars()
            .skip(40)
            .take(140)
            .collect::<String>()
    );
}

#[test]
fn minified_names_as_v8_prints_them() {
    for (printed, name) in [
        ("o", "o"),
        ("Object.o", "o"),
        ("new o", "o"),
        ("async t.run", "run"),
    ] {
        assert_eq!(minified_identifier(printed), name);
    }
}

#[test]
fn weights_count_the_sources_and_the_minified_file() {
    let with = ParsedMap::parse(MAP, Some(MINIFIED.to_vec())).unwrap();
    let without = ParsedMap::parse(MAP, None).unwrap();
    assert_eq!(with.weight() - without.weight(), MINIFIED.len());
    assert!(without.weight() > 500, "{}", without.weight());
    assert!(ParsedMap::parse(b"{\"version\": 3, \"mappings\": 7}", None).is_err());
    assert!(ParsedMap::parse(b"not json", None).is_err());
}

#[test]
fn the_indexed_scope_lookup_agrees_with_the_crates() {
    let map = map();
    let view = map.minified.as_ref().unwrap();
    assert!(map.ascii);
    for (col, name, want) in [
        (498, "m", "chargeCard"),
        (578, "c", "processOrder"),
        (629, "d", "run"),
    ] {
        let token = map.map.lookup_token(0, col - 1).unwrap();
        assert_eq!(scope_name(&map, token, name), Some(want), "{name}");
        assert_eq!(view.get_original_function_name(token, name), Some(want));
        assert_eq!(scope_name(&map, token, "zz"), None);
    }
}
