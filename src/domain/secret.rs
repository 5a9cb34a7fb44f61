//! Bearer secrets: API keys, session tokens and organization tokens.
//!
//! Each is 256 random bits from the operating system's CSPRNG, shown to
//! their owner once. The database only ever sees their SHA-256, so a leaked
//! table dump authenticates nobody. `Debug` is redacted so a secret cannot
//! reach a log line by accident.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Random bytes per secret: 256 bits, well above the 128 the spec demands.
const SECRET_BYTES: usize = 32;
const SECRET_HEX_LEN: usize = SECRET_BYTES * 2;
const API_KEY_PREFIX: &str = "mshr_";
/// How much of a key is kept in clear so people can tell their keys apart:
/// `mshr_` plus 8 hex digits (32 bits, useless to an attacker).
const DISPLAY_PREFIX_LEN: usize = API_KEY_PREFIX.len() + 8;

fn random_hex() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal_from("operating system RNG failed", e))?;
    Ok(hex::encode(bytes))
}

fn is_lower_hex(s: &str) -> bool {
    s.len() == SECRET_HEX_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn sha256(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

/// A project's ingest key: `mshr_` followed by 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        Ok(ApiKey(format!("{API_KEY_PREFIX}{}", random_hex()?)))
    }

    /// Checks the format of a key presented by a client.
    pub fn parse(text: &str) -> Result<Self> {
        match text.strip_prefix(API_KEY_PREFIX) {
            Some(rest) if is_lower_hex(rest) => Ok(ApiKey(text.to_owned())),
            _ => Err(Error::invalid(
                "api_key",
                "must be 'mshr_' followed by 64 hex digits",
            )),
        }
    }

    /// The key in clear, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks up by.
    pub fn hash(&self) -> Vec<u8> {
        sha256(&self.0)
    }

    /// The non-secret start of the key, stored for display.
    pub fn display_prefix(&self) -> &str {
        &self.0[..DISPLAY_PREFIX_LEN]
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

impl TryFrom<String> for ApiKey {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        ApiKey::parse(&s)
    }
}

impl From<ApiKey> for String {
    fn from(k: ApiKey) -> String {
        k.0
    }
}

/// An opaque login session token: 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionToken(String);

impl SessionToken {
    pub fn generate() -> Result<Self> {
        Ok(SessionToken(random_hex()?))
    }

    pub fn parse(text: &str) -> Result<Self> {
        if is_lower_hex(text) {
            Ok(SessionToken(text.to_owned()))
        } else {
            Err(Error::invalid("session_token", "must be 64 hex digits"))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> Vec<u8> {
        sha256(&self.0)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl TryFrom<String> for SessionToken {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        SessionToken::parse(&s)
    }
}

impl From<SessionToken> for String {
    fn from(t: SessionToken) -> String {
        t.0
    }
}

/// How an organization token starts: the prefix sentry-cli recognizes as
/// an organization auth token (it then reads the organization from the
/// token and redacts the token from its logs; a token of a format it does
/// not know gets a warning on every run and is printed unredacted).
const ORG_TOKEN_PREFIX: &str = "sntrys_";

/// What an organization token says about itself, readable by anyone who
/// holds it (sentry-cli reads `org` and `url`). `url` is left empty, so the
/// CLI uses `SENTRY_URL`: Mesher's public address is not always the one a
/// build machine reaches it at.
#[derive(Debug, Serialize, Deserialize)]
struct OrgTokenPayload {
    iat: i64,
    url: String,
    region_url: String,
    org: String,
}

/// An organization's API token, what `sentry-cli` sends as
/// `Authorization: Bearer <token>` to upload source maps: Sentry's
/// organization token format, `sntrys_<base64 JSON payload>_<base64 of 32
/// random bytes>`, whose payload names the organization's slug.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgToken(String);

impl OrgToken {
    /// A fresh token for the organization `org_slug`.
    pub fn generate(org_slug: &str) -> Result<Self> {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::internal_from("operating system RNG failed", e))?;
        let payload = OrgTokenPayload {
            iat: chrono::Utc::now().timestamp(),
            url: String::new(),
            region_url: String::new(),
            org: org_slug.to_owned(),
        };
        let payload = serde_json::to_vec(&payload)
            .map_err(|e| Error::internal_from("encoding a token's payload", e))?;
        Ok(OrgToken(format!(
            "{ORG_TOKEN_PREFIX}{}_{}",
            STANDARD.encode(payload),
            STANDARD_NO_PAD.encode(secret)
        )))
    }

    /// Checks the format of a token presented by a client: the prefix, a
    /// payload that decodes to JSON naming an organization, and a secret
    /// of 32 bytes, as sentry-cli checks it.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = || Error::invalid("token", "must be an organization token from Mesher");
        let rest = text.strip_prefix(ORG_TOKEN_PREFIX).ok_or_else(invalid)?;
        let mut parts = rest.split('_');
        let (Some(payload), Some(secret), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let payload = STANDARD.decode(payload).map_err(|_| invalid())?;
        serde_json::from_slice::<OrgTokenPayload>(&payload).map_err(|_| invalid())?;
        match STANDARD_NO_PAD.decode(secret) {
            Ok(bytes) if bytes.len() == SECRET_BYTES => Ok(OrgToken(text.to_owned())),
            _ => Err(invalid()),
        }
    }

    /// The token in clear, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks up by.
    pub fn hash(&self) -> Vec<u8> {
        sha256(&self.0)
    }

    /// The last four characters, stored so people can tell their tokens
    /// apart (24 bits, useless to an attacker), as Sentry shows them.
    pub fn hint(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for OrgToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgToken(…{})", self.hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("mshr_"));
        assert_eq!(a.expose().len(), 5 + 64);
        assert_eq!(ApiKey::parse(a.expose()).unwrap(), a);
        assert_eq!(a.display_prefix(), &a.expose()[..13]);
        assert_eq!(a.hash().len(), 32);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = ApiKey::generate().unwrap();
        for bad in [
            "",
            "mshr_",
            &good.expose()[..good.expose().len() - 1],
            &good.expose().to_uppercase(),
            &good.expose().replacen("mshr_", "msh_", 1),
            &format!("{}0", good.expose()),
            &format!("mshr_{}", "é".repeat(32)),
        ] {
            assert!(
                matches!(
                    ApiKey::parse(bad),
                    Err(Error::InvalidInput {
                        field: "api_key",
                        ..
                    })
                ),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let k = ApiKey::generate().unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains(&k.expose()[13..]));
        let t = SessionToken::generate().unwrap();
        assert!(!format!("{t:?}").contains(t.expose()));
    }

    #[test]
    fn session_tokens_parse_their_own_format_only() {
        let t = SessionToken::generate().unwrap();
        assert_eq!(SessionToken::parse(t.expose()).unwrap(), t);
        assert!(SessionToken::parse("short").is_err());
        assert!(SessionToken::parse(&"ß".repeat(32)).is_err());
        // The hash is SHA-256 of the text, so it is stable across calls.
        assert_eq!(t.hash(), t.clone().hash());
    }

    #[test]
    fn org_tokens_are_what_sentry_cli_recognizes() {
        let token = OrgToken::generate("acme").unwrap();
        let text = token.expose();
        assert!(text.starts_with("sntrys_"));
        let parts: Vec<&str> = text["sntrys_".len()..].split('_').collect();
        assert_eq!(parts.len(), 2, "{text}");
        let payload: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(payload["org"], "acme");
        assert_eq!(payload["url"], "", "the CLI must use SENTRY_URL");
        assert_eq!(STANDARD_NO_PAD.decode(parts[1]).unwrap().len(), 32);
        assert_eq!(OrgToken::parse(text).unwrap(), token);
        assert_ne!(OrgToken::generate("acme").unwrap(), token);
        assert_eq!(token.hash().len(), 32);
        assert!(!format!("{token:?}").contains(parts[1]));
        assert!(text.ends_with(token.hint()));
    }

    #[test]
    fn malformed_org_tokens_are_rejected() {
        let good = OrgToken::generate("acme").unwrap();
        let text = good.expose();
        let (head, secret) = text.rsplit_once('_').unwrap();
        let short = STANDARD_NO_PAD.encode([7u8; 31]);
        let not_json = STANDARD.encode("acme");
        for bad in [
            "",
            "sntrys_",
            &text.replacen("sntrys_", "sntryu_", 1),
            &format!("{head}_{short}"),
            &format!("{head}_{secret}_x"),
            &format!("sntrys_{not_json}_{secret}"),
            &format!("{head}_{}", "!".repeat(43)),
            &text[..text.len() - 1],
        ] {
            assert!(
                matches!(
                    OrgToken::parse(bad),
                    Err(Error::InvalidInput { field: "token", .. })
                ),
                "{bad:?} should be rejected"
            );
        }
    }
}
