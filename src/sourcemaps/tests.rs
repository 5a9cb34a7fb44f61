//! What ingest stores of an event that names source maps: built as sent
//! unless resolving changed it, its minified frames kept beside the
//! resolved ones through the stored body, and as sent when resolving
//! would make it too large.

use super::*;
use crate::domain::StackFrame;
use resolve::ParsedMap;
use serde_json::{Value, json};
use std::sync::Arc;

const MINIFIED: &[u8] = include_bytes!("fixtures/app.js");
const MAP: &[u8] = include_bytes!("fixtures/app.js.map");
const ID: &str = "7a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";
const FILE: &str = "/srv/shop/dist/app.js";

/// An event thrown in the fixture's bundle, as @sentry/node sends it
/// (frames oldest first), without an `event_id`; `extra` merged in, but
/// its `vars`, which go to the top frame.
fn sent(extra: Value) -> Vec<u8> {
    let frame = |function: &str, colno: u64| {
        json!({"filename": FILE, "function": function, "lineno": 1, "colno": colno,
               "in_app": true})
    };
    let mut top = frame("m", 498);
    if let Some(vars) = extra.get("vars") {
        top["vars"] = vars.clone();
    }
    let mut event = json!({
        "platform": "node",
        "exception": {"values": [{"type": "Error", "value": "card declined for order 17",
            "stacktrace": {"frames": [frame("d", 629), frame("c", 578), top]}}]},
    });
    for (key, value) in extra.as_object().unwrap() {
        if key != "vars" {
            event[key] = value.clone();
        }
    }
    serde_json::to_vec(&event).unwrap()
}

fn debug_meta() -> Value {
    json!({"images": [{"type": "sourcemap", "code_file": FILE, "debug_id": ID}]})
}

fn found() -> HashMap<MapKey, Lookup> {
    let map = ParsedMap::parse(MAP, Some(MINIFIED.to_vec())).unwrap();
    HashMap::from([(
        MapKey::DebugId(ID.parse().unwrap()),
        Lookup::Found(Arc::new(map)),
    )])
}

/// The event ingest stores of `bytes`, with `maps` for the ones it names.
fn ingest(bytes: &[u8], maps: &HashMap<MapKey, Lookup>, fallback_id: Uuid) -> Event {
    let project = Uuid::nil();
    match Parsed::from_json(project, bytes, Some(fallback_id)).unwrap() {
        Parsed::Event(event) => event,
        Parsed::Minified {
            payload,
            maps: keys,
        } => {
            // As the service answers: every key asked for, missing unless
            // `maps` has it.
            let mut answered = maps.clone();
            for key in keys {
                answered.entry(key).or_insert(Lookup::Missing);
            }
            build(project, *payload, &answered, bytes).unwrap()
        }
    }
}

/// The raised exception's top frame, and that of its minified frames if
/// it kept them, as the stored body reads back.
fn top_frames(event: &Event) -> (StackFrame, Option<StackFrame>) {
    let payload = event.payload().unwrap();
    let exception = payload.exception.unwrap().pop().unwrap();
    let top = |frames: &[StackFrame]| frames.last().cloned().unwrap();
    (
        top(exception.frames()),
        exception.raw_stacktrace.map(|raw| top(&raw.frames)),
    )
}

#[test]
fn a_resolved_event_keeps_its_minified_frames_through_the_stored_body() {
    let bytes = sent(json!({"debug_meta": debug_meta()}));
    let id = Uuid::now_v7();
    let event = ingest(&bytes, &found(), id);
    assert_eq!(event.id(), id, "the envelope's id, as for any event");
    let (top, raw) = top_frames(&event);
    assert_eq!(
        (top.function.as_deref(), top.lineno),
        (Some("chargeCard"), Some(4))
    );
    assert!(top.context_line.unwrap().contains("card declined"));
    let raw = raw.expect("the minified frames are stored");
    assert_eq!((raw.function.as_deref(), raw.colno), (Some("m"), Some(498)));
    // Grouping saw the resolved frames.
    assert!(event.culprit().unwrap().contains("chargeCard"), "{event:?}");
    // What the API and the pages show.
    let parts = event.parts().unwrap();
    let shown: Value = serde_json::from_str(parts.exception().unwrap().get()).unwrap();
    let exception = &shown["values"][0];
    assert_eq!(
        exception["stacktrace"]["frames"][2]["function"],
        "chargeCard"
    );
    assert_eq!(exception["raw_stacktrace"]["frames"][2]["function"], "m");
}

#[test]
fn an_event_that_resolving_leaves_as_it_was_is_stored_as_sent() {
    let too_large = json!({"debug_meta": debug_meta(), "vars": {"blob": "x".repeat(600 * 1024)}});
    let cases = [
        // what was sent, the maps found, why it is stored as sent
        (json!({}), found(), "no frame names a map"),
        (
            json!({"release": "shop@1.0"}),
            HashMap::new(),
            "a release without uploads",
        ),
        (
            too_large,
            found(),
            "resolved, it would be over the size limit",
        ),
    ];
    for (extra, maps, why) in cases {
        let bytes = sent(extra);
        let event = ingest(&bytes, &maps, Uuid::now_v7());
        assert_eq!(event.body().decompress().unwrap(), bytes, "{why}");
        let (top, raw) = top_frames(&event);
        assert_eq!(top.function.as_deref(), Some("m"), "{why}");
        assert!(raw.is_none(), "{why}");
    }
}

#[test]
fn a_missing_map_is_a_note_on_the_frame_stored_with_the_event() {
    let bytes = sent(json!({"debug_meta": debug_meta()}));
    let event = ingest(&bytes, &HashMap::new(), Uuid::now_v7());
    let (top, raw) = top_frames(&event);
    assert_eq!(top.function.as_deref(), Some("m"));
    assert_eq!(
        top.other["data"]["sourcemap_error"],
        format!("no source map uploaded for debug id {ID}")
    );
    assert!(raw.is_none());
}
