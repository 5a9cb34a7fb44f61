//! Stack traces: frames, the trace that holds them, and the threads that
//! carry a trace on events without an exception.

use super::lenient::{self, Fields};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// One frame of a stack trace. Fields Mesher does not read (such as
/// `instruction_addr` or `package`) are kept in `other`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StackFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abs_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lineno: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colno: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_context: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_context: Option<Vec<String>>,
    /// Whether the frame is the application's own code (vs. a library);
    /// unknown when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_app: Option<bool>,
    /// Local variables, as the SDK serialized them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vars: Option<Value>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl StackFrame {
    /// Whether the SDK marked this frame as the application's own code.
    pub fn is_in_app(&self) -> bool {
        self.in_app == Some(true)
    }
}

impl Fields for StackFrame {
    const EXPECTING: &'static str = "a stack frame object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "filename" => self.filename = lenient::text(map)?,
            "abs_path" => self.abs_path = lenient::text(map)?,
            "function" => self.function = lenient::text(map)?,
            "module" => self.module = lenient::text(map)?,
            "lineno" => self.lineno = lenient::count(map)?,
            "colno" => self.colno = lenient::count(map)?,
            "context_line" => self.context_line = lenient::text(map)?,
            "pre_context" => self.pre_context = lenient::texts(map)?,
            "post_context" => self.post_context = lenient::texts(map)?,
            "in_app" => self.in_app = lenient::flag(map)?,
            "vars" => self.vars = lenient::any(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

impl<'de> Deserialize<'de> for StackFrame {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::deserialize_fields(d)
    }
}

/// A stack trace, frames oldest first (the innermost call is last). Sent
/// as `{"frames": [...]}`; a bare list of frames is read as one too.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stacktrace {
    pub frames: Vec<StackFrame>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl From<Vec<StackFrame>> for Stacktrace {
    fn from(frames: Vec<StackFrame>) -> Self {
        Stacktrace {
            frames,
            other: Map::new(),
        }
    }
}

impl Fields for Stacktrace {
    const EXPECTING: &'static str = "a stack trace object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "frames" => self.frames = lenient::values(map)?.unwrap_or_default(),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

impl<'de> Deserialize<'de> for Stacktrace {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StacktraceVisitor;
        impl<'de> Visitor<'de> for StacktraceVisitor {
            type Value = Stacktrace;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a stack trace object or a list of frames")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Stacktrace, A::Error> {
                let mut out = Stacktrace::default();
                lenient::read_fields(map, &mut out, |_| {})?;
                Ok(out)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Stacktrace, A::Error> {
                let mut frames = Vec::new();
                while let Some(frame) = seq.next_element::<Option<StackFrame>>()? {
                    frames.extend(frame);
                }
                Ok(Stacktrace::from(frames))
            }
        }
        d.deserialize_any(StacktraceVisitor)
    }
}

/// A thread of the process that sent the event, with its stack trace.
/// Python and Rust attach the current thread's trace to message events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Thread {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<Stacktrace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crashed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Fields for Thread {
    const EXPECTING: &'static str = "a thread object";

    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<bool, A::Error> {
        match key {
            "id" => self.id = lenient::any(map)?,
            "name" => self.name = lenient::text(map)?,
            "stacktrace" => self.stacktrace = map.next_value()?,
            "crashed" => self.crashed = lenient::flag(map)?,
            "current" => self.current = lenient::flag(map)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn other(&mut self) -> &mut Map<String, Value> {
        &mut self.other
    }
}

impl<'de> Deserialize<'de> for Thread {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient::deserialize_fields(d)
    }
}

/// The base name of a file path or URL: what follows the last `/` or `\`,
/// without a query or fragment (`http://x/app.js?v=3` → `app.js`).
pub(crate) fn base_name(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let path = path.trim_end_matches(['/', '\\']);
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_keep_unknown_fields_and_read_lenient_numbers() {
        let json = json!({
            "function": "main", "filename": "main.rs", "lineno": "12", "colno": 3.0,
            "in_app": true, "instruction_addr": "0x5646031b85be", "package": "app",
            "pre_context": ["a", null, 1], "vars": {"x": "1"}
        });
        let frame: StackFrame = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(frame.lineno, Some(12));
        assert_eq!(frame.colno, Some(3));
        assert!(frame.is_in_app());
        assert_eq!(frame.other["instruction_addr"], "0x5646031b85be");
        assert_eq!(frame.pre_context.as_deref().unwrap(), ["a", "", "1"]);
        let back = serde_json::to_value(&frame).unwrap();
        assert_eq!(back["package"], "app");
        assert_eq!(back["vars"], json!({"x": "1"}));
        assert_eq!(back["lineno"], 12);
        assert!(back.get("module").is_none(), "absent fields stay absent");
    }

    #[test]
    fn a_stacktrace_is_an_object_or_a_bare_list() {
        let object: Stacktrace =
            serde_json::from_str(r#"{"frames": [{"function": "a"}, null], "registers": {}}"#)
                .unwrap();
        assert_eq!(object.frames.len(), 1);
        assert!(object.other.contains_key("registers"));
        let list: Stacktrace = serde_json::from_str(r#"[{"function": "a"}]"#).unwrap();
        assert_eq!(list.frames[0].function.as_deref(), Some("a"));
        assert!(serde_json::from_str::<Stacktrace>(r#""a""#).is_err());
        assert!(serde_json::from_str::<Stacktrace>(r#"{"frames": 5}"#).is_err());
    }

    #[test]
    fn base_names_of_paths_and_urls() {
        let cases = [
            ("app.py", "app.py"),
            ("/srv/app/views.py", "views.py"),
            (r"C:\app\main.cs", "main.cs"),
            ("http://localhost:5000/static/js/app.js?v=3#x", "app.js"),
            ("node:internal/modules/cjs/loader", "loader"),
            ("dir/", "dir"),
            ("", ""),
        ];
        for (path, want) in cases {
            assert_eq!(base_name(path), want, "{path}");
        }
    }
}
