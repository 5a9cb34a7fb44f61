//! What the issue page shows for triage: the tag breakdown (each value a
//! link to the issue list searched by it), the activity, and the status
//! form with its archive and release options.

use super::format::RelTime;
use crate::app::State;
use crate::app::issues::Triage;
use crate::domain::Project;
use crate::domain::{
    Activity, ArchiveUntil, Issue, MAX_ARCHIVE_AMOUNT, ResolveIn, TagBreakdown, TagCount,
};
use crate::error::Error;
use crate::services::{GetIssueHistory, GetIssueTags};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// The issue page's triage part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueTriage {
    pub tags: Vec<TagView>,
    pub history: Vec<ActivityView>,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    /// The resolution or archive condition in force, in words.
    pub note: Option<String>,
}

impl IssueTriage {
    /// Reads the tag breakdown and activity of `issue`.
    pub async fn load(state: &State, project: &Project, issue: &Issue) -> Result<Self, Error> {
        let tags = state
            .issues
            .send(GetIssueTags {
                project_id: project.id.to_string(),
                issue_id: issue.id.to_string(),
            })
            .await??;
        let history = state
            .issues
            .send(GetIssueHistory {
                project_id: project.id.to_string(),
                issue_id: issue.id.to_string(),
            })
            .await??;
        Ok(IssueTriage {
            tags: TagView::of(project.id, &tags),
            history: ActivityView::of(&history, Utc::now()),
            first_release: issue.first_release.clone(),
            last_release: issue.last_release.clone(),
            note: condition_note(issue),
        })
    }
}

/// One tag key of the issue, as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagView {
    pub key: String,
    /// Events that carried the key.
    pub total: i64,
    /// "12 values", "at least 100 values" when some were past the bound.
    pub distinct: String,
    pub values: Vec<TagValueView>,
}

/// A value of a tag with its share of the key's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagValueView {
    pub value: String,
    pub count: i64,
    /// Whole percent of the key's events, at least 1 when any.
    pub percent: i64,
    /// The project's issue list searched by this tag.
    pub link: String,
}

impl TagView {
    /// The views of `breakdown`, for the issues of `project_id`.
    pub fn of(project_id: Uuid, breakdown: &[TagBreakdown]) -> Vec<TagView> {
        breakdown
            .iter()
            .map(|b| TagView {
                key: b.key.clone(),
                total: b.total,
                distinct: match (b.distinct, b.other) {
                    (1, 0) => "1 value".to_owned(),
                    (n, 0) => format!("{n} values"),
                    (n, _) => format!("more than {n} values"),
                },
                values: b
                    .top
                    .iter()
                    .map(|TagCount { value, count }| {
                        let term = search_term(&b.key, value);
                        let query = [("status", "all"), ("query", term.as_str())];
                        TagValueView {
                            value: value.clone(),
                            count: *count,
                            percent: percent(*count, b.total),
                            link: format!(
                                "/projects/{project_id}/issues?{}",
                                serde_urlencoded::to_string(query).unwrap_or_default()
                            ),
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

fn percent(count: i64, total: i64) -> i64 {
    match total {
        0 => 0,
        _ => (count * 100 / total).max(i64::from(count > 0)),
    }
}

/// The search term that finds `key: value`: `key:"value"`, with `"` and
/// `\` escaped; `tags[key]:` for a key holding a colon.
pub fn search_term(key: &str, value: &str) -> String {
    let value = value.replace('\\', "\\\\").replace('"', "\\\"");
    match key.contains(':') {
        true => format!("tags[{key}]:\"{value}\""),
        false => format!("{key}:\"{value}\""),
    }
}

/// One entry of the activity, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityView {
    pub at: RelTime,
    /// Who did it: a member's name, "Mesher" for what happened by itself,
    /// "a former member" for a user since deleted.
    pub who: String,
    pub what: String,
}

impl ActivityView {
    pub fn of(activity: &[Activity], now: DateTime<Utc>) -> Vec<ActivityView> {
        activity
            .iter()
            .map(|a| ActivityView {
                at: RelTime::new(a.at, now),
                who: match (&a.user_name, a.user_id, a.kind.as_str()) {
                    (Some(name), _, _) => name.clone(),
                    (None, None, "regression" | "unarchived") => "Mesher".to_owned(),
                    _ => "a former member".to_owned(),
                },
                what: describe(&a.kind, &a.data),
            })
            .collect()
    }
}

fn describe(kind: &str, data: &Value) -> String {
    let text = |field: &str| data.get(field).and_then(Value::as_str);
    let number = |v: &Value, field: &str| v.get(field).and_then(Value::as_i64);
    match kind {
        "resolved" => match (text("in_release"), text("after_release")) {
            (Some(release), _) => format!("resolved it in release {release}"),
            (_, Some(release)) => format!("resolved it in the release after {release}"),
            _ => "resolved it".to_owned(),
        },
        "unresolved" => "marked it unresolved".to_owned(),
        "archived" => {
            let until = data.get("until").cloned().unwrap_or(Value::Null);
            match (
                number(&until, "count"),
                number(&until, "minutes"),
                number(&until, "users"),
            ) {
                (Some(n), _, _) => format!("archived it until {n} more events"),
                (_, Some(n), _) => format!("archived it for {n} minutes"),
                (_, _, Some(n)) => format!("archived it until {n} more users are affected"),
                _ => "archived it".to_owned(),
            }
        }
        "assigned" => "assigned it".to_owned(),
        "unassigned" => "unassigned it".to_owned(),
        "regression" => "reopened it: a new event after it was resolved".to_owned(),
        "unarchived" => match text("reason") {
            Some("events") => "brought it back: it had the events it was archived until",
            Some("users") => "brought it back: it affected the users it was archived until",
            Some("time") => "brought it back: the time it was archived for is over",
            _ => "brought it back",
        }
        .to_owned(),
        other => other.to_owned(),
    }
}

/// What the page says about a resolution or an archive in force.
pub fn condition_note(issue: &Issue) -> Option<String> {
    if let Some(release) = &issue.resolved_in_release {
        return Some(format!(
            "Resolved in release {release}: an event of it or a newer release reopens it."
        ));
    }
    if let Some(release) = &issue.resolved_after_release {
        return Some(format!(
            "Resolved in the next release: an event of a release newer than {release} reopens it."
        ));
    }
    if let Some(n) = issue.archived_until_events {
        return Some(format!(
            "Archived until it has {n} events ({} more).",
            n - issue.event_count
        ));
    }
    if let Some(n) = issue.archived_until_users {
        return Some(format!(
            "Archived until it affects {n} users ({} more).",
            n - issue.users
        ));
    }
    issue.archived_until.map(|at| {
        format!(
            "Archived until {}.",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    })
}

/// The status form: `status`, and with `archived` an `until` (`forever`,
/// `minutes`, `count`, `users`) and its `amount`; with `resolved` a
/// `resolve_in` (`now`, `next_release`, `release`) and its `release`.
#[derive(Debug, Deserialize)]
pub struct StatusForm {
    status: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    resolve_in: String,
    #[serde(default)]
    release: String,
}

impl StatusForm {
    /// The change the form asks for, by `actor`.
    pub fn change(self, actor: Uuid) -> Result<Triage, Error> {
        let amount = || {
            self.amount
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_ARCHIVE_AMOUNT).contains(n))
                .ok_or(Error::invalid(
                    "amount",
                    "must be a whole number from 1 to 10000000",
                ))
        };
        let archive = match (self.status.as_str(), self.until.as_str()) {
            ("archived", "" | "forever") => Some(ArchiveUntil::Forever),
            ("archived", "minutes") => Some(ArchiveUntil::Minutes(amount()?)),
            ("archived", "count") => Some(ArchiveUntil::Events(amount()?)),
            ("archived", "users") => Some(ArchiveUntil::Users(amount()?)),
            ("archived", _) => {
                return Err(Error::invalid(
                    "until",
                    "must be forever, minutes, count or users",
                ));
            }
            _ => None,
        };
        let resolved_in = match (self.status.as_str(), self.resolve_in.as_str()) {
            ("resolved", "" | "now") => None,
            ("resolved", "next_release") => Some(ResolveIn::NextRelease),
            ("resolved", "release") => Some(ResolveIn::from_json(
                &serde_json::json!({ "release": self.release }),
            )?),
            ("resolved", _) => {
                return Err(Error::invalid(
                    "resolve_in",
                    "must be now, next_release or release",
                ));
            }
            _ => None,
        };
        Ok(Triage {
            status: Some(self.status),
            archive,
            resolved_in,
            assignee: None,
            assignee_field: "user_id",
            actor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_terms_quote_values() {
        assert_eq!(
            search_term("browser.name", "Chrome"),
            r#"browser.name:"Chrome""#
        );
        assert_eq!(search_term("url", r#"a "b" \c"#), r#"url:"a \"b\" \\c""#);
        assert_eq!(
            search_term("sentry:user", "id:1"),
            r#"tags[sentry:user]:"id:1""#
        );
        // What the link searches for is what the value was.
        let now = Utc::now();
        for (key, value) in [("url", r#"a "b" \c"#), ("browser", "Mobile Safari 17")] {
            let search = crate::domain::Search::parse(&search_term(key, value), now).unwrap();
            assert_eq!(
                search.filters[0].condition,
                crate::domain::search::Condition::Tag {
                    key: key.into(),
                    value: value.into()
                }
            );
        }
    }

    #[test]
    fn tag_views_show_shares_and_link_to_searches() {
        let project = Uuid::nil();
        let views = TagView::of(
            project,
            &[TagBreakdown {
                key: "browser.name".into(),
                total: 300,
                distinct: 3,
                other: 0,
                top: vec![
                    TagCount {
                        value: "Chrome".into(),
                        count: 200,
                    },
                    TagCount {
                        value: "Firefox & co".into(),
                        count: 99,
                    },
                    TagCount {
                        value: "Lynx".into(),
                        count: 1,
                    },
                ],
            }],
        );
        let v = &views[0];
        assert_eq!(v.distinct, "3 values");
        assert_eq!(
            v.values.iter().map(|x| x.percent).collect::<Vec<_>>(),
            [66, 33, 1]
        );
        assert_eq!(
            v.values[1].link,
            format!(
                "/projects/{project}/issues?status=all&query=browser.name%3A%22Firefox+%26+co%22"
            )
        );
    }

    #[test]
    fn the_status_form_reads_its_options() {
        let form = |status: &str, until: &str, amount: &str, resolve_in: &str, release: &str| {
            StatusForm {
                status: status.into(),
                until: until.into(),
                amount: amount.into(),
                resolve_in: resolve_in.into(),
                release: release.into(),
            }
            .change(Uuid::nil())
        };
        let m = form("archived", "count", "5", "", "").unwrap();
        assert_eq!(m.archive, Some(ArchiveUntil::Events(5)));
        let m = form("archived", "", "", "", "").unwrap();
        assert_eq!(m.archive, Some(ArchiveUntil::Forever));
        let m = form("resolved", "", "", "next_release", "").unwrap();
        assert_eq!(m.resolved_in, Some(ResolveIn::NextRelease));
        let m = form("resolved", "", "", "release", "v2").unwrap();
        assert_eq!(m.resolved_in, Some(ResolveIn::Release("v2".into())));
        let m = form("unresolved", "count", "5", "release", "v2").unwrap();
        assert_eq!((m.archive, m.resolved_in), (None, None));
        assert!(form("archived", "count", "0", "", "").is_err());
        assert!(form("archived", "count", "x", "", "").is_err());
        assert!(form("archived", "hours", "1", "", "").is_err());
        assert!(form("resolved", "", "", "release", " ").is_err());
        assert!(form("resolved", "", "", "later", "").is_err());
    }

    #[test]
    fn activity_reads_as_sentences() {
        let now = Utc::now();
        let entry = |kind: &str, data: Value, user: Option<&str>| Activity {
            id: Uuid::nil(),
            at: now,
            user_id: user.map(|_| Uuid::nil()),
            user_name: user.map(str::to_owned),
            kind: kind.into(),
            data,
        };
        let views = ActivityView::of(
            &[
                entry("archived", json!({"until": {"count": 5}}), Some("Ann")),
                entry("unarchived", json!({"reason": "events"}), None),
                entry("resolved", json!({"after_release": "v1"}), Some("Bo")),
                entry("regression", json!({}), None),
            ],
            now,
        );
        let text: Vec<_> = views
            .iter()
            .map(|v| format!("{} {}", v.who, v.what))
            .collect();
        assert_eq!(
            text,
            [
                "Ann archived it until 5 more events",
                "Mesher brought it back: it had the events it was archived until",
                "Bo resolved it in the release after v1",
                "Mesher reopened it: a new event after it was resolved",
            ]
        );
    }
}
