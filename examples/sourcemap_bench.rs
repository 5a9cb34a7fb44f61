//! What resolving minified JavaScript costs at ingest: an event whose
//! raised exception has 20 minified frames, resolved through a 1 MB
//! source map (with `sourcesContent` and `names`, as bundlers write
//! them), against the same event without source maps; and the memory the
//! parsed-map cache holds at its bound.
//!
//! Each line times the work ingest does between the bytes of an event and
//! the `Event` handed to the writers, per event, over `BENCH_SOURCEMAP_EVENTS`
//! events (default 2,000), single-threaded:
//!
//! - `without maps`: parse the payload, build the event with its JSON as
//!   sent (the baseline);
//! - `warm`: parse the payload, resolve the 20 frames through a map
//!   already parsed (a cache hit), and build the event with its JSON
//!   written out again;
//! - `cold`: the same plus parsing the map and its minified file first (a
//!   cache miss; reading them from PostgreSQL comes on top).
//!
//! Then the cache is filled past its bound (`BENCH_SOURCEMAP_CACHE_MB`,
//! default 256) with parsed copies of the map, and the resident memory the
//! process gained is printed beside the bytes the cache counts.
//!
//! Run: `cargo run --release --example sourcemap_bench`.

use mesher::domain::EventPayload;
use mesher::sourcemaps::cache::MapCache;
use mesher::sourcemaps::resolve::{self, Lookup, MapKey, ParsedMap};
use mesher::sourcemaps::{self, Parsed};
use serde_json::json;
use sourcemap::SourceMapBuilder;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Functions in the generated app: the map comes to about 1 MB.
const FUNCTIONS: u32 = 5_000;
const FRAMES: u32 = 20;
const FILE: &str = "https://shop.example.com/static/js/app.3f9a1c.js";

/// A minified file of one line, its source, and the map between them:
/// each original function `processOrderN(order)` on lines of its own,
/// minified to `function aN(b){return c(b)+N}`.
fn app() -> (String, Vec<u8>, Vec<u32>) {
    let mut source = String::new();
    let mut minified = String::new();
    let mut builder = SourceMapBuilder::new(Some("app.3f9a1c.js"));
    let src = builder.add_source("webpack://shop/./src/orders.js");
    let mut columns = Vec::new();
    for n in 0..FUNCTIONS {
        let line = n * 4;
        writeln!(
            source,
            "// Order step {n}: validates and charges the order."
        )
        .unwrap();
        writeln!(source, "export function processOrder{n}(order) {{").unwrap();
        writeln!(
            source,
            "  return chargeCard(order.items, order.total) + {n};"
        )
        .unwrap();
        writeln!(source, "}}").unwrap();
        let start = minified.len() as u32;
        write!(minified, "function a{n}(b){{return c(b)+{n}}}").unwrap();
        let name_col = start + 9;
        let body_col = name_col + format!("a{n}(b){{").len() as u32;
        builder.add_raw(0, start, line + 1, 0, Some(src), None, false);
        let name = builder.add_name(&format!("processOrder{n}"));
        builder.add_raw(0, name_col, line + 1, 16, Some(src), Some(name), false);
        let call = builder.add_name("chargeCard");
        builder.add_raw(0, body_col, line + 2, 2, Some(src), None, false);
        builder.add_raw(0, body_col + 7, line + 2, 9, Some(src), Some(call), false);
        columns.push(body_col + 7);
    }
    builder.set_source_contents(src, Some(&source));
    let mut map = Vec::new();
    builder.into_sourcemap().to_writer(&mut map).unwrap();
    (minified, map, columns)
}

/// An event with `FRAMES` minified frames at `columns`, with or without
/// the debug image that names its map.
fn event_json(columns: &[u32], debug_id: Option<Uuid>) -> Vec<u8> {
    let frames: Vec<_> = (0..FRAMES as usize)
        .map(|i| {
            let j = i * 397 % columns.len();
            json!({"filename": FILE, "abs_path": FILE, "function": format!("a{j}"),
                   "lineno": 1, "colno": columns[j] + 1, "in_app": true})
        })
        .collect();
    let mut event = json!({
        "event_id": Uuid::now_v7().simple().to_string(),
        "platform": "javascript",
        "exception": {"values": [{"type": "TypeError", "value": "order.items is undefined",
                                   "stacktrace": {"frames": frames}}]},
        "sdk": {"name": "sentry.javascript.browser", "version": "10.0.0"},
    });
    if let Some(id) = debug_id {
        event["debug_meta"] =
            json!({"images": [{"type": "sourcemap", "code_file": FILE, "debug_id": id}]});
    }
    serde_json::to_vec(&event).unwrap()
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn per_event(label: &str, events: usize, base: Option<f64>, mut one: impl FnMut()) -> f64 {
    one(); // warm-up
    let start = Instant::now();
    for _ in 0..events {
        one();
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / events as f64;
    match base {
        Some(base) => println!(
            "{label:>14}: {micros:9.1} µs/event ({:+.1} µs, {:.1}x the baseline)",
            micros - base,
            micros / base
        ),
        None => println!("{label:>14}: {micros:9.1} µs/event"),
    }
    micros
}

fn main() {
    let events = env("BENCH_SOURCEMAP_EVENTS", 2_000);
    let (minified, map_bytes, columns) = app();
    let debug_id = Uuid::now_v7();
    let project = Uuid::now_v7();
    println!(
        "source map: {} bytes of JSON ({} functions, {} bytes of minified code); {FRAMES} frames per event, {events} events",
        map_bytes.len(),
        FUNCTIONS,
        minified.len()
    );
    let plain = event_json(&columns, None);
    let with_image = event_json(&columns, Some(debug_id));
    let key = MapKey::DebugId(debug_id);
    let parse = || ParsedMap::parse(&map_bytes, Some(minified.clone().into_bytes())).unwrap();

    // The resolved event must really be resolved, or the timing means
    // nothing.
    let mut check = EventPayload::from_json(&with_image).unwrap();
    assert_eq!(resolve::wanted(&check), std::slice::from_ref(&key));
    resolve::apply(
        &mut check,
        &HashMap::from([(key.clone(), Lookup::Found(Arc::new(parse())))]),
    );
    let top = check.exception.as_ref().unwrap()[0]
        .frames()
        .last()
        .cloned()
        .unwrap();
    assert!(
        top.function.as_deref().unwrap().starts_with("processOrder"),
        "{top:?}"
    );
    assert!(top.context_line.is_some());

    // As ingest does it: parse, and build at once (no frame names a map),
    // or resolve the frames, then build (see `mesher::sourcemaps`).
    let base = per_event("without maps", events, None, || {
        let parsed = Parsed::from_json(project, &plain, None).unwrap();
        assert!(matches!(parsed, Parsed::Event(_)));
    });
    let cached = HashMap::from([(key.clone(), Lookup::Found(Arc::new(parse())))]);
    let resolve_and_build = |maps: &HashMap<MapKey, Lookup>| {
        let Parsed::Minified { payload, .. } =
            Parsed::from_json(project, &with_image, None).unwrap()
        else {
            panic!("the event names its map");
        };
        sourcemaps::build(project, *payload, maps, &with_image).unwrap();
    };
    per_event("warm", events, Some(base), || resolve_and_build(&cached));
    per_event("cold", (events / 20).max(10), Some(base), || {
        let maps = HashMap::from([(key.clone(), Lookup::Found(Arc::new(parse())))]);
        resolve_and_build(&maps);
    });

    let bound = env("BENCH_SOURCEMAP_CACHE_MB", 256) * 1024 * 1024;
    let mut cache = MapCache::new(bound);
    let weight = parse().weight();
    let before = rss();
    let now = Instant::now();
    let copies = bound / weight + 5;
    for n in 0..copies {
        cache.insert(
            (Uuid::nil(), MapKey::DebugId(Uuid::from_u128(n as u128))),
            Lookup::Found(Arc::new(parse())),
            now,
        );
    }
    let stats = cache.stats();
    let grown = rss().saturating_sub(before);
    println!(
        "cache at its bound: {} maps, {:.1} MiB counted of {:.1} MiB allowed, resident memory grew {:.1} MiB ({:.2}x the count); one map counts {:.2} MiB",
        stats.entries,
        stats.bytes as f64 / 1048576.0,
        stats.max_bytes as f64 / 1048576.0,
        grown as f64 / 1048576.0,
        grown as f64 / stats.bytes.max(1) as f64,
        weight as f64 / 1048576.0,
    );
}
