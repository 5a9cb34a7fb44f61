//! [`Tag`]s: what an event is searched and broken down by. The SDK's own
//! tags, plus the ones Sentry derives from the event's fields, contexts,
//! request and user, computed once when the [`super::Event`] is built.
//!
//! What is derived, following Sentry (`interfaces/contexts.py`, the `Http`
//! and `User` interfaces, `EventManager`'s event tags) and Relay (which
//! fills the browser, OS and device contexts from the `User-Agent` header
//! when the SDK sent none):
//!
//! | key | from |
//! |-----|------|
//! | `level`, `environment`, `release`, `server_name` | the event's fields |
//! | `browser`, `browser.name` | the `browser` context (`{name} {version}`, `{name}`), else the request's `User-Agent` |
//! | `os`, `os.name` | the `os` context, else the `User-Agent` |
//! | `runtime`, `runtime.name` | the `runtime` context |
//! | `device`, `device.family` | the `device` context (`{model}`, `{family}`) |
//! | `url` | the request's URL, without query string or fragment |
//! | `user` | the first of the user's `id`, `username`, `email` and `ip_address` that is set, as `id:42`, `email:ann@example.org`, ... |
//!
//! A context is found by its type, as Sentry does: the context stored under
//! the type's name, else the one context whose `type` names it (the Rust
//! SDK sends its runtime as `contexts.rust` with `type: runtime`). Tags are
//! named after the type (`runtime.name`), whatever the context's key.
//!
//! The SDK's tags keep their names; a derived tag replaces an SDK tag of
//! the same name. Keys are at most [`MAX_KEY_CHARS`] characters of
//! `[a-zA-Z0-9_.:-]`, values non-empty, at most [`MAX_VALUE_CHARS`]
//! characters and on one line (Sentry's rules); a tag that breaks them is
//! left out of the index (it stays in the event's `tags`), and so are an
//! SDK's tags past the first [`MAX_SDK_TAGS`].

use super::{EventPayload, Severity};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The longest tag key indexed, in characters.
pub const MAX_KEY_CHARS: usize = 32;
/// The longest tag value indexed, in characters.
pub const MAX_VALUE_CHARS: usize = 200;
/// How many of an event's SDK tags are indexed; the aggregation per batch
/// grows with them.
pub const MAX_SDK_TAGS: usize = 50;

/// One `key: value` an event is searched and counted by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Whether `key` may name an indexed tag.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_KEY_CHARS
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Whether `value` may be an indexed tag's value.
pub fn valid_value(value: &str) -> bool {
    !value.trim().is_empty()
        && value.chars().count() <= MAX_VALUE_CHARS
        && !value.contains(['\n', '\r', '\0'])
}

/// The tags of an event with this payload and level, sorted by key (each
/// key once).
pub fn event_tags(payload: &EventPayload, level: Severity) -> Vec<Tag> {
    let mut tags = BTreeMap::new();
    for (key, value) in payload.tags.iter().take(MAX_SDK_TAGS) {
        tags.insert(key.clone(), value.clone());
    }
    let mut derive = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            tags.insert(key.to_owned(), value);
        }
    };
    let field = |f: &Option<String>| f.as_deref().map(str::trim).map(str::to_owned);
    derive("level", Some(level.as_str().to_owned()));
    derive("environment", field(&payload.environment));
    derive("release", field(&payload.release));
    derive("server_name", field(&payload.server_name));

    let contexts = payload.contexts.as_ref();
    let user_agent = payload.request.as_ref().and_then(user_agent).map(parse_ua);
    for (ty, ua) in [
        ("browser", user_agent.as_ref().map(|u| &u.browser)),
        ("os", user_agent.as_ref().map(|u| &u.os)),
    ] {
        match contexts.and_then(|c| context(c, ty)) {
            Some(ctx) => {
                derive(ty, joined(ctx, "name", "version"));
                derive(&format!("{ty}.name"), text(ctx, "name"));
            }
            None => {
                if let Some((name, version)) = ua.and_then(Option::as_ref) {
                    derive(ty, version.as_ref().map(|v| format!("{name} {v}")));
                    derive(&format!("{ty}.name"), Some(name.clone()));
                }
            }
        }
    }
    if let Some(ctx) = contexts.and_then(|c| context(c, "runtime")) {
        derive("runtime", joined(ctx, "name", "version"));
        derive("runtime.name", text(ctx, "name"));
    }
    if let Some(ctx) = contexts.and_then(|c| context(c, "device")) {
        derive("device", text(ctx, "model"));
        derive("device.family", text(ctx, "family"));
    }
    derive("url", payload.request.as_ref().and_then(url));
    derive("user", payload.user.as_ref().and_then(user));

    tags.into_iter()
        .filter(|(k, v)| valid_key(k) && valid_value(v))
        .map(|(key, value)| Tag { key, value })
        .collect()
}

/// The context of type `ty`: the one under that name (unless its `type`
/// says it is another), else the only one whose `type` is `ty`.
fn context<'a>(contexts: &'a Map<String, Value>, ty: &str) -> Option<&'a Map<String, Value>> {
    let type_of = |c: &Map<String, Value>| c.get("type").and_then(Value::as_str).map(str::to_owned);
    if let Some(Value::Object(c)) = contexts.get(ty)
        && type_of(c).is_none_or(|t| t == ty)
    {
        return Some(c);
    }
    let mut typed = contexts
        .values()
        .filter_map(Value::as_object)
        .filter(|c| type_of(c).as_deref() == Some(ty));
    match (typed.next(), typed.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}

/// A field as text: a string (trimmed, non-empty), a number or a boolean.
fn text(object: &Map<String, Value>, field: &str) -> Option<String> {
    match object.get(field)? {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.to_owned()),
        _ => None,
    }
}

/// `{a} {b}`, only when both are set (Sentry leaves the tag out otherwise).
fn joined(object: &Map<String, Value>, a: &str, b: &str) -> Option<String> {
    Some(format!("{} {}", text(object, a)?, text(object, b)?))
}

/// The request's URL without its query string and fragment.
fn url(request: &Map<String, Value>) -> Option<String> {
    let url = text(request, "url")?;
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    // Long URLs are cut rather than dropped: the path is what tells them apart.
    let cut = url
        .char_indices()
        .nth(MAX_VALUE_CHARS)
        .map_or(url.len(), |(i, _)| i);
    Some(url[..cut].to_owned()).filter(|u| !u.is_empty())
}

/// Who the event happened to: `id:`, `username:`, `email:` or `ip:` and
/// the first of those fields that is set, in Sentry's order. `{{auto}}`
/// asks the server to fill in the client's address, which Mesher does not
/// do: it names nobody.
fn user(user: &Map<String, Value>) -> Option<String> {
    [
        ("id", "id"),
        ("username", "username"),
        ("email", "email"),
        ("ip_address", "ip"),
    ]
    .into_iter()
    .find_map(|(field, prefix)| {
        text(user, field)
            .filter(|v| v != "{{auto}}")
            .map(|v| format!("{prefix}:{v}"))
    })
}

/// The `User-Agent` header of a request, whose headers SDKs send as an
/// object or as a list of `[name, value]` pairs, in any letter case.
fn user_agent(request: &Map<String, Value>) -> Option<String> {
    let is_ua = |name: &str| name.eq_ignore_ascii_case("user-agent");
    match request.get("headers")? {
        Value::Object(headers) => headers
            .iter()
            .find(|(k, _)| is_ua(k))
            .and_then(|(_, v)| v.as_str().map(str::to_owned)),
        Value::Array(pairs) => pairs
            .iter()
            .find_map(|pair| match pair.as_array()?.as_slice() {
                [Value::String(k), Value::String(v)] if is_ua(k) => Some(v.clone()),
                _ => None,
            }),
        _ => None,
    }
}

/// What a `User-Agent` tells: the browser and the OS, each a name and
/// perhaps a version.
struct UserAgent {
    browser: Option<(String, Option<String>)>,
    os: Option<(String, Option<String>)>,
}

/// Reads a `User-Agent` with woothee's classifier (Relay uses uap-core's
/// regexes; the names differ a little: `Mac OSX` for `Mac OS X`).
fn parse_ua(ua: String) -> UserAgent {
    fn known(s: &str) -> Option<&str> {
        Some(s.trim()).filter(|s| !s.is_empty() && *s != "UNKNOWN")
    }
    let Some(found) = woothee::parser::Parser::new().parse(&ua) else {
        return UserAgent {
            browser: None,
            os: None,
        };
    };
    let version = |v: &str| known(v).map(str::to_owned);
    UserAgent {
        browser: known(found.name)
            .filter(|_| found.category != "crawler")
            .map(|name| (name.to_owned(), version(found.version))),
        os: known(found.os).map(|name| (name.to_owned(), version(&found.os_version))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grouping::tests::fixture;
    use serde_json::json;

    fn tags_of(json: Value) -> BTreeMap<String, String> {
        let payload = EventPayload::from_json(json.to_string().as_bytes()).unwrap();
        let level = payload
            .level
            .as_deref()
            .map_or(Severity::Error, |l| l.parse().unwrap());
        event_tags(&payload, level)
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_sdks_fixtures_get_sentrys_derived_tags() {
        let table: [(&str, &[(&str, &str)]); 8] = [
            (
                "python_exception",
                &[
                    ("environment", "production"),
                    ("level", "error"),
                    ("release", "shop@1.2.3"),
                    ("runtime", "CPython 3.11.7"),
                    ("runtime.name", "CPython"),
                    ("server_name", "vm"),
                ],
            ),
            (
                "python_message",
                &[
                    ("environment", "production"),
                    ("level", "info"),
                    ("release", "shop@1.2.3"),
                    ("runtime", "CPython 3.11.7"),
                    ("runtime.name", "CPython"),
                    ("server_name", "vm"),
                ],
            ),
            (
                "python_logging",
                &[
                    ("environment", "production"),
                    ("level", "error"),
                    ("release", "shop@1.2.3"),
                    ("runtime", "CPython 3.11.7"),
                    ("runtime.name", "CPython"),
                    ("server_name", "vm"),
                ],
            ),
            // jsdom's User-Agent names no browser or system woothee knows.
            (
                "javascript_exception",
                &[
                    ("environment", "production"),
                    ("level", "error"),
                    ("release", "web@4.5.6"),
                    ("url", "http://localhost:5000/checkout"),
                ],
            ),
            (
                "javascript_message",
                &[
                    ("environment", "production"),
                    ("level", "info"),
                    ("release", "web@4.5.6"),
                    ("url", "http://localhost:5000/checkout"),
                ],
            ),
            (
                "rust_error",
                &[
                    ("environment", "production"),
                    ("level", "error"),
                    ("os", "Linux 6.18.44-fc-v657"),
                    ("os.name", "Linux"),
                    ("release", "billing@0.3.0"),
                    ("runtime", "rustc 1.95.0"),
                    ("runtime.name", "rustc"),
                    ("server_name", "vm"),
                ],
            ),
            (
                "rust_message",
                &[
                    ("environment", "production"),
                    ("level", "warning"),
                    ("os", "Linux 6.18.44-fc-v657"),
                    ("os.name", "Linux"),
                    ("release", "billing@0.3.0"),
                    ("runtime", "rustc 1.95.0"),
                    ("runtime.name", "rustc"),
                    ("server_name", "vm"),
                ],
            ),
            (
                "rust_panic",
                &[
                    ("environment", "production"),
                    ("level", "fatal"),
                    ("os", "Linux 6.18.44-fc-v657"),
                    ("os.name", "Linux"),
                    ("release", "billing@0.3.0"),
                    ("runtime", "rustc 1.95.0"),
                    ("runtime.name", "rustc"),
                    ("server_name", "vm"),
                ],
            ),
        ];
        for (name, want) in table {
            assert_eq!(tags_of(fixture(name)), map(want), "{name}");
        }
    }

    #[test]
    fn browsers_and_systems_come_from_contexts_else_the_user_agent() {
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
        let firefox =
            "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";
        let table = [
            (
                json!({"request": {"headers": {"User-Agent": chrome}}}),
                vec![
                    ("browser", "Chrome 124.0.0.0"),
                    ("browser.name", "Chrome"),
                    ("os", "Windows 10 NT 10.0"),
                    ("os.name", "Windows 10"),
                ],
            ),
            // Headers as pairs, any letter case.
            (
                json!({"request": {"headers": [["user-agent", firefox]]}}),
                vec![
                    ("browser", "Firefox 125.0"),
                    ("browser.name", "Firefox"),
                    ("os.name", "Linux"),
                ],
            ),
            // The SDK's contexts win over the header.
            (
                json!({
                    "request": {"headers": {"User-Agent": chrome}},
                    "contexts": {"browser": {"name": "Safari", "version": "17.4"},
                                 "client_os": {"type": "os", "name": "iOS"}},
                }),
                vec![
                    ("browser", "Safari 17.4"),
                    ("browser.name", "Safari"),
                    ("os.name", "iOS"),
                ],
            ),
            // A context under another name counts only when it is the one
            // of its type; one under the type's name that says it is
            // another type does not.
            (
                json!({"contexts": {
                    "a": {"type": "runtime", "name": "node"},
                    "b": {"type": "runtime", "name": "deno"},
                    "device": {"type": "gpu", "name": "RTX"},
                }}),
                vec![],
            ),
            (
                json!({"contexts": {"device": {"model": "iPhone15,2", "family": "iPhone"}}}),
                vec![("device", "iPhone15,2"), ("device.family", "iPhone")],
            ),
            // A crawler is no browser.
            (
                json!({"request": {"headers": {"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}}}),
                vec![],
            ),
        ];
        for (json, want) in table {
            let mut want = map(&want);
            want.insert("level".into(), "error".into());
            assert_eq!(tags_of(json.clone()), want, "{json}");
        }
    }

    #[test]
    fn users_urls_and_the_sdks_own_tags() {
        let table = [
            (
                json!({"user": {"id": 42, "email": "a@b.c"}}),
                vec![("user", "id:42")],
            ),
            (
                json!({"user": {"id": "", "username": "ann", "email": "a@b.c"}}),
                vec![("user", "username:ann")],
            ),
            (
                json!({"user": {"email": "a@b.c"}}),
                vec![("user", "email:a@b.c")],
            ),
            (json!({"user": {"ip_address": "{{auto}}"}}), vec![]),
            (
                json!({"user": {"ip_address": "10.0.0.1"}}),
                vec![("user", "ip:10.0.0.1")],
            ),
            (
                json!({"request": {"url": "https://shop.example/cart?id=3#top"}}),
                vec![("url", "https://shop.example/cart")],
            ),
            // The SDK's tags, with derived ones winning and bad ones left out.
            (
                json!({"tags": {"server_name": "web-1", "level": "low", "bad key": "x",
                                "empty": " ", "multi": "a\nb",
                                "k": "v".repeat(MAX_VALUE_CHARS + 1)},
                       "environment": " staging "}),
                vec![("server_name", "web-1"), ("environment", "staging")],
            ),
            (
                json!({"tags": [["shard", 7], ["region", "eu"]]}),
                vec![("shard", "7"), ("region", "eu")],
            ),
        ];
        for (json, want) in table {
            let mut want = map(&want);
            want.insert("level".into(), "error".into());
            assert_eq!(tags_of(json.clone()), want, "{json}");
        }
        let long = format!("https://x.example/{}", "p".repeat(300));
        let tags = tags_of(json!({"request": {"url": long}}));
        assert_eq!(tags["url"].chars().count(), MAX_VALUE_CHARS);
    }

    #[test]
    fn keys_and_values_follow_sentrys_rules() {
        for key in ["browser.name", "server_name", "a:b-c", &"k".repeat(32)] {
            assert!(valid_key(key), "{key}");
        }
        for key in ["", "a b", "ünï", "a/b", &"k".repeat(33)] {
            assert!(!valid_key(key), "{key}");
        }
        assert!(valid_value("Chrome 124"));
        for value in ["", "  ", "a\nb", "a\0"] {
            assert!(!valid_value(value), "{value:?}");
        }
    }
}
