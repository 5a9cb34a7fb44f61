//! Finding the project key in what a Sentry SDK sends.
//!
//! An SDK is configured with a DSN, `http://<key>@<host>/<project id>`, and
//! sends the DSN's public key (Mesher's `mshr_` key) in one of several
//! places, depending on the SDK and its age:
//!
//! - `X-Sentry-Auth: Sentry sentry_key=<key>, sentry_version=7, ...`
//!   (Python, Rust, Go, Java, ...), or the same value in `Authorization`;
//! - the `sentry_key` query parameter (JavaScript, browser and Node alike,
//!   which avoids a CORS preflight);
//! - the `dsn` field of the envelope header (JavaScript through a tunnel).
//!
//! The native API takes `Authorization: Bearer <key>` instead.
//!
//! The parsing follows relay's (Sentry's ingestion server, through
//! `sentry_types::Auth`): the `Sentry` scheme is case-insensitive, pairs are
//! separated by commas, each `name=value` is trimmed, and pairs without `=`
//! are skipped. Two differences, both lenient: a double-quoted value is
//! unquoted (RFC 7235 allows `auth-param` values in quotes), and one request
//! may carry the key in several places as long as they agree (relay refuses
//! any second place).
//!
//! Nothing here checks a key's format: the domain's `ApiKey::parse` does.

use thiserror::Error;

/// Why the project key could not be found.
///
/// The Display text is meant for the HTTP response body.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    /// The header's scheme is not `Sentry`.
    #[error("not a Sentry auth header: expected \"Sentry sentry_key=<key>, sentry_version=7\"")]
    NotSentry,
    /// No key anywhere in the request.
    #[error(
        "missing project key: send it in X-Sentry-Auth (\"Sentry sentry_key=<key>\"), Authorization, the sentry_key query parameter or the envelope's dsn"
    )]
    Missing,
    /// The request names more than one key.
    #[error("conflicting project keys: the request carries more than one different key")]
    Conflicting,
    /// The envelope's `dsn` is not a DSN with a public key.
    #[error("invalid dsn in the envelope header: {0}")]
    BadDsn(&'static str),
}

/// The `sentry_key` of a `Sentry ...` header value (`X-Sentry-Auth` or
/// `Authorization`).
///
/// `Ok(None)` when the header is a Sentry header without a (non-empty)
/// `sentry_key`; [`AuthError::NotSentry`] when its scheme is another one
/// (relay ignores an `Authorization` header that is not `Sentry`, and so
/// can a handler); [`AuthError::Conflicting`] when it names two keys.
pub fn key_from_sentry_header(value: &str) -> Result<Option<String>, AuthError> {
    let (scheme, params) = split_scheme(value);
    if !scheme.eq_ignore_ascii_case("sentry") {
        return Err(AuthError::NotSentry);
    }
    let keys = params
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| name.trim() == "sentry_key")
        .map(|(_, value)| unquote(value.trim()).to_owned());
    at_most_one(keys)
}

/// The `sentry_key` parameter of a raw (still percent-encoded) query string,
/// as the JavaScript SDK sends it: `sentry_version=7&sentry_key=<key>&...`.
///
/// `Ok(None)` when there is none (or it is empty);
/// [`AuthError::Conflicting`] when it appears twice with different values.
pub fn key_from_query(query: &str) -> Result<Option<String>, AuthError> {
    let keys = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| percent_decode(name, true) == "sentry_key")
        .map(|(_, value)| percent_decode(value, true));
    at_most_one(keys)
}

/// The public key of a DSN, `<scheme>://<key>[:<secret>]@<host>/<id>`, as
/// the envelope header's `dsn` carries it.
pub fn key_from_dsn(dsn: &str) -> Result<String, AuthError> {
    let (_, rest) = dsn
        .trim()
        .split_once("://")
        .ok_or(AuthError::BadDsn("not a URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, _host) = authority.rsplit_once('@').ok_or(AuthError::BadDsn(
        "no public key (expected <scheme>://<key>@<host>/<project id>)",
    ))?;
    // A secret after ':' is legacy and ignored, as relay does.
    let user = userinfo.split(':').next().unwrap_or_default();
    let key = percent_decode(user, false);
    if key.is_empty() {
        return Err(AuthError::BadDsn("empty public key"));
    }
    Ok(key)
}

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// case-insensitive), or `None` for another scheme or no token. The one
/// `Bearer` parser: ingestion's keys and the dashboard's session tokens
/// ([`crate::app::session`]) are both read with it.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = split_scheme(value);
    let valid = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && !token.contains(|c: char| c.is_ascii_whitespace());
    valid.then_some(token)
}

/// The one key among all those found in a request: [`AuthError::Missing`]
/// when there is none, [`AuthError::Conflicting`] when two differ.
pub fn one_key(found: impl IntoIterator<Item = String>) -> Result<String, AuthError> {
    at_most_one(found)?.ok_or(AuthError::Missing)
}

/// Splits `Scheme params` at the first whitespace, both sides trimmed.
fn split_scheme(value: &str) -> (&str, &str) {
    let value = value.trim();
    match value.split_once(|c: char| c.is_ascii_whitespace()) {
        Some((scheme, rest)) => (scheme, rest.trim()),
        None => (value, ""),
    }
}

/// The one non-empty value among `values`, if any; two different ones are a
/// conflict. An empty value counts as absent, as in relay.
fn at_most_one(values: impl IntoIterator<Item = String>) -> Result<Option<String>, AuthError> {
    let mut found: Option<String> = None;
    for value in values.into_iter().filter(|v| !v.is_empty()) {
        match &found {
            Some(first) if *first != value => return Err(AuthError::Conflicting),
            Some(_) => {}
            None => found = Some(value),
        }
    }
    Ok(found)
}

/// `"value"` without its quotes; anything else as is.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Decodes `%XX` escapes (and `+` as a space in a query, as
/// `application/x-www-form-urlencoded` does). A malformed escape stays as
/// written and invalid UTF-8 becomes U+FFFD, so any input decodes; the key
/// check that follows refuses what is not a key.
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    fn hex(b: Option<&u8>) -> Option<u8> {
        char::from(*b?)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'%' => match (hex(bytes.get(i)), hex(bytes.get(i + 1))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b),
            },
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ApiKey, PublicUrl};

    const K: &str = "mshr_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    /// The DSN Mesher prints for key `K` (see [`PublicUrl::dsn`]).
    fn dsn(public_url: &str, public_id: i64) -> String {
        let key = ApiKey::parse(K).unwrap();
        PublicUrl::parse(public_url).unwrap().dsn(&key, public_id)
    }

    const K2: &str = "mshr_fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn some(key: &str) -> Result<Option<String>, AuthError> {
        Ok(Some(key.to_owned()))
    }

    #[test]
    fn sentry_headers() {
        let cases: Vec<(String, Result<Option<String>, AuthError>)> = vec![
            // sentry-python (utils.Auth.to_header), and relay forwarding.
            (
                format!(
                    "Sentry sentry_key={K}, sentry_version=7, sentry_client=sentry.python/2.19.2"
                ),
                some(K),
            ),
            // sentry-python with a legacy secret in its DSN.
            (
                format!(
                    "Sentry sentry_key={K}, sentry_version=7, sentry_client=sentry.python/2.19.2, sentry_secret=abc"
                ),
                some(K),
            ),
            // sentry-rust (sentry_types::Auth's Display).
            (
                format!(
                    "Sentry sentry_key={K}, sentry_version=7, sentry_timestamp=1718000000.123456, sentry_client=sentry.rust/0.49.5"
                ),
                some(K),
            ),
            // sentry-go.
            (
                format!("Sentry sentry_version=7, sentry_client=sentry.go/0.29.0, sentry_key={K}"),
                some(K),
            ),
            // Java and older clients: no spaces.
            (
                format!(
                    "Sentry sentry_version=7,sentry_client=sentry.java/7.0.0,sentry_key={K},sentry_secret=s"
                ),
                some(K),
            ),
            // Old JavaScript (getRequestHeaders), with a millisecond timestamp.
            (
                format!(
                    "Sentry sentry_version=7, sentry_timestamp=1329096377000, sentry_client=raven-js/3.27.0, sentry_key={K}"
                ),
                some(K),
            ),
            // Letter case of the scheme, spacing, tabs.
            (format!("sentry sentry_key={K}"), some(K)),
            (format!("SENTRY sentry_key={K}"), some(K)),
            (
                format!("  Sentry   sentry_key = {K} ,sentry_version=7  "),
                some(K),
            ),
            (format!("Sentry\tsentry_key={K}"), some(K)),
            // Quoted value (RFC 7235 auth-param).
            (
                format!("Sentry sentry_key=\"{K}\", sentry_version=7"),
                some(K),
            ),
            // A value with '=' in it is kept whole.
            ("Sentry sentry_key=a=b".to_owned(), some("a=b")),
            // The same key twice is fine; two different ones are not.
            (format!("Sentry sentry_key={K}, sentry_key={K}"), some(K)),
            (
                format!("Sentry sentry_key={K}, sentry_key={K2}"),
                Err(AuthError::Conflicting),
            ),
            // A Sentry header without a key.
            ("Sentry".to_owned(), Ok(None)),
            ("Sentry ".to_owned(), Ok(None)),
            (
                "Sentry sentry_version=7, sentry_client=x/1".to_owned(),
                Ok(None),
            ),
            ("Sentry sentry_key=, sentry_version=7".to_owned(), Ok(None)),
            ("Sentry sentry_key".to_owned(), Ok(None)),
            ("Sentry ,,,=,=".to_owned(), Ok(None)),
            // The parameter name is exact, as in relay.
            (format!("Sentry Sentry_Key={K}"), Ok(None)),
            (format!("Sentry xsentry_key={K}"), Ok(None)),
            // Not a Sentry header.
            ("".to_owned(), Err(AuthError::NotSentry)),
            (format!("Bearer {K}"), Err(AuthError::NotSentry)),
            ("Basic dXNlcjpwYXNz".to_owned(), Err(AuthError::NotSentry)),
            (format!("Sentrysentry_key={K}"), Err(AuthError::NotSentry)),
            (format!("sentry_key={K}"), Err(AuthError::NotSentry)),
            (format!("Sentry,sentry_key={K}"), Err(AuthError::NotSentry)),
        ];
        for (header, expected) in cases {
            assert_eq!(key_from_sentry_header(&header), expected, "{header:?}");
        }
    }

    #[test]
    fn query_strings() {
        let cases: Vec<(String, Result<Option<String>, AuthError>)> = vec![
            // sentry-javascript (api.ts: URLSearchParams, in this order).
            (
                format!(
                    "sentry_version=7&sentry_key={K}&sentry_client=sentry.javascript.browser%2F8.55.0"
                ),
                some(K),
            ),
            (format!("sentry_version=7&sentry_key={K}"), some(K)),
            (format!("sentry_key={K}"), some(K)),
            // Percent-encoding, of the value or of the name.
            ("sentry_key=mshr_%61%62".to_owned(), some("mshr_ab")),
            (format!("sentry%5Fkey={K}"), some(K)),
            ("sentry_key=a+b".to_owned(), some("a b")),
            ("sentry_key=100%25".to_owned(), some("100%")),
            // Malformed escapes stay as written.
            ("sentry_key=a%zz%4".to_owned(), some("a%zz%4")),
            ("sentry_key=%".to_owned(), some("%")),
            // Invalid UTF-8 decodes to U+FFFD, for the key check to refuse.
            ("sentry_key=%ff".to_owned(), some("\u{fffd}")),
            // Duplicates.
            (format!("sentry_key={K}&sentry_key={K}"), some(K)),
            (
                format!("sentry_key={K}&sentry_key={K2}"),
                Err(AuthError::Conflicting),
            ),
            // No key.
            ("".to_owned(), Ok(None)),
            ("sentry_version=7".to_owned(), Ok(None)),
            ("sentry_key=".to_owned(), Ok(None)),
            ("sentry_key".to_owned(), Ok(None)),
            ("&&=&".to_owned(), Ok(None)),
            (format!("x_sentry_key={K}"), Ok(None)),
            (format!("SENTRY_KEY={K}"), Ok(None)),
        ];
        for (query, expected) in cases {
            assert_eq!(key_from_query(&query), expected, "{query:?}");
        }
    }

    #[test]
    fn dsns() {
        let cases: Vec<(String, Result<&str, AuthError>)> = vec![
            // What Mesher prints.
            (format!("http://{K}@127.0.0.1:8000/42"), Ok(K)),
            // sentry-javascript's dsnToString, as a tunnel sends it.
            (format!("https://{K}@errors.example.com/42"), Ok(K)),
            (format!("https://{K}@errors.example.com/prefix/42"), Ok(K)),
            // relay's form: an empty secret.
            (format!("https://{K}:@sentry.io/42"), Ok(K)),
            // Legacy secret.
            (format!("https://{K}:secret@sentry.io/42"), Ok(K)),
            (format!("http://{K}@[::1]:8000/1"), Ok(K)),
            (format!("  http://{K}@host/1  "), Ok(K)),
            // '@' later in the path is not the user part.
            (format!("http://{K}@host/a@b/1"), Ok(K)),
            ("http://mshr_%61b@host/1".to_owned(), Ok("mshr_ab")),
            // No key.
            (
                "http://host/1".to_owned(),
                Err(AuthError::BadDsn(
                    "no public key (expected <scheme>://<key>@<host>/<project id>)",
                )),
            ),
            (
                "http://host/a@b".to_owned(),
                Err(AuthError::BadDsn(
                    "no public key (expected <scheme>://<key>@<host>/<project id>)",
                )),
            ),
            (
                "http://@host/1".to_owned(),
                Err(AuthError::BadDsn("empty public key")),
            ),
            (
                "http://:secret@host/1".to_owned(),
                Err(AuthError::BadDsn("empty public key")),
            ),
            // Not a URL.
            ("".to_owned(), Err(AuthError::BadDsn("not a URL"))),
            (K.to_owned(), Err(AuthError::BadDsn("not a URL"))),
            (format!("{K}@host/1"), Err(AuthError::BadDsn("not a URL"))),
        ];
        for (dsn, expected) in cases {
            let expected = expected.map(str::to_owned);
            assert_eq!(key_from_dsn(&dsn), expected, "{dsn:?}");
        }
    }

    #[test]
    fn bearer_tokens() {
        let with_k = format!("Bearer {K}");
        let cases: [(&str, Option<&str>); 12] = [
            (&with_k, Some(K)),
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER abc", Some("abc")),
            ("  Bearer   abc  ", Some("abc")),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer a b", None),
            ("Bearerabc", None),
            ("Basic abc", None),
            ("Sentry sentry_key=abc", None),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(bearer_token(header), expected, "{header:?}");
        }
    }

    #[test]
    fn one_key_of_several() {
        let cases: [(&[&str], Result<&str, AuthError>); 6] = [
            (&[], Err(AuthError::Missing)),
            (&[K], Ok(K)),
            (&[K, K], Ok(K)),
            (&[K, K, K], Ok(K)),
            (&[K, K2], Err(AuthError::Conflicting)),
            (&[K, K, K2], Err(AuthError::Conflicting)),
        ];
        for (found, expected) in cases {
            let got = one_key(found.iter().map(|k| (*k).to_owned()));
            assert_eq!(got, expected.map(str::to_owned), "{found:?}");
        }
    }

    #[test]
    fn built_dsns_give_their_key_back() {
        for public_url in ["http://127.0.0.1:8000", "https://example.com/sentry/"] {
            let built = dsn(public_url, 7);
            assert_eq!(key_from_dsn(&built), Ok(K.to_owned()), "{built}");
        }
    }

    #[test]
    fn the_rust_sdk_reads_our_dsns_and_we_read_its_header() {
        // The real sentry crate: it must accept the DSN Mesher prints, post
        // where Mesher listens, and send a header Mesher reads.
        let cases = [
            (
                "http://127.0.0.1:8000",
                "http://127.0.0.1:8000/api/42/envelope/",
            ),
            (
                "https://errors.example.com/",
                "https://errors.example.com/api/42/envelope/",
            ),
            (
                "https://example.com/sentry/",
                "https://example.com/sentry/api/42/envelope/",
            ),
        ];
        for (public_url, envelope_url) in cases {
            let printed = dsn(public_url, 42);
            let parsed: sentry::types::Dsn = printed.parse().unwrap();
            assert_eq!(parsed.public_key(), K, "{printed}");
            assert_eq!(
                parsed.envelope_api_url().as_str(),
                envelope_url,
                "{printed}"
            );
            let header = parsed.to_auth(Some("sentry.rust/0.49.5")).to_string();
            assert_eq!(key_from_sentry_header(&header), some(K), "{header}");
        }
    }

    #[test]
    fn no_panic_on_any_input() {
        let samples = [
            format!("Sentry sentry_key={K}, sentry_version=7"),
            format!("sentry_version=7&sentry_key={K}&x=%2F"),
            format!("https://{K}:s@[::1]:80/p/42?x#y"),
            "Bearer \u{e9}\u{1F600} %%% \"\" ,,== @@ :: //".to_owned(),
        ];
        for sample in &samples {
            // Every prefix, cut at every char boundary.
            for (end, _) in sample.char_indices().chain([(sample.len(), ' ')]) {
                let text = &sample[..end];
                let _ = key_from_sentry_header(text);
                let _ = key_from_query(text);
                let _ = key_from_dsn(text);
                let _ = bearer_token(text);
            }
        }
    }

    #[test]
    fn messages() {
        let cases = [
            (
                AuthError::Conflicting,
                "conflicting project keys: the request carries more than one different key",
            ),
            (
                AuthError::BadDsn("not a URL"),
                "invalid dsn in the envelope header: not a URL",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        assert!(
            AuthError::Missing
                .to_string()
                .starts_with("missing project key")
        );
    }
}
