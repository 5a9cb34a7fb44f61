//! How bad an event is.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How bad an event is, most severe first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    #[default]
    Error,
    Warning,
    Info,
    Debug,
}

impl Severity {
    /// The canonical name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }
}

/// Reads a level as the SDKs write it: a canonical name in any letter case,
/// the aliases relay accepts (`critical`, `warn`, `log`), or a Python
/// logging number (10 to 50).
impl FromStr for Severity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let is = |name: &str| s.eq_ignore_ascii_case(name);
        Ok(if is("fatal") || is("critical") || s == "50" {
            Severity::Fatal
        } else if is("error") || s == "40" {
            Severity::Error
        } else if is("warning") || is("warn") || s == "30" {
            Severity::Warning
        } else if is("info") || is("log") || s == "20" {
            Severity::Info
        } else if is("debug") || s == "10" {
            Severity::Debug
        } else {
            return Err(Error::invalid(
                "level",
                "must be one of fatal, error, warning, info, debug",
            ));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_as_the_sdks_write_them() {
        let cases = [
            ("fatal", Severity::Fatal),
            ("critical", Severity::Fatal),
            ("CRITICAL", Severity::Fatal),
            ("error", Severity::Error),
            ("ERROR", Severity::Error),
            ("warning", Severity::Warning),
            ("warn", Severity::Warning),
            ("Warn", Severity::Warning),
            ("info", Severity::Info),
            ("log", Severity::Info),
            ("debug", Severity::Debug),
            (" debug ", Severity::Debug),
            ("40", Severity::Error),
            ("10", Severity::Debug),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Severity>().unwrap(), want, "{text}");
        }
        for s in ["fatal", "error", "warning", "info", "debug"] {
            assert_eq!(s.parse::<Severity>().unwrap().as_str(), s);
        }
        for bad in ["", "errors", "érror", "trace", "45", "error\0"] {
            assert!(
                matches!(
                    bad.parse::<Severity>(),
                    Err(Error::InvalidInput { field: "level", .. })
                ),
                "{bad:?}"
            );
        }
    }
}
