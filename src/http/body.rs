//! Request body decoding: `Content-Encoding` and the size limit.
//!
//! SDKs compress what they send (sentry-python uses `br` or `gzip`, the Node
//! SDK `gzip` for large bodies), and a few kilobytes of compressed zeros can
//! expand to gigabytes. So the limit applies to the *decoded* size, and
//! decoding streams: it stops as soon as the output passes the limit, so the
//! process never holds more than the limit plus one small chunk of expanded
//! data (plus the decoder's own window, bounded below).
//!
//! Pure functions over a byte slice; the HTTP handler reads the raw body (with
//! its own cap on the compressed size) and maps [`BodyError`] to a status.

use std::io::{self, Read};

use thiserror::Error;

/// What went wrong while decoding a request body.
///
/// The Display text is meant for the HTTP response body.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    /// The `Content-Encoding` is unknown, or several are stacked.
    #[error(
        "unsupported Content-Encoding \"{0}\" (supported: identity, gzip, deflate, br, zstd; one at most)"
    )]
    UnsupportedEncoding(String),
    /// The decoded body is larger than the limit.
    #[error("request body is larger than {limit} bytes (after decompression)")]
    TooLarge {
        /// The limit, in bytes, that the decoded body passed.
        limit: usize,
    },
    /// The body is not valid data for its `Content-Encoding`.
    #[error("could not decompress the request body ({0})")]
    Malformed(String),
}

/// A `Content-Encoding` Mesher can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No encoding.
    Identity,
    /// gzip (RFC 1952); concatenated members are accepted.
    Gzip,
    /// zlib-wrapped deflate (RFC 1950) or, as some clients send, raw deflate.
    Deflate,
    /// Brotli (RFC 7932).
    Br,
    /// Zstandard (RFC 8878).
    Zstd,
}

impl ContentEncoding {
    /// Reads the `Content-Encoding` header value; a missing or empty header
    /// means identity.
    ///
    /// Stacked encodings (`gzip, br`) are refused: no SDK sends them, and
    /// each layer would need its own expansion bound.
    pub fn from_header(value: Option<&str>) -> Result<Self, BodyError> {
        let raw = value.unwrap_or("").trim();
        let encoding = match raw.to_ascii_lowercase().as_str() {
            "" | "identity" => Self::Identity,
            "gzip" | "x-gzip" => Self::Gzip,
            "deflate" => Self::Deflate,
            "br" => Self::Br,
            "zstd" => Self::Zstd,
            _ => return Err(BodyError::UnsupportedEncoding(clip(raw))),
        };
        Ok(encoding)
    }

    /// The encoding's name as in the header (also a bounded metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Br => "br",
            Self::Zstd => "zstd",
        }
    }
}

/// The largest zstd window accepted: 8 MiB, the bound RFC 9659 sets for
/// HTTP `Content-Encoding: zstd`. Without it, a frame could make the decoder
/// allocate up to its 128 MiB default window before writing a byte.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// How much expanded data is read at a time.
const CHUNK: usize = 8 * 1024;

/// Decodes `body` and returns it, refusing one that decodes to more than
/// `limit` bytes.
///
/// Memory stays within `limit` plus one chunk, plus the decoder's window:
/// 32 KiB for gzip and deflate, at most 16 MiB for brotli (large-window
/// streams are refused) and 8 MiB for zstd (larger windows are refused).
pub fn decode(encoding: ContentEncoding, body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    // An empty body decodes to nothing whatever its declared encoding; the
    // caller then says what is missing, which is more useful than
    // "truncated gzip header".
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let decoded = match encoding {
        ContentEncoding::Identity if body.len() > limit => Err(ReadError::TooLarge),
        ContentEncoding::Identity => Ok(body.to_vec()),
        ContentEncoding::Gzip => {
            read_limited(flate2::read::MultiGzDecoder::new(body), body.len(), limit)
        }
        ContentEncoding::Deflate if looks_like_zlib(body) => {
            read_limited(flate2::read::ZlibDecoder::new(body), body.len(), limit)
        }
        ContentEncoding::Deflate => {
            read_limited(flate2::read::DeflateDecoder::new(body), body.len(), limit)
        }
        ContentEncoding::Br if is_large_window_brotli(body) => Err(ReadError::Refused(
            "large-window brotli is not supported, use a window of at most 16 MiB",
        )),
        ContentEncoding::Br => {
            read_limited(brotli::Decompressor::new(body, 4096), body.len(), limit)
        }
        ContentEncoding::Zstd => zstd::stream::read::Decoder::with_buffer(body)
            .and_then(|mut decoder| {
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Ok(decoder)
            })
            .map_err(ReadError::Io)
            .and_then(|decoder| read_limited(decoder, body.len(), limit)),
    };
    decoded.map_err(|e| match e {
        ReadError::TooLarge => BodyError::TooLarge { limit },
        ReadError::Io(e) => {
            BodyError::Malformed(format!("{}: {}", encoding.as_str(), clip(&e.to_string())))
        }
        ReadError::Refused(why) => BodyError::Malformed(format!("{}: {why}", encoding.as_str())),
    })
}

/// Whether `body` starts with a zlib header (RFC 1950 section 2.2): method
/// 8 (deflate), a window of at most 32 KiB, and the check bits that make
/// the first two bytes a multiple of 31. Raw deflate rarely passes all three.
fn looks_like_zlib(body: &[u8]) -> bool {
    match body {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Whether a brotli stream opens with the large-window marker (the 7 bits
/// 0010001, read least significant first). The `brotli` decoder accepts
/// such streams by default and their window reaches 1 GiB; RFC 7932 streams
/// stop at 16 MiB, and no SDK sends anything else.
fn is_large_window_brotli(body: &[u8]) -> bool {
    body.first().is_some_and(|b| b & 0x7f == 0x11)
}

/// Why decoding stopped early.
enum ReadError {
    TooLarge,
    Io(io::Error),
    Refused(&'static str),
}

/// Reads `decoder` of `compressed` bytes to its end, failing as soon as
/// more than `limit` bytes come out.
fn read_limited(decoder: impl Read, compressed: usize, limit: usize) -> Result<Vec<u8>, ReadError> {
    // `take` stops the decoder itself one byte past the limit; the byte
    // past it is how "exactly the limit" is told from "more".
    let mut reader = decoder.take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1));
    // JSON compresses about threefold: room for four times the input spares
    // most bodies every reallocation and its copy.
    let mut out = Vec::with_capacity(compressed.saturating_mul(4).max(CHUNK).min(limit));
    let mut chunk = [0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadError::Io(e)),
        };
        let data = chunk.get(..n).unwrap_or_default();
        if out.len().saturating_add(data.len()) > limit {
            return Err(ReadError::TooLarge);
        }
        // Grow by doubling as Vec would, but never past the limit, so the
        // allocation itself stays within it.
        if out.capacity() - out.len() < data.len() {
            let wanted = out
                .capacity()
                .saturating_mul(2)
                .max(out.len() + data.len())
                .min(limit);
            out.reserve_exact(wanted - out.len());
        }
        out.extend_from_slice(data);
    }
}

/// Bounds text that came from the client before it goes into a message.
fn clip(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}...", text.get(..end).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const MIB: usize = 1024 * 1024;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn br(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            // Quality 4 and window 22 are what sentry-python uses by default.
            let mut w = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
            w.write_all(data).unwrap();
        }
        out
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        zstd::encode_all(data, 3).unwrap()
    }

    type Encoder = fn(&[u8]) -> Vec<u8>;

    const ENCODERS: [(&str, ContentEncoding, Encoder); 6] = [
        ("identity", ContentEncoding::Identity, |d| d.to_vec()),
        ("gzip", ContentEncoding::Gzip, gzip),
        ("zlib deflate", ContentEncoding::Deflate, zlib),
        ("raw deflate", ContentEncoding::Deflate, raw_deflate),
        ("br", ContentEncoding::Br, br),
        ("zstd", ContentEncoding::Zstd, zstd),
    ];

    #[test]
    fn header_values() {
        let cases: [(Option<&str>, Option<ContentEncoding>); 17] = [
            (None, Some(ContentEncoding::Identity)),
            (Some(""), Some(ContentEncoding::Identity)),
            (Some("  "), Some(ContentEncoding::Identity)),
            (Some("identity"), Some(ContentEncoding::Identity)),
            (Some("IDENTITY"), Some(ContentEncoding::Identity)),
            (Some("gzip"), Some(ContentEncoding::Gzip)),
            (Some("GZip"), Some(ContentEncoding::Gzip)),
            (Some("x-gzip"), Some(ContentEncoding::Gzip)),
            (Some(" gzip "), Some(ContentEncoding::Gzip)),
            (Some("deflate"), Some(ContentEncoding::Deflate)),
            (Some("br"), Some(ContentEncoding::Br)),
            (Some("zstd"), Some(ContentEncoding::Zstd)),
            (Some("ZSTD"), Some(ContentEncoding::Zstd)),
            (Some("gzip, br"), None),
            (Some("gzip,gzip"), None),
            (Some("compress"), None),
            (Some("brotli"), None),
        ];
        for (header, expected) in cases {
            let got = ContentEncoding::from_header(header);
            match expected {
                Some(e) => assert_eq!(got, Ok(e), "{header:?}"),
                None => assert!(
                    matches!(got, Err(BodyError::UnsupportedEncoding(_))),
                    "{header:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn unsupported_encoding_message_is_bounded() {
        let long = "x".repeat(10_000);
        let err = ContentEncoding::from_header(Some(&long)).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
        let err = ContentEncoding::from_header(Some("gzip, br")).unwrap_err();
        assert!(err.to_string().contains("\"gzip, br\""), "{err}");
    }

    #[test]
    fn each_encoding_round_trips() {
        let samples: [&[u8]; 4] = [
            b"x",
            br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}"#,
            &[0u8; 100_000],
            &[0xff, 0x00, 0x0a, 0x0d, 0x80],
        ];
        for (name, encoding, encode) in ENCODERS {
            for sample in samples {
                let got = decode(encoding, &encode(sample), MIB);
                assert_eq!(got.as_deref(), Ok(sample), "{name}, {} bytes", sample.len());
            }
        }
    }

    #[test]
    fn empty_body_is_empty_for_every_encoding() {
        for (name, encoding, _) in ENCODERS {
            assert_eq!(decode(encoding, b"", 0), Ok(Vec::new()), "{name}");
        }
    }

    #[test]
    fn bombs_stop_at_the_limit() {
        // 50 MiB of zeros compresses to a few kilobytes.
        let zeros = vec![0u8; 50 * MIB];
        for (name, encoding, encode) in ENCODERS {
            let compressed = encode(&zeros);
            assert_eq!(
                decode(encoding, &compressed, MIB),
                Err(BodyError::TooLarge { limit: MIB }),
                "{name}: {} bytes compressed",
                compressed.len()
            );
        }
    }

    #[test]
    fn limit_boundary() {
        let limit = 64 * 1024;
        // (decoded size, fits)
        let cases = [
            (limit - 1, true),
            (limit, true),
            (limit + 1, false),
            (limit + CHUNK, false),
        ];
        for (name, encoding, encode) in ENCODERS {
            for (size, fits) in cases {
                let data = vec![b'a'; size];
                let got = decode(encoding, &encode(&data), limit);
                if fits {
                    assert_eq!(got.map(|v| v.len()), Ok(size), "{name}, {size}");
                } else {
                    assert_eq!(got, Err(BodyError::TooLarge { limit }), "{name}, {size}");
                }
            }
        }
    }

    #[test]
    fn zero_limit_takes_only_empty_bodies() {
        for (name, encoding, encode) in ENCODERS {
            assert_eq!(
                decode(encoding, &encode(b"a"), 0),
                Err(BodyError::TooLarge { limit: 0 }),
                "{name}"
            );
        }
    }

    #[test]
    fn corrupt_input_is_malformed() {
        let text = b"{\"message\":\"hello\"}".repeat(50);
        let truncated = |d: Vec<u8>| d.get(..d.len() / 2).unwrap().to_vec();
        let flipped = |mut d: Vec<u8>| {
            // Damage the middle of the stream, past any header.
            let mid = d.len() / 2;
            for b in d.iter_mut().skip(mid).take(8) {
                *b ^= 0x5a;
            }
            d
        };
        let cases: [(&str, ContentEncoding, Vec<u8>); 12] = [
            (
                "gzip garbage",
                ContentEncoding::Gzip,
                b"not gzip at all".to_vec(),
            ),
            (
                "gzip truncated",
                ContentEncoding::Gzip,
                truncated(gzip(&text)),
            ),
            ("gzip damaged", ContentEncoding::Gzip, flipped(gzip(&text))),
            (
                "gzip then garbage",
                ContentEncoding::Gzip,
                [gzip(b"a"), b"junk".to_vec()].concat(),
            ),
            (
                "zlib truncated",
                ContentEncoding::Deflate,
                truncated(zlib(&text)),
            ),
            (
                "zlib damaged",
                ContentEncoding::Deflate,
                flipped(zlib(&text)),
            ),
            (
                "raw deflate truncated",
                ContentEncoding::Deflate,
                truncated(raw_deflate(&text)),
            ),
            ("deflate garbage", ContentEncoding::Deflate, vec![0xff; 32]),
            (
                "br garbage",
                ContentEncoding::Br,
                b"\xff\xff\xff\xff not brotli".to_vec(),
            ),
            ("br truncated", ContentEncoding::Br, truncated(br(&text))),
            (
                "zstd garbage",
                ContentEncoding::Zstd,
                b"not zstd at all".to_vec(),
            ),
            (
                "zstd truncated",
                ContentEncoding::Zstd,
                truncated(zstd(&text)),
            ),
        ];
        for (name, encoding, body) in cases {
            let got = decode(encoding, &body, MIB);
            let named = format!("{}: ", encoding.as_str());
            assert!(
                matches!(&got, Err(BodyError::Malformed(m)) if m.starts_with(&named)),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn truncated_bodies_are_never_taken_for_shorter_ones() {
        let text = b"{\"message\":\"hello\"}".repeat(20);
        for (name, encoding, encode) in ENCODERS {
            if encoding == ContentEncoding::Identity {
                continue;
            }
            let body = encode(&text);
            // Every strict prefix: none panics, none decodes to a part.
            for end in 1..body.len() {
                let got = decode(encoding, body.get(..end).unwrap(), MIB);
                assert!(
                    matches!(got, Err(BodyError::Malformed(_))),
                    "{name}, {end} of {} bytes: {got:?}",
                    body.len()
                );
            }
        }
    }

    #[test]
    fn concatenated_gzip_members_are_one_body() {
        let body = [gzip(b"hello "), gzip(b"world")].concat();
        assert_eq!(
            decode(ContentEncoding::Gzip, &body, MIB).as_deref(),
            Ok(&b"hello world"[..])
        );
    }

    #[test]
    fn zstd_window_over_8_mib_is_refused() {
        // A frame that asks for a 128 MiB window, as `zstd --long=27` makes.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.long_distance_matching(true).unwrap();
        encoder.write_all(&vec![7u8; 1000]).unwrap();
        let body = encoder.finish().unwrap();
        let got = decode(ContentEncoding::Zstd, &body, MIB);
        assert!(matches!(got, Err(BodyError::Malformed(_))), "{got:?}");
    }

    #[test]
    fn brotli_windows() {
        let text = b"{\"message\":\"hello\"}".repeat(50);
        // The largest standard window decodes.
        for lgwin in [10, 16, 22, 24] {
            let mut body = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut body, 4096, 9, lgwin);
                w.write_all(&text).unwrap();
            }
            assert_eq!(
                decode(ContentEncoding::Br, &body, MIB).as_deref(),
                Ok(&text[..]),
                "{lgwin}"
            );
        }
        // The large-window marker (0x11), then window bits for 1 GiB.
        for body in [&[0x11u8, 0x3c][..], &[0x91, 0x3c, 0x00]] {
            let got = decode(ContentEncoding::Br, body, MIB);
            assert!(
                matches!(&got, Err(BodyError::Malformed(m)) if m.contains("large-window")),
                "{got:?}"
            );
        }
    }

    #[test]
    fn messages() {
        let cases = [
            (
                BodyError::TooLarge { limit: 1024 },
                "request body is larger than 1024 bytes (after decompression)",
            ),
            (
                BodyError::Malformed("gzip: corrupt deflate stream".into()),
                "could not decompress the request body (gzip: corrupt deflate stream)",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }
}
