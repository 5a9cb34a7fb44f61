//! Human-facing names and URL-safe slugs.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Longest name we accept, in characters; long enough for any real
/// organization or project, short enough to keep rows and logs small.
const MAX_NAME_CHARS: usize = 200;
const MAX_SLUG_CHARS: usize = 64;

/// The rule for every text field that reaches bcrypt or a C library
/// (PostgreSQL among them): no control characters (Unicode's Cc: the C0
/// range with NUL, DEL, and C1). bcrypt implementations written in C stop
/// at NUL, so `"correct\0horse"` would be the password `"correct"` there;
/// PostgreSQL's `text` cannot hold NUL at all; and the others (tabs,
/// newlines, terminal escapes) belong in no name, address or password.
pub(crate) fn refuse_control_chars(field: &'static str, text: &str) -> Result<()> {
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// A display name (organization, project, user): trimmed, 1 to 200
/// characters, no control characters. Any script is welcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    /// Checks `text` as the value of `field` (named in the error).
    pub fn parse(field: &'static str, text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        if text.chars().count() > MAX_NAME_CHARS {
            return Err(Error::invalid(field, "must be at most 200 characters"));
        }
        refuse_control_chars(field, text)?;
        Ok(Name(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Name::parse("name", &s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}

/// A URL-safe identifier for an organization: 1 to 64 of `[a-z0-9-]`, no
/// leading or trailing dash, not all digits (so it can never be mistaken
/// for a numeric id in a URL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub fn parse(text: &str) -> Result<Self> {
        let rule = |r| Err(Error::invalid("slug", r));
        if text.is_empty() {
            return rule("must not be empty");
        }
        if text.len() > MAX_SLUG_CHARS {
            return rule("must be at most 64 characters");
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return rule("may only contain a-z, 0-9 and '-'");
        }
        if text.starts_with('-') || text.ends_with('-') {
            return rule("must not start or end with '-'");
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return rule("must not be all digits");
        }
        Ok(Slug(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Slug::parse(&s)
    }
}

impl From<Slug> for String {
    fn from(s: Slug) -> String {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slug_rule(s: &str) -> &'static str {
        match Slug::parse(s) {
            Err(Error::InvalidInput {
                field: "slug",
                rule,
            }) => rule,
            other => panic!("expected a slug error for {s:?}, got {other:?}"),
        }
    }

    #[test]
    fn slugs_follow_the_rules() {
        for ok in ["acme", "acme-corp", "a1", "1a", "a", "x-1-y"] {
            assert_eq!(Slug::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(slug_rule(""), "must not be empty");
        assert_eq!(slug_rule("Acme"), "may only contain a-z, 0-9 and '-'");
        assert_eq!(slug_rule("acme corp"), "may only contain a-z, 0-9 and '-'");
        assert_eq!(slug_rule("acme_corp"), "may only contain a-z, 0-9 and '-'");
        assert_eq!(slug_rule("ácme"), "may only contain a-z, 0-9 and '-'");
        assert_eq!(slug_rule("-acme"), "must not start or end with '-'");
        assert_eq!(slug_rule("acme-"), "must not start or end with '-'");
        assert_eq!(slug_rule("12345"), "must not be all digits");
        assert_eq!(slug_rule(&"a".repeat(65)), "must be at most 64 characters");
        assert!(Slug::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(Name::parse("name", "  Acme  ").unwrap().as_str(), "Acme");
        assert!(matches!(
            Name::parse("name", "   "),
            Err(Error::InvalidInput {
                field: "name",
                rule: "must not be empty"
            })
        ));
        // 200 three-byte characters are 600 bytes but still a valid name.
        assert!(Name::parse("name", &"漢".repeat(200)).is_ok());
        assert!(matches!(
            Name::parse("display_name", &"漢".repeat(201)),
            Err(Error::InvalidInput {
                field: "display_name",
                ..
            })
        ));
        assert!(Name::parse("name", "a\u{0}b").is_err());
        let odd = "Robert'); DROP TABLE organizations;-- 🚀";
        assert_eq!(Name::parse("name", odd).unwrap().as_str(), odd);
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        for bad in [
            "a\0b",
            "tab\there",
            "line\nbreak",
            "del\u{7f}",
            "c1\u{85}",
            "\u{1b}[31m",
        ] {
            assert!(
                matches!(
                    refuse_control_chars("password", bad),
                    Err(Error::InvalidInput {
                        field: "password",
                        rule: "must not contain control characters"
                    })
                ),
                "{bad:?} should be refused"
            );
        }
        // Format characters and other scripts are not control characters.
        for ok in ["plain", "zero\u{200b}width", "漢字 🚀", "Ünïcödé"] {
            refuse_control_chars("name", ok).unwrap();
        }
    }

    #[test]
    fn serde_applies_the_same_rules() {
        assert!(serde_json::from_str::<Slug>("\"Bad Slug\"").is_err());
        let s: Slug = serde_json::from_str("\"good-slug\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"good-slug\"");
    }
}
