//! Small pure renderings the pages share: times relative to an injected
//! "now", the 14-day sparkline, JSON as text, and the copy-paste setup
//! snippets for a DSN. Each is a function of its inputs only, so the
//! tests pin them down without a clock or a server.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

/// A moment as a page shows it: relative text for people, the exact UTC
/// time for the `datetime` attribute and the hover title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelTime {
    /// "3 minutes ago".
    pub text: String,
    /// RFC 3339 in UTC, to the second: what `<time datetime>` takes.
    pub iso: String,
}

impl RelTime {
    /// `then` as seen at `now`.
    pub fn new(then: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        RelTime {
            text: relative_time(then, now),
            iso: then.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// How long before `now` `then` was, in words, rounded down to the largest
/// whole unit: "just now" under a minute (and for times after `now`, which
/// a client's clock can produce), then minutes, hours, days, months of 30
/// days and years of 365 days.
pub fn relative_time(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds();
    const UNITS: [(i64, &str); 5] = [
        (365 * 86_400, "year"),
        (30 * 86_400, "month"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
    ];
    UNITS.iter().find(|(size, _)| seconds >= *size).map_or_else(
        || "just now".to_owned(),
        |(size, unit)| {
            let n = seconds / size;
            let plural = if n == 1 { "" } else { "s" };
            format!("{n} {unit}{plural} ago")
        },
    )
}

/// Height of the sparkline's drawing area, in SVG user units (= CSS px).
pub const SPARK_HEIGHT: u32 = 24;
/// Width of one day's bar, and the gap after it.
const BAR_WIDTH: u32 = 6;
const BAR_GAP: u32 = 2;

/// Events per day as bars: the data of an inline `<svg>`, which the
/// template draws (so every text in it is escaped like any other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sparkline {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
    /// Events over the whole period, for the accessible label.
    pub total: i64,
}

/// One day of a [`Sparkline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    /// Top of the bar: bars grow up from the baseline.
    pub y: u32,
    pub height: u32,
    /// "2026-03-02: 5 events", shown on hover.
    pub label: String,
}

impl Sparkline {
    /// Bars for `counts` (oldest day first, as
    /// [`crate::domain::IssueDetail::daily_counts`] holds them), scaled so
    /// the busiest day fills the height. A day with events is at least one
    /// unit tall, so one event beside thousands still shows; a day without
    /// is empty. Negative counts (none are stored) count as zero.
    pub fn new(counts: &[(NaiveDate, i64)]) -> Self {
        let max = counts.iter().map(|(_, n)| *n).max().unwrap_or(0).max(0);
        let bars = counts
            .iter()
            .enumerate()
            .map(|(i, (day, n))| {
                let n = (*n).max(0);
                let height = match max {
                    0 => 0,
                    // Rounded to nearest, in integers: no float edge cases.
                    _ => ((n * i64::from(SPARK_HEIGHT) + max / 2) / max).max(i64::from(n > 0)),
                } as u32;
                let plural = if n == 1 { "" } else { "s" };
                Bar {
                    x: i as u32 * (BAR_WIDTH + BAR_GAP),
                    y: SPARK_HEIGHT - height,
                    height,
                    label: format!("{day}: {n} event{plural}"),
                }
            })
            .collect::<Vec<_>>();
        Sparkline {
            width: (bars.len() as u32 * (BAR_WIDTH + BAR_GAP)).saturating_sub(BAR_GAP),
            height: SPARK_HEIGHT,
            total: counts.iter().map(|(_, n)| (*n).max(0)).sum(),
            bars,
        }
    }

    /// Width of every bar (a constant the template needs).
    pub fn bar_width(&self) -> u32 {
        BAR_WIDTH
    }
}

/// `value` as one line of text: a string as itself (no quotes), anything
/// else as compact JSON.
/// A size for people: bytes in B, KB, MB, GB or TB (powers of 1024), one
/// decimal past KB.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{} B", n.max(0));
    }
    let mut size = n as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

pub fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `value` indented for reading.
pub fn json_pretty(value: &impl serde::Serialize) -> String {
    // Serializing a serde_json::Value or a derived struct cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// A labelled pair of a details table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub key: String,
    pub value: String,
}

impl Field {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Field {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// An object's members as [`Field`]s, by key; nested values
/// as compact JSON, nulls left out. Anything but an object gives nothing.
pub fn fields(value: Option<&Value>) -> Vec<Field> {
    let Some(Value::Object(map)) = value else {
        return Vec::new();
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| Field::new(k, json_text(v)))
        .collect()
}

/// A setup snippet for one SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// For element ids and the `language-*` class.
    pub id: &'static str,
    pub label: &'static str,
    /// How to add the SDK, one command.
    pub install: &'static str,
    pub code: String,
}

/// What a project's setup shows once: its DSN and how to use it from
/// Python, JavaScript and Rust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    pub dsn: String,
    pub snippets: Vec<Snippet>,
}

impl Setup {
    /// The setup for `dsn`. The DSN is put into string literals of three
    /// languages; it is a URL Mesher built (no quotes or backslashes), and
    /// the page escapes it for HTML like everything else.
    pub fn new(dsn: &str) -> Self {
        let snippets = vec![
            Snippet {
                id: "python",
                label: "Python",
                install: "pip install sentry-sdk",
                code: format!("import sentry_sdk\n\nsentry_sdk.init(dsn=\"{dsn}\")\n"),
            },
            Snippet {
                id: "javascript",
                label: "JavaScript",
                install: "npm install @sentry/browser",
                code: format!(
                    "import * as Sentry from \"@sentry/browser\";\n\nSentry.init({{ dsn: \"{dsn}\" }});\n"
                ),
            },
            Snippet {
                id: "rust",
                label: "Rust",
                install: "cargo add sentry",
                code: format!(
                    "let _guard = sentry::init((\n    \"{dsn}\",\n    sentry::ClientOptions {{\n        release: sentry::release_name!(),\n        ..Default::default()\n    }},\n));\n"
                ),
            },
        ];
        Setup {
            dsn: dsn.to_owned(),
            snippets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_largest_unit_below_them() {
        for (n, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KB"),
            (1536, "1.5 KB"),
            (5 * 1024 * 1024, "5.0 MB"),
            (3 << 40, "3.0 TB"),
            (5000 << 40, "5000.0 TB"),
        ] {
            assert_eq!(bytes(n), text, "{n}");
        }
    }
    use chrono::TimeZone;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn relative_times_round_down_to_the_largest_unit() {
        let now = at("2026-03-15T12:00:00Z");
        let cases = [
            (now, "just now"),
            (now - chrono::Duration::seconds(59), "just now"),
            (now + chrono::Duration::hours(2), "just now"),
            (now - chrono::Duration::seconds(60), "1 minute ago"),
            (now - chrono::Duration::seconds(179), "2 minutes ago"),
            (now - chrono::Duration::minutes(59), "59 minutes ago"),
            (now - chrono::Duration::minutes(60), "1 hour ago"),
            (now - chrono::Duration::hours(23), "23 hours ago"),
            (now - chrono::Duration::hours(24), "1 day ago"),
            (now - chrono::Duration::days(29), "29 days ago"),
            (now - chrono::Duration::days(30), "1 month ago"),
            (now - chrono::Duration::days(364), "12 months ago"),
            (now - chrono::Duration::days(365), "1 year ago"),
            (now - chrono::Duration::days(3 * 365 + 1), "3 years ago"),
        ];
        for (then, want) in cases {
            assert_eq!(relative_time(then, now), want, "{then}");
        }
        let t = RelTime::new(now - chrono::Duration::minutes(3), now);
        assert_eq!(t.text, "3 minutes ago");
        assert_eq!(t.iso, "2026-03-15T11:57:00Z");
    }

    fn days(counts: &[i64]) -> Vec<(NaiveDate, i64)> {
        let first = Utc
            .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
            .unwrap()
            .date_naive();
        counts
            .iter()
            .enumerate()
            .map(|(i, n)| (first + chrono::Days::new(i as u64), *n))
            .collect()
    }

    #[test]
    fn sparkline_scales_to_the_busiest_day() {
        let cases: [(&[i64], &[u32]); 5] = [
            (&[], &[]),
            (&[0, 0, 0], &[0, 0, 0]),
            (&[0, 5, 10], &[0, 12, 24]),
            // One event beside thousands still shows.
            (&[1, 10_000], &[1, 24]),
            (&[-3, 2], &[0, 24]),
        ];
        for (counts, heights) in cases {
            let s = Sparkline::new(&days(counts));
            let got: Vec<u32> = s.bars.iter().map(|b| b.height).collect();
            assert_eq!(got, heights, "{counts:?}");
            for b in &s.bars {
                assert_eq!(b.y + b.height, SPARK_HEIGHT, "bars stand on the baseline");
            }
        }
        let s = Sparkline::new(&days(&[1; 14]));
        assert_eq!(s.bars.len(), 14);
        assert_eq!(s.width, 14 * 8 - 2);
        assert_eq!(s.bars[13].x, 13 * 8);
        assert_eq!(s.total, 14);
        assert_eq!(s.bars[0].label, "2026-03-01: 1 event");
        assert_eq!(
            Sparkline::new(&days(&[0, 2])).bars[1].label,
            "2026-03-02: 2 events"
        );
    }

    #[test]
    fn json_as_text_and_fields() {
        assert_eq!(json_text(&json!("a \"b\"")), "a \"b\"");
        assert_eq!(json_text(&json!(3)), "3");
        assert_eq!(json_text(&json!({"a": [1]})), r#"{"a":[1]}"#);
        assert_eq!(json_text(&Value::Null), "");
        let got = fields(Some(
            &json!({"id": "7", "geo": {"city": "Oslo"}, "ip": null}),
        ));
        assert_eq!(
            got,
            [
                Field::new("geo", r#"{"city":"Oslo"}"#),
                Field::new("id", "7")
            ]
        );
        assert!(fields(Some(&json!([1, 2]))).is_empty());
        assert!(fields(None).is_empty());
    }

    #[test]
    fn setup_puts_the_dsn_in_every_snippet() {
        let dsn = "http://mshr_abc@127.0.0.1:8000/42";
        let setup = Setup::new(dsn);
        let ids: Vec<_> = setup.snippets.iter().map(|s| s.id).collect();
        assert_eq!(ids, ["python", "javascript", "rust"]);
        for s in &setup.snippets {
            assert!(s.code.contains(&format!("\"{dsn}\"")), "{}", s.code);
        }
    }
}
