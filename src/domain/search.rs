//! The issue search, in Sentry's syntax: a pure parser from the text a
//! person types to a [`Search`], which `db::issues` compiles to SQL with
//! every value bound.
//!
//! Terms are separated by spaces; a value with spaces is quoted
//! (`browser.name:"Mobile Safari"`, `\"` inside quotes for a quote):
//!
//! | term | keeps the issues |
//! |------|------------------|
//! | `is:unresolved`, `is:resolved`, `is:archived` (`is:ignored`) | of that status |
//! | `is:assigned`, `is:unassigned` | assigned to someone / nobody |
//! | `assigned:me`, `assigned:none`, `assigned:<email>` | assigned to the caller / nobody / that user |
//! | `level:error` | of that level |
//! | `key:value`, e.g. `release:api@2.0`, `browser.name:Chrome` | with an event tagged so |
//! | `tags[key]:value` | the same, for a key holding `:` |
//! | `has:key` | with an event carrying that tag |
//! | `times_seen:>100` | by events (`>`, `>=`, `<`, `<=`, or none for `=`) |
//! | `users:>10` | by users affected, compared alike |
//! | `firstSeen:-24h`, `lastSeen:>2026-11-01` | by time: `-24h` within the last 24 hours, `+7d` longer ago than that (units `s m h d w`), or a comparison with a date or RFC 3339 time; a bare date is that UTC day |
//! | any other word or `"quoted text"` | whose title or culprit contains the text (all free text joined by spaces, in any letter case) |
//!
//! `!` before a filter negates it (`!browser.name:Chrome`, `!has:user`,
//! `!level:info`, `!assigned:me`). Terms combine with AND. A term that
//! cannot be read is an [`Error::InvalidSearch`] naming it and its
//! position (characters from 1).

use super::event::tags;
use super::{IssueStatus, Severity};
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

/// The longest search accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 512;
/// The most filters one search may hold (free text aside): each is a
/// clause of the query.
pub const MAX_FILTERS: usize = 20;

/// A parsed search: every filter must hold, and the free text, if any,
/// must appear in the title or the culprit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub filters: Vec<Filter>,
    /// The free text, its words joined by single spaces.
    pub text: Option<String>,
}

/// One condition on an issue; `negated` turns it around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub negated: bool,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Status(IssueStatus),
    Assigned(Assignee),
    Level(Severity),
    /// At least one of its events had this tag.
    Tag {
        key: String,
        value: String,
    },
    /// At least one of its events had a tag with this key.
    Has {
        key: String,
    },
    TimesSeen(Compare, i64),
    Users(Compare, i64),
    FirstSeen(Compare, DateTime<Utc>),
    LastSeen(Compare, DateTime<Utc>),
}

/// Whom an issue is assigned to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    /// The person searching.
    Me,
    Nobody,
    Anyone,
    /// The user with this email (in any letter case).
    Email(String),
}

/// A comparison of a number or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
}

impl Compare {
    /// The SQL operator.
    pub fn as_sql(self) -> &'static str {
        match self {
            Compare::Gt => ">",
            Compare::Ge => ">=",
            Compare::Lt => "<",
            Compare::Le => "<=",
            Compare::Eq => "=",
        }
    }
}

impl Search {
    /// Parses `text` as typed, relative times (`-24h`) counted back from
    /// `now`.
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<Search> {
        if text.chars().count() > MAX_SEARCH_CHARS {
            return Err(bad(1, text, "a search is at most 512 characters"));
        }
        if let Some(at) = text.chars().position(|c| c == '\0') {
            return Err(bad(at + 1, text, "a search cannot hold NUL characters"));
        }
        let mut search = Search::default();
        let mut words = Vec::new();
        for token in tokens(text)? {
            match term(&token, now)? {
                Term::Text(word) => words.push(word),
                Term::Filter(filter) => {
                    if search.filters.len() == MAX_FILTERS {
                        return Err(bad(
                            token.at,
                            &token.raw,
                            "a search holds at most 20 filters",
                        ));
                    }
                    search.filters.push(filter);
                }
            }
        }
        search.text = Some(words.join(" ")).filter(|t| !t.is_empty());
        Ok(search)
    }

    /// Adds a condition that must hold.
    pub fn require(&mut self, condition: Condition) {
        self.filters.push(Filter {
            negated: false,
            condition,
        });
    }

    /// Whether it filters by status (`is:resolved`...).
    pub fn has_status(&self) -> bool {
        self.filters
            .iter()
            .any(|f| matches!(f.condition, Condition::Status(_)))
    }
}

fn bad(at: usize, token: &str, rule: &'static str) -> Error {
    Error::InvalidSearch {
        position: at,
        token: token.to_owned(),
        rule,
    }
}

/// A term as typed: where it starts (in characters, from 1), its text,
/// and whether any of it was quoted (a quoted word is never a filter).
#[derive(Debug, PartialEq, Eq)]
struct Token {
    at: usize,
    raw: String,
    /// The text with quotes removed and escapes resolved.
    text: String,
    /// Where the first quote opened, in `text` (bytes): `key:"v"` is a
    /// filter, `"key:v"` is text.
    quoted_from: Option<usize>,
}

/// Splits a search into terms on unquoted white space.
fn tokens(input: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = input.chars().enumerate().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut token = Token {
            at: start + 1,
            raw: String::new(),
            text: String::new(),
            quoted_from: None,
        };
        let mut in_quotes = false;
        let mut opened_at = start;
        while let Some(&(i, c)) = chars.peek() {
            if !in_quotes && c.is_whitespace() {
                break;
            }
            chars.next();
            token.raw.push(c);
            match c {
                '"' if !in_quotes => {
                    in_quotes = true;
                    opened_at = i;
                    token.quoted_from.get_or_insert(token.text.len());
                }
                '"' => in_quotes = false,
                // Inside quotes `\"` is a quote and `\\` a backslash; any
                // other backslash is itself (a Windows path).
                '\\' if in_quotes => match chars.peek() {
                    Some(&(_, next @ ('"' | '\\'))) => {
                        chars.next();
                        token.raw.push(next);
                        token.text.push(next);
                    }
                    _ => token.text.push(c),
                },
                _ => token.text.push(c),
            }
        }
        if in_quotes {
            return Err(bad(opened_at + 1, &token.raw, "a quote is not closed"));
        }
        out.push(token);
    }
    Ok(out)
}

enum Term {
    Text(String),
    Filter(Filter),
}

/// Reads one term: a filter when it is `[!]key:value` with the colon
/// outside quotes, else free text.
fn term(token: &Token, now: DateTime<Utc>) -> Result<Term> {
    let text = token.text.as_str();
    let colon = text
        .find(':')
        .filter(|&i| token.quoted_from.is_none_or(|q| i < q));
    // `tags[key]:value`, for a key that holds a colon itself.
    let (negated, key, value) = if let Some(rest) = text
        .strip_prefix("tags[")
        .or_else(|| text.strip_prefix("!tags["))
        && let Some((key, value)) = rest.split_once("]:")
    {
        (text.starts_with('!'), key, value)
    } else {
        let Some(colon) = colon else {
            if token.quoted_from.is_none() && text.starts_with('!') && text.len() > 1 {
                return Err(bad(
                    token.at,
                    &token.raw,
                    "only a filter (key:value) can be negated",
                ));
            }
            return Ok(Term::Text(text.to_owned()));
        };
        let (key, value) = (&text[..colon], &text[colon + 1..]);
        match key.strip_prefix('!') {
            Some(key) => (true, key, value),
            None => (false, key, value),
        }
    };
    let fail = |rule| Err(bad(token.at, &token.raw, rule));
    if key.is_empty() {
        return fail("a filter needs a key before the colon");
    }
    if value.is_empty() && token.quoted_from.is_none() {
        // `KeyError:` in a pasted title is text; a field or a tag key
        // written as one (lower case) wants its value.
        if !negated && !FIELDS.contains(&key) && key.starts_with(|c: char| c.is_ascii_uppercase()) {
            return Ok(Term::Text(text.to_owned()));
        }
        return fail("a filter needs a value after the colon");
    }
    let condition = match key {
        "is" => match value {
            "unresolved" => Condition::Status(IssueStatus::Unresolved),
            "resolved" => Condition::Status(IssueStatus::Resolved),
            "archived" | "ignored" => Condition::Status(IssueStatus::Archived),
            "assigned" => Condition::Assigned(Assignee::Anyone),
            "unassigned" => Condition::Assigned(Assignee::Nobody),
            _ => {
                return fail(
                    "is: takes unresolved, resolved, archived, ignored, assigned or unassigned",
                );
            }
        },
        "assigned" => match value {
            "me" => Condition::Assigned(Assignee::Me),
            "none" => Condition::Assigned(Assignee::Nobody),
            email if email.contains('@') => Condition::Assigned(Assignee::Email(email.to_owned())),
            _ => return fail("assigned: takes me, none or a member's email"),
        },
        "level" => match value.parse() {
            Ok(level) => Condition::Level(level),
            Err(_) => return fail("level: takes fatal, error, warning, info or debug"),
        },
        "has" => {
            if !tags::valid_key(value) {
                return fail("has: takes a tag key (letters, digits, _ . : -, at most 32)");
            }
            Condition::Has {
                key: value.to_owned(),
            }
        }
        "times_seen" | "timesSeen" => {
            let (op, n) = compared(value);
            match n.parse::<i64>() {
                Ok(n) if n >= 0 => Condition::TimesSeen(op, n),
                _ => return fail("times_seen: takes a count, e.g. times_seen:>100"),
            }
        }
        "users" | "user.count" => {
            let (op, n) = compared(value);
            match n.parse::<i64>() {
                Ok(n) if n >= 0 => Condition::Users(op, n),
                _ => return fail("users: takes a count, e.g. users:>10"),
            }
        }
        "firstSeen" | "first_seen" | "lastSeen" | "last_seen" => {
            let Some((op, at)) = time_filter(value, now) else {
                return fail(
                    "a time filter takes -24h, +7d (units s m h d w), or a date like >2026-11-01",
                );
            };
            if key.starts_with("first") {
                Condition::FirstSeen(op, at)
            } else {
                Condition::LastSeen(op, at)
            }
        }
        key => {
            if !tags::valid_key(key) {
                return fail(
                    "unknown field: a tag key is letters, digits, _ . : - and at most 32 characters",
                );
            }
            if !tags::valid_value(value) {
                return fail("a tag value is 1 to 200 characters on one line");
            }
            Condition::Tag {
                key: key.to_owned(),
                value: value.to_owned(),
            }
        }
    };
    Ok(Term::Filter(Filter { negated, condition }))
}

/// The fields with a meaning of their own; any other key is a tag's.
const FIELDS: [&str; 14] = [
    "is",
    "assigned",
    "level",
    "has",
    "times_seen",
    "timesSeen",
    "users",
    "user.count",
    "firstSeen",
    "first_seen",
    "lastSeen",
    "last_seen",
    "release",
    "environment",
];

/// A leading comparison operator and the rest; `=` when none.
fn compared(value: &str) -> (Compare, &str) {
    for (prefix, op) in [
        (">=", Compare::Ge),
        ("<=", Compare::Le),
        (">", Compare::Gt),
        ("<", Compare::Lt),
        ("=", Compare::Eq),
    ] {
        if let Some(rest) = value.strip_prefix(prefix) {
            return (op, rest);
        }
    }
    (Compare::Eq, value)
}

/// `-24h` (after that long ago), `+7d` (before it), or a comparison with
/// a date or an RFC 3339 time; a bare date `2026-11-01` is on or after
/// its start (UTC). Years 1 to 9999 only, as PostgreSQL takes.
fn time_filter(value: &str, now: DateTime<Utc>) -> Option<(Compare, DateTime<Utc>)> {
    if let Some(rest) = value.strip_prefix('-').or_else(|| value.strip_prefix('+')) {
        let split = rest.find(|c: char| !c.is_ascii_digit())?;
        let (n, unit) = rest.split_at(split);
        let n: i64 = n.parse().ok()?;
        let span = match unit {
            "s" => Duration::try_seconds(n)?,
            "m" => Duration::try_minutes(n)?,
            "h" => Duration::try_hours(n)?,
            "d" => Duration::try_days(n)?,
            "w" => Duration::try_weeks(n)?,
            _ => return None,
        };
        let at = now.checked_sub_signed(span)?;
        let op = if value.starts_with('-') {
            Compare::Ge
        } else {
            Compare::Le
        };
        return sane(at).map(|at| (op, at));
    }
    let (op, rest) = compared(value);
    let at = match rest.parse::<NaiveDate>() {
        Ok(day) => day.and_time(NaiveTime::MIN).and_utc(),
        Err(_) => DateTime::parse_from_rfc3339(rest).ok()?.to_utc(),
    };
    // A bare date means from that day on, as Sentry reads `lastSeen:2026-11-01`.
    let op = if value == rest { Compare::Ge } else { op };
    sane(at).map(|at| (op, at))
}

fn sane(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (1..=9999).contains(&at.year()).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-10T12:00:00Z".parse().unwrap()
    }

    fn parse(text: &str) -> Result<Search> {
        Search::parse(text, now())
    }

    fn only(text: &str) -> Filter {
        let s = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(s.text, None, "{text}");
        assert_eq!(s.filters.len(), 1, "{text}");
        s.filters[0].clone()
    }

    fn yes(condition: Condition) -> Filter {
        Filter {
            negated: false,
            condition,
        }
    }

    fn not(condition: Condition) -> Filter {
        Filter {
            negated: true,
            condition,
        }
    }

    fn tag(key: &str, value: &str) -> Condition {
        Condition::Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_operator() {
        use Compare::*;
        use Condition::*;
        let table = [
            ("is:unresolved", yes(Status(IssueStatus::Unresolved))),
            ("is:resolved", yes(Status(IssueStatus::Resolved))),
            ("is:archived", yes(Status(IssueStatus::Archived))),
            ("is:ignored", yes(Status(IssueStatus::Archived))),
            ("!is:resolved", not(Status(IssueStatus::Resolved))),
            ("is:assigned", yes(Assigned(Assignee::Anyone))),
            ("is:unassigned", yes(Assigned(Assignee::Nobody))),
            ("assigned:me", yes(Assigned(Assignee::Me))),
            ("assigned:none", yes(Assigned(Assignee::Nobody))),
            (
                "assigned:Ann@Example.org",
                yes(Assigned(Assignee::Email("Ann@Example.org".into()))),
            ),
            ("!assigned:me", not(Assigned(Assignee::Me))),
            ("level:error", yes(Level(Severity::Error))),
            ("level:warn", yes(Level(Severity::Warning))),
            ("!level:info", not(Level(Severity::Info))),
            ("release:api@2.0.0", yes(tag("release", "api@2.0.0"))),
            (
                "environment:production",
                yes(tag("environment", "production")),
            ),
            ("browser.name:Chrome", yes(tag("browser.name", "Chrome"))),
            ("server_name:web-1", yes(tag("server_name", "web-1"))),
            ("!browser.name:Chrome", not(tag("browser.name", "Chrome"))),
            ("user:id:42", yes(tag("user", "id:42"))),
            (
                "url:https://x.example/a",
                yes(tag("url", "https://x.example/a")),
            ),
            ("tags[sentry:user]:id:42", yes(tag("sentry:user", "id:42"))),
            ("!tags[a:b]:c", not(tag("a:b", "c"))),
            ("has:user", yes(Has { key: "user".into() })),
            (
                "!has:release",
                not(Has {
                    key: "release".into(),
                }),
            ),
            ("times_seen:>100", yes(TimesSeen(Gt, 100))),
            ("timesSeen:<=5", yes(TimesSeen(Le, 5))),
            ("times_seen:7", yes(TimesSeen(Eq, 7))),
            ("users:>10", yes(Users(Gt, 10))),
            ("users:>=1", yes(Users(Ge, 1))),
            ("users:<3", yes(Users(Lt, 3))),
            (
                "firstSeen:-24h",
                yes(FirstSeen(Ge, at("2026-11-09T12:00:00Z"))),
            ),
            (
                "firstSeen:+7d",
                yes(FirstSeen(Le, at("2026-11-03T12:00:00Z"))),
            ),
            (
                "first_seen:-30m",
                yes(FirstSeen(Ge, at("2026-11-10T11:30:00Z"))),
            ),
            (
                "lastSeen:-2w",
                yes(LastSeen(Ge, at("2026-10-27T12:00:00Z"))),
            ),
            (
                "lastSeen:-90s",
                yes(LastSeen(Ge, at("2026-11-10T11:58:30Z"))),
            ),
            (
                "lastSeen:>2026-11-01",
                yes(LastSeen(Gt, at("2026-11-01T00:00:00Z"))),
            ),
            (
                "lastSeen:<2026-11-01",
                yes(LastSeen(Lt, at("2026-11-01T00:00:00Z"))),
            ),
            (
                "lastSeen:2026-11-01",
                yes(LastSeen(Ge, at("2026-11-01T00:00:00Z"))),
            ),
            (
                "last_seen:>=2026-11-01T10:00:00+02:00",
                yes(LastSeen(Ge, at("2026-11-01T08:00:00Z"))),
            ),
        ];
        for (text, want) in table {
            assert_eq!(only(text), want, "{text}");
        }
    }

    #[test]
    fn quoting_and_free_text() {
        let s = parse(r#"browser.name:"Mobile Safari" checkout  failed"#).unwrap();
        assert_eq!(s.filters, vec![yes(tag("browser.name", "Mobile Safari"))]);
        assert_eq!(s.text.as_deref(), Some("checkout failed"));

        let s = parse(r#""user 17: not found" is:unresolved"#).unwrap();
        assert_eq!(s.text.as_deref(), Some("user 17: not found"));
        assert_eq!(
            s.filters,
            vec![yes(Condition::Status(IssueStatus::Unresolved))]
        );

        let s = parse(r#"message:"say \"hi\"" "#).unwrap();
        assert_eq!(s.filters, vec![yes(tag("message", r#"say "hi""#))]);

        // Free text alone, as the list's search box always took it.
        let s = parse("KeyError: 'c'").unwrap();
        assert!(s.filters.is_empty());
        assert_eq!(s.text.as_deref(), Some("KeyError: 'c'"));
        let s = parse("50%_off").unwrap();
        assert_eq!(s.text.as_deref(), Some("50%_off"));
        assert_eq!(parse("   ").unwrap(), Search::default());
        assert_eq!(parse("").unwrap(), Search::default());
    }

    #[test]
    fn errors_name_the_token_and_its_position() {
        let table = [
            ("is:bogus", 1, "is:bogus"),
            ("level:severe", 1, "level:severe"),
            ("is:unresolved release:", 15, "release:"),
            (":x", 1, ":x"),
            ("times_seen:>many", 1, "times_seen:>many"),
            ("users:-1", 1, "users:-1"),
            ("firstSeen:yesterday", 1, "firstSeen:yesterday"),
            ("firstSeen:-24y", 1, "firstSeen:-24y"),
            ("lastSeen:>99999-01-01", 1, "lastSeen:>99999-01-01"),
            ("has:a/b", 1, "has:a/b"),
            ("ünï:x", 1, "ünï:x"),
            ("a  b/c:d", 4, "b/c:d"),
            ("assigned:bob", 1, "assigned:bob"),
            ("!crash", 1, "!crash"),
            (r#"x browser.name:"Chrome"#, 16, r#"browser.name:"Chrome"#),
        ];
        for (text, position, token) in table {
            match parse(text) {
                Err(Error::InvalidSearch {
                    position: p,
                    token: t,
                    ..
                }) => assert_eq!((p, t.as_str()), (position, token), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let long = "x".repeat(MAX_SEARCH_CHARS + 1);
        assert!(parse(&long).is_err());
        let many = "has:a ".repeat(MAX_FILTERS + 1);
        assert!(matches!(
            parse(&many),
            Err(Error::InvalidSearch { position: 121, .. })
        ));
        let message = parse("level:severe").unwrap_err().to_string();
        assert!(
            message.contains("level:severe") && message.contains("position 1"),
            "{message}"
        );
    }
}
