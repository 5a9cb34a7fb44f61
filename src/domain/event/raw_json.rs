//! JSON kept as text: an event's parts, encoded once when an event is read
//! back from its body (and, for rows of earlier releases, as the JSONB
//! columns held them).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use std::fmt;

/// JSON text, encoded once. Holding text instead of a tree keeps an event's
/// parts at a handful of allocations; [`RawJson::decode`] gives the typed
/// value back.
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
