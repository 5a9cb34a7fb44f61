//! The alert pages' view models and the rule and channel forms: a
//! project's channels and rules (`GET /projects/{id}/alerts`), a rule's and
//! a channel's edit forms, and the history of what fired and how each
//! delivery went.

use super::format::RelTime;
use super::pages::{Layout, ProjectHeader};
use crate::domain::{
    Alert, AlertCondition, AlertFilters, AlertRule, Channel, ChannelKind, Member, NewChannel,
    NewRule, TagFilter, parse_id, url_origin,
};
use crate::error::{Error, Result};
use askama::Template;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// `GET /projects/{id}/alerts`: channels and rules, with the forms that
/// make them (admins).
#[derive(Debug, Template)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub channels: Vec<ChannelRow>,
    pub rules: Vec<RuleRow>,
    /// The new-rule form (admins).
    pub form: RuleForm,
    /// The new-channel form (admins).
    pub channel_form: ChannelForm,
    /// Right after a webhook channel is made: its name and secret, shown
    /// this once.
    pub secret: Option<(String, String)>,
    /// Whether email channels can be made (SMTP is configured).
    pub email: bool,
    pub error: Option<String>,
}

/// `GET /projects/{id}/alerts/rules/{rule_id}/edit` (admins).
#[derive(Debug, Template)]
#[template(path = "alert_rule_edit.html")]
pub struct RuleEditPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub form: RuleForm,
    pub error: Option<String>,
}

/// `GET /projects/{id}/alerts/channels/{channel_id}/edit` (admins): a
/// channel's name and target. A webhook's URL is not shown (its path is a
/// credential for Slack and Discord): left empty, it stays.
#[derive(Debug, Template)]
#[template(path = "alert_channel_edit.html")]
pub struct ChannelEditPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub channel: ChannelRow,
    /// Whether it is an email channel (addresses) rather than a webhook
    /// (a URL).
    pub email: bool,
    /// The name in the form: the channel's, or as posted.
    pub name: String,
    /// The email addresses in the form, comma-separated; empty for
    /// webhooks, whose URL is kept unless a new one is given.
    pub target: String,
    /// Email: the organization's members, those the channel addresses (or
    /// as posted) ticked; empty for webhooks.
    pub members: Vec<RecipientChoice>,
    pub error: Option<String>,
}

/// `GET /projects/{id}/alerts/history`: alerts, newest first.
#[derive(Debug, Template)]
#[template(path = "alert_history.html")]
pub struct AlertHistoryPage {
    pub layout: Layout,
    pub project: ProjectHeader,
    pub alerts: Vec<AlertRow>,
    /// The next (older) page's link.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRow {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    /// Where it sends: the URL's origin (never its path, which for Slack
    /// and Discord is a credential), or the recipients.
    pub target: String,
    pub enabled: bool,
}

impl ChannelRow {
    /// The row of `channel`, naming the members it addresses from
    /// `members` (the organization's): anyone who may read the channels
    /// may also list the organization's members, so their names and
    /// addresses reveal nothing new.
    pub fn of(channel: &Channel, members: &[Member]) -> ChannelRow {
        let target = match channel.kind {
            ChannelKind::Email => {
                let mut to = channel.addresses.clone();
                // One who left the organization stays in the channel until
                // it is saved again, but is no longer emailed.
                to.extend(channel.members.iter().map(|id| {
                    members
                        .iter()
                        .find(|m| m.user_id == *id)
                        .map_or_else(|| "a former member (not emailed)".to_owned(), member_label)
                }));
                to.join(", ")
            }
            _ => channel.url.as_deref().map(url_origin).unwrap_or_default(),
        };
        ChannelRow {
            id: channel.id.to_string(),
            name: channel.name.clone(),
            kind: channel.kind.as_str(),
            target,
            enabled: channel.enabled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    pub id: String,
    pub name: String,
    /// The condition, for people ("More than 50 events in 1 minute").
    pub condition: String,
    /// The filters, for people; empty without any.
    pub filters: String,
    /// The channels' names.
    pub channels: String,
    pub interval: String,
    pub enabled: bool,
}

impl RuleRow {
    pub fn of(rule: &AlertRule, channels: &[Channel]) -> RuleRow {
        let names: Vec<&str> = rule
            .channels
            .iter()
            .filter_map(|id| channels.iter().find(|c| c.id == *id))
            .map(|c| c.name.as_str())
            .collect();
        RuleRow {
            id: rule.id.to_string(),
            name: rule.name.clone(),
            condition: rule.condition.headline(),
            filters: describe_filters(&rule.filters),
            channels: if names.is_empty() {
                "no channel".into()
            } else {
                names.join(", ")
            },
            interval: format!("at most every {} min", rule.action_interval_minutes),
            enabled: rule.enabled,
        }
    }
}

fn describe_filters(filters: &AlertFilters) -> String {
    let mut parts = Vec::new();
    if !filters.environments.is_empty() {
        parts.push(format!("in {}", filters.environments.join(" or ")));
    }
    if let Some(level) = filters.min_level {
        parts.push(format!("{} or worse", level.as_str()));
    }
    if let Some(tag) = &filters.tag {
        parts.push(format!("{}={}", tag.key, tag.value));
    }
    parts.join(", ")
}

/// How a member is named in the channel forms and listing.
fn member_label(member: &Member) -> String {
    format!("{} <{}>", member.display_name, member.email)
}

/// An organization member an email channel may address, ticked when it
/// does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientChoice {
    /// The member's user id: what the checkbox posts as `member`.
    pub id: String,
    /// The member's name and address.
    pub label: String,
    pub checked: bool,
}

/// The organization's `members` as checkboxes, those `checked` says
/// ticked.
pub fn recipient_choices(
    members: &[Member],
    checked: impl Fn(&str) -> bool,
) -> Vec<RecipientChoice> {
    members
        .iter()
        .map(|m| {
            let id = m.user_id.to_string();
            RecipientChoice {
                checked: checked(&id),
                label: member_label(m),
                id,
            }
        })
        .collect()
}

/// Whether `posted` ticks the member `id`.
pub fn posted_member(posted: &[(String, String)], id: &str) -> bool {
    posted.iter().any(|(k, v)| k == "member" && v.trim() == id)
}

/// The webhook kinds the new-channel form offers, as (value, label); email
/// is offered after them when SMTP is configured.
pub const WEBHOOK_KINDS: [(&str, &str); 3] = [
    ("webhook", "Webhook (signed JSON)"),
    ("slack", "Slack"),
    ("discord", "Discord"),
];

/// The new-channel form, empty or as it was posted (after a refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelForm {
    /// The kind chosen (`webhook`, ..., `email`).
    pub kind: String,
    pub name: String,
    /// A webhook's URL, or email addresses separated by commas.
    pub target: String,
    /// The organization's members, for email channels to address.
    pub members: Vec<RecipientChoice>,
}

impl ChannelForm {
    /// The empty form, offering the organization's `members`.
    pub fn new(members: &[Member]) -> ChannelForm {
        ChannelForm {
            kind: "webhook".into(),
            name: String::new(),
            target: String::new(),
            members: recipient_choices(members, |_| false),
        }
    }

    /// This form with what was posted in it, shown again after a refusal.
    pub fn refilled(mut self, posted: &[(String, String)]) -> ChannelForm {
        self.kind = field(posted, "kind").to_owned();
        self.name = field(posted, "name").to_owned();
        self.target = field(posted, "target").to_owned();
        for choice in &mut self.members {
            choice.checked = posted_member(posted, &choice.id);
        }
        self
    }
}

/// A channel of `kind` from a posted channel form: `name`, `target` (a
/// webhook's URL, or email addresses separated by commas) and `member`
/// (repeated: the user ids of the members an email channel addresses).
/// The edit form posts no kind: the channel's is given.
/// [`crate::domain::ChannelSpec::new`] checks it, and the database that
/// the members are the organization's.
pub fn channel_from_form(kind: &str, posted: &[(String, String)]) -> Result<NewChannel> {
    let target = field(posted, "target");
    let members = posted
        .iter()
        .filter(|(k, _)| k == "member")
        .map(|(_, v)| parse_id("member", v))
        .collect::<Result<Vec<Uuid>>>()?;
    let email = matches!(ChannelKind::parse(kind), Ok(ChannelKind::Email));
    Ok(NewChannel {
        kind: kind.to_owned(),
        name: field(posted, "name").to_owned(),
        url: (!email).then(|| target.to_owned()),
        addresses: email.then(|| addresses(target)),
        // A member ticked for a webhook is refused, not dropped unseen.
        members: (email || !members.is_empty()).then_some(members),
        enabled: None,
    })
}

/// Email addresses as the forms take them: separated by commas.
fn addresses(target: &str) -> Vec<String> {
    target
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A channel a rule may notify, ticked when it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelChoice {
    pub id: String,
    pub name: String,
    pub checked: bool,
}

/// The rule form, empty or filled from a rule (or from what was posted,
/// after a refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleForm {
    /// Where it posts.
    pub action: String,
    pub submit: &'static str,
    pub name: String,
    /// The condition's type (`new_issue`, ...).
    pub condition: String,
    pub count: String,
    pub window_minutes: String,
    /// Comma-separated.
    pub environments: String,
    pub min_level: String,
    pub tag_key: String,
    pub tag_value: String,
    pub interval: String,
    pub channels: Vec<ChannelChoice>,
}

/// The conditions the form offers, as (value, label).
pub const CONDITIONS: [(&str, &str); 5] = [
    ("new_issue", "A new issue"),
    ("regression", "A resolved issue regresses"),
    ("unarchived", "An archived issue comes back"),
    ("event_frequency", "More than N events in M minutes"),
    ("user_frequency", "More than N users in M minutes"),
];

/// The levels the form offers as a minimum.
pub const LEVELS: [&str; 5] = ["debug", "info", "warning", "error", "fatal"];

impl RuleForm {
    /// The empty form for a new rule of the project `project_id`.
    pub fn new(project_id: &str, channels: &[Channel]) -> RuleForm {
        RuleForm {
            action: format!("/projects/{project_id}/alerts/rules"),
            submit: "Create rule",
            name: String::new(),
            condition: "new_issue".into(),
            count: "100".into(),
            window_minutes: "60".into(),
            environments: String::new(),
            min_level: String::new(),
            tag_key: String::new(),
            tag_value: String::new(),
            interval: "30".into(),
            channels: channels
                .iter()
                .map(|c| ChannelChoice {
                    id: c.id.to_string(),
                    name: c.name.clone(),
                    checked: false,
                })
                .collect(),
        }
    }

    /// The form filled from `rule`, posting its changes.
    pub fn edit(rule: &AlertRule, channels: &[Channel]) -> RuleForm {
        let (count, window) = rule.condition.frequency().unwrap_or((100, 60));
        let mut form = RuleForm::new(&rule.project_id.to_string(), channels);
        form.action = format!("/projects/{}/alerts/rules/{}", rule.project_id, rule.id);
        form.submit = "Save rule";
        form.name = rule.name.clone();
        form.condition = rule.condition.reason().into();
        form.count = count.to_string();
        form.window_minutes = window.to_string();
        form.environments = rule.filters.environments.join(", ");
        form.min_level = rule
            .filters
            .min_level
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default();
        if let Some(tag) = &rule.filters.tag {
            form.tag_key = tag.key.clone();
            form.tag_value = tag.value.clone();
        }
        form.interval = rule.action_interval_minutes.to_string();
        for choice in &mut form.channels {
            choice.checked = rule.channels.iter().any(|c| c.to_string() == choice.id);
        }
        form
    }

    /// This form with what was posted in it, shown again after a refusal.
    pub fn refilled(mut self, posted: &[(String, String)]) -> RuleForm {
        let get = |key: &str| field(posted, key).to_owned();
        self.name = get("name");
        self.condition = get("condition");
        self.count = get("count");
        self.window_minutes = get("window_minutes");
        self.environments = get("environments");
        self.min_level = get("min_level");
        self.tag_key = get("tag_key");
        self.tag_value = get("tag_value");
        self.interval = get("action_interval_minutes");
        for choice in &mut self.channels {
            choice.checked = posted
                .iter()
                .any(|(k, v)| k == "channel" && *v == choice.id);
        }
        self
    }

    pub fn is_frequency(&self) -> bool {
        self.condition.ends_with("_frequency")
    }
}

/// The value of `key` in a posted form, empty when absent.
pub(crate) fn field<'a>(posted: &'a [(String, String)], key: &str) -> &'a str {
    posted
        .iter()
        .find(|(k, _)| k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// A rule from the posted rule form: `name`, `condition`, `count` and
/// `window_minutes` (frequencies), `environments` (comma-separated),
/// `min_level`, `tag_key` and `tag_value`, `channel` (repeated),
/// `action_interval_minutes`. [`crate::domain::RuleSpec::new`] checks it.
pub fn rule_from_form(posted: &[(String, String)]) -> Result<NewRule> {
    let number = |key: &'static str, field_name: &'static str| -> Result<u64> {
        field(posted, key)
            .trim()
            .parse()
            .map_err(|_| Error::invalid(field_name, "must be a whole number"))
    };
    let window = || -> Result<u32> {
        u32::try_from(number("window_minutes", "condition.window_minutes")?)
            .map_err(|_| Error::invalid("condition.window_minutes", "is too large"))
    };
    let condition = match field(posted, "condition") {
        "new_issue" => AlertCondition::NewIssue,
        "regression" => AlertCondition::Regression,
        "unarchived" => AlertCondition::Unarchived,
        "event_frequency" => AlertCondition::EventFrequency {
            count: number("count", "condition.count")?,
            window_minutes: window()?,
        },
        "user_frequency" => AlertCondition::UserFrequency {
            count: number("count", "condition.count")?,
            window_minutes: window()?,
        },
        _ => return Err(Error::invalid("condition", "must be one of those offered")),
    };
    let environments = field(posted, "environments")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    let min_level = match field(posted, "min_level") {
        "" => None,
        level => Some(level.parse()?),
    };
    let (key, value) = (field(posted, "tag_key").trim(), field(posted, "tag_value"));
    let tag = (!key.is_empty() || !value.is_empty()).then(|| TagFilter {
        key: key.to_owned(),
        value: value.to_owned(),
    });
    let channels = posted
        .iter()
        .filter(|(k, _)| k == "channel")
        .map(|(_, v)| parse_id("channel", v))
        .collect::<Result<Vec<Uuid>>>()?;
    let interval = u32::try_from(number(
        "action_interval_minutes",
        "action_interval_minutes",
    )?)
    .map_err(|_| Error::invalid("action_interval_minutes", "is too large"))?;
    Ok(NewRule {
        name: field(posted, "name").to_owned(),
        condition,
        filters: AlertFilters {
            environments,
            min_level,
            tag,
        },
        channels,
        action_interval_minutes: Some(interval),
        enabled: None,
    })
}

/// An alert in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    pub at: RelTime,
    /// The rule's name, or what stands in for it.
    pub rule: String,
    /// The issue's page and title.
    pub issue: Option<(String, String)>,
    pub message: String,
    pub deliveries: Vec<DeliveryRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub channel: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl AlertRow {
    pub fn of(alert: &Alert, project_id: &str, now: DateTime<Utc>) -> AlertRow {
        AlertRow {
            at: RelTime::new(alert.triggered_at, now),
            rule: match (&alert.rule_name, alert.reason.as_str()) {
                (Some(name), _) => name.clone(),
                (None, "test") => "Test notification".into(),
                (None, _) => "(deleted rule)".into(),
            },
            issue: alert.issue_id.map(|id| {
                (
                    format!("/projects/{project_id}/issues/{id}"),
                    alert.issue_title.clone().unwrap_or_else(|| id.to_string()),
                )
            }),
            message: alert.message.clone(),
            deliveries: alert
                .deliveries
                .iter()
                .map(|d| DeliveryRow {
                    channel: d.channel_name.clone(),
                    kind: d.channel_kind.as_str(),
                    state: d.state.as_str(),
                    attempts: d.attempts,
                    last_error: d.last_error.clone(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_rule_form_reads_into_a_rule() {
        let channel = Uuid::now_v7();
        let rule = rule_from_form(&posted(&[
            ("name", "Busy checkout"),
            ("condition", "event_frequency"),
            ("count", "50"),
            ("window_minutes", "1"),
            ("environments", "production, staging ,"),
            ("min_level", "error"),
            ("tag_key", "area"),
            ("tag_value", "checkout"),
            ("channel", &channel.to_string()),
            ("action_interval_minutes", "30"),
        ]))
        .unwrap();
        assert_eq!(
            rule.condition,
            AlertCondition::EventFrequency {
                count: 50,
                window_minutes: 1
            }
        );
        assert_eq!(rule.filters.environments, ["production", "staging"]);
        assert_eq!(rule.filters.min_level, Some(crate::domain::Severity::Error));
        assert_eq!(rule.channels, [channel]);
        let plain = rule_from_form(&posted(&[
            ("name", "New"),
            ("condition", "new_issue"),
            ("count", "not used"),
            ("action_interval_minutes", "30"),
        ]))
        .unwrap();
        assert_eq!(plain.condition, AlertCondition::NewIssue);
        assert_eq!(plain.filters, AlertFilters::default());
        for (pairs, field) in [
            (vec![("condition", "sometimes")], "condition"),
            (
                vec![("condition", "user_frequency"), ("count", "x")],
                "condition.count",
            ),
            (
                vec![("condition", "new_issue"), ("min_level", "loud")],
                "level",
            ),
            (
                vec![("condition", "new_issue"), ("action_interval_minutes", "")],
                "action_interval_minutes",
            ),
        ] {
            match rule_from_form(&posted(&pairs)) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{pairs:?}"),
                other => panic!("{pairs:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_webhook_row_shows_its_origin_never_its_path() {
        let channel = Channel {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            kind: ChannelKind::Slack,
            name: "Ops".into(),
            url: Some("https://hooks.slack.com/services/T0/B0/secret".into()),
            addresses: vec![],
            members: vec![],
            enabled: true,
            created_at: Utc::now(),
        };
        let row = ChannelRow::of(&channel, &[]);
        assert_eq!(row.target, "https://hooks.slack.com/…");
    }

    #[test]
    fn the_channel_form_reads_addresses_and_ticked_members() {
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let channel = channel_from_form(
            "email",
            &posted(&[
                ("name", "Team"),
                ("target", " dev@example.org, ,ops@example.org "),
                ("member", &ann.to_string()),
                ("member", &bob.to_string()),
            ]),
        )
        .unwrap();
        assert_eq!(
            channel.addresses.as_deref(),
            Some(&["dev@example.org".to_owned(), "ops@example.org".to_owned()][..])
        );
        assert_eq!(channel.members, Some(vec![ann, bob]));
        assert_eq!(channel.url, None);
        // Members only, and addresses only, are both email channels.
        let members_only = channel_from_form(
            "email",
            &posted(&[("name", "T"), ("member", &ann.to_string())]),
        )
        .unwrap();
        assert_eq!(members_only.addresses, Some(vec![]));
        let none_ticked = channel_from_form("email", &posted(&[("target", "a@example.org")]));
        assert_eq!(none_ticked.unwrap().members, Some(vec![]));
        let webhook = channel_from_form(
            "webhook",
            &posted(&[("name", "Hook"), ("target", "https://example.org/h")]),
        )
        .unwrap();
        assert_eq!(webhook.url.as_deref(), Some("https://example.org/h"));
        assert_eq!((webhook.addresses, webhook.members), (None, None));
        let ticked = channel_from_form("slack", &posted(&[("member", &ann.to_string())]));
        assert_eq!(ticked.unwrap().members, Some(vec![ann]));
        match channel_from_form("email", &posted(&[("member", "not-a-uuid")])) {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "member"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_email_row_names_its_members_and_those_who_left() {
        let (ann, gone) = (Uuid::now_v7(), Uuid::now_v7());
        let member = Member {
            user_id: ann,
            email: "ann@example.org".into(),
            display_name: "Ann".into(),
            role: crate::domain::Role::Member,
            joined_at: Utc::now(),
        };
        let channel = Channel {
            id: Uuid::nil(),
            project_id: Uuid::nil(),
            kind: ChannelKind::Email,
            name: "Team".into(),
            url: None,
            addresses: vec!["dev@example.org".into()],
            members: vec![ann, gone],
            enabled: true,
            created_at: Utc::now(),
        };
        assert_eq!(
            ChannelRow::of(&channel, std::slice::from_ref(&member)).target,
            "dev@example.org, Ann <ann@example.org>, a former member (not emailed)"
        );
        let form = ChannelForm::new(&[member]).refilled(&posted(&[
            ("kind", "email"),
            ("name", "Team"),
            ("member", &ann.to_string()),
        ]));
        assert_eq!((form.kind.as_str(), form.name.as_str()), ("email", "Team"));
        assert!(form.members[0].checked);
        assert_eq!(form.members[0].label, "Ann <ann@example.org>");
    }
}
