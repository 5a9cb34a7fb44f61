//! Artifact bundles as sentry-cli builds them (symbolic's `SourceBundle`):
//! 8 bytes of header (`SYSB` and the format version, a little-endian u32,
//! 2 today), then a zip whose `manifest.json` describes the files:
//!
//! ```json
//! {"files": {"files/_/_/app.js": {"type": "minified_source", "url": "~/app.js",
//!            "headers": {"debug-id": "…", "sourcemap": "app.js.map"}}},
//!  "debug_id": "…", "org": "acme", "project": "web", "release": "1.0", "dist": "1"}
//! ```
//!
//! Header names are case-insensitive (`Sourcemap`, `debug-id`;
//! `X-SourceMap` is the legacy name). Reading is bounded: the bundle's
//! entries, each file's and all files' uncompressed bytes are capped while
//! they are inflated, not trusted from the zip's directory, so a zip bomb
//! is refused once it has inflated past a cap; a manifest path that would
//! leave the bundle (`../../etc/passwd`, an absolute path) is refused
//! before anything is read.

use crate::domain::ArtifactType;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use uuid::Uuid;

/// The magic bytes before the zip.
const MAGIC: &[u8; 4] = b"SYSB";

/// The newest bundle format version this reader knows.
const VERSION: u32 = 2;

/// The manifest's largest size: it lists paths, urls and headers only.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;

/// What a bundle may hold; past any of these it is refused, naming the
/// limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleLimits {
    /// Files the manifest may list.
    pub max_files: usize,
    /// One file's bytes, uncompressed.
    pub max_file_bytes: u64,
    /// All files' bytes together, uncompressed.
    pub max_total_bytes: u64,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_files: 10_000,
            max_file_bytes: 32 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why a bundle was refused; the text is what sentry-cli shows its user.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("not an artifact bundle: it must start with SYSB and a format version")]
    NotABundle,
    #[error("artifact bundle format version {0} is newer than this Mesher reads (2)")]
    UnknownVersion(u32),
    #[error("the artifact bundle's zip cannot be read: {0}")]
    BadZip(String),
    #[error("the artifact bundle has no readable manifest.json: {0}")]
    BadManifest(String),
    #[error("the artifact bundle lists {0} files; at most {1} are allowed")]
    TooManyFiles(usize, usize),
    #[error("the path {0:?} in the artifact bundle leaves the bundle")]
    UnsafePath(String),
    #[error("the artifact bundle's manifest lists {0:?}, which the zip does not hold")]
    MissingFile(String),
    #[error("{0:?} in the artifact bundle is over {1} bytes uncompressed")]
    FileTooLarge(String, u64),
    #[error("the artifact bundle's files are over {0} bytes uncompressed in all")]
    TooLarge(u64),
    #[error("{0:?} in the artifact bundle has a debug-id header that is not a UUID")]
    BadDebugId(String),
    #[error("{0:?} in the artifact bundle has an unknown type {1:?}")]
    UnknownType(String, String),
}

/// One file of a bundle, as it is stored and looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFile {
    pub kind: ArtifactType,
    /// Where the file was served from, usually `~/path` (`~` standing for
    /// any scheme and host); empty when the manifest gave none.
    pub url: String,
    /// The debug id `sentry-cli sourcemaps inject` gave the file and its
    /// map.
    pub debug_id: Option<Uuid>,
    /// A minified file's reference to its source map (the `sourcemap`
    /// header), as written: relative to `url` or absolute.
    pub sourcemap: Option<String>,
    pub content: Vec<u8>,
}

/// A bundle read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The bundle's own debug id (sentry-cli makes one per upload).
    pub debug_id: Option<Uuid>,
    pub release: Option<String>,
    pub dist: Option<String>,
    pub files: Vec<BundleFile>,
}

impl Bundle {
    /// The files' bytes, uncompressed.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.content.len() as u64).sum()
    }
}

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    files: BTreeMap<String, FileInfo>,
    #[serde(default)]
    debug_id: Option<String>,
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    dist: Option<String>,
}

#[derive(Deserialize)]
struct FileInfo {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl FileInfo {
    /// A header by its lowercase name, whatever case the bundle used.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Whether `path`, a name inside the zip, stays inside it: relative, no
/// `..` or `.` component, no backslash, NUL or drive letter.
fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\\', '\0', ':'])
        && path.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

/// Reads at most `limit` bytes of `reader`; `None` when there were more.
fn read_at_most(reader: impl Read, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    reader.take(limit + 1).read_to_end(&mut out)?;
    Ok((out.len() as u64 <= limit).then_some(out))
}

/// The end-of-central-directory record's signature, its fixed size, and
/// the longest comment that may follow it.
const EOCD_SIGNATURE: [u8; 4] = 0x0605_4b50u32.to_le_bytes();
const EOCD_BYTES: usize = 22;
const MAX_COMMENT_BYTES: usize = u16::MAX as usize;

/// The ZIP64 end locator's signature; it sits right before the record.
const ZIP64_LOCATOR_SIGNATURE: [u8; 4] = 0x0706_4b50u32.to_le_bytes();
const ZIP64_LOCATOR_BYTES: usize = 20;

/// How many entries `zip` holds, from its end-of-central-directory record
/// alone: nothing else is read or allocated. Every record a reader could
/// take (a signature within the last 22 bytes plus 64 KiB of comment, its
/// comment ending within the file) is counted and the largest count
/// returned: the zip crate falls back to an earlier record when a later
/// one does not hold up, so a stray signature in a comment must not hide
/// the record it ends up using.
/// A ZIP64 end (a count, size or offset at its maximum and a ZIP64
/// locator before it) is refused: the zip crate sentry-cli writes with
/// makes one only past 65,535 entries or 4 GiB, beyond any bundle Mesher
/// takes. No record at all is not a zip.
fn zip_entries(zip: &[u8]) -> Result<u64, BundleError> {
    let u16_at = |at: usize| {
        zip.get(at..at.checked_add(2)?)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        zip.get(at..at.checked_add(4)?)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(last) = zip.len().checked_sub(EOCD_BYTES) else {
        return Err(BundleError::BadZip("it is too short to be a zip".into()));
    };
    let first = last.saturating_sub(MAX_COMMENT_BYTES);
    let mut most: Option<u64> = None;
    for at in (first..=last).rev() {
        if zip.get(at..at + 4) != Some(&EOCD_SIGNATURE[..]) {
            continue;
        }
        let (Some(entries), Some(cd_size), Some(cd_offset), Some(comment)) = (
            u16_at(at + 10),
            u32_at(at + 12),
            u32_at(at + 16),
            u16_at(at + 20),
        ) else {
            continue;
        };
        if at + EOCD_BYTES + usize::from(comment) > zip.len() {
            // A signature in the comment, or garbage: its comment would
            // run past the end of the file.
            continue;
        }
        let may_be_zip64 = entries == u16::MAX || cd_size == u32::MAX || cd_offset == u32::MAX;
        let locator = at.checked_sub(ZIP64_LOCATOR_BYTES);
        if may_be_zip64
            && locator.and_then(|l| zip.get(l..l + 4)) == Some(&ZIP64_LOCATOR_SIGNATURE[..])
        {
            return Err(BundleError::BadZip(
                "ZIP64 is not read: an artifact bundle is far smaller".into(),
            ));
        }
        most = most.max(Some(u64::from(entries)));
    }
    most.ok_or_else(|| BundleError::BadZip("no end of central directory record".into()))
}

/// Reads a bundle from its bytes, within `limits`.
pub fn parse(bytes: &[u8], limits: &BundleLimits) -> Result<Bundle, BundleError> {
    let header = bytes.get(..8).ok_or(BundleError::NotABundle)?;
    if &header[..4] != MAGIC {
        return Err(BundleError::NotABundle);
    }
    let version = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if version > VERSION {
        return Err(BundleError::UnknownVersion(version));
    }
    // The manifest and the files; anything more is not read. The reader
    // below parses the whole central directory as it opens the zip, an
    // allocation per entry: a zip of a million empty entries is refused
    // from its end record first, before any of that.
    let entries = zip_entries(bytes)?;
    if entries > (limits.max_files as u64).saturating_add(1) {
        return Err(BundleError::TooManyFiles(
            usize::try_from(entries - 1).unwrap_or(usize::MAX),
            limits.max_files,
        ));
    }
    // The zip's offsets count from the start of the file, header included
    // (the writer wrote both to one stream); the reader finds the zip
    // behind it, as it would behind a self-extractor.
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| BundleError::BadZip(e.to_string()))?;
    let manifest: Manifest = {
        let entry = archive
            .by_name("manifest.json")
            .map_err(|e| BundleError::BadManifest(e.to_string()))?;
        let text = read_at_most(entry, MAX_MANIFEST_BYTES)
            .map_err(|e| BundleError::BadManifest(e.to_string()))?
            .ok_or_else(|| BundleError::BadManifest("it is too large".into()))?;
        serde_json::from_slice(&text).map_err(|e| BundleError::BadManifest(e.to_string()))?
    };
    if manifest.files.len() > limits.max_files {
        return Err(BundleError::TooManyFiles(
            manifest.files.len(),
            limits.max_files,
        ));
    }
    if let Some(path) = manifest.files.keys().find(|p| !is_safe_path(p)) {
        return Err(BundleError::UnsafePath(path.clone()));
    }
    let mut total = 0u64;
    let mut files = Vec::with_capacity(manifest.files.len());
    for (path, info) in &manifest.files {
        let kind = match info.kind.as_deref() {
            Some("minified_source") => ArtifactType::MinifiedSource,
            Some("source_map") => ArtifactType::SourceMap,
            Some("source") | None => ArtifactType::Source,
            Some("indexed_ram_bundle") => ArtifactType::IndexedRamBundle,
            Some(other) => return Err(BundleError::UnknownType(path.clone(), other.to_owned())),
        };
        let debug_id = info
            .header("debug-id")
            .map(|id| id.parse::<Uuid>())
            .transpose()
            .map_err(|_| BundleError::BadDebugId(path.clone()))?;
        let entry = archive
            .by_name(path)
            .map_err(|_| BundleError::MissingFile(path.clone()))?;
        let limit = limits.max_file_bytes.min(limits.max_total_bytes - total);
        let content = read_at_most(entry, limit)
            .map_err(|e| BundleError::BadZip(format!("{path}: {e}")))?
            .ok_or_else(|| match limit < limits.max_file_bytes {
                true => BundleError::TooLarge(limits.max_total_bytes),
                false => BundleError::FileTooLarge(path.clone(), limits.max_file_bytes),
            })?;
        total += content.len() as u64;
        files.push(BundleFile {
            kind,
            url: info.url.clone(),
            debug_id,
            sourcemap: info
                .header("sourcemap")
                .or_else(|| info.header("x-sourcemap"))
                .map(str::to_owned),
            content,
        });
    }
    let text = |t: Option<String>| t.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
    Ok(Bundle {
        debug_id: manifest
            .debug_id
            .as_deref()
            .and_then(|id| id.trim().parse().ok()),
        release: text(manifest.release),
        dist: text(manifest.dist),
        files,
    })
}

/// A bundle's bytes, as sentry-cli writes them: for tests and the
/// benchmark, which need bundles without running the CLI.
pub fn write(manifest: &serde_json::Value, files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Cursor::new(Vec::new());
    out.write_all(MAGIC).expect("in memory");
    out.write_all(&VERSION.to_le_bytes()).expect("in memory");
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (path, content) in files {
        zip.start_file(*path, options).expect("in memory");
        zip.write_all(content).expect("in memory");
    }
    zip.start_file("manifest.json", options).expect("in memory");
    zip.write_all(manifest.to_string().as_bytes())
        .expect("in memory");
    zip.finish().expect("in memory").into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "5b9dbf55-a1a1-4a1b-9f59-9d7a8c1f2e3d";

    fn manifest(files: serde_json::Value) -> serde_json::Value {
        json!({"files": files, "debug_id": ID, "org": "acme", "release": " 1.0 ", "dist": ""})
    }

    #[test]
    fn reads_what_sentry_cli_writes() {
        let bytes = write(
            &manifest(json!({
                "files/_/_/app.js": {"type": "minified_source", "url": "~/app.js",
                    "headers": {"debug-id": ID, "Sourcemap": "app.js.map"}},
                "files/_/_/app.js.map": {"type": "source_map", "url": "~/app.js.map",
                    "headers": {"Debug-Id": ID}},
                "files/_/_/legacy.js": {"type": "minified_source", "url": "~/legacy.js",
                    "headers": {"X-SourceMap": "legacy.js.map"}},
            })),
            &[
                ("files/_/_/app.js", b"function o(){}"),
                ("files/_/_/app.js.map", b"{\"version\":3}"),
                ("files/_/_/legacy.js", b"x"),
            ],
        );
        let bundle = parse(&bytes, &BundleLimits::default()).unwrap();
        assert_eq!(bundle.debug_id, Some(ID.parse().unwrap()));
        assert_eq!(bundle.release.as_deref(), Some("1.0"));
        assert_eq!(bundle.dist, None, "a blank dist is none");
        let by_url = |url: &str| bundle.files.iter().find(|f| f.url == url).unwrap();
        let js = by_url("~/app.js");
        assert_eq!(js.kind, ArtifactType::MinifiedSource);
        assert_eq!(js.debug_id, Some(ID.parse().unwrap()));
        assert_eq!(js.sourcemap.as_deref(), Some("app.js.map"));
        assert_eq!(js.content, b"function o(){}");
        let map = by_url("~/app.js.map");
        assert_eq!(map.kind, ArtifactType::SourceMap);
        assert_eq!(map.debug_id, js.debug_id, "header names in any case");
        assert_eq!(
            by_url("~/legacy.js").sourcemap.as_deref(),
            Some("legacy.js.map")
        );
        assert_eq!(bundle.bytes(), 14 + 13 + 1);
    }

    #[test]
    fn bad_bundles_are_refused_with_the_reason() {
        let limits = BundleLimits {
            max_files: 2,
            max_file_bytes: 100,
            max_total_bytes: 150,
        };
        let one = |path: &str, info: serde_json::Value, content: &[u8]| {
            write(&manifest(json!({ path: info })), &[(path, content)])
        };
        let js = json!({"type": "minified_source", "url": "~/a.js"});
        let mut newer = one("a.js", js.clone(), b"x");
        newer[4] = 3;
        let three = write(
            &manifest(json!({"a": js, "b": js, "c": js})),
            &[("a", b"1"), ("b", b"2"), ("c", b"3")],
        );
        let two_large = write(
            &manifest(json!({"a": js, "b": js})),
            &[("a", &[b'a'; 100]), ("b", &[b'b'; 100])],
        );
        let cases: Vec<(Vec<u8>, BundleError)> = vec![
            (b"PK\x03\x04".to_vec(), BundleError::NotABundle),
            (
                b"SYSB\x02\0\0\0not a zip".to_vec(),
                BundleError::BadZip(String::new()),
            ),
            (newer, BundleError::UnknownVersion(3)),
            (
                one("../../etc/passwd", js.clone(), b"root:x:0:0"),
                BundleError::UnsafePath("../../etc/passwd".into()),
            ),
            (
                one("/etc/passwd", js.clone(), b"root"),
                BundleError::UnsafePath("/etc/passwd".into()),
            ),
            (
                one("files/./a.js", js.clone(), b"x"),
                BundleError::UnsafePath("files/./a.js".into()),
            ),
            (
                one(r"..\evil.js", js.clone(), b"x"),
                BundleError::UnsafePath(r"..\evil.js".into()),
            ),
            (three, BundleError::TooManyFiles(3, 2)),
            (
                one("a.js", js.clone(), &[b'x'; 101]),
                BundleError::FileTooLarge("a.js".into(), 100),
            ),
            (two_large, BundleError::TooLarge(150)),
            (
                one(
                    "a.js",
                    json!({"type": "minified_source", "headers": {"debug-id": "7"}}),
                    b"x",
                ),
                BundleError::BadDebugId("a.js".into()),
            ),
            (
                one("a.js", json!({"type": "wasm"}), b"x"),
                BundleError::UnknownType("a.js".into(), "wasm".into()),
            ),
            (
                write(&manifest(json!({"a.js": js})), &[]),
                BundleError::MissingFile("a.js".into()),
            ),
            (
                write(&json!({"files": 7}), &[]),
                BundleError::BadManifest(String::new()),
            ),
        ];
        for (bytes, want) in cases {
            let got = parse(&bytes, &limits).unwrap_err();
            // Errors from the zip or JSON reader carry their text; the
            // variant is what matters.
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{got}"
            );
            if !matches!(want, BundleError::BadZip(_) | BundleError::BadManifest(_)) {
                assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn a_zip_bomb_is_refused_once_it_inflates_past_the_cap() {
        // 16 MiB of zeros deflate to about 16 KiB; the cap stops the
        // reading at 1 MiB, whatever the zip's directory claims.
        let zeros = vec![0u8; 16 * 1024 * 1024];
        let bytes = write(
            &manifest(json!({"bomb.js": {"type": "minified_source", "url": "~/bomb.js"}})),
            &[("bomb.js", &zeros)],
        );
        drop(zeros);
        assert!(bytes.len() < 64 * 1024, "{} bytes", bytes.len());
        let limits = BundleLimits {
            max_file_bytes: 1024 * 1024,
            ..BundleLimits::default()
        };
        assert_eq!(
            parse(&bytes, &limits).unwrap_err(),
            BundleError::FileTooLarge("bomb.js".into(), 1024 * 1024)
        );
    }

    /// A bundle of `entries` empty files (and its manifest), as sentry-cli
    /// would write it.
    fn bundle_of(entries: usize) -> Vec<u8> {
        let names: Vec<String> = (0..entries).map(|i| format!("f{i}.js")).collect();
        let files: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        write(&json!({"files": {}}), &files)
    }

    #[test]
    fn a_zip_of_too_many_entries_is_refused_before_its_directory_is_read() {
        // Every central directory header made unreadable: a reader that
        // walked the directory would fail on it, so refusing it for its
        // size shows the count came from the end record alone.
        let mut bytes = bundle_of(20);
        let header = 0x0201_4b50u32.to_le_bytes();
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(4).position(|w| w == header) {
            bytes[at + i..at + i + 4].copy_from_slice(b"XXXX");
            at += i + 4;
        }
        let limits = BundleLimits {
            max_files: 10,
            ..BundleLimits::default()
        };
        assert_eq!(
            parse(&bytes, &limits).unwrap_err(),
            BundleError::TooManyFiles(20, 10)
        );
    }

    #[test]
    fn the_entry_count_comes_from_the_end_record() {
        let twenty = bundle_of(19); // 19 files and the manifest
        let three = bundle_of(2);
        let end = |zip: &[u8]| zip.len() - EOCD_BYTES;
        // A comment, with a stray signature in it that claims more.
        let commented = {
            let mut zip = three.clone();
            let at = end(&zip);
            let mut stray = EOCD_SIGNATURE.to_vec();
            stray.extend_from_slice(&[0; 6]);
            stray.extend_from_slice(&60_000u16.to_le_bytes());
            stray.extend_from_slice(&[0; 10]);
            zip[at + 20..at + 22].copy_from_slice(&(stray.len() as u16).to_le_bytes());
            zip.extend_from_slice(&stray);
            zip
        };
        let truncated = twenty[..twenty.len() - 5].to_vec();
        let long_comment = {
            let mut zip = three.clone();
            let at = end(&zip);
            zip[at + 20..at + 22].copy_from_slice(&100u16.to_le_bytes());
            zip
        };
        let zip64 = {
            let mut zip = three.clone();
            let at = end(&zip);
            zip[at + 10..at + 12].copy_from_slice(&u16::MAX.to_le_bytes());
            zip[at - 20..at - 16].copy_from_slice(&ZIP64_LOCATOR_SIGNATURE);
            zip
        };
        let most = {
            let mut zip = three.clone();
            let at = end(&zip);
            zip[at + 10..at + 12].copy_from_slice(&u16::MAX.to_le_bytes());
            zip
        };
        let cases: Vec<(&str, &[u8], Result<u64, ()>)> = vec![
            ("twenty entries", &twenty[..], Ok(20)),
            ("three entries", &three[..], Ok(3)),
            (
                "the largest count any record claims",
                &commented[..],
                Ok(60_000),
            ),
            ("0xFFFF without a ZIP64 locator", &most[..], Ok(65_535)),
            ("ZIP64", &zip64[..], Err(())),
            ("truncated", &truncated[..], Err(())),
            ("a comment past the end", &long_comment[..], Err(())),
            ("garbage", &[0xAB; 100][..], Err(())),
            ("a bare signature", &EOCD_SIGNATURE[..], Err(())),
            ("empty", &[][..], Err(())),
        ];
        for (what, zip, want) in cases {
            match (zip_entries(zip), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}"),
                (Err(BundleError::BadZip(_)), Err(())) => {}
                (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_bundle_is_counted_against_the_limit_before_it_is_opened() {
        let limits = |max_files| BundleLimits {
            max_files,
            ..BundleLimits::default()
        };
        let cases = [
            (bundle_of(20), 10, Err(BundleError::TooManyFiles(20, 10))),
            (bundle_of(10), 10, Ok(())),
            (bundle_of(0), 10, Ok(())),
            (
                b"SYSB\x02\0\0\0PK\x05\x06 truncated".to_vec(),
                10,
                Err(BundleError::BadZip(String::new())),
            ),
        ];
        for (bytes, max_files, want) in cases {
            match (parse(&bytes, &limits(max_files)), want) {
                (Ok(_), Ok(())) => {}
                (Err(BundleError::BadZip(_)), Err(BundleError::BadZip(_))) => {}
                (Err(got), Err(want)) => assert_eq!(got, want),
                (got, want) => panic!("got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn paths_that_stay_inside_the_bundle() {
        for (path, safe) in [
            ("files/_/_/app.js", true),
            ("manifest.json", true),
            ("a..b/c", true),
            ("../x", false),
            ("a/../../x", false),
            ("/abs", false),
            ("a//b", false),
            ("c:/windows", false),
            ("a\\b", false),
            ("", false),
        ] {
            assert_eq!(is_safe_path(path), safe, "{path}");
        }
    }
}
