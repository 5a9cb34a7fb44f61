//! Organizations, their projects, and the projects' API keys.

use super::ApiKey;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A tenant: owns projects and has members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
}

/// An application whose errors are collected; events belong to a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: Uuid,
    /// The number in the project's DSNs: Sentry SDKs refuse a project id
    /// that is not numeric. Unique and never reused.
    pub public_id: i64,
    pub org_id: Uuid,
    pub name: String,
    /// The SDK platform (e.g. "rust", "python"), when the user said.
    pub platform: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Days of events kept, when shorter than the server's retention: its
    /// older events are deleted by the housekeeping check.
    pub retention_days: Option<u32>,
    /// Events per minute accepted, when limited: past it, requests get 429
    /// with the rate-limit headers SDKs obey.
    pub rate_limit_per_minute: Option<u32>,
}

/// The most events per minute a limit may name: far past what one process
/// takes, so anything above is a typo.
pub const MAX_RATE_LIMIT_PER_MINUTE: u32 = 10_000_000;

/// A change to a project's settings, checked: `None` leaves a setting as
/// it is, `Some(None)` removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectSettings {
    pub retention_days: Option<Option<u32>>,
    pub rate_limit_per_minute: Option<Option<u32>>,
}

impl ProjectSettings {
    /// Checks a change against the server's retention (`server_days`, 0
    /// for none): a project's may only be shorter (or as long), at least
    /// a day; a rate limit is at least one event a minute.
    pub fn parse(
        retention_days: Option<Option<u32>>,
        rate_limit_per_minute: Option<Option<u32>>,
        server_days: u32,
    ) -> Result<Self> {
        let most = if server_days == 0 {
            crate::config::MAX_RETENTION_DAYS
        } else {
            server_days
        };
        if let Some(Some(days)) = retention_days
            && !(1..=most).contains(&days)
        {
            return Err(Error::invalid(
                "retention_days",
                "must be a number of days from 1 to the server's retention",
            ));
        }
        if let Some(limit) = rate_limit_per_minute {
            check_rate_limit(limit)?;
        }
        Ok(ProjectSettings {
            retention_days,
            rate_limit_per_minute,
        })
    }
}

/// Checks a rate limit (a project's or a key's) as a caller gives it:
/// at least one event a minute, at most [`MAX_RATE_LIMIT_PER_MINUTE`];
/// `None` is no limit.
pub fn check_rate_limit(per_minute: Option<u32>) -> Result<Option<u32>> {
    match per_minute {
        Some(n) if !(1..=MAX_RATE_LIMIT_PER_MINUTE).contains(&n) => Err(Error::invalid(
            "rate_limit_per_minute",
            "must be from 1 to 10000000 events a minute",
        )),
        limit => Ok(limit),
    }
}

/// An API key as listed: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub project_id: Uuid,
    /// `mshr_` and the first hex digits, so people can tell keys apart.
    pub prefix: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Events per minute this key may send, when limited: one SDK or
    /// deployment of a project held back without limiting the others.
    /// Applies on top of the project's limit.
    pub rate_limit_per_minute: Option<u32>,
}

/// What an ingest key resolves to: its project, and what the key itself
/// limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedKey {
    pub project: Project,
    /// The key's id: its rate limit's bucket.
    pub key_id: Uuid,
    /// The key's own limit (see [`ApiKeyInfo::rate_limit_per_minute`]).
    pub rate_limit_per_minute: Option<u32>,
}

/// A freshly created key: the only moment the key exists in clear.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewApiKey {
    pub key: ApiKey,
    /// What an SDK is configured with: the key, Mesher's public address
    /// and the project's public id (see [`PublicUrl::dsn`]).
    pub dsn: String,
    pub info: ApiKeyInfo,
}

/// A project just created with its first key, made together so that no
/// project is ever left without one: the key, in clear, is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectWithKey {
    pub project: Project,
    pub key: NewApiKey,
}

/// The address applications reach Mesher at (`MESHER_PUBLIC_URL`), from
/// which DSNs are built: `http` or `https`, a host, an optional port and
/// path; no user, query or fragment. Kept without a trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://`.
    scheme: String,
    /// Host, port and path, without a trailing slash.
    rest: String,
}

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self> {
        let rule = |r| Err(Error::invalid("MESHER_PUBLIC_URL", r));
        let text = text.trim();
        let Some((scheme, rest)) = text
            .strip_prefix("http://")
            .map(|r| ("http://", r))
            .or_else(|| text.strip_prefix("https://").map(|r| ("https://", r)))
        else {
            return rule("must start with http:// or https://");
        };
        let rest = rest.trim_end_matches('/');
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || host.starts_with(':') {
            return rule("must name a host");
        }
        if rest
            .chars()
            .any(|c| matches!(c, '@' | '?' | '#') || c.is_whitespace() || c.is_control())
        {
            return rule("must not hold a user, query, fragment or spaces");
        }
        Ok(PublicUrl {
            scheme: scheme.to_owned(),
            rest: rest.to_owned(),
        })
    }

    /// Whether clients reach Mesher over TLS (cookies are then `Secure`).
    pub fn is_https(&self) -> bool {
        self.scheme == "https://"
    }

    /// The DSN for `key` and a project's public id:
    /// `http://<key>@<host[:port][/path]>/<public_id>`.
    pub fn dsn(&self, key: &ApiKey, public_id: i64) -> String {
        format!("{}{}@{}/{public_id}", self.scheme, key.expose(), self.rest)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.scheme, self.rest)
    }
}

impl fmt::Debug for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_settings_keep_within_the_server_and_above_zero() {
        let ok = |r, l, server| ProjectSettings::parse(r, l, server).is_ok();
        // (retention, limit, server's retention, accepted)
        let table = [
            (Some(Some(7)), None, 90, true),
            (Some(Some(90)), None, 90, true),
            (Some(Some(91)), None, 90, false),
            (Some(Some(0)), None, 90, false),
            (Some(Some(400)), None, 0, true),
            (Some(Some(36_501)), None, 0, false),
            (Some(None), Some(None), 90, true),
            (None, Some(Some(1)), 90, true),
            (None, Some(Some(0)), 90, false),
            (None, Some(Some(10_000_001)), 90, false),
            (None, None, 90, true),
        ];
        for (retention, limit, server, accepted) in table {
            assert_eq!(
                ok(retention, limit, server),
                accepted,
                "{retention:?} {limit:?} {server}"
            );
        }
        assert!(matches!(
            ProjectSettings::parse(Some(Some(0)), None, 90),
            Err(Error::InvalidInput {
                field: "retention_days",
                ..
            })
        ));
    }

    #[test]
    fn dsns_keep_scheme_host_port_and_path() {
        let key = ApiKey::parse(&format!("mshr_{}", "ab".repeat(32))).unwrap();
        let k = key.expose();
        for (url, dsn) in [
            (
                "http://127.0.0.1:8000",
                format!("http://{k}@127.0.0.1:8000/7"),
            ),
            (
                "http://127.0.0.1:8000/",
                format!("http://{k}@127.0.0.1:8000/7"),
            ),
            (
                "https://errors.example.com/mesher/",
                format!("https://{k}@errors.example.com/mesher/7"),
            ),
            (
                " https://e.example.com ",
                format!("https://{k}@e.example.com/7"),
            ),
        ] {
            assert_eq!(PublicUrl::parse(url).unwrap().dsn(&key, 7), dsn, "{url}");
        }
    }

    #[test]
    fn public_urls_without_a_usable_host_are_refused() {
        for bad in [
            "",
            "127.0.0.1:8000",
            "ftp://example.com",
            "http://",
            "http:///path",
            "http://:8000",
            "http://user@example.com",
            "http://example.com/?x=1",
            "http://example.com/#top",
            "http://exa mple.com",
        ] {
            assert!(
                matches!(
                    PublicUrl::parse(bad),
                    Err(Error::InvalidInput {
                        field: "MESHER_PUBLIC_URL",
                        ..
                    })
                ),
                "{bad:?} should be refused"
            );
        }
        assert!(PublicUrl::parse("https://x.org").unwrap().is_https());
    }
}
