//! Resolving minified JavaScript frames through their source maps: which
//! map each frame needs ([`wanted`]), and the frames rewritten with what
//! the maps say ([`apply`]), as Sentry does it (getsentry/symbolicator,
//! `symbolicator-js`).
//!
//! - A frame names its map by debug id: the event's `debug_meta.images`
//!   lists `{type: "sourcemap", code_file, debug_id}`, and a frame whose
//!   `abs_path` (else `filename`) is an image's `code_file` uses that debug
//!   id. Without one, an event with a release looks the frame's URL up in
//!   that release's bundles (`~/path` matching, see [`url_candidates`]).
//! - Event positions are 1-based, the map's 0-based. The resolved frame
//!   takes the token's source, line and column, the function name (the
//!   enclosing function's original name found through the minified
//!   source, else the name the calling frame's call site maps to, else the
//!   minified name), and five lines of context each side from the map's
//!   `sourcesContent`, long lines cut around the column with `{snip}`.
//! - At most [`MAX_MAPS_PER_EVENT`] maps are looked up for one event;
//!   frames needing others are noted as not looked up.
//! - An exception with a resolved frame keeps the frames as sent in its
//!   `raw_stacktrace`. A frame that needed a map but could not be resolved
//!   stays as sent, with the reason in its `data.sourcemap_error`: a note
//!   for the reader, never an error for the event.

use crate::domain::{EventPayload, StackFrame, Stacktrace};
use serde_json::{Map, Value, json};
use sourcemap::{DecodedMap, SourceMap, SourceView, Token};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Lines of context on either side of a frame's line, as Sentry shows.
const CONTEXT_LINES: usize = 5;

/// Which map a frame needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapKey {
    /// The map with this debug id, in the event's organization.
    DebugId(Uuid),
    /// The map of the minified file at `url` in the project's bundles of
    /// `release` and `dist`.
    Release {
        release: String,
        dist: Option<String>,
        url: String,
    },
}

/// What looking a map up found.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found(Arc<ParsedMap>),
    /// No bundle holds it (yet: an event may arrive before its map).
    Missing,
    /// A map was found but cannot be read; the reason.
    Broken(String),
    /// The maps could not be read at all (the database did not answer in
    /// time).
    Unavailable,
}

/// A source map ready for lookups, with the minified file it belongs to
/// when the bundle holds it (it names the enclosing functions).
#[derive(Debug)]
pub struct ParsedMap {
    map: SourceMap,
    minified: Option<SourceView>,
    /// Whether the minified file is ASCII, as minifiers write it: a column
    /// is then a byte offset (see [`scope_name`]).
    ascii: bool,
    /// Approximate bytes held in memory, for the cache's bound.
    weight: usize,
}

impl ParsedMap {
    /// Parses a map (a regular one, an index map, or Hermes') and, when
    /// given and UTF-8, its minified file.
    pub fn parse(map: &[u8], minified: Option<Vec<u8>>) -> Result<ParsedMap, String> {
        let map = match sourcemap::decode_slice(map).map_err(|e| e.to_string())? {
            DecodedMap::Regular(map) => map,
            DecodedMap::Index(index) => index.flatten().map_err(|e| e.to_string())?,
            DecodedMap::Hermes(hermes) => (*hermes).clone(),
        };
        let minified = minified
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .map(SourceView::from_string);
        let text = |s: Option<&str>| s.map_or(0, |s| s.len() + 16);
        let weight = map.get_token_count() as usize * std::mem::size_of::<sourcemap::RawToken>()
            + map.names().map(|n| n.len() + 16).sum::<usize>()
            + map.sources().map(|s| s.len() + 16).sum::<usize>()
            // Each source's text, and the line offsets its view keeps.
            + map
                .source_contents()
                .map(|c| text(c) + c.map_or(0, |c| c.lines().count() * 16))
                .sum::<usize>()
            + minified.as_ref().map_or(0, |m| m.source().len())
            + std::mem::size_of::<ParsedMap>();
        let ascii = minified.as_ref().is_some_and(|m| m.source().is_ascii());
        Ok(ParsedMap {
            map,
            minified,
            ascii,
            weight,
        })
    }

    /// Approximate bytes this map holds in memory.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

/// The event's debug ids by the file they belong to (`code_file`).
fn debug_images(payload: &EventPayload) -> HashMap<&str, Uuid> {
    let images = payload
        .other
        .get("debug_meta")
        .and_then(|m| m.get("images"))
        .and_then(Value::as_array);
    images
        .into_iter()
        .flatten()
        .filter(|image| image.get("type").and_then(Value::as_str) == Some("sourcemap"))
        .filter_map(|image| {
            let file = image.get("code_file")?.as_str()?;
            let id = image.get("debug_id")?.as_str()?.trim().parse().ok()?;
            Some((file, id))
        })
        .collect()
}

/// Where a frame's code came from: `abs_path`, else `filename` (the browser
/// SDK sends the full URL as `filename`; Relay moves it to `abs_path`).
fn frame_path(frame: &StackFrame) -> Option<&str> {
    frame
        .abs_path
        .as_deref()
        .or(frame.filename.as_deref())
        .map(str::trim)
        .filter(|p| !p.is_empty())
}

/// Whether a path can name an uploaded file: a URL or an absolute path,
/// not an engine's own (`node:internal/...`, `<anonymous>`, `native`).
fn is_uploadable(path: &str) -> bool {
    path.contains("://") || path.starts_with('/') || path.starts_with("~/")
}

/// The map `frame` needs, if any.
fn key_of(
    frame: &StackFrame,
    images: &HashMap<&str, Uuid>,
    release: Option<&(String, Option<String>)>,
) -> Option<MapKey> {
    let path = frame_path(frame)?;
    if let Some(id) = images.get(path) {
        return Some(MapKey::DebugId(*id));
    }
    let (release, dist) = release?;
    is_uploadable(path).then(|| MapKey::Release {
        release: release.clone(),
        dist: dist.clone(),
        url: path.to_owned(),
    })
}

fn release_of(payload: &EventPayload) -> Option<(String, Option<String>)> {
    let text = |t: Option<&str>| {
        t.map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    Some((
        text(payload.release.as_deref())?,
        text(payload.dist.as_deref()),
    ))
}

/// The most maps one event may have looked up. Anyone holding a DSN
/// decides how many distinct frame URLs and debug ids an event names, and
/// each is a database read and a parse: a real bundle needs a handful.
pub const MAX_MAPS_PER_EVENT: usize = 32;

/// The maps the frames of `payload`'s exceptions need, each once, at most
/// [`MAX_MAPS_PER_EVENT`]: those of the frames nearest the error first
/// (frames are oldest first, so the last frame is where it was raised).
pub fn wanted(payload: &EventPayload) -> Vec<MapKey> {
    let images = debug_images(payload);
    let release = release_of(payload);
    let mut keys: Vec<MapKey> = Vec::new();
    let frames = payload
        .exception
        .iter()
        .flatten()
        .flat_map(|e| e.frames().iter().rev());
    for key in frames.filter_map(|f| key_of(f, &images, release.as_ref())) {
        if !keys.contains(&key) {
            if keys.len() == MAX_MAPS_PER_EVENT {
                break;
            }
            keys.push(key);
        }
    }
    keys
}

/// The URLs a frame's path may have been uploaded under: as it is (without
/// a query or fragment), and as `~/path`, sentry-cli's default prefix
/// that stands for any scheme and host (`https://cdn.example.com/js/app.js`
/// and `file:///srv/js/app.js` both match `~/js/app.js`).
pub fn url_candidates(path: &str) -> Vec<String> {
    let bare = path.split(['?', '#']).next().unwrap_or(path);
    let mut out = vec![bare.to_owned()];
    let rest = match bare.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]),
        None => Some(bare),
    };
    if let Some(rest) = rest.filter(|r| r.starts_with('/')) {
        out.push(format!("~{rest}"));
    }
    if bare != path {
        out.push(path.to_owned());
    }
    out.dedup();
    out
}

/// The URL a minified file's source map reference points at: absolute
/// references as they are, relative ones next to the minified file.
pub fn join_url(base: &str, reference: &str) -> String {
    if reference.contains("://") || reference.starts_with("~/") || reference.starts_with('/') {
        return reference.to_owned();
    }
    match base.rfind('/') {
        Some(i) => format!("{}{reference}", &base[..=i]),
        None => reference.to_owned(),
    }
}

/// Rewrites the frames of `payload`'s exceptions with `maps` (see the
/// module documentation); whether it changed anything (a frame resolved,
/// or one noted as unresolvable), so that an event left as it was can be
/// stored as sent. CPU work: run it off the async workers.
pub fn apply(payload: &mut EventPayload, maps: &HashMap<MapKey, Lookup>) -> bool {
    let images: HashMap<String, Uuid> = debug_images(payload)
        .into_iter()
        .map(|(file, id)| (file.to_owned(), id))
        .collect();
    let images: HashMap<&str, Uuid> = images.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let release = release_of(payload);
    let mut changed = false;
    for exception in payload.exception.iter_mut().flatten() {
        let Some(trace) = exception.stacktrace.as_mut() else {
            continue;
        };
        let raw = trace.frames.clone();
        let mut resolved_any = false;
        // Frames are oldest first: a caller comes before the frame it
        // called, and its call site names the callee.
        let mut callsite_name: Option<String> = None;
        for frame in &mut trace.frames {
            let callsite = callsite_name.take();
            let Some(key) = key_of(frame, &images, release.as_ref()) else {
                continue;
            };
            let outcome = match maps.get(&key) {
                Some(Lookup::Found(map)) => resolve_frame(frame, map, callsite.as_deref()),
                Some(Lookup::Broken(why)) => Err(format!("the source map cannot be read: {why}")),
                Some(Lookup::Unavailable) => Err("source maps could not be read in time".into()),
                // `wanted` left it out.
                None => Err(format!(
                    "not looked up: an event may use at most {MAX_MAPS_PER_EVENT} source maps"
                )),
                Some(Lookup::Missing) => match &key {
                    MapKey::DebugId(id) => Err(format!("no source map uploaded for debug id {id}")),
                    // Most frames of a release without uploads have no
                    // map; that is no news worth a note.
                    MapKey::Release { .. } => continue,
                },
            };
            match outcome {
                Ok((resolved, token_name)) => {
                    *frame = resolved;
                    callsite_name = token_name;
                    resolved_any = true;
                }
                Err(why) => note(frame, "sourcemap_error", Value::String(why)),
            }
            changed = true;
        }
        if resolved_any {
            exception.raw_stacktrace = Some(Stacktrace {
                frames: raw,
                other: Map::new(),
            });
        }
    }
    changed
}

/// Adds `key: value` to the frame's `data` object (made if absent).
fn note(frame: &mut StackFrame, key: &str, value: Value) {
    let data = frame
        .other
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        data.insert(key.to_owned(), value);
    }
}

/// The last identifier of a minified function name as V8 prints it
/// (`Object.o`, `new o`, `async o`, `t.<computed>`).
fn minified_identifier(function: &str) -> &str {
    let last = function.rsplit(['.', ' ']).next().unwrap_or(function);
    last.trim()
}

/// `frame` resolved through `map`, and the original name its own position
/// maps to (for the frame it called); or why it cannot be.
fn resolve_frame(
    frame: &StackFrame,
    map: &ParsedMap,
    callsite_name: Option<&str>,
) -> Result<(StackFrame, Option<String>), String> {
    let line = frame
        .lineno
        .filter(|l| *l > 0)
        .ok_or("the frame has no line number")?;
    let column = frame.colno.unwrap_or(1).saturating_sub(1);
    let (line0, col0) = (
        u32::try_from(line - 1).map_err(|_| "the line number is out of range")?,
        u32::try_from(column).map_err(|_| "the column is out of range")?,
    );
    let token = map
        .map
        .lookup_token(line0, col0)
        .filter(|t| t.get_dst_line() == line0 && t.has_source())
        .ok_or("the frame's position is not in its source map")?;
    let scope_name = frame
        .function
        .as_deref()
        .map(minified_identifier)
        .filter(|name| !name.is_empty())
        .and_then(|name| scope_name(map, token, name));
    let function = scope_name
        .or(callsite_name)
        .or(frame.function.as_deref())
        .map(str::to_owned);
    let source = token.get_source().unwrap_or_default();
    let (src_line, src_col) = (token.get_src_line(), token.get_src_col());
    let mut resolved = StackFrame {
        filename: Some(clean_source_name(source)),
        abs_path: Some(match frame_path(frame) {
            Some(minified) if !source.contains("://") => join_path(minified, source),
            _ => source.to_owned(),
        }),
        function,
        // The module the SDK derived from the minified file's name says
        // nothing about the original file; grouping then uses its name.
        module: None,
        lineno: Some(u64::from(src_line) + 1),
        colno: Some(u64::from(src_col) + 1),
        context_line: None,
        pre_context: None,
        post_context: None,
        in_app: frame.in_app,
        vars: frame.vars.clone(),
        other: frame.other.clone(),
    };
    if let Some(view) = token.get_source_view() {
        let (pre, line, post) = context(view, src_line as usize, src_col as usize);
        resolved.pre_context = Some(pre);
        resolved.context_line = line;
        resolved.post_context = Some(post);
    }
    note(
        &mut resolved,
        "sourcemap",
        json!(frame_path(frame).unwrap_or_default()),
    );
    Ok((resolved, token.get_name().map(str::to_owned)))
}

/// The original name of the function `token` is in, found as Sentry's
/// older resolver did (and the `sourcemap` crate's
/// `get_original_function_name` does): among the 128 tokens before it,
/// the one whose minified text is the frame's minified function name and
/// follows the keyword `function` names it. The crate's version counts
/// UTF-16 columns from the start of the line for every frame, which on a
/// minified file of one long line costs more than all the rest of the
/// event; on an ASCII file a column is a byte offset, so this indexes.
fn scope_name<'m>(map: &'m ParsedMap, token: Token<'m>, minified_name: &str) -> Option<&'m str> {
    let view = map.minified.as_ref()?;
    if !map.ascii {
        return view.get_original_function_name(token, minified_name);
    }
    let identifier_at = |t: &Token<'_>| -> Option<&str> {
        let rest = view
            .get_line(t.get_dst_line())?
            .get(t.get_dst_col() as usize..)?;
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        Some(&rest[..end]).filter(|id| !id.is_empty())
    };
    let at = token_index(&map.map, token.get_dst_line(), token.get_dst_col())?;
    let mut later = None;
    for i in (at.saturating_sub(128)..=at).rev() {
        let t = map.map.get_token(i)?;
        let id = identifier_at(&t);
        if let (Some("function"), Some(named)) = (id, later) {
            return Some(named);
        }
        later = match id == Some(minified_name) {
            true => t.get_name(),
            false => None,
        };
    }
    None
}

/// The index of the token `lookup_token(line, col)` finds: the last one
/// at or before the position.
fn token_index(map: &SourceMap, line: u32, col: u32) -> Option<usize> {
    let (mut low, mut high) = (0usize, map.get_token_count() as usize);
    while low < high {
        let mid = low + (high - low) / 2;
        let t = map.get_token(mid)?;
        match (t.get_dst_line(), t.get_dst_col()) <= (line, col) {
            true => low = mid + 1,
            false => high = mid,
        }
    }
    low.checked_sub(1)
}

/// A map's source name as people read it: bundlers' namespaces taken off
/// (`webpack://app/./src/a.js` is `./src/a.js`).
fn clean_source_name(source: &str) -> String {
    for scheme in ["webpack://", "webpack-internal://", "turbopack://"] {
        if let Some(rest) = source.strip_prefix(scheme) {
            let rest = rest.trim_start_matches('/');
            return match rest.split_once("/./") {
                Some((_, path)) => format!("./{path}"),
                None => rest.to_owned(),
            };
        }
    }
    source.to_owned()
}

/// `source` (relative to the minified file, as bundlers write it) as a
/// path or URL beside `minified`: `/srv/dist/app.js` and `../src/a.js`
/// make `/srv/src/a.js`.
fn join_path(minified: &str, source: &str) -> String {
    if source.starts_with('/') {
        return source.to_owned();
    }
    let (root, path) = match minified.split_once("://") {
        Some((scheme, rest)) => {
            let host_end = rest.find('/').unwrap_or(rest.len());
            (
                format!("{scheme}://{}", &rest[..host_end]),
                &rest[host_end..],
            )
        }
        None => (String::new(), minified),
    };
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop(); // the minified file's own name
    for part in source.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                if parts.len() > 1 {
                    parts.pop();
                }
            }
            part => parts.push(part),
        }
    }
    format!("{root}{}", parts.join("/"))
}

/// Five lines before, the line itself, and five after, each cut to about
/// 140 characters around `column`.
fn context(
    view: &SourceView,
    line: usize,
    column: usize,
) -> (Vec<String>, Option<String>, Vec<String>) {
    let get = |i: usize| {
        u32::try_from(i)
            .ok()
            .and_then(|i| view.get_line(i))
            .map(|l| trim_line(l, column))
    };
    let pre = (line.saturating_sub(CONTEXT_LINES)..line)
        .filter_map(get)
        .collect();
    let post = (line + 1..=line + CONTEXT_LINES).map_while(get).collect();
    (pre, get(line), post)
}

/// A line of at most 150 characters as it is; a longer one cut to 140
/// around `column` (60 before it), with `{snip}` where it was cut, as
/// Sentry does. Counted in characters (`column` too), so that a line of
/// non-ASCII text is cut where it is long, not where its bytes are many.
fn trim_line(line: &str, column: usize) -> String {
    let len = line.chars().count();
    if len <= 150 {
        return line.to_owned();
    }
    let mut start = column.min(len).saturating_sub(60);
    if start < 5 {
        start = 0;
    }
    let mut end = (start + 140).min(len);
    if end > len.saturating_sub(5) {
        end = len;
    }
    if end == len {
        start = end.saturating_sub(140);
    }
    // Character positions as byte offsets.
    let byte = |chars: usize| {
        line.char_indices()
            .nth(chars)
            .map_or(line.len(), |(i, _)| i)
    };
    let mut out = String::new();
    if start > 0 {
        out.push_str("{snip} ");
    }
    out.push_str(&line[byte(start)..byte(end)]);
    if end < len {
        out.push_str(" {snip}");
    }
    out
}

#[cfg(test)]
mod tests;
