//! Issues (events grouped by fingerprint) and what the dashboard reads
//! about them: stored events, pages, the cursors that walk those pages, and
//! the filters a list takes.

use super::Severity;
use crate::error::{Error, Result};
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{fmt, str::FromStr};
use uuid::Uuid;

/// Where an issue stands in its triage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueStatus {
    #[default]
    Unresolved,
    Resolved,
    Archived,
}

impl IssueStatus {
    /// The name stored in `issues.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueStatus::Unresolved => "unresolved",
            IssueStatus::Resolved => "resolved",
            IssueStatus::Archived => "archived",
        }
    }
}

impl FromStr for IssueStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "unresolved" => Ok(IssueStatus::Unresolved),
            "resolved" => Ok(IssueStatus::Resolved),
            "archived" => Ok(IssueStatus::Archived),
            _ => Err(Error::invalid(
                "status",
                "must be one of unresolved, resolved, archived",
            )),
        }
    }
}

impl fmt::Display for IssueStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group of events that share a fingerprint within a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub id: Uuid,
    pub project_id: Uuid,
    pub fingerprint: String,
    pub title: String,
    /// Where it happened: the crashing in-app frame or the transaction.
    pub culprit: Option<String>,
    pub level: Severity,
    pub status: IssueStatus,
    pub event_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Set while the issue is resolved: when it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When a resolved issue last got a new event (and so was unresolved).
    pub regressed_at: Option<DateTime<Utc>>,
    pub assigned_to: Option<Uuid>,
    /// Distinct users among its events, counted as they are stored (see
    /// [`IssueActivity::users`] for who counts as a user).
    pub users: i64,
    /// The release of its first and of its latest event that had one.
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    /// While resolved in a release: an event of this release or a newer
    /// one reopens it.
    pub resolved_in_release: Option<String>,
    /// While resolved "in the next release": an event of a release newer
    /// than this one (the last it was seen in) reopens it.
    pub resolved_after_release: Option<String>,
    /// While archived until a condition: it comes back at this time...
    pub archived_until: Option<DateTime<Utc>>,
    /// ... or when `event_count` reaches this...
    pub archived_until_events: Option<i64>,
    /// ... or when `users` reaches this.
    pub archived_until_users: Option<i64>,
}

/// An event as stored: every column of `events`, the JSON ones as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub id: Uuid,
    pub project_id: Uuid,
    pub issue_id: Option<Uuid>,
    pub level: Severity,
    pub message: String,
    pub fingerprint: String,
    pub exception: Option<Value>,
    pub stacktrace: Option<Value>,
    pub breadcrumbs: Option<Value>,
    pub tags: Value,
    pub extra: Value,
    pub user_context: Option<Value>,
    pub sdk_name: Option<String>,
    pub sdk_version: Option<String>,
    /// When Mesher received it (the partition key).
    pub received_at: DateTime<Utc>,
    /// When the SDK says it happened.
    pub occurred_at: Option<DateTime<Utc>>,
    pub platform: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub transaction: Option<String>,
    pub contexts: Option<Value>,
    pub request: Option<Value>,
    /// The payload's fields Mesher has no column for.
    pub other: Option<Value>,
}

/// One page of a project's issues; `next` is the cursor of the following
/// page, absent on the last one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuePage {
    pub issues: Vec<Issue>,
    pub next: Option<String>,
}

/// One page of an issue's events, newest first; `next` as in [`IssuePage`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    pub next: Option<String>,
}

/// What an issue's page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueDetail {
    pub issue: Issue,
    /// The newest event by `received_at`; `None` when none is stored (its
    /// partitions were dropped).
    pub latest_event: Option<StoredEvent>,
    /// Events received per UTC day, oldest day first: the last
    /// [`DAILY_COUNT_DAYS`] days up to today, days without events included.
    pub daily_counts: Vec<(NaiveDate, i64)>,
    /// Distinct users among all its stored events (see [`IssueActivity::users`]).
    pub users: i64,
    /// Its events still stored: `event_count` counts every event it ever
    /// had, these only those the retention has kept.
    pub stored_events: i64,
}

/// How many days [`IssueDetail::daily_counts`] covers, today included.
pub const DAILY_COUNT_DAYS: u32 = 14;

/// The [`DAILY_COUNT_DAYS`] UTC days ending with a given day: the span of
/// the daily counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayWindow {
    /// The oldest day counted.
    pub first: NaiveDate,
    /// The day after the last one counted: the exclusive upper bound.
    pub end: NaiveDate,
}

impl DayWindow {
    /// The window ending with `today`; `None` only at the ends of the
    /// calendar chrono can represent.
    pub fn ending(today: NaiveDate) -> Option<Self> {
        Some(DayWindow {
            first: today.checked_sub_days(Days::new((DAILY_COUNT_DAYS - 1).into()))?,
            end: today.checked_add_days(Days::new(1))?,
        })
    }

    /// Every day of the window, oldest first, with its count in `counted`
    /// or zero.
    pub fn fill(&self, counted: impl Fn(NaiveDate) -> Option<i64>) -> Vec<(NaiveDate, i64)> {
        self.first
            .iter_days()
            .take_while(|day| *day < self.end)
            .map(|day| (day, counted(day).unwrap_or(0)))
            .collect()
    }
}

/// What an issue list shows of an issue beyond its row: how it went over
/// the last days and whom it hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueActivity {
    pub issue_id: Uuid,
    /// As [`IssueDetail::daily_counts`]: every day of the window, zeros too.
    pub daily_counts: Vec<(NaiveDate, i64)>,
    /// Distinct users among all its stored events, a user being the first
    /// of the event's user `id`, `email`, `ip_address` and `username` that
    /// is set. Events that name nobody are not counted: 0 means no event
    /// said whom it hit, not that it hit nobody.
    pub users: i64,
}

/// A project's issue counts, for the projects page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueCounts {
    pub project_id: Uuid,
    pub unresolved: i64,
    /// Every issue, whatever its status.
    pub total: i64,
}

/// The events beside one event of an issue, in the order Mesher received
/// them (`received_at`, then id): the issue page's newer/older links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventNeighbours {
    /// The next newer event; `None` at the newest.
    pub newer: Option<Uuid>,
    /// The next older event; `None` at the oldest still stored.
    pub older: Option<Uuid>,
}

/// The order of an issue list. Every order is descending, ties broken by
/// id, descending too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueSort {
    /// Most recently seen first.
    #[default]
    LastSeen,
    /// Newest issues first.
    FirstSeen,
    /// Most events first.
    EventCount,
}

impl IssueSort {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueSort::LastSeen => "last_seen",
            IssueSort::FirstSeen => "first_seen",
            IssueSort::EventCount => "event_count",
        }
    }
}

impl IssueSort {
    /// The cursor that resumes this order after `issue`.
    pub fn cursor_after(self, issue: &Issue) -> Cursor {
        match self {
            IssueSort::LastSeen => Cursor::at_time(issue.last_seen, issue.id),
            IssueSort::FirstSeen => Cursor::at_time(issue.first_seen, issue.id),
            IssueSort::EventCount => Cursor {
                key: issue.event_count,
                id: issue.id,
            },
        }
    }

    /// Parses a cursor [`cursor_after`](Self::cursor_after) made for this
    /// order, checking that a time key is one PostgreSQL takes.
    pub fn parse_cursor(self, text: &str) -> Result<Cursor> {
        let cursor = Cursor::decode(self.as_str(), text)?;
        if self != IssueSort::EventCount {
            cursor.time()?;
        }
        Ok(cursor)
    }
}

impl FromStr for IssueSort {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "last_seen" => Ok(IssueSort::LastSeen),
            "first_seen" => Ok(IssueSort::FirstSeen),
            "event_count" => Ok(IssueSort::EventCount),
            _ => Err(Error::invalid(
                "sort",
                "must be one of last_seen, first_seen, event_count",
            )),
        }
    }
}

/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE_LIMIT: u32 = 25;
/// The most rows a page may hold.
pub const MAX_PAGE_LIMIT: u32 = 100;

/// Checks a page size: [`DEFAULT_PAGE_LIMIT`] when absent, 1 to
/// [`MAX_PAGE_LIMIT`] otherwise.
pub fn page_limit(limit: Option<u32>) -> Result<u32> {
    match limit.unwrap_or(DEFAULT_PAGE_LIMIT) {
        n @ 1..=MAX_PAGE_LIMIT => Ok(n),
        _ => Err(Error::invalid("limit", "must be between 1 and 100")),
    }
}

/// Longest filter text (environment, release, search) accepted, in
/// characters.
const MAX_FILTER_CHARS: usize = 256;

/// A filter value as given (not trimmed: it is compared as stored), at most
/// 256 characters and without NUL, which PostgreSQL text cannot hold.
pub fn filter_text(field: &'static str, text: &str) -> Result<String> {
    if text.chars().count() > MAX_FILTER_CHARS {
        return Err(Error::invalid(field, "must be at most 256 characters"));
    }
    if text.contains('\0') {
        return Err(Error::invalid(field, "must not contain NUL"));
    }
    Ok(text.to_owned())
}

/// `text` as a LIKE pattern matching it anywhere, with its own `%`, `_`
/// and `\` escaped (for `LIKE ... ESCAPE '\'`), so they match themselves.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A position in a keyset walk: the sort key of the last row returned and
/// its id. Rows come strictly after it in the walk's order.
///
/// On the wire it is opaque: the hex of `"<scope>|<key>|<id>"`, where the
/// scope names the order it belongs to, so a cursor of one sort is refused
/// by another instead of silently landing somewhere else. Timestamps are
/// keyed by their microseconds since the epoch, PostgreSQL's precision, so
/// the walk resumes exactly at the row it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: Uuid,
}

impl Cursor {
    /// The cursor after a row keyed by a timestamp.
    pub fn at_time(time: DateTime<Utc>, id: Uuid) -> Self {
        Cursor {
            key: time.timestamp_micros(),
            id,
        }
    }

    /// The opaque, URL-safe text of this cursor within `scope`.
    pub fn encode(&self, scope: &str) -> String {
        hex::encode(format!("{scope}|{}|{}", self.key, self.id.as_hyphenated()))
    }

    /// Parses a cursor [`encode`](Self::encode)d for `scope`; anything else
    /// is `InvalidInput { field: "cursor" }`.
    pub fn decode(scope: &str, text: &str) -> Result<Self> {
        let malformed = || Error::invalid("cursor", "is not a cursor this list returned");
        let bytes = hex::decode(text).map_err(|_| malformed())?;
        let plain = std::str::from_utf8(&bytes).map_err(|_| malformed())?;
        let mut parts = plain.splitn(3, '|');
        let (Some(given_scope), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if given_scope != scope {
            return Err(Error::invalid("cursor", "belongs to another sort order"));
        }
        Ok(Cursor {
            key: key.parse().map_err(|_| malformed())?,
            id: Uuid::parse_str(id).map_err(|_| malformed())?,
        })
    }

    /// The scope of the cursors of an issue's events (newest first).
    pub const EVENTS: &'static str = "received_at";

    /// Parses a cursor of an issue's events (see [`Cursor::EVENTS`]).
    pub fn parse_event_cursor(text: &str) -> Result<Self> {
        let cursor = Cursor::decode(Self::EVENTS, text)?;
        cursor.time()?;
        Ok(cursor)
    }

    /// The key as a timestamp, for cursors made by [`at_time`](Self::at_time).
    /// Refuses keys outside years 1 to 9999, which no stored time has and
    /// PostgreSQL might not accept as a parameter.
    pub fn time(&self) -> Result<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.key)
            .filter(|t| (1..=9999).contains(&t.year()))
            .ok_or(Error::invalid(
                "cursor",
                "is not a cursor this list returned",
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::new_id;

    #[test]
    fn status_and_sort_parse_their_names_only() {
        for s in [
            IssueStatus::Unresolved,
            IssueStatus::Resolved,
            IssueStatus::Archived,
        ] {
            assert_eq!(s.as_str().parse::<IssueStatus>().unwrap(), s);
        }
        for s in [
            IssueSort::LastSeen,
            IssueSort::FirstSeen,
            IssueSort::EventCount,
        ] {
            assert_eq!(s.as_str().parse::<IssueSort>().unwrap(), s);
        }
        assert!(matches!(
            "Resolved".parse::<IssueStatus>(),
            Err(Error::InvalidInput {
                field: "status",
                ..
            })
        ));
        assert!(matches!(
            "last_seen; DROP TABLE issues".parse::<IssueSort>(),
            Err(Error::InvalidInput { field: "sort", .. })
        ));
    }

    #[test]
    fn day_window_spans_fourteen_utc_days_ending_today() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        for (today, first) in [
            ("2026-03-14", "2026-03-01"),
            // Across a month, a year, and a leap day.
            ("2026-03-05", "2026-02-20"),
            ("2026-01-03", "2025-12-21"),
            ("2024-03-05", "2024-02-21"),
        ] {
            let w = DayWindow::ending(d(today)).unwrap();
            assert_eq!(w.first, d(first), "{today}");
            assert_eq!(w.end, d(today).succ_opt().unwrap(), "{today}");
            let days = w.fill(|_| None);
            assert_eq!(days.len(), DAILY_COUNT_DAYS as usize, "{today}");
            assert_eq!(days.first().unwrap(), &(d(first), 0));
            assert_eq!(days.last().unwrap(), &(d(today), 0));
        }
        let w = DayWindow::ending(d("2026-03-14")).unwrap();
        let days = w.fill(|day| (day == d("2026-03-10")).then_some(7));
        assert_eq!(days[9], (d("2026-03-10"), 7));
        assert_eq!(days.iter().map(|(_, n)| n).sum::<i64>(), 7);
        assert!(DayWindow::ending(NaiveDate::MIN).is_none());
        assert!(DayWindow::ending(NaiveDate::MAX).is_none());
    }

    #[test]
    fn page_limit_defaults_and_bounds() {
        assert_eq!(page_limit(None).unwrap(), 25);
        assert_eq!(page_limit(Some(1)).unwrap(), 1);
        assert_eq!(page_limit(Some(100)).unwrap(), 100);
        for bad in [0, 101, u32::MAX] {
            assert!(matches!(
                page_limit(Some(bad)),
                Err(Error::InvalidInput { field: "limit", .. })
            ));
        }
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(contains_pattern("ünï'"), "%ünï'%");
    }

    #[test]
    fn filter_text_refuses_nul_and_long_text() {
        assert_eq!(filter_text("release", "v1 ü").unwrap(), "v1 ü");
        assert!(filter_text("release", "a\0b").is_err());
        assert!(filter_text("release", &"x".repeat(257)).is_err());
    }

    #[test]
    fn cursor_round_trips_and_refuses_garbage() {
        let c = Cursor::at_time(Utc::now(), new_id());
        let text = c.encode("last_seen");
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        let back = Cursor::decode("last_seen", &text).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.time().unwrap().timestamp_micros(), c.key);

        let negative = Cursor {
            key: -5,
            id: new_id(),
        };
        assert_eq!(
            Cursor::decode("event_count", &negative.encode("event_count")).unwrap(),
            negative
        );

        for bad in [
            String::new(),
            "zz".into(),
            "abc".into(),
            hex::encode("last_seen|12"),
            hex::encode("last_seen|x|00000000-0000-0000-0000-000000000000"),
            hex::encode("last_seen|1|not-a-uuid"),
            hex::encode([0xff, 0xfe]),
            c.encode("first_seen"),
        ] {
            assert!(
                matches!(
                    Cursor::decode("last_seen", &bad),
                    Err(Error::InvalidInput {
                        field: "cursor",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        let far = Cursor {
            key: i64::MAX,
            id: new_id(),
        };
        assert!(far.time().is_err());
    }
}
