//! Grouping events into issues, as pure functions of an [`EventPayload`].
//!
//! An event's fingerprint is the hex SHA-256 of its grouping
//! [`Component`]s, chosen by Sentry's precedence:
//!
//! 1. the event's own `fingerprint`, with `{{ default }}` (or
//!    `{{default}}`) standing for the default components below;
//! 2. the raised exception's stack trace: per frame its module (or the
//!    file's base name) and function, only the in-app frames when any frame
//!    is in-app, never line numbers; plus the exception type;
//! 3. the raised exception's type and its value, normalized;
//! 4. the message template, normalized ([`normalize_message`]);
//! 5. nothing: every event with neither exception nor message of a project
//!    groups into one issue.
//!
//! The same module gives an issue its [`title`] and [`culprit`].

use super::event::{EventPayload, ExceptionInfo, StackFrame, base_name};
use sha2::{Digest, Sha256};

/// The most characters of a title; longer ones are cut and end in `…`.
pub const MAX_TITLE_CHARS: usize = 200;
/// The most characters of a culprit.
pub const MAX_CULPRIT_CHARS: usize = 200;
/// The title of an event with neither exception nor message.
pub const UNLABELED: &str = "<unlabeled event>";

/// One part of what an event is grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// An entry of the event's own fingerprint.
    Custom(String),
    /// The raised exception's type; empty for a synthetic exception.
    ExceptionType(String),
    /// A frame of the raised exception's stack trace.
    Frame {
        /// The frame's module, else its file's base name.
        place: String,
        function: String,
    },
    /// The raised exception's value, normalized.
    ExceptionValue(String),
    /// The message template, normalized.
    Message(String),
    /// Nothing to group by.
    Nothing,
}

/// What `payload` is grouped by (see the module docs).
pub fn components(payload: &EventPayload) -> Vec<Component> {
    let custom = payload.fingerprint.as_deref().unwrap_or_default();
    if custom.is_empty() {
        return default_components(payload);
    }
    let mut out = Vec::with_capacity(custom.len());
    for entry in custom {
        if is_default_marker(entry) {
            out.extend(default_components(payload));
        } else {
            out.push(Component::Custom(entry.clone()));
        }
    }
    out
}

/// Whether a fingerprint entry stands for the default grouping.
pub fn is_default_marker(entry: &str) -> bool {
    matches!(entry.trim(), "{{ default }}" | "{{default}}")
}

/// What `payload` is grouped by when it has no fingerprint of its own:
/// levels 2 to 5 of the module docs.
pub fn default_components(payload: &EventPayload) -> Vec<Component> {
    if let Some(exception) = payload.raised_exception() {
        let synthetic = exception.is_synthetic();
        let kind = match synthetic {
            true => "",
            false => exception.kind.as_deref().unwrap_or_default().trim(),
        };
        let frames = frame_components(exception.frames());
        if !frames.is_empty() {
            let mut out = Vec::with_capacity(frames.len() + 1);
            out.push(Component::ExceptionType(kind.to_owned()));
            out.extend(frames);
            return out;
        }
        let value = exception.value.as_deref().unwrap_or_default();
        let has_text = !kind.is_empty() || !value.trim().is_empty();
        if has_text && !synthetic {
            return vec![
                Component::ExceptionType(kind.to_owned()),
                Component::ExceptionValue(normalize_message(value)),
            ];
        }
    }
    match payload.message_template() {
        Some(template) => vec![Component::Message(normalize_message(template))],
        None => vec![Component::Nothing],
    }
}

/// The frames that group: in-app ones when any frame is in-app, else all;
/// frames with neither place nor function are left out.
pub fn frame_components(frames: &[StackFrame]) -> Vec<Component> {
    let any_in_app = frames.iter().any(StackFrame::is_in_app);
    frames
        .iter()
        .filter(|f| !any_in_app || f.is_in_app())
        .filter_map(|f| {
            let place = frame_place(f).unwrap_or_default();
            let function = f.function.as_deref().unwrap_or_default().trim();
            (!place.is_empty() || !function.is_empty()).then(|| Component::Frame {
                place: place.to_owned(),
                function: function.to_owned(),
            })
        })
        .collect()
}

/// A frame's module, else the base name of its file.
fn frame_place(frame: &StackFrame) -> Option<&str> {
    let module = frame.module.as_deref().map(str::trim);
    let file = frame.filename.as_deref().or(frame.abs_path.as_deref());
    module
        .filter(|m| !m.is_empty())
        .or_else(|| file.map(|f| base_name(f.trim())).filter(|f| !f.is_empty()))
}

/// The hex SHA-256 of `components`. Every part is tagged with its kind and
/// prefixed with its length, so no two different lists hash alike by
/// running into each other.
pub fn hash(components: &[Component]) -> String {
    let mut h = Sha256::new();
    let mut part = |tag: u8, text: &str| {
        h.update([tag]);
        h.update((text.len() as u64).to_be_bytes());
        h.update(text.as_bytes());
    };
    for c in components {
        match c {
            Component::Custom(s) => part(b'C', s),
            Component::ExceptionType(s) => part(b'T', s),
            Component::Frame { place, function } => {
                part(b'P', place);
                part(b'F', function);
            }
            Component::ExceptionValue(s) => part(b'V', s),
            Component::Message(s) => part(b'M', s),
            Component::Nothing => part(b'N', ""),
        }
    }
    hex::encode(h.finalize())
}

/// The fingerprint of `payload`: [`hash`] of its [`components`].
pub fn fingerprint(payload: &EventPayload) -> String {
    hash(&components(payload))
}

/// The title of the issue `payload` would open: `Type: value` of the
/// raised exception (just `Type` when the value is empty), else the
/// message, else the value of a synthetic or untyped exception, else
/// [`UNLABELED`]. Only the first non-blank line, at most
/// [`MAX_TITLE_CHARS`].
pub fn title(payload: &EventPayload) -> String {
    let exception = payload.raised_exception();
    let typed = exception.filter(|e| !e.is_synthetic()).and_then(|e| {
        let kind = e.kind.as_deref().map(str::trim).filter(|k| !k.is_empty())?;
        Some(match e.value.as_deref().and_then(first_line) {
            Some(value) => format!("{kind}: {value}"),
            None => kind.to_owned(),
        })
    });
    let text = typed
        .or_else(|| {
            payload
                .message_text()
                .and_then(first_line)
                .map(str::to_owned)
        })
        .or_else(|| {
            let value = exception?.value.as_deref()?;
            first_line(value).map(str::to_owned)
        })
        .unwrap_or_else(|| UNLABELED.to_owned());
    truncate(text, MAX_TITLE_CHARS)
}

/// The message of `payload` as an event shows it: the formatted message,
/// else the raised exception as `Type: value`, else [`UNLABELED`]. Whole,
/// not cut.
pub fn message(payload: &EventPayload) -> String {
    if let Some(text) = payload.message_text() {
        return text.to_owned();
    }
    payload
        .raised_exception()
        .and_then(describe)
        .unwrap_or_else(|| UNLABELED.to_owned())
}

/// `Type: value`, or whichever of the two an exception has.
fn describe(e: &ExceptionInfo) -> Option<String> {
    let kind = e.kind.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let value = e.value.as_deref().filter(|v| !v.trim().is_empty());
    match (kind, value) {
        (Some(kind), Some(value)) => Some(format!("{kind}: {value}")),
        (Some(kind), None) => Some(kind.to_owned()),
        (None, Some(value)) => Some(value.to_owned()),
        (None, None) => None,
    }
}

/// Where `payload` happened: `module in function` (or `file in function`)
/// of the crashing frame (the last in-app frame of the raised exception,
/// else its last frame; for an event without one, of the event's stack
/// trace), else the transaction. At most [`MAX_CULPRIT_CHARS`].
pub fn culprit(payload: &EventPayload) -> Option<String> {
    let frames = payload
        .raised_exception()
        .map(ExceptionInfo::frames)
        .filter(|f| !f.is_empty())
        .or_else(|| payload.event_stacktrace().map(|s| s.frames.as_slice()))
        .unwrap_or_default();
    let crashing = frames
        .iter()
        .rev()
        .find(|f| f.is_in_app())
        .or(frames.last());
    let from_frame = crashing.and_then(|frame| {
        let place = frame_place(frame);
        let function = frame.function.as_deref().map(str::trim);
        match (place, function.filter(|f| !f.is_empty())) {
            (Some(place), Some(function)) => Some(format!("{place} in {function}")),
            (Some(only), None) | (None, Some(only)) => Some(only.to_owned()),
            (None, None) => None,
        }
    });
    let transaction = || {
        let t = payload.transaction.as_deref()?.trim();
        (!t.is_empty()).then(|| t.to_owned())
    };
    from_frame
        .or_else(transaction)
        .map(|c| truncate(c, MAX_CULPRIT_CHARS))
}

/// The first line of `text` that is not blank, trimmed.
fn first_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

/// `text` cut to at most `max` characters (on a character boundary), the
/// last of them `…` when it was cut.
pub fn truncate(mut text: String, max: usize) -> String {
    if let Some((cut, _)) = text.char_indices().nth(max) {
        let keep = text[..cut]
            .char_indices()
            .last()
            .map_or(0, |(last, _)| last);
        text.truncate(keep);
        text.push('…');
    }
    text
}

/// Replaces the variable parts of a message with placeholders, so that
/// `user 17 not found` and `user 4 not found` read alike: `<int>`,
/// `<float>`, `<hex>` (`0x1f`, or 8 or more hex digits with a digit among
/// them), `<uuid>`, `<email>`, `<ip>` (v4 with an optional port, or v6),
/// `<url>` (`scheme://...`), `<date>` (ISO dates, date-times and clock
/// times). Numbers glued to letters (`user17`, `utf8`) are part of a word
/// and stay; durations (`1500ms`) become `<int>ms`.
///
/// One pass over the text, each token classified once: linear in the
/// input whatever it holds.
pub fn normalize_message(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if !is_token_byte(bytes[i]) {
            // Not a token: copied through, a whole (maybe multi-byte)
            // character at a time.
            let len = text[i..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&text[i..i + len]);
            i += len;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        let token = &text[start..i];
        if let Some(scheme) = token.strip_suffix(':')
            && is_scheme(scheme)
            && text[i..].starts_with("//")
        {
            while i < bytes.len() && !is_url_end(bytes[i]) {
                i += 1;
            }
            // Sentence punctuation after a URL is not part of it; `//` is
            // never given back, so the loop always moves on.
            while matches!(
                bytes[i - 1],
                b'.' | b',' | b';' | b':' | b'!' | b'?' | b')' | b']' | b'}'
            ) {
                i -= 1;
            }
            out.push_str("<url>");
            continue;
        }
        normalize_token(token, &mut out);
    }
    out
}

/// The characters a token is made of: what numbers, ids, addresses, dates
/// and words are written with. All ASCII, so tokens split on character
/// boundaries.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@' | b':' | b'+' | b'%')
}

fn is_url_end(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>' | b'`')
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.bytes();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

fn normalize_token(token: &str, out: &mut String) {
    // Punctuation around a token belongs to the sentence: `17.`, `(id:`.
    // (A leading `::` may also start an IPv6 address.)
    let core = token.trim_end_matches(['.', ':', '-', '+', '@', '%']);
    let trail = &token[core.len()..];
    if let Some(placeholder) = classify(core) {
        out.push_str(placeholder);
    } else {
        let lead = core.len() - core.trim_start_matches(['.', ':', '+', '@', '%']).len();
        out.push_str(&core[..lead]);
        let core = &core[lead..];
        match classify(core) {
            Some(placeholder) => out.push_str(placeholder),
            None => normalize_runs(core, out),
        }
    }
    out.push_str(trail);
}

/// The placeholder for a whole token, if it is one variable thing.
fn classify(t: &str) -> Option<&'static str> {
    if t.is_empty() {
        None
    } else if is_uuid(t) {
        Some("<uuid>")
    } else if is_email(t) {
        Some("<email>")
    } else if is_ipv4(t) {
        Some("<ip>")
    } else if is_date_or_time(t) {
        Some("<date>")
    } else if is_ipv6(t) {
        Some("<ip>")
    } else if is_int(t) {
        Some("<int>")
    } else if is_float(t) {
        Some("<float>")
    } else if is_hex(t) {
        Some("<hex>")
    } else {
        None
    }
}

/// A token that is not one variable thing, word by word: `order-17` →
/// `order-<int>`, `v1.2` → `v1.<int>`.
fn normalize_runs(t: &str, out: &mut String) {
    let bytes = t.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) {
            out.push(bytes[i] as char);
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        let word = &t[start..i];
        let digits = word.bytes().take_while(u8::is_ascii_digit).count();
        if digits == word.len() {
            out.push_str("<int>");
        } else if is_hex(word) {
            out.push_str("<hex>");
        } else if digits > 0 && is_unit(&word[digits..]) {
            out.push_str("<int>");
            out.push_str(&word[digits..]);
        } else {
            out.push_str(word);
        }
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_unit(s: &str) -> bool {
    const UNITS: [&str; 13] = [
        "ns", "us", "ms", "s", "m", "h", "d", "b", "k", "kb", "mb", "gb", "tb",
    ];
    UNITS.iter().any(|u| u.eq_ignore_ascii_case(s))
}

fn all(s: &str, f: impl Fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

fn is_int(t: &str) -> bool {
    all(t.strip_prefix('-').unwrap_or(t), |b| b.is_ascii_digit())
}

fn is_float(t: &str) -> bool {
    let t = t.strip_prefix('-').unwrap_or(t);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(e) => (&t[..e], Some(&t[e + 1..])),
        None => (t, None),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        all(e, |b| b.is_ascii_digit())
    });
    let digits = |s: &str| all(s, |b| b.is_ascii_digit());
    exponent_ok
        && match mantissa.split_once('.') {
            Some((whole, fraction)) => digits(whole) && digits(fraction),
            // `1e5` is a float; `15` alone was an int already.
            None => exponent.is_some() && digits(mantissa),
        }
}

fn is_hex(t: &str) -> bool {
    if let Some(digits) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return all(digits, |b| b.is_ascii_hexdigit());
    }
    t.len() >= 8
        && all(t, |b| b.is_ascii_hexdigit())
        && t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes().any(|b| b.is_ascii_alphabetic())
}

fn is_uuid(t: &str) -> bool {
    let groups: [usize; 5] = [8, 4, 4, 4, 12];
    let mut parts = t.split('-');
    groups.iter().all(|&len| {
        parts
            .next()
            .is_some_and(|p| p.len() == len && all(p, |b| b.is_ascii_hexdigit()))
    }) && parts.next().is_none()
}

fn is_email(t: &str) -> bool {
    let Some((local, domain)) = t.split_once('@') else {
        return false;
    };
    let local_ok = all(local, |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
    });
    let labels: Vec<&str> = domain.split('.').collect();
    let tld = labels.last().copied().unwrap_or_default();
    local_ok
        && labels.len() >= 2
        && labels
            .iter()
            .all(|l| all(l, |b| b.is_ascii_alphanumeric() || b == b'-'))
        && tld.len() >= 2
        && all(tld, |b| b.is_ascii_alphabetic())
}

fn is_ipv4(t: &str) -> bool {
    let (address, port) = match t.split_once(':') {
        Some((a, p)) => (a, Some(p)),
        None => (t, None),
    };
    let octet = |p: &str| {
        p.len() <= 3 && all(p, |b| b.is_ascii_digit()) && p.parse::<u16>().is_ok_and(|n| n <= 255)
    };
    let mut parts = address.split('.');
    (0..4).all(|_| parts.next().is_some_and(octet))
        && parts.next().is_none()
        && port.is_none_or(|p| p.len() <= 5 && all(p, |b| b.is_ascii_digit()))
}

fn is_ipv6(t: &str) -> bool {
    let colons = t.bytes().filter(|&b| b == b':').count();
    (colons >= 3 || (colons >= 2 && t.contains("::")))
        && colons <= 8
        && !t.contains(":::")
        && t.len() <= 45
        && all(t, |b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && t.bytes().any(|b| b.is_ascii_hexdigit())
}

/// `2024-01-31`, `2024-01-31T12:00:00.123+02:00`, `12:00`, `12:00:00Z`.
fn is_date_or_time(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let is_date = b.len() >= 10
        && digits(&b[..4])
        && b[4] == b'-'
        && digits(&b[5..7])
        && b[7] == b'-'
        && digits(&b[8..10]);
    if is_date {
        return match b.get(10) {
            None => true,
            Some(b'T' | b't' | b'_') => is_time(&t[11..]),
            Some(_) => false,
        };
    }
    is_time(t)
}

/// `HH:MM`, `HH:MM:SS`, `HH:MM:SS.fff`, each with an optional zone.
fn is_time(t: &str) -> bool {
    let (clock, zone) = match t.find(['Z', 'z', '+', '-']) {
        Some(z) => t.split_at(z),
        None => (t, ""),
    };
    let zone_ok = match zone.as_bytes().first() {
        None => true,
        Some(b'Z' | b'z') => zone.len() == 1,
        Some(_) => {
            let z = zone[1..].replace(':', "");
            z.len() == 4 && all(&z, |b| b.is_ascii_digit())
        }
    };
    let (clock, fraction) = match clock.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (clock, None),
    };
    let mut fields = clock.split(':');
    let hours = fields.next().unwrap_or_default();
    let rest: Vec<&str> = fields.collect();
    zone_ok
        && (1..=2).contains(&hours.len())
        && all(hours, |b| b.is_ascii_digit())
        && (1..=2).contains(&rest.len())
        && rest
            .iter()
            .all(|f| f.len() == 2 && all(f, |b| b.is_ascii_digit()))
        && fraction.is_none_or(|f| rest.len() == 2 && all(f, |b| b.is_ascii_digit()))
}

#[cfg(test)]
pub(crate) mod tests;
