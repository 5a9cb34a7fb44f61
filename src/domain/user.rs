//! Users, their credentials, sessions and organization memberships.

use super::SessionToken;
use super::names::refuse_control_chars;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};
use uuid::Uuid;

/// An email address, trimmed and lower-cased so that `Ann@X.org` and
/// `ann@x.org` are one account. Checked for shape only (one `@`, a dotted
/// domain, no spaces, RFC 5321 lengths); whether it receives mail is not
/// Mesher's business.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self> {
        let rule = |r| Err(Error::invalid("email", r));
        let email = text.trim().to_lowercase();
        if email.len() > 254 {
            return rule("must be at most 254 bytes");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return rule("must contain '@'");
        };
        if local.is_empty() || local.len() > 64 {
            return rule("must have 1 to 64 bytes before '@'");
        }
        if domain.contains('@') {
            return rule("must contain exactly one '@'");
        }
        refuse_control_chars("email", &email)?;
        if email.chars().any(char::is_whitespace) {
            return rule("must not contain spaces");
        }
        if domain.split('.').count() < 2 || domain.split('.').any(str::is_empty) {
            return rule("must have a domain like example.org");
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Email::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// A password in clear, on its way to bcrypt. 8 to 72 bytes: bcrypt
/// silently ignores everything after byte 72, so a longer password is
/// refused rather than quietly weakened. No control characters: many
/// bcrypt implementations stop at NUL, which would weaken it the same way
/// (the rule of every text bcrypt or PostgreSQL sees). Never serialized,
/// never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(text: &str) -> Result<Self> {
        match text.len() {
            0..=7 => return Err(Error::invalid("password", "must be at least 8 bytes")),
            8..=72 => {}
            _ => return Err(Error::invalid("password", "must be at most 72 bytes")),
        }
        refuse_control_chars("password", text)?;
        Ok(Password(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a member may do in an organization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    #[default]
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            _ => Err(Error::invalid(
                "role",
                "must be one of owner, admin, member",
            )),
        }
    }
}

/// A registered user. Carries no password hash: that stays in the query
/// layer, so no caller can leak it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

/// A user's role in one organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMembership {
    pub id: Uuid,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// A member as the dashboard lists them: who, and with which role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// A live login session, as validation reports it (the token itself is
/// not stored, so it is not here either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a successful login hands back: the token in clear, once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewSession {
    pub token: SessionToken,
    pub session: Session,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_to_lower_case() {
        assert_eq!(
            Email::parse("  Ann.Lee@Example.ORG ").unwrap().as_str(),
            "ann.lee@example.org"
        );
        // Non-ASCII lower-cases too, so case-insensitive uniqueness holds.
        assert_eq!(
            Email::parse("ÉLODIE@Exemple.FR").unwrap().as_str(),
            "élodie@exemple.fr"
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "plain",
            "@example.org",
            "ann@",
            "ann@localhost",
            "ann@@example.org",
            "a@b@example.org",
            "ann lee@example.org",
            "ann@example..org",
            "ann@.org",
            &format!("{}@example.org", "a".repeat(65)),
            &format!("a@{}.org", "b".repeat(250)),
        ] {
            assert!(
                matches!(
                    Email::parse(bad),
                    Err(Error::InvalidInput { field: "email", .. })
                ),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn passwords_are_bounded_in_bytes() {
        assert!(matches!(
            Password::parse("short"),
            Err(Error::InvalidInput {
                field: "password",
                rule: "must be at least 8 bytes"
            })
        ));
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(72)).is_ok());
        assert!(matches!(
            Password::parse(&"x".repeat(73)),
            Err(Error::InvalidInput {
                field: "password",
                rule: "must be at most 72 bytes"
            })
        ));
        // 24 four-byte emoji are 96 bytes: over bcrypt's limit though only 24 characters.
        assert!(Password::parse(&"🔒".repeat(24)).is_err());
        // 4 three-byte characters are 12 bytes: long enough.
        assert!(Password::parse("パスワード").is_ok());
        assert!(!format!("{:?}", Password::parse("hunter2hunter2").unwrap()).contains("hunter2"));
    }

    #[test]
    fn passwords_with_nul_or_other_control_characters_are_refused() {
        for bad in [
            "correct\0horse battery",
            "correct horse battery\0",
            "correct\thorse battery",
            "correct horse\nbattery",
            "correct horse\u{7f}battery",
        ] {
            assert!(
                matches!(
                    Password::parse(bad),
                    Err(Error::InvalidInput {
                        field: "password",
                        rule: "must not contain control characters"
                    })
                ),
                "{bad:?} should be refused"
            );
        }
        // Spaces and any script are fine: only control characters go.
        assert!(Password::parse("correct horse battery staple").is_ok());
        assert!(Password::parse("пароль пароль").is_ok());
    }

    #[test]
    fn emails_with_control_characters_are_refused() {
        assert!(matches!(
            Email::parse("ann\0@example.org"),
            Err(Error::InvalidInput {
                field: "email",
                rule: "must not contain control characters"
            })
        ));
    }

    #[test]
    fn roles_parse_exactly() {
        assert_eq!("owner".parse::<Role>().unwrap(), Role::Owner);
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("member".parse::<Role>().unwrap(), Role::Member);
        for bad in ["Owner", "root", "", "mémber"] {
            assert!(matches!(
                bad.parse::<Role>(),
                Err(Error::InvalidInput { field: "role", .. })
            ));
        }
        assert_eq!(Role::default(), Role::Member);
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }
}
