//! [`EventBody`]: an event's JSON as stored, compressed once by Mesher.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::fmt;

/// The zstd level bodies are compressed at: the fastest, since it runs once
/// per event on the ingest path. Event JSON is repetitive text (keys, file
/// names, module paths), so even level 1 takes it to a third or less.
const LEVEL: i32 = 1;

thread_local! {
    /// One compression context per thread, kept between events: creating
    /// one allocates hundreds of kilobytes of tables, which would cost more
    /// than compressing a small event.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

/// An event's JSON, zstd-compressed: what `events.body` holds, the spool
/// keeps, and the event page and API read back. PostgreSQL stores it as it
/// is (`STORAGE EXTERNAL`: no second compression) and never parses it, so
/// a stored event costs it a row of a few columns and this blob.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBody(#[serde(with = "serde_bytes")] Vec<u8>);

impl EventBody {
    /// Compresses `json` (an event's JSON, as sent or as Mesher wrote it).
    pub fn compress(json: &[u8]) -> Result<EventBody> {
        COMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            let compressor = match cell.as_mut() {
                Some(compressor) => compressor,
                None => cell.insert(
                    zstd::bulk::Compressor::new(LEVEL)
                        .map_err(|e| Error::internal_from("starting zstd", e))?,
                ),
            };
            compressor
                .compress(json)
                .map(EventBody)
                .map_err(|e| Error::internal_from("compressing an event", e))
        })
    }

    /// A body read back from storage, as it was written.
    pub fn from_stored(bytes: Vec<u8>) -> EventBody {
        EventBody(bytes)
    }

    /// The compressed bytes, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The JSON back. A body that does not decompress (a corrupt row) is an
    /// internal error: Mesher wrote it.
    pub fn decompress(&self) -> Result<Vec<u8>> {
        zstd::stream::decode_all(self.0.as_slice())
            .map_err(|e| Error::internal_from("decompressing an event body", e))
    }

    /// Its size, compressed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for EventBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventBody({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_gives_back_what_was_compressed() {
        for json in [
            &b"{}"[..],
            br#"{"message":"boom","tags":{"a":"b"}}"#,
            "{\"message\":\"\u{0} \u{1F4A5} ' ; --\"}".as_bytes(),
            &[b' '; 100_000],
        ] {
            let body = EventBody::compress(json).unwrap();
            assert_eq!(body.decompress().unwrap(), json);
        }
    }

    #[test]
    fn event_json_shrinks() {
        let json = include_bytes!("fixtures/python_exception.json");
        let body = EventBody::compress(json).unwrap();
        assert!(
            body.len() * 2 < json.len(),
            "{} of {}",
            body.len(),
            json.len()
        );
    }

    #[test]
    fn a_corrupt_body_is_an_error_not_a_panic() {
        let body = EventBody::from_stored(b"not zstd at all".to_vec());
        assert!(matches!(body.decompress(), Err(Error::Internal { .. })));
    }
}
