//! What a notification says, in each channel's format, as pure functions
//! of a [`Notice`]: the generic webhook's JSON and its signature, Slack's
//! and Discord's incoming-webhook messages, and the email's subject, text
//! and HTML. Also the rules of delivery that are arithmetic: the retry
//! [`backoff`] and which addresses a webhook may reach
//! ([`is_public_address`]).

use super::{IssueStatus, Severity};
use askama::Template;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;
use uuid::Uuid;

/// Everything a notification tells, whatever the channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// The delivery's id, the same on every attempt: receivers drop repeats
    /// by it.
    pub delivery_id: Uuid,
    /// The rule that fired (`None` for a channel's test).
    pub rule: Option<NoticeRule>,
    /// Why: the condition's name (`new_issue`, ..., `test`).
    pub reason: String,
    /// Why, for people: "New issue", "More than 50 events in 1 minute".
    #[serde(skip)]
    pub headline: String,
    pub project: NoticeProject,
    /// The issue (`None` for a test in a project without issues, or an
    /// issue deleted since).
    pub issue: Option<NoticeIssue>,
    /// The event that set the rule off.
    pub event: Option<NoticeEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeRule {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeProject {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeIssue {
    pub id: Uuid,
    pub title: String,
    pub culprit: Option<String>,
    pub level: Severity,
    pub status: IssueStatus,
    pub event_count: i64,
    pub users: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// The issue's page in the web UI.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeEvent {
    pub id: Uuid,
    pub release: Option<String>,
    pub environment: Option<String>,
}

impl Notice {
    /// What the issue is called, or what stands in for it.
    fn title(&self) -> &str {
        self.issue
            .as_ref()
            .map_or("(no issue: a test notification)", |i| i.title.as_str())
    }
}

/// The generic webhook's body (the spec's shape):
/// `{delivery_id, rule, reason, project, issue, event}`.
pub fn webhook_body(notice: &Notice) -> Vec<u8> {
    serde_json::to_vec(notice).expect("a notice serializes")
}

/// `X-Mesher-Signature`: `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `text` with Slack's three control characters escaped, so a title
/// cannot make a link or a mention.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The facts a message lists under its title, as (label, value).
fn facts(notice: &Notice) -> Vec<(&'static str, String)> {
    let mut facts = vec![("Project", notice.project.name.clone())];
    if let Some(issue) = &notice.issue {
        if let Some(culprit) = &issue.culprit {
            facts.push(("Culprit", culprit.clone()));
        }
        facts.push(("Level", issue.level.as_str().to_owned()));
        facts.push(("Events", issue.event_count.to_string()));
        facts.push(("Users", issue.users.to_string()));
    }
    if let Some(event) = &notice.event {
        if let Some(environment) = &event.environment {
            facts.push(("Environment", environment.clone()));
        }
        if let Some(release) = &event.release {
            facts.push(("Release", release.clone()));
        }
    }
    if let Some(rule) = &notice.rule {
        facts.push(("Rule", rule.name.clone()));
    }
    facts
}

/// A Slack incoming webhook's message: `text` (the fallback notifications
/// show) and `blocks`.
pub fn slack_body(notice: &Notice) -> Vec<u8> {
    let title = slack_escape(&cut(notice.title(), 300));
    let linked = match &notice.issue {
        Some(issue) => format!("<{}|{title}>", issue.url),
        None => title.clone(),
    };
    let headline = slack_escape(&notice.headline);
    let project = slack_escape(&notice.project.name);
    let fields: Vec<Value> = facts(notice)
        .into_iter()
        .map(|(label, value)| {
            json!({"type": "mrkdwn", "text": format!("*{label}*\n{}", slack_escape(&cut(&value, 500)))})
        })
        .take(10)
        .collect();
    let body = json!({
        "text": format!("{headline} in {project}: {title}"),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                "text": format!("*{headline}* in {project}\n{linked}")}},
            {"type": "section", "fields": fields},
        ],
    });
    serde_json::to_vec(&body).expect("JSON serializes")
}

/// A Discord webhook's message: `content` and one embed; no mentions,
/// whatever the title holds.
pub fn discord_body(notice: &Notice) -> Vec<u8> {
    let fields: Vec<Value> = facts(notice)
        .into_iter()
        .map(|(label, value)| json!({"name": label, "value": cut(&value, 1024), "inline": true}))
        .take(25)
        .collect();
    let mut embed = json!({
        "title": cut(notice.title(), 256),
        "description": cut(&notice.headline, 4096),
        "color": 0xE0_3E_2F,
        "fields": fields,
    });
    if let Some(issue) = &notice.issue {
        embed["url"] = json!(issue.url);
        embed["timestamp"] = json!(issue.last_seen.to_rfc3339());
    }
    let body = json!({
        "content": cut(&format!("{} in {}", notice.headline, notice.project.name), 2000),
        "embeds": [embed],
        "allowed_mentions": {"parse": []},
    });
    serde_json::to_vec(&body).expect("JSON serializes")
}

/// The email's subject: `[Mesher] <headline> in <project>: <title>`, on
/// one line.
pub fn email_subject(notice: &Notice) -> String {
    let line = format!(
        "[Mesher] {} in {}: {}",
        notice.headline,
        notice.project.name,
        notice.title()
    );
    cut(&line.replace(|c: char| c.is_control(), " "), 200)
}

/// The email's plain-text part.
#[derive(Template)]
#[template(path = "email_alert.txt")]
struct EmailText<'a> {
    notice: &'a Notice,
    title: &'a str,
    facts: Vec<(&'static str, String)>,
}

/// The email's HTML part (escaped by askama).
#[derive(Template)]
#[template(path = "email_alert.html")]
struct EmailHtml<'a> {
    notice: &'a Notice,
    title: &'a str,
    facts: Vec<(&'static str, String)>,
}

/// The email's plain-text and HTML parts.
pub fn email_parts(notice: &Notice) -> (String, String) {
    let text = EmailText {
        notice,
        title: notice.title(),
        facts: facts(notice),
    };
    let html = EmailHtml {
        notice,
        title: notice.title(),
        facts: facts(notice),
    };
    (
        text.render().expect("the text template renders"),
        html.render().expect("the HTML template renders"),
    )
}

/// How long to wait before attempt `attempt + 1`, after `attempt` failed
/// ones: `first`, doubling, at most `max`.
pub fn backoff(attempt: u32, first: Duration, max: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    first.saturating_mul(1u32 << doublings).min(max)
}

/// Whether a webhook may connect to `ip`: not loopback, private,
/// link-local, multicast, unspecified, broadcast, shared (CGNAT) or
/// documentation space, nor an IPv6 address mapping or embedding one.
/// Server-side request forgery goes through exactly these.
pub fn is_public_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b // NAT64 of any v4
                || first == 0x2002) // 6to4, embedding a v4
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice() -> Notice {
        let at = "2026-11-02T10:00:00Z".parse().unwrap();
        Notice {
            delivery_id: Uuid::nil(),
            rule: Some(NoticeRule {
                id: Uuid::nil(),
                name: "New errors".into(),
            }),
            reason: "new_issue".into(),
            headline: "New issue".into(),
            project: NoticeProject {
                id: Uuid::nil(),
                name: "web".into(),
            },
            issue: Some(NoticeIssue {
                id: Uuid::nil(),
                title: "KeyError: 'c' <@everyone> & more".into(),
                culprit: Some("app.views in checkout".into()),
                level: Severity::Error,
                status: IssueStatus::Unresolved,
                event_count: 3,
                users: 2,
                first_seen: at,
                last_seen: at,
                url: "http://mesher.example/projects/p/issues/i".into(),
            }),
            event: Some(NoticeEvent {
                id: Uuid::nil(),
                release: Some("web@1.2".into()),
                environment: Some("production".into()),
            }),
        }
    }

    #[test]
    fn the_webhook_body_has_the_spec_shape() {
        let body: Value = serde_json::from_slice(&webhook_body(&notice())).unwrap();
        for key in ["delivery_id", "rule", "reason", "project", "issue", "event"] {
            assert!(body.get(key).is_some(), "{key} in {body}");
        }
        assert_eq!(body["rule"]["name"], "New errors");
        assert_eq!(body["reason"], "new_issue");
        for key in [
            "id",
            "title",
            "culprit",
            "level",
            "status",
            "event_count",
            "users",
            "first_seen",
            "last_seen",
            "url",
        ] {
            assert!(body["issue"].get(key).is_some(), "issue.{key}");
        }
        assert_eq!(body["issue"]["level"], "error");
        assert_eq!(body["issue"]["status"], "unresolved");
        assert_eq!(body["event"]["environment"], "production");
        assert!(body.get("headline").is_none());
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(signature("a", b"body"), signature("b", b"body"));
    }

    #[test]
    fn slack_and_discord_messages_escape_and_link() {
        let slack: Value = serde_json::from_slice(&slack_body(&notice())).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert_eq!(
            text,
            "New issue in web: KeyError: 'c' &lt;@everyone&gt; &amp; more"
        );
        let section = slack["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.contains("<http://mesher.example/projects/p/issues/i|KeyError"));
        let discord: Value = serde_json::from_slice(&discord_body(&notice())).unwrap();
        assert_eq!(discord["content"], "New issue in web");
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
        assert_eq!(
            discord["embeds"][0]["url"],
            "http://mesher.example/projects/p/issues/i"
        );
        let long = Notice {
            issue: Some(NoticeIssue {
                title: "x".repeat(1000),
                ..notice().issue.unwrap()
            }),
            ..notice()
        };
        let discord: Value = serde_json::from_slice(&discord_body(&long)).unwrap();
        assert_eq!(
            discord["embeds"][0]["title"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            256
        );
    }

    #[test]
    fn emails_have_the_subject_facts_and_link() {
        assert_eq!(
            email_subject(&notice()),
            "[Mesher] New issue in web: KeyError: 'c' <@everyone> & more"
        );
        let broken = Notice {
            headline: "New\r\nBcc: x@example.org".into(),
            ..notice()
        };
        assert!(!email_subject(&broken).contains('\n'));
        let (text, html) = email_parts(&notice());
        for part in [&text, &html] {
            for fact in [
                "app.views in checkout",
                "production",
                "web@1.2",
                "http://mesher.example/projects/p/issues/i",
            ] {
                assert!(part.contains(fact), "{fact} in {part}");
            }
        }
        assert!(text.contains("KeyError: 'c' <@everyone> & more"));
        assert!(html.contains("&#60;@everyone&#62; &#38; more"), "{html}");
        let test = Notice {
            issue: None,
            rule: None,
            ..notice()
        };
        let (text, _) = email_parts(&test);
        assert!(text.contains("test notification"), "{text}");
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_up_to_the_cap() {
        let (first, max) = (Duration::from_secs(5), Duration::from_secs(3600));
        let cases = [
            (0, 5),
            (1, 5),
            (2, 10),
            (3, 20),
            (8, 640),
            (10, 2560),
            (11, 3600),
            (500, 3600),
        ];
        for (attempt, secs) in cases {
            assert_eq!(
                backoff(attempt, first, max),
                Duration::from_secs(secs),
                "{attempt}"
            );
        }
    }

    #[test]
    fn only_public_addresses_may_be_reached() {
        let cases = [
            ("93.184.216.34", true),
            ("1.1.1.1", true),
            ("2606:4700:4700::1111", true),
            ("127.0.0.1", false),
            ("127.8.8.8", false),
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("192.168.1.1", false),
            ("169.254.169.254", false), // cloud metadata
            ("100.64.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("192.0.2.1", false),
            ("::1", false),
            ("::", false),
            ("fe80::1", false),
            ("fd00::1", false),
            ("ff02::1", false),
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:93.184.216.34", true),
            ("64:ff9b::7f00:1", false),
            ("2002:7f00:1::", false),
        ];
        for (ip, public) in cases {
            assert_eq!(is_public_address(ip.parse().unwrap()), public, "{ip}");
        }
    }
}
