//! JSON kept as text from the moment an event is built to the JSONB
//! column it is written to.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use std::fmt;

/// JSON text, encoded once when an event is built and written as-is into a
/// JSONB column. Holding text instead of a tree keeps an event at a handful
/// of allocations, so buffering, dropping and encoding a batch stay cheap;
/// [`RawJson::decode`] gives the typed value back.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Self> {
        serde_json::value::to_raw_value(value)
            .map(RawJson)
            .map_err(|_| Error::invalid("event", "must be encodable as JSON"))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parses the text back into `T` (e.g. `serde_json::Value`,
    /// `BTreeMap<String, String>` for tags, `Vec<Breadcrumb>`).
    pub fn decode<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_str(self.get())
    }

    /// Whether the text encodes a NUL character, which PostgreSQL cannot
    /// store in `jsonb`.
    pub(crate) fn has_nul(&self) -> bool {
        json_has_nul(self.get().as_bytes())
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// Whether serde_json output encodes a NUL character. In its output a
/// backslash always starts an escape, so walking escapes is exact: a
/// literal backslash followed by "u0000" is `\\u0000` and is skipped. A raw
/// NUL byte (which serde_json never writes) counts too.
fn json_has_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            0 => return true,
            b'\\' => {
                if json[i + 1..].starts_with(b"u0000") {
                    return true;
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_only_where_json_encodes_one() {
        let cases = [
            (r#""a\u0000b""#, true),
            (r#"{"k\u0000": 1}"#, true),
            (r#""C:\\path\\u0000 is text""#, false),
            (r#""\\\u0000""#, true),
            (r#""\\\\u0000""#, false),
            (r#""plain""#, false),
            ("\"\\", false),
        ];
        for (json, want) in cases {
            assert_eq!(json_has_nul(json.as_bytes()), want, "{json}");
        }
        let encoded = RawJson::encode("nul\0here").unwrap();
        assert!(encoded.has_nul());
        assert!(!RawJson::encode(r"C:\u0000").unwrap().has_nul());
    }
}
