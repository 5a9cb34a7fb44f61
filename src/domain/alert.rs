//! Alert rules and notification channels: what a project is told about,
//! and where. Each value is checked when it is built from what a caller
//! sent ([`RuleSpec::new`], [`ChannelSpec::new`]), so an invalid rule or
//! channel never reaches the database.
//!
//! A rule fires for an issue when the batch that stored some of its events
//! holds one that passes the rule's [`AlertFilters`], and its
//! [`AlertCondition`] holds; then at most once per action interval for
//! that issue. What a firing sends is [`super::notice`]'s.

use super::names::refuse_control_chars;
use super::{Email, Event, Name, Severity};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The longest frequency window: a week, in minutes.
pub const MAX_WINDOW_MINUTES: u32 = 7 * 24 * 60;
/// The action interval a rule gets when none is given, as Sentry's.
pub const DEFAULT_ACTION_INTERVAL_MINUTES: u32 = 30;
/// The longest action interval: 30 days, in minutes.
pub const MAX_ACTION_INTERVAL_MINUTES: u32 = 30 * 24 * 60;
/// The most channels one rule notifies, and environments one filter names.
pub const MAX_RULE_CHANNELS: usize = 20;
/// The most recipients of one email channel (addresses and members).
pub const MAX_EMAIL_RECIPIENTS: usize = 50;
/// The longest webhook URL accepted.
const MAX_URL_CHARS: usize = 2000;
/// A frequency threshold past any real count: keeps `count + 1` in range.
const MAX_THRESHOLD: u64 = 1_000_000_000;

/// When a rule fires; stored as `alert_rules.condition_json`, in the shape
/// the API takes (`{"type": "event_frequency", "count": 50,
/// "window_minutes": 1}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertCondition {
    /// The first event of a fingerprint: the issue was created by the batch.
    NewIssue,
    /// A resolved issue got a new event and was reopened.
    Regression,
    /// An issue archived until a condition (a time, a count of events or
    /// users) came back by itself.
    Unarchived,
    /// More than `count` events of the issue received within the last
    /// `window_minutes` (counted from the stored events).
    EventFrequency { count: u64, window_minutes: u32 },
    /// More than `count` distinct users of the issue within the last
    /// `window_minutes`.
    UserFrequency { count: u64, window_minutes: u32 },
}

impl AlertCondition {
    /// Its name, as alerts record why they fired and metrics label them.
    pub fn reason(self) -> &'static str {
        match self {
            AlertCondition::NewIssue => "new_issue",
            AlertCondition::Regression => "regression",
            AlertCondition::Unarchived => "unarchived",
            AlertCondition::EventFrequency { .. } => "event_frequency",
            AlertCondition::UserFrequency { .. } => "user_frequency",
        }
    }

    /// What happened, for people: the head of a notification's subject.
    pub fn headline(self) -> String {
        let minutes = |m: u32| match m {
            1 => "1 minute".to_owned(),
            m => format!("{m} minutes"),
        };
        match self {
            AlertCondition::NewIssue => "New issue".into(),
            AlertCondition::Regression => "Regression".into(),
            AlertCondition::Unarchived => "Back from archive".into(),
            AlertCondition::EventFrequency {
                count,
                window_minutes,
            } => format!("More than {count} events in {}", minutes(window_minutes)),
            AlertCondition::UserFrequency {
                count,
                window_minutes,
            } => format!("More than {count} users in {}", minutes(window_minutes)),
        }
    }

    /// The frequency condition's threshold and window, if it is one.
    pub fn frequency(self) -> Option<(u64, u32)> {
        match self {
            AlertCondition::EventFrequency {
                count,
                window_minutes,
            }
            | AlertCondition::UserFrequency {
                count,
                window_minutes,
            } => Some((count, window_minutes)),
            _ => None,
        }
    }

    fn check(self) -> Result<()> {
        if let Some((count, window)) = self.frequency() {
            if count > MAX_THRESHOLD {
                return Err(Error::invalid(
                    "condition.count",
                    "must be at most 1000000000",
                ));
            }
            if !(1..=MAX_WINDOW_MINUTES).contains(&window) {
                return Err(Error::invalid(
                    "condition.window_minutes",
                    "must be from 1 minute to 1 week (10080)",
                ));
            }
        }
        Ok(())
    }
}

/// A tag an event must carry, `key = value` (among its indexed tags: the
/// SDK's and those Mesher derives, see [`Event::indexed_tags`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFilter {
    pub key: String,
    pub value: String,
}

/// Which events may set a rule off; each is optional, all must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFilters {
    /// The event's environment is one of these (none: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// The event is at least this severe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_level: Option<Severity>,
    /// The event has this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagFilter>,
}

/// How severe a level is: debug 0 to fatal 4.
fn rank(level: Severity) -> u8 {
    match level {
        Severity::Debug => 0,
        Severity::Info => 1,
        Severity::Warning => 2,
        Severity::Error => 3,
        Severity::Fatal => 4,
    }
}

impl AlertFilters {
    /// Whether `event` passes every filter.
    pub fn admits(&self, event: &Event) -> bool {
        let environment = self.environments.is_empty()
            || event
                .environment()
                .is_some_and(|e| self.environments.iter().any(|f| f == e));
        let level = self
            .min_level
            .is_none_or(|min| rank(event.level()) >= rank(min));
        let tag = self.tag.as_ref().is_none_or(|t| {
            event
                .indexed_tags()
                .iter()
                .any(|e| e.key == t.key && e.value == t.value)
        });
        environment && level && tag
    }

    fn check(mut self) -> Result<Self> {
        if self.environments.len() > MAX_RULE_CHANNELS {
            return Err(Error::invalid(
                "filters.environments",
                "must name at most 20 environments",
            ));
        }
        for env in &mut self.environments {
            *env = env.trim().to_owned();
            if env.is_empty() || env.chars().count() > 200 {
                return Err(Error::invalid(
                    "filters.environments",
                    "must be names of 1 to 200 characters",
                ));
            }
            refuse_control_chars("filters.environments", env)?;
        }
        self.environments.sort();
        self.environments.dedup();
        if let Some(tag) = &mut self.tag {
            tag.key = tag.key.trim().to_owned();
            if !super::tags::valid_key(&tag.key) {
                return Err(Error::invalid(
                    "filters.tag.key",
                    "must be 1 to 32 characters of letters, digits and _.:-",
                ));
            }
            if tag.value.is_empty() || tag.value.chars().count() > 200 {
                return Err(Error::invalid(
                    "filters.tag.value",
                    "must be 1 to 200 characters",
                ));
            }
            refuse_control_chars("filters.tag.value", &tag.value)?;
        }
        Ok(self)
    }
}

/// A rule as a caller sends it (the API's JSON; the page's form builds
/// one too). Unchecked: [`RuleSpec::new`] checks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    pub name: String,
    pub condition: AlertCondition,
    #[serde(default)]
    pub filters: AlertFilters,
    #[serde(default)]
    pub channels: Vec<Uuid>,
    pub action_interval_minutes: Option<u32>,
    pub enabled: Option<bool>,
}

/// A change to a rule: what is given replaces what it had.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    pub name: Option<String>,
    pub condition: Option<AlertCondition>,
    pub filters: Option<AlertFilters>,
    pub channels: Option<Vec<Uuid>>,
    pub action_interval_minutes: Option<u32>,
    pub enabled: Option<bool>,
}

/// A checked rule, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub name: Name,
    pub condition: AlertCondition,
    pub filters: AlertFilters,
    /// The channels it notifies, each once, in the order given.
    pub channels: Vec<Uuid>,
    pub action_interval_minutes: u32,
    pub enabled: bool,
}

impl RuleSpec {
    pub fn new(rule: NewRule) -> Result<RuleSpec> {
        let name = Name::parse("name", &rule.name)?;
        rule.condition.check()?;
        let filters = rule.filters.check()?;
        let mut channels = Vec::with_capacity(rule.channels.len());
        for id in rule.channels {
            if !channels.contains(&id) {
                channels.push(id);
            }
        }
        if channels.len() > MAX_RULE_CHANNELS {
            return Err(Error::invalid("channels", "must name at most 20 channels"));
        }
        let interval = rule
            .action_interval_minutes
            .unwrap_or(DEFAULT_ACTION_INTERVAL_MINUTES);
        if !(1..=MAX_ACTION_INTERVAL_MINUTES).contains(&interval) {
            return Err(Error::invalid(
                "action_interval_minutes",
                "must be from 1 minute to 30 days (43200)",
            ));
        }
        Ok(RuleSpec {
            name,
            condition: rule.condition,
            filters,
            channels,
            action_interval_minutes: interval,
            enabled: rule.enabled.unwrap_or(true),
        })
    }

    /// `rule` with `patch` applied, checked again whole.
    pub fn patched(rule: &AlertRule, patch: RulePatch) -> Result<RuleSpec> {
        RuleSpec::new(NewRule {
            name: patch.name.unwrap_or_else(|| rule.name.clone()),
            condition: patch.condition.unwrap_or(rule.condition),
            filters: patch.filters.unwrap_or_else(|| rule.filters.clone()),
            channels: patch.channels.unwrap_or_else(|| rule.channels.clone()),
            action_interval_minutes: Some(
                patch
                    .action_interval_minutes
                    .unwrap_or(rule.action_interval_minutes),
            ),
            enabled: Some(patch.enabled.unwrap_or(rule.enabled)),
        })
    }
}

/// A project's alerting rule, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRule {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub condition: AlertCondition,
    pub filters: AlertFilters,
    /// The channels it notifies.
    pub channels: Vec<Uuid>,
    /// One rule notifies about one issue at most once per interval.
    pub action_interval_minutes: u32,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `alert_rules.action_json` holds: what a rule does when it fires.
/// A rule of the first release, whose action had no agreed shape, reads
/// as notifying nobody.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleAction {
    #[serde(default)]
    pub channels: Vec<Uuid>,
    #[serde(default = "default_interval")]
    pub action_interval_minutes: u32,
}

fn default_interval() -> u32 {
    DEFAULT_ACTION_INTERVAL_MINUTES
}

/// Where a channel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// Generic JSON, signed with the channel's secret.
    Webhook,
    /// A Slack incoming webhook (`text` and `blocks`).
    Slack,
    /// A Discord webhook (`content` and `embeds`).
    Discord,
    /// An email over SMTP, to addresses and organization members.
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Discord => "discord",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Result<ChannelKind> {
        match text.trim() {
            "webhook" => Ok(ChannelKind::Webhook),
            "slack" => Ok(ChannelKind::Slack),
            "discord" => Ok(ChannelKind::Discord),
            "email" => Ok(ChannelKind::Email),
            _ => Err(Error::invalid(
                "kind",
                "must be one of webhook, slack, discord, email",
            )),
        }
    }
}

/// An `http` or `https` URL with a host, and no user or password in it
/// (they would show wherever the URL does). Whether its host may be
/// reached (not a private address) is the notifier's check, made when the
/// channel is created and again at every connection.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(text: &str) -> Result<WebhookUrl> {
        let text = text.trim();
        if text.chars().count() > MAX_URL_CHARS {
            return Err(Error::invalid("url", "must be at most 2000 characters"));
        }
        let url = url::Url::parse(text)
            .map_err(|_| Error::invalid("url", "must be an absolute http(s) URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::invalid("url", "must start with http:// or https://"));
        }
        if url.host().is_none() {
            return Err(Error::invalid("url", "must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid("url", "must not hold a user or password"));
        }
        Ok(WebhookUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }

    /// Scheme, host and port, without the path (which for Slack and
    /// Discord is a credential): what logs may show.
    pub fn origin(&self) -> String {
        self.0.origin().ascii_serialization()
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({}/…)", self.origin())
    }
}

/// Where a channel sends, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelTarget {
    /// Webhook, Slack and Discord: a URL.
    Url(WebhookUrl),
    /// Email: addresses and organization members (by user id; their
    /// current address is read when a message goes out).
    Email {
        addresses: Vec<Email>,
        members: Vec<Uuid>,
    },
}

/// A channel as a caller sends it: `url` for the webhooks, `addresses`
/// and `members` for email.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    pub kind: String,
    pub name: String,
    pub url: Option<String>,
    pub addresses: Option<Vec<String>>,
    pub members: Option<Vec<Uuid>>,
    pub enabled: Option<bool>,
}

/// A change to a channel (its kind stays).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    pub name: Option<String>,
    pub url: Option<String>,
    pub addresses: Option<Vec<String>>,
    pub members: Option<Vec<Uuid>>,
    pub enabled: Option<bool>,
}

/// A checked channel, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    pub kind: ChannelKind,
    pub name: Name,
    pub target: ChannelTarget,
    pub enabled: bool,
}

impl ChannelSpec {
    pub fn new(channel: NewChannel) -> Result<ChannelSpec> {
        let kind = ChannelKind::parse(&channel.kind)?;
        let name = Name::parse("name", &channel.name)?;
        let target = match kind {
            ChannelKind::Email => {
                if channel.url.is_some() {
                    return Err(Error::invalid("url", "is for webhook channels"));
                }
                let mut addresses = Vec::new();
                for text in channel.addresses.unwrap_or_default() {
                    let email = Email::parse(&text)?;
                    if !addresses.contains(&email) {
                        addresses.push(email);
                    }
                }
                let mut members = channel.members.unwrap_or_default();
                members.sort();
                members.dedup();
                if addresses.is_empty() && members.is_empty() {
                    return Err(Error::invalid(
                        "addresses",
                        "an email channel needs an address or a member",
                    ));
                }
                if addresses.len() + members.len() > MAX_EMAIL_RECIPIENTS {
                    return Err(Error::invalid(
                        "addresses",
                        "an email channel may have at most 50 recipients",
                    ));
                }
                ChannelTarget::Email { addresses, members }
            }
            _ => {
                if channel.addresses.is_some() {
                    return Err(Error::invalid("addresses", "are for email channels"));
                }
                if channel.members.is_some() {
                    return Err(Error::invalid("members", "are for email channels"));
                }
                let url = channel
                    .url
                    .ok_or(Error::invalid("url", "a webhook channel needs a URL"))?;
                ChannelTarget::Url(WebhookUrl::parse(&url)?)
            }
        };
        Ok(ChannelSpec {
            kind,
            name,
            target,
            enabled: channel.enabled.unwrap_or(true),
        })
    }

    /// `channel` with `patch` applied, checked again whole.
    pub fn patched(channel: &Channel, patch: ChannelPatch) -> Result<ChannelSpec> {
        let email = channel.kind == ChannelKind::Email;
        ChannelSpec::new(NewChannel {
            kind: channel.kind.as_str().to_owned(),
            name: patch.name.unwrap_or_else(|| channel.name.clone()),
            url: patch.url.or_else(|| channel.url.clone()),
            addresses: patch
                .addresses
                .or_else(|| email.then(|| channel.addresses.clone())),
            members: patch
                .members
                .or_else(|| email.then(|| channel.members.clone())),
            enabled: Some(patch.enabled.unwrap_or(channel.enabled)),
        })
    }
}

/// A channel as stored and shown: never its secret, which is shown once,
/// when the channel is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub id: Uuid,
    pub project_id: Uuid,
    pub kind: ChannelKind,
    pub name: String,
    /// The webhooks' URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Email: the addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Email: the organization members, by user id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Uuid>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl Channel {
    /// The channel as one who may not manage alerts sees it: its URL by
    /// origin only, since a Slack or Discord webhook's path is itself the
    /// credential that lets anyone post to it.
    pub fn redacted(self) -> Channel {
        Channel {
            url: self.url.as_deref().map(url_origin),
            ..self
        }
    }
}

/// A URL shown without what follows its origin: `https://hooks.slack.com/…`.
pub fn url_origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| format!("{}/…", u.origin().ascii_serialization()))
        .unwrap_or_default()
}

/// The secret a generic webhook channel signs its bodies with: 256 random
/// bits as hex, prefixed `whsec_`. Shown once; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelSecret(String);

impl ChannelSecret {
    pub fn generate() -> Result<ChannelSecret> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::internal_from("operating system RNG failed", e))?;
        Ok(ChannelSecret(format!("whsec_{}", hex::encode(bytes))))
    }

    /// A secret read back from the database.
    pub fn stored(text: String) -> ChannelSecret {
        ChannelSecret(text)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelSecret(<redacted>)")
    }
}

/// A channel just created: the reply that shows a webhook's secret, once.
#[derive(Debug, Clone, Serialize)]
pub struct NewChannelReply {
    pub id: Uuid,
    pub kind: ChannelKind,
    pub name: String,
    #[serde(serialize_with = "expose_secret")]
    pub secret: Option<ChannelSecret>,
}

fn expose_secret<S: serde::Serializer>(
    secret: &Option<ChannelSecret>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// The receiver took it (2xx; the SMTP server accepted it).
    Delivered,
    /// Given up after retrying for the retry window.
    Failed,
}

impl DeliveryState {
    pub fn parse(text: &str) -> Result<DeliveryState> {
        match text {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "failed" => Ok(DeliveryState::Failed),
            _ => Err(Error::internal(format!("unknown delivery state {text:?}"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }
}

/// One delivery of an alert to one channel, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: Uuid,
    pub channel_id: Uuid,
    /// The channel's name and kind, when it still exists.
    pub channel_name: String,
    pub channel_kind: ChannelKind,
    pub state: DeliveryState,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A rule's firing about an issue (or a channel's test), with its
/// deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: Uuid,
    pub rule_id: Option<Uuid>,
    /// The rule's name at the time of reading (`None`: a test, or the rule
    /// was deleted).
    pub rule_name: Option<String>,
    pub issue_id: Option<Uuid>,
    pub issue_title: Option<String>,
    /// Why: the condition's name (`new_issue`, ..., or `test`).
    pub reason: String,
    /// Why, for people ("More than 50 events in 1 minute").
    pub message: String,
    pub event_id: Option<Uuid>,
    pub triggered_at: DateTime<Utc>,
    pub deliveries: Vec<Delivery>,
}

/// A page of a project's alerts, newest first; `next` is the cursor of
/// the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(value: serde_json::Value) -> Result<RuleSpec> {
        RuleSpec::new(serde_json::from_value(value).expect("the shape parses"))
    }

    #[test]
    fn conditions_read_the_api_shapes_and_check_their_bounds() {
        let cases = [
            (json!({"type": "new_issue"}), Ok("new_issue")),
            (json!({"type": "regression"}), Ok("regression")),
            (json!({"type": "unarchived"}), Ok("unarchived")),
            (
                json!({"type": "event_frequency", "count": 50, "window_minutes": 1}),
                Ok("event_frequency"),
            ),
            (
                json!({"type": "user_frequency", "count": 0, "window_minutes": 10080}),
                Ok("user_frequency"),
            ),
            (
                json!({"type": "event_frequency", "count": 5, "window_minutes": 0}),
                Err("condition.window_minutes"),
            ),
            (
                json!({"type": "event_frequency", "count": 5, "window_minutes": 10081}),
                Err("condition.window_minutes"),
            ),
            (
                json!({"type": "user_frequency", "count": 1_000_000_001u64, "window_minutes": 5}),
                Err("condition.count"),
            ),
        ];
        for (condition, expected) in cases {
            let got = rule(json!({"name": "r", "condition": condition}));
            match (got, expected) {
                (Ok(spec), Ok(reason)) => assert_eq!(spec.condition.reason(), reason),
                (Err(Error::InvalidInput { field, .. }), Err(f)) => assert_eq!(field, f),
                (got, expected) => panic!("{condition}: got {got:?}, expected {expected:?}"),
            }
        }
        let unknown: std::result::Result<NewRule, _> =
            serde_json::from_value(json!({"name": "r", "condition": {"type": "sometimes"}}));
        assert!(unknown.is_err());
    }

    #[test]
    fn a_rule_has_defaults_and_limits() {
        let spec =
            rule(json!({"name": "  New errors ", "condition": {"type": "new_issue"}})).unwrap();
        assert_eq!(spec.name.as_str(), "New errors");
        assert_eq!(spec.action_interval_minutes, 30);
        assert!(spec.enabled);
        let id = Uuid::now_v7();
        let spec = rule(json!({"name": "r", "condition": {"type": "new_issue"},
            "channels": [id, id], "action_interval_minutes": 1, "enabled": false}))
        .unwrap();
        assert_eq!(spec.channels, vec![id]);
        assert!(!spec.enabled);
        for (body, field) in [
            (
                json!({"name": "", "condition": {"type": "new_issue"}}),
                "name",
            ),
            (
                json!({"name": "r", "condition": {"type": "new_issue"}, "action_interval_minutes": 0}),
                "action_interval_minutes",
            ),
            (
                json!({"name": "r", "condition": {"type": "new_issue"}, "action_interval_minutes": 43201}),
                "action_interval_minutes",
            ),
            (
                json!({"name": "r", "condition": {"type": "new_issue"},
                    "filters": {"environments": ["ok", "bad\u{0}"]}}),
                "filters.environments",
            ),
            (
                json!({"name": "r", "condition": {"type": "new_issue"},
                    "filters": {"tag": {"key": "has space", "value": "x"}}}),
                "filters.tag.key",
            ),
            (
                json!({"name": "r", "condition": {"type": "new_issue"},
                    "filters": {"tag": {"key": "browser", "value": ""}}}),
                "filters.tag.value",
            ),
        ] {
            match rule(body.clone()) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn headlines_say_what_happened() {
        let cases = [
            (AlertCondition::NewIssue, "New issue"),
            (AlertCondition::Regression, "Regression"),
            (AlertCondition::Unarchived, "Back from archive"),
            (
                AlertCondition::EventFrequency {
                    count: 50,
                    window_minutes: 1,
                },
                "More than 50 events in 1 minute",
            ),
            (
                AlertCondition::UserFrequency {
                    count: 3,
                    window_minutes: 60,
                },
                "More than 3 users in 60 minutes",
            ),
        ];
        for (condition, headline) in cases {
            assert_eq!(condition.headline(), headline);
        }
    }

    #[test]
    fn webhook_urls_are_http_with_a_host_and_no_credentials() {
        let cases = [
            ("https://hooks.slack.com/services/T0/B0/xyz", true),
            ("http://127.0.0.1:9000/hook?x=1", true),
            ("  https://example.org/h  ", true),
            ("ftp://example.org/h", false),
            ("file:///etc/passwd", false),
            ("https://user:pass@example.org/h", false),
            ("https://user@example.org/h", false),
            ("example.org/h", false),
            ("http://", false),
            ("", false),
        ];
        for (text, ok) in cases {
            assert_eq!(WebhookUrl::parse(text).is_ok(), ok, "{text}");
        }
        let url = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert_eq!(url.origin(), "https://hooks.slack.com");
        assert!(!format!("{url:?}").contains("secret"));
    }

    #[test]
    fn a_redacted_url_keeps_only_its_origin() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T0/B0/secret",
                "https://hooks.slack.com/…",
            ),
            (
                "https://discord.com/api/webhooks/1/token?wait=true",
                "https://discord.com/…",
            ),
            ("http://10.0.0.5:8080/hook#x", "http://10.0.0.5:8080/…"),
            ("not a url", ""),
        ] {
            assert_eq!(url_origin(url), shown, "{url}");
        }
    }

    #[test]
    fn channels_need_the_target_of_their_kind() {
        let ok = |c: NewChannel| ChannelSpec::new(c).map(|s| s.kind);
        let webhook = NewChannel {
            kind: "webhook".into(),
            name: "Ops".into(),
            url: Some("https://example.org/hook".into()),
            ..Default::default()
        };
        assert_eq!(ok(webhook.clone()).unwrap(), ChannelKind::Webhook);
        let email = NewChannel {
            kind: "email".into(),
            name: "Team".into(),
            addresses: Some(vec!["Ann@Example.org".into(), "ann@example.org".into()]),
            ..Default::default()
        };
        match ChannelSpec::new(email.clone()).unwrap().target {
            ChannelTarget::Email { addresses, .. } => assert_eq!(addresses.len(), 1),
            other => panic!("{other:?}"),
        }
        for (channel, field) in [
            (
                NewChannel {
                    kind: "pager".into(),
                    ..webhook.clone()
                },
                "kind",
            ),
            (
                NewChannel {
                    url: None,
                    ..webhook.clone()
                },
                "url",
            ),
            (
                NewChannel {
                    addresses: Some(vec!["a@example.org".into()]),
                    ..webhook.clone()
                },
                "addresses",
            ),
            (
                NewChannel {
                    members: Some(vec![Uuid::now_v7()]),
                    ..webhook.clone()
                },
                "members",
            ),
            (
                NewChannel {
                    addresses: Some(vec![]),
                    ..email.clone()
                },
                "addresses",
            ),
            (
                NewChannel {
                    addresses: Some(vec!["not an address".into()]),
                    ..email.clone()
                },
                "email",
            ),
        ] {
            match ChannelSpec::new(channel.clone()) {
                Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field, "{channel:?}"),
                other => panic!("{channel:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn secrets_are_random_and_hidden_from_debug() {
        let (a, b) = (
            ChannelSecret::generate().unwrap(),
            ChannelSecret::generate().unwrap(),
        );
        assert_ne!(a, b);
        assert!(a.expose().starts_with("whsec_") && a.expose().len() == 6 + 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn first_release_actions_read_as_notifying_nobody() {
        let action: RuleAction = serde_json::from_value(json!({"webhook": "x"})).unwrap();
        assert_eq!(action.channels, Vec::<Uuid>::new());
        assert_eq!(action.action_interval_minutes, 30);
    }
}
